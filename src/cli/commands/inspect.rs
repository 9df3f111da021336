//! ls, log, show, diff, lineage: reading the catalog (data from
//! `src/ops/inspect.rs`, `diff.rs`, `lineage.rs`), formatted here.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use assetfs::catalog::Catalog;
use assetfs::catalog::CatalogCache;
use assetfs::format::EntryKind;
use assetfs::format::{Kind, Selector};

use crate::cli::commands::env::parse_ref;
use crate::cli::output::log_table::log_table;
use crate::cli::output::{human_bytes, print_json};

pub async fn ls(catalog: &Catalog, path: Option<&str>, as_json: bool) -> Result<()> {
    let kinds: Vec<Kind> = match path {
        None => Kind::ALL.to_vec(),
        Some(p) if !p.contains('/') => vec![p.parse()?],
        Some(p) => {
            let r = parse_ref(p)?;
            return if p.contains('@') {
                ls_files(catalog, &r, as_json).await
            } else {
                ls_versions(catalog, &r.asset, as_json).await
            };
        }
    };
    let rows = assetfs::ops::asset_summaries(catalog, &kinds).await?;
    if as_json {
        print_json(&rows);
    } else {
        for r in rows {
            let aliases: Vec<String> = r.aliases.iter().map(|(a, v)| format!("{a}=@{v}")).collect();
            println!(
                "{:<40} latest=@{}  versions={}  {}",
                r.asset,
                json!(r.latest),
                r.versions,
                aliases.join(" ")
            );
        }
    }
    Ok(())
}

async fn ls_versions(
    catalog: &Catalog,
    asset: &assetfs::format::AssetId,
    as_json: bool,
) -> Result<()> {
    let rows = assetfs::ops::version_sidecars(catalog, asset).await?;
    if as_json {
        print_json(&rows);
    } else {
        for s in rows {
            println!(
                "{:<40} {}  {:>6} files  {:>10}  {}",
                s["ref"].as_str().unwrap_or_default(),
                s["created"].as_str().unwrap_or_default(),
                s["file_count"],
                human_bytes(s["total_bytes"].as_u64().unwrap_or(0)),
                s["message"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn ls_files(catalog: &Catalog, r: &assetfs::format::Reference, as_json: bool) -> Result<()> {
    let m = assetfs::ops::version_manifest(catalog, r).await?;
    if as_json {
        let rows: Vec<Value> = m
            .entries()
            .map(|e| {
                json!({
                    "path": e.path,
                    "type": format!("{:?}", e.kind).to_lowercase(),
                    "mode": format!("{:o}", e.mode),
                    "size": e.size,
                    "blake3": (e.kind == EntryKind::File).then(|| assetfs::format::to_hex(&e.hash)),
                    "target": e.target,
                })
            })
            .collect();
        print_json(&rows);
    } else {
        // One write per line would dominate for a million-file version.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for e in m.entries() {
            let suffix = match (&e.kind, &e.target) {
                (EntryKind::Dir, _) => "/".to_string(),
                (_, Some(t)) => format!(" -> {t}"),
                _ => String::new(),
            };
            writeln!(out, "{:04o} {:>12}  {}{suffix}", e.mode, e.size, e.path)?;
        }
        out.flush()?;
    }
    Ok(())
}

pub async fn log(catalog: &Catalog, reference: &str, all: bool, as_json: bool) -> Result<()> {
    let r = parse_ref(reference)?;
    if !matches!(r.selector, Selector::Latest) {
        bail!(
            "log lists every version of an asset; give the asset only (e.g. {})",
            r.asset
        );
    }
    let rows = assetfs::ops::log_rows(catalog, &r.asset, all).await?;
    if as_json {
        print_json(&rows);
        return Ok(());
    }
    print!("{}", log_table(&rows));
    Ok(())
}

pub async fn show(catalog: &Catalog, reference: &str) -> Result<()> {
    let r = parse_ref(reference)?;
    let v = catalog.resolve(&r).await?;
    print_json(&catalog.sidecar(&r.asset, v).await?);
    Ok(())
}

pub async fn diff(catalog: &Catalog, from: &str, to: &str, as_json: bool) -> Result<()> {
    let d = assetfs::ops::diff(catalog, &parse_ref(from)?, &parse_ref(to)?).await?;
    if as_json {
        print_json(&d);
        return Ok(());
    }
    println!("--- {}\n+++ {}", d.from, d.to);
    for f in &d.files {
        let sizes = match (f.old_size, f.new_size) {
            (Some(a), Some(b)) if a != b => format!("  ({a} -> {b} bytes)"),
            _ => String::new(),
        };
        println!("{:<9} {}{sizes}", f.change, f.path);
    }
    for m in &d.meta {
        let delta = m.delta.map(|d| format!("  ({d:+})")).unwrap_or_default();
        println!("meta      {}: {} -> {}{delta}", m.field, m.old, m.new);
    }
    if d.files.is_empty() && d.meta.is_empty() {
        println!("(no differences)");
    }
    Ok(())
}

pub async fn lineage(
    catalog: &Catalog,
    cache_dir: &Path,
    reference: &str,
    used_by: bool,
    depth: Option<usize>,
    as_json: bool,
) -> Result<()> {
    let r = parse_ref(reference)?;
    let meta = CatalogCache::new(catalog.clone(), cache_dir);
    let tree = if used_by {
        assetfs::ops::used_by_tree(&meta, &r, depth).await?
    } else {
        assetfs::ops::inputs_tree(&meta, &r, depth).await?
    };
    if as_json {
        print_json(&tree.to_json());
    } else {
        print!("{}", tree.render());
    }
    Ok(())
}
