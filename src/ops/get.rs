//! `get`: materialise a version into a local directory, without a mount.
//!
//! Files are assembled in a temporary directory inside the target and renamed
//! into place only after every chunk has arrived and been verified, so a
//! failure leaves the target as it was. Files already present with the right
//! content are not fetched again. The manifest has been validated (no `..`,
//! no absolute paths, every parent a directory entry), and every directory is
//! checked not to be a symlink before anything is written beneath it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, CatalogError};
use crate::format::Reference;
use crate::format::{fetch_chunks, ChunkError};
use crate::format::{ChunkRef, EntryKind, Manifest};
use crate::ops::progress::Progress;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: exists and is not a directory")]
    NotADir(PathBuf),
    #[error("{0}: a directory is in the way of a file or symlink of the version")]
    InTheWay(PathBuf),
    #[error("{0}; nothing was written to the target")]
    Chunk(#[source] ChunkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

#[derive(Debug, Clone, Default)]
pub struct GetOutcome {
    pub reference: String,
    pub files_written: u64,
    pub files_skipped: u64,
    pub bytes_fetched: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GetError + '_ {
    move |source| GetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub async fn get(
    catalog: &Catalog,
    r: &Reference,
    dest: &Path,
    progress: bool,
) -> Result<GetOutcome, GetError> {
    let version = catalog.resolve(r).await?;
    let rec = catalog.record(&r.asset, version).await?;
    let m = catalog.manifest(&rec.manifest).await?;
    let mut out = GetOutcome {
        reference: r.asset.at(version).to_string(),
        ..Default::default()
    };

    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    ensure_dir(dest)?;
    // Directories are checked now (none may be a symlink or a file) but
    // created only once every chunk has arrived, so a failed get leaves no
    // skeleton of the version behind.
    for e in m.entries().filter(|e| e.kind == EntryKind::Dir) {
        check_dir(&dest.join(e.path))?;
    }

    // Which files need fetching, and where each needed chunk goes.
    let mut needed = vec![];
    for (i, e) in m.entries().enumerate() {
        if e.kind != EntryKind::File {
            continue;
        }
        let path = dest.join(e.path);
        if already_there(&path, e.size, m.chunks_of(&e)).map_err(io(&path))? {
            fs::set_permissions(&path, fs::Permissions::from_mode(e.mode & 0o777))
                .map_err(io(&path))?;
            out.files_skipped += 1;
        } else {
            needed.push(i);
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix(".assetfs-get-")
        .tempdir_in(dest)
        .map_err(io(dest))?;
    let tmp_path = |i: usize| tmp.path().join(i.to_string());
    let mut targets: HashMap<(u32, u32), Vec<(usize, u64)>> = HashMap::new();
    let mut to_fetch = vec![];
    let mut total = 0u64;
    // Chunk writes still due per file: a file stays open until its last
    // chunk is written, so a small file costs one open, not one per chunk.
    let mut remaining: HashMap<usize, u32> = HashMap::new();
    let mut open: HashMap<usize, File> = HashMap::new();
    for &i in &needed {
        let e = m.entry(i);
        if e.chunk_count == 0 {
            let p = tmp_path(i);
            File::create(&p).map_err(io(&p))?;
        }
        remaining.insert(i, e.chunk_count);
        let mut off = 0u64;
        for c in m.chunks_of(&e) {
            let t = targets.entry((c.pack, c.offset)).or_default();
            if t.is_empty() {
                to_fetch.push(*c);
                total += c.len as u64;
            }
            t.push((i, off));
            off += c.len as u64;
        }
    }
    let bar = Progress::bytes(total, "get", progress);
    fetch_chunks(catalog.store(), &m, to_fetch, |c, data| {
        let data = data.map_err(GetError::Chunk)?;
        for &(i, off) in &targets[&(c.pack, c.offset)] {
            let p = tmp_path(i);
            let f = match open.entry(i) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(
                    OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&p)
                        .map_err(io(&p))?,
                ),
            };
            f.write_all_at(&data, off).map_err(io(&p))?;
            let left = remaining.get_mut(&i).expect("every target file is counted");
            *left -= 1;
            if *left == 0 {
                open.remove(&i);
            }
        }
        out.bytes_fetched += data.len() as u64;
        bar.inc(data.len() as u64);
        Ok::<_, GetError>(())
    })
    .await?;
    bar.finish();

    // Everything arrived and verified: create directories, move files into place.
    for e in m.entries().filter(|e| e.kind == EntryKind::Dir) {
        ensure_dir(&dest.join(e.path))?;
    }
    for &i in &needed {
        let e = m.entry(i);
        let (from, to) = (tmp_path(i), dest.join(e.path));
        fs::set_permissions(&from, fs::Permissions::from_mode(e.mode & 0o777))
            .map_err(io(&from))?;
        if to.symlink_metadata().is_ok_and(|md| md.is_dir()) {
            return Err(GetError::InTheWay(to));
        }
        fs::rename(&from, &to).map_err(io(&to))?;
        out.files_written += 1;
    }
    write_symlinks(&m, dest)?;
    // Directory modes last, deepest first, so a read-only directory does not
    // block writing its contents.
    for e in m.entries().rev().filter(|e| e.kind == EntryKind::Dir) {
        let p = dest.join(e.path);
        fs::set_permissions(&p, fs::Permissions::from_mode(e.mode & 0o777)).map_err(io(&p))?;
    }
    Ok(out)
}

fn write_symlinks(m: &Manifest, dest: &Path) -> Result<(), GetError> {
    for e in m.entries().filter(|e| e.kind == EntryKind::Symlink) {
        let p = dest.join(e.path);
        let target = e.target.unwrap_or_default();
        match p.symlink_metadata() {
            Ok(md) if md.is_dir() => return Err(GetError::InTheWay(p)),
            Ok(md) if md.file_type().is_symlink() => {
                if fs::read_link(&p).is_ok_and(|t| t == Path::new(target)) {
                    continue;
                }
                fs::remove_file(&p).map_err(io(&p))?;
            }
            Ok(_) => fs::remove_file(&p).map_err(io(&p))?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(target, &p).map_err(io(&p))?;
    }
    Ok(())
}

/// Creates a directory, refusing to go through a symlink or a file.
fn ensure_dir(p: &Path) -> Result<(), GetError> {
    match p.symlink_metadata() {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(GetError::NotADir(p.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir(p).map_err(io(p)),
        Err(e) => Err(io(p)(e)),
    }
}

/// Checks that `p` is a directory or absent, never a symlink or a file.
fn check_dir(p: &Path) -> Result<(), GetError> {
    match p.symlink_metadata() {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(GetError::NotADir(p.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(p)(e)),
    }
}

/// True when `path` is a regular file with this size and these chunks, each
/// checked against its hash (which holds whatever kind of hash the manifest
/// gives the whole file).
fn already_there(path: &Path, size: u64, chunks: &[ChunkRef]) -> std::io::Result<bool> {
    match path.symlink_metadata() {
        Ok(md) if md.is_file() && md.len() == size => {
            let mut f = File::open(path)?;
            let mut buf = vec![];
            for c in chunks {
                buf.resize(c.len as usize, 0);
                match f.read_exact(&mut buf) {
                    // Shrunk since the stat: not the file.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                    r => r?,
                }
                if *blake3::hash(&buf).as_bytes() != c.hash {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
