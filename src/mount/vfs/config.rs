//! What a mount is asked to show, and how.

use std::time::Duration;

use crate::mount::vfs::ownership::Ownership;

/// Default bound of the manifest cache: a 1,000,000-file version's manifest
/// (about 100 MiB in memory) fits.
pub const DEFAULT_MANIFEST_CACHE: u64 = 160 << 20;

#[derive(Debug, Clone)]
pub struct VfsConfig {
    /// How often listings of versions and aliases are refreshed.
    pub refresh: Duration,
    /// Where staging areas live (the data dir); `None` disables `@staging`.
    pub staging_home: Option<std::path::PathBuf>,
    /// Owner and permission bits of everything shown (`--uid` etc.).
    pub owner: Ownership,
    /// `--only`: show this version (or the version this alias or `latest`
    /// points at, followed at each refresh) at the root instead of the catalog.
    pub only: Option<crate::format::Reference>,
    /// Bound on the memory of decoded manifests kept for reuse (bytes).
    pub manifest_cache: u64,
}
