//! The node's stat cache: what a file's chunks were the last time it was
//! read, keyed by what the file system says about it, so a re-push or a
//! commit of unchanged files does not read them again (as git's index,
//! restic and DVC do).
//!
//! Kept in SQLite under the cache directory (`stat-cache.sqlite`), one row
//! per absolute path. It stores content facts only (chunk hashes and
//! lengths, the file hash), never store locations, so it is valid for every
//! store; a hit is used only if the store being pushed to already holds
//! every one of the chunks.
//!
//! Invalidation (see docs/usage.md, "The stat cache"):
//! - A row is used only if device, inode, size, mtime and ctime (all to the
//!   nanosecond) equal the file's now. Writing to a file always sets its
//!   ctime to the current time, and no system call sets ctime to a chosen
//!   value, so content changed in place, or a file replaced by another (new
//!   inode, or the same inode reused: new ctime), never matches an old row.
//! - Racy timestamps, as git handles them: a file whose mtime or ctime is
//!   within [`RACY_SLACK`] of the moment it was read is not recorded, since
//!   a write in that same timestamp tick (coarse clocks, 1-2 s granularity
//!   on some file systems) could leave the stamp unchanged. It is recorded by
//!   a later push, once its stamp is old.
//! - A file whose stamp changed while it was being read is not recorded.
//! - Rows unused for [`MAX_AGE`] are dropped; `assetfs cache clear` drops all.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::format::Hash;
use crate::format::Stamp;

/// Stamps this close to the read are too fresh to trust.
pub const RACY_SLACK: Duration = Duration::from_secs(2);
/// Rows not used for this long are dropped.
pub const MAX_AGE: Duration = Duration::from_secs(60 * 24 * 3600);
pub const FILE_NAME: &str = "stat-cache.sqlite";

#[derive(Debug, thiserror::Error)]
#[error("stat cache {path}: {source}")]
pub struct StatCacheError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

/// What a file held when it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub hash: Hash,
    /// (chunk hash, chunk length) in file order.
    pub chunks: Vec<(Hash, u32)>,
}

