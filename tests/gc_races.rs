//! gc against writers, in the interleavings that matter, forced with a
//! store that holds a chosen write until the test releases it; and the
//! grace period crossed with a simulated store clock. Library level, on
//! every backend: in-memory, local directory, S3 (moto), Azure (Azurite) and
//! GCS (fake-gcs-server), the cloud ones started by scripts/test.sh.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use assetfs::catalog::Catalog;
use assetfs::format::keys;
use assetfs::format::Reference;
use assetfs::format::TreeItem;
use assetfs::format::{to_hex, PackId};
use assetfs::ops::{commit_tree, push, PushError, PushOptions};
use assetfs::ops::{GcOptions, GcReport};
use assetfs::store::Store;
use assetfs::store::{GatedStore, Gates, SimClock, SimClockStore};
use tempfile::TempDir;

struct Backend {
    store: Store,
    _dir: Option<TempDir>,
}

fn memory() -> Backend {
    Backend {
        store: Store::open("memory://").unwrap(),
        _dir: None,
    }
}

fn file() -> Backend {
    let dir = TempDir::new().unwrap();
    let url = format!("file://{}", dir.path().join("store").display());
    Backend {
        store: Store::create(&url).unwrap(),
        _dir: Some(dir),
    }
}

fn cloud(var: &str) -> Backend {
    let base = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test.sh, which starts moto, Azurite and fake-gcs-server")
    });
    let url = format!("{base}/{}", assetfs::format::random_id());
    Backend {
        store: Store::open(&url).unwrap(),
        _dir: None,
    }
}

fn s3() -> Backend {
    cloud("ASSETFS_TEST_S3_URL")
}
fn azure() -> Backend {
    cloud("ASSETFS_TEST_AZ_URL")
}
fn gcs() -> Backend {
    cloud("ASSETFS_TEST_GCS_URL")
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn write_tree(dir: &Path, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir).unwrap();
    for (p, data) in files {
        std::fs::write(dir.join(p), data).unwrap();
    }
}

fn random(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

fn gc_opts(grace: Duration, cache: &Path) -> GcOptions {
    GcOptions {
        grace,
        keep_last: None,
        keep_within: None,
        dry_run: false,
        by: "gc-test".into(),
        cache_dir: cache.to_path_buf(),
        progress: false,
        rewrite_below: assetfs::ops::DEFAULT_REWRITE_BELOW,
    }
}

async fn gc(catalog: &Catalog, grace: Duration, cache: &Path) -> GcReport {
    assetfs::ops::run(catalog, &gc_opts(grace, cache))
        .await
        .unwrap()
}

async fn packs_of(catalog: &Catalog, reference: &str) -> HashSet<PackId> {
    let rf = r(reference);
    let v = catalog.resolve(&rf).await.unwrap();
    let rec = catalog.record(&rf.asset, v).await.unwrap();
    catalog
        .manifest(&rec.manifest)
        .await
        .unwrap()
        .packs
        .into_iter()
        .collect()
}

async fn exists(store: &Store, p: &PackId) -> bool {
    store.head(&keys::pack(&to_hex(p))).await.unwrap().is_some()
}

/// `get` of the version equals the directory, file by file.
async fn assert_reads_back(catalog: &Catalog, reference: &str, src: &Path) {
    let out = TempDir::new().unwrap();
    let dst = out.path().join("got");
    assetfs::ops::get(catalog, &r(reference), &dst, false)
        .await
        .unwrap_or_else(|e| panic!("get {reference}: {e}"));
    for e in walkdir::WalkDir::new(src).min_depth(1) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(src).unwrap();
            assert_eq!(
                std::fs::read(e.path()).unwrap(),
                std::fs::read(dst.join(rel)).unwrap(),
                "{reference}: {}",
                rel.display()
            );
        }
    }
}

fn gated(b: &Backend) -> (Store, Arc<Gates>) {
    let gates: Arc<Gates> = Arc::default();
    let g = gates.clone();
    (
        b.store
            .wrapped(move |inner| Arc::new(GatedStore::with_gates(inner, g))),
        gates,
    )
}

