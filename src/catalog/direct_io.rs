//! I/O that bypasses the page cache (`O_DIRECT`) from and into reused,
//! aligned buffers, for bytes the daemon reads once and hands on: whole
//! records of the disk cache read ahead of a sequential reader, pack ranges
//! of a local store, and large batches of records the cache writes. The
//! same pooled buffers receive store responses ([`FillBuf`]).
//!
//! Why: such bytes end up in the page cache of the mounted file anyway
//! (the kernel keeps what a READ returned), so reading them through the
//! page cache of the cache's own files kept every byte twice, cost a page
//! allocation and a copy per page, and let the kernel split the reads into
//! its own readahead pattern. Direct reads go from the disk into a buffer
//! of ours at the queue depth we choose (fio here: 1 MiB direct reads, 8 at
//! once, 1,848 MiB/s against 839-1,321 MiB/s buffered with 4 jobs).
//!
//! Writes: a batch of records written through the page cache cost the
//! daemon a kernel copy into fresh page-cache pages plus ext4's delayed
//! allocation per page (a quarter of its CPU time in a cold read from S3,
//! `perf`), and the flusher threads' CPU later. Bytes the cache admits are
//! not read back soon (the mounted file's page cache holds them), so a
//! batch is written directly: straight from the memory its data lies in
//! where the filesystem says what alignment that needs ([`DirectGather`]),
//! else copied once into an aligned buffer ([`DirectAppender`]).
//!
//! A filesystem that refuses `O_DIRECT` (the open fails with `EINVAL`) is
//! read and written through the page cache instead, with the same aligned I/O.

use std::alloc::{self, Layout};
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::catalog::disk_cache_file::pread_at_least;

/// Offsets, lengths and buffer addresses of direct reads are multiples of
/// this (the largest logical block size of common disks).
pub const ALIGN: usize = 4096;
/// Buffers are allocated in multiples of this, so buffers of similar reads
/// are interchangeable.
const GRAIN: usize = 256 << 10;
/// Buffers of at least this size are huge-page aligned and backed (where
/// transparent huge pages may be asked for): a direct read is split into
/// disk requests of at most `max_segments` physically contiguous pieces,
/// 254 pages (1016 KiB) on this VM's disk with 4 KiB pages.
const HUGE: usize = 2 << 20;

/// A file opened for direct reads when its filesystem allows them.
pub struct DirectFile {
    file: File,
    direct: bool,
}

/// Set once a filesystem refused `O_DIRECT`, so the fallback is logged once.
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// `path` opened with `O_DIRECT` and `opts`, or `None` (logged once) where
/// the filesystem refuses `O_DIRECT`; `what` names the I/O for the log.
fn open_direct(
    path: &Path,
    opts: &mut std::fs::OpenOptions,
    what: &str,
) -> io::Result<Option<File>> {
    match opts.custom_flags(libc::O_DIRECT).open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    "{}: the filesystem refuses O_DIRECT; {what} through the page cache",
                    path.display()
                );
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `path` opened for direct writes, or `None` (logged once) where the
/// filesystem refuses `O_DIRECT`.
pub fn open_direct_writer(path: &Path) -> io::Result<Option<File>> {
    open_direct(path, std::fs::OpenOptions::new().write(true), "writing")
}

/// The alignment direct I/O on `f` asks of buffer addresses, lengths and
/// file offsets (`statx` with `STATX_DIOALIGN`, Linux 6.1 and later), as a
/// power of two. `None` where the kernel or filesystem does not say, or
/// asks for more than [`ALIGN`]: [`DirectGather`] is then not used.
pub fn dio_grain(f: &File) -> Option<usize> {
    // SAFETY: an all-zero `statx` is a valid value to be filled in.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty path with AT_EMPTY_PATH names `f` itself; `st` is
    // writable and lives across the call.
    let r = unsafe {
        libc::statx(
            f.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut st,
        )
    };
    if r != 0 || st.stx_mask & libc::STATX_DIOALIGN == 0 {
        return None;
    }
    let (mem, off) = (
        st.stx_dio_mem_align as usize,
        st.stx_dio_offset_align as usize,
    );
    if mem == 0 || off == 0 {
        return None;
    }
    // Lengths must be multiples of the offset alignment too.
    Some(mem.max(off).next_power_of_two()).filter(|&g| g <= ALIGN)
}

