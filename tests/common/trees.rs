//! File trees for tests: build them (random bytes, files, directories,
//! symlinks, FIFOs with chosen modes), and list or snapshot them to compare.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// One node of a file tree, as far as assetfs promises to preserve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        blake3: String,
    },
    Symlink {
        target: String,
    },
    Other {
        mode: u32,
    },
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Every entry under `root` (not `root` itself), by `/`-separated relative
/// path, without following symlinks, with its `lstat`. Asserts that each
/// entry's type from `readdir` (d_type) agrees with `lstat`: listing a mount
/// this way exercises readdir, lookup and getattr.
fn walk(root: &Path) -> Vec<(String, PathBuf, Metadata)> {
    let mut out = vec![];
    for e in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        let e = e.unwrap_or_else(|err| panic!("walking {}: {err}", root.display()));
        let rel = utf8(e.path().strip_prefix(root).expect("under root")).to_string();
        let md = std::fs::symlink_metadata(e.path())
            .unwrap_or_else(|err| panic!("lstat {}: {err}", e.path().display()));
        assert_eq!(
            e.file_type().is_symlink(),
            md.file_type().is_symlink(),
            "d_type vs lstat for {}",
            e.path().display()
        );
        assert_eq!(
            e.file_type().is_dir(),
            md.is_dir(),
            "d_type vs lstat for {}",
            e.path().display()
        );
        out.push((rel, e.into_path(), md));
    }
    out
}

/// Every entry under `root` (not `root` itself), by `/`-separated relative
/// path, with the BLAKE3 of every file. An absent `root` gives an empty map.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    if root.symlink_metadata().is_err() {
        return out;
    }
    for (rel, path, md) in walk(root) {
        let mode = md.permissions().mode() & 0o7777;
        let node = if md.file_type().is_symlink() {
            Node::Symlink {
                target: utf8(&std::fs::read_link(&path).unwrap()).to_string(),
            }
        } else if md.is_dir() {
            Node::Dir { mode }
        } else if md.is_file() {
            Node::File {
                mode,
                size: md.len(),
                blake3: file_content_hash(&path),
            }
        } else {
            Node::Other { mode }
        };
        out.insert(rel, node);
    }
    out
}

/// What a listing of a mount shows of an entry: type, permission bits,
/// size and symlink target (the bytes are compared separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    Dir { perm: u32 },
    File { perm: u32, size: u64 },
    Link { target: PathBuf },
}

/// Every entry under `root` (not `root` itself) by relative path, without
/// following symlinks and without reading files.
pub fn listing(root: &Path) -> BTreeMap<String, Listed> {
    let mut out = BTreeMap::new();
    for (rel, path, md) in walk(root) {
        let perm = md.permissions().mode() & 0o7777;
        let node = if md.file_type().is_symlink() {
            Listed::Link {
                target: std::fs::read_link(&path).expect("readlink"),
            }
        } else if md.is_dir() {
            Listed::Dir { perm }
        } else {
            Listed::File {
                perm,
                size: md.len(),
            }
        };
        out.insert(rel, node);
    }
    out
}

/// The content hash assetfs records for the file at `p` (see
/// [`content_hash_hex`]).
pub fn file_content_hash(p: &Path) -> String {
    content_hash_hex(&std::fs::read(p).expect("read"))
}

pub fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// The content hash assetfs records for a file holding `data` (its
/// `user.assetfs.blake3`): the BLAKE3 of the bytes for a file of at most one
/// chunk, else derived from its chunk list (docs/storage-format.md).
pub fn content_hash_hex(data: &[u8]) -> String {
    assetfs::format::to_hex(&assetfs::format::content_hash(data))
}

/// What differs between two maps, one line per key: missing, differing or
/// extra entries (for assertion messages).
pub fn map_diff<V: PartialEq + std::fmt::Debug>(
    want: &BTreeMap<String, V>,
    got: &BTreeMap<String, V>,
) -> String {
    let mut diffs = vec![];
    for (k, v) in want {
        match got.get(k) {
            None => diffs.push(format!("missing  {k}: {v:?}")),
            Some(g) if g != v => diffs.push(format!("differs  {k}: want {v:?}, got {g:?}")),
            _ => {}
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            diffs.push(format!("extra    {k}: {v:?}"));
        }
    }
    diffs.join("\n")
}

