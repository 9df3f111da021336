//! End-to-end tests of the `assetfs` binary: every command run as a real
//! process against a `file://` store, and the round trip and concurrent
//! commits also against S3 (moto) and Azure (Azurite) started by
//! scripts/test.sh.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Stdio;

use serde_json::{json, Value};

use common::*;

// ---------------------------------------------------------------------------
// Round trip: init, push (metadata, lineage, aliases), ls, log, show, alias,
// diff, verify, get. Shared by the file, S3 and Azure tests.
// ---------------------------------------------------------------------------

fn meta_file_v1() -> Value {
    json!({
        "context": {
            "framework": "pytorch 2.3",
            "command": "python train.py --epochs 3",
            "link": "https://example.org/paper",
            "image": "sha256:0123456789abcdef",
            "log": "weights/deep/er/leaf.json",
            "notes": "baseline"
        },
        "metrics": {"acc": 0.9, "loss": 0.25},
        "tests": [{"name": "leaf", "command": "cat {input}",
                   "input": "weights/deep/er/leaf.json", "expected": "weights/deep/er/leaf.json"}],
        "user": {"team": "vision"},
        "lineage": {"notes": "trained from scratch"},
        "x-unknown": {"kept": [1, "two", null], "deep": {"a": true}}
    })
}

/// Lines of text output, split into whitespace-separated words.
fn words(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn versions_of(rows: &Value) -> Vec<u64> {
    rows.as_array()
        .expect("array")
        .iter()
        .map(|r| r["version"].as_u64().expect("version number"))
        .collect()
}

fn assert_rfc3339_utc_now(v: &Value) {
    let s = v.as_str().expect("created is a string");
    assert!(s.ends_with('Z'), "created {s:?} is not UTC");
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("created {s:?} is not RFC 3339: {e}"));
    let age = time::OffsetDateTime::now_utc() - t;
    assert!(
        age > time::Duration::seconds(-5) && age < time::Duration::minutes(30),
        "created {s:?} is not about now"
    );
}

/// Files, directories and symlinks of `ls --json REF`, by path.
fn listing(env: &Env, reference: &str) -> BTreeMap<String, Value> {
    env.json(&["ls", reference])
        .as_array()
        .expect("ls of a version is an array")
        .iter()
        .map(|e| (e["path"].as_str().expect("path").to_string(), e.clone()))
        .collect()
}

/// Checks `ls --json REF` against a local tree, entry by entry.
fn assert_listing_matches(env: &Env, reference: &str, src: &std::path::Path) {
    let want = snapshot(src);
    let got = listing(env, reference);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "paths of {reference}"
    );
    for (path, node) in &want {
        let e = &got[path];
        match node {
            Node::File { mode, size, blake3 } => {
                assert_eq!(e["type"], "file", "{path}");
                assert_eq!(e["size"], *size, "{path}");
                assert_eq!(e["blake3"], blake3.as_str(), "{path}");
                assert_eq!(e["mode"], format!("{mode:o}"), "{path}");
            }
            Node::Dir { mode } => {
                assert_eq!(e["type"], "dir", "{path}");
                assert_eq!(e["mode"], format!("{mode:o}"), "{path}");
            }
            Node::Symlink { target } => {
                assert_eq!(e["type"], "symlink", "{path}");
                assert_eq!(e["target"], target.as_str(), "{path}");
            }
            Node::Other { .. } => unreachable!(),
        }
    }
}

