//! Verified chunk bytes for the mount: where they come from and how they are
//! fetched.
//!
//! [`ChunkSource`] answers "give me this chunk" from, in order: a small
//! in-memory LRU, a fetch already in flight (so concurrent readers of one
//! chunk share one fetch), the disk cache, the store. Store fetches are
//! planned in byte ranges of packs, not chunk by chunk: a run of chunks that
//! lie back to back in one pack becomes large ranged GETs whose boundaries
//! fall on 1 MiB multiples of the pack (the block size of S3 servers such as
//! Garage, so no block is read for two requests). Bodies are streamed: each
//! chunk is BLAKE3-verified and handed to its readers as soon as its last
//! byte arrives, while the rest of the request is still on the wire; a chunk
//! that straddles two requests is put together from both. Verified chunks go
//! to the disk cache through one writer thread with a bounded queue.
//!
//! A request that makes no progress for the configured timeout fails its
//! chunks, so a dead store gives EIO, not a hang. Per-file readahead (which
//! chunks to ask for, and when) lives in [`crate::readahead`].

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use lru::LruCache;
use tokio::sync::Semaphore;

use crate::cache::DiskCache;
use crate::fetch::verify_chunk_bytes;
use crate::ids::{to_hex, Hash, PackId};
use crate::manifest::{ChunkRef, Entry, Manifest};
use crate::store::{keys, Store};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store error: {0}")]
    Store(String),
    #[error("{0}")]
    Corrupt(String),
}

/// A chunk on its way: shared by everyone who wants it.
pub type Pending = Shared<BoxFuture<'static, Result<Bytes, ReadError>>>;

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
    /// Disk-cache reads running at once (readahead from the cache).
    pub disk_parallel: usize,
    /// Verified chunks kept in memory for re-reads.
    pub mem_bytes: usize,
    /// Chunks queued for the disk-cache writer.
    pub write_queue: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            request_bytes: 8 << 20,
            align: 1 << 20,
            initial_window: 1 << 20,
            max_window: 64 << 20,
            budget: 160 << 20,
            disk_parallel: 8,
            mem_bytes: 32 << 20,
            write_queue: 32,
        }
    }
}

/// Counters of the store traffic this source caused.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

struct Mem {
    lru: LruCache<Hash, Bytes>,
    bytes: usize,
}

/// One chunk being put together from one or more requests.
struct Assembly {
    pack: PackId,
    c: ChunkRef,
    state: Mutex<AsmState>,
}

#[derive(Default)]
struct AsmState {
    /// Pieces received so far: (offset in the chunk, bytes).
    pieces: Vec<(u32, Vec<u8>)>,
    filled: u32,
    done: Option<futures::channel::oneshot::Sender<Result<Bytes, ReadError>>>,
}

type Writing = Arc<Mutex<HashMap<Hash, Bytes>>>;

/// Where chunk bytes come from, with caching and single-flight.
pub struct ChunkSource {
    store: Store,
    disk: Arc<DiskCache>,
    mem: Mutex<Mem>,
    inflight: Mutex<HashMap<Hash, Pending>>,
    /// Verified chunks handed to the disk-cache writer and not yet written:
    /// still served from here, so a chunk that left `mem` meanwhile is never
    /// fetched twice. Bounded by the writer's queue.
    writing: Writing,
    timeout: Duration,
    cfg: ReadConfig,
    budget: Arc<Semaphore>,
    disk_reads: Arc<Semaphore>,
    writes: tokio::sync::mpsc::Sender<(Hash, Bytes)>,
    /// Pack indexes of recently read manifests (a `Weak` pins the address,
    /// so a pointer is never mistaken for a newer manifest's).
    pack_indexes: Mutex<Vec<(std::sync::Weak<Manifest>, Arc<PackIndex>)>>,
    /// Disk-cache writes queued or running.
    pending_writes: Arc<AtomicUsize>,
    pub stats: SourceStats,
}

fn abandoned() -> ReadError {
    ReadError::Store("fetch abandoned".into())
}

