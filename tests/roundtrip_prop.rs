//! Property test: `get` after `push` reproduces any generated tree byte for
//! byte, with modes, empty files and directories.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assetfs::catalog::Catalog;
use assetfs::format::Reference;
use assetfs::ops::get;
use assetfs::ops::{push, PushOptions};
use assetfs::store::Store;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct GenFile {
    path: String,
    data: Vec<u8>,
    mode: u32,
}

fn gen_tree() -> impl Strategy<Value = (Vec<GenFile>, Vec<String>)> {
    // Directories are named d*, files f*, so a path is never both.
    let dir = prop::sample::select(vec!["d0", "d1", "d2"]);
    let path = (prop::collection::vec(dir, 0..3), 0u8..6).prop_map(|(dirs, f)| {
        let mut p: Vec<String> = dirs.into_iter().map(String::from).collect();
        p.push(format!("f{f}"));
        p.join("/")
    });
    // Mostly small files, sometimes larger than one chunk.
    let data = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..2000),
        1 => (1usize..1_500_000, any::<u8>()).prop_map(|(n, seed)| {
            (0..n).map(|i| (i as u64).wrapping_mul(2654435761).wrapping_add(seed as u64) as u8 ^ (i >> 13) as u8).collect()
        }),
    ];
    let mode = prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o400]);
    let file = (path, data, mode).prop_map(|(path, data, mode)| GenFile { path, data, mode });
    let empty_dirs =
        prop::collection::vec(prop::sample::select(vec!["e0", "d0/e1", "e2/e3"]), 0..2)
            .prop_map(|v| v.into_iter().map(String::from).collect());
    (prop::collection::vec(file, 0..12), empty_dirs)
}

fn write(dir: &Path, files: &[GenFile], empty_dirs: &[String]) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut expect = BTreeMap::new();
    for f in files {
        expect.insert(f.path.clone(), (f.data.clone(), f.mode));
    }
    for (p, (data, mode)) in &expect {
        let full = dir.join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, data).unwrap();
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    for d in empty_dirs {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    expect
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn get_after_push_reproduces_the_tree((files, empty_dirs) in gen_tree()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let tmp = tempfile::TempDir::new().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let expect = write(&src, &files, &empty_dirs);
        let catalog = Catalog::new(Store::open("memory://").unwrap());
        let r = Reference::parse("features/gen").unwrap();
        let dst = tmp.path().join("dst");
        rt.block_on(async {
            push(&catalog, &r, &src, PushOptions::default()).await.unwrap();
            get(&catalog, &r, &dst, false).await.unwrap();
        });
        let mut got = BTreeMap::new();
        for e in walkdir::WalkDir::new(&dst).min_depth(1) {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(&dst).unwrap().to_string_lossy().into_owned();
            let md = e.metadata().unwrap();
            if md.is_file() {
                got.insert(rel, (std::fs::read(e.path()).unwrap(), md.permissions().mode() & 0o777));
            } else {
                prop_assert!(src.join(&rel).is_dir(), "unexpected dir {}", rel);
            }
        }
        prop_assert_eq!(got, expect);
        for d in &empty_dirs {
            prop_assert!(dst.join(d).is_dir(), "empty dir {} missing", d);
        }
    }
}
