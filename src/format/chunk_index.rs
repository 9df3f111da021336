//! The chunk index a push consults to skip chunks the store already has,
//! bounded so that its cost does not grow with the store's history.
//!
//! Two levels (docs/storage-format.md, "Chunk index"):
//! - deltas, `indexes/<id>`: one per push, the chunks it stored. A push reads
//!   every delta present; gc absorbs them into the next generation and
//!   deletes them, so there are only as many as pushes since the last gc.
//! - generations, `chunkindex/<gen>/`: written by gc from the chunks live
//!   versions use, split by hash prefix into shards of about
//!   [`SHARD_TARGET`] entries. A push fetches only the shards of the chunks
//!   it looks up (or all of them, in parallel, for a large push), and keeps
//!   them in the node cache: a generation never changes.
//!
//! Lookups skip packs gc has condemned (see [`crate::catalog::gc_runs`]); the
//! index also remembers which packs it vouched for, so the claim-time check
//! knows which references need an existence check.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::format::ids::{to_hex, Hash, PackId};
use crate::format::key_layout as keys;
use crate::format::manifest::ChunkLocation;
use crate::store::{Store, StoreError};

/// Entries per shard a generation aims for.
pub const SHARD_TARGET: usize = 4096;
/// At most 2^12 shards (about 16M chunks at the target; more just makes shards bigger).
const MAX_BITS: u32 = 12;
const SHARD_MAGIC: &[u8; 4] = b"AFSI";
const FORMAT: u16 = 1;
/// Concurrent shard transfers.
const PARALLEL: usize = 16;

/// One entry of a delta (`indexes/<id>`), the format pushes have always written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexEntry {
    pub hash: Hash,
    pub pack: PackId,
    pub offset: u32,
    pub len: u32,
}

/// `chunkindex/<gen>/complete`: written last, so a generation without it is
/// unfinished (a gc crashed) and ignored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenInfo {
    pub format: u16,
    pub gen: u64,
    /// Shards are the top `bits` bits of the hash: 2^bits of them.
    pub bits: u32,
    pub chunks: u64,
    pub packs: u64,
    pub created: String,
    /// The gc runs whose condemned (or deleted) packs this generation
    /// leaves out: every run whose records existed when it was written. A
    /// writer reads the records of every other run (see [`crate::catalog::gc_runs`]).
    #[serde(default)]
    pub runs: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct ShardWire {
    packs: Vec<PackId>,
    /// (hash, pack index, offset, len), sorted by hash.
    entries: Vec<(Hash, u32, u32, u32)>,
}

/// Which shard a hash belongs to with `bits` prefix bits.
pub fn shard_of(h: &Hash, bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        (u16::from_be_bytes([h[0], h[1]]) >> (16 - bits)) as u32
    }
}

/// The prefix bits for a generation of `chunks` entries.
pub fn bits_for(chunks: usize) -> u32 {
    let mut bits = 0;
    while bits < MAX_BITS && (chunks >> bits) > SHARD_TARGET {
        bits += 1;
    }
    bits
}

