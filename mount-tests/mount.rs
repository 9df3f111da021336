//! Real-FUSE integration tests: each test pushes assets with the real
//! binary, mounts them with `assetfs mount --foreground` (see
//! [`harness::Mounted`]) and uses the mount with ordinary system calls,
//! numpy, tarfile, and a store it can stop. See mount-tests/README.md.

#[path = "../tests/common/mod.rs"]
mod common;
mod harness;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use common::*;
use harness::*;

const MIB: usize = 1 << 20;

/// A model: nested dirs, several chunk sizes, an empty file, an empty dir,
/// an executable, relative symlinks, distinct permissions.
fn make_model(root: &Path, seed: u64) {
    let mut r = StdRng::seed_from_u64(seed);
    random_file(root, "a/b/c.bin", &mut r, 300_001);
    let w = random_bytes(&mut r, 1_500_007);
    write_file(&root.join("weights.bin"), &w, 0o640);
    write_file(
        &root.join("config.json"),
        br#"{"layers": 3, "hidden": 512}"#,
        0o644,
    );
    write_file(&root.join("bin/run.sh"), b"#!/bin/sh\necho run\n", 0o755);
    write_file(&root.join("empty.txt"), b"", 0o644);
    random_file(root, "a/small.bin", &mut r, 17);
    make_dir(&root.join("emptydir"), 0o750);
    symlink_at(&root.join("best.bin"), "weights.bin");
    symlink_at(&root.join("a/b/up.json"), "../../config.json");
}

/// A feature set: a large column file and a few small ones.
fn make_features(root: &Path, seed: u64) {
    let mut r = StdRng::seed_from_u64(seed);
    random_file(root, "part-000.parquet", &mut r, 700_003);
    random_file(root, "part-001.parquet", &mut r, 90_000);
    write_file(
        &root.join("schema.json"),
        br#"{"user": "int64", "clicks": "int32"}"#,
        0o644,
    );
    write_file(
        &root.join("stats/summary.csv"),
        b"col,mean\nclicks,3.5\n",
        0o644,
    );
}

fn symlink_kind(p: &Path) -> &'static str {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    if md.file_type().is_symlink() {
        "symlink"
    } else if md.is_dir() {
        "dir"
    } else {
        "file"
    }
}

fn readlink(p: &Path) -> String {
    fs::read_link(p)
        .unwrap_or_else(|e| panic!("readlink {}: {e}", p.display()))
        .to_str()
        .expect("UTF-8")
        .to_string()
}

// ---------------------------------------------------------------------------
// 1. ls / cat / stat / readlink / getxattr, over file:// and S3

fn browse(env: &TestEnv) {
    let src = env.path("src-model");
    let fsrc = env.path("src-features");
    make_model(&src, 1);
    make_features(&fsrc, 2);
    env.push("features/clicks", &fsrc, &["-m", "clicks v1"]);
    env.push(
        "models/x",
        &src,
        &[
            "-m",
            "first model",
            "--meta",
            "lr=0.01",
            "--input",
            "features/clicks",
            "--metric",
            "auc=0.9",
            "--log",
            "config.json",
        ],
    );
    env.ok(&["alias", "models/x@1", "production"]);

    let m = env.mount("browse", &[]);

    // Deep stat on a fresh mount, before anything was listed.
    let deep = m.path("models/x@1/a/b/c.bin");
    let md = fs::metadata(&deep).unwrap_or_else(|e| panic!("stat {}: {e}", deep.display()));
    assert!(md.is_file(), "{} is not a file", deep.display());
    assert_eq!(md.len(), 300_001);
    assert_eq!(md.permissions().mode() & 0o7777, 0o644);

    assert_eq!(names(&m.mnt), ["features", "models"]);
    assert_eq!(
        names(&m.path("models")),
        ["x@1", "x@1.json", "x@latest", "x@production", "x@staging"]
    );
    assert_eq!(
        names(&m.path("features")),
        [
            "clicks@1",
            "clicks@1.json",
            "clicks@latest",
            "clicks@staging"
        ]
    );
    for (p, kind) in [
        ("models/x@1", "dir"),
        ("models/x@1.json", "file"),
        ("models/x@latest", "symlink"),
        ("models/x@production", "symlink"),
        ("models/x@staging", "dir"),
        ("features/clicks@1", "dir"),
        ("features/clicks@1.json", "file"),
        ("features/clicks@latest", "symlink"),
    ] {
        assert_eq!(symlink_kind(&m.path(p)), kind, "{p}");
    }
    // readdir's d_type agrees with lstat.
    for e in fs::read_dir(m.path("models")).expect("read_dir models") {
        let e = e.expect("entry");
        let name = e.file_name().into_string().expect("UTF-8");
        let ft = e.file_type().expect("d_type");
        let want = symlink_kind(&e.path());
        let got = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else {
            "file"
        };
        assert_eq!(got, want, "d_type of {name}");
    }
    assert_eq!(readlink(&m.path("models/x@latest")), "x@1");
    assert_eq!(readlink(&m.path("models/x@production")), "x@1");
    assert_eq!(readlink(&m.path("features/clicks@latest")), "clicks@1");
    let sidecar_md = fs::metadata(m.path("models/x@1.json")).expect("stat sidecar");
    assert_eq!(sidecar_md.permissions().mode() & 0o777, 0o444);

    // Every entry, type, mode, size, symlink target, byte and hash.
    assert_tree_same(&src, &m.path("models/x@1"));
    assert_tree_same(&fsrc, &m.path("features/clicks@1"));
    // And through the alias symlinks.
    assert_same_bytes(
        "x@production/weights.bin",
        &fs::read(m.path("models/x@production/weights.bin")).expect("read via alias"),
        &fs::read(src.join("weights.bin")).expect("read source"),
    );
    assert_same_bytes(
        "x@latest/best.bin (symlink in the version)",
        &fs::read(m.path("models/x@latest/best.bin")).expect("read via latest"),
        &fs::read(src.join("weights.bin")).expect("read source"),
    );

    // The sidecar equals `show --json` for the same version.
    for (reference, file) in [
        ("models/x@1", "models/x@1.json"),
        ("features/clicks@1", "features/clicks@1.json"),
    ] {
        let raw = fs::read(m.path(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let sidecar: Value = serde_json::from_slice(&raw).unwrap_or_else(|e| {
            panic!(
                "{file} is not JSON ({e}): {}",
                String::from_utf8_lossy(&raw)
            )
        });
        assert_eq!(
            sidecar,
            env.show_json(reference),
            "{file} vs show {reference}"
        );
        assert_same_bytes(
            &format!("{file} read 7 bytes at a time"),
            &read_in_pieces(&m.path(file), 7).unwrap(),
            &raw,
        );
        assert_eq!(
            fs::metadata(m.path(file)).expect("stat").len(),
            raw.len() as u64,
            "st_size of {file}"
        );
    }
    let sc: Value = serde_json::from_slice(&fs::read(m.path("models/x@1.json")).unwrap()).unwrap();
    assert_eq!(sc["version"], json!(1));
    assert_eq!(sc["message"], json!("first model"));
    assert_eq!(sc["aliases"], json!(["latest", "production"]));
    assert_eq!(sc["user"]["lr"], json!(0.01));
    // Context through the mount (the intended `jq .lineage` inspection path).
    assert_eq!(sc["lineage"]["inputs"], json!(["features/clicks@1"]));
    assert_eq!(sc["metrics"], json!({"auc": 0.9}));
    assert_eq!(sc["context"]["log"], json!("config.json"));
    let fsc: Value =
        serde_json::from_slice(&fs::read(m.path("features/clicks@1.json")).unwrap()).unwrap();
    assert_eq!(
        fsc["schema"]["files"]["stats/summary.csv"]["rows"],
        json!(1)
    );

    // xattrs beyond what assert_tree_same checked.
    let w = m.path("models/x@1/weights.bin");
    let want = content_hash_hex(&fs::read(src.join("weights.bin")).unwrap());
    assert_eq!(getxattr_sized(&w, "user.assetfs.blake3", 64).unwrap(), 64);
    assert_eq!(
        getxattr_sized(&w, "user.assetfs.blake3", 10)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ERANGE),
        "too small a buffer"
    );
    assert_eq!(listxattr(&w).unwrap(), ["user.assetfs.blake3"]);
    assert_eq!(
        getxattr(
            &m.path("models/x@latest/weights.bin"),
            "user.assetfs.blake3"
        )
        .unwrap(),
        want.as_bytes(),
        "xattr through the latest symlink"
    );
    assert_eq!(
        getxattr(&w, "user.other").unwrap_err().raw_os_error(),
        Some(libc::ENODATA)
    );
    assert_eq!(
        getxattr(&m.path("models/x@1/a"), "user.assetfs.blake3")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENODATA),
        "directories have no content hash"
    );
    // Names that do not exist.
    for p in [
        "models/x@2",
        "models/x@nosuch",
        "models/y@1",
        "models/x@1/nope",
        "other",
    ] {
        assert_eq!(
            fs::metadata(m.path(p)).unwrap_err().raw_os_error(),
            Some(libc::ENOENT),
            "{p}"
        );
    }
    m.unmount();
}

