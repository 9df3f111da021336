//! The sidecar files `<name>@<v>.json`: built with
//! [`crate::catalog::sidecar`], aliases from the mount's listing, kept for
//! one refresh interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::catalog::CatalogCache;
use crate::catalog::{aliases_at, sidecar, sidecar_bytes};
use crate::format::AssetId;
use crate::mount::vfs::error::Result;
use crate::mount::vfs::listings::Listings;

pub struct Sidecars {
    meta: Arc<CatalogCache>,
    refresh: Duration,
    cache: Mutex<HashMap<(AssetId, u64), (Instant, Bytes)>>,
}

impl Sidecars {
    pub fn new(meta: Arc<CatalogCache>, refresh: Duration) -> Sidecars {
        Sidecars {
            meta,
            refresh,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The sidecar's bytes, built again after the refresh interval.
    pub async fn get(&self, listings: &Listings, asset: &AssetId, v: u64) -> Result<Bytes> {
        let key = (asset.clone(), v);
        if let Some((at, b)) = self.cache.lock().expect("sidecars lock").get(&key) {
            if at.elapsed() < self.refresh {
                return Ok(b.clone());
            }
        }
        let rec = self.meta.record(asset, v).await?;
        let mut listing = listings.get(asset.kind, false).await?;
        // A version newer than the listing (found by direct lookup): refresh,
        // so its sidecar's aliases (`latest`) are right from the first read.
        if !listing
            .asset(&asset.name)
            .is_some_and(|s| s.versions.contains(&v))
        {
            listing = listings.get(asset.kind, true).await?;
        }
        let state = listing.asset(&asset.name).cloned().unwrap_or_default();
        let latest = state.versions.last() == Some(&v);
        let b = sidecar_bytes(&sidecar(asset, &rec, aliases_at(&state.aliases, v), latest));
        self.cache
            .lock()
            .expect("sidecars lock")
            .insert(key, (Instant::now(), b.clone()));
        Ok(b)
    }

    /// The size of a sidecar built less than a refresh interval ago.
    pub fn fresh_len(&self, asset: &AssetId, v: u64) -> Option<u64> {
        self.cache
            .lock()
            .expect("sidecars lock")
            .get(&(asset.clone(), v))
            .filter(|(at, _)| at.elapsed() < self.refresh)
            .map(|(_, b)| b.len() as u64)
    }
}
