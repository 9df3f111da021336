//! How much the disk cache may hold right now. A cache gives way to the
//! node's own files: besides its bound (`--cache-size`), its writes leave
//! [`KEEP_FREE_PERCENT`] of its filesystem free (mountpoint-s3's cache
//! keeps the same share by default), so a bound larger than the free space
//! never fills the disk a training job writes its checkpoints to. When
//! other files fill the disk, the cache evicts to give the space back.

use std::path::Path;

/// Share of the cache's filesystem its writes leave free.
pub const KEEP_FREE_PERCENT: u64 = 5;

/// Space on a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    /// Free to an unprivileged writer (the root-only reserve left out).
    pub avail: u64,
}

impl Space {
    /// The space of the filesystem holding `dir`.
    pub fn of(dir: &Path) -> std::io::Result<Space> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: statvfs only writes the struct it is given; `c` is a valid
        // NUL-terminated path.
        let s = unsafe {
            let mut s: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(c.as_ptr(), &mut s) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            s
        };
        let unit = s.f_frsize as u64;
        Ok(Space {
            total: s.f_blocks as u64 * unit,
            avail: s.f_bavail as u64 * unit,
        })
    }

    /// The bytes its writers should leave free.
    pub fn reserve(&self) -> u64 {
        self.total / 100 * KEEP_FREE_PERCENT
    }
}

/// The bytes a cache holding `held` may hold in all: its `limit`, or less
/// where the disk's free space above the reserve runs out first (zero when
/// the disk is past the reserve by more than the cache holds). Without a
/// known `space` (statvfs failed), the limit alone.
pub fn bound(limit: u64, held: u64, space: Option<Space>) -> u64 {
    match space {
        None => limit,
        Some(s) => limit.min((held + s.avail).saturating_sub(s.reserve())),
    }
}

/// True for a write that found no room: a full disk or a spent quota.
pub fn is_no_room(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn space(total: u64, avail: u64) -> Option<Space> {
        Some(Space { total, avail })
    }

    #[test]
    fn the_limit_binds_while_the_disk_has_room() {
        assert_eq!(
            bound(10 * MIB, 4 * MIB, space(1000 * MIB, 500 * MIB)),
            10 * MIB
        );
        assert_eq!(bound(10 * MIB, 4 * MIB, None), 10 * MIB);
    }

    #[test]
    fn the_disk_binds_when_its_free_space_runs_out_first() {
        // 100 MiB disk: 5 MiB reserve. Holding 20 with 10 free: 25 in all.
        assert_eq!(
            bound(1 << 40, 20 * MIB, space(100 * MIB, 10 * MIB)),
            25 * MIB
        );
        // Others filled the disk: the cache gives back the reserve.
        assert_eq!(bound(1 << 40, 20 * MIB, space(100 * MIB, 0)), 15 * MIB);
        // ... and all it holds when that is less than the reserve.
        assert_eq!(bound(1 << 40, 3 * MIB, space(100 * MIB, MIB)), 0);
    }

    #[test]
    fn a_real_directory_has_space_and_a_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let s = Space::of(dir.path()).unwrap();
        assert!(s.total > 0 && s.avail <= s.total, "{s:?}");
        assert_eq!(s.reserve(), s.total / 100 * KEEP_FREE_PERCENT);
        assert!(Space::of(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn no_room_is_enospc_or_edquot() {
        assert!(is_no_room(&std::io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_no_room(&std::io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_no_room(&std::io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_no_room(&std::io::Error::other("x")));
    }
}
