//! push, commit, status, reset: writing versions and the staging area.

use anyhow::{bail, Result};
use serde_json::json;

use assetfs::catalog::Catalog;
use assetfs::catalog::Staging;
use assetfs::format::Reference;
use assetfs::ops::CommitError;
use assetfs::ops::MetaInput;
use assetfs::ops::{PushOptions, PushOutcome};
use assetfs::store::{self, Store};

use crate::cli::args::{Cli, CommitArgs};
use crate::cli::commands::env::{cache_dir, confirm, parse_ref};
use crate::cli::output::{human_bytes, print_json};

pub async fn push(
    cli: &Cli,
    catalog: &Catalog,
    reference: &str,
    dir: &std::path::Path,
    commit: &CommitArgs,
) -> Result<()> {
    let target = parse_ref(reference)?;
    let opts = push_options(cli, commit)?;
    let out = assetfs::ops::push(catalog, &target, dir, opts).await?;
    print_outcome(&out, cli.json);
    Ok(())
}

pub async fn commit(
    cli: &Cli,
    catalog: &Catalog,
    reference: &str,
    wait: bool,
    commit: &CommitArgs,
) -> Result<()> {
    let r = parse_ref(reference)?;
    let staging = open_staging(catalog.store(), &r, true)?;
    let opts = push_options(cli, commit)?;
    let out = assetfs::ops::commit(catalog, &staging, &r, opts, wait).await?;
    print_outcome(&out, cli.json);
    Ok(())
}

pub async fn status(catalog: &Catalog, reference: &str, as_json: bool) -> Result<()> {
    let r = parse_ref(reference)?;
    let staging = open_staging(catalog.store(), &r, true)?;
    let (base, changes) = assetfs::ops::status(catalog, &staging, &r.asset).await?;
    if as_json {
        print_json(&json!({"asset": r.asset.to_string(), "base": base, "changes": changes}));
    } else {
        match base {
            Some(v) => println!("{}@staging, based on {}", r.asset, r.asset.at(v)),
            None => println!("{}@staging, a new asset", r.asset),
        }
        for c in &changes {
            println!("{:<9} {}", c.change, c.path);
        }
        if changes.is_empty() {
            println!("(no changes)");
        }
    }
    Ok(())
}

pub fn reset(store: &Store, reference: &str, yes: bool, as_json: bool) -> Result<()> {
    let r = parse_ref(reference)?;
    let home = store::data_home();
    // Nothing staged: nothing to discard, which is what was asked.
    let staging = match assetfs::ops::open_staging(&home, store, &r.asset, false) {
        Err(CommitError::NoStaging { .. }) => {
            if !as_json {
                println!(
                    "{}@staging: nothing staged on this node; nothing to reset",
                    r.asset
                );
            }
            return Ok(());
        }
        s => s?,
    };
    if !yes && !confirm(&format!("discard every change in {}@staging?", r.asset))? {
        bail!("not confirmed; nothing was discarded (use --yes to skip the question)");
    }
    staging.reset()?;
    if !as_json {
        println!("{}@staging reset", r.asset);
    }
    Ok(())
}

fn push_options(cli: &Cli, commit: &CommitArgs) -> Result<PushOptions> {
    Ok(PushOptions {
        meta: meta_input(commit)?,
        inputs: commit
            .inputs
            .iter()
            .map(|s| parse_ref(s))
            .collect::<Result<_>>()?,
        aliases: commit.aliases.clone(),
        progress: !cli.json,
        cache_dir: Some(cache_dir(cli)),
        base: None,
    })
}

fn meta_input(c: &CommitArgs) -> Result<MetaInput> {
    let mut m = MetaInput {
        message: c.message.clone(),
        author: c.author.clone(),
        ..Default::default()
    };
    if let Some(f) = &c.meta_file {
        m.add_file(f)?;
    }
    for kv in &c.meta {
        m.add_kv(kv)?;
    }
    assetfs::ops::ContextOptions::from(c.context.clone()).apply(&mut m)?;
    Ok(m)
}

fn print_outcome(out: &PushOutcome, as_json: bool) {
    if as_json {
        print_json(&json!({
            "ref": out.reference.to_string(),
            "version": out.version,
            "manifest": out.manifest,
            "files": out.files,
            "total_bytes": out.total_bytes,
            "new_bytes": out.stats.bytes_new,
            "new_chunks": out.stats.chunks_new,
            "reused_chunks": out.stats.chunks_reused,
            "packs": out.stats.packs,
            "claim_retries": out.claim_retries,
            "files_read": out.files_read,
            "files_unchanged": out.files_unchanged,
            "rescued_chunks": out.rescued_chunks,
            "gc_rechecks": out.gc_rechecks,
        }));
    } else {
        println!("{}", out.reference);
        eprintln!(
            "{} files, {} ({} new in {} packs)",
            out.files,
            human_bytes(out.total_bytes),
            human_bytes(out.stats.bytes_new),
            out.stats.packs
        );
    }
}

/// The staging area of `r`'s asset; when there is none, where one might be
/// (a mount of this node) is part of the error.
fn open_staging(store: &Store, r: &Reference, need_base: bool) -> Result<Staging> {
    let home = store::data_home();
    match assetfs::ops::open_staging(&home, store, &r.asset, need_base) {
        Ok(s) => Ok(s),
        Err(e @ CommitError::NoStaging { .. }) => {
            let hints = assetfs::mount::staging_hints(&home, store, &r.asset);
            bail!("{e}; {}", hints.join("; "))
        }
        Err(e) => Err(e.into()),
    }
}
