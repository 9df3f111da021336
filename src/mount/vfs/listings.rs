//! Which versions and aliases each kind's assets have: a listing per kind,
//! refreshed after the refresh interval, the previous one served while the
//! store cannot be reached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::catalog::CatalogError;
use crate::catalog::{CatalogCache, Listing};
use crate::format::{AssetId, Kind, Reference, Selector};
use crate::mount::vfs::error::{Result, VfsError};

struct CachedListing {
    at: Instant,
    listing: Arc<Listing>,
}

pub struct Listings {
    meta: Arc<CatalogCache>,
    refresh: Duration,
    cache: Mutex<HashMap<Kind, CachedListing>>,
}

impl Listings {
    pub fn new(meta: Arc<CatalogCache>, refresh: Duration) -> Listings {
        Listings {
            meta,
            refresh,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn put(&self, kind: Kind, listing: Arc<Listing>) {
        self.cache.lock().expect("listings lock").insert(
            kind,
            CachedListing {
                at: Instant::now(),
                listing,
            },
        );
    }

    /// Seeds the cache (at mount time, and with a saved listing when the
    /// store is unreachable).
    pub fn seed(&self, kind: Kind, listing: Listing) {
        self.put(kind, Arc::new(listing));
    }

    /// The listing of a kind, refreshed when older than the refresh interval
    /// (or `force`). A failed refresh keeps serving the previous listing.
    pub async fn get(&self, kind: Kind, force: bool) -> Result<Arc<Listing>> {
        let cached = {
            let l = self.cache.lock().expect("listings lock");
            l.get(&kind).map(|c| (c.at, c.listing.clone()))
        };
        if let Some((at, listing)) = &cached {
            if !force && at.elapsed() < self.refresh {
                return Ok(listing.clone());
            }
        }
        match self.meta.fetch_listing(kind).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.put(kind, fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cached {
                Some((_, listing)) => {
                    tracing::warn!("cannot refresh {kind} listing, serving the previous one: {e}");
                    // Do not retry on every call while the store is down.
                    self.put(kind, listing.clone());
                    Ok(listing)
                }
                None => Err(e.into()),
            },
        }
    }

    /// `<name>@<target version>` for an alias (or `latest`).
    pub async fn alias_target(&self, asset: &AssetId, alias: &str) -> Result<String> {
        let listing = self.get(asset.kind, false).await?;
        let state = listing.asset(&asset.name).ok_or(VfsError::NotFound)?;
        let v = if alias == "latest" {
            state.versions.last().copied()
        } else {
            state.aliases.get(alias).copied()
        };
        v.map(|v| format!("{}@{v}", asset.name))
            .ok_or(VfsError::NotFound)
    }

    /// Does this version exist? Checks the listing, then the store directly,
    /// so a version committed since the last refresh resolves at once.
    pub async fn version_exists(&self, asset: &AssetId, v: u64) -> Result<bool> {
        let listing = self.get(asset.kind, false).await?;
        if listing
            .asset(&asset.name)
            .is_some_and(|s| s.versions.contains(&v))
        {
            return Ok(true);
        }
        // Not in the listing: committed since, deleted, or never there.
        match self.meta.catalog().ensure_live(asset, v).await {
            Ok(()) => Ok(true),
            Err(CatalogError::NoSuchVersion { .. } | CatalogError::Deleted { .. }) => Ok(false),
            // Store unreachable: a version this node has seen is still served.
            Err(e) => match self.meta.record(asset, v).await {
                Ok(_) => Ok(true),
                Err(_) => Err(e.into()),
            },
        }
    }

    /// The version an `--only` mount of `r` shows now: a fixed version, or
    /// the one its alias (or `latest`) points at in the current listing.
    pub async fn resolve(&self, r: &Reference) -> Result<u64> {
        match &r.selector {
            Selector::Version(v) => {
                if !self.version_exists(&r.asset, *v).await? {
                    return Err(VfsError::NotFound);
                }
                Ok(*v)
            }
            sel => {
                let listing = self.get(r.asset.kind, false).await?;
                let state = listing
                    .asset(&r.asset.name)
                    .ok_or_else(|| CatalogError::NoVersions(r.asset.clone()))?;
                let v = match sel {
                    Selector::Alias(a) => state.aliases.get(a).copied(),
                    _ => state.versions.last().copied(),
                };
                Ok(v.ok_or_else(|| match sel {
                    Selector::Alias(a) => CatalogError::NoSuchAlias {
                        asset: r.asset.clone(),
                        alias: a.clone(),
                    },
                    _ => CatalogError::NoVersions(r.asset.clone()),
                })?)
            }
        }
    }
}
