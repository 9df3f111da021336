//! Mount lifecycle: checks before mounting, building the filesystem, serving
//! until unmounted or signalled, and unmounting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::CatalogCache;
use crate::catalog::{CacheError, DiskCache};
use crate::catalog::{Catalog, CatalogError};
use crate::format::Kind;
use crate::mount::fuse_session::{mount, MountSpec};
use crate::mount::reader::ChunkSource;
use crate::mount::vfs::{Vfs, VfsConfig, VfsError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mountpoint {0}: does not exist")]
    Missing(PathBuf),
    #[error("mountpoint {0}: not a directory")]
    NotADir(PathBuf),
    #[error("mountpoint {0}: already a mount point (busy); unmount it first")]
    Busy(PathBuf),
    #[error(
        "no /dev/fuse on this machine: load the fuse module (`modprobe fuse`); in a container, pass `--device /dev/fuse --cap-add SYS_ADMIN`"
    )]
    NoFuse,
    #[error("store {url} is unreachable ({why}) and the cache holds nothing to serve")]
    Unreachable {
        url: String,
        #[source]
        why: ListingFailure,
    },
    #[error("cannot open /dev/fuse as a normal user: it must be readable and writable by you: as root, `chmod 0666 /dev/fuse` (Debian's default; a udev rule KERNEL==\"fuse\", MODE=\"0666\" keeps it across reboots), or mount as root")]
    FuseDenied,
    #[error("fusermount3 not found: a normal user mounts through fuse3's setuid fusermount3; install it (Debian: `apt-get install fuse3`), or mount as root")]
    NoFusermount,
    #[error("{flag} needs `user_allow_other` in /etc/fuse.conf when a normal user mounts: add that line (as root), or mount as root")]
    NoUserAllowOther { flag: &'static str },
    #[error("mount failed at {path}: {source}")]
    Mount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unmount of {path} failed: {why}")]
    Unmount { path: PathBuf, why: String },
    #[error("--only {reference}: {source}")]
    Only {
        reference: String,
        #[source]
        source: VfsError,
    },
    #[error("{0} is not mounted")]
    NotMounted(PathBuf),
    #[error(
        "{0} is a stale mount: its daemon is gone (ENOTCONN); clear it with `assetfs unmount {0}`"
    )]
    Stale(PathBuf),
    #[error("{0} is busy: a process has a file or its working directory open in it (see `fuser -vm {0}`); close them and unmount again")]
    InUse(PathBuf),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the store's listings could not be read at mount time.
#[derive(Debug, thiserror::Error)]
pub enum ListingFailure {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

use crate::mount::mount_config::MountConfig;

use crate::mount::registry::{self, MountRecord};

#[cfg(test)]
pub fn is_mounted(p: &Path) -> bool {
    let p = resolve(p);
    registry::mount_at(&p).is_some()
}

/// The absolute form of a mountpoint, without asking a stale mount (whose
/// `stat` fails with ENOTCONN) about itself: its parent is resolved instead.
pub fn resolve(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or(abs.clone()),
        _ => abs,
    }
}

/// Checks a mountpoint before anything else is set up.
pub fn check_mountpoint(p: &Path) -> Result<PathBuf, MountError> {
    let md = match std::fs::metadata(p) {
        Ok(md) => md,
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(MountError::Stale(resolve(p)))
        }
        Err(_) => return Err(MountError::Missing(p.to_path_buf())),
    };
    if !md.is_dir() {
        return Err(MountError::NotADir(p.to_path_buf()));
    }
    let canon = p
        .canonicalize()
        .map_err(|_| MountError::Missing(p.to_path_buf()))?;
    if let Some(entry) = registry::mount_at(&canon) {
        if registry::is_stale(&entry) {
            return Err(MountError::Stale(canon));
        }
        return Err(MountError::Busy(canon));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuse);
    }
    Ok(canon)
}

/// Checks what a normal user's mount needs (root mounts directly): an
/// accessible /dev/fuse, fusermount3, and `user_allow_other` for
/// `--allow-other`/`--allow-root`. Each failure names its fix.
pub fn check_unprivileged(cfg: &MountConfig) -> Result<(), MountError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let dev = c"/dev/fuse";
    // SAFETY: a valid C string.
    if unsafe { libc::access(dev.as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        return Err(MountError::FuseDenied);
    }
    if find_fusermount().is_none() {
        return Err(MountError::NoFusermount);
    }
    if cfg.allow_other || cfg.allow_root {
        let conf = std::fs::read_to_string("/etc/fuse.conf").unwrap_or_default();
        if !conf.lines().any(|l| l.trim() == "user_allow_other") {
            return Err(MountError::NoUserAllowOther {
                flag: if cfg.allow_other {
                    "--allow-other"
                } else {
                    "--allow-root"
                },
            });
        }
    }
    Ok(())
}

