//! gc through the real binary: racing pushers, `kill -9` at random points of
//! every phase, retention, `--dry-run`, and bad input. On `file://`, S3
//! (moto), Azure (Azurite) and GCS (fake-gcs-server).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use common::*;

/// A pool of blobs that trees are made of, so versions share chunks.
fn blob_pool(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let len = r.gen_range(10_000..200_000);
            random_bytes(&mut r, len)
        })
        .collect()
}

/// Writes a tree of the chosen blobs; returns its files.
fn write_blobs(
    dir: &std::path::Path,
    pool: &[Vec<u8>],
    pick: &[usize],
) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (i, b) in pick.iter().enumerate() {
        files.insert(format!("d{}/blob{b}.bin", i % 2), pool[*b].clone());
    }
    for (p, data) in &files {
        write_file(&dir.join(p), data, 0o644);
    }
    files
}

fn pick(r: &mut impl Rng, pool: usize) -> Vec<usize> {
    let n = r.gen_range(1..4);
    let set: BTreeSet<usize> = (0..n).map(|_| r.gen_range(0..pool)).collect();
    set.into_iter().collect()
}

/// Live versions of an asset (empty when it has none).
fn live(env: &Env, asset: &str) -> Vec<u64> {
    let r = env.run(&["--json", "log", asset]);
    if !r.success() {
        return vec![];
    }
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect()
}

/// Every (reference, files) reads back exactly, checked in this process
/// (one store handle, versions in parallel), which is far cheaper than a
/// `get` process per version.
fn assert_all_read_back(env: &Env, versions: &[(String, BTreeMap<String, Vec<u8>>)]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = assetfs::store::Store::open(&env.store).unwrap();
    let catalog = assetfs::catalog::Catalog::new(store);
    let tmp = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let checks = versions.iter().enumerate().map(|(i, (rf, files))| {
            let (catalog, dst) = (catalog.clone(), tmp.path().join(i.to_string()));
            async move {
                let reference = assetfs::format::Reference::parse(rf).unwrap();
                assetfs::ops::get(&catalog, &reference, &dst, false)
                    .await
                    .unwrap_or_else(|e| panic!("get {rf}: {e}"));
                let got: BTreeSet<String> = walkdir::WalkDir::new(&dst)
                    .min_depth(1)
                    .into_iter()
                    .map(|e| e.unwrap())
                    .filter(|e| e.file_type().is_file())
                    .map(|e| s(e.path().strip_prefix(&dst).unwrap()).to_string())
                    .collect();
                assert_eq!(got, files.keys().cloned().collect(), "{rf}: file list");
                for (p, data) in files {
                    assert!(
                        std::fs::read(dst.join(p)).unwrap() == *data,
                        "{rf}: {p} differs"
                    );
                }
            }
        });
        futures::stream::iter(checks)
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
    });
}

/// Packs, manifests, deltas and sessions no live version uses, by key.
/// (Self-check probes a killed process left are removed by gc only once
/// they are minutes old, since a running check may still use them.)
fn unreferenced(env: &Env) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = assetfs::store::Store::open(&env.store).unwrap();
    rt.block_on(async {
        let (packs, manifests, via) = common::live::live_objects(&store).await;
        // Packs of a gc killed while rewriting stay while its session could
        // still be live (15 minutes; the property test crosses that on a
        // simulated clock).
        let gc_sessions: HashSet<String> = store
            .list("sessions")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix("sessions/gc-").map(str::to_string))
            .collect();
        let mut out = vec![];
        for (k, _) in store.list("").await.unwrap() {
            let name = k.rsplit('/').next().unwrap().to_string();
            if k.starts_with("sessions/gc-")
                || (k.starts_with("packs/") && gc_sessions.contains(&name[..16]))
            {
                continue;
            }
            let dead = match k.split('/').next().unwrap() {
                "packs" => !packs.contains(&name),
                "manifests" => !manifests.contains(&name),
                "forwards" => !via.contains(k.split('/').nth(1).unwrap()),
                "indexes" | "sessions" => true,
                _ => false,
            };
            if dead {
                out.push(k);
            }
        }
        out
    })
}

