//! What a mount is made with: the settings `assetfs mount` (and the
//! temporary mount of `assetfs test`) choose.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MountConfig {
    pub mountpoint: PathBuf,
    pub cache_dir: PathBuf,
    pub cache_size: u64,
    pub read_only: bool,
    pub allow_other: bool,
    /// Root may use the mount besides the mounting user.
    pub allow_root: bool,
    /// Owner and permission bits of everything shown.
    pub owner: crate::mount::vfs::ownership::Ownership,
    /// `--only`: the version, alias or asset shown at the root.
    pub only: Option<crate::format::Reference>,
    pub refresh: Duration,
    pub timeout: Duration,
    /// Bound on decoded manifests kept in memory (bytes).
    pub manifest_cache: u64,
}