#[test]
fn browse_file_store() {
    let env = TestEnv::file_store();
    browse(&env);
}

#[test]
fn browse_s3_store() {
    let base = require_env("ASSETFS_TEST_S3_URL");
    let url = format!(
        "{}/mount-browse-{:016x}",
        base.trim_end_matches('/'),
        rand::random::<u64>()
    );
    let env = TestEnv::with_store(&url, vec![]);
    browse(&env);
}

// ---------------------------------------------------------------------------
// 2. EROFS for every write-type operation

#[test]
fn write_ops_fail_with_erofs() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    make_model(&src, 3);
    env.push("models/x", &src, &[]);
    let m = env.mount("erofs", &[]);
    let v = m.path("models/x@1");
    let f = v.join("weights.bin");
    let (uid, gid) = (unsafe { libc::getuid() }, unsafe { libc::getgid() });

    type Op<'a> = (&'a str, Box<dyn Fn() -> std::io::Result<()> + 'a>);
    let open =
        |p: std::path::PathBuf, o: fs::OpenOptions| -> std::io::Result<()> { o.open(p).map(drop) };
    let opts = |w: bool, a: bool, t: bool, c: bool, cn: bool| {
        let mut o = fs::OpenOptions::new();
        o.read(!w && !a)
            .write(w)
            .append(a)
            .truncate(t)
            .create(c)
            .create_new(cn);
        o
    };
    let ops: Vec<Op> = vec![
        (
            "create a file in a version",
            Box::new(|| fs::File::create(v.join("new.txt")).map(drop)),
        ),
        (
            "create_new a file in a subdirectory",
            Box::new(|| open(v.join("a/new.bin"), opts(true, false, false, false, true))),
        ),
        (
            "create a file in models/",
            Box::new(|| fs::File::create(m.path("models/newfile")).map(drop)),
        ),
        (
            "create a file at the root",
            Box::new(|| fs::File::create(m.path("newfile")).map(drop)),
        ),
        (
            "open an existing file for writing",
            Box::new(|| open(f.clone(), opts(true, false, false, false, false))),
        ),
        (
            "open an existing file read-write",
            Box::new(|| {
                let mut o = fs::OpenOptions::new();
                o.read(true).write(true);
                open(f.clone(), o)
            }),
        ),
        (
            "open an existing file to append",
            Box::new(|| open(f.clone(), opts(false, true, false, false, false))),
        ),
        (
            "open with O_TRUNC",
            Box::new(|| open(f.clone(), opts(true, false, true, false, false))),
        ),
        (
            "open read-only with O_TRUNC",
            Box::new(|| {
                let mut o = fs::OpenOptions::new();
                o.read(true).custom_flags(libc::O_TRUNC);
                open(f.clone(), o)
            }),
        ),
        (
            "open the sidecar for writing",
            Box::new(|| {
                open(
                    m.path("models/x@1.json"),
                    opts(true, false, false, false, false),
                )
            }),
        ),
        ("truncate(2) a file", Box::new(|| truncate(&f, 0))),
        (
            "truncate(2) a file longer",
            Box::new(|| truncate(&f, 10 << 20)),
        ),
        (
            "write to an existing file (fs::write)",
            Box::new(|| fs::write(v.join("config.json"), b"{}")),
        ),
        ("unlink a file", Box::new(|| fs::remove_file(&f))),
        (
            "unlink a symlink in a version",
            Box::new(|| fs::remove_file(v.join("best.bin"))),
        ),
        (
            "unlink the sidecar",
            Box::new(|| fs::remove_file(m.path("models/x@1.json"))),
        ),
        (
            "unlink the latest symlink",
            Box::new(|| fs::remove_file(m.path("models/x@latest"))),
        ),
        (
            "rename a file in place",
            Box::new(|| fs::rename(&f, v.join("renamed.bin"))),
        ),
        (
            "rename a file across directories",
            Box::new(|| fs::rename(&f, v.join("a/weights.bin"))),
        ),
        (
            "rename a file over another",
            Box::new(|| fs::rename(&f, v.join("config.json"))),
        ),
        (
            "rename a directory",
            Box::new(|| fs::rename(v.join("a"), v.join("a2"))),
        ),
        (
            "rename a version directory",
            Box::new(|| fs::rename(&v, m.path("models/x@9"))),
        ),
        (
            "rename the latest symlink",
            Box::new(|| fs::rename(m.path("models/x@latest"), m.path("models/x@old"))),
        ),
        (
            "chmod a file",
            Box::new(|| fs::set_permissions(&f, fs::Permissions::from_mode(0o600))),
        ),
        (
            "chmod a directory",
            Box::new(|| fs::set_permissions(v.join("a"), fs::Permissions::from_mode(0o700))),
        ),
        (
            "chmod a version directory",
            Box::new(|| fs::set_permissions(&v, fs::Permissions::from_mode(0o700))),
        ),
        ("chown a file", Box::new(|| chown(&f, uid, gid))),
        ("set times (touch)", Box::new(|| touch_times(&f))),
        (
            "mkdir in a version",
            Box::new(|| fs::create_dir(v.join("newdir"))),
        ),
        (
            "mkdir in a version subdirectory",
            Box::new(|| fs::create_dir(v.join("a/b/newdir"))),
        ),
        (
            "mkdir models/newthing",
            Box::new(|| fs::create_dir(m.path("models/newthing"))),
        ),
        (
            "mkdir models/x@7",
            Box::new(|| fs::create_dir(m.path("models/x@7"))),
        ),
        (
            "mkdir at the root",
            Box::new(|| fs::create_dir(m.path("datasets"))),
        ),
        (
            "rmdir an empty directory",
            Box::new(|| fs::remove_dir(v.join("emptydir"))),
        ),
        (
            "rmdir a non-empty directory",
            Box::new(|| fs::remove_dir(v.join("a/b"))),
        ),
        ("rmdir a version directory", Box::new(|| fs::remove_dir(&v))),
        (
            "symlink in a version",
            Box::new(|| std::os::unix::fs::symlink("weights.bin", v.join("ln"))),
        ),
        (
            "symlink as a new alias",
            Box::new(|| std::os::unix::fs::symlink("x@1", m.path("models/x@mine"))),
        ),
        (
            "hard link in a version",
            Box::new(|| fs::hard_link(&f, v.join("hard.bin"))),
        ),
        (
            "hard link into models/",
            Box::new(|| fs::hard_link(&f, m.path("models/hard.bin"))),
        ),
        ("mkfifo in a version", Box::new(|| mkfifo(&v.join("fifo")))),
        (
            "setxattr user.foo",
            Box::new(|| setxattr(&f, "user.foo", b"bar")),
        ),
        (
            "setxattr user.assetfs.blake3",
            Box::new(|| setxattr(&f, "user.assetfs.blake3", b"00")),
        ),
        (
            "setxattr on a directory",
            Box::new(|| setxattr(&v, "user.foo", b"bar")),
        ),
        (
            "removexattr user.assetfs.blake3",
            Box::new(|| removexattr(&f, "user.assetfs.blake3")),
        ),
    ];
    let mut wrong = vec![];
    for (what, op) in &ops {
        match op() {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            Err(e) => wrong.push(format!(
                "{what}: {e} (errno {:?}), want EROFS",
                e.raw_os_error()
            )),
            Ok(()) => wrong.push(format!("{what}: succeeded, want EROFS")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} write operations did not fail with EROFS:\n  {}",
        wrong.len(),
        ops.len(),
        wrong.join("\n  ")
    );

    // Writing through a read-only descriptor is refused by the kernel (EBADF).
    {
        use std::io::Write;
        let mut ro = fs::File::open(&f).expect("open read-only");
        assert!(ro.write(b"x").is_err(), "write through a read-only fd");
    }
    drop(ops);
    // Nothing changed.
    assert_tree_same(&src, &v);
    assert_eq!(
        names(&m.path("models")),
        ["x@1", "x@1.json", "x@latest", "x@staging"]
    );
    assert_eq!(names(&m.mnt), ["features", "models"]);
    m.unmount();
}