// ---------------------------------------------------------------------------
// Race: gc in a loop (two of them) while 8 pushers push, in rounds, their
// trees sharing chunks with old, deleted and in-flight versions, while
// versions are deleted.

const PUSHERS: usize = 8;
const GC_LOOPS: usize = 2;
const ROUNDS: usize = 3;
/// More rounds, while no two pushers have raced for a version number yet.
const MAX_ROUNDS: usize = 12;

#[derive(Debug, Clone)]
struct Pushed {
    reference: String,
    files: BTreeMap<String, Vec<u8>>,
    start: Instant,
    end: Instant,
    claim_retries: u64,
    rescued: u64,
}

fn race(env: Env) {
    let seed: u64 = rand::random();
    eprintln!("race on {}: seed {seed}", env.store);
    env.ok(&["init"]);
    let pool = Arc::new(blob_pool(10, seed));
    let env = Arc::new(env);
    let assets = ["models/r0", "models/r1"];
    // Old versions: one holding every blob of the pool (kept), others
    // deleted before the race starts.
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let all: Vec<usize> = (0..pool.len()).collect();
    let d = env.path("old-all");
    write_blobs(&d, &pool, &all);
    env.ok(&["push", "models/pool", s(&d)]);
    for i in 0..4 {
        let d = env.path(&format!("old{i}"));
        write_blobs(&d, &pool, &pick(&mut r, pool.len()));
        write_file(&d.join("own.bin"), &random_bytes(&mut r, 50_000), 0o644);
        env.ok(&["push", assets[i % 2], s(&d)]);
    }
    env.ok(&["rm", "models/r0@1", "--yes", "--force"]);
    env.ok(&["rm", "models/r1@1", "--yes", "--force"]);
    // Blobs only one version stored so far: later pushes reuse some of them,
    // so they deduplicate against versions in flight or being deleted.
    let singles: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();

    let pushed: Arc<Mutex<Vec<Pushed>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Arc::new(Barrier::new(PUSHERS + GC_LOOPS + 1));
    // Each round starts with all pushers together. After ROUNDS rounds, the
    // leader of a round's barrier decides (for everyone, read after a second
    // barrier) whether to stop: once a version claim was retried, or after
    // MAX_ROUNDS. Pushes on a fast local store collide less often.
    let round = Arc::new(Barrier::new(PUSHERS));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = vec![];
    for p in 0..PUSHERS {
        let (env, pool, pushed, start, round, singles, stop) = (
            env.clone(),
            pool.clone(),
            pushed.clone(),
            start.clone(),
            round.clone(),
            singles.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut r = rand::rngs::StdRng::seed_from_u64(seed ^ (p as u64 + 1));
            start.wait();
            for k in 0..MAX_ROUNDS {
                if round.wait().is_leader() {
                    let retried = pushed.lock().unwrap().iter().any(|x| x.claim_retries > 0);
                    stop.store(k >= ROUNDS && retried, std::sync::atomic::Ordering::SeqCst);
                }
                round.wait();
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let d = env.path(&format!("p{p}-{k}"));
                let mut files = write_blobs(&d, &pool, &pick(&mut r, pool.len()));
                // Its own bytes, so a deleted version leaves a dead pack...
                let n = r.gen_range(20_000..80_000);
                let own = random_bytes(&mut r, n);
                // ...and, half the time, bytes of another pusher's version.
                let other = {
                    let s = singles.lock().unwrap();
                    (!s.is_empty() && r.gen_bool(0.5)).then(|| s[r.gen_range(0..s.len())].clone())
                };
                singles.lock().unwrap().push(own.clone());
                for (name, data) in [("own.bin", Some(own)), ("other.bin", other)] {
                    if let Some(data) = data {
                        write_file(&d.join(name), &data, 0o644);
                        files.insert(name.to_string(), data);
                    }
                }
                let asset = ["models/r0", "models/r1"][(p + k) % 2];
                let t0 = Instant::now();
                let out = env.json(&["push", asset, s(&d)]);
                pushed.lock().unwrap().push(Pushed {
                    reference: out["ref"].as_str().unwrap().to_string(),
                    files,
                    start: t0,
                    end: Instant::now(),
                    claim_retries: out["claim_retries"].as_u64().unwrap(),
                    rescued: out["rescued_chunks"].as_u64().unwrap(),
                });
            }
        }));
    }
    // gc in a loop, on two "nodes" at once.
    let gc_runs: Arc<Mutex<Vec<(Instant, Instant, Value)>>> = Arc::default();
    for _ in 0..GC_LOOPS {
        let (env, done, start, gc_runs) =
            (env.clone(), done.clone(), start.clone(), gc_runs.clone());
        threads.push(std::thread::spawn(move || {
            start.wait();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let t0 = Instant::now();
                let rep = env.json(&["gc", "--grace", "0s"]);
                gc_runs.lock().unwrap().push((t0, Instant::now(), rep));
            }
        }));
    }
    // Deleting versions (old ones and ones just pushed) in a loop.
    let deleted: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let (env, done, start, deleted) =
            (env.clone(), done.clone(), start.clone(), deleted.clone());
        threads.push(std::thread::spawn(move || {
            let mut r = rand::rngs::StdRng::seed_from_u64(seed ^ 0xde1);
            start.wait();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let asset = ["models/r0", "models/r1"][r.gen_range(0..2)];
                let vs = live(&env, asset);
                if vs.len() > 2 {
                    let v = vs[r.gen_range(1..vs.len())];
                    let rf = format!("{asset}@{v}");
                    if env.run(&["rm", &rf, "--yes", "--force"]).success() {
                        deleted.lock().unwrap().push(rf);
                    }
                }
                std::thread::sleep(Duration::from_millis(r.gen_range(50..300)));
            }
        }));
    }
    let deleters = threads.split_off(PUSHERS);
    for t in threads {
        t.join().expect("pusher");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in deleters {
        t.join().expect("gc or deleter");
    }

    let pushed = pushed.lock().unwrap().clone();
    let gc_runs = gc_runs.lock().unwrap();
    let deleted: HashSet<String> = deleted.lock().unwrap().iter().cloned().collect();
    // They overlapped: gc runs ran while pushes were in flight, and pushers
    // lost version claims to each other.
    let overlapping = gc_runs
        .iter()
        .filter(|(a, b, _)| pushed.iter().any(|p| p.start < *b && *a < p.end))
        .count();
    let retries: u64 = pushed.iter().map(|p| p.claim_retries).sum();
    let rescued: u64 = pushed.iter().map(|p| p.rescued).sum();
    let swept: u64 = gc_runs
        .iter()
        .flat_map(|(_, _, r)| r["swept"].as_array().cloned().unwrap_or_default())
        .map(|s| s["packs"].as_u64().unwrap())
        .sum();
    let waited = gc_runs
        .iter()
        .filter(|(_, _, r)| {
            r["pending"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|x| !x["waiting_for"].as_array().unwrap().is_empty())
            })
        })
        .count();
    eprintln!(
        "race on {}: {} pushes, {} gc runs ({overlapping} overlapping pushes, {waited} waiting for writers), {} versions deleted, {retries} claim retries, {rescued} chunks re-stored because gc condemned their pack, {swept} packs swept",
        env.store,
        pushed.len(),
        gc_runs.len(),
        deleted.len()
    );
    assert!(pushed.len() >= PUSHERS * ROUNDS, "{} pushes", pushed.len());
    assert_eq!(
        pushed.len() % PUSHERS,
        0,
        "every pusher pushed in every round"
    );
    assert!(
        overlapping >= 3,
        "only {overlapping} gc runs overlapped a push"
    );
    assert!(
        retries >= 1,
        "no version claim was ever retried: the pushers did not race"
    );
    assert!(swept >= 1, "gc never deleted anything");

    // Every live version reads back byte for byte; verify agrees.
    let survivors: Vec<(String, BTreeMap<String, Vec<u8>>)> = pushed
        .iter()
        .filter(|p| !deleted.contains(&p.reference))
        .map(|p| (p.reference.clone(), p.files.clone()))
        .collect();
    assert!(!survivors.is_empty());
    assert_all_read_back(&env, &survivors);
    env.ok(&["verify"]);
    // Later gc runs finish the job: nothing unreferenced remains. Every
    // object is older than their grace period first, so the first run
    // condemns (or rewrites) whatever it ever will and the second sweeps it.
    std::thread::sleep(Duration::from_millis(1100));
    let g1 = env.json(&["gc", "--grace", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let g2 = env.json(&["gc", "--grace", "1s"]);
    let left = unreferenced(&env);
    assert!(
        left.is_empty(),
        "left after gc: {left:?}\nversions deleted: {deleted:?}\nfirst gc: {g1}\nsecond gc: {g2}"
    );
    assert_all_read_back(&env, &survivors);
}

#[test]
fn race_file() {
    race(Env::new());
}

#[test]
fn race_s3() {
    race(Env::with_store(&cloud_store("ASSETFS_TEST_S3_URL")));
}

#[test]
fn race_azure() {
    race(Env::with_store(&cloud_store("ASSETFS_TEST_AZ_URL")));
}

#[test]
fn race_gcs() {
    race(Env::with_store(&cloud_store("ASSETFS_TEST_GCS_URL")));
}

// ---------------------------------------------------------------------------
// kill -9 of gc at random points: at least 20 real kills per store, at least
// 3 in each phase that writes; every live version still verifies, and a
// later gc finishes the job.

const KILL_PHASES: [&str; 6] = ["retention", "sweep", "mark", "rewrite", "index", "cleanup"];
const MIN_KILLS: usize = 20;
const MIN_PER_PHASE: usize = 3;

const GC_ARGS: [&str; 5] = ["gc", "--grace", "0s", "--keep-last", "3"];

/// Runs gc with its phases logged; `on_phase(name, occurrence)` is called as
/// each phase line arrives and may return a delay after which gc is killed.
/// Returns the phase lines with their arrival times and whether it was killed.
fn gc_watched(
    env: &Env,
    mut on_phase: impl FnMut(&str, usize) -> Option<Duration>,
) -> (Vec<(String, Instant)>, bool) {
    let mut c = env.cmd(&GC_ARGS);
    c.env("ASSETFS_LOG", "assetfs::gc=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn gc");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(String, Instant)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(p) = line.split("gc phase: ").nth(1) {
                let _ = tx.send((p.trim().to_string(), Instant::now()));
            }
        }
    });
    let mut seen: Vec<(String, Instant)> = vec![];
    let mut killed = false;
    while let Ok((p, t)) = rx.recv() {
        let occurrence = seen.iter().filter(|(q, _)| *q == p).count();
        seen.push((p.clone(), t));
        if let Some(delay) = on_phase(&p, occurrence) {
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_none() {
                // SAFETY: signalling our own child by its pid.
                unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
                killed = true;
            }
            break;
        }
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    // Lines still in the pipe: the last one is where it died.
    seen.extend(rx.try_iter());
    use std::os::unix::process::ExitStatusExt;
    let killed = killed && status.signal() == Some(libc::SIGKILL);
    assert!(
        killed || status.success(),
        "gc failed on its own: {status:?}"
    );
    (seen, killed)
}

