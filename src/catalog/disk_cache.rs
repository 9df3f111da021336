//! The node's chunk cache: records in a few large, append-only segment files
//! on local disk, indexed in SQLite so the cache survives remounts, bounded
//! in bytes with least-recently-used eviction. Several mounts (processes)
//! may share one cache directory: each appends only to segments it created
//! (and holds an `flock` on while it does), SQLite runs in WAL mode with a
//! busy timeout, and a chunk evicted under a reader is a miss.
//!
//! Why segments: one file per chunk cost a create and a rename per chunk,
//! and on a cache that has seen many evictions ext4's inode allocator
//! (`recently_deleted`) took more CPU than the read itself. A segment is
//! written by one thread in large vectored writes; eviction frees a
//! record's space by punching a hole, and a segment with no live record is
//! deleted.
//!
//! Checking cost is proportional to what is read (docs/mount.md, "Caching"): a
//! chunk is verified against its BLAKE3 name before it is admitted, and its
//! record carries a CRC32C of every 4 KiB block plus a footer naming the
//! chunk and its length (format in [`crate::catalog::disk_cache_file`]). A read of any
//! range checks the footer and the CRC of every block it touches; a 4 KiB
//! read reads and checks 4 KiB, not the whole chunk. A corrupt record is
//! dropped and reported as a miss, so the caller fetches (and
//! BLAKE3-verifies) the chunk again. CRC32C catches accidental damage (bit
//! flips, torn or lost writes, holes, a record under the wrong name); it is
//! not a defence against someone who can write the cache directory.
//!
//! A cache opened for a local (`file://`) store keeps no copy of the data:
//! its records hold only the checksums of chunks verified in the store's
//! pack files, which are read in place (they never change).
//!
//! Which chunks are cached, and where, is kept in memory (loaded from SQLite
//! at open), so planning a read never touches the filesystem.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lru::LruCache;
use rusqlite::{params, Connection, OptionalExtension};

use crate::catalog::cache_room::{self, Space};
use crate::catalog::direct_io::{
    dio_grain, open_direct_writer, BufferPool, DirectFile, DirectGather, ReadBuf, ALIGN,
};
use crate::catalog::disk_cache_file::{
    self, check_blocks, check_footer, pread_vec, record_size, trailer_len, Bad, Footer, BLOCK,
    FOOTER,
};
use crate::format::{to_hex, DigestMap, Hash, PackId};

/// Touches are batched: `last_used` is written for this many chunks at once.
const TOUCH_BATCH: usize = 256;
/// Recency rows are written at most this often (unless `TOUCH_MAX` chunks
/// wait): LRU order needs no finer clock, and a warm random-read workload
/// touching a few chunks per read otherwise turned every 256 reads into a
/// SQLite transaction (tens of MiB of WAL writes per 10 s of 4 KiB reads).
const TOUCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
const TOUCH_MAX: usize = 1 << 16;
/// New index rows are written in one transaction per this many chunks.
const INSERT_BATCH: usize = 64;
/// A segment takes no more records once it is this large.
const SEGMENT_BYTES: u64 = 256 << 20;
/// Open segment and pack files kept for reads.
const OPEN_FILES: usize = 64;
/// A direct read of adjacent records covers at most this many bytes: the
/// request size at which this machine's disk reached its full throughput
/// (and its largest request, `max_sectors_kb`).
pub const RUN_BYTES: u64 = 4 << 20;
/// Bytes between records a direct read reads through rather than split.
pub const RUN_GAP: u64 = 256 << 10;
/// Free buffers of direct reads and writes kept for reuse.
const DIRECT_POOL_BYTES: usize = 32 << 20;
/// Batches of at least this many bytes of records are written directly;
/// each such write ends padded to a 4 KiB block (at most 0.4% unused).
const DIRECT_WRITE_MIN: usize = 1 << 20;
/// Size of each direct write of a batch copied into an aligned buffer (the
/// disk's best request size here); a batch written from where its records
/// lie is one write.
const DIRECT_WRITE_BYTES: usize = 4 << 20;
/// `PRAGMA user_version` of an index of segment records. Older caches
/// (one file per chunk) are discarded at open.
const FORMAT: i64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cache index {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Even an empty cache would leave less than the disk's reserve free.
    #[error(
        "cache directory {path}: no room for {needed} more bytes (the disk is full to within \
         the {}% the cache leaves free)",
        cache_room::KEEP_FREE_PERCENT
    )]
    NoRoom { path: PathBuf, needed: u64 },
}

