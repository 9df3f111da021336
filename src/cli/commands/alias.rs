//! `alias`: point an alias at a version, or remove one (`--delete`).

use anyhow::{bail, Result};
use serde_json::json;

use assetfs::catalog::Catalog;
use assetfs::format::Selector;

use crate::cli::args::AliasArgs;
use crate::cli::commands::env::parse_ref;
use crate::cli::commands::tests::require_passing_tests;
use crate::cli::output::print_json;

pub async fn alias(catalog: &Catalog, a: &AliasArgs, as_json: bool) -> Result<()> {
    let alias = a.alias.as_deref();
    if a.delete {
        delete(catalog, &a.reference, alias, as_json).await
    } else {
        set(
            catalog,
            &a.reference,
            alias,
            a.require_tests,
            &a.timeout,
            as_json,
        )
        .await
    }
}

/// `alias --delete`: the asset and the alias, or the alias reference.
async fn delete(
    catalog: &Catalog,
    reference: &str,
    alias: Option<&str>,
    as_json: bool,
) -> Result<()> {
    let r = parse_ref(reference)?;
    let alias = match (alias, &r.selector) {
        (Some(a), Selector::Latest) => a.to_string(),
        (None, Selector::Alias(a)) => a.clone(),
        _ => bail!(
            "alias --delete takes the asset and the alias (`{0} production`) or the alias reference (`{0}@production`)",
            r.asset
        ),
    };
    let was = assetfs::ops::delete_alias(catalog, &r.asset, &alias).await?;
    if as_json {
        print_json(
            &json!({"alias": format!("{}@{alias}", r.asset), "deleted": true, "was": r.asset.at(was).to_string()}),
        );
    } else {
        println!("removed {}@{alias} (was {})", r.asset, r.asset.at(was));
    }
    Ok(())
}

/// `alias REF NAME`, with `--require-tests` only once the stored tests pass.
async fn set(
    catalog: &Catalog,
    reference: &str,
    alias: Option<&str>,
    require_tests: bool,
    timeout: &str,
    as_json: bool,
) -> Result<()> {
    let r = parse_ref(reference)?;
    let Some(alias) = alias else {
        bail!("alias needs the alias name: `assetfs alias {r} NAME` (or --delete to remove one)");
    };
    let v = catalog.resolve(&r).await?;
    if require_tests {
        require_passing_tests(catalog, &r.asset.at(v), alias, timeout, as_json).await?;
    }
    assetfs::ops::set_alias(catalog, &r.asset, alias, v).await?;
    if as_json {
        print_json(
            &json!({"alias": format!("{}@{alias}", r.asset), "ref": r.asset.at(v).to_string()}),
        );
    } else {
        println!("{}@{alias} -> {}", r.asset, r.asset.at(v));
    }
    Ok(())
}
