//! The node's chunk cache: chunk files on local disk, indexed in SQLite so
//! the cache survives remounts, bounded in bytes with least-recently-used
//! eviction. Several mounts (processes) may share one cache directory:
//! chunk files are written atomically (temp file + rename), SQLite runs in WAL
//! mode with a busy timeout, and a chunk evicted under a reader is a miss.
//!
//! Every chunk read from disk is checked against its BLAKE3 name; a corrupt
//! entry is dropped and reported as a miss, so the caller fetches it again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use crate::ids::{to_hex, Hash};

/// Touches are batched: `last_used` is written for this many chunks at once.
const TOUCH_BATCH: usize = 256;

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

pub struct DiskCache {
    dir: PathBuf,
    db_path: PathBuf,
    db: Mutex<Connection>,
    limit: u64,
    /// This process's estimate of the cache size (other processes add too;
    /// the exact sum is read back from SQLite before evicting).
    approx_bytes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    touched: Mutex<HashSet<Hash>>,
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
        std::fs::create_dir_all(dir.join("chunks")).map_err(io)?;
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
        let bytes: i64 = db
            .query_row("SELECT COALESCE(SUM(size), 0) FROM chunks", [], |r| {
                r.get(0)
            })
            .map_err(dberr)?;
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            db_path: db_path.clone(),
            db: Mutex::new(db),
            limit,
            approx_bytes: AtomicU64::new(bytes as u64),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            touched: Mutex::new(HashSet::new()),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn chunk_path(&self, h: &Hash) -> PathBuf {
        let hex = to_hex(h);
        self.dir.join("chunks").join(&hex[..2]).join(hex)
    }

    /// A verified chunk, or `None` (missing, evicted, or corrupt and dropped).
    pub fn get(&self, h: &Hash) -> Option<Bytes> {
        let path = self.chunk_path(h);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(_) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        if blake3::hash(&data).as_bytes() != h {
            tracing::warn!(chunk = %to_hex(h), path = %path.display(), "corrupt chunk in cache, dropping it");
            self.corrupt.fetch_add(1, Ordering::Relaxed);
            self.misses.fetch_add(1, Ordering::Relaxed);
            self.remove(h, data.len() as u64);
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.touch(h);
        Some(Bytes::from(data))
    }

    /// True when the chunk file exists (not verified; for prefetch planning).
    pub fn contains(&self, h: &Hash) -> bool {
        self.chunk_path(h).exists()
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

    /// Stores a chunk the caller has already verified, then evicts if over the limit.
    pub fn put(&self, h: &Hash, data: &[u8]) -> Result<(), CacheError> {
        let path = self.chunk_path(h);
        let parent = path.parent().expect("chunk path has a parent");
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(parent).map_err(io)?;
        // No fsync: entries are verified on every read, so a torn file after a
        // crash is detected and dropped like any corrupt entry.
        crate::fsutil::write_replace(&path, data, false).map_err(io)?;
        {
            let db = self.db.lock().expect("db lock");
            db.execute(
                "INSERT OR REPLACE INTO chunks (hash, size, last_used) VALUES (?1, ?2, ?3)",
                params![&h[..], data.len() as i64, now_nanos()],
            )
            .map_err(|source| CacheError::Db {
                path: self.db_path.clone(),
                source,
            })?;
        }
        let approx = self
            .approx_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed)
            + data.len() as u64;
        if approx > self.limit {
            self.evict_to(self.limit - self.limit / 10)?;
        }
        Ok(())
    }

    fn remove(&self, h: &Hash, size: u64) {
        let _ = std::fs::remove_file(self.chunk_path(h));
        if let Ok(db) = self.db.lock() {
            let _ = db.execute("DELETE FROM chunks WHERE hash = ?1", params![&h[..]]);
        }
        let _ = self
            .approx_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(size))
            });
    }

    /// Evicts least-recently-used chunks until the cache holds at most `target` bytes.
    pub fn evict_to(&self, target: u64) -> Result<u64, CacheError> {
        let pending: Vec<Hash> = self.touched.lock().expect("touch lock").drain().collect();
        self.flush_touches(pending);
        let dberr = |source| CacheError::Db {
            path: self.db_path.clone(),
            source,
        };
        let db = self.db.lock().expect("db lock");
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
            for (hash, size) in victims {
                if let Ok(h) = <Hash>::try_from(hash.as_slice()) {
                    let _ = std::fs::remove_file(self.chunk_path(&h));
                }
                db.execute("DELETE FROM chunks WHERE hash = ?1", params![hash])
                    .map_err(dberr)?;
                total -= size;
                evicted += size as u64;
                if total as u64 <= target {
                    break;
                }
            }
        }
        self.approx_bytes
            .store(total.max(0) as u64, Ordering::Relaxed);
        Ok(evicted)
    }

    /// Adds this process's hit/miss counts to the persistent counters.
    pub fn flush_counters(&self) {
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

    #[test]
    fn put_get_survives_reopen() {
        let d = tempfile::TempDir::new().unwrap();
        let data = b"chunk data".to_vec();
        {
            let c = DiskCache::open(d.path(), 1 << 20).unwrap();
            assert!(c.get(&h(&data)).is_none());
            c.put(&h(&data), &data).unwrap();
            assert_eq!(c.get(&h(&data)).unwrap(), data);
        }
        let c = DiskCache::open(d.path(), 1 << 20).unwrap();
        assert_eq!(c.get(&h(&data)).unwrap(), data);
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.bytes), (1, data.len() as u64));
        assert_eq!((s.hits, s.misses), (2, 1));
    }

    #[test]
    fn corrupt_entry_is_dropped() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 1 << 20).unwrap();
        let data = vec![7u8; 1000];
        c.put(&h(&data), &data).unwrap();
        let p = c.chunk_path(&h(&data));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert!(c.get(&h(&data)).is_none());
        assert!(!p.exists());
        assert_eq!(c.stats().unwrap().entries, 0);
        assert_eq!(c.stats().unwrap().corrupt_dropped, 1);
    }

    #[test]
    fn evicts_least_recently_used() {
        let d = tempfile::TempDir::new().unwrap();
        let c = DiskCache::open(d.path(), 10_000).unwrap();
        let chunks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 3000]).collect();
        for (i, data) in chunks.iter().enumerate().take(3) {
            c.put(&h(data), data).unwrap();
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        // Use chunk 0 so chunk 1 becomes the oldest.
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.get(&h(&chunks[0])).is_some());
        c.flush_counters();
        c.put(&h(&chunks[3]), &chunks[3]).unwrap();
        let s = c.stats().unwrap();
        assert!(s.bytes <= 10_000, "{s:?}");
        assert!(c.get(&h(&chunks[0])).is_some(), "recently used chunk kept");
        assert!(c.get(&h(&chunks[1])).is_none(), "oldest chunk evicted");
        assert!(c.get(&h(&chunks[3])).is_some());
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
