//! The mount's filesystem logic, independent of FUSE: inode numbering,
//! lookup, attributes, directory listings, symlinks, reads and xattrs.
//! `fuse.rs` only translates between this and the kernel, so everything here
//! is testable without a mount.
//!
//! Layout (docs/usage.md):
//! ```text
//! /models/<name>@<v>/...      a version's files (immutable)
//! /models/<name>@<v>.json     its sidecar
//! /models/<name>@<alias>      symlink -> <name>@<v> (latest and user aliases)
//! /models/<name>@staging/     this node's writable working copy
//! /features/...
//! ```
//!
//! [`Vfs`] composes the parts below and dispatches each operation on the
//! node an inode names; the parts never see it:
//! - `inodes.rs`: inode numbers (pure arithmetic);
//! - `versions.rs`: committed versions, their manifests and trees;
//! - `misc.rs`: inodes of sidecars and alias links;
//! - `listings.rs`: versions and aliases per kind, refreshed;
//! - `only.rs`: the root of an `--only` mount;
//! - `sidecars.rs`: the sidecar files;
//! - `handles.rs`: open files;
//! - `staging_view.rs`: the `@staging` directories;
//! - `plus.rs`, `policy.rs`, `ownership.rs`: what the kernel is told and
//!   may cache, and what is refused;
//! - `attr.rs`, `error.rs`, `config.rs`: the types they share.

mod attr;
mod config;
mod error;
mod handles;
mod inodes;
mod listings;
mod misc;
mod only;
pub mod ownership;
mod plus;
mod policy;
mod sidecars;
mod staging_view;
mod versions;

#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::catalog::{CatalogCache, Listing};
use crate::format::{parse_version, validate_alias, AssetId, AssetName, Kind};
use crate::format::{EntryKind, Manifest};
use crate::mount::readahead::{read_range, ReadAhead};
use crate::mount::reader::{ChunkMap, ChunkSource};

pub use attr::{Attr, DirEntry, FileKind, XATTR_BLAKE3};
pub use config::{VfsConfig, DEFAULT_MANIFEST_CACHE};
pub use error::{Result, VfsError};
pub use inodes::ROOT;
pub use ownership::Ownership;
pub use policy::{DirCache, PageCache};

use handles::{Handles, OpenFile};
use inodes::{decode, is_staging, kind_ino, Ino};
use listings::Listings;
use misc::{Misc, MiscInodes};
use only::{Found, OnlyRoot};
use plus::PlusPolicy;
use policy::{unsupported_change, NameUse};
use sidecars::Sidecars;
use staging_view::{Ctx, StagingSlot, StagingView};
use versions::{VersionSlot, Versions};

/// What an inode is, with the table rows it refers to.
enum Node {
    Root,
    KindDir(Kind),
    VersionRoot(Arc<VersionSlot>),
    Entry(Arc<VersionSlot>, u32),
    Misc(Misc),
    Staging(Arc<StagingSlot>, u64),
}

pub struct Vfs {
    meta: Arc<CatalogCache>,
    source: Arc<ChunkSource>,
    cfg: VfsConfig,
    versions: Versions,
    misc: MiscInodes,
    listings: Listings,
    sidecars: Sidecars,
    handles: Handles,
    staging: StagingView,
    plus: PlusPolicy,
    /// `--only`: the root shows one version.
    only: Option<OnlyRoot>,
    mounted_at: SystemTime,
}

impl Vfs {
    pub fn new(meta: CatalogCache, source: Arc<ChunkSource>, cfg: VfsConfig) -> Vfs {
        let meta = Arc::new(meta);
        let mounted_at = SystemTime::now();
        Vfs {
            versions: Versions::new(meta.clone(), cfg.manifest_cache, mounted_at),
            misc: MiscInodes::default(),
            listings: Listings::new(meta.clone(), cfg.refresh),
            sidecars: Sidecars::new(meta.clone(), cfg.refresh),
            handles: Handles::default(),
            staging: StagingView::new(cfg.staging_home.clone()),
            plus: PlusPolicy::new(),
            only: cfg.only.clone().map(|r| OnlyRoot::new(r, cfg.refresh)),
            meta,
            source,
            cfg,
            mounted_at,
        }
    }

