//! The writable `<name>@staging/` directories of a mount: inode numbering,
//! copy-up of base files on first write, and the write-type operations.
//! The tree itself lives in [`crate::catalog::staging::Staging`]; this module maps
//! kernel-style requests onto it.
//!
//! Inodes: bit 63 set, bits 40..63 the staging slot, bits 0..40 the node id.
//! Staging entries get a zero TTL: `assetfs commit` and `reset` in another
//! process change the tree under the kernel.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;

use crate::catalog::staging::{staging_dir, Content, Staging, ROOT};
use crate::format::manifest::{EntryKind, Manifest};
use crate::format::names::{AssetId, AssetName, Kind};
use crate::mount::readahead::read_range;
use crate::mount::reader::ChunkMap;
use crate::mount::vfs::{Attr, FileKind, Node, OpenFile, Result, Vfs, VfsError};

const STAGING_BIT: u64 = 1 << 63;
const ID_BITS: u32 = 40;
const ID_MASK: u64 = (1 << ID_BITS) - 1;

pub struct StagingSlot {
    pub slot: u32,
    pub asset: AssetId,
    dir: std::path::PathBuf,
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

#[derive(Default)]
pub struct StagingTable {
    slots: RwLock<Vec<Arc<StagingSlot>>>,
    ids: Mutex<HashMap<AssetId, u32>>,
}

fn ino(slot: u32, id: u64) -> u64 {
    STAGING_BIT | ((slot as u64) << ID_BITS) | id
}

fn file_kind(k: EntryKind) -> FileKind {
    match k {
        EntryKind::Dir => FileKind::Dir,
        EntryKind::File => FileKind::File,
        EntryKind::Symlink => FileKind::Symlink,
    }
}

impl Vfs {
    fn home(&self) -> Result<&std::path::Path> {
        self.cfg
            .staging_home
            .as_deref()
            .ok_or(VfsError::NotPermitted("staging is disabled in this mount"))
    }

    pub(crate) fn staging_node(&self, i: u64) -> Option<Result<Node>> {
        if i & STAGING_BIT == 0 {
            return None;
        }
        let slot = ((i & !STAGING_BIT) >> ID_BITS) as usize;
        let found = self
            .staging
            .slots
            .read()
            .expect("staging slots lock")
            .get(slot.wrapping_sub(1))
            .cloned();
        Some(match found {
            Some(s) => Ok(Node::Staging(s, i & ID_MASK)),
            None => Err(VfsError::NotFound),
        })
    }

    fn staging_slot(&self, asset: &AssetId) -> Result<Arc<StagingSlot>> {
        let home = self.home()?.to_path_buf();
        let mut ids = self.staging.ids.lock().expect("staging ids lock");
        if let Some(&s) = ids.get(asset) {
            return Ok(
                self.staging.slots.read().expect("staging slots lock")[s as usize - 1].clone(),
            );
        }
        let mut slots = self.staging.slots.write().expect("staging slots lock");
        let slot = slots.len() as u32 + 1;
        let s = Arc::new(StagingSlot {
            slot,
            asset: asset.clone(),
            dir: {
                let store = self.meta.catalog().store();
                crate::catalog::staging::write_label(&home, store);
                crate::catalog::staging::locate(&home, store, asset)
            },
            st: OnceLock::new(),
            base: Mutex::new(None),
        });
        slots.push(s.clone());
        ids.insert(asset.clone(), slot);
        Ok(s)
    }

    /// The inode of `<name>@staging` (allocated without touching disk).
    pub(crate) fn staging_root_ino(&self, asset: &AssetId) -> u64 {
        match self.staging_slot(asset) {
            Ok(s) => ino(s.slot, ROOT),
            Err(_) => 0,
        }
    }

