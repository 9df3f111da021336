//! Where this node keeps each store's local state, and the locks that keep
//! `cache clear` from removing what a mount or command is using (listing and
//! clearing them is `src/ops/node_state.rs`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A directory of this node's state could not be created, locked or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct DirError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

pub const LOCK_FILE: &str = ".lock";
pub const STORE_FILE: &str = "store.json";

type Result<T, E = DirError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DirError + '_ {
    move |source| DirError {
        path: path.to_path_buf(),
        source,
    }
}

/// The tag naming a store's directories on this node.
pub fn store_tag(url: &str) -> String {
    blake3::hash(url.as_bytes()).to_hex()[..16].to_string()
}

/// `<cache dir>/stores/<tag>`, recorded as used now.
pub fn store_cache_dir(cache_dir: &Path, url: &str) -> PathBuf {
    let d = cache_dir.join("stores").join(store_tag(url));
    note_use(&d, url);
    d
}

/// `<data home>/assetfs/staging/<tag>`.
pub fn staging_root(data_home: &Path, url: &str) -> PathBuf {
    data_home
        .join("assetfs")
        .join("staging")
        .join(store_tag(url))
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    url: String,
}

/// Writes `dir/store.json` (best effort: it only serves listing).
pub fn note_use(dir: &Path, url: &str) {
    let p = dir.join(STORE_FILE);
    let body = serde_json::to_vec(&StoreFile {
        url: url.to_string(),
    })
    .expect("serialises");
    // Owner-only, like the state it describes (staging, caches).
    let _ = crate::store::private_dir(dir);
    if std::fs::read(&p).ok().as_deref() == Some(&body[..]) {
        // Refresh the use time without rewriting.
        if let Ok(f) = File::options().append(true).open(&p) {
            let _ = f.set_modified(SystemTime::now());
        }
        return;
    }
    let _ = crate::store::write_replace(&p, &body, false);
}

pub fn read_url(dir: &Path) -> Option<(String, SystemTime)> {
    let p = dir.join(STORE_FILE);
    let s: StoreFile = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
    let t = std::fs::metadata(&p).ok()?.modified().ok()?;
    Some((s.url, t))
}

/// A held `flock`, released on drop (or when the process dies).
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

fn flock(path: &Path, op: libc::c_int) -> Result<Option<Lock>> {
    if let Some(parent) = path.parent() {
        crate::store::private_dir(parent).map_err(io(parent))?;
    }
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io(path))?;
    loop {
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(Some(Lock(f)));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(None),
            _ => return Err(io(path)(e)),
        }
    }
}

/// Marks `dir` in use (shared, waits for a clear in progress).
pub fn use_dir(dir: &Path) -> Result<Lock> {
    Ok(flock(&dir.join(LOCK_FILE), libc::LOCK_SH)?.expect("blocking lock"))
}

/// Takes `dir` for removal (`cache clear`), or `None` while anyone uses it.
pub fn take_dir(dir: &Path) -> Result<Option<Lock>> {
    flock(&dir.join(LOCK_FILE), libc::LOCK_EX | libc::LOCK_NB)
}
