//! The writable `<name>@staging/` directories of a mount: their slots,
//! copy-up of base files on first write, and the write-type operations.
//! The tree itself lives in [`crate::catalog::Staging`]; this module
//! maps kernel-style requests onto it. What it needs of the rest of the
//! mount comes in a [`Ctx`].
//!
//! Staging entries get a zero TTL: `assetfs commit` and `reset` in another
//! process change the tree under the kernel.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::catalog::CatalogCache;
use crate::catalog::{
    locate, staging_dir, write_label, Content, Staging, StagingError, StartError, ROOT,
};
use crate::format::{AssetId, AssetName, Kind};
use crate::format::{EntryKind, Manifest};
use crate::mount::readahead::read_range;
use crate::mount::reader::{ChunkMap, ChunkSource};
use crate::mount::vfs::attr::Attr;
use crate::mount::vfs::error::{Result, VfsError};
use crate::mount::vfs::inodes::staging_ino;
use crate::mount::vfs::ownership::Ownership;

/// What staging operations use of the mount around them.
pub struct Ctx<'a> {
    pub source: &'a Arc<ChunkSource>,
    pub meta: &'a CatalogCache,
    pub owner: &'a Ownership,
    /// The time shown on staging entries.
    pub mounted_at: SystemTime,
}

pub struct StagingSlot {
    pub slot: u32,
    pub asset: AssetId,
    dir: PathBuf,
    st: OnceLock<Staging>,
    /// Base manifest hash and manifest, reloaded when a commit moves the base.
    base: Mutex<Option<(String, Arc<Manifest>)>>,
}

impl StagingSlot {
    pub fn st(&self) -> Result<&Staging> {
        if let Some(s) = self.st.get() {
            return Ok(s);
        }
        let s = Staging::open(&self.dir)?;
        Ok(self.st.get_or_init(|| s))
    }
}

/// An open staging file.
pub struct StagingHandle {
    slot: Arc<StagingSlot>,
    id: u64,
    writable: bool,
    pid: u32,
    /// A writable handle's data file, opened once: a WRITE then costs
    /// one `pwrite`, with no index lookup and no `open` per request.
    file: Option<std::fs::File>,
}

/// The staging areas this mount has shown, one slot each (the middle bits
/// of their inode numbers).
pub struct StagingView {
    /// Where staging areas live; `None`: staging is disabled.
    home: Option<PathBuf>,
    slots: RwLock<Vec<Arc<StagingSlot>>>,
    ids: Mutex<HashMap<AssetId, u32>>,
}

