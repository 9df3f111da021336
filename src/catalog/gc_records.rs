//! gc's records in the store, and the check every writer makes against them
//! before it claims a version.
//!
//! Each gc run claims a sequence number with the create-if-absent write of
//! its mark, `gc/<seq>/mark`: the packs and manifests it found unreferenced
//! (condemned). Right after, `gc/<seq>/wait` lists the writer sessions that
//! were live then; the mark is not swept until each has ended or expired and
//! the mark's grace period has passed. The sweep decides the final set,
//! `gc/<seq>/sweep` (condemned minus whatever versions committed since then
//! use), deletes it, and writes `gc/<seq>/done`. The safety argument is in
//! docs/storage-format.md ("Why gc never deletes what a version uses").
//!
//! A writer loads the records when it starts ([`Guard::load`]) and never
//! deduplicates against a condemned pack; just before it claims a version it
//! looks again ([`Guard::check`]) and, if a pack it references was condemned
//! meanwhile, stores those chunks again instead of claiming.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::format::keys;
use crate::format::{to_hex, PackId};
use crate::store::{ObjectInfo, Store, StoreError};

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mark {
    pub format: u32,
    pub seq: u64,
    /// Grace period of this mark: not swept earlier than this after it was written.
    pub grace_ms: u64,
    pub host: String,
    pub pid: u32,
    pub by: String,
    pub created: String,
    /// Condemned pack ids (hex).
    pub packs: Vec<String>,
    /// Their sizes, in the same order.
    #[serde(default)]
    pub pack_sizes: Vec<u64>,
    /// Condemned manifest hashes (hex).
    pub manifests: Vec<String>,
    /// Bytes in the condemned packs.
    pub bytes: u64,
    /// Live versions when the mark was made, by asset (`models/x`): the
    /// sweep reads only manifests of versions committed since.
    pub live: BTreeMap<String, Vec<u64>>,
    /// Forward records (keys) of rewritten packs no live reference uses.
    #[serde(default)]
    pub forwards: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Wait {
    pub format: u32,
    /// Sessions live right after the mark was written (hex ids).
    pub sessions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sweep {
    pub format: u32,
    /// What the sweep deletes: the condemned packs and manifests that no
    /// version committed since the mark uses.
    pub packs: Vec<String>,
    pub manifests: Vec<String>,
    pub bytes: u64,
    /// Condemned but kept: a version committed after the mark uses them.
    pub kept_packs: u64,
    /// Forward records deleted with them.
    #[serde(default)]
    pub forwards: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Done {
    pub format: u32,
    pub finished: String,
}

/// Which records of one run exist.
#[derive(Debug, Clone, Default)]
pub struct RunKeys {
    /// The mark object (its modification time is the mark's time, store clock).
    pub mark: Option<ObjectInfo>,
    pub wait: bool,
    pub sweep: bool,
    pub done: bool,
}

impl RunKeys {
    pub fn pending(&self) -> bool {
        self.mark.is_some() && !self.done
    }
}

/// All gc runs the store has records of, by sequence number.
pub async fn list_runs(store: &Store) -> Result<BTreeMap<u64, RunKeys>, StoreError> {
    Ok(runs_of(&store.list_info(keys::GC).await?))
}

/// Runs from a listing of `gc/`; records without their mark are left out.
pub fn runs_of(listed: &[ObjectInfo]) -> BTreeMap<u64, RunKeys> {
    let mut runs: BTreeMap<u64, RunKeys> = BTreeMap::new();
    for o in listed {
        let mut parts = o.key.rsplit('/');
        let (Some(what), Some(seq)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(seq) = seq.parse::<u64>() else {
            continue;
        };
        let r = runs.entry(seq).or_default();
        match what {
            "mark" => r.mark = Some(o.clone()),
            "wait" => r.wait = true,
            "sweep" => r.sweep = true,
            "done" => r.done = true,
            _ => {}
        }
    }
    // Records without their mark (a cleanup cut short) mean nothing.
    runs.retain(|_, r| r.mark.is_some());
    runs
}

/// Reads one record of run `seq` through the node cache (records never change).
pub async fn read<T: for<'de> Deserialize<'de>>(
    store: &Store,
    cache_dir: Option<&std::path::Path>,
    seq: u64,
    what: &str,
) -> Result<T, StoreError> {
    let key = keys::gc_record(seq, what);
    let local = cache_dir.map(|d| d.join("gc").join(format!("{seq:020}-{what}")));
    let bytes = match local.as_ref().and_then(|p| std::fs::read(p).ok()) {
        Some(b) => Bytes::from(b),
        None => {
            let b = store.get(&key).await?;
            if let Some(p) = &local {
                if let Some(d) = p.parent() {
                    let _ = std::fs::create_dir_all(d);
                }
                let _ = crate::store::write_atomic(p, &b);
            }
            b
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::invalid(&key, format!("unreadable gc record: {e}")))
}

/// Writes a record with create-if-absent; `false` when it already existed.
pub async fn create<T: Serialize>(
    store: &Store,
    seq: u64,
    what: &str,
    rec: &T,
) -> Result<bool, StoreError> {
    let body = Bytes::from(serde_json::to_vec(rec).expect("gc record serialises"));
    store.put_if_absent(&keys::gc_record(seq, what), body).await
}

pub fn pack_from_hex(s: &str) -> Option<PackId> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

/// What one run forbids writers to reference: its sweep's set once decided,
/// else everything it condemned.
async fn forbidden(
    store: &Store,
    cache_dir: Option<&std::path::Path>,
    seq: u64,
    keys: &RunKeys,
) -> Result<(HashSet<PackId>, HashSet<String>), StoreError> {
    let (packs, manifests) = if keys.sweep {
        let s: Sweep = read(store, cache_dir, seq, "sweep").await?;
        (s.packs, s.manifests)
    } else {
        let m: Mark = read(store, cache_dir, seq, "mark").await?;
        (m.packs, m.manifests)
    };
    Ok((
        packs.iter().filter_map(|p| pack_from_hex(p)).collect(),
        manifests.into_iter().collect(),
    ))
}

/// What one run forbids, as far as a writer has read it.
struct Forbidden {
    packs: HashSet<PackId>,
    manifests: HashSet<String>,
    /// Read from the sweep record (final), not the mark.
    swept: bool,
}

/// A writer's view of the gc records, from its start to its claim.
pub struct Guard {
    store: Store,
    cache_dir: Option<PathBuf>,
    /// The chunk index generation the writer deduplicates against.
    gen: Option<crate::format::index::GenInfo>,
    /// Runs already done when the writer started.
    done_at_load: HashSet<u64>,
    runs: BTreeMap<u64, Forbidden>,
    loaded_ms: u64,
}

/// What the claim-time check found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Referenced packs gc condemned or deleted since the writer looked.
    pub condemned: HashSet<PackId>,
    /// Referenced packs that no longer exist.
    pub missing: HashSet<PackId>,
    /// The writer's own manifest was condemned.
    pub manifest_condemned: bool,
}

impl Verdict {
    pub fn clear(&self) -> bool {
        self.condemned.is_empty() && self.missing.is_empty() && !self.manifest_condemned
    }
}

/// How long a writer may rely on records it read at its start: beyond this,
/// gc may have deleted records of runs it never saw, so every referenced
/// pack's existence is checked. gc keeps done records far longer (see
/// `gc::RECORD_KEEP`).
pub const TRUST_RECORDS: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The gc records listed when a writer starts, before it opens the chunk
/// index. The order matters: gc deletes a run's records only after writing
/// a newer index generation that accounts for the run, so a writer that no
/// longer sees a run's records opens a generation that leaves out what that
/// run deleted.
pub struct GuardStart {
    store: Store,
    cache_dir: Option<PathBuf>,
    runs: BTreeMap<u64, RunKeys>,
    at_ms: u64,
}

impl GuardStart {
    pub async fn list(store: &Store, cache_dir: Option<PathBuf>) -> Result<GuardStart, StoreError> {
        let at_ms = crate::format::sessions::boottime_ms();
        Ok(GuardStart {
            store: store.clone(),
            cache_dir,
            runs: list_runs(store).await?,
            at_ms,
        })
    }

    /// Reads what the writer needs, given the index generation it opened:
    /// runs not done yet, and runs that generation does not account for.
    pub async fn with_gen(
        self,
        gen: Option<crate::format::index::GenInfo>,
    ) -> Result<Guard, StoreError> {
        let mut g = Guard {
            store: self.store,
            cache_dir: self.cache_dir,
            gen,
            done_at_load: self
                .runs
                .iter()
                .filter(|(_, r)| r.done)
                .map(|(s, _)| *s)
                .collect(),
            runs: BTreeMap::new(),
            loaded_ms: self.at_ms,
        };
        g.absorb(&self.runs).await?;
        Ok(g)
    }
}

impl Guard {
    /// A run matters unless it was done when the writer started and the
    /// generation it reads already leaves out everything that run condemned.
    fn relevant(&self, seq: u64) -> bool {
        !self.done_at_load.contains(&seq)
            || self.gen.as_ref().is_none_or(|g| !g.runs.contains(&seq))
    }

    async fn absorb(&mut self, runs: &BTreeMap<u64, RunKeys>) -> Result<(), StoreError> {
        for (seq, keys) in runs {
            let known = self.runs.get(seq).map(|f| f.swept);
            // A run read while pending is read again once its sweep decided.
            if !self.relevant(*seq) || known == Some(true) || (known == Some(false) && !keys.sweep)
            {
                continue;
            }
            let (packs, manifests) =
                forbidden(&self.store, self.cache_dir.as_deref(), *seq, keys).await?;
            self.runs.insert(
                *seq,
                Forbidden {
                    packs,
                    manifests,
                    swept: keys.sweep,
                },
            );
        }
        Ok(())
    }

    /// Packs found condemned or missing at a check: forbidden from now on
    /// (kept under run 0, which no gc run uses).
    pub fn also_forbid(&mut self, packs: impl IntoIterator<Item = PackId>) {
        let extra = self.runs.entry(0).or_insert_with(|| Forbidden {
            packs: HashSet::new(),
            manifests: HashSet::new(),
            swept: true,
        });
        extra.packs.extend(packs);
    }

    /// Packs the writer must not reference.
    pub fn forbidden_packs(&self) -> HashSet<PackId> {
        self.runs
            .values()
            .flat_map(|f| f.packs.iter().copied())
            .collect()
    }

    /// The check before a claim: reads the records again and reports every
    /// referenced pack gc has condemned or deleted since the writer looked,
    /// referenced packs nobody vouched for that no longer exist, and whether
    /// the writer's manifest is about to be deleted. `vouched(p)`: the pack
    /// came from the chunk index or this writer.
    ///
    /// The manifest is only at risk from a run that will not wait for this
    /// writer: one whose sweep is decided, or whose `wait` record was listed
    /// before this session existed (a stalled writer). A run that waits for
    /// the session keeps whatever the version claimed meanwhile uses.
    pub async fn check(
        &mut self,
        session: &crate::format::sessions::SessionId,
        referenced: &HashSet<PackId>,
        manifest: &str,
        vouched: impl Fn(&PackId) -> bool,
    ) -> Result<Verdict, StoreError> {
        let listed = list_runs(&self.store).await?;
        self.absorb(&listed).await?;
        let mut v = Verdict {
            condemned: referenced
                .iter()
                .filter(|p| self.runs.values().any(|f| f.packs.contains(*p)))
                .copied()
                .collect(),
            ..Default::default()
        };
        let me = to_hex(session);
        for (seq, f) in &self.runs {
            if !f.manifests.contains(manifest) {
                continue;
            }
            let keys = listed.get(seq).cloned().unwrap_or_default();
            let waits_for_me = !f.swept
                && (!keys.wait || {
                    let w: Wait =
                        read(&self.store, self.cache_dir.as_deref(), *seq, "wait").await?;
                    w.sessions.contains(&me)
                });
            if !waits_for_me {
                v.manifest_condemned = true;
            }
        }
        let stale = crate::format::sessions::boottime_ms().saturating_sub(self.loaded_ms)
            > TRUST_RECORDS.as_millis() as u64;
        let mut unvouched: Vec<PackId> = referenced
            .iter()
            .filter(|p| stale || !vouched(p))
            .filter(|p| !v.condemned.contains(*p))
            .copied()
            .collect();
        // Many (a staging commit over a large base): one GET of the
        // generation's pack list vouches for those live when it was made;
        // anything condemned since is in the records read above.
        if let (false, Some(g), true) = (stale, &self.gen, unvouched.len() > 16) {
            let in_gen = crate::format::index::gen_packs(&self.store, g.gen).await?;
            unvouched.retain(|p| !in_gen.contains(p));
        }
        use futures::StreamExt;
        let store = &self.store;
        let heads: Vec<Result<(PackId, bool), StoreError>> = futures::stream::iter(unvouched)
            .map(|p| async move {
                let k = keys::pack(&to_hex(&p));
                Ok((p, store.head(&k).await?.is_some()))
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for h in heads {
            let (p, exists) = h?;
            if !exists {
                v.missing.insert(p);
            }
        }
        Ok(v)
    }
}
