//! Reference-model property test: random sequences of file operations applied
//! to a staging tree and to a plain directory give the same results (success
//! or the same errno) and the same final tree. Runs without a mount; the
//! mount-level version of this test drives the same operations through FUSE.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use assetfs::catalog::{Staging, StagingError, ROOT};
use assetfs::format::EntryKind;
use assetfs::store::ToErrno;
use proptest::prelude::*;

const PATHS: &[&str] = &["a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "e", "e/a"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Write(usize, u64, usize, u8),
    Truncate(usize, u64),
    Rename(usize, usize),
    Unlink(usize),
    Mkdir(usize),
    Rmdir(usize),
    Chmod(usize, u32),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    prop_oneof![
        3 => p.clone().prop_map(Op::Create),
        3 => (p.clone(), 0u64..3000, 0usize..2000, any::<u8>()).prop_map(|(a, o, n, b)| Op::Write(a, o, n, b)),
        1 => (p.clone(), 0u64..4000).prop_map(|(a, n)| Op::Truncate(a, n)),
        2 => (p.clone(), p.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => p.clone().prop_map(Op::Unlink),
        3 => p.clone().prop_map(Op::Mkdir),
        1 => p.clone().prop_map(Op::Rmdir),
        1 => (p, prop::sample::select(vec![0o600u32, 0o644, 0o755, 0o400])).prop_map(|(a, m)| Op::Chmod(a, m)),
    ]
}

type R = Result<(), i32>;

fn plain(root: &Path, op: &Op) -> R {
    let p = |i: usize| root.join(PATHS[i]);
    let e = |r: std::io::Result<()>| r.map_err(|e| e.raw_os_error().unwrap_or(-1));
    match op {
        Op::Create(i) => e(OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(p(*i))
            .map(|_| ())),
        Op::Write(i, off, n, b) => e(OpenOptions::new()
            .write(true)
            .open(p(*i))
            .and_then(|f| f.write_all_at(&vec![*b; *n], *off))),
        Op::Truncate(i, n) => e(OpenOptions::new()
            .write(true)
            .open(p(*i))
            .and_then(|f| f.set_len(*n))),
        Op::Rename(a, b) => e(std::fs::rename(p(*a), p(*b))),
        Op::Unlink(i) => e(std::fs::remove_file(p(*i))),
        Op::Mkdir(i) => e(std::fs::DirBuilder::new().mode(0o755).create(p(*i))),
        Op::Rmdir(i) => e(std::fs::remove_dir(p(*i))),
        Op::Chmod(i, m) => e(std::fs::set_permissions(
            p(*i),
            std::fs::Permissions::from_mode(*m),
        )),
    }
}

/// Resolves a path's parent directory and leaf name in the staging tree.
fn parent_of(s: &Staging, path: &str) -> Result<(u64, String), StagingError> {
    let mut id = ROOT;
    let mut parts: Vec<&str> = path.split('/').collect();
    let leaf = parts.pop().unwrap().to_string();
    for part in parts {
        let n = s.lookup(id, part)?;
        if n.kind != EntryKind::Dir {
            return Err(StagingError::NotDir);
        }
        id = n.id;
    }
    Ok((id, leaf))
}

fn staged(s: &Staging, op: &Op) -> R {
    let r = (|| -> Result<(), StagingError> {
        match op {
            Op::Create(i) => {
                let (d, n) = parent_of(s, PATHS[*i])?;
                s.create(d, &n, 0o644).map(|_| ())
            }
            Op::Write(i, off, len, b) => {
                let (d, n) = parent_of(s, PATHS[*i])?;
                let node = s.lookup(d, &n)?;
                if node.kind == EntryKind::Dir {
                    return Err(StagingError::IsDir);
                }
                s.write(node.id, *off, &vec![*b; *len]).map(|_| ())
            }
            Op::Truncate(i, len) => {
                let (d, n) = parent_of(s, PATHS[*i])?;
                let node = s.lookup(d, &n)?;
                if node.kind == EntryKind::Dir {
                    return Err(StagingError::IsDir);
                }
                s.truncate(node.id, *len).map(|_| ())
            }
            Op::Rename(a, b) => {
                // Like the kernel: resolve both parents, then the source.
                let (da, na) = parent_of(s, PATHS[*a])?;
                let (db, nb) = parent_of(s, PATHS[*b])?;
                s.rename(da, &na, db, &nb)
            }
            Op::Unlink(i) => {
                let (d, n) = parent_of(s, PATHS[*i])?;
                s.unlink(d, &n)
            }
            Op::Mkdir(i) => {
                let (d, n) = parent_of(s, PATHS[*i])?;
                s.mkdir(d, &n, 0o755).map(|_| ())
            }
            Op::Rmdir(i) => {
                let (d, n) = parent_of(s, PATHS[*i])?;
                s.rmdir(d, &n)
            }
            Op::Chmod(i, m) => {
                let (d, n) = parent_of(s, PATHS[*i])?;
                let node = s.lookup(d, &n)?;
                s.chmod(node.id, *m).map(|_| ())
            }
        }
    })();
    r.map_err(|e| e.errno())
}

#[derive(Debug, PartialEq)]
enum Item {
    Dir(u32),
    File(u32, Vec<u8>),
}

fn plain_tree(root: &Path) -> BTreeMap<String, Item> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let md = e.metadata().unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let item = if md.is_dir() {
                Item::Dir(mode)
            } else {
                Item::File(mode, std::fs::read(e.path()).unwrap())
            };
            (rel, item)
        })
        .collect()
}

