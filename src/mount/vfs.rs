//! The mount's filesystem logic, independent of FUSE: inode numbering,
//! lookup, attributes, directory listings, symlinks, reads and xattrs.
//! `fs.rs` only translates between this and the kernel, so everything here
//! is testable without a mount.
//!
//! Layout (DESIGN.md section 2):
//! ```text
//! /models/<name>@<v>/...      a version's files (immutable)
//! /models/<name>@<v>.json     its sidecar
//! /models/<name>@<alias>      symlink -> <name>@<v> (latest and user aliases)
//! /features/...
//! ```
//! Inodes: 1 root, 2 `models`, 3 `features`; sidecars and alias links get
//! small numbers from a table; a version's tree is `slot << 32 | index`, with
//! index 0 the version directory and `i + 1` manifest entry `i`, so a
//! 1,000,000-file version needs no per-file inode table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::catalog::catalog_cache::{CatalogCache, Listing};
use crate::catalog::versions::CatalogError;
use crate::format::manifest::{EntryKind, Manifest};
use crate::format::names::{parse_version, validate_alias, AssetId, AssetName, Kind};
use crate::mount::readahead::{read_range, ReadAhead};
use crate::mount::reader::{ChunkMap, ChunkSource, ReadError};
use crate::store::errno::ToErrno;

pub const ROOT: u64 = 1;
const MISC_BASE: u64 = 16;
/// Immutable things may be cached by the kernel (practically) forever.
pub const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);
pub const XATTR_BLAKE3: &str = "user.assetfs.blake3";

