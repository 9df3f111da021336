//! The version manifest: file tree, sizes, modes, chunk lists and metadata,
//! stored under the BLAKE3 hash of its encoded bytes.
//!
//! Encoding: `AFSM` magic, a little-endian u16 format version, then a zstd
//! frame of a postcard body. Paths are front-coded (shared prefix length +
//! suffix). A file's content hash is a function of its chunk list
//! ([`file_hash`]), so format 2 stores none (format 1 stored the BLAKE3 of
//! the bytes of each file of several chunks), which keeps a 1,000,000-file
//! manifest compact and lets a push hash each byte once.
//!
//! Manifests read from a store are untrusted: [`Manifest::decode`] rejects
//! anything a reader could be tricked by (`..`, absolute paths, NULs,
//! duplicates, entries under a non-directory, chunk references out of range).

use serde::{Deserialize, Serialize};

use crate::format::ids::{Hash, PackId};

pub const FORMAT: u16 = 2;
/// The format before file hashes were derived from chunk lists; still read.
const FORMAT_BYTE_HASHES: u16 = 1;
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
    /// The zstd decoder could not be set up.
    #[error("manifest is corrupt: {0}")]
    Inflate(#[source] std::io::Error),
    /// The compressed body is damaged.
    #[error("manifest is corrupt: zstd: {0}")]
    Zstd(#[source] std::io::Error),
    #[error("manifest is corrupt: truncated or damaged ({0})")]
    Wire(#[source] WireError),
    #[error("manifest entry {path:?} is unsafe: {why}")]
    Unsafe { path: String, why: &'static str },
}

/// Why the inflated body of a manifest could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
    #[error(transparent)]
    Length(#[from] std::num::TryFromIntError),
    #[error(transparent)]
    Utf8(#[from] std::str::Utf8Error),
    #[error("string")]
    StringPastEnd,
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

/// One entry of a manifest: a view into its compact in-memory form (see
/// [`Manifest`]), made on demand. `Copy`, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Relative, `/`-separated, validated.
    pub path: &'a str,
    pub kind: EntryKind,
    /// Permission bits only (`0o7777` mask).
    pub mode: u32,
    pub size: u64,
    /// The content hash (files only; zero otherwise): [`file_hash`] of the
    /// chunk list, or, in a format-1 manifest, the BLAKE3 of the bytes. The
    /// two agree for files of at most one chunk.
    pub hash: Hash,
    /// Range into [`Manifest::chunks`].
    pub first_chunk: u32,
    pub chunk_count: u32,
    pub target: Option<&'a str>,
}

/// `derive_key` context of [`file_hash`]; fixed forever.
const FILE_HASH_CONTEXT: &str = "assetfs 2026-11-29 file hash: chunk hashes and lengths";

/// A file's content hash from its chunks `(hash, length)` in file order. For
/// a file of one chunk it is that chunk's name, the BLAKE3 of the bytes (and
/// for an empty file the BLAKE3 of nothing); for more it is BLAKE3 in
/// `derive_key` mode with `FILE_HASH_CONTEXT` over each chunk's 32-byte
/// hash followed by its length as 4 little-endian bytes. Chunks are named
/// by the BLAKE3 of their bytes and cut by content, so this is a function of
/// the bytes, and computing it never reads them again.
pub fn file_hash(mut chunks: impl ExactSizeIterator<Item = (Hash, u32)>) -> Hash {
    match chunks.len() {
        0 => empty_hash(),
        1 => chunks.next().expect("one chunk").0,
        _ => {
            let mut h = blake3::Hasher::new_derive_key(FILE_HASH_CONTEXT);
            for (hash, len) in chunks {
                h.update(&hash);
                h.update(&len.to_le_bytes());
            }
            *h.finalize().as_bytes()
        }
    }
}

/// Whether two file entries, of these manifests, hold the same bytes.
pub fn same_content(am: &Manifest, a: &Entry<'_>, bm: &Manifest, b: &Entry<'_>) -> bool {
    if a.size != b.size {
        return false;
    }
    if am.hash_of_bytes(a) == bm.hash_of_bytes(b) {
        return a.hash == b.hash;
    }
    // Format 1 against format 2 for a file of several chunks: the hashes are
    // of different kinds, but chunking is deterministic.
    let (x, y) = (am.chunks_of(a), bm.chunks_of(b));
    x.len() == y.len()
        && x.iter()
            .zip(y)
            .all(|(c, d)| c.hash == d.hash && c.len == d.len)
}

impl Entry<'_> {
    pub fn chunk_range(&self) -> std::ops::Range<usize> {
        let s = self.first_chunk as usize;
        s..s + self.chunk_count as usize
    }
}

/// An entry as the builder (and tests) hold it before it is packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub hash: Hash,
    pub first_chunk: u32,
    pub chunk_count: u32,
    pub target: Option<String>,
}

impl From<Entry<'_>> for OwnedEntry {
    fn from(e: Entry<'_>) -> OwnedEntry {
        OwnedEntry {
            path: e.path.to_string(),
            kind: e.kind,
            mode: e.mode,
            size: e.size,
            hash: e.hash,
            first_chunk: e.first_chunk,
            chunk_count: e.chunk_count,
            target: e.target.map(str::to_string),
        }
    }
}

/// `Rec::extra` of a file whose hash is its single chunk's hash.
const HASH_OF_CHUNK: u32 = u32::MAX;
/// `Rec::extra` of an empty file (the hash of no bytes).
const HASH_OF_EMPTY: u32 = u32::MAX - 1;
/// `Rec::extra` of a directory.
const NO_EXTRA: u32 = u32::MAX - 2;

/// One entry in memory: 32 bytes, no heap. Its path (and a symlink's target
/// right after it) lives in [`Manifest::text`], starting where the previous
/// entry's text ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    size: u64,
    path_end: u32,
    /// Symlink: end of its target in `text`. File: index into `hashes`, or
    /// `HASH_OF_CHUNK` / `HASH_OF_EMPTY`. Directory: `NO_EXTRA`.
    extra: u32,
    first_chunk: u32,
    chunk_count: u32,
    mode: u16,
    kind: EntryKind,
}