/// The subtle case: a push deduplicates against a pack, then (while it
/// runs) the only version using that pack is deleted and gc condemns it.
/// The push must not claim a version that references it: it looks at gc's
/// records before claiming and stores those chunks again. The sweep, which
/// waits for the push's session, then deletes the old pack, and the new
/// version reads back whole.
async fn dedup_against_condemned_pack(b: Backend) {
    let (store, gates) = gated(&b);
    let catalog = Catalog::new(store.clone());
    let tmp = TempDir::new().unwrap();
    let cache = tmp.path().join("gc-cache");
    let x = random(1, 700_000);
    let y = random(2, 300_000);
    let (t1, t2) = (tmp.path().join("t1"), tmp.path().join("t2"));
    write_tree(&t1, &[("x.bin", &x)]);
    write_tree(&t2, &[("x.bin", &x), ("y.bin", &y)]);
    push(&catalog, &r("models/a"), &t1, PushOptions::default())
        .await
        .unwrap();
    let old = packs_of(&catalog, "models/a@1").await;
    catalog
        .delete_version(&r("models/a").asset, 1, "t", "")
        .await
        .unwrap();

    // The push stops after its packs and delta, at its manifest upload.
    let gate = gates.arm("manifests/");
    let task = {
        let (catalog, t2) = (catalog.clone(), t2.clone());
        tokio::spawn(
            async move { push(&catalog, &r("models/b"), &t2, PushOptions::default()).await },
        )
    };
    gate.reached().await;
    let rep = gc(&catalog, Duration::ZERO, &cache).await;
    let marked = rep.marked.clone().expect("gc marked");
    assert!(marked.packs as usize >= old.len(), "{rep:?}");
    assert!(
        rep.pending
            .iter()
            .any(|p| p.seq == marked.seq && !p.waiting_for.is_empty()),
        "the sweep must wait for the running push: {rep:?}"
    );
    for p in &old {
        assert!(
            exists(&store, p).await,
            "condemned pack deleted while a writer ran"
        );
    }
    gate.release();
    let out = task.await.unwrap().unwrap();
    assert!(
        out.rescued_chunks > 0,
        "the push must re-store chunks of the condemned pack: {out:?}"
    );
    assert!(out.gc_rechecks >= 1);
    let now = packs_of(&catalog, "models/b@1").await;
    assert!(
        now.is_disjoint(&old),
        "models/b@1 references a condemned pack"
    );

    // The push ended: the sweep goes ahead and deletes the old pack.
    let rep = gc(&catalog, Duration::ZERO, &cache).await;
    let swept: u64 = rep
        .swept
        .iter()
        .filter(|s| s.seq == marked.seq)
        .map(|s| s.packs)
        .sum();
    assert_eq!(swept as usize, old.len(), "{rep:?}");
    for p in &old {
        assert!(
            !exists(&store, p).await,
            "condemned pack survived its sweep"
        );
    }
    assert_reads_back(&catalog, "models/b@1", &t2).await;
}

/// A push passed its look at gc's records and is about to claim when gc
/// condemns a pack it reuses. The sweep must wait for its session, then see
/// the new version and keep the pack.
async fn sweep_waits_for_a_claiming_writer(b: Backend) {
    let (store, gates) = gated(&b);
    let catalog = Catalog::new(store.clone());
    let tmp = TempDir::new().unwrap();
    let cache = tmp.path().join("gc-cache");
    let x = random(3, 700_000);
    let (t1, t2) = (tmp.path().join("t1"), tmp.path().join("t2"));
    write_tree(&t1, &[("x.bin", &x)]);
    write_tree(&t2, &[("x.bin", &x), ("more.txt", b"more")]);
    push(&catalog, &r("models/a"), &t1, PushOptions::default())
        .await
        .unwrap();
    let old = packs_of(&catalog, "models/a@1").await;
    catalog
        .delete_version(&r("models/a").asset, 1, "t", "")
        .await
        .unwrap();

    let gate = gates.arm("refs/models/b/v/");
    let task = {
        let (catalog, t2) = (catalog.clone(), t2.clone());
        tokio::spawn(
            async move { push(&catalog, &r("models/b"), &t2, PushOptions::default()).await },
        )
    };
    gate.reached().await;
    for _ in 0..2 {
        let rep = gc(&catalog, Duration::ZERO, &cache).await;
        assert!(
            rep.swept.iter().all(|s| s.packs == 0),
            "nothing may be deleted yet: {rep:?}"
        );
        assert!(
            rep.pending.iter().any(|p| !p.waiting_for.is_empty()),
            "the sweep must wait for the claiming push: {rep:?}"
        );
        for p in &old {
            assert!(exists(&store, p).await);
        }
    }
    gate.release();
    let out = task.await.unwrap().unwrap();
    assert_eq!(out.rescued_chunks, 0, "{out:?}");
    assert!(!packs_of(&catalog, "models/b@1").await.is_disjoint(&old));
    let rep = gc(&catalog, Duration::ZERO, &cache).await;
    assert!(
        rep.swept.iter().map(|s| s.kept_packs).sum::<u64>() >= 1,
        "the sweep must keep the pack the new version uses: {rep:?}"
    );
    for p in &old {
        assert!(
            exists(&store, p).await,
            "a pack models/b@1 uses was deleted"
        );
    }
    assert_reads_back(&catalog, "models/b@1", &t2).await;
    // Once models/b@1 is gone too, the pack goes.
    catalog
        .delete_version(&r("models/b").asset, 1, "t", "")
        .await
        .unwrap();
    gc(&catalog, Duration::ZERO, &cache).await;
    for p in &old {
        assert!(!exists(&store, p).await, "unreferenced pack left behind");
    }
}