#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("not a symlink")]
    NotSymlink,
    #[error("read-only: committed versions are immutable")]
    ReadOnly,
    #[error("no such attribute")]
    NoAttr,
    #[error("extended attributes outside the user namespace are not supported")]
    XattrNamespace,
    #[error("bad file handle")]
    BadHandle,
    #[error("read failed: {0}")]
    Read(#[from] ReadError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("staging: {0}")]
    Staging(#[from] crate::catalog::staging::StagingError),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("cross-device: {0}")]
    CrossDevice(&'static str),
}

impl ToErrno for VfsError {
    fn errno(&self) -> libc::c_int {
        match self {
            VfsError::NotFound => libc::ENOENT,
            VfsError::NotDir => libc::ENOTDIR,
            VfsError::IsDir => libc::EISDIR,
            VfsError::NotSymlink => libc::EINVAL,
            VfsError::ReadOnly => libc::EROFS,
            VfsError::NoAttr => libc::ENODATA,
            VfsError::XattrNamespace => libc::EOPNOTSUPP,
            VfsError::BadHandle => libc::EBADF,
            VfsError::Read(e) => e.errno(),
            VfsError::Catalog(e) => e.errno(),
            VfsError::Staging(e) => e.errno(),
            VfsError::Invalid(_) => libc::EINVAL,
            VfsError::NotPermitted(_) => libc::EPERM,
            VfsError::CrossDevice(_) => libc::EXDEV,
        }
    }
}

pub type Result<T, E = VfsError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    Symlink,
}

#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    pub perm: u16,
    pub mtime: SystemTime,
    /// How long the kernel may cache this entry and attribute.
    pub ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: FileKind,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct VfsConfig {
    /// How often listings of versions and aliases are refreshed.
    pub refresh: Duration,
    /// Where staging areas live (the data dir); `None` disables `@staging`.
    pub staging_home: Option<std::path::PathBuf>,
    /// Owner and permission bits of everything shown (`--uid` etc.).
    pub owner: crate::mount::ownership::Ownership,
    /// `--only`: show this version (or the version this alias or `latest`
    /// points at, followed at each refresh) at the root instead of the catalog.
    pub only: Option<crate::format::names::Reference>,
    /// Bound on the memory of decoded manifests kept for reuse (bytes).
    pub manifest_cache: u64,
}

/// A committed version that the mount has looked at. Its inode numbers
/// (`slot << 32 | index`) stay valid while its manifest comes and goes from
/// the manifest cache: entries are sorted, so a reloaded manifest numbers
/// them the same way.
pub struct VersionSlot {
    pub slot: u32,
    pub asset: AssetId,
    pub version: u64,
    created: OnceCell<SystemTime>,
    /// The manifest while anyone holds it (the cache, an open file), so a
    /// version evicted from the cache but still open is not loaded twice.
    held: Mutex<std::sync::Weak<Manifest>>,
    /// One load at a time per version.
    loading: tokio::sync::Mutex<()>,
}

/// A version's manifest with what the mount derives from it.
pub(crate) struct Loaded {
    pub(crate) manifest: Arc<Manifest>,
    /// Directory entry index (u32::MAX for the version root) -> child indices.
    children: Mutex<HashMap<u32, Arc<Vec<u32>>>>,
}

impl Loaded {
    /// Bytes counted against the manifest cache: the manifest, plus room for
    /// its directories' child lists (4 bytes per entry at most).
    fn cost(&self) -> usize {
        self.manifest.mem_bytes() + 4 * self.manifest.len()
    }
}

/// Manifests of versions recently used, bounded in bytes (least recently
/// used first out; the last one used always stays, whatever its size).
struct ManifestCache {
    lru: lru::LruCache<u32, Arc<Loaded>>,
    bytes: usize,
    limit: usize,
    evicted: u64,
}

impl ManifestCache {
    fn insert(&mut self, slot: u32, l: Arc<Loaded>) {
        self.bytes += l.cost();
        if let Some(old) = self.lru.put(slot, l) {
            self.bytes -= old.cost();
        }
        while self.bytes > self.limit && self.lru.len() > 1 {
            if let Some((_, old)) = self.lru.pop_lru() {
                self.bytes -= old.cost();
                self.evicted += 1;
            }
        }
    }
}

/// How many entries the first READDIRPLUS reply of a version directory
/// carries. With READDIRPLUS_AUTO the kernel asks for attributes again only
/// if the entries it got were used, and the kernel's cost of an entry with
/// attributes (an inode and a dentry made at once) is what makes `find`,
/// which only needs names and types, slower than a plain listing. But a
/// reader that lists a whole directory first and stats afterwards (`du`, any
/// fts walk) then stats entries the kernel never got attributes for, one
/// LOOKUP each. So: short first replies, until LOOKUPs of entries in
/// directories just listed that way show a reader that stats what it lists;
/// then whole replies for a while (and a short one again now and then, to
/// notice when that reader is gone).
pub(crate) struct PlusPolicy {
    state: Mutex<PlusState>,
}

#[derive(Default)]
struct PlusState {
    /// Directories recently listed with a short first reply.
    short: std::collections::VecDeque<u64>,
    /// LOOKUPs in those since the last switch.
    evidence: u32,
    /// Whole replies until then.
    whole_until: Option<Instant>,
}

/// Entries in a short first reply.
pub const PLUS_FIRST_BATCH: usize = 64;
/// LOOKUPs in just-listed directories that switch to whole replies.
const PLUS_EVIDENCE: u32 = 32;
/// How long whole replies last after the evidence.
const PLUS_WHOLE_FOR: Duration = Duration::from_secs(10);

impl PlusPolicy {
    fn new() -> PlusPolicy {
        PlusPolicy {
            state: Mutex::new(PlusState::default()),
        }
    }

    /// Entries to put in a READDIRPLUS reply of `dir` from `offset`.
    fn limit(&self, dir: u64, offset: usize) -> usize {
        if offset > 0 {
            // The kernel asks again with attributes only when it saw them used.
            return usize::MAX;
        }
        let mut st = self.state.lock().expect("plus policy lock");
        if st.whole_until.is_some_and(|t| Instant::now() < t) {
            return usize::MAX;
        }
        if !st.short.contains(&dir) {
            if st.short.len() == 8 {
                st.short.pop_front();
            }
            st.short.push_back(dir);
        }
        PLUS_FIRST_BATCH
    }

    /// A LOOKUP in `dir`.
    fn lookup_in(&self, dir: u64) {
        let mut st = self.state.lock().expect("plus policy lock");
        if !st.short.contains(&dir) {
            return;
        }
        st.evidence += 1;
        if st.evidence >= PLUS_EVIDENCE {
            tracing::debug!("listings are followed by stats: READDIRPLUS replies whole");
            st.whole_until = Some(Instant::now() + PLUS_WHOLE_FOR);
            st.evidence = 0;
            st.short.clear();
        }
    }
}

/// Default bound of the manifest cache: a 1,000,000-file version's manifest
/// (about 100 MiB in memory) fits.
pub const DEFAULT_MANIFEST_CACHE: u64 = 160 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Misc {
    Sidecar(AssetId, u64),
    Alias(AssetId, String),
}

pub(crate) enum Node {
    Root,
    KindDir(Kind),
    VersionRoot(Arc<VersionSlot>),
    Entry(Arc<VersionSlot>, u32),
    Misc(Misc),
    Staging(Arc<crate::mount::vfs_staging::StagingSlot>, u64),
}

pub(crate) enum OpenFile {
    Version {
        manifest: Arc<Manifest>,
        idx: u32,
        map: ChunkMap,
        readahead: Mutex<ReadAhead>,
    },
    Bytes(Bytes),
    Staging {
        slot: Arc<crate::mount::vfs_staging::StagingSlot>,
        id: u64,
        writable: bool,
        pid: u32,
        /// A writable handle's data file, opened once: a WRITE then costs
        /// one `pwrite`, with no index lookup and no `open` per request.
        file: Option<std::fs::File>,
    },
}

struct CachedListing {
    at: Instant,
    listing: Arc<Listing>,
}

pub struct Vfs {
    pub(crate) meta: CatalogCache,
    pub(crate) source: Arc<ChunkSource>,
    pub(crate) cfg: VfsConfig,
    pub(crate) staging: crate::mount::vfs_staging::StagingTable,
    slots: RwLock<Vec<Arc<VersionSlot>>>,
    manifests: Mutex<ManifestCache>,
    plus: PlusPolicy,
    slot_ids: Mutex<HashMap<(AssetId, u64), u32>>,
    misc: RwLock<Vec<Misc>>,
    misc_ids: Mutex<HashMap<Misc, u64>>,
    listings: Mutex<HashMap<Kind, CachedListing>>,
    sidecars: Mutex<HashMap<(AssetId, u64), (Instant, Bytes)>>,
    pub(crate) handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    pub(crate) next_fh: std::sync::atomic::AtomicU64,
    pub(crate) mounted_at: SystemTime,
}

fn kind_ino(k: Kind) -> u64 {
    match k {
        Kind::Models => 2,
        Kind::Features => 3,
    }
}

impl Vfs {
    pub fn new(meta: CatalogCache, source: Arc<ChunkSource>, cfg: VfsConfig) -> Vfs {
        let manifest_limit = usize::try_from(cfg.manifest_cache).unwrap_or(usize::MAX);
        Vfs {
            meta,
            source,
            cfg,
            slots: RwLock::new(vec![]),
            plus: PlusPolicy::new(),
            manifests: Mutex::new(ManifestCache {
                lru: lru::LruCache::unbounded(),
                bytes: 0,
                limit: manifest_limit,
                evicted: 0,
            }),
            slot_ids: Mutex::new(HashMap::new()),
            misc: RwLock::new(vec![]),
            misc_ids: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            sidecars: Mutex::new(HashMap::new()),
            staging: Default::default(),
            handles: Mutex::new(HashMap::new()),
            next_fh: std::sync::atomic::AtomicU64::new(1),
            mounted_at: SystemTime::now(),
        }
    }

    pub fn source(&self) -> &Arc<ChunkSource> {
        &self.source
    }

    /// Seeds the listing cache (used at mount time, and with a saved listing
    /// when the store is unreachable).
    pub fn seed_listing(&self, kind: Kind, listing: Listing) {
        self.listings.lock().expect("listings lock").insert(
            kind,
            CachedListing {
                at: Instant::now(),
                listing: Arc::new(listing),
            },
        );
    }

    /// The listing of a kind, refreshed when older than the refresh interval.
    /// A failed refresh keeps serving the previous listing.
    async fn listing(&self, kind: Kind, force: bool) -> Result<Arc<Listing>> {
        let cached = {
            let l = self.listings.lock().expect("listings lock");
            l.get(&kind).map(|c| (c.at, c.listing.clone()))
        };
        if let Some((at, listing)) = &cached {
            if !force && at.elapsed() < self.cfg.refresh {
                return Ok(listing.clone());
            }
        }
        match self.meta.fetch_listing(kind).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.listings.lock().expect("listings lock").insert(
                    kind,
                    CachedListing {
                        at: Instant::now(),
                        listing: fresh.clone(),
                    },
                );
                Ok(fresh)
            }
            Err(e) => match cached {
                Some((_, listing)) => {
                    tracing::warn!("cannot refresh {kind} listing, serving the previous one: {e}");
                    // Do not retry on every call while the store is down.
                    self.listings.lock().expect("listings lock").insert(
                        kind,
                        CachedListing {
                            at: Instant::now(),
                            listing: listing.clone(),
                        },
                    );
                    Ok(listing)
                }
                None => Err(e.into()),
            },
        }
    }

    /// The version an `--only` mount shows now: a fixed version, or the one
    /// its alias (or `latest`) points at in the current listing.
    pub async fn only_version(&self) -> Result<(AssetId, u64)> {
        use crate::format::names::Selector;
        let r = self.cfg.only.as_ref().ok_or(VfsError::NotFound)?;
        let v = match &r.selector {
            Selector::Version(v) => {
                if !self.version_exists(&r.asset, *v).await? {
                    return Err(VfsError::NotFound);
                }
                *v
            }
            sel => {
                let listing = self.listing(r.asset.kind, false).await?;
                let state = listing
                    .asset(&r.asset.name)
                    .ok_or_else(|| CatalogError::NoVersions(r.asset.clone()))?;
                let v = match sel {
                    Selector::Alias(a) => state.aliases.get(a).copied(),
                    _ => state.versions.last().copied(),
                };
                v.ok_or_else(|| match sel {
                    Selector::Alias(a) => CatalogError::NoSuchAlias {
                        asset: r.asset.clone(),
                        alias: a.clone(),
                    },
                    _ => CatalogError::NoVersions(r.asset.clone()),
                })?
            }
        };
        Ok((r.asset.clone(), v))
    }

    async fn only_slot(&self) -> Result<Arc<VersionSlot>> {
        let (asset, v) = self.only_version().await?;
        Ok(self.slot_for(&asset, v))
    }

    /// The name of the sidecar at the root of an `--only` mount:
    /// `.assetfs.json`, or `.assetfs.N.json` with the smallest N that is not
    /// a file of the version itself.
    async fn only_sidecar_name(&self, vs: &Arc<VersionSlot>) -> Result<String> {
        let m = self.manifest(vs).await?;
        let taken = |n: &str| m.find(n).is_some();
        let mut name = ".assetfs.json".to_string();
        let mut i = 0;
        while taken(&name) {
            i += 1;
            name = format!(".assetfs.{i}.json");
        }
        Ok(name)
    }

    async fn lookup_in_only_root(&self, name: &str) -> Result<Attr> {
        let vs = self.only_slot().await?;
        if name == self.only_sidecar_name(&vs).await? {
            let ino = self.misc_ino(Misc::Sidecar(vs.asset.clone(), vs.version));
            return self.getattr(ino).await;
        }
        let mut a = self.lookup_in_version(&vs, None, name).await?;
        // The root may move to another version at the next refresh, so the
        // kernel must look its entries up again; deeper ones are immutable.
        let fixed = |r: &crate::format::names::Reference| {
            matches!(r.selector, crate::format::names::Selector::Version(_))
        };
        if self.cfg.only.as_ref().is_some_and(|r| !fixed(r)) {
            a.ttl = a.ttl.min(self.cfg.refresh);
        }
        Ok(a)
    }

    /// The root of an `--only` mount: the version's top-level entries, then
    /// its sidecar. Root entries get at most the refresh interval as TTL when
    /// the root can move to another version.
    async fn only_root_children(
        &self,
        offset: usize,
        mut add: impl FnMut(&str, &Attr) -> bool,
    ) -> Result<()> {
        let vs = self.only_slot().await?;
        let fixed = self
            .cfg
            .only
            .as_ref()
            .is_some_and(|r| matches!(r.selector, crate::format::names::Selector::Version(_)));
        let refresh = self.cfg.refresh;
        let mut seen = 0;
        let mut full = false;
        self.version_children(&vs, None, offset, |name, a| {
            seen += 1;
            let mut a = a.clone();
            if !fixed {
                a.ttl = a.ttl.min(refresh);
            }
            full = add(name, &a);
            full
        })
        .await?;
        if full {
            return Ok(());
        }
        let total = self.version_children_count(&vs).await?;
        if offset + seen <= total {
            let ino = self.misc_ino(Misc::Sidecar(vs.asset.clone(), vs.version));
            let a = self.getattr(ino).await?;
            add(&self.only_sidecar_name(&vs).await?, &a);
        }
        Ok(())
    }

    async fn version_children_count(&self, vs: &Arc<VersionSlot>) -> Result<usize> {
        let mut n = 0;
        self.version_children(vs, None, 0, |_, _| {
            n += 1;
            false
        })
        .await?;
        Ok(n)
    }

    fn slot_for(&self, asset: &AssetId, version: u64) -> Arc<VersionSlot> {
        let mut ids = self.slot_ids.lock().expect("slot ids lock");
        if let Some(&s) = ids.get(&(asset.clone(), version)) {
            return self.slots.read().expect("slots lock")[s as usize - 1].clone();
        }
        let mut slots = self.slots.write().expect("slots lock");
        let slot = slots.len() as u32 + 1;
        let vs = Arc::new(VersionSlot {
            slot,
            asset: asset.clone(),
            version,
            created: OnceCell::new(),
            held: Mutex::new(std::sync::Weak::new()),
            loading: tokio::sync::Mutex::new(()),
        });
        slots.push(vs.clone());
        ids.insert((asset.clone(), version), slot);
        vs
    }

    fn misc_ino(&self, m: Misc) -> u64 {
        let mut ids = self.misc_ids.lock().expect("misc ids lock");
        if let Some(&ino) = ids.get(&m) {
            return ino;
        }
        let mut all = self.misc.write().expect("misc lock");
        let ino = MISC_BASE + all.len() as u64;
        all.push(m.clone());
        ids.insert(m, ino);
        ino
    }

    pub(crate) fn node(&self, ino: u64) -> Result<Node> {
        if let Some(n) = self.staging_node(ino) {
            return n;
        }
        match ino {
            ROOT => return Ok(Node::Root),
            2 => return Ok(Node::KindDir(Kind::Models)),
            3 => return Ok(Node::KindDir(Kind::Features)),
            _ => {}
        }
        let slot = (ino >> 32) as usize;
        if slot == 0 {
            let i = ino.checked_sub(MISC_BASE).ok_or(VfsError::NotFound)? as usize;
            let m = self.misc.read().expect("misc lock").get(i).cloned();
            return m.map(Node::Misc).ok_or(VfsError::NotFound);
        }
        let vs = self
            .slots
            .read()
            .expect("slots lock")
            .get(slot - 1)
            .cloned()
            .ok_or(VfsError::NotFound)?;
        match ino & 0xffff_ffff {
            0 => Ok(Node::VersionRoot(vs)),
            i => Ok(Node::Entry(vs, (i - 1) as u32)),
        }
    }

    async fn manifest(&self, vs: &VersionSlot) -> Result<Arc<Manifest>> {
        Ok(self.loaded(vs).await?.manifest.clone())
    }

    /// A version's manifest: from the manifest cache, from whoever still
    /// holds it, or loaded again (from the node's catalog cache on disk,
    /// else the store).
    pub(crate) async fn loaded(&self, vs: &VersionSlot) -> Result<Arc<Loaded>> {
        if let Some(l) = self.cached(vs) {
            return Ok(l);
        }
        let _gate = vs.loading.lock().await;
        if let Some(l) = self.cached(vs) {
            return Ok(l);
        }
        let rec = self.meta.record(&vs.asset, vs.version).await?;
        let created = rec
            .meta
            .get("created")
            .and_then(|c| c.as_str())
            .and_then(|c| {
                time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(SystemTime::from)
            .unwrap_or(self.mounted_at);
        let _ = vs.created.set(created);
        let t0 = Instant::now();
        let m = self.meta.manifest(&rec.manifest).await?;
        tracing::info!(
            "manifest of {}@{} loaded: {} entries, {:.1} MiB in memory, {:?}",
            vs.asset,
            vs.version,
            m.len(),
            m.mem_bytes() as f64 / (1 << 20) as f64,
            t0.elapsed()
        );
        *vs.held.lock().expect("held lock") = Arc::downgrade(&m);
        let l = Arc::new(Loaded {
            manifest: m,
            children: Mutex::new(HashMap::new()),
        });
        self.manifests
            .lock()
            .expect("manifests lock")
            .insert(vs.slot, l.clone());
        Ok(l)
    }

    fn cached(&self, vs: &VersionSlot) -> Option<Arc<Loaded>> {
        let mut c = self.manifests.lock().expect("manifests lock");
        if let Some(l) = c.lru.get(&vs.slot) {
            return Some(l.clone());
        }
        // Evicted but still held (an open file): back into the cache.
        let m = vs.held.lock().expect("held lock").upgrade()?;
        let l = Arc::new(Loaded {
            manifest: m,
            children: Mutex::new(HashMap::new()),
        });
        c.insert(vs.slot, l.clone());
        Some(l)
    }

    /// Manifests in the cache, their bytes, and how many were evicted.
    pub fn manifest_cache_stats(&self) -> (usize, usize, u64) {
        let c = self.manifests.lock().expect("manifests lock");
        (c.lru.len(), c.bytes, c.evicted)
    }

    /// The manifest of the version that `ino` (its directory or a file in
    /// it) belongs to.
    pub async fn manifest_of(&self, ino: u64) -> Result<Arc<Manifest>> {
        match self.node(ino)? {
            Node::VersionRoot(vs) | Node::Entry(vs, _) => self.manifest(&vs).await,
            _ => Err(VfsError::NotFound),
        }
    }

    fn created(&self, vs: &VersionSlot) -> SystemTime {
        vs.created.get().copied().unwrap_or(self.mounted_at)
    }

    fn dir_attr(&self, ino: u64, ttl: Duration, mtime: SystemTime) -> Attr {
        Attr {
            ino,
            kind: FileKind::Dir,
            size: 0,
            perm: 0o755,
            mtime,
            ttl,
        }
    }

    /// The attributes of `ino`, with the mount's mode policy applied.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        Ok(self.present(self.stored_attr(ino).await?))
    }

    /// Who owns everything this mount shows (`--uid/--gid`).
    pub fn owner(&self) -> crate::mount::ownership::Ownership {
        self.cfg.owner
    }

    /// Applies `--file-mode/--dir-mode` to attributes as stored.
    pub(crate) fn present(&self, mut a: Attr) -> Attr {
        a.perm = self.cfg.owner.perm(a.kind, a.perm);
        a
    }

    async fn stored_attr(&self, ino: u64) -> Result<Attr> {
        match self.node(ino)? {
            Node::Staging(slot, id) => self.staging_attr(&slot, id),
            Node::Root if self.cfg.only.is_some() => {
                let vs = self.only_slot().await?;
                self.manifest(&vs).await?;
                Ok(self.dir_attr(ino, self.cfg.refresh, self.created(&vs)))
            }
            Node::Root | Node::KindDir(_) => {
                Ok(self.dir_attr(ino, self.cfg.refresh, self.mounted_at))
            }
            Node::VersionRoot(vs) => {
                self.manifest(&vs).await?;
                // Its name is looked up again each refresh interval, so a
                // deleted version stops resolving (its contents stay cached).
                Ok(self.dir_attr(ino, self.cfg.refresh, self.created(&vs)))
            }
            Node::Entry(vs, i) => {
                let m = self.manifest(&vs).await?;
                let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                Ok(entry_attr(ino, &e, self.created(&vs)))
            }
            Node::Misc(Misc::Sidecar(asset, v)) => {
                let bytes = self.sidecar(&asset, v).await?;
                Ok(Attr {
                    ino,
                    kind: FileKind::File,
                    size: bytes.len() as u64,
                    perm: 0o444,
                    mtime: self.mounted_at,
                    ttl: self.cfg.refresh,
                })
            }
            Node::Misc(Misc::Alias(asset, alias)) => {
                let target = self.alias_target(&asset, &alias).await?;
                Ok(Attr {
                    ino,
                    kind: FileKind::Symlink,
                    size: target.len() as u64,
                    perm: 0o777,
                    mtime: self.mounted_at,
                    ttl: self.cfg.refresh,
                })
            }
        }
    }

    async fn sidecar(&self, asset: &AssetId, v: u64) -> Result<Bytes> {
        let key = (asset.clone(), v);
        if let Some((at, b)) = self.sidecars.lock().expect("sidecars lock").get(&key) {
            if at.elapsed() < self.cfg.refresh {
                return Ok(b.clone());
            }
        }
        let rec = self.meta.record(asset, v).await?;
        let mut listing = self.listing(asset.kind, false).await?;
        // A version newer than the listing (found by direct lookup): refresh,
        // so its sidecar's aliases (`latest`) are right from the first read.
        if !listing
            .asset(&asset.name)
            .is_some_and(|s| s.versions.contains(&v))
        {
            listing = self.listing(asset.kind, true).await?;
        }
        let state = listing.asset(&asset.name).cloned().unwrap_or_default();
        let aliases = state
            .aliases
            .iter()
            .filter(|(_, t)| **t == v)
            .map(|(a, _)| a.clone())
            .collect();
        let latest = state.versions.last() == Some(&v);
        let json = crate::ops::metadata::sidecar(asset, &rec, aliases, latest);
        let mut text = serde_json::to_vec_pretty(&json).expect("sidecar serialises");
        text.push(b'\n');
        let b = Bytes::from(text);
        self.sidecars
            .lock()
            .expect("sidecars lock")
            .insert(key, (Instant::now(), b.clone()));
        Ok(b)
    }

    async fn alias_target(&self, asset: &AssetId, alias: &str) -> Result<String> {
        let listing = self.listing(asset.kind, false).await?;
        let state = listing.asset(&asset.name).ok_or(VfsError::NotFound)?;
        let v = if alias == "latest" {
            state.versions.last().copied()
        } else {
            state.aliases.get(alias).copied()
        };
        v.map(|v| format!("{}@{v}", asset.name))
            .ok_or(VfsError::NotFound)
    }

    /// Does this version exist? Checks the listing, then the store directly,
    /// so a version committed since the last refresh resolves at once.
    async fn version_exists(&self, asset: &AssetId, v: u64) -> Result<bool> {
        let listing = self.listing(asset.kind, false).await?;
        if listing
            .asset(&asset.name)
            .is_some_and(|s| s.versions.contains(&v))
        {
            return Ok(true);
        }
        // Not in the listing: committed since, deleted, or never there.
        match self.meta.catalog().ensure_live(asset, v).await {
            Ok(()) => Ok(true),
            Err(CatalogError::NoSuchVersion { .. } | CatalogError::Deleted { .. }) => Ok(false),
            // Store unreachable: a version this node has seen is still served.
            Err(e) => match self.meta.record(asset, v).await {
                Ok(_) => Ok(true),
                Err(_) => Err(e.into()),
            },
        }
    }

    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Attr> {
        self.plus.lookup_in(parent);
        match self.node(parent)? {
            Node::Root if self.cfg.only.is_some() => self.lookup_in_only_root(name).await,
            Node::Root => {
                let kind: Kind = name.parse().map_err(|_| VfsError::NotFound)?;
                self.getattr(kind_ino(kind)).await
            }
            Node::KindDir(kind) => self.lookup_in_kind(kind, name).await,
            Node::VersionRoot(vs) => self.lookup_in_version(&vs, None, name).await,
            Node::Entry(vs, i) => self.lookup_in_version(&vs, Some(i), name).await,
            Node::Misc(_) => Err(VfsError::NotDir),
            Node::Staging(slot, id) => {
                let n = slot.st()?.lookup(id, name)?;
                self.staging_attr(&slot, n.id)
            }
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
            let slot = self.staging_for(&asset, false).await?;
            return self.staging_attr(&slot, crate::catalog::staging::ROOT);
        }
        if let Ok(v) = parse_version(sel) {
            if !self.version_exists(&asset, v).await? {
                return Err(VfsError::NotFound);
            }
            let ino = if sidecar {
                self.misc_ino(Misc::Sidecar(asset.clone(), v))
            } else {
                (self.slot_for(&asset, v).slot as u64) << 32
            };
            return self.getattr(ino).await;
        }
        if sidecar || (sel != "latest" && validate_alias(sel).is_err()) {
            return Err(VfsError::NotFound);
        }
        let ino = self.misc_ino(Misc::Alias(asset.clone(), sel.to_string()));
        match self.getattr(ino).await {
            // An alias set since the last refresh: look once more, fresh.
            Err(VfsError::NotFound) => {
                self.listing(kind, true).await?;
                self.getattr(ino).await
            }
            r => r,
        }
    }

    async fn lookup_in_version(
        &self,
        vs: &Arc<VersionSlot>,
        dir: Option<u32>,
        name: &str,
    ) -> Result<Attr> {
        let m = self.manifest(vs).await?;
        let path = match dir {
            None => name.to_string(),
            Some(i) => {
                let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                if e.kind != EntryKind::Dir {
                    return Err(VfsError::NotDir);
                }
                format!("{}/{name}", e.path)
            }
        };
        let idx = m.find(&path).ok_or(VfsError::NotFound)?;
        Ok(entry_attr(
            entry_ino(vs, idx as u32),
            &m.entry(idx),
            self.created(vs),
        ))
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
        let mut add = |name: &str, a: &Attr| add(name, &self.present(a.clone()));
        if ino == ROOT && self.cfg.only.is_some() {
            return self.only_root_children(offset, add).await;
        }
        match self.node(ino)? {
            Node::VersionRoot(vs) => self.version_children(&vs, None, offset, add).await,
            Node::Entry(vs, i) => self.version_children(&vs, Some(i), offset, add).await,
            Node::Staging(slot, id) => self.staging_children(&slot, id, offset, add),
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
    /// carry (see [`PlusPolicy`]); the rest come by plain READDIR.
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
        let unknown = |kind, size, perm| Attr {
            ino: e.ino,
            kind,
            size,
            perm,
            mtime: self.mounted_at,
            ttl: Duration::ZERO,
        };
        Ok(match self.node(e.ino)? {
            Node::Root | Node::KindDir(_) | Node::Misc(Misc::Alias(..)) => {
                self.getattr(e.ino).await?
            }
            // Like `getattr`: the name of a version is good for one refresh
            // interval (it may be deleted).
            Node::VersionRoot(vs) => match vs.created.get() {
                Some(t) => self.dir_attr(e.ino, self.cfg.refresh, *t),
                None => unknown(FileKind::Dir, 0, 0o755),
            },
            Node::Misc(Misc::Sidecar(asset, v)) => {
                let cached = self
                    .sidecars
                    .lock()
                    .expect("sidecars lock")
                    .get(&(asset, v))
                    .filter(|(at, _)| at.elapsed() < self.cfg.refresh)
                    .map(|(_, b)| b.len() as u64);
                match cached {
                    Some(size) => Attr {
                        size,
                        perm: 0o444,
                        ttl: self.cfg.refresh,
                        ..unknown(FileKind::File, 0, 0)
                    },
                    None => unknown(FileKind::File, 0, 0o444),
                }
            }
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
                let listing = self.listing(kind, false).await?;
                let mut out = vec![];
                for name in self.staged_only_assets(kind) {
                    if !listing.assets.contains_key(name.as_str()) {
                        let asset = AssetId { kind, name };
                        out.push(DirEntry {
                            ino: self.staging_root_ino(&asset),
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
                            ino: (self.slot_for(&asset, *v).slot as u64) << 32,
                            kind: FileKind::Dir,
                            name: format!("{name}@{v}"),
                        });
                        out.push(DirEntry {
                            ino: self.misc_ino(Misc::Sidecar(asset.clone(), *v)),
                            kind: FileKind::File,
                            name: format!("{name}@{v}.json"),
                        });
                    }
                    if self.cfg.staging_home.is_some() {
                        out.push(DirEntry {
                            ino: self.staging_root_ino(&asset),
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
                            ino: self.misc_ino(Misc::Alias(asset.clone(), a.to_string())),
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

    async fn version_children(
        &self,
        vs: &Arc<VersionSlot>,
        dir: Option<u32>,
        offset: usize,
        mut add: impl FnMut(&str, &Attr) -> bool,
    ) -> Result<()> {
        let l = self.loaded(vs).await?;
        let m = &l.manifest;
        let key = dir.unwrap_or(u32::MAX);
        let cached = l.children.lock().expect("children lock").get(&key).cloned();
        let children = match cached {
            Some(c) => c,
            None => {
                let prefix = match dir {
                    None => String::new(),
                    Some(i) => {
                        let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                        if e.kind != EntryKind::Dir {
                            return Err(VfsError::NotDir);
                        }
                        format!("{}/", e.path)
                    }
                };
                let kids = Arc::new(direct_children(m, &prefix));
                l.children
                    .lock()
                    .expect("children lock")
                    .insert(key, kids.clone());
                kids
            }
        };
        let mtime = self.created(vs);
        for &i in children.iter().skip(offset) {
            let e = m.entry(i as usize);
            let name = e.path.rsplit('/').next().unwrap_or(e.path);
            if add(name, &entry_attr(entry_ino(vs, i), &e, mtime)) {
                break;
            }
        }
        Ok(())
    }

    pub async fn readlink(&self, ino: u64) -> Result<String> {
        match self.node(ino)? {
            Node::Misc(Misc::Alias(asset, alias)) => self.alias_target(&asset, &alias).await,
            Node::Entry(vs, i) => {
                let m = self.manifest(&vs).await?;
                let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                e.target.map(str::to_string).ok_or(VfsError::NotSymlink)
            }
            Node::Staging(slot, id) => slot.st()?.get(id)?.target.ok_or(VfsError::NotSymlink),
            _ => Err(VfsError::NotSymlink),
        }
    }

    /// Opens a file. Write access is refused outside `@staging`.
    pub async fn open(&self, ino: u64, flags: i32, pid: u32) -> Result<u64> {
        if let Node::Staging(slot, id) = self.node(ino)? {
            return self.staging_open(slot, id, flags, pid).await;
        }
        let acc = flags & libc::O_ACCMODE;
        if acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            return Err(VfsError::ReadOnly);
        }
        let file = match self.node(ino)? {
            Node::Entry(vs, i) => {
                let m = self.manifest(&vs).await?;
                let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                match e.kind {
                    EntryKind::Dir => return Err(VfsError::IsDir),
                    EntryKind::Symlink => return Err(VfsError::NotFound),
                    EntryKind::File => {}
                }
                let map = ChunkMap::new(&m, &e);
                OpenFile::Version {
                    manifest: m.clone(),
                    idx: i,
                    map,
                    readahead: Mutex::new(ReadAhead::default()),
                }
            }
            // The sidecar is snapshotted at open: it never changes under a reader.
            Node::Misc(Misc::Sidecar(asset, v)) => OpenFile::Bytes(self.sidecar(&asset, v).await?),
            _ => return Err(VfsError::IsDir),
        };
        Ok(self.add_handle(file))
    }

    /// True for a committed version's files and directories, whose content
    /// never changes, so the kernel may keep their pages (and listings) across
    /// opens. A sidecar changes when aliases move, so it is not.
    pub fn is_immutable(&self, ino: u64) -> bool {
        matches!(self.node(ino), Ok(Node::Entry(..) | Node::VersionRoot(..)))
    }

    pub fn release(&self, fh: u64) {
        let f = self.handles.lock().expect("handles lock").remove(&fh);
        if let Some(f) = f {
            if let OpenFile::Staging {
                slot,
                id,
                writable,
                pid,
                ..
            } = &*f
            {
                let done = slot.st().and_then(|st| {
                    let removed = match writable {
                        true => st.remove_writer(*id, *pid),
                        false => Ok(()),
                    };
                    // The last close of a file removed while open deletes it
                    // (even when the writer bookkeeping failed, e.g. disk full).
                    let closed = st.closed(*id);
                    removed?;
                    Ok(closed?)
                });
                if let Err(e) = done {
                    tracing::warn!("staging writer bookkeeping: {e}");
                }
            }
        }
    }

    pub(crate) fn handle(&self, fh: u64) -> Result<Arc<OpenFile>> {
        self.handles
            .lock()
            .expect("handles lock")
            .get(&fh)
            .cloned()
            .ok_or(VfsError::BadHandle)
    }

    pub(crate) fn add_handle(&self, f: OpenFile) -> u64 {
        let fh = self
            .next_fh
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.handles
            .lock()
            .expect("handles lock")
            .insert(fh, Arc::new(f));
        fh
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        let f = self
            .handles
            .lock()
            .expect("handles lock")
            .get(&fh)
            .cloned()
            .ok_or(VfsError::BadHandle)?;
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
            OpenFile::Staging { slot, id, .. } => self.staging_read(slot, *id, offset, size).await,
        }
    }

    pub async fn getxattr(&self, ino: u64, name: &str) -> Result<Vec<u8>> {
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
                let m = self.manifest(&vs).await?;
                let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
                if e.kind != EntryKind::File {
                    return Err(VfsError::NoAttr);
                }
                Ok(crate::format::ids::to_hex(&e.hash).into_bytes())
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
}

/// Indices of the entries directly under `prefix` (`""` or `"dir/"`).
/// Entries sharing a prefix are contiguous in sorted order; a subdirectory's
/// own entries are skipped by binary search, so listing a directory costs its
/// children, not its descendants.
fn direct_children(m: &Manifest, prefix: &str) -> Vec<u32> {
    let mut kids = vec![];
    let mut i = m.first_at_or_after(prefix);
    while i < m.len() {
        let path = m.path(i);
        let Some(rest) = path.strip_prefix(prefix) else {
            break;
        };
        match rest.find('/') {
            None => {
                kids.push(i as u32);
                i += 1;
            }
            // Below a child directory: jump past "<child>/..." ('0' follows '/').
            Some(k) => i = m.first_at_or_after(&format!("{}0", &path[..prefix.len() + k])),
        }
    }
    kids
}

/// A version entry's attributes: immutable, so cached by the kernel forever.
fn entry_attr(ino: u64, e: &crate::format::manifest::Entry<'_>, mtime: SystemTime) -> Attr {
    Attr {
        ino,
        kind: match e.kind {
            EntryKind::Dir => FileKind::Dir,
            EntryKind::File => FileKind::File,
            EntryKind::Symlink => FileKind::Symlink,
        },
        size: e.size,
        perm: (e.mode & 0o7777) as u16,
        mtime,
        ttl: FOREVER,
    }
}

fn entry_ino(vs: &VersionSlot, idx: u32) -> u64 {
    ((vs.slot as u64) << 32) | (idx as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::disk_cache::DiskCache;
    use crate::catalog::versions::Catalog;
    use crate::format::names::Reference;
    use crate::ops::push::{push, PushOptions};
    use crate::store::client::Store;

    async fn fixture(tmp: &std::path::Path) -> (Vfs, Vec<u8>) {
        let store = Store::open("memory://").unwrap();
        let catalog = Catalog::new(store.clone());
        let src = tmp.join("src");
        std::fs::create_dir_all(src.join("w")).unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(src.join("w/big.bin"), &big).unwrap();
        std::fs::write(src.join("a.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
        push(
            &catalog,
            &Reference::parse("models/m").unwrap(),
            &src,
            PushOptions::default(),
        )
        .await
        .unwrap();
        catalog
            .set_alias(&Reference::parse("models/m").unwrap().asset, "prod", 1)
            .await
            .unwrap();
        let disk = Arc::new(DiskCache::open(&tmp.join("cache"), 1 << 30).unwrap());
        let source = ChunkSource::new(store, disk, Duration::from_secs(5));
        let meta = CatalogCache::new(catalog, &tmp.join("cache"));
        let vfs = Vfs::new(
            meta,
            source,
            VfsConfig {
                refresh: Duration::from_secs(30),
                staging_home: None,
                owner: crate::mount::ownership::Ownership::current(),
                only: None,
                manifest_cache: DEFAULT_MANIFEST_CACHE,
            },
        );
        (vfs, big)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn browse_read_and_refuse_writes() {
        let tmp = tempfile::TempDir::new().unwrap();
        let (vfs, big) = fixture(tmp.path()).await;
        let models = vfs.lookup(ROOT, "models").await.unwrap();
        let names: Vec<String> = vfs
            .readdir(models.ino, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["m@1", "m@1.json", "m@latest", "m@prod"]);
        let latest = vfs.lookup(models.ino, "m@latest").await.unwrap();
        assert_eq!(latest.kind, FileKind::Symlink);
        assert_eq!(vfs.readlink(latest.ino).await.unwrap(), "m@1");
        assert!(matches!(
            vfs.lookup(models.ino, "m@2").await,
            Err(VfsError::NotFound)
        ));

        // Deep lookup without listing the version first.
        let v1 = vfs.lookup(models.ino, "m@1").await.unwrap();
        let w = vfs.lookup(v1.ino, "w").await.unwrap();
        let f = vfs.lookup(w.ino, "big.bin").await.unwrap();
        assert_eq!(f.size, big.len() as u64);
        assert_eq!(f.ttl, FOREVER);

        let fh = vfs.open(f.ino, libc::O_RDONLY, 1).await.unwrap();
        let mut got = vec![];
        let mut off = 0u64;
        while off < f.size {
            let b = vfs.read(fh, off, 128 * 1024).await.unwrap();
            off += b.len() as u64;
            got.extend_from_slice(&b);
        }
        assert_eq!(got, big);
        let mid = vfs.read(fh, 1_000_000, 4096).await.unwrap();
        assert_eq!(&mid[..], &big[1_000_000..1_004_096]);
        assert!(vfs.read(fh, f.size + 10, 10).await.unwrap().is_empty());
        vfs.release(fh);

        let hash = vfs.getxattr(f.ino, XATTR_BLAKE3).await.unwrap();
        assert_eq!(hash, blake3::hash(&big).to_hex().as_bytes());
        assert!(matches!(
            vfs.getxattr(f.ino, "user.other").await,
            Err(VfsError::NoAttr)
        ));
        for other in ["security.selinux", "system.posix_acl_access", "trusted.x"] {
            let e = vfs.getxattr(f.ino, other).await.unwrap_err();
            assert_eq!(e.errno(), libc::EOPNOTSUPP, "{other}");
        }
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
            assert!(matches!(
                vfs.open(f.ino, flags, 1).await,
                Err(VfsError::ReadOnly)
            ));
        }
        assert_eq!(
            vfs.open(f.ino, libc::O_WRONLY, 1)
                .await
                .unwrap_err()
                .errno(),
            libc::EROFS
        );

        let side = vfs.lookup(models.ino, "m@1.json").await.unwrap();
        let fh = vfs.open(side.ino, libc::O_RDONLY, 1).await.unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&vfs.read(fh, 0, 1 << 20).await.unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["aliases"], serde_json::json!(["latest", "prod"]));
        let root = vfs.readdir(v1.ino, 0, 100).await.unwrap();
        let names: Vec<&str> = root.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a.txt", "link", "w"]);
        let link = vfs.lookup(v1.ino, "link").await.unwrap();
        assert_eq!(vfs.readlink(link.ino).await.unwrap(), "a.txt");
    }

    /// Several versions opened one after another under a manifest cache
    /// that holds one: the others are evicted, yet an open file keeps
    /// reading, and an inode of an evicted version still resolves (its
    /// manifest reloaded from this node's catalog cache, with the store
    /// down).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn manifests_evicted_under_a_small_bound_stay_usable() {
        use std::sync::atomic::Ordering;
        let tmp = tempfile::TempDir::new().unwrap();
        let faulty = crate::store::doubles::FaultyStore::new(Arc::new(
            object_store::memory::InMemory::new(),
        ));
        let faults = faulty.faults.clone();
        let store = Store::from_object_store(Arc::new(faulty), "memory://evict");
        let catalog = Catalog::new(store.clone());
        let r = Reference::parse("models/m").unwrap();
        let mut contents = vec![];
        for v in 1..=4u32 {
            let src = tmp.path().join(format!("src{v}"));
            std::fs::create_dir_all(src.join("d")).unwrap();
            for i in 0..200 {
                std::fs::write(src.join(format!("d/f{i:03}")), format!("v{v} file {i}")).unwrap();
            }
            let big: Vec<u8> = (0..2_500_000u32).map(|i| (i * v % 253) as u8).collect();
            std::fs::write(src.join("big.bin"), &big).unwrap();
            push(&catalog, &r, &src, PushOptions::default())
                .await
                .unwrap();
            contents.push(big);
        }
        let disk = Arc::new(DiskCache::open(&tmp.path().join("cache"), 1 << 30).unwrap());
        let source = ChunkSource::new(store, disk, Duration::from_secs(5));
        let meta = CatalogCache::new(catalog, &tmp.path().join("cache"));
        let vfs = Vfs::new(
            meta,
            source,
            VfsConfig {
                refresh: Duration::from_secs(3600),
                staging_home: None,
                owner: crate::mount::ownership::Ownership::current(),
                only: None,
                manifest_cache: 1,
            },
        );
        let models = vfs.lookup(ROOT, "models").await.unwrap();
        let read_all = |fh: u64, size: u64| {
            let vfs = &vfs;
            async move {
                let mut got = vec![];
                while (got.len() as u64) < size {
                    let b = vfs.read(fh, got.len() as u64, 1 << 20).await.unwrap();
                    assert!(!b.is_empty());
                    got.extend_from_slice(&b);
                }
                got
            }
        };
        // Version 1's file stays open while the others are used.
        let v1 = vfs.lookup(models.ino, "m@1").await.unwrap();
        let big1 = vfs.lookup(v1.ino, "big.bin").await.unwrap();
        let fh1 = vfs.open(big1.ino, libc::O_RDONLY, 1).await.unwrap();
        let mut inos = vec![];
        for v in 2..=4usize {
            let root = vfs.lookup(models.ino, &format!("m@{v}")).await.unwrap();
            let d = vfs.lookup(root.ino, "d").await.unwrap();
            assert_eq!(vfs.readdir(d.ino, 0, 1000).await.unwrap().len(), 200);
            let f = vfs.lookup(d.ino, "f123").await.unwrap();
            let fh = vfs.open(f.ino, libc::O_RDONLY, 1).await.unwrap();
            assert_eq!(
                &vfs.read(fh, 0, 100).await.unwrap()[..],
                format!("v{v} file 123").as_bytes()
            );
            vfs.release(fh);
            let big = vfs.lookup(root.ino, "big.bin").await.unwrap();
            let fh = vfs.open(big.ino, libc::O_RDONLY, 1).await.unwrap();
            assert!(
                read_all(fh, big.size).await == contents[v - 1],
                "v{v} big.bin"
            );
            vfs.release(fh);
            inos.push((v, root.ino, f.ino, big.ino));
        }
        let (cached, _, evicted) = vfs.manifest_cache_stats();
        assert_eq!(cached, 1, "the bound holds one manifest");
        assert!(evicted >= 3, "{evicted} evictions");
        // The open file of an evicted version reads on.
        assert!(
            read_all(fh1, big1.size).await == contents[0],
            "v1 through its open handle"
        );
        vfs.release(fh1);

        // Store down: evicted versions come back from the node's catalog cache.
        faults.down.store(true, Ordering::Relaxed);
        let before = faults.requests.load(Ordering::Relaxed);
        for (v, root, f, big) in inos {
            let a = vfs.getattr(f).await.unwrap();
            assert_eq!(a.size, format!("v{v} file 123").len() as u64);
            assert_eq!(vfs.getattr(big).await.unwrap().size, 2_500_000);
            let names: Vec<String> = vfs
                .readdir(root, 0, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert_eq!(names, ["big.bin", "d"]);
            let fh = vfs.open(f, libc::O_RDONLY, 1).await.unwrap();
            // Chunks are in the disk cache from the reads above.
            assert_eq!(
                &vfs.read(fh, 0, 100).await.unwrap()[..],
                format!("v{v} file 123").as_bytes()
            );
            vfs.release(fh);
        }
        assert!(vfs.manifest_cache_stats().2 >= 5);
        assert_eq!(
            faults.requests.load(Ordering::Relaxed),
            before,
            "reloads came from the node's caches, not the store"
        );
        assert!(matches!(
            vfs.getattr((99u64 << 32) | 1).await,
            Err(VfsError::NotFound)
        ));
    }

    /// Short first READDIRPLUS replies until LOOKUPs in directories just
    /// listed that way show a reader that stats what it lists; LOOKUPs
    /// elsewhere are no evidence; continuations are always whole.
    #[test]
    fn readdirplus_replies_short_until_listings_are_followed_by_stats() {
        let p = PlusPolicy::new();
        assert_eq!(p.limit(7, 0), PLUS_FIRST_BATCH);
        assert_eq!(p.limit(7, PLUS_FIRST_BATCH), usize::MAX);
        for _ in 0..10 * PLUS_EVIDENCE {
            p.lookup_in(8);
        }
        assert_eq!(p.limit(9, 0), PLUS_FIRST_BATCH, "LOOKUPs elsewhere counted");
        for _ in 0..PLUS_EVIDENCE - 1 {
            p.lookup_in(7);
        }
        assert_eq!(p.limit(10, 0), PLUS_FIRST_BATCH, "switched too early");
        p.lookup_in(7);
        assert_eq!(p.limit(10, 0), usize::MAX, "no switch after the evidence");
        assert_eq!(p.limit(11, 0), usize::MAX);
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(VfsError::ReadOnly.errno(), libc::EROFS);
        assert_eq!(VfsError::NoAttr.errno(), libc::ENODATA);
        assert_eq!(
            VfsError::Read(crate::mount::reader::ReadError::Timeout(
                std::time::Duration::from_secs(1)
            ))
            .errno(),
            libc::EIO
        );
    }
}
