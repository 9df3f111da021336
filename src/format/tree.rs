//! A tree to commit: what push, commit and staging hand to the packer.

use std::path::PathBuf;

use crate::format::ids::Hash;
use crate::format::manifest::ChunkLocation;

/// One entry of the tree being committed.
#[derive(Debug, Clone)]
pub enum TreeItem {
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// A local file, chunked and hashed at commit time.
    Local {
        path: String,
        mode: u32,
        file: PathBuf,
        size: u64,
    },
    /// A file whose chunks the store already has (unchanged since the base
    /// version): committed without reading or hashing it again.
    Stored {
        path: String,
        mode: u32,
        size: u64,
        hash: Hash,
        chunks: Vec<(Hash, ChunkLocation)>,
    },
}
