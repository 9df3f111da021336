//! Packing new chunks into pack objects, uploading them, and the chunk index
//! that lets a push skip chunks the store already has.
//!
//! Many small chunks go into one pack (about [`PACK_TARGET`] bytes), so
//! 100,000 small files cost tens of requests, not 100,000. Readers address a
//! chunk by byte range of its pack. Each push that stores new chunks writes
//! one index object (`indexes/<id>`: chunk hash -> pack, offset, length) after
//! its packs, so a crash never leaves an index entry without its pack.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::ids::{new_pack_id, random_id, to_hex, Hash, PackId};
use crate::manifest::ChunkLocation;
use crate::store::{keys, Store, StoreError};

pub const PACK_TARGET: usize = 16 << 20;
const UPLOADS_IN_FLIGHT: usize = 4;

#[derive(Serialize, Deserialize)]
struct IndexEntry {
    hash: Hash,
    pack: PackId,
    offset: u32,
    len: u32,
}

/// Known chunks of a store: hash -> where it is.
#[derive(Default)]
pub struct ChunkIndex {
    map: HashMap<Hash, ChunkLocation>,
}

impl ChunkIndex {
    /// Loads every index object, caching them under `cache_dir/indexes`
    /// (they are immutable, so a cached copy is always valid).
    pub async fn load(store: &Store, cache_dir: Option<PathBuf>) -> Result<ChunkIndex, StoreError> {
        let names = store.list(keys::INDEXES).await?;
        let local = cache_dir.map(|d| d.join("indexes"));
        if let Some(d) = &local {
            let _ = std::fs::create_dir_all(d);
        }
        let blobs: Vec<Result<Bytes, StoreError>> = futures::stream::iter(names)
            .map(|(key, _)| {
                let local = local.clone();
                async move {
                    let name = key.rsplit('/').next().unwrap_or_default().to_string();
                    let cached = local.as_ref().map(|d| d.join(&name));
                    if let Some(bytes) = cached.as_ref().and_then(|p| std::fs::read(p).ok()) {
                        return Ok(Bytes::from(bytes));
                    }
                    let bytes = store.get(&key).await?;
                    if let Some(p) = cached {
                        // Best effort: a missing cache only costs a re-fetch.
                        let _ = crate::fsutil::write_atomic(&p, &bytes);
                    }
                    Ok(bytes)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut index = ChunkIndex::default();
        for b in blobs {
            let b = b?;
            // An unreadable index only costs deduplication, never correctness.
            match postcard::from_bytes::<Vec<IndexEntry>>(&b) {
                Ok(entries) => {
                    for e in entries {
                        index.map.insert(
                            e.hash,
                            ChunkLocation {
                                pack: e.pack,
                                offset: e.offset,
                                len: e.len,
                            },
                        );
                    }
                }
                Err(e) => tracing::warn!("ignoring unreadable chunk index: {e}"),
            }
        }
        Ok(index)
    }

    pub fn get(&self, h: &Hash) -> Option<ChunkLocation> {
        self.map.get(h).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Statistics of one push's uploads.
#[derive(Debug, Default, Clone, Copy)]
pub struct PackStats {
    pub chunks_new: u64,
    pub bytes_new: u64,
    pub chunks_reused: u64,
    pub packs: u64,
}

/// Collects new chunks into packs and uploads them in the background.
/// Used from a blocking thread; uploads run on the given runtime.
pub struct Packer {
    store: Store,
    rt: Handle,
    index: ChunkIndex,
    cur_id: PackId,
    cur: Vec<u8>,
    new_entries: Vec<IndexEntry>,
    uploads: JoinSet<Result<(), StoreError>>,
    slots: Arc<Semaphore>,
    pub stats: PackStats,
}

impl Packer {
    pub fn new(store: Store, rt: Handle, index: ChunkIndex) -> Packer {
        Packer {
            store,
            rt,
            index,
            cur_id: new_pack_id(),
            cur: Vec::with_capacity(PACK_TARGET + crate::chunker::MAX_CHUNK as usize),
            new_entries: vec![],
            uploads: JoinSet::new(),
            slots: Arc::new(Semaphore::new(UPLOADS_IN_FLIGHT)),
            stats: PackStats::default(),
        }
    }

    /// Where each of these chunks lives, if the store (or this push) already
    /// has every one of them; counted as reused then. Nothing is stored.
    pub fn locate_all<'a>(
        &mut self,
        hashes: impl IntoIterator<Item = &'a Hash>,
    ) -> Option<Vec<ChunkLocation>> {
        let locs: Vec<ChunkLocation> = hashes
            .into_iter()
            .map(|h| self.index.get(h))
            .collect::<Option<_>>()?;
        self.stats.chunks_reused += locs.len() as u64;
        Some(locs)
    }

    /// Where a chunk lives, storing it if the store does not have it yet.
    pub fn add(&mut self, hash: Hash, data: &[u8]) -> Result<ChunkLocation, StoreError> {
        if let Some(loc) = self.index.get(&hash) {
            self.stats.chunks_reused += 1;
            return Ok(loc);
        }
        if !self.cur.is_empty() && self.cur.len() + data.len() > PACK_TARGET {
            self.seal()?;
        }
        let loc = ChunkLocation {
            pack: self.cur_id,
            offset: self.cur.len() as u32,
            len: data.len() as u32,
        };
        self.cur.extend_from_slice(data);
        self.index.map.insert(hash, loc);
        self.new_entries.push(IndexEntry {
            hash,
            pack: loc.pack,
            offset: loc.offset,
            len: loc.len,
        });
        self.stats.chunks_new += 1;
        self.stats.bytes_new += data.len() as u64;
        Ok(loc)
    }

    fn seal(&mut self) -> Result<(), StoreError> {
        if self.cur.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(
            &mut self.cur,
            Vec::with_capacity(PACK_TARGET + crate::chunker::MAX_CHUNK as usize),
        );
        let key = keys::pack(&to_hex(&self.cur_id));
        self.cur_id = new_pack_id();
        self.stats.packs += 1;
        // Waiting for a slot bounds memory to UPLOADS_IN_FLIGHT packs.
        let permit = self
            .rt
            .block_on(self.slots.clone().acquire_owned())
            .expect("semaphore never closed");
        self.reap_finished()?;
        let store = self.store.clone();
        self.uploads.spawn_on(
            async move {
                let r = store.put(&key, Bytes::from(data)).await;
                drop(permit);
                r
            },
            &self.rt,
        );
        Ok(())
    }

    fn reap_finished(&mut self) -> Result<(), StoreError> {
        while let Some(done) = self.uploads.try_join_next() {
            done.expect("upload task panicked")?;
        }
        Ok(())
    }

    /// Uploads the last pack, waits for all uploads, then writes the index
    /// object for the new chunks.
    pub fn finish(mut self) -> Result<PackStats, StoreError> {
        self.seal()?;
        let mut uploads = std::mem::take(&mut self.uploads);
        self.rt.block_on(async {
            while let Some(done) = uploads.join_next().await {
                done.expect("upload task panicked")?;
            }
            Ok::<_, StoreError>(())
        })?;
        if !self.new_entries.is_empty() {
            let body = postcard::to_stdvec(&self.new_entries).expect("index serialises");
            let key = keys::index(&random_id());
            self.rt.block_on(self.store.put(&key, Bytes::from(body)))?;
        }
        Ok(self.stats)
    }
}
