//! Inode numbering, pure arithmetic: 1 the root, 2 `models`, 3 `features`;
//! sidecars and alias links get numbers from [`MISC_BASE`] up (a table in
//! `misc.rs`); a version's tree is `slot << 32 | index`, with index 0 the
//! version directory and `i + 1` manifest entry `i`, so a 1,000,000-file
//! version needs no per-file inode table; staging inodes have bit 63 set,
//! bits 40..63 the staging slot and bits 0..40 the node id.

use crate::format::Kind;

pub const ROOT: u64 = 1;
pub const MISC_BASE: u64 = 16;
const STAGING_BIT: u64 = 1 << 63;
const ID_BITS: u32 = 40;
const ID_MASK: u64 = (1 << ID_BITS) - 1;

/// What an inode number says, before any table is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ino {
    Root,
    KindDir(Kind),
    /// Index into the sidecar and alias-link table.
    Misc(usize),
    VersionRoot {
        slot: u32,
    },
    Entry {
        slot: u32,
        idx: u32,
    },
    Staging {
        slot: u32,
        id: u64,
    },
}

/// `None` for numbers never handed out.
pub fn decode(ino: u64) -> Option<Ino> {
    if ino & STAGING_BIT != 0 {
        return Some(Ino::Staging {
            slot: ((ino & !STAGING_BIT) >> ID_BITS) as u32,
            id: ino & ID_MASK,
        });
    }
    match ino {
        ROOT => return Some(Ino::Root),
        2 => return Some(Ino::KindDir(Kind::Models)),
        3 => return Some(Ino::KindDir(Kind::Features)),
        _ => {}
    }
    let slot = (ino >> 32) as u32;
    if slot == 0 {
        let i = ino.checked_sub(MISC_BASE)?;
        return Some(Ino::Misc(i as usize));
    }
    Some(match ino & 0xffff_ffff {
        0 => Ino::VersionRoot { slot },
        i => Ino::Entry {
            slot,
            idx: (i - 1) as u32,
        },
    })
}

pub fn kind_ino(k: Kind) -> u64 {
    match k {
        Kind::Models => 2,
        Kind::Features => 3,
    }
}

pub fn misc_ino(i: usize) -> u64 {
    MISC_BASE + i as u64
}

/// A version's directory.
pub fn version_ino(slot: u32) -> u64 {
    (slot as u64) << 32
}

/// Entry `idx` of a version's manifest.
pub fn entry_ino(slot: u32, idx: u32) -> u64 {
    ((slot as u64) << 32) | (idx as u64 + 1)
}

pub fn staging_ino(slot: u32, id: u64) -> u64 {
    STAGING_BIT | ((slot as u64) << ID_BITS) | id
}

pub fn is_staging(ino: u64) -> bool {
    ino & STAGING_BIT != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_decode_to_what_made_them() {
        assert_eq!(decode(ROOT), Some(Ino::Root));
        assert_eq!(
            decode(kind_ino(Kind::Features)),
            Some(Ino::KindDir(Kind::Features))
        );
        for bad in [0, 4, MISC_BASE - 1] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(decode(misc_ino(5)), Some(Ino::Misc(5)));
        assert_eq!(decode(version_ino(7)), Some(Ino::VersionRoot { slot: 7 }));
        assert_eq!(
            decode(entry_ino(7, 0)),
            Some(Ino::Entry { slot: 7, idx: 0 })
        );
        let s = staging_ino(3, ID_MASK);
        assert!(is_staging(s) && !is_staging(entry_ino(7, 1)));
        assert_eq!(
            decode(s),
            Some(Ino::Staging {
                slot: 3,
                id: ID_MASK
            })
        );
    }
}
