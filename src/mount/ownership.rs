//! Who owns what a mount shows, and with which permission bits: the
//! `--uid`, `--gid`, `--file-mode` and `--dir-mode` policy, applied by
//! [`crate::mount::vfs`] to every attribute it returns (the FUSE adapter only
//! copies them).

use crate::mount::vfs::FileKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits of every regular file; `None`: the mode stored with it.
    pub file_mode: Option<u16>,
    /// Permission bits of every directory; `None`: the stored mode (0755 for
    /// the mount's own directories).
    pub dir_mode: Option<u16>,
}

impl Ownership {
    /// Everything owned by the user and group running this process, with
    /// the stored modes.
    pub fn current() -> Ownership {
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ownership {
            uid,
            gid,
            file_mode: None,
            dir_mode: None,
        }
    }

    /// The permission bits shown for an entry of `kind` stored with `stored`.
    pub fn perm(&self, kind: FileKind, stored: u16) -> u16 {
        match kind {
            FileKind::File => self.file_mode.unwrap_or(stored),
            FileKind::Dir => self.dir_mode.unwrap_or(stored),
            FileKind::Symlink => 0o777,
        }
    }
}
