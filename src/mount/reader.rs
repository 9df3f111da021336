//! Verified chunk bytes for the mount: where they come from and how they are
//! fetched.
//!
//! [`ChunkSource`] answers "give me this chunk" from, in order: a fetch
//! already in flight (so concurrent readers of one chunk share one fetch),
//! the chunks waiting for the disk-cache writer, the disk cache, the store.
//! Store fetches are planned in byte ranges of packs, not chunk by chunk: a
//! run of chunks that lie back to back in one pack becomes large ranged GETs
//! whose boundaries fall on 1 MiB multiples of the pack (the block size of S3
//! servers such as Garage, so no block is read for two requests); a
//! stream's readahead leaves the chunks past its last request's last aligned
//! offset to its next request, so its top-ups meet on those multiples too
//! ([`ChunkSource::plan_stream`]). Bodies are
//! streamed into one buffer per request, copied once: each chunk is a slice
//! of it, BLAKE3-verified and handed to its readers as soon as its last byte
//! arrives, while the rest of the request is still on the wire; a chunk that
//! straddles two requests is put together from both. A read spanning several
//! chunks of one request is answered with one slice of that buffer
//! ([`concat`]). Verified chunks go to the disk cache through one writer
//! thread with a bounded queue, a request's chunks together, which admits
//! them in batches.
//!
//! Each request is opened, timed and its chunks verified with the pack
//! reading primitives of `src/format/fetch.rs`. A request that makes no
//! progress for the configured timeout fails its chunks, so a dead store
//! gives EIO, not a hang. Per-file readahead (which
//! chunks to ask for, and when) lives in [`crate::mount::readahead`].

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::mpsc::OwnedPermit;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::catalog::{Admit, Body, BufferPool, DirectFile, DiskCache, FillBuf, Origin};
use crate::format::{open_range, verify_chunk, ChunkError, FetchError};
use crate::format::{to_hex, DigestMap, Hash, PackId};
use crate::format::{ChunkRef, Entry, Manifest, PACK_TARGET};
use crate::mount::in_order::start_in_order;
use crate::store::{Store, StoreError};

/// Why a chunk could not be read. Cloned to every reader waiting for the
/// same fetch (single flight), so causes are shared, not copied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store error: {0}")]
    Store(#[source] Arc<StoreError>),
    /// The response stopped before the whole range arrived.
    #[error("store error: response ended early")]
    Ended,
    /// A pack of a local store could not be opened or read.
    #[error("store error: pack {pack}: {source}")]
    LocalPack {
        pack: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The blocking task reading a local pack failed.
    #[error("store error: {0}")]
    Task(#[source] Arc<tokio::task::JoinError>),
    /// The fetch a reader waited for was dropped without an answer.
    #[error("store error: fetch abandoned")]
    Abandoned,
    #[error("{0}")]
    Corrupt(#[source] Arc<ChunkError>),
}

impl From<FetchError> for ReadError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Timeout(t) => ReadError::Timeout(t),
            FetchError::Store(e) => ReadError::Store(Arc::new(e)),
            FetchError::Chunk(e) => ReadError::Corrupt(Arc::new(e)),
            FetchError::Ended => ReadError::Ended,
        }
    }
}

/// Every failure to produce verified bytes is EIO: never wrong data.
impl crate::store::ToErrno for ReadError {
    fn errno(&self) -> libc::c_int {
        libc::EIO
    }
}

/// Verified bytes of a chunk, or of a part of one.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub bytes: Bytes,
    /// The buffer the bytes lie in: a response of the store (all chunks of
    /// one request lie back to back in one buffer), or 0 for bytes with a
    /// buffer of their own. Lets a read that spans chunks of one request be
    /// answered with one slice instead of a copy ([`concat`]).
    pub buf: u64,
}

impl Chunk {
    fn own(bytes: Bytes) -> Chunk {
        Chunk { bytes, buf: 0 }
    }

    pub fn slice(&self, r: Range<usize>) -> Chunk {
        Chunk {
            bytes: self.bytes.slice(r),
            buf: self.buf,
        }
    }
}

/// One sequential stream counted in [`ChunkSource::budget_share`].
pub struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ids of store response buffers (0 is "a buffer of its own").
static NEXT_BUF: AtomicU64 = AtomicU64::new(1);

/// Free buffers of store responses and of a local store's pack reads kept
/// for reuse.
const POOL_BYTES: usize = 64 << 20;

/// Requests smaller than this get a buffer of their own.
const POOLED_MIN: usize = 1 << 20;

/// Reads of a cached chunk up to this size are done on the calling thread.
const INLINE_DISK_READ: usize = 64 << 10;
/// Whole cached chunks up to this size that a read needs at once are read on
/// the calling thread too: a small file of a data-loader epoch is one such
/// chunk, and handing its read to the blocking pool and back cost two thread
/// switches per file.
const INLINE_CHUNK_READ: u32 = 256 << 10;

/// Where a store response's frames are gathered: a pooled buffer, or for
/// a small request a buffer of its own.
enum Gather {
    Pooled(FillBuf),
    Own(BytesMut),
}

impl Gather {
    fn new(pool: &Arc<BufferPool>, n: usize) -> Gather {
        if n < POOLED_MIN {
            Gather::Own(BytesMut::with_capacity(n))
        } else {
            Gather::Pooled(pool.fill_buf(n))
        }
    }

    fn extend(&mut self, s: &[u8]) {
        match self {
            Gather::Pooled(b) => b.extend(s),
            Gather::Own(b) => b.extend_from_slice(s),
        }
    }

    fn split_to(&mut self, n: usize) -> Bytes {
        match self {
            Gather::Pooled(b) => b.split_to(n),
            Gather::Own(b) => b.split_to(n).freeze(),
        }
    }
}

/// Back-to-back slices of one buffer, seen as one slice.
struct Joined {
    _parts: Vec<Bytes>,
    ptr: usize,
    len: usize,
}

