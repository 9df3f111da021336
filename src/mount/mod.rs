mod fuse;
mod fuse_session;
#[cfg(test)]
mod fuse_tests;
mod in_order;
mod lifecycle;
mod mount_config;
#[cfg(test)]
mod read_path_tests;
mod readahead;
mod reader;
mod registry;
mod temporary;
mod vfs;

pub use lifecycle::{check_mountpoint, check_unprivileged, prepare, serve, unmount, ServeInfo};
pub use mount_config::MountConfig;
pub use registry::{
    mount_at, node_mounts, process_start, record_for, report, staging_hints, unescape_mountinfo,
};
pub use temporary::temporary_mount;
pub use vfs::{ownership, FileKind};
