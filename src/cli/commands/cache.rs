//! `cache`: the node's chunk cache (stats, prefetch, prune) and per-store
//! state (list, clear).

use anyhow::{bail, Result};
use serde_json::json;

use assetfs::catalog::Catalog;
use assetfs::catalog::DiskCache;
use assetfs::store::{self, Store};

use crate::cli::args::values::parse_size;
use crate::cli::args::{CacheCmd, Cli};
use crate::cli::commands::env::{cache_dir, parse_ref};
use crate::cli::output::{human_bytes, print_json};

pub async fn cache(cli: &Cli, store: &Store, cmd: &CacheCmd) -> Result<()> {
    let dir = cache_dir(cli);
    // Not for list/clear: an open chunk cache counts as a user of the directory.
    let open_disk = || DiskCache::open(&dir, u64::MAX);
    match cmd {
        CacheCmd::List => cache_list(cli, &dir)?,
        CacheCmd::Clear {
            only,
            unused,
            older_than,
            staging,
            force,
        } => {
            use assetfs::ops::{clear_all, clear_stores, Select};
            let data_home = store::data_home();
            let out = if let Some(s) = only {
                // Its identity too, when the URL opens (a removed local store may not).
                let mut names = vec![s.clone()];
                if let Ok(st) = Store::open(s) {
                    names.push(st.id());
                }
                clear_stores(&dir, &data_home, Select::Store(&names), *staging, *force)?
            } else if *unused {
                let older_than = humantime::parse_duration(older_than).map_err(|e| {
                    anyhow::anyhow!(
                        "invalid --older-than {older_than:?} ({e}): expected e.g. 30d, 12h or 0s"
                    )
                })?;
                let sel = Select::Unused {
                    older_than,
                    current: &store.id(),
                };
                clear_stores(&dir, &data_home, sel, *staging, *force)?
            } else if *staging {
                bail!("--staging needs a STORE (URL or tag from `cache list`) or --unused: staging areas are working copies, not caches, and are removed only store by store");
            } else {
                clear_all(&dir)?
            };
            if cli.json {
                print_json(&out);
            } else {
                println!("freed {}", human_bytes(out.bytes));
                for s in &out.stores {
                    println!("store      {s}: catalog cache removed");
                }
                for s in &out.staging_removed {
                    println!("removed    staging {s}");
                }
                for s in &out.staging_kept {
                    println!("kept       staging {s}");
                }
            }
        }
        CacheCmd::Stats => {
            let disk = open_disk()?;
            let s = disk.stats()?;
            if cli.json {
                print_json(&json!({
                    "dir": dir,
                    "entries": s.entries,
                    "bytes": s.bytes,
                    "hits": s.hits,
                    "misses": s.misses,
                    "hit_rate": s.hit_rate(),
                    "corrupt_dropped": s.corrupt_dropped,
                }));
            } else {
                println!("cache      {}", dir.display());
                println!("entries    {}", s.entries);
                println!("size       {}", human_bytes(s.bytes));
                println!(
                    "hit rate   {:.1}% ({} hits, {} misses)",
                    s.hit_rate() * 100.0,
                    s.hits,
                    s.misses
                );
                println!("corrupt    {} dropped", s.corrupt_dropped);
            }
        }
        CacheCmd::Prefetch { reference } => {
            // Like a mount: a local store's chunks are checked in place, not copied.
            let disk = open_disk()?.with_local_packs(store.local_packs());
            let r = parse_ref(reference)?;
            let meta = assetfs::catalog::CatalogCache::new(Catalog::new(store.clone()), &dir);
            let out = assetfs::ops::prefetch(&meta, &disk, &r, !cli.json).await?;
            if cli.json {
                print_json(&out);
            } else {
                println!(
                    "{}: {} chunks fetched ({}), {} already cached",
                    out.reference,
                    out.chunks_fetched,
                    human_bytes(out.bytes_fetched),
                    out.chunks_already_cached
                );
            }
        }
        CacheCmd::Prune { to } => {
            let target = match to {
                Some(t) => parse_size(t).map_err(anyhow::Error::msg)?,
                None => 0,
            };
            let freed = open_disk()?.evict_to(target)?;
            if cli.json {
                print_json(&json!({"freed_bytes": freed}));
            } else {
                println!("freed {}", human_bytes(freed));
            }
        }
    }
    Ok(())
}

fn cache_list(cli: &Cli, dir: &std::path::Path) -> Result<()> {
    let stores = assetfs::ops::list(dir, &store::data_home());
    if cli.json {
        print_json(&stores);
        return Ok(());
    }
    if stores.is_empty() {
        println!("no store state on this node (cache {})", dir.display());
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for s in stores {
        let used = match s.last_used {
            Some(t) => format!(
                "used {} ago",
                humantime::format_duration(std::time::Duration::from_secs(now.saturating_sub(t)))
            ),
            None => "use time unknown".into(),
        };
        println!(
            "{}  {}  {}  catalog cache {}",
            s.tag,
            s.url.as_deref().unwrap_or("(url unknown)"),
            used,
            human_bytes(s.catalog_cache_bytes)
        );
        for a in s.staging {
            println!(
                "    staging {:<40} {:>10}  {}{}",
                a.asset,
                human_bytes(a.bytes),
                if a.uncommitted {
                    "uncommitted changes"
                } else {
                    "clean"
                },
                if a.in_use { ", open by a mount" } else { "" }
            );
        }
    }
    Ok(())
}
