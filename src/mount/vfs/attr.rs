//! What the mount shows of an inode: its attributes, kind and directory
//! entries, complete (owner and link count included), so the FUSE adapter
//! only copies them.

use std::time::{Duration, SystemTime};

use crate::format::{Entry, EntryKind};

/// Immutable things may be cached by the kernel (practically) forever.
pub const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);
pub const XATTR_BLAKE3: &str = "user.assetfs.blake3";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    Symlink,
}

impl From<EntryKind> for FileKind {
    fn from(k: EntryKind) -> FileKind {
        match k {
            EntryKind::Dir => FileKind::Dir,
            EntryKind::File => FileKind::File,
            EntryKind::Symlink => FileKind::Symlink,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    pub perm: u16,
    /// 2 for directories, 1 otherwise (no hard links).
    pub nlink: u32,
    /// Set with the permission bits by the mount's ownership policy
    /// (`--uid/--gid`).
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    /// How long the kernel may cache this entry and attribute.
    pub ttl: Duration,
}

impl Attr {
    /// Attributes as stored; the owner is filled in when they are presented
    /// (see `Ownership::present`).
    pub fn new(
        ino: u64,
        kind: FileKind,
        size: u64,
        perm: u16,
        mtime: SystemTime,
        ttl: Duration,
    ) -> Attr {
        Attr {
            ino,
            kind,
            size,
            perm,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            mtime,
            ttl,
        }
    }

    /// A directory the mount makes up (root, kind and version directories).
    pub fn dir(ino: u64, ttl: Duration, mtime: SystemTime) -> Attr {
        Attr::new(ino, FileKind::Dir, 0, 0o755, mtime, ttl)
    }

    /// A version entry's attributes: immutable, so cached by the kernel forever.
    pub fn of_entry(ino: u64, e: &Entry<'_>, mtime: SystemTime) -> Attr {
        Attr::new(
            ino,
            e.kind.into(),
            e.size,
            (e.mode & 0o7777) as u16,
            mtime,
            FOREVER,
        )
    }
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: FileKind,
    pub name: String,
}