/// Files unchanged since a deleted base (what a staging commit holds) are
/// copied out of condemned packs while they exist; once gc has collected
/// them, a commit of such files fails and claims nothing.
async fn unchanged_files_of_a_deleted_base(b: Backend) {
    let clock: Arc<SimClock> = Arc::new(SimClock::starting_at(0));
    let c = clock.clone();
    let store = b
        .store
        .wrapped(move |inner| Arc::new(SimClockStore::with_clock(inner, c)));
    let catalog = Catalog::new(store.clone());
    let tmp = TempDir::new().unwrap();
    let cache = tmp.path().join("gc-cache");
    let t1 = tmp.path().join("t1");
    write_tree(
        &t1,
        &[
            ("x.bin", &random(4, 500_000)),
            ("y.bin", &random(5, 90_000)),
        ],
    );
    push(&catalog, &r("models/a"), &t1, PushOptions::default())
        .await
        .unwrap();
    let rec = catalog.record(&r("models/a").asset, 1).await.unwrap();
    let m = catalog.manifest(&rec.manifest).await.unwrap();
    let items: Vec<TreeItem> = m
        .files()
        .map(|e| TreeItem::Stored {
            path: e.path.to_string(),
            mode: e.mode,
            size: e.size,
            hash: e.hash,
            chunks: m
                .chunks_of(&e)
                .iter()
                .map(|c| {
                    (
                        c.hash,
                        assetfs::format::ChunkLocation {
                            pack: m.packs[c.pack as usize],
                            offset: c.offset,
                            len: c.len,
                        },
                    )
                })
                .collect(),
        })
        .collect();
    let old: HashSet<PackId> = m.packs.iter().copied().collect();
    catalog
        .delete_version(&r("models/a").asset, 1, "t", "")
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    clock.advance_ms(2 * hour.as_millis() as i64);
    let rep = gc(&catalog, hour, &cache).await;
    assert!(
        rep.marked.as_ref().unwrap().packs as usize >= old.len(),
        "{rep:?}"
    );
    assert!(
        rep.swept.iter().all(|s| s.packs == 0),
        "not ripe yet: {rep:?}"
    );

    // Condemned, not yet deleted: the commit copies the chunks.
    let out = commit_tree(
        &catalog,
        &r("models/c"),
        items.clone(),
        PushOptions::default(),
    )
    .await
    .unwrap();
    assert!(out.rescued_chunks >= 2, "{out:?}");
    assert!(packs_of(&catalog, "models/c@1").await.is_disjoint(&old));
    assert_reads_back(&catalog, "models/c@1", &t1).await;

    // While another live version holds the same chunks, a commit of the
    // unchanged files simply reuses them.
    clock.advance_ms(2 * hour.as_millis() as i64);
    let rep = gc(&catalog, hour, &cache).await;
    assert!(
        rep.swept.iter().map(|s| s.packs).sum::<u64>() as usize >= old.len(),
        "{rep:?}"
    );
    let out = commit_tree(
        &catalog,
        &r("models/d"),
        items.clone(),
        PushOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        packs_of(&catalog, "models/d@1").await.is_disjoint(&old),
        "{out:?}"
    );
    assert_reads_back(&catalog, "models/d@1", &t1).await;

    // With every copy condemned or deleted, the commit fails, naming a
    // file, and claims nothing.
    for a in ["models/c", "models/d"] {
        catalog
            .delete_version(&r(a).asset, 1, "t", "")
            .await
            .unwrap();
    }
    clock.advance_ms(2 * hour.as_millis() as i64);
    gc(&catalog, hour, &cache).await;
    let err = commit_tree(&catalog, &r("models/e"), items, PushOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Collected { .. }), "{err}");
    assert!(err.to_string().contains("gc has deleted"), "{err}");
    assert!(catalog
        .versions(&r("models/e").asset)
        .await
        .unwrap()
        .is_empty());
}

