//! `get`: materialise a version into a directory.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use assetfs::catalog::Catalog;

use crate::cli::commands::env::parse_ref;
use crate::cli::output::{human_bytes, print_json};

pub async fn get(catalog: &Catalog, reference: &str, dir: &Path, as_json: bool) -> Result<()> {
    let r = parse_ref(reference)?;
    let out = assetfs::ops::get(catalog, &r, dir, !as_json).await?;
    if as_json {
        print_json(&json!({
            "ref": out.reference,
            "dir": dir,
            "files_written": out.files_written,
            "files_skipped": out.files_skipped,
            "bytes_fetched": out.bytes_fetched,
        }));
    } else {
        println!("{}", out.reference);
        eprintln!(
            "{} files written, {} already present, {} fetched",
            out.files_written,
            out.files_skipped,
            human_bytes(out.bytes_fetched)
        );
    }
    Ok(())
}
