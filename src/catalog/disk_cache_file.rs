//! The chunk cache's on-disk record format and the positional file I/O it
//! needs (reads into uninitialised buffers, vectored writes at an offset,
//! hole punching, advisory locks).
//!
//! A cached chunk is one record, appended to a segment file:
//!
//! ```text
//! inline record:  data (len bytes) | crc32c of each 4 KiB block, u32 LE | footer
//! local record:                      crc32c of each 4 KiB block, u32 LE | footer
//! footer (72 bytes): magic "AFSREC03" | len u32 LE | block log2 u8 | flags u8 | 2 zero bytes
//!                    | pack offset u32 LE | 4 zero bytes | pack id (16) | BLAKE3 name (32)
//! ```
//!
//! A *local* record (flag bit 0) holds no data: its chunk is read in place
//! from a local (`file://`) store's pack at the offset in the footer, and
//! checked against the record's block checksums like any cached chunk.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use crate::format::{Hash, PackId};

/// Checksum granularity: the smallest unit a read checks.
pub const BLOCK_LOG2: u32 = 12;
pub const BLOCK: usize = 1 << BLOCK_LOG2;
pub const FOOTER: usize = 72;
const MAGIC: &[u8; 8] = b"AFSREC03";
pub const FLAG_LOCAL: u8 = 1;

pub fn blocks(len: usize) -> usize {
    len.div_ceil(BLOCK)
}

/// Bytes after the data: the checksum table and the footer.
pub fn trailer_len(len: usize) -> usize {
    4 * blocks(len) + FOOTER
}

/// Size of the record of a chunk of `len` bytes.
pub fn record_size(len: usize, local: bool) -> usize {
    if local {
        trailer_len(len)
    } else {
        len + trailer_len(len)
    }
}

/// What a footer says about its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub hash: Hash,
    pub len: u32,
    pub local: bool,
    pub pack: PackId,
    pub offset: u32,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER] {
        let mut f = [0u8; FOOTER];
        f[..8].copy_from_slice(MAGIC);
        f[8..12].copy_from_slice(&self.len.to_le_bytes());
        f[12] = BLOCK_LOG2 as u8;
        f[13] = if self.local { FLAG_LOCAL } else { 0 };
        f[16..20].copy_from_slice(&self.offset.to_le_bytes());
        f[24..40].copy_from_slice(&self.pack);
        f[40..72].copy_from_slice(&self.hash);
        f
    }
}

/// The checksum table and footer of a chunk's bytes, appended to `out`.
/// The checksums are computed here, from bytes the caller has verified.
pub fn write_trailer(out: &mut Vec<u8>, data: &[u8], footer: &Footer) {
    out.reserve(trailer_len(data.len()));
    push_block_sums(out, data);
    out.extend_from_slice(&footer.encode());
}

/// [`write_trailer`] from checksums computed earlier ([`block_sums`]).
pub fn write_trailer_sums(out: &mut Vec<u8>, sums: &[u8], footer: &Footer) {
    out.extend_from_slice(sums);
    out.extend_from_slice(&footer.encode());
}

/// The checksum table of a chunk's bytes: a CRC32C per block.
pub fn block_sums(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(trailer_len(data.len()) - FOOTER);
    push_block_sums(&mut out, data);
    out
}

fn push_block_sums(out: &mut Vec<u8>, data: &[u8]) {
    for b in data.chunks(BLOCK) {
        out.extend_from_slice(&crc32c::crc32c(b).to_le_bytes());
    }
}

/// Why a record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Not there (evicted, deleted, a local pack gone): a plain miss.
    Missing,
    /// There but damaged: never served, dropped.
    Corrupt(&'static str),
}

/// Checks that a footer names chunk `h` of `len` bytes, stored as `local` says.
pub fn check_footer(f: &[u8], h: &Hash, len: u32, local: bool) -> Result<(), Bad> {
    if f.len() != FOOTER || &f[..8] != MAGIC || f[12] != BLOCK_LOG2 as u8 {
        return Err(Bad::Corrupt("bad footer"));
    }
    if f[8..12] != len.to_le_bytes() {
        return Err(Bad::Corrupt("length in footer differs"));
    }
    if (f[13] & FLAG_LOCAL != 0) != local {
        return Err(Bad::Corrupt("record kind in footer differs"));
    }
    if &f[40..72] != h {
        return Err(Bad::Corrupt("record holds another chunk"));
    }
    Ok(())
}

/// Checks `data` (whole blocks from block `first` on; the last may be the
/// chunk's short tail) against checksums `sums` (4 bytes per block, from
/// block `first` on).
pub fn check_blocks(data: &[u8], sums: &[u8]) -> Result<(), Bad> {
    if sums.len() < 4 * blocks(data.len()) {
        return Err(Bad::Corrupt("checksum table too short"));
    }
    for (i, b) in data.chunks(BLOCK).enumerate() {
        if crc32c::crc32c(b).to_le_bytes() != sums[4 * i..4 * i + 4] {
            return Err(Bad::Corrupt("block checksum mismatch"));
        }
    }
    Ok(())
}

