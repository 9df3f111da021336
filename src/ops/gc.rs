//! `gc`: deletes versions that retention rules let go, then reclaims packs
//! and manifests no live version uses, while other nodes push, commit and
//! mount. The protocol, and why it is safe, is in docs/storage-format.md
//! ("Deleting and gc"); the records it writes are in [`crate::catalog::gc_runs`].
//!
//! One run, in phases (logged as `gc phase: NAME`):
//! 1. `scan`: the store clock, gc's own records.
//! 2. `retention`: deletion records for versions no rule keeps.
//! 3. `sweep`: every earlier mark whose grace period has passed and whose
//!    waited-for sessions are gone: decide what to delete (the condemned
//!    packs minus what versions committed since use), record it, delete it.
//! 4. `mark`: list deltas, packs and manifests, then sessions, then
//!    versions; condemn what no live version uses, is older than the grace
//!    period and belongs to no live session; record the sessions live now.
//! 5. `index`: write the next chunk index generation from the live chunks
//!    and delete the deltas it absorbed.
//! 6. `sweep` again for this run's own mark, if it is already ripe (`--grace 0`).
//! 7. `cleanup`: expired sessions, old gc records and index generations, stray probes.
//!
//! A crash at any point leaves records the next run completes: a mark
//! without its wait record gets one, a decided sweep is redone (deleting is
//! idempotent), an unfinished index generation is ignored and removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::catalog::gc_runs::{self as rec, Done, Mark, RunKeys, Sweep, Wait};
use crate::catalog::CatalogCache;
use crate::catalog::{AssetKeys, Catalog, CatalogError};
use crate::format::forwards;
use crate::format::index;
use crate::format::keys;
use crate::format::sessions::{self, Session, SessionId};
use crate::format::AssetId;
use crate::format::{to_hex, Hash, PackId};
use crate::ops::progress::Progress;
use crate::store::{ObjectInfo, Store, StoreError};

/// Records of finished runs are kept at least this long, and the newest
/// [`RECORD_KEEP_RUNS`] of them always (writers rely on them; see
/// [`crate::catalog::gc_runs::TRUST_RECORDS`]).
pub const RECORD_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
const RECORD_KEEP_RUNS: usize = 8;
/// Leftover self-check probes older than this are removed.
const PROBE_KEEP: Duration = Duration::from_secs(3600);
const PARALLEL: usize = 16;
const MAX_SEQ_ATTEMPTS: u32 = 1000;

/// A pack and its size in bytes.
type PackSize = (PackId, u64);

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("--keep-last must be at least 1")]
    KeepLastZero,
    #[error("gave up claiming a gc run number after {0} attempts")]
    SeqExhausted(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Nothing unreferenced younger than this is condemned, and a mark is
    /// not swept earlier than this after it was made.
    pub grace: Duration,
    /// Retention: keep the newest N versions of each asset.
    pub keep_last: Option<usize>,
    /// Retention: keep versions created within this long.
    pub keep_within: Option<Duration>,
    /// Decide and report, write and delete nothing.
    pub dry_run: bool,
    /// Who deletes versions by retention (recorded).
    pub by: String,
    /// Node cache (version records and manifests, gc records).
    pub cache_dir: PathBuf,
    pub progress: bool,
    /// Rewrite packs whose live bytes are below this fraction of their size
    /// (0 disables).
    pub rewrite_below: f64,
}

/// Default `rewrite_below`: packs less than half used are rewritten.
pub const DEFAULT_REWRITE_BELOW: f64 = 0.5;

