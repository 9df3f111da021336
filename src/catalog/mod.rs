pub mod catalog_cache;
pub mod disk_cache;
pub mod disk_cache_file;
pub mod gc_records;
pub mod sidecar;
pub mod staging;
pub mod stat_cache;
pub mod versions;
