//! Where the chunks of a pack gc rewrote went.
//!
//! A pack most of whose bytes no live version uses is rewritten by gc: its
//! live chunks are copied into new packs, then `forwards/<old pack>/<id>`
//! lists each moved chunk (old offset, length, hash, new pack, new offset);
//! the id is the store time (ms) at which that gc run started. Manifests
//! keep pointing at the old pack, so nothing that names a version changes;
//! once the old pack is gone (deleted by a later sweep, as any unused pack),
//! readers follow the forward records: [`read_ranges`] and [`range_stream`]
//! do so for every reader of packs. Records never change; a pack rewritten
//! twice (two gc runs racing) has two, and the lowest id wins everywhere,
//! gc's own liveness included.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::format::ids::{to_hex, Hash, PackId};
use crate::format::key_layout as keys;
use crate::store::{Store, StoreError};

/// Longest chain of rewrites followed (a pack rewritten, its copy rewritten...).
const MAX_HOPS: usize = 16;

/// Most moved chunks kept in the process-wide cache of loaded records
/// (about 80 bytes each in memory): the mount daemon's memory stays bounded
/// however many rewritten packs it reads through.
const CACHE_MAX_MOVED: usize = 1 << 17;

/// One chunk a rewrite moved.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Moved {
    pub offset: u32,
    pub len: u32,
    pub hash: Hash,
    pub to: PackId,
    pub to_offset: u32,
}

/// The moved chunks of one pack, by old offset.
pub type Forwards = BTreeMap<u32, Moved>;

/// Writes the record `id` for `old` (create-if-absent). Call only once
/// every target pack is stored.
pub async fn write(
    store: &Store,
    old: &PackId,
    id: u64,
    moved: &[Moved],
) -> Result<bool, StoreError> {
    let body = postcard::to_stdvec(moved).expect("forward record serialises");
    store
        .put_if_absent(&keys::forward(&to_hex(old), id), Bytes::from(body))
        .await
}

/// Loaded records by pack, and how many moved chunks they hold in all.
#[derive(Default)]
struct Cache {
    packs: HashMap<PackId, Arc<Forwards>>,
    moved: usize,
}

fn cache() -> &'static Mutex<Cache> {
    static C: OnceLock<Mutex<Cache>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// The moved chunks of `old`, merged over its records (lowest id wins).
pub async fn load(store: &Store, old: &PackId) -> Result<Forwards, StoreError> {
    let mut keys: Vec<String> = store
        .list(&format!("{}/{}", keys::FORWARDS, to_hex(old)))
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    let mut out = Forwards::new();
    for k in keys {
        let b = match store.get(&k).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let moved: Vec<Moved> = postcard::from_bytes(&b)
            .map_err(|e| StoreError::invalid(&k, format!("unreadable forward record: {e}")))?;
        for m in moved {
            out.entry(m.offset).or_insert(m);
        }
    }
    Ok(out)
}

/// [`load`], remembered for the life of the process (records never change),
/// within [`CACHE_MAX_MOVED`]: a full cache is emptied and refilled. A pack
/// gone without forwards is looked up again next time. Says whether the
/// answer came from the cache.
async fn load_cached(store: &Store, old: &PackId) -> Result<(Arc<Forwards>, bool), StoreError> {
    if let Some(f) = cache().lock().expect("forward cache").packs.get(old) {
        return Ok((f.clone(), true));
    }
    let f = Arc::new(load(store, old).await?);
    if !f.is_empty() && f.len() <= CACHE_MAX_MOVED {
        let mut c = cache().lock().expect("forward cache");
        if c.moved + f.len() > CACHE_MAX_MOVED {
            *c = Cache::default();
        }
        if let Some(prev) = c.packs.insert(*old, f.clone()) {
            c.moved -= prev.len();
        }
        c.moved += f.len();
    }
    Ok((f, false))
}

