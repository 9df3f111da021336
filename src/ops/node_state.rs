//! What this node keeps per store, and how it is listed and removed
//! (`assetfs cache list` / `cache clear`).
//!
//! Per store, identified by a tag (the first 16 hex digits of the BLAKE3 of
//! its URL):
//! - its catalog cache under `<cache dir>/stores/<tag>/` (version records,
//!   manifests, listings; re-fetched from the store when missing);
//! - its staging areas under `<data home>/assetfs/staging/<tag>/<kind>/<name>/`
//!   (working copies: NOT a cache; uncommitted changes live only there).
//!
//! Both hold a `store.json` naming the URL, whose modification time is the
//! last time this node used the store. The chunk cache (`segments/`,
//! `cache.sqlite`), the chunk index cache (`indexes/`) and the stat cache are
//! content-addressed and shared by every store.
//!
//! Users of a cache directory (mounts, and every command that opens the chunk
//! cache) hold a shared `flock` on `<cache dir>/.lock`, and an open staging
//! area holds one on its own `.lock`; clearing takes them exclusively and
//! refuses what is in use. A lock dies with its process, so a crashed mount
//! leaves nothing to clean up by hand.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::catalog::{read_url, staging_root, store_tag, take_dir, DirError};

#[derive(Debug, thiserror::Error)]
pub enum NodeStateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cache directory {0} is in use by a mount or another assetfs command; unmount (`assetfs unmount MNT`) or wait, then clear again (`cache prune` works while mounted)")]
    CacheInUse(PathBuf),
    #[error("no local state for store {0} on this node (see `assetfs cache list`)")]
    UnknownStore(String),
}