// ---------------------------------------------------------------------------
// 3. mmap, pread, seek, concurrent readers

#[test]
fn mmap_pread_and_concurrent_readers() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(4);
    let size = 5 * MIB + 12_345;
    let pread_src = random_file(&src, "pread.bin", &mut r, size);
    let mmap_src = random_file(&src, "mmap/weights.bin", &mut r, size + 1);
    let conc_src = random_file(&src, "shared.bin", &mut r, size + 2);
    env.push("models/big", &src, &[]);
    let m = env.mount("bigread", &[]);
    let v = m.path("models/big@1");

    // pread at 200 random offsets and lengths on a cold file, some crossing
    // or past EOF, some tiny, some spanning several chunks.
    let f = fs::File::open(v.join("pread.bin")).expect("open pread.bin");
    assert_eq!(f.metadata().unwrap().len(), size as u64);
    let mut rng = StdRng::seed_from_u64(40);
    for i in 0..200 {
        let off = match i % 10 {
            0 => size as u64 - rng.gen_range(0..5000),
            1 => size as u64 + rng.gen_range(0..5000),
            _ => rng.gen_range(0..size as u64),
        };
        let len = match i % 3 {
            0 => rng.gen_range(1..64),
            1 => rng.gen_range(1..200_000),
            _ => rng.gen_range(200_000..2_500_000),
        };
        let got = pread_range(&f, off, len).unwrap_or_else(|e| panic!("pread {len}@{off}: {e}"));
        let s = (off as usize).min(size);
        let e = (off as usize + len).min(size);
        assert_same_bytes(&format!("pread #{i} {len}@{off}"), &got, &pread_src[s..e]);
    }
    // seek + read, backwards.
    let mut f2 = fs::File::open(v.join("pread.bin")).expect("open");
    for off in [4 * MIB as u64 + 7, MIB as u64 * 2 - 3, 12_345, 0] {
        f2.seek(SeekFrom::Start(off)).unwrap();
        let mut buf = vec![0u8; 300_000];
        f2.read_exact(&mut buf).unwrap();
        assert_same_bytes(
            &format!("seek {off}"),
            &buf,
            &pread_src[off as usize..off as usize + 300_000],
        );
    }
    assert_eq!(f2.seek(SeekFrom::End(0)).unwrap(), size as u64);

    // mmap of a cold multi-chunk file: fault pages in from the end first,
    // then compare everything; then a private mapping.
    let mf = fs::File::open(v.join("mmap/weights.bin")).expect("open mmap file");
    {
        let map = Mapping::new(&mf, false).expect("mmap MAP_SHARED");
        let b = map.bytes();
        assert_eq!(b.len(), mmap_src.len());
        let page = 4096;
        let mut off = b.len();
        while off > 0 {
            let start = off.saturating_sub(page * 37);
            assert_same_bytes(
                &format!("mapping [{start}, {off})"),
                &b[start..off],
                &mmap_src[start..off],
            );
            off = start;
        }
        assert_same_bytes("whole MAP_SHARED mapping", b, &mmap_src);
    }
    {
        let map = Mapping::new(&mf, true).expect("mmap MAP_PRIVATE");
        assert_same_bytes("whole MAP_PRIVATE mapping", map.bytes(), &mmap_src);
    }

    // 8 threads read one cold file at once, each in full with its own
    // buffer size, each compared.
    let conc_src = std::sync::Arc::new(conc_src);
    let path = v.join("shared.bin");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (want, path, barrier) = (conc_src.clone(), path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let buf = 4096 * (1 + 3 * i) + 7 * i;
                let got = read_in_pieces(&path, buf).unwrap_or_else(|e| panic!("thread {i}: {e}"));
                assert_same_bytes(&format!("thread {i} (buffer {buf})"), &got, &want);
            })
        })
        .collect();
    let failed: Vec<usize> = handles
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| h.join().is_err().then_some(i))
        .collect();
    assert!(failed.is_empty(), "concurrent readers failed: {failed:?}");
    // Open files keep the mount busy.
    drop((f, f2, mf));
    m.unmount();
}

// ---------------------------------------------------------------------------
// 4. Python: numpy.load, mmap_mode, numpy.memmap, a streamed tar shard

const PY_GEN: &str = r#"
import io, os, sys, tarfile
import numpy as np
src = sys.argv[1]
rng = np.random.default_rng(7)
np.save(os.path.join(src, "arr.npy"), rng.standard_normal((700, 513)).astype(np.float32))
np.save(os.path.join(src, "labels.npy"), rng.integers(0, 1000, size=50_001, dtype=np.int64))
raw = os.path.join(src, "raw")
os.makedirs(os.path.join(raw, "sub"))
files = {"m0.bin": rng.bytes(300_017), "m1.txt": b"hello tar\n" * 100,
         "sub/m2.bin": rng.bytes(1_200_011), "sub/empty": b"", "m3.bin": rng.bytes(65_536)}
for name, data in files.items():
    with open(os.path.join(raw, name), "wb") as f:
        f.write(data)
os.makedirs(os.path.join(src, "shards"))
with tarfile.open(os.path.join(src, "shards", "shard-000.tar"), "w") as t:
    for name in sorted(files):
        t.add(os.path.join(raw, name), arcname=name)
print(len(files))
"#;

const PY_CHECK: &str = r#"
import errno, os, sys, tarfile
import numpy as np
import numpy.lib.format as fmt
mnt, src, out = sys.argv[1], sys.argv[2], sys.argv[3]
checked = 0
for name in ["arr.npy", "labels.npy"]:
    want = np.load(os.path.join(src, name))
    path = os.path.join(mnt, name)
    a = np.load(path)
    assert a.dtype == want.dtype and a.shape == want.shape, (name, a.dtype, a.shape)
    assert np.array_equal(a, want), name
    m = np.load(path, mmap_mode="r")
    assert isinstance(m, np.memmap), type(m)
    assert np.array_equal(m, want), name
    assert np.array_equal(m[-3:], want[-3:]) and np.array_equal(m[123:456], want[123:456]), name
    # numpy.memmap by hand, at the offset the .npy header ends.
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}[version]
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    mm = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    assert np.array_equal(mm, want), name
    del m, mm
    # A writable mapping is refused: the version is read-only.
    try:
        np.load(path, mmap_mode="r+")
        raise AssertionError("mmap_mode='r+' succeeded on a committed version")
    except OSError as e:
        assert e.errno == errno.EROFS, e
    checked += 1

raw = os.path.join(src, "raw")
tar = os.path.join(mnt, "shards", "shard-000.tar")
members = 0
with tarfile.open(tar, mode="r|") as t:
    for mem in t:
        if not mem.isfile():
            continue
        data = t.extractfile(mem).read()
        with open(os.path.join(raw, mem.name), "rb") as f:
            assert data == f.read(), mem.name
        members += 1
with tarfile.open(tar, mode="r|") as t:
    if hasattr(tarfile, "data_filter"):
        t.extractall(out, filter="data")
    else:
        t.extractall(out)
for root, _, files in os.walk(raw):
    for fn in files:
        rel = os.path.relpath(os.path.join(root, fn), raw)
        with open(os.path.join(raw, rel), "rb") as a, open(os.path.join(out, rel), "rb") as b:
            assert a.read() == b.read(), rel
print(f"OK arrays={checked} members={members}")
"#;