impl DirectFile {
    /// Opens `path` read-only with `O_DIRECT`, or without it (logged once)
    /// where the filesystem does not support it.
    pub fn open(path: &Path) -> io::Result<DirectFile> {
        match open_direct(path, std::fs::OpenOptions::new().read(true), "reading")? {
            Some(file) => Ok(DirectFile { file, direct: true }),
            None => Ok(Self::buffered(File::open(path)?)),
        }
    }

    /// A file read through the page cache (same aligned reads).
    pub fn buffered(file: File) -> DirectFile {
        DirectFile {
            file,
            direct: false,
        }
    }

    /// True when reads bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Exactly `len` bytes at `off`, read with one aligned read (more only
    /// if the kernel returns less) into a pooled buffer. Short file:
    /// `UnexpectedEof`.
    pub fn read_at(&self, pool: &Arc<BufferPool>, off: u64, len: usize) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        Ok(self.read_buf_at(pool, off, len)?.freeze())
    }

    /// [`DirectFile::read_at`], the bytes still writable: the caller may
    /// rearrange them before handing them out.
    pub fn read_buf_at(&self, pool: &Arc<BufferPool>, off: u64, len: usize) -> io::Result<ReadBuf> {
        let start = off / ALIGN as u64 * ALIGN as u64;
        let skip = (off - start) as usize;
        let want = (skip + len).div_ceil(ALIGN).max(1) * ALIGN;
        let mut buf = pool.take(want);
        // SAFETY: `buf` has room for `want` bytes. Each read asks for the
        // rest of the room from an offset that stays a multiple of ALIGN
        // until the file ends, as O_DIRECT requires.
        unsafe { pread_at_least(&self.file, buf.ptr, want, skip + len, start)? };
        buf.len = skip + len;
        Ok(ReadBuf { buf, skip })
    }
}

/// The bytes of a direct read, owned and writable until [`ReadBuf::freeze`]
/// hands them out.
pub struct ReadBuf {
    buf: Aligned,
    /// Bytes before the ones asked for (the read starts aligned).
    skip: usize,
}

impl ReadBuf {
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the first `len` bytes were written by the read, and the
        // buffer is owned by `self` alone.
        unsafe { std::slice::from_raw_parts_mut(self.buf.ptr, self.buf.len) }
            .get_mut(self.skip..)
            .expect("skip within the read")
    }

    /// The bytes, read-only from now on.
    pub fn freeze(self) -> Bytes {
        let skip = self.skip;
        Bytes::from_owner(self.buf).slice(skip..)
    }
}

/// Free aligned buffers, kept for reuse: a fresh buffer costs a page fault
/// per page on first touch (expensive on a VM that reclaims freed memory).
pub struct BufferPool {
    free: Mutex<Vec<(*mut u8, usize)>>,
    /// Bytes of free buffers kept at most.
    keep: usize,
    /// Buffers mapped afresh so far (each costs page faults on first use).
    mapped: AtomicU64,
}

// SAFETY: the pool only stores pointers of free buffers nobody else holds.
unsafe impl Send for BufferPool {}
// SAFETY: as above; all access goes through the mutex.
unsafe impl Sync for BufferPool {}

/// A new anonymous mapping of `cap` bytes (a multiple of the grain),
/// huge-page aligned and advised when it is large. Mapped rather than taken
/// from the allocator: freed multi-MiB blocks stayed resident in malloc's
/// per-thread arenas (a daemon peak of 500+ MiB, measured).
fn map_buffer(cap: usize) -> *mut u8 {
    let extra = if cap >= HUGE { HUGE } else { 0 };
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            cap + extra,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        alloc::handle_alloc_error(Layout::from_size_align(cap, ALIGN).expect("layout"));
    }
    let p = p as usize;
    if extra == 0 {
        return p as *mut u8;
    }
    let start = p.div_ceil(HUGE) * HUGE;
    // SAFETY: unmapping the unaligned head and the tail of our own mapping,
    // outside `start..start + cap`.
    unsafe {
        if start > p {
            libc::munmap(p as *mut libc::c_void, start - p);
        }
        let tail = p + cap + extra - (start + cap);
        if tail > 0 {
            libc::munmap((start + cap) as *mut libc::c_void, tail);
        }
        // Advice only: without it the buffer has small pages.
        libc::madvise(start as *mut libc::c_void, cap, libc::MADV_HUGEPAGE);
    }
    start as *mut u8
}

