//! The root of an `--only` mount: one version's tree (the version an alias
//! or `latest` points at, followed at each refresh, or a fixed one), plus
//! its sidecar under a name no file of the version has.

use std::sync::Arc;
use std::time::Duration;

use crate::format::{AssetId, Reference, Selector};
use crate::mount::vfs::attr::Attr;
use crate::mount::vfs::error::Result;
use crate::mount::vfs::listings::Listings;
use crate::mount::vfs::versions::{VersionSlot, Versions};

pub struct OnlyRoot {
    r: Reference,
    refresh: Duration,
}

/// What a name at the root is.
pub enum Found {
    /// The version's sidecar.
    Sidecar(Arc<VersionSlot>),
    /// An entry of the version.
    Entry(Attr),
}

impl OnlyRoot {
    pub fn new(r: Reference, refresh: Duration) -> OnlyRoot {
        OnlyRoot { r, refresh }
    }

    /// The version shown now.
    pub async fn version(&self, listings: &Listings) -> Result<(AssetId, u64)> {
        let v = listings.resolve(&self.r).await?;
        Ok((self.r.asset.clone(), v))
    }

    pub async fn slot(&self, listings: &Listings, versions: &Versions) -> Result<Arc<VersionSlot>> {
        let (asset, v) = self.version(listings).await?;
        Ok(versions.slot_for(&asset, v))
    }

    /// Whether the root can move to another version (at a refresh).
    fn moves(&self) -> bool {
        !matches!(self.r.selector, Selector::Version(_))
    }

    /// The kernel must look root entries up again when the root can move;
    /// deeper ones are immutable.
    fn root_ttl(&self, a: &mut Attr) {
        if self.moves() {
            a.ttl = a.ttl.min(self.refresh);
        }
    }

    /// `.assetfs.json`, or `.assetfs.N.json` with the smallest N that is not
    /// a file of the version itself.
    async fn sidecar_name(&self, versions: &Versions, vs: &VersionSlot) -> Result<String> {
        let m = versions.manifest(vs).await?;
        let taken = |n: &str| m.find(n).is_some();
        let mut name = ".assetfs.json".to_string();
        let mut i = 0;
        while taken(&name) {
            i += 1;
            name = format!(".assetfs.{i}.json");
        }
        Ok(name)
    }

    pub async fn lookup(
        &self,
        listings: &Listings,
        versions: &Versions,
        name: &str,
    ) -> Result<Found> {
        let vs = self.slot(listings, versions).await?;
        if name == self.sidecar_name(versions, &vs).await? {
            return Ok(Found::Sidecar(vs));
        }
        let mut a = versions.lookup(&vs, None, name).await?;
        self.root_ttl(&mut a);
        Ok(Found::Entry(a))
    }

    /// The version's top-level entries from `offset`, handed to `add` until
    /// it returns true. When the sidecar comes next (the reply is not full),
    /// returns its version and name: the caller adds it last.
    pub async fn children(
        &self,
        listings: &Listings,
        versions: &Versions,
        offset: usize,
        mut add: impl FnMut(&str, &Attr) -> bool,
    ) -> Result<Option<(Arc<VersionSlot>, String)>> {
        let vs = self.slot(listings, versions).await?;
        let mut seen = 0;
        let mut full = false;
        versions
            .children(&vs, None, offset, |name, a| {
                seen += 1;
                let mut a = a.clone();
                self.root_ttl(&mut a);
                full = add(name, &a);
                full
            })
            .await?;
        if full {
            return Ok(None);
        }
        let total = versions.root_len(&vs).await?;
        if offset + seen > total {
            return Ok(None);
        }
        let name = self.sidecar_name(versions, &vs).await?;
        Ok(Some((vs, name)))
    }
}
