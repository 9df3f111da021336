//! Lazy, verified reads of file ranges for the mount.
//!
//! [`ChunkSource`] answers "give me this chunk" from, in order: a small
//! in-memory LRU, the disk cache, the store (one ranged GET of the pack).
//! Concurrent requests for one chunk share a single fetch, and a fetch from
//! the store is bounded by a timeout so a dead store gives EIO, not a hang.
//! [`ReadAhead`] tracks one open file's access pattern: sequential reads
//! grow a prefetch window, a random read collapses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
use lru::LruCache;

use crate::cache::DiskCache;
use crate::fetch::verify_chunk_bytes;
use crate::ids::{to_hex, Hash, PackId};
use crate::manifest::{ChunkRef, Entry, Manifest};
use crate::store::{keys, Store};

/// Bytes of verified chunks kept in memory.
const MEM_BYTES: usize = 64 << 20;
/// Largest readahead window, in chunks (up to 1 MiB each).
const MAX_WINDOW: usize = 32;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store error: {0}")]
    Store(String),
    #[error("{0}")]
    Corrupt(String),
}

type Inflight = Shared<BoxFuture<'static, Result<Bytes, ReadError>>>;

/// Where chunk bytes come from, with caching and single-flight.
pub struct ChunkSource {
    store: Store,
    disk: Arc<DiskCache>,
    mem: Mutex<(LruCache<Hash, Bytes>, usize)>,
    inflight: Mutex<HashMap<Hash, Inflight>>,
    timeout: Duration,
    /// Disk-cache writes still running in the background.
    pending_writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl ChunkSource {
    pub fn new(store: Store, disk: Arc<DiskCache>, timeout: Duration) -> Arc<ChunkSource> {
        Arc::new(ChunkSource {
            store,
            disk,
            mem: Mutex::new((LruCache::unbounded(), 0)),
            inflight: Mutex::new(HashMap::new()),
            timeout,
            pending_writes: Arc::default(),
        })
    }

    pub fn disk(&self) -> &Arc<DiskCache> {
        &self.disk
    }

    /// Waits (bounded) until background disk-cache writes have finished, so
    /// chunks read just before an unmount are in the cache for the next mount.
    pub async fn flush_writes(&self, limit: Duration) {
        let start = std::time::Instant::now();
        while self
            .pending_writes
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
            && start.elapsed() < limit
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn mem_get(&self, h: &Hash) -> Option<Bytes> {
        self.mem.lock().expect("mem lock").0.get(h).cloned()
    }

    fn mem_put(&self, h: Hash, data: Bytes) {
        let mut g = self.mem.lock().expect("mem lock");
        let (lru, bytes) = &mut *g;
        if let Some(old) = lru.put(h, data.clone()) {
            *bytes -= old.len();
        }
        *bytes += data.len();
        while *bytes > MEM_BYTES {
            match lru.pop_lru() {
                Some((_, d)) => *bytes -= d.len(),
                None => break,
            }
        }
    }

    /// A verified chunk of the given pack.
    pub async fn chunk(self: &Arc<Self>, pack: PackId, c: ChunkRef) -> Result<Bytes, ReadError> {
        if let Some(b) = self.mem_get(&c.hash) {
            return Ok(b);
        }
        let fut = {
            let mut inflight = self.inflight.lock().expect("inflight lock");
            if let Some(f) = inflight.get(&c.hash) {
                f.clone()
            } else {
                let me = self.clone();
                let f = async move {
                    let r = me.load(pack, c).await;
                    me.inflight.lock().expect("inflight lock").remove(&c.hash);
                    r
                }
                .boxed()
                .shared();
                inflight.insert(c.hash, f.clone());
                f
            }
        };
        fut.await
    }

    async fn load(self: &Arc<Self>, pack: PackId, c: ChunkRef) -> Result<Bytes, ReadError> {
        let disk = self.disk.clone();
        let hash = c.hash;
        // Disk reads and hashing block: keep them off the async workers.
        let cached = tokio::task::spawn_blocking(move || disk.get(&hash))
            .await
            .ok()
            .flatten();
        if let Some(b) = cached {
            self.mem_put(c.hash, b.clone());
            return Ok(b);
        }
        let key = keys::pack(&to_hex(&pack));
        let range = c.offset as u64..c.offset as u64 + c.len as u64;
        let got = tokio::time::timeout(self.timeout, self.store.get_ranges(&key, &[range])).await;
        let data = match got {
            Err(_) => {
                tracing::warn!(chunk = %to_hex(&c.hash), pack = %to_hex(&pack), "store fetch timed out");
                return Err(ReadError::Timeout(self.timeout));
            }
            Ok(Err(e)) => {
                tracing::warn!(chunk = %to_hex(&c.hash), "store fetch failed: {e}");
                return Err(ReadError::Store(e.to_string()));
            }
            Ok(Ok(mut v)) => v.pop().unwrap_or_default(),
        };
        if let Err(e) = verify_chunk_bytes(&pack, &c, &data) {
            tracing::error!("{e}");
            return Err(ReadError::Corrupt(e.to_string()));
        }
        self.keep_fetched(hash, data.clone());
        Ok(data)
    }

    /// Keeps a verified chunk from the store: in memory at once, on disk in
    /// the background (the memory copy serves it meanwhile).
    fn keep_fetched(&self, hash: Hash, data: Bytes) {
        self.mem_put(hash, data.clone());
        let disk = self.disk.clone();
        let pending = self.pending_writes.clone();
        pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = disk.put(&hash, &data) {
                tracing::warn!("cache write failed: {e}");
            }
            pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }

    /// Starts fetching chunks of one pack in the background with a single
    /// ranged request (object_store merges adjacent ranges), skipping chunks
    /// already cached or in flight. Does nothing while fewer than `min_batch`
    /// chunks need fetching, so a sliding readahead window fetches in batches
    /// instead of one request per chunk.
    pub fn prefetch(self: &Arc<Self>, pack: PackId, cs: &[ChunkRef], min_batch: usize) {
        let todo: Vec<ChunkRef> = {
            let inflight = self.inflight.lock().expect("inflight lock");
            cs.iter()
                .filter(|c| !inflight.contains_key(&c.hash))
                .copied()
                .collect()
        };
        let todo: Vec<ChunkRef> = todo
            .into_iter()
            .filter(|c| self.mem_get(&c.hash).is_none() && !self.disk.contains(&c.hash))
            .collect();
        if todo.is_empty() || todo.len() < min_batch {
            return;
        }
        let key = keys::pack(&to_hex(&pack));
        let ranges: Vec<_> = todo
            .iter()
            .map(|c| c.offset as u64..c.offset as u64 + c.len as u64)
            .collect();
        let (store, timeout) = (self.store.clone(), self.timeout);
        type Batch = Shared<BoxFuture<'static, Result<Arc<Vec<Bytes>>, ReadError>>>;
        let batch: Batch = async move {
            match tokio::time::timeout(timeout, store.get_ranges(&key, &ranges)).await {
                Err(_) => Err(ReadError::Timeout(timeout)),
                Ok(Err(e)) => Err(ReadError::Store(e.to_string())),
                Ok(Ok(v)) => Ok(Arc::new(v)),
            }
        }
        .boxed()
        .shared();
        let mut inflight = self.inflight.lock().expect("inflight lock");
        for (i, c) in todo.into_iter().enumerate() {
            if inflight.contains_key(&c.hash) {
                continue;
            }
            let (me, batch) = (self.clone(), batch.clone());
            let f = async move {
                let r = async {
                    let parts = batch.await?;
                    let data = parts.get(i).cloned().unwrap_or_default();
                    if let Err(e) = verify_chunk_bytes(&pack, &c, &data) {
                        tracing::error!("{e}");
                        return Err(ReadError::Corrupt(e.to_string()));
                    }
                    me.keep_fetched(c.hash, data.clone());
                    Ok(data)
                }
                .await;
                me.inflight.lock().expect("inflight lock").remove(&c.hash);
                r
            }
            .boxed()
            .shared();
            inflight.insert(c.hash, f.clone());
            tokio::spawn(async move {
                let _ = f.await;
            });
        }
    }
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

    pub fn start(&self, i: usize) -> u64 {
        self.starts[i]
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// Access-pattern state of one open file.
#[derive(Debug, Default)]
pub struct ReadAhead {
    next_offset: u64,
    window: usize,
}

impl ReadAhead {
    /// Records a read and returns how many chunks past it to prefetch.
    pub fn on_read(&mut self, offset: u64, len: u64) -> usize {
        if offset == self.next_offset && offset > 0 {
            self.window = (self.window * 2).clamp(1, MAX_WINDOW);
        } else if offset != self.next_offset {
            self.window = 0;
        }
        self.next_offset = offset + len;
        self.window
    }
}

/// Reads `[offset, offset + len)` of a file, prefetching `ahead` chunks past it.
pub async fn read_range(
    source: &Arc<ChunkSource>,
    m: &Arc<Manifest>,
    e: &Entry,
    map: &ChunkMap,
    offset: u64,
    len: u64,
    ahead: usize,
) -> Result<Bytes, ReadError> {
    let chunks = m.chunks_of(e);
    let range = map.chunks_for(offset, len);
    if range.is_empty() {
        return Ok(Bytes::new());
    }
    // Prefetch first, so it overlaps with this read's own fetches: runs of
    // the window that sit in one pack, each in one request.
    let window = &chunks[range.end.min(chunks.len())..(range.end + ahead).min(chunks.len())];
    let runs: Vec<&[ChunkRef]> = window.chunk_by(|a, b| a.pack == b.pack).collect();
    for (i, run) in runs.iter().enumerate() {
        // Only the run at the window's end can still grow: a run cut short by
        // the end of its pack is fetched now, however small.
        let min_batch = if i + 1 == runs.len() {
            (ahead / 2).max(1)
        } else {
            1
        };
        source.prefetch(m.packs[run[0].pack as usize], run, min_batch);
    }
    let fetches = range.clone().map(|i| {
        let c = chunks[i];
        source.chunk(m.packs[c.pack as usize], c)
    });
    let parts = futures::future::try_join_all(fetches).await?;
    let end = (offset + len).min(map.size);
    if parts.len() == 1 {
        let s = (offset - map.start(range.start)) as usize;
        let e = (end - map.start(range.start)) as usize;
        return Ok(parts[0].slice(s..e));
    }
    let mut out = BytesMut::with_capacity((end - offset) as usize);
    for (i, part) in range.zip(parts) {
        let cs = map.start(i);
        let s = offset.saturating_sub(cs) as usize;
        let e = ((end - cs) as usize).min(part.len());
        out.extend_from_slice(&part[s..e]);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readahead_grows_and_collapses() {
        let mut ra = ReadAhead::default();
        assert_eq!(ra.on_read(0, 100), 0);
        assert_eq!(ra.on_read(100, 100), 1);
        assert_eq!(ra.on_read(200, 100), 2);
        assert_eq!(ra.on_read(300, 100), 4);
        for i in 0..10 {
            ra.on_read(400 + i * 100, 100);
        }
        assert_eq!(ra.on_read(1400, 100), MAX_WINDOW);
        assert_eq!(ra.on_read(50, 10), 0, "random access collapses the window");
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
    }
}