impl AsRef<[u8]> for Joined {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is exactly the union of `_parts`, which
        // lie back to back in one allocation (checked in `concat`: same
        // buffer id, each part starting where the previous ends) and are
        // kept alive, and never written, while `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

/// The bytes of `parts`, in order, as one `Bytes`, and whether they were
/// copied: not when they are back-to-back slices of one buffer (a store
/// response, or a direct read of the disk cache: the common case of a
/// 1 MiB read across several chunks), else copied once.
pub fn concat(mut parts: Vec<Chunk>) -> (Bytes, bool) {
    match parts.len() {
        0 => return (Bytes::new(), false),
        1 => return (parts.pop().expect("one part").bytes, false),
        _ => {}
    }
    let buf = parts[0].buf;
    let adjacent = buf != 0
        && parts.windows(2).all(|w| {
            w[1].buf == buf
                && w[0].bytes.as_ptr() as usize + w[0].bytes.len() == w[1].bytes.as_ptr() as usize
        });
    let len: usize = parts.iter().map(|p| p.bytes.len()).sum();
    if adjacent {
        let ptr = parts[0].bytes.as_ptr() as usize;
        let joined = Joined {
            _parts: parts.into_iter().map(|p| p.bytes).collect(),
            ptr,
            len,
        };
        return (Bytes::from_owner(joined), false);
    }
    let mut out = BytesMut::with_capacity(len);
    for p in parts {
        out.extend_from_slice(&p.bytes);
    }
    (out.freeze(), true)
}

/// Where the answer for a chunk on its way goes.
type Sender = futures::channel::oneshot::Sender<Result<Chunk, ReadError>>;

/// A chunk on its way: shared by everyone who wants it.
pub type Pending = Shared<BoxFuture<'static, Result<Chunk, ReadError>>>;

/// Tunables of the read path. The defaults are what docs/mount.md describes
/// and what the benchmarks measured.
#[derive(Debug, Clone)]
pub struct ReadConfig {
    /// Target size of one ranged GET.
    pub request_bytes: u64,
    /// Request boundaries inside a pack fall on multiples of this.
    pub align: u64,
    /// First readahead window of a file read from its start.
    pub initial_window: u64,
    /// Largest readahead window of one open file.
    pub max_window: u64,
    /// Bytes of readahead (fetched or being fetched, not yet read) across all
    /// open files: what bounds the daemon's memory with many readers.
    pub budget: u64,
    /// Disk-cache reads running at once (readahead from the cache, up to
    /// `RUN_BYTES` each). This VM's disk reads one place fastest with about
    /// 32 MiB in flight (fio, direct, 4 MiB blocks: 2,024-2,165 MiB/s at
    /// queue depth 8, 1,040-2,172 at 4); a warm `cat` with 8 against 4: +10%
    /// while the disk was fast, level while it was slow (docs/benchmarks.md).
    pub disk_parallel: usize,
    /// Requests whose verified chunks may wait for the disk-cache writer: a
    /// request reserves its place before it starts, so this bounds that
    /// memory, and it must not be lower than the requests the readahead
    /// budget keeps in flight (128 MiB / 8 MiB).
    pub write_queue: usize,
    /// Target size of one read of a local store's pack (a whole pack).
    pub local_request_bytes: u64,
    /// Reads of a local store's packs running at once: this VM's disk read
    /// 16 MiB direct reads at 1,893 MiB/s from 2 places at once and at
    /// 1,036 MiB/s from 4 (fio), so few large reads beat many.
    pub local_parallel: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            request_bytes: 8 << 20,
            align: 1 << 20,
            initial_window: 1 << 20,
            max_window: 64 << 20,
            budget: 128 << 20,
            disk_parallel: 8,
            write_queue: 16,
            local_request_bytes: PACK_TARGET as u64,
            local_parallel: 2,
        }
    }
}

/// Counters of the store traffic this source caused.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    /// Reads spanning chunks that were not back to back in memory, so
    /// answered with a copy ([`concat`]).
    pub copied_reads: AtomicU64,
}

/// One chunk being put together from one or more requests.
struct Assembly {
    pack: PackId,
    c: ChunkRef,
    state: Mutex<AsmState>,
}

#[derive(Default)]
struct AsmState {
    /// Pieces received so far: (offset in the chunk, bytes, buffer id).
    pieces: Vec<(u32, Bytes, u64)>,
    filled: u32,
    done: Option<futures::channel::oneshot::Sender<Result<Chunk, ReadError>>>,
}

/// The chunks at the end of a stream's last request, from the last aligned
/// offset of the request to the end of the chunks planned: left to the
/// request that continues the run, so that a stream's top-ups meet at a
/// block boundary of the pack. (Top-ups end at chunk boundaries, inside an
/// S3 server's 1 MiB blocks, and Garage read the block for both requests:
/// 1.10x the bytes with eight readers.)
struct Tail {
    pack: PackId,
    /// Aligned offset in the pack where the owed bytes begin.
    from: u64,
    /// End of the last chunk planned: where the next request starts.
    to: u64,
    /// Chunks overlapping `from..to` (the first may have its head already).
    asms: Vec<Arc<Assembly>>,
}

/// Tails waiting at most: past that the oldest is fetched on its own (each
/// holds the head of a chunk, in a response buffer, until it is complete).
const MAX_TAILS: usize = 16;

/// What earlier small-file reads of a pack say about the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallReads {
    First,
    Again,
    /// The rest of the pack was planned already.
    PackFetched,
}

/// Verified chunks waiting for the disk-cache writer: still served from here.
type Writing = Arc<Mutex<DigestMap<Hash, Chunk>>>;

/// Where chunk bytes come from, with caching and single-flight.
pub struct ChunkSource {
    store: Store,
    disk: Arc<DiskCache>,
    inflight: Mutex<DigestMap<Hash, Pending>>,
    /// Tails of streams' requests, owed to the requests that continue them.
    tails: Mutex<Vec<Tail>>,
    /// The runtime this source was made in, for work started outside it.
    runtime: Option<tokio::runtime::Handle>,
    writing: Writing,
    timeout: Duration,
    cfg: ReadConfig,
    budget: Arc<Semaphore>,
    disk_reads: Arc<Semaphore>,
    /// The verified chunks of one request at a time, for the writer.
    writes: tokio::sync::mpsc::Sender<Vec<Admit>>,
    /// Pack indexes of recently read manifests (a `Weak` pins the address,
    /// so a pointer is never mistaken for a newer manifest's).
    pack_indexes: Mutex<Vec<(std::sync::Weak<Manifest>, Arc<PackIndex>)>>,
    /// Disk-cache writes queued or running.
    pending_writes: Arc<AtomicUsize>,
    /// Open files reading sequentially, sharing the readahead budget.
    streams: Arc<AtomicUsize>,
    /// Buffers of store responses and local pack reads.
    buffers: Arc<BufferPool>,
    /// Small files read whole so far, by pack (see `readahead::neighbours`).
    small_reads: Mutex<lru::LruCache<PackId, u32>>,
    /// A local store's pack directory: its packs are read directly.
    local_packs: Option<LocalPacks>,
    pub stats: SourceStats,
}

/// Open pack files of a local store, read directly into pooled buffers.
struct LocalPacks {
    dir: std::path::PathBuf,
    open: Mutex<lru::LruCache<PackId, Arc<DirectFile>>>,
    /// Reads running at once (`ReadConfig::local_parallel`).
    reads: Arc<Semaphore>,
}

impl LocalPacks {
    fn file(&self, pack: &PackId) -> std::io::Result<Arc<DirectFile>> {
        if let Some(f) = self.open.lock().expect("packs lock").get(pack) {
            return Ok(f.clone());
        }
        let f = Arc::new(DirectFile::open(&self.dir.join(to_hex(pack)))?);
        self.open.lock().expect("packs lock").put(*pack, f.clone());
        Ok(f)
    }
}

fn local_pack_error(pack: &PackId, e: std::io::Error) -> ReadError {
    ReadError::LocalPack {
        pack: to_hex(pack),
        source: Arc::new(e),
    }
}

/// Where a chunk lies in its pack (what the disk cache files it under).
fn origin(pack: PackId, c: ChunkRef) -> Origin {
    Origin {
        pack,
        offset: c.offset,
    }
}

fn ready(c: Chunk) -> Pending {
    futures::future::ready(Ok(c)).boxed().shared()
}