/// How long each (phase, occurrence) lasted in a complete run.
fn phase_times(lines: &[(String, Instant)]) -> BTreeMap<(String, usize), Duration> {
    let mut out = BTreeMap::new();
    for (i, w) in lines.windows(2).enumerate() {
        let occ = lines[..i].iter().filter(|(q, _)| *q == w[0].0).count();
        out.insert((w[0].0.clone(), occ), w[1].1 - w[0].1);
    }
    out
}

fn kill_gc(env: Env) {
    let seed: u64 = rand::random();
    eprintln!("kill test on {}: seed {seed}", env.store);
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let pool = blob_pool(12, seed);
    env.ok(&["init"]);
    let mut versions: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut kills: BTreeMap<String, usize> = BTreeMap::new();
    let mut times: BTreeMap<(String, usize), Duration> = BTreeMap::new();
    let (mut attempts, mut n) = (0, 0u64);
    let enough = |k: &BTreeMap<String, usize>| {
        k.values().sum::<usize>() >= MIN_KILLS
            && KILL_PHASES
                .iter()
                .all(|p| k.get(*p).copied().unwrap_or(0) >= MIN_PER_PHASE)
    };
    while !enough(&kills) {
        attempts += 1;
        assert!(attempts < 120, "could not place the kills: {kills:?}");
        // New garbage for this run: a version; retention (--keep-last 3)
        // deletes older ones.
        {
            n += 1;
            let d = env.path(&format!("k{n}"));
            let files = write_blobs(&d, &pool, &pick(&mut r, pool.len()));
            let out = env.json(&["push", "models/k", s(&d)]);
            versions.insert(out["ref"].as_str().unwrap().to_string(), files);
        }
        if times.is_empty() || attempts % 8 == 0 {
            // Calibrate: how long each phase takes on this store.
            let (lines, _) = gc_watched(&env, |_, _| None);
            times = phase_times(&lines);
            continue;
        }
        // Aim at the phase with the fewest kills so far, at its longest
        // occurrence, at a random point within it.
        let target = KILL_PHASES
            .iter()
            .min_by_key(|p| kills.get(**p).copied().unwrap_or(0))
            .unwrap();
        let (occ, dur) = times
            .iter()
            .filter(|((p, _), _)| p == target)
            .max_by_key(|(_, d)| **d)
            .map(|((_, o), d)| (*o, *d))
            .unwrap_or((0, Duration::ZERO));
        let delay = Duration::from_micros(r.gen_range(0..=dur.as_micros().min(300_000) as u64));
        let (lines, killed) = gc_watched(&env, |p, o| (p == *target && o == occ).then_some(delay));
        let died_in = lines.last().map(|(p, _)| p.clone()).unwrap_or_default();
        // Killed after its last line ("done"): it had finished; not counted.
        if killed && died_in != "done" {
            *kills.entry(died_in).or_default() += 1;
        }
        if attempts % 5 == 0 {
            env.ok(&["verify"]);
        }
    }
    eprintln!(
        "kill test on {}: {} kills in {attempts} gc runs, by the phase gc died in: {kills:?}",
        env.store,
        kills.values().sum::<usize>()
    );
    // Every live version verifies and reads back; a later gc finishes the job.
    env.ok(&["verify"]);
    for _ in 0..2 {
        env.json(&["gc", "--grace", "0s"]);
    }
    let live_now: HashSet<String> = live(&env, "models/k")
        .into_iter()
        .map(|v| format!("models/k@{v}"))
        .collect();
    assert!(!live_now.is_empty());
    let survivors: Vec<(String, BTreeMap<String, Vec<u8>>)> = versions
        .iter()
        .filter(|(rf, _)| live_now.contains(*rf))
        .map(|(rf, f)| (rf.clone(), f.clone()))
        .collect();
    assert_all_read_back(&env, &survivors);
    let left = unreferenced(&env);
    assert!(left.is_empty(), "left after a complete gc: {left:?}");
}

