//! The FUSE adapter: translates kernel requests into [`Vfs`] calls and
//! results into replies. No logic lives here: what is refused, with which
//! errno, and what the kernel may cache are [`Vfs`]'s answers. Each request
//! runs in a `tracing` span named `fuse` (`op`, inode, handle), as a task on
//! the tokio runtime, so a slow fetch never blocks other requests.
//!
//! `init` negotiates the protocol (docs/mount.md, "Kernel protocol"): what
//! the kernel offers and what was agreed is kept in [`Negotiated`] and logged.

use std::ffi::OsStr;
use std::sync::{Arc, OnceLock};

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite,
    ReplyXattr, Request, TimeOrNow,
};
use tokio::runtime::Handle;
use tracing::{debug_span, Instrument};

use crate::mount::vfs::{Attr, DirCache, FileKind, PageCache, Vfs, VfsError};
use crate::store::ToErrno;

/// Largest READ and WRITE request asked for. The kernel caps requests at
/// `fs.fuse.max_pages_limit` pages (256, i.e. 1 MiB, by default).
pub const MAX_REQUEST: u32 = 1 << 20;
/// Background requests (readahead, async reads) the kernel may keep queued.
const MAX_BACKGROUND: u16 = 64;

/// Capabilities asked for when the kernel offers them (fuser adds
/// FUSE_ASYNC_READ, FUSE_BIG_WRITES and FUSE_MAX_PAGES itself).
fn wanted() -> InitFlags {
    // ATOMIC_O_TRUNC: O_TRUNC reaches `open`, so overwriting an unchanged
    // staging file does not first copy up (fetch) the content it discards.
    // DO_READDIRPLUS + READDIRPLUS_AUTO: listings carry attributes, so `ls -l`,
    // `du` and `find` need no LOOKUP per entry; the kernel uses the plain form
    // when a reader does not stat what it lists.
    // PARALLEL_DIROPS: lookups and listings of one directory run concurrently.
    // DIRECT_IO_ALLOW_MMAP: sidecars (direct I/O) can still be mmapped.
    InitFlags::FUSE_ASYNC_READ
        | InitFlags::FUSE_BIG_WRITES
        | InitFlags::FUSE_MAX_PAGES
        | InitFlags::FUSE_ATOMIC_O_TRUNC
        | InitFlags::FUSE_DO_READDIRPLUS
        | InitFlags::FUSE_READDIRPLUS_AUTO
        | InitFlags::FUSE_PARALLEL_DIROPS
        | InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP
}

/// What `init` agreed with the kernel.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The kernel's protocol version (we answer with fuser's, 7.40+).
    pub kernel_abi: (u32, u32),
    /// Flags in effect: asked for and offered.
    pub flags: InitFlags,
    /// Flags offered by the kernel but not asked for.
    pub declined: InitFlags,
    pub max_write: u32,
    pub max_readahead: u32,
    pub max_background: u16,
    /// Files may be opened in FUSE passthrough mode (kernel reads the backing
    /// file directly). Needs the kernel's support and CAP_SYS_ADMIN.
    pub passthrough: bool,
}

impl std::fmt::Display for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |fl: InitFlags| {
            fl.iter_names()
                .map(|(n, _)| n.trim_start_matches("FUSE_"))
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "kernel ABI {}.{}; max_write {} KiB; max_readahead {} KiB; max_background {}; passthrough {}; flags {}; offered but not used {}",
            self.kernel_abi.0,
            self.kernel_abi.1,
            self.max_write >> 10,
            self.max_readahead >> 10,
            self.max_background,
            self.passthrough,
            names(self.flags),
            names(self.declined),
        )
    }
}

/// Protocol choices of a mount.
#[derive(Debug, Clone, Default)]
pub struct Protocol {
    /// Offer FUSE passthrough to the kernel (when it supports it and we may).
    pub passthrough: bool,
    /// How listings carry attributes (READDIRPLUS).
    pub readdirplus: ReaddirPlus,
}

/// READDIRPLUS: adaptive (the kernel's AUTO mode with short first replies
/// until stats follow listings, see `src/mount/vfs/plus.rs`), always, or never.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReaddirPlus {
    #[default]
    Auto,
    Always,
    Off,
}

pub struct AssetFs {
    vfs: Arc<Vfs>,
    rt: Handle,
    protocol: Protocol,
    negotiated: Arc<OnceLock<Negotiated>>,
}