type Result<T, E = NodeStateError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeStateError + '_ {
    move |source| NodeStateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<DirError> for NodeStateError {
    fn from(e: DirError) -> Self {
        NodeStateError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// One asset's staging area.
#[derive(Debug, Clone, Serialize)]
pub struct StagingArea {
    pub asset: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Changes not committed (or not known to be none).
    pub uncommitted: bool,
    /// Open by a mount right now.
    pub in_use: bool,
}

/// What this node keeps for one store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreState {
    pub tag: String,
    /// `None` when no `store.json` says (state from before it was written).
    pub url: Option<String>,
    /// Seconds since the Unix epoch.
    pub last_used: Option<u64>,
    pub catalog_cache_bytes: u64,
    pub staging: Vec<StagingArea>,
}

fn dir_bytes(d: &Path) -> u64 {
    walkdir::WalkDir::new(d)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn subdirs(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Every store this node holds state for.
pub fn list(cache_dir: &Path, data_home: &Path) -> Vec<StoreState> {
    let mut out: std::collections::BTreeMap<String, StoreState> = Default::default();
    let blank = |tag: &str| StoreState {
        tag: tag.to_string(),
        url: None,
        last_used: None,
        catalog_cache_bytes: 0,
        staging: vec![],
    };
    let seen = |s: &mut StoreState, dir: &Path| {
        if let Some((url, t)) = read_url(dir) {
            s.url.get_or_insert(url);
            let t = t
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            s.last_used = Some(s.last_used.map_or(t, |u| u.max(t)));
        }
    };
    for d in subdirs(&cache_dir.join("stores")) {
        let tag = d
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let s = out.entry(tag.clone()).or_insert_with(|| blank(&tag));
        seen(s, &d);
        s.catalog_cache_bytes = dir_bytes(&d);
    }
    for root in subdirs(&data_home.join("assetfs").join("staging")) {
        let tag = root
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let s = out.entry(tag.clone()).or_insert_with(|| blank(&tag));
        seen(s, &root);
        for kind in subdirs(&root) {
            for area in subdirs(&kind) {
                let asset = format!(
                    "{}/{}",
                    kind.file_name().unwrap_or_default().to_string_lossy(),
                    area.file_name().unwrap_or_default().to_string_lossy()
                );
                let in_use = matches!(take_dir(&area), Ok(None));
                s.staging.push(StagingArea {
                    asset,
                    bytes: dir_bytes(&area),
                    uncommitted: crate::catalog::has_uncommitted(&area),
                    in_use,
                    path: area,
                });
            }
        }
    }
    out.into_values().collect()
}

/// What a clear removed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Cleared {
    pub bytes: u64,
    pub stores: Vec<String>,
    pub staging_removed: Vec<String>,
    /// Staging areas kept, with why.
    pub staging_kept: Vec<String>,
}

/// Empties the node's caches for every store: chunks, chunk indexes,
/// catalog caches, the stat cache. Refused while the cache is in use.
/// Staging areas are not touched (they are not caches).
pub fn clear_all(cache_dir: &Path) -> Result<Cleared> {
    let Some(_lock) = take_dir(cache_dir)? else {
        return Err(NodeStateError::CacheInUse(cache_dir.to_path_buf()));
    };
    let mut c = Cleared::default();
    for name in [
        "segments",
        "chunks",
        "indexes",
        "meta",
        "stores",
        "cache.sqlite",
        "cache.sqlite-wal",
        "cache.sqlite-shm",
        crate::catalog::FILE_NAME,
        &format!("{}-wal", crate::catalog::FILE_NAME),
        &format!("{}-shm", crate::catalog::FILE_NAME),
    ] {
        let p = cache_dir.join(name);
        match std::fs::symlink_metadata(&p) {
            Err(_) => continue,
            Ok(md) if md.is_dir() => {
                c.bytes += dir_bytes(&p);
                std::fs::remove_dir_all(&p).map_err(io(&p))?;
            }
            Ok(md) => {
                c.bytes += md.len();
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
    }
    Ok(c)
}

/// Which stores a selective clear applies to.
pub enum Select<'a> {
    /// One store, by any of these names (its URL as spelled, its identity,
    /// its tag).
    Store(&'a [String]),
    /// Stores not used for at least this long, never `current`.
    Unused {
        older_than: Duration,
        current: &'a str,
    },
}

/// Removes the catalog cache of the selected stores and, with `staging`,
/// their staging areas that hold no uncommitted changes (with `force`, those
/// too). Staging areas open by a mount are always kept.
pub fn clear_stores(
    cache_dir: &Path,
    data_home: &Path,
    sel: Select<'_>,
    staging: bool,
    force: bool,
) -> Result<Cleared> {
    let all = list(cache_dir, data_home);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let chosen: Vec<&StoreState> = match &sel {
        Select::Store(names) => {
            let hit: Vec<&StoreState> = all
                .iter()
                .filter(|st| {
                    names.iter().any(|s| {
                        st.tag == *s || st.url.as_deref() == Some(s) || st.tag == store_tag(s)
                    })
                })
                .collect();
            if hit.is_empty() {
                return Err(NodeStateError::UnknownStore(
                    names.first().cloned().unwrap_or_default(),
                ));
            }
            hit
        }
        Select::Unused {
            older_than,
            current,
        } => all
            .iter()
            .filter(|st| st.tag != store_tag(current))
            .filter(|st| match st.last_used {
                Some(t) => now.saturating_sub(t) >= older_than.as_secs(),
                None => true,
            })
            .collect(),
    };
    let mut c = Cleared::default();
    for st in chosen {
        c.stores
            .push(st.url.clone().unwrap_or_else(|| st.tag.clone()));
        let d = cache_dir.join("stores").join(&st.tag);
        if d.exists() {
            // Catalog caches are re-fetched on demand; a reader that loses
            // one mid-way fetches it again.
            c.bytes += dir_bytes(&d);
            std::fs::remove_dir_all(&d).map_err(io(&d))?;
        }
        if !staging {
            continue;
        }
        for a in &st.staging {
            let label = format!("{} {}", c.stores.last().expect("pushed"), a.asset);
            if a.uncommitted && !force {
                c.staging_kept.push(format!(
                    "{label}: uncommitted changes (--force removes them)"
                ));
                continue;
            }
            let Some(lock) = take_dir(&a.path)? else {
                c.staging_kept.push(format!("{label}: open by a mount"));
                continue;
            };
            c.bytes += a.bytes;
            std::fs::remove_dir_all(&a.path).map_err(io(&a.path))?;
            drop(lock);
            c.staging_removed.push(label);
        }
        // Drop the store's staging root once no area is left in it.
        let root = staging_root(data_home, st.url.as_deref().unwrap_or(""));
        let root = if st.url.is_some() {
            root
        } else {
            data_home.join("assetfs").join("staging").join(&st.tag)
        };
        if subdirs(&root).iter().all(|k| subdirs(k).is_empty()) {
            let _ = std::fs::remove_dir_all(&root);
        }
    }
    Ok(c)
}