fn round_trip(env: &Env) {
    // init is idempotent, through --store as well as ASSETFS_STORE.
    let r = env.ok(&["--store", &env.store, "init"]);
    assert!(r.stdout.contains("ready"), "{r}");
    env.ok(&["init"]);
    let j = env.json(&["init"]);
    assert_eq!(j["store"], env.store.as_str());
    assert_eq!(j["format"], 1);
    assert_eq!(j["conditional_writes"], true);

    // Two versions of a feature set to build from.
    let f1 = env.path("f1");
    let f2 = env.path("f2");
    let mut r = rng(11);
    write_file(
        &f1.join("clicks.parquet"),
        &random_bytes(&mut r, 5000),
        0o644,
    );
    write_file(
        &f2.join("clicks.parquet"),
        &random_bytes(&mut r, 6000),
        0o644,
    );
    let r = env.ok(&["push", "features/clicks", s(&f1), "-m", "day 1"]);
    assert_eq!(r.stdout, "features/clicks@1\n", "{r}");
    let j = env.json(&["push", "features/clicks", s(&f2), "--alias", "prod"]);
    assert_eq!(j["ref"], "features/clicks@2");
    assert_eq!(j["version"], 2);
    assert_eq!(j["files"], 1);
    assert_eq!(j["total_bytes"], 6000);

    // Model version 1, with every kind of metadata.
    let m1 = env.path("m1");
    let info1 = make_tree(&m1, 1);
    let meta1 = env.path("meta1.json");
    fs::write(&meta1, meta_file_v1().to_string()).unwrap();
    let r = env.ok(&[
        "push",
        "models/x",
        s(&m1),
        "-m",
        "first model",
        "--meta",
        "lr=0.01",
        "--meta",
        "note=hello world",
        "--meta-file",
        s(&meta1),
        "--input",
        "features/clicks",
        "--input",
        "features/clicks@1",
        "--input",
        "features/clicks@prod",
        "--alias",
        "candidate",
    ]);
    assert_eq!(r.stdout, "models/x@1\n", "{r}");

    // Model version 2: one file removed, one added, one modified, one chmod.
    let m2 = env.path("m2");
    let info2 = make_tree(&m2, 1);
    fs::remove_file(m2.join("secret.key")).unwrap();
    write_file(&m2.join("new.txt"), b"new in v2\n", 0o644);
    write_file(&m2.join("run.sh"), b"#!/bin/sh\necho v2\n", 0o755);
    write_file(
        &m2.join("weights/shard-001"),
        &fs::read(m1.join("weights/shard-001")).unwrap(),
        0o600,
    );
    let mut meta2 = meta_file_v1();
    meta2["metrics"]["acc"] = json!(0.95);
    let meta2_path = env.path("meta2.json");
    fs::write(&meta2_path, meta2.to_string()).unwrap();
    let p2 = env.json(&[
        "push",
        "models/x",
        s(&m2),
        "-m",
        "second model",
        "--meta-file",
        s(&meta2_path),
    ]);
    assert_eq!(p2["ref"], "models/x@2");
    assert_eq!(p2["version"], 2);
    let m2_files = files_of(&snapshot(&m2));
    assert_eq!(p2["files"], m2_files.len() as u64);
    let m2_bytes: u64 = m2_files.values().map(|(n, _)| n).sum();
    assert_eq!(p2["total_bytes"], m2_bytes);
    // v2 shares almost everything with v1: few new bytes.
    assert!(
        p2["new_bytes"].as_u64().unwrap() < 100_000,
        "no deduplication against v1: {p2}"
    );
    assert!(p2["reused_chunks"].as_u64().unwrap() > 0, "{p2}");
    let manifest2 = p2["manifest"].as_str().unwrap().to_string();
    assert_eq!(manifest2.len(), 64);
    assert_eq!(info2.files, info1.files); // make_tree is deterministic

    // ls: all assets, one kind, the versions of an asset, the files of a version.
    let r = env.ok(&["ls"]);
    let lines = words(&r.stdout);
    assert_eq!(lines.len(), 2, "{r}");
    assert_eq!(lines[0][0], "models/x", "{r}");
    assert!(lines[0].contains(&"latest=@2".into()), "{r}");
    assert!(lines[0].contains(&"versions=2".into()), "{r}");
    assert!(lines[0].contains(&"candidate=@1".into()), "{r}");
    assert_eq!(lines[1][0], "features/clicks", "{r}");
    assert!(lines[1].contains(&"prod=@2".into()), "{r}");
    let all = env.json(&["ls"]);
    assert_eq!(
        all,
        json!([
            {"asset": "models/x", "versions": 2, "latest": 2, "aliases": {"candidate": 1}},
            {"asset": "features/clicks", "versions": 2, "latest": 2, "aliases": {"prod": 2}},
        ])
    );
    let r = env.ok(&["ls", "models"]);
    assert_eq!(words(&r.stdout).len(), 1, "{r}");
    assert_eq!(words(&r.stdout)[0][0], "models/x", "{r}");
    assert_eq!(env.json(&["ls", "models"]), json!([all[0]]));
    assert_eq!(env.json(&["ls", "features"]), json!([all[1]]));

    let r = env.ok(&["ls", "models/x"]);
    let lines = words(&r.stdout);
    assert_eq!(lines.len(), 2, "{r}");
    assert_eq!(lines[0][0], "models/x@1", "{r}");
    assert_eq!(lines[1][0], "models/x@2", "{r}");
    assert!(r.stdout.contains("first model"), "{r}");
    let rows = env.json(&["ls", "models/x"]);
    assert_eq!(versions_of(&rows), vec![1, 2]);
    assert_eq!(rows[1]["manifest"], manifest2.as_str());

    let r = env.ok(&["ls", "models/x@1"]);
    let text = r.stdout.clone();
    for needle in [
        "weights/model.bin",
        "weights/deep/er/leaf.json",
        "logs/empty-dir/",
        "model.bin -> weights/model.bin",
        "dangling -> does/not/exist",
        "secret.key",
    ] {
        assert!(
            text.contains(needle),
            "ls models/x@1 lacks {needle:?}:\n{r}"
        );
    }
    assert_listing_matches(env, "models/x@1", &m1);
    assert_listing_matches(env, "models/x@2", &m2);
    assert_listing_matches(env, "models/x@candidate", &m1);
    assert_listing_matches(env, "models/x@latest", &m2);

    // log: newest first, under a header, metrics as columns.
    let r = env.ok(&["log", "models/x"]);
    let lines = words(&r.stdout);
    assert_eq!(lines.len(), 3, "{r}");
    assert_eq!(
        lines[0],
        ["VERSION", "CREATED", "AUTHOR", "ALIASES", "acc", "loss", "MESSAGE"],
        "{r}"
    );
    assert_eq!(lines[1][0], "@2", "{r}");
    assert_eq!(
        lines[1][2..],
        [AUTHOR, "latest", "0.95", "0.25", "second", "model"],
        "{r}"
    );
    assert_eq!(lines[2][0], "@1", "{r}");
    assert_eq!(
        lines[2][2..],
        [AUTHOR, "candidate", "0.9", "0.25", "first", "model"],
        "{r}"
    );
    assert_eq!(versions_of(&env.json(&["log", "models/x"])), vec![2, 1]);

    // show: the sidecar, with every field.
    let sc = env.json(&["show", "models/x@1"]);
    let plain = env.ok(&["show", "models/x@1"]).json();
    assert_eq!(
        sc, plain,
        "show prints the same JSON with or without --json"
    );
    let o = sc.as_object().expect("sidecar is an object");
    for k in [
        "asset",
        "version",
        "created",
        "author",
        "message",
        "parent",
        "manifest",
        "file_count",
        "total_bytes",
        "aliases",
        "lineage",
        "context",
        "metrics",
        "tests",
        "user",
        "x-unknown",
    ] {
        assert!(o.contains_key(k), "sidecar lacks {k}: {sc:#}");
    }
    assert_eq!(sc["asset"], "models/x");
    assert_eq!(sc["version"], 1);
    assert_rfc3339_utc_now(&sc["created"]);
    assert_eq!(sc["author"], AUTHOR);
    assert_eq!(sc["message"], "first model");
    assert_eq!(sc["parent"], Value::Null);
    let manifest1 = sc["manifest"].as_str().expect("manifest hash");
    assert!(
        manifest1.len() == 64 && manifest1.bytes().all(|b| b.is_ascii_hexdigit()),
        "{manifest1}"
    );
    assert_ne!(manifest1, manifest2);
    assert_eq!(sc["file_count"], info1.files);
    assert_eq!(sc["total_bytes"], info1.bytes);
    assert_eq!(sc["aliases"], json!(["candidate"]));
    assert_eq!(
        sc["lineage"]["inputs"],
        json!([
            "features/clicks@2",
            "features/clicks@1",
            "features/clicks@2"
        ]),
        "lineage inputs are resolved to concrete versions"
    );
    assert_eq!(sc["lineage"]["notes"], "trained from scratch");
    let m = meta_file_v1();
    assert_eq!(sc["context"], m["context"]);
    assert_eq!(sc["metrics"], m["metrics"]);
    assert_eq!(sc["tests"], m["tests"]);
    assert_eq!(
        sc["user"],
        json!({"team": "vision", "lr": 0.01, "note": "hello world"})
    );
    assert_eq!(sc["x-unknown"], m["x-unknown"], "unknown fields survive");

    let sc2 = env.json(&["show", "models/x"]);
    assert_eq!(sc2["version"], 2);
    assert_eq!(sc2["parent"], 1);
    assert_eq!(sc2["manifest"], manifest2.as_str());
    assert_eq!(sc2["aliases"], json!(["latest"]));
    assert_eq!(sc2["metrics"]["acc"], 0.95);
    assert_eq!(sc2["lineage"]["inputs"], json!([]));
    assert_eq!(env.json(&["show", "models/x@candidate"])["version"], 1);
    assert_eq!(env.json(&["show", "features/clicks@prod"])["version"], 2);

    // alias: set, then move.
    let r = env.ok(&["alias", "models/x@1", "stable"]);
    assert_eq!(r.stdout, "models/x@stable -> models/x@1\n", "{r}");
    assert_eq!(env.json(&["show", "models/x@stable"])["version"], 1);
    assert_eq!(
        env.json(&["show", "models/x@1"])["aliases"],
        json!(["candidate", "stable"])
    );
    let j = env.json(&["alias", "models/x", "stable"]);
    assert_eq!(j, json!({"alias": "models/x@stable", "ref": "models/x@2"}));
    assert_eq!(env.json(&["show", "models/x@stable"])["version"], 2);
    assert_eq!(
        env.json(&["show", "models/x@2"])["aliases"],
        json!(["latest", "stable"])
    );
    assert_eq!(
        env.json(&["show", "models/x@1"])["aliases"],
        json!(["candidate"])
    );

    // diff: files and metadata.
    let want_files: BTreeSet<(String, String)> = [
        ("added", "new.txt"),
        ("modified", "run.sh"),
        ("removed", "secret.key"),
        ("mode", "weights/shard-001"),
    ]
    .iter()
    .map(|(c, p)| (c.to_string(), p.to_string()))
    .collect();
    let r = env.ok(&["diff", "models/x@1", "models/x@2"]);
    let lines = words(&r.stdout);
    assert_eq!(lines[0], ["---", "models/x@1"], "{r}");
    assert_eq!(lines[1], ["+++", "models/x@2"], "{r}");
    let got_files: BTreeSet<(String, String)> = lines[2..]
        .iter()
        .filter(|l| l[0] != "meta")
        .map(|l| (l[0].clone(), l[1].clone()))
        .collect();
    assert_eq!(got_files, want_files, "{r}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("meta") && l.contains("metrics.acc: 0.9 -> 0.95")),
        "{r}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("meta") && l.contains("message")),
        "{r}"
    );
    let d = env.json(&["diff", "models/x@candidate", "models/x@stable"]);
    assert_eq!(d["from"], "models/x@1");
    assert_eq!(d["to"], "models/x@2");
    let got_files: BTreeSet<(String, String)> = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["change"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got_files, want_files, "{d:#}");
    let meta: BTreeMap<&str, &Value> = d["meta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["field"].as_str().unwrap(), m))
        .collect();
    let acc = meta.get("metrics.acc").expect("metrics.acc in diff");
    assert_eq!(acc["old"], 0.9);
    assert_eq!(acc["new"], 0.95);
    assert!(
        (acc["delta"].as_f64().unwrap() - 0.05).abs() < 1e-9,
        "{acc}"
    );
    assert_eq!(meta["message"]["old"], "first model");
    assert_eq!(meta["message"]["new"], "second model");
    assert!(
        !meta.contains_key("metrics.loss"),
        "unchanged metric in diff"
    );
    let r = env.ok(&["diff", "models/x@1", "models/x@candidate"]);
    assert!(r.stdout.contains("(no differences)"), "{r}");
    assert_eq!(
        env.json(&["diff", "models/x@1", "models/x@candidate"])["files"],
        json!([])
    );

    // verify: every version, one asset, one version.
    let r = env.ok(&["verify"]);
    let lines = words(&r.stdout);
    assert_eq!(lines.len(), 4, "{r}");
    assert!(lines.iter().all(|l| l[0] == "ok"), "{r}");
    let reps = env.json(&["verify"]);
    assert_eq!(reps.as_array().unwrap().len(), 4);
    for rep in reps.as_array().unwrap() {
        assert_eq!(rep["problems"], json!([]), "{rep}");
        assert!(rep["chunks"].as_u64().unwrap() > 0, "{rep}");
    }
    let r = env.ok(&["verify", "models/x"]);
    assert_eq!(words(&r.stdout).len(), 2, "{r}");
    let r = env.ok(&["verify", "models/x@1"]);
    assert_eq!(words(&r.stdout).len(), 1, "{r}");
    assert_eq!(words(&r.stdout)[0][1], "models/x@1", "{r}");

    get_checks(env, &m1, &m2);
}

/// `get` materialises a version exactly, and a re-run fetches only what is
/// missing or wrong.
fn get_checks(env: &Env, m1: &std::path::Path, m2: &std::path::Path) {
    let want = snapshot(m1);
    let out = env.path("get1");
    let r = env.ok(&["get", "models/x@1", s(&out)]);
    assert_eq!(r.stdout, "models/x@1\n", "{r}");
    assert_same_tree(&want, &snapshot(&out), "get models/x@1");

    // Everything already there: nothing fetched, nothing written.
    let files = files_of(&want).len() as u64;
    let j = env.json(&["get", "models/x@1", s(&out)]);
    assert_eq!(j["ref"], "models/x@1");
    assert_eq!(j["bytes_fetched"], 0, "{j}");
    assert_eq!(j["files_written"], 0, "{j}");
    assert_eq!(j["files_skipped"], files, "{j}");

    // One file deleted: only it is fetched.
    let victim = out.join("secret.key");
    let size = fs::metadata(&victim).unwrap().len();
    fs::remove_file(&victim).unwrap();
    let j = env.json(&["get", "models/x@1", s(&out)]);
    assert_eq!(j["bytes_fetched"], size, "{j}");
    assert_eq!(j["files_written"], 1, "{j}");
    assert_eq!(j["files_skipped"], files - 1, "{j}");
    assert_same_tree(&want, &snapshot(&out), "get after deleting a file");

    // One file damaged in place (same size): fetched again.
    let shard = out.join("weights/shard-002");
    let mut data = fs::read(&shard).unwrap();
    data[0] ^= 0xff;
    fs::write(&shard, &data).unwrap();
    let j = env.json(&["get", "models/x@1", s(&out)]);
    assert_eq!(j["files_written"], 1, "{j}");
    assert_eq!(j["bytes_fetched"], data.len() as u64, "{j}");
    assert_same_tree(&want, &snapshot(&out), "get after damaging a file");

    // A relative target (against the working directory), through an alias.
    let r = env.ok(&["get", "models/x@stable", "rel/out"]);
    assert_eq!(r.stdout, "models/x@2\n", "{r}");
    assert_same_tree(
        &snapshot(m2),
        &snapshot(&env.work().join("rel/out")),
        "get models/x@stable into a relative dir",
    );
}

#[test]
fn round_trip_file() {
    round_trip(&Env::new());
}

#[test]
fn round_trip_s3() {
    round_trip(&Env::with_store(&cloud_store("ASSETFS_TEST_S3_URL")));
}

#[test]
fn round_trip_azure() {
    round_trip(&Env::with_store(&cloud_store("ASSETFS_TEST_AZ_URL")));
}

#[test]
fn round_trip_gcs() {
    round_trip(&Env::with_store(&cloud_store("ASSETFS_TEST_GCS_URL")));
}

// ---------------------------------------------------------------------------
// Where things live: --store, ASSETFS_STORE, the XDG default, the cache.
// ---------------------------------------------------------------------------

#[test]
fn store_and_cache_locations() {
    let env = Env::uninit();
    let src = env.path("src");
    write_file(&src.join("a.bin"), b"some bytes", 0o644);

    // No --store and no ASSETFS_STORE: $XDG_DATA_HOME/assetfs/store, which
    // `init` creates; before that, push refuses and names the fix.
    let default_store = env.path("xdg-data/assetfs/store");
    let args = ["push", "models/d", s(&src)];
    let mut c = env.cmd(&args);
    c.env_remove("ASSETFS_STORE");
    let r = Run::from_output(&args, c.output().unwrap());
    let line = r.one_error_line(&["no store at", "assetfs init"]);
    assert!(line.contains(s(&default_store)), "{line}");
    assert!(!default_store.exists());
    let mut c = env.cmd(&["init"]);
    c.env_remove("ASSETFS_STORE");
    let r = Run::from_output(&["init"], c.output().unwrap());
    assert!(r.success(), "{r}");
    let mut c = env.cmd(&args);
    c.env_remove("ASSETFS_STORE");
    let r = Run::from_output(&args, c.output().unwrap());
    assert!(r.success(), "{r}");
    assert!(default_store.join("assetfs.json").is_file());
    assert!(!env.store_dir().exists(), "ASSETFS_STORE unset, yet used");
    // The cache went to ASSETFS_CACHE_DIR.
    assert!(env.cache_dir().join("indexes").is_dir());

    // --store beats ASSETFS_STORE; --cache-dir beats ASSETFS_CACHE_DIR.
    let other = env.path("other-store");
    let other_url = format!("file://{}", s(&other));
    let flag_cache = env.path("flag-cache");
    env.ok(&["--store", &other_url, "init"]);
    env.ok(&[
        "--store",
        &other_url,
        "--cache-dir",
        s(&flag_cache),
        "push",
        "models/d",
        s(&src),
    ]);
    assert!(other.join("assetfs.json").is_file());
    assert!(!env.store_dir().exists(), "--store ignored");
    assert!(flag_cache.join("indexes").is_dir(), "--cache-dir ignored");

    // ASSETFS_STORE is used when set.
    env.ok(&["init"]);
    env.ok(&["push", "models/d", s(&src)]);
    assert!(env.store_dir().join("assetfs.json").is_file());
    assert_eq!(env.json(&["ls", "models/d"]).as_array().unwrap().len(), 1);

    // Nothing touched the home directory or XDG_CACHE_HOME.
    assert!(snapshot(&env.path("home")).is_empty());
    assert!(snapshot(&env.path("xdg-cache")).is_empty());
}

// ---------------------------------------------------------------------------
// Bad input: one clear line on stderr, non-zero exit, nothing created.
// ---------------------------------------------------------------------------

/// An initialised store holding models/x@1 (and features/clicks@1), plus a
/// second directory of new content for pushes that must fail.
fn env_with_one_version() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    env.ok(&["init"]);
    let src = env.path("src");
    write_file(&src.join("a.bin"), b"version one", 0o644);
    env.ok(&["push", "models/x", s(&src), "--alias", "prod"]);
    env.ok(&["push", "features/clicks", s(&src)]);
    // New content, so that a push which wrongly got as far as uploading
    // would leave packs behind.
    let new = env.path("new");
    let mut r = rng(5);
    write_file(
        &new.join("weights.bin"),
        &random_bytes(&mut r, 200_000),
        0o644,
    );
    make_dir(&new.join("sub"), 0o755);
    write_file(&new.join("sub/b.txt"), b"more", 0o644);
    (env, new)
}

