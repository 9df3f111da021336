//! Hands `assetfs test` (ops) the FUSE mount of the mount layer, so stored
//! tests run from a temporary read-only mount when FUSE is available.

use std::path::Path;

use assetfs::catalog::versions::Catalog;
use assetfs::format::names::Reference;
use assetfs::ops::stored_tests::{MountedVersion, VersionMounter};

pub struct FuseMounter;

#[async_trait::async_trait]
impl VersionMounter for FuseMounter {
    async fn mount_version(
        &self,
        catalog: &Catalog,
        at: &Reference,
        tmp: &Path,
    ) -> Result<MountedVersion, Box<dyn std::error::Error + Send + Sync>> {
        let m = assetfs::mount::temporary::temporary_mount(catalog, at, tmp).await?;
        Ok(MountedVersion {
            dir: m.dir,
            guard: Box::new(m.session),
        })
    }
}
