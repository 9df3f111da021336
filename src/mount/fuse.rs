//! The FUSE adapter: translates kernel requests into [`Vfs`] calls and
//! results into replies. No logic lives here. Each request runs as a task on
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

use crate::mount::vfs::{Attr, FileKind, Vfs, VfsError};
use crate::store::errno::ToErrno;

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
/// until stats follow listings, see `vfs::PlusPolicy`), always, or never.
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
    uid: u32,
    gid: u32,
    protocol: Protocol,
    negotiated: Arc<OnceLock<Negotiated>>,
}

impl AssetFs {
    /// Unsupported operations: EROFS on committed versions, EOPNOTSUPP in staging.
    fn not_writable(&self, ino: u64) -> Errno {
        if self.vfs.is_staging(ino) {
            Errno::EOPNOTSUPP
        } else {
            Errno::EROFS
        }
    }

    pub fn new(vfs: Arc<Vfs>, rt: Handle) -> AssetFs {
        Self::with_protocol(vfs, rt, Protocol::default())
    }

    pub fn with_protocol(vfs: Arc<Vfs>, rt: Handle, protocol: Protocol) -> AssetFs {
        let owner = vfs.owner();
        AssetFs {
            vfs,
            rt,
            // The owner shown is the filesystem's decision (`--uid/--gid`).
            uid: owner.uid,
            gid: owner.gid,
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

fn to_fuse(a: &Attr, uid: u32, gid: u32) -> FileAttr {
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
        nlink: if a.kind == FileKind::Dir { 2 } else { 1 },
        uid,
        gid,
        rdev: 0,
        blksize: MAX_REQUEST,
        flags: 0,
    }
}

fn err(e: &VfsError) -> Errno {
    Errno::from_i32(e.errno())
}

fn name_str(name: &OsStr) -> Option<String> {
    name.to_str().map(str::to_string)
}

const GEN: Generation = Generation(0);

impl Filesystem for AssetFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
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
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let Some(name) = name_str(name) else {
            return reply.error(Errno::ENOENT);
        };
        self.run_inline(async move {
            match vfs.lookup(parent.0, &name).await {
                Ok(a) => reply.entry(&a.ttl, &to_fuse(&a, uid, gid), GEN),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        self.run_inline(async move {
            match vfs.getattr(ino.0).await {
                Ok(a) => reply.attr(&a.ttl, &to_fuse(&a, uid, gid)),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let vfs = self.vfs.clone();
        self.run_inline(async move {
            match vfs.readlink(ino.0).await {
                Ok(t) => reply.data(t.as_bytes()),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let vfs = self.vfs.clone();
        let pid = req.pid();
        let staging = self.vfs.is_staging(ino.0);
        let task = async move {
            let ino = ino.0;
            match vfs.open(ino, flags.0, pid).await {
                // Versions are immutable: keep the page cache across opens. A
                // sidecar bypasses it, so each handle reads the snapshot it opened.
                Ok(fh) if vfs.is_immutable(ino) => {
                    reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE)
                }
                // Staging files: ordinary page caching, dropped at each open.
                Ok(fh) if vfs.is_staging(ino) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                Err(e) => reply.error(err(&e)),
            }
        };
        // Opening a staging file may copy it up or wait for the disk.
        if staging {
            self.rt.spawn(task);
        } else {
            self.run_inline(task);
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            match vfs.read(fh.0, offset, size).await {
                Ok(b) => reply.data(&b),
                Err(e) => {
                    tracing::warn!(fh = fh.0, offset, size, "read failed: {e}");
                    reply.error(err(&e))
                }
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.vfs.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // A version's directories never change: the kernel may cache their
        // listings across opens.
        let flags = if self.vfs.is_immutable(ino.0) {
            FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        reply.opened(FileHandle(0), flags);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let vfs = self.vfs.clone();
        self.run_inline(async move {
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
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let limit = match self.protocol.readdirplus {
            ReaddirPlus::Auto => self.vfs.readdirplus_limit(ino.0, offset as usize),
            _ => usize::MAX,
        };
        self.run_inline(async move {
            let mut next = offset;
            let r = vfs
                .readdir_plus(ino.0, offset as usize, |name, a| {
                    if (next - offset) as usize >= limit {
                        return true;
                    }
                    next += 1;
                    reply.add(
                        INodeNo(a.ino),
                        next,
                        name,
                        &a.ttl,
                        &to_fuse(a, uid, gid),
                        GEN,
                    )
                })
                .await;
            match r {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let vfs = self.vfs.clone();
        let name = name.to_string_lossy().into_owned();
        self.run_inline(async move {
            match vfs.getxattr(ino.0, &name).await {
                Ok(v) => reply_xattr(reply, size, &v),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let vfs = self.vfs.clone();
        self.run_inline(async move {
            match vfs.listxattr(ino.0).await {
                Ok(v) => reply_xattr(reply, size, &v),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    // Everything below modifies the tree: only `@staging` accepts it; committed
    // versions answer EROFS (decided in `vfs`).

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
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        self.rt.spawn(async move {
            match vfs.setattr(ino.0, mode, size).await {
                Ok(a) => reply.attr(&a.ttl, &to_fuse(&a, uid, gid)),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Device nodes and FIFOs have no place in a model or feature set.
        reply.error(if self.vfs.is_staging(parent.0) {
            Errno::EPERM
        } else {
            Errno::EROFS
        });
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
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let Some(name) = name_str(name) else {
            return reply.error(Errno::EINVAL);
        };
        self.rt.spawn(async move {
            match vfs.mkdir(parent.0, &name, mode & !umask).await {
                Ok(a) => reply.entry(&a.ttl, &to_fuse(&a, uid, gid), GEN),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let vfs = self.vfs.clone();
        let Some(name) = name_str(name) else {
            return reply.error(Errno::ENOENT);
        };
        self.rt.spawn(async move {
            match vfs.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let vfs = self.vfs.clone();
        let Some(name) = name_str(name) else {
            return reply.error(Errno::ENOENT);
        };
        self.rt.spawn(async move {
            match vfs.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let (Some(name), Some(target)) = (name_str(link_name), target.to_str().map(str::to_string))
        else {
            return reply.error(Errno::EINVAL);
        };
        self.rt.spawn(async move {
            match vfs.symlink(parent.0, &name, &target).await {
                Ok(a) => reply.entry(&a.ttl, &to_fuse(&a, uid, gid), GEN),
                Err(e) => reply.error(err(&e)),
            }
        });
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
        if !flags.is_empty() {
            // RENAME_EXCHANGE / RENAME_NOREPLACE are not supported.
            return reply.error(Errno::EINVAL);
        }
        let vfs = self.vfs.clone();
        let (Some(name), Some(newname)) = (name_str(name), name_str(newname)) else {
            return reply.error(Errno::ENOENT);
        };
        self.rt.spawn(async move {
            match vfs.rename(parent.0, &name, newparent.0, &newname).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            match vfs.link(ino.0).await {
                Ok(_) => reply.error(Errno::EPERM),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
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
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let pid = req.pid();
        let Some(name) = name_str(name) else {
            return reply.error(Errno::EINVAL);
        };
        self.rt.spawn(async move {
            match vfs.create(parent.0, &name, mode & !umask, pid).await {
                Ok((a, fh)) => reply.created(
                    &a.ttl,
                    &to_fuse(&a, uid, gid),
                    GEN,
                    FileHandle(fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            match vfs.fsync(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(err(&e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(self.not_writable(ino.0));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(self.not_writable(ino.0));
    }

    // Operations we leave to the kernel's defaults, answered without fuser's
    // "not implemented" warnings: ENOSYS makes the kernel stop asking
    // (access: permissions are checked from the mode bits; lseek: plain
    // SEEK_DATA/SEEK_HOLE; copy_file_range: a read and a write; poll: always
    // ready).

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        reply.error(Errno::ENOSYS);
    }

    /// No ioctls (a shell asks every file whether it is a terminal).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    /// A staging tree's metadata is durable when an operation returns.
    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
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
        reply.error(self.not_writable(ino.0));
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
