//! The temporary read-only mount `assetfs test` runs a version's stored
//! tests in: the whole catalog, mounted by its owner only, with its own
//! chunk cache, under a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::catalog::Catalog;
use crate::format::Reference;
use crate::mount::fuse_session::{mount, MountSpec};
use crate::mount::lifecycle::{prepare, MountError};
use crate::mount::mount_config::MountConfig;
use crate::mount::vfs::ownership::Ownership;
use crate::mount::vfs::DEFAULT_MANIFEST_CACHE;

/// Why no temporary mount could be made (the caller falls back to a copy).
#[derive(Debug, thiserror::Error)]
pub enum TemporaryMountError {
    #[error("no /dev/fuse")]
    NoFuse,
    #[error(transparent)]
    Dir(std::io::Error),
    #[error(transparent)]
    Prepare(#[from] MountError),
    #[error(transparent)]
    Mount(std::io::Error),
}

/// A mount made by [`temporary_mount`]; unmounted when dropped.
pub struct TemporaryMount {
    /// The version's directory in the mount.
    pub dir: PathBuf,
    pub session: fuser::BackgroundSession,
}

/// Mounts the catalog read-only under `tmp/mnt` (with its own cache under
/// `tmp/cache`) and returns version `at`'s directory in it.
pub async fn temporary_mount(
    catalog: &Catalog,
    at: &Reference,
    tmp: &Path,
) -> Result<TemporaryMount, TemporaryMountError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(TemporaryMountError::NoFuse);
    }
    let mnt = tmp.join("mnt");
    std::fs::create_dir_all(&mnt).map_err(TemporaryMountError::Dir)?;
    let cfg = MountConfig {
        mountpoint: mnt.clone(),
        cache_dir: tmp.join("cache"),
        cache_size: u64::MAX,
        read_only: true,
        allow_other: false,
        allow_root: false,
        owner: Ownership::current(),
        only: None,
        refresh: Duration::from_secs(3600),
        timeout: Duration::from_secs(60),
        manifest_cache: DEFAULT_MANIFEST_CACHE,
    };
    let (vfs, _) = prepare(catalog.store().clone(), &cfg).await?;
    let session = mount(
        vfs,
        tokio::runtime::Handle::current(),
        &mnt,
        &MountSpec::temporary(),
    )
    .map_err(TemporaryMountError::Mount)?;
    let dir = mnt
        .join(at.asset.kind.as_str())
        .join(format!("{}@{}", at.asset.name, at.selector));
    Ok(TemporaryMount { dir, session })
}
