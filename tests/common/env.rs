//! Keeping the caller's own assetfs setup out of the commands a test runs.

use std::process::Command;

/// Inherited variables that would let the caller's own setup leak in: every
/// variable the binary reads, and the logging ones. A test that wants one sets
/// it on its command after [`scrub`].
pub const SCRUB: &[&str] = &[
    "ASSETFS_STORE",
    "ASSETFS_CACHE_DIR",
    "ASSETFS_LOG",
    "ASSETFS_DAEMON",
    "ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK",
    "RUST_LOG",
    // Mount flags and store options from the environment (issue 10).
    "ASSETFS_ENDPOINT_URL",
    "ASSETFS_REGION",
    "ASSETFS_CACHE_SIZE",
    "ASSETFS_READ_ONLY",
    "ASSETFS_FOREGROUND",
    "ASSETFS_ALLOW_OTHER",
    "ASSETFS_ALLOW_ROOT",
    "ASSETFS_UID",
    "ASSETFS_GID",
    "ASSETFS_FILE_MODE",
    "ASSETFS_DIR_MODE",
    "ASSETFS_ONLY",
    "ASSETFS_REFRESH",
    "ASSETFS_TIMEOUT",
    "ASSETFS_MANIFEST_CACHE",
    "ASSETFS_FUSE_READDIRPLUS",
    "NOTIFY_SOCKET",
];

/// Removes every [`SCRUB`] variable from what `c` inherits.
pub fn scrub(c: &mut Command) {
    for v in SCRUB {
        c.env_remove(v);
    }
}
