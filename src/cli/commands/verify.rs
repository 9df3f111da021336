//! `verify`: re-fetch and re-hash the chunks of versions (targets from
//! `assetfs::ops::verify_targets`).

use std::process::ExitCode;

use anyhow::Result;

use assetfs::catalog::Catalog;
use assetfs::ops::{verify_targets, VerifyScope};

use crate::cli::commands::env::parse_ref;
use crate::cli::output::{human_bytes, print_json};

pub async fn verify(catalog: &Catalog, reference: Option<&str>, as_json: bool) -> Result<ExitCode> {
    let targets = match reference {
        Some(s) => {
            let r = parse_ref(s)?;
            // `models/m` is every version; `models/m@latest` is one.
            let scope = if r.is_bare() && !s.contains('@') {
                VerifyScope::Asset(&r.asset)
            } else {
                VerifyScope::Version(&r)
            };
            verify_targets(catalog, scope).await?
        }
        None => verify_targets(catalog, VerifyScope::Everything).await?,
    };
    let mut reports = vec![];
    let mut bad = 0;
    for (asset, v) in targets {
        let rep = assetfs::ops::verify_version(catalog, &asset, v).await?;
        if !rep.problems.is_empty() {
            bad += 1;
        }
        if !as_json {
            if rep.problems.is_empty() {
                println!(
                    "ok    {}  ({} chunks, {})",
                    rep.reference,
                    rep.chunks,
                    human_bytes(rep.bytes)
                );
            } else {
                for p in &rep.problems {
                    println!("BAD   {}  {p}", rep.reference);
                }
            }
        }
        reports.push(rep);
    }
    if as_json {
        print_json(&reports);
    }
    if bad > 0 {
        eprintln!("assetfs: error: {bad} version(s) failed verification");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
