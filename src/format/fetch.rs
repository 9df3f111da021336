//! Reading chunks out of packs: the one place that asks the store for byte
//! ranges of packs, bounds how long it waits, and checks every chunk against
//! its BLAKE3 name before anyone sees it. The mount's reader
//! ([`open_range`], [`verify_chunk`]), `get`, `verify` and `cache prefetch`
//! ([`fetch_chunks`]), commit's schema summaries and gc's pack rewrites
//! ([`fetch_located`]) all read through here. Packs gc rewrote are read
//! through their forward records (`pack_forward`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::format::ids::{to_hex, Hash, PackId};
use crate::format::manifest::{ChunkLocation, ChunkRef, Manifest};
use crate::format::pack_forward;
use crate::store::{Store, StoreError};

/// Largest span of one ranged request batch.
const BATCH_SPAN: u64 = 64 << 20;
const BATCHES_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk {chunk} (pack {pack}, offset {offset}) is corrupt: its bytes hash to {actual}")]
    Corrupt {
        chunk: String,
        pack: String,
        offset: u32,
        actual: String,
    },
    #[error("chunk {chunk}: pack {pack} returned {got} bytes, expected {want}")]
    Short {
        chunk: String,
        pack: String,
        got: usize,
        want: u32,
    },
}

/// Every failure to produce verified bytes is an I/O error: never wrong data.
impl crate::store::ToErrno for ChunkError {
    fn errno(&self) -> libc::c_int {
        libc::EIO
    }
}

/// Why a read of a pack range gave no verified bytes.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The store made no progress for this long.
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The response stopped before the whole range arrived.
    #[error("response ended early")]
    Ended,
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

impl crate::store::ToErrno for FetchError {
    fn errno(&self) -> libc::c_int {
        libc::EIO
    }
}

/// Checks chunk bytes against the chunk's name (and length).
pub fn verify_chunk(pack: &PackId, c: &ChunkRef, data: &[u8]) -> Result<(), ChunkError> {
    check(pack, &c.hash, c.offset, c.len, data)
}

fn check(pack: &PackId, hash: &Hash, offset: u32, len: u32, data: &[u8]) -> Result<(), ChunkError> {
    if data.len() != len as usize {
        return Err(ChunkError::Short {
            chunk: to_hex(hash),
            pack: to_hex(pack),
            got: data.len(),
            want: len,
        });
    }
    let actual = blake3::hash(data);
    if actual.as_bytes() != hash {
        return Err(ChunkError::Corrupt {
            chunk: to_hex(hash),
            pack: to_hex(pack),
            offset,
            actual: actual.to_hex().to_string(),
        });
    }
    Ok(())
}

/// A ranged read of a pack under way: its bytes as they arrive, each frame
/// waited for at most the timeout it was opened with.
pub struct RangeBody {
    body: BoxStream<'static, Result<Bytes, StoreError>>,
    left: u64,
    timeout: Duration,
}

/// Starts one ranged GET of `range` of `pack` (through its forward records
/// if gc rewrote it), waiting at most `timeout` for the response to begin.
pub async fn open_range(
    store: &Store,
    pack: &PackId,
    range: Range<u64>,
    timeout: Duration,
) -> Result<RangeBody, FetchError> {
    let stream = pack_forward::range_stream(store, pack, range.clone());
    let body = tokio::time::timeout(timeout, stream)
        .await
        .map_err(|_| FetchError::Timeout(timeout))??;
    Ok(RangeBody {
        body,
        left: range.end - range.start,
        timeout,
    })
}

impl RangeBody {
    /// The next frame of the range (cut at its end), or `None` once the
    /// whole range arrived. A frame that takes longer than the timeout, or a
    /// response that ends early, is an error.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, FetchError> {
        if self.left == 0 {
            return Ok(None);
        }
        let t = self.timeout;
        let frame = tokio::time::timeout(t, self.body.next())
            .await
            .map_err(|_| FetchError::Timeout(t))?
            .ok_or(FetchError::Ended)??;
        let n = frame.len().min(self.left as usize);
        self.left -= n as u64;
        Ok(Some(if n == frame.len() {
            frame
        } else {
            frame.slice(..n)
        }))
    }
}