/// A pack most of whose bytes no live version uses is rewritten: its live
/// chunks are copied to a new pack, the old pack is deleted, and versions
/// that point at it read through its forward record; new pushes deduplicate
/// against the copy; once nothing goes through the record, it goes too.
async fn mostly_dead_pack_is_rewritten(b: Backend) {
    let store = b.store.clone();
    let catalog = Catalog::new(store.clone());
    let tmp = TempDir::new().unwrap();
    let cache = tmp.path().join("gc-cache");
    let x = random(7, 150_000);
    let y = random(8, 900_000);
    let (t1, t2) = (tmp.path().join("t1"), tmp.path().join("t2"));
    write_tree(&t1, &[("x.bin", &x), ("y.bin", &y)]);
    write_tree(&t2, &[("x.bin", &x)]);
    push(&catalog, &r("models/a"), &t1, PushOptions::default())
        .await
        .unwrap();
    push(&catalog, &r("models/b"), &t2, PushOptions::default())
        .await
        .unwrap();
    let old = packs_of(&catalog, "models/a@1").await;
    assert_eq!(
        old,
        packs_of(&catalog, "models/b@1").await,
        "b@1 reuses a@1's pack"
    );
    catalog
        .delete_version(&r("models/a").asset, 1, "t", "")
        .await
        .unwrap();
    let mut opts = gc_opts(Duration::ZERO, &cache);
    opts.rewrite_below = 0.5;
    let rep = assetfs::ops::run(&catalog, &opts).await.unwrap();
    assert_eq!(rep.rewritten.packs, 1, "{rep:?}");
    assert_eq!(rep.rewritten.bytes_copied, x.len() as u64);
    assert!(rep.store.dead_bytes >= y.len() as u64, "{rep:?}");
    assert!(
        rep.freed_bytes > y.len() as u64,
        "the old pack went: {rep:?}"
    );
    for p in &old {
        assert!(!exists(&store, p).await, "rewritten pack not deleted");
    }
    assert_eq!(store.list(keys::FORWARDS).await.unwrap().len(), 1);
    // models/b@1 still names the old pack; get and verify go through the record.
    assert!(!packs_of(&catalog, "models/b@1").await.is_disjoint(&old));
    assert_reads_back(&catalog, "models/b@1", &t2).await;
    let v = assetfs::ops::verify_version(&catalog, &r("models/b").asset, 1)
        .await
        .unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    // A new push of the same bytes deduplicates against the copy.
    let out = push(&catalog, &r("models/c"), &t2, PushOptions::default())
        .await
        .unwrap();
    assert_eq!(out.stats.bytes_new, 0, "{out:?}");
    assert!(packs_of(&catalog, "models/c@1").await.is_disjoint(&old));
    // Once no live version goes through the record, it is deleted too.
    catalog
        .delete_version(&r("models/b").asset, 1, "t", "")
        .await
        .unwrap();
    gc(&catalog, Duration::ZERO, &cache).await;
    assert!(store.list(keys::FORWARDS).await.unwrap().is_empty());
    assert_reads_back(&catalog, "models/c@1", &t2).await;
}

