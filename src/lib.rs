//! assetfs: versioned ML models and feature sets over an object store.
//!
//! The library is five layers, lowest first; a layer uses only the layers
//! below it (`tests/architecture.rs` fails the build on anything else, and
//! `docs/architecture.md` draws the picture):
//! 1. [`store`]: object_store access, errors and hints, local-disk helpers.
//! 2. [`format`](mod@format): ids, names, the key layout, chunker, packs, manifests.
//! 3. [`catalog`]: versions, aliases, records, the commit claim, and the
//!    node's local state (chunk cache, catalog cache, staging areas).
//! 4. [`ops`]: push/commit, get, verify, diff, lineage, gc, stored tests.
//! 5. [`mount`]: the filesystem logic and the thin FUSE adapter.
//!
//! The binary (`src/main.rs`, `src/cli/`) parses arguments and prints.

pub mod catalog;
pub mod format;
pub mod mount;
pub mod ops;
pub mod store;