fn python(env: &TestEnv, py: &str, script: &str, args: &[&str]) -> String {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    let o = run_limited(&mut env.spec.command(py, &all), Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        o.status.success(),
        "{}\n(numpy missing? the venv of scripts/test-servers.sh installs it: rerun servers_start)",
        describe(&format!("{py} script"), &o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn python_numpy_and_tar_stream() {
    let py = require_env("ASSETFS_TEST_PYTHON");
    let env = TestEnv::file_store();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let n = python(&env, &py, PY_GEN, &[s(&src)]);
    assert_eq!(n, "5", "generator output");
    env.push("features/emb", &src, &[]);
    let m = env.mount("python", &[]);
    let out = env.path("extracted");
    let res = python(
        &env,
        &py,
        PY_CHECK,
        &[s(&m.path("features/emb@1")), s(&src), s(&out)],
    );
    assert_eq!(res, "OK arrays=2 members=5", "python check output");
    m.unmount();
}

// ---------------------------------------------------------------------------
// 5. The cache serves a remount while the store is down

#[test]
fn cache_serves_remount_with_store_stopped() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut moto = Moto::start(scratch.path(), "offline");
    let url = format!("s3://offline/p{:08x}", rand::random::<u32>());
    let env = TestEnv::with_store(&url, moto.env());
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(5);
    random_file(&src, "weights/model.safetensors", &mut r, 2 * MIB + 333);
    random_file(&src, "weights/head.bin", &mut r, 400_000);
    random_file(&src, "tokenizer.json", &mut r, 1234);
    write_file(&src.join("README.md"), b"# model\n", 0o644);
    symlink_at(&src.join("model.bin"), "weights/model.safetensors");
    env.push("models/m", &src, &["-m", "offline test"]);

    let cache = env.path("cache-offline");
    let m = env.mount_with_cache("online", &cache, &["--timeout", "3s"]);
    assert_tree_same(&src, &m.path("models/m@1"));
    let sidecar = fs::read(m.path("models/m@1.json")).expect("read sidecar");
    m.unmount();

    moto.kill();
    assert!(
        http_status(moto.port, "GET", "/").is_err(),
        "the store still answers after being killed"
    );

    let t = Instant::now();
    let m = env.mount_with_cache("offline", &cache, &["--timeout", "3s"]);
    assert!(
        m.ready_line.contains("unreachable"),
        "the mount should say the store is unreachable: {:?}",
        m.ready_line
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "mount took {:?}",
        t.elapsed()
    );
    assert_eq!(
        names(&m.path("models")),
        ["m@1", "m@1.json", "m@latest", "m@staging"]
    );
    assert_eq!(readlink(&m.path("models/m@latest")), "m@1");
    assert_tree_same(&src, &m.path("models/m@1"));
    assert_eq!(
        fs::read(m.path("models/m@1.json")).expect("read sidecar offline"),
        sidecar
    );
    m.unmount();
}

// ---------------------------------------------------------------------------
// 6. A corrupt cached chunk is dropped and fetched again

/// One record of the chunk cache, as its SQLite index places it.
#[derive(Debug, Clone)]
struct Record {
    hash: String,
    seg: std::path::PathBuf,
    off: u64,
    len: u64,
    size: u64,
    local: bool,
}

/// Every record of a cache directory, in segment order.
fn cache_records(cache: &Path) -> Vec<Record> {
    let db = rusqlite::Connection::open(cache.join("cache.sqlite")).unwrap();
    let mut st = db
        .prepare("SELECT hash, seg, off, len, size, local FROM chunks ORDER BY seg, off")
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok(Record {
                hash: hex::encode(r.get::<_, Vec<u8>>(0)?),
                seg: cache
                    .join("segments")
                    .join(format!("{:08x}.seg", r.get::<_, i64>(1)?)),
                off: r.get::<_, i64>(2)? as u64,
                len: r.get::<_, i64>(3)? as u64,
                size: r.get::<_, i64>(4)? as u64,
                local: r.get::<_, i64>(5)? != 0,
            })
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// Applies `f` to the bytes of a record, in place in its segment.
fn damage_record(r: &Record, f: impl FnOnce(&mut [u8])) {
    let mut b = fs::read(&r.seg).unwrap();
    f(&mut b[r.off as usize..(r.off + r.size) as usize]);
    fs::write(&r.seg, &b).unwrap();
}

fn punch(r: &Record, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new().write(true).open(&r.seg).unwrap();
    // SAFETY: fallocate on a descriptor we own.
    let rc = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            (r.off + from) as libc::off_t,
            len as libc::off_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "punching a hole: {}",
        std::io::Error::last_os_error()
    );
}

/// A record (a chunk's data unless local, a CRC32C per 4 KiB block, a
/// 72-byte footer naming the chunk) holds the chunk its index row says,
/// intact.
fn assert_record_intact(r: &Record) {
    let b = fs::read(&r.seg).unwrap_or_else(|e| panic!("{}: {e}", r.seg.display()));
    let rec = &b[r.off as usize..(r.off + r.size) as usize];
    let footer = &rec[rec.len() - 72..];
    assert_eq!(&footer[..8], b"AFSREC03", "{r:?}: footer");
    assert_eq!(
        u32::from_le_bytes(footer[8..12].try_into().unwrap()) as u64,
        r.len,
        "{r:?}: length"
    );
    assert_eq!(hex::encode(&footer[40..72]), r.hash, "{r:?}: footer name");
    assert_eq!(footer[13] & 1 != 0, r.local, "{r:?}: record kind");
    if !r.local {
        assert_eq!(
            blake3_hex(&rec[..r.len as usize]),
            r.hash,
            "cached chunk {r:?} holds other bytes"
        );
    }
}

/// Bytes the cache's segment files take on disk.
fn cache_disk_bytes(cache: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::read_dir(cache.join("segments"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// A test environment over its own moto S3 server: its chunks are copied
/// into the cache (a `file://` store's are checked in place instead).
fn s3_env(name: &str) -> (Moto, TestEnv, tempfile::TempDir) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start(scratch.path(), name);
    let url = format!("s3://{name}/p{:08x}", rand::random::<u32>());
    let env = TestEnv::with_store(&url, moto.env());
    (moto, env, scratch)
}

#[test]
fn corrupt_cached_chunk_is_refetched() {
    let (_moto, env, _scratch) = s3_env("corrupt");
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(6);
    let data = random_file(&src, "w.bin", &mut r, 3 * MIB + 99);
    env.push("models/c", &src, &[]);

    let cache = env.path("cache-corrupt");
    let m = env.mount_with_cache("first", &cache, &[]);
    assert_same_bytes(
        "first read",
        &fs::read(m.path("models/c@1/w.bin")).unwrap(),
        &data,
    );
    m.unmount();

    let records = cache_records(&cache);
    assert!(
        records.len() >= 3 && records.iter().all(|r| !r.local),
        "a 3 MiB file should be several cached chunks, with their data: {records:?}"
    );
    let victim = records[records.len() / 2].clone();
    damage_record(&victim, |b| b[b.len() / 3] ^= 0x5a);
    let before = env.cache_stats(&cache);

    let m = env.mount_with_cache("second", &cache, &[]);
    assert_same_bytes(
        "read after corrupting a cached chunk",
        &fs::read(m.path("models/c@1/w.bin")).unwrap(),
        &data,
    );
    m.unmount();

    let after = env.cache_stats(&cache);
    let dropped = |v: &Value| v["corrupt_dropped"].as_u64().expect("corrupt_dropped");
    assert!(
        dropped(&after) >= 1 && dropped(&after) > dropped(&before),
        "cache stats should count the dropped chunk: before {before}, after {after}"
    );
    // The chunk was fetched again and cached intact.
    let again: Vec<_> = cache_records(&cache)
        .into_iter()
        .filter(|r| r.hash == victim.hash)
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_record_intact(&again[0]);
}

#[test]
fn cache_damaged_between_mounts_never_serves_wrong_bytes() {
    let (_moto, env, _scratch) = s3_env("damaged");
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(61);
    let data = random_file(&src, "w.bin", &mut r, 6 * MIB + 7);
    let small = random_file(&src, "s.bin", &mut r, 200_000);
    env.push("models/d", &src, &[]);
    let cache = env.path("cache-damaged");
    let read_all = |m: &Mounted, what: &str| {
        let w = m.path("models/d@1/w.bin");
        drop_page_cache(&w);
        assert_same_bytes(what, &fs::read(&w).unwrap(), &data);
        assert_same_bytes(what, &fs::read(m.path("models/d@1/s.bin")).unwrap(), &small);
    };
    // 4 KiB preads all over the file: the block-checked partial-read path.
    let pread_all = |m: &Mounted, what: &str| {
        let w = m.path("models/d@1/w.bin");
        drop_page_cache(&w);
        let f = fs::File::open(&w).unwrap();
        let mut off = 3 * MIB as u64 + 4096 * 7;
        for _ in 0..60 {
            let got = pread_range(&f, off, 4096).unwrap();
            let o = off as usize;
            assert_same_bytes(what, &got, &data[o..(o + 4096).min(data.len())]);
            off = (off + 97 * 4096 + 13) % data.len() as u64;
        }
    };
    let m = env.mount_with_cache("fill", &cache, &[]);
    read_all(&m, "first read");
    m.unmount();
    let recs = cache_records(&cache);
    assert!(recs.len() >= 12, "{} cached chunks", recs.len());

    // Damage, each its own way: a flipped byte early and late in a chunk, a
    // lost tail (a hole over the second half of a record), a lost record, a
    // neighbour's bytes over a record, a damaged footer, a flipped checksum,
    // and the index out of step with the segments: a row deleted, a row
    // with the wrong length, a row pointing into a segment that does not
    // exist.
    damage_record(&recs[0], |b| b[10] ^= 0x20);
    damage_record(&recs[1], |b| {
        let at = 70_000.min(b.len() - 100);
        b[at] ^= 0x20
    });
    punch(&recs[2], recs[2].size / 2, recs[2].size - recs[2].size / 2);
    punch(&recs[3], 0, recs[3].size);
    {
        let other = fs::read(&recs[5].seg).unwrap();
        let o = &other[recs[5].off as usize..(recs[5].off + recs[5].size) as usize];
        damage_record(&recs[4], |b| {
            let n = b.len().min(o.len());
            b[..n].copy_from_slice(&o[..n]);
        });
    }
    damage_record(&recs[6], |b| {
        let n = b.len();
        b[n - 30] ^= 1
    });
    damage_record(&recs[9], |b| {
        let n = b.len();
        b[n - 72 - 2] ^= 1
    });
    {
        let db = rusqlite::Connection::open(cache.join("cache.sqlite")).unwrap();
        let name = |r: &Record| hex::decode(&r.hash).unwrap();
        db.execute("DELETE FROM chunks WHERE hash = ?1", [name(&recs[7])])
            .unwrap();
        db.execute(
            "UPDATE chunks SET len = len + 4100, size = size + 4104 WHERE hash = ?1",
            [name(&recs[8])],
        )
        .unwrap();
        db.execute(
            "INSERT INTO chunks (hash, seg, off, len, local, size, last_used)
             VALUES (?1, 999999, 0, 1000, 0, 1076, 0)",
            [vec![0xabu8; 32]],
        )
        .unwrap();
    }
    let before = env.cache_stats(&cache);
    let m = env.mount_with_cache("damaged", &cache, &[]);
    read_all(&m, "read after damaging the cache");
    pread_all(&m, "4 KiB reads after damaging the cache");
    m.unmount();
    let after = env.cache_stats(&cache);
    let dropped = |v: &Value| v["corrupt_dropped"].as_u64().expect("corrupt_dropped");
    assert!(
        dropped(&after) >= dropped(&before) + 5,
        "cache stats should count the dropped chunks: before {before}, after {after}"
    );
    for r in cache_records(&cache) {
        assert_record_intact(&r);
    }

    // Damage one block in the middle of every 8 KiB of every record's data;
    // the random 4 KiB reads (which check only the blocks they read) still
    // never see it.
    for r in cache_records(&cache) {
        damage_record(&r, |b| {
            for at in (4096..(r.len as usize).saturating_sub(4096)).step_by(8192) {
                b[at + 100] ^= 0x20;
            }
        });
    }
    let m = env.mount_with_cache("blocks", &cache, &[]);
    pread_all(&m, "4 KiB reads of damaged blocks");
    read_all(&m, "whole reads after damaged blocks");
    m.unmount();
    for r in cache_records(&cache) {
        assert_record_intact(&r);
    }
}

#[test]
fn local_store_is_checked_in_place_not_copied() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(64);
    let data = random_file(&src, "w.bin", &mut r, 4 * MIB + 5);
    env.push("models/l", &src, &[]);
    let cache = env.path("cache-local");
    let m = env.mount_with_cache("local", &cache, &[]);
    let w = m.path("models/l@1/w.bin");
    assert_same_bytes("first read", &fs::read(&w).unwrap(), &data);
    m.unmount();
    let recs = cache_records(&cache);
    assert!(recs.len() >= 4, "{recs:?}");
    for r in &recs {
        assert!(r.local, "a file:// store's chunk was copied: {r:?}");
        assert_record_intact(r);
    }
    let total: u64 = recs.iter().map(|r| r.size).sum();
    assert!(
        total < data.len() as u64 / 100,
        "checksums only: {total} bytes cached for {} read",
        data.len()
    );

    // A damaged checksum table: dropped, the chunk verified again in place.
    damage_record(&recs[1], |b| b[0] ^= 1);
    let before = env.cache_stats(&cache);
    let m = env.mount_with_cache("local2", &cache, &[]);
    let w = m.path("models/l@1/w.bin");
    drop_page_cache(&w);
    assert_same_bytes("after damaging checksums", &fs::read(&w).unwrap(), &data);
    m.unmount();
    let after = env.cache_stats(&cache);
    assert!(
        after["corrupt_dropped"].as_u64() > before["corrupt_dropped"].as_u64(),
        "before {before}, after {after}"
    );

    // The store's pack damaged after its chunks were verified: the block
    // that holds the damage is never served (EIO), the rest still is.
    let packs: Vec<_> = fs::read_dir(env.path("store/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    let mut b = fs::read(&packs[0]).unwrap();
    let bad = 2 * MIB + 12345;
    b[bad] ^= 1;
    fs::write(&packs[0], &b).unwrap();
    let m = env.mount_with_cache("local3", &cache, &[]);
    let w = m.path("models/l@1/w.bin");
    drop_page_cache(&w);
    let f = fs::File::open(&w).unwrap();
    assert_same_bytes(
        "a block far from the damage",
        &pread_range(&f, 4096 * 3, 4096).unwrap(),
        &data[4096 * 3..4096 * 4],
    );
    let err = pread_range(&f, bad as u64 - 100, 200).expect_err("damaged bytes must not be served");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    drop(f);
    m.unmount();
}

#[test]
fn corrupt_chunk_in_store_gives_eio_and_names_it() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(62);
    random_file(&src, "w.bin", &mut r, 3 * MIB);
    let ok = random_file(&src, "ok.bin", &mut r, 100);
    env.push("models/e", &src, &[]);
    let packs: Vec<_> = fs::read_dir(env.path("store/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    // Damage a byte of w.bin's middle (packs hold files in push order).
    let mut b = fs::read(&packs[0]).unwrap();
    b[MIB + 12345] ^= 1;
    fs::write(&packs[0], &b).unwrap();
    let pack = packs[0].file_name().unwrap().to_str().unwrap().to_string();

    let m = env.mount("corrupt-store", &[]);
    let err = fs::read(m.path("models/e@1/w.bin")).expect_err("a corrupt chunk must not be served");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_same_bytes(
        "another file",
        &fs::read(m.path("models/e@1/ok.bin")).unwrap(),
        &ok,
    );
    let diag = m.diagnostics();
    let line = diag
        .lines()
        .find(|l| l.contains("is corrupt") && l.contains(&pack))
        .unwrap_or_else(|| panic!("no log line names the corrupt chunk of pack {pack}:\n{diag}"));
    assert!(line.contains("chunk "), "{line}");
    m.unmount();
}

#[test]
fn cache_smaller_than_readers_evicts_and_keeps_bytes_right() {
    let (_moto, env, _scratch) = s3_env("evict");
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(63);
    let files: Vec<Vec<u8>> = (0..4)
        .map(|i| random_file(&src, &format!("f{i}.bin"), &mut r, 5 * MIB + i * 1000))
        .collect();
    env.push("models/ev", &src, &[]);
    let cache = env.path("cache-small");
    let limit = 6 * MIB as u64;
    let m = env.mount_with_cache("small", &cache, &["--cache-size", "6M"]);
    // Watch the disk space the cache takes while the readers run: evicted
    // records' space is freed (holes punched, empty segments deleted), and
    // a batch of new records makes room before it is written; a partly
    // freed 4 KiB block at the edge of a record stays allocated, so allow a
    // little over the bound.
    let watcher = {
        let cache = cache.clone();
        Watch::start(Duration::from_millis(5), 0, u64::max, move || {
            cache_disk_bytes(&cache)
        })
    };
    let barrier = std::sync::Barrier::new(files.len());
    std::thread::scope(|sc| {
        for (i, data) in files.iter().enumerate() {
            let (m, barrier) = (&m, &barrier);
            sc.spawn(move || {
                let p = m.path(&format!("models/ev@1/f{i}.bin"));
                barrier.wait();
                for round in 0..2 {
                    drop_page_cache(&p);
                    let got = read_in_pieces(&p, 64 << 10 << (i % 3)).unwrap();
                    assert_same_bytes(&format!("reader {i} round {round}"), &got, data);
                }
                let f = fs::File::open(&p).unwrap();
                for k in 0..40u64 {
                    let off = (k * 131_071 * (i as u64 + 1)) % (data.len() as u64 - 5000);
                    let got = pread_range(&f, off, 5000).unwrap();
                    let o = off as usize;
                    assert_same_bytes(&format!("reader {i} pread {off}"), &got, &data[o..o + 5000]);
                }
            });
        }
    });
    let max = watcher.stop();
    m.unmount();
    let recs = cache_records(&cache);
    let total: u64 = recs.iter().map(|r| r.size).sum();
    let disk = cache_disk_bytes(&cache);
    eprintln!(
        "cache after: {} chunks, {total} bytes ({disk} on disk); at most {max} bytes on disk while reading",
        recs.len()
    );
    assert!(total <= limit, "cache holds {total} bytes, bound {limit}");
    assert!(
        disk <= limit + (1 << 20),
        "cache takes {disk} bytes on disk"
    );
    assert!(
        max <= limit + (1 << 20) + 8192,
        "cache reached {max} bytes on disk, bound {limit}"
    );
    let stats = env.cache_stats(&cache);
    assert!(stats["bytes"].as_u64().unwrap() <= limit, "{stats}");
    assert!(!recs.is_empty());
    for r in &recs {
        assert_record_intact(r);
    }
}

// ---------------------------------------------------------------------------
// 6b. The cache's disk: smaller than --cache-size, then full

/// The share of its filesystem the cache leaves free (`cache_room`).
const KEEP_FREE_PERCENT: u64 = 5;

/// A disk under the cache smaller than `--cache-size`, then filled by other
/// files: every read returns the right bytes; the cache leaves its disk's
/// reserve free, so the node's own small writes still fit beside a full
/// cache; when other files fill the disk, it evicts to give the reserve back.
#[test]
fn cache_on_a_small_disk_leaves_room_and_gives_way() {
    let (_moto, env, _scratch) = s3_env("room");
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(71);
    let a = random_file(&src, "a.bin", &mut r, 40 * MIB);
    let b = random_file(&src, "b.bin", &mut r, 12 * MIB);
    env.push("models/room", &src, &[]);
    let cache = env.path("cache-room");
    let _disk = Tmpfs::mount(&cache, "24m");
    let (total, _) = fs_space(&cache);
    let reserve = total / 100 * KEEP_FREE_PERCENT;
    let m = env.mount_with_cache("room", &cache, &["--cache-size", "1G"]);
    // The least free space while the cache fills its disk.
    let watcher = {
        let cache = cache.clone();
        Watch::start(Duration::from_millis(2), u64::MAX, u64::min, move || {
            fs_space(&cache).1
        })
    };
    let got = read_in_pieces(&m.path("models/room@1/a.bin"), MIB).unwrap();
    assert_same_bytes("a.bin through a cache larger than its disk", &got, &a);
    // The writer is behind the reader by a batch at most.
    std::thread::sleep(Duration::from_millis(500));
    let least = watcher.stop();
    let cached = cache_disk_bytes(&cache);
    eprintln!("disk {total} bytes, reserve {reserve}: cache takes {cached}, least free {least}");
    assert!(
        least >= reserve / 2,
        "the cache took its disk's reserve: {least} bytes free at least, reserve {reserve}\n{}",
        m.diagnostics()
    );
    assert!(
        cached >= total / 2,
        "the cache used {cached} of {total} bytes\n{}",
        m.log_text()
    );
    // The node's own file fits beside the full cache.
    fs::write(cache.join("checkpoint.bin"), vec![7u8; 256 << 10])
        .expect("a 256 KiB file beside a full cache");
    // Other files fill the disk; the next read's chunks find no room.
    let filled = fill_disk(&cache, "filler", 0);
    let (_, free) = fs_space(&cache);
    eprintln!("filler took {filled} bytes, {free} left");
    assert!(free < reserve / 2, "the filler left {free} bytes");
    let got = read_in_pieces(&m.path("models/room@1/b.bin"), MIB).unwrap();
    assert_same_bytes("b.bin on a full disk", &got, &b);
    let gave = poll_until(Duration::from_secs(10), || {
        fs_space(&cache).1 >= reserve / 2
    });
    assert!(
        gave.is_some(),
        "the cache did not give back its reserve: {} bytes free, reserve {reserve}\n{}",
        fs_space(&cache).1,
        m.diagnostics()
    );
    let p = m.path("models/room@1/a.bin");
    drop_page_cache(&p);
    let got = read_in_pieces(&p, MIB).unwrap();
    assert_same_bytes("a.bin again, partly evicted", &got, &a);
    m.unmount();
}

/// No room at all (the disk filled to within its reserve before the cache
/// held anything): reads return the right bytes, the log warns once rather
/// than once per batch, and caching resumes when space is freed.
#[test]
fn cache_without_room_warns_once_and_resumes() {
    let (_moto, env, _scratch) = s3_env("noroom");
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(72);
    let c = random_file(&src, "c.bin", &mut r, 12 * MIB);
    let d = random_file(&src, "d.bin", &mut r, 6 * MIB);
    env.push("models/noroom", &src, &[]);
    let cache = env.path("cache-noroom");
    let _disk = Tmpfs::mount(&cache, "24m");
    let m = env.mount_with_cache("noroom", &cache, &["--cache-size", "1G"]);
    let (total, _) = fs_space(&cache);
    let reserve = total / 100 * KEEP_FREE_PERCENT;
    // Room for the log, none for records.
    fill_disk(&cache, "filler", reserve / 4);
    let got = read_in_pieces(&m.path("models/noroom@1/c.bin"), MIB).unwrap();
    assert_same_bytes("c.bin with no room to cache it", &got, &c);
    assert!(
        poll_until(Duration::from_secs(10), || m
            .log_text()
            .contains("cache write failed"))
        .is_some(),
        "no warning of the failed cache writes\n{}",
        m.diagnostics()
    );
    let before = cache_disk_bytes(&cache);
    fs::remove_file(cache.join("filler")).unwrap();
    let got = read_in_pieces(&m.path("models/noroom@1/d.bin"), MIB).unwrap();
    assert_same_bytes("d.bin after the space was freed", &got, &d);
    assert!(
        poll_until(Duration::from_secs(10), || m
            .log_text()
            .contains("cache writes resumed"))
        .is_some(),
        "caching did not resume\n{}",
        m.diagnostics()
    );
    let log = m.log_text();
    assert_eq!(
        log.matches("cache write failed").count(),
        1,
        "one warning for the run of failures\n{log}"
    );
    let uncached: u64 = log
        .split("cache writes resumed; ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in the resume line\n{log}"));
    // The writer trails the reader: wait for d.bin's records.
    poll_until(Duration::from_secs(10), || {
        cache_disk_bytes(&cache) >= 5 * MIB as u64
    });
    let after = cache_disk_bytes(&cache);
    eprintln!("{uncached} batches uncached; cache {before} -> {after} bytes on disk");
    assert!(
        uncached >= 2,
        "only {uncached} batches failed: the warning was not tested against a run"
    );
    assert!(
        before < (64 << 10),
        "records written without room: {before} bytes"
    );
    assert!(
        after >= 5 * MIB as u64,
        "d.bin was not cached: {after} bytes\n{log}"
    );
    m.unmount();
}

// ---------------------------------------------------------------------------
// 7. Store stopped mid-read: uncached reads fail with EIO, cached ones work

fn assert_eio_within(path: &Path, bound: Duration, why: &str) {
    let t = Instant::now();
    let r = fs::read(path);
    let took = t.elapsed();
    match r {
        Ok(b) => panic!(
            "{why}: reading {} succeeded ({} bytes), want EIO",
            path.display(),
            b.len()
        ),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "{why}: reading {} failed with {e}, want EIO",
            path.display()
        ),
    }
    eprintln!("{why}: EIO after {took:?}");
    assert!(took < bound, "{why}: EIO took {took:?}, bound {bound:?}");
}

#[test]
fn store_stopped_mid_read_gives_eio() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut moto = Moto::start(scratch.path(), "midread");
    let url = format!("s3://midread/p{:08x}", rand::random::<u32>());
    let env = TestEnv::with_store(&url, moto.env());
    let src = env.path("src");
    let mut r = StdRng::seed_from_u64(7);
    let a = random_file(&src, "a.bin", &mut r, 1_200_000);
    random_file(&src, "b.bin", &mut r, 800_000);
    random_file(&src, "c.bin", &mut r, 500_000);
    env.push("models/s", &src, &[]);

    let m = env.mount("midread", &["--timeout", "3s"]);
    let (pa, pb, pc) = (
        m.path("models/s@1/a.bin"),
        m.path("models/s@1/b.bin"),
        m.path("models/s@1/c.bin"),
    );
    assert_same_bytes("A while the store is up", &fs::read(&pa).unwrap(), &a);
    // Looking B and C up needs only the (already fetched) manifest.
    assert_eq!(fs::metadata(&pb).unwrap().len(), 800_000);
    assert_eq!(fs::metadata(&pc).unwrap().len(), 500_000);

    // A store that accepts connections but never answers: the --timeout bounds it.
    moto.freeze();
    assert_eio_within(&pb, Duration::from_secs(15), "store frozen");
    drop_page_cache(&pa);
    assert_same_bytes(
        "A (cached) while the store is frozen",
        &fs::read(&pa).unwrap(),
        &a,
    );

    // A store that is gone: connections are refused.
    moto.kill();
    assert_eio_within(&pc, Duration::from_secs(15), "store killed");
    assert_eio_within(&pb, Duration::from_secs(15), "store killed, second try");
    drop_page_cache(&pa);
    assert_same_bytes(
        "A (cached) after the store died",
        &fs::read(&pa).unwrap(),
        &a,
    );
    assert_eq!(
        names(&m.path("models")),
        ["s@1", "s@1.json", "s@latest", "s@staging"]
    );
    m.unmount();
}

// ---------------------------------------------------------------------------
// 8. A version pushed elsewhere appears within the refresh interval

fn poll_until(bound: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < bound {
        if ok() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn new_version_appears_within_refresh() {
    let env = TestEnv::file_store();
    let mut r = StdRng::seed_from_u64(8);
    let v1 = env.path("v1");
    let v2 = env.path("v2");
    let d1 = random_file(&v1, "data.bin", &mut r, 2 * MIB + 1);
    let d2 = random_file(&v2, "data.bin", &mut r, MIB + 2);
    write_file(&v2.join("extra.txt"), b"new in v2\n", 0o644);
    env.push("models/x", &v1, &["-m", "one"]);

    let m = env.mount("refresh", &["--refresh", "2s"]);
    assert_eq!(
        names(&m.path("models")),
        ["x@1", "x@1.json", "x@latest", "x@staging"]
    );
    assert_eq!(readlink(&m.path("models/x@latest")), "x@1");
    let sidecar = |v: u32| -> Value {
        let p = m.path(&format!("models/x@{v}.json"));
        serde_json::from_slice(
            &fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())),
        )
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
    };
    // Read (and so page-cache) the sidecar while v1 is `latest`.
    assert_eq!(sidecar(1), env.show_json("models/x@1"));
    assert_eq!(sidecar(1)["aliases"], json!(["latest"]));
    // Open version 1 through the latest alias and read part of it.
    let open_v1 = fs::File::open(m.path("models/x@latest/data.bin")).expect("open via latest");
    let half = d1.len() / 2;
    assert_same_bytes(
        "first half of v1",
        &pread_range(&open_v1, 0, half).unwrap(),
        &d1[..half],
    );

    // A name looked up before it exists must not stay negative.
    assert_eq!(
        fs::metadata(m.path("models/x@2"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOENT)
    );
    // Other processes commit version 2 to the same store and pin v1 as
    // `stable` (so x@1.json's aliases go from ["latest"] to ["stable"]).
    env.push("models/x", &v2, &["-m", "two"]);
    env.ok(&["alias", "models/x@1", "stable"]);

    let listed = poll_until(Duration::from_secs(10), || {
        names(&m.path("models"))
            == [
                "x@1",
                "x@1.json",
                "x@2",
                "x@2.json",
                "x@latest",
                "x@stable",
                "x@staging",
            ]
    });
    assert!(
        listed.is_some(),
        "x@2 not listed within 10 s: {:?}",
        names(&m.path("models"))
    );
    let flipped = poll_until(Duration::from_secs(10), || {
        fs::read_link(m.path("models/x@latest")).is_ok_and(|t| t == Path::new("x@2"))
    });
    assert!(
        flipped.is_some(),
        "x@latest still -> {:?} after 10 s",
        fs::read_link(m.path("models/x@latest"))
    );
    assert_eq!(readlink(&m.path("models/x@stable")), "x@1");
    assert_tree_same(&v2, &m.path("models/x@2"));
    // Sidecars follow the catalog within the refresh interval, including one
    // the kernel has cached whose new content has the same length.
    let (show1, show2) = (env.show_json("models/x@1"), env.show_json("models/x@2"));
    assert_eq!(show1["aliases"], json!(["stable"]));
    assert_eq!(sidecar(2), show2);
    let fresh = poll_until(Duration::from_secs(10), || sidecar(1) == show1);
    assert!(
        fresh.is_some(),
        "x@1.json still stale 10 s after the catalog changed: {} vs show {}",
        sidecar(1)["aliases"],
        show1["aliases"]
    );
    assert_same_bytes(
        "x@latest/data.bin after the flip",
        &fs::read(m.path("models/x@latest/data.bin")).unwrap(),
        &d2,
    );

    // The descriptor opened before keeps reading version 1, to the end.
    assert_same_bytes(
        "rest of v1 via the old fd",
        &pread_range(&open_v1, half as u64, d1.len()).unwrap(),
        &d1[half..],
    );
    assert_same_bytes(
        "all of v1 via the old fd",
        &pread_range(&open_v1, 0, d1.len() + 10).unwrap(),
        &d1,
    );
    assert_eq!(open_v1.metadata().unwrap().len(), d1.len() as u64);
    assert_tree_same(&v1, &m.path("models/x@1"));
    let sc: Value = serde_json::from_slice(&fs::read(m.path("models/x@2.json")).unwrap()).unwrap();
    assert_eq!(sc["message"], json!("two"));
    drop(open_v1);
    m.unmount();
}

/// `commit` takes the context options `push` takes: they are checked
/// against the staged tree before anything is stored, then appear in the new
/// version's sidecar, through the mount too; a feature file carried over from
/// the base keeps its schema summary.
#[test]
fn commit_carries_context() {
    let env = TestEnv::file_store();
    let fsrc = env.path("src-features");
    write_file(&fsrc.join("a.csv"), b"k,v\n1,x\n", 0o644);
    env.push("features/clicks", &fsrc, &["--source", "day 1"]);
    let src = env.path("src-model");
    write_file(&src.join("weights.bin"), b"w1", 0o644);
    env.push("models/x", &src, &[]);

    let m = env.mount("commit-context", &["--refresh", "1s"]);
    let st = m.path("models/x@staging");
    fs::create_dir_all(st.join("logs")).expect("mkdir in staging");
    fs::write(st.join("logs/train.log"), b"epoch 1\n").unwrap();
    fs::write(st.join("in.txt"), b"abc\n").unwrap();
    fs::write(st.join("out.txt"), b"ABC\n").unwrap();
    fs::write(m.path("features/clicks@staging/b.csv"), b"n\n1\n2\n").unwrap();
    let tests = env.path("tests.json");
    fs::write(
        &tests,
        json!([{"name": "upper", "command": "tr a-z A-Z < {input}",
                "input": "in.txt", "expected": "out.txt"}])
        .to_string(),
    )
    .unwrap();

    // A log that is not in the staged tree is refused; nothing is committed.
    let o = env
        .cmd(&["commit", "models/x", "--log", "logs/none.log"])
        .output()
        .expect("run commit");
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("logs/none.log"),
        "{}",
        describe("commit with a missing log", &o)
    );
    env.ok(&[
        "commit",
        "models/x",
        "-m",
        "staged",
        "--log",
        "logs/train.log",
        "--metric",
        "auc=0.9",
        "--framework",
        "numpy",
        "--tests-file",
        s(&tests),
        "--input",
        "features/clicks",
    ]);
    env.ok(&["commit", "features/clicks", "--source", "day 2"]);
    let sc = env.show_json("models/x@2");
    assert_eq!(sc["lineage"]["inputs"], json!(["features/clicks@1"]));
    assert_eq!(
        sc["context"],
        json!({"framework": "numpy", "log": "logs/train.log"})
    );
    assert_eq!(sc["metrics"], json!({"auc": 0.9}));
    assert_eq!(sc["tests"][0]["name"], json!("upper"));
    let fsc = env.show_json("features/clicks@2");
    assert_eq!(fsc["lineage"]["source"], json!("day 2"));
    assert_eq!(fsc["schema"]["files"]["a.csv"]["rows"], json!(1));
    assert_eq!(fsc["schema"]["files"]["b.csv"]["rows"], json!(2));
    env.ok(&["test", "models/x@2"]);

    // The mount's sidecar says the same once it has refreshed.
    let side = m.path("models/x@2.json");
    let want = env.show_json("models/x@2");
    let mut last = Value::Null;
    let same = poll_until(Duration::from_secs(10), || {
        last = fs::read(&side)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        last == want
    });
    assert!(
        same.is_some(),
        "models/x@2.json within 10 s: {last:#} vs show {want:#}"
    );
    m.unmount();
}

// ---------------------------------------------------------------------------
// 9. A deleted version leaves the mount within the refresh interval; a file
//    already open keeps reading, through gc, within the grace period.

#[test]
fn deleted_version_leaves_the_mount() {
    let env = TestEnv::file_store();
    let mut r = StdRng::seed_from_u64(9);
    let (v1, v2) = (env.path("v1"), env.path("v2"));
    let d1 = random_file(&v1, "data.bin", &mut r, 3 * MIB + 5);
    random_file(&v2, "data.bin", &mut r, MIB);
    env.push("models/x", &v1, &["-m", "one", "--alias", "old"]);
    env.push("models/x", &v2, &["-m", "two"]);
    let m = env.mount("rm", &["--refresh", "1s"]);
    assert_eq!(
        names(&m.path("models")),
        [
            "x@1",
            "x@1.json",
            "x@2",
            "x@2.json",
            "x@latest",
            "x@old",
            "x@staging"
        ]
    );
    let open_v1 = fs::File::open(m.path("models/x@1/data.bin")).expect("open v1");
    let head = pread_range(&open_v1, 0, MIB).unwrap();
    assert_same_bytes("v1 head", &head, &d1[..MIB]);

    env.ok(&["rm", "models/x@1", "--yes", "--force", "-m", "gone"]);
    let gone = poll_until(Duration::from_secs(10), || {
        names(&m.path("models")) == ["x@2", "x@2.json", "x@latest", "x@staging"]
    });
    assert!(
        gone.is_some(),
        "x@1 still listed 10 s after rm: {:?}",
        names(&m.path("models"))
    );
    // Lookups of the deleted version fail once the kernel's entries expire
    // (one refresh interval), the version directory's included.
    for p in ["models/x@1.json", "models/x@1", "models/x@1/data.bin"] {
        let gone = poll_until(Duration::from_secs(10), || {
            fs::metadata(m.path(p)).err().and_then(|e| e.raw_os_error()) == Some(libc::ENOENT)
        });
        assert!(gone.is_some(), "{p} still resolves 10 s after rm");
    }
    // gc now finds v1's data unreferenced, but its grace period has not
    // passed: the descriptor opened before keeps reading it, to the end.
    let gc = env.ok(&["gc", "--grace", "1h", "--json"]);
    let rep: Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert!(
        rep["store"]["dead_bytes"].as_u64().unwrap() >= d1.len() as u64,
        "{rep}"
    );
    assert_eq!(rep["freed_bytes"], 0);
    assert_same_bytes(
        "v1 via the old fd after rm and gc",
        &pread_range(&open_v1, 0, d1.len()).unwrap(),
        &d1,
    );
    drop(open_v1);
    m.unmount();
}

/// The kernel protocol (docs/mount.md, "Kernel protocol"), checked in the
/// daemon's request log (`-vv` logs every request fuser receives): a listing
/// whose entries are then stat'ed is served by READDIRPLUS with no LOOKUP per
/// entry, and a sequential reader's READs are 1 MiB.
#[test]
fn modern_protocol_readdirplus_and_large_reads() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    for i in 0..300 {
        write_file(
            &src.join(format!("many/f{i:03}")),
            format!("{i}").as_bytes(),
            0o640,
        );
    }
    let mut r = StdRng::seed_from_u64(31);
    let big = random_file(&src, "big.bin", &mut r, 4 * MIB);
    env.push("models/p", &src, &[]);
    let m = env.mount("proto", &["-vv"]);

    let mut n = 0;
    for e in fs::read_dir(m.path("models/p@1/many")).expect("list") {
        let e = e.expect("entry");
        let md = fs::symlink_metadata(e.path()).expect("stat");
        let i: usize = e.file_name().to_str().unwrap()[1..].parse().unwrap();
        assert_eq!(md.len(), format!("{i}").len() as u64);
        assert_eq!(md.permissions().mode() & 0o7777, 0o640);
        n += 1;
    }
    assert_eq!(n, 300);
    // `ls -l` asks every file for an SELinux label and an ACL; told that
    // this filesystem has none (EOPNOTSUPP), it stops asking.
    let ls = std::process::Command::new("ls")
        .arg("-l")
        .arg(m.path("models/p@1/many"))
        .output()
        .expect("run ls -l");
    assert!(ls.status.success(), "{}", describe("ls -l", &ls));
    assert_eq!(String::from_utf8_lossy(&ls.stdout).lines().count(), 301);
    let got = read_in_pieces(&m.path("models/p@1/big.bin"), MIB).expect("read big.bin");
    assert_same_bytes("big.bin", &got, &big);

    let log = m.log_text();
    let proto = log
        .lines()
        .find(|l| l.contains("FUSE protocol:"))
        .unwrap_or_else(|| panic!("no protocol line in the log\n{}", m.diagnostics()));
    for want in [
        "max_write 1024 KiB",
        "DO_READDIRPLUS",
        "PARALLEL_DIROPS",
        "MAX_PAGES",
    ] {
        assert!(proto.contains(want), "{want} not negotiated: {proto}");
    }
    let count = |pat: &str| log.lines().filter(|l| l.contains(pat)).count();
    assert!(count(" READDIRPLUS ") >= 1, "no READDIRPLUS request");
    let xattrs = count(" GETXATTR ");
    assert!(
        xattrs <= 4,
        "{xattrs} GETXATTR requests for one ls -l of 300 files"
    );
    let lookups = count(" LOOKUP name \"f");
    assert_eq!(lookups, 0, "{lookups} LOOKUPs for listed entries");
    let max_read = log
        .lines()
        .filter(|l| l.contains(" READ fh"))
        .filter_map(|l| {
            l.split("size ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert_eq!(max_read, MIB, "largest READ request");
    m.unmount();
}

// ---------------------------------------------------------------------------
// 10. A version whose pack gc rewrote (and deleted) reads through the mount.

#[test]
fn reads_through_a_rewritten_pack() {
    let env = TestEnv::file_store();
    let mut r = StdRng::seed_from_u64(10);
    let (v1, v2) = (env.path("v1"), env.path("v2"));
    let keep = random_file(&v1, "keep.bin", &mut r, 2 * MIB + 3);
    random_file(&v1, "drop.bin", &mut r, 6 * MIB);
    random_file(&v2, "keep.bin", &mut r, 0);
    fs::write(v2.join("keep.bin"), &keep).unwrap();
    env.push("models/a", &v1, &[]);
    env.push("models/b", &v2, &[]);
    env.ok(&["rm", "models/a@1", "--yes"]);
    let o = env.ok(&["gc", "--grace", "0s", "--json"]);
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["rewritten"]["packs"], 1, "{rep}");
    assert!(
        rep["freed_bytes"].as_u64().unwrap() >= 8 * MIB as u64,
        "{rep}"
    );
    let m = env.mount("rewritten", &[]);
    assert_same_bytes(
        "models/b@1/keep.bin through the forward record",
        &fs::read(m.path("models/b@1/keep.bin")).unwrap(),
        &keep,
    );
    m.unmount();
}