impl Rec {
    fn text_end(&self) -> u32 {
        match self.kind {
            EntryKind::Symlink => self.extra,
            _ => self.path_end,
        }
    }
}

fn empty_hash() -> Hash {
    static EMPTY: std::sync::OnceLock<Hash> = std::sync::OnceLock::new();
    *EMPTY.get_or_init(|| *blake3::hash(b"").as_bytes())
}

/// A decoded manifest, entries sorted by path bytes and unique.
///
/// In memory it is compact (about 32 bytes per entry plus its path, plus 44
/// per chunk; no allocation per entry): a 1,000,000-file version costs about
/// 100 MB instead of the ~400 B per file of one struct and two strings per
/// entry. Entries are read through [`Entry`] views.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Version metadata (docs/usage.md, "Sidecar JSON") as JSON text, kept verbatim so
    /// unknown fields survive.
    pub meta_json: String,
    pub packs: Vec<PackId>,
    /// Every file's chunks, in entry order.
    pub chunks: Vec<ChunkRef>,
    recs: Vec<Rec>,
    /// Paths and symlink targets, back to back.
    text: String,
    /// File hashes not implied by the file's single chunk.
    hashes: Vec<Hash>,
    /// Decoded from format 1: a file of several chunks carries the BLAKE3 of
    /// its bytes, not [`file_hash`].
    byte_hashes: bool,
}

impl PartialEq for Manifest {
    fn eq(&self, other: &Manifest) -> bool {
        self.meta_json == other.meta_json
            && self.packs == other.packs
            && self.chunks == other.chunks
            && self.len() == other.len()
            && self.entries().zip(other.entries()).all(|(a, b)| a == b)
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    meta_json: &'a str,
    packs: &'a [PackId],
    entries: WireEntries<'a>,
    chunks: &'a [ChunkRef],
}

/// The entries of a manifest, serialised one by one (front-coded paths)
/// without building the wire form in memory.
struct WireEntries<'a>(&'a Manifest);

impl Serialize for WireEntries<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut prev = "";
        s.collect_seq(m.entries().map(|e| {
            let shared = common_prefix(prev, e.path);
            prev = e.path;
            WireEntry {
                shared: shared as u32,
                suffix: &e.path[shared..],
                kind: match e.kind {
                    EntryKind::Dir => 0,
                    EntryKind::File => 1,
                    EntryKind::Symlink => 2,
                },
                mode: e.mode,
                size: e.size,
                // Format 2: implied by the chunk list.
                hash: None,
                chunk_count: e.chunk_count,
                target: e.target,
            }
        }))
    }
}

/// One entry on the wire: postcard, in this field order. `hash` is only
/// ever set in format 1, for a file of several chunks.
#[derive(Serialize, Deserialize)]
struct WireEntry<'a> {
    shared: u32,
    #[serde(borrow)]
    suffix: &'a str,
    kind: u8,
    mode: u32,
    size: u64,
    hash: Option<Hash>,
    chunk_count: u32,
    #[serde(borrow)]
    target: Option<&'a str>,
}

