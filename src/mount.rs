//! Mount lifecycle: checks before mounting, building the filesystem, serving
//! until unmounted or signalled, and unmounting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{CacheError, DiskCache};
use crate::catalog::Catalog;
use crate::catalog_cache::CatalogCache;
use crate::fs::{AssetFs, Protocol};
use crate::names::Kind;
use crate::reader::ChunkSource;
use crate::store::{Store, StoreError};
use crate::vfs::{Vfs, VfsConfig};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mountpoint {0}: does not exist")]
    Missing(PathBuf),
    #[error("mountpoint {0}: not a directory")]
    NotADir(PathBuf),
    #[error("mountpoint {0}: already a mount point (busy); unmount it first")]
    Busy(PathBuf),
    #[error(
        "no /dev/fuse on this machine: load the fuse kernel module or run where FUSE is available"
    )]
    NoFuse,
    #[error("store {url} is unreachable ({why}) and the cache holds nothing to serve")]
    Unreachable { url: String, why: String },
    #[error("cannot open /dev/fuse as a normal user: it must be readable and writable by you (Debian's default is mode 0666; fuse3's fusermount3 then does the mount)")]
    FuseDenied,
    #[error("mount failed at {path}: {source}")]
    Mount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unmount of {path} failed: {why}")]
    Unmount { path: PathBuf, why: String },
    #[error("{0} is not mounted")]
    NotMounted(PathBuf),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct MountConfig {
    pub mountpoint: PathBuf,
    pub cache_dir: PathBuf,
    pub cache_size: u64,
    pub read_only: bool,
    pub allow_other: bool,
    pub refresh: Duration,
    pub timeout: Duration,
}

/// Mount points currently in the mount table, unescaped.
fn mount_points() -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .collect()
}

/// Decodes a mount point as `/proc/self/mountinfo` writes it.
pub fn unescape_mountinfo(s: &str) -> String {
    // The kernel writes space, tab, newline and backslash as \ooo octal.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(n) = u8::from_str_radix(oct, 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn is_mounted(p: &Path) -> bool {
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    mount_points().contains(&p)
}

/// Checks a mountpoint before anything else is set up.
pub fn check_mountpoint(p: &Path) -> Result<PathBuf, MountError> {
    let md = std::fs::metadata(p).map_err(|_| MountError::Missing(p.to_path_buf()))?;
    if !md.is_dir() {
        return Err(MountError::NotADir(p.to_path_buf()));
    }
    let canon = p
        .canonicalize()
        .map_err(|_| MountError::Missing(p.to_path_buf()))?;
    if is_mounted(&canon) {
        return Err(MountError::Busy(canon));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuse);
    }
    Ok(canon)
}

/// Builds the filesystem. Returns it with a status line for the user.
pub async fn prepare(store: Store, cfg: &MountConfig) -> Result<(Arc<Vfs>, String), MountError> {
    let disk = Arc::new(DiskCache::open(&cfg.cache_dir, cfg.cache_size)?);
    let source = ChunkSource::new(store.clone(), disk, cfg.timeout);
    let meta = CatalogCache::new(Catalog::new(store.clone()), &cfg.cache_dir);
    let mut fresh = vec![];
    let mut failure = None;
    for kind in Kind::ALL {
        match tokio::time::timeout(cfg.timeout, meta.fetch_listing(kind)).await {
            Ok(Ok(l)) => fresh.push((kind, l)),
            Ok(Err(e)) => failure = Some(e.to_string()),
            Err(_) => failure = Some(format!("no answer within {:?}", cfg.timeout)),
        }
        if failure.is_some() {
            break;
        }
    }
    let vfs_cfg = VfsConfig {
        refresh: cfg.refresh,
        staging_home: (!cfg.read_only).then(crate::store::data_home),
    };
    let status;
    let vfs = match failure {
        None => {
            let n: usize = fresh.iter().map(|(_, l)| l.version_count()).sum();
            let vfs = Vfs::new(meta, source, vfs_cfg);
            for (k, l) in fresh {
                vfs.seed_listing(k, l);
            }
            status = format!("{n} versions from {}", store.url());
            vfs
        }
        Some(why) => {
            let saved: Vec<_> = Kind::ALL
                .iter()
                .filter_map(|k| meta.saved_listing(*k).map(|l| (*k, l)))
                .collect();
            let n: usize = saved.iter().map(|(_, l)| l.version_count()).sum();
            if n == 0 {
                return Err(MountError::Unreachable {
                    url: store.url().to_string(),
                    why,
                });
            }
            let vfs = Vfs::new(meta, source, vfs_cfg);
            for (k, l) in saved {
                vfs.seed_listing(k, l);
            }
            status = format!(
                "store {} unreachable ({why}); serving the {n} versions this node has cached (uncached reads fail with EIO)",
                store.url()
            );
            tracing::warn!("{status}");
            vfs
        }
    };
    Ok((Arc::new(vfs), status))
}

