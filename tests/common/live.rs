//! What a store's live versions hold, for the gc tests' invariants.

use std::collections::{hash_map, HashMap, HashSet};

use assetfs::format::forwards::{self, Forwards};
use assetfs::format::{to_hex, PackId};
use assetfs::store::Store;

/// What the live versions of a store use, following forward records of
/// rewritten packs the way readers do: pack ids and manifest hashes (hex),
/// and the rewritten packs whose forward records they go through.
pub async fn live_objects(store: &Store) -> (HashSet<String>, HashSet<String>, HashSet<String>) {
    let catalog = assetfs::catalog::Catalog::new(store.clone());
    let (mut packs, mut manifests, mut via) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut forwards: HashMap<PackId, Forwards> = HashMap::new();
    for (asset, k) in catalog.all_asset_keys().await.unwrap() {
        for v in k.live() {
            let rec = catalog.record(&asset, v).await.unwrap();
            let m = catalog.manifest(&rec.manifest).await.unwrap();
            manifests.insert(rec.manifest);
            for c in &m.chunks {
                let (mut p, mut off) = (m.packs[c.pack as usize], c.offset);
                for _ in 0..16 {
                    if let hash_map::Entry::Vacant(e) = forwards.entry(p) {
                        e.insert(forwards::load(store, &p).await.unwrap());
                    }
                    match forwards[&p].get(&off) {
                        Some(mv) if mv.len == c.len => {
                            via.insert(to_hex(&p));
                            (p, off) = (mv.to, mv.to_offset);
                        }
                        _ => break,
                    }
                }
                packs.insert(to_hex(&p));
            }
        }
    }
    (packs, manifests, via)
}
