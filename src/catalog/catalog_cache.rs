//! The node's copy of catalog metadata, so a mount can serve what it has
//! seen while the store is unreachable.
//!
//! Version records and manifests are immutable and cached forever (a
//! manifest is re-checked against its hash when read back). Listings of
//! assets, versions and aliases change; they are refreshed from the store
//! and the last good one is kept on disk as a fallback.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::versions::{Catalog, CatalogError, VersionRecord};
use crate::format::to_hex;
use crate::format::Manifest;
use crate::format::{AssetId, AssetName, Kind};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AssetState {
    pub versions: Vec<u64>,
    pub aliases: BTreeMap<String, u64>,
}

/// Every asset of one kind with its versions and aliases.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Listing {
    pub assets: BTreeMap<String, AssetState>,
}

pub struct CatalogCache {
    catalog: Catalog,
    dir: PathBuf,
}

impl CatalogCache {
    pub fn new(catalog: Catalog, cache_dir: &std::path::Path) -> CatalogCache {
        // Per store: two stores may hold the same asset names and versions.
        let dir = crate::catalog::node_dirs::store_cache_dir(cache_dir, &catalog.store().id());
        CatalogCache { catalog, dir }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn record_path(&self, asset: &AssetId, v: u64) -> PathBuf {
        self.dir
            .join("records")
            .join(asset.kind.as_str())
            .join(asset.name.as_str())
            .join(format!("{v}.json"))
    }

    fn save(&self, path: &std::path::Path, data: &[u8]) {
        if let Some(p) = path.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        // Atomic but not fsynced: it sits on the path of a lookup, and every
        // saved file is checked when read back (hash, parse, version).
        if let Err(e) = crate::store::write_replace(path, data, false) {
            tracing::warn!("cannot cache {}: {e}", path.display());
        }
    }

    pub async fn record(&self, asset: &AssetId, v: u64) -> Result<VersionRecord, CatalogError> {
        let path = self.record_path(asset, v);
        if let Ok(bytes) = std::fs::read(&path) {
            if let Ok(rec) = serde_json::from_slice::<VersionRecord>(&bytes) {
                if rec.version == v {
                    return Ok(rec);
                }
            }
        }
        let rec = self.catalog.record(asset, v).await?;
        self.save(&path, &serde_json::to_vec(&rec).expect("record serialises"));
        Ok(rec)
    }

    pub async fn manifest(&self, hash: &str) -> Result<Arc<Manifest>, CatalogError> {
        let path = self.dir.join("manifests").join(hash);
        // On the blocking pool: hashing and decoding a large manifest takes
        // a while, and the mount polls this first on a FUSE session thread,
        // which must not stall meanwhile.
        let (p, h) = (path.clone(), hash.to_string());
        if let Ok(Some(m)) = tokio::task::spawn_blocking(move || read_saved_manifest(&p, &h)).await
        {
            return Ok(Arc::new(m));
        }
        // Saved as fetched (hash-checked, then decoded to validate it), not
        // re-encoded: re-encoding a large manifest costs memory and time.
        let bytes = self.catalog.manifest_bytes(hash).await?;
        let m = crate::catalog::versions::decode_manifest(hash, &bytes)?;
        self.save(&path, &bytes);
        Ok(Arc::new(m))
    }

    fn listing_path(&self, kind: Kind) -> PathBuf {
        self.dir.join("listings").join(format!("{kind}.json"))
    }

    /// The last listing saved on this node, if any.
    pub fn saved_listing(&self, kind: Kind) -> Option<Listing> {
        let bytes = std::fs::read(self.listing_path(kind)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A fresh listing from the store, saved locally for offline use.
    pub async fn fetch_listing(&self, kind: Kind) -> Result<Listing, CatalogError> {
        let mut listing = Listing::default();
        for name in self.catalog.assets(kind).await? {
            let asset = AssetId { kind, name };
            let keys = self.catalog.asset_keys(&asset).await?;
            // An alias left pointing at a deleted version (`rm --force`) is not shown.
            let mut aliases = self.catalog.aliases_of(&keys).await?;
            aliases.retain(|_, v| keys.is_live(*v));
            let state = AssetState {
                versions: keys.live(),
                aliases,
            };
            if state.versions.is_empty() && state.aliases.is_empty() && !keys.claimed.is_empty() {
                // Every version deleted: the asset is gone from the mount.
                continue;
            }
            listing
                .assets
                .insert(asset.name.as_str().to_string(), state);
        }
        self.save(
            &self.listing_path(kind),
            &serde_json::to_vec(&listing).expect("listing serialises"),
        );
        Ok(listing)
    }
}

/// Staging started by a mount: the latest version from the store, its
/// record and manifest through this node's cache.
impl crate::catalog::staging::VersionLookup for CatalogCache {
    async fn latest(&self, asset: &AssetId) -> Result<Option<u64>, CatalogError> {
        self.catalog.latest(asset).await
    }
    async fn record(&self, asset: &AssetId, v: u64) -> Result<VersionRecord, CatalogError> {
        CatalogCache::record(self, asset, v).await
    }
    async fn manifest(&self, hash: &str) -> Result<Arc<Manifest>, CatalogError> {
        CatalogCache::manifest(self, hash).await
    }
}

/// A manifest saved on this node, if it is there and still matches its hash;
/// a damaged one is removed.
fn read_saved_manifest(path: &std::path::Path, hash: &str) -> Option<Manifest> {
    let bytes = std::fs::read(path).ok()?;
    if to_hex(blake3::hash(&bytes).as_bytes()) == hash {
        if let Ok(m) = Manifest::decode(&bytes) {
            return Some(m);
        }
    }
    tracing::warn!("dropping corrupt cached manifest {hash}");
    let _ = std::fs::remove_file(path);
    None
}

impl Listing {
    pub fn asset(&self, name: &AssetName) -> Option<&AssetState> {
        self.assets.get(name.as_str())
    }

    pub fn version_count(&self) -> usize {
        self.assets.values().map(|a| a.versions.len()).sum()
    }
}
