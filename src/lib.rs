//! assetfs: versioned ML models and feature sets over an object store.
//!
//! Module map (see docs/architecture.md):
//! - [`names`]: asset names, versions, aliases, references
//! - [`store`]: object_store access, key layout, conditional-write self-check
//! - [`chunker`], [`packer`], [`chunk_index`]: content-defined chunks, packs, the bounded chunk index
//! - [`session`], [`gc_records`]: writer sessions and gc's records, which let gc run while others push
//! - [`hash_pipeline`], [`stat_cache`]: reading and hashing a push on all cores; skipping unchanged files
//! - [`manifest`]: the version file tree and its compact, validated encoding
//! - [`catalog`]: versions, aliases, deletion records and the commit protocol
//! - [`remove`]: `rm`, deleting a version unless something still refers to it
//! - [`meta`]: version metadata and the sidecar JSON
//! - [`push`], [`get`], [`verify`], [`diff`]: the data commands
//! - [`gc`]: retention, and reclaiming what no live version uses, safely while others push
//! - [`fetch`]: verified, range-grouped chunk reads; [`pack_forward`]: reads of packs gc rewrote
//! - [`context`], [`secrets`], [`schema`], [`npy`]: version context capture and checks
//! - [`lineage`], [`history`], [`vtest`]: lineage queries, `log`, stored input/output tests

pub mod aws_profile;
pub mod cache;
pub mod cache_file;
pub mod catalog;
pub mod catalog_cache;
pub mod chunk_index;
pub mod chunker;
pub mod commit;
pub mod context;
pub mod diff;
pub mod errno;
pub mod faults;
pub mod fetch;
pub mod fs;
pub mod fsutil;
pub mod gc;
pub mod gc_records;
pub mod gc_rewrite;
pub mod get;
pub mod hash_pipeline;
pub mod history;
pub mod ids;
pub mod lineage;
pub mod manifest;
pub mod meta;
pub mod mount;
pub mod names;
pub mod node_state;
pub mod npy;
pub mod pack_forward;
pub mod packer;
pub mod perms;
pub mod prefetch;
pub mod progress;
pub mod push;
#[cfg(test)]
mod read_path_tests;
pub mod readahead;
pub mod reader;
pub mod registry;
pub mod remove;
pub mod schema;
pub mod secrets;
pub mod session;
pub mod staging;
pub mod stat_cache;
pub mod store;
#[cfg(test)]
pub(crate) mod store_double;
pub mod store_errors;
pub mod verify;
pub mod vfs;
pub mod vfs_staging;
pub mod vtest;
