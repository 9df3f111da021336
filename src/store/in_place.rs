//! Objects of a local store written straight into their files.
//!
//! A push to a `file://` store used to copy every new byte into a 16 MiB pack
//! buffer (fresh memory each time, which this kind of VM makes expensive to
//! touch), then hand it to object_store, which wrote it out and left all of
//! it dirty for a later `sync`. Written in place, each chunk goes from the
//! reader's buffer to the page cache in one `write`, and writeback starts
//! every [`WRITEBACK_STEP`] bytes instead of after the push.
//!
//! Only for objects nobody else writes and nothing reads before their writer
//! refers to them elsewhere (packs: their chunk index delta is written after
//! them). An object dropped unfinished (a failed write, a full disk, a push
//! that fails) is removed, so a full disk is not left full; a crash leaves a
//! partial file under the object's own name, which is what a crashed push's
//! pack is to gc anyway.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A write into a local store's file failed (a full disk, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path} in the local store: {source}")]
pub struct InPlaceError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

type Result<T> = std::result::Result<T, InPlaceError>;

/// Writeback of what was written is started every this many bytes.
const WRITEBACK_STEP: u64 = 8 << 20;

/// A new object of a local store, being written in place.
#[derive(Debug)]
pub struct InPlace {
    file: File,
    path: PathBuf,
    written: u64,
    /// Bytes whose writeback has been started.
    started: u64,
    finished: bool,
}

impl InPlace {
    /// Creates the object's file; fails if it exists (its name is unique to
    /// the writer, so it never should).
    pub(crate) fn create(path: PathBuf) -> Result<InPlace> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| fail(&path, e))?;
        Ok(InPlace {
            file,
            path,
            written: 0,
            started: 0,
            finished: false,
        })
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.file.write_all(data).map_err(|e| fail(&self.path, e))?;
        self.written += data.len() as u64;
        if self.written - self.started >= WRITEBACK_STEP {
            self.start_writeback();
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Completes the object: starts writeback of the rest and closes it.
    pub fn finish(mut self) -> Result<()> {
        self.start_writeback();
        self.finished = true;
        Ok(())
    }

    /// Starts (does not wait for) writeback of the bytes written since the
    /// last call, so a large push keeps the disk busy while it hashes
    /// instead of leaving gigabytes dirty for the next `sync`.
    fn start_writeback(&mut self) {
        let len = self.written - self.started;
        if len == 0 {
            return;
        }
        // SAFETY: a plain syscall on an open descriptor; a failure only
        // means the kernel writes these pages back later by itself.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                self.started as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.started = self.written;
    }
}

impl Drop for InPlace {
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("cannot remove unfinished {}: {e}", self.path.display());
            }
        }
    }
}

fn fail(path: &Path, source: std::io::Error) -> InPlaceError {
    InPlaceError {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_place_and_refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("packs/ab/cd");
        let mut o = InPlace::create(p.clone()).unwrap();
        o.write(b"hello ").unwrap();
        o.write(&vec![7u8; (WRITEBACK_STEP + 5) as usize]).unwrap();
        assert_eq!(o.len(), 6 + WRITEBACK_STEP + 5);
        o.finish().unwrap();
        let got = std::fs::read(&p).unwrap();
        assert_eq!(&got[..6], b"hello ");
        assert_eq!(got.len() as u64, 6 + WRITEBACK_STEP + 5);
        let e = InPlace::create(p.clone()).unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        // Dropped unfinished (the push failed): removed.
        let q = dir.path().join("packs/ab/ef");
        let mut o = InPlace::create(q.clone()).unwrap();
        o.write(b"partial").unwrap();
        drop(o);
        assert!(!q.exists());
        assert!(p.exists());
    }
}