/// The disk-cache writer: admits verified chunks in batches (one vectored
/// write each), off the runtime's threads.
fn spawn_writer(
    disk: Arc<DiskCache>,
    writing: Writing,
    pending: Arc<AtomicUsize>,
    mut rx: tokio::sync::mpsc::Receiver<Vec<Admit>>,
) {
    // A batch never outgrows a quarter of the cache, so it fits after eviction.
    let max_batch = (disk.limit() / 4).clamp(1 << 20, 16 << 20) as usize;
    // Ends when the source (the only sender) is dropped.
    std::thread::Builder::new()
        .name("cache-writer".into())
        .spawn(move || {
            // Batches failed in a row.
            let mut failed = 0u64;
            while let Some(mut batch) = rx.blocking_recv() {
                // Let a few more arrive: fewer, larger writes, and far fewer
                // wake-ups of this thread (latency does not matter here).
                std::thread::sleep(Duration::from_millis(2));
                let mut bytes: usize = batch.iter().map(|a| a.body.len()).sum();
                while bytes < max_batch && batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(more) => {
                            bytes += more.iter().map(|a| a.body.len()).sum::<usize>();
                            batch.extend(more);
                        }
                        Err(_) => break,
                    }
                }
                match disk.put_batch(&batch) {
                    Ok(()) if failed > 0 => {
                        tracing::info!(
                            "cache writes resumed; {failed} batches before went uncached"
                        );
                        failed = 0;
                    }
                    Ok(()) => {}
                    // Once per run of failures: a full disk fails every
                    // batch, and the reads go on from the store regardless.
                    Err(e) if failed == 0 => {
                        failed = 1;
                        tracing::warn!(
                            "cache write failed: {e}; chunks read meanwhile are served but not \
                             cached (later failures at debug level until a write succeeds)"
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::debug!("cache write failed: {e}");
                    }
                }
                {
                    let mut w = writing.lock().expect("writing lock");
                    for a in &batch {
                        w.remove(&a.hash);
                    }
                }
                pending.fetch_sub(batch.len(), Ordering::SeqCst);
            }
        })
        .expect("spawn cache writer thread");
}

impl ChunkSource {
    pub fn new(store: Store, disk: Arc<DiskCache>, timeout: Duration) -> Arc<ChunkSource> {
        Self::with_config(store, disk, timeout, ReadConfig::default())
    }