/// Builds a manifest from entries added in any order.
#[derive(Default)]
pub struct ManifestBuilder {
    packs: Vec<PackId>,
    pack_index: std::collections::HashMap<PackId, u32>,
    /// Entries with the range of their chunks in `refs` (in adding order).
    files: Vec<OwnedEntry>,
    refs: Vec<ChunkRef>,
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
            .push(entry(path, EntryKind::Dir, mode, 0, [0; 32], None));
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.files.push(entry(
            path,
            EntryKind::Symlink,
            0o777,
            target.len() as u64,
            [0; 32],
            Some(target.into()),
        ));
    }

    /// Adds a file; its content hash is [`file_hash`] of `chunks`.
    pub fn add_file(&mut self, path: &str, mode: u32, size: u64, chunks: &[(Hash, ChunkLocation)]) {
        let mut e = entry(path, EntryKind::File, mode, size, [0; 32], None);
        e.first_chunk = self.refs.len() as u32;
        e.chunk_count = chunks.len() as u32;
        for (h, loc) in chunks {
            let next = self.packs.len() as u32;
            let pack = *self.pack_index.entry(loc.pack).or_insert(next);
            if pack == next {
                self.packs.push(loc.pack);
            }
            self.refs.push(ChunkRef {
                hash: *h,
                pack,
                offset: loc.offset,
                len: loc.len,
            });
        }
        self.files.push(e);
    }

    pub fn finish(mut self, meta_json: String) -> Manifest {
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut m = Manifest {
            meta_json,
            packs: self.packs,
            chunks: Vec::with_capacity(self.refs.len()),
            ..Manifest::default()
        };
        for mut e in self.files {
            let refs = &self.refs[e.first_chunk as usize..][..e.chunk_count as usize];
            e.first_chunk = m.chunks.len() as u32;
            m.chunks.extend_from_slice(refs);
            if e.kind == EntryKind::File {
                e.hash = file_hash(refs.iter().map(|c| (c.hash, c.len)));
            }
            m.push(
                &e.path,
                e.kind,
                e.mode,
                e.size,
                Some(e.hash),
                e.first_chunk,
                e.chunk_count,
                e.target.as_deref(),
            )
            .expect("a built manifest fits the compact form");
        }
        m
    }
}