fn staged_tree(s: &Staging) -> BTreeMap<String, Item> {
    s.walk()
        .unwrap()
        .into_iter()
        .map(|(path, n)| {
            let item = match n.kind {
                EntryKind::Dir => Item::Dir(n.mode),
                _ => Item::File(n.mode, s.read_local(n.id, 0, n.size as usize).unwrap()),
            };
            (path, item)
        })
        .collect()
}

fn scratch() -> tempfile::TempDir {
    // tmpfs keeps SQLite's fsyncs cheap when it is there.
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::TempDir::new_in("/dev/shm").unwrap(),
        false => tempfile::TempDir::new().unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("ASSETFS_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]
    #[test]
    fn staging_behaves_like_a_local_directory(ops in prop::collection::vec(op(), 1..40)) {
        let tmp = scratch();
        let root = tmp.path().join("plain");
        std::fs::create_dir(&root).unwrap();
        let s = Staging::open(&tmp.path().join("staging")).unwrap();
        s.init(None).unwrap();
        for (i, op) in ops.iter().enumerate() {
            let want = plain(&root, op);
            let got = staged(&s, op);
            prop_assert_eq!(got, want, "op {} {:?}", i, op);
        }
        prop_assert_eq!(staged_tree(&s), plain_tree(&root));
    }
}

/// Cases the property test found (shrunk), kept so they always run.
#[test]
fn shrunk_regressions() {
    let cases: Vec<Vec<Op>> = vec![
        // Destination parent is a file: ENOTDIR before the missing source's ENOENT.
        vec![Op::Create(2), Op::Rename(0, 3)],
        // Renaming onto an ancestor of the source: ENOTEMPTY, not EISDIR.
        vec![Op::Mkdir(2), Op::Create(5), Op::Rename(5, 2)],
    ];
    for ops in cases {
        let tmp = scratch();
        let root = tmp.path().join("plain");
        std::fs::create_dir(&root).unwrap();
        let s = Staging::open(&tmp.path().join("staging")).unwrap();
        s.init(None).unwrap();
        for op in &ops {
            assert_eq!(staged(&s, op), plain(&root, op), "{op:?} in {ops:?}");
        }
        assert_eq!(staged_tree(&s), plain_tree(&root));
    }
}