/// The state a failed command must not change: every object of the store
/// and the working directory.
fn state(env: &Env) -> (BTreeMap<String, Node>, BTreeMap<String, Node>, Value) {
    let mut store = snapshot(&env.store_dir());
    // The conditional-write self-check creates and deletes probe objects;
    // an empty leftover directory is not state.
    store.retain(|k, _| k != "probe");
    (store, snapshot(&env.work()), env.json(&["ls"]))
}

fn assert_state_unchanged(
    env: &Env,
    before: &(BTreeMap<String, Node>, BTreeMap<String, Node>, Value),
    what: &str,
) {
    let after = state(env);
    assert_same_tree(&before.0, &after.0, &format!("store after {what}"));
    assert_same_tree(&before.1, &after.1, &format!("working dir after {what}"));
    assert_eq!(before.2, after.2, "catalog after {what}");
}

#[test]
fn malformed_references_are_refused() {
    let (env, new) = env_with_one_version();
    let before = state(&env);
    let cases: &[(&str, &[&str])] = &[
        ("resnet", &["invalid reference", "<kind>/<name>"]),
        ("model/x", &["invalid asset kind", "models", "features"]),
        (
            "models/.x",
            &["invalid asset name", "not starting with `.`"],
        ),
        ("models/-x", &["invalid asset name", "not starting with"]),
        ("models/x y", &["invalid asset name", "[A-Za-z0-9._-]"]),
        ("models/", &["invalid asset name"]),
        ("models/x@0", &["invalid version", "positive integer"]),
        ("models/x@07", &["invalid version", "positive integer"]),
        (
            "models/x@Prod",
            &["invalid alias", "starting with a letter"],
        ),
        ("models/x@", &["invalid"]),
    ];
    for (bad, words) in cases {
        let out = env.path("out");
        env.fail(&["show", bad], words);
        env.fail(&["log", bad], words);
        if bad.contains('/') {
            // Without a `/`, ls takes its argument as a kind (tested below).
            env.fail(&["ls", bad], words);
        }
        env.fail(&["verify", bad], words);
        env.fail(&["diff", bad, "models/x@1"], words);
        env.fail(&["diff", "models/x@1", bad], words);
        env.fail(&["alias", bad, "prod"], words);
        env.fail(&["get", bad, s(&out)], words);
        assert!(!out.exists(), "get {bad} created its target");
        env.fail(&["push", bad, s(&new)], words);
        env.fail(&["push", "models/y", s(&new), "--input", bad], words);
        assert_state_unchanged(&env, &before, &format!("commands on {bad:?}"));
    }
    env.fail(
        &["ls", "model"],
        &["invalid asset kind", "models", "features"],
    );
    env.fail(&["ls", "resnet"], &["invalid asset kind"]);
    env.fail(&["ls", "models/x/y"], &["invalid"]);
    assert_state_unchanged(&env, &before, "ls of bad paths");
}