/// fusermount3 (or fusermount) where fuser looks for it: `$FUSERMOUNT_PATH`,
/// then `PATH`, `/sbin` and `/bin`.
pub fn find_fusermount() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FUSERMOUNT_PATH") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/sbin".into(), "/bin".into()]);
    for d in dirs {
        for bin in ["fusermount3", "fusermount"] {
            let p = d.join(bin);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Builds the filesystem. Returns it with a status line for the user.
pub async fn prepare(store: Store, cfg: &MountConfig) -> Result<(Arc<Vfs>, String), MountError> {
    // A local store's packs are read in place; the cache keeps only their checksums.
    let disk = Arc::new(
        DiskCache::open(&cfg.cache_dir, cfg.cache_size)?.with_local_packs(store.local_packs()),
    );
    let source = ChunkSource::new(store.clone(), disk, cfg.timeout);
    let meta = CatalogCache::new(Catalog::new(store.clone()), &cfg.cache_dir);
    let mut fresh = vec![];
    let mut failure = None;
    for kind in Kind::ALL {
        match tokio::time::timeout(cfg.timeout, meta.fetch_listing(kind)).await {
            Ok(Ok(l)) => fresh.push((kind, l)),
            Ok(Err(e)) => failure = Some(ListingFailure::Catalog(e)),
            Err(_) => failure = Some(ListingFailure::Timeout(cfg.timeout)),
        }
        if failure.is_some() {
            break;
        }
    }
    let vfs_cfg = VfsConfig {
        refresh: cfg.refresh,
        // A one-asset mount is a read-only view: no @staging.
        staging_home: (!cfg.read_only && cfg.only.is_none()).then(crate::store::data_home),
        owner: cfg.owner,
        only: cfg.only.clone(),
        manifest_cache: cfg.manifest_cache,
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
    let mut status = status;
    if let Some(r) = &cfg.only {
        let (asset, v) = vfs
            .only_version()
            .await
            .map_err(|source| MountError::Only {
                reference: r.to_string(),
                source,
            })?;
        status = format!("{status}; {r} ({}) at the root", asset.at(v));
    }
    Ok((Arc::new(vfs), status))
}

/// What the daemon writes into the node's mount registry besides what
/// [`MountConfig`] holds.
#[derive(Debug, Clone)]
pub struct ServeInfo {
    pub store_url: String,
    pub log: PathBuf,
    pub staging_home: Option<PathBuf>,
    pub only: Option<String>,
}

/// Mounts and serves until unmounted, SIGINT or SIGTERM. `on_ready` runs
/// once the mount is live.
///
/// The daemon only ever unmounts its own mount: on a signal it unmounts the
/// path only while the mount there is still the one it made (same device
/// number), and when someone else unmounted it, it does not touch the path
/// again, since a new mount may already be there.
pub fn serve(
    rt: &tokio::runtime::Runtime,
    vfs: Arc<Vfs>,
    mountpoint: &Path,
    cfg: &MountConfig,
    info: &ServeInfo,
    on_ready: impl FnOnce(),
) -> Result<(), MountError> {
    let spec = MountSpec::daemon(cfg);
    let session = mount(vfs.clone(), rt.handle().clone(), mountpoint, &spec).map_err(|source| {
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
    let dev = registry::mount_at(mountpoint)
        .map(|e| e.dev)
        .unwrap_or_default();
    tracing::info!(mountpoint = %mountpoint.display(), dev, "mounted");
    registry::prune();
    let record = MountRecord::for_this_process(
        mountpoint,
        &dev,
        &info.store_url,
        &cfg.cache_dir,
        info.staging_home.clone(),
        &info.log,
        info.only.clone(),
    );
    if let Err(e) = record.write() {
        tracing::warn!(
            "cannot write the mount record (`assetfs mounts` will not list this mount): {e}"
        );
    }
    on_ready();
    // systemd Type=notify: the unit is up once the mount is live.
    notify(&[sd_notify::NotifyState::Ready]);
    let signalled = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        // Short, so `assetfs unmount` (which waits for this process) returns soon.
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut last_flush = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = int.recv() => { tracing::info!("SIGINT: unmounting"); break true }
                _ = term.recv() => { tracing::info!("SIGTERM: unmounting"); break true }
                _ = tick.tick() => {
                    // Keep `cache stats` current for other processes.
                    if last_flush.elapsed() >= Duration::from_secs(1) {
                        last_flush = std::time::Instant::now();
                        let disk = vfs.source().disk().clone();
                        tokio::task::spawn_blocking(move || disk.flush_counters());
                    }
                    if session.guard.is_finished() {
                        tracing::info!("unmounted externally");
                        break false;
                    }
                }
            }
        }
    });
    notify(&[sd_notify::NotifyState::Stopping]);
    if signalled {
        unmount_own(mountpoint, &dev);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !session.guard.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // fuser unmounts the path again when its session handle is dropped,
    // whatever is mounted there by then (a new mount, in a restart); the
    // mount is gone or was unmounted above, so the handle is leaked instead.
    std::mem::forget(session);
    rt.block_on(vfs.source().flush_writes(Duration::from_secs(30)));
    vfs.source().disk().flush_counters();
    record.remove();
    tracing::info!("exited cleanly");
    Ok(())
}

/// Tells systemd (when `NOTIFY_SOCKET` is set) about the daemon's state.
fn notify(state: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(state) {
            tracing::warn!("cannot notify systemd: {e}");
        }
    }
}

/// Unmounts `mountpoint` if the mount there is still the one with `dev`.
fn unmount_own(mountpoint: &Path, dev: &str) {
    match registry::mount_at(mountpoint) {
        Some(e) if e.dev == dev => {
            if let Err(e) = unmount_path(mountpoint, false) {
                tracing::warn!("unmount of {} failed: {e}", mountpoint.display());
            }
        }
        _ => tracing::info!("mount already gone; not unmounting the path again"),
    }
}

/// One unmount call: `umount2` as root, `fusermount3 -u` otherwise. `lazy`
/// detaches a mount that is still in use (only for stale mounts).
fn unmount_path(p: &Path, lazy: bool) -> Result<(), MountError> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
        MountError::Unmount {
            path: p.to_path_buf(),
            why: "path contains NUL".into(),
        }
    })?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid NUL-terminated path; umount2 has no other preconditions.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EBUSY) {
        return Err(MountError::InUse(p.to_path_buf()));
    }
    if err.raw_os_error() != Some(libc::EPERM) {
        return Err(MountError::Unmount {
            path: p.to_path_buf(),
            why: err.to_string(),
        });
    }
    let mut last = err.to_string();
    for bin in ["fusermount3", "fusermount"] {
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("-u");
        if lazy {
            cmd.arg("-z");
        }
        match cmd
            .arg(p)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => {
                let msg = String::from_utf8_lossy(&o.stderr).trim().to_string();
                if msg.contains("busy") {
                    return Err(MountError::InUse(p.to_path_buf()));
                }
                last = format!("{bin}: {msg}");
                break;
            }
            Err(_) => continue,
        }
    }
    Err(MountError::Unmount {
        path: p.to_path_buf(),
        why: last,
    })
}

