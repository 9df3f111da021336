//! `push`: commit a local directory as the next version of an asset.
//!
//! Order matters for crash safety: packs, then the chunk index, then the
//! manifest, and only then the version claim. A crash before the claim leaves
//! unreferenced objects (reclaimed by `gc`), never a partial version.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::runtime::Handle;

use crate::catalog::gc_runs::GuardStart;
use crate::catalog::{Catalog, CatalogError};
use crate::catalog::{Known, StatCache};
use crate::format::sessions::Session;
use crate::format::Hash;
use crate::format::TreeItem;
use crate::format::{hash_files, Event, Job, Stamp};
use crate::format::{to_hex, PackId};
use crate::format::{validate_alias, AssetId, NameError, Reference, Selector};
use crate::format::{ChunkIndex, PackStats, Packer};
use crate::format::{ChunkLocation, ManifestBuilder};
use crate::ops::metadata::{MetaError, MetaInput};
use crate::ops::progress::Progress;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}: not a directory")]
    NotADir(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: only regular files, directories and symlinks can be pushed")]
    Unsupported(PathBuf),
    #[error("{0}: path is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("{0}: changed while it was being pushed; nothing was committed, push again")]
    Changed(PathBuf),
    #[error(
        "{0} names a version; push creates the next version, so give the asset only (e.g. {1})"
    )]
    NotBare(Reference, AssetId),
    #[error("input {input}: {source}")]
    Input {
        input: String,
        #[source]
        source: CatalogError,
    },
    #[error("{path}: its bytes were in pack {pack}, which gc has deleted (the version it came from was deleted and collected); nothing was committed")]
    Collected { path: String, pack: String },
    #[error("gc condemned packs this commit uses {0} times while it ran; nothing was committed, try again")]
    GcRace(u32),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Context(#[from] crate::ops::context::ContextError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub meta: MetaInput,
    /// Lineage inputs as given; resolved to concrete versions before upload.
    pub inputs: Vec<Reference>,
    pub aliases: Vec<String>,
    pub progress: bool,
    /// Where chunk indexes are cached between runs.
    pub cache_dir: Option<PathBuf>,
    /// The version a staging commit started from (recorded as `base`).
    pub base: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PushOutcome {
    pub reference: Reference,
    pub version: u64,
    pub manifest: String,
    pub files: u64,
    pub total_bytes: u64,
    pub stats: PackStats,
    /// Version numbers lost to concurrent writers before this one was claimed.
    pub claim_retries: u32,
    /// Local files read and hashed, and those the stat cache vouched for.
    pub files_read: u64,
    pub files_unchanged: u64,
    /// Chunks stored again because gc condemned the packs they were in
    /// while this commit ran (or before, for unchanged staging files).
    pub rescued_chunks: u64,
    /// Extra looks at gc's records before the claim (condemned references
    /// found, or a heartbeat gone stale).
    pub gc_rechecks: u32,
}

/// Checks that a reference names an asset for a new version (`x` or `x@staging`).
pub fn asset_for_new_version(r: &Reference) -> Result<AssetId, PushError> {
    match r.selector {
        Selector::Latest | Selector::Staging => Ok(r.asset.clone()),
        _ => Err(PushError::NotBare(r.clone(), r.asset.clone())),
    }
}

/// `push`: commit a local directory.
pub async fn push(
    catalog: &Catalog,
    target: &Reference,
    dir: &Path,
    opts: PushOptions,
) -> Result<PushOutcome, PushError> {
    asset_for_new_version(target)?;
    let meta_dir = std::fs::metadata(dir).map_err(|source| PushError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta_dir.is_dir() {
        return Err(PushError::NotADir(dir.to_path_buf()));
    }
    let d = dir.to_path_buf();
    let items = tokio::task::spawn_blocking(move || scan_dir(&d))
        .await
        .expect("scan worker panicked")?;
    commit_tree(catalog, target, items, opts).await
}

/// The one commit implementation, shared by `push` and the mount's `commit`.
pub async fn commit_tree(
    catalog: &Catalog,
    target: &Reference,
    items: Vec<TreeItem>,
    mut opts: PushOptions,
) -> Result<PushOutcome, PushError> {
    let asset = asset_for_new_version(target)?;
    for a in &opts.aliases {
        validate_alias(a)?;
    }
    // Refuse bad metadata now, not after the data has been uploaded.
    opts.meta.validate()?;
    for s in opts.meta.take_file_inputs()? {
        opts.inputs.push(Reference::parse(&s)?);
    }
    for input in &opts.inputs {
        let v = catalog
            .resolve(input)
            .await
            .map_err(|source| PushError::Input {
                input: input.to_string(),
                source,
            })?;
        opts.meta.inputs.push(input.asset.at(v).to_string());
    }
    // Log path, stored tests and (features) schema summary, against the tree.
    crate::ops::context::check_tree(&mut opts.meta, catalog, &asset, &items, opts.base).await?;
    catalog.store().check_conditional_writes().await?;
    let what = if opts.base.is_some() {
        "commit"
    } else {
        "push"
    };
    let session = Session::start(catalog.store(), what).await?;
    let done = commit_in_session(catalog, &asset, items, &opts, &session).await;
    // Claimed or failed: the session ends either way (a crash leaves it to expire).
    session.end().await;
    let c = done?;
    for a in &opts.aliases {
        catalog.set_alias(&asset, a, c.version).await?;
    }
    Ok(PushOutcome {
        reference: asset.at(c.version),
        version: c.version,
        manifest: c.manifest,
        files: c.files,
        total_bytes: c.total,
        stats: c.stats,
        claim_retries: c.claim_retries,
        rescued_chunks: c.rescued,
        gc_rechecks: c.rechecks,
        files_read: c.files_read,
        files_unchanged: c.files_unchanged,
    })
}

/// Attempts at a commit whose references gc condemned while it ran.
const MAX_ATTEMPTS: u32 = 5;

struct Committed {
    version: u64,
    manifest: String,
    files: u64,
    total: u64,
    stats: PackStats,
    claim_retries: u32,
    rescued: u64,
    rechecks: u32,
    files_read: u64,
    files_unchanged: u64,
}

/// Stores the tree and claims the version, inside a writer session. Packs
/// gc has condemned are never referenced: deduplication skips them, chunks of
/// unchanged files that live in them are copied, and if gc condemns a pack
/// this commit uses while it runs, the commit stores those chunks again
/// before it claims (docs/storage-format.md, "Why gc never deletes what a
/// version uses").
async fn commit_in_session(
    catalog: &Catalog,
    asset: &AssetId,
    items: Vec<TreeItem>,
    opts: &PushOptions,
    session: &Session,
) -> Result<Committed, PushError> {
    let store = catalog.store().clone();
    // gc records first, then the index generation (see GuardStart).
    let start = GuardStart::list(&store, opts.cache_dir.clone()).await?;
    let index = ChunkIndex::open(&store, opts.cache_dir.clone()).await?;
    let mut guard = start.with_gen(index.gen_info()).await?;
    index.avoid(guard.forbidden_packs());
    if index.worth_prefetching(expected_chunks(&items)) {
        index.prefetch_all().await?;
    }
    let mut stats = PackStats::default();
    let (mut rescued, mut rechecks) = (0u64, 0u32);
    for attempt in 1..=MAX_ATTEMPTS {
        let avoid = guard.forbidden_packs();
        let (store2, rt, idx, items2) = (
            store.clone(),
            Handle::current(),
            index.clone(),
            items.clone(),
        );
        let (progress, sid) = (opts.progress && attempt == 1, session.id());
        let cache_dir = opts.cache_dir.clone();
        let (built, s, r) = tokio::task::spawn_blocking(move || {
            let mut packer = Packer::new(store2, rt, idx, sid);
            let mut items = items2;
            let rescued = rescue_stored(&mut items, &mut packer, &avoid)?;
            // Without a cache directory (library callers, tests) every file is read.
            let mut stat_cache = match cache_dir.as_deref().map(StatCache::open) {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    tracing::warn!("{e}; reading every file");
                    None
                }
                None => None,
            };
            let built = build_tree(items, &mut packer, progress, stat_cache.as_mut())?;
            let stats = packer.finish()?;
            Ok::<_, PushError>((built, stats, rescued))
        })
        .await
        .expect("push worker panicked")?;
        let Built {
            builder,
            files,
            total,
            read: files_read,
            unchanged: files_unchanged,
        } = built;
        stats.chunks_new += s.chunks_new;
        stats.bytes_new += s.bytes_new;
        stats.packs += s.packs;
        stats.chunks_reused = s.chunks_reused;
        rescued += r;

        let mut meta = opts.meta.build(asset, files, total)?;
        if let Some(base) = opts.base {
            meta.insert("base".into(), base.into());
        }
        let manifest = builder.finish(serde_json::to_string(&meta).expect("meta serialises"));
        let referenced: HashSet<PackId> = manifest.packs.iter().copied().collect();
        let hash = catalog.put_manifest(&manifest).await?;
        // Heartbeat, then look at gc's records; claim only while that
        // heartbeat is fresh (a writer that stalled looks again).
        let verdict = loop {
            session.beat().await?;
            let v = guard
                .check(&session.id(), &referenced, &hash, |p| index.vouches(p))
                .await?;
            if session.fresh() {
                break v;
            }
            rechecks += 1;
        };
        if verdict.clear() {
            let (version, claim_retries) =
                catalog.claim_version_counted(asset, &hash, &meta).await?;
            return Ok(Committed {
                version,
                manifest: hash,
                files,
                total,
                stats,
                claim_retries,
                rescued,
                rechecks,
                files_read,
                files_unchanged,
            });
        }
        rechecks += 1;
        let bad: Vec<PackId> = verdict
            .condemned
            .iter()
            .chain(&verdict.missing)
            .copied()
            .collect();
        // Chunks of this attempt that lived in those packs: the next one stores them again.
        rescued += manifest
            .chunks
            .iter()
            .filter(|c| bad.contains(&manifest.packs[c.pack as usize]))
            .count() as u64;
        if verdict.manifest_condemned {
            // A writer that stalled past gc: a new creation time gives a new manifest.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        tracing::info!(
            attempt,
            packs = bad.len(),
            "gc condemned packs this commit uses while it ran; storing those chunks again"
        );
        guard.also_forbid(bad.iter().copied());
        index.avoid(bad);
    }
    Err(PushError::GcRace(MAX_ATTEMPTS))
}

/// Roughly how many chunks the local files hold (for the prefetch decision).
fn expected_chunks(items: &[TreeItem]) -> u64 {
    items
        .iter()
        .map(|i| match i {
            TreeItem::Local { size, .. } => (size / crate::format::AVG_CHUNK as u64).max(1),
            _ => 0,
        })
        .sum()
}

/// Chunks of unchanged files (staging) that live in packs gc condemned are
/// copied into this commit's packs. Returns how many were copied.
fn rescue_stored(
    items: &mut [TreeItem],
    packer: &mut Packer,
    avoid: &HashSet<PackId>,
) -> Result<u64, PushError> {
    let mut n = 0;
    for item in items.iter_mut() {
        let TreeItem::Stored { path, chunks, .. } = item else {
            continue;
        };
        for (hash, loc) in chunks.iter_mut() {
            if !avoid.contains(&loc.pack) {
                continue;
            }
            *loc = packer.copy_chunk(*hash, *loc).map_err(|e| match e {
                StoreError::NotFound { .. } => PushError::Collected {
                    path: path.clone(),
                    pack: to_hex(&loc.pack),
                },
                e => PushError::Store(e),
            })?;
            n += 1;
        }
    }
    Ok(n)
}

/// Walks `dir` into tree items (no file is read yet). The walk only reads
/// directories; the entries are then stat'ed on several threads.
pub fn scan_dir(dir: &Path) -> Result<Vec<TreeItem>, PushError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PushError::Io { path, source }
    };
    // Each entry's path in the version, and on disk.
    let (mut paths, mut files): (Vec<String>, Vec<PathBuf>) = (vec![], vec![]);
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
    {
        let e = e.map_err(|err| {
            let path = err.path().unwrap_or(dir).to_path_buf();
            PushError::Io {
                path,
                source: err.into(),
            }
        })?;
        let rel = e
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays under its root");
        let path = rel
            .to_str()
            .ok_or_else(|| PushError::NotUtf8(e.path().to_path_buf()))?
            .to_string();
        paths.push(path);
        files.push(e.into_path());
    }
    let stats = crate::store::lstat_all(&files);
    let mut items = Vec::with_capacity(paths.len());
    for ((path, file), md) in paths.into_iter().zip(files).zip(stats) {
        let md = md.map_err(io(&file))?;
        let mode = md.permissions().mode();
        if md.is_dir() {
            items.push(TreeItem::Dir { path, mode });
        } else if md.file_type().is_symlink() {
            let target = std::fs::read_link(&file).map_err(io(&file))?;
            let target = target
                .to_str()
                .ok_or_else(|| PushError::NotUtf8(file.clone()))?
                .to_string();
            items.push(TreeItem::Symlink { path, target });
        } else if md.is_file() {
            items.push(TreeItem::Local {
                path,
                mode,
                file,
                size: md.len(),
            });
        } else {
            return Err(PushError::Unsupported(file));
        }
    }
    Ok(items)
}