/// Mounts and serves until unmounted, SIGINT or SIGTERM. `on_ready` runs
/// once the mount is live.
pub fn serve(
    rt: &tokio::runtime::Runtime,
    vfs: Arc<Vfs>,
    mountpoint: &Path,
    cfg: &MountConfig,
    on_ready: impl FnOnce(),
) -> Result<(), MountError> {
    use fuser::MountOption as O;
    let mut opts = vec![
        O::FSName("assetfs".into()),
        O::Subtype("assetfs".into()),
        O::DefaultPermissions,
        O::NoAtime,
    ];
    if cfg.read_only {
        opts.push(O::RO);
    }
    let protocol = Protocol {
        passthrough: passthrough_allowed(),
    };
    let fs = AssetFs::with_protocol(vfs.clone(), rt.handle().clone(), protocol);
    let session = spawn_session(fs, mountpoint, opts, cfg.allow_other).map_err(|source| {
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        if !root && source.kind() == std::io::ErrorKind::PermissionDenied {
            MountError::FuseDenied
        } else {
            MountError::Mount {
                path: mountpoint.to_path_buf(),
                source,
            }
        }
    })?;
    tracing::info!(mountpoint = %mountpoint.display(), "mounted");
    on_ready();
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = int.recv() => { tracing::info!("SIGINT: unmounting"); break }
                _ = term.recv() => { tracing::info!("SIGTERM: unmounting"); break }
                _ = tick.tick() => {
                    ticks += 1;
                    // Keep `cache stats` current for other processes.
                    if ticks.is_multiple_of(5) {
                        let disk = vfs.source().disk().clone();
                        tokio::task::spawn_blocking(move || disk.flush_counters());
                    }
                    if session.guard.is_finished() {
                        tracing::info!("unmounted externally");
                        break;
                    }
                }
            }
        }
    });
    if let Err(e) = session.join() {
        tracing::warn!("FUSE session ended with an error: {e}");
    }
    rt.block_on(vfs.source().flush_writes(Duration::from_secs(30)));
    vfs.source().disk().flush_counters();
    tracing::info!("exited cleanly");
    Ok(())
}

/// FUSE passthrough needs CAP_SYS_ADMIN to register backing files; only then
/// is it offered to the kernel. `ASSETFS_FUSE_PASSTHROUGH=0` turns it off.
fn passthrough_allowed() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && std::env::var("ASSETFS_FUSE_PASSTHROUGH").as_deref() != Ok("0")
}

/// Threads reading requests from the kernel, each on its own cloned
/// `/dev/fuse` descriptor. Requests are handed to the runtime at once, so
/// reading them is all these threads do.
const SESSION_THREADS: usize = 2;
/// Kernel readahead for sequential readers of a mount (our own readahead
/// works on top): with 1 MiB requests, a few requests in flight.
pub const KERNEL_READAHEAD_KB: u64 = 4096;

/// Mounts `fs` and serves it on background threads until the returned
/// session is dropped or the filesystem is unmounted. Logs the protocol
/// negotiated with the kernel and raises the kernel readahead.
pub fn spawn_session(
    fs: AssetFs,
    mountpoint: &Path,
    opts: Vec<fuser::MountOption>,
    allow_other: bool,
) -> std::io::Result<fuser::BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options = opts;
    if allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(SESSION_THREADS);
    config.clone_fd = true;
    let negotiated = fs.negotiated();
    let session = fuser::spawn_mount(fs, mountpoint, &config)?;
    if negotiated.get().is_none() {
        tracing::warn!("FUSE protocol: INIT not answered at mount");
    }
    raise_readahead(mountpoint, KERNEL_READAHEAD_KB);
    Ok(session)
}

/// The kernel lets a FUSE daemon only lower readahead at INIT (from 128 KiB);
/// its bdi's `read_ahead_kb` raises it. Needs root; otherwise it stays and
/// the log says so.
fn raise_readahead(mountpoint: &Path, kb: u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = md.dev();
    // SAFETY: major/minor are pure computations on a dev_t.
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let path = format!("/sys/class/bdi/{maj}:{min}/read_ahead_kb");
    match std::fs::write(&path, kb.to_string()) {
        Ok(()) => tracing::info!("kernel readahead {kb} KiB ({path})"),
        Err(e) => {
            let now = std::fs::read_to_string(&path).unwrap_or_default();
            tracing::info!(
                "kernel readahead left at {} KiB: cannot write {path}: {e}",
                now.trim()
            )
        }
    }
}

/// Unmounts `p`: directly as root, through fusermount3 otherwise.
pub fn unmount(p: &Path) -> Result<(), MountError> {
    let canon = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if !is_mounted(&canon) {
        return Err(MountError::NotMounted(canon));
    }
    let c = std::ffi::CString::new(canon.as_os_str().as_encoded_bytes()).map_err(|_| {
        MountError::Unmount {
            path: canon.clone(),
            why: "path contains NUL".into(),
        }
    })?;
    // SAFETY: a valid NUL-terminated path; umount2 has no other preconditions.
    let rc = unsafe { libc::umount2(c.as_ptr(), 0) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        let fallback = ["fusermount3", "fusermount"].iter().find_map(|bin| {
            // Its own complaint would be a second error line; ours says why.
            std::process::Command::new(bin)
                .arg("-u")
                .arg(&canon)
                .stderr(std::process::Stdio::null())
                .status()
                .ok()
        });
        match fallback {
            Some(s) if s.success() => {}
            _ => {
                return Err(MountError::Unmount {
                    path: canon,
                    why: err.to_string(),
                })
            }
        }
    }
    // Wait (bounded) until the kernel has dropped it from the table.
    for _ in 0..100 {
        if !is_mounted(&canon) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(MountError::Unmount {
        path: canon,
        why: "still mounted after 5 s".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn mountpoint_checks() {
        let d = tempfile::TempDir::new().unwrap();
        assert!(matches!(
            check_mountpoint(&d.path().join("nope")),
            Err(MountError::Missing(_))
        ));
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(matches!(check_mountpoint(&f), Err(MountError::NotADir(_))));
        assert!(matches!(
            check_mountpoint(Path::new("/proc")),
            Err(MountError::Busy(_))
        ));
    }
}
