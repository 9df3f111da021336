//! Parsing the `--uid`, `--gid`, `--file-mode` and `--dir-mode` values of
//! the ownership policy ([`crate::mount::vfs::ownership`]).

// `Ownership` lives with the attributes it shapes; this name stays for
// its users.
pub use crate::mount::vfs::ownership::Ownership;

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
    use crate::mount::vfs::FileKind;

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
