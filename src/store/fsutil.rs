//! Small local-filesystem helpers.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a file so that readers see either the old content or all of the
/// new, and flushes it to disk before it becomes visible.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_replace(path, data, true)
}

/// Like [`write_atomic`]; with `durable == false` it skips the fsync, for
/// content that is verified when read back (cache entries).
pub fn write_replace(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates `dir` (and missing parents) readable only by its owner (0700),
/// and tightens `dir` itself to 0700 if it already existed wider: caches,
/// staging areas and logs hold bytes other local users must not read.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let md = std::fs::metadata(dir)?;
    if md.permissions().mode() & 0o077 != 0 {
        // Best effort: another user's directory is theirs to set.
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!("cannot make {} private (mode 0700): {e}", dir.display());
        }
    }
    Ok(())
}

/// Creates (or truncates) a file readable only by its owner (0600).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Opens a file for appending, creating it readable only by its owner.
pub fn append_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Threads [`lstat_all`] uses: stats of a cold tree wait on the disk, not
/// the CPU, so more run at once than there are cores.
const STAT_THREADS: usize = 16;

/// `symlink_metadata` of every path, in order, on several threads. A tree
/// of 100,000 small files on a cold cache spent a second in one thread
/// waiting for inode reads one at a time.
pub fn lstat_all(paths: &[PathBuf]) -> Vec<std::io::Result<std::fs::Metadata>> {
    let per = paths.len().div_ceil(STAT_THREADS).max(256);
    if paths.len() <= per {
        return paths.iter().map(|p| p.symlink_metadata()).collect();
    }
    std::thread::scope(|s| {
        let parts: Vec<_> = paths
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| p.symlink_metadata())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("stat thread"))
            .collect()
    })
}

/// Deletes the trees at `paths` in a detached `rm -rf`, so a command that
/// just made them garbage returns without waiting for the file system to
/// free gigabytes; a process that lives on reaps it from a thread. Where
/// `rm` cannot be started, they are deleted here and now.
pub fn remove_in_background(paths: Vec<PathBuf>) {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    if paths.is_empty() {
        return;
    }
    let absolute: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let spawned = Command::new("rm")
        .arg("-rf")
        .arg("--")
        .args(&absolute)
        // Not the caller's directory, which may be inside a mount that
        // would then stay busy while `rm` runs.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C meant for the command spares it.
        .process_group(0)
        .spawn();
    match spawned {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => {
            tracing::warn!("cannot start rm ({e}); deleting here instead");
            for p in &paths {
                if let Err(e) = std::fs::remove_dir_all(p) {
                    tracing::warn!("cannot delete {}: {e}", p.display());
                }
            }
        }
    }
}

/// Asks the kernel to start reading all of `f` into the page cache, without
/// waiting: issued for many small files before reading them one by one, it
/// keeps many disk reads in flight from one thread.
pub fn will_need(f: &std::fs::File) {
    will_need_range(f, 0, 0);
}

/// [`will_need`] for `len` bytes of `f` from `off` (`len` 0: to the end).
pub fn will_need_range(f: &std::fs::File, off: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor; a failure only means
    // no readahead.
    unsafe {
        libc::posix_fadvise(
            f.as_raw_fd(),
            off as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_WILLNEED,
        );
    }
}

#[cfg(test)]
mod tests {
    /// Results come back in the order of the paths, errors included, however
    /// the paths are split among threads.
    #[test]
    fn lstat_all_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..5000)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                if i % 1000 != 999 {
                    std::fs::write(&p, vec![0u8; i % 7]).unwrap();
                }
                p
            })
            .collect();
        let got = super::lstat_all(&paths);
        assert_eq!(got.len(), paths.len());
        for (i, r) in got.iter().enumerate() {
            match r {
                Ok(md) => assert_eq!(md.len(), (i % 7) as u64, "entry {i}"),
                Err(e) => {
                    assert_eq!(i % 1000, 999, "entry {i}: {e}");
                    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                }
            }
        }
        assert_eq!(got.iter().filter(|r| r.is_err()).count(), 5);
    }
}
