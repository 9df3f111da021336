mod cache_room;
mod catalog_cache;
mod direct_io;
mod disk_cache;
mod disk_cache_file;
mod gc_records;
mod node_dirs;
mod sidecar;
mod staging;
mod stat_cache;
mod versions;

pub use catalog_cache::{CatalogCache, Listing};
pub use direct_io::{BufferPool, DirectFile, FillBuf, ReadBuf};
pub use disk_cache::{Admit, Body, CacheError, DiskCache, Origin, RunChunk};
pub mod gc_runs {
    //! gc's run records (mark, wait, sweep, done) and the writer's guard.
    pub use super::gc_records::{
        create, list_runs, pack_from_hex, read, runs_of, Done, GuardStart, Mark, RunKeys, Sweep,
        Wait, FORMAT,
    };
}
pub use node_dirs::{
    note_use, read_url, staging_root, store_cache_dir, store_tag, take_dir, use_dir, DirError,
    Lock, LOCK_FILE,
};
pub use sidecar::{aliases_at, sidecar, sidecar_bytes};
pub use staging::{
    has_uncommitted, locate, staging_dir, write_at, write_label, Change, Content, Node, Staging,
    StagingError, StartError, ROOT,
};
pub use stat_cache::{read_clock, Known, StatCache, FILE_NAME};
pub use versions::{AssetKeys, Catalog, CatalogError, DeletionRecord};
