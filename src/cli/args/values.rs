//! Parsers for flag values (sizes, modes, users, durations); their errors
//! name what was expected.

use std::time::Duration;

/// Parses sizes like `20G`, `512M`, `1.5T`, `4096` (bytes; powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 20G, 512M or 1048576"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("invalid size unit in {s:?}: use K, M, G or T")),
    };
    Ok((n * mult as f64) as u64)
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

/// `120s`, `10m`, or a plain number of seconds.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() => Duration::from_secs_f64(secs),
        Ok(_) => return Err(format!("--timeout {s}: must be more than zero")),
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("--timeout {s}: {e} (e.g. 120s, 10m)"))?,
    };
    if d.is_zero() {
        return Err(format!("--timeout {s}: must be more than zero"));
    }
    Ok(d)
}

/// A duration flag: `30s`, `15m`, `24h`, `7d`, `1h 30m`.
pub fn parse_duration(flag: &str, s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        anyhow::anyhow!("invalid {flag} {s:?}: {e}; give a duration like 30s, 15m, 24h or 7d")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use assetfs::mount::ownership::Ownership;
    use assetfs::mount::FileKind;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }

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