    /// Assets of a kind that have a staging area on this node but no version.
    pub(crate) fn staged_only_assets(&self, kind: Kind) -> Vec<AssetName> {
        let Ok(home) = self.home() else {
            return vec![];
        };
        let probe = AssetId {
            kind,
            name: AssetName::parse("x").expect("valid name"),
        };
        let dir = staging_dir(home, &self.meta.catalog().store().id(), &probe);
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

    /// The staging area of an asset, initialised from its latest version.
    /// Without `create`, an asset with neither versions nor staging is ENOENT.
    pub(crate) async fn staging_for(
        &self,
        asset: &AssetId,
        create: bool,
    ) -> Result<Arc<StagingSlot>> {
        let slot = self.staging_slot(asset)?;
        let st = slot.st()?;
        if st.base()?.is_some() {
            return Ok(slot);
        }
        let catalog = self.meta.catalog();
        match catalog.latest(asset).await? {
            Some(v) => {
                let rec = self.meta.record(asset, v).await?;
                let m = self.meta.manifest(&rec.manifest).await?;
                st.init(Some((v, &rec.manifest, &m)))?;
            }
            None if create => st.init(None)?,
            None => return Err(VfsError::NotFound),
        }
        Ok(slot)
    }

    async fn staging_base(&self, slot: &StagingSlot) -> Result<Option<Arc<Manifest>>> {
        let Some((_, Some(hash))) = slot.st()?.base()? else {
            return Ok(None);
        };
        if let Some((h, m)) = &*slot.base.lock().expect("base lock") {
            if *h == hash {
                return Ok(Some(m.clone()));
            }
        }
        let m = self.meta.manifest(&hash).await?;
        *slot.base.lock().expect("base lock") = Some((hash, m.clone()));
        Ok(Some(m))
    }

    /// A read of an unchanged file failed. If the base version was deleted
    /// (and gc collected its bytes), the log says so, not just "EIO".
    async fn explain_base_failure(&self, slot: &StagingSlot, path: &str) {
        let Ok(Some((Some(v), _))) = slot.st().and_then(|s| Ok(s.base()?)) else {
            return;
        };
        if let Ok(Some(d)) = self.meta.catalog().deletion(&slot.asset, v).await {
            tracing::error!(
                "{}@staging: cannot read {path}: it is unchanged since {}, which was deleted by {} at {} and collected by gc; write the file again, or reset staging",
                slot.asset,
                slot.asset.at(v),
                d.by,
                d.deleted
            );
        }
    }

    pub(crate) fn staging_attr(&self, slot: &StagingSlot, id: u64) -> Result<Attr> {
        Ok(self.node_attr(slot, &slot.st()?.get(id)?))
    }

    fn node_attr(&self, slot: &StagingSlot, n: &crate::catalog::staging::Node) -> Attr {
        self.present(Attr {
            ino: ino(slot.slot, n.id),
            kind: file_kind(n.kind),
            size: n.size,
            perm: (n.mode & 0o7777) as u16,
            mtime: self.mounted_at,
            ttl: Duration::ZERO,
        })
    }

    pub(crate) fn staging_children(
        &self,
        slot: &StagingSlot,
        id: u64,
        offset: usize,
        mut add: impl FnMut(&str, &Attr) -> bool,
    ) -> Result<()> {
        for n in slot.st()?.children(id)?.into_iter().skip(offset) {
            if add(&n.name, &self.node_attr(slot, &n)) {
                break;
            }
        }
        Ok(())
    }

    /// Makes a base file local. With `content`, its bytes are fetched first;
    /// without (it is about to be truncated to zero), it starts empty.
    async fn copy_up(&self, slot: &StagingSlot, id: u64, content: bool) -> Result<()> {
        let st = slot.st()?;
        let n = st.get(id)?;
        let Content::Base(i) = n.content else {
            return Ok(());
        };
        let mut f = crate::store::fsutil::create_private(&st.copy_path(id))
            .map_err(crate::catalog::staging::StagingError::from)?;
        if content {
            let m = self
                .staging_base(slot)
                .await?
                .ok_or(VfsError::Invalid("staging has no base manifest".into()))?;
            let e = m.entry(i as usize);
            for c in m.chunks_of(&e) {
                let data = match self.source.chunk(m.packs[c.pack as usize], *c).await {
                    Ok(d) => d,
                    Err(err) => {
                        self.explain_base_failure(slot, e.path).await;
                        return Err(err.into());
                    }
                };
                f.write_all(&data)
                    .map_err(crate::catalog::staging::StagingError::from)?;
            }
        }
        drop(f);
        st.adopt_copy(id)?;
        Ok(())
    }

    pub(crate) async fn staging_open(
        &self,
        slot: Arc<StagingSlot>,
        id: u64,
        flags: i32,
        pid: u32,
    ) -> Result<u64> {
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
            self.copy_up(&slot, id, !trunc).await?;
            if trunc {
                st.truncate(id, 0)?;
            }
            file = Some(st.data_file(id)?);
            st.add_writer(id, pid)?;
        }
        st.opened(id);
        Ok(self.add_handle(OpenFile::Staging {
            slot,
            id,
            writable,
            pid,
            file,
        }))
    }

    pub(crate) async fn staging_read(
        &self,
        slot: &StagingSlot,
        id: u64,
        offset: u64,
        size: u32,
    ) -> Result<Bytes> {
        let st = slot.st()?;
        let n = st.get(id)?;
        match n.content {
            Content::Local => Ok(Bytes::from(st.read_local(id, offset, size as usize)?)),
            Content::Base(i) => {
                let m = self
                    .staging_base(slot)
                    .await?
                    .ok_or(VfsError::Invalid("staging has no base manifest".into()))?;
                let e = m.entry(i as usize);
                let map = ChunkMap::new(&m, &e);
                match read_range(&self.source, &m, &e, &map, offset, size as u64, None).await {
                    Ok(b) => Ok(b),
                    Err(err) => {
                        self.explain_base_failure(slot, e.path).await;
                        Err(err.into())
                    }
                }
            }
            Content::None => Err(VfsError::IsDir),
        }
    }

