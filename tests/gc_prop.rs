//! Property test: random histories of push, rm, alias, a version replaced
//! by one that keeps part of it, gc (with grace periods, retention and pack
//! rewrites) and time passing on a simulated store clock, with
//! a push that can stall mid-way (across gc runs and session expiry) and
//! then finish or crash. After every step every live version reads back
//! exactly; at the end, once time has passed, gc leaves nothing that no
//! live version uses.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use assetfs::catalog::Catalog;
use assetfs::format::keys;
use assetfs::format::Reference;
use assetfs::ops::GcOptions;
use assetfs::ops::{push, PushOptions, PushOutcome};
use assetfs::store::Store;
use assetfs::store::{GateHandle, GatedStore, Gates, SimClock, SimClockStore};
use proptest::prelude::*;

const MIN: i64 = 60_000;
const ASSETS: [&str; 2] = ["models/a", "features/b"];
/// Blob sizes: several chunks, one chunk, tiny.
const BLOBS: [usize; 5] = [700_000, 300_000, 120_000, 20_000, 7];

#[derive(Debug, Clone)]
enum Op {
    Push {
        asset: usize,
        blobs: Vec<usize>,
    },
    Rm {
        asset: usize,
        pick: usize,
    },
    Alias {
        asset: usize,
        pick: usize,
    },
    /// A version of a big and a small new file, then one of the small file
    /// alone, then the first deleted: its pack stays partly used (what gc
    /// rewrites).
    Replace {
        asset: usize,
    },
    /// `rewrite`: rewrite packs used less than this fraction (0: never).
    Gc {
        grace_min: i64,
        keep_last: Option<usize>,
        rewrite: f64,
    },
    Advance {
        min: i64,
    },
    /// Starts a push that stops at its manifest upload (one at a time).
    Stall {
        asset: usize,
        blobs: Vec<usize>,
    },
    /// Lets the stalled push finish.
    Resume,
    /// Kills the stalled push: its packs, delta and session stay behind.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let blobs = prop::collection::vec(0usize..BLOBS.len(), 1..4);
    prop_oneof![
        4 => (0usize..2, blobs.clone()).prop_map(|(asset, blobs)| Op::Push { asset, blobs }),
        2 => (0usize..2, 0usize..8).prop_map(|(asset, pick)| Op::Rm { asset, pick }),
        1 => (0usize..2, 0usize..8).prop_map(|(asset, pick)| Op::Alias { asset, pick }),
        2 => (0usize..2).prop_map(|asset| Op::Replace { asset }),
        3 => (
            prop::sample::select(vec![0i64, 10, 60]),
            prop::option::of(1usize..3),
            prop::sample::select(vec![0.0, 0.5, 0.99, 0.99]),
        )
            .prop_map(|(grace_min, keep_last, rewrite)| Op::Gc { grace_min, keep_last, rewrite }),
        2 => prop::sample::select(vec![5i64, 30, 90]).prop_map(|min| Op::Advance { min }),
        2 => (0usize..2, blobs).prop_map(|(asset, blobs)| Op::Stall { asset, blobs }),
        1 => Just(Op::Resume),
        2 => Just(Op::Crash),
    ]
}

fn blob(i: usize) -> Vec<u8> {
    let mut v = vec![0u8; BLOBS[i]];
    blake3::Hasher::new()
        .update(&[i as u8, 0x5a])
        .finalize_xof()
        .fill(&mut v);
    v
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// A tree of the chosen blobs (a blob chosen twice is one file).
fn tree(dir: &Path, blobs: &[usize]) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    let mut files = BTreeMap::new();
    for b in blobs {
        files.insert(format!("blob{b}.bin"), blob(*b));
    }
    for (name, data) in &files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    files
}

/// A push held at its manifest upload: asset, files, gate, task.
type Stalled = (
    usize,
    BTreeMap<String, Vec<u8>>,
    GateHandle,
    tokio::task::JoinHandle<Result<PushOutcome, assetfs::ops::PushError>>,
);