/// How long `unmount` waits for the daemon to finish after the kernel has
/// dropped the mount (it flushes cache writes, bounded by 30 s, first).
const DAEMON_EXIT_WAIT: Duration = Duration::from_secs(60);

/// Unmounts `p` and returns once its daemon has exited, so that a new mount
/// at the same path right afterwards is never disturbed by the old daemon.
/// A stale mount (daemon gone) is detached.
pub fn unmount(p: &Path) -> Result<(), MountError> {
    let canon = resolve(p);
    let Some(entry) = registry::mount_at(&canon) else {
        registry::prune();
        return Err(MountError::NotMounted(canon));
    };
    let record = registry::record_for(&entry);
    let stale = registry::is_stale(&entry);
    unmount_path(&canon, stale)?;
    // Wait (bounded) until the kernel has dropped it from the table.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while registry::mount_at(&canon).is_some_and(|e| e.dev == entry.dev) {
        if std::time::Instant::now() >= deadline {
            return Err(MountError::Unmount {
                path: canon,
                why: "still mounted after 5 s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(r) = record {
        if !registry::wait_for_exit(&r, DAEMON_EXIT_WAIT) {
            return Err(MountError::Unmount {
                path: canon,
                why: format!(
                    "unmounted, but its daemon (pid {}) is still running after {DAEMON_EXIT_WAIT:?}; see {}",
                    r.pid,
                    r.log.display()
                ),
            });
        }
    }
    registry::prune();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
