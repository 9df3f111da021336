pub mod fuse;
pub mod fuse_session;
#[cfg(test)]
mod fuse_tests;
pub mod lifecycle;
pub mod mount_config;
#[cfg(test)]
mod read_path_tests;
pub mod readahead;
pub mod reader;
pub mod registry;
pub mod temporary;
pub mod vfs;
