//! The mount under test doubles, through the kernel: an in-process FUSE
//! mount (the same `prepare` and session setup as a temporary mount of
//! stored tests) over a store that is slow or goes down. Needs /dev/fuse and
//! the right to mount (root in the test environment); panics without them.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::SeedableRng;

use crate::catalog::Catalog;
use crate::format::Reference;
use crate::mount::lifecycle;
use crate::mount::mount_config::MountConfig;
use crate::mount::read_path_tests::random_bytes;
use crate::mount::reader::ReadConfig;
use crate::mount::vfs::Vfs;
use crate::ops::{push, PushOptions};
use crate::store::Store;
use crate::store::{FaultyStore, SlowStore};

const MIB: usize = 1 << 20;

/// A live FUSE mount of this process. Dropping it unmounts, within bounded
/// time even if a reader hangs: a plain unmount, else the FUSE connection is
/// aborted and the mount detached.
struct FuseMount {
    mnt: PathBuf,
    /// The FUSE connection's number under /sys/fs/fuse/connections.
    conn: u32,
    session: Option<fuser::BackgroundSession>,
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let c = std::ffi::CString::new(self.mnt.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: a valid NUL-terminated path; umount2 only reads it.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            let e = std::io::Error::last_os_error();
            eprintln!(
                "cleanup: unmount {}: {e}; aborting FUSE connection {}",
                self.mnt.display(),
                self.conn
            );
            let abort = format!("/sys/fs/fuse/connections/{}/abort", self.conn);
            let _ = std::fs::write(abort, "1");
            // SAFETY: as above.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !session.guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // What fuser's own unmount on drop finds there now is nothing.
        drop(session);
    }
}

/// Mounts the store read-only at `<dir>/mnt` (cache in `<dir>/cache`) the
/// way a temporary mount for stored tests does, with `timeout` for store
/// requests.
fn mount(
    rt: &tokio::runtime::Runtime,
    store: Store,
    dir: &Path,
    timeout: Duration,
) -> (Arc<Vfs>, FuseMount) {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: this test mounts a real FUSE filesystem (load the fuse module, \
         or give the container /dev/fuse)"
    );
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let cfg = MountConfig {
        mountpoint: mnt.clone(),
        cache_dir: dir.join("cache"),
        cache_size: u64::MAX,
        read_only: true,
        allow_other: false,
        allow_root: false,
        owner: crate::mount::vfs::ownership::Ownership::current(),
        only: None,
        refresh: Duration::from_secs(3600),
        timeout,
        manifest_cache: crate::mount::vfs::DEFAULT_MANIFEST_CACHE,
    };
    let (vfs, _) = rt.block_on(lifecycle::prepare(store, &cfg)).unwrap();
    // The same setup as the temporary mount of stored tests.
    let session = crate::mount::fuse_session::mount(
        vfs.clone(),
        rt.handle().clone(),
        &mnt,
        &crate::mount::fuse_session::MountSpec::temporary(),
    )
    .unwrap_or_else(|e| panic!("cannot mount FUSE at {}: {e}", mnt.display()));
    let dev = std::fs::metadata(&mnt).unwrap().dev();
    let guard = FuseMount {
        mnt: mnt.clone(),
        conn: libc::minor(dev),
        session: Some(session),
    };
    assert!(
        lifecycle::is_mounted(&mnt),
        "{} is not a mount point",
        mnt.display()
    );
    (vfs, guard)
}

/// Runs `f` (file system calls on the mount) on its own thread and panics if
/// it has not returned within `limit`. Returns its result and how long it took.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => (v, start.elapsed()),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no answer within {limit:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Pushes `files` as `models/m@1` into `store`.
fn push_files(rt: &tokio::runtime::Runtime, store: Store, dir: &Path, files: &[(&str, &[u8])]) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, data) in files {
        std::fs::write(src.join(name), data).unwrap();
    }
    let r = Reference::parse("models/m").unwrap();
    rt.block_on(push(&Catalog::new(store), &r, &src, PushOptions::default()))
        .unwrap();
}

/// Drops the kernel's cached pages of a file, so the next read goes to the
/// daemon.
fn drop_page_cache(p: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(p).unwrap();
    // SAFETY: a valid open descriptor.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise DONTNEED on {}", p.display());
}

