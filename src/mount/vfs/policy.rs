//! What the kernel may cache, and what the mount refuses, decided here so
//! the FUSE adapter only translates.

use std::ffi::OsStr;

use crate::mount::vfs::error::{Result, VfsError};

/// How the kernel may cache an open file's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCache {
    /// Keep them across opens: a committed version's file never changes.
    Keep,
    /// Ordinary caching, dropped at each open: staging files change under
    /// the kernel when `commit` or `reset` runs in another process.
    Default,
    /// Bypass the page cache, so each handle reads the snapshot it opened
    /// (sidecars).
    Direct,
}

/// How the kernel may cache a directory's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirCache {
    /// Across opens: a version's directories never change.
    Keep,
    None,
}

/// Names are UTF-8 in a manifest and in staging: another name is not there
/// ([`NameUse::Existing`]: ENOENT) and cannot be made ([`NameUse::New`]:
/// EINVAL).
pub fn name(os: &OsStr, bad: NameUse) -> Result<&str> {
    os.to_str().ok_or_else(|| match bad {
        NameUse::Existing => VfsError::NotFound,
        NameUse::New => VfsError::Invalid("names must be UTF-8".into()),
    })
}

/// What a name given by the kernel is for.
#[derive(Debug, Clone, Copy)]
pub enum NameUse {
    /// Looked up, removed or renamed: a name that is not UTF-8 is not there.
    Existing,
    /// Made: a name that is not UTF-8 cannot be.
    New,
}

/// Changes the mount has no notion of (extended attributes, preallocation):
/// unsupported in staging, read-only elsewhere.
pub fn unsupported_change(staging: bool, what: &'static str) -> VfsError {
    if staging {
        VfsError::NotSupported(what)
    } else {
        VfsError::ReadOnly
    }
}
