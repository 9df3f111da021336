mod chunk_index;
mod chunker;
mod fetch;
mod hash_pipeline;
mod ids;
mod key_layout;
mod manifest;
mod names;
mod pack_forward;
mod packer;
mod session;
mod time;
mod tree;

pub mod index {
    //! The chunk index: per-push deltas and the generations gc writes.
    pub use super::chunk_index::{
        bits_for, delta_session, gen_packs, latest_gen, read_delta, write_gen, GenInfo,
    };
}
pub use chunker::{chunk_hashes, content_hash, AVG_CHUNK};
pub use fetch::{fetch_chunks, fetch_located, open_range, verify_chunk, ChunkError, FetchError};
pub use hash_pipeline::{hash_files, Event, Job, Stamp};
pub use ids::{hash_bytes, new_pack_id, random_id, to_hex, DigestMap, Hash, PackId};
pub mod keys {
    //! The key layout: where each kind of object lives in the store.
    pub use super::key_layout::*;
}
pub use manifest::{
    file_hash, same_content, ChunkLocation, ChunkRef, Entry, EntryKind, Manifest, ManifestBuilder,
    ManifestError,
};
pub use names::{
    parse_version, validate_alias, AssetId, AssetName, Kind, NameError, Reference, Selector,
};
pub mod forwards {
    //! Forward records: where the live chunks of a pack gc rewrote went.
    pub use super::pack_forward::{load, read_ranges, write, Forwards, Moved};
}
pub use packer::{ChunkIndex, PackStats, Packer, PACK_TARGET};
pub mod sessions {
    //! Writer sessions: heartbeat objects that tell gc who is writing.
    pub use super::session::{
        boottime_ms, pack_id_in, parse_session_name, session_of, Session, SessionId, CLAIM_WINDOW,
        EXPIRY,
    };
}
pub use time::now_rfc3339;
pub use tree::TreeItem;
