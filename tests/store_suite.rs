//! Library-level integration suite, run against every backend: in-memory,
//! local directory, S3 (moto), Azure (Azurite) and GCS (fake-gcs-server).
//! The cloud servers are started by scripts/test.sh, which exports
//! ASSETFS_TEST_S3_URL, ASSETFS_TEST_AZ_URL and ASSETFS_TEST_GCS_URL;
//! without them those tests fail loudly.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use assetfs::catalog::{Catalog, CatalogError};
use assetfs::format::keys;
use assetfs::format::Reference;
use assetfs::format::{ChunkLocation, ManifestBuilder};
use assetfs::ops::{get, GetError};
use assetfs::ops::{push, PushError, PushOptions};
use assetfs::store::FaultyStore;
use assetfs::store::{Store, StoreError};
use bytes::Bytes;
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
        panic!(
            "{var} is not set: run the suite with scripts/test.sh, which starts moto, Azurite and fake-gcs-server"
        )
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

fn write_tree(dir: &Path, files: &[(&str, Vec<u8>)]) {
    for (p, data) in files {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

fn pseudo_random(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// Every file of `a` is in `b` with the same bytes, and vice versa.
fn assert_same_tree(a: &Path, b: &Path) {
    let list = |d: &Path| -> BTreeSet<String> {
        walkdir::WalkDir::new(d)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                e.path()
                    .strip_prefix(d)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    };
    let (la, lb) = (list(a), list(b));
    assert_eq!(la, lb);
    for p in la {
        let (pa, pb) = (a.join(&p), b.join(&p));
        if pa.is_file() {
            assert_eq!(
                std::fs::read(&pa).unwrap(),
                std::fs::read(&pb).unwrap(),
                "{p}"
            );
        }
    }
}

async fn round_trip_and_dedup(b: Backend) {
    let catalog = Catalog::new(b.store.clone());
    let tmp = TempDir::new().unwrap();
    let src = tmp.path().join("src");
    let big = pseudo_random(1, 3 << 20);
    write_tree(
        &src,
        &[
            ("weights/big.bin", big.clone()),
            ("weights/small.txt", b"hello".to_vec()),
            ("empty", vec![]),
            ("config.json", br#"{"layers": 3}"#.to_vec()),
        ],
    );
    let out = push(&catalog, &r("models/net"), &src, PushOptions::default())
        .await
        .unwrap();
    assert_eq!(out.version, 1);
    assert_eq!(out.files, 4);

    let dst = tmp.path().join("dst");
    get(&catalog, &r("models/net@1"), &dst, false)
        .await
        .unwrap();
    assert_same_tree(&src, &dst);

    // Insert 1000 bytes in the middle of the big file: most chunks are reused.
    let mut edited = big.clone();
    edited.splice(1 << 20..1 << 20, vec![42u8; 1000]);
    std::fs::write(src.join("weights/big.bin"), &edited).unwrap();
    let out2 = push(&catalog, &r("models/net"), &src, PushOptions::default())
        .await
        .unwrap();
    assert_eq!(out2.version, 2);
    assert!(
        out2.stats.bytes_new < (big.len() as u64) / 3,
        "re-push stored {} new bytes of {}",
        out2.stats.bytes_new,
        big.len()
    );
    let dst2 = tmp.path().join("dst2");
    get(&catalog, &r("models/net"), &dst2, false).await.unwrap();
    assert_same_tree(&src, &dst2);
    // Version 1 is untouched.
    let dst1 = tmp.path().join("dst1");
    get(&catalog, &r("models/net@1"), &dst1, false)
        .await
        .unwrap();
    assert_eq!(std::fs::read(dst1.join("weights/big.bin")).unwrap(), big);
}

async fn concurrent_claims_never_overwrite(b: Backend) {
    let catalog = Catalog::new(b.store.clone());
    let asset = r("features/clicks").asset;
    let mut tasks = vec![];
    for i in 0..16u8 {
        let catalog = catalog.clone();
        let asset = asset.clone();
        tasks.push(tokio::spawn(async move {
            let m = ManifestBuilder::default().finish(format!(r#"{{"writer":{i}}}"#));
            let hash = catalog.put_manifest(&m).await.unwrap();
            let meta = serde_json::Map::from_iter([("writer".to_string(), i.into())]);
            let v = catalog.claim_version(&asset, &hash, &meta).await.unwrap();
            (i, v, hash)
        }));
    }
    let mut claimed = vec![];
    for t in tasks {
        claimed.push(t.await.unwrap());
    }
    let versions: BTreeSet<u64> = claimed.iter().map(|c| c.1).collect();
    assert_eq!(
        versions,
        (1..=16).collect(),
        "every writer got its own version"
    );
    for (i, v, hash) in claimed {
        let rec = catalog.record(&asset, v).await.unwrap();
        assert_eq!(
            rec.manifest, hash,
            "version {v} holds writer {i}'s manifest"
        );
        assert_eq!(rec.meta["writer"], i);
    }
}

/// Raw create-if-absent under contention: racers released together by a
/// barrier put the same keys; exactly one wins each key and its content is
/// the one the store keeps. This is the property every commit relies on.
async fn create_if_absent_races(b: Backend) {
    const RACERS: usize = 12;
    const KEYS: usize = 6;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = vec![];
    for racer in 0..RACERS {
        let store = b.store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut won = vec![];
            let mut spans = vec![];
            for k in 0..KEYS {
                let body = Bytes::from(format!("racer {racer}"));
                let t0 = std::time::Instant::now();
                let created = store
                    .put_if_absent(&format!("race/{k}"), body)
                    .await
                    .unwrap();
                spans.push((k, t0, std::time::Instant::now()));
                if created {
                    won.push(k);
                }
            }
            (racer, won, spans)
        }));
    }
    let mut winners: Vec<Vec<usize>> = vec![vec![]; KEYS];
    let mut spans = vec![];
    for t in tasks {
        let (racer, won, s) = t.await.unwrap();
        for k in won {
            winners[k].push(racer);
        }
        spans.extend(s);
    }
    // Pairs of puts of one key that were in flight at the same time: the
    // race really happened, not one racer after another.
    let mut overlaps = 0;
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if a.0 == b.0 && a.1 < b.2 && b.1 < a.2 {
                overlaps += 1;
            }
        }
    }
    println!(
        "{} puts, {overlaps} overlapping pairs on one key",
        spans.len()
    );
    // The in-memory store finishes a put without yielding (microseconds under
    // a lock), so its racers rarely overlap; every store with real I/O must.
    let min = if b.store.url().starts_with("memory:") {
        0
    } else {
        KEYS
    };
    assert!(
        overlaps >= min,
        "only {overlaps} overlapping puts: no real race"
    );
    for (k, w) in winners.iter().enumerate() {
        assert_eq!(
            w.len(),
            1,
            "key race/{k}: winners {w:?} (exactly one expected)"
        );
        let held = b.store.get(&format!("race/{k}")).await.unwrap();
        assert_eq!(
            held,
            format!("racer {}", w[0]).as_bytes(),
            "key race/{k} holds the winner's content"
        );
    }
    // The self-check agrees on this store.
    b.store.check_conditional_writes().await.unwrap();
}

async fn aliases_move_and_resolve(b: Backend) {
    let catalog = Catalog::new(b.store.clone());
    let tmp = TempDir::new().unwrap();
    write_tree(tmp.path(), &[("a", b"1".to_vec())]);
    for _ in 0..3 {
        push(&catalog, &r("models/m"), tmp.path(), PushOptions::default())
            .await
            .unwrap();
    }
    let asset = r("models/m").asset;
    catalog.set_alias(&asset, "production", 1).await.unwrap();
    assert_eq!(catalog.resolve(&r("models/m@production")).await.unwrap(), 1);
    catalog.set_alias(&asset, "production", 3).await.unwrap();
    catalog.set_alias(&asset, "staging-ok", 2).await.unwrap();
    assert_eq!(catalog.resolve(&r("models/m@production")).await.unwrap(), 3);
    assert_eq!(catalog.resolve(&r("models/m")).await.unwrap(), 3);
    assert!(matches!(
        catalog.set_alias(&asset, "production", 9).await,
        Err(CatalogError::NoSuchVersion { .. })
    ));
    assert!(matches!(
        catalog.resolve(&r("models/m@nope")).await,
        Err(CatalogError::NoSuchAlias { .. })
    ));
    let side = catalog.sidecar(&asset, 3).await.unwrap();
    assert_eq!(side["aliases"], serde_json::json!(["latest", "production"]));
}

/// A manifest in the store that tries to write outside the target is refused
/// before anything is written.
async fn hostile_manifest_refused(b: Backend) {
    let catalog = Catalog::new(b.store.clone());
    let tmp = TempDir::new().unwrap();
    let mut builder = ManifestBuilder::default();
    let data = Bytes::from_static(b"pwned");
    let pack = assetfs::format::new_pack_id();
    b.store
        .put(&keys::pack(&assetfs::format::to_hex(&pack)), data.clone())
        .await
        .unwrap();
    let hash = assetfs::format::hash_bytes(&data);
    let loc = ChunkLocation {
        pack,
        offset: 0,
        len: 5,
    };
    builder.add_file("../escaped", 0o644, 5, &[(hash, loc)]);
    let m = builder.finish("{}".into());
    let mhash = catalog.put_manifest(&m).await.unwrap();
    let asset = r("models/evil").asset;
    catalog
        .claim_version(&asset, &mhash, &serde_json::Map::new())
        .await
        .unwrap();
    let dst = tmp.path().join("in/dst");
    let err = get(&catalog, &r("models/evil@1"), &dst, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GetError::Catalog(CatalogError::CorruptManifest { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(".."), "{err}");
    assert!(!tmp.path().join("in/escaped").exists());
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
    round_trip_and_dedup,
    concurrent_claims_never_overwrite,
    create_if_absent_races,
    aliases_move_and_resolve,
    hostile_manifest_refused,
);

/// Garage and `rclone serve s3` answer 200 to `If-None-Match: *` on an
/// existing key and overwrite it. Such a store must be refused, loudly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_ignoring_conditional_writes_is_refused() {
    let faulty = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()));
    faulty
        .faults
        .ignore_conditional
        .store(true, Ordering::SeqCst);
    let store = Store::from_object_store(Arc::new(faulty), "s3://garage-like");
    let err = store.check_conditional_writes().await.unwrap_err();
    assert!(matches!(err, StoreError::ConditionalWritesIgnored { .. }));
    assert!(err.to_string().contains("refusing to write"), "{err}");

    let catalog = Catalog::new(store.clone());
    let tmp = TempDir::new().unwrap();
    write_tree(tmp.path(), &[("a", b"x".to_vec())]);
    let err = push(&catalog, &r("models/m"), tmp.path(), PushOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PushError::Store(StoreError::ConditionalWritesIgnored { .. })
        ),
        "{err}"
    );
    assert!(catalog
        .versions(&r("models/m").asset)
        .await
        .unwrap()
        .is_empty());
    assert!(
        store.list("packs").await.unwrap().is_empty(),
        "nothing uploaded"
    );
}

/// A store that is down gives a prompt error, and the catalog is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_fails_cleanly() {
    let faulty = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()));
    let faults = faulty.faults.clone();
    let store = Store::from_object_store(Arc::new(faulty), "memory://down");
    let catalog = Catalog::new(store);
    let tmp = TempDir::new().unwrap();
    write_tree(tmp.path(), &[("a", b"x".to_vec())]);
    push(&catalog, &r("models/m"), tmp.path(), PushOptions::default())
        .await
        .unwrap();
    faults.down.store(true, Ordering::SeqCst);
    let err = push(&catalog, &r("models/m"), tmp.path(), PushOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");
    let dst = tmp.path().join("dst");
    assert!(get(&catalog, &r("models/m@1"), &dst, false).await.is_err());
    faults.down.store(false, Ordering::SeqCst);
    assert_eq!(
        catalog.versions(&r("models/m").asset).await.unwrap(),
        vec![1]
    );
}
