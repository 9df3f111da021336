//! `assetfs cache list` / `cache clear`: the node's caches and the state it
//! keeps per store (catalog caches, staging areas), and the stat cache that
//! lets a re-push skip unchanged files. Real binary, `file://` stores.

mod common;

use std::path::Path;

use serde_json::Value;

use common::*;

fn stores(env: &Env) -> Vec<Value> {
    env.json(&["cache", "list"]).as_array().unwrap().clone()
}

fn by_url<'a>(list: &'a [Value], url: &str) -> &'a Value {
    list.iter()
        .find(|s| s["url"] == url)
        .unwrap_or_else(|| panic!("{url} not in {list:?}"))
}

/// Makes a staging area of `asset` in the store `url` through the same
/// library code the mount uses, and changes something in it if `change`.
fn stage(env: &Env, url: &str, asset: &str, change: bool) {
    let asset = assetfs::format::Reference::parse(asset).unwrap().asset;
    let store = assetfs::store::Store::open(url).unwrap();
    let dir = assetfs::catalog::locate(&env.path("xdg-data"), &store, &asset);
    let st = assetfs::catalog::Staging::open(&dir).unwrap();
    st.init(None).unwrap();
    if change {
        st.create(assetfs::catalog::ROOT, "new.bin", 0o644).unwrap();
    }
}

#[test]
fn cache_clear_empties_the_caches_and_refuses_while_in_use() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src, 5);
    env.ok(&["push", "models/m", s(&src)]);
    env.ok(&["cache", "prefetch", "models/m"]);
    env.ok(&["ls", "models/m@1"]);
    let before = env.json(&["cache", "stats"]);
    assert!(before["entries"].as_u64().unwrap() > 0, "{before}");

    // A mount holds the chunk cache open (DiskCache::open, as the daemon does).
    {
        let _mounted =
            assetfs::catalog::DiskCache::open(&env.cache_dir(), 1 << 30).expect("open cache");
        let line = env.fail(&["cache", "clear"], &["in use", "unmount"]);
        assert!(line.contains(s(&env.cache_dir())), "{line}");
        // Nothing was removed; prune still works while mounted.
        assert_eq!(env.json(&["cache", "stats"])["entries"], before["entries"]);
    }
    let out = env.json(&["cache", "clear"]);
    assert!(out["bytes"].as_u64().unwrap() > 0, "{out}");
    let after = env.json(&["cache", "stats"]);
    assert_eq!(after["entries"], 0, "{after}");
    assert!(!env.cache_dir().join("stores").exists());
    assert!(!env.cache_dir().join("indexes").exists());
    // Everything still works from the store.
    let dst = env.path("dst");
    env.ok(&["get", "models/m@1", s(&dst)]);
    assert_same_tree(&snapshot(&src), &snapshot(&dst), "get after cache clear");
    // The store itself is untouched.
    env.ok(&["verify", "models/m"]);
}

