//! The version manifest: file tree, sizes, modes, chunk lists and metadata,
//! stored under the BLAKE3 hash of its encoded bytes.
//!
//! Encoding: `AFSM` magic, a little-endian u16 format version, then a zstd
//! frame of a postcard body. Paths are front-coded (shared prefix length +
//! suffix) and a single-chunk file omits its content hash (it equals the chunk
//! hash), which keeps a 1,000,000-file manifest compact.
//!
//! Manifests read from a store are untrusted: [`Manifest::decode`] rejects
//! anything a reader could be tricked by (`..`, absolute paths, NULs,
//! duplicates, entries under a non-directory, chunk references out of range).

use serde::{Deserialize, Serialize};

use crate::ids::{Hash, PackId};

pub const FORMAT: u16 = 1;
const MAGIC: &[u8; 4] = b"AFSM";
/// Refuse to inflate more than this from one manifest (a zstd bomb guard).
const MAX_DECODED: usize = 8 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not an assetfs manifest (bad magic)")]
    Magic,
    #[error("manifest format {0} is newer than this assetfs understands (up to {FORMAT}); upgrade assetfs")]
    Format(u16),
    #[error("manifest is corrupt: {0}")]
    Corrupt(String),
    #[error("manifest entry {path:?} is unsafe: {why}")]
    Unsafe { path: String, why: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub hash: Hash,
    /// Index into [`Manifest::packs`].
    pub pack: u32,
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, `/`-separated, validated.
    pub path: Box<str>,
    pub kind: EntryKind,
    /// Permission bits only (`0o7777` mask).
    pub mode: u32,
    pub size: u64,
    /// BLAKE3 of the whole content (files only; zero otherwise).
    pub hash: Hash,
    /// Range into [`Manifest::chunks`].
    pub first_chunk: u32,
    pub chunk_count: u32,
    pub target: Option<Box<str>>,
}

impl Entry {
    pub fn chunk_range(&self) -> std::ops::Range<usize> {
        let s = self.first_chunk as usize;
        s..s + self.chunk_count as usize
    }
}

/// A decoded manifest. `entries` are sorted by path bytes and unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Version metadata (DESIGN.md section 3) as JSON text, kept verbatim so
    /// unknown fields survive.
    pub meta_json: String,
    pub packs: Vec<PackId>,
    pub entries: Vec<Entry>,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    meta_json: String,
    packs: Vec<PackId>,
    entries: Vec<WireEntry>,
    chunks: Vec<ChunkRef>,
}

#[derive(Serialize, Deserialize)]
struct WireEntry {
    shared: u32,
    suffix: String,
    kind: u8,
    mode: u32,
    size: u64,
    hash: Option<Hash>,
    chunk_count: u32,
    target: Option<String>,
}

/// Builds a manifest from entries added in any order.
#[derive(Default)]
pub struct ManifestBuilder {
    packs: Vec<PackId>,
    pack_index: std::collections::HashMap<PackId, u32>,
    files: Vec<(Entry, Vec<ChunkRef>)>,
}

/// Where a chunk lives in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLocation {
    pub pack: PackId,
    pub offset: u32,
    pub len: u32,
}

impl ManifestBuilder {
    pub fn add_dir(&mut self, path: &str, mode: u32) {
        self.files
            .push((entry(path, EntryKind::Dir, mode, 0, [0; 32], None), vec![]));
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.files.push((
            entry(
                path,
                EntryKind::Symlink,
                0o777,
                target.len() as u64,
                [0; 32],
                Some(target.into()),
            ),
            vec![],
        ));
    }

    pub fn add_file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        hash: Hash,
        chunks: &[(Hash, ChunkLocation)],
    ) {
        let refs = chunks
            .iter()
            .map(|(h, loc)| {
                let next = self.packs.len() as u32;
                let pack = *self.pack_index.entry(loc.pack).or_insert(next);
                if pack == next {
                    self.packs.push(loc.pack);
                }
                ChunkRef {
                    hash: *h,
                    pack,
                    offset: loc.offset,
                    len: loc.len,
                }
            })
            .collect();
        self.files
            .push((entry(path, EntryKind::File, mode, size, hash, None), refs));
    }

    pub fn finish(mut self, meta_json: String) -> Manifest {
        self.files.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        let mut entries = Vec::with_capacity(self.files.len());
        let mut chunks = Vec::new();
        for (mut e, refs) in self.files {
            e.first_chunk = chunks.len() as u32;
            e.chunk_count = refs.len() as u32;
            chunks.extend(refs);
            entries.push(e);
        }
        Manifest {
            meta_json,
            packs: self.packs,
            entries,
            chunks,
        }
    }
}