/// One chunk at a known place in a pack (one ranged GET), verified against
/// `hash`.
pub async fn fetch_located(
    store: &Store,
    hash: &Hash,
    loc: &ChunkLocation,
) -> Result<Bytes, FetchError> {
    let range = loc.offset as u64..loc.offset as u64 + loc.len as u64;
    let data = pack_forward::read_ranges(store, &loc.pack, &[range])
        .await?
        .pop()
        .unwrap_or_default();
    check(&loc.pack, hash, loc.offset, loc.len, &data)?;
    Ok(data)
}

/// Fetches the given chunks (deduplicated by location), grouping them per
/// pack into ranged requests, and hands each to `each` with its verification
/// result. Store errors abort; what to do with a corrupt chunk is the
/// caller's choice.
pub async fn fetch_chunks<F, E>(
    store: &Store,
    m: &Manifest,
    chunks: impl IntoIterator<Item = ChunkRef>,
    mut each: F,
) -> Result<(), E>
where
    F: FnMut(&ChunkRef, Result<Bytes, ChunkError>) -> Result<(), E>,
    E: From<StoreError>,
{
    let mut by_pack: BTreeMap<u32, BTreeMap<u32, ChunkRef>> = BTreeMap::new();
    for c in chunks {
        by_pack.entry(c.pack).or_default().insert(c.offset, c);
    }
    let mut batches: Vec<(u32, Vec<ChunkRef>)> = vec![];
    for (pack, cs) in by_pack {
        let mut cur: Vec<ChunkRef> = vec![];
        for c in cs.into_values() {
            if let Some(first) = cur.first() {
                if (c.offset as u64 + c.len as u64) - first.offset as u64 > BATCH_SPAN {
                    batches.push((pack, std::mem::take(&mut cur)));
                }
            }
            cur.push(c);
        }
        if !cur.is_empty() {
            batches.push((pack, cur));
        }
    }
    let mut results = futures::stream::iter(batches)
        .map(|(pack, cs)| async move {
            let ranges: Vec<_> = cs
                .iter()
                .map(|c| c.offset as u64..c.offset as u64 + c.len as u64)
                .collect();
            // A pack gc rewrote is read through its forward records.
            let data = pack_forward::read_ranges(store, &m.packs[pack as usize], &ranges).await?;
            Ok::<_, StoreError>((cs, data))
        })
        .buffer_unordered(BATCHES_IN_FLIGHT);
    while let Some(r) = results.next().await {
        let (cs, data) = r?;
        for (c, d) in cs.iter().zip(data) {
            let checked = verify_chunk(&m.packs[c.pack as usize], c, &d).map(|()| d);
            each(c, checked)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::key_layout as keys;

    #[tokio::test]
    async fn located_chunks_are_verified_and_ranges_arrive_whole() {
        let store = Store::open("memory://").unwrap();
        let pack = [7u8; 16];
        let body = b"..hello world..".to_vec();
        store
            .put(&keys::pack(&to_hex(&pack)), Bytes::from(body))
            .await
            .unwrap();
        let hash = crate::format::ids::hash_bytes(b"hello");
        let at = |offset, len| ChunkLocation { pack, offset, len };
        assert_eq!(
            fetch_located(&store, &hash, &at(2, 5)).await.unwrap(),
            &b"hello"[..]
        );
        // Other bytes under the same name are refused, never returned.
        assert!(matches!(
            fetch_located(&store, &hash, &at(8, 5)).await,
            Err(FetchError::Chunk(ChunkError::Corrupt { .. }))
        ));
        let gone = ChunkLocation {
            pack: [8u8; 16],
            offset: 0,
            len: 5,
        };
        let e = fetch_located(&store, &hash, &gone).await.unwrap_err();
        assert!(matches!(e, FetchError::Store(StoreError::NotFound { .. })));
        let mut body = open_range(&store, &pack, 2..13, Duration::from_secs(5))
            .await
            .unwrap();
        let mut got = vec![];
        while let Some(f) = body.next_frame().await.unwrap() {
            got.extend_from_slice(&f);
        }
        assert_eq!(got, b"hello world");
    }
}