impl StagingView {
    pub fn new(home: Option<PathBuf>) -> StagingView {
        StagingView {
            home,
            slots: RwLock::new(vec![]),
            ids: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.home.is_some()
    }

    fn home(&self) -> Result<&Path> {
        self.home
            .as_deref()
            .ok_or(VfsError::NotPermitted("staging is disabled in this mount"))
    }

    /// A slot handed out before.
    pub fn slot(&self, slot: u32) -> Option<Arc<StagingSlot>> {
        let i = (slot as usize).checked_sub(1)?;
        self.slots
            .read()
            .expect("staging slots lock")
            .get(i)
            .cloned()
    }

    /// The slot of an asset's staging area, made on first use (without
    /// touching the area itself).
    fn slot_for(&self, meta: &CatalogCache, asset: &AssetId) -> Result<Arc<StagingSlot>> {
        let home = self.home()?.to_path_buf();
        let mut ids = self.ids.lock().expect("staging ids lock");
        if let Some(&s) = ids.get(asset) {
            return Ok(self.slots.read().expect("staging slots lock")[s as usize - 1].clone());
        }
        let mut slots = self.slots.write().expect("staging slots lock");
        let slot = slots.len() as u32 + 1;
        let s = Arc::new(StagingSlot {
            slot,
            asset: asset.clone(),
            dir: {
                let store = meta.catalog().store();
                write_label(&home, store);
                locate(&home, store, asset)
            },
            st: OnceLock::new(),
            base: Mutex::new(None),
        });
        slots.push(s.clone());
        ids.insert(asset.clone(), slot);
        Ok(s)
    }

    /// The inode of `<name>@staging` (allocated without touching disk).
    pub fn root_ino(&self, meta: &CatalogCache, asset: &AssetId) -> u64 {
        match self.slot_for(meta, asset) {
            Ok(s) => staging_ino(s.slot, ROOT),
            Err(_) => 0,
        }
    }

    /// Assets of a kind that have a staging area on this node but no version.
    pub fn staged_only_assets(&self, meta: &CatalogCache, kind: Kind) -> Vec<AssetName> {
        let Ok(home) = self.home() else {
            return vec![];
        };
        let probe = AssetId {
            kind,
            name: AssetName::parse("x").expect("valid name"),
        };
        let dir = staging_dir(home, &meta.catalog().store().id(), &probe);
        let Some(kind_dir) = dir.parent() else {
            return vec![];
        };
        let Ok(rd) = std::fs::read_dir(kind_dir) else {
            return vec![];
        };
        let mut out: Vec<AssetName> = rd
            .flatten()
            .filter_map(|e| AssetName::parse(&e.file_name().to_string_lossy()).ok())
            .filter(|n| {
                Staging::open(&kind_dir.join(n.as_str()))
                    .ok()
                    .and_then(|s| s.base().ok().flatten())
                    .is_some()
            })
            .collect();
        out.sort();
        out
    }

    /// The staging area of an asset, started from its latest version.
    /// Without `create`, an asset with neither versions nor staging is ENOENT.
    pub async fn area(
        &self,
        meta: &CatalogCache,
        asset: &AssetId,
        create: bool,
    ) -> Result<Arc<StagingSlot>> {
        let slot = self.slot_for(meta, asset)?;
        let st = slot.st()?;
        if st.base()?.is_some() {
            return Ok(slot);
        }
        match st.start_from_latest(meta, asset, create).await {
            Ok(_) => Ok(slot),
            Err(StartError::NoVersions(_)) => Err(VfsError::NotFound),
            Err(StartError::Staging(e)) => Err(e.into()),
            Err(StartError::Catalog(e)) => Err(e.into()),
        }
    }

    /// `mkdir MNT/<kind>/<name>@staging`: starts a new asset's area.
    pub async fn start_new(&self, cx: &Ctx<'_>, kind: Kind, name: &str) -> Result<Attr> {
        let Some(asset_name) = name.strip_suffix("@staging") else {
            return Err(VfsError::ReadOnly);
        };
        let name = AssetName::parse(asset_name).map_err(|e| {
            tracing::warn!("mkdir {name}: {e}");
            VfsError::Invalid(e.to_string())
        })?;
        let asset = AssetId { kind, name };
        let slot = self.slot_for(cx.meta, &asset)?;
        if slot.st()?.base()?.is_some() {
            return Err(StagingError::Exists.into());
        }
        let slot = self.area(cx.meta, &asset, true).await?;
        attr(cx, &slot, ROOT)
    }
}

async fn base_manifest(cx: &Ctx<'_>, slot: &StagingSlot) -> Result<Option<Arc<Manifest>>> {
    let Some((_, Some(hash))) = slot.st()?.base()? else {
        return Ok(None);
    };
    if let Some((h, m)) = &*slot.base.lock().expect("base lock") {
        if *h == hash {
            return Ok(Some(m.clone()));
        }
    }
    let m = cx.meta.manifest(&hash).await?;
    *slot.base.lock().expect("base lock") = Some((hash, m.clone()));
    Ok(Some(m))
}

/// A read of an unchanged file failed. If the base version was deleted
/// (and gc collected its bytes), the log says so, not just "EIO".
async fn explain_base_failure(cx: &Ctx<'_>, slot: &StagingSlot, path: &str) {
    let Ok(Some((Some(v), _))) = slot.st().and_then(|s| Ok(s.base()?)) else {
        return;
    };
    if let Ok(Some(d)) = cx.meta.catalog().deletion(&slot.asset, v).await {
        tracing::error!(
            "{}@staging: cannot read {path}: it is unchanged since {}, which was deleted by {} at {} and collected by gc; write the file again, or reset staging",
            slot.asset,
            slot.asset.at(v),
            d.by,
            d.deleted
        );
    }
}

/// The attributes of node `id`.
pub fn attr(cx: &Ctx<'_>, slot: &StagingSlot, id: u64) -> Result<Attr> {
    Ok(node_attr(cx, slot, &slot.st()?.get(id)?))
}

fn node_attr(cx: &Ctx<'_>, slot: &StagingSlot, n: &crate::catalog::Node) -> Attr {
    cx.owner.present(Attr::new(
        staging_ino(slot.slot, n.id),
        n.kind.into(),
        n.size,
        (n.mode & 0o7777) as u16,
        cx.mounted_at,
        Duration::ZERO,
    ))
}

pub fn lookup(cx: &Ctx<'_>, slot: &StagingSlot, dir: u64, name: &str) -> Result<Attr> {
    let n = slot.st()?.lookup(dir, name)?;
    attr(cx, slot, n.id)
}

pub fn children(
    cx: &Ctx<'_>,
    slot: &StagingSlot,
    id: u64,
    offset: usize,
    mut add: impl FnMut(&str, &Attr) -> bool,
) -> Result<()> {
    for n in slot.st()?.children(id)?.into_iter().skip(offset) {
        if add(&n.name, &node_attr(cx, slot, &n)) {
            break;
        }
    }
    Ok(())
}

pub fn readlink(slot: &StagingSlot, id: u64) -> Result<String> {
    slot.st()?.get(id)?.target.ok_or(VfsError::NotSymlink)
}

/// Makes a base file local. With `content`, its bytes are fetched first;
/// without (it is about to be truncated to zero), it starts empty.
async fn copy_up(cx: &Ctx<'_>, slot: &StagingSlot, id: u64, content: bool) -> Result<()> {
    let st = slot.st()?;
    let n = st.get(id)?;
    let Content::Base(i) = n.content else {
        return Ok(());
    };
    let mut f = crate::store::create_private(&st.copy_path(id)).map_err(StagingError::from)?;
    if content {
        let m = base_manifest(cx, slot)
            .await?
            .ok_or(VfsError::Invalid("staging has no base manifest".into()))?;
        let e = m.entry(i as usize);
        for c in m.chunks_of(&e) {
            let data = match cx.source.chunk(m.packs[c.pack as usize], *c).await {
                Ok(d) => d,
                Err(err) => {
                    explain_base_failure(cx, slot, e.path).await;
                    return Err(err.into());
                }
            };
            f.write_all(&data).map_err(StagingError::from)?;
        }
    }
    drop(f);
    st.adopt_copy(id)?;
    Ok(())
}

pub async fn open(
    cx: &Ctx<'_>,
    slot: Arc<StagingSlot>,
    id: u64,
    flags: i32,
    pid: u32,
) -> Result<StagingHandle> {
    let st = slot.st()?;
    let n = st.get(id)?;
    match n.kind {
        EntryKind::Dir => return Err(VfsError::IsDir),
        EntryKind::Symlink => return Err(VfsError::NotFound),
        EntryKind::File => {}
    }
    let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
    let trunc = flags & libc::O_TRUNC != 0;
    let mut file = None;
    if writable {
        copy_up(cx, &slot, id, !trunc).await?;
        if trunc {
            st.truncate(id, 0)?;
        }
        file = Some(st.data_file(id)?);
        st.add_writer(id, pid)?;
    }
    st.opened(id);
    Ok(StagingHandle {
        slot,
        id,
        writable,
        pid,
        file,
    })
}

pub async fn read(cx: &Ctx<'_>, h: &StagingHandle, offset: u64, size: u32) -> Result<Bytes> {
    let (slot, id) = (&h.slot, h.id);
    let st = slot.st()?;
    let n = st.get(id)?;
    match n.content {
        Content::Local => Ok(Bytes::from(st.read_local(id, offset, size as usize)?)),
        Content::Base(i) => {
            let m = base_manifest(cx, slot)
                .await?
                .ok_or(VfsError::Invalid("staging has no base manifest".into()))?;
            let e = m.entry(i as usize);
            let map = ChunkMap::new(&m, &e);
            match read_range(cx.source, &m, &e, &map, offset, size as u64, None).await {
                Ok(b) => Ok(b),
                Err(err) => {
                    explain_base_failure(cx, slot, e.path).await;
                    Err(err.into())
                }
            }
        }
        Content::None => Err(VfsError::IsDir),
    }
}

/// Writes through an open handle: a `pwrite` into the page cache.
pub fn write(h: &StagingHandle, offset: u64, data: &[u8]) -> Result<u32> {
    match (&h.file, h.writable) {
        (Some(f), true) => Ok(crate::catalog::write_at(f, offset, data)? as u32),
        _ => Err(VfsError::BadHandle),
    }
}

pub fn fsync(h: &StagingHandle) -> Result<()> {
    Ok(h.slot.st()?.fsync(h.id)?)
}

/// The handle is closed.
pub fn release(h: &StagingHandle) {
    let done = h.slot.st().and_then(|st| {
        let removed = match h.writable {
            true => st.remove_writer(h.id, h.pid),
            false => Ok(()),
        };
        // The last close of a file removed while open deletes it
        // (even when the writer bookkeeping failed, e.g. disk full).
        let closed = st.closed(h.id);
        removed?;
        Ok(closed?)
    });
    if let Err(e) = done {
        tracing::warn!("staging writer bookkeeping: {e}");
    }
}

pub async fn setattr(
    cx: &Ctx<'_>,
    slot: &StagingSlot,
    id: u64,
    mode: Option<u32>,
    size: Option<u64>,
) -> Result<Attr> {
    let st = slot.st()?;
    if let Some(size) = size {
        if st.get(id)?.kind == EntryKind::Dir {
            return Err(VfsError::IsDir);
        }
        copy_up(cx, slot, id, size > 0).await?;
        st.truncate(id, size)?;
    }
    if let Some(mode) = mode {
        st.chmod(id, mode)?;
    }
    attr(cx, slot, id)
}

/// Creates and opens a file for writing.
pub fn create(
    cx: &Ctx<'_>,
    slot: Arc<StagingSlot>,
    dir: u64,
    name: &str,
    mode: u32,
    pid: u32,
) -> Result<(Attr, StagingHandle)> {
    let st = slot.st()?;
    let n = st.create(dir, name, mode)?;
    let file = st.data_file(n.id)?;
    st.add_writer(n.id, pid)?;
    st.opened(n.id);
    let attr = attr(cx, &slot, n.id)?;
    Ok((
        attr,
        StagingHandle {
            slot,
            id: n.id,
            writable: true,
            pid,
            file: Some(file),
        },
    ))
}

pub fn mkdir(cx: &Ctx<'_>, slot: &StagingSlot, dir: u64, name: &str, mode: u32) -> Result<Attr> {
    let n = slot.st()?.mkdir(dir, name, mode)?;
    attr(cx, slot, n.id)
}

pub fn symlink(
    cx: &Ctx<'_>,
    slot: &StagingSlot,
    dir: u64,
    name: &str,
    target: &str,
) -> Result<Attr> {
    let n = slot.st()?.symlink(dir, name, target)?;
    attr(cx, slot, n.id)
}

pub fn unlink(slot: &StagingSlot, dir: u64, name: &str) -> Result<()> {
    Ok(slot.st()?.unlink(dir, name)?)
}

pub fn rmdir(slot: &StagingSlot, dir: u64, name: &str) -> Result<()> {
    Ok(slot.st()?.rmdir(dir, name)?)
}

/// Renames within one asset's area; across two areas is EXDEV.
pub fn rename(
    (a, d1): (&StagingSlot, u64),
    name: &str,
    (b, d2): (&StagingSlot, u64),
    newname: &str,
) -> Result<()> {
    if a.slot != b.slot {
        return Err(VfsError::CrossDevice("between two assets' staging areas"));
    }
    Ok(a.st()?.rename(d1, name, d2, newname)?)
}