fn entry(
    path: &str,
    kind: EntryKind,
    mode: u32,
    size: u64,
    hash: Hash,
    target: Option<String>,
) -> OwnedEntry {
    OwnedEntry {
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
    /// Builds a manifest from owned entries (their chunk ranges index
    /// `chunks`), without validating it.
    pub fn from_parts(
        meta_json: String,
        packs: Vec<PackId>,
        entries: &[OwnedEntry],
        chunks: Vec<ChunkRef>,
    ) -> Result<Manifest, ManifestError> {
        let mut m = Manifest {
            meta_json,
            packs,
            chunks,
            ..Manifest::default()
        };
        for e in entries {
            m.push(
                &e.path,
                e.kind,
                e.mode,
                e.size,
                Some(e.hash),
                e.first_chunk,
                e.chunk_count,
                e.target.as_deref(),
            )?;
        }
        Ok(m)
    }

    /// Appends one entry. `hash` is `None` when the wire left it out (the
    /// file's single chunk's hash, or the empty file's); a given hash equal
    /// to what would be implied is stored as implied. The chunk range is
    /// checked by [`Manifest::validate`].
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        path: &str,
        kind: EntryKind,
        mode: u32,
        size: u64,
        hash: Option<Hash>,
        first_chunk: u32,
        chunk_count: u32,
        target: Option<&str>,
    ) -> Result<(), ManifestError> {
        let too_big = || ManifestError::Corrupt("paths and targets exceed 4 GiB".into());
        let room = |n: usize| -> Result<u32, ManifestError> {
            u32::try_from(n)
                .ok()
                .filter(|&n| n < NO_EXTRA)
                .ok_or_else(too_big)
        };
        self.text.push_str(path);
        let path_end = room(self.text.len())?;
        let extra = match kind {
            EntryKind::Dir => NO_EXTRA,
            EntryKind::Symlink => {
                self.text.push_str(target.unwrap_or(""));
                room(self.text.len())?
            }
            EntryKind::File => {
                let single = (chunk_count == 1)
                    .then(|| self.chunks.get(first_chunk as usize).map(|c| c.hash))
                    .flatten();
                match hash {
                    None if chunk_count == 1 => HASH_OF_CHUNK,
                    None if chunk_count == 0 => HASH_OF_EMPTY,
                    None => return Err(ManifestError::Corrupt("file without content hash".into())),
                    Some(h) if single == Some(h) => HASH_OF_CHUNK,
                    Some(h) if chunk_count == 0 && h == empty_hash() => HASH_OF_EMPTY,
                    Some(h) => {
                        self.hashes.push(h);
                        room(self.hashes.len() - 1)?
                    }
                }
            }
        };
        // A symlink with no target or a directory with one is caught by
        // `validate`; keep what came so it can say so.
        if kind != EntryKind::Symlink && target.is_some() {
            return Err(ManifestError::Unsafe {
                path: path.to_string(),
                why: "only a symlink has a target",
            });
        }
        self.recs.push(Rec {
            size,
            path_end,
            extra,
            first_chunk,
            chunk_count,
            mode: (mode & 0o7777) as u16,
            kind,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.recs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    fn text_start(&self, i: usize) -> usize {
        match i {
            0 => 0,
            _ => self.recs[i - 1].text_end() as usize,
        }
    }

    /// The path of entry `i` (cheaper than a whole [`Entry`]).
    pub fn path(&self, i: usize) -> &str {
        &self.text[self.text_start(i)..self.recs[i].path_end as usize]
    }

    /// Entry `i`; panics when out of range, like indexing.
    pub fn entry(&self, i: usize) -> Entry<'_> {
        let r = &self.recs[i];
        let path = self.path(i);
        let target = (r.kind == EntryKind::Symlink)
            .then(|| &self.text[r.path_end as usize..r.extra as usize]);
        let hash = match (r.kind, r.extra) {
            (EntryKind::File, HASH_OF_CHUNK) => self
                .chunks
                .get(r.first_chunk as usize)
                .map_or([0; 32], |c| c.hash),
            (EntryKind::File, HASH_OF_EMPTY) => empty_hash(),
            (EntryKind::File, i) => self.hashes[i as usize],
            _ => [0; 32],
        };
        Entry {
            path,
            kind: r.kind,
            mode: r.mode as u32,
            size: r.size,
            hash,
            first_chunk: r.first_chunk,
            chunk_count: r.chunk_count,
            target,
        }
    }

    pub fn get_entry(&self, i: usize) -> Option<Entry<'_>> {
        (i < self.len()).then(|| self.entry(i))
    }

    /// Every entry, in path order.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = Entry<'_>> + ExactSizeIterator + '_ {
        (0..self.len()).map(|i| self.entry(i))
    }

    /// The index of the entry at `path` (binary search).
    pub fn find(&self, path: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.path(mid).cmp(path) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The index of the first entry whose path is not below `path` in byte
    /// order (entries sharing a prefix are contiguous from there).
    pub fn first_at_or_after(&self, path: &str) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.path(mid) < path {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Bytes of memory this manifest holds (what a cache of manifests counts).
    pub fn mem_bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<Manifest>()
            + self.meta_json.capacity()
            + self.packs.capacity() * size_of::<PackId>()
            + self.chunks.capacity() * size_of::<ChunkRef>()
            + self.recs.capacity() * size_of::<Rec>()
            + self.text.capacity()
            + self.hashes.capacity() * size_of::<Hash>()
    }

    pub fn encode(&self) -> Vec<u8> {
        let wire = WireRef {
            meta_json: &self.meta_json,
            packs: &self.packs,
            entries: WireEntries(self),
            chunks: &self.chunks,
        };
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        let mut z = zstd::stream::write::Encoder::new(out, 3).expect("zstd encoder");
        postcard::to_io(&wire, &mut z).expect("manifest serialises");
        z.finish().expect("zstd compresses in memory")
    }

    /// Decodes and validates untrusted bytes. The body is inflated and
    /// parsed as a stream, straight into the compact form: neither the
    /// inflated bytes nor a per-entry wire form are held in memory (only a
    /// window of a few hundred KiB).
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() < 6 || &bytes[..4] != MAGIC {
            return Err(ManifestError::Magic);
        }
        let format = u16::from_le_bytes([bytes[4], bytes[5]]);
        if format != FORMAT && format != FORMAT_BYTE_HASHES {
            return Err(ManifestError::Format(format));
        }
        let byte_hashes = format == FORMAT_BYTE_HASHES;
        use std::io::Read;
        let dec = zstd::stream::read::Decoder::new(&bytes[6..]).map_err(ManifestError::Inflate)?;
        let mut w = Window::new(dec.take(MAX_DECODED as u64));
        let mut m = Manifest {
            meta_json: w.string()?,
            byte_hashes,
            ..Manifest::default()
        };
        let n = w.len()?;
        m.packs.reserve(n.min(MAX_RESERVE));
        for _ in 0..n {
            m.packs.push(w.next::<PackId>()?);
        }
        let n = w.len()?;
        m.recs.reserve(n.min(MAX_RESERVE));
        let mut next_chunk: u64 = 0;
        let mut path = String::new();
        for _ in 0..n {
            w.entry(|e| {
                let corrupt = |s: &str| ManifestError::Corrupt(s.to_string());
                let shared = e.shared as usize;
                if shared > path.len() || !path.is_char_boundary(shared) {
                    return Err(corrupt("bad path prefix"));
                }
                path.truncate(shared);
                path.push_str(e.suffix);
                let kind = match e.kind {
                    0 => EntryKind::Dir,
                    1 => EntryKind::File,
                    2 => EntryKind::Symlink,
                    _ => return Err(corrupt("unknown entry kind")),
                };
                let first = next_chunk;
                next_chunk += e.chunk_count as u64;
                if next_chunk > u32::MAX as u64 {
                    return Err(corrupt("chunk list out of range"));
                }
                // A directory's or link's stray hash was always ignored.
                let hash = match kind {
                    EntryKind::File if byte_hashes => e.hash,
                    EntryKind::File if e.hash.is_some() => {
                        return Err(corrupt("a format-2 file entry with a stored hash"))
                    }
                    // Derived once the chunk list has been read.
                    EntryKind::File if e.chunk_count > 1 => Some([0; 32]),
                    _ => None,
                };
                m.push(
                    &path,
                    kind,
                    e.mode,
                    e.size,
                    hash,
                    first as u32,
                    e.chunk_count,
                    e.target,
                )
            })?;
        }
        let n = w.len()?;
        m.chunks.reserve(n.min(MAX_RESERVE));
        for _ in 0..n {
            m.chunks.push(w.next::<ChunkRef>()?);
        }
        if !w.at_end()? {
            return Err(ManifestError::Corrupt("trailing bytes".into()));
        }
        m.recs.shrink_to_fit();
        m.text.shrink_to_fit();
        m.chunks.shrink_to_fit();
        m.hashes.shrink_to_fit();
        m.validate()?;
        if !byte_hashes {
            m.derive_file_hashes();
        }
        Ok(m)
    }

    /// Fills in the hash of every file of several chunks from its chunk list
    /// (format 2 stores none); the chunk ranges are validated already.
    fn derive_file_hashes(&mut self) {
        for r in &self.recs {
            if r.kind == EntryKind::File && r.extra < NO_EXTRA {
                let s = r.first_chunk as usize;
                let chunks = &self.chunks[s..s + r.chunk_count as usize];
                self.hashes[r.extra as usize] = file_hash(chunks.iter().map(|c| (c.hash, c.len)));
            }
        }
    }

    /// Whether `e`'s hash is the BLAKE3 of its bytes (a file of at most one
    /// chunk, or any file of a format-1 manifest) rather than [`file_hash`].
    fn hash_of_bytes(&self, e: &Entry<'_>) -> bool {
        e.chunk_count <= 1 || self.byte_hashes
    }

    /// Structural checks that make the manifest safe to materialise.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut dirs = std::collections::HashSet::new();
        let mut prev: Option<&str> = None;
        let mut next_chunk: u64 = 0;
        for e in self.entries() {
            let unsafe_ = |why| ManifestError::Unsafe {
                path: e.path.to_string(),
                why,
            };
            validate_path(e.path).map_err(unsafe_)?;
            if prev.is_some_and(|p| p >= e.path) {
                return Err(unsafe_(
                    "entries are not sorted and unique (duplicate path?)",
                ));
            }
            prev = Some(e.path);
            if let Some((parent, _)) = e.path.rsplit_once('/') {
                if !dirs.contains(parent) {
                    return Err(unsafe_("its parent is not a directory of the manifest"));
                }
            }
            let chunks = self
                .chunks
                .get(e.chunk_range())
                .ok_or_else(|| unsafe_("chunk list out of range"))?;
            if e.first_chunk as u64 != next_chunk {
                return Err(unsafe_("chunk lists overlap or leave gaps"));
            }
            next_chunk += e.chunk_count as u64;
            match e.kind {
                EntryKind::Dir => {
                    if !chunks.is_empty() || e.target.is_some() {
                        return Err(unsafe_("a directory with content"));
                    }
                    dirs.insert(e.path);
                }
                EntryKind::Symlink => {
                    let t = e.target.unwrap_or("");
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
                }
            }
        }
        if next_chunk != self.chunks.len() as u64 {
            return Err(ManifestError::Corrupt("unreferenced chunks".into()));
        }
        Ok(())
    }

    /// Finds an entry by path (binary search over the sorted entries).
    pub fn get(&self, path: &str) -> Option<Entry<'_>> {
        self.find(path).map(|i| self.entry(i))
    }

    pub fn chunks_of(&self, e: &Entry) -> &[ChunkRef] {
        &self.chunks[e.chunk_range()]
    }

    pub fn files(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        self.entries().filter(|e| e.kind == EntryKind::File)
    }

    pub fn total_bytes(&self) -> u64 {
        self.files().map(|e| e.size).sum()
    }
}