impl AssetFs {
    pub fn with_protocol(vfs: Arc<Vfs>, rt: Handle, protocol: Protocol) -> AssetFs {
        AssetFs {
            vfs,
            rt,
            protocol,
            negotiated: Arc::new(OnceLock::new()),
        }
    }

    /// Runs a metadata request's task: polled once right here, on the
    /// session thread, so a request that needs no I/O (its manifest is in
    /// memory) is answered without a hop to the runtime, which on a small
    /// machine costs more than the work; one that would wait continues on
    /// the runtime. Writes and reads always go to the runtime.
    fn run_inline(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut fut = Box::pin(fut);
        let _runtime = self.rt.enter();
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        if fut.as_mut().poll(&mut cx).is_pending() {
            self.rt.spawn(fut);
        }
    }

    /// Filled in once the kernel's INIT has been answered.
    pub fn negotiated(&self) -> Arc<OnceLock<Negotiated>> {
        self.negotiated.clone()
    }
}

fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::Dir => FileType::Directory,
        FileKind::File => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
    }
}

fn to_fuse(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: MAX_REQUEST,
        flags: 0,
    }
}

fn err(e: &VfsError) -> Errno {
    Errno::from_i32(e.errno())
}

fn open_flags(c: PageCache) -> FopenFlags {
    match c {
        PageCache::Keep => FopenFlags::FOPEN_KEEP_CACHE,
        PageCache::Default => FopenFlags::empty(),
        PageCache::Direct => FopenFlags::FOPEN_DIRECT_IO,
    }
}

fn dir_flags(c: DirCache) -> FopenFlags {
    match c {
        DirCache::Keep => FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
        DirCache::None => FopenFlags::empty(),
    }
}

fn reply_empty(reply: ReplyEmpty, r: Result<(), VfsError>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(err(&e)),
    }
}

const GEN: Generation = Generation(0);

