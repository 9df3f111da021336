//! `assetfs mount`'s flags (also accepted as `-o` options and `ASSETFS_*`
//! variables; see `mount_helper.rs`).

use std::path::PathBuf;

use clap::Args;

/// Every flag can also be given as an `-o` option (`-o allow_other,uid=1000`,
/// as in an fstab line) and as an `ASSETFS_*` environment variable.
#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    pub mountpoint: PathBuf,
    /// Bound on the disk cache, e.g. 20G, 512M
    #[arg(long, default_value = "10G", env = "ASSETFS_CACHE_SIZE")]
    pub cache_size: String,
    /// Mount read-only at the kernel level (no @staging)
    #[arg(long, env = "ASSETFS_READ_ONLY")]
    pub read_only: bool,
    /// Stay attached to the terminal (use with systemd Type=notify)
    #[arg(short = 'f', long, env = "ASSETFS_FOREGROUND")]
    pub foreground: bool,
    /// Let other users access the mount (non-root: needs user_allow_other in /etc/fuse.conf)
    #[arg(long, env = "ASSETFS_ALLOW_OTHER")]
    pub allow_other: bool,
    /// Let root (besides the mounting user) access the mount
    #[arg(long, env = "ASSETFS_ALLOW_ROOT", conflicts_with = "allow_other")]
    pub allow_root: bool,
    /// Owner of every file and directory, a user name or number (default: the mounting user)
    #[arg(long, env = "ASSETFS_UID")]
    pub uid: Option<String>,
    /// Group of every file and directory, a name or number (default: the mounting user's group)
    #[arg(long, env = "ASSETFS_GID")]
    pub gid: Option<String>,
    /// Permission bits of every file, e.g. 0444 (default: the mode each file was pushed with)
    #[arg(long, env = "ASSETFS_FILE_MODE")]
    pub file_mode: Option<String>,
    /// Permission bits of every directory, e.g. 0555 (default: the pushed mode; 0755 for the mount's own)
    #[arg(long, env = "ASSETFS_DIR_MODE")]
    pub dir_mode: Option<String>,
    /// Show only this version at the root of the mount, e.g. models/ranker@3; with an alias
    /// (models/ranker@production) or a bare asset (@latest) the root follows it at each refresh
    #[arg(long, value_name = "REF", env = "ASSETFS_ONLY")]
    pub only: Option<String>,
    /// How often new versions and aliases are picked up, e.g. 30s, 5m
    #[arg(long, default_value = "30s", env = "ASSETFS_REFRESH")]
    pub refresh: String,
    /// How long an uncached read waits for the store before failing with EIO
    #[arg(long, default_value = "30s", env = "ASSETFS_TIMEOUT")]
    pub timeout: String,
    /// Bound on the memory of version manifests kept decoded, e.g. 160M
    /// (the least recently used are dropped and reloaded from the local
    /// metadata cache when needed again)
    #[arg(long, default_value = "160M", env = "ASSETFS_MANIFEST_CACHE")]
    pub manifest_cache: String,
    /// Mount options, comma-separated: any flag above with `_` or `-` between words
    /// (allow_other,uid=1000,cache_size=20G), plus cache_dir= and store=; mount(8)
    /// and systemd options (rw, nofail, _netdev, x-systemd.*) are ignored
    #[arg(short = 'o', value_name = "OPTIONS", id = "options")]
    pub options: Vec<String>,
}