fn encode_shard(w: &ShardWire) -> Vec<u8> {
    let body = postcard::to_stdvec(w).expect("shard serialises");
    let mut out = Vec::with_capacity(body.len() + 6);
    out.extend_from_slice(SHARD_MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn decode_shard(b: &[u8]) -> Option<ShardWire> {
    if b.len() < 6 || &b[..4] != SHARD_MAGIC || u16::from_le_bytes([b[4], b[5]]) != FORMAT {
        return None;
    }
    let w: ShardWire = postcard::from_bytes(&b[6..]).ok()?;
    let sorted = w.entries.windows(2).all(|p| p[0].0 < p[1].0);
    let in_range = w.entries.iter().all(|e| (e.1 as usize) < w.packs.len());
    (sorted && in_range).then_some(w)
}

struct Shard {
    packs: Vec<PackId>,
    entries: Vec<(Hash, u32, u32, u32)>,
}

impl Shard {
    fn get(&self, h: &Hash) -> Option<ChunkLocation> {
        let i = self.entries.binary_search_by(|e| e.0.cmp(h)).ok()?;
        let (_, p, offset, len) = self.entries[i];
        Some(ChunkLocation {
            pack: self.packs[p as usize],
            offset,
            len,
        })
    }
}

struct Inner {
    store: Store,
    cache_dir: Option<PathBuf>,
    gen: Option<GenInfo>,
    shards: HashMap<u32, Arc<Shard>>,
    deltas: HashMap<Hash, ChunkLocation>,
    /// Chunks this push stored.
    own: HashMap<Hash, ChunkLocation>,
    /// Packs gc condemned or deleted: never answered.
    avoid: HashSet<PackId>,
    /// Packs an answer came from (or this push wrote).
    vouched: HashSet<PackId>,
    shard_fetches: u64,
}

/// Known chunks of a store: hash -> where it is. Cheap to clone (a handle).
#[derive(Clone)]
pub struct ChunkIndex {
    inner: Arc<Mutex<Inner>>,
}

/// The newest complete generation, if any. One LIST, then one GET per
/// generation tried (normally one).
pub async fn latest_gen(store: &Store) -> Result<Option<GenInfo>, StoreError> {
    let mut gens: Vec<u64> = store
        .list_dirs(keys::INDEX_GENS)
        .await?
        .iter()
        .filter_map(|d| d.parse().ok())
        .collect();
    gens.sort_unstable_by(|a, b| b.cmp(a));
    for g in gens {
        match store.get(&keys::index_gen_file(g, "complete")).await {
            Ok(b) => match serde_json::from_slice::<GenInfo>(&b) {
                Ok(info) if info.gen == g && info.bits <= MAX_BITS => return Ok(Some(info)),
                _ => tracing::warn!("ignoring unreadable chunk index generation {g}"),
            },
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Reads an immutable object through the node cache directory.
async fn cached_get(store: &Store, key: &str, local: Option<PathBuf>) -> Result<Bytes, StoreError> {
    if let Some(bytes) = local.as_ref().and_then(|p| std::fs::read(p).ok()) {
        return Ok(Bytes::from(bytes));
    }
    let bytes = store.get(key).await?;
    if let Some(p) = local {
        if let Some(d) = p.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        // Best effort: a missing cache entry only costs a re-fetch.
        let _ = crate::store::write_atomic(&p, &bytes);
    }
    Ok(bytes)
}

impl ChunkIndex {
    /// Finds the newest generation and loads every delta (cached under
    /// `cache_dir`); shards are fetched when first needed.
    pub async fn open(store: &Store, cache_dir: Option<PathBuf>) -> Result<ChunkIndex, StoreError> {
        let (gen, names) = tokio::try_join!(latest_gen(store), store.list(keys::INDEXES))?;
        if let (Some(d), Some(g)) = (&cache_dir, &gen) {
            forget_other_gens(&d.join("chunkindex"), g.gen);
        }
        let local = cache_dir.as_ref().map(|d| d.join("indexes"));
        let present: HashSet<String> = names
            .iter()
            .filter_map(|(k, _)| k.rsplit('/').next().map(str::to_string))
            .collect();
        if let Some(d) = &local {
            let _ = std::fs::create_dir_all(d);
            forget_absent(d, &present);
        }
        let blobs: Vec<Result<Bytes, StoreError>> = futures::stream::iter(names)
            .map(|(key, _)| {
                let local = local.clone();
                let store = store.clone();
                async move {
                    let name = key.rsplit('/').next().unwrap_or_default().to_string();
                    match cached_get(&store, &key, local.map(|d| d.join(&name))).await {
                        // Absorbed by a gc since the listing: its chunks are in a generation.
                        Err(StoreError::NotFound { .. }) => Ok(Bytes::new()),
                        r => r,
                    }
                }
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut deltas = HashMap::new();
        for b in blobs {
            let b = b?;
            if b.is_empty() {
                continue;
            }
            // An unreadable delta only costs deduplication, never correctness.
            match postcard::from_bytes::<Vec<IndexEntry>>(&b) {
                Ok(entries) => {
                    for e in entries {
                        deltas.insert(
                            e.hash,
                            ChunkLocation {
                                pack: e.pack,
                                offset: e.offset,
                                len: e.len,
                            },
                        );
                    }
                }
                Err(e) => tracing::warn!("ignoring unreadable chunk index delta: {e}"),
            }
        }
        Ok(ChunkIndex {
            inner: Arc::new(Mutex::new(Inner {
                store: store.clone(),
                cache_dir,
                gen,
                shards: HashMap::new(),
                deltas,
                own: HashMap::new(),
                avoid: HashSet::new(),
                vouched: HashSet::new(),
                shard_fetches: 0,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("chunk index lock")
    }

    /// The generation this index reads, if gc has written one.
    pub fn gen(&self) -> Option<u64> {
        self.lock().gen.as_ref().map(|g| g.gen)
    }

    /// Its description (which gc runs it accounts for).
    pub fn gen_info(&self) -> Option<GenInfo> {
        self.lock().gen.clone()
    }

    /// Deltas loaded (pushes since the last gc).
    pub fn delta_chunks(&self) -> usize {
        self.lock().deltas.len()
    }

    /// Shards fetched from the store or the node cache so far.
    pub fn shard_fetches(&self) -> u64 {
        self.lock().shard_fetches
    }

    /// Packs never to answer with from now on.
    pub fn avoid(&self, packs: impl IntoIterator<Item = PackId>) {
        let mut i = self.lock();
        for p in packs {
            i.avoid.insert(p);
            i.vouched.remove(&p);
        }
    }

    /// Did an answer of this index (or this push) come from `pack`?
    pub fn vouches(&self, pack: &PackId) -> bool {
        self.lock().vouched.contains(pack)
    }

    /// Where a chunk lives, if the store has it in a pack not condemned.
    /// May fetch one shard: call it from a blocking thread, never from async code.
    pub fn get(&self, h: &Hash) -> Option<ChunkLocation> {
        let mut i = self.lock();
        let ok = |i: &Inner, l: &ChunkLocation| !i.avoid.contains(&l.pack);
        if let Some(l) = i.own.get(h).copied().filter(|l| ok(&i, l)) {
            return Some(l);
        }
        let found = match i.deltas.get(h).copied().filter(|l| ok(&i, l)) {
            Some(l) => Some(l),
            None => {
                let shard = i.shard_for(h)?;
                shard.get(h).filter(|l| ok(&i, l))
            }
        };
        if let Some(l) = found {
            i.vouched.insert(l.pack);
        }
        found
    }

    /// Records a chunk this push stored.
    pub fn insert_new(&self, hash: Hash, loc: ChunkLocation) {
        let mut i = self.lock();
        i.vouched.insert(loc.pack);
        i.own.insert(hash, loc);
    }

    /// Fetches every shard of the generation in parallel: for pushes large
    /// enough to touch most of them anyway.
    pub async fn prefetch_all(&self) -> Result<(), StoreError> {
        let (store, cache_dir, gen, have) = {
            let i = self.lock();
            let Some(g) = i.gen.clone() else {
                return Ok(());
            };
            let have: HashSet<u32> = i.shards.keys().copied().collect();
            (i.store.clone(), i.cache_dir.clone(), g, have)
        };
        let wanted: Vec<u32> = (0..1u32 << gen.bits)
            .filter(|s| !have.contains(s))
            .collect();
        let loaded: Vec<(u32, Result<Shard, StoreError>)> = futures::stream::iter(wanted)
            .map(|s| {
                let (store, cache_dir) = (store.clone(), cache_dir.clone());
                async move { (s, fetch_shard(&store, cache_dir, gen.gen, s).await) }
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut i = self.lock();
        for (s, shard) in loaded {
            i.shard_fetches += 1;
            i.shards.insert(s, Arc::new(shard?));
        }
        Ok(())
    }

    /// Should a push of about `chunks` chunks fetch every shard up front?
    pub fn worth_prefetching(&self, chunks: u64) -> bool {
        self.lock()
            .gen
            .as_ref()
            .is_some_and(|g| g.bits > 0 && chunks >= (1u64 << g.bits) / 4)
    }
}

impl Inner {
    fn shard_for(&mut self, h: &Hash) -> Option<Arc<Shard>> {
        let g = self.gen.clone()?;
        let s = shard_of(h, g.bits);
        if let Some(sh) = self.shards.get(&s) {
            return Some(sh.clone());
        }
        let (store, cache) = (self.store.clone(), self.cache_dir.clone());
        let fetched = Handle::current().block_on(fetch_shard(&store, cache, g.gen, s));
        self.shard_fetches += 1;
        let shard = match fetched {
            Ok(sh) => Arc::new(sh),
            Err(e) => {
                // Only deduplication suffers: the chunk is stored again.
                tracing::warn!("chunk index shard {s:04x} of generation {}: {e}", g.gen);
                Arc::new(Shard {
                    packs: vec![],
                    entries: vec![],
                })
            }
        };
        self.shards.insert(s, shard.clone());
        Some(shard)
    }
}

async fn fetch_shard(
    store: &Store,
    cache_dir: Option<PathBuf>,
    gen: u64,
    s: u32,
) -> Result<Shard, StoreError> {
    let local = cache_dir.map(|d| {
        d.join("chunkindex")
            .join(gen.to_string())
            .join(format!("{s:04x}"))
    });
    let key = keys::index_shard(gen, s);
    let bytes = match cached_get(store, &key, local.clone()).await {
        // A generation deleted by a newer gc while this push ran: no answers.
        Err(StoreError::NotFound { .. }) => Bytes::new(),
        r => r?,
    };
    if bytes.is_empty() {
        return Ok(Shard {
            packs: vec![],
            entries: vec![],
        });
    }
    match decode_shard(&bytes) {
        Some(w) => Ok(Shard {
            packs: w.packs,
            entries: w.entries,
        }),
        None => {
            if let Some(p) = local {
                let _ = std::fs::remove_file(p);
            }
            tracing::warn!("ignoring corrupt chunk index shard {key}");
            Ok(Shard {
                packs: vec![],
                entries: vec![],
            })
        }
    }
}

/// Drops cached shards of generations other than `keep`.
fn forget_other_gens(dir: &std::path::Path, keep: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_str() != Some(&keep.to_string()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Drops cached deltas the store no longer has (absorbed by gc).
fn forget_absent(dir: &std::path::Path, present: &HashSet<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if let Some(n) = e.file_name().to_str() {
            if !present.contains(n) && !n.starts_with('.') {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Writes one push's delta, named `<session>-<random>`: a delta only lists
/// chunks of its own session's packs. (Deltas written before sessions
/// existed have names without `-`.)
pub async fn write_delta(
    store: &Store,
    session: &crate::format::session::SessionId,
    entries: &[IndexEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let body = postcard::to_stdvec(entries).expect("index serialises");
    let name = format!(
        "{}-{}",
        to_hex(session),
        &crate::format::ids::random_id()[..16]
    );
    store.put(&keys::index(&name), Bytes::from(body)).await
}

/// The session a delta's name says wrote it (`None`: an old-style name).
pub fn delta_session(name: &str) -> Option<crate::format::session::SessionId> {
    let (s, _) = name.split_once('-')?;
    hex::decode(s).ok()?.try_into().ok()
}

/// The entries of a delta (empty when gone or unreadable).
pub async fn read_delta(
    store: &Store,
    key: &str,
    cache_dir: Option<&std::path::Path>,
) -> Result<Vec<IndexEntry>, StoreError> {
    let local = cache_dir.map(|d| {
        d.join("indexes")
            .join(key.rsplit('/').next().unwrap_or(key))
    });
    match cached_get(store, key, local).await {
        Ok(b) => Ok(postcard::from_bytes(&b).unwrap_or_default()),
        Err(StoreError::NotFound { .. }) => Ok(vec![]),
        Err(e) => Err(e),
    }
}

/// Writes generation `gen` from `chunks` (hash, pack, offset, len; one
/// location per hash), then its `complete` marker. Returns what it wrote.
pub async fn write_gen(
    store: &Store,
    gen: u64,
    runs: Vec<u64>,
    mut chunks: Vec<(Hash, PackId, u32, u32)>,
    on_shard: impl Fn() + Send + Sync,
) -> Result<GenInfo, StoreError> {
    chunks.sort_unstable_by_key(|c| c.0);
    chunks.dedup_by(|a, b| a.0 == b.0);
    let bits = bits_for(chunks.len());
    let mut shards: Vec<ShardWire> = (0..1u32 << bits)
        .map(|_| ShardWire {
            packs: vec![],
            entries: vec![],
        })
        .collect();
    let mut pack_ix: Vec<HashMap<PackId, u32>> = vec![HashMap::new(); shards.len()];
    let mut all_packs: HashSet<PackId> = HashSet::new();
    for (h, p, off, len) in &chunks {
        let s = shard_of(h, bits) as usize;
        let w = &mut shards[s];
        let ix = *pack_ix[s].entry(*p).or_insert_with(|| {
            w.packs.push(*p);
            (w.packs.len() - 1) as u32
        });
        w.entries.push((*h, ix, *off, *len));
        all_packs.insert(*p);
    }
    let bodies: Vec<(u32, Vec<u8>)> = shards
        .iter()
        .enumerate()
        .map(|(s, w)| (s as u32, encode_shard(w)))
        .collect();
    drop(shards);
    let on_shard = &on_shard;
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(bodies)
        .map(|(s, body)| async move {
            store
                .put(&keys::index_shard(gen, s), Bytes::from(body))
                .await?;
            on_shard();
            Ok(())
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let mut packs: Vec<PackId> = all_packs.into_iter().collect();
    packs.sort_unstable();
    let body = postcard::to_stdvec(&packs).expect("pack list serialises");
    store
        .put(&keys::index_gen_file(gen, "packs"), Bytes::from(body))
        .await?;
    let info = GenInfo {
        format: FORMAT,
        gen,
        bits,
        chunks: chunks.len() as u64,
        packs: packs.len() as u64,
        created: crate::format::time::now_rfc3339(),
        runs,
    };
    store
        .put(
            &keys::index_gen_file(gen, "complete"),
            Bytes::from(serde_json::to_vec(&info).expect("gen info serialises")),
        )
        .await?;
    Ok(info)
}

/// The packs a generation was built from (every pack live versions used then).
pub async fn gen_packs(store: &Store, gen: u64) -> Result<HashSet<PackId>, StoreError> {
    let b = store.get(&keys::index_gen_file(gen, "packs")).await?;
    Ok(postcard::from_bytes::<Vec<PackId>>(&b)
        .map(|v| v.into_iter().collect())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_bits_and_prefixes() {
        assert_eq!(bits_for(0), 0);
        assert_eq!(bits_for(4096), 0);
        assert_eq!(bits_for(4097), 1);
        assert_eq!(bits_for(1_000_000), 8);
        assert_eq!(bits_for(usize::MAX), MAX_BITS);
        let mut h = [0u8; 32];
        h[0] = 0xab;
        h[1] = 0xcd;
        assert_eq!(shard_of(&h, 0), 0);
        assert_eq!(shard_of(&h, 8), 0xab);
        assert_eq!(shard_of(&h, 12), 0xabc);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn generation_round_trip_and_avoid() {
        let store = Store::open("memory://").unwrap();
        let mut chunks = vec![];
        for i in 0..10_000u32 {
            let h = crate::format::ids::hash_bytes(&i.to_le_bytes());
            chunks.push((h, [(i % 7) as u8; 16], i, 100 + i));
        }
        let info = write_gen(&store, 5, vec![3, 5], chunks.clone(), || {})
            .await
            .unwrap();
        assert_eq!(
            (info.gen, info.bits, info.chunks, info.packs),
            (5, 2, 10_000, 7)
        );
        // An unfinished newer generation is ignored.
        store
            .put(&keys::index_shard(6, 0), Bytes::from_static(b"partial"))
            .await
            .unwrap();
        assert_eq!(latest_gen(&store).await.unwrap(), Some(info));
        let idx = ChunkIndex::open(&store, None).await.unwrap();
        assert_eq!(idx.gen(), Some(5));
        let idx2 = idx.clone();
        let probe = chunks[1234];
        let got = tokio::task::spawn_blocking(move || {
            let a = idx2.get(&probe.0);
            idx2.avoid([probe.1]);
            (a, idx2.get(&probe.0), idx2.shard_fetches())
        })
        .await
        .unwrap();
        assert_eq!(
            got.0,
            Some(ChunkLocation {
                pack: probe.1,
                offset: probe.2,
                len: probe.3
            })
        );
        assert_eq!(got.1, None, "a condemned pack is never an answer");
        assert_eq!(got.2, 1, "one shard fetched for one lookup");
        assert!(!idx.vouches(&probe.1));
        idx.prefetch_all().await.unwrap();
        assert_eq!(idx.shard_fetches(), 4);
        assert_eq!(gen_packs(&store, 5).await.unwrap().len(), 7);
    }
}