#[test]
fn cache_list_and_clear_by_store_keep_uncommitted_staging() {
    let env = Env::new();
    let src = env.path("src");
    write_file(&src.join("a.bin"), b"bytes", 0o644);
    let a = env.store.clone();
    let b = format!("file://{}", s(&env.path("store-b")));
    env.ok(&["push", "models/m", s(&src)]);
    env.ok(&["--store", &b, "init"]);
    env.ok(&["--store", &b, "push", "models/m", s(&src)]);
    // Catalog caches of both stores.
    env.ok(&["lineage", "models/m"]);
    env.ok(&["--store", &b, "lineage", "models/m"]);
    stage(&env, &a, "models/m", false);
    stage(&env, &b, "models/m", true);
    stage(&env, &b, "models/clean", false);

    let list = stores(&env);
    assert_eq!(list.len(), 2, "{list:?}");
    let sb = by_url(&list, &b);
    let areas = sb["staging"].as_array().unwrap();
    let dirty: Vec<(&str, bool)> = areas
        .iter()
        .map(|x| {
            (
                x["asset"].as_str().unwrap(),
                x["uncommitted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(dirty, vec![("models/clean", false), ("models/m", true)]);
    assert!(sb["catalog_cache_bytes"].as_u64().unwrap() > 0, "{sb}");
    assert_eq!(by_url(&list, &a)["staging"][0]["uncommitted"], false);
    let text = env.ok(&["cache", "list"]).stdout;
    assert!(
        text.contains(&b) && text.contains("uncommitted changes"),
        "{text}"
    );

    // Staging areas with changes survive without --force.
    let out = env.json(&["cache", "clear", &b, "--staging"]);
    assert_eq!(out["staging_removed"].as_array().unwrap().len(), 1, "{out}");
    let kept = out["staging_kept"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{out}");
    assert!(kept[0].as_str().unwrap().contains("uncommitted"), "{out}");
    let list = stores(&env);
    let sb = by_url(&list, &b);
    assert_eq!(sb["catalog_cache_bytes"], 0, "{sb}");
    assert_eq!(sb["staging"].as_array().unwrap().len(), 1, "{sb}");
    // With --force they go; store A is untouched throughout.
    let out = env.json(&["cache", "clear", &b, "--staging", "--force"]);
    assert_eq!(out["staging_removed"].as_array().unwrap().len(), 1, "{out}");
    let list = stores(&env);
    assert!(list.iter().all(|x| x["url"] != b), "{list:?}");
    let sa = by_url(&list, &a);
    assert!(sa["catalog_cache_bytes"].as_u64().unwrap() > 0);
    assert_eq!(sa["staging"].as_array().unwrap().len(), 1);

    // --unused never touches the current store.
    let out = env.json(&[
        "cache",
        "clear",
        "--unused",
        "--older-than",
        "0s",
        "--staging",
    ]);
    assert_eq!(out["stores"].as_array().unwrap().len(), 0, "{out}");
    let out = env.json(&[
        "--store",
        &b,
        "cache",
        "clear",
        "--unused",
        "--older-than",
        "0s",
        "--staging",
    ]);
    assert_eq!(out["stores"], serde_json::json!([a.clone()]), "{out}");
    assert_eq!(out["staging_removed"].as_array().unwrap().len(), 1, "{out}");
    // Both stores still serve their versions.
    env.ok(&["ls", "models/m@1"]);
    env.ok(&["--store", &b, "ls", "models/m@1"]);
}

#[test]
fn cache_clear_bad_input() {
    let env = Env::new();
    let src = env.path("src");
    write_file(&src.join("a.bin"), b"bytes", 0o644);
    env.ok(&["push", "models/m", s(&src)]);
    env.ok(&["lineage", "models/m"]);
    env.fail(
        &["cache", "clear", "file:///no/such/store"],
        &["no local state", "file:///no/such/store", "cache list"],
    );
    env.fail(
        &["cache", "clear", "--staging"],
        &["--staging needs", "store"],
    );
    env.fail(
        &["cache", "clear", "--unused", "--older-than", "soon"],
        &["--older-than", "soon"],
    );
    // Nothing was removed by the refusals.
    let list = stores(&env);
    assert!(
        by_url(&list, &env.store)["catalog_cache_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// A re-push of an unchanged tree reads none of its files; a file changed in
/// place with its size and mtime restored is read again and committed with its
/// new content (ctime is part of the key).
#[test]
fn repush_skips_unchanged_files_but_never_misses_a_change() {
    let env = Env::new();
    let src = env.path("src");
    let mut r = rng(11);
    for i in 0..4 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &random_bytes(&mut r, 300_000 + i * 1000),
            0o644,
        );
    }
    // Stamps younger than the racy-timestamp slack are never recorded.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(read_count(&env, &src), 4, "first push reads everything");
    assert_eq!(
        read_count(&env, &src),
        0,
        "an unchanged re-push reads nothing"
    );

    // Same size, same mtime, other bytes.
    let p = src.join("f2.bin");
    let old = std::fs::metadata(&p).unwrap();
    let mut data = std::fs::read(&p).unwrap();
    data[1000] ^= 0xff;
    std::fs::write(&p, &data).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(old.modified().unwrap()))
        .unwrap();
    let j = env.json(&["push", "models/m", s(&src)]);
    assert!(j["new_bytes"].as_u64().unwrap() > 0, "{j}");
    let dst = env.path("dst");
    env.ok(&["get", &format!("models/m@{}", j["version"]), s(&dst)]);
    assert_same_tree(&snapshot(&src), &snapshot(&dst), "changed file committed");
}

/// How many files the next push of `dir` reads (the push reports it, next
/// to the files the stat cache vouched for).
fn read_count(env: &Env, dir: &Path) -> u64 {
    let j = env.json(&["push", "models/m", s(dir)]);
    assert_eq!(
        j["files_read"].as_u64().unwrap() + j["files_unchanged"].as_u64().unwrap(),
        j["files"].as_u64().unwrap(),
        "{j}"
    );
    j["files_read"].as_u64().unwrap()
}
