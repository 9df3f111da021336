//! `cache prefetch`: warm the node's cache with a whole version (its
//! metadata too, so a later mount can serve it with the store unreachable).

use std::collections::HashSet;

use crate::catalog::CatalogCache;
use crate::catalog::CatalogError;
use crate::catalog::{CacheError, DiskCache};
use crate::format::Reference;
use crate::format::{fetch_chunks, ChunkError};
use crate::ops::progress::Progress;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PrefetchError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Chunk(ChunkError),
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PrefetchOutcome {
    pub reference: String,
    pub chunks_fetched: u64,
    pub bytes_fetched: u64,
    pub chunks_already_cached: u64,
}

pub async fn prefetch(
    meta: &CatalogCache,
    disk: &DiskCache,
    r: &Reference,
    progress: bool,
) -> Result<PrefetchOutcome, PrefetchError> {
    let catalog = meta.catalog();
    let version = catalog.resolve(r).await?;
    // Listings and records are saved by the catalog cache as a side effect.
    meta.fetch_listing(r.asset.kind).await?;
    let rec = meta.record(&r.asset, version).await?;
    let m = meta.manifest(&rec.manifest).await?;
    let mut out = PrefetchOutcome {
        reference: r.asset.at(version).to_string(),
        ..Default::default()
    };
    let mut seen = HashSet::new();
    let mut todo = vec![];
    let mut total = 0;
    for c in &m.chunks {
        if !seen.insert(c.hash) {
            continue;
        }
        if disk.contains(&c.hash) {
            out.chunks_already_cached += 1;
        } else {
            total += c.len as u64;
            todo.push(*c);
        }
    }
    let bar = Progress::bytes(total, "prefetch", progress);
    fetch_chunks(catalog.store(), &m, todo, |c, data| {
        let data = data.map_err(PrefetchError::Chunk)?;
        let at = crate::catalog::Origin {
            pack: m.packs[c.pack as usize],
            offset: c.offset,
        };
        disk.put(&c.hash, &data, at)?;
        out.chunks_fetched += 1;
        out.bytes_fetched += data.len() as u64;
        bar.inc(data.len() as u64);
        Ok::<_, PrefetchError>(())
    })
    .await?;
    bar.finish();
    Ok(out)
}
