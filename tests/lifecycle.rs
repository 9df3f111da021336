//! Store lifecycle through the real binary: `rm`, `alias --delete`,
//! `log --all`, what `get`/`show`/`lineage` say about deleted versions, and
//! the refusals that must leave the store untouched. On `file://`, S3 (moto),
//! Azure (Azurite) and GCS (fake-gcs-server).

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

use common::*;

/// Every object key of the store with its size (probe objects of the
/// conditional-write self-check excluded: they are created and deleted).
fn store_keys(url: &str) -> BTreeMap<String, u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = assetfs::store::Store::open(url).unwrap();
    rt.block_on(store.list(""))
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("probe/"))
        .collect()
}

/// Runs a command that must fail with one line naming `words`, and checks
/// that it changed nothing in the store.
fn refused(env: &Env, args: &[&str], words: &[&str]) -> String {
    let before = store_keys(&env.store);
    let line = env.fail(args, words);
    assert_eq!(
        before,
        store_keys(&env.store),
        "`assetfs {}` changed the store",
        args.join(" ")
    );
    line
}

fn versions(rows: &Value) -> Vec<u64> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect()
}

fn push(env: &Env, asset: &str, content: &[u8], extra: &[&str]) -> String {
    let dir = env.path(&format!("src-{}", unique_id()));
    write_file(&dir.join("data.bin"), content, 0o644);
    let mut args = vec!["push", asset, s(&dir)];
    args.extend_from_slice(extra);
    env.json(&args)["ref"].as_str().unwrap().to_string()
}