/// Chunks every local file into the packer and returns the manifest builder
/// with the file count and byte total. Files the stat cache knows unchanged,
/// whose chunks the store already has, are not read at all; the others go
/// through the reading and hashing pipeline ([`crate::format::hash_pipeline`]).
fn build_tree(
    items: Vec<TreeItem>,
    packer: &mut Packer,
    progress: bool,
    stat_cache: Option<&mut StatCache>,
) -> Result<Built, PushError> {
    let local: u64 = items
        .iter()
        .map(|i| match i {
            TreeItem::Local { size, .. } => *size,
            _ => 0,
        })
        .sum();
    let bar = Progress::bytes(local, "push", progress);
    let read_at = crate::catalog::read_clock();
    // What the stat cache resolves, by item index; the rest is read.
    let plan = plan_reads(&items, packer, stat_cache.as_deref())?;
    let mut builder = ManifestBuilder::default();
    let (mut files, mut total) = (0u64, 0u64);
    let mut next = 0usize; // first item not yet in the builder
    let mut chunks: Vec<(Hash, ChunkLocation)> = vec![];
    let mut learned = vec![];
    // Adds items[next..upto] that need no reading.
    let flush = |builder: &mut ManifestBuilder,
                 next: &mut usize,
                 upto: usize,
                 files: &mut u64,
                 total: &mut u64,
                 plan: &mut Plan| {
        while *next < upto {
            let i = *next;
            *next += 1;
            match &items[i] {
                TreeItem::Dir { path, mode } => builder.add_dir(path, *mode),
                TreeItem::Symlink { path, target } => builder.add_symlink(path, target),
                TreeItem::Stored {
                    path,
                    mode,
                    size,
                    chunks,
                    ..
                } => {
                    builder.add_file(path, *mode, *size, chunks);
                    *files += 1;
                    *total += size;
                }
                TreeItem::Local { path, mode, .. } => {
                    let (size, chunks) = plan.known.remove(&i).expect("planned");
                    bar.inc(size);
                    builder.add_file(path, *mode, size, &chunks);
                    *files += 1;
                    *total += size;
                }
            }
        }
    };
    let mut plan = plan;
    let unchanged = plan.known.len() as u64;
    let jobs: Vec<Job> = plan
        .reads
        .iter()
        .map(|r| match &items[r.item] {
            TreeItem::Local { file, size, .. } => Job {
                path: file.clone(),
                size: *size,
                stamp: r.key.is_some(),
            },
            _ => unreachable!("only local files are read"),
        })
        .collect();
    let reads = std::mem::take(&mut plan.reads);
    hash_files(
        jobs,
        |j, ev| {
            let item = reads[j].item;
            if next < item {
                flush(
                    &mut builder,
                    &mut next,
                    item,
                    &mut files,
                    &mut total,
                    &mut plan,
                );
            }
            match ev {
                Event::Chunk { hash, data } => {
                    bar.inc(data.len() as u64);
                    let loc = packer.add(hash, data)?;
                    chunks.push((hash, loc));
                }
                Event::Done { size, after } => {
                    let TreeItem::Local {
                        path,
                        mode,
                        file,
                        size: expected,
                    } = &items[item]
                    else {
                        unreachable!("only local files are read")
                    };
                    if size != *expected {
                        return Err(PushError::Changed(file.clone()));
                    }
                    builder.add_file(path, *mode, size, &chunks);
                    files += 1;
                    total += size;
                    next = item + 1;
                    if let (Some(before), Some(after), Some(key)) =
                        (reads[j].before, after, reads[j].key.as_ref())
                    {
                        learned.push((
                            key.clone(),
                            before,
                            after,
                            Known {
                                hash: crate::format::file_hash(
                                    chunks.iter().map(|(h, l)| (*h, l.len)),
                                ),
                                chunks: chunks.iter().map(|(h, l)| (*h, l.len)).collect(),
                            },
                        ));
                    }
                    chunks.clear();
                }
            }
            Ok(())
        },
        |e| {
            let file = match &items[reads[e.job].item] {
                TreeItem::Local { file, .. } => file.clone(),
                _ => PathBuf::new(),
            };
            PushError::Io {
                path: file,
                source: e.source,
            }
        },
    )?;
    flush(
        &mut builder,
        &mut next,
        items.len(),
        &mut files,
        &mut total,
        &mut plan,
    );
    bar.finish();
    if let Some(c) = stat_cache {
        // Best effort: a stat cache that cannot be written costs re-reads only.
        if let Err(e) = c.record(read_at, &learned, &plan.used) {
            tracing::warn!("{e}");
        }
    }
    Ok(Built {
        builder,
        files,
        total,
        read: reads.len() as u64,
        unchanged,
    })
}

