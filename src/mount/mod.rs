pub mod fuse;
#[cfg(test)]
mod fuse_tests;
pub mod lifecycle;
pub mod ownership;
#[cfg(test)]
mod read_path_tests;
pub mod readahead;
pub mod reader;
pub mod registry;
pub mod vfs;
pub mod vfs_staging;
