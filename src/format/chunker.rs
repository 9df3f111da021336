//! Content-defined chunking (FastCDC 2020) with a BLAKE3 name per chunk:
//! the sizes every writer must use. The reading and cutting itself is in
//! [`crate::format::hash_pipeline`] (checked there against `fastcdc`'s `StreamCDC`).
//!
//! Boundaries depend on content, not offsets, so an insertion shifts only the
//! chunks around it and the rest deduplicate against earlier versions.

pub const MIN_CHUNK: u32 = 64 * 1024;
pub const AVG_CHUNK: u32 = 256 * 1024;
pub const MAX_CHUNK: u32 = 1024 * 1024;

use crate::format::ids::Hash;
use crate::format::manifest::file_hash;

/// The chunks a push cuts `data` into, as (BLAKE3 of the chunk, length).
pub fn chunk_hashes(data: &[u8]) -> Vec<(Hash, u32)> {
    fastcdc::v2020::FastCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
        .map(|c| {
            let bytes = &data[c.offset..c.offset + c.length];
            (*blake3::hash(bytes).as_bytes(), c.length as u32)
        })
        .collect()
}

/// The content hash a version records for a file holding `data` (what
/// `user.assetfs.blake3` gives): [`file_hash`] of its chunks.
pub fn content_hash(data: &[u8]) -> Hash {
    file_hash(chunk_hashes(data).into_iter())
}