/// Drops what the cache holds for `old` (a record it lacked appeared: a
/// second gc run rewrote the pack, and the copy the cached record names may
/// since have been collected).
fn forget(old: &PackId) {
    let mut c = cache().lock().expect("forward cache");
    if let Some(prev) = c.packs.remove(old) {
        c.moved -= prev.len();
    }
}

/// A piece of a forwarded range: the pack it moved to, its range there, and
/// the range of the old pack it holds.
type Piece = (PackId, Range<u64>, Range<u64>);

/// Splits `range` of the old pack into pieces of the packs its chunks moved
/// to. Every byte must be in a moved chunk.
fn translate(old: &PackId, f: &Forwards, range: &Range<u64>) -> Result<Vec<Piece>, StoreError> {
    let gone = || StoreError::NotFound {
        key: keys::pack(&to_hex(old)),
    };
    let mut out = vec![];
    let mut pos = range.start;
    while pos < range.end {
        let (_, m) = f.range(..=pos as u32).next_back().ok_or_else(gone)?;
        let end = m.offset as u64 + m.len as u64;
        if pos >= end {
            return Err(gone());
        }
        let upto = end.min(range.end);
        let start = m.to_offset as u64 + (pos - m.offset as u64);
        out.push((m.to, start..start + (upto - pos), pos..upto));
        pos = upto;
    }
    Ok(out)
}

/// Byte ranges of a pack, following forward records if it is gone.
pub async fn read_ranges(
    store: &Store,
    pack: &PackId,
    ranges: &[Range<u64>],
) -> Result<Vec<Bytes>, StoreError> {
    read_hops(store, pack, ranges, 0).await
}

async fn read_hops(
    store: &Store,
    pack: &PackId,
    ranges: &[Range<u64>],
    hops: usize,
) -> Result<Vec<Bytes>, StoreError> {
    let key = keys::pack(&to_hex(pack));
    match store.get_ranges(&key, ranges).await {
        Err(StoreError::NotFound { .. }) if hops < MAX_HOPS => {}
        r => return r,
    }
    let (f, cached) = load_cached(store, pack).await?;
    if f.is_empty() {
        return Err(StoreError::NotFound { key });
    }
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let mut buf = BytesMut::with_capacity((r.end - r.start) as usize);
        for (to, piece, old) in translate(pack, &f, r)? {
            let got = read_piece(store, pack, to, piece, old, cached, hops).await?;
            buf.extend_from_slice(&got);
        }
        out.push(buf.freeze());
    }
    Ok(out)
}

/// One piece of a forwarded read: `piece` of pack `to`, which holds `old`
/// of pack `from`. If `to` is gone too and the record came from the cache,
/// the records of `from` are read again (a lower record may have appeared)
/// and the piece translated anew.
async fn read_piece(
    store: &Store,
    from: &PackId,
    to: PackId,
    piece: Range<u64>,
    old: Range<u64>,
    cached: bool,
    hops: usize,
) -> Result<Bytes, StoreError> {
    let first = Box::pin(read_hops(
        store,
        &to,
        std::slice::from_ref(&piece),
        hops + 1,
    ))
    .await;
    let mut got = match first {
        Err(StoreError::NotFound { .. }) if cached => {
            forget(from);
            Box::pin(read_hops(store, from, std::slice::from_ref(&old), hops)).await?
        }
        r => r?,
    };
    Ok(got.pop().unwrap_or_default())
}

