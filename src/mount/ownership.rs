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

/// Parses an octal mode such as `0644`, `644` or `0o755` (at most `07777`).
pub fn parse_mode(s: &str) -> Result<u16, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u16::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(format!(
            "invalid mode {s:?}: expected octal permission bits such as 0644 or 0755"
        )),
    }
}

/// Resolves a user given by name or number.
pub fn parse_uid(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    let c = std::ffi::CString::new(s).map_err(|_| format!("invalid user {s:?}"))?;
    // SAFETY: a valid C string; getpwnam returns NULL or a pointer into static storage.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!(
            "no such user {s:?} (give a name from /etc/passwd or a number)"
        ));
    }
    // SAFETY: non-null, points at a valid passwd entry.
    Ok(unsafe { (*pw).pw_uid })
}

/// Resolves a group given by name or number.
pub fn parse_gid(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    let c = std::ffi::CString::new(s).map_err(|_| format!("invalid group {s:?}"))?;
    // SAFETY: a valid C string; getgrnam returns NULL or a pointer into static storage.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(format!(
            "no such group {s:?} (give a name from /etc/group or a number)"
        ));
    }
    // SAFETY: non-null, points at a valid group entry.
    Ok(unsafe { (*gr).gr_gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_overrides() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert_eq!(parse_mode("0o4755"), Ok(0o4755));
        for bad in ["", "9", "0o", "17777", "rw-r--r--", "-1"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
        let o = Ownership {
            uid: 7,
            gid: 8,
            file_mode: Some(0o444),
            dir_mode: None,
        };
        assert_eq!(o.perm(FileKind::File, 0o600), 0o444);
        assert_eq!(o.perm(FileKind::Dir, 0o750), 0o750);
        assert_eq!(o.perm(FileKind::Symlink, 0o644), 0o777);
        assert_eq!(parse_uid("0"), Ok(0));
        assert_eq!(parse_uid("root"), Ok(0));
        assert_eq!(parse_gid("root"), Ok(0));
        assert!(parse_uid("no-such-user-xyz").is_err());
    }
}
