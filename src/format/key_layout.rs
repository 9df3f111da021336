//! The key layout. Immutable objects are named by content hash or a random
//! id; only `refs/` keys are claimed with create-if-absent.

use crate::format::names::{AssetId, Kind};

pub fn pack(id: &str) -> String {
    format!("packs/{id}")
}
pub fn index(id: &str) -> String {
    format!("indexes/{id}")
}
pub const INDEXES: &str = "indexes";
pub fn manifest(hash: &str) -> String {
    format!("manifests/{hash}")
}
pub fn kind_dir(kind: Kind) -> String {
    format!("refs/{kind}")
}
pub fn versions_dir(a: &AssetId) -> String {
    format!("refs/{}/{}/v", a.kind, a.name)
}
/// Zero-padded so that listing order is numeric order.
pub fn version(a: &AssetId, v: u64) -> String {
    format!("refs/{}/{}/v/{v:020}", a.kind, a.name)
}
pub fn aliases_dir(a: &AssetId) -> String {
    format!("refs/{}/{}/a", a.kind, a.name)
}
pub fn alias(a: &AssetId, alias: &str, seq: u64) -> String {
    format!("refs/{}/{}/a/{alias}/{seq:020}", a.kind, a.name)
}
/// A writer's session (see `crate::format::session`): exists while it runs.
pub fn session(id: &str) -> String {
    format!("sessions/{id}")
}
pub const SESSIONS: &str = "sessions";
/// gc's records of run `seq` (see [`crate::catalog::gc_runs`]): `mark`, `wait`,
/// `sweep`, `done`.
pub fn gc_record(seq: u64, what: &str) -> String {
    format!("gc/{seq:020}/{what}")
}
pub const GC: &str = "gc";
/// The compacted chunk index written by gc run `gen` (see `crate::format::chunk_index`).
pub fn index_gen_dir(gen: u64) -> String {
    format!("chunkindex/{gen:020}")
}
pub fn index_shard(gen: u64, shard: u32) -> String {
    format!("chunkindex/{gen:020}/{shard:04x}")
}
pub fn index_gen_file(gen: u64, what: &str) -> String {
    format!("chunkindex/{gen:020}/{what}")
}
pub const INDEX_GENS: &str = "chunkindex";
/// Where the live chunks of pack `old` went when gc run `run` rewrote it
/// (see `crate::format::pack_forward`).
pub fn forward(old: &str, run: u64) -> String {
    format!("forwards/{old}/{run:020}")
}
pub const FORWARDS: &str = "forwards";
pub const MANIFESTS: &str = "manifests";
pub const PACKS: &str = "packs";
pub const REFS: &str = "refs";
/// The conditional-write self-check's probes (the store layer names them).
pub const PROBES: &str = crate::store::PROBES;
/// Everything the catalog keeps about one asset (versions, deletions, aliases).
pub fn asset_dir(a: &AssetId) -> String {
    format!("refs/{}/{}", a.kind, a.name)
}
/// The deletion record of version `v`: its existence means `v` is deleted.
pub fn deletion(a: &AssetId, v: u64) -> String {
    format!("refs/{}/{}/d/{v:020}", a.kind, a.name)
}
