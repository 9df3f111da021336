//! `rm`: delete a version (asks first, unless --yes).

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;

use assetfs::catalog::Catalog;
use assetfs::catalog::CatalogCache;
use assetfs::format::Selector;
use assetfs::ops::{remove_version, RemoveError, RemoveOptions};

use crate::cli::args::RmArgs;
use crate::cli::commands::env::{confirm, parse_ref};
use crate::cli::output::{human_bytes, print_json};

pub async fn rm(catalog: &Catalog, cache_dir: &Path, a: &RmArgs, as_json: bool) -> Result<()> {
    let r = parse_ref(&a.reference)?;
    let Selector::Version(v) = r.selector else {
        return Err(RemoveError::NotAVersion(r.asset.clone()).into());
    };
    // Unknown or already deleted: say so before asking anything.
    catalog.ensure_live(&r.asset, v).await?;
    if !a.yes {
        let d = assetfs::ops::describe_version(catalog, &r.asset, v).await?;
        let question = format!(
            "delete {r} ({} files, {}, created {} by {})?",
            d.file_count,
            human_bytes(d.total_bytes),
            d.created.as_deref().unwrap_or("?"),
            d.author.as_deref().unwrap_or("?"),
        );
        if !confirm(&question)? {
            bail!("not confirmed; nothing was deleted (use --yes to skip the question)");
        }
    }
    catalog.store().check_conditional_writes().await?;
    let meta = CatalogCache::new(catalog.clone(), cache_dir);
    let opts = RemoveOptions {
        force: a.force,
        by: a
            .author
            .clone()
            .unwrap_or_else(assetfs::ops::default_author),
        message: a.message.clone(),
    };
    let d = remove_version(&meta, &r, &opts).await?;
    if as_json {
        print_json(
            &json!({"ref": r.to_string(), "deleted": d.deleted, "by": d.by, "message": d.message}),
        );
    } else {
        println!("deleted {r}");
        eprintln!("its data is reclaimed by `assetfs gc` once no live version shares it");
    }
    Ok(())
}