    pub fn with_config(
        store: Store,
        disk: Arc<DiskCache>,
        timeout: Duration,
        cfg: ReadConfig,
    ) -> Arc<ChunkSource> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Admit>>(cfg.write_queue.max(1));
        let pending_writes: Arc<AtomicUsize> = Arc::default();
        let writing: Writing = Arc::default();
        spawn_writer(disk.clone(), writing.clone(), pending_writes.clone(), rx);
        let local_packs = store.local_packs();
        let local_parallel = cfg.local_parallel.max(1);
        Arc::new(ChunkSource {
            store,
            disk,
            inflight: Mutex::default(),
            tails: Mutex::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            writing,
            timeout,
            budget: Arc::new(Semaphore::new(cfg.budget as usize)),
            disk_reads: Arc::new(Semaphore::new(cfg.disk_parallel.max(1))),
            cfg,
            writes: tx,
            pack_indexes: Mutex::default(),
            pending_writes,
            streams: Arc::default(),
            buffers: BufferPool::new(POOL_BYTES),
            small_reads: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(4096).expect("nonzero"),
            )),
            local_packs: local_packs.map(|dir| LocalPacks {
                dir,
                open: Mutex::new(lru::LruCache::new(
                    std::num::NonZeroUsize::new(64).expect("nonzero"),
                )),
                reads: Arc::new(Semaphore::new(local_parallel)),
            }),
            stats: SourceStats::default(),
        })
    }

    /// Response and pack-read buffers mapped afresh so far (tests: buffers
    /// are reused across requests).
    pub fn buffers_mapped(&self) -> u64 {
        self.buffers.mapped()
    }

    pub fn disk(&self) -> &Arc<DiskCache> {
        &self.disk
    }

    /// A file no larger than the first readahead window was opened: it is
    /// most likely read whole next (a data-loader epoch), so its cached
    /// records start on their way into the page cache now, and its READ, a
    /// round trip later, finds them there or in flight. A warm pass over
    /// 20,000 files of 100 KiB took 5-16% less time with it, with less time
    /// in iowait (docs/benchmarks.md). Chunks not cached: nothing happens.
    pub fn opened_small(&self, m: &Manifest, e: &Entry) {
        for &c in m.chunks_of(e) {
            self.disk
                .will_need(&c.hash, origin(m.packs[c.pack as usize], c));
        }
    }

    pub fn config(&self) -> &ReadConfig {
        &self.cfg
    }

    /// The size of the requests reads are planned in: whole packs of a local
    /// store, else [`ReadConfig::request_bytes`].
    pub(crate) fn request_target(&self) -> u64 {
        match self.local_packs {
            Some(_) => self.cfg.local_request_bytes,
            None => self.cfg.request_bytes,
        }
    }

    pub(crate) fn budget(&self) -> &Arc<Semaphore> {
        &self.budget
    }

    /// Counts one more sequential stream until the guard is dropped.
    pub(crate) fn join_stream(&self) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.streams.clone())
    }

    /// One sequential stream's share of the readahead budget right now.
    pub(crate) fn budget_share(&self) -> u64 {
        self.cfg.budget / self.streams.load(Ordering::Relaxed).max(1) as u64
    }

    /// Waits (bounded) until background disk-cache writes have finished and
    /// their index rows are written, so chunks read just before an unmount
    /// are in the cache for the next mount.
    pub async fn flush_writes(&self, limit: Duration) {
        let start = std::time::Instant::now();
        while self.pending_writes.load(Ordering::SeqCst) > 0 && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Their index rows too, so another process (the next mount) sees them.
        self.disk.flush_counters();
    }

    /// Chunks on their way (from the store or the disk cache) right now.
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().expect("inflight").len()
    }

    fn writing_get(&self, h: &Hash) -> Option<Chunk> {
        self.writing.lock().expect("writing lock").get(h).cloned()
    }

    /// True when a chunk is on its way, waiting to be written, or in the disk cache.
    pub fn has(&self, h: &Hash) -> bool {
        self.inflight.lock().expect("inflight").contains_key(h)
            || self.writing.lock().expect("writing lock").contains_key(h)
            || self.disk.contains(h)
    }

    /// Counts a small file of `pack` read whole.
    pub fn note_small_read(&self, pack: &PackId) -> SmallReads {
        let mut g = self.small_reads.lock().expect("small reads lock");
        let n = g.get(pack).copied().unwrap_or(0);
        if n == u32::MAX {
            return SmallReads::PackFetched;
        }
        g.put(*pack, n + 1);
        if n == 0 {
            SmallReads::First
        } else {
            SmallReads::Again
        }
    }

    /// Records that the rest of `pack` was planned.
    pub fn note_pack_fetched(&self, pack: &PackId) {
        self.small_reads
            .lock()
            .expect("small reads lock")
            .put(*pack, u32::MAX);
    }

    /// The pack index of a manifest, built on first use.
    pub fn pack_index(&self, m: &Arc<Manifest>) -> Arc<PackIndex> {
        let mut g = self.pack_indexes.lock().expect("pack indexes");
        g.retain(|(w, _)| w.strong_count() > 0);
        if let Some((_, pi)) = g
            .iter()
            .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(m)))
        {
            return pi.clone();
        }
        let pi = Arc::new(PackIndex::new(m));
        if g.len() >= 4 {
            g.remove(0);
        }
        g.push((Arc::downgrade(m), pi.clone()));
        pi
    }

    /// A whole verified chunk.
    pub async fn chunk(self: &Arc<Self>, pack: PackId, c: ChunkRef) -> Result<Bytes, ReadError> {
        Ok(self.chunk_part(pack, c, 0..c.len).await?.bytes)
    }

    /// Bytes `range` of a verified chunk. A chunk in the disk cache is read
    /// only over `range` (checked block by block), not whole.
    pub async fn chunk_part(
        self: &Arc<Self>,
        pack: PackId,
        c: ChunkRef,
        range: Range<u32>,
    ) -> Result<Chunk, ReadError> {
        let r = range.start as usize..range.end as usize;
        let shared = self
            .inflight
            .lock()
            .expect("inflight")
            .get(&c.hash)
            .cloned();
        if let Some(p) = shared {
            return Ok(p.await?.slice(r));
        }
        if let Some(b) = self.writing_get(&c.hash) {
            return Ok(b.slice(r));
        }
        if range.len() < c.len as usize && self.disk.contains(&c.hash) {
            let disk = self.disk.clone();
            let at = origin(pack, c);
            let rr = range.clone();
            // A small read of a cached chunk is one short pread: done here,
            // it needs no other thread (the caller may be a FUSE session
            // thread answering a cache hit inline). Larger ones go to the
            // blocking pool.
            let got = if range.len() <= INLINE_DISK_READ {
                disk.read(&c.hash, c.len, rr, at)
            } else {
                tokio::task::spawn_blocking(move || disk.read(&c.hash, c.len, rr, at))
                    .await
                    .ok()
                    .flatten()
            };
            if let Some(b) = got {
                return Ok(Chunk::own(b));
            }
        }
        let p = self.plan(&[(pack, c)], 1).pop().expect("one planned chunk");
        Ok(p.await?.slice(r))
    }

    /// Makes sure each chunk is on its way and returns one [`Pending`] per
    /// chunk, in order. Chunks waiting for the cache writer are ready at
    /// once; chunks in flight are shared; chunks in the disk cache are read
    /// from it in the background; the rest are fetched from the store in
    /// runs of adjacent chunks, each run in ranged GETs split at aligned
    /// offsets. Claiming happens under one lock, so two planners never
    /// fetch the same chunk. Of the first `now` chunks (the ones the caller
    /// waits for), small cached ones are read on the calling thread.
    pub fn plan(self: &Arc<Self>, chunks: &[(PackId, ChunkRef)], now: usize) -> Vec<Pending> {
        self.plan_stream(chunks, now, false)
    }

    /// [`Self::plan`] for a stream's readahead. `open_end`: the stream's
    /// next chunks follow the last one in its pack, so the last request
    /// stops at its last aligned offset and the chunks past it are left as a
    /// [`Tail`] for the next top-up's first request (or fetched on their own
    /// once a reader waits for one of them, or the stream lets go of them:
    /// [`Self::release_tail`]). A request that starts where a tail ends
    /// begins at the tail's aligned offset and brings its chunks.
    pub fn plan_stream(
        self: &Arc<Self>,
        chunks: &[(PackId, ChunkRef)],
        now: usize,
        open_end: bool,
    ) -> Vec<Pending> {
        let mut out = Vec::with_capacity(chunks.len());
        let mut fetch: Vec<Arc<Assembly>> = vec![];
        let mut read_here = vec![];
        let mut from_disk = vec![];
        {
            let mut inflight = self.inflight.lock().expect("inflight");
            for &(pack, c) in chunks {
                if let Some(p) = inflight.get(&c.hash) {
                    out.push(p.clone());
                    continue;
                }
                if let Some(b) = self.writing_get(&c.hash) {
                    out.push(ready(b));
                    continue;
                }
                let (tx, rx) = futures::channel::oneshot::channel();
                let cached = self.disk.contains(&c.hash);
                let p: Pending = if cached {
                    rx.map(|r| r.unwrap_or_else(|_| Err(ReadError::Abandoned)))
                        .boxed()
                        .shared()
                } else {
                    // Waited for: if its bytes are owed by a tail, they are
                    // fetched now.
                    let me = Arc::downgrade(self);
                    let hash = c.hash;
                    async move {
                        if let Some(me) = me.upgrade() {
                            me.tail_wanted(&hash);
                        }
                        rx.await.unwrap_or_else(|_| Err(ReadError::Abandoned))
                    }
                    .boxed()
                    .shared()
                };
                inflight.insert(c.hash, p.clone());
                out.push(p);
                if cached {
                    if out.len() <= now && c.len <= INLINE_CHUNK_READ {
                        read_here.push((pack, c, tx));
                    } else {
                        from_disk.push((pack, c, tx));
                    }
                } else {
                    fetch.push(Arc::new(Assembly {
                        pack,
                        c,
                        state: Mutex::new(AsmState {
                            done: Some(tx),
                            ..Default::default()
                        }),
                    }));
                }
            }
        }
        let target = self.request_target();
        let mut requests = vec![];
        for run in runs(&fetch) {
            let mut split = split_run(run, target, self.cfg.align);
            if let (Some(t), Some((range, asms))) = (
                self.take_tail(run[0].pack, run[0].c.offset as u64),
                split.first_mut(),
            ) {
                range.start = t.from;
                asms.splice(0..0, t.asms);
            }
            requests.extend(split);
        }
        // Tails owed to chunks this plan did not fetch (cached or in flight
        // already): nothing continues them.
        if !self.tails.lock().expect("tails").is_empty() {
            let alone: Vec<_> = chunks
                .iter()
                .filter_map(|&(pack, c)| self.take_tail(pack, c.offset as u64))
                .map(|t| (t.from..t.to, t.asms))
                .collect();
            // They come before this plan's chunks in the file.
            requests.splice(0..0, alone);
        }
        let last = chunks.last().map(|(p, c)| (*p, c.offset));
        // A local store's packs are read directly, in 4 KiB blocks: no
        // server blocks to share.
        if open_end && self.local_packs.is_none() {
            self.leave_tail(&mut requests, last);
        }
        self.spawn_fetches(requests);
        self.spawn_disk_reads(from_disk);
        for (pack, c, tx) in read_here {
            let got = self.disk.get(&c.hash, c.len, origin(pack, c));
            self.disk_read_done(pack, c, tx, got.map(Chunk::own));
        }
        out
    }

    /// Cuts the last request at its last aligned offset if it ends with the
    /// plan's last chunk (`last`), leaving the chunks past that offset as a
    /// tail.
    fn leave_tail(
        self: &Arc<Self>,
        requests: &mut [(Range<u64>, Vec<Arc<Assembly>>)],
        last: Option<(PackId, u32)>,
    ) {
        let Some((range, asms)) = requests.last_mut() else {
            return;
        };
        let Some(a) = asms.last() else { return };
        if last != Some((a.pack, a.c.offset)) {
            return;
        }
        let align = self.cfg.align.max(1);
        let cut = range.end / align * align;
        if cut <= range.start || cut >= range.end {
            return;
        }
        let pack = a.pack;
        let owed: Vec<_> = asms
            .iter()
            .filter(|a| a.c.offset as u64 + a.c.len as u64 > cut)
            .cloned()
            .collect();
        asms.retain(|a| (a.c.offset as u64) < cut);
        let tail = Tail {
            pack,
            from: cut,
            to: range.end,
            asms: owed,
        };
        range.end = cut;
        let mut tails = self.tails.lock().expect("tails");
        tails.push(tail);
        let oldest = (tails.len() > MAX_TAILS).then(|| tails.remove(0));
        drop(tails);
        if let Some(t) = oldest {
            self.fetch_tail(t);
        }
    }

    /// Chunks owed by tails (in flight until a request continues them).
    #[cfg(test)]
    pub fn owed_chunks(&self) -> usize {
        let tails = self.tails.lock().expect("tails");
        tails.iter().map(|t| t.asms.len()).sum()
    }

    /// The tails waiting: (pack, aligned offset, end).
    #[cfg(test)]
    pub fn tails(&self) -> Vec<(PackId, u64, u64)> {
        let tails = self.tails.lock().expect("tails");
        tails.iter().map(|t| (t.pack, t.from, t.to)).collect()
    }

    fn take_tail(&self, pack: PackId, to: u64) -> Option<Tail> {
        let mut tails = self.tails.lock().expect("tails");
        let i = tails.iter().position(|t| t.pack == pack && t.to == to)?;
        Some(tails.remove(i))
    }

    /// A reader waits for chunk `hash`: a tail owing its bytes is fetched now.
    fn tail_wanted(self: &Arc<Self>, hash: &Hash) {
        let t = {
            let mut tails = self.tails.lock().expect("tails");
            let Some(i) = tails
                .iter()
                .position(|t| t.asms.iter().any(|a| a.c.hash == *hash))
            else {
                return;
            };
            tails.remove(i)
        };
        tracing::debug!(pack = %to_hex(&t.pack), from = t.from, to = t.to, "tail fetched for a reader");
        self.fetch_tail(t);
    }

    /// The stream that left the tail ending at `to` in `pack` will not
    /// continue it (it ended, or moved elsewhere): fetched on its own.
    pub fn release_tail(self: &Arc<Self>, pack: PackId, to: u64) {
        if let Some(t) = self.take_tail(pack, to) {
            self.fetch_tail(t);
        }
    }

    /// Fetches a tail on its own. Also from outside the runtime: a stream
    /// is let go of when its file handle is dropped, which may happen on a
    /// FUSE session thread.
    fn fetch_tail(self: &Arc<Self>, t: Tail) {
        let _entered = match tokio::runtime::Handle::try_current() {
            Ok(_) => None,
            Err(_) => match &self.runtime {
                Some(h) => Some(h.enter()),
                // No runtime left (shutting down): nobody will read them.
                None => {
                    for a in &t.asms {
                        self.fail(a, ReadError::Abandoned);
                    }
                    return;
                }
            },
        };
        self.spawn_fetches(vec![(t.from..t.to, t.asms)]);
    }

    /// Hands a chunk read from the disk cache to its readers; one that was
    /// evicted or found corrupt (and dropped) is fetched from the store.
    fn disk_read_done(self: &Arc<Self>, pack: PackId, c: ChunkRef, tx: Sender, got: Option<Chunk>) {
        match got {
            Some(chunk) => {
                self.inflight.lock().expect("inflight").remove(&c.hash);
                let _ = tx.send(Ok(chunk));
            }
            None => {
                let asm = Arc::new(Assembly {
                    pack,
                    c,
                    state: Mutex::new(AsmState {
                        done: Some(tx),
                        ..Default::default()
                    }),
                });
                let range = c.offset as u64..c.offset as u64 + c.len as u64;
                self.spawn_fetches(vec![(range, vec![asm])]);
            }
        }
    }

    /// Reads cached chunks in the background, in groups of records lying
    /// near each other ([`DiskCache::run_groups`]), `disk_parallel` groups
    /// at once, each group one read ([`DiskCache::get_run`]).
    fn spawn_disk_reads(self: &Arc<Self>, chunks: Vec<(PackId, ChunkRef, Sender)>) {
        let names: Vec<_> = chunks.iter().map(|(_, c, _)| (c.hash, c.len)).collect();
        let mut chunks: Vec<_> = chunks.into_iter().map(Some).collect();
        let groups: Vec<Vec<_>> = self
            .disk
            .run_groups(&names)
            .into_iter()
            .map(|ids| {
                ids.iter()
                    .map(|&i| chunks[i].take().expect("each chunk in one group"))
                    .collect()
            })
            .collect();
        // In file order ([`start_in_order`]): a task per group taking its
        // own read slot ran in the runtime's order, not the plan's.
        let slots = self.disk_reads.clone();
        let me = self.clone();
        let planned = Instant::now();
        start_in_order(
            groups,
            move || slots.clone().acquire_owned().map(Result::ok).boxed(),
            move |group: Vec<(PackId, ChunkRef, Sender)>, permit| {
                let me = me.clone();
                let started = Instant::now();
                tokio::spawn(async move {
                    let items: Vec<_> = group
                        .iter()
                        .map(|(pack, c, _)| (c.hash, c.len, origin(*pack, *c)))
                        .collect();
                    let disk = me.disk.clone();
                    // The permit covers the reads, not the checks after them.
                    let got = tokio::task::spawn_blocking(move || {
                        let running = Instant::now();
                        let mut read = running;
                        let got = disk.get_run(&items, || {
                            read = Instant::now();
                            drop(permit)
                        });
                        // Where a readahead read of the cache spends its time:
                        // waiting for a slot, a thread, the disk, the checks.
                        tracing::trace!(
                            bytes = items.iter().map(|i| i.1 as u64).sum::<u64>(),
                            slot_us = started.duration_since(planned).as_micros() as u64,
                            thread_us = running.duration_since(started).as_micros() as u64,
                            read_us = read.duration_since(running).as_micros() as u64,
                            check_us = read.elapsed().as_micros() as u64,
                            "disk run"
                        );
                        got
                    })
                    .await
                    .unwrap_or_default();
                    // Chunks of one direct read lie back to back in its
                    // buffer: a buffer id each, for `concat`.
                    let reads = got.iter().flatten().filter_map(|c| c.read).max();
                    let base =
                        NEXT_BUF.fetch_add(reads.map_or(0, |r| r as u64 + 1), Ordering::Relaxed);
                    let mut got = got.into_iter();
                    for (pack, c, tx) in group {
                        let chunk = got.next().flatten().map(|r| Chunk {
                            bytes: r.bytes,
                            buf: r.read.map_or(0, |k| base + k as u64),
                        });
                        me.disk_read_done(pack, c, tx, chunk);
                    }
                });
            },
        );
    }

    /// Starts `requests` in the order given (file order), each once it has
    /// its place in the writer's queue (while the writer is behind, no new
    /// request starts: the bound on chunks waiting to be written) and, for
    /// a local store, its read slot ([`start_in_order`]).
    fn spawn_fetches(self: &Arc<Self>, requests: Vec<(Range<u64>, Vec<Arc<Assembly>>)>) {
        let me = self.clone();
        let start = self.clone();
        start_in_order(
            requests,
            move || {
                let me = me.clone();
                async move {
                    let slot = me.writes.clone().reserve_owned().await.ok();
                    let read = match &me.local_packs {
                        Some(local) => local.reads.clone().acquire_owned().await.ok(),
                        None => None,
                    };
                    (slot, read)
                }
                .boxed()
            },
            move |(range, asms), (slot, read)| {
                tokio::spawn(start.clone().fetch_range(range, asms, slot, read));
            },
        );
    }

    /// One ranged GET of `range` of a pack, feeding the chunks that overlap
    /// it, holding its place in the writer's queue and (local store) its
    /// read slot.
    async fn fetch_range(
        self: Arc<Self>,
        range: Range<u64>,
        asms: Vec<Arc<Assembly>>,
        slot: Option<OwnedPermit<Vec<Admit>>>,
        read: Option<OwnedSemaphorePermit>,
    ) {
        let Some(first) = asms.first() else { return };
        let pack = first.pack;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(range.end - range.start, Ordering::Relaxed);
        tracing::trace!(pack = %to_hex(&pack), start = range.start, end = range.end, "GET");
        let mut admits = vec![];
        let r = self
            .stream_into(&pack, range.clone(), &asms, &mut admits, read)
            .await;
        self.admit(admits, slot);
        if let Err(e) = r {
            match &e {
                ReadError::Timeout(_) => {
                    tracing::warn!(pack = %to_hex(&pack), ?range, "store fetch timed out")
                }
                _ => tracing::warn!(pack = %to_hex(&pack), ?range, "store fetch failed: {e}"),
            }
            for a in &asms {
                self.fail(a, e.clone());
            }
        }
    }

    /// Receives `range` of a pack and hands each chunk's piece to its
    /// assembly as soon as it is complete. The bytes are copied once, into
    /// one buffer per request, and pieces are slices of it; a response that
    /// arrives in one piece (a local store) is sliced without any copy.
    async fn stream_into(
        &self,
        pack: &PackId,
        range: Range<u64>,
        asms: &[Arc<Assembly>],
        admits: &mut Vec<Admit>,
        read: Option<OwnedSemaphorePermit>,
    ) -> Result<(), ReadError> {
        let total = (range.end - range.start) as usize;
        let buf_id = NEXT_BUF.fetch_add(1, Ordering::Relaxed);
        if let Some(local) = &self.local_packs {
            match local.file(pack) {
                Ok(file) => {
                    return self
                        .read_local(file, range, asms, buf_id, admits, read)
                        .await
                }
                // Gone: gc rewrote it; read through its forward records below.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(local_pack_error(pack, e)),
            }
        }
        let mut body = open_range(&self.store, pack, range.clone(), self.timeout).await?;
        // Bytes received up to `pos`; whole when it came in one frame.
        let mut pos = range.start;
        let mut whole: Option<Bytes> = None;
        let mut acc: Option<Gather> = None;
        let mut i = 0;
        while let Some(frame) = body.next_frame().await? {
            let n = frame.len();
            if pos == range.start && n == total {
                whole = Some(frame);
            } else {
                acc.get_or_insert_with(|| Gather::new(&self.buffers, total))
                    .extend(&frame);
            }
            pos += n as u64;
            // Every chunk whose piece of this request is complete.
            while let Some(a) = asms.get(i) {
                let start = (a.c.offset as u64).max(range.start);
                let end = (a.c.offset as u64 + a.c.len as u64).min(range.end);
                if end > pos {
                    break;
                }
                let piece = match (&whole, &mut acc) {
                    (Some(w), _) => {
                        w.slice((start - range.start) as usize..(end - range.start) as usize)
                    }
                    (None, Some(acc)) => acc.split_to((end - start) as usize),
                    (None, None) => Bytes::new(),
                };
                let at = (start - a.c.offset as u64) as u32;
                self.deposit(a, at, piece, buf_id, admits);
                i += 1;
            }
        }
        Ok(())
    }

    /// [`Self::stream_into`] for a local store: the range of the pack is
    /// read directly (no page cache, no copy by the CPU) and sliced into
    /// chunks.
    async fn read_local(
        &self,
        file: Arc<DirectFile>,
        range: Range<u64>,
        asms: &[Arc<Assembly>],
        buf_id: u64,
        admits: &mut Vec<Admit>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), ReadError> {
        let pack = asms[0].pack;
        let total = (range.end - range.start) as usize;
        let start = range.start;
        let t = self.timeout;
        let buffers = self.buffers.clone();
        // `permit`: the read slot, taken in request order by
        // [`Self::spawn_fetches`], so the disk sees few streams moving
        // forward, not scattered reads.
        // Chunks wholly inside the range are verified on the blocking
        // thread that read them: hashing 8 MiB on a runtime thread held up
        // the READs waiting there. Their block checksums (all a local
        // store's record keeps) are computed there too, while the bytes are
        // at hand.
        let sums_wanted = self.disk.is_local();
        let whole_chunks: Vec<ChunkRef> = asms
            .iter()
            .map(|a| a.c)
            .filter(|c| c.offset as u64 >= start && c.offset as u64 + c.len as u64 <= range.end)
            .collect();
        // Timings for the trace below (scripts/bench/diag/local-read-trace.sh).
        let queued = Instant::now();
        let read = tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let whole = file.read_at(&buffers, start, total);
            let t1 = Instant::now();
            // The next read starts while this one is hashed.
            drop(permit);
            let whole = whole?;
            let verdicts: Vec<(Result<(), ChunkError>, Option<Body>)> = whole_chunks
                .iter()
                .map(|c| {
                    let at = (c.offset as u64 - start) as usize;
                    let bytes = &whole[at..at + c.len as usize];
                    let verdict = verify_chunk(&pack, c, bytes);
                    let sums = (verdict.is_ok() && sums_wanted).then(|| Body::sums_of(bytes));
                    (verdict, sums)
                })
                .collect();
            tracing::trace!(
                pack = %to_hex(&pack),
                start,
                len = total,
                queued_us = (t0 - queued).as_micros() as u64,
                read_us = (t1 - t0).as_micros() as u64,
                hash_us = t1.elapsed().as_micros() as u64,
                "local pack read"
            );
            Ok::<_, std::io::Error>((whole, verdicts))
        });
        let (whole, verdicts) = tokio::time::timeout(t, read)
            .await
            .map_err(|_| ReadError::Timeout(t))?
            .map_err(|e| ReadError::Task(Arc::new(e)))?
            .map_err(|e| local_pack_error(&pack, e))?;
        let mut verdicts = verdicts.into_iter();
        for a in asms {
            let s = (a.c.offset as u64).max(range.start);
            let e = (a.c.offset as u64 + a.c.len as u64).min(range.end);
            let piece = whole.slice((s - range.start) as usize..(e - range.start) as usize);
            let at = (s - a.c.offset as u64) as u32;
            if e - s == a.c.len as u64 {
                let (verdict, sums) = verdicts.next().expect("a verdict per whole chunk");
                if let Some((chunk, tx)) = add_piece(a, at, piece, buf_id) {
                    self.publish(a, chunk, tx, verdict, sums, admits);
                }
            } else {
                self.deposit(a, at, piece, buf_id, admits);
            }
        }
        Ok(())
    }

    /// Adds a piece to a chunk; the piece that completes it verifies and
    /// publishes it.
    fn deposit(&self, a: &Assembly, at: u32, bytes: Bytes, buf: u64, admits: &mut Vec<Admit>) {
        if let Some((chunk, tx)) = add_piece(a, at, bytes, buf) {
            let verdict = verify_chunk(&a.pack, &a.c, &chunk.bytes);
            self.publish(a, chunk, tx, verdict, None, admits);
        }
    }

    /// Hands a complete chunk, and whether it matched its name, to its
    /// readers and (when it did) to `admits`, which the request sends to
    /// the disk-cache writer when it ends ([`Self::admit`]). A cache of a
    /// local store gets only the chunk's block checksums (`sums`, if they
    /// were computed already).
    fn publish(
        &self,
        a: &Assembly,
        chunk: Chunk,
        tx: Sender,
        verdict: Result<(), ChunkError>,
        sums: Option<Body>,
        admits: &mut Vec<Admit>,
    ) {
        let r = match verdict {
            Ok(()) => Ok(chunk.clone()),
            Err(e) => {
                tracing::error!("{e}");
                Err(ReadError::Corrupt(Arc::new(e)))
            }
        };
        if r.is_ok() {
            let body = if self.disk.is_local() {
                // Not kept in `writing`: a planner that wants it before its
                // record is written reads the pack again, rather than the
                // pack buffer waiting for the writer.
                sums.unwrap_or_else(|| Body::sums_of(&chunk.bytes))
            } else {
                // Findable until the writer has admitted it, so no planner
                // fetches it again meanwhile.
                self.writing
                    .lock()
                    .expect("writing lock")
                    .insert(a.c.hash, chunk.clone());
                Body::Bytes(chunk.bytes)
            };
            // Counted before any reader has it, so `flush_writes` after a
            // read always waits for its chunks.
            self.pending_writes.fetch_add(1, Ordering::SeqCst);
            admits.push(Admit {
                hash: a.c.hash,
                body,
                origin: origin(a.pack, a.c),
            });
        }
        self.inflight.lock().expect("inflight").remove(&a.c.hash);
        let _ = tx.send(r);
    }

    /// Sends a request's verified chunks to the disk-cache writer in one
    /// message, through the queue place the request reserved, so they are
    /// written back to back: a file's records then lie in runs of whole
    /// requests, which sequential readers read back in a few large reads.
    /// Sent chunk by chunk, the chunks of the requests in flight were
    /// interleaved, and reading them back took one small read per chunk
    /// (about 600 KiB per disk request, measured).
    fn admit(&self, admits: Vec<Admit>, slot: Option<OwnedPermit<Vec<Admit>>>) {
        if admits.is_empty() {
            return;
        }
        match slot {
            Some(slot) => {
                slot.send(admits);
            }
            // The writer is gone (shutting down): nothing will be written.
            None => {
                let mut w = self.writing.lock().expect("writing lock");
                for a in &admits {
                    w.remove(&a.hash);
                }
                self.pending_writes
                    .fetch_sub(admits.len(), Ordering::SeqCst);
            }
        }
    }

    fn fail(&self, a: &Assembly, e: ReadError) {
        let tx = a.state.lock().expect("assembly").done.take();
        if let Some(tx) = tx {
            self.inflight.lock().expect("inflight").remove(&a.c.hash);
            let _ = tx.send(Err(e));
        }
    }
}