/// A file spanning two packs, read with `cat` semantics through the kernel
/// (its readahead keeps several READs in flight) from a store behind a slow
/// link: the bytes are right, each byte of a pack was asked for once, and
/// the requests in flight stay within what the readahead window allows.
#[test]
fn reads_through_fuse_over_slow_store() {
    let seed = rand::random::<u64>();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let big = random_bytes(&mut rng, 24 * MIB);
    let tmp = tempfile::TempDir::new().unwrap();
    let rt = runtime();
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    push_files(
        &rt,
        Store::from_object_store(inner.clone(), "memory://"),
        tmp.path(),
        &[("big.bin", &big)],
    );
    // 200 MiB/s with 3 ms per request: one request at a time cannot fill it.
    let slow = SlowStore::new(inner, Duration::from_millis(3), 200 << 20);
    let store = Store::from_object_store(Arc::new(slow.clone()), "slow://");
    let (vfs, m) = mount(&rt, store, tmp.path(), Duration::from_secs(20));
    let packs = rt
        .block_on(async {
            let models = vfs.lookup(crate::mount::vfs::ROOT, "models").await?;
            let v = vfs.lookup(models.ino, "m@1").await?;
            vfs.manifest_of(v.ino).await
        })
        .unwrap()
        .packs
        .len();
    assert!(packs >= 2, "the file spans {packs} pack(s)");
    let t = slow.traffic.clone();
    t.reset();

    let path = m.mnt.join("models/m@1/big.bin");
    let (got, took) = within(Duration::from_secs(20), "reading big.bin", move || {
        std::fs::read(path)
    });
    let got = got.expect("read through the mount");
    assert!(got == big, "bytes read through the mount differ");

    let ranges = t.ranges_under("packs/");
    let max = t.max_in_flight.load(Ordering::SeqCst);
    eprintln!(
        "{} pack GETs in {took:?}, max in flight {max}, sizes (KiB) {:?}",
        ranges.len(),
        ranges
            .iter()
            .map(|(_, r)| (r.end - r.start) >> 10)
            .collect::<Vec<_>>()
    );
    assert!(!ranges.is_empty(), "the read never reached the store");
    assert_eq!(t.overlap_under("packs/"), 0, "a byte was fetched twice");
    let fetched: u64 = ranges.iter().map(|(_, r)| r.end - r.start).sum();
    assert_eq!(fetched, big.len() as u64, "every byte fetched once");
    // A full window is topped up with half a window of requests while the
    // previous top-up is still arriving.
    let cfg = ReadConfig::default();
    let bound = 2 * cfg.max_window / cfg.request_bytes;
    assert!(
        max >= 1 && max <= bound,
        "{max} GETs in flight (bound {bound})"
    );
}

/// The store goes down after one file was read: that file still reads (from
/// the node's cache, without a request), and a file never read fails with
/// EIO within the store timeout plus 2 s, rather than hanging.
#[test]
fn store_down_gives_eio_through_fuse() {
    let seed = rand::random::<u64>();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let cached = random_bytes(&mut rng, 2 * MIB + 12_345);
    let uncached = random_bytes(&mut rng, 3 * MIB);
    let tmp = tempfile::TempDir::new().unwrap();
    let rt = runtime();
    let faulty = FaultyStore::new(Arc::new(InMemory::new()));
    let faults = faulty.faults.clone();
    let store = Store::from_object_store(Arc::new(faulty), "memory://faulty");
    push_files(
        &rt,
        store.clone(),
        tmp.path(),
        &[("cached.bin", &cached), ("uncached.bin", &uncached)],
    );
    let timeout = Duration::from_secs(2);
    let (vfs, m) = mount(&rt, store, tmp.path(), timeout);
    let dir = m.mnt.join("models/m@1");

    let p = dir.join("cached.bin");
    let (got, _) = within(Duration::from_secs(20), "reading cached.bin", move || {
        std::fs::read(p)
    });
    assert!(
        got.expect("read cached.bin") == cached,
        "cached.bin differs"
    );
    // Chunks reach the disk cache through a writer thread.
    rt.block_on(vfs.source().flush_writes(Duration::from_secs(10)));
    // Looked up while the store is up (the lookup itself needs no store).
    let p = dir.join("uncached.bin");
    assert_eq!(std::fs::metadata(&p).unwrap().len(), uncached.len() as u64);

    faults.down.store(true, Ordering::SeqCst);
    let (res, took) = within(timeout + Duration::from_secs(10), "reading uncached.bin", {
        let p = p.clone();
        move || std::fs::read(p)
    });
    let e = res.expect_err("uncached.bin read with the store down");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(
        took <= timeout + Duration::from_secs(2),
        "EIO after {took:?} (timeout {timeout:?})"
    );

    let p = dir.join("cached.bin");
    drop_page_cache(&p);
    let before = faults.requests.load(Ordering::SeqCst);
    let (got, _) = within(Duration::from_secs(20), "rereading cached.bin", move || {
        std::fs::read(p)
    });
    assert!(
        got.expect("cached.bin with the store down") == cached,
        "cached.bin differs"
    );
    assert_eq!(
        faults.requests.load(Ordering::SeqCst),
        before,
        "the cached file was read from the store"
    );
    let mnt = m.mnt.clone();
    drop(m);
    assert!(
        !lifecycle::is_mounted(&mnt),
        "still mounted after the guard"
    );
}
