//! The node's chunk cache: chunk files on local disk, indexed in SQLite so
//! the cache survives remounts, bounded in bytes with least-recently-used
//! eviction. Several mounts (processes) may share one cache directory:
//! chunk files are written atomically (temp file + rename), SQLite runs in WAL
//! mode with a busy timeout, and a chunk evicted under a reader is a miss.
//!
//! Checking cost is proportional to what is read (DESIGN.md section 6): a
//! chunk is verified against its BLAKE3 name before it is admitted, and its
//! file then carries a CRC32C of every 4 KiB block plus a footer naming the
//! chunk and its length:
//!
//! ```text
//! data (len bytes) | crc32c of each 4 KiB block, u32 LE | footer (48 bytes):
//!   magic "AFSCHNK2" | len u32 LE | block log2 u8 | 3 zero bytes | BLAKE3 name (32)
//! ```
//!
//! A read of any range checks the footer (right chunk, right length, file
//! not truncated) and the CRC of every block it touches; a 4 KiB read reads
//! and checks 4 KiB, not the whole chunk. A corrupt entry is dropped and
//! reported as a miss, so the caller fetches (and BLAKE3-verifies) it again.
//! CRC32C catches accidental damage (bit flips, torn or truncated writes, a
//! file under the wrong name); it is not a defence against someone who can
//! write the cache directory on purpose.
//!
//! Which chunks are on disk is kept in memory (loaded from SQLite at open),
//! so planning a read never touches the filesystem. Another process sharing
//! the directory may evict a chunk this one still lists: opening it fails and
//! it counts as a miss.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use crate::ids::{to_hex, Hash};

