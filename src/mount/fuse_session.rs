//! The one FUSE mount setup: the options a mount is made with, and starting
//! the session that serves it. The daemon (`lifecycle::serve`) and the
//! temporary read-only mount of `assetfs test` (`temporary.rs`) both mount
//! through [`mount`].

use std::path::Path;
use std::sync::Arc;

use fuser::{MountOption as O, SessionACL};

use crate::mount::fuse::{AssetFs, Protocol, ReaddirPlus};
use crate::mount::mount_config::MountConfig;
use crate::mount::vfs::Vfs;

/// Threads reading requests from the kernel, each on its own cloned
/// `/dev/fuse` descriptor. A request that can be answered without waiting
/// on the network (metadata, a READ of the disk cache) is answered on the
/// thread that read it, with a blocking `pread`; so these threads are also
/// how many cache reads run at once for that many readers. With 2, a warm
/// data-loader epoch of 8 threads left the CPU 55% idle waiting on the disk.
const SESSION_THREADS: usize = 8;
/// Kernel readahead for sequential readers of a mount (our own readahead
/// works on top): with 1 MiB requests, a few requests in flight.
pub const KERNEL_READAHEAD_KB: u64 = 4096;

/// How a filesystem is mounted: mount options, who may use it, and the
/// protocol choices offered to the kernel.
#[derive(Debug, Clone)]
pub struct MountSpec {
    pub options: Vec<O>,
    pub acl: SessionACL,
    pub protocol: Protocol,
}

impl MountSpec {
    /// The daemon's mount (`assetfs mount`): shown as `fuse.assetfs`, the
    /// kernel checks permissions, no atime updates, read-only on request;
    /// other users or root only when asked for; passthrough when allowed.
    pub fn daemon(cfg: &MountConfig) -> MountSpec {
        let mut options = vec![
            O::FSName("assetfs".into()),
            O::Subtype("assetfs".into()),
            O::DefaultPermissions,
            O::NoAtime,
        ];
        if cfg.read_only {
            options.push(O::RO);
        }
        let acl = if cfg.allow_other {
            SessionACL::All
        } else if cfg.allow_root {
            SessionACL::RootAndOwner
        } else {
            SessionACL::Owner
        };
        MountSpec {
            options,
            acl,
            protocol: Protocol {
                passthrough: passthrough_allowed(),
                // A tuning knob for measuring the alternatives (docs/mount.md).
                readdirplus: match std::env::var("ASSETFS_FUSE_READDIRPLUS").as_deref() {
                    Ok("always") => ReaddirPlus::Always,
                    Ok("off") => ReaddirPlus::Off,
                    _ => ReaddirPlus::Auto,
                },
            },
        }
    }

    /// The temporary mount stored tests run in: read-only, for its owner
    /// only, default protocol choices (no passthrough).
    pub fn temporary() -> MountSpec {
        MountSpec {
            options: vec![O::RO, O::FSName("assetfs-test".into())],
            acl: SessionACL::Owner,
            protocol: Protocol::default(),
        }
    }
}

/// FUSE passthrough needs CAP_SYS_ADMIN to register backing files; only then
/// is it offered to the kernel. `ASSETFS_FUSE_PASSTHROUGH=0` turns it off.
fn passthrough_allowed() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && std::env::var("ASSETFS_FUSE_PASSTHROUGH").as_deref() != Ok("0")
}

/// Mounts `vfs` at `mountpoint` and serves it on background threads (the
/// work itself runs on `rt`) until the returned session is dropped or the
/// filesystem is unmounted. Warns when the kernel's INIT was not answered
/// by then (the adapter logs the negotiated protocol) and raises the kernel
/// readahead.
pub fn mount(
    vfs: Arc<Vfs>,
    rt: tokio::runtime::Handle,
    mountpoint: &Path,
    spec: &MountSpec,
) -> std::io::Result<fuser::BackgroundSession> {
    let fs = AssetFs::with_protocol(vfs, rt, spec.protocol.clone());
    let mut config = fuser::Config::default();
    config.mount_options = spec.options.clone();
    config.acl = spec.acl;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(read_only: bool, allow_other: bool, allow_root: bool) -> MountConfig {
        MountConfig {
            mountpoint: "/mnt".into(),
            cache_dir: "/cache".into(),
            cache_size: 1,
            read_only,
            allow_other,
            allow_root,
            owner: crate::mount::vfs::ownership::Ownership::current(),
            only: None,
            refresh: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
            manifest_cache: 1,
        }
    }

    /// The option lists mounts were made with before this file existed.
    #[test]
    fn specs_keep_their_options() {
        let base = vec![
            O::FSName("assetfs".into()),
            O::Subtype("assetfs".into()),
            O::DefaultPermissions,
            O::NoAtime,
        ];
        let d = MountSpec::daemon(&cfg(false, false, false));
        assert_eq!(d.options, base);
        assert_eq!(d.acl, SessionACL::Owner);
        let mut ro = base.clone();
        ro.push(O::RO);
        assert_eq!(MountSpec::daemon(&cfg(true, false, true)).options, ro);
        assert_eq!(
            MountSpec::daemon(&cfg(true, false, true)).acl,
            SessionACL::RootAndOwner
        );
        assert_eq!(
            MountSpec::daemon(&cfg(false, true, true)).acl,
            SessionACL::All
        );
        let t = MountSpec::temporary();
        assert_eq!(t.options, [O::RO, O::FSName("assetfs-test".into())]);
        assert_eq!(t.acl, SessionACL::Owner);
        assert!(!t.protocol.passthrough);
        assert_eq!(t.protocol.readdirplus, ReaddirPlus::Auto);
    }
}