struct Built {
    builder: ManifestBuilder,
    files: u64,
    total: u64,
    read: u64,
    unchanged: u64,
}

/// Files smaller than this are always read (see [`plan_reads`]).
pub const STAT_CACHE_MIN_SIZE: u64 = 16 << 10;

/// One local file to read, and what the stat cache needs to learn it.
struct Read {
    item: usize,
    /// The absolute path (the stat cache key) and the stamp before reading.
    key: Option<PathBuf>,
    before: Option<Stamp>,
}

/// A file resolved without reading: size, chunks.
type Resolved = (u64, Vec<(Hash, ChunkLocation)>);

#[derive(Default)]
struct Plan {
    /// Items resolved without reading: size, chunks.
    known: std::collections::HashMap<usize, Resolved>,
    reads: Vec<Read>,
    /// Stat cache rows used (their use time is refreshed).
    used: Vec<PathBuf>,
}

/// Decides which local files must be read: those the stat cache does not know
/// with their current stamp, or whose chunks the store does not all hold.
fn plan_reads(
    items: &[TreeItem],
    packer: &mut Packer,
    stat_cache: Option<&StatCache>,
) -> Result<Plan, PushError> {
    let mut plan = Plan::default();
    let cwd = std::env::current_dir().ok();
    for (i, item) in items.iter().enumerate() {
        let TreeItem::Local { file, size, .. } = item else {
            continue;
        };
        // Small files cost less to read again than to look up and record.
        let cache = stat_cache.filter(|_| *size >= STAT_CACHE_MIN_SIZE);
        let Some(cache) = cache else {
            plan.reads.push(Read {
                item: i,
                key: None,
                before: None,
            });
            continue;
        };
        let key = if file.is_absolute() {
            Some(file.clone())
        } else {
            cwd.as_ref().map(|d| d.join(file))
        };
        let before = std::fs::symlink_metadata(file)
            .ok()
            .map(|md| Stamp::of(&md));
        let known = match (&key, &before) {
            (Some(k), Some(b)) if b.size == *size => cache.get(k, b).unwrap_or_else(|e| {
                tracing::warn!("{e}");
                None
            }),
            _ => None,
        };
        if let Some(k) = known {
            if let Some(locs) = packer.locate_all(k.chunks.iter().map(|(h, _)| h)) {
                let chunks: Vec<(Hash, ChunkLocation)> =
                    k.chunks.iter().map(|(h, _)| *h).zip(locs).collect();
                plan.known.insert(i, (*size, chunks));
                plan.used.extend(key);
                continue;
            }
        }
        plan.reads.push(Read {
            item: i,
            key,
            before,
        });
    }
    Ok(plan)
}

impl From<std::io::Error> for PushError {
    fn from(source: std::io::Error) -> Self {
        PushError::Io {
            path: PathBuf::new(),
            source,
        }
    }
}