/// Adds a piece to a chunk; returns the chunk (and where its answer goes)
/// when this piece completed it.
fn add_piece(a: &Assembly, at: u32, bytes: Bytes, buf: u64) -> Option<(Chunk, Sender)> {
    let mut st = a.state.lock().expect("assembly");
    st.done.as_ref()?; // already failed
    st.filled += bytes.len() as u32;
    st.pieces.push((at, bytes, buf));
    if st.filled < a.c.len {
        return None;
    }
    let mut pieces = std::mem::take(&mut st.pieces);
    let chunk = if pieces.len() == 1 {
        let (_, b, buf) = pieces.pop().expect("one piece");
        Chunk { bytes: b, buf }
    } else {
        // Straddles two requests: put together (at most one chunk per request).
        pieces.sort_by_key(|p| p.0);
        let mut v = BytesMut::with_capacity(a.c.len as usize);
        for (_, b, _) in pieces {
            v.extend_from_slice(&b);
        }
        Chunk::own(v.freeze())
    };
    Some((chunk, st.done.take().expect("sender")))
}

/// A manifest's chunks by pack, in pack order: which chunks lie next to a
/// given one (for fetching a small file's neighbours with it).
pub struct PackIndex {
    by_pack: HashMap<u32, Vec<ChunkRef>>,
}

