//! Hands `assetfs test` (ops) the FUSE mount of the mount layer, so stored
//! tests run from a temporary read-only mount when FUSE is available.

use std::path::Path;

use assetfs::catalog::Catalog;
use assetfs::format::Reference;
use assetfs::ops::{MountedVersion, VersionMounter};

pub struct FuseMounter;

#[async_trait::async_trait]
impl VersionMounter for FuseMounter {
    async fn mount_version(
        &self,
        catalog: &Catalog,
        at: &Reference,
        tmp: &Path,
    ) -> Result<MountedVersion, Box<dyn std::error::Error + Send + Sync>> {
        let m = assetfs::mount::temporary_mount(catalog, at, tmp).await?;
        Ok(MountedVersion {
            dir: m.dir,
            guard: Box::new(m.session),
        })
    }
}