/// The bytes of `range` of a pack as they arrive, following forward records
/// if it is gone (then piece by piece).
pub async fn range_stream(
    store: &Store,
    pack: &PackId,
    range: Range<u64>,
) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
    let key = keys::pack(&to_hex(pack));
    match store.get_range_stream(&key, range.clone()).await {
        Err(StoreError::NotFound { .. }) => {}
        r => return r,
    }
    let (f, cached) = load_cached(store, pack).await?;
    if f.is_empty() {
        return Err(StoreError::NotFound { key });
    }
    let pieces = translate(pack, &f, &range)?;
    let (store, from) = (store.clone(), *pack);
    Ok(futures::stream::iter(pieces)
        .then(move |(to, piece, old)| {
            let store = store.clone();
            async move { read_piece(&store, &from, to, piece, old, cached, 0).await }
        })
        .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_follow_rewrites_and_chains() {
        let store = Store::open("memory://").unwrap();
        let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        // Pack a: [x: 0..4][dead: 4..10][y: 10..16]; x and y moved to b, then b to c.
        let (x, y) = (b"xxxx".to_vec(), b"yyyyyy".to_vec());
        let h = |d: &[u8]| crate::format::ids::hash_bytes(d);
        let mut pb = x.clone();
        pb.extend_from_slice(&y);
        let mut pc = b"zz".to_vec();
        pc.extend_from_slice(&pb);
        store
            .put(&keys::pack(&to_hex(&c)), Bytes::from(pc))
            .await
            .unwrap();
        let m_a = [
            Moved {
                offset: 0,
                len: 4,
                hash: h(&x),
                to: b,
                to_offset: 0,
            },
            Moved {
                offset: 10,
                len: 6,
                hash: h(&y),
                to: b,
                to_offset: 4,
            },
        ];
        let m_b = [Moved {
            offset: 0,
            len: 10,
            hash: [0; 32],
            to: c,
            to_offset: 2,
        }];
        assert!(write(&store, &a, 7, &m_a).await.unwrap());
        assert!(
            !write(&store, &a, 7, &m_a).await.unwrap(),
            "create-if-absent"
        );
        write(&store, &b, 9, &m_b).await.unwrap();
        let got = read_ranges(&store, &a, &[0..4, 10..16, 12..14])
            .await
            .unwrap();
        assert_eq!(got, [&b"xxxx"[..], b"yyyyyy", b"yy"]);
        // A range over bytes nobody moved (dead ones) is an error, not garbage.
        assert!(matches!(
            read_ranges(&store, &a, &[2..12, 0..4]).await,
            Err(StoreError::NotFound { .. })
        ));
        let s: Vec<Bytes> = range_stream(&store, &a, 0..4)
            .await
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(s.concat(), b"xxxx");
        assert_eq!(store.list(keys::FORWARDS).await.unwrap().len(), 2);
    }

    /// A reader that cached a pack's record while a second gc run was still
    /// rewriting it follows the lower record that run wrote once the copy
    /// the cached record named is gone.
    #[tokio::test]
    async fn a_stale_cached_record_is_read_again() {
        let store = Store::open("memory://").unwrap();
        let (a, b, c) = ([4u8; 16], [5u8; 16], [6u8; 16]);
        let x = b"xxxxxxxx".to_vec();
        let moved = |to| {
            [Moved {
                offset: 0,
                len: 8,
                hash: crate::format::ids::hash_bytes(&x),
                to,
                to_offset: 0,
            }]
        };
        for p in [b, c] {
            store
                .put(&keys::pack(&to_hex(&p)), Bytes::from(x.clone()))
                .await
                .unwrap();
        }
        write(&store, &a, 20, &moved(b)).await.unwrap();
        assert_eq!(
            read_ranges(&store, &a, std::slice::from_ref(&(0..8)))
                .await
                .unwrap(),
            [&x[..]]
        );
        // The racing run's record (lower id) wins from now on; b is collected.
        write(&store, &a, 10, &moved(c)).await.unwrap();
        store.delete(&keys::pack(&to_hex(&b))).await.unwrap();
        assert_eq!(
            read_ranges(&store, &a, std::slice::from_ref(&(0..8)))
                .await
                .unwrap(),
            [&x[..]]
        );
        let s: Vec<Bytes> = range_stream(&store, &a, 0..8)
            .await
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(s.concat(), x);
    }
}