/// Asserts two snapshots are equal, listing what differs.
pub fn assert_same_tree(want: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>, what: &str) {
    if want != got {
        panic!("{what}: trees differ:\n{}", map_diff(want, got));
    }
}

/// Regular files of a snapshot: path -> (size, blake3).
pub fn files_of(snap: &BTreeMap<String, Node>) -> BTreeMap<String, (u64, String)> {
    snap.iter()
        .filter_map(|(k, v)| match v {
            Node::File { size, blake3, .. } => Some((k.clone(), (*size, blake3.clone()))),
            _ => None,
        })
        .collect()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` pseudo-random bytes, determined by `rng`. They come from BLAKE3's
/// output stream, which (unlike `rand` in a debug build) is compiled with
/// optimisations, so tens of megabytes cost milliseconds.
pub fn random_bytes(rng: &mut impl RngCore, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    blake3::Hasher::new()
        .update(&rng.next_u64().to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

pub fn write_file(p: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(p, data).expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn make_dir(p: &Path, mode: u32) {
    std::fs::create_dir_all(p).expect("mkdir");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A symlink at `p` (creating parents) pointing to `target`.
pub fn symlink_at(p: &Path, target: &str) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    symlink(target, p).expect("symlink");
}

/// A file of `n` random bytes at `root/rel`, mode 0644; returns the bytes.
pub fn random_file(root: &Path, rel: &str, rng: &mut impl RngCore, n: usize) -> Vec<u8> {
    let data = random_bytes(rng, n);
    write_file(&root.join(rel), &data, 0o644);
    data
}

/// What [`make_tree`] made.
#[derive(Debug, Clone, Copy)]
pub struct TreeInfo {
    /// Regular files.
    pub files: u64,
    /// Bytes in regular files.
    pub bytes: u64,
}

/// A deterministic tree (same seed, same tree) with what a model directory
/// has and what tends to break copies: empty files, a multi-chunk file and a
/// duplicate of it, nested and empty directories, unusual modes (0600, 0755,
/// 0640; directories 0750 and 0700), a relative symlink and a dangling one.
pub fn make_tree(root: &Path, seed: u64) -> TreeInfo {
    let mut r = rng(seed);
    make_dir(root, 0o755);
    let mut info = TreeInfo { files: 0, bytes: 0 };
    let mut file = |rel: &str, data: &[u8], mode: u32| {
        write_file(&root.join(rel), data, mode);
        info.files += 1;
        info.bytes += data.len() as u64;
    };
    file("empty.txt", b"", 0o644);
    let n = r.gen_range(100..4000);
    file("secret.key", &random_bytes(&mut r, n), 0o600);
    file(
        "run.sh",
        format!("#!/bin/sh\necho model {seed}\n").as_bytes(),
        0o755,
    );
    make_dir(&root.join("weights"), 0o750);
    // Random bytes well over the 64 KiB minimum chunk: several chunks.
    let n = r.gen_range(600_000..800_000);
    let big = random_bytes(&mut r, n);
    file("weights/model.bin", &big, 0o644);
    file("weights/copy-of-model.bin", &big, 0o640);
    for i in 0..4 {
        let n = r.gen_range(1..20_000);
        file(
            &format!("weights/shard-{i:03}"),
            &random_bytes(&mut r, n),
            0o644,
        );
    }
    make_dir(&root.join("weights/deep/er"), 0o755);
    std::fs::set_permissions(
        root.join("weights/deep/er"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    file(
        "weights/deep/er/leaf.json",
        format!("{{\"seed\": {seed}}}\n").as_bytes(),
        0o644,
    );
    file("weights/deep/er/empty-too", b"", 0o600);
    make_dir(&root.join("logs/empty-dir"), 0o755);
    symlink("weights/model.bin", root.join("model.bin")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    info
}

/// Creates a FIFO (mode 0644).
pub fn mkfifo(p: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o644) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
