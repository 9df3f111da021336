//! Fetching chunks of a manifest by byte range of their packs, verifying each
//! against its BLAKE3 hash before anyone sees it.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;

use crate::format::ids::{to_hex, PackId};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::store::client::{Store, StoreError};

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

/// Checks chunk bytes against the chunk's name.
pub fn verify_chunk_bytes(pack: &PackId, c: &ChunkRef, data: &[u8]) -> Result<(), ChunkError> {
    if data.len() != c.len as usize {
        return Err(ChunkError::Short {
            chunk: to_hex(&c.hash),
            pack: to_hex(pack),
            got: data.len(),
            want: c.len,
        });
    }
    let actual = blake3::hash(data);
    if actual.as_bytes() != &c.hash {
        return Err(ChunkError::Corrupt {
            chunk: to_hex(&c.hash),
            pack: to_hex(pack),
            offset: c.offset,
            actual: actual.to_hex().to_string(),
        });
    }
    Ok(())
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
            let data =
                crate::format::pack_forward::read_ranges(store, &m.packs[pack as usize], &ranges)
                    .await?;
            Ok::<_, StoreError>((cs, data))
        })
        .buffer_unordered(BATCHES_IN_FLIGHT);
    while let Some(r) = results.next().await {
        let (cs, data) = r?;
        for (c, d) in cs.iter().zip(data) {
            let checked = verify_chunk_bytes(&m.packs[c.pack as usize], c, &d).map(|()| d);
            each(c, checked)?;
        }
    }
    Ok(())
}
