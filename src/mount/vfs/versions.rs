//! Committed versions the mount has looked at: their slots (the high half
//! of their inode numbers), their manifests in a cache bounded in bytes,
//! and the entries and listings of their trees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use tokio::sync::OnceCell;

use crate::catalog::CatalogCache;
use crate::format::AssetId;
use crate::format::{EntryKind, Manifest};
use crate::mount::vfs::attr::Attr;
use crate::mount::vfs::error::{Result, VfsError};
use crate::mount::vfs::inodes::{entry_ino, version_ino};

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

impl VersionSlot {
    /// When the version was created, once its record has been read.
    pub fn created(&self) -> Option<SystemTime> {
        self.created.get().copied()
    }

    /// Its directory's inode.
    pub fn ino(&self) -> u64 {
        version_ino(self.slot)
    }
}

/// A version's manifest with what the mount derives from it.
pub struct Loaded {
    pub manifest: Arc<Manifest>,
    /// Directory entry index (u32::MAX for the version root) -> child indices.
    children: Mutex<HashMap<u32, Arc<Vec<u32>>>>,
}

impl Loaded {
    fn new(manifest: Arc<Manifest>) -> Loaded {
        Loaded {
            manifest,
            children: Mutex::new(HashMap::new()),
        }
    }

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

pub struct Versions {
    meta: Arc<CatalogCache>,
    /// The time shown for a version whose record has no creation time.
    mounted_at: SystemTime,
    slots: RwLock<Vec<Arc<VersionSlot>>>,
    slot_ids: Mutex<HashMap<(AssetId, u64), u32>>,
    manifests: Mutex<ManifestCache>,
}

impl Versions {
    pub fn new(meta: Arc<CatalogCache>, manifest_cache: u64, mounted_at: SystemTime) -> Versions {
        Versions {
            meta,
            mounted_at,
            slots: RwLock::new(vec![]),
            slot_ids: Mutex::new(HashMap::new()),
            manifests: Mutex::new(ManifestCache {
                lru: lru::LruCache::unbounded(),
                bytes: 0,
                limit: usize::try_from(manifest_cache).unwrap_or(usize::MAX),
                evicted: 0,
            }),
        }
    }

    /// The slot of a version, made on first use.
    pub fn slot_for(&self, asset: &AssetId, version: u64) -> Arc<VersionSlot> {
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

    /// A slot handed out before.
    pub fn slot(&self, slot: u32) -> Option<Arc<VersionSlot>> {
        let i = (slot as usize).checked_sub(1)?;
        self.slots.read().expect("slots lock").get(i).cloned()
    }

    /// When a version was created; the mount time until its record is read.
    pub fn created(&self, vs: &VersionSlot) -> SystemTime {
        vs.created().unwrap_or(self.mounted_at)
    }

    pub async fn manifest(&self, vs: &VersionSlot) -> Result<Arc<Manifest>> {
        Ok(self.loaded(vs).await?.manifest.clone())
    }

    /// A version's manifest: from the manifest cache, from whoever still
    /// holds it, or loaded again (from the node's catalog cache on disk,
    /// else the store).
    pub async fn loaded(&self, vs: &VersionSlot) -> Result<Arc<Loaded>> {
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
        let l = Arc::new(Loaded::new(m));
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
        let l = Arc::new(Loaded::new(m));
        c.insert(vs.slot, l.clone());
        Some(l)
    }

    /// Manifests in the cache, their bytes, and how many were evicted.
    pub fn cache_stats(&self) -> (usize, usize, u64) {
        let c = self.manifests.lock().expect("manifests lock");
        (c.lru.len(), c.bytes, c.evicted)
    }

    /// The attributes of entry `i` of a version.
    pub async fn entry_attr(&self, vs: &VersionSlot, i: u32) -> Result<Attr> {
        let m = self.manifest(vs).await?;
        let e = m.get_entry(i as usize).ok_or(VfsError::NotFound)?;
        Ok(Attr::of_entry(entry_ino(vs.slot, i), &e, self.created(vs)))
    }

    /// `name` in the version's root (`dir` None) or in its directory entry `dir`.
    pub async fn lookup(&self, vs: &VersionSlot, dir: Option<u32>, name: &str) -> Result<Attr> {
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
        Ok(Attr::of_entry(
            entry_ino(vs.slot, idx as u32),
            &m.entry(idx),
            self.created(vs),
        ))
    }

    /// The children of the version's root or of its directory entry `dir`,
    /// from `offset`, handed to `add` until it returns true.
    pub async fn children(
        &self,
        vs: &VersionSlot,
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
            if add(name, &Attr::of_entry(entry_ino(vs.slot, i), &e, mtime)) {
                break;
            }
        }
        Ok(())
    }

    /// How many entries the version's root has.
    pub async fn root_len(&self, vs: &VersionSlot) -> Result<usize> {
        let mut n = 0;
        self.children(vs, None, 0, |_, _| {
            n += 1;
            false
        })
        .await?;
        Ok(n)
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