impl CacheError {
    /// True when a write found the disk (or the quota) full.
    pub fn is_no_room(&self) -> bool {
        match self {
            CacheError::Io { source, .. } => cache_room::is_no_room(source),
            CacheError::Db { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DiskFull)
            ),
            CacheError::NoRoom { .. } => true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CacheStats {
    pub entries: u64,
    /// Bytes of records (chunk data plus checksums).
    pub bytes: u64,
    pub limit: u64,
    pub hits: u64,
    pub misses: u64,
    pub corrupt_dropped: u64,
}

impl CacheStats {
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// Where a chunk lies in the store: a local store's record reads it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub pack: PackId,
    pub offset: u32,
}

/// A verified chunk to admit.
#[derive(Debug, Clone)]
pub struct Admit {
    pub hash: Hash,
    pub body: Body,
    pub origin: Origin,
}

/// What a chunk's record is made from.
#[derive(Debug, Clone)]
pub enum Body {
    /// The chunk's bytes (a local store's record keeps only their checksums).
    Bytes(Bytes),
    /// A local store's chunk: its length and block checksums
    /// (`disk_cache_file::block_sums`), computed where its bytes were
    /// verified. Its record needs nothing else, so no pack buffer waits in
    /// the writer's queue: when it carried the bytes, the queue held up to
    /// ~80 MiB of them while a local stream outran the writer (peak RSS
    /// 219-261 MiB streaming 4 GiB, against 149-170 MiB without).
    Sums { len: u32, sums: Vec<u8> },
}

impl Body {
    /// The body of a local store's record of `data`: its checksums.
    pub fn sums_of(data: &[u8]) -> Body {
        Body::Sums {
            len: data.len() as u32,
            sums: disk_cache_file::block_sums(data),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Body::Bytes(b) => b.len(),
            Body::Sums { len, .. } => *len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a record lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    seg: u32,
    off: u32,
    len: u32,
    local: bool,
}

impl Entry {
    fn size(&self) -> u64 {
        record_size(self.len as usize, self.local) as u64
    }
}

/// The segment this process appends to.
struct Active {
    id: u32,
    /// Holds the segment's `flock` while open.
    file: File,
    /// The same file opened for direct writes (`None`: refused).
    direct: Option<File>,
    /// The alignment its direct writes need, where the filesystem says
    /// ([`dio_grain`]): records are then written from where they lie.
    grain: Option<usize>,
    len: u64,
}

/// A location to read: a record's file and offset, a chunk's length.
pub struct Located {
    entry: Entry,
}

/// Chunks read since their recency was last written to the index.
struct Touched {
    hashes: HashSet<Hash>,
    flushed: std::time::Instant,
}

impl Touched {
    fn take(&mut self) -> Vec<Hash> {
        self.flushed = std::time::Instant::now();
        self.hashes.drain().collect()
    }
}

/// Records with the index of the item each was asked for.
type Wanted = (Entry, usize);

/// Cuts records sorted by place into runs to read at once: one segment,
/// gaps of up to [`RUN_GAP`], at most `limit` bytes from the first record's
/// start to the last one's end. Each run: (start, end, its records).
fn runs_by_place(sorted: &[Wanted], limit: u64) -> Vec<(u64, u64, &[Wanted])> {
    let mut runs = vec![];
    let mut rest = sorted;
    while let Some((first, _)) = rest.first() {
        let start = first.off as u64;
        let mut end = start + first.size();
        let mut n = 1;
        for (e, _) in &rest[1..] {
            let e_end = e.off as u64 + e.size();
            if e.seg != first.seg || e.off as u64 > end + RUN_GAP || e_end.max(end) - start > limit
            {
                break;
            }
            end = end.max(e_end);
            n += 1;
        }
        runs.push((start, end, &rest[..n]));
        rest = &rest[n..];
    }
    runs
}

pub struct DiskCache {
    dir: PathBuf,
    db_path: PathBuf,
    db: Mutex<Connection>,
    limit: u64,
    /// The pack directory of a local store, whose chunks are read in place.
    local_packs: Option<PathBuf>,
    index: Mutex<DigestMap<Hash, Entry>>,
    /// This process's estimate of the cache size (other processes add too;
    /// the exact sum is read back from SQLite before evicting).
    approx_bytes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    touched: Mutex<Touched>,
    /// Index rows not yet written: (name, record).
    inserts: Mutex<Vec<(Hash, Entry)>>,
    writer: Mutex<Option<Active>>,
    /// Id of the segment in `writer` (0: none), readable without its lock.
    active_seg: AtomicU32,
    segments: Mutex<LruCache<u32, Arc<File>>>,
    /// The same segments opened for direct reads of whole records.
    direct_segments: Mutex<LruCache<u32, Arc<DirectFile>>>,
    /// Buffers of direct reads.
    direct_pool: Arc<BufferPool>,
    /// Direct reads of adjacent records done (for tests).
    run_reads: AtomicU64,
    /// Bytes those reads covered (for tests).
    run_read_bytes: AtomicU64,
    /// Records handed to the kernel's readahead by `will_need` (for tests).
    advised: AtomicU64,
    /// Batches written with direct I/O (for tests).
    direct_writes: AtomicU64,
    /// Bytes those writes copied into aligned buffers (for tests).
    direct_copied: AtomicU64,
    /// Set when a direct write from the records' own memory was refused.
    gather_refused: AtomicBool,
    /// Measures the cache's disk before a write (tests give a fake disk).
    space_of: fn(&Path) -> std::io::Result<Space>,
    packs: Mutex<LruCache<PackId, Arc<File>>>,
    /// Shared while open: `cache clear` refuses to empty a cache in use.
    _lock: crate::catalog::node_dirs::Lock,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Checks a whole inline record: its footer and every block's checksum.
fn check_record(rec: &[u8], h: &Hash, e: Entry) -> Result<(), Bad> {
    let len = e.len as usize;
    let tlen = trailer_len(len);
    if rec.len() != len + tlen {
        return Err(Bad::Corrupt("record shorter than its chunk"));
    }
    let (data, tail) = rec.split_at(len);
    check_footer(&tail[tlen - FOOTER..], h, e.len, false)?;
    check_blocks(data, tail)
}

/// A chunk [`DiskCache::get_run`] read: its bytes, and which of that call's
/// direct reads they lie in (`None`: a buffer of their own). Chunks of one
/// read lie back to back in its buffer, in the order of their records, so
/// a reader can serve a range across several of them as one slice.
#[derive(Debug, Clone)]
pub struct RunChunk {
    pub bytes: Bytes,
    pub read: Option<usize>,
}

/// Checks the records of one direct read (`buf` holds the segment from
/// offset `start`; `records` sorted by place, `name` gives each one's chunk
/// name) and moves the data of the good ones to the front of `buf`, back to
/// back in place order. Returns where each record's data now lies, or why
/// the record is bad.
///
/// Why move: the checksum table and footer after each chunk's data kept a
/// file's chunks apart in memory, so every READ spanning chunks (a 1 MiB
/// READ spans 3-4) copied its bytes into one buffer on the session thread:
/// 21% of the daemon's CPU in a warm `cat`. Moving each record right after
/// its check, while its bytes are still in the CPU cache, is cheaper, and is
/// done here, off the READ's path. Records that overlap one another (an
/// index out of step with the segment) are checked where they lie and not
/// moved.
fn compact_records<'a>(
    buf: &mut [u8],
    start: u64,
    records: &[Wanted],
    name: impl Fn(usize) -> &'a Hash,
) -> Vec<Result<Range<usize>, Bad>> {
    let place = |e: &Entry| (e.off as u64 - start) as usize;
    let apart = records
        .windows(2)
        .all(|w| place(&w[0].0) + w[0].0.size() as usize <= place(&w[1].0));
    let mut to = place(&records[0].0);
    records
        .iter()
        .map(|&(e, i)| {
            let at = place(&e);
            let len = e.len as usize;
            if buf.len() < at + e.size() as usize {
                return Err(Bad::Corrupt("record shorter than its chunk"));
            }
            if !apart {
                check_record(&buf[at..at + e.size() as usize], name(i), e)?;
                return Ok(at..at + len);
            }
            // `to <= at`: only data of good records before this one went
            // there, and each record is at least as long as its data.
            check_and_move(buf, at, to, name(i), e)?;
            to += len;
            Ok(to - len..to)
        })
        .collect()
}

/// [`check_record`] of the record at `at` in `buf`, moving its data to `to`
/// (`<= at`) block by block right after each block's check, while the
/// block is in the L1 cache: a move of the whole record after its check
/// cost over half as much as the checks. Writes only below each block's
/// end, so no byte is overwritten before it is checked; on an error some
/// of the data may have moved (the record is then not served).
fn check_and_move(buf: &mut [u8], at: usize, to: usize, h: &Hash, e: Entry) -> Result<(), Bad> {
    let len = e.len as usize;
    let tlen = trailer_len(len);
    let sums = at + len;
    check_footer(&buf[sums + tlen - FOOTER..sums + tlen], h, e.len, false)?;
    for b in (0..len).step_by(BLOCK) {
        let end = (b + BLOCK).min(len);
        let k = sums + 4 * (b / BLOCK);
        check_blocks(&buf[at + b..at + end], &buf[k..k + 4])?;
        if to != at {
            buf.copy_within(at + b..at + end, to + b);
        }
    }
    Ok(())
}

fn segment_name(id: u32) -> String {
    format!("{id:08x}.seg")
}

impl DiskCache {
    /// Opens (creating if needed) the cache under `dir`, bounded to `limit` bytes.
    pub fn open(dir: &Path, limit: u64) -> Result<DiskCache, CacheError> {
        let io = |source| CacheError::Io {
            path: dir.to_path_buf(),
            source,
        };
        // Owner-only: cached bytes must not be readable by other local users.
        crate::store::private_dir(dir).map_err(io)?;
        let segdir = dir.join("segments");
        std::fs::create_dir_all(&segdir).map_err(io)?;
        let lock = crate::catalog::node_dirs::use_dir(dir).map_err(|e| CacheError::Io {
            path: e.path,
            source: e.source,
        })?;
        let db_path = dir.join("cache.sqlite");
        let dberr = |source| CacheError::Db {
            path: db_path.clone(),
            source,
        };
        let mut db = Connection::open(&db_path).map_err(dberr)?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(dberr)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(dberr)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(dberr)?;
        {
            let tx = db
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(dberr)?;
            let format: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(dberr)?;
            if format != FORMAT {
                // Older layouts (one file per chunk): start over.
                let old: i64 = tx
                    .query_row(
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'chunks'",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(dberr)?;
                if old > 0 {
                    tracing::info!("discarding a chunk cache of an older format");
                }
                let _ = std::fs::remove_dir_all(dir.join("chunks"));
                tx.execute_batch(
                    "DROP TABLE IF EXISTS chunks;
                     DROP TABLE IF EXISTS segments;",
                )
                .map_err(dberr)?;
                tx.pragma_update(None, "user_version", FORMAT)
                    .map_err(dberr)?;
            }
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS chunks (
                     hash BLOB PRIMARY KEY, seg INTEGER NOT NULL, off INTEGER NOT NULL,
                     len INTEGER NOT NULL, local INTEGER NOT NULL, size INTEGER NOT NULL,
                     last_used INTEGER NOT NULL);
                 CREATE INDEX IF NOT EXISTS chunks_lru ON chunks(last_used);
                 CREATE INDEX IF NOT EXISTS chunks_seg ON chunks(seg);
                 CREATE TABLE IF NOT EXISTS segments (
                     id INTEGER PRIMARY KEY AUTOINCREMENT, created INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
            )
            .map_err(dberr)?;
            tx.commit().map_err(dberr)?;
        }
        let mut index = DigestMap::default();
        let mut bytes = 0u64;
        let mut live = HashSet::new();
        {
            let mut st = db
                .prepare("SELECT hash, seg, off, len, local FROM chunks")
                .map_err(dberr)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        Entry {
                            seg: r.get::<_, i64>(1)? as u32,
                            off: r.get::<_, i64>(2)? as u32,
                            len: r.get::<_, i64>(3)? as u32,
                            local: r.get::<_, i64>(4)? != 0,
                        },
                    ))
                })
                .map_err(dberr)?;
            for row in rows {
                let (h, e) = row.map_err(dberr)?;
                if let Ok(h) = Hash::try_from(h.as_slice()) {
                    bytes += e.size();
                    live.insert(e.seg);
                    index.insert(h, e);
                }
            }
        }
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            db_path: db_path.clone(),
            db: Mutex::new(db),
            limit,
            local_packs: None,
            index: Mutex::new(index),
            approx_bytes: AtomicU64::new(bytes),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            touched: Mutex::new(Touched {
                hashes: HashSet::new(),
                flushed: std::time::Instant::now(),
            }),
            inserts: Mutex::new(vec![]),
            writer: Mutex::new(None),
            active_seg: AtomicU32::new(0),
            segments: Mutex::new(LruCache::new(NonZeroUsize::new(OPEN_FILES).unwrap())),
            direct_segments: Mutex::new(LruCache::new(NonZeroUsize::new(OPEN_FILES).unwrap())),
            direct_pool: BufferPool::new(DIRECT_POOL_BYTES),
            run_reads: AtomicU64::new(0),
            advised: AtomicU64::new(0),
            run_read_bytes: AtomicU64::new(0),
            direct_writes: AtomicU64::new(0),
            direct_copied: AtomicU64::new(0),
            gather_refused: AtomicBool::new(false),
            space_of: Space::of,
            packs: Mutex::new(LruCache::new(NonZeroUsize::new(OPEN_FILES).unwrap())),
            _lock: lock,
        };
        // Listed after the rows were read: a row's segment is created
        // before the row is written.
        let present: HashSet<u32> = std::fs::read_dir(&segdir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_suffix(".seg"))
                            .and_then(|n| u32::from_str_radix(n, 16).ok())
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Segments no record lives in (all evicted, or written by a process
        // that died before indexing them), unless someone still appends.
        for id in present.difference(&live) {
            let _ = cache.delete_segment(*id);
        }
        // Rows whose segment is gone (deleted behind the cache's back).
        let lost: Vec<u32> = live.difference(&present).copied().collect();
        if !lost.is_empty() {
            tracing::warn!(
                segments = lost.len(),
                "cache index rows point at missing segment files; forgetting them"
            );
            cache
                .index
                .lock()
                .expect("index lock")
                .retain(|_, e| !lost.contains(&e.seg));
            let db = cache.db.lock().expect("db lock");
            for id in &lost {
                let _ = db.execute("DELETE FROM chunks WHERE seg = ?1", params![*id as i64]);
            }
            drop(db);
            cache.approx_bytes.store(
                cache
                    .index
                    .lock()
                    .expect("index lock")
                    .values()
                    .map(|e| e.size())
                    .sum(),
                Ordering::Relaxed,
            );
        }
        Ok(cache)
    }

    /// Reads the chunks of a local store in place from its pack directory
    /// instead of copying them into the cache.
    pub fn with_local_packs(mut self, packs: Option<PathBuf>) -> DiskCache {
        self.local_packs = packs;
        self
    }

    /// True when records of new chunks hold only checksums (local store).
    pub fn is_local(&self) -> bool {
        self.local_packs.is_some()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn segment_path(&self, id: u32) -> PathBuf {
        self.dir.join("segments").join(segment_name(id))
    }

    /// The segment file, offset and size of a chunk's record (tests damage
    /// them on purpose).
    pub fn record_of(&self, h: &Hash) -> Option<(PathBuf, u64, u64)> {
        let e = *self.index.lock().expect("index lock").get(h)?;
        Some((self.segment_path(e.seg), e.off as u64, e.size()))
    }

    /// True when this process believes the chunk is cached (no I/O).
    pub fn contains(&self, h: &Hash) -> bool {
        self.index.lock().expect("index lock").contains_key(h)
    }

    /// Where a cached chunk's record is, for [`DiskCache::read_located`].
    pub fn locate(&self, h: &Hash) -> Option<Located> {
        let entry = *self.index.lock().expect("index lock").get(h)?;
        Some(Located { entry })
    }

    /// Asks the kernel to start reading `h`'s record (and, for a local
    /// store, its data in the pack) into the page cache, without waiting
    /// (`POSIX_FADV_WILLNEED`). Nothing happens when `h` is not cached.
    pub fn will_need(&self, h: &Hash, at: Origin) {
        let Some(e) = self.index.lock().expect("index lock").get(h).copied() else {
            return;
        };
        self.advised.fetch_add(1, Ordering::Relaxed);
        let len = e.len as usize;
        // The record: data and checksums, or a local store's checksums only.
        let record = if e.local { 0 } else { len } + trailer_len(len);
        if let Ok(seg) = self.open_segment(e.seg) {
            crate::store::will_need_range(&seg, e.off as u64, record as u64);
        }
        if e.local {
            if let Ok(pack) = self.open_pack(&at.pack) {
                crate::store::will_need_range(&pack, at.offset as u64, len as u64);
            }
        }
    }

    /// A whole verified chunk of `len` bytes, or `None` (missing, evicted, or
    /// corrupt and dropped).
    pub fn get(&self, h: &Hash, len: u32, at: Origin) -> Option<Bytes> {
        self.read(h, len, 0..len, at)
    }

    /// Bytes `range` of a chunk of `len` bytes, checking only the blocks the
    /// range touches. `None` when missing or corrupt (then dropped).
    pub fn read(&self, h: &Hash, len: u32, range: Range<u32>, at: Origin) -> Option<Bytes> {
        let Some(loc) = self.locate(h) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.read_located(h, &loc, len, range, at)
    }

    /// [`DiskCache::read`] of a record already located.
    pub fn read_located(
        &self,
        h: &Hash,
        loc: &Located,
        len: u32,
        range: Range<u32>,
        at: Origin,
    ) -> Option<Bytes> {
        let e = loc.entry;
        let r = if e.len != len {
            Err(Bad::Corrupt("length in index differs"))
        } else {
            self.try_read(h, e, range.start as usize..range.end as usize, at)
        };
        self.judge(h, e, r)
    }

    /// What a read of `h`'s record `e` gave: a hit, or a miss, with a
    /// corrupt record dropped and reported.
    fn judge(&self, h: &Hash, e: Entry, r: Result<Bytes, Bad>) -> Option<Bytes> {
        match r {
            Ok(b) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                self.touch(h);
                Some(b)
            }
            Err(Bad::Missing) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.forget(h, e);
                None
            }
            Err(Bad::Corrupt(why)) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                if self.changed_under_us(h, e) {
                    // Evicted or replaced meanwhile (here or by another
                    // process sharing the directory): a plain miss.
                    return None;
                }
                tracing::warn!(chunk = %to_hex(h), segment = %self.segment_path(e.seg).display(), offset = e.off, "corrupt chunk in cache ({why}), dropping it");
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                self.remove(h, e);
                None
            }
        }
    }

    /// Splits chunks a reader wants from the cache (`(name, length)`, in
    /// the reader's order) into groups for [`DiskCache::get_run`]: records
    /// lying near each other in a segment, up to one direct read of
    /// `RUN_BYTES` (records and alignment included), whatever their order
    /// in the file. Groups come in the order of the earliest chunk each
    /// holds; chunks without an inline record go in groups of their own.
    ///
    /// Why by place: a file's records are in file order only within one
    /// request of the cold read that admitted them (requests finish in any
    /// order, and a chunk split across two requests is admitted with the
    /// later one). Groups cut in file order read the same stretch of a
    /// segment twice, as part of one group's read-through gap and as
    /// another group's record: 27% more bytes read than asked for, measured.
    pub fn run_groups(&self, items: &[(Hash, u32)]) -> Vec<Vec<usize>> {
        let (located, other) = self.locate_inline(items.iter().copied());
        let mut groups: Vec<Vec<usize>> = other.into_iter().map(|i| vec![i]).collect();
        for (_, _, run) in runs_by_place(&located, RUN_BYTES - 2 * ALIGN as u64) {
            groups.push(run.iter().map(|(_, i)| *i).collect());
        }
        groups.sort_by_key(|g| g.iter().min().copied());
        groups
    }

    /// The inline records of `items` (by name and length), sorted by
    /// place, with their item indices; and the indices of the rest (not
    /// cached, a local store's record, or the wrong length).
    fn locate_inline(&self, items: impl Iterator<Item = (Hash, u32)>) -> (Vec<Wanted>, Vec<usize>) {
        let mut located = vec![];
        let mut other = vec![];
        {
            let idx = self.index.lock().expect("index lock");
            for (i, (h, len)) in items.enumerate() {
                match idx.get(&h) {
                    Some(e) if !e.local && e.len == len => located.push((*e, i)),
                    _ => other.push(i),
                }
            }
        }
        located.sort_by_key(|(e, _)| (e.seg, e.off));
        (located, other)
    }

    /// Whole chunks, as [`DiskCache::get`] gives them, for chunks a reader
    /// will read soon (readahead). Records that lie near each other in one
    /// segment are read together, bypassing the page cache (see
    /// `crate::catalog::direct_io`): in order of their place in the
    /// segment, gaps of up to `RUN_GAP` read through, up to
    /// `RUN_BYTES` per read. Chunks fetched in parallel are admitted
    /// interleaved, so a file's records are near each other, not always
    /// back to back. Each record is checked on its own; the data of good
    /// records is then moved together (`compact_records`), so the chunks
    /// of one read lie back to back in its buffer, in the records' order.
    pub fn get_run(
        &self,
        items: &[(Hash, u32, Origin)],
        read_done: impl FnOnce(),
    ) -> Vec<Option<RunChunk>> {
        // Inline records to read directly: (entry, item index), by place.
        let (direct, other) = self.locate_inline(items.iter().map(|(h, len, _)| (*h, *len)));
        // All reads first, then `read_done`, then the checks: the caller
        // lets the next reads start while these are checked.
        let spans: Vec<_> = runs_by_place(&direct, RUN_BYTES)
            .into_iter()
            .map(|(start, end, run)| {
                let span = self.read_span(run[0].0.seg, start, (end - start) as usize);
                (span, start, run)
            })
            .collect();
        let mut out: Vec<Option<RunChunk>> = (0..items.len()).map(|_| None).collect();
        for i in other {
            let (h, len, at) = &items[i];
            out[i] = self
                .get(h, *len, *at)
                .map(|bytes| RunChunk { bytes, read: None });
        }
        read_done();
        for (k, (span, start, records)) in spans.into_iter().enumerate() {
            let (placed, bytes) = match span {
                Ok(mut buf) => {
                    let placed =
                        compact_records(buf.as_mut_slice(), start, records, |i| &items[i].0);
                    (placed, Some(buf.freeze()))
                }
                Err(b) => (records.iter().map(|_| Err(b)).collect(), None),
            };
            for (&(e, i), r) in records.iter().zip(placed) {
                let r = r.map(|r| bytes.as_ref().expect("read").slice(r));
                out[i] = self.judge(&items[i].0, e, r).map(|bytes| RunChunk {
                    bytes,
                    read: Some(k),
                });
            }
        }
        out
    }

    /// `len` bytes of segment `seg` at `off`, read directly.
    fn read_span(&self, seg: u32, off: u64, len: usize) -> Result<ReadBuf, Bad> {
        let f = self.open_direct(seg)?;
        self.run_reads.fetch_add(1, Ordering::Relaxed);
        self.run_read_bytes.fetch_add(len as u64, Ordering::Relaxed);
        f.read_buf_at(&self.direct_pool, off, len)
            .map_err(|_| Bad::Corrupt("record shorter than its chunk"))
    }

    /// Records [`DiskCache::will_need`] asked the kernel for (for tests).
    pub fn advised(&self) -> u64 {
        self.advised.load(Ordering::Relaxed)
    }

    /// Direct reads of records done so far (for tests).
    pub fn run_reads(&self) -> u64 {
        self.run_reads.load(Ordering::Relaxed)
    }

    /// Bytes direct writes copied into aligned buffers so far (for tests).
    pub fn direct_copied(&self) -> u64 {
        self.direct_copied.load(Ordering::Relaxed)
    }

    /// Batches written with direct I/O so far (for tests).
    pub fn direct_writes(&self) -> u64 {
        self.direct_writes.load(Ordering::Relaxed)
    }

    /// Bytes of records those reads covered (for tests).
    pub fn run_read_bytes(&self) -> u64 {
        self.run_read_bytes.load(Ordering::Relaxed)
    }

    fn open_direct(&self, id: u32) -> Result<Arc<DirectFile>, Bad> {
        if let Some(f) = self.direct_segments.lock().expect("segments lock").get(&id) {
            return Ok(f.clone());
        }
        let f = Arc::new(DirectFile::open(&self.segment_path(id)).map_err(|_| Bad::Missing)?);
        self.direct_segments
            .lock()
            .expect("segments lock")
            .put(id, f.clone());
        Ok(f)
    }

    fn open_segment(&self, id: u32) -> Result<Arc<File>, Bad> {
        if let Some(f) = self.segments.lock().expect("segments lock").get(&id) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.segment_path(id)).map_err(|_| Bad::Missing)?);
        self.segments
            .lock()
            .expect("segments lock")
            .put(id, f.clone());
        Ok(f)
    }

    fn open_pack(&self, pack: &PackId) -> Result<Arc<File>, Bad> {
        let Some(dir) = &self.local_packs else {
            // A record written for a local store, read by a mount of another
            // store: its data is not here.
            return Err(Bad::Missing);
        };
        if let Some(f) = self.packs.lock().expect("packs lock").get(pack) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(dir.join(to_hex(pack))).map_err(|_| Bad::Missing)?);
        self.packs.lock().expect("packs lock").put(*pack, f.clone());
        Ok(f)
    }

    fn try_read(&self, h: &Hash, e: Entry, range: Range<usize>, at: Origin) -> Result<Bytes, Bad> {
        let len = e.len as usize;
        if range.start > range.end || range.end > len {
            return Err(Bad::Corrupt("range outside the chunk"));
        }
        let seg = self.open_segment(e.seg)?;
        let short = |_| Bad::Corrupt("record shorter than its chunk");
        let off = e.off as u64;
        let tlen = trailer_len(len);
        // Where the data is: in the record, or in a local store's pack.
        let (data_file, data_off, trailer_off) = if e.local {
            (self.open_pack(&at.pack)?, at.offset as u64, off)
        } else {
            (seg.clone(), off, off + len as u64)
        };
        if range.start == 0 && range.end == len && !e.local {
            // Whole chunk: one read of the record.
            let buf = pread_vec(&seg, len + tlen, off).map_err(short)?;
            check_record(&buf, h, e)?;
            return Ok(Bytes::from(buf).slice(..len));
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let (b0, b1) = (range.start / BLOCK, range.end.div_ceil(BLOCK));
        // Checksums of the touched blocks through the footer, in one read.
        let meta = pread_vec(&seg, tlen - 4 * b0, trailer_off + 4 * b0 as u64).map_err(short)?;
        check_footer(&meta[meta.len() - FOOTER..], h, e.len, e.local)?;
        let (d0, d1) = (b0 * BLOCK, (b1 * BLOCK).min(len));
        let data = pread_vec(&data_file, d1 - d0, data_off + d0 as u64).map_err(|_| {
            if e.local {
                // A local pack shorter than the manifest says: not ours to drop.
                Bad::Missing
            } else {
                Bad::Corrupt("record shorter than its chunk")
            }
        })?;
        check_blocks(&data, &meta)?;
        Ok(Bytes::from(data).slice(range.start - d0..range.end - d0))
    }

    /// True when `h` is no longer at `e` (in this process's index or in
    /// SQLite): what looked like damage was an eviction or a rewrite.
    fn changed_under_us(&self, h: &Hash, e: Entry) -> bool {
        if self.index.lock().expect("index lock").get(h) != Some(&e) {
            return true;
        }
        let _ = self.flush_inserts();
        let row: Option<(i64, i64)> = self
            .db
            .lock()
            .expect("db lock")
            .query_row(
                "SELECT seg, off FROM chunks WHERE hash = ?1",
                params![&h[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ok()
            .flatten();
        if row == Some((e.seg as i64, e.off as i64)) {
            return false;
        }
        self.forget(h, e);
        true
    }

    /// Drops `h` from this process's index if it still points at `e`.
    fn forget(&self, h: &Hash, e: Entry) {
        let mut idx = self.index.lock().expect("index lock");
        if idx.get(h) == Some(&e) {
            idx.remove(h);
            drop(idx);
            self.approx_sub(e.size());
        }
    }

    fn approx_sub(&self, n: u64) {
        let _ = self
            .approx_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }

    fn touch(&self, h: &Hash) {
        let batch: Vec<Hash> = {
            let mut t = self.touched.lock().expect("touch lock");
            t.hashes.insert(*h);
            let n = t.hashes.len();
            if n < TOUCH_BATCH || (n < TOUCH_MAX && t.flushed.elapsed() < TOUCH_INTERVAL) {
                return;
            }
            t.take()
        };
        self.flush_touches(batch);
    }

    fn flush_touches(&self, batch: Vec<Hash>) {
        if batch.is_empty() {
            return;
        }
        let now = now_nanos();
        let mut db = self.db.lock().expect("db lock");
        let r = (|| {
            let tx = db.transaction()?;
            {
                let mut st =
                    tx.prepare_cached("UPDATE chunks SET last_used = ?1 WHERE hash = ?2")?;
                for h in &batch {
                    st.execute(params![now, &h[..]])?;
                }
            }
            tx.commit()
        })();
        match r {
            // A full disk: the cache writer's warning has said so.
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                tracing::debug!("cache index update failed: {e}")
            }
            Err(e) => tracing::warn!("cache index update failed: {e}"),
            Ok(()) => {}
        }
    }

    fn flush_inserts(&self) -> Result<(), CacheError> {
        let rows: Vec<(Hash, Entry)> = std::mem::take(&mut *self.inserts.lock().expect("inserts"));
        if rows.is_empty() {
            return Ok(());
        }
        let now = now_nanos();
        let mut db = self.db.lock().expect("db lock");
        let r = (|| {
            let tx = db.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR REPLACE INTO chunks (hash, seg, off, len, local, size, last_used)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (h, e) in &rows {
                    st.execute(params![
                        &h[..],
                        e.seg as i64,
                        e.off as i64,
                        e.len as i64,
                        e.local as i64,
                        e.size() as i64,
                        now
                    ])?;
                }
            }
            tx.commit()
        })();
        r.map_err(|source| {
            // Kept for the next flush: a record whose row is lost can be
            // read but never evicted.
            let mut ins = self.inserts.lock().expect("inserts");
            let later = std::mem::replace(&mut *ins, rows);
            ins.extend(later);
            CacheError::Db {
                path: self.db_path.clone(),
                source,
            }
        })
    }

    /// Stores a chunk the caller has already verified against its name.
    pub fn put(&self, h: &Hash, data: &[u8], at: Origin) -> Result<(), CacheError> {
        self.put_batch(&[Admit {
            hash: *h,
            body: Body::Bytes(Bytes::copy_from_slice(data)),
            origin: at,
        }])
    }

    /// Stores chunks the caller has already verified against their names,
    /// in one write, evicting first if they would not fit. A cache that
    /// keeps data skips [`Body::Sums`] items: it cannot write their records.
    pub fn put_batch(&self, items: &[Admit]) -> Result<(), CacheError> {
        let room = self.bound_now();
        // A batch large for the room left (a small disk) goes in halves, so
        // that making room for it does not empty the cache.
        if items.len() > 1 && room > 0 && self.records_bytes(items.iter()) > room / 2 {
            let (a, b) = items.split_at(items.len() / 2);
            let first = self.put_batch(a);
            return first.and(self.put_batch(b));
        }
        match self.put_batch_once(items, room) {
            // Others filled the disk after the room was measured: make room
            // against what is free now, and write the batch once more.
            Err(e) if e.is_no_room() && !matches!(e, CacheError::NoRoom { .. }) => {
                tracing::debug!("cache write found no room ({e}); evicting and retrying once");
                self.put_batch_once(items, self.bound_now())
            }
            r => r,
        }
    }

    /// What the cache may hold in all now ([`cache_room::bound`]).
    fn bound_now(&self) -> u64 {
        let held = self.approx_bytes.load(Ordering::Relaxed);
        cache_room::bound(self.limit, held, (self.space_of)(&self.dir).ok())
    }

    /// Bytes the records of `items` take in this cache.
    fn records_bytes<'a>(&self, items: impl Iterator<Item = &'a Admit>) -> u64 {
        let local = self.local_packs.is_some();
        items.map(|a| record_size(a.body.len(), local) as u64).sum()
    }

    /// One write of `items`, making room under `bound` ([`Self::bound_now`]) first.
    fn put_batch_once(&self, items: &[Admit], bound: u64) -> Result<(), CacheError> {
        let local = self.local_packs.is_some();
        let mut seen = HashSet::new();
        let items: Vec<&Admit> = {
            let idx = self.index.lock().expect("index lock");
            items
                .iter()
                .filter(|a| local || matches!(a.body, Body::Bytes(_)))
                .filter(|a| !idx.contains_key(&a.hash) && seen.insert(a.hash))
                .collect()
        };
        if items.is_empty() {
            return Ok(());
        }
        let incoming = self.records_bytes(items.iter().copied());
        // Room first, so the cache never holds more than its bound, nor
        // takes the disk's last free space (`cache_room`).
        let held = self.approx_bytes.load(Ordering::Relaxed);
        if held + incoming > bound {
            let target = (bound - bound / 10).min(bound.saturating_sub(incoming));
            self.evict_to(target)?;
            // Evicted to nothing, and still no room: writing would take
            // the space the node's own files were left.
            if incoming > bound {
                return Err(CacheError::NoRoom {
                    path: self.dir.clone(),
                    needed: incoming,
                });
            }
        }
        let mut w = self.writer.lock().expect("writer lock");
        if w.as_ref().is_none_or(|a| a.len >= SEGMENT_BYTES) {
            *w = Some(self.new_segment()?);
        }
        let a = w.as_mut().expect("active segment");
        let path = self.segment_path(a.id);
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        let direct = a
            .direct
            .as_ref()
            .filter(|_| !local && incoming as usize >= DIRECT_WRITE_MIN);
        // A direct write starts on a block boundary.
        let start = match direct {
            Some(_) => a.len.div_ceil(ALIGN as u64) * ALIGN as u64,
            None => a.len,
        };
        let footer = |it: &Admit| Footer {
            hash: it.hash,
            len: it.body.len() as u32,
            local,
            pack: it.origin.pack,
            offset: it.origin.offset,
        };
        let trailer = |out: &mut Vec<u8>, it: &Admit| match &it.body {
            Body::Bytes(b) => disk_cache_file::write_trailer(out, b, &footer(it)),
            Body::Sums { sums, .. } => disk_cache_file::write_trailer_sums(out, sums, &footer(it)),
        };
        // Where each record begins, and where the next write may start.
        let (offs, at) = match direct {
            Some(f) => {
                let grain = a
                    .grain
                    .filter(|_| !self.gather_refused.load(Ordering::Relaxed));
                let gathered = match grain {
                    Some(g) => match self.write_gathered(f, g, start, &items, trailer) {
                        Ok(done) => Some(done),
                        // The filesystem said what alignment it needs and
                        // then refused it: copy from now on, and say so.
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            self.gather_refused.store(true, Ordering::Relaxed);
                            tracing::warn!(
                                "{}: direct write from the receive buffers refused ({e}); \
                                 copying each record into an aligned buffer from now on",
                                path.display()
                            );
                            None
                        }
                        Err(e) => return Err(io(e)),
                    },
                    None => None,
                };
                let done = match gathered {
                    Some(done) => done,
                    None => self.write_copied(f, start, &items, trailer).map_err(io)?,
                };
                self.direct_writes.fetch_add(1, Ordering::Relaxed);
                done
            }
            None => {
                let mut offs = Vec::with_capacity(items.len());
                let mut at = start;
                for it in &items {
                    offs.push(at);
                    at += record_size(it.body.len(), local) as u64;
                }
                let trailers: Vec<Vec<u8>> = items
                    .iter()
                    .map(|it| {
                        let mut t = vec![];
                        trailer(&mut t, it);
                        t
                    })
                    .collect();
                let mut bufs: Vec<&[u8]> = Vec::with_capacity(2 * items.len());
                for (it, t) in items.iter().zip(&trailers) {
                    if let (false, Body::Bytes(data)) = (local, &it.body) {
                        bufs.push(data);
                    }
                    bufs.push(t);
                }
                disk_cache_file::pwrite_all(&a.file, &bufs, a.len).map_err(io)?;
                (offs, at)
            }
        };
        let entries: Vec<Entry> = items
            .iter()
            .zip(&offs)
            .map(|(it, &off)| Entry {
                seg: a.id,
                off: off as u32,
                len: it.body.len() as u32,
                local,
            })
            .collect();
        a.len = at;
        let seal = a.len >= SEGMENT_BYTES;
        {
            let mut idx = self.index.lock().expect("index lock");
            for (it, e) in items.iter().zip(&entries) {
                idx.insert(it.hash, *e);
            }
        }
        self.approx_bytes.fetch_add(incoming, Ordering::Relaxed);
        let flush = {
            let mut ins = self.inserts.lock().expect("inserts");
            ins.extend(items.iter().map(|it| it.hash).zip(entries));
            ins.len() >= INSERT_BATCH
        };
        if seal {
            // Rows first: a sealed segment is no longer locked, and another
            // process deletes segments without rows.
            self.flush_inserts()?;
            *w = None;
            self.active_seg.store(0, Ordering::SeqCst);
        } else if flush {
            self.flush_inserts()?;
        }
        Ok(())
    }

    /// A direct write of inline records taken from where their bytes lie
    /// ([`DirectGather`]); returns each record's offset and the end.
    fn write_gathered(
        &self,
        f: &File,
        grain: usize,
        start: u64,
        items: &[&Admit],
        trailer: impl Fn(&mut Vec<u8>, &Admit),
    ) -> std::io::Result<(Vec<u64>, u64)> {
        let trailers: usize = items.iter().map(|it| trailer_len(it.body.len())).sum();
        let room = DirectGather::room_for(grain, items.len(), trailers);
        let mut out = self.direct_pool.gather(grain, start, room);
        let mut t = vec![];
        let mut offs = Vec::with_capacity(items.len());
        for it in items {
            // Always bytes here: a cache that keeps data took no sums.
            let data: &[u8] = match &it.body {
                Body::Bytes(b) => b,
                Body::Sums { .. } => &[],
            };
            t.clear();
            trailer(&mut t, it);
            offs.push(out.push(data, &t));
        }
        let copied = out.copied() as u64;
        let end = out.finish(f)?;
        self.direct_copied.fetch_add(copied, Ordering::Relaxed);
        Ok((offs, end))
    }

    /// A direct write of inline records copied into an aligned buffer,
    /// back to back; returns each record's offset and the end.
    fn write_copied(
        &self,
        f: &File,
        start: u64,
        items: &[&Admit],
        trailer: impl Fn(&mut Vec<u8>, &Admit),
    ) -> std::io::Result<(Vec<u64>, u64)> {
        let mut out = self.direct_pool.appender(DIRECT_WRITE_BYTES, start);
        let mut t = vec![];
        let mut offs = Vec::with_capacity(items.len());
        let mut at = start;
        let mut copied = 0;
        for it in items {
            offs.push(at);
            if let Body::Bytes(data) = &it.body {
                out.append(f, data)?;
                copied += data.len();
            }
            t.clear();
            trailer(&mut t, it);
            out.append(f, &t)?;
            copied += t.len();
            at += record_size(it.body.len(), false) as u64;
        }
        self.direct_copied
            .fetch_add(copied as u64, Ordering::Relaxed);
        Ok((offs, out.finish(f)?))
    }

    fn new_segment(&self) -> Result<Active, CacheError> {
        let id = {
            let db = self.db.lock().expect("db lock");
            db.execute(
                "INSERT INTO segments (created) VALUES (?1)",
                params![now_nanos()],
            )
            .map_err(|source| CacheError::Db {
                path: self.db_path.clone(),
                source,
            })?;
            db.last_insert_rowid() as u32
        };
        let path = self.segment_path(id);
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?
        };
        if !disk_cache_file::try_lock(&file).map_err(io)? {
            return Err(io(std::io::Error::other(
                "new segment locked by another process",
            )));
        }
        let direct = open_direct_writer(&path).map_err(io)?;
        let grain = direct.as_ref().and_then(dio_grain);
        self.active_seg.store(id, Ordering::SeqCst);
        Ok(Active {
            id,
            file,
            direct,
            grain,
            len: 0,
        })
    }

    /// Deletes a segment unless some process still appends to it; `true`
    /// when it is gone.
    fn delete_segment(&self, id: u32) -> bool {
        if self.active_seg.load(Ordering::SeqCst) == id {
            return false;
        }
        let path = self.segment_path(id);
        let Ok(f) = File::open(&path) else {
            return true;
        };
        if !matches!(disk_cache_file::try_lock(&f), Ok(true)) {
            return false;
        }
        let _ = std::fs::remove_file(&path);
        self.segments.lock().expect("segments lock").pop(&id);
        if let Ok(db) = self.db.lock() {
            let _ = db.execute("DELETE FROM segments WHERE id = ?1", params![id as i64]);
        }
        true
    }

    /// Frees records' space; deletes a segment when nothing is left in it.
    fn free_records(&self, freed: &[Entry]) {
        self.punch_records(freed);
        self.drop_empty_segments(freed);
    }

    /// Punches the holes that free records' space on disk.
    fn punch_records(&self, freed: &[Entry]) {
        let mut by_seg: HashMap<u32, Vec<Entry>> = HashMap::new();
        for e in freed {
            by_seg.entry(e.seg).or_default().push(*e);
        }
        for (seg, es) in by_seg {
            let path = self.segment_path(seg);
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                for e in es {
                    if let Err(err) = disk_cache_file::punch_hole(&f, e.off as u64, e.size()) {
                        tracing::debug!("punching a hole in {}: {err}", path.display());
                    }
                }
            }
        }
    }

    /// Deletes the segments of `freed` records that no index row names.
    fn drop_empty_segments(&self, freed: &[Entry]) {
        let segs: HashSet<u32> = freed.iter().map(|e| e.seg).collect();
        for seg in segs {
            let left: i64 = self
                .db
                .lock()
                .expect("db lock")
                .query_row(
                    "SELECT COUNT(*) FROM chunks WHERE seg = ?1",
                    params![seg as i64],
                    |r| r.get(0),
                )
                .unwrap_or(1);
            if left == 0 && !self.inserts_in(seg) {
                self.delete_segment(seg);
            }
        }
    }

    fn inserts_in(&self, seg: u32) -> bool {
        self.inserts
            .lock()
            .expect("inserts")
            .iter()
            .any(|(_, e)| e.seg == seg)
    }

    /// Drops a damaged record.
    fn remove(&self, h: &Hash, e: Entry) {
        self.forget(h, e);
        let _ = self.flush_inserts();
        if let Ok(db) = self.db.lock() {
            let _ = db.execute(
                "DELETE FROM chunks WHERE hash = ?1 AND seg = ?2 AND off = ?3",
                params![&h[..], e.seg as i64, e.off as i64],
            );
        }
        self.free_records(&[e]);
    }

    /// Evicts least-recently-used chunks until the cache holds at most `target` bytes.
    pub fn evict_to(&self, target: u64) -> Result<u64, CacheError> {
        // On a full disk the index may not take the new rows yet: evict
        // what it has, which is what makes room for them.
        match self.flush_inserts() {
            Err(e) if !e.is_no_room() => return Err(e),
            _ => {}
        }
        let pending = self.touched.lock().expect("touch lock").take();
        self.flush_touches(pending);
        let dberr = |source| CacheError::Db {
            path: self.db_path.clone(),
            source,
        };
        let mut freed = vec![];
        let mut evicted = 0u64;
        // Records whose rows a full disk held back take space too.
        let unlisted: i64 = self
            .inserts
            .lock()
            .expect("inserts")
            .iter()
            .map(|(_, e)| e.size() as i64)
            .sum();
        let total = {
            let mut db = self.db.lock().expect("db lock");
            let mut total: i64 = db
                .query_row("SELECT COALESCE(SUM(size), 0) FROM chunks", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(dberr)?
                + unlisted;
            while total as u64 > target {
                type Victim = (Vec<u8>, i64, i64, i64, i64, i64);
                let victims: Vec<Victim> = {
                    let mut st = db
                        .prepare_cached(
                            "SELECT hash, seg, off, len, local, size FROM chunks ORDER BY last_used LIMIT 64",
                        )
                        .map_err(dberr)?;
                    let rows = st
                        .query_map([], |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                            ))
                        })
                        .map_err(dberr)?;
                    rows.collect::<Result<_, _>>().map_err(dberr)?
                };
                if victims.is_empty() {
                    break;
                }
                let mut gone = vec![];
                for (hash, seg, off, len, local, size) in victims {
                    let e = Entry {
                        seg: seg as u32,
                        off: off as u32,
                        len: len as u32,
                        local: local != 0,
                    };
                    if let Ok(h) = <Hash>::try_from(hash.as_slice()) {
                        // Out of the index first: a planner must not count on it.
                        let mut idx = self.index.lock().expect("index lock");
                        if idx.get(&h) == Some(&e) {
                            idx.remove(&h);
                        }
                    }
                    gone.push((hash, e));
                    total -= size;
                    evicted += size as u64;
                    if total as u64 <= target {
                        break;
                    }
                }
                // Space first, rows second: on a full disk the index can
                // only take the deletions once the holes have made room. A
                // row left naming a hole (a crash in between, a disk still
                // full) fails its record's footer check: a miss, never
                // wrong bytes.
                let es: Vec<Entry> = gone.iter().map(|(_, e)| *e).collect();
                self.punch_records(&es);
                freed.extend(es);
                let tx = db.transaction().map_err(dberr)?;
                for (hash, _) in &gone {
                    tx.execute("DELETE FROM chunks WHERE hash = ?1", params![hash])
                        .map_err(dberr)?;
                }
                tx.commit().map_err(dberr)?;
            }
            total
        };
        self.drop_empty_segments(&freed);
        self.approx_bytes
            .store(total.max(0) as u64, Ordering::Relaxed);
        // Rows a full disk held back now fit; left for later if not.
        let _ = self.flush_inserts();
        Ok(evicted)
    }

    /// Writes pending index rows and adds this process's hit/miss counts to
    /// the persistent counters.
    pub fn flush_counters(&self) {
        match self.flush_inserts() {
            Err(e) if e.is_no_room() => tracing::debug!("cache index update failed: {e}"),
            Err(e) => tracing::warn!("cache index update failed: {e}"),
            Ok(()) => {}
        }
        let pending = self.touched.lock().expect("touch lock").take();
        self.flush_touches(pending);
        let counts = [
            ("hits", self.hits.swap(0, Ordering::Relaxed)),
            ("misses", self.misses.swap(0, Ordering::Relaxed)),
            ("corrupt_dropped", self.corrupt.swap(0, Ordering::Relaxed)),
        ];
        if counts.iter().all(|(_, n)| *n == 0) {
            return;
        }
        let db = self.db.lock().expect("db lock");
        for (name, n) in counts {
            let _ = db.execute(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = value + ?2",
                params![name, n as i64],
            );
        }
    }

    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        self.flush_counters();
        let dberr = |source| CacheError::Db {
            path: self.db_path.clone(),
            source,
        };
        let db = self.db.lock().expect("db lock");
        let (entries, bytes): (i64, i64) = db
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(dberr)?;
        let counter = |name: &str| -> Result<u64, CacheError> {
            let v: Option<i64> = db
                .query_row(
                    "SELECT value FROM counters WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(dberr)?;
            Ok(v.unwrap_or(0) as u64)
        };
        Ok(CacheStats {
            entries: entries as u64,
            bytes: bytes as u64,
            limit: self.limit,
            hits: counter("hits")?,
            misses: counter("misses")?,
            corrupt_dropped: counter("corrupt_dropped")?,
        })
    }
}