/// A gc that stalls between copying a pack's live chunks and writing its
/// forward record (its session expires meanwhile) must not forward to a
/// copy another gc condemned in between: it looks at the gc records first,
/// as a writer does before it claims a version, and leaves the old pack as
/// it is. Forwarding anyway would let the copy and then the old pack be
/// deleted while a live version reads through them.
async fn stalled_rewrite_forwards_nothing_gc_condemned(b: Backend) {
    let clock: Arc<SimClock> = Arc::new(SimClock::starting_at(0));
    let c = clock.clone();
    let gates: Arc<Gates> = Arc::default();
    let g = gates.clone();
    let store = b
        .store
        .wrapped(move |inner| Arc::new(SimClockStore::with_clock(inner, c)))
        .wrapped(move |inner| Arc::new(GatedStore::with_gates(inner, g)));
    let catalog = Catalog::new(store.clone());
    let tmp = TempDir::new().unwrap();
    let x = random(9, 150_000);
    let y = random(10, 900_000);
    let (t1, t2) = (tmp.path().join("t1"), tmp.path().join("t2"));
    write_tree(&t1, &[("x.bin", &x), ("y.bin", &y)]);
    write_tree(&t2, &[("x.bin", &x)]);
    push(&catalog, &r("models/a"), &t1, PushOptions::default())
        .await
        .unwrap();
    push(&catalog, &r("models/b"), &t2, PushOptions::default())
        .await
        .unwrap();
    let old = packs_of(&catalog, "models/a@1").await;
    catalog
        .delete_version(&r("models/a").asset, 1, "t", "")
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    clock.advance_ms(2 * hour.as_millis() as i64);

    // gc 1 rewrites the pack; held at its copy's upload, then at the
    // heartbeat before it looks at the records.
    let upload = gates.arm("packs/");
    let task = {
        let (catalog, cache) = (catalog.clone(), tmp.path().join("gc1-cache"));
        tokio::spawn(async move {
            let mut opts = gc_opts(hour, &cache);
            opts.rewrite_below = 0.5;
            assetfs::ops::run(&catalog, &opts).await
        })
    };
    upload.reached().await;
    let beat = gates.arm("sessions/gc-");
    upload.release();
    beat.reached().await;
    let copies: Vec<String> = store
        .list(keys::PACKS)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !old.iter().any(|p| k.ends_with(&to_hex(p))))
        .collect();
    assert_eq!(copies.len(), 1, "gc 1 stored its copy: {copies:?}");

    // Its session expires; gc 2 condemns the copy no version uses.
    clock.advance_ms(20 * 60 * 1000);
    let mut opts = gc_opts(Duration::ZERO, &tmp.path().join("gc2-cache"));
    opts.rewrite_below = 0.0;
    let rep2 = assetfs::ops::run(&catalog, &opts).await.unwrap();
    assert_eq!(rep2.marked.as_ref().unwrap().packs, 1, "the copy: {rep2:?}");

    beat.release();
    let rep1 = task.await.unwrap().unwrap();
    assert_eq!(rep1.rewritten.packs, 0, "nothing forwarded: {rep1:?}");
    assert!(store.list(keys::FORWARDS).await.unwrap().is_empty());

    // Later runs delete the copy and keep the old pack models/b@1 uses.
    for _ in 0..2 {
        clock.advance_ms(2 * hour.as_millis() as i64);
        let mut opts = gc_opts(Duration::ZERO, &tmp.path().join("gc3-cache"));
        opts.rewrite_below = 0.0;
        assetfs::ops::run(&catalog, &opts).await.unwrap();
    }
    for k in &copies {
        assert!(store.head(k).await.unwrap().is_none(), "copy left: {k}");
    }
    for p in &old {
        assert!(
            exists(&store, p).await,
            "a pack models/b@1 uses was deleted"
        );
    }
    assert_reads_back(&catalog, "models/b@1", &t2).await;
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::memory()).await } )* }
        mod file { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::file()).await } )* }
        mod s3 { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::s3()).await } )* }
        mod azure { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::azure()).await } )* }
        mod gcs { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::gcs()).await } )* }
    };
}

suite!(
    mostly_dead_pack_is_rewritten,
    stalled_rewrite_forwards_nothing_gc_condemned,
    dedup_against_condemned_pack,
    sweep_waits_for_a_claiming_writer,
    unchanged_files_of_a_deleted_base,
);

/// A staging area whose base version was deleted and collected: commit says
/// so, naming the unchanged files whose bytes are gone, and claims nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_whose_base_was_collected_says_so() {
    use assetfs::catalog::{Staging, ROOT};
    use assetfs::ops::{commit, ensure_init, CommitError};
    let b = file();
    let catalog = Catalog::new(b.store.clone());
    let tmp = TempDir::new().unwrap();
    let t1 = tmp.path().join("t1");
    write_tree(&t1, &[("a.bin", &random(6, 300_000)), ("b.txt", b"bee")]);
    push(&catalog, &r("models/s"), &t1, PushOptions::default())
        .await
        .unwrap();
    let asset = r("models/s").asset;
    let st = Staging::open(&tmp.path().join("staging")).unwrap();
    ensure_init(&catalog, &st, &asset).await.unwrap();
    let n = st.create(ROOT, "new.txt", 0o644).unwrap();
    st.write(n.id, 0, b"written in staging").unwrap();

    catalog
        .delete_version(&asset, 1, "ana", "bad")
        .await
        .unwrap();
    let rep = gc(&catalog, Duration::ZERO, &tmp.path().join("gc-cache")).await;
    assert!(
        rep.swept.iter().map(|s| s.manifests).sum::<u64>() >= 1,
        "{rep:?}"
    );

    let err = commit(&catalog, &st, &r("models/s"), PushOptions::default(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::BaseCollected { .. }), "{err}");
    let msg = err.to_string();
    for w in [
        "models/s@1",
        "deleted by ana",
        "collected by gc",
        "2 unchanged file(s)",
        "a.bin",
        "b.txt",
        "nothing was committed",
    ] {
        assert!(msg.contains(w), "{w:?} missing from: {msg}");
    }
    assert!(catalog.asset_keys(&asset).await.unwrap().live().is_empty());
    assert_eq!(catalog.asset_keys(&asset).await.unwrap().max_claimed(), 1);
}
