//! Content-defined chunking (FastCDC 2020) with a BLAKE3 name per chunk:
//! the sizes every writer must use. The reading and cutting itself is in
//! [`crate::format::hash_pipeline`] (checked there against `fastcdc`'s `StreamCDC`).
//!
//! Boundaries depend on content, not offsets, so an insertion shifts only the
//! chunks around it and the rest deduplicate against earlier versions.

pub const MIN_CHUNK: u32 = 64 * 1024;
pub const AVG_CHUNK: u32 = 256 * 1024;
pub const MAX_CHUNK: u32 = 1024 * 1024;
