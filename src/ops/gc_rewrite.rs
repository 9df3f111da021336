//! Rewriting packs that are mostly dead: gc copies their live chunks into
//! new packs (named in its own writer session, so no other gc condemns them
//! mid-way), then writes a forward record per old pack (see
//! [`crate::format::forwards`]). The old packs become unused and go the way of
//! every unused pack: condemned by a mark, deleted by a sweep after the grace
//! period. A crash before a pack's forward record leaves only new packs no
//! one uses (collected later); after it, the rewrite of that pack is done.
//!
//! Writing a record is to gc what claiming a version is to a writer: it
//! makes new packs live. So it is guarded the same way (see
//! [`crate::catalog::gc_runs::Guard`]): gc beats its session, checks that no gc
//! run condemned or deleted a new pack meanwhile (possible only if this gc
//! stalled past the session's expiry), and writes records only within
//! [`crate::format::sessions::CLAIM_WINDOW`] of that heartbeat. A record whose new
//! packs were condemned is not written; the old pack stays as it is.

use std::collections::HashSet;
use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;

use crate::catalog::gc_runs::GuardStart;
use crate::format::forwards::{self, Moved};
use crate::format::keys;
use crate::format::sessions::{boottime_ms, pack_id_in, Session, CLAIM_WINDOW};
use crate::format::PACK_TARGET;
use crate::format::{hash_bytes, to_hex, Hash, PackId};
use crate::ops::progress::Progress;
use crate::store::{Store, StoreError};

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
/// `cache_dir`: where gc caches its records.
pub async fn rewrite(
    store: &Store,
    session: &Session,
    cache_dir: Option<PathBuf>,
    record: u64,
    victims: Vec<Victim>,
    bar: &Progress,
) -> Result<(Vec<(PackId, Vec<Moved>)>, Rewritten), StoreError> {
    let sid = session.id();
    let mut stats = Rewritten::default();
    let mut out = Out {
        id: pack_id_in(&sid),
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
            let data = forwards::read_ranges(store, &v.pack, &ranges).await;
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
                        id: pack_id_in(&sid),
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
    if moved.is_empty() {
        return Ok((vec![], stats));
    }
    // Every new pack is stored: now the records, each within the claim
    // window of a heartbeat that preceded a look at the gc records.
    let new_packs: HashSet<PackId> = moved
        .iter()
        .flat_map(|(_, ms)| ms.iter().map(|m| m.to))
        .collect();
    let mut guard = GuardStart::list(store, cache_dir)
        .await?
        .with_gen(None)
        .await?;
    let mut checked: Option<(u64, HashSet<PackId>)> = None;
    let mut done = vec![];
    let mut written: HashSet<PackId> = HashSet::new();
    for (old, ms) in moved {
        let stale = checked.as_ref().is_none_or(|(t, _)| {
            boottime_ms().saturating_sub(*t) >= CLAIM_WINDOW.as_millis() as u64
        });
        if stale {
            checked = Some(loop {
                let t = boottime_ms();
                session.beat().await?;
                let v = guard.check(&sid, &new_packs, "", |_| false).await?;
                if boottime_ms().saturating_sub(t) < CLAIM_WINDOW.as_millis() as u64 {
                    break (t, v.condemned.union(&v.missing).copied().collect());
                }
            });
        }
        let bad = &checked.as_ref().expect("checked above").1;
        if ms.iter().any(|m| bad.contains(&m.to)) {
            tracing::warn!(pack = %to_hex(&old), "not forwarding a pack: gc condemned its copy while this gc stalled");
            continue;
        }
        if forwards::write(store, &old, record, &ms).await? && written.insert(old) {
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