#[test]
fn kill_gc_file() {
    kill_gc(Env::new());
}

#[test]
fn kill_gc_s3() {
    kill_gc(Env::with_store(&cloud_store("ASSETFS_TEST_S3_URL")));
}

#[test]
fn kill_gc_azure() {
    kill_gc(Env::with_store(&cloud_store("ASSETFS_TEST_AZ_URL")));
}

#[test]
fn kill_gc_gcs() {
    kill_gc(Env::with_store(&cloud_store("ASSETFS_TEST_GCS_URL")));
}

// ---------------------------------------------------------------------------
// Retention and --dry-run.

#[test]
fn retention_keeps_what_the_rules_say() {
    let env = Env::new();
    env.ok(&["init"]);
    let pool = blob_pool(4, 7);
    let mut r = rng(7);
    let mut own = |env: &Env, asset: &str, extra: &[&str]| -> String {
        let d = env.path(&format!("t{}", unique_id()));
        write_blobs(&d, &pool, &[0]);
        write_file(&d.join("own.bin"), &random_bytes(&mut r, 60_000), 0o644);
        let mut args = vec!["push", asset, s(&d)];
        args.extend_from_slice(extra);
        env.json(&args)["ref"].as_str().unwrap().to_string()
    };
    // features/g@1..2; features/f@1..3, f@1 built from g@1;
    // models/m@1..6: m@2 aliased, m@6 built from features/f@1.
    own(&env, "features/g", &[]);
    own(&env, "features/g", &[]);
    own(&env, "features/f", &["--input", "features/g@1"]);
    own(&env, "features/f", &[]);
    own(&env, "features/f", &[]);
    own(&env, "models/m", &[]);
    own(&env, "models/m", &["--alias", "production"]);
    for _ in 0..3 {
        own(&env, "models/m", &[]);
    }
    own(&env, "models/m", &["--input", "features/f@1"]);

    // --dry-run says what would go and what that frees, and changes nothing.
    let victims = serde_json::json!([
        "models/m@5",
        "models/m@4",
        "models/m@3",
        "models/m@1",
        "features/f@2"
    ]);
    let before = store_listing(&env);
    let dry = env.json(&["gc", "--keep-last", "1", "--grace", "0s", "--dry-run"]);
    assert_eq!(dry["deleted_versions"], victims);
    assert!(dry["dry_run"].as_bool().unwrap());
    assert_eq!(dry["marked"]["packs"], 5, "the victims' own packs: {dry}");
    assert!(dry["marked"]["bytes"].as_u64().unwrap() >= 5 * 60_000);
    let text = env
        .ok(&["gc", "--keep-last", "1", "--grace", "0s", "--dry-run"])
        .stdout;
    assert!(
        text.contains("would delete 5 version(s) by retention: models/m@5, models/m@4, models/m@3, models/m@1, features/f@2"),
        "{text}"
    );
    assert!(text.contains("would mark 5 pack(s)"), "{text}");
    assert_eq!(before, store_listing(&env), "--dry-run changed the store");

    // The real run keeps the newest, the aliased one, and the lineage
    // inputs of kept versions, transitively (m@6 <- f@1 <- g@1).
    let rep = env.json(&[
        "gc",
        "--keep-last",
        "1",
        "--grace",
        "0s",
        "--author",
        "janitor",
    ]);
    assert_eq!(rep["deleted_versions"], victims);
    assert_eq!(rep["freed_bytes"], dry["marked"]["bytes"]);
    assert_eq!(live(&env, "models/m"), [6, 2]);
    assert_eq!(live(&env, "features/f"), [3, 1]);
    assert_eq!(live(&env, "features/g"), [2, 1]);
    let gone = &env.json(&["log", "models/m", "--all"])[5];
    assert_eq!(gone["version"], 1);
    assert_eq!(gone["deleted"]["by"], "janitor");
    assert_eq!(gone["deleted"]["message"], "gc retention: --keep-last 1");
    env.ok(&["verify"]);
    assert!(unreferenced(&env).is_empty());

    // --keep-within: a rule that keeps everything here deletes nothing; one
    // that keeps nothing still keeps each asset's newest version.
    for _ in 0..3 {
        own(&env, "models/w", &[]);
    }
    let rep = env.json(&["gc", "--keep-within", "1h", "--grace", "0s"]);
    assert_eq!(rep["deleted_versions"], serde_json::json!([]));
    let rep = env.json(&[
        "gc",
        "--keep-within",
        "0s",
        "--keep-last",
        "2",
        "--grace",
        "0s",
    ]);
    assert_eq!(rep["deleted_versions"], serde_json::json!(["models/w@1"]));
    let rep = env.json(&["gc", "--keep-within", "0s", "--grace", "0s"]);
    assert_eq!(rep["deleted_versions"], serde_json::json!(["models/w@2"]));
    assert_eq!(live(&env, "models/w"), [3]);
    assert_eq!(live(&env, "models/m"), [6, 2]);
}