impl GcOptions {
    fn retention(&self) -> bool {
        self.keep_last.is_some() || self.keep_within.is_some()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SweptRun {
    pub seq: u64,
    pub packs: u64,
    pub manifests: u64,
    pub bytes: u64,
    /// Condemned, but a version committed after the mark uses them.
    pub kept_packs: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PendingRun {
    pub seq: u64,
    pub packs: u64,
    pub bytes: u64,
    /// The earliest time a later gc can sweep it (RFC 3339).
    pub sweep_after: String,
    /// Writer sessions it still waits for.
    pub waiting_for: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexReport {
    pub gen: u64,
    pub chunks: u64,
    pub shards: u64,
    pub deltas_absorbed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreReport {
    pub live_versions: u64,
    pub packs: u64,
    pub pack_bytes: u64,
    /// Bytes of chunks live versions use.
    pub live_bytes: u64,
    /// Bytes in packs no live version uses (pack_bytes - live_bytes),
    /// whether or not gc could free them yet.
    pub dead_bytes: u64,
    /// Of those, in packs no live version uses at all (what deleting packs frees).
    pub dead_in_unused_packs: u64,
    /// Unused, but younger than the grace period or written by a live session.
    pub young_unused_packs: u64,
    pub young_unused_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleaned {
    pub sessions: u64,
    pub records: u64,
    pub index_gens: u64,
    pub probes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub grace_secs: u64,
    /// Versions deleted by retention (or that would be, with --dry-run).
    pub deleted_versions: Vec<String>,
    pub swept: Vec<SweptRun>,
    pub pending: Vec<PendingRun>,
    /// This run's mark: what it condemned (packs, manifests, bytes).
    pub marked: Option<PendingRun>,
    pub marked_manifests: u64,
    pub index: Option<IndexReport>,
    pub store: StoreReport,
    pub cleaned: Cleaned,
    /// Bytes deleted by this run (or that would be, with --dry-run).
    pub freed_bytes: u64,
    /// Mostly-dead packs whose live chunks this run copied into new packs
    /// (with --dry-run: would copy); the old packs are then condemned.
    pub rewritten: crate::ops::gc_rewrite::Rewritten,
}

fn phase(name: &str) {
    tracing::info!(target: "assetfs::gc", "gc phase: {name}");
}

fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.replace_nanosecond(0)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn parse_hex16(s: &str) -> Option<PackId> {
    (s.len() == 32).then(|| rec::pack_from_hex(s)).flatten()
}

fn last_segment(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Sessions alive at store time `now_ms`, from a listing of `sessions/`.
fn live_sessions(listed: &[ObjectInfo], now_ms: i64) -> HashSet<SessionId> {
    live_sessions_of(listed, now_ms, true)
}

/// Live writer sessions, gc's own left out: what a sweep waits for (gc's
/// sessions claim no version).
fn live_writers(listed: &[ObjectInfo], now_ms: i64) -> HashSet<SessionId> {
    live_sessions_of(listed, now_ms, false)
}

fn live_sessions_of(listed: &[ObjectInfo], now_ms: i64, with_gc: bool) -> HashSet<SessionId> {
    listed
        .iter()
        .filter(|o| now_ms - o.modified_ms < sessions::EXPIRY.as_millis() as i64)
        .filter_map(|o| sessions::parse_session_name(last_segment(&o.key)))
        .filter(|(_, gc)| with_gc || !gc)
        .map(|(id, _)| id)
        .collect()
}

/// Forward records of packs gc rewrote (see [`crate::format::forwards`]),
/// loaded as live references need them.
struct ForwardMap {
    store: Store,
    /// Packs with forward records, and the records' keys and times.
    known: HashMap<PackId, Vec<ObjectInfo>>,
    loaded: HashMap<PackId, forwards::Forwards>,
}

impl ForwardMap {
    async fn list(store: &Store) -> Result<ForwardMap, StoreError> {
        let mut known: HashMap<PackId, Vec<ObjectInfo>> = HashMap::new();
        for o in store.list_info(keys::FORWARDS).await? {
            if let Some(p) = o.key.split('/').nth(1).and_then(parse_hex16) {
                known.entry(p).or_default().push(o);
            }
        }
        Ok(ForwardMap {
            store: store.clone(),
            known,
            loaded: HashMap::new(),
        })
    }

    /// Where the chunk at (`p`, `off`) lives now, following forward records
    /// the same way readers do; the forwarded packs passed go into `via`.
    async fn resolve(
        &mut self,
        mut p: PackId,
        mut off: u32,
        len: u32,
        via: &mut HashSet<PackId>,
    ) -> Result<(PackId, u32), StoreError> {
        for _ in 0..16 {
            if !self.known.contains_key(&p) {
                break;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = self.loaded.entry(p) {
                e.insert(forwards::load(&self.store, &p).await?);
            }
            match self.loaded[&p].get(&off) {
                Some(m) if m.len == len => {
                    via.insert(p);
                    (p, off) = (m.to, m.to_offset);
                }
                _ => break,
            }
        }
        Ok((p, off))
    }
}

/// What the live versions use.
#[derive(Default)]
struct LiveSet {
    pack_ix: HashMap<PackId, u32>,
    packs: Vec<PackId>,
    live_bytes: Vec<u64>,
    seen: HashSet<(u32, u32)>,
    chunks: HashMap<Hash, (u32, u32, u32)>,
    /// Live chunks of each pack (offset, len, hash), for rewriting.
    pack_chunks: Vec<Vec<(u32, u32, Hash)>>,
    manifests: HashSet<String>,
    /// Rewritten packs whose forward records live references go through.
    forwarded: HashSet<PackId>,
    live: BTreeMap<String, Vec<u64>>,
    versions: u64,
}

impl LiveSet {
    fn ix(&mut self, p: PackId) -> u32 {
        let next = self.packs.len() as u32;
        let ix = *self.pack_ix.entry(p).or_insert(next);
        if ix == next {
            self.packs.push(p);
            self.live_bytes.push(0);
            self.pack_chunks.push(vec![]);
        }
        ix
    }

    fn add_chunk(&mut self, hash: Hash, p: PackId, off: u32, len: u32, with_chunks: bool) {
        let ix = self.ix(p);
        if self.seen.insert((ix, off)) {
            self.live_bytes[ix as usize] += len as u64;
            if with_chunks {
                self.pack_chunks[ix as usize].push((off, len, hash));
            }
        }
        if with_chunks {
            self.chunks.entry(hash).or_insert((ix, off, len));
        }
    }

    /// A chunk the rewrite moved from `old` to `m.to`.
    fn moved(&mut self, old: PackId, m: &forwards::Moved) {
        let o = self.ix(old);
        if self.seen.remove(&(o, m.offset)) {
            self.live_bytes[o as usize] -= m.len as u64;
        }
        let n = self.ix(m.to);
        if self.seen.insert((n, m.to_offset)) {
            self.live_bytes[n as usize] += m.len as u64;
        }
        if let Some(loc) = self.chunks.get_mut(&m.hash) {
            if loc.0 == o && loc.1 == m.offset {
                *loc = (n, m.to_offset, m.len);
            }
        }
        self.forwarded.insert(old);
    }

    fn uses_pack(&self, p: &PackId) -> bool {
        self.pack_ix
            .get(p)
            .is_some_and(|ix| self.live_bytes[*ix as usize] > 0)
    }

    fn live_bytes_of(&self, p: &PackId) -> u64 {
        self.pack_ix
            .get(p)
            .map_or(0, |ix| self.live_bytes[*ix as usize])
    }
}

/// Reads the records and manifests of `versions` and collects what they
/// use, following forward records of rewritten packs.
async fn collect_live(
    meta: &CatalogCache,
    forwards: &mut ForwardMap,
    versions: &[(AssetId, u64)],
    with_chunks: bool,
    bar: &Progress,
) -> Result<LiveSet, GcError> {
    let mut live = LiveSet::default();
    let mut loads = futures::stream::iter(versions.iter().cloned())
        .map(|(asset, v)| async move {
            let r = meta.record(&asset, v).await?;
            let m = meta.manifest(&r.manifest).await?;
            Ok::<_, CatalogError>((asset, v, r.manifest, m))
        })
        .buffer_unordered(8);
    while let Some(r) = loads.next().await {
        let (asset, v, hash, m) = r?;
        live.manifests.insert(hash);
        for c in &m.chunks {
            let p = m.packs[c.pack as usize];
            let (p, off) = if forwards.known.contains_key(&p) {
                forwards
                    .resolve(p, c.offset, c.len, &mut live.forwarded)
                    .await?
            } else {
                (p, c.offset)
            };
            live.add_chunk(c.hash, p, off, c.len, with_chunks);
        }
        live.live.entry(asset.to_string()).or_default().push(v);
        live.versions += 1;
        bar.inc(1);
    }
    for vs in live.live.values_mut() {
        vs.sort_unstable();
    }
    Ok(live)
}

/// Versions retention lets go: not among the newest `keep_last` of their
/// asset, not created within `keep_within`, not the newest, not aliased, and
/// no lineage input (transitively) of a version kept.
async fn retention_victims(
    meta: &CatalogCache,
    assets: &BTreeMap<AssetId, AssetKeys>,
    opts: &GcOptions,
) -> Result<Vec<(AssetId, u64)>, GcError> {
    let now = time::OffsetDateTime::now_utc();
    let mut kept: HashSet<String> = HashSet::new();
    let mut candidates: Vec<(AssetId, u64)> = vec![];
    let mut inputs: HashMap<String, Vec<String>> = HashMap::new();
    for (asset, k) in assets {
        let live = k.live();
        let aliased: HashSet<u64> = meta.catalog().aliases_of(k).await?.into_values().collect();
        for (i, v) in live.iter().rev().enumerate() {
            let r = meta.record(asset, *v).await?;
            let name = asset.at(*v).to_string();
            inputs.insert(name.clone(), crate::ops::lineage::inputs_of(&r.meta));
            let recent = opts.keep_within.is_some_and(|d| {
                r.meta
                    .get("created")
                    .and_then(|c| c.as_str())
                    .and_then(|c| {
                        time::OffsetDateTime::parse(
                            c,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    // Unreadable creation time: keep, rather than guess.
                    .is_none_or(|t| now - t < d)
            });
            let newest_n = opts.keep_last.is_some_and(|n| i < n);
            if i == 0 || newest_n || recent || aliased.contains(v) {
                kept.insert(name);
            } else {
                candidates.push((asset.clone(), *v));
            }
        }
    }
    // Lineage inputs of kept versions are kept, transitively.
    let mut frontier: Vec<String> = kept.iter().cloned().collect();
    while let Some(r) = frontier.pop() {
        for i in inputs.get(&r).cloned().unwrap_or_default() {
            if kept.insert(i.clone()) {
                frontier.push(i);
            }
        }
    }
    Ok(candidates
        .into_iter()
        .filter(|(a, v)| !kept.contains(&a.at(*v).to_string()))
        .collect())
}

/// Deletes keys, 16 at a time. Missing keys are fine (idempotent).
async fn delete_all(store: &Store, keys: Vec<String>, bar: &Progress) -> Result<(), StoreError> {
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(keys)
        .map(|k| async move {
            store.delete(&k).await?;
            bar.inc(1);
            Ok(())
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}

struct Gc<'a> {
    store: Store,
    meta: CatalogCache,
    opts: &'a GcOptions,
    report: GcReport,
    /// gc's own writer session, while it rewrites packs.
    session: Option<Session>,
}

/// Runs gc once (see the module docs).
pub async fn run(catalog: &Catalog, opts: &GcOptions) -> Result<GcReport, GcError> {
    if opts.keep_last == Some(0) {
        return Err(GcError::KeepLastZero);
    }
    let store = catalog.store().clone();
    store.check_conditional_writes().await?;
    let mut gc = Gc {
        store: store.clone(),
        meta: CatalogCache::new(catalog.clone(), &opts.cache_dir),
        opts,
        report: GcReport {
            dry_run: opts.dry_run,
            grace_secs: opts.grace.as_secs(),
            ..Default::default()
        },
        session: None,
    };
    phase("scan");
    let now = store.now_ms().await?;
    let runs = rec::list_runs(&store).await?;

    phase("retention");
    let mut retired: HashSet<(AssetId, u64)> = HashSet::new();
    if opts.retention() {
        let assets = catalog.all_asset_keys().await?;
        for (asset, v) in retention_victims(&gc.meta, &assets, opts).await? {
            gc.report.deleted_versions.push(asset.at(v).to_string());
            if !opts.dry_run {
                let why = retention_message(opts);
                match catalog.delete_version(&asset, v, &opts.by, &why).await {
                    // Deleted by someone else meanwhile: fine.
                    Ok(_) | Err(CatalogError::Deleted { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            retired.insert((asset, v));
        }
    }

    phase("sweep");
    for (seq, keys) in runs.iter().filter(|(_, k)| k.pending()) {
        gc.sweep(*seq, keys, now).await?;
    }

    phase("mark");
    let marked = gc.mark(now, &runs, &retired).await?;

    if let Some((seq, live, absorbable)) = marked {
        phase("index");
        gc.index(seq, live, absorbable).await?;
        if opts.grace.is_zero() {
            // Ripe at once, unless writers it waits for are still running.
            let runs = rec::list_runs(&store).await?;
            if let Some(keys) = runs.get(&seq) {
                phase("sweep");
                let now = store.now_ms().await?;
                gc.sweep(seq, keys, now).await?;
            }
        }
    }

    phase("cleanup");
    if !opts.dry_run {
        gc.cleanup().await?;
    }
    if let Some(s) = gc.session.take() {
        s.end().await;
    }
    gc.report.freed_bytes = gc.report.swept.iter().map(|s| s.bytes).sum();
    phase("done");
    Ok(gc.report)
}

fn retention_message(opts: &GcOptions) -> String {
    let mut rules = vec![];
    if let Some(n) = opts.keep_last {
        rules.push(format!("--keep-last {n}"));
    }
    if let Some(d) = opts.keep_within {
        rules.push(format!("--keep-within {}", humantime::format_duration(d)));
    }
    format!("gc retention: {}", rules.join(" "))
}

impl Gc<'_> {
    fn bar(&self, total: u64, label: &str) -> Progress {
        Progress::count(total, label, self.opts.progress)
    }

    /// Live versions now, by one listing of `refs/`.
    async fn live_versions(
        &self,
        retired: &HashSet<(AssetId, u64)>,
    ) -> Result<Vec<(AssetId, u64)>, GcError> {
        let assets = self.meta.catalog().all_asset_keys().await?;
        Ok(assets
            .into_iter()
            .flat_map(|(a, k)| k.live().into_iter().map(move |v| (a.clone(), v)))
            .filter(|av| !retired.contains(av))
            .collect())
    }

    /// Sweeps run `seq` if it is ripe; otherwise reports it pending.
    async fn sweep(&mut self, seq: u64, keys: &RunKeys, now: i64) -> Result<(), GcError> {
        let store = self.store.clone();
        let cache = Some(self.opts.cache_dir.as_path());
        let mark: Mark = rec::read(&store, cache, seq, "mark").await?;
        let t_mark = keys
            .mark
            .as_ref()
            .map(|m| m.modified_ms)
            .unwrap_or(i64::MAX);
        let ripe_at = t_mark.saturating_add(mark.grace_ms as i64);
        let mut pending = PendingRun {
            seq,
            packs: mark.packs.len() as u64,
            bytes: mark.bytes,
            sweep_after: rfc3339_ms(ripe_at),
            waiting_for: vec![],
        };
        if now < ripe_at {
            self.report.pending.push(pending);
            return Ok(());
        }
        // The sessions it waits for: recorded right after the mark, or (a gc
        // crashed in between) everything live now, which includes them.
        let sessions = store.list_info(keys::SESSIONS).await?;
        let wait: Wait = if keys.wait {
            rec::read(&store, cache, seq, "wait").await?
        } else {
            let w = Wait {
                format: rec::FORMAT,
                sessions: live_writers(&sessions, now)
                    .iter()
                    .map(|s| to_hex(s))
                    .collect(),
            };
            if self.opts.dry_run || rec::create(&store, seq, "wait", &w).await? {
                w
            } else {
                rec::read(&store, cache, seq, "wait").await?
            }
        };
        let alive: HashSet<String> = live_writers(&sessions, now)
            .iter()
            .map(|s| to_hex(s))
            .collect();
        pending.waiting_for = wait
            .sessions
            .iter()
            .filter(|s| alive.contains(*s))
            .cloned()
            .collect();
        if !pending.waiting_for.is_empty() {
            self.report.pending.push(pending);
            return Ok(());
        }
        // Decide once (listing versions only now, after the sessions).
        let sweep: Sweep = if keys.sweep {
            rec::read(&store, cache, seq, "sweep").await?
        } else {
            let live_then: HashSet<(String, u64)> = mark
                .live
                .iter()
                .flat_map(|(a, vs)| vs.iter().map(move |v| (a.clone(), *v)))
                .collect();
            let new: Vec<(AssetId, u64)> = self
                .live_versions(&HashSet::new())
                .await?
                .into_iter()
                .filter(|(a, v)| !live_then.contains(&(a.to_string(), *v)))
                .collect();
            let bar = self.bar(new.len() as u64, "gc: versions since the mark");
            let mut forwards = ForwardMap::list(&store).await?;
            let keep = collect_live(&self.meta, &mut forwards, &new, false, &bar).await?;
            bar.finish();
            let sizes = mark.pack_sizes.iter().chain(std::iter::repeat(&0));
            let (gone, kept): (Vec<PackSize>, Vec<PackSize>) = mark
                .packs
                .iter()
                .zip(sizes)
                .filter_map(|(p, b)| Some((parse_hex16(p)?, *b)))
                .partition(|(p, _)| !keep.uses_pack(p));
            let s = Sweep {
                format: rec::FORMAT,
                bytes: gone.iter().map(|(_, b)| b).sum(),
                packs: gone.iter().map(|(p, _)| to_hex(p)).collect(),
                manifests: mark
                    .manifests
                    .iter()
                    .filter(|m| !keep.manifests.contains(*m))
                    .cloned()
                    .collect(),
                kept_packs: kept.len() as u64,
                forwards: mark
                    .forwards
                    .iter()
                    .filter(|k| {
                        k.split('/')
                            .nth(1)
                            .and_then(parse_hex16)
                            .is_none_or(|p| !keep.forwarded.contains(&p))
                    })
                    .cloned()
                    .collect(),
            };
            if self.opts.dry_run || rec::create(&store, seq, "sweep", &s).await? {
                s
            } else {
                // Another gc decided first: its decision stands.
                rec::read(&store, cache, seq, "sweep").await?
            }
        };
        let report = SweptRun {
            seq,
            packs: sweep.packs.len() as u64,
            manifests: sweep.manifests.len() as u64,
            bytes: sweep.bytes,
            kept_packs: sweep.kept_packs,
        };
        if self.opts.dry_run {
            self.report.swept.push(report);
            return Ok(());
        }
        // Deltas naming a doomed pack go first, so no index entry outlives
        // its pack: a delta lists only its session's packs; one from before
        // sessions existed is read.
        let doomed: HashSet<PackId> = sweep.packs.iter().filter_map(|p| parse_hex16(p)).collect();
        let doomed_sessions: HashSet<SessionId> = doomed.iter().map(sessions::session_of).collect();
        let mut deltas = vec![];
        for (k, _) in store.list(keys::INDEXES).await? {
            let hit = match index::delta_session(last_segment(&k)) {
                Some(s) => doomed_sessions.contains(&s),
                None => index::read_delta(&store, &k, cache)
                    .await?
                    .iter()
                    .any(|e| doomed.contains(&e.pack)),
            };
            if hit {
                deltas.push(k);
            }
        }
        delete_all(&store, deltas, &Progress::hidden()).await?;
        let bar = self.bar(
            (sweep.packs.len() + sweep.manifests.len()) as u64,
            "gc: deleting",
        );
        let objects: Vec<String> = sweep
            .packs
            .iter()
            .map(|p| keys::pack(p))
            .chain(sweep.manifests.iter().map(|m| keys::manifest(m)))
            .chain(sweep.forwards.iter().cloned())
            .collect();
        delete_all(&store, objects, &bar).await?;
        bar.finish();
        let done = Done {
            format: rec::FORMAT,
            finished: crate::format::now_rfc3339(),
        };
        rec::create(&store, seq, "done", &done).await?;
        tracing::info!(target: "assetfs::gc", seq, packs = report.packs, bytes = report.bytes, "swept");
        self.report.swept.push(report);
        Ok(())
    }

    /// Condemns what no live version uses; writes the mark and its wait
    /// record. Returns the run number, the live set and the deltas the next
    /// index generation absorbs.
    #[allow(clippy::type_complexity)]
    async fn mark(
        &mut self,
        now: i64,
        runs: &BTreeMap<u64, RunKeys>,
        retired: &HashSet<(AssetId, u64)>,
    ) -> Result<Option<(u64, LiveSet, Vec<String>)>, GcError> {
        let store = self.store.clone();
        let grace_ms = self.opts.grace.as_millis() as i64;
        // Order matters (see the safety argument): deltas, then packs and
        // manifests, then sessions, then versions.
        let deltas = store.list_info(keys::INDEXES).await?;
        let packs = store.list_info(keys::PACKS).await?;
        let manifests = store.list_info(keys::MANIFESTS).await?;
        let sessions = store.list_info(keys::SESSIONS).await?;
        let alive = live_sessions(&sessions, now);
        let versions = self.live_versions(retired).await?;
        let mut forwards = ForwardMap::list(&store).await?;
        let bar = self.bar(versions.len() as u64, "gc: reading manifests");
        let mut live = collect_live(&self.meta, &mut forwards, &versions, true, &bar).await?;
        bar.finish();
        let dead_before = packs
            .iter()
            .filter_map(|o| Some((parse_hex16(last_segment(&o.key))?, o.size)))
            .map(|(p, size)| size.saturating_sub(live.live_bytes_of(&p)))
            .sum::<u64>();
        phase("rewrite");
        self.rewrite(now, &packs, &alive, &mut live).await?;

        let mut st = StoreReport {
            live_versions: live.versions,
            ..Default::default()
        };
        let mut condemned: Vec<(PackId, u64)> = vec![];
        for o in &packs {
            let Some(p) = parse_hex16(last_segment(&o.key)) else {
                continue;
            };
            st.packs += 1;
            st.pack_bytes += o.size;
            if live.uses_pack(&p) {
                continue;
            }
            st.dead_in_unused_packs += o.size;
            if now - o.modified_ms >= grace_ms && !alive.contains(&sessions::session_of(&p)) {
                condemned.push((p, o.size));
            } else {
                st.young_unused_packs += 1;
                st.young_unused_bytes += o.size;
            }
        }
        st.live_bytes = live.live_bytes.iter().sum();
        // What was dead before this run copied anything: the rewrite's new
        // packs are not counted, and their old packs are now unused.
        st.dead_bytes = dead_before;
        self.report.store = st;
        // Forward records no live reference goes through any more.
        let dead_forwards: Vec<String> = forwards
            .known
            .iter()
            .filter(|(p, _)| !live.forwarded.contains(*p))
            .flat_map(|(_, recs)| recs.iter())
            .filter(|o| now - o.modified_ms >= grace_ms)
            .map(|o| o.key.clone())
            .collect();
        let dead_manifests: Vec<String> = manifests
            .iter()
            .map(|o| (last_segment(&o.key), o))
            .filter(|(h, o)| {
                h.len() == 64 && !live.manifests.contains(*h) && now - o.modified_ms >= grace_ms
            })
            .map(|(h, _)| h.to_string())
            .collect();
        // Deltas of sessions no longer live: their live chunks are in `live`.
        let absorbable: Vec<String> = deltas
            .iter()
            .filter(|o| {
                index::delta_session(last_segment(&o.key)).is_none_or(|s| !alive.contains(&s))
            })
            .map(|o| o.key.clone())
            .collect();

        let bytes: u64 = condemned.iter().map(|(_, b)| b).sum();
        let mut pending = PendingRun {
            seq: 0,
            packs: condemned.len() as u64,
            bytes,
            sweep_after: String::new(),
            waiting_for: vec![],
        };
        self.report.marked_manifests = dead_manifests.len() as u64;
        if self.opts.dry_run {
            pending.sweep_after = rfc3339_ms(now + grace_ms);
            self.report.marked = Some(pending);
            return Ok(None);
        }
        let mut mark = Mark {
            format: rec::FORMAT,
            seq: 0,
            grace_ms: grace_ms as u64,
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            pid: std::process::id(),
            by: self.opts.by.clone(),
            created: crate::format::now_rfc3339(),
            packs: condemned.iter().map(|(p, _)| to_hex(p)).collect(),
            pack_sizes: condemned.iter().map(|(_, b)| *b).collect(),
            manifests: dead_manifests,
            bytes,
            live: live.live.clone(),
            forwards: dead_forwards,
        };
        // Claim the next run number (create-if-absent, like a version).
        let mut seq = self.highest_seq(runs).await? + 1;
        let mut claimed = false;
        for _ in 0..MAX_SEQ_ATTEMPTS {
            mark.seq = seq;
            if rec::create(&store, seq, "mark", &mark).await? {
                claimed = true;
                break;
            }
            seq += 1;
        }
        if !claimed {
            return Err(GcError::SeqExhausted(MAX_SEQ_ATTEMPTS));
        }
        // Sessions live now: the sweep waits for each to end or expire.
        let after = store.list_info(keys::SESSIONS).await?;
        let wait = Wait {
            format: rec::FORMAT,
            sessions: live_writers(&after, now)
                .iter()
                .map(|s| to_hex(s))
                .collect(),
        };
        rec::create(&store, seq, "wait", &wait).await?;
        pending.seq = seq;
        pending.sweep_after = rfc3339_ms(
            store
                .head(&keys::gc_record(seq, "mark"))
                .await?
                .map(|o| o.modified_ms)
                .unwrap_or(now)
                + grace_ms,
        );
        pending.waiting_for = wait.sessions;
        tracing::info!(target: "assetfs::gc", seq, packs = pending.packs, bytes, "marked");
        self.report.marked = Some(pending);
        Ok(Some((seq, live, absorbable)))
    }

    /// Copies the live chunks of mostly-dead packs into new packs and
    /// forwards the old ones there (see [`crate::ops::gc_rewrite`]); `live` then
    /// says where those chunks are, and the old packs are unused.
    async fn rewrite(
        &mut self,
        now: i64,
        packs: &[ObjectInfo],
        alive: &HashSet<SessionId>,
        live: &mut LiveSet,
    ) -> Result<(), GcError> {
        let below = self.opts.rewrite_below;
        if below <= 0.0 {
            return Ok(());
        }
        let grace_ms = self.opts.grace.as_millis() as i64;
        let mut victims = vec![];
        for o in packs {
            let Some(p) = parse_hex16(last_segment(&o.key)) else {
                continue;
            };
            let used = live.live_bytes_of(&p);
            if used == 0
                || (used as f64) >= below * o.size as f64
                || now - o.modified_ms < grace_ms
                || alive.contains(&sessions::session_of(&p))
            {
                continue;
            }
            let mut chunks = live.pack_chunks[live.pack_ix[&p] as usize].clone();
            chunks.sort_unstable_by_key(|c| c.0);
            victims.push(crate::ops::gc_rewrite::Victim { pack: p, chunks });
        }
        if victims.is_empty() {
            return Ok(());
        }
        if self.opts.dry_run {
            self.report.rewritten = crate::ops::gc_rewrite::Rewritten {
                packs: victims.len() as u64,
                bytes_copied: victims
                    .iter()
                    .flat_map(|v| v.chunks.iter().map(|c| c.1 as u64))
                    .sum(),
                new_packs: 0,
            };
            return Ok(());
        }
        if self.session.is_none() {
            self.session = Some(Session::start(&self.store, "gc").await?);
        }
        let session = self.session.as_ref().expect("started");
        let bar = self.bar(victims.len() as u64, "gc: rewriting packs");
        // Records are named by this run's start time (store clock): the run
        // number is claimed only later, by the mark.
        let (moved, stats) = crate::ops::gc_rewrite::rewrite(
            &self.store,
            session,
            Some(self.opts.cache_dir.clone()),
            now as u64,
            victims,
            &bar,
        )
        .await?;
        bar.finish();
        for (old, ms) in &moved {
            for m in ms {
                live.moved(*old, m);
            }
        }
        tracing::info!(target: "assetfs::gc", packs = stats.packs, bytes = stats.bytes_copied, "rewrote");
        self.report.rewritten = stats;
        Ok(())
    }

    /// The highest run number any record uses (orphans included).
    async fn highest_seq(&self, runs: &BTreeMap<u64, RunKeys>) -> Result<u64, GcError> {
        let raw = self
            .store
            .list(keys::GC)
            .await?
            .iter()
            .filter_map(|(k, _)| k.split('/').nth(1)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        Ok(raw.max(runs.keys().next_back().copied().unwrap_or(0)))
    }

    /// Writes index generation `seq` from the live chunks, then deletes the
    /// deltas it absorbed. The generation leaves out every pack that any run
    /// with records now has condemned (or deleted), and says which runs
    /// those are: a writer that opens it need not read their records.
    async fn index(
        &mut self,
        seq: u64,
        live: LiveSet,
        absorbable: Vec<String>,
    ) -> Result<(), GcError> {
        let runs = rec::list_runs(&self.store).await?;
        let mut excluded: HashSet<PackId> = HashSet::new();
        for (s, keys) in &runs {
            let what = if keys.sweep { "sweep" } else { "mark" };
            let packs: Vec<String> = if keys.sweep {
                rec::read::<Sweep>(&self.store, Some(&self.opts.cache_dir), *s, what)
                    .await?
                    .packs
            } else {
                rec::read::<Mark>(&self.store, Some(&self.opts.cache_dir), *s, what)
                    .await?
                    .packs
            };
            excluded.extend(packs.iter().filter_map(|p| parse_hex16(p)));
        }
        let chunks: Vec<(Hash, PackId, u32, u32)> = live
            .chunks
            .iter()
            .map(|(h, (ix, off, len))| (*h, live.packs[*ix as usize], *off, *len))
            .filter(|c| !excluded.contains(&c.1))
            .collect();
        drop(live);
        let shards = 1u64 << index::bits_for(chunks.len());
        let bar = self.bar(shards, "gc: chunk index");
        let accounted: Vec<u64> = runs.keys().copied().collect();
        let info = index::write_gen(&self.store, seq, accounted, chunks, || bar.inc(1)).await?;
        bar.finish();
        delete_all(&self.store, absorbable.clone(), &Progress::hidden()).await?;
        self.report.index = Some(IndexReport {
            gen: info.gen,
            chunks: info.chunks,
            shards: 1 << info.bits,
            deltas_absorbed: absorbable.len() as u64,
        });
        Ok(())
    }

    async fn cleanup(&mut self) -> Result<(), GcError> {
        let store = self.store.clone();
        let now = store.now_ms().await?;
        // Sessions of writers that died long ago.
        let expired: Vec<String> = store
            .list_info(keys::SESSIONS)
            .await?
            .into_iter()
            .filter(|o| now - o.modified_ms > 2 * sessions::EXPIRY.as_millis() as i64)
            .map(|o| o.key)
            .collect();
        self.report.cleaned.sessions = expired.len() as u64;
        delete_all(&store, expired, &Progress::hidden()).await?;
        // Probes a crashed self-check left.
        let probes: Vec<String> = store
            .list_info(keys::PROBES)
            .await?
            .into_iter()
            .filter(|o| now - o.modified_ms > PROBE_KEEP.as_millis() as i64)
            .map(|o| o.key)
            .collect();
        self.report.cleaned.probes = probes.len() as u64;
        delete_all(&store, probes, &Progress::hidden()).await?;

        // Index generations: keep the newest complete one and the one before
        // (pushes that opened it a moment ago); unfinished ones once old.
        let latest_info = index::latest_gen(&store).await?;
        let latest = latest_info.as_ref().map(|g| g.gen);
        let accounted: HashSet<u64> = latest_info
            .iter()
            .flat_map(|g| g.runs.iter().copied())
            .collect();
        let gen_objects = store.list_info(keys::INDEX_GENS).await?;
        let mut gens: BTreeMap<u64, (bool, i64, Vec<String>)> = BTreeMap::new();
        for o in gen_objects {
            let Some(g) = o.key.split('/').nth(1).and_then(|g| g.parse::<u64>().ok()) else {
                continue;
            };
            let e = gens.entry(g).or_insert((false, 0, vec![]));
            e.0 |= o.key.ends_with("/complete");
            e.1 = e.1.max(o.modified_ms);
            e.2.push(o.key);
        }
        let complete: Vec<u64> = gens.iter().filter(|(_, e)| e.0).map(|(g, _)| *g).collect();
        let keep_from = complete.iter().rev().nth(1).copied().unwrap_or(0);
        let mut doomed = vec![];
        for (g, (done, newest, objs)) in gens {
            let old_complete = done && g < keep_from;
            let stale_partial =
                !done && now - newest > sessions::EXPIRY.as_millis() as i64 && Some(g) != latest;
            if old_complete || stale_partial {
                self.report.cleaned.index_gens += 1;
                // The marker first: without it the rest is ignored.
                let (markers, rest): (Vec<String>, Vec<String>) =
                    objs.into_iter().partition(|k| k.ends_with("/complete"));
                doomed.push((markers, rest));
            }
        }
        for (markers, rest) in doomed {
            delete_all(&store, markers, &Progress::hidden()).await?;
            delete_all(&store, rest, &Progress::hidden()).await?;
        }

        // Records of finished runs, once the newest index generation accounts
        // for them (writers that no longer see them open that generation),
        // beyond the newest few and older than RECORD_KEEP. The mark goes first.
        let all = store.list_info(keys::GC).await?;
        let runs = rec::runs_of(&all);
        let done: Vec<u64> = runs
            .iter()
            .filter(|(_, r)| r.done)
            .map(|(s, _)| *s)
            .collect();
        let newest_kept: HashSet<u64> = done.iter().rev().take(RECORD_KEEP_RUNS).copied().collect();
        let seq_of = |k: &str| k.split('/').nth(1).and_then(|s| s.parse::<u64>().ok());
        for (seq, r) in &runs {
            let old = r
                .mark
                .as_ref()
                .is_some_and(|m| now - m.modified_ms > RECORD_KEEP.as_millis() as i64);
            if r.done && old && !newest_kept.contains(seq) && accounted.contains(seq) {
                store.delete(&keys::gc_record(*seq, "mark")).await?;
                let rest: Vec<String> = all
                    .iter()
                    .filter(|o| seq_of(&o.key) == Some(*seq))
                    .map(|o| o.key.clone())
                    .collect();
                self.report.cleaned.records += 1;
                delete_all(&store, rest, &Progress::hidden()).await?;
            }
        }
        // Orphan records (a cleanup cut short): without their mark they mean
        // nothing. Only old ones: a gc writing its mark right now is not one.
        let orphans: Vec<String> = all
            .iter()
            .filter(|o| seq_of(&o.key).is_some_and(|s| !runs.contains_key(&s)))
            .filter(|o| now - o.modified_ms > sessions::EXPIRY.as_millis() as i64)
            .map(|o| o.key.clone())
            .collect();
        delete_all(&store, orphans, &Progress::hidden()).await?;
        Ok(())
    }
}