impl PackIndex {
    pub fn new(m: &Manifest) -> PackIndex {
        let mut by_pack: HashMap<u32, Vec<ChunkRef>> = HashMap::new();
        for c in &m.chunks {
            by_pack.entry(c.pack).or_default().push(*c);
        }
        for v in by_pack.values_mut() {
            v.sort_by_key(|c| c.offset);
            v.dedup_by_key(|c| c.offset);
        }
        PackIndex { by_pack }
    }

    /// Chunks of `pack` lying wholly inside `[start, end)`.
    pub fn within(&self, pack: u32, start: u64, end: u64) -> &[ChunkRef] {
        let Some(v) = self.by_pack.get(&pack) else {
            return &[];
        };
        let a = v.partition_point(|c| (c.offset as u64) < start);
        let b = v.partition_point(|c| c.offset as u64 + c.len as u64 <= end);
        &v[a..b.max(a)]
    }
}

/// Splits chunks to fetch (in file order) into runs that lie back to back
/// in one pack.
fn runs(asms: &[Arc<Assembly>]) -> Vec<&[Arc<Assembly>]> {
    asms.chunk_by(|a, b| {
        a.pack == b.pack && a.c.offset as u64 + a.c.len as u64 == b.c.offset as u64
    })
    .collect()
}

