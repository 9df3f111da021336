//! Rewriting packs that are mostly dead: gc copies their live chunks into
//! new packs (named in its own writer session, so no other gc condemns them
//! mid-way), then writes a forward record per old pack (see
//! [`crate::pack_forward`]). The old packs become unused and go the way of
//! every unused pack: condemned by a mark, deleted by a sweep after the grace
//! period. A crash before a pack's forward record leaves only new packs no
//! one uses (collected later); after it, the rewrite of that pack is done.

use std::collections::HashSet;

use bytes::Bytes;
use futures::StreamExt;

use crate::ids::{hash_bytes, to_hex, Hash, PackId};
use crate::pack_forward::{self, Moved};
use crate::packer::PACK_TARGET;
use crate::progress::Progress;
use crate::session::{pack_id_in, SessionId};
use crate::store::{keys, Store, StoreError};

/// A pack to rewrite and its live chunks (offset, length, hash).
pub struct Victim {
    pub pack: PackId,
    pub chunks: Vec<(u32, u32, Hash)>,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Rewritten {
    /// Old packs rewritten (their forward records written).
    pub packs: u64,
    /// Live bytes copied into new packs.
    pub bytes_copied: u64,
    pub new_packs: u64,
}

struct Out {
    id: PackId,
    buf: Vec<u8>,
}

/// Copies the victims' live chunks into new packs of `session`, then writes
/// their forward records under `record`. Returns the chunks moved, per old
/// pack whose record was written. A chunk that does not match its hash
/// leaves its pack as it is (nothing is forwarded to a bad copy).
pub async fn rewrite(
    store: &Store,
    session: &SessionId,
    record: u64,
    victims: Vec<Victim>,
    bar: &Progress,
) -> Result<(Vec<(PackId, Vec<Moved>)>, Rewritten), StoreError> {
    let mut stats = Rewritten::default();
    let mut out = Out {
        id: pack_id_in(session),
        buf: Vec::with_capacity(PACK_TARGET),
    };
    let mut moved: Vec<(PackId, Vec<Moved>)> = vec![];
    let mut uploads: Vec<(String, Vec<u8>)> = vec![];
    // Reads 4 packs at a time; copies in order.
    let mut reads = futures::stream::iter(victims)
        .map(|v| async move {
            let ranges: Vec<_> = v
                .chunks
                .iter()
                .map(|(off, len, _)| *off as u64..*off as u64 + *len as u64)
                .collect();
            let data = pack_forward::read_ranges(store, &v.pack, &ranges).await;
            (v, data)
        })
        .buffered(4);
    while let Some((v, data)) = reads.next().await {
        let data = match data {
            Ok(d) => d,
            // Deleted meanwhile (another gc): nothing to rewrite.
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if v.chunks
            .iter()
            .zip(&data)
            .any(|((_, len, h), d)| d.len() != *len as usize || hash_bytes(d) != *h)
        {
            tracing::warn!(pack = %to_hex(&v.pack), "not rewriting a pack with a corrupt chunk (run verify)");
            continue;
        }
        let mut ms = Vec::with_capacity(v.chunks.len());
        for ((off, len, h), d) in v.chunks.iter().zip(&data) {
            if !out.buf.is_empty() && out.buf.len() + d.len() > PACK_TARGET {
                let full = std::mem::replace(
                    &mut out,
                    Out {
                        id: pack_id_in(session),
                        buf: Vec::with_capacity(PACK_TARGET),
                    },
                );
                uploads.push((keys::pack(&to_hex(&full.id)), full.buf));
                flush(store, &mut uploads, 2).await?;
                stats.new_packs += 1;
            }
            ms.push(Moved {
                offset: *off,
                len: *len,
                hash: *h,
                to: out.id,
                to_offset: out.buf.len() as u32,
            });
            out.buf.extend_from_slice(d);
            stats.bytes_copied += *len as u64;
        }
        bar.inc(1);
        moved.push((v.pack, ms));
    }
    if !out.buf.is_empty() {
        uploads.push((keys::pack(&to_hex(&out.id)), out.buf));
        stats.new_packs += 1;
    }
    flush(store, &mut uploads, 0).await?;
    // Every new pack is stored: now the records.
    let mut done = vec![];
    let mut written: HashSet<PackId> = HashSet::new();
    for (old, ms) in moved {
        if pack_forward::write(store, &old, record, &ms).await? && written.insert(old) {
            stats.packs += 1;
            done.push((old, ms));
        }
    }
    Ok((done, stats))
}

/// Uploads queued packs until at most `keep` remain queued.
async fn flush(
    store: &Store,
    q: &mut Vec<(String, Vec<u8>)>,
    keep: usize,
) -> Result<(), StoreError> {
    if q.len() <= keep {
        return Ok(());
    }
    let batch = std::mem::take(q);
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(batch)
        .map(|(k, b)| async move { store.put(&k, Bytes::from(b)).await })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect()
}