impl Filesystem for AssetFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _span = debug_span!("fuse", op = "init").entered();
        let offered = config.capabilities();
        let mut flags = wanted() & offered;
        match self.protocol.readdirplus {
            ReaddirPlus::Always => flags &= !InitFlags::FUSE_READDIRPLUS_AUTO,
            ReaddirPlus::Auto => {}
            ReaddirPlus::Off => {
                flags &= !(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO)
            }
        }
        // Backing files (the disk cache) sit on a plain filesystem: depth 1.
        if self.protocol.passthrough
            && offered.contains(InitFlags::FUSE_PASSTHROUGH)
            && config.set_max_stack_depth(1).is_ok()
        {
            flags |= InitFlags::FUSE_PASSTHROUGH;
        }
        if let Err(missing) = config.add_capabilities(flags) {
            flags &= !missing;
        }
        let max_write = match config.set_max_write(MAX_REQUEST) {
            Ok(_) => MAX_REQUEST,
            Err(max) => {
                let _ = config.set_max_write(max);
                max
            }
        };
        // The kernel offers its current readahead (128 KiB by default) and only
        // accepts lower values here; `mount` raises it afterwards through the
        // bdi's read_ahead_kb.
        let max_readahead = match config.set_max_readahead(MAX_REQUEST) {
            Ok(_) => MAX_REQUEST,
            Err(max) => {
                let _ = config.set_max_readahead(max);
                max
            }
        };
        let _ = config.set_max_background(MAX_BACKGROUND);
        let abi = config.kernel_abi();
        let n = Negotiated {
            kernel_abi: (abi.0, abi.1),
            flags,
            declined: offered & !flags,
            max_write,
            max_readahead,
            max_background: MAX_BACKGROUND,
            passthrough: flags.contains(InitFlags::FUSE_PASSTHROUGH),
        };
        tracing::info!("FUSE protocol: {n}");
        let _ = self.negotiated.set(n);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let span = debug_span!("fuse", op = "lookup", ino = parent.0, name = ?name);
        let vfs = self.vfs.clone();
        let name = name.to_os_string();
        self.run_inline(
            async move {
                match vfs.lookup(parent.0, &name).await {
                    Ok(a) => reply.entry(&a.ttl, &to_fuse(&a), GEN),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let span = debug_span!("fuse", op = "getattr", ino = ino.0);
        let vfs = self.vfs.clone();
        self.run_inline(
            async move {
                match vfs.getattr(ino.0).await {
                    Ok(a) => reply.attr(&a.ttl, &to_fuse(&a)),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let span = debug_span!("fuse", op = "readlink", ino = ino.0);
        let vfs = self.vfs.clone();
        self.run_inline(
            async move {
                match vfs.readlink(ino.0).await {
                    Ok(t) => reply.data(t.as_bytes()),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let span = debug_span!("fuse", op = "open", ino = ino.0, flags = flags.0);
        let vfs = self.vfs.clone();
        let pid = req.pid();
        let task = async move {
            match vfs.open(ino.0, flags.0, pid).await {
                Ok(fh) => reply.opened(FileHandle(fh), open_flags(vfs.page_cache(ino.0))),
                Err(e) => reply.error(err(&e)),
            }
        }
        .instrument(span);
        if self.vfs.open_may_block(ino.0) {
            self.rt.spawn(task);
        } else {
            self.run_inline(task);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let span = debug_span!("fuse", op = "read", ino = ino.0, fh = fh.0, offset, size);
        let vfs = self.vfs.clone();
        let task = async move {
            match vfs.read(fh.0, offset, size).await {
                Ok(b) => reply.data(&b),
                Err(e) => {
                    tracing::warn!(fh = fh.0, offset, size, "read failed: {e}");
                    reply.error(err(&e))
                }
            }
        }
        .instrument(span);
        if self.vfs.read_may_block(ino.0) {
            self.rt.spawn(task);
        } else {
            self.run_inline(task);
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _span = debug_span!("fuse", op = "release", ino = ino.0, fh = fh.0).entered();
        self.vfs.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _span = debug_span!("fuse", op = "opendir", ino = ino.0).entered();
        reply.opened(FileHandle(0), dir_flags(self.vfs.dir_cache(ino.0)));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let span = debug_span!("fuse", op = "readdir", ino = ino.0, offset);
        let vfs = self.vfs.clone();
        self.run_inline(
            async move {
                let mut next = offset;
                let r = vfs
                    .readdir_plus(ino.0, offset as usize, |name, a| {
                        next += 1;
                        reply.add(INodeNo(a.ino), next, file_type(a.kind), name)
                    })
                    .await;
                match r {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let span = debug_span!("fuse", op = "readdirplus", ino = ino.0, offset);
        let vfs = self.vfs.clone();
        let limit = match self.protocol.readdirplus {
            ReaddirPlus::Auto => self.vfs.readdirplus_limit(ino.0, offset as usize),
            _ => usize::MAX,
        };
        self.run_inline(
            async move {
                let mut next = offset;
                let r = vfs
                    .readdir_plus(ino.0, offset as usize, |name, a| {
                        if (next - offset) as usize >= limit {
                            return true;
                        }
                        next += 1;
                        reply.add(INodeNo(a.ino), next, name, &a.ttl, &to_fuse(a), GEN)
                    })
                    .await;
                match r {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let span = debug_span!("fuse", op = "getxattr", ino = ino.0, name = ?name);
        let vfs = self.vfs.clone();
        let name = name.to_os_string();
        self.run_inline(
            async move {
                match vfs.getxattr(ino.0, &name).await {
                    Ok(v) => reply_xattr(reply, size, &v),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let span = debug_span!("fuse", op = "listxattr", ino = ino.0);
        let vfs = self.vfs.clone();
        self.run_inline(
            async move {
                match vfs.listxattr(ino.0).await {
                    Ok(v) => reply_xattr(reply, size, &v),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    // Everything below modifies the tree: [`Vfs`] refuses it outside `@staging`.

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let span = debug_span!("fuse", op = "setattr", ino = ino.0, ?mode, ?size);
        let vfs = self.vfs.clone();
        self.rt.spawn(
            async move {
                match vfs.setattr(ino.0, mode, size).await {
                    Ok(a) => reply.attr(&a.ttl, &to_fuse(&a)),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let _span = debug_span!("fuse", op = "mknod", ino = parent.0, name = ?name).entered();
        reply.error(err(&self.vfs.mknod(parent.0)));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let span = debug_span!("fuse", op = "mkdir", ino = parent.0, name = ?name);
        let vfs = self.vfs.clone();
        let name = name.to_os_string();
        self.rt.spawn(
            async move {
                match vfs.mkdir(parent.0, &name, mode & !umask).await {
                    Ok(a) => reply.entry(&a.ttl, &to_fuse(&a), GEN),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let span = debug_span!("fuse", op = "unlink", ino = parent.0, name = ?name);
        let vfs = self.vfs.clone();
        let name = name.to_os_string();
        self.rt.spawn(
            async move { reply_empty(reply, vfs.unlink(parent.0, &name).await) }.instrument(span),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let span = debug_span!("fuse", op = "rmdir", ino = parent.0, name = ?name);
        let vfs = self.vfs.clone();
        let name = name.to_os_string();
        self.rt.spawn(
            async move { reply_empty(reply, vfs.rmdir(parent.0, &name).await) }.instrument(span),
        );
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let span = debug_span!("fuse", op = "symlink", ino = parent.0, name = ?link_name);
        let vfs = self.vfs.clone();
        let (name, target) = (link_name.to_os_string(), target.as_os_str().to_os_string());
        self.rt.spawn(
            async move {
                match vfs.symlink(parent.0, &name, &target).await {
                    Ok(a) => reply.entry(&a.ttl, &to_fuse(&a), GEN),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let span = debug_span!("fuse", op = "rename", ino = parent.0, name = ?name, newparent = newparent.0, newname = ?newname);
        let vfs = self.vfs.clone();
        let (name, newname) = (name.to_os_string(), newname.to_os_string());
        self.rt.spawn(
            async move {
                let r = vfs
                    .rename(parent.0, &name, newparent.0, &newname, flags.bits())
                    .await;
                reply_empty(reply, r)
            }
            .instrument(span),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _span = debug_span!("fuse", op = "link", ino = ino.0).entered();
        reply.error(err(&self.vfs.link(ino.0)));
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let size = data.len();
        let _span =
            debug_span!("fuse", op = "write", ino = ino.0, fh = fh.0, offset, size).entered();
        // A `pwrite` into the page cache: done here, on the request's own
        // buffer (no copy, no hop to the runtime), like a local write.
        match self.vfs.write(fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(err(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let span = debug_span!("fuse", op = "create", ino = parent.0, name = ?name);
        let vfs = self.vfs.clone();
        let pid = req.pid();
        let name = name.to_os_string();
        self.rt.spawn(
            async move {
                match vfs.create(parent.0, &name, mode & !umask, pid).await {
                    Ok((a, fh)) => reply.created(
                        &a.ttl,
                        &to_fuse(&a),
                        GEN,
                        FileHandle(fh),
                        FopenFlags::empty(),
                    ),
                    Err(e) => reply.error(err(&e)),
                }
            }
            .instrument(span),
        );
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let span = debug_span!("fuse", op = "fsync", ino = ino.0, fh = fh.0);
        let vfs = self.vfs.clone();
        self.rt
            .spawn(async move { reply_empty(reply, vfs.fsync(fh.0).await) }.instrument(span));
    }

    /// Nothing is buffered here at close, so FLUSH answers ENOSYS: the
    /// kernel then stops sending it (it was one of five round trips per
    /// small file of a data-loader epoch) and `close` still succeeds.
    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _span = debug_span!("fuse", op = "flush", ino = ino.0).entered();
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _span = debug_span!("fuse", op = "setxattr", ino = ino.0, name = ?name).entered();
        reply_empty(reply, self.vfs.setxattr(ino.0));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _span = debug_span!("fuse", op = "removexattr", ino = ino.0, name = ?name).entered();
        reply_empty(reply, self.vfs.removexattr(ino.0));
    }

    // Protocol answers, not filesystem policy: operations we leave to the
    // kernel's defaults, answered without fuser's "not implemented"
    // warnings. ENOSYS makes the kernel stop asking (access: permissions are
    // checked from the mode bits; lseek: plain SEEK_DATA/SEEK_HOLE;
    // copy_file_range: a read and a write; poll: always ready).

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let _span = debug_span!("fuse", op = "access", ino = ino.0).entered();
        reply.error(Errno::ENOSYS);
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        let _span = debug_span!("fuse", op = "lseek", ino = ino.0).entered();
        reply.error(Errno::ENOSYS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let _span = debug_span!("fuse", op = "copy_file_range", ino = ino_in.0).entered();
        reply.error(Errno::ENOSYS);
    }

    fn poll(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        let _span = debug_span!("fuse", op = "poll", ino = ino.0).entered();
        reply.error(Errno::ENOSYS);
    }

    /// No ioctls (a shell asks every file whether it is a terminal).
    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        let _span = debug_span!("fuse", op = "ioctl", ino = ino.0).entered();
        reply.error(Errno::ENOTTY);
    }

    /// A staging tree's metadata is durable when an operation returns.
    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _span = debug_span!("fuse", op = "fsyncdir", ino = ino.0).entered();
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        let _span = debug_span!("fuse", op = "fallocate", ino = ino.0).entered();
        reply_empty(reply, self.vfs.fallocate(ino.0));
    }
}

fn reply_xattr(reply: ReplyXattr, size: u32, v: &[u8]) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if (size as usize) < v.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(v);
    }
}