/// Cuts a run into requests of about `target` bytes whose inner boundaries
/// are multiples of `align` in the pack. Returns each request's byte range
/// with the chunks it overlaps (a chunk across a boundary is in both).
fn split_run(
    run: &[Arc<Assembly>],
    target: u64,
    align: u64,
) -> Vec<(Range<u64>, Vec<Arc<Assembly>>)> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return vec![];
    };
    let start = first.c.offset as u64;
    let end = last.c.offset as u64 + last.c.len as u64;
    let target = target.max(align);
    let mut cuts = vec![start];
    let mut at = start;
    loop {
        // The aligned offset at least `target` past the last cut...
        let next = (at + target).div_ceil(align) * align;
        // ... unless what would remain is too small to be worth a request.
        if next + target / 2 >= end {
            break;
        }
        cuts.push(next);
        at = next;
    }
    cuts.push(end);
    let mut out = vec![];
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let asms: Vec<_> = run
            .iter()
            .filter(|x| {
                let (s, e) = (x.c.offset as u64, x.c.offset as u64 + x.c.len as u64);
                s < b && e > a
            })
            .cloned()
            .collect();
        out.push((a..b, asms));
    }
    out
}

/// Byte offsets of a file's chunks, for finding the chunks of a range.
#[derive(Debug, Clone)]
pub struct ChunkMap {
    starts: Vec<u64>,
    size: u64,
}