pub struct StatCache {
    path: PathBuf,
    db: Connection,
    now_s: i64,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl StatCache {
    /// Opens (creating) the stat cache in `cache_dir`.
    pub fn open(cache_dir: &Path) -> Result<StatCache, StatCacheError> {
        let path = cache_dir.join(FILE_NAME);
        let err = |source| StatCacheError {
            path: path.clone(),
            source,
        };
        let _ = crate::store::private_dir(cache_dir);
        let db = Connection::open(&path).map_err(err)?;
        db.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        // A lost row after a crash only costs one re-read.
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS files (
                 path TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
                 size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
                 known BLOB NOT NULL, used_s INTEGER NOT NULL);",
        )
        .map_err(err)?;
        Ok(StatCache {
            path,
            db,
            now_s: now().as_secs() as i64,
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StatCacheError + '_ {
        |source| StatCacheError {
            path: self.path.clone(),
            source,
        }
    }

    /// The file's chunks, if `stamp` is exactly the one recorded for `path`.
    pub fn get(&self, path: &Path, stamp: &Stamp) -> Result<Option<Known>, StatCacheError> {
        let Some(p) = path.to_str() else {
            return Ok(None);
        };
        let mut st = self
            .db
            .prepare_cached(
                "SELECT known FROM files WHERE path = ?1 AND dev = ?2 AND ino = ?3 AND size = ?4
                 AND mtime_ns = ?5 AND ctime_ns = ?6",
            )
            .map_err(self.err())?;
        let blob: Option<Vec<u8>> = st
            .query_row(
                params![
                    p,
                    stamp.dev as i64,
                    stamp.ino as i64,
                    stamp.size as i64,
                    stamp.mtime_ns,
                    stamp.ctime_ns
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        Ok(blob.and_then(|b| postcard::from_bytes(&b).ok()))
    }

    /// Whether a file with this stamp, read at `read_at` (since the epoch),
    /// may be recorded (see the module doc on racy timestamps).
    pub fn trustworthy(stamp: &Stamp, read_at: Duration) -> bool {
        let limit = read_at.saturating_sub(RACY_SLACK).as_nanos() as i64;
        stamp.mtime_ns < limit && stamp.ctime_ns < limit
    }

    /// Records files read by this push (path, stamp before reading, stamp
    /// after, what they held), skipping any whose stamp is not trustworthy.
    /// Also marks `used` paths as used, and drops rows unused for
    /// `MAX_AGE`. One transaction.
    pub fn record(
        &mut self,
        read_at: Duration,
        rows: &[(PathBuf, Stamp, Stamp, Known)],
        used: &[PathBuf],
    ) -> Result<usize, StatCacheError> {
        let now_s = self.now_s;
        let path = self.path.clone();
        let err = |source| StatCacheError {
            path: path.clone(),
            source,
        };
        let tx = self.db.transaction().map_err(err)?;
        let mut n = 0;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO files (path, dev, ino, size, mtime_ns, ctime_ns, known, used_s)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?;
            for (p, before, after, known) in rows {
                let Some(ps) = p.to_str() else { continue };
                if before != after || !Self::trustworthy(before, read_at) {
                    continue;
                }
                let blob = postcard::to_stdvec(known).expect("known serialises");
                put.execute(params![
                    ps,
                    before.dev as i64,
                    before.ino as i64,
                    before.size as i64,
                    before.mtime_ns,
                    before.ctime_ns,
                    blob,
                    now_s
                ])
                .map_err(err)?;
                n += 1;
            }
            let mut touch = tx
                .prepare_cached("UPDATE files SET used_s = ?1 WHERE path = ?2")
                .map_err(err)?;
            for p in used {
                if let Some(ps) = p.to_str() {
                    touch.execute(params![now_s, ps]).map_err(err)?;
                }
            }
            tx.execute(
                "DELETE FROM files WHERE used_s < ?1",
                [now_s - MAX_AGE.as_secs() as i64],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }

    /// Rows held (for `cache list`).
    pub fn len(&self) -> Result<u64, StatCacheError> {
        self.db
            .query_row("SELECT COUNT(*) FROM files", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    pub fn is_empty(&self) -> Result<bool, StatCacheError> {
        Ok(self.len()? == 0)
    }
}

/// Now, as the reference time for [`StatCache::trustworthy`].
pub fn read_clock() -> Duration {
    now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn stamp(p: &Path) -> Stamp {
        Stamp::of(&std::fs::metadata(p).unwrap())
    }

    fn known(b: u8) -> Known {
        Known {
            hash: [b; 32],
            chunks: vec![([b; 32], 5)],
        }
    }

    #[test]
    fn hit_only_for_the_same_stamp() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let s = stamp(&f);
        let mut c = StatCache::open(d.path()).unwrap();
        // Read "long after" the file was written: trustworthy.
        let later = Duration::from_nanos(s.ctime_ns.max(s.mtime_ns) as u64) + RACY_SLACK * 2;
        assert_eq!(
            c.record(later, &[(f.clone(), s, s, known(1))], &[])
                .unwrap(),
            1
        );
        assert_eq!(c.get(&f, &s).unwrap(), Some(known(1)));
        // Same size, mtime restored (touch -r): ctime differs, so a miss.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .write_all(b"jello")
            .unwrap();
        let t = std::fs::FileTimes::new()
            .set_modified(UNIX_EPOCH + Duration::from_nanos(s.mtime_ns as u64));
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_times(t)
            .unwrap();
        let s2 = stamp(&f);
        assert_eq!((s2.size, s2.mtime_ns), (s.size, s.mtime_ns));
        assert_ne!(s2.ctime_ns, s.ctime_ns);
        assert_eq!(c.get(&f, &s2).unwrap(), None);
        // Other path, same stamp: a miss.
        assert_eq!(c.get(&d.path().join("g"), &s).unwrap(), None);
    }

    #[test]
    fn racy_and_changed_files_are_not_recorded() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let s = stamp(&f);
        let mut c = StatCache::open(d.path()).unwrap();
        // Read right after the write: racy.
        let at = Duration::from_nanos(s.ctime_ns as u64) + Duration::from_millis(10);
        assert!(!StatCache::trustworthy(&s, at));
        assert_eq!(
            c.record(at, &[(f.clone(), s, s, known(1))], &[]).unwrap(),
            0
        );
        // Changed while read.
        let later = Duration::from_nanos(s.ctime_ns as u64) + RACY_SLACK * 2;
        let mut s2 = s;
        s2.size += 1;
        assert_eq!(
            c.record(later, &[(f.clone(), s, s2, known(1))], &[])
                .unwrap(),
            0
        );
        assert_eq!(c.get(&f, &s).unwrap(), None);
        assert_eq!(c.len().unwrap(), 0);
    }
}