/// Unmaps a buffer of [`map_buffer`].
///
/// # Safety
/// `ptr` and `cap` come from one `map_buffer` call, and nothing uses the
/// buffer any more.
unsafe fn unmap_buffer(ptr: *mut u8, cap: usize) {
    libc::munmap(ptr.cast(), cap);
}

impl BufferPool {
    /// A pool keeping up to `keep` bytes of free buffers.
    pub fn new(keep: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            free: Mutex::default(),
            keep,
            mapped: AtomicU64::new(0),
        })
    }

    /// Buffers mapped afresh so far: how often the pool had none to reuse.
    pub fn mapped(&self) -> u64 {
        self.mapped.load(Ordering::Relaxed)
    }

    /// Bytes of free buffers held now.
    pub fn free_bytes(&self) -> usize {
        self.free
            .lock()
            .expect("buffer pool")
            .iter()
            .map(|b| b.1)
            .sum()
    }

    /// A writer of consecutive bytes at `off` (a multiple of `ALIGN`)
    /// in direct writes of `buf_len` bytes (a multiple of `ALIGN`), through
    /// one reused buffer: buffers of one size are reused from the pool, where
    /// buffers sized to each batch were mapped afresh for most batches.
    pub fn appender(self: &Arc<Self>, buf_len: usize, off: u64) -> DirectAppender {
        assert_eq!(off % ALIGN as u64, 0, "unaligned direct write");
        assert_eq!(buf_len % ALIGN, 0, "unaligned buffer");
        DirectAppender {
            buf: self.take(buf_len),
            buf_len,
            off,
        }
    }

    /// A buffer of at least `n` (> 0) bytes: the smallest free one that
    /// fits, or a new one.
    fn take(self: &Arc<Self>, n: usize) -> Aligned {
        let found = {
            let mut free = self.free.lock().expect("buffer pool");
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.1 >= n)
                .min_by_key(|(_, b)| b.1)
                .map(|(i, _)| i);
            best.map(|i| free.swap_remove(i))
        };
        let (ptr, cap) = found.unwrap_or_else(|| {
            self.mapped.fetch_add(1, Ordering::Relaxed);
            let grain = if n >= HUGE { HUGE } else { GRAIN };
            let cap = n.div_ceil(grain) * grain;
            (map_buffer(cap), cap)
        });
        Aligned {
            ptr,
            cap,
            len: 0,
            pool: self.clone(),
        }
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        for (ptr, cap) in self.free.get_mut().expect("buffer pool").drain(..) {
            // SAFETY: mapped in `take`; free buffers are held by no one.
            unsafe { unmap_buffer(ptr, cap) };
        }
    }
}

/// An aligned heap buffer that goes back to its pool when dropped.
struct Aligned {
    ptr: *mut u8,
    cap: usize,
    /// Bytes read into it (the readable part).
    len: usize,
    pool: Arc<BufferPool>,
}

// SAFETY: the buffer is uniquely owned; once frozen (`ReadBuf::freeze`) it
// is only read.
unsafe impl Send for Aligned {}
// SAFETY: shared access is read-only (`as_ref`), but for a [`FillBuf`]'s
// writes to bytes that no piece covers yet.
unsafe impl Sync for Aligned {}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by the read.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A pooled buffer filled front to back whose filled bytes are handed out
/// as [`Bytes`] while the rest is still arriving: a store response received
/// in place, each chunk served as soon as it is complete. The buffer goes
/// back to the pool when the last piece handed out is dropped, so its pages
/// stay mapped: receive buffers from the allocator were fresh memory for a
/// third of the requests of a cold read, and faulting them in cost about a
/// tenth of the daemon's CPU (`perf`, docs/benchmarks.md).
pub struct FillBuf {
    buf: Arc<Aligned>,
    /// Bytes written so far.
    filled: usize,
    /// Bytes handed out so far (`<= filled`).
    handed: usize,
}

impl BufferPool {
    /// A [`FillBuf`] with room for at least `n` (> 0) bytes.
    pub fn fill_buf(self: &Arc<Self>, n: usize) -> FillBuf {
        FillBuf {
            buf: Arc::new(self.take(n)),
            filled: 0,
            handed: 0,
        }
    }
}