/// Touches are batched: `last_used` is written for this many chunks at once.
const TOUCH_BATCH: usize = 256;
/// New index rows are written in one transaction per this many chunks.
const INSERT_BATCH: usize = 64;
/// Checksum granularity: the smallest unit a read checks.
pub const BLOCK_LOG2: u32 = 12;
pub const BLOCK: usize = 1 << BLOCK_LOG2;
const FOOTER: usize = 48;
const MAGIC: &[u8; 8] = b"AFSCHNK2";
/// `PRAGMA user_version` of an index whose files have the format above.
/// Older caches (whole-chunk files without checksums) are discarded at open.
const FORMAT: i64 = 2;

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
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CacheStats {
    pub entries: u64,
    /// Bytes on disk (chunk data plus checksums).
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

fn blocks(len: usize) -> usize {
    len.div_ceil(BLOCK)
}

/// Size of the cache file of a chunk of `len` bytes.
pub fn file_size(len: usize) -> usize {
    len + 4 * blocks(len) + FOOTER
}

fn footer(h: &Hash, len: usize) -> [u8; FOOTER] {
    let mut f = [0u8; FOOTER];
    f[..8].copy_from_slice(MAGIC);
    f[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    f[12] = BLOCK_LOG2 as u8;
    f[16..48].copy_from_slice(h);
    f
}

/// The checksum table and footer that follow a chunk's data in its file.
fn trailer(h: &Hash, data: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(4 * blocks(data.len()) + FOOTER);
    for b in data.chunks(BLOCK) {
        t.extend_from_slice(&crc32c::crc32c(b).to_le_bytes());
    }
    t.extend_from_slice(&footer(h, data.len()));
    t
}

/// Why a cache file was refused.
#[derive(Debug)]
enum Bad {
    Missing,
    Corrupt(&'static str),
}

pub struct DiskCache {
    dir: PathBuf,
    db_path: PathBuf,
    db: Mutex<Connection>,
    limit: u64,
    /// Chunks on disk (as far as this process knows): name -> chunk length.
    index: Mutex<HashMap<Hash, u32>>,
    /// This process's estimate of the cache size (other processes add too;
    /// the exact sum is read back from SQLite before evicting).
    approx_bytes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    touched: Mutex<HashSet<Hash>>,
    /// Index rows not yet written: (name, file size).
    inserts: Mutex<Vec<(Hash, u64)>>,
    /// Shared while open: `cache clear` refuses to empty a cache in use.
    _lock: crate::node_state::Lock,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl DiskCache {
    /// Opens (creating if needed) the cache under `dir`, bounded to `limit` bytes.
    pub fn open(dir: &Path, limit: u64) -> Result<DiskCache, CacheError> {
        let io = |source| CacheError::Io {
            path: dir.to_path_buf(),
            source,
        };
        // Owner-only: cached bytes must not be readable by other local users.
        crate::fsutil::private_dir(dir).map_err(io)?;
        let chunks = dir.join("chunks");
        std::fs::create_dir_all(&chunks).map_err(io)?;
        let lock = crate::node_state::use_dir(dir).map_err(|e| CacheError::Io {
            path: dir.join(crate::node_state::LOCK_FILE),
            source: std::io::Error::other(e.to_string()),
        })?;
        let db_path = dir.join("cache.sqlite");
        let dberr = |source| CacheError::Db {
            path: db_path.clone(),
            source,
        };
        let db = Connection::open(&db_path).map_err(dberr)?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(dberr)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(dberr)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(dberr)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS chunks (
                 hash BLOB PRIMARY KEY, size INTEGER NOT NULL, last_used INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS chunks_lru ON chunks(last_used);
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(dberr)?;
        let format: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(dberr)?;
        if format != FORMAT {
            // Files of an older format carry no checksums: start over.
            let old: i64 = db
                .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))
                .map_err(dberr)?;
            if old > 0 {
                tracing::info!(entries = old, "discarding a chunk cache of an older format");
            }
            let _ = std::fs::remove_dir_all(&chunks);
            db.execute("DELETE FROM chunks", []).map_err(dberr)?;
            db.pragma_update(None, "user_version", FORMAT)
                .map_err(dberr)?;
        }
        for i in 0..=255u8 {
            std::fs::create_dir_all(chunks.join(hex::encode([i]))).map_err(io)?;
        }
        let mut index = HashMap::new();
        let mut bytes = 0u64;
        {
            let mut st = db.prepare("SELECT hash, size FROM chunks").map_err(dberr)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
                .map_err(dberr)?;
            for row in rows {
                let (h, size) = row.map_err(dberr)?;
                bytes += size as u64;
                if let Ok(h) = Hash::try_from(h.as_slice()) {
                    index.insert(h, data_len(size as u64));
                }
            }
        }
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            db_path: db_path.clone(),
            db: Mutex::new(db),
            limit,
            index: Mutex::new(index),
            approx_bytes: AtomicU64::new(bytes),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            touched: Mutex::new(HashSet::new()),
            inserts: Mutex::new(vec![]),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Where a chunk's file lives (tests corrupt them on purpose).
    pub fn chunk_path(&self, h: &Hash) -> PathBuf {
        let hex = to_hex(h);
        self.dir.join("chunks").join(&hex[..2]).join(hex)
    }

    /// True when this process believes the chunk is on disk (no I/O).
    pub fn contains(&self, h: &Hash) -> bool {
        self.index.lock().expect("index lock").contains_key(h)
    }

    /// A whole verified chunk of `len` bytes, or `None` (missing, evicted, or
    /// corrupt and dropped).
    pub fn get(&self, h: &Hash, len: u32) -> Option<Bytes> {
        self.read(h, len, 0..len)
    }

    /// Bytes `range` of a chunk of `len` bytes, checking only the blocks the
    /// range touches. `None` when missing or corrupt (then dropped).
    pub fn read(&self, h: &Hash, len: u32, range: std::ops::Range<u32>) -> Option<Bytes> {
        match self.try_read(h, len as usize, range.start as usize..range.end as usize) {
            Ok(b) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                self.touch(h);
                Some(b)
            }
            Err(Bad::Missing) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.forget(h);
                None
            }
            Err(Bad::Corrupt(why)) => {
                tracing::warn!(chunk = %to_hex(h), path = %self.chunk_path(h).display(), "corrupt chunk in cache ({why}), dropping it");
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.remove(h, file_size(len as usize) as u64);
                None
            }
        }
    }

    fn try_read(&self, h: &Hash, len: usize, range: std::ops::Range<usize>) -> Result<Bytes, Bad> {
        if range.start > range.end || range.end > len {
            return Err(Bad::Corrupt("range outside the chunk"));
        }
        let f = std::fs::File::open(self.chunk_path(h)).map_err(|_| Bad::Missing)?;
        let nb = blocks(len);
        let total = file_size(len);
        let short = |_| Bad::Corrupt("file shorter than its chunk");
        if range.start == 0 && range.end == len {
            // Whole chunk: one read of the file, no zeroing of the buffer.
            let mut buf = Vec::with_capacity(total);
            (&f).take(total as u64)
                .read_to_end(&mut buf)
                .map_err(|_| Bad::Corrupt("read error"))?;
            if buf.len() != total {
                return Err(Bad::Corrupt("file shorter than its chunk"));
            }
            let (data, tail) = buf.split_at(len);
            check_footer(&tail[4 * nb..], h, len)?;
            for (i, b) in data.chunks(BLOCK).enumerate() {
                if crc32c::crc32c(b).to_le_bytes() != tail[4 * i..4 * i + 4] {
                    return Err(Bad::Corrupt("block checksum mismatch"));
                }
            }
            let mut b = Bytes::from(buf);
            b.truncate(len);
            return Ok(b);
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let (b0, b1) = (range.start / BLOCK, range.end.div_ceil(BLOCK));
        // Checksums of the touched blocks through the footer, in one read.
        let mut meta = vec![0u8; total - (len + 4 * b0)];
        f.read_exact_at(&mut meta, (len + 4 * b0) as u64)
            .map_err(short)?;
        check_footer(&meta[meta.len() - FOOTER..], h, len)?;
        let (d0, d1) = (b0 * BLOCK, (b1 * BLOCK).min(len));
        let mut data = vec![0u8; d1 - d0];
        f.read_exact_at(&mut data, d0 as u64).map_err(short)?;
        for (i, b) in data.chunks(BLOCK).enumerate() {
            if crc32c::crc32c(b).to_le_bytes() != meta[4 * i..4 * i + 4] {
                return Err(Bad::Corrupt("block checksum mismatch"));
            }
        }
        Ok(Bytes::from(data).slice(range.start - d0..range.end - d0))
    }

    fn forget(&self, h: &Hash) {
        self.index.lock().expect("index lock").remove(h);
    }

    fn touch(&self, h: &Hash) {
        let batch: Vec<Hash> = {
            let mut t = self.touched.lock().expect("touch lock");
            t.insert(*h);
            if t.len() < TOUCH_BATCH {
                return;
            }
            t.drain().collect()
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
        if let Err(e) = r {
            tracing::warn!("cache index update failed: {e}");
        }
    }

    fn flush_inserts(&self) -> Result<(), CacheError> {
        let rows: Vec<(Hash, u64)> = std::mem::take(&mut *self.inserts.lock().expect("inserts"));
        if rows.is_empty() {
            return Ok(());
        }
        let now = now_nanos();
        let mut db = self.db.lock().expect("db lock");
        (|| {
            let tx = db.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR REPLACE INTO chunks (hash, size, last_used) VALUES (?1, ?2, ?3)",
                )?;
                for (h, size) in &rows {
                    st.execute(params![&h[..], *size as i64, now])?;
                }
            }
            tx.commit()
        })()
        .map_err(|source| CacheError::Db {
            path: self.db_path.clone(),
            source,
        })
    }

    /// Stores a chunk the caller has already verified against its name,
    /// then evicts if over the limit.
    pub fn put(&self, h: &Hash, data: &[u8]) -> Result<(), CacheError> {
        let path = self.chunk_path(h);
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        let dir = path.parent().expect("chunk path has a parent");
        // No fsync: every read checks the blocks it serves, so a torn file
        // after a crash is detected and dropped like any corrupt entry.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(data).map_err(io)?;
        tmp.write_all(&trailer(h, data)).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        let size = file_size(data.len()) as u64;
        let fresh = self
            .index
            .lock()
            .expect("index lock")
            .insert(*h, data.len() as u32)
            .is_none();
        let flush = {
            let mut ins = self.inserts.lock().expect("inserts");
            ins.push((*h, size));
            ins.len() >= INSERT_BATCH
        };
        if flush {
            self.flush_inserts()?;
        }
        if fresh {
            let approx = self.approx_bytes.fetch_add(size, Ordering::Relaxed) + size;
            if approx > self.limit {
                self.evict_to(self.limit - self.limit / 10)?;
            }
        }
        Ok(())
    }

    fn remove(&self, h: &Hash, size: u64) {
        let _ = std::fs::remove_file(self.chunk_path(h));
        let known = self.index.lock().expect("index lock").remove(h).is_some();
        let _ = self.flush_inserts();
        if let Ok(db) = self.db.lock() {
            let _ = db.execute("DELETE FROM chunks WHERE hash = ?1", params![&h[..]]);
        }
        if known {
            let _ = self
                .approx_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(size))
                });
        }
    }

    /// Evicts least-recently-used chunks until the cache holds at most `target` bytes.
    pub fn evict_to(&self, target: u64) -> Result<u64, CacheError> {
        self.flush_inserts()?;
        let pending: Vec<Hash> = self.touched.lock().expect("touch lock").drain().collect();
        self.flush_touches(pending);
        let dberr = |source| CacheError::Db {
            path: self.db_path.clone(),
            source,
        };
        let mut db = self.db.lock().expect("db lock");
        let mut total: i64 = db
            .query_row("SELECT COALESCE(SUM(size), 0) FROM chunks", [], |r| {
                r.get(0)
            })
            .map_err(dberr)?;
        let mut evicted = 0u64;
        while total as u64 > target {
            let victims: Vec<(Vec<u8>, i64)> = {
                let mut st = db
                    .prepare_cached("SELECT hash, size FROM chunks ORDER BY last_used LIMIT 64")
                    .map_err(dberr)?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(dberr)?;
                rows.collect::<Result<_, _>>().map_err(dberr)?
            };
            if victims.is_empty() {
                break;
            }
            let tx = db.transaction().map_err(dberr)?;
            for (hash, size) in victims {
                if let Ok(h) = <Hash>::try_from(hash.as_slice()) {
                    // Out of the index first: a planner must not count on it.
                    self.index.lock().expect("index lock").remove(&h);
                    let _ = std::fs::remove_file(self.chunk_path(&h));
                }
                tx.execute("DELETE FROM chunks WHERE hash = ?1", params![hash])
                    .map_err(dberr)?;
                total -= size;
                evicted += size as u64;
                if total as u64 <= target {
                    break;
                }
            }
            tx.commit().map_err(dberr)?;
        }
        self.approx_bytes
            .store(total.max(0) as u64, Ordering::Relaxed);
        Ok(evicted)
    }

    /// Writes pending index rows and adds this process's hit/miss counts to
    /// the persistent counters.
    pub fn flush_counters(&self) {
        if let Err(e) = self.flush_inserts() {
            tracing::warn!("cache index update failed: {e}");
        }
        let pending: Vec<Hash> = self.touched.lock().expect("touch lock").drain().collect();
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

/// The chunk length whose cache file has `size` bytes (inverse of [`file_size`]).
fn data_len(size: u64) -> u32 {
    let body = size.saturating_sub(FOOTER as u64);
    // body = len + 4 * ceil(len / BLOCK); solve for len.
    let per = (BLOCK + 4) as u64;
    let full = body / per;
    let rest = body % per;
    (full * BLOCK as u64 + rest.saturating_sub(4)) as u32
}

fn check_footer(f: &[u8], h: &Hash, len: usize) -> Result<(), Bad> {
    if f.len() != FOOTER || &f[..8] != MAGIC || f[12] != BLOCK_LOG2 as u8 {
        return Err(Bad::Corrupt("bad footer"));
    }
    if f[8..12] != (len as u32).to_le_bytes() {
        return Err(Bad::Corrupt("length in footer differs"));
    }
    if &f[16..48] != h {
        return Err(Bad::Corrupt("file holds another chunk"));
    }
    Ok(())
}

impl Drop for DiskCache {
    fn drop(&mut self) {
        self.flush_counters();
    }
}

/// Parses sizes like `20G`, `512M`, `1.5T`, `4096` (bytes; powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 20G, 512M or 1048576"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("invalid size unit in {s:?}: use K, M, G or T")),
    };
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(data: &[u8]) -> Hash {
        *blake3::hash(data).as_bytes()
    }

    fn get(c: &DiskCache, data: &[u8]) -> Option<Bytes> {
        c.get(&h(data), data.len() as u32)
    }

    #[test]
    fn put_get_survives_reopen() {
        let d = tempfile::TempDir::new().unwrap();
        let data = b"chunk data".to_vec();
        {
            let c = DiskCache::open(d.path(), 1 << 20).unwrap();
            assert!(get(&c, &data).is_none());
            c.put(&h(&data), &data).unwrap();
            assert_eq!(get(&c, &data).unwrap(), data);
        }
        let c = DiskCache::open(d.path(), 1 << 20).unwrap();
        assert!(c.contains(&h(&data)));
        assert_eq!(get(&c, &data).unwrap(), data);
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.bytes), (1, file_size(data.len()) as u64));
        assert_eq!((s.hits, s.misses), (2, 1));
    }

    #[test]
    fn sizes_invert() {
        for len in [0, 1, 4095, 4096, 4097, 65536, 300_001, 1 << 20] {
            assert_eq!(data_len(file_size(len) as u64) as usize, len, "{len}");
        }
    }

    #[test]
    fn ranges_check_only_their_blocks() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 30).unwrap();
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 31 % 251) as u8).collect();
        let name = h(&data);
        c.put(&name, &data).unwrap();
        let n = data.len() as u32;
        for (a, b) in [
            (0, 1),
            (4095, 4097),
            (8192, 12288),
            (299_000, n),
            (5, 5),
            (0, n),
        ] {
            let got = c.read(&name, n, a..b).unwrap();
            assert_eq!(&got[..], &data[a as usize..b as usize], "{a}..{b}");
        }
        // Damage block 10: reads elsewhere still pass, reads of it drop the entry.
        let p = c.chunk_path(&name);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[10 * BLOCK + 7] ^= 0x40;
        std::fs::write(&p, &bytes).unwrap();
        assert!(c.read(&name, n, 0..4096).is_some());
        assert!(c.read(&name, n, 10 * 4096 + 100..10 * 4096 + 200).is_none());
        assert!(!p.exists());
        assert!(!c.contains(&name));
        assert_eq!(c.stats().unwrap().corrupt_dropped, 1);
    }

    #[test]
    fn corrupt_entries_are_dropped() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 20).unwrap();
        let data = vec![7u8; 10_000];
        let other = vec![9u8; 10_000];
        type Damage = fn(&Path, &Path);
        let damages: [(&str, Damage); 4] = [
            ("flip", |p, _| {
                let mut b = std::fs::read(p).unwrap();
                b[10] ^= 1;
                std::fs::write(p, b).unwrap();
            }),
            ("truncate", |p, _| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() - 1]).unwrap();
            }),
            ("other chunk under this name", |p, o| {
                std::fs::copy(o, p).unwrap();
            }),
            ("footer", |p, _| {
                let mut b = std::fs::read(p).unwrap();
                let n = b.len();
                b[n - 40] ^= 1;
                std::fs::write(p, b).unwrap();
            }),
        ];
        for (i, (what, damage)) in damages.iter().enumerate() {
            c.put(&h(&data), &data).unwrap();
            c.put(&h(&other), &other).unwrap();
            let p = c.chunk_path(&h(&data));
            damage(&p, &c.chunk_path(&h(&other)));
            assert!(get(&c, &data).is_none(), "{what}");
            assert!(!p.exists(), "{what}");
            assert_eq!(c.stats().unwrap().corrupt_dropped, i as u64 + 1, "{what}");
            assert_eq!(get(&c, &other).unwrap(), other);
        }
        // Deleted behind the index's back: a plain miss, forgotten.
        c.put(&h(&data), &data).unwrap();
        std::fs::remove_file(c.chunk_path(&h(&data))).unwrap();
        assert!(get(&c, &data).is_none());
        assert!(!c.contains(&h(&data)));
    }

    #[test]
    fn old_format_is_discarded() {
        let d = tempfile::TempDir::new().unwrap();
        {
            let c = DiskCache::open(d.path(), 1 << 20).unwrap();
            c.put(&h(b"x"), b"x").unwrap();
            let db = c.db.lock().unwrap();
            db.pragma_update(None, "user_version", 1).unwrap();
        }
        let c = DiskCache::open(d.path(), 1 << 20).unwrap();
        assert!(!c.contains(&h(b"x")));
        assert!(!c.chunk_path(&h(b"x")).exists());
        assert_eq!(c.stats().unwrap().entries, 0);
    }

    #[test]
    fn evicts_least_recently_used() {
        let d = tempfile::TempDir::new().unwrap();
        let one = file_size(3000) as u64;
        let c = DiskCache::open(d.path(), 3 * one + one / 2).unwrap();
        let chunks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 3000]).collect();
        for (i, data) in chunks.iter().enumerate().take(3) {
            c.put(&h(data), data).unwrap();
            c.flush_counters();
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        // Use chunk 0 so chunk 1 becomes the oldest.
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(get(&c, &chunks[0]).is_some());
        c.flush_counters();
        c.put(&h(&chunks[3]), &chunks[3]).unwrap();
        let s = c.stats().unwrap();
        assert!(s.bytes <= c.limit, "{s:?}");
        assert!(get(&c, &chunks[0]).is_some(), "recently used chunk kept");
        assert!(get(&c, &chunks[1]).is_none(), "oldest chunk evicted");
        assert!(!c.contains(&h(&chunks[1])));
        assert!(get(&c, &chunks[3]).is_some());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }
}