    /// Writes through an open handle. Synchronous (a `pwrite` into the page
    /// cache), so the adapter runs it where the request arrived, on data it
    /// does not copy.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        match &*self.handle(fh)? {
            OpenFile::Staging {
                file: Some(f),
                writable: true,
                ..
            } => Ok(crate::catalog::staging::write_at(f, offset, data)? as u32),
            OpenFile::Staging { .. } => Err(VfsError::BadHandle),
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn fsync(&self, fh: u64) -> Result<()> {
        if let OpenFile::Staging { slot, id, .. } = &*self.handle(fh)? {
            slot.st()?.fsync(*id)?;
        }
        Ok(())
    }

    pub async fn setattr(&self, i: u64, mode: Option<u32>, size: Option<u64>) -> Result<Attr> {
        let Node::Staging(slot, id) = self.node(i)? else {
            return Err(VfsError::ReadOnly);
        };
        let st = slot.st()?;
        if let Some(size) = size {
            if st.get(id)?.kind == EntryKind::Dir {
                return Err(VfsError::IsDir);
            }
            self.copy_up(&slot, id, size > 0).await?;
            st.truncate(id, size)?;
        }
        if let Some(mode) = mode {
            st.chmod(id, mode)?;
        }
        self.staging_attr(&slot, id)
    }

    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        pid: u32,
    ) -> Result<(Attr, u64)> {
        let Node::Staging(slot, dir) = self.node(parent)? else {
            return Err(VfsError::ReadOnly);
        };
        let st = slot.st()?;
        let n = st.create(dir, name, mode)?;
        let file = st.data_file(n.id)?;
        st.add_writer(n.id, pid)?;
        st.opened(n.id);
        let attr = self.staging_attr(&slot, n.id)?;
        let fh = self.add_handle(OpenFile::Staging {
            slot,
            id: n.id,
            writable: true,
            pid,
            file: Some(file),
        });
        Ok((attr, fh))
    }

    pub async fn mkdir(&self, parent: u64, name: &str, mode: u32) -> Result<Attr> {
        match self.node(parent)? {
            Node::Staging(slot, dir) => {
                let n = slot.st()?.mkdir(dir, name, mode)?;
                self.staging_attr(&slot, n.id)
            }
            // `mkdir MNT/models/<name>@staging` starts a new asset.
            Node::KindDir(kind) => {
                let Some(asset_name) = name.strip_suffix("@staging") else {
                    return Err(VfsError::ReadOnly);
                };
                let name = AssetName::parse(asset_name).map_err(|e| {
                    tracing::warn!("mkdir {name}: {e}");
                    VfsError::Invalid(e.to_string())
                })?;
                let asset = AssetId { kind, name };
                let slot = self.staging_slot(&asset)?;
                if slot.st()?.base()?.is_some() {
                    return Err(crate::catalog::staging::StagingError::Exists.into());
                }
                let slot = self.staging_for(&asset, true).await?;
                self.staging_attr(&slot, ROOT)
            }
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn unlink(&self, parent: u64, name: &str) -> Result<()> {
        match self.node(parent)? {
            Node::Staging(slot, dir) => Ok(slot.st()?.unlink(dir, name)?),
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<()> {
        match self.node(parent)? {
            Node::Staging(slot, dir) => Ok(slot.st()?.rmdir(dir, name)?),
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn symlink(&self, parent: u64, name: &str, target: &str) -> Result<Attr> {
        match self.node(parent)? {
            Node::Staging(slot, dir) => {
                let n = slot.st()?.symlink(dir, name, target)?;
                self.staging_attr(&slot, n.id)
            }
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
    ) -> Result<()> {
        match (self.node(parent)?, self.node(newparent)?) {
            (Node::Staging(a, d1), Node::Staging(b, d2)) if a.slot == b.slot => {
                Ok(a.st()?.rename(d1, name, d2, newname)?)
            }
            (Node::Staging(..), Node::Staging(..)) => {
                Err(VfsError::CrossDevice("between two assets' staging areas"))
            }
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn link(&self, i: u64) -> Result<Attr> {
        match self.node(i)? {
            Node::Staging(..) => Err(VfsError::NotPermitted("hard links are not supported")),
            _ => Err(VfsError::ReadOnly),
        }
    }

    /// True for staging files: the kernel must not keep their pages across
    /// opens (a commit or reset elsewhere changes them).
    pub fn is_staging(&self, i: u64) -> bool {
        i & STAGING_BIT != 0
    }
}