#[test]
fn bad_aliases_are_refused() {
    let (env, new) = env_with_one_version();
    let before = state(&env);
    let cases: &[(&str, &[&str])] = &[
        ("Prod", &["invalid alias", "starting with a letter"]),
        ("1abc", &["invalid alias", "starting with a letter"]),
        ("123", &["invalid alias"]),
        ("a.b", &["invalid alias", "[a-z0-9_-]"]),
        ("_x", &["invalid alias"]),
        ("latest", &["reserved", "latest"]),
        ("staging", &["reserved", "staging"]),
    ];
    let long = "a".repeat(65);
    let cases: Vec<(&str, &[&str])> = cases
        .iter()
        .copied()
        .chain([(long.as_str(), &["invalid alias", "1-64"] as &[&str])])
        .collect();
    for (bad, words) in cases {
        env.fail(&["alias", "models/x@1", bad], words);
        env.fail(&["push", "models/x", s(&new), "--alias", bad], words);
        env.fail(
            &["push", "models/x", s(&new), "--alias", "ok", "--alias", bad],
            words,
        );
        assert_state_unchanged(&env, &before, &format!("alias {bad:?}"));
    }
    assert_eq!(
        env.json(&["show", "models/x"])["aliases"],
        json!(["latest", "prod"])
    );
}