impl ChunkMap {
    pub fn new(m: &Manifest, e: &Entry) -> ChunkMap {
        let mut starts = Vec::with_capacity(e.chunk_count as usize);
        let mut off = 0;
        for c in m.chunks_of(e) {
            starts.push(off);
            off += c.len as u64;
        }
        ChunkMap { starts, size: off }
    }

    /// Indices of the chunks overlapping `[offset, offset + len)`.
    pub fn chunks_for(&self, offset: u64, len: u64) -> std::ops::Range<usize> {
        if offset >= self.size || len == 0 {
            return 0..0;
        }
        let end = (offset + len).min(self.size);
        let first = self.starts.partition_point(|s| *s <= offset) - 1;
        let last = self.starts.partition_point(|s| *s < end);
        first..last
    }

    /// File offset where chunk `i` starts (the file size for `i == len()`).
    pub fn start(&self, i: usize) -> u64 {
        self.starts.get(i).copied().unwrap_or(self.size)
    }

    /// Index of the first chunk starting at or after `offset`.
    pub fn first_at_or_after(&self, offset: u64) -> usize {
        self.starts.partition_point(|s| *s < offset)
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Back-to-back slices of one buffer are joined without a copy; slices
    /// of no known buffer, or with a gap, are copied.
    #[test]
    fn concat_joins_back_to_back_slices_without_copying() {
        let b = Bytes::from((0..=255u8).collect::<Vec<_>>());
        let parts = |buf: u64| {
            [0..100, 100..180, 180..256]
                .into_iter()
                .map(|r| Chunk {
                    bytes: b.slice(r),
                    buf,
                })
                .collect::<Vec<_>>()
        };
        let (joined, copied) = concat(parts(7));
        assert!(joined == b && !copied);
        assert_eq!(joined.as_ptr(), b.as_ptr(), "no copy");
        let (own, copied) = concat(parts(0));
        assert!(own == b && copied);
        assert_ne!(own.as_ptr(), b.as_ptr());
        let gap = vec![
            Chunk {
                bytes: b.slice(0..10),
                buf: 7,
            },
            Chunk {
                bytes: b.slice(20..30),
                buf: 7,
            },
        ];
        let (got, copied) = concat(gap);
        assert!(got[..] == [&b[0..10], &b[20..30]].concat()[..] && copied);
    }

    /// Failures keep their cause and the text they always had.
    #[test]
    fn read_errors_keep_their_cause() {
        use std::error::Error;
        let key = "packs/x".to_string();
        let e = ReadError::from(FetchError::Store(StoreError::NotFound { key }));
        assert_eq!(
            e.to_string(),
            "store error: object packs/x not found in the store"
        );
        assert!(e.source().is_some());
        let e = ReadError::from(FetchError::Timeout(Duration::from_secs(2)));
        assert_eq!(e.to_string(), "store did not answer within 2s");
        assert_eq!(
            ReadError::from(FetchError::Ended).to_string(),
            "store error: response ended early"
        );
        assert_eq!(
            ReadError::Abandoned.to_string(),
            "store error: fetch abandoned"
        );
    }

    #[test]
    fn chunk_map_ranges() {
        let map = ChunkMap {
            starts: vec![0, 10, 25],
            size: 30,
        };
        assert_eq!(map.chunks_for(0, 5), 0..1);
        assert_eq!(map.chunks_for(5, 10), 0..2);
        assert_eq!(map.chunks_for(10, 15), 1..2);
        assert_eq!(map.chunks_for(24, 100), 1..3);
        assert_eq!(map.chunks_for(30, 1), 0..0);
        assert_eq!(map.chunks_for(29, 0), 0..0);
        assert_eq!(map.first_at_or_after(11), 2);
        assert_eq!(map.start(3), 30);
    }

    fn asm(offset: u32, len: u32) -> Arc<Assembly> {
        Arc::new(Assembly {
            pack: [1; 16],
            c: ChunkRef {
                hash: [0; 32],
                pack: 0,
                offset,
                len,
            },
            state: Mutex::default(),
        })
    }

    /// What a verified chunk leaves for the disk-cache writer: a cache of a
    /// local store gets its checksums only, so no pack buffer waits in the
    /// writer's queue (nor in `writing`); any other cache gets its bytes,
    /// findable in `writing` until written.
    #[tokio::test]
    async fn a_local_store_hands_the_writer_checksums_not_bytes() {
        let tmp = tempfile::TempDir::new().unwrap();
        let url = format!("file://{}", tmp.path().join("store").display());
        let store = Store::create(&url).unwrap();
        let data = Bytes::from((0..9_000u32).map(|i| (i % 241) as u8).collect::<Vec<_>>());
        for local in [true, false] {
            let packs = local.then(|| store.local_packs()).flatten();
            let cache = tmp.path().join(format!("cache-{local}"));
            let disk = DiskCache::open(&cache, 1 << 30)
                .unwrap()
                .with_local_packs(packs);
            let source = ChunkSource::new(store.clone(), Arc::new(disk), Duration::from_secs(5));
            let a = asm(0, data.len() as u32);
            let (tx, rx) = futures::channel::oneshot::channel();
            let mut admits = vec![];
            source.publish(&a, Chunk::own(data.clone()), tx, Ok(()), None, &mut admits);
            assert!(
                rx.await.unwrap().unwrap().bytes == data,
                "the reader has it"
            );
            assert_eq!(admits.len(), 1);
            match &admits[0].body {
                Body::Sums { len, .. } if local => {
                    assert_eq!(*len as usize, data.len());
                    assert!(source.writing_get(&a.c.hash).is_none(), "held in `writing`");
                }
                Body::Bytes(b) if !local => {
                    assert!(*b == data);
                    assert!(source.writing_get(&a.c.hash).is_some());
                }
                other => panic!("local store {local}: {other:?}"),
            }
        }
    }

    #[test]
    fn requests_split_on_aligned_offsets() {
        const M: u32 = 1 << 20;
        // 20 chunks of 0.7 MiB from offset 0.3 MiB.
        let len = 7 * M / 10;
        let run: Vec<_> = (0..20).map(|i| asm(3 * M / 10 + i * len, len)).collect();
        let reqs = split_run(&run, 4 << 20, 1 << 20);
        let ranges: Vec<_> = reqs.iter().map(|r| r.0.clone()).collect();
        assert_eq!(ranges.first().unwrap().start, 3 * M as u64 / 10);
        assert_eq!(ranges.last().unwrap().end, (3 * M / 10 + 20 * len) as u64);
        for w in ranges.windows(2) {
            assert_eq!(w[0].end, w[1].start, "contiguous, no overlap");
            assert_eq!(w[0].end % (1 << 20), 0, "inner cuts aligned");
        }
        for (r, asms) in &reqs {
            assert!(r.end - r.start >= 2 << 20, "{r:?}");
            for a in asms {
                assert!((a.c.offset as u64) < r.end && (a.c.offset + a.c.len) as u64 > r.start);
            }
        }
        // Every chunk is covered, straddlers twice.
        let covered: usize = reqs.iter().map(|r| r.1.len()).sum();
        assert!(covered >= 20 && covered < 20 + reqs.len());
        // A small run is one request.
        let small = split_run(&run[..2], 8 << 20, 1 << 20);
        assert_eq!(small.len(), 1);
    }
}