    pub fn source(&self) -> &Arc<ChunkSource> {
        &self.source
    }

    /// What staging operations use of this mount.
    fn cx(&self) -> Ctx<'_> {
        Ctx {
            source: &self.source,
            meta: &self.meta,
            owner: &self.cfg.owner,
            mounted_at: self.mounted_at,
        }
    }

    /// Seeds the listing cache (used at mount time, and with a saved listing
    /// when the store is unreachable).
    pub fn seed_listing(&self, kind: Kind, listing: Listing) {
        self.listings.seed(kind, listing);
    }

    /// The version an `--only` mount shows now: a fixed version, or the one
    /// its alias (or `latest`) points at in the current listing.
    pub async fn only_version(&self) -> Result<(AssetId, u64)> {
        let only = self.only.as_ref().ok_or(VfsError::NotFound)?;
        only.version(&self.listings).await
    }

    fn node(&self, ino: u64) -> Result<Node> {
        let node = match decode(ino).ok_or(VfsError::NotFound)? {
            Ino::Root => Some(Node::Root),
            Ino::KindDir(k) => Some(Node::KindDir(k)),
            Ino::Misc(i) => self.misc.get(i).map(Node::Misc),
            Ino::VersionRoot { slot } => self.versions.slot(slot).map(Node::VersionRoot),
            Ino::Entry { slot, idx } => self.versions.slot(slot).map(|vs| Node::Entry(vs, idx)),
            Ino::Staging { slot, id } => self.staging.slot(slot).map(|s| Node::Staging(s, id)),
        };
        node.ok_or(VfsError::NotFound)
    }

    /// Manifests in the cache, their bytes, and how many were evicted.
    pub fn manifest_cache_stats(&self) -> (usize, usize, u64) {
        self.versions.cache_stats()
    }

    /// The manifest of the version that `ino` (its directory or a file in
    /// it) belongs to.
    pub async fn manifest_of(&self, ino: u64) -> Result<Arc<Manifest>> {
        match self.node(ino)? {
            Node::VersionRoot(vs) | Node::Entry(vs, _) => self.versions.manifest(&vs).await,
            _ => Err(VfsError::NotFound),
        }
    }

    /// The attributes of `ino`, with the mount's ownership policy applied.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        Ok(self.cfg.owner.present(self.stored_attr(ino).await?))
    }

    /// Who owns everything this mount shows (`--uid/--gid`).
    pub fn owner(&self) -> Ownership {
        self.cfg.owner
    }

    async fn stored_attr(&self, ino: u64) -> Result<Attr> {
        let refresh = self.cfg.refresh;
        match self.node(ino)? {
            Node::Staging(slot, id) => staging_view::attr(&self.cx(), &slot, id),
            Node::Root => match &self.only {
                Some(only) => {
                    let vs = only.slot(&self.listings, &self.versions).await?;
                    self.versions.manifest(&vs).await?;
                    Ok(Attr::dir(ino, refresh, self.versions.created(&vs)))
                }
                None => Ok(Attr::dir(ino, refresh, self.mounted_at)),
            },
            Node::KindDir(_) => Ok(Attr::dir(ino, refresh, self.mounted_at)),
            Node::VersionRoot(vs) => {
                self.versions.manifest(&vs).await?;
                // Its name is looked up again each refresh interval, so a
                // deleted version stops resolving (its contents stay cached).
                Ok(Attr::dir(ino, refresh, self.versions.created(&vs)))
            }
            Node::Entry(vs, i) => self.versions.entry_attr(&vs, i).await,
            Node::Misc(Misc::Sidecar(asset, v)) => {
                let bytes = self.sidecars.get(&self.listings, &asset, v).await?;
                Ok(Attr::new(
                    ino,
                    FileKind::File,
                    bytes.len() as u64,
                    0o444,
                    self.mounted_at,
                    refresh,
                ))
            }
            Node::Misc(Misc::Alias(asset, alias)) => {
                let target = self.listings.alias_target(&asset, &alias).await?;
                Ok(Attr::new(
                    ino,
                    FileKind::Symlink,
                    target.len() as u64,
                    0o777,
                    self.mounted_at,
                    refresh,
                ))
            }
        }
    }

    pub async fn lookup(&self, parent: u64, name: impl AsRef<OsStr>) -> Result<Attr> {
        let name = policy::name(name.as_ref(), NameUse::Existing)?;
        self.plus.lookup_in(parent);
        let a = match self.node(parent)? {
            Node::Root if self.only.is_some() => self.lookup_in_only_root(name).await?,
            Node::Root => {
                let kind: Kind = name.parse().map_err(|_| VfsError::NotFound)?;
                self.getattr(kind_ino(kind)).await?
            }
            Node::KindDir(kind) => self.lookup_in_kind(kind, name).await?,
            Node::VersionRoot(vs) => self.versions.lookup(&vs, None, name).await?,
            Node::Entry(vs, i) => self.versions.lookup(&vs, Some(i), name).await?,
            Node::Misc(_) => return Err(VfsError::NotDir),
            Node::Staging(slot, id) => staging_view::lookup(&self.cx(), &slot, id, name)?,
        };
        Ok(self.cfg.owner.present(a))
    }

    async fn lookup_in_only_root(&self, name: &str) -> Result<Attr> {
        let only = self.only.as_ref().ok_or(VfsError::NotFound)?;
        match only.lookup(&self.listings, &self.versions, name).await? {
            Found::Sidecar(vs) => {
                let ino = self.misc.ino(Misc::Sidecar(vs.asset.clone(), vs.version));
                self.getattr(ino).await
            }
            Found::Entry(a) => Ok(a),
        }
    }

    async fn lookup_in_kind(&self, kind: Kind, name: &str) -> Result<Attr> {
        let (base, sidecar) = match name.strip_suffix(".json") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let (asset_name, sel) = base.rsplit_once('@').ok_or(VfsError::NotFound)?;
        let asset = AssetId {
            kind,
            name: AssetName::parse(asset_name).map_err(|_| VfsError::NotFound)?,
        };
        if sel == "staging" && !sidecar {
            let slot = self.staging.area(&self.meta, &asset, false).await?;
            return staging_view::attr(&self.cx(), &slot, crate::catalog::ROOT);
        }
        if let Ok(v) = parse_version(sel) {
            if !self.listings.version_exists(&asset, v).await? {
                return Err(VfsError::NotFound);
            }
            let ino = if sidecar {
                self.misc.ino(Misc::Sidecar(asset.clone(), v))
            } else {
                self.versions.slot_for(&asset, v).ino()
            };
            return self.getattr(ino).await;
        }
        if sidecar || (sel != "latest" && validate_alias(sel).is_err()) {
            return Err(VfsError::NotFound);
        }
        let ino = self.misc.ino(Misc::Alias(asset.clone(), sel.to_string()));
        match self.getattr(ino).await {
            // An alias set since the last refresh: look once more, fresh.
            Err(VfsError::NotFound) => {
                self.listings.get(kind, true).await?;
                self.getattr(ino).await
            }
            r => r,
        }
    }

    /// Up to `limit` children of a directory, starting at index `offset`.
    pub async fn readdir(&self, ino: u64, offset: usize, limit: usize) -> Result<Vec<DirEntry>> {
        let mut out = vec![];
        self.readdir_plus(ino, offset, |name, a| {
            out.push(DirEntry {
                ino: a.ino,
                kind: a.kind,
                name: name.to_string(),
            });
            out.len() >= limit
        })
        .await?;
        Ok(out)
    }

    /// The children of a directory from index `offset`, each with its
    /// attributes, handed to `add` until it returns true (the kernel's reply
    /// buffer is full). Serves READDIR and READDIRPLUS; nothing is allocated
    /// per entry of a version. Attributes that would cost a fetch (a sidecar's
    /// size, an unopened version's time) are not fetched: they come with a
    /// zero TTL, so the kernel asks again by LOOKUP when it needs them.
    pub async fn readdir_plus(
        &self,
        ino: u64,
        offset: usize,
        mut add: impl FnMut(&str, &Attr) -> bool,
    ) -> Result<()> {
        let owner = self.cfg.owner;
        let mut add = |name: &str, a: &Attr| add(name, &owner.present(a.clone()));
        if let (ROOT, Some(only)) = (ino, &self.only) {
            let sidecar = only
                .children(&self.listings, &self.versions, offset, &mut add)
                .await?;
            if let Some((vs, name)) = sidecar {
                let ino = self.misc.ino(Misc::Sidecar(vs.asset.clone(), vs.version));
                add(&name, &self.getattr(ino).await?);
            }
            return Ok(());
        }
        match self.node(ino)? {
            Node::VersionRoot(vs) => self.versions.children(&vs, None, offset, add).await,
            Node::Entry(vs, i) => self.versions.children(&vs, Some(i), offset, add).await,
            Node::Staging(slot, id) => staging_view::children(&self.cx(), &slot, id, offset, add),
            other => {
                for e in self.small_dir(other).await?.into_iter().skip(offset) {
                    let a = self.listed_attr(&e).await?;
                    if add(&e.name, &a) {
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    /// How many entries a READDIRPLUS reply for `dir` from `offset` should
    /// carry (see `plus.rs`); the rest come by plain READDIR.
    pub fn readdirplus_limit(&self, dir: u64, offset: usize) -> usize {
        if self.is_immutable(dir) {
            self.plus.limit(dir, offset)
        } else {
            usize::MAX
        }
    }

    /// Attributes of an entry of the root or a kind directory, from what is
    /// in memory (see `readdir_plus`).
    async fn listed_attr(&self, e: &DirEntry) -> Result<Attr> {
        let unknown =
            |kind, size, perm| Attr::new(e.ino, kind, size, perm, self.mounted_at, Duration::ZERO);
        Ok(match self.node(e.ino)? {
            Node::Root | Node::KindDir(_) | Node::Misc(Misc::Alias(..)) => {
                self.getattr(e.ino).await?
            }
            // Like `getattr`: the name of a version is good for one refresh
            // interval (it may be deleted).
            Node::VersionRoot(vs) => match vs.created() {
                Some(t) => Attr::dir(e.ino, self.cfg.refresh, t),
                None => unknown(FileKind::Dir, 0, 0o755),
            },
            Node::Misc(Misc::Sidecar(asset, v)) => match self.sidecars.fresh_len(&asset, v) {
                Some(size) => Attr {
                    ttl: self.cfg.refresh,
                    ..unknown(FileKind::File, size, 0o444)
                },
                None => unknown(FileKind::File, 0, 0o444),
            },
            Node::Staging(..) | Node::Entry(..) => unknown(e.kind, 0, 0o755),
        })
    }

    async fn small_dir(&self, node: Node) -> Result<Vec<DirEntry>> {
        match node {
            Node::Root => Ok(Kind::ALL
                .iter()
                .map(|k| DirEntry {
                    ino: kind_ino(*k),
                    kind: FileKind::Dir,
                    name: k.to_string(),
                })
                .collect()),
            Node::KindDir(kind) => {
                let listing = self.listings.get(kind, false).await?;
                let mut out = vec![];
                for name in self.staging.staged_only_assets(&self.meta, kind) {
                    if !listing.assets.contains_key(name.as_str()) {
                        let asset = AssetId { kind, name };
                        out.push(DirEntry {
                            ino: self.staging.root_ino(&self.meta, &asset),
                            kind: FileKind::Dir,
                            name: format!("{}@staging", asset.name),
                        });
                    }
                }
                for (name, state) in &listing.assets {
                    let asset = AssetId {
                        kind,
                        name: AssetName::parse(name).map_err(|_| VfsError::NotFound)?,
                    };
                    for v in &state.versions {
                        out.push(DirEntry {
                            ino: self.versions.slot_for(&asset, *v).ino(),
                            kind: FileKind::Dir,
                            name: format!("{name}@{v}"),
                        });
                        out.push(DirEntry {
                            ino: self.misc.ino(Misc::Sidecar(asset.clone(), *v)),
                            kind: FileKind::File,
                            name: format!("{name}@{v}.json"),
                        });
                    }
                    if self.staging.enabled() {
                        out.push(DirEntry {
                            ino: self.staging.root_ino(&self.meta, &asset),
                            kind: FileKind::Dir,
                            name: format!("{name}@staging"),
                        });
                    }
                    let aliases = state
                        .versions
                        .last()
                        .map(|_| "latest")
                        .into_iter()
                        .chain(state.aliases.keys().map(String::as_str));
                    for a in aliases {
                        out.push(DirEntry {
                            ino: self.misc.ino(Misc::Alias(asset.clone(), a.to_string())),
                            kind: FileKind::Symlink,
                            name: format!("{name}@{a}"),
                        });
                    }
                }
                Ok(out)
            }
            _ => Err(VfsError::NotDir),
        }
    }

    pub async fn readlink(&self, ino: u64) -> Result<String> {
        match self.node(ino)? {
            Node::Misc(Misc::Alias(asset, alias)) => {
                self.listings.alias_target(&asset, &alias).await
            }
            Node::Entry(vs, i) => {
                let m = self.versions.manifest(&vs).await?;
                let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                e.target.map(str::to_string).ok_or(VfsError::NotSymlink)
            }
            Node::Staging(slot, id) => staging_view::readlink(&slot, id),
            _ => Err(VfsError::NotSymlink),
        }
    }

    /// Opens a file. Write access is refused outside `@staging`.
    pub async fn open(&self, ino: u64, flags: i32, pid: u32) -> Result<u64> {
        if let Node::Staging(slot, id) = self.node(ino)? {
            let h = staging_view::open(&self.cx(), slot, id, flags, pid).await?;
            return Ok(self.handles.add(OpenFile::Staging(h)));
        }
        let acc = flags & libc::O_ACCMODE;
        if acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            return Err(VfsError::ReadOnly);
        }
        let file = match self.node(ino)? {
            Node::Entry(vs, i) => {
                let m = self.versions.manifest(&vs).await?;
                let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                match e.kind {
                    EntryKind::Dir => return Err(VfsError::IsDir),
                    EntryKind::Symlink => return Err(VfsError::NotFound),
                    EntryKind::File => {}
                }
                let map = ChunkMap::new(&m, &e);
                if map.size() <= self.source.config().initial_window {
                    self.source.opened_small(&m, &e);
                }
                OpenFile::Version {
                    manifest: m.clone(),
                    idx: i,
                    map,
                    readahead: Mutex::new(ReadAhead::default()),
                }
            }
            // The sidecar is snapshotted at open: it never changes under a reader.
            Node::Misc(Misc::Sidecar(asset, v)) => {
                OpenFile::Bytes(self.sidecars.get(&self.listings, &asset, v).await?)
            }
            _ => return Err(VfsError::IsDir),
        };
        Ok(self.handles.add(file))
    }

    /// Whether opening `ino` may wait for the disk or the store beyond
    /// loading a manifest (a staging file may be copied up).
    pub fn open_may_block(&self, ino: u64) -> bool {
        is_staging(ino)
    }

    /// Whether reading `ino` may wait for the disk beyond a small read of
    /// the chunk cache (a staging file reads its data file). Other reads are
    /// tried on the session thread first: a cache hit is then answered
    /// without handing the request to another thread, which is most of what
    /// a small random read costs.
    pub fn read_may_block(&self, ino: u64) -> bool {
        is_staging(ino)
    }

    /// How the kernel may cache the pages of `ino` once opened.
    pub fn page_cache(&self, ino: u64) -> PageCache {
        if self.is_immutable(ino) {
            PageCache::Keep
        } else if is_staging(ino) {
            PageCache::Default
        } else {
            PageCache::Direct
        }
    }

    /// How the kernel may cache the listing of directory `ino`.
    pub fn dir_cache(&self, ino: u64) -> DirCache {
        if self.is_immutable(ino) {
            DirCache::Keep
        } else {
            DirCache::None
        }
    }

    /// True for a committed version's files and directories, whose content
    /// never changes, so the kernel may keep their pages (and listings) across
    /// opens. A sidecar changes when aliases move, so it is not.
    fn is_immutable(&self, ino: u64) -> bool {
        matches!(self.node(ino), Ok(Node::Entry(..) | Node::VersionRoot(..)))
    }

    pub fn release(&self, fh: u64) {
        if let Some(f) = self.handles.remove(fh) {
            if let OpenFile::Staging(h) = &*f {
                staging_view::release(h);
            }
        }
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        let f = self.handles.get(fh)?;
        match &*f {
            OpenFile::Bytes(b) => {
                let s = (offset as usize).min(b.len());
                let e = (s + size as usize).min(b.len());
                Ok(b.slice(s..e))
            }
            OpenFile::Version {
                manifest,
                idx,
                map,
                readahead,
            } => {
                let e = manifest.entry(*idx as usize);
                let (off, len) = (offset, size as u64);
                Ok(read_range(&self.source, manifest, &e, map, off, len, Some(readahead)).await?)
            }
            OpenFile::Staging(h) => staging_view::read(&self.cx(), h, offset, size).await,
        }
    }

    pub async fn getxattr(&self, ino: u64, name: impl AsRef<OsStr>) -> Result<Vec<u8>> {
        // Compared lossily: a name that is not UTF-8 never matches ours.
        let name = name.as_ref().to_string_lossy();
        // No security, system (ACL) or trusted attributes here: saying so
        // (EOPNOTSUPP rather than "no such attribute") lets `ls -l`, which
        // asks for an SELinux label and an ACL of every file, remember it
        // for the whole mount instead of asking twice per file.
        if !name.starts_with("user.") {
            return Err(VfsError::XattrNamespace);
        }
        if name != XATTR_BLAKE3 {
            return Err(VfsError::NoAttr);
        }
        match self.node(ino)? {
            Node::Entry(vs, i) => {
                let m = self.versions.manifest(&vs).await?;
                let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                if e.kind != EntryKind::File {
                    return Err(VfsError::NoAttr);
                }
                Ok(crate::format::to_hex(&e.hash).into_bytes())
            }
            _ => Err(VfsError::NoAttr),
        }
    }

    pub async fn listxattr(&self, ino: u64) -> Result<Vec<u8>> {
        match self.getxattr(ino, XATTR_BLAKE3).await {
            Ok(_) => Ok(format!("{XATTR_BLAKE3}\0").into_bytes()),
            Err(VfsError::NoAttr) => Ok(vec![]),
            Err(e) => Err(e),
        }
    }

    // Everything below modifies the tree: only `@staging` accepts it;
    // committed versions answer EROFS.

    /// Writes through an open handle. Synchronous (a `pwrite` into the page
    /// cache), so the adapter runs it where the request arrived, on data it
    /// does not copy.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        match &*self.handles.get(fh)? {
            OpenFile::Staging(h) => staging_view::write(h, offset, data),
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn fsync(&self, fh: u64) -> Result<()> {
        match &*self.handles.get(fh)? {
            OpenFile::Staging(h) => staging_view::fsync(h),
            _ => Ok(()),
        }
    }

    pub async fn setattr(&self, ino: u64, mode: Option<u32>, size: Option<u64>) -> Result<Attr> {
        let Node::Staging(slot, id) = self.node(ino)? else {
            return Err(VfsError::ReadOnly);
        };
        staging_view::setattr(&self.cx(), &slot, id, mode, size).await
    }

    /// Creates a file and opens it for writing.
    pub async fn create(
        &self,
        parent: u64,
        name: impl AsRef<OsStr>,
        mode: u32,
        pid: u32,
    ) -> Result<(Attr, u64)> {
        let name = policy::name(name.as_ref(), NameUse::New)?;
        let Node::Staging(slot, dir) = self.node(parent)? else {
            return Err(VfsError::ReadOnly);
        };
        let (attr, h) = staging_view::create(&self.cx(), slot, dir, name, mode, pid)?;
        Ok((attr, self.handles.add(OpenFile::Staging(h))))
    }

    pub async fn mkdir(&self, parent: u64, name: impl AsRef<OsStr>, mode: u32) -> Result<Attr> {
        let name = policy::name(name.as_ref(), NameUse::New)?;
        match self.node(parent)? {
            Node::Staging(slot, dir) => staging_view::mkdir(&self.cx(), &slot, dir, name, mode),
            // `mkdir MNT/models/<name>@staging` starts a new asset.
            Node::KindDir(kind) => self.staging.start_new(&self.cx(), kind, name).await,
            _ => Err(VfsError::ReadOnly),
        }
    }

    /// Device nodes and FIFOs have no place in a model or feature set.
    pub fn mknod(&self, parent: u64) -> VfsError {
        if is_staging(parent) {
            VfsError::NotPermitted("device nodes and FIFOs are not supported")
        } else {
            VfsError::ReadOnly
        }
    }

    pub async fn unlink(&self, parent: u64, name: impl AsRef<OsStr>) -> Result<()> {
        let name = policy::name(name.as_ref(), NameUse::Existing)?;
        match self.node(parent)? {
            Node::Staging(slot, dir) => staging_view::unlink(&slot, dir, name),
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn rmdir(&self, parent: u64, name: impl AsRef<OsStr>) -> Result<()> {
        let name = policy::name(name.as_ref(), NameUse::Existing)?;
        match self.node(parent)? {
            Node::Staging(slot, dir) => staging_view::rmdir(&slot, dir, name),
            _ => Err(VfsError::ReadOnly),
        }
    }

    pub async fn symlink(
        &self,
        parent: u64,
        name: impl AsRef<OsStr>,
        target: impl AsRef<OsStr>,
    ) -> Result<Attr> {
        let name = policy::name(name.as_ref(), NameUse::New)?;
        let target = policy::name(target.as_ref(), NameUse::New)?;
        match self.node(parent)? {
            Node::Staging(slot, dir) => staging_view::symlink(&self.cx(), &slot, dir, name, target),
            _ => Err(VfsError::ReadOnly),
        }
    }

    /// Renames `name` in `parent` to `newname` in `newparent`. No `flags`
    /// (RENAME_EXCHANGE, RENAME_NOREPLACE) are supported.
    pub async fn rename(
        &self,
        parent: u64,
        name: impl AsRef<OsStr>,
        newparent: u64,
        newname: impl AsRef<OsStr>,
        flags: u32,
    ) -> Result<()> {
        if flags != 0 {
            return Err(VfsError::Invalid(format!("rename flags {flags:#x}")));
        }
        let name = policy::name(name.as_ref(), NameUse::Existing)?;
        let newname = policy::name(newname.as_ref(), NameUse::Existing)?;
        match (self.node(parent)?, self.node(newparent)?) {
            (Node::Staging(a, d1), Node::Staging(b, d2)) => {
                staging_view::rename((&a, d1), name, (&b, d2), newname)
            }
            _ => Err(VfsError::ReadOnly),
        }
    }

    /// Hard links are refused everywhere.
    pub fn link(&self, ino: u64) -> VfsError {
        match self.node(ino) {
            Err(e) => e,
            Ok(Node::Staging(..)) => VfsError::NotPermitted("hard links are not supported"),
            Ok(_) => VfsError::ReadOnly,
        }
    }

    /// Extended attributes cannot be set.
    pub fn setxattr(&self, ino: u64) -> Result<()> {
        Err(unsupported_change(
            is_staging(ino),
            "extended attributes cannot be set",
        ))
    }

    pub fn removexattr(&self, ino: u64) -> Result<()> {
        Err(unsupported_change(
            is_staging(ino),
            "extended attributes cannot be removed",
        ))
    }

    /// No preallocation (`fallocate`).
    pub fn fallocate(&self, ino: u64) -> Result<()> {
        Err(unsupported_change(
            is_staging(ino),
            "fallocate is not supported",
        ))
    }
}