/// Every key with its size, probes left out.
fn store_listing(env: &Env) -> BTreeMap<String, u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = assetfs::store::Store::open(&env.store).unwrap();
    rt.block_on(store.list(""))
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("probe/"))
        .collect()
}

#[test]
fn bad_gc_input_is_refused_without_a_trace() {
    let env = Env::new();
    env.ok(&["init"]);
    let d = env.path("t");
    write_file(&d.join("a"), b"a", 0o644);
    env.ok(&["push", "models/m", s(&d)]);
    env.ok(&["push", "models/m", s(&d)]);
    let before = store_listing(&env);
    for (args, words) in [
        (
            vec!["gc", "--grace", "soon"],
            vec!["invalid --grace", "\"soon\"", "24h"],
        ),
        (vec!["gc", "--grace=-5m"], vec!["invalid --grace"]),
        (
            vec!["gc", "--keep-within", "a while"],
            vec!["invalid --keep-within", "7d"],
        ),
        (
            vec!["gc", "--keep-last", "0"],
            vec!["--keep-last must be at least 1"],
        ),
        (vec!["gc", "--keep-last", "two"], vec!["--keep-last", "two"]),
        (
            vec!["rm", "models/m@7", "--yes"],
            vec!["models/m@7 does not exist"],
        ),
    ] {
        let r = env.run(&args);
        if args[1] == "--keep-last" && args[2] == "two" {
            // clap's own usage error: non-zero, names the flag.
            assert!(!r.success() && r.stderr.contains("--keep-last"), "{r}");
        } else {
            r.one_error_line(&words);
        }
        assert_eq!(before, store_listing(&env), "{args:?} changed the store");
    }
}