#[test]
fn bad_store_urls_are_refused() {
    let env = Env::uninit();
    let cases: &[(&str, &[&str])] = &[
        ("ftp://x", &["invalid store url", "unknown scheme `ftp`"]),
        ("file://relative", &["invalid store url", "absolute path"]),
        (
            "file://relative/dir",
            &["invalid store url", "absolute path"],
        ),
        ("s3://", &["invalid store url", "bucket"]),
        ("az://", &["invalid store url", "container"]),
        ("gs://", &["invalid store url", "bucket"]),
    ];
    let src = env.path("src");
    write_file(&src.join("a"), b"a", 0o644);
    for (url, words) in cases {
        for cmd in [
            &["init"][..],
            &["ls"],
            &["push", "models/x", s(&src)],
            &["show", "models/x"],
        ] {
            // As a flag...
            let mut args = vec!["--store", url];
            args.extend_from_slice(cmd);
            env.fail(&args, words);
            // ...and from the environment.
            let mut c = env.cmd(cmd);
            c.env("ASSETFS_STORE", url);
            Run::from_output(cmd, c.output().unwrap()).one_error_line(words);
        }
    }
    assert!(
        snapshot(&env.work()).is_empty(),
        "something was created in the cwd"
    );
    assert!(!env.store_dir().exists());
    assert!(snapshot(&env.path("xdg-data")).is_empty());
}

