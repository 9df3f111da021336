//! Packing new chunks into pack objects and uploading them.
//!
//! Many small chunks go into one pack (about [`PACK_TARGET`] bytes), so
//! 100,000 small files cost tens of requests, not 100,000. Readers address a
//! chunk by byte range of its pack. Each push that stores new chunks writes
//! one chunk index delta ([`crate::format::chunk_index`]) after its packs, so a crash
//! never leaves an index entry without its pack. Packs and the delta are
//! named with the writer's session id ([`crate::format::session`]), which is how gc
//! knows whose they are. A local store's packs are written in place
//! ([`crate::store::InPlace`]) instead of collected and uploaded.

use std::sync::Arc;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use crate::format::chunk_index::ChunkIndex;
use crate::format::chunk_index::IndexEntry;
use crate::format::fetch::{fetch_located, FetchError};
use crate::format::ids::{to_hex, Hash, PackId};
use crate::format::key_layout as keys;
use crate::format::manifest::ChunkLocation;
use crate::format::session::{pack_id_in, SessionId};
use crate::store::{InPlace, Store, StoreError};

pub const PACK_TARGET: usize = 16 << 20;
const UPLOADS_IN_FLIGHT: usize = 4;

/// The pack being filled.
enum Filling {
    /// No chunk yet.
    Empty,
    /// Collected in memory, uploaded whole when sealed.
    Memory(Vec<u8>),
    /// A local store's pack, written straight into its file
    /// ([`crate::store::InPlace`]): no copy into a buffer, no upload.
    InPlace(InPlace),
}

impl Filling {
    fn len(&self) -> usize {
        match self {
            Filling::Empty => 0,
            Filling::Memory(v) => v.len(),
            Filling::InPlace(f) => f.len() as usize,
        }
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
    session: SessionId,
    cur_id: PackId,
    cur: Filling,
    new_entries: Vec<IndexEntry>,
    uploads: JoinSet<Result<(), StoreError>>,
    slots: Arc<Semaphore>,
    pub stats: PackStats,
}

impl Packer {
    /// A packer whose packs are named in `session`.
    pub fn new(store: Store, rt: Handle, index: ChunkIndex, session: SessionId) -> Packer {
        Packer {
            store,
            rt,
            index,
            session,
            cur_id: pack_id_in(&session),
            cur: Filling::Empty,
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
        if self.cur.len() > 0 && self.cur.len() + data.len() > PACK_TARGET {
            self.seal()?;
        }
        let loc = ChunkLocation {
            pack: self.cur_id,
            offset: self.cur.len() as u32,
            len: data.len() as u32,
        };
        if let Filling::Empty = self.cur {
            self.cur = self.start_pack()?;
        }
        match &mut self.cur {
            Filling::Memory(v) => v.extend_from_slice(data),
            Filling::InPlace(f) => f.write(data)?,
            Filling::Empty => unreachable!("a pack was just started"),
        }
        self.index.insert_new(hash, loc);
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

    /// The filling of a new pack: in place for a local store, else memory.
    fn start_pack(&self) -> Result<Filling, StoreError> {
        let key = keys::pack(&to_hex(&self.cur_id));
        Ok(match self.store.create_in_place(&key) {
            Some(f) => Filling::InPlace(f?),
            None => Filling::Memory(Vec::with_capacity(
                PACK_TARGET + crate::format::chunker::MAX_CHUNK as usize,
            )),
        })
    }

    fn seal(&mut self) -> Result<(), StoreError> {
        let filling = std::mem::replace(&mut self.cur, Filling::Empty);
        if let Filling::Empty = filling {
            return Ok(());
        }
        let key = keys::pack(&to_hex(&self.cur_id));
        self.cur_id = pack_id_in(&self.session);
        self.stats.packs += 1;
        let data = match filling {
            Filling::Memory(data) => data,
            Filling::InPlace(f) => {
                f.finish()?;
                return self.reap_finished();
            }
            Filling::Empty => unreachable!("returned above"),
        };
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
        self.rt.block_on(crate::format::chunk_index::write_delta(
            &self.store,
            &self.session,
            &self.new_entries,
        ))?;
        Ok(self.stats)
    }

    /// Stores again a chunk that lives in a pack gc condemned: reused from
    /// another pack if the index knows one, else copied (and verified) out of
    /// the old pack. `NotFound` when that pack is already gone.
    pub fn copy_chunk(
        &mut self,
        hash: Hash,
        from: ChunkLocation,
    ) -> Result<ChunkLocation, StoreError> {
        if let Some(loc) = self.index.get(&hash) {
            self.stats.chunks_reused += 1;
            return Ok(loc);
        }
        let data = self
            .rt
            .block_on(fetch_located(&self.store, &hash, &from))
            .map_err(|e| match e {
                FetchError::Store(e) => e,
                _ => StoreError::invalid(
                    &keys::pack(&to_hex(&from.pack)),
                    format!(
                        "chunk {} at offset {} does not match its hash",
                        to_hex(&hash),
                        from.offset
                    ),
                ),
            })?;
        self.add(hash, &data)
    }
}