struct World {
    store: Store,
    catalog: Catalog,
    clock: Arc<SimClock>,
    gates: Arc<Gates>,
    tmp: tempfile::TempDir,
    /// Live versions and their expected files.
    live: BTreeMap<(usize, u64), BTreeMap<String, Vec<u8>>>,
    stalled: Option<Stalled>,
    dirs: u64,
    /// Simulated minutes the stalled push has been held.
    stalled_for: i64,
}

impl World {
    fn dir(&mut self) -> PathBuf {
        self.dirs += 1;
        self.tmp.path().join(format!("t{}", self.dirs))
    }

    fn gc_opts(&self, grace_min: i64, keep_last: Option<usize>, rewrite: f64) -> GcOptions {
        GcOptions {
            grace: Duration::from_millis((grace_min * MIN) as u64),
            keep_last,
            keep_within: None,
            dry_run: false,
            by: "prop".into(),
            cache_dir: self.tmp.path().join("gc-cache"),
            progress: false,
            rewrite_below: rewrite,
        }
    }

    async fn live_versions(&self, asset: usize) -> Vec<u64> {
        self.catalog
            .versions(&r(ASSETS[asset]).asset)
            .await
            .unwrap()
    }

    async fn apply(&mut self, op: &Op) {
        match op {
            Op::Push { asset, blobs } => {
                let d = self.dir();
                let files = tree(&d, blobs);
                let out = push(
                    &self.catalog,
                    &r(ASSETS[*asset]),
                    &d,
                    PushOptions::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("push: {e}"));
                self.live.insert((*asset, out.version), files);
                SEEN.pushes.fetch_add(1, Ordering::SeqCst);
            }
            Op::Rm { asset, pick } => {
                let vs = self.live_versions(*asset).await;
                if vs.is_empty() {
                    return;
                }
                let v = vs[pick % vs.len()];
                self.catalog
                    .delete_version(&r(ASSETS[*asset]).asset, v, "prop", "")
                    .await
                    .unwrap();
                self.live.remove(&(*asset, v));
                SEEN.rms.fetch_add(1, Ordering::SeqCst);
            }
            Op::Alias { asset, pick } => {
                let vs = self.live_versions(*asset).await;
                if vs.is_empty() {
                    return;
                }
                let v = vs[pick % vs.len()];
                self.catalog
                    .set_alias(&r(ASSETS[*asset]).asset, "prod", v)
                    .await
                    .unwrap();
            }
            Op::Replace { asset } => {
                // Unique content, so the first version's pack holds exactly
                // its two files.
                let (d1, d2) = (self.dir(), self.dir());
                let unique = |n: usize, tag: u64| {
                    let mut v = vec![0u8; n];
                    blake3::Hasher::new()
                        .update(b"replace")
                        .update(&tag.to_le_bytes())
                        .finalize_xof()
                        .fill(&mut v);
                    v
                };
                let (big, small) = (unique(600_000, self.dirs), unique(20_000, self.dirs + 1));
                let mut files = BTreeMap::new();
                for (name, data) in [("big.bin", big), ("small.bin", small)] {
                    std::fs::create_dir_all(&d1).unwrap();
                    std::fs::write(d1.join(name), &data).unwrap();
                    files.insert(name.to_string(), data);
                }
                files.remove("big.bin");
                std::fs::create_dir_all(&d2).unwrap();
                std::fs::write(d2.join("small.bin"), &files["small.bin"]).unwrap();
                let a = r(ASSETS[*asset]);
                let v1 = push(&self.catalog, &a, &d1, PushOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("push: {e}"))
                    .version;
                let v2 = push(&self.catalog, &a, &d2, PushOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("push: {e}"))
                    .version;
                self.catalog
                    .delete_version(&a.asset, v1, "prop", "")
                    .await
                    .unwrap();
                self.live.insert((*asset, v2), files);
                SEEN.pushes.fetch_add(2, Ordering::SeqCst);
                SEEN.rms.fetch_add(1, Ordering::SeqCst);
            }
            Op::Gc {
                grace_min,
                keep_last,
                rewrite,
            } => {
                let rep = assetfs::ops::run(
                    &self.catalog,
                    &self.gc_opts(*grace_min, *keep_last, *rewrite),
                )
                .await
                .unwrap_or_else(|e| panic!("gc: {e}"));
                for d in &rep.deleted_versions {
                    let rf = r(d);
                    let a = ASSETS.iter().position(|x| r(x).asset == rf.asset).unwrap();
                    let assetfs::format::Selector::Version(v) = rf.selector else {
                        unreachable!()
                    };
                    assert!(
                        self.live.remove(&(a, v)).is_some(),
                        "gc deleted unknown {d}"
                    );
                }
                let swept: u64 = rep.swept.iter().map(|s| s.packs).sum();
                SEEN.packs_swept.fetch_add(swept, Ordering::SeqCst);
                SEEN.packs_rewritten
                    .fetch_add(rep.rewritten.packs, Ordering::SeqCst);
            }
            Op::Advance { min } => {
                self.clock.advance_ms(min * MIN);
                if self.stalled.is_some() {
                    self.stalled_for += min;
                }
            }
            Op::Stall { asset, blobs } => {
                if self.stalled.is_some() {
                    return;
                }
                let d = self.dir();
                let files = tree(&d, blobs);
                let gate = self.gates.arm("manifests/");
                let (catalog, a) = (self.catalog.clone(), ASSETS[*asset]);
                let task =
                    tokio::spawn(
                        async move { push(&catalog, &r(a), &d, PushOptions::default()).await },
                    );
                gate.reached().await;
                self.stalled = Some((*asset, files, gate, task));
                self.stalled_for = 0;
            }
            Op::Resume => {
                if let Some((asset, files, gate, task)) = self.stalled.take() {
                    gate.release();
                    let out = task
                        .await
                        .unwrap()
                        .unwrap_or_else(|e| panic!("stalled push: {e}"));
                    self.live.insert((asset, out.version), files);
                    SEEN.resumed.fetch_add(1, Ordering::SeqCst);
                    SEEN.resumed_rescued
                        .fetch_add(out.rescued_chunks, Ordering::SeqCst);
                    if self.stalled_for * MIN > assetfs::format::sessions::EXPIRY.as_millis() as i64
                    {
                        SEEN.expired_then_resumed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            Op::Crash => {
                if let Some((_, _, gate, task)) = self.stalled.take() {
                    task.abort();
                    let _ = task.await;
                    drop(gate);
                    SEEN.crashes.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// Every live version (and only those) reads back exactly.
    async fn check(&self) {
        for (a, name) in ASSETS.iter().enumerate() {
            let want: Vec<u64> = self
                .live
                .keys()
                .filter(|(x, _)| *x == a)
                .map(|(_, v)| *v)
                .collect();
            assert_eq!(self.live_versions(a).await, want, "live versions of {name}");
        }
        for ((a, v), files) in &self.live {
            let out = tempfile::tempdir().unwrap();
            let reference = format!("{}@{v}", ASSETS[*a]);
            assetfs::ops::get(&self.catalog, &r(&reference), out.path(), false)
                .await
                .unwrap_or_else(|e| panic!("get {reference}: {e}"));
            for (name, data) in files {
                let got = std::fs::read(out.path().join(name)).unwrap();
                assert!(got == *data, "{reference}/{name} differs");
            }
        }
    }

    /// What no live version uses is gone (once time has passed).
    async fn assert_nothing_unreferenced(&self) {
        let (packs, manifests, via) = common::live::live_objects(&self.store).await;
        let name = |k: &str| k.rsplit('/').next().unwrap().to_string();
        for (k, _) in self.store.list(keys::PACKS).await.unwrap() {
            assert!(packs.contains(&name(&k)), "unreferenced pack left: {k}");
        }
        for (k, _) in self.store.list(keys::MANIFESTS).await.unwrap() {
            assert!(
                manifests.contains(&name(&k)),
                "unreferenced manifest left: {k}"
            );
        }
        for (k, _) in self.store.list(keys::FORWARDS).await.unwrap() {
            let old = k.split('/').nth(1).unwrap().to_string();
            assert!(via.contains(&old), "unused forward record left: {k}");
        }
        for prefix in [keys::INDEXES, keys::SESSIONS] {
            let left = self.store.list(prefix).await.unwrap();
            assert!(left.is_empty(), "{prefix} left: {left:?}");
        }
    }
}

async fn history(ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(SimClock::starting_at(1_000_000_000_000));
    let gates: Arc<Gates> = Arc::default();
    let (c, g) = (clock.clone(), gates.clone());
    let store = Store::open("memory://").unwrap().wrapped(move |inner| {
        Arc::new(GatedStore::with_gates(
            Arc::new(SimClockStore::with_clock(inner, c)),
            g,
        ))
    });
    let mut w = World {
        catalog: Catalog::new(store.clone()),
        store,
        clock,
        gates,
        tmp,
        live: BTreeMap::new(),
        stalled: None,
        dirs: 0,
        stalled_for: 0,
    };
    for op in &ops {
        w.apply(op).await;
        w.check().await;
    }
    w.apply(&Op::Resume).await;
    // Long after everything: sessions expired, every grace period over.
    w.clock.advance_ms(24 * 60 * MIN);
    w.apply(&Op::Gc {
        grace_min: 60,
        keep_last: None,
        rewrite: 0.5,
    })
    .await;
    w.clock.advance_ms(2 * 60 * MIN);
    w.apply(&Op::Gc {
        grace_min: 60,
        keep_last: None,
        rewrite: 0.5,
    })
    .await;
    w.check().await;
    w.assert_nothing_unreferenced().await;
}

/// What the histories exercised, summed over all cases.
#[derive(Default)]
struct Seen {
    pushes: AtomicU64,
    rms: AtomicU64,
    packs_swept: AtomicU64,
    packs_rewritten: AtomicU64,
    resumed: AtomicU64,
    resumed_rescued: AtomicU64,
    crashes: AtomicU64,
    expired_then_resumed: AtomicU64,
}

static SEEN: Seen = Seen {
    pushes: AtomicU64::new(0),
    rms: AtomicU64::new(0),
    packs_swept: AtomicU64::new(0),
    packs_rewritten: AtomicU64::new(0),
    resumed: AtomicU64::new(0),
    resumed_rescued: AtomicU64::new(0),
    crashes: AtomicU64::new(0),
    expired_then_resumed: AtomicU64::new(0),
};

#[test]
fn random_histories_keep_every_live_version() {
    let seed: u64 = std::env::var("GC_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("gc_prop: seed {seed} (rerun with GC_PROP_SEED={seed})");
    let config = ProptestConfig {
        cases: 40,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = runner.run(&prop::collection::vec(op(), 3..16), |ops| {
        rt.block_on(history(ops));
        Ok(())
    });
    if let Err(e) = result {
        panic!("gc_prop (seed {seed}): {e}");
    }
    let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
    eprintln!(
        "gc_prop: {} pushes, {} rm, {} packs swept, {} packs rewritten, {} stalled pushes resumed ({} re-stored chunks gc condemned meanwhile, {} after their session expired), {} crashed",
        get(&SEEN.pushes),
        get(&SEEN.rms),
        get(&SEEN.packs_swept),
        get(&SEEN.packs_rewritten),
        get(&SEEN.resumed),
        get(&SEEN.resumed_rescued),
        get(&SEEN.expired_then_resumed),
        get(&SEEN.crashes),
    );
    // Not a vacuous run: the histories did delete, collect, stall and crash.
    for (what, n) in [
        ("pushes", get(&SEEN.pushes)),
        ("rm", get(&SEEN.rms)),
        ("packs swept", get(&SEEN.packs_swept)),
        ("packs rewritten", get(&SEEN.packs_rewritten)),
        ("resumed stalled pushes", get(&SEEN.resumed)),
        ("crashed pushes", get(&SEEN.crashes)),
    ] {
        assert!(n > 0, "no {what} in 40 histories (seed {seed})");
    }
}
