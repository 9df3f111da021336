//! Read-path tests over a store double that adds latency and caps
//! throughput (`store::doubles::SlowStore`): what the readahead asks of the
//! store (requests in flight, bytes, overlaps), reads across pack
//! boundaries, warm reads from the disk cache, and a property test of random
//! interleavings of sequential, random and concurrent reads.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};

use crate::catalog::Catalog;
use crate::catalog::CatalogCache;
use crate::catalog::DiskCache;
use crate::format::Manifest;
use crate::format::Reference;
use crate::mount::reader::{ChunkSource, ReadConfig};
use crate::mount::vfs::{Vfs, VfsConfig, ROOT};
use crate::ops::{push, PushOptions};
use crate::store::SlowStore;
use crate::store::Store;

const MIB: usize = 1 << 20;

/// A pushed version `models/m@1` in an in-memory object store.
struct Fixture {
    inner: Arc<dyn ObjectStore>,
    files: Vec<(String, Vec<u8>)>,
    _tmp: tempfile::TempDir,
}

pub(super) fn random_bytes(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

async fn fixture(files: Vec<(String, Vec<u8>)>) -> Fixture {
    let tmp = tempfile::TempDir::new().unwrap();
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let src = tmp.path().join("src");
    for (name, data) in &files {
        let p = src.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let catalog = Catalog::new(Store::from_object_store(inner.clone(), "memory://"));
    let r = Reference::parse("models/m").unwrap();
    push(&catalog, &r, &src, PushOptions::default())
        .await
        .unwrap();
    Fixture {
        inner,
        files,
        _tmp: tmp,
    }
}

/// A mount-less filesystem over the fixture's store seen through `SlowStore`.
struct Reader {
    vfs: Vfs,
    slow: SlowStore,
}

fn reader(f: &Fixture, cache: &std::path::Path, cfg: ReadConfig, bps: u64) -> Reader {
    let slow = SlowStore::new(f.inner.clone(), Duration::from_millis(3), bps);
    let store = Store::from_object_store(Arc::new(slow.clone()), "slow://");
    let disk = Arc::new(DiskCache::open(cache, 1 << 30).unwrap());
    let source = ChunkSource::with_config(store.clone(), disk, Duration::from_secs(20), cfg);
    Reader {
        vfs: vfs_over(store, source, cache),
        slow,
    }
}

/// A mount-less filesystem over `store`, reading through `source`.
fn vfs_over(store: Store, source: Arc<ChunkSource>, cache: &std::path::Path) -> Vfs {
    Vfs::new(
        CatalogCache::new(Catalog::new(store), cache),
        source,
        VfsConfig {
            refresh: Duration::from_secs(30),
            staging_home: None,
            owner: crate::mount::vfs::ownership::Ownership::current(),
            only: None,
            manifest_cache: crate::mount::vfs::DEFAULT_MANIFEST_CACHE,
        },
    )
}

impl Reader {
    async fn open(&self, path: &str) -> u64 {
        let mut ino = self.vfs.lookup(ROOT, "models").await.unwrap().ino;
        ino = self.vfs.lookup(ino, "m@1").await.unwrap().ino;
        for part in path.split('/') {
            ino = self.vfs.lookup(ino, part).await.unwrap().ino;
        }
        self.vfs.open(ino, libc::O_RDONLY, 1).await.unwrap()
    }

    async fn read_all(&self, path: &str, step: u32) -> Vec<u8> {
        let fh = self.open(path).await;
        let mut out = vec![];
        loop {
            let b = self.vfs.read(fh, out.len() as u64, step).await.unwrap();
            if b.is_empty() {
                break;
            }
            out.extend_from_slice(&b);
        }
        self.vfs.release(fh);
        out
    }

    async fn manifest(&self) -> Arc<Manifest> {
        let m = self.vfs.lookup(ROOT, "models").await.unwrap().ino;
        let v = self.vfs.lookup(m, "m@1").await.unwrap();
        self.vfs.manifest_of(v.ino).await.unwrap()
    }
}

/// Reads `path` whole with one concurrent reader per read size, each
/// checking it gets `want`.
async fn read_concurrently(r: &Arc<Reader>, path: &'static str, steps: &[u32], want: &[u8]) {
    let want = Arc::new(want.to_vec());
    let tasks: Vec<_> = steps
        .iter()
        .map(|&step| {
            let (r, want) = (r.clone(), want.clone());
            tokio::spawn(async move { assert!(r.read_all(path, step).await == *want) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn pack_bytes(r: &Reader) -> u64 {
    r.slow
        .traffic
        .ranges_under("packs/")
        .iter()
        .map(|(_, r)| r.end - r.start)
        .sum()
}

/// Offsets inside a pack where one request ended and another began, off a
/// 1 MiB boundary: an S3 server such as Garage reads the block there for
/// both. Offsets where one of the manifest's files begins are left out (two
/// streams meet there).
fn meetings_inside_blocks(r: &Reader, m: &Manifest) -> Vec<(String, u64)> {
    let starts: Vec<(String, u64)> = m
        .entries()
        .filter_map(|e| m.chunks_of(&e).first().copied())
        .map(|c| {
            (
                crate::format::to_hex(&m.packs[c.pack as usize]),
                c.offset as u64,
            )
        })
        .collect();
    let ranges = r.slow.traffic.ranges_under("packs/");
    let mut out = vec![];
    for (path, a) in &ranges {
        for (other, b) in &ranges {
            let at = a.end;
            if path == other
                && b.start == at
                && at % MIB as u64 != 0
                && !starts
                    .iter()
                    .any(|(p, o)| *o == at && path.contains(p.as_str()))
            {
                out.push((path.clone(), at));
            }
        }
    }
    out
}

/// 4 MiB requests and a 32 MiB window: a file of tens of MiB reaches the
/// window's steady state.
fn small_window() -> ReadConfig {
    ReadConfig {
        request_bytes: 4 << 20,
        max_window: 32 << 20,
        ..ReadConfig::default()
    }
}

/// A random `big.bin` of `mib` MiB (from `seed`), pushed; and an empty
/// directory for a disk cache.
async fn big_file(seed: u64, mib: usize) -> (Vec<u8>, Fixture, tempfile::TempDir) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let big = random_bytes(&mut rng, mib * MIB);
    let f = fixture(vec![("big.bin".into(), big.clone())]).await;
    (big, f, tempfile::TempDir::new().unwrap())
}

/// [`big_file`], its disk cache filled by a sequential read of 1 MiB READs.
async fn big_file_cached(seed: u64, mib: usize) -> (Vec<u8>, Fixture, tempfile::TempDir) {
    let (big, f, tmp) = big_file(seed, mib).await;
    let r = reader(&f, tmp.path(), ReadConfig::default(), 1 << 30);
    assert!(r.read_all("big.bin", MIB as u32).await == big);
    r.vfs.source().flush_writes(Duration::from_secs(10)).await;
    drop(r);
    (big, f, tmp)
}

/// A random `big.bin` of `mib` MiB (from `seed`), pushed; a reader of it
/// with [`small_window`] over a link of `bps` bytes/s; its manifest, loaded
/// before the store's traffic is reset.
async fn one_big_file(
    seed: u64,
    mib: usize,
    bps: u64,
) -> (Vec<u8>, Fixture, tempfile::TempDir, Reader, Arc<Manifest>) {
    let (big, f, tmp) = big_file(seed, mib).await;
    let r = reader(&f, tmp.path(), small_window(), bps);
    let m = r.manifest().await;
    r.slow.traffic.reset();
    (big, f, tmp, r, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_read_keeps_requests_in_flight_and_fetches_each_byte_once() {
    // 200 MiB/s with 3 ms per request: one request at a time cannot fill it.
    let (big, _f, _tmp, r, m) = one_big_file(1, 56, 200 << 20).await;
    assert!(m.packs.len() >= 3, "the file spans {} packs", m.packs.len());
    let got = r.read_all("big.bin", 128 << 10).await;
    assert!(got == big, "bytes differ");
    let t = &r.slow.traffic;
    let ranges = t.ranges_under("packs/");
    let sizes: Vec<u64> = ranges.iter().map(|(_, r)| r.end - r.start).collect();
    eprintln!(
        "{} pack GETs, max in flight {}, sizes (KiB) {:?}",
        ranges.len(),
        t.max_in_flight.load(Ordering::SeqCst),
        sizes.iter().map(|s| s >> 10).collect::<Vec<_>>()
    );
    assert_eq!(t.overlap_under("packs/"), 0, "a byte was fetched twice");
    assert_eq!(pack_bytes(&r), big.len() as u64, "every byte fetched once");
    // Full window: a window of 4 MiB requests in flight, each top-up adding
    // at least one as soon as one is free.
    let max = t.max_in_flight.load(Ordering::SeqCst);
    assert!(max >= 4, "only {max} requests in flight at most");
    assert!(
        max <= 16,
        "{max} requests in flight: the window is not bounded"
    );
    // Large requests: apart from the first few (window still growing) and
    // the ends of packs, requests are about request_bytes.
    let small = sizes.iter().filter(|s| **s < MIB as u64).count();
    assert!(small <= 2 + m.packs.len(), "{small} requests under 1 MiB");
    assert!(
        ranges.len() <= 56 / 4 + 2 * m.packs.len() + 4,
        "{} requests",
        ranges.len()
    );
    // Requests that meet another request start on a 1 MiB multiple of the
    // pack, so no block is read for two requests. The exception: top-ups
    // while the window is still growing (1, 2, 4, ... MiB) end at a chunk
    // boundary; from a half window of 16 MiB on they end at pack ends.
    let unaligned = ranges
        .iter()
        .filter(|(k, r)| {
            let meets = ranges.iter().any(|(k2, r2)| k2 == k && r2.end == r.start);
            meets && r.start % (1 << 20) != 0
        })
        .count();
    assert!(
        unaligned <= 6,
        "{unaligned} requests start inside a 1 MiB block another request read"
    );
}

/// Store responses are received into pooled buffers that come back when
/// their chunks are dropped, so a long read maps about as many buffers as it
/// ever holds at once, not one per request: fresh receive buffers cost the
/// daemon a page fault per 4 KiB (a tenth of its CPU in a cold read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_buffers_are_reused_across_requests() {
    let (big, f, tmp) = big_file(21, 48).await;
    let cfg = ReadConfig {
        request_bytes: 2 << 20,
        max_window: 4 << 20,
        budget: 8 << 20,
        write_queue: 2,
        ..ReadConfig::default()
    };
    // SlowStore sends 64 KiB frames, so responses are gathered, not whole.
    let r = reader(&f, tmp.path(), cfg, 1 << 30);
    assert!(r.read_all("big.bin", 1 << 20).await == big, "bytes differ");
    let requests = r.slow.traffic.ranges_under("packs/").len() as u64;
    let mapped = r.vfs.source().buffers_mapped();
    eprintln!("{requests} pack GETs, {mapped} buffers mapped");
    assert!(requests >= 20, "only {requests} requests");
    // At most: the window's requests, those queued for the cache writer, a
    // few being received, and the requests too small to pool.
    assert!(
        mapped <= 12,
        "{mapped} buffers mapped for {requests} requests: buffers not reused"
    );
}

/// The window is topped up as soon as a request's worth of it is free, so
/// the bytes fetched ahead of a sequential reader stay near a full window.
/// Topped up only when half the window had drained, a reader of a local
/// store's packs waited for the three packs it then asked for at once,
/// while the disk had sat idle for 28% of the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_is_topped_up_a_request_at_a_time() {
    let (big, _f, _tmp, r, _) = one_big_file(11, 96, 1 << 30).await;
    let cfg = small_window();
    let fh = r.open("big.bin").await;
    let (window, request) = (cfg.max_window as usize, cfg.request_bytes as usize);
    let mut leads = vec![];
    let mut off = 0usize;
    while off < big.len() {
        let got = r.vfs.read(fh, off as u64, MIB as u32).await.unwrap();
        assert!(got[..] == big[off..off + MIB], "bytes at {off}");
        off += MIB;
        // Let everything planned arrive, so the bytes fetched show where the
        // frontier is (a reader slower than the store); the chunks of the
        // last top-up past its last aligned offset wait for the next one.
        let t0 = std::time::Instant::now();
        let source = r.vfs.source();
        while source.in_flight() > source.owed_chunks() {
            assert!(t0.elapsed() < Duration::from_secs(20), "fetches never end");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Past the ramp-up (the window doubles from 1 MiB per top-up), and
        // not yet at the end of the file.
        if off >= 16 * MIB && off + window + request <= big.len() {
            leads.push((pack_bytes(&r) as usize - off) / MIB);
        }
    }
    r.vfs.release(fh);
    eprintln!("MiB fetched ahead of the reader: {leads:?}");
    assert_eq!(
        r.slow.traffic.overlap_under("packs/"),
        0,
        "a byte was fetched twice"
    );
    // At least a full window less one request and one chunk; half a window
    // (16 MiB) with top-ups at half the window.
    let min = *leads.iter().min().expect("reads in the steady state");
    assert!(
        min >= (window - request) / MIB - 2,
        "only {min} MiB fetched ahead of the reader: {leads:?}"
    );
}

/// Eight sequential readers at once share the readahead budget: each keeps
/// a window of large requests instead of grabbing whatever budget trickles
/// back (which made eight readers fetch 1.4 MiB per request on average
/// against 8 MiB for one reader, and Garage read 1.7x the bytes in blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_readers_share_the_budget_in_large_requests() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("f{i}.bin"), random_bytes(&mut rng, 16 * MIB)))
        .collect();
    let f = fixture(files.clone()).await;
    let tmp = tempfile::TempDir::new().unwrap();
    // A budget of 8 MiB per reader: a 4 MiB window after the 4 MiB kept
    // behind each reader, so 2 MiB top-ups of one request each.
    let cfg = ReadConfig {
        request_bytes: 2 << 20,
        max_window: 16 << 20,
        budget: 64 << 20,
        ..ReadConfig::default()
    };
    let r = Arc::new(reader(&f, tmp.path(), cfg, 400 << 20));
    r.slow.traffic.reset();
    let barrier = Arc::new(tokio::sync::Barrier::new(files.len()));
    let tasks: Vec<_> = files
        .iter()
        .map(|(name, data)| {
            let (r, name, data, barrier) = (r.clone(), name.clone(), data.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let got = r.read_all(&name, 128 << 10).await;
                assert!(got == data, "{name}: bytes differ");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let t = &r.slow.traffic;
    let ranges = t.ranges_under("packs/");
    let total: u64 = ranges.iter().map(|(_, r)| r.end - r.start).sum();
    let max = t.max_in_flight.load(Ordering::SeqCst);
    eprintln!(
        "{} pack GETs, {} KiB on average, max in flight {max}",
        ranges.len(),
        (total / ranges.len() as u64) >> 10
    );
    assert_eq!(t.overlap_under("packs/"), 0, "a byte was fetched twice");
    assert_eq!(total, 8 * 16 * MIB as u64, "every byte fetched once");
    // A stream's top-ups end inside blocks (at chunk boundaries); their
    // requests meet at aligned offsets all the same, but where a reader
    // caught up with its frontier and wanted an owed chunk before the next
    // top-up (or planned only what its READ needed). Requests met inside a
    // block 42 times here before tails.
    let meetings = meetings_inside_blocks(&r, &*r.manifest().await);
    eprintln!("{} requests met inside a block", meetings.len());
    assert!(
        meetings.len() <= 6,
        "{} requests met inside a block: {meetings:?}",
        meetings.len()
    );
    assert!(max >= 8, "only {max} requests in flight at most");
    // 128 MiB in requests of about 2 MiB, plus the first top-ups of each
    // reader (1 MiB window) and pack ends. Taking budget as it trickled
    // back made 168 requests here.
    assert!(
        ranges.len() <= 64 + 8 * 4,
        "{} requests for 128 MiB: the budget is taken in small pieces",
        ranges.len()
    );
}

/// One stream with a budget that ends its top-ups inside packs: it leaves
/// a tail after `mib` MiB of 1 MiB READs. Returns the handle, and the file
/// offset of the tail's first owed byte.
async fn stream_with_a_tail(r: &Reader, big: &[u8], mib: usize) -> (u64, u64) {
    let fh = r.open("big.bin").await;
    for i in 0..mib {
        let off = i * MIB;
        let got = r.vfs.read(fh, off as u64, MIB as u32).await.unwrap();
        assert!(got[..] == big[off..off + MIB], "bytes at {off}");
    }
    let tails = r.vfs.source().tails();
    assert_eq!(tails.len(), 1, "tails: {tails:?}");
    let (pack, from, _) = tails[0];
    let m = r.manifest().await;
    let e = m.entries().find(|e| e.path.ends_with("big.bin")).unwrap();
    let mut at = 0u64;
    for c in m.chunks_of(&e) {
        let (start, end) = (c.offset as u64, c.offset as u64 + c.len as u64);
        if m.packs[c.pack as usize] == pack && start <= from && from < end {
            return (fh, at + from - start);
        }
        at += c.len as u64;
    }
    panic!("no chunk of the file holds the tail");
}

/// A budget of 12 MiB for one stream: 8 MiB windows that end inside packs.
fn tail_config() -> ReadConfig {
    ReadConfig {
        request_bytes: 2 << 20,
        max_window: 16 << 20,
        budget: 12 << 20,
        ..ReadConfig::default()
    }
}

/// A chunk whose bytes a tail still owes, wanted by another reader, is
/// fetched at once; and a stream that ends lets go of its tail, so every
/// planned chunk arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tails_are_fetched_when_wanted_or_let_go_of() {
    let (big, f, tmp) = big_file(12, 40).await;
    let r = reader(&f, tmp.path(), tail_config(), 1 << 30);
    let (fh, owed) = stream_with_a_tail(&r, &big, 6).await;
    // A random read of an owed byte on another handle.
    let other = r.open("big.bin").await;
    let at = owed as usize;
    let got = tokio::time::timeout(Duration::from_secs(10), r.vfs.read(other, owed, 4096))
        .await
        .expect("a read of a chunk a tail owes never finished")
        .unwrap();
    assert!(got[..] == big[at..at + 4096], "bytes at {at}");
    assert!(r.vfs.source().tails().is_empty(), "the tail is still owed");
    r.vfs.release(other);
    r.vfs.release(fh);

    // A stream that stops after leaving a tail.
    let (big, f, tmp) = big_file(13, 40).await;
    let r = reader(&f, tmp.path(), tail_config(), 1 << 30);
    let (fh, _) = stream_with_a_tail(&r, &big, 6).await;
    // Released where FUSE releases a file: on a thread outside the runtime.
    std::thread::scope(|s| {
        s.spawn(|| r.vfs.release(fh));
    });
    let t0 = std::time::Instant::now();
    while r.vfs.source().in_flight() > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "planned chunks never arrive"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        r.vfs.source().tails().is_empty(),
        "a released stream's tail"
    );
    assert_eq!(
        r.slow.traffic.overlap_under("packs/"),
        0,
        "a byte was fetched twice"
    );
    assert!(r.read_all("big.bin", MIB as u32).await == big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_across_pack_boundaries() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let big = random_bytes(&mut rng, 40 * MIB);
    let small = random_bytes(&mut rng, 300_000);
    // The same bytes in two files: their chunks are shared.
    let f = fixture(vec![
        ("a/big.bin".into(), big.clone()),
        ("b/small.bin".into(), small.clone()),
        ("b/again.bin".into(), big[..5 * MIB].to_vec()),
    ])
    .await;
    let tmp = tempfile::TempDir::new().unwrap();
    let r = reader(&f, tmp.path(), ReadConfig::default(), 1 << 30);
    let m = r.manifest().await;
    let e = m.entries().find(|e| e.path.ends_with("big.bin")).unwrap();
    let chunks = m.chunks_of(&e);
    // File offsets where the next chunk lies in another pack.
    let mut off = 0u64;
    let mut boundaries = vec![];
    for w in chunks.windows(2) {
        off += w[0].len as u64;
        if w[0].pack != w[1].pack {
            boundaries.push(off);
        }
    }
    assert!(
        boundaries.len() >= 2,
        "{} pack boundaries",
        boundaries.len()
    );
    // Small reads straddling each boundary, each on a fresh handle.
    for &b in &boundaries {
        let fh = r.open("a/big.bin").await;
        let got = r.vfs.read(fh, b - 1000, 2000).await.unwrap();
        assert!(
            got[..] == big[b as usize - 1000..b as usize + 1000],
            "at {b}"
        );
        r.vfs.release(fh);
    }
    // Sequential reads with an odd size across every boundary.
    assert!(r.read_all("a/big.bin", 100_003).await == big);
    // Concurrent sequential readers of the same file, different read sizes.
    let r = Arc::new(r);
    read_concurrently(&r, "a/big.bin", &[4096, 65536, 131072, 1 << 20], &big).await;
    assert!(r.read_all("b/again.bin", 128 << 10).await == big[..5 * MIB]);
    assert!(r.read_all("b/small.bin", 128 << 10).await == small);
    assert_eq!(
        r.slow.traffic.overlap_under("packs/"),
        0,
        "a byte was fetched twice"
    );
}

/// A local (`file://`) store's packs are read in place, about a whole
/// pack per request, each byte once; read again by concurrent readers,
/// the chunks come from the packs through their cached checksums, with
/// the right bytes and no new requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_packs_are_read_whole_and_once() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let big = random_bytes(&mut rng, 40 * MIB);
    let tmp = tempfile::TempDir::new().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let url = format!("file://{}", tmp.path().join("store").display());
    let store = Store::create(&url).unwrap();
    let r = Reference::parse("models/m").unwrap();
    push(
        &Catalog::new(store.clone()),
        &r,
        &src,
        PushOptions::default(),
    )
    .await
    .unwrap();
    let packs: Vec<u64> = std::fs::read_dir(tmp.path().join("store/packs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert!(packs.len() >= 3, "{} packs", packs.len());
    let cache = tmp.path().join("cache");
    let disk = DiskCache::open(&cache, 1 << 30)
        .unwrap()
        .with_local_packs(store.local_packs());
    let source = ChunkSource::new(store.clone(), Arc::new(disk), Duration::from_secs(20));
    let r = Arc::new(Reader {
        vfs: vfs_over(store, source.clone(), &cache),
        slow: SlowStore::new(Arc::new(InMemory::new()), Duration::ZERO, 1 << 30),
    });
    assert!(r.read_all("big.bin", 1 << 20).await == big);
    let requests = source.stats.requests.load(Ordering::Relaxed);
    let bytes = source.stats.bytes.load(Ordering::Relaxed);
    let total: u64 = packs.iter().sum();
    assert!(bytes <= total, "{bytes} bytes read of {total} in the packs");
    assert!(bytes >= big.len() as u64, "{bytes}");
    // The first windows are small (1, 2, 4 MiB); after that, a pack per
    // request (6 requests for 3 packs here; 8 MiB requests made 7).
    assert!(
        requests <= packs.len() as u64 + 3,
        "{requests} requests for {} packs",
        packs.len()
    );
    source.flush_writes(Duration::from_secs(10)).await;
    read_concurrently(&r, "big.bin", &[1 << 20, 131_072, 100_003], &big).await;
    assert_eq!(
        source.stats.requests.load(Ordering::Relaxed),
        requests,
        "read again from the packs through the cache's checksum records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reads_come_from_the_disk_cache_only() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let big = random_bytes(&mut rng, 40 * MIB);
    let f = fixture(vec![("big.bin".into(), big.clone())]).await;
    let tmp = tempfile::TempDir::new().unwrap();
    {
        let r = reader(&f, tmp.path(), ReadConfig::default(), 1 << 30);
        assert!(r.read_all("big.bin", 128 << 10).await == big);
        r.vfs.source().flush_writes(Duration::from_secs(10)).await;
    }
    let r = reader(&f, tmp.path(), ReadConfig::default(), 1 << 30);
    r.manifest().await;
    r.slow.traffic.reset();
    assert!(r.read_all("big.bin", 128 << 10).await == big);
    // The chunks of each request were admitted back to back, so the
    // sequential read took few large reads of the cache, not one per chunk.
    let chunks = r.manifest().await.chunks.len();
    let reads = r.vfs.source().disk().run_reads();
    assert!(
        reads > 0 && reads * 4 <= chunks as u64,
        "{reads} reads of the disk cache for {chunks} chunks"
    );
    let fh = r.open("big.bin").await;
    for _ in 0..200 {
        let off = rng.gen_range(0..big.len() - 4096);
        let got = r.vfs.read(fh, off as u64, 4096).await.unwrap();
        assert!(got[..] == big[off..off + 4096]);
    }
    assert_eq!(pack_bytes(&r), 0, "warm reads went to the store");
}

/// Warm 1 MiB reads across several chunks are answered without a copy
/// where their chunks came from one direct read of the disk cache (the
/// records' data is moved together there); only reads crossing from one
/// such read to the next are copied. Each such copy cost a fifth of the
/// daemon's CPU in a warm `cat`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reads_across_chunks_are_not_copied() {
    let (big, f, tmp) = big_file_cached(6, 48).await;
    let r = reader(&f, tmp.path(), ReadConfig::default(), 1 << 30);
    r.manifest().await;
    let chunks = r.manifest().await.chunks.len();
    assert!(chunks >= 2 * 48, "{chunks} chunks: reads must span several");
    assert!(r.read_all("big.bin", MIB as u32).await == big);
    let copied = r.vfs.source().stats.copied_reads.load(Ordering::Relaxed);
    let runs = r.vfs.source().disk().run_reads();
    eprintln!("{copied} of 48 reads copied; {runs} reads of the disk cache");
    assert!(
        copied <= runs,
        "{copied} reads copied, {runs} reads of the cache"
    );
    assert_eq!(pack_bytes(&r), 0, "warm reads went to the store");
}

/// The READs of one kernel readahead batch (up to 8 MiB) are handled on
/// several threads in any order. One handled after later ones still finds
/// its chunks planned, so a warm read takes each chunk from the disk cache
/// once: chunks used to be let go of 4 MiB behind the READ being handled,
/// and the late READ read its chunks from the disk again (a warm `cat`
/// waited 10-15 ms for it every 16 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_a_batch_in_any_order_keep_their_chunks() {
    let (big, f, tmp) = big_file_cached(7, 48).await;
    let r = reader(&f, tmp.path(), ReadConfig::default(), 1 << 30);
    let chunks = r.manifest().await.chunks.len() as u64;
    let disk = r.vfs.source().disk().clone();
    disk.flush_counters();
    let hits0 = disk.stats().unwrap().hits;
    let fh = r.open("big.bin").await;
    // Batches of 8 READs of 1 MiB, the last of each handled first.
    for batch in (0..48).step_by(8) {
        for i in [7, 0, 1, 2, 3, 4, 5, 6] {
            let off = (batch + i) * MIB;
            let got = r.vfs.read(fh, off as u64, MIB as u32).await.unwrap();
            assert!(got[..] == big[off..off + MIB], "bytes at {off}");
        }
    }
    r.vfs.release(fh);
    disk.flush_counters();
    let hits = disk.stats().unwrap().hits - hits0;
    assert!(
        hits <= chunks + chunks / 20,
        "{hits} reads of chunks from the disk cache for {chunks} chunks"
    );
    assert_eq!(pack_bytes(&r), 0, "warm reads went to the store");
}

/// A READ of the kernel's readahead handled late (behind the stream, within
/// its window) keeps the window: it used to drop it, and every chunk of the
/// dropped window was read from the disk cache again (a warm `cat` read 1.6x
/// the file's bytes from disk). Records are read close to once each, also
/// where requests of the cold read admitted a file's chunks out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_kernel_read_keeps_the_window() {
    let (big, f, tmp) = big_file(5, 48).await;
    {
        let r = Arc::new(reader(&f, tmp.path(), ReadConfig::default(), 1 << 30));
        // Two readers at once: requests finish, and are admitted, out of order.
        read_concurrently(&r, "big.bin", &[1 << 20, 128 << 10], &big).await;
        r.vfs.source().flush_writes(Duration::from_secs(10)).await;
    }
    let r = reader(&f, tmp.path(), ReadConfig::default(), 1 << 30);
    r.manifest().await;
    let fh = r.open("big.bin").await;
    let mut off = 0usize;
    while off < big.len() {
        let got = r.vfs.read(fh, off as u64, MIB as u32).await.unwrap();
        assert!(got[..] == big[off..off + MIB], "bytes at {off}");
        off += MIB;
        if off == 14 * MIB {
            // Late: 9 MiB behind the furthest read (beyond the 8 MiB spread).
            let late = 5 * MIB;
            let got = r.vfs.read(fh, late as u64, MIB as u32).await.unwrap();
            assert!(got[..] == big[late..late + MIB], "bytes at {late}");
        }
    }
    r.vfs.release(fh);
    let read = r.vfs.source().disk().run_read_bytes();
    eprintln!("{read} bytes of records read for {} bytes", big.len());
    assert!(
        read <= big.len() as u64 * 11 / 10,
        "{read} bytes of records read from the disk cache for {} bytes",
        big.len()
    );
    assert_eq!(pack_bytes(&r), 0, "warm reads went to the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_reads_fetch_only_what_they_touch() {
    let (big, f, tmp) = big_file(4, 24).await;
    let r = reader(&f, tmp.path(), ReadConfig::default(), 1 << 30);
    r.manifest().await;
    r.slow.traffic.reset();
    let fh = r.open("big.bin").await;
    let mut touched = 0u64;
    for i in 0..20u64 {
        // Far apart, never continuing the previous read.
        let off = (i * 7919 * 4096 + 12345) % (big.len() as u64 - 4096);
        let got = r.vfs.read(fh, off, 4096).await.unwrap();
        assert!(got[..] == big[off as usize..off as usize + 4096]);
        touched += 1;
    }
    // Each read costs at most its chunk (at most 1 MiB, 256 KiB on average).
    let fetched = pack_bytes(&r);
    assert!(
        fetched <= touched * (1 << 20),
        "{fetched} bytes for {touched} reads"
    );
    assert_eq!(r.slow.traffic.overlap_under("packs/"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_in_random_order_bring_their_packs_whole() {
    data_loader_epoch(ReadConfig::default(), 1.2).await;
}

/// Whole packs draw on the readahead budget itself: with 32 MiB of it, two
/// of these 13 MB packs can be on their way at once. (On a budget of their
/// own, a quarter of it, not one could: small files brought only their 1 MiB
/// blocks, in 41 GETs with 77 block reads of 39 blocks, against 15 and 51.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_packs_draw_on_the_readahead_budget() {
    data_loader_epoch(
        ReadConfig {
            budget: 32 << 20,
            ..ReadConfig::default()
        },
        1.5,
    )
    .await;
}

/// 1 MiB blocks of the packs touched by the requests made so far, counted
/// once per request (an S3 server such as Garage reads each of them whole),
/// and the distinct blocks among them.
fn block_reads(r: &Reader) -> (usize, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut reads = 0;
    for (path, range) in r.slow.traffic.ranges_under("packs/") {
        for b in range.start / MIB as u64..range.end.div_ceil(MIB as u64) {
            reads += 1;
            seen.insert((path.clone(), b));
        }
    }
    (reads, seen.len())
}

/// A data-loader epoch: every small file of a version read whole, in random
/// order, by several readers at once. At most `block_ratio` block reads per
/// block.
async fn data_loader_epoch(cfg: ReadConfig, block_ratio: f64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let files: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| (format!("s/{i:04}"), random_bytes(&mut rng, 100_000)))
        .collect();
    let f = fixture(files.clone()).await;
    let tmp = tempfile::TempDir::new().unwrap();
    let r = Arc::new(reader(&f, tmp.path(), cfg, 1 << 30));
    let m = r.manifest().await;
    let pack_sizes: u64 = {
        let mut ends = std::collections::HashMap::new();
        for c in &m.chunks {
            let e = ends.entry(c.pack).or_insert(0u64);
            *e = (*e).max(c.offset as u64 + c.len as u64);
        }
        ends.values().sum()
    };
    r.slow.traffic.reset();
    let mut order: Vec<usize> = (0..files.len()).collect();
    rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
    let queue = Arc::new(Mutex::new(order));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (r, queue, files) = (r.clone(), queue.clone(), files.clone());
            tokio::spawn(async move {
                loop {
                    let Some(i) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let (name, data) = &files[i];
                    assert!(r.read_all(name, 128 << 10).await == *data, "{name}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let t = &r.slow.traffic;
    let gets = t.ranges_under("packs/").len();
    let fetched = pack_bytes(&r);
    let (blocks, distinct) = block_reads(&r);
    eprintln!(
        "{} files, {} packs ({pack_sizes} bytes): {gets} pack GETs, {fetched} bytes, \
         {blocks} block reads of {distinct} blocks",
        files.len(),
        m.packs.len()
    );
    assert_eq!(t.overlap_under("packs/"), 0, "a byte was fetched twice");
    assert!(fetched <= pack_sizes, "{fetched} bytes of {pack_sizes}");
    // Once a pack's second file is read, the rest of the pack comes in large
    // requests: far fewer GETs than files.
    assert!(
        gets * 8 <= files.len(),
        "{gets} GETs for {} files",
        files.len()
    );
    // Few blocks read twice: a pack comes whole, not block by block with
    // the chunks straddling the blocks' edges fetched on their own.
    assert!(
        blocks as f64 <= distinct as f64 * block_ratio,
        "{blocks} block reads of {distinct} blocks"
    );
    // And it is in the disk cache: a second epoch fetches nothing.
    r.vfs.source().flush_writes(Duration::from_secs(10)).await;
    t.reset();
    for (name, data) in files.iter().rev() {
        assert!(r.read_all(name, 128 << 10).await == *data, "{name}");
    }
    assert_eq!(pack_bytes(&r), 0, "a second epoch went to the store");
}

/// One step of a property-test case.
#[derive(Debug, Clone)]
enum Op {
    /// Sequential reads of `step` bytes from `start`, `count` of them.
    Seq {
        file: usize,
        start: u64,
        step: u32,
        count: u32,
    },
    /// Reads at random offsets (fractions of the file size) on one handle.
    Random { file: usize, at: Vec<(u16, u32)> },
    /// `n` readers of one file at once, each sequential with its own step.
    Concurrent { file: usize, steps: Vec<u32> },
    /// Unmount and mount again over the same disk cache.
    Remount,
}

fn op() -> impl Strategy<Value = Op> {
    let step = prop_oneof![Just(4096u32), Just(131072), Just(1 << 20), 1u32..300_000];
    prop_oneof![
        (0..5usize, 0..4000u64, step.clone(), 1..40u32).prop_map(|(file, s, step, count)| {
            Op::Seq {
                file,
                start: s * 5000,
                step,
                count,
            }
        }),
        (
            0..5usize,
            prop::collection::vec((any::<u16>(), 1..70_000u32), 1..12)
        )
            .prop_map(|(file, at)| Op::Random { file, at }),
        (0..5usize, prop::collection::vec(step, 2..5))
            .prop_map(|(file, steps)| Op::Concurrent { file, steps }),
        Just(Op::Remount),
    ]
}

fn prop_fixture() -> &'static (tokio::runtime::Runtime, Fixture) {
    static F: OnceLock<(tokio::runtime::Runtime, Fixture)> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let shared = random_bytes(&mut rng, 2 * MIB);
        let mut twice = shared.clone();
        twice.extend_from_slice(&random_bytes(&mut rng, 700_000));
        twice.extend_from_slice(&shared);
        let files = vec![
            ("empty".to_string(), vec![]),
            ("tiny".to_string(), b"x".to_vec()),
            ("d/small.bin".to_string(), random_bytes(&mut rng, 100_000)),
            ("d/twice.bin".to_string(), twice),
            ("big.bin".to_string(), random_bytes(&mut rng, 20 * MIB)),
        ];
        let f = rt.block_on(fixture(files));
        (rt, f)
    })
}

async fn run_case(f: &Fixture, ops: &[Op]) {
    let tmp = tempfile::TempDir::new().unwrap();
    // Small windows and requests, so the cases cross many request boundaries.
    let cfg = ReadConfig {
        request_bytes: 1 << 20,
        max_window: 4 << 20,
        ..ReadConfig::default()
    };
    let mut r = Arc::new(reader(f, tmp.path(), cfg.clone(), 2 << 30));
    let mut ranges = vec![];
    for op in ops {
        match op.clone() {
            Op::Seq {
                file,
                start,
                step,
                count,
            } => {
                let (name, data) = &f.files[file];
                let fh = r.open(name).await;
                let mut off = start.min(data.len() as u64);
                for _ in 0..count {
                    let got = r.vfs.read(fh, off, step).await.unwrap();
                    let e = (off as usize + step as usize).min(data.len());
                    assert!(got[..] == data[off as usize..e], "{name} at {off}+{step}");
                    off = e as u64;
                }
                r.vfs.release(fh);
            }
            Op::Random { file, at } => {
                let (name, data) = &f.files[file];
                let fh = r.open(name).await;
                for (frac, len) in at {
                    let off = data.len() as u64 * frac as u64 / 65536;
                    let got = r.vfs.read(fh, off, len).await.unwrap();
                    let e = (off as usize + len as usize).min(data.len());
                    assert!(got[..] == data[off as usize..e], "{name} at {off}+{len}");
                }
                r.vfs.release(fh);
            }
            Op::Concurrent { file, steps } => {
                let (name, data) = &f.files[file];
                let tasks: Vec<_> = steps
                    .into_iter()
                    .map(|step| {
                        let (r, name, data) = (r.clone(), name.clone(), data.clone());
                        tokio::spawn(async move { r.read_all(&name, step).await == data })
                    })
                    .collect();
                for t in tasks {
                    assert!(
                        t.await.unwrap(),
                        "{name}: a concurrent reader got wrong bytes"
                    );
                }
            }
            Op::Remount => {
                // Readahead (and whole packs fetched for small files) may
                // still be on its way; a real unmount lets it go, but then
                // the next mount fetches it again, which this test counts.
                let t = std::time::Instant::now();
                while r.vfs.source().in_flight() > 0 {
                    assert!(
                        t.elapsed() < Duration::from_secs(20),
                        "fetches never settled"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                r.vfs.source().flush_writes(Duration::from_secs(10)).await;
                ranges.extend(r.slow.traffic.ranges_under("packs/"));
                r = Arc::new(reader(f, tmp.path(), cfg.clone(), 2 << 30));
            }
        }
    }
    ranges.extend(r.slow.traffic.ranges_under("packs/"));
    // Never a byte twice, over the whole case (remounts included: what was
    // fetched is in the disk cache).
    ranges.sort_by(|a, b| (&a.0, a.1.start).cmp(&(&b.0, b.1.start)));
    for w in ranges.windows(2) {
        assert!(
            w[0].0 != w[1].0 || w[1].1.start >= w[0].1.end,
            "overlapping GETs of {}: {:?} and {:?}",
            w[0].0,
            w[0].1,
            w[1].1
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_interleavings_read_the_right_bytes(ops in prop::collection::vec(op(), 1..8)) {
        let (rt, f) = prop_fixture();
        rt.block_on(run_case(f, &ops));
    }
}