#[test]
fn bad_push_input_is_refused_without_a_trace() {
    let (env, new) = env_with_one_version();
    let before = state(&env);
    let w = |name: &str, text: &str| {
        let p = env.path(name);
        fs::write(&p, text).unwrap();
        p
    };
    let not_json = w("not.json", "{this is not json");
    let array = w("array.json", "[1, 2]");
    let reserved = w("reserved.json", r#"{"version": 3, "metrics": {"acc": 1}}"#);
    let reserved_asset = w("reserved2.json", r#"{"asset": "models/other"}"#);
    let bad_metrics = w("metrics.json", r#"{"metrics": {"acc": "high"}}"#);
    let bad_user = w("user.json", r#"{"user": [1]}"#);
    let bad_lineage = w("lineage.json", r#"{"lineage": "from the web"}"#);
    let missing_meta = env.path("missing.json");
    let file = w("plain-file", "I am a file");
    let missing_dir = env.path("no-such-dir");
    let with_fifo = env.path("with-fifo");
    make_tree(&with_fifo, 3);
    mkfifo(&with_fifo.join("weights/pipe")).expect("mkfifo");

    let nw = s(&new);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["push", "models/x", s(&missing_dir)],
            vec!["no-such-dir", "no such file"],
        ),
        (
            vec!["push", "models/x", s(&file)],
            vec!["plain-file", "not a directory"],
        ),
        (
            vec!["push", "models/x", s(&with_fifo)],
            vec![
                "weights/pipe",
                "only regular files, directories and symlinks",
            ],
        ),
        (
            vec!["push", "models/x@3", nw],
            vec!["names a version", "models/x"],
        ),
        (vec!["push", "models/x@prod", nw], vec!["names a version"]),
        (
            vec!["push", "models/x", nw, "--meta", "novalue"],
            vec!["novalue", "KEY=VALUE"],
        ),
        (
            vec!["push", "models/x", nw, "--meta", "=v"],
            vec!["KEY=VALUE"],
        ),
        (
            vec!["push", "models/x", nw, "--meta-file", s(&not_json)],
            vec!["metadata file", "not.json"],
        ),
        (
            vec!["push", "models/x", nw, "--meta-file", s(&array)],
            vec!["metadata file", "JSON object"],
        ),
        (
            vec!["push", "models/x", nw, "--meta-file", s(&missing_meta)],
            vec!["metadata file", "missing.json"],
        ),
        (
            vec!["push", "models/x", nw, "--meta-file", s(&reserved)],
            vec!["`version`", "cannot be set"],
        ),
        (
            vec!["push", "models/x", nw, "--meta-file", s(&reserved_asset)],
            vec!["`asset`", "cannot be set"],
        ),
        (
            vec!["push", "models/x", nw, "--meta-file", s(&bad_metrics)],
            vec!["metrics", "numbers"],
        ),
        (
            vec!["push", "models/x", nw, "--meta-file", s(&bad_user)],
            vec!["user", "object"],
        ),
        (
            vec!["push", "models/x", nw, "--meta-file", s(&bad_lineage)],
            vec!["lineage", "object"],
        ),
        (
            vec!["push", "models/x", nw, "--input", "features/nope"],
            vec!["features/nope", "no versions"],
        ),
        (
            vec!["push", "models/x", nw, "--input", "features/clicks@9"],
            vec!["features/clicks@9", "latest is 1"],
        ),
        (
            vec!["push", "models/x", nw, "--input", "features/clicks@gone"],
            vec!["no alias", "gone"],
        ),
    ];
    for (args, words) in &cases {
        env.fail(args, words);
        assert_state_unchanged(&env, &before, &args.join(" "));
    }
    // The same push without the problem works, so the failures above were
    // about the problem only.
    let r = env.ok(&["push", "models/x", nw, "--meta", "k=v"]);
    assert_eq!(r.stdout, "models/x@2\n", "{r}");
}

#[test]
fn unknown_versions_and_aliases() {
    let (env, _new) = env_with_one_version();
    let before = state(&env);
    let out = env.path("out");
    let latest: &[&str] = &["models/x@9", "does not exist", "latest is 1"];
    env.fail(&["show", "models/x@9"], latest);
    env.fail(&["get", "models/x@9", s(&out)], latest);
    env.fail(&["ls", "models/x@9"], latest);
    env.fail(&["verify", "models/x@9"], latest);
    env.fail(&["diff", "models/x@1", "models/x@9"], latest);
    env.fail(&["alias", "models/x@9", "prod"], latest);
    let alias: &[&str] = &["models/x", "no alias", "nope"];
    env.fail(&["show", "models/x@nope"], alias);
    env.fail(&["get", "models/x@nope", s(&out)], alias);
    env.fail(&["diff", "models/x@nope", "models/x"], alias);
    let none: &[&str] = &["models/nothing", "no versions"];
    env.fail(&["show", "models/nothing"], none);
    env.fail(
        &["show", "models/nothing@1"],
        &["models/nothing@1", "does not exist"],
    );
    env.fail(&["log", "models/nothing"], none);
    env.fail(&["ls", "models/nothing"], none);
    env.fail(&["get", "models/nothing", s(&out)], none);
    env.fail(&["log", "models/x@1"], &["asset only", "models/x"]);
    env.fail(&["show", "models/x@staging"], &["staging"]);
    assert!(!out.exists(), "a failed get created its target");
    // get into a path that is a file.
    let file = env.work().join("a-file");
    fs::write(&file, "keep me").unwrap();
    env.fail(
        &["get", "models/x", s(&file)],
        &["a-file", "not a directory"],
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
    fs::remove_file(&file).unwrap();
    assert_state_unchanged(&env, &before, "lookups of unknown versions");
}

// ---------------------------------------------------------------------------
// A corrupt store.
// ---------------------------------------------------------------------------

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn corrupt_chunk_is_named_and_get_writes_nothing() {
    let env = Env::new();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src, 7);
    // A small file is one chunk, named by the file's own hash.
    let victim = random_bytes(&mut rng(77), 3000);
    write_file(&src.join("weights/deep/victim.bin"), &victim, 0o644);
    let victim_hash = blake3::hash(&victim).to_hex().to_string();
    env.ok(&["push", "models/x", s(&src)]);
    // An unrelated asset, in its own pack, stays intact.
    let other = env.path("other");
    write_file(
        &other.join("a.bin"),
        &random_bytes(&mut rng(78), 5000),
        0o644,
    );
    env.ok(&["push", "models/ok", s(&other)]);
    env.ok(&["verify"]);

    // Flip one byte of the victim inside its pack.
    let mut hit = 0;
    for e in fs::read_dir(env.store_dir().join("packs")).unwrap() {
        let p = e.unwrap().path();
        let mut data = fs::read(&p).unwrap();
        if let Some(at) = find(&data, &victim) {
            data[at + 1500] ^= 0x01;
            fs::write(&p, &data).unwrap();
            hit += 1;
        }
    }
    assert_eq!(hit, 1, "the victim's bytes should be in exactly one pack");

    // Metadata does not depend on chunks.
    assert_eq!(env.json(&["show", "models/x"])["version"], 1);

    // verify: non-zero, names the chunk, still reports the intact version.
    let r = env.run(&["verify"]);
    r.one_error_line(&["failed verification"]);
    let bad: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("BAD")).collect();
    assert_eq!(bad.len(), 1, "{r}");
    assert!(bad[0].contains("models/x@1"), "{r}");
    assert!(
        bad[0].contains(&victim_hash) && bad[0].contains("corrupt"),
        "{r}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("models/ok@1")),
        "{r}"
    );
    let r = env.run(&["--json", "verify", "models/x"]);
    r.one_error_line(&["failed verification"]);
    let reps = r.json();
    let problems = reps[0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{reps:#}");
    assert!(problems[0].as_str().unwrap().contains(&victim_hash));
    env.ok(&["verify", "models/ok"]);

    // get into a fresh directory: fails naming the chunk, writes nothing.
    let out = env.path("out");
    env.fail(&["get", "models/x", s(&out)], &["corrupt", &victim_hash]);
    assert!(
        snapshot(&out).is_empty(),
        "a failed get left {:?} in its target",
        snapshot(&out).keys().collect::<Vec<_>>()
    );
    // ...and into a directory with something in it: that stays as it was.
    let out2 = env.path("out2");
    write_file(&out2.join("keep.txt"), b"mine", 0o644);
    let before = snapshot(&out2);
    env.fail(
        &["--json", "get", "models/x", s(&out2)],
        &["corrupt", &victim_hash],
    );
    assert_same_tree(&before, &snapshot(&out2), "target of a failed get");

    // The intact asset still comes out whole.
    let out3 = env.path("out3");
    env.ok(&["get", "models/ok", s(&out3)]);
    assert_same_tree(&snapshot(&other), &snapshot(&out3), "get models/ok");
}

#[test]
fn corrupt_manifest_is_named() {
    let env = Env::new();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src, 9);
    let j = env.json(&["push", "models/x", s(&src), "-m", "fine"]);
    let hash = j["manifest"].as_str().unwrap().to_string();
    let manifest = env.store_dir().join("manifests").join(&hash);
    assert!(manifest.is_file(), "manifest not at manifests/<hash>");
    fs::write(&manifest, b"garbage, not a manifest").unwrap();

    // show reads the version record, not the manifest.
    let sc = env.json(&["show", "models/x"]);
    assert_eq!(sc["manifest"], hash.as_str());
    assert_eq!(sc["message"], "fine");
    env.ok(&["log", "models/x"]);

    let out = env.path("out");
    env.fail(
        &["get", "models/x", s(&out)],
        &["manifest", &hash, "corrupt"],
    );
    assert!(!out.exists(), "a failed get created its target");
    env.fail(&["ls", "models/x@1"], &["manifest", &hash]);
    env.fail(&["diff", "models/x@1", "models/x@1"], &["manifest", &hash]);
    let r = env.run(&["verify", "models/x"]);
    r.one_error_line(&["failed verification"]);
    assert!(
        r.stdout.contains("manifest") && r.stdout.contains(&hash),
        "verify does not name the manifest:\n{r}"
    );

    // A manifest that is gone altogether.
    fs::remove_file(&manifest).unwrap();
    env.fail(&["get", "models/x", s(&out)], &["manifest", &hash]);
    assert!(!out.exists());
    let r = env.run(&["verify"]);
    r.one_error_line(&["failed verification"]);
    assert!(r.stdout.contains(&hash), "{r}");

    // A garbled version record.
    let rec = env
        .store_dir()
        .join("refs/models/x/v")
        .join(format!("{:020}", 1));
    assert!(rec.is_file(), "version record not at refs/models/x/v/<n>");
    fs::write(&rec, b"{ not json").unwrap();
    env.fail(&["show", "models/x"], &["version record", "corrupt"]);
    env.fail(
        &["get", "models/x", s(&out)],
        &["version record", "corrupt"],
    );
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------
// Progress output.
// ---------------------------------------------------------------------------

/// What an indicatif bar leaves in its output stream.
fn looks_like_progress(stderr: &str) -> bool {
    stderr.contains('\r')
        || stderr.contains("\x1b[")
        || stderr.contains("ETA")
        || stderr.contains("=>")
        || stderr.contains("B/s")
}

#[test]
fn progress_bars_stay_out_of_pipes() {
    let env = Env::new();
    // 30 MB: 12 MB of distinct data and 18 MB in 9,000 hard links to one
    // small file. So many files make the push run well past the bar's
    // one-second delay (a single 30 MB file is hashed so fast that the bar
    // would never be due, and the test could not fail), and hard links cost
    // next to nothing to create.
    let src = env.path("big");
    let mut r = rng(30);
    for i in 0..8 {
        write_file(
            &src.join(format!("blob-{i}")),
            &random_bytes(&mut r, 1_500_000),
            0o644,
        );
    }
    let base = env.path("base");
    write_file(&base, &random_bytes(&mut r, 2_000), 0o644);
    for d in 0..30 {
        let dir = src.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for i in 0..300 {
            fs::hard_link(&base, dir.join(format!("f{i:03}"))).unwrap();
        }
    }
    let r = env.ok(&["push", "models/big", s(&src)]);
    assert_eq!(r.stdout, "models/big@1\n", "{r}");
    assert!(
        !looks_like_progress(&r.stderr),
        "progress output in a pipe:\n{r}"
    );
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "one summary line expected:\n{r}"
    );
    assert_eq!(env.json(&["show", "models/big"])["total_bytes"], 30_000_000);

    // Control: on a terminal (script(1) gives the command a pty) the same
    // push does draw a bar, so the checks above look for the right thing.
    let cmdline = format!("{BIN} push models/big-tty {}", s(&src));
    let started = std::time::Instant::now();
    let tty = match env
        .command("script", &["-qec", &cmdline, "/dev/null"])
        .output()
    {
        Ok(o) => Run::from_output(&["(under script)", &cmdline], o),
        Err(e) => {
            eprintln!("script(1) unavailable ({e}); skipping the terminal control");
            return;
        }
    };
    let took = started.elapsed();
    assert!(tty.success(), "{tty}");
    if took > std::time::Duration::from_millis(2500) {
        assert!(
            looks_like_progress(&tty.stdout) && tty.stdout.contains("ETA"),
            "a {took:?} push on a terminal drew no progress bar:\n{tty}"
        );
    } else if !tty.stdout.contains("ETA") {
        eprintln!("terminal push took only {took:?}: its bar was not due, control inconclusive");
    }
}

// ---------------------------------------------------------------------------
// Concurrent commits from many processes.
// ---------------------------------------------------------------------------

const WRITERS: usize = 8;
const ROUNDS: usize = 3;

fn concurrent_push(store: &str) {
    let env = Env::with_store(store);
    env.ok(&["init"]);
    let common_bytes = random_bytes(&mut rng(1000), 100_000);
    // label -> files it pushed; label -> the version its push reported.
    let mut expected: BTreeMap<String, BTreeMap<String, (u64, String)>> = BTreeMap::new();
    let mut reported: BTreeMap<u64, String> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut children = vec![];
        for w in 0..WRITERS {
            let label = format!("r{round}-w{w}");
            let dir = env.path(&format!("dirs/{label}"));
            let mut r = rng((round * WRITERS + w) as u64);
            let n = 1000 + (round * WRITERS + w) * 500;
            write_file(&dir.join("id.txt"), label.as_bytes(), 0o644);
            write_file(&dir.join("data.bin"), &random_bytes(&mut r, n), 0o644);
            write_file(&dir.join("common.bin"), &common_bytes, 0o644);
            expected.insert(label.clone(), files_of(&snapshot(&dir)));
            let args = ["--json", "push", "models/x", s(&dir), "-m", &label];
            let child = env
                .cmd(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn push");
            let args = args.map(str::to_string);
            children.push((label, args, child));
        }
        for (label, args, child) in children {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let r = Run::from_output(&args, child.wait_with_output().unwrap());
            assert!(r.success(), "concurrent push failed:\n{r}");
            let v = r.json()["version"].as_u64().expect("version");
            if let Some(prev) = reported.insert(v, label.clone()) {
                panic!("pushes {prev} and {label} were both told version {v}");
            }
        }
    }
    let n = (WRITERS * ROUNDS) as u64;
    assert_eq!(
        reported.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );

    // The catalog agrees: exactly 1..=24, each with the message of the push
    // that was told that number, each the child of the one before.
    let rows = env.json(&["ls", "models/x"]);
    assert_eq!(versions_of(&rows), (1..=n).collect::<Vec<_>>());
    let log = env.json(&["log", "models/x"]);
    assert_eq!(versions_of(&log), (1..=n).rev().collect::<Vec<_>>());
    for row in log.as_array().unwrap() {
        let v = row["version"].as_u64().unwrap();
        assert_eq!(row["message"], reported[&v].as_str(), "message of @{v}");
        let parent = if v > 1 { json!(v - 1) } else { Value::Null };
        assert_eq!(row["parent"], parent, "parent of @{v}");
    }

    // Each version holds exactly the files of the push that claimed it.
    let mut matched = BTreeSet::new();
    for v in 1..=n {
        let files: BTreeMap<String, (u64, String)> = listing(&env, &format!("models/x@{v}"))
            .into_iter()
            .map(|(p, e)| {
                assert_eq!(e["type"], "file");
                (
                    p,
                    (
                        e["size"].as_u64().unwrap(),
                        e["blake3"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        let owners: Vec<&String> = expected
            .iter()
            .filter(|(_, want)| **want == files)
            .map(|(l, _)| l)
            .collect();
        assert_eq!(owners, vec![&reported[&v]], "content of models/x@{v}");
        matched.insert(owners[0].clone());
    }
    assert_eq!(matched.len(), expected.len(), "a push lost its version");

    // And every chunk is there and intact.
    let r = env.ok(&["verify", "models/x"]);
    assert_eq!(words(&r.stdout).len(), n as usize, "{r}");
    assert!(words(&r.stdout).iter().all(|l| l[0] == "ok"), "{r}");
}

#[test]
fn concurrent_push_file() {
    let env = Env::new();
    concurrent_push(&env.store);
}

#[test]
fn concurrent_push_s3() {
    concurrent_push(&cloud_store("ASSETFS_TEST_S3_URL"));
}

#[test]
fn concurrent_push_azure() {
    concurrent_push(&cloud_store("ASSETFS_TEST_AZ_URL"));
}

#[test]
fn concurrent_push_gcs() {
    concurrent_push(&cloud_store("ASSETFS_TEST_GCS_URL"));
}

/// The GCS emulator's simple upload ignores `ifGenerationMatch` (a real
/// fake-gcs-server 1.54 behaviour; scripts/test-servers.sh exposes it through
/// a second front). assetfs must refuse that store, with one clear line, and
/// write no data.
#[test]
fn gcs_ignoring_create_if_absent_is_refused() {
    let sa = std::env::var("ASSETFS_TEST_GCS_IGNORING_SA")
        .unwrap_or_else(|_| panic!("ASSETFS_TEST_GCS_IGNORING_SA is not set: run scripts/test.sh"));
    let url = cloud_store("ASSETFS_TEST_GCS_URL");
    let env = Env::with_store(&url);
    let src = env.path("src");
    make_tree(&src, 7);
    for args in [vec!["init"], vec!["push", "models/x", s(&src)]] {
        let r = Run::from_output(
            &args,
            env.cmd(&args)
                .env("GOOGLE_SERVICE_ACCOUNT", &sa)
                .output()
                .expect("spawn assetfs"),
        );
        r.one_error_line(&["does not honour create-if-absent", "refusing", "gs://"]);
    }
    // Through the honest front: the store is empty (no pack, no version).
    let honest = Env::with_store(&url);
    let r = honest.run(&["ls", "models/x"]);
    assert!(!r.success(), "no version may exist:\n{r}");
    assert_eq!(honest.json(&["ls"]), json!([]));
}
