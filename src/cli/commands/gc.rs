//! `gc`: retention, then reclaiming what no live version uses.

use std::path::Path;

use anyhow::{bail, Result};

use assetfs::catalog::Catalog;
use assetfs::ops::{GcOptions, GcReport};

use crate::cli::args::values::parse_duration;
use crate::cli::args::GcArgs;
use crate::cli::output::{human_bytes, print_json};

pub async fn gc(catalog: &Catalog, cache_dir: &Path, a: &GcArgs, as_json: bool) -> Result<()> {
    if !(0.0..=1.0).contains(&a.rewrite_below) {
        bail!(
            "--rewrite-below must be a fraction between 0 and 1 (got {})",
            a.rewrite_below
        );
    }
    let opts = GcOptions {
        rewrite_below: a.rewrite_below,
        grace: parse_duration("--grace", &a.grace)?,
        keep_last: a.keep_last,
        keep_within: a
            .keep_within
            .as_deref()
            .map(|d| parse_duration("--keep-within", d))
            .transpose()?,
        dry_run: a.dry_run,
        by: a
            .author
            .clone()
            .unwrap_or_else(assetfs::ops::default_author),
        cache_dir: cache_dir.to_path_buf(),
        progress: !as_json,
    };
    let rep = assetfs::ops::run(catalog, &opts).await?;
    if as_json {
        print_json(&rep);
    } else {
        print!("{}", gc_text(&rep));
    }
    Ok(())
}

/// What `gc` did, for people.
fn gc_text(r: &GcReport) -> String {
    let would = if r.dry_run { "would " } else { "" };
    let mut out = String::new();
    if !r.deleted_versions.is_empty() {
        out.push_str(&format!(
            "gc: {would}delete {} version(s) by retention: {}\n",
            r.deleted_versions.len(),
            r.deleted_versions.join(", ")
        ));
    }
    for s in r.swept.iter().filter(|s| s.packs + s.manifests > 0) {
        out.push_str(&format!(
            "gc: {}{} in {} pack(s) and {} manifest(s) (run {}){}\n",
            if r.dry_run { "would free " } else { "freed " },
            human_bytes(s.bytes),
            s.packs,
            s.manifests,
            s.seq,
            if s.kept_packs > 0 {
                format!(
                    "; {} condemned pack(s) kept: versions committed since use them",
                    s.kept_packs
                )
            } else {
                String::new()
            }
        ));
    }
    for p in &r.pending {
        if p.waiting_for.is_empty() {
            out.push_str(&format!(
                "gc: run {} ({} pack(s), {}) is deleted by a gc after {}\n",
                p.seq,
                p.packs,
                human_bytes(p.bytes),
                p.sweep_after
            ));
        } else {
            out.push_str(&format!(
                "gc: run {} ({} pack(s), {}) waits for {} running writer(s) (sessions {})\n",
                p.seq,
                p.packs,
                human_bytes(p.bytes),
                p.waiting_for.len(),
                p.waiting_for.join(", ")
            ));
        }
    }
    if let Some(m) = &r.marked {
        let swept_now = r.swept.iter().any(|s| s.seq == m.seq && m.seq != 0);
        if !swept_now && (m.packs > 0 || r.marked_manifests > 0) {
            out.push_str(&format!(
                "gc: {}{} pack(s) ({}) and {} manifest(s) no live version uses; a gc after {} deletes them\n",
                if r.dry_run { "would mark " } else { "marked " },
                m.packs,
                human_bytes(m.bytes),
                r.marked_manifests,
                m.sweep_after
            ));
        }
    }
    if r.rewritten.packs > 0 {
        out.push_str(&format!(
            "gc: {} {} pack(s) mostly unused: {} of live chunks {} into {} new pack(s); the old ones are marked\n",
            if r.dry_run { "would rewrite" } else { "rewrote" },
            r.rewritten.packs,
            human_bytes(r.rewritten.bytes_copied),
            if r.dry_run { "would be copied" } else { "copied" },
            r.rewritten.new_packs
        ));
    }
    if let Some(i) = &r.index {
        out.push_str(&format!(
            "gc: chunk index: {} chunks in {} shard(s) (generation {}), {} delta(s) absorbed\n",
            i.chunks, i.shards, i.gen, i.deltas_absorbed
        ));
    }
    let st = &r.store;
    out.push_str(&format!(
        "gc: store: {} live version(s); {} in {} pack(s), {} used by live versions, {} not ({} in packs no live version uses{})\n",
        st.live_versions,
        human_bytes(st.pack_bytes),
        st.packs,
        human_bytes(st.live_bytes),
        human_bytes(st.dead_bytes),
        human_bytes(st.dead_in_unused_packs),
        if st.young_unused_packs > 0 {
            format!(", of which {} in {} pack(s) younger than the grace period or still being written", human_bytes(st.young_unused_bytes), st.young_unused_packs)
        } else {
            String::new()
        }
    ));
    if r.swept.is_empty()
        && r.marked.as_ref().is_none_or(|m| m.packs == 0)
        && r.deleted_versions.is_empty()
    {
        out.push_str(if r.dry_run {
            "gc: nothing would be deleted\n"
        } else {
            "gc: nothing to delete\n"
        });
    }
    out
}