impl Drop for DiskCache {
    fn drop(&mut self) {
        self.flush_counters();
    }
}

/// Record size of a chunk of `len` bytes kept in the cache (data included).
#[cfg(test)]
fn file_size(len: usize) -> usize {
    record_size(len, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(data: &[u8]) -> Hash {
        *blake3::hash(data).as_bytes()
    }

    const AT: Origin = Origin {
        pack: [0; 16],
        offset: 0,
    };

    fn get(c: &DiskCache, data: &[u8]) -> Option<Bytes> {
        c.get(&h(data), data.len() as u32, AT)
    }

    fn put(c: &DiskCache, data: &[u8]) {
        c.put(&h(data), data, AT).unwrap();
    }

    /// Chunks to admit in one batch, in the order given.
    fn admits<'a>(chunks: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<Admit> {
        chunks
            .into_iter()
            .map(|x| Admit {
                hash: h(x),
                body: Body::Bytes(Bytes::from(x.clone())),
                origin: AT,
            })
            .collect()
    }

    /// Flips a byte of a chunk's record, `at` bytes into it.
    fn damage(c: &DiskCache, data: &[u8], at: u64, f: impl FnOnce(&mut u8)) {
        let (path, off, _) = c.record_of(&h(data)).unwrap();
        let mut b = std::fs::read(&path).unwrap();
        f(&mut b[(off + at) as usize]);
        std::fs::write(&path, &b).unwrap();
    }

    #[test]
    fn put_get_survives_reopen() {
        let d = tempfile::TempDir::new().unwrap();
        let data = b"chunk data".to_vec();
        {
            let c = DiskCache::open(d.path(), 1 << 20).unwrap();
            assert!(get(&c, &data).is_none());
            put(&c, &data);
            assert_eq!(get(&c, &data).unwrap(), data);
        }
        let c = DiskCache::open(d.path(), 1 << 20).unwrap();
        assert!(c.contains(&h(&data)));
        assert_eq!(get(&c, &data).unwrap(), data);
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.bytes), (1, file_size(data.len()) as u64));
        assert_eq!((s.hits, s.misses), (2, 1));
    }

    /// Pages of `path` in `off..off + len` in the page cache, and how many
    /// pages that range spans (`mincore` of a mapping of the file).
    fn resident(path: &Path, off: u64, len: u64) -> (usize, usize) {
        use std::os::fd::AsRawFd;
        let f = File::open(path).unwrap();
        let page = 4096u64;
        let (start, end) = (off / page * page, (off + len).div_ceil(page) * page);
        let n = ((end - start) / page) as usize;
        let mut vec = vec![0u8; n];
        // SAFETY: a read-only shared mapping of an open file, unmapped below;
        // mincore writes one byte per page of it into `vec`.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                (end - start) as usize,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                start as libc::off_t,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(
                libc::mincore(p, (end - start) as usize, vec.as_mut_ptr()),
                0
            );
            libc::munmap(p, (end - start) as usize);
        }
        (vec.iter().filter(|b| *b & 1 == 1).count(), n)
    }

    #[test]
    fn will_need_starts_reading_a_record_into_the_page_cache() {
        use std::os::fd::AsRawFd;
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        put(&c, &data);
        let (path, off, size) = c.record_of(&h(&data)).unwrap();
        // Out of the page cache first: written back, then dropped.
        let f = File::open(&path).unwrap();
        f.sync_all().unwrap();
        // SAFETY: a valid descriptor; the advice only drops clean pages.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let (before, pages) = resident(&path, off, size);
        assert_eq!(
            before,
            0,
            "{} kept its pages after POSIX_FADV_DONTNEED (tmpfs?): this test needs a disk-backed temp dir",
            path.display()
        );
        c.will_need(&[7; 32], AT);
        assert_eq!(c.advised(), 0, "a chunk that is not cached is not advised");
        c.will_need(&h(&data), AT);
        assert_eq!(c.advised(), 1);
        // The reads were only started: wait for them, without reading.
        let t = std::time::Instant::now();
        let mut now = 0;
        while now < pages && t.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(5));
            now = resident(&path, off, size).0;
        }
        assert_eq!(
            now, pages,
            "the record's pages in the page cache after will_need"
        );
        assert_eq!(get(&c, &data).unwrap(), data);
    }

    #[test]
    fn many_chunks_share_few_files() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let chunks: Vec<Vec<u8>> = (0..200u32)
            .map(|i| vec![i as u8; 5000 + i as usize])
            .collect();
        let batch = admits(&chunks);
        c.put_batch(&batch[..100]).unwrap();
        for x in &chunks[100..] {
            put(&c, x);
        }
        for x in &chunks {
            assert_eq!(get(&c, x).unwrap(), x[..]);
        }
        let files = std::fs::read_dir(d.path().join("segments"))
            .unwrap()
            .count();
        assert_eq!(files, 1, "one segment for 200 chunks");
    }

    /// Readahead reads nearby records together and directly, in any order
    /// they were admitted, and still checks each record on its own.
    #[test]
    fn runs_read_nearby_records_together() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let chunks: Vec<Vec<u8>> = (0..12u32)
            .map(|i| (0..100_000 + i * 3001).map(|j| (i * 7 + j) as u8).collect())
            .collect();
        // Admitted out of file order, as parallel fetches complete.
        let order = [3, 0, 1, 2, 5, 4, 7, 6, 8, 10, 9, 11];
        let batch = admits(order.iter().map(|&i| &chunks[i]));
        c.put_batch(&batch).unwrap();
        let absent = vec![1u8; 5000];
        let mut items: Vec<(Hash, u32, Origin)> =
            chunks.iter().map(|x| (h(x), x.len() as u32, AT)).collect();
        items.insert(5, (h(&absent), absent.len() as u32, AT));
        let got = c.get_run(&items, || {});
        assert!(got[5].is_none(), "not cached: a miss");
        let got: Vec<_> = got
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .collect();
        for ((_, g), x) in got.iter().zip(&chunks) {
            assert_eq!(&g.as_ref().unwrap().bytes[..], &x[..]);
        }
        let total: u64 = chunks.iter().map(|x| file_size(x.len()) as u64).sum();
        assert_eq!(
            c.run_reads(),
            total.div_ceil(RUN_BYTES),
            "{total} bytes of records in reads of up to {RUN_BYTES}"
        );
        // A damaged record in the middle of a run is dropped; its
        // neighbours are served.
        damage(&c, &chunks[6], 5000, |b| *b ^= 0x10);
        let got = c.get_run(&items[..10], || {});
        assert!(got[7].is_none(), "chunk 6 (item 7) damaged");
        assert!(!c.contains(&h(&chunks[6])));
        assert_eq!(c.stats().unwrap().corrupt_dropped, 1);
        assert_eq!(&got[6].as_ref().unwrap().bytes[..], &chunks[5][..]);
        assert_eq!(&got[8].as_ref().unwrap().bytes[..], &chunks[7][..]);
    }

    /// A run's chunks come back to back in one buffer, in place order,
    /// skipping a damaged record, so a read across them needs no copy.
    #[test]
    fn run_chunks_lie_back_to_back() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let chunks: Vec<Vec<u8>> = (0..8u32)
            .map(|i| (0..50_000 + i * 4099).map(|j| (i * 5 + j) as u8).collect())
            .collect();
        let batch = admits(&chunks);
        c.put_batch(&batch).unwrap();
        damage(&c, &chunks[3], 10, |b| *b ^= 1);
        let items: Vec<_> = chunks.iter().map(|x| (h(x), x.len() as u32, AT)).collect();
        let got = c.get_run(&items, || {});
        assert_eq!(c.run_reads(), 1);
        assert!(got[3].is_none(), "damaged record not served");
        let good: Vec<&RunChunk> = [0, 1, 2, 4, 5, 6, 7]
            .iter()
            .map(|&i| {
                let g = got[i].as_ref().unwrap();
                assert_eq!(&g.bytes[..], &chunks[i][..], "chunk {i}");
                assert_eq!(g.read, Some(0));
                g
            })
            .collect();
        for w in good.windows(2) {
            assert_eq!(
                w[0].bytes.as_ptr() as usize + w[0].bytes.len(),
                w[1].bytes.as_ptr() as usize,
                "back to back"
            );
        }
    }

    /// Records that overlap (an index out of step) are checked where they
    /// lie and not moved: a move would overwrite bytes not yet checked.
    #[test]
    fn overlapping_records_are_not_moved() {
        let a: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let b: Vec<u8> = (0..6_000u32).map(|i| (i * 3) as u8).collect();
        let record = |x: &[u8]| {
            let mut r = x.to_vec();
            let f = Footer {
                hash: h(x),
                len: x.len() as u32,
                local: false,
                pack: [0; 16],
                offset: 0,
            };
            disk_cache_file::write_trailer(&mut r, x, &f);
            r
        };
        let (ra, rb) = (record(&a), record(&b));
        let entry = |off: usize, x: &[u8]| Entry {
            seg: 1,
            off: off as u32,
            len: x.len() as u32,
            local: false,
        };
        let names = [h(&a), h(&b)];
        // Apart, with a gap: moved together.
        let mut buf = [ra.clone(), vec![9; 100], rb.clone()].concat();
        let recs = [(entry(0, &a), 0), (entry(ra.len() + 100, &b), 1)];
        let placed = compact_records(&mut buf, 0, &recs, |i| &names[i]);
        assert_eq!(placed[0].as_ref().unwrap().clone(), 0..a.len());
        assert_eq!(
            placed[1].as_ref().unwrap().clone(),
            a.len()..a.len() + b.len()
        );
        assert_eq!(&buf[..a.len() + b.len()], &[&a[..], &b[..]].concat()[..]);
        // The second record claimed to start inside the first: nothing moves.
        let inside = ra.len() - 50;
        let mut bad = [ra.clone(), rb.clone()].concat();
        bad.splice(inside..inside, rb.iter().copied());
        let recs = [(entry(0, &a), 0), (entry(inside, &b), 1)];
        let placed = compact_records(&mut bad, 0, &recs, |i| &names[i]);
        assert!(
            placed[0].is_err(),
            "the first record's trailer was overwritten"
        );
        assert_eq!(
            placed[1].as_ref().unwrap().clone(),
            inside..inside + b.len()
        );
        assert_eq!(&bad[inside..inside + b.len()], &b[..]);
    }

    /// Batches of 1 MiB and more are written directly, each from a block
    /// boundary; readahead groups follow the records' places, not the
    /// file's order, so no stretch of a segment is read twice.
    #[test]
    fn large_batches_are_written_directly_and_read_by_place() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let chunks: Vec<Vec<u8>> = (0..24u32)
            .map(|i| (0..200_000 + i * 977).map(|j| (i * 13 + j) as u8).collect())
            .collect();
        let admit = |r: std::ops::Range<usize>| admits(&chunks[r]);
        // Requests of a cold read finish out of order; a small put between.
        c.put_batch(&admit(8..16)).unwrap();
        put(&c, &[5u8; 3000]);
        c.put_batch(&admit(0..8)).unwrap();
        c.put_batch(&admit(16..24)).unwrap();
        assert_eq!(c.direct_writes(), 3, "/tmp is ext4, which allows O_DIRECT");
        // Written from the chunks' own memory: only their unaligned ends,
        // trailers and padding were copied (at most 4 KiB each).
        let data: u64 = chunks.iter().map(|x| x.len() as u64).sum();
        assert!(
            c.direct_copied() <= 24 * (3 * ALIGN as u64 + 400) + 3 * ALIGN as u64,
            "{} bytes copied to write {data}",
            c.direct_copied()
        );
        assert_eq!(&get(&c, &[5u8; 3000]).unwrap()[..], &[5u8; 3000][..]);
        let names: Vec<(Hash, u32)> = chunks.iter().map(|x| (h(x), x.len() as u32)).collect();
        let groups = c.run_groups(&names);
        let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..24).collect::<Vec<_>>(), "each chunk in one group");
        let firsts: Vec<usize> = groups.iter().map(|g| *g.iter().min().unwrap()).collect();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
        for g in &groups {
            let items: Vec<_> = g.iter().map(|&i| (names[i].0, names[i].1, AT)).collect();
            for (got, &i) in c.get_run(&items, || {}).iter().zip(g) {
                assert_eq!(
                    &got.as_ref().unwrap().bytes[..],
                    &chunks[i][..],
                    "chunk {i}"
                );
            }
        }
        assert_eq!(c.run_reads(), groups.len() as u64, "one read per group");
        let records: u64 = chunks.iter().map(|x| file_size(x.len()) as u64).sum();
        let read = c.run_read_bytes();
        assert!(
            read <= records + 2 * ALIGN as u64 * groups.len() as u64,
            "{read} bytes read for {records} bytes of records in {} groups",
            groups.len()
        );
    }

    /// A filesystem that refuses the direct write from the records' own
    /// memory (here: a grain of 1 byte, which no disk accepts) gets the
    /// copying writer, for that batch and every later one.
    #[test]
    fn refused_direct_writes_from_place_fall_back_to_copying() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let chunks: Vec<Vec<u8>> = (0..12u32)
            .map(|i| (0..250_001 + i * 31).map(|j| (i * 7 + j) as u8).collect())
            .collect();
        c.put_batch(&admits(&chunks[..6])).unwrap();
        assert_eq!(c.direct_writes(), 1, "/tmp is ext4, which allows O_DIRECT");
        assert!(
            c.direct_copied() < 6 * 4096 * 3,
            "first batch written in place"
        );
        c.writer.lock().unwrap().as_mut().unwrap().grain = Some(1);
        c.put_batch(&admits(&chunks[6..])).unwrap();
        assert!(c.gather_refused.load(Ordering::Relaxed), "refusal noticed");
        let data: u64 = chunks[6..].iter().map(|x| x.len() as u64).sum();
        assert!(c.direct_copied() > data, "second batch copied");
        assert_eq!(c.direct_writes(), 2);
        for x in &chunks {
            assert_eq!(&get(&c, x).unwrap()[..], &x[..]);
        }
    }

    #[test]
    fn writes_leave_the_disks_reserve_and_refuse_without_room() {
        // A fake disk of 100 records (5 of them the reserve), whose free
        // space the test sets to what the cache's writes would leave.
        static FREE: AtomicU64 = AtomicU64::new(0);
        fn fake_disk(_: &Path) -> std::io::Result<Space> {
            Ok(Space {
                total: 100 * file_size(30_000) as u64,
                avail: FREE.load(Ordering::SeqCst),
            })
        }
        let d = tempfile::TempDir::new().unwrap();
        let mut c = DiskCache::open(d.path(), 1 << 30).unwrap();
        c.space_of = fake_disk;
        let one = file_size(30_000) as u64;
        let chunks: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 30_000]).collect();
        // Room for 3 records above the reserve.
        for (i, x) in chunks[..3].iter().enumerate() {
            FREE.store((8 - i as u64) * one, Ordering::SeqCst);
            put(&c, x);
            c.flush_counters();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(c.stats().unwrap().entries, 3);
        // Down to the reserve: a fourth record takes the oldest's place.
        FREE.store(5 * one, Ordering::SeqCst);
        put(&c, &chunks[3]);
        let s = c.stats().unwrap();
        assert_eq!(s.entries, 3, "{s:?}");
        assert!(get(&c, &chunks[3]).is_some());
        assert!(get(&c, &chunks[0]).is_none(), "the oldest record gave way");
        // Others took the reserve: the cache gives back all it holds, and a
        // record that cannot fit even then is refused without a write.
        FREE.store(0, Ordering::SeqCst);
        let e = c
            .put_batch(&admits(&chunks[4..5]))
            .expect_err("no room for a record");
        assert!(e.is_no_room() && e.to_string().contains("no room"), "{e}");
        assert_eq!(
            c.stats().unwrap().entries,
            0,
            "the cache gave its space back"
        );
        assert!(!c.contains(&h(&chunks[4])));
        // Without a measure of the disk, the bound alone applies.
        fn unknown(_: &Path) -> std::io::Result<Space> {
            Err(std::io::Error::other("no statvfs"))
        }
        c.space_of = unknown;
        put(&c, &chunks[5]);
        assert!(get(&c, &chunks[5]).is_some());
    }

    #[test]
    fn ranges_check_only_their_blocks() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 31 % 251) as u8).collect();
        let name = h(&data);
        put(&c, &data);
        let n = data.len() as u32;
        for (a, b) in [
            (0, 1),
            (4095, 4097),
            (8192, 12288),
            (299_000, n),
            (5, 5),
            (0, n),
        ] {
            let got = c.read(&name, n, a..b, AT).unwrap();
            assert_eq!(&got[..], &data[a as usize..b as usize], "{a}..{b}");
        }
        // Damage block 10: reads elsewhere still pass, reads of it drop the entry.
        damage(&c, &data, 10 * BLOCK as u64 + 7, |b| *b ^= 0x40);
        assert!(c.read(&name, n, 0..4096, AT).is_some());
        assert!(c
            .read(&name, n, 10 * 4096 + 100..10 * 4096 + 200, AT)
            .is_none());
        assert!(!c.contains(&name));
        assert_eq!(c.stats().unwrap().corrupt_dropped, 1);
        assert_eq!(c.stats().unwrap().entries, 0);
    }

    #[test]
    fn corrupt_records_are_dropped() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 20).unwrap();
        let data = vec![7u8; 10_000];
        let other = vec![9u8; 10_000];
        let size = file_size(data.len()) as u64;
        type Damage = fn(&DiskCache, &[u8], &[u8], u64);
        let damages: [(&str, Damage); 4] = [
            ("flip", |c, d, _, _| damage(c, d, 10, |b| *b ^= 1)),
            ("hole", |c, d, _, size| {
                let (p, off, _) = c.record_of(&h(d)).unwrap();
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                disk_cache_file::punch_hole(&f, off, size).unwrap();
            }),
            ("other chunk under this name", |c, d, o, size| {
                let (p, off, _) = c.record_of(&h(d)).unwrap();
                let (_, ooff, _) = c.record_of(&h(o)).unwrap();
                let mut b = std::fs::read(&p).unwrap();
                b.copy_within(ooff as usize..(ooff + size) as usize, off as usize);
                std::fs::write(&p, b).unwrap();
            }),
            ("footer", |c, d, _, size| {
                damage(c, d, size - 20, |b| *b ^= 1)
            }),
        ];
        for (i, (what, damage)) in damages.iter().enumerate() {
            put(&c, &data);
            put(&c, &other);
            damage(&c, &data, &other, size);
            assert!(get(&c, &data).is_none(), "{what}");
            assert!(!c.contains(&h(&data)), "{what}");
            assert_eq!(c.stats().unwrap().corrupt_dropped, i as u64 + 1, "{what}");
            assert_eq!(get(&c, &other).unwrap(), other, "{what}");
        }
        // A segment deleted behind the index's back: a plain miss, forgotten.
        put(&c, &data);
        let (p, _, _) = c.record_of(&h(&data)).unwrap();
        std::fs::remove_file(p).unwrap();
        c.segments.lock().unwrap().clear();
        assert!(get(&c, &data).is_none());
        assert!(!c.contains(&h(&data)));
        assert_eq!(c.stats().unwrap().corrupt_dropped, 4);
    }

    /// A local store's pack directory under `d` holding `bytes` as `pack`.
    fn local_pack(d: &Path, pack: PackId, bytes: &[u8]) -> PathBuf {
        let packs = d.join("packs");
        std::fs::create_dir_all(&packs).unwrap();
        std::fs::write(packs.join(to_hex(&pack)), bytes).unwrap();
        packs
    }

    #[test]
    fn local_records_read_the_pack_in_place() {
        let d = tempfile::TempDir::new().unwrap();
        let pack: PackId = [5; 16];
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut packfile = vec![1u8; 1000];
        packfile.extend_from_slice(&data);
        let packs = local_pack(d.path(), pack, &packfile);
        let at = Origin { pack, offset: 1000 };
        let c = DiskCache::open(&d.path().join("cache"), 1 << 30)
            .unwrap()
            .with_local_packs(Some(packs.clone()));
        c.put(&h(&data), &data, at).unwrap();
        let (_, _, size) = c.record_of(&h(&data)).unwrap();
        assert_eq!(size as usize, trailer_len(data.len()), "no data copied");
        let n = data.len() as u32;
        assert_eq!(c.get(&h(&data), n, at).unwrap(), data);
        assert_eq!(
            c.read(&h(&data), n, 5000..9000, at).unwrap(),
            data[5000..9000]
        );
        // Damage in the pack: the blocks that hold it are refused.
        packfile[1000 + 20_000] ^= 1;
        std::fs::write(packs.join(to_hex(&pack)), &packfile).unwrap();
        assert!(c.read(&h(&data), n, 0..4096, at).is_some());
        assert!(c.read(&h(&data), n, 19_000..21_000, at).is_none());
        assert!(!c.contains(&h(&data)));
        // Without the local store (another mount of the cache): a miss.
        let c2 = DiskCache::open(&d.path().join("cache2"), 1 << 30).unwrap();
        drop(c2);
    }

    /// A local record admitted by its checksums alone is the record its
    /// bytes would have made; a cache that keeps data cannot take one.
    #[test]
    fn local_records_from_sums_match_records_from_bytes() {
        let d = tempfile::TempDir::new().unwrap();
        let pack: PackId = [6; 16];
        let data: Vec<u8> = (0..50_001u32).map(|i| (i * 11 % 251) as u8).collect();
        let packs = local_pack(d.path(), pack, &data);
        let at = Origin { pack, offset: 0 };
        let record = |body: Body| {
            let dir = tempfile::TempDir::new().unwrap();
            let c = DiskCache::open(dir.path(), 1 << 30)
                .unwrap()
                .with_local_packs(Some(packs.clone()));
            let admit = Admit {
                hash: h(&data),
                body,
                origin: at,
            };
            c.put_batch(&[admit]).unwrap();
            assert_eq!(c.get(&h(&data), data.len() as u32, at).unwrap(), data);
            let (p, off, size) = c.record_of(&h(&data)).unwrap();
            std::fs::read(p).unwrap()[off as usize..(off + size) as usize].to_vec()
        };
        assert_eq!(
            record(Body::sums_of(&data)),
            record(Body::Bytes(Bytes::from(data.clone())))
        );
        let c = DiskCache::open(&d.path().join("data-cache"), 1 << 30).unwrap();
        let admit = Admit {
            hash: h(&data),
            body: Body::sums_of(&data),
            origin: at,
        };
        c.put_batch(&[admit]).unwrap();
        assert!(
            !c.contains(&h(&data)),
            "a data cache took a record without data"
        );
    }

    #[test]
    fn old_format_is_discarded() {
        let d = tempfile::TempDir::new().unwrap();
        {
            let db = Connection::open(d.path().join("cache.sqlite")).unwrap();
            db.execute_batch(
                "CREATE TABLE chunks (hash BLOB PRIMARY KEY, size INTEGER NOT NULL, last_used INTEGER NOT NULL);
                 INSERT INTO chunks VALUES (x'00', 5, 0);
                 PRAGMA user_version = 2;",
            )
            .unwrap();
            std::fs::create_dir_all(d.path().join("chunks/00")).unwrap();
            std::fs::write(d.path().join("chunks/00/00"), b"x").unwrap();
        }
        let c = DiskCache::open(d.path(), 1 << 20).unwrap();
        assert!(!d.path().join("chunks").exists());
        assert_eq!(c.stats().unwrap().entries, 0);
        put(&c, b"x");
        assert_eq!(get(&c, b"x").unwrap(), &b"x"[..]);
    }

    #[test]
    fn evicts_least_recently_used_and_frees_space() {
        let d = tempfile::TempDir::new().unwrap();
        let one = file_size(30_000) as u64;
        let c = DiskCache::open(d.path(), 3 * one + one / 2).unwrap();
        let chunks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 30_000]).collect();
        for (i, data) in chunks.iter().enumerate().take(3) {
            put(&c, data);
            c.flush_counters();
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        // Use chunk 0 so chunk 1 becomes the oldest.
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(get(&c, &chunks[0]).is_some());
        c.flush_counters();
        put(&c, &chunks[3]);
        let s = c.stats().unwrap();
        assert!(s.bytes <= c.limit, "{s:?}");
        assert!(get(&c, &chunks[0]).is_some(), "recently used chunk kept");
        assert!(get(&c, &chunks[1]).is_none(), "oldest chunk evicted");
        assert!(!c.contains(&h(&chunks[1])));
        assert!(get(&c, &chunks[3]).is_some());
        // Its space is freed: the segment holds about 3 records' blocks.
        let (p, _, _) = c.record_of(&h(&chunks[0])).unwrap();
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(p).unwrap().blocks() * 512;
        assert!(
            allocated <= 3 * one + 3 * 4096,
            "{allocated} bytes allocated"
        );
        // Everything evicted: the segment goes once no one appends to it.
        c.evict_to(0).unwrap();
        assert_eq!(c.stats().unwrap().entries, 0);
        drop(c);
        let _c = DiskCache::open(d.path(), 1 << 20).unwrap();
        assert_eq!(
            std::fs::read_dir(d.path().join("segments"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn two_processes_share_a_directory() {
        let d = tempfile::TempDir::new().unwrap();
        let a = DiskCache::open(d.path(), 1 << 30).unwrap();
        let b = DiskCache::open(d.path(), 1 << 30).unwrap();
        let x = vec![1u8; 50_000];
        let y = vec![2u8; 50_000];
        put(&a, &x);
        put(&b, &y);
        a.flush_counters();
        b.flush_counters();
        assert_ne!(
            a.record_of(&h(&x)).unwrap().0,
            b.record_of(&h(&y)).unwrap().0,
            "each appends to its own segment"
        );
        // b evicts x, which a still lists: for a, a miss, not damage.
        b.evict_to(0).unwrap();
        assert!(get(&a, &x).is_none());
        assert_eq!(a.stats().unwrap().corrupt_dropped, 0);
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        assert!(!c.contains(&h(&x)) && !c.contains(&h(&y)));
    }
}