/// A GCS front that ignores `ifGenerationMatch` (so create-if-absent is not
/// atomic there): gc refuses it with one line and changes nothing.
#[test]
fn gc_refuses_a_store_that_ignores_conditional_writes() {
    let sa = std::env::var("ASSETFS_TEST_GCS_IGNORING_SA")
        .unwrap_or_else(|_| panic!("ASSETFS_TEST_GCS_IGNORING_SA is not set: run scripts/test.sh"));
    let url = cloud_store("ASSETFS_TEST_GCS_URL");
    let env = Env::with_store(&url);
    let d = env.path("t");
    write_file(&d.join("a"), b"a", 0o644);
    env.ok(&["push", "models/m", s(&d)]);
    env.ok(&["push", "models/m", s(&d)]);
    env.ok(&["rm", "models/m@1", "--yes"]);
    let before = store_listing(&env);
    for args in [
        vec!["gc", "--grace", "0s"],
        vec!["gc", "--dry-run"],
        vec!["gc", "--keep-last", "1"],
        vec!["rm", "models/m@2", "--yes"],
        vec!["alias", "--delete", "models/m", "x"],
    ] {
        let r = Run::from_output(
            &args,
            env.cmd(&args)
                .env("GOOGLE_SERVICE_ACCOUNT", &sa)
                .output()
                .expect("spawn assetfs"),
        );
        r.one_error_line(&["does not honour create-if-absent", "refusing"]);
        assert_eq!(before, store_listing(&env), "{args:?} changed the store");
    }
}