fn rm_and_aliases(env: &Env) {
    env.ok(&["init"]);
    assert_eq!(push(env, "features/f", b"raw", &[]), "features/f@1");
    assert_eq!(
        push(env, "models/m", b"one", &["--input", "features/f@1"]),
        "models/m@1"
    );
    assert_eq!(push(env, "models/m", b"two", &[]), "models/m@2");
    assert_eq!(
        push(env, "models/m", b"three", &["--alias", "production"]),
        "models/m@3"
    );

    // Not on a terminal and no --yes: nothing happens.
    refused(env, &["rm", "models/m@2"], &["not confirmed", "--yes"]);
    // Bad references: unknown version, no version, an alias.
    refused(
        env,
        &["rm", "models/m@9", "--yes"],
        &["models/m@9", "does not exist", "latest is 3"],
    );
    refused(env, &["rm", "models/m", "--yes"], &["by number"]);
    refused(
        env,
        &["rm", "models/m@production", "--yes"],
        &["by number", "alias --delete"],
    );
    refused(
        env,
        &["rm", "models/nope@1", "--yes"],
        &["models/nope@1", "does not exist"],
    );

    // Delete @2, with a reason.
    let out = env.ok(&["rm", "models/m@2", "--yes", "-m", "trained on leaked data"]);
    assert_eq!(out.stdout.trim(), "deleted models/m@2");
    assert_eq!(versions(&env.json(&["log", "models/m"])), [3, 1]);
    let all = env.json(&["log", "models/m", "--all"]);
    assert_eq!(versions(&all), [3, 2, 1]);
    let d = &all[1]["deleted"];
    assert_eq!(d["by"], AUTHOR);
    assert_eq!(d["message"], "trained on leaked data");
    assert!(d["at"].as_str().unwrap().ends_with('Z'));
    let text = env.ok(&["log", "models/m", "--all"]).stdout;
    assert!(
        text.contains("@2 deleted") && text.contains("[deleted by tester at"),
        "{text}"
    );
    assert!(text.contains("trained on leaked data"), "{text}");
    // The version keeps its metadata, but get/show/lineage say it is gone.
    for args in [
        vec!["show", "models/m@2"],
        vec!["lineage", "models/m@2"],
        vec!["get", "models/m@2", "out"],
        vec!["alias", "models/m@2", "old"],
    ] {
        refused(
            env,
            &args,
            &[
                "models/m@2",
                "was deleted by tester at",
                "trained on leaked data",
            ],
        );
    }
    assert!(!env.work().join("out").exists());
    // A second rm names the first.
    refused(
        env,
        &["rm", "models/m@2", "--yes"],
        &["models/m@2 was deleted by tester"],
    );
    let listing = env.json(&["ls", "models/m"]);
    assert_eq!(versions(&listing), [1, 3]);

    // Something refers to it: refused, naming what, unless --force.
    let line = refused(
        env,
        &["rm", "features/f@1", "--yes"],
        &["refusing", "lineage input of models/m@1", "--force"],
    );
    assert!(line.contains("features/f@1"), "{line}");
    refused(
        env,
        &["rm", "models/m@3", "--yes"],
        &["refusing", "models/m@production", "--force"],
    );
    // Remove the alias; then the version can go.
    refused(
        env,
        &["alias", "--delete", "models/m", "nope"],
        &["no alias `nope`"],
    );
    let out = env.ok(&["alias", "--delete", "models/m", "production"]);
    assert_eq!(
        out.stdout.trim(),
        "removed models/m@production (was models/m@3)"
    );
    refused(
        env,
        &["show", "models/m@production"],
        &["no alias `production`"],
    );
    refused(
        env,
        &["alias", "--delete", "models/m@production"],
        &["no alias `production`"],
    );
    // The alias can be set again after removal.
    env.ok(&["alias", "models/m@1", "production"]);
    env.ok(&["alias", "--delete", "models/m@production"]);
    env.ok(&["rm", "models/m@3", "--yes"]);
    assert_eq!(versions(&env.json(&["log", "models/m"])), [1]);
    assert_eq!(env.json(&["show", "models/m"])["version"], 1);

    // --force deletes a lineage input; the version built from it still reads.
    env.ok(&["rm", "features/f@1", "--yes", "--force", "--author", "ops"]);
    refused(
        env,
        &["show", "features/f"],
        &["features/f has no versions"],
    );
    let t = env.ok(&["lineage", "models/m@1"]).stdout;
    assert!(t.contains("features/f@1"), "{t}");
    // A fully deleted asset leaves `ls` but not `log --all`.
    let assets: Vec<String> = env
        .json(&["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["asset"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(assets, ["models/m"]);
    assert_eq!(
        env.json(&["log", "features/f", "--all"])[0]["deleted"]["by"],
        "ops"
    );
    env.fail(&["log", "features/f"], &["every version", "--all"]);

    // Numbers are never reused: the next version is 4, following @1.
    assert_eq!(push(env, "models/m", b"four", &[]), "models/m@4");
    let side = env.json(&["show", "models/m@4"]);
    assert_eq!(side["parent"], 1);
    assert_eq!(side["aliases"], serde_json::json!(["latest"]));

    // An alias left pointing at a version deleted with --force says so.
    env.ok(&["alias", "models/m@4", "candidate"]);
    env.ok(&["rm", "models/m@4", "--yes", "--force"]);
    refused(
        env,
        &["get", "models/m@candidate", "out"],
        &[
            "models/m@candidate points at version 4",
            "deleted by tester",
            "alias --delete",
        ],
    );
    let row = &env.json(&["ls"])[0];
    assert!(row["aliases"].as_object().unwrap().is_empty(), "{row}");
}

#[test]
fn rm_and_aliases_file() {
    rm_and_aliases(&Env::new());
}

#[test]
fn rm_and_aliases_s3() {
    rm_and_aliases(&Env::with_store(&cloud_store("ASSETFS_TEST_S3_URL")));
}

#[test]
fn rm_and_aliases_azure() {
    rm_and_aliases(&Env::with_store(&cloud_store("ASSETFS_TEST_AZ_URL")));
}

#[test]
fn rm_and_aliases_gcs() {
    rm_and_aliases(&Env::with_store(&cloud_store("ASSETFS_TEST_GCS_URL")));
}