/// Untrusted length prefixes reserve at most this many items up front.
const MAX_RESERVE: usize = 1 << 22;
/// How much of the inflated body is read ahead and parsed from a slice.
const WINDOW: usize = 256 << 10;

/// A window over the inflated body, read as a stream: values are parsed
/// from a slice (fast, strings borrowed) and the window is refilled, keeping
/// only its unparsed rest, when a value runs past its end.
struct Window<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

fn wire_err(e: impl Into<WireError>) -> ManifestError {
    ManifestError::Wire(e.into())
}

impl<R: std::io::Read> Window<R> {
    fn new(src: R) -> Self {
        Window {
            src,
            buf: Vec::new(),
            pos: 0,
            eof: false,
        }
    }

    /// Reads until at least `want` unparsed bytes are buffered, or the end.
    fn fill(&mut self, want: usize) -> Result<(), ManifestError> {
        if self.buf.len() - self.pos >= want || self.eof {
            return Ok(());
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        let target = want.max(WINDOW);
        while self.buf.len() < target && !self.eof {
            let old = self.buf.len();
            self.buf.resize(target, 0);
            let n = loop {
                match self.src.read(&mut self.buf[old..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r.map_err(ManifestError::Zstd)?,
                }
            };
            self.buf.truncate(old + n);
            self.eof = n == 0;
        }
        Ok(())
    }

    /// More bytes for a value that ran past the window's end.
    fn grow(&mut self, e: postcard::Error) -> Result<(), ManifestError> {
        if self.eof || e != postcard::Error::DeserializeUnexpectedEnd {
            return Err(wire_err(e));
        }
        let have = self.buf.len() - self.pos;
        self.fill(have + have.max(WINDOW))
    }

    fn next<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, ManifestError> {
        self.fill(64)?;
        loop {
            let avail = &self.buf[self.pos..];
            match postcard::take_from_bytes::<T>(avail) {
                Ok((v, rest)) => {
                    self.pos += avail.len() - rest.len();
                    return Ok(v);
                }
                Err(e) => self.grow(e)?,
            }
        }
    }

    /// A sequence's length (a varint).
    fn len(&mut self) -> Result<usize, ManifestError> {
        usize::try_from(self.next::<u64>()?).map_err(wire_err)
    }

    fn string(&mut self) -> Result<String, ManifestError> {
        let n = self.len()?;
        self.fill(n)?;
        let bytes = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or_else(|| wire_err(WireError::StringPastEnd))?;
        let s = std::str::from_utf8(bytes).map_err(wire_err)?.to_string();
        self.pos += n;
        Ok(s)
    }

    /// Parses one entry (its strings borrowed from the window) and hands it to `f`.
    fn entry(
        &mut self,
        f: impl FnOnce(WireEntry<'_>) -> Result<(), ManifestError>,
    ) -> Result<(), ManifestError> {
        self.fill(16 << 10)?;
        loop {
            let avail = &self.buf[self.pos..];
            match postcard::take_from_bytes::<WireEntry<'_>>(avail) {
                Ok((e, rest)) => {
                    let used = avail.len() - rest.len();
                    let r = f(e);
                    self.pos += used;
                    return r;
                }
                Err(e) => self.grow(e)?,
            }
        }
    }

    fn at_end(&mut self) -> Result<bool, ManifestError> {
        self.fill(1)?;
        Ok(self.pos == self.buf.len())
    }
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
        b.add_file("w/a.bin", 0o644, 3, &[([1; 32], loc(1))]);
        b.add_file("w/b.bin", 0o600, 6, &[([2; 32], loc(1)), ([3; 32], loc(2))]);
        b.add_file("empty", 0o644, 0, &[]);
        b.add_symlink("link", "w/a.bin");
        b.finish(r#"{"message":"hi","x-unknown":1}"#.into())
    }

    /// Format 1 as it was written before the compact in-memory form: the
    /// whole body as one postcard value. Old manifests must keep decoding
    /// and new ones must be byte-identical.
    #[derive(Serialize, Deserialize)]
    struct OldWire {
        meta_json: String,
        packs: Vec<PackId>,
        entries: Vec<OldWireEntry>,
        chunks: Vec<ChunkRef>,
    }

    #[derive(Serialize, Deserialize)]
    struct OldWireEntry {
        shared: u32,
        suffix: String,
        kind: u8,
        mode: u32,
        size: u64,
        hash: Option<Hash>,
        chunk_count: u32,
        target: Option<String>,
    }

    fn old_encode(w: &OldWire) -> Vec<u8> {
        let body = postcard::to_stdvec(w).unwrap();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend(zstd::bulk::compress(&body, 3).unwrap());
        out
    }

    fn body(bytes: &[u8]) -> Vec<u8> {
        zstd::stream::decode_all(&bytes[6..]).unwrap()
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let back = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(m, back);
        assert_eq!(back.get("w/b.bin").unwrap().mode, 0o600);
        assert_eq!(back.get("w/a.bin").unwrap().hash, [1; 32]);
        assert_eq!(
            back.get("empty").unwrap().hash,
            *blake3::hash(b"").as_bytes()
        );
        assert_eq!(back.get("link").unwrap().target, Some("w/a.bin"));
        assert_eq!(back.packs.len(), 2);
        assert_eq!(back.total_bytes(), 9);
        assert_eq!(back.find("w"), Some(2));
        assert_eq!(back.find("nope"), None);
        assert_eq!(back.first_at_or_after("w/"), 3);
    }

    #[test]
    fn wire_format_unchanged() {
        let m = sample();
        let old: OldWire = postcard::from_bytes(&body(&m.encode())).unwrap();
        assert_eq!(old.entries.len(), 5);
        // What the old encoder wrote decodes to the same manifest, and the
        // new encoder writes the same body.
        let bytes = old_encode(&old);
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        assert_eq!(body(&bytes), body(&m.encode()));
    }

    #[test]
    fn large_manifest_round_trip_and_compact() {
        let mut b = ManifestBuilder::default();
        let n = 20_000u32;
        for d in 0..20 {
            b.add_dir(&format!("d{d:02}"), 0o755);
        }
        for i in 0..n {
            let h = *blake3::hash(&i.to_le_bytes()).as_bytes();
            let chunks = if i % 7 == 0 {
                vec![(h, loc(1)), ([7; 32], loc(2))]
            } else {
                vec![(h, loc(1))]
            };
            let size = chunks.len() as u64 * 3;
            b.add_file(&format!("d{:02}/f{i:06}.bin", i % 20), 0o644, size, &chunks);
        }
        // Metadata larger than the decoder's window.
        let meta = format!("{{\"notes\":\"{}\"}}", "n".repeat(700_000));
        let m = b.finish(meta);
        let back = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.len(), n as usize + 20);
        // 32 bytes a record + the path + 44 a chunk, nothing per entry on the heap.
        let per = (back.mem_bytes() - back.meta_json.len()) as f64 / n as f64;
        assert!(per < 110.0, "{per:.0} bytes per file");
        let e = back.get("d03/f000003.bin").unwrap();
        assert_eq!(e.hash, *blake3::hash(&3u32.to_le_bytes()).as_bytes());
        let h0 = *blake3::hash(&0u32.to_le_bytes()).as_bytes();
        assert_eq!(
            back.get("d00/f000000.bin").unwrap().hash,
            file_hash([(h0, 3), ([7; 32], 3)].into_iter())
        );
    }

    fn owned(m: &Manifest) -> Vec<OwnedEntry> {
        m.entries().map(OwnedEntry::from).collect()
    }

    fn reencode(
        m: Manifest,
        f: impl FnOnce(&mut Vec<OwnedEntry>),
    ) -> Result<Manifest, ManifestError> {
        let mut es = owned(&m);
        f(&mut es);
        let m = Manifest::from_parts(m.meta_json.clone(), m.packs.clone(), &es, m.chunks.clone())?;
        Manifest::decode(&m.encode())
    }

    #[test]
    fn rejects_unsafe_paths() {
        for bad in ["../etc/passwd", "/abs", "a/../b", "a//b", "a\0b", "./a"] {
            let r = reencode(sample(), |es| es[0].path = bad.into());
            assert!(r.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_duplicates_and_orphans() {
        let r = reencode(sample(), |es| {
            let e = es[1].clone();
            es.insert(1, e);
            es[1].chunk_count = 0;
            es[1].kind = EntryKind::Dir;
        });
        assert!(r.is_err());
        let r = reencode(sample(), |es| es.retain(|e| e.path != "w"));
        assert!(matches!(r, Err(ManifestError::Unsafe { .. })), "{r:?}");
        // A file under a symlink would let a writer escape through the link.
        let r = reencode(sample(), |es| {
            es.retain(|e| e.path != "w");
            es.push(OwnedEntry {
                path: "w".into(),
                kind: EntryKind::Symlink,
                mode: 0o777,
                size: 4,
                hash: [0; 32],
                first_chunk: 0,
                chunk_count: 0,
                target: Some("/etc".into()),
            });
            es.sort_by(|a, b| a.path.cmp(&b.path));
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
        // A body with bytes after the manifest.
        let mut b = body(&sample().encode());
        b.push(0);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT.to_le_bytes());
        bytes.extend(zstd::bulk::compress(&b, 3).unwrap());
        assert!(Manifest::decode(&bytes).is_err());
    }

    /// The content hash of a file of several chunks, computed by hand from
    /// the rule in `file_hash`'s doc: fixed forever, or every stored
    /// version's `user.assetfs.blake3` would change.
    #[test]
    fn file_hash_follows_its_documented_rule() {
        let chunks = [([2u8; 32], 65_536u32), ([3u8; 32], 70_000u32)];
        let mut h = blake3::Hasher::new_derive_key(
            "assetfs 2026-11-29 file hash: chunk hashes and lengths",
        );
        for (c, len) in chunks {
            h.update(&c);
            h.update(&len.to_le_bytes());
        }
        assert_eq!(file_hash(chunks.into_iter()), *h.finalize().as_bytes());
        // One chunk: its name, the BLAKE3 of the bytes; none: BLAKE3 of nothing.
        assert_eq!(file_hash([([4; 32], 9)].into_iter()), [4; 32]);
        assert_eq!(file_hash([].into_iter()), *blake3::hash(b"").as_bytes());
        // Lengths count: the same hashes cut differently are other bytes.
        assert_ne!(
            file_hash(chunks.into_iter()),
            file_hash([([2; 32], 65_537), ([3; 32], 69_999)].into_iter())
        );
        let m = Manifest::decode(&sample().encode()).unwrap();
        assert_eq!(
            m.get("w/b.bin").unwrap().hash,
            file_hash([([2; 32], 3), ([3; 32], 3)].into_iter())
        );
    }

    /// A format-1 manifest (the BLAKE3 of the bytes stored for a file of
    /// several chunks) still decodes with its hash as stored, and compares
    /// equal in content to the same file in format 2; format 2 refuses a
    /// stored hash.
    #[test]
    fn format_1_keeps_its_byte_hashes() {
        let m = sample();
        let mut old: OldWire = postcard::from_bytes(&body(&m.encode())).unwrap();
        let b = old
            .entries
            .iter_mut()
            .find(|e| e.suffix == "b.bin")
            .unwrap();
        b.hash = Some([9; 32]);
        let mut bytes = old_encode(&old);
        let v2 = Manifest::decode(&bytes);
        assert!(matches!(v2, Err(ManifestError::Corrupt(_))), "{v2:?}");
        bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
        let v1 = Manifest::decode(&bytes).unwrap();
        let (old_b, new_b) = (v1.get("w/b.bin").unwrap(), m.get("w/b.bin").unwrap());
        assert_eq!(old_b.hash, [9; 32]);
        assert!(same_content(&v1, &old_b, &m, &new_b));
        assert!(same_content(&m, &new_b, &v1, &old_b));
        // Other chunks are other bytes, whatever the hash kinds.
        let mut b2 = ManifestBuilder::default();
        b2.add_dir("w", 0o755);
        b2.add_file("w/b.bin", 0o600, 6, &[([2; 32], loc(1)), ([8; 32], loc(2))]);
        let other = b2.finish("{}".into());
        assert!(!same_content(
            &v1,
            &old_b,
            &other,
            &other.get("w/b.bin").unwrap()
        ));
        // A single-chunk file's hash is the same in both formats.
        assert_eq!(v1.get("w/a.bin").unwrap().hash, [1; 32]);
        // Format 1 without the stored hash is corrupt, as it always was.
        let mut old: OldWire = postcard::from_bytes(&body(&m.encode())).unwrap();
        for e in &mut old.entries {
            e.hash = None;
        }
        let mut bytes = old_encode(&old);
        bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
        assert!(Manifest::decode(&bytes).is_err());
    }

    #[test]
    fn bad_sizes_rejected() {
        let r = reencode(sample(), |es| es[4].size = 99);
        assert!(r.is_err());
    }
}
