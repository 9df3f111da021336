//! The FUSE adapter: translates kernel requests into [`Vfs`] calls and
//! results into replies. No logic lives here. Each request runs as a task on
//! the tokio runtime, so a slow fetch never blocks other requests.

use std::ffi::OsStr;
use std::sync::Arc;

use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};
use tokio::runtime::Handle;

use crate::errno::errno;
use crate::vfs::{Attr, FileKind, Vfs};

/// Kernel readahead for sequential readers (our own readahead works on top).
const MAX_READAHEAD: u32 = 1 << 20;
const READDIR_BATCH: usize = 512;

pub struct AssetFs {
    vfs: Arc<Vfs>,
    rt: Handle,
    uid: u32,
    gid: u32,
}

impl AssetFs {
    /// Unsupported operations: EROFS on committed versions, EOPNOTSUPP in staging.
    fn not_writable(&self, ino: u64) -> libc::c_int {
        if self.vfs.is_staging(ino) {
            libc::EOPNOTSUPP
        } else {
            libc::EROFS
        }
    }

    pub fn new(vfs: Arc<Vfs>, rt: Handle) -> AssetFs {
        AssetFs {
            vfs,
            rt,
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
        }
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
        ino: a.ino,
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
        blksize: 128 * 1024,
        flags: 0,
    }
}

fn name_str(name: &OsStr) -> Option<String> {
    name.to_str().map(str::to_string)
}

impl Filesystem for AssetFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        let _ = config.set_max_readahead(MAX_READAHEAD);
        // Flags fuser names only with its abi-7-9 feature. FUSE_ATOMIC_O_TRUNC
        // (1 << 3): O_TRUNC reaches `open`, so overwriting an unchanged staging
        // file does not first copy up (fetch) the content it is about to
        // discard. FUSE_BIG_WRITES (1 << 5): writes arrive in pieces of up to
        // 128 KiB instead of 4 KiB.
        let _ = config.add_capabilities(1 << 3);
        let _ = config.add_capabilities(1 << 5);
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENOENT);
        };
        self.rt.spawn(async move {
            match vfs.lookup(parent, &name).await {
                Ok(a) => reply.entry(&a.ttl, &to_fuse(&a, uid, gid), 0),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        self.rt.spawn(async move {
            match vfs.getattr(ino).await {
                Ok(a) => reply.attr(&a.ttl, &to_fuse(&a, uid, gid)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            match vfs.readlink(ino).await {
                Ok(t) => reply.data(t.as_bytes()),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn open(&mut self, req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let vfs = self.vfs.clone();
        let pid = req.pid();
        self.rt.spawn(async move {
            match vfs.open(ino, flags, pid).await {
                // Versions are immutable: keep the page cache across opens. A
                // sidecar bypasses it, so each handle reads the snapshot it opened.
                Ok(fh) if vfs.is_immutable(ino) => {
                    reply.opened(fh, fuser::consts::FOPEN_KEEP_CACHE)
                }
                // Staging files: ordinary page caching, dropped at each open.
                Ok(fh) if vfs.is_staging(ino) => reply.opened(fh, 0),
                Ok(fh) => reply.opened(fh, fuser::consts::FOPEN_DIRECT_IO),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            match vfs.read(fh, offset.max(0) as u64, size).await {
                Ok(b) => reply.data(&b),
                Err(e) => {
                    tracing::warn!(fh, offset, size, "read failed: {e}");
                    reply.error(errno(&e))
                }
            }
        });
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.vfs.release(fh);
        reply.ok();
    }

    fn opendir(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.opened(0, 0);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            let offset = offset.max(0) as usize;
            match vfs.readdir(ino, offset, READDIR_BATCH).await {
                Ok(entries) => {
                    for (i, e) in entries.iter().enumerate() {
                        let next = (offset + i + 1) as i64;
                        if reply.add(e.ino, next, file_type(e.kind), &e.name) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        let vfs = self.vfs.clone();
        let name = name.to_string_lossy().into_owned();
        self.rt.spawn(async move {
            match vfs.getxattr(ino, &name).await {
                Ok(v) => reply_xattr(reply, size, &v),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            match vfs.listxattr(ino).await {
                Ok(v) => reply_xattr(reply, size, &v),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    // Everything below modifies the tree: only `@staging` accepts it; committed
    // versions answer EROFS (decided in `vfs`).

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        self.rt.spawn(async move {
            match vfs.setattr(ino, mode, size).await {
                Ok(a) => reply.attr(&a.ttl, &to_fuse(&a, uid, gid)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mknod(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Device nodes and FIFOs have no place in a model or feature set.
        reply.error(if self.vfs.is_staging(parent) {
            libc::EPERM
        } else {
            libc::EROFS
        });
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let Some(name) = name_str(name) else {
            return reply.error(libc::EINVAL);
        };
        self.rt.spawn(async move {
            match vfs.mkdir(parent, &name, mode & !umask).await {
                Ok(a) => reply.entry(&a.ttl, &to_fuse(&a, uid, gid), 0),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let vfs = self.vfs.clone();
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENOENT);
        };
        self.rt.spawn(async move {
            match vfs.unlink(parent, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let vfs = self.vfs.clone();
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENOENT);
        };
        self.rt.spawn(async move {
            match vfs.rmdir(parent, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn symlink(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let (Some(name), Some(target)) = (name_str(link_name), target.to_str().map(str::to_string))
        else {
            return reply.error(libc::EINVAL);
        };
        self.rt.spawn(async move {
            match vfs.symlink(parent, &name, &target).await {
                Ok(a) => reply.entry(&a.ttl, &to_fuse(&a, uid, gid), 0),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if flags != 0 {
            // RENAME_EXCHANGE / RENAME_NOREPLACE are not supported.
            return reply.error(libc::EINVAL);
        }
        let vfs = self.vfs.clone();
        let (Some(name), Some(newname)) = (name_str(name), name_str(newname)) else {
            return reply.error(libc::ENOENT);
        };
        self.rt.spawn(async move {
            match vfs.rename(parent, &name, newparent, &newname).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn link(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _newparent: u64,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            match vfs.link(ino).await {
                Ok(_) => reply.error(libc::EPERM),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let vfs = self.vfs.clone();
        let data = data.to_vec();
        self.rt.spawn(async move {
            match vfs.write(fh, offset.max(0) as u64, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let (vfs, uid, gid) = (self.vfs.clone(), self.uid, self.gid);
        let pid = req.pid();
        let Some(name) = name_str(name) else {
            return reply.error(libc::EINVAL);
        };
        self.rt.spawn(async move {
            match vfs.create(parent, &name, mode & !umask, pid).await {
                Ok((a, fh)) => reply.created(&a.ttl, &to_fuse(&a, uid, gid), 0, fh, 0),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let vfs = self.vfs.clone();
        self.rt.spawn(async move {
            match vfs.fsync(fh).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _lock_owner: u64,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn setxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(self.not_writable(ino));
    }

    fn removexattr(&mut self, _req: &Request<'_>, ino: u64, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(self.not_writable(ino));
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _offset: i64,
        _length: i64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(self.not_writable(ino));
    }
}

fn reply_xattr(reply: ReplyXattr, size: u32, v: &[u8]) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if (size as usize) < v.len() {
        reply.error(libc::ERANGE);
    } else {
        reply.data(v);
    }
}