/// Reads exactly `n` bytes at `off` into a new buffer (not zeroed first).
/// A short file is `UnexpectedEof`.
pub fn pread_vec(f: &File, n: usize, off: u64) -> io::Result<Vec<u8>> {
    let mut v: Vec<u8> = Vec::with_capacity(n);
    // SAFETY: the vector's allocation holds `n` bytes; `set_len` covers
    // only the bytes the kernel wrote.
    unsafe {
        let got = pread_at_least(f, v.as_mut_ptr(), n, n, off)?;
        v.set_len(got);
    }
    Ok(v)
}

/// Reads into `buf` (room for `cap` bytes) from `off` until at least `min`
/// bytes have arrived, asking for the whole room each time; returns how
/// many did. A file that ends first is `UnexpectedEof`.
///
/// # Safety
/// `buf` must be valid for writes of `cap` bytes.
pub unsafe fn pread_at_least(
    f: &File,
    buf: *mut u8,
    cap: usize,
    min: usize,
    off: u64,
) -> io::Result<usize> {
    let mut got = 0;
    while got < min {
        // SAFETY: at most `cap - got` bytes from `buf + got`, inside the
        // room the caller vouches for.
        let r = unsafe {
            libc::pread(
                f.as_raw_fd(),
                buf.add(got).cast(),
                cap - got,
                (off + got as u64) as libc::off_t,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += r as usize;
    }
    Ok(got)
}

/// Writes all of `bufs`, in order, at `off`.
pub fn pwrite_all(f: &File, bufs: &[&[u8]], mut off: u64) -> io::Result<()> {
    // Few, large writes: one `pwritev` per batch unless the kernel writes less.
    let mut rest: Vec<io::IoSlice> = bufs.iter().map(|b| io::IoSlice::new(b)).collect();
    let mut slices = &mut rest[..];
    while !slices.is_empty() {
        let n = slices.len().min(512);
        // SAFETY: IoSlice is ABI-compatible with iovec; the slices outlive the call.
        let r = unsafe {
            libc::pwritev(
                f.as_raw_fd(),
                slices.as_ptr().cast(),
                n as libc::c_int,
                off as libc::off_t,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        off += r as u64;
        io::IoSlice::advance_slices(&mut slices, r as usize);
    }
    Ok(())
}

/// Frees the disk blocks of `[off, off + len)` (they read as zeros after).
pub fn punch_hole(f: &File, off: u64, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on a descriptor we own.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off as libc::off_t,
            len as libc::off_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes an exclusive `flock` on `f` without waiting; `false` while someone
/// else holds it.
pub fn try_lock(f: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trip_and_checks() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let h = *blake3::hash(&data).as_bytes();
        let f = Footer {
            hash: h,
            len: data.len() as u32,
            local: false,
            pack: [3; 16],
            offset: 77,
        };
        let mut t = vec![];
        write_trailer(&mut t, &data, &f);
        assert_eq!(t.len(), trailer_len(data.len()));
        let (sums, foot) = t.split_at(t.len() - FOOTER);
        check_footer(foot, &h, data.len() as u32, false).unwrap();
        assert_eq!(
            check_footer(foot, &h, data.len() as u32, true),
            Err(Bad::Corrupt("record kind in footer differs"))
        );
        assert!(check_footer(foot, &[0; 32], data.len() as u32, false).is_err());
        assert!(check_footer(foot, &h, 9, false).is_err());
        check_blocks(&data, sums).unwrap();
        check_blocks(&data[BLOCK..2 * BLOCK], &sums[4..]).unwrap();
        let mut bad = data.clone();
        bad[5000] ^= 1;
        assert!(check_blocks(&bad, sums).is_err());
        assert_eq!(record_size(10_000, true), 3 * 4 + FOOTER);
        assert_eq!(record_size(10_000, false), 10_000 + 3 * 4 + FOOTER);
    }

    #[test]
    fn positional_io() {
        let d = tempfile::TempDir::new().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(d.path().join("s"))
            .unwrap();
        let a = vec![1u8; 5000];
        let b = vec![2u8; 9000];
        pwrite_all(&f, &[&a, &b], 100).unwrap();
        let got = pread_vec(&f, 14_000, 100).unwrap();
        assert_eq!(&got[..5000], &a[..]);
        assert_eq!(&got[5000..], &b[..]);
        assert_eq!(
            pread_vec(&f, 10, 14_095).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        punch_hole(&f, 4096, 8192).unwrap();
        let got = pread_vec(&f, 14_000, 100).unwrap();
        assert!(got[3996..12188].iter().all(|b| *b == 0));
        assert_eq!(got[3995], 1);
        assert_eq!(got[12188], 2);
        assert!(try_lock(&f).unwrap());
        let other = File::open(d.path().join("s")).unwrap();
        assert!(!try_lock(&other).unwrap());
    }
}