fn ready(b: Bytes) -> Pending {
    futures::future::ready(Ok(b)).boxed().shared()
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
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Hash, Bytes)>(cfg.write_queue.max(1));
        let pending_writes: Arc<AtomicUsize> = Arc::default();
        let writing: Writing = Arc::default();
        {
            let (disk, pending, writing) = (disk.clone(), pending_writes.clone(), writing.clone());
            // Ends when the source (the only sender) is dropped.
            std::thread::Builder::new()
                .name("cache-writer".into())
                .spawn(move || {
                    while let Some((h, data)) = rx.blocking_recv() {
                        if let Err(e) = disk.put(&h, &data) {
                            tracing::warn!("cache write failed: {e}");
                        }
                        writing.lock().expect("writing").remove(&h);
                        pending.fetch_sub(1, Ordering::SeqCst);
                    }
                })
                .expect("spawn cache writer thread");
        }
        Arc::new(ChunkSource {
            store,
            disk,
            mem: Mutex::new(Mem {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            inflight: Mutex::new(HashMap::new()),
            writing,
            timeout,
            budget: Arc::new(Semaphore::new(cfg.budget as usize)),
            disk_reads: Arc::new(Semaphore::new(cfg.disk_parallel.max(1))),
            cfg,
            writes: tx,
            pack_indexes: Mutex::default(),
            pending_writes,
            stats: SourceStats::default(),
        })
    }

    pub fn disk(&self) -> &Arc<DiskCache> {
        &self.disk
    }

    pub fn config(&self) -> &ReadConfig {
        &self.cfg
    }

    pub(crate) fn budget(&self) -> &Arc<Semaphore> {
        &self.budget
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

    /// A verified chunk held in memory: recently read, or waiting for the
    /// disk-cache writer.
    fn mem_get(&self, h: &Hash) -> Option<Bytes> {
        if let Some(b) = self.mem.lock().expect("mem lock").lru.get(h) {
            return Some(b.clone());
        }
        self.writing.lock().expect("writing").get(h).cloned()
    }

    fn mem_put(&self, h: Hash, data: Bytes) {
        let mut g = self.mem.lock().expect("mem lock");
        let len = data.len();
        if let Some(old) = g.lru.put(h, data) {
            g.bytes -= old.len();
        }
        g.bytes += len;
        while g.bytes > self.cfg.mem_bytes {
            match g.lru.pop_lru() {
                Some((_, d)) => g.bytes -= d.len(),
                None => break,
            }
        }
    }

    /// True when a chunk is in memory, on its way, or in the disk cache.
    pub fn has(&self, h: &Hash) -> bool {
        self.inflight.lock().expect("inflight").contains_key(h)
            || self.mem.lock().expect("mem lock").lru.contains(h)
            || self.writing.lock().expect("writing").contains_key(h)
            || self.disk.contains(h)
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
        self.chunk_part(pack, c, 0..c.len).await
    }

    /// Bytes `range` of a verified chunk. A chunk in the disk cache is read
    /// only over `range` (checked block by block), not whole.
    pub async fn chunk_part(
        self: &Arc<Self>,
        pack: PackId,
        c: ChunkRef,
        range: Range<u32>,
    ) -> Result<Bytes, ReadError> {
        if let Some(b) = self.mem_get(&c.hash) {
            return Ok(b.slice(range.start as usize..range.end as usize));
        }
        let shared = self
            .inflight
            .lock()
            .expect("inflight")
            .get(&c.hash)
            .cloned();
        if let Some(p) = shared {
            return Ok(p.await?.slice(range.start as usize..range.end as usize));
        }
        if range.len() < c.len as usize && self.disk.contains(&c.hash) {
            let disk = self.disk.clone();
            let r = range.clone();
            let got = tokio::task::spawn_blocking(move || disk.read(&c.hash, c.len, r))
                .await
                .ok()
                .flatten();
            if let Some(b) = got {
                return Ok(b);
            }
        }
        let p = self.plan(&[(pack, c)]).pop().expect("one planned chunk");
        Ok(p.await?.slice(range.start as usize..range.end as usize))
    }

    /// Makes sure each chunk is on its way and returns one [`Pending`] per
    /// chunk, in order. Chunks in memory are ready at once; chunks in flight
    /// are shared; chunks in the disk cache are read from it in the
    /// background; the rest are fetched from the store in runs of adjacent
    /// chunks, each run in ranged GETs split at aligned offsets. Claiming
    /// happens under one lock, so two planners never fetch the same chunk.
    pub fn plan(self: &Arc<Self>, chunks: &[(PackId, ChunkRef)]) -> Vec<Pending> {
        let mut out = Vec::with_capacity(chunks.len());
        let mut fetch: Vec<Arc<Assembly>> = vec![];
        {
            let mut inflight = self.inflight.lock().expect("inflight");
            for &(pack, c) in chunks {
                if let Some(p) = inflight.get(&c.hash) {
                    out.push(p.clone());
                    continue;
                }
                if let Some(b) = self.mem_get(&c.hash) {
                    out.push(ready(b));
                    continue;
                }
                let (tx, rx) = futures::channel::oneshot::channel();
                let p: Pending = rx
                    .map(|r| r.unwrap_or_else(|_| Err(abandoned())))
                    .boxed()
                    .shared();
                inflight.insert(c.hash, p.clone());
                out.push(p);
                if self.disk.contains(&c.hash) {
                    self.spawn_disk_read(pack, c, tx);
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
        for run in runs(&fetch) {
            for (range, asms) in split_run(run, self.cfg.request_bytes, self.cfg.align) {
                let me = self.clone();
                tokio::spawn(async move { me.fetch_range(range, asms).await });
            }
        }
        out
    }

    fn spawn_disk_read(
        self: &Arc<Self>,
        pack: PackId,
        c: ChunkRef,
        tx: futures::channel::oneshot::Sender<Result<Bytes, ReadError>>,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            let got = {
                let _permit = me.disk_reads.clone().acquire_owned().await;
                let disk = me.disk.clone();
                tokio::task::spawn_blocking(move || disk.get(&c.hash, c.len))
                    .await
                    .ok()
                    .flatten()
            };
            match got {
                Some(b) => {
                    me.mem_put(c.hash, b.clone());
                    me.inflight.lock().expect("inflight").remove(&c.hash);
                    let _ = tx.send(Ok(b));
                }
                None => {
                    // Evicted or corrupt (and dropped): fetch it from the store.
                    let asm = Arc::new(Assembly {
                        pack,
                        c,
                        state: Mutex::new(AsmState {
                            done: Some(tx),
                            ..Default::default()
                        }),
                    });
                    let range = c.offset as u64..c.offset as u64 + c.len as u64;
                    me.fetch_range(range, vec![asm]).await;
                }
            }
        });
    }

    /// One ranged GET of `range` of a pack, feeding the chunks that overlap it.
    async fn fetch_range(self: Arc<Self>, range: Range<u64>, asms: Vec<Arc<Assembly>>) {
        let Some(first) = asms.first() else { return };
        let pack = first.pack;
        let key = keys::pack(&to_hex(&pack));
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(range.end - range.start, Ordering::Relaxed);
        let r = self.stream_into(&key, range.clone(), &asms).await;
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

    async fn stream_into(
        &self,
        key: &str,
        range: Range<u64>,
        asms: &[Arc<Assembly>],
    ) -> Result<(), ReadError> {
        let t = self.timeout;
        let store_err = |e: crate::store::StoreError| ReadError::Store(e.to_string());
        let mut body = tokio::time::timeout(t, self.store.get_range_stream(key, range.clone()))
            .await
            .map_err(|_| ReadError::Timeout(t))?
            .map_err(store_err)?;
        let mut pos = range.start;
        // The piece of the current chunk received so far.
        let mut i = 0;
        let mut piece: Vec<u8> = vec![];
        while pos < range.end {
            let frame = tokio::time::timeout(t, body.next())
                .await
                .map_err(|_| ReadError::Timeout(t))?
                .ok_or_else(|| ReadError::Store("response ended early".into()))?
                .map_err(store_err)?;
            let mut frame = &frame[..];
            if frame.len() as u64 > range.end - pos {
                frame = &frame[..(range.end - pos) as usize];
            }
            while !frame.is_empty() {
                let a = &asms[i];
                let c_end = (a.c.offset as u64 + a.c.len as u64).min(range.end);
                let want = (c_end - pos) as usize;
                let take = want.min(frame.len());
                if piece.is_empty() {
                    piece.reserve_exact(want);
                }
                piece.extend_from_slice(&frame[..take]);
                frame = &frame[take..];
                pos += take as u64;
                if pos == c_end {
                    let at = (pos - piece.len() as u64 - a.c.offset as u64) as u32;
                    self.deposit(a, at, std::mem::take(&mut piece)).await;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    /// Adds a piece to a chunk; the piece that completes it verifies and
    /// publishes it.
    async fn deposit(&self, a: &Assembly, at: u32, bytes: Vec<u8>) {
        let complete = {
            let mut st = a.state.lock().expect("assembly");
            if st.done.is_none() {
                return; // already failed
            }
            st.filled += bytes.len() as u32;
            st.pieces.push((at, bytes));
            if st.filled < a.c.len {
                return;
            }
            let mut pieces = std::mem::take(&mut st.pieces);
            let data = if pieces.len() == 1 {
                pieces.pop().expect("one piece").1
            } else {
                pieces.sort_by_key(|p| p.0);
                pieces.into_iter().flat_map(|p| p.1).collect()
            };
            (data, st.done.take().expect("sender"))
        };
        let (data, tx) = complete;
        let data = Bytes::from(data);
        let r = match verify_chunk_bytes(&a.pack, &a.c, &data) {
            Ok(()) => Ok(data.clone()),
            Err(e) => {
                tracing::error!("{e}");
                Err(ReadError::Corrupt(e.to_string()))
            }
        };
        let ok = r.is_ok();
        if ok {
            self.mem_put(a.c.hash, data.clone());
            // Counted before any reader has it, so `flush_writes` after a
            // read always waits for that read's chunks.
            self.pending_writes.fetch_add(1, Ordering::SeqCst);
            // Held until written, before it stops being in flight.
            self.writing
                .lock()
                .expect("writing")
                .insert(a.c.hash, data.clone());
        }
        self.inflight.lock().expect("inflight").remove(&a.c.hash);
        let _ = tx.send(r);
        if ok && self.writes.send((a.c.hash, data)).await.is_err() {
            self.writing.lock().expect("writing").remove(&a.c.hash);
            self.pending_writes.fetch_sub(1, Ordering::SeqCst);
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

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