fn entry(
    path: &str,
    kind: EntryKind,
    mode: u32,
    size: u64,
    hash: Hash,
    target: Option<Box<str>>,
) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode: mode & 0o7777,
        size,
        hash,
        first_chunk: 0,
        chunk_count: 0,
        target,
    }
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut prev: &str = "";
        let entries = self
            .entries
            .iter()
            .map(|e| {
                let shared = common_prefix(prev, &e.path);
                prev = &e.path;
                let chunks = &self.chunks[e.chunk_range()];
                // A single-chunk file's hash is its chunk's hash: don't store it twice.
                let hash = match e.kind {
                    EntryKind::File if !(chunks.len() == 1 && chunks[0].hash == e.hash) => {
                        Some(e.hash)
                    }
                    _ => None,
                };
                WireEntry {
                    shared: shared as u32,
                    suffix: e.path[shared..].to_string(),
                    kind: match e.kind {
                        EntryKind::Dir => 0,
                        EntryKind::File => 1,
                        EntryKind::Symlink => 2,
                    },
                    mode: e.mode,
                    size: e.size,
                    hash,
                    chunk_count: e.chunk_count,
                    target: e.target.as_deref().map(str::to_string),
                }
            })
            .collect();
        let wire = Wire {
            meta_json: self.meta_json.clone(),
            packs: self.packs.clone(),
            entries,
            chunks: self.chunks.clone(),
        };
        let body = postcard::to_stdvec(&wire).expect("manifest serialises");
        let mut out = Vec::with_capacity(body.len() / 2 + 6);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend(zstd::bulk::compress(&body, 3).expect("zstd compresses in memory"));
        out
    }

    /// Decodes and validates untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() < 6 || &bytes[..4] != MAGIC {
            return Err(ManifestError::Magic);
        }
        let format = u16::from_le_bytes([bytes[4], bytes[5]]);
        if format != FORMAT {
            return Err(ManifestError::Format(format));
        }
        let body = decompress(&bytes[6..])?;
        let wire: Wire =
            postcard::from_bytes(&body).map_err(|e| ManifestError::Corrupt(e.to_string()))?;
        drop(body);
        let corrupt = |s: &str| ManifestError::Corrupt(s.to_string());
        let mut entries: Vec<Entry> = Vec::with_capacity(wire.entries.len());
        let mut next_chunk: u64 = 0;
        let mut path = String::new();
        for w in wire.entries {
            let shared = w.shared as usize;
            if shared > path.len() || !path.is_char_boundary(shared) {
                return Err(corrupt("bad path prefix"));
            }
            path.truncate(shared);
            path.push_str(&w.suffix);
            let kind = match w.kind {
                0 => EntryKind::Dir,
                1 => EntryKind::File,
                2 => EntryKind::Symlink,
                _ => return Err(corrupt("unknown entry kind")),
            };
            let first = next_chunk;
            next_chunk += w.chunk_count as u64;
            if next_chunk > wire.chunks.len() as u64 {
                return Err(corrupt("chunk list out of range"));
            }
            let hash = match (kind, w.hash) {
                (EntryKind::File, Some(h)) => h,
                (EntryKind::File, None) if w.chunk_count == 1 => wire.chunks[first as usize].hash,
                (EntryKind::File, None) if w.chunk_count == 0 => *blake3::hash(b"").as_bytes(),
                (EntryKind::File, None) => return Err(corrupt("file without content hash")),
                _ => [0; 32],
            };
            entries.push(Entry {
                path: path.as_str().into(),
                kind,
                mode: w.mode & 0o7777,
                size: w.size,
                hash,
                first_chunk: first as u32,
                chunk_count: w.chunk_count,
                target: w.target.map(String::into_boxed_str),
            });
        }
        if next_chunk != wire.chunks.len() as u64 {
            return Err(corrupt("unreferenced chunks"));
        }
        let m = Manifest {
            meta_json: wire.meta_json,
            packs: wire.packs,
            entries,
            chunks: wire.chunks,
        };
        m.validate()?;
        Ok(m)
    }

    /// Structural checks that make the manifest safe to materialise.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut dirs = std::collections::HashSet::new();
        let mut prev: Option<&str> = None;
        for e in &self.entries {
            let unsafe_ = |why| ManifestError::Unsafe {
                path: e.path.to_string(),
                why,
            };
            validate_path(&e.path).map_err(unsafe_)?;
            if prev.is_some_and(|p| p >= &*e.path) {
                return Err(unsafe_(
                    "entries are not sorted and unique (duplicate path?)",
                ));
            }
            prev = Some(&e.path);
            if let Some((parent, _)) = e.path.rsplit_once('/') {
                if !dirs.contains(parent) {
                    return Err(unsafe_("its parent is not a directory of the manifest"));
                }
            }
            let chunks = self
                .chunks
                .get(e.chunk_range())
                .ok_or_else(|| unsafe_("chunk list out of range"))?;
            match e.kind {
                EntryKind::Dir => {
                    if !chunks.is_empty() || e.target.is_some() {
                        return Err(unsafe_("a directory with content"));
                    }
                    dirs.insert(&*e.path);
                }
                EntryKind::Symlink => {
                    let t = e.target.as_deref().unwrap_or("");
                    if t.is_empty() || t.contains('\0') || !chunks.is_empty() {
                        return Err(unsafe_("bad symlink target"));
                    }
                }
                EntryKind::File => {
                    let total: u64 = chunks.iter().map(|c| c.len as u64).sum();
                    if total != e.size {
                        return Err(unsafe_("chunk lengths do not add up to the file size"));
                    }
                    if chunks.iter().any(|c| c.pack as usize >= self.packs.len()) {
                        return Err(unsafe_("chunk refers to an unknown pack"));
                    }
                    if e.target.is_some() {
                        return Err(unsafe_("a file with a symlink target"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Finds an entry by path (binary search over the sorted entries).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| (*e.path).cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn chunks_of(&self, e: &Entry) -> &[ChunkRef] {
        &self.chunks[e.chunk_range()]
    }

    pub fn files(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.kind == EntryKind::File)
    }

    pub fn total_bytes(&self) -> u64 {
        self.files().map(|e| e.size).sum()
    }
}

fn decompress(data: &[u8]) -> Result<Vec<u8>, ManifestError> {
    use std::io::Read;
    let dec = zstd::stream::read::Decoder::new(data)
        .map_err(|e| ManifestError::Corrupt(e.to_string()))?;
    let mut out = Vec::new();
    dec.take(MAX_DECODED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ManifestError::Corrupt(format!("zstd: {e}")))?;
    if out.len() > MAX_DECODED {
        return Err(ManifestError::Corrupt("decodes to more than 8 GiB".into()));
    }
    Ok(out)
}

fn common_prefix(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// A manifest path: relative, `/`-separated, no empty, `.` or `..` component,
/// no NUL, components of at most 255 bytes.
pub fn validate_path(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty path");
    }
    if p.starts_with('/') {
        return Err("absolute path");
    }
    if p.contains('\0') {
        return Err("path contains NUL");
    }
    if p.len() > 4096 {
        return Err("path longer than 4096 bytes");
    }
    for c in p.split('/') {
        match c {
            "" => return Err("empty path component"),
            "." | ".." => return Err("`.` or `..` path component"),
            c if c.len() > 255 => return Err("path component longer than 255 bytes"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(n: u8) -> ChunkLocation {
        ChunkLocation {
            pack: [n; 16],
            offset: 0,
            len: 3,
        }
    }

    fn sample() -> Manifest {
        let mut b = ManifestBuilder::default();
        b.add_dir("w", 0o755);
        b.add_file("w/a.bin", 0o644, 3, [1; 32], &[([1; 32], loc(1))]);
        b.add_file(
            "w/b.bin",
            0o600,
            6,
            [9; 32],
            &[([2; 32], loc(1)), ([3; 32], loc(2))],
        );
        b.add_file("empty", 0o644, 0, *blake3::hash(b"").as_bytes(), &[]);
        b.add_symlink("link", "w/a.bin");
        b.finish(r#"{"message":"hi","x-unknown":1}"#.into())
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let back = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(m, back);
        assert_eq!(back.get("w/b.bin").unwrap().mode, 0o600);
        assert_eq!(back.packs.len(), 2);
        assert_eq!(back.total_bytes(), 9);
    }

    fn reencode(mut m: Manifest, f: impl FnOnce(&mut Manifest)) -> Result<Manifest, ManifestError> {
        f(&mut m);
        Manifest::decode(&m.encode())
    }

    #[test]
    fn rejects_unsafe_paths() {
        for bad in ["../etc/passwd", "/abs", "a/../b", "a//b", "a\0b", "./a"] {
            let r = reencode(sample(), |m| m.entries[0].path = bad.into());
            assert!(r.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_duplicates_and_orphans() {
        let r = reencode(sample(), |m| {
            let e = m.entries[1].clone();
            m.entries.insert(1, e);
            m.entries[1].chunk_count = 0;
            m.entries[1].kind = EntryKind::Dir;
        });
        assert!(r.is_err());
        let r = reencode(sample(), |m| m.entries.retain(|e| &*e.path != "w"));
        assert!(matches!(r, Err(ManifestError::Unsafe { .. })), "{r:?}");
        // A file under a symlink would let a writer escape through the link.
        let r = reencode(sample(), |m| {
            m.entries.retain(|e| &*e.path != "w");
            m.entries.push(Entry {
                path: "w".into(),
                kind: EntryKind::Symlink,
                mode: 0o777,
                size: 4,
                hash: [0; 32],
                first_chunk: 0,
                chunk_count: 0,
                target: Some("/etc".into()),
            });
            m.entries.sort_by(|a, b| a.path.cmp(&b.path));
        });
        assert!(r.is_err());
    }

    #[test]
    fn rejects_garbage_and_future_formats() {
        assert!(matches!(
            Manifest::decode(b"nope"),
            Err(ManifestError::Magic)
        ));
        let mut bytes = sample().encode();
        bytes[4] = 9;
        assert!(matches!(
            Manifest::decode(&bytes),
            Err(ManifestError::Format(9))
        ));
        let mut bytes = sample().encode();
        let n = bytes.len();
        bytes.truncate(n - 5);
        assert!(Manifest::decode(&bytes).is_err());
    }

    #[test]
    fn bad_sizes_rejected() {
        let r = reencode(sample(), |m| m.entries[4].size = 99);
        assert!(r.is_err());
    }
}