impl FillBuf {
    /// Appends `s`. Panics when it does not fit: callers size the buffer
    /// for the whole response.
    pub fn extend(&mut self, s: &[u8]) {
        assert!(
            s.len() <= self.buf.cap - self.filled,
            "fill buffer overflow"
        );
        // SAFETY: `filled + s.len() <= cap`. Pieces handed out end at
        // `handed <= filled`, so nothing else reads or writes these bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), self.buf.ptr.add(self.filled), s.len())
        };
        self.filled += s.len();
    }

    /// The next `n` filled bytes not handed out yet; they are never written
    /// again.
    pub fn split_to(&mut self, n: usize) -> Bytes {
        assert!(self.handed + n <= self.filled, "handing out unfilled bytes");
        let piece = Piece {
            // SAFETY: `handed + n <= filled <= cap`: inside the buffer.
            ptr: unsafe { self.buf.ptr.add(self.handed) },
            len: n,
            _buf: self.buf.clone(),
        };
        self.handed += n;
        Bytes::from_owner(piece)
    }
}

/// Filled bytes of a [`FillBuf`], keeping its buffer out of the pool.
struct Piece {
    ptr: *const u8,
    len: usize,
    _buf: Arc<Aligned>,
}

// SAFETY: the bytes a piece covers are written before it exists and never
// after; access is read-only.
unsafe impl Send for Piece {}
// SAFETY: as above.
unsafe impl Sync for Piece {}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` lies in the buffer `_buf` keeps alive,
        // and was filled before the piece was made.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Bytes appended to a file in direct writes of whole blocks.
pub struct DirectAppender {
    buf: Aligned,
    buf_len: usize,
    /// Where the buffer's bytes go.
    off: u64,
}

impl DirectAppender {
    /// Appends `s`, writing each buffer that fills up.
    pub fn append(&mut self, f: &File, mut s: &[u8]) -> io::Result<()> {
        while !s.is_empty() {
            let b = &mut self.buf;
            let n = s.len().min(self.buf_len - b.len);
            // SAFETY: `len + n <= buf_len <= cap`; `s` cannot overlap a
            // buffer only this value holds.
            unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), b.ptr.add(b.len), n) };
            b.len += n;
            s = &s[n..];
            if b.len == self.buf_len {
                self.flush(f)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, f: &File) -> io::Result<()> {
        crate::catalog::disk_cache_file::pwrite_all(f, &[self.buf.as_ref()], self.off)?;
        self.off += self.buf.len as u64;
        self.buf.len = 0;
        Ok(())
    }

    /// Writes what is left, zero-padded to a block; returns the offset
    /// after the padding.
    pub fn finish(mut self, f: &File) -> io::Result<u64> {
        let pad = self.buf.len.div_ceil(ALIGN) * ALIGN - self.buf.len;
        // Zeros, not stale bytes of an earlier use, in the padding.
        let b = &mut self.buf;
        // SAFETY: `len + pad` stays within the (block-multiple) buffer.
        unsafe { std::ptr::write_bytes(b.ptr.add(b.len), 0, pad) };
        b.len += pad;
        if b.len > 0 {
            self.flush(f)?;
        }
        Ok(self.off)
    }
}

/// Records appended to a file in direct writes taken from the memory their
/// data already lies in (the pooled buffer a store response was received
/// into): only each record's unaligned ends, its trailer and padding are
/// copied, into a small aligned buffer. Copying every record into an
/// aligned buffer was 9-13% of the daemon's CPU in a cold read
/// (docs/benchmarks.md).
///
/// How: a record's data is placed at a file offset congruent to its address
/// modulo the grain ([`dio_grain`]), so the aligned middle of the data is
/// written from where it lies; up to `grain - 1` zero bytes before each
/// record pay for that. Every piece of the write (middles, and the copied
/// bytes between them) then starts at an aligned address and file offset and
/// is a whole number of grains long, as `O_DIRECT` requires.
pub struct DirectGather<'a> {
    grain: usize,
    /// Copied bytes (`len` of them used).
    bounce: Aligned,
    /// What to write, in file order.
    segs: Vec<Gathered<'a>>,
    /// Where the copied bytes not yet in `segs` begin in `bounce`.
    open: usize,
    /// File offset of the next byte.
    pos: u64,
    copied: usize,
}

enum Gathered<'a> {
    Copied(Range<usize>),
    InPlace(&'a [u8]),
}

impl BufferPool {
    /// A [`DirectGather`] writing from `start` (a multiple of [`ALIGN`]) in
    /// pieces aligned to `grain` (a power of two up to [`ALIGN`]), with room
    /// to copy `room` bytes ([`DirectGather::room_for`]).
    pub fn gather<'a>(self: &Arc<Self>, grain: usize, start: u64, room: usize) -> DirectGather<'a> {
        assert!(grain.is_power_of_two() && grain <= ALIGN, "bad grain");
        assert_eq!(start % ALIGN as u64, 0, "unaligned start");
        DirectGather {
            grain,
            bounce: self.take(room.max(ALIGN)),
            segs: vec![],
            open: 0,
            pos: start,
            copied: 0,
        }
    }
}

impl<'a> DirectGather<'a> {
    /// Room for copied bytes that records with trailers of `trailers` bytes
    /// in all may need: per record at most a grain of padding, a head and a
    /// tail each shorter than a grain; and the final padding.
    pub fn room_for(grain: usize, records: usize, trailers: usize) -> usize {
        records * 3 * grain + trailers + ALIGN
    }

    /// Appends a record (`data`, then `trailer`); returns the file offset
    /// of its data.
    pub fn push(&mut self, data: &'a [u8], trailer: &[u8]) -> u64 {
        let g = self.grain;
        let head = (data.as_ptr() as usize).wrapping_neg() % g;
        if data.len() < head + g {
            // No aligned grain inside: copied whole, no padding.
            let at = self.pos;
            self.copy(data);
            self.copy(trailer);
            return at;
        }
        let pad = (g - (self.pos as usize + head) % g) % g;
        self.zeros(pad);
        let at = self.pos;
        self.copy(&data[..head]);
        let mid = (data.len() - head) / g * g;
        self.close();
        self.segs.push(Gathered::InPlace(&data[head..head + mid]));
        self.pos += mid as u64;
        self.copy(&data[head + mid..]);
        self.copy(trailer);
        at
    }

    /// Bytes copied so far (padding included).
    pub fn copied(&self) -> usize {
        self.copied
    }

    fn copy(&mut self, s: &[u8]) {
        let b = &mut self.bounce;
        assert!(s.len() <= b.cap - b.len, "gather room overflow");
        // SAFETY: `len + s.len() <= cap`; `s` cannot overlap a buffer only
        // this value holds.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), b.ptr.add(b.len), s.len()) };
        b.len += s.len();
        self.pos += s.len() as u64;
        self.copied += s.len();
    }

    fn zeros(&mut self, n: usize) {
        let b = &mut self.bounce;
        assert!(n <= b.cap - b.len, "gather room overflow");
        // SAFETY: `len + n <= cap`.
        unsafe { std::ptr::write_bytes(b.ptr.add(b.len), 0, n) };
        b.len += n;
        self.pos += n as u64;
        self.copied += n;
    }

    /// Ends the run of copied bytes at `pos`, which is on a grain boundary:
    /// it began on one, right after the last piece written in place.
    fn close(&mut self) {
        let len = self.bounce.len;
        debug_assert_eq!(self.pos % self.grain as u64, 0);
        if len > self.open {
            self.segs.push(Gathered::Copied(self.open..len));
        }
        self.open = len;
    }

    /// Writes everything, zero-padded to a multiple of [`ALIGN`]; returns
    /// the offset after the padding.
    pub fn finish(mut self, f: &File) -> io::Result<u64> {
        let pad = (ALIGN - (self.pos % ALIGN as u64) as usize) % ALIGN;
        self.zeros(pad);
        self.close();
        let end = self.pos;
        let start = end - self.segs.iter().map(|s| self.len_of(s)).sum::<usize>() as u64;
        let bounce = self.bounce.as_ref();
        let bufs: Vec<&[u8]> = self
            .segs
            .iter()
            .map(|s| match s {
                Gathered::Copied(r) => &bounce[r.clone()],
                Gathered::InPlace(d) => *d,
            })
            .collect();
        crate::catalog::disk_cache_file::pwrite_all(f, &bufs, start)?;
        Ok(end)
    }

    fn len_of(&self, s: &Gathered) -> usize {
        match s {
            Gathered::Copied(r) => r.len(),
            Gathered::InPlace(d) => d.len(),
        }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().expect("buffer pool");
        let held: usize = free.iter().map(|b| b.1).sum();
        if held + self.cap <= self.pool.keep {
            free.push((self.ptr, self.cap));
            return;
        }
        drop(free);
        // SAFETY: mapped in `take`, not in the pool, and no longer read.
        unsafe { unmap_buffer(self.ptr, self.cap) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(n: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + i / 4096) as u8).collect();
        std::fs::File::create(&p).unwrap().write_all(&data).unwrap();
        (d, p, data)
    }

    /// Unaligned offsets and lengths, up to the last byte, read exactly.
    #[test]
    fn reads_any_range_exactly() {
        let (_d, p, data) = file_of(3 * 1024 * 1024 + 123);
        let pool = BufferPool::new(8 << 20);
        // Which path each read takes: /tmp here is ext4, which allows O_DIRECT.
        assert!(
            DirectFile::open(&p).unwrap().is_direct(),
            "{p:?} refused O_DIRECT"
        );
        assert!(!DirectFile::buffered(File::open(&p).unwrap()).is_direct());
        for f in [
            DirectFile::open(&p).unwrap(),
            DirectFile::buffered(File::open(&p).unwrap()),
        ] {
            for (off, len) in [
                (0usize, 1usize),
                (1, 4095),
                (4095, 2),
                (4096, 4096),
                (5000, 1 << 20),
                (data.len() - 10, 10),
                (123_457, 2_000_001),
            ] {
                let b = f.read_at(&pool, off as u64, len).unwrap();
                assert_eq!(&b[..], &data[off..off + len], "{off}+{len}");
            }
            let e = f.read_at(&pool, data.len() as u64 - 5, 6).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    /// A file of 4 KiB of 9s, opened for direct writes.
    fn segment_for_direct_writes() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("seg");
        std::fs::write(&p, vec![9u8; 4096]).unwrap();
        let f = open_direct_writer(&p)
            .unwrap()
            .expect("/tmp is ext4, which allows O_DIRECT");
        (d, p, f)
    }

    /// Appends that cross buffer boundaries land in order at the offset
    /// given; the tail is padded with zeros to a block, also when the
    /// reused buffer held other bytes before.
    #[test]
    fn appender_writes_in_order_and_pads_with_zeros() {
        let (_d, p, f) = segment_for_direct_writes();
        let pool = BufferPool::new(1 << 20);
        let a: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let b: Vec<u8> = (0..13_000u32).map(|i| (i / 7) as u8).collect();
        let mut w = pool.appender(8192, 4096);
        w.append(&f, &a).unwrap();
        w.append(&f, &b).unwrap();
        let end = w.finish(&f).unwrap();
        assert_eq!(
            end,
            4096 + (a.len() + b.len()).div_ceil(ALIGN) as u64 * ALIGN as u64
        );
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len() as u64, end);
        assert_eq!(
            &got[..4096],
            &[9u8; 4096][..],
            "bytes before the offset kept"
        );
        assert_eq!(&got[4096..4096 + a.len()], &a[..]);
        assert_eq!(&got[4096 + a.len()..4096 + a.len() + b.len()], &b[..]);
        assert!(got[4096 + a.len() + b.len()..].iter().all(|&x| x == 0));
        // The same (reused) buffer, a shorter tail: still zeros after it.
        let mut w = pool.appender(8192, end);
        w.append(&f, &[7u8; 10]).unwrap();
        let end2 = w.finish(&f).unwrap();
        assert_eq!(end2, end + ALIGN as u64);
        let got = std::fs::read(&p).unwrap();
        assert_eq!(&got[end as usize..end as usize + 10], &[7u8; 10]);
        assert!(got[end as usize + 10..].iter().all(|&x| x == 0));
    }

    /// Records taken from odd places in memory land intact where `push`
    /// said, zeros between them, and only their ends and trailers are
    /// copied.
    #[test]
    fn gather_writes_records_from_where_they_lie() {
        let (_d, p, f) = segment_for_direct_writes();
        let grain = dio_grain(&f).expect("ext4 on Linux 6.1+ states its O_DIRECT alignment");
        let pool = BufferPool::new(1 << 20);
        // One "response" buffer; records at odd offsets in it, one too
        // short to hold an aligned grain, one empty.
        let mem: Vec<u8> = (0..400_000u32).map(|i| (i * 7 / 3) as u8).collect();
        let recs: Vec<(&[u8], Vec<u8>)> = [(3, 100_003), (100_003, 100_500), (100_500, 100_500)]
            .into_iter()
            .chain([(100_501, 399_999), (17, 90_017)])
            .map(|(a, b)| (&mem[a..b], vec![(b % 251) as u8; 45 + a % 300]))
            .collect();
        let room = DirectGather::room_for(grain, recs.len(), recs.iter().map(|r| r.1.len()).sum());
        let mut w = pool.gather(grain, 4096, room);
        let offs: Vec<u64> = recs.iter().map(|(d, t)| w.push(d, t)).collect();
        let copied = w.copied();
        let end = w.finish(&f).unwrap();
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len() as u64, end);
        assert_eq!(end % ALIGN as u64, 0);
        assert_eq!(
            &got[..4096],
            &[9u8; 4096][..],
            "bytes before the start kept"
        );
        let mut next = 4096;
        for ((d, t), &off) in recs.iter().zip(&offs) {
            let off = off as usize;
            assert!(
                off >= next && off < next + grain,
                "record at {off}, previous end {next}"
            );
            assert!(got[next..off].iter().all(|&x| x == 0), "padding is zeros");
            assert_eq!(&got[off..off + d.len()], *d);
            assert_eq!(&got[off + d.len()..off + d.len() + t.len()], &t[..]);
            next = off + d.len() + t.len();
        }
        assert!(got[next..].iter().all(|&x| x == 0));
        let data: usize = recs.iter().map(|r| r.0.len()).sum();
        let trailers: usize = recs.iter().map(|r| r.1.len()).sum();
        assert!(
            copied <= trailers + 4 * 3 * grain + 100_500 - 100_003 + ALIGN,
            "{copied} bytes copied for {data} bytes of data"
        );
    }

    /// Buffers are reused, and the pool keeps no more than its bound.
    #[test]
    fn buffers_are_reused_within_the_bound() {
        let (_d, p, _) = file_of(1 << 20);
        let f = DirectFile::open(&p).unwrap();
        let pool = BufferPool::new(1 << 20);
        let b = f.read_at(&pool, 10, 200_000).unwrap();
        let first = b.as_ptr() as usize - 10;
        drop(b);
        assert_eq!(pool.free_bytes(), GRAIN);
        let c = f.read_at(&pool, 0, 250_000).unwrap();
        assert_eq!(c.as_ptr() as usize, first, "the same buffer again");
        assert_eq!(pool.free_bytes(), 0);
        let many: Vec<_> = (0..8).map(|_| pool.take(GRAIN)).collect();
        drop(many);
        drop(c);
        assert_eq!(pool.free_bytes(), 1 << 20, "kept up to the bound");
    }

    /// A fill buffer hands out what was filled, in order, while later bytes
    /// still arrive, and goes back to the pool only with its last piece.
    #[test]
    fn fill_buf_hands_out_pieces_and_returns_with_the_last() {
        let pool = BufferPool::new(4 << 20);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut fb = pool.fill_buf(data.len());
        let mut pieces = vec![];
        let (mut filled, mut handed) = (0, 0);
        // Frames of 64 KiB; a piece of 300,000 bytes as soon as it is complete.
        for frame in data.chunks(65_536) {
            fb.extend(frame);
            filled += frame.len();
            while filled - handed >= 300_000 {
                pieces.push(fb.split_to(300_000));
                handed += 300_000;
            }
        }
        pieces.push(fb.split_to(filled - handed));
        drop(fb);
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        assert!(joined == data, "pieces differ from what was filled");
        for w in pieces.windows(2) {
            let end = w[0].as_ptr() as usize + w[0].len();
            assert_eq!(end, w[1].as_ptr() as usize, "pieces lie back to back");
        }
        assert_eq!(pool.mapped(), 1);
        let last = pieces.pop().unwrap();
        drop(pieces);
        assert_eq!(
            pool.free_bytes(),
            0,
            "back before its last piece was dropped"
        );
        drop(last);
        assert_eq!(pool.free_bytes(), 4 << 20, "not back after its last piece");
        let again = pool.fill_buf(1 << 20);
        assert_eq!(pool.mapped(), 1, "a free buffer was mapped afresh");
        drop(again);
    }

    #[test]
    #[should_panic(expected = "fill buffer overflow")]
    fn fill_buf_refuses_more_than_it_holds() {
        let pool = BufferPool::new(0);
        let mut fb = pool.fill_buf(GRAIN);
        fb.extend(&vec![0u8; GRAIN + 1]);
    }
}
