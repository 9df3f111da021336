//! Real-FUSE tests of the write path: `MNT/<kind>/<name>@staging/` through a
//! live `assetfs mount`, and `assetfs commit` / `status` / `reset` as separate
//! processes. A reference-model property test against a plain directory,
//! commit then remount, the open-writer check, SIGKILL of the commit process
//! and of the mount daemon, concurrent commits from four nodes, and a full
//! disk under the staging area. See mount-tests/README.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "harness.rs"]
mod harness;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use common::*;
use harness::*;

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Shared helpers

/// One entry of a tree, compared by content hash so that a mismatch prints
/// a line, not megabytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        blake3: String,
    },
    Link {
        target: String,
    },
}

type Snap = BTreeMap<String, Item>;

/// Every entry under `root` (not following symlinks) with its mode and, for
/// files, the hash of its bytes read in full. `mask` limits the compared mode bits.
fn snapshot_masked(root: &Path, mask: u32) -> Result<Snap, String> {
    let mut out = Snap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        let e = e.map_err(|err| format!("walking {}: {err}", root.display()))?;
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_str()
            .expect("UTF-8")
            .to_string();
        let md = fs::symlink_metadata(e.path())
            .map_err(|err| format!("lstat {}: {err}", e.path().display()))?;
        let mode = md.permissions().mode() & mask;
        let item = if md.file_type().is_symlink() {
            Item::Link {
                target: fs::read_link(e.path())
                    .map_err(|err| format!("readlink {}: {err}", e.path().display()))?
                    .to_str()
                    .expect("UTF-8")
                    .to_string(),
            }
        } else if md.is_dir() {
            Item::Dir { mode }
        } else {
            let data =
                fs::read(e.path()).map_err(|err| format!("read {}: {err}", e.path().display()))?;
            if data.len() as u64 != md.len() {
                return Err(format!(
                    "{}: st_size {} but {} bytes read",
                    e.path().display(),
                    md.len(),
                    data.len()
                ));
            }
            Item::File {
                mode,
                size: md.len(),
                blake3: blake3_hex(&data),
            }
        };
        out.insert(rel, item);
    }
    Ok(out)
}

fn snapshot(root: &Path) -> Snap {
    snapshot_masked(root, 0o7777).unwrap_or_else(|e| panic!("{e}"))
}

/// Describes how two snapshots differ, entry by entry.
fn snap_diff(got: &Snap, want: &Snap) -> String {
    common::trees::map_diff(want, got)
}

fn assert_snap(what: &str, got: &Snap, want: &Snap) {
    assert!(got == want, "{what}:\n{}", snap_diff(got, want));
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// Copies a tree (files, dirs, symlinks) keeping permission bits.
fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir copy root");
    let mut dirs = vec![];
    for e in walkdir::WalkDir::new(src).min_depth(1).follow_links(false) {
        let e = e.expect("walk source");
        let rel = e.path().strip_prefix(src).expect("under src");
        let to = dst.join(rel);
        let md = fs::symlink_metadata(e.path()).expect("lstat source");
        if md.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).expect("readlink"), &to)
                .expect("symlink");
        } else if md.is_dir() {
            fs::create_dir(&to).expect("mkdir");
            dirs.push((to, md.permissions().mode()));
        } else {
            fs::copy(e.path(), &to).expect("copy");
            fs::set_permissions(&to, fs::Permissions::from_mode(md.permissions().mode()))
                .expect("chmod");
        }
    }
    for (d, mode) in dirs.into_iter().rev() {
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).expect("chmod dir");
    }
}

/// The local directory of a `file://` store.
fn store_root(env: &TestEnv) -> PathBuf {
    PathBuf::from(env.store.strip_prefix("file://").expect("a file:// store"))
}

/// The versions of `models/<name>` in a `file://` store, read from the store
/// itself (temporary files of an interrupted write are not versions).
fn store_versions(env: &TestEnv, name: &str) -> Vec<u64> {
    let dir = store_root(env).join(format!("refs/models/{name}/v"));
    let mut v: Vec<u64> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// The complete objects under a store folder (packs, indexes, manifests).
fn store_objects(env: &TestEnv, folder: &str) -> BTreeSet<String> {
    match fs::read_dir(store_root(env).join(folder)) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.contains('#'))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Runs `assetfs ARGS` (bounded) and returns the output, successful or not.
fn try_cmd(env: &TestEnv, args: &[&str]) -> std::process::Output {
    run_limited(&mut env.cmd(args), CMD_LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `assetfs commit REF -m MSG` and the version it printed.
fn commit(env: &TestEnv, asset: &str, msg: &str) -> u64 {
    let o = env.ok(&["commit", asset, "-m", msg]);
    version_of(&stdout(&o), asset)
}

fn version_of(printed: &str, asset: &str) -> u64 {
    printed
        .strip_prefix(&format!("{asset}@"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("commit printed {printed:?}, not {asset}@<version>"))
}

/// `assetfs status REF --json`, parsed.
fn status_json(env: &TestEnv, asset: &str) -> Value {
    let o = env.ok(&["--json", "status", asset]);
    serde_json::from_slice(&o.stdout).expect("status --json is JSON")
}

fn changes(status: &Value) -> Vec<(String, String)> {
    status["changes"]
        .as_array()
        .expect("changes array")
        .iter()
        .map(|c| {
            (
                c["path"].as_str().expect("path").to_string(),
                c["change"].as_str().expect("change").to_string(),
            )
        })
        .collect()
}

/// `assetfs get REF` into a fresh directory; returns its snapshot (modes
/// masked to 0o777, which is what `get` restores).
fn get_snapshot(env: &TestEnv, reference: &str) -> Snap {
    let dir = env.path(&format!("get-{}", rand::random::<u64>()));
    env.ok(&["get", reference, s(&dir)]);
    let snap = snapshot_masked(&dir, 0o777).unwrap_or_else(|e| panic!("{e}"));
    let _ = fs::remove_dir_all(&dir);
    snap
}

fn mask(snap: &Snap, m: u32) -> Snap {
    snap.iter()
        .map(|(k, v)| {
            let v = match v {
                Item::Dir { mode } => Item::Dir { mode: mode & m },
                Item::File { mode, size, blake3 } => Item::File {
                    mode: mode & m,
                    size: *size,
                    blake3: blake3.clone(),
                },
                l => l.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A small model for the staging tests: nested dirs with distinct modes, a
/// multi-chunk file, an empty file and a symlink.
fn make_base(root: &Path, seed: u64) {
    let mut r = StdRng::seed_from_u64(seed);
    random_file(root, "a", &mut r, 5_000);
    make_dir(&root.join("d"), 0o755);
    let da = random_bytes(&mut r, 300_007);
    write_file(&root.join("d/a"), &da, 0o600);
    make_dir(&root.join("d/e"), 0o750);
    write_file(&root.join("d/e/a"), b"", 0o755);
    symlink_at(&root.join("b"), "d/a");
}

/// A child process killed and reaped on drop.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// Waits at most `limit` for the child to exit.
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        let c = self.0.as_mut().expect("running");
        loop {
            if let Some(st) = c.try_wait().expect("try_wait") {
                self.0 = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "child did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `assetfs ARGS` with stdout and stderr going to files.
fn spawn(env: &TestEnv, args: &[&str], out: &Path) -> ChildGuard {
    let f = File::create(out).expect("output file");
    let child = env
        .cmd(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("dup"))
        .stderr(f)
        .spawn()
        .expect("spawn assetfs");
    ChildGuard(Some(child))
}

/// The pid of the `assetfs ... mount MNT` daemon serving `mnt`.
fn daemon_pid(mnt: &Path) -> u32 {
    let want = mnt.as_os_str().as_bytes();
    let mut found = vec![];
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first().is_some_and(|a| *a == BIN.as_bytes())
            && args.contains(&&b"mount"[..])
            && args.contains(&want)
        {
            found.push(pid);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "mount daemons for {}: {found:?}",
        mnt.display()
    );
    found[0]
}

fn sigkill(pid: u32) {
    // SAFETY: plain kill(2) on a process this test started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid}");
}

/// Waits (bounded) until `p` is no longer a mount point.
fn wait_unmounted(p: &Path, bound: Duration) {
    let deadline = Instant::now() + bound;
    while is_mounted(p) {
        assert!(
            Instant::now() < deadline,
            "{} still mounted after {bound:?}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// 1. Reference model: staging through the mount vs a plain directory

const PATHS: &[&str] = &["a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "e", "e/a"];
/// Symlink targets, relative to the link's directory; all stay inside the tree.
const TARGETS: &[&str] = &["a", "d/a", "e", "d", "zz"];
const MODES: &[u32] = &[0o600, 0o644, 0o755, 0o400, 0o750, 0o4755, 0o1777];
/// open(2) flags of the `Open` operation.
const OPEN_FLAGS: &[i32] = &[
    libc::O_RDONLY,
    libc::O_RDWR,
    libc::O_WRONLY | libc::O_APPEND,
    libc::O_RDWR | libc::O_CREAT,
    libc::O_WRONLY | libc::O_TRUNC,
];
const HANDLES: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    /// open(O_CREAT | O_EXCL | O_WRONLY, 0644), then close.
    Create(usize),
    /// open(O_WRONLY), pwrite `len` copies of a byte at an offset, close.
    Write(usize, u64, usize, u8),
    /// open(O_WRONLY | O_APPEND), write, close.
    Append(usize, usize, u8),
    /// truncate(2) by path.
    Truncate(usize, u64),
    /// open(O_WRONLY), ftruncate(2), close.
    FTruncate(usize, u64),
    /// Reads the whole file by path.
    Read(usize),
    Rename(usize, usize),
    Unlink(usize),
    Mkdir(usize),
    Rmdir(usize),
    Chmod(usize, u32),
    Symlink(usize, usize),
    /// Opens path into a handle slot (closing what was there) with OPEN_FLAGS[f].
    Open(usize, usize, usize),
    /// pwrite through a handle.
    HWrite(usize, u64, usize, u8),
    /// Reads through a handle from offset 0 to EOF.
    HRead(usize),
    /// ftruncate through a handle.
    HTruncate(usize, u64),
    /// fsync through a handle.
    HSync(usize),
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    let h = 0..HANDLES;
    prop_oneof![
        3 => p.clone().prop_map(Op::Create),
        3 => (p.clone(), 0u64..3000, 0usize..2000, any::<u8>()).prop_map(|(a, o, n, b)| Op::Write(a, o, n, b)),
        1 => (p.clone(), 0usize..2000, any::<u8>()).prop_map(|(a, n, b)| Op::Append(a, n, b)),
        1 => (p.clone(), 0u64..4000).prop_map(|(a, n)| Op::Truncate(a, n)),
        1 => (p.clone(), 0u64..4000).prop_map(|(a, n)| Op::FTruncate(a, n)),
        1 => p.clone().prop_map(Op::Read),
        3 => (p.clone(), p.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => p.clone().prop_map(Op::Unlink),
        2 => p.clone().prop_map(Op::Mkdir),
        1 => p.clone().prop_map(Op::Rmdir),
        1 => (p.clone(), prop::sample::select(MODES)).prop_map(|(a, m)| Op::Chmod(a, m)),
        1 => (p.clone(), 0..TARGETS.len()).prop_map(|(a, t)| Op::Symlink(a, t)),
        2 => (h.clone(), p, 0..OPEN_FLAGS.len()).prop_map(|(h, a, f)| Op::Open(h, a, f)),
        2 => (h.clone(), 0u64..3000, 0usize..2000, any::<u8>()).prop_map(|(h, o, n, b)| Op::HWrite(h, o, n, b)),
        1 => h.clone().prop_map(Op::HRead),
        1 => (h.clone(), 0u64..4000).prop_map(|(h, n)| Op::HTruncate(h, n)),
        1 => h.clone().prop_map(Op::HSync),
        1 => h.prop_map(Op::Close),
    ]
}

/// What an operation returned: nothing, or what was read (length and hash).
type Outcome = Result<Option<(usize, String)>, i32>;

/// One side of the model: a root directory and its open handles.
struct Side {
    root: PathBuf,
    handles: [Option<File>; HANDLES],
}

fn open_raw(path: &Path, flags: i32) -> std::io::Result<File> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: a valid C string; the descriptor is owned by the File below.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o644 as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn read_all_at(f: &File) -> std::io::Result<Vec<u8>> {
    let mut out = vec![];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read_at(&mut buf, out.len() as u64)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn read_result(data: Vec<u8>) -> Option<(usize, String)> {
    Some((data.len(), blake3_hex(&data)))
}

impl Side {
    fn new(root: PathBuf) -> Side {
        Side {
            root,
            handles: Default::default(),
        }
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        let p = |i: usize| self.root.join(PATHS[i]);
        let e = |r: std::io::Result<()>| r.map(|_| None).map_err(|e| errno_of(&e));
        match op {
            Op::Create(i) => e(fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(p(*i))
                .map(drop)),
            Op::Write(i, off, n, b) => e(fs::OpenOptions::new()
                .write(true)
                .open(p(*i))
                .and_then(|f| f.write_all_at(&vec![*b; *n], *off))),
            Op::Append(i, n, b) => e(fs::OpenOptions::new()
                .append(true)
                .open(p(*i))
                .and_then(|mut f| f.write_all(&vec![*b; *n]))),
            Op::Truncate(i, n) => e(truncate(&p(*i), *n as i64)),
            Op::FTruncate(i, n) => e(fs::OpenOptions::new()
                .write(true)
                .open(p(*i))
                .and_then(|f| f.set_len(*n))),
            Op::Read(i) => fs::read(p(*i)).map(read_result).map_err(|e| errno_of(&e)),
            Op::Rename(a, b) => e(fs::rename(p(*a), p(*b))),
            Op::Unlink(i) => e(fs::remove_file(p(*i))),
            Op::Mkdir(i) => e(fs::DirBuilder::new().mode(0o755).create(p(*i))),
            Op::Rmdir(i) => e(fs::remove_dir(p(*i))),
            Op::Chmod(i, m) => e(fs::set_permissions(p(*i), fs::Permissions::from_mode(*m))),
            Op::Symlink(i, t) => e(std::os::unix::fs::symlink(TARGETS[*t], p(*i))),
            Op::Open(h, i, f) => {
                self.handles[*h] = None;
                match open_raw(&p(*i), OPEN_FLAGS[*f]) {
                    Ok(file) => {
                        self.handles[*h] = Some(file);
                        Ok(None)
                    }
                    Err(err) => Err(errno_of(&err)),
                }
            }
            Op::HWrite(h, off, n, b) => match &self.handles[*h] {
                Some(f) => e(f.write_all_at(&vec![*b; *n], *off)),
                None => Err(libc::EBADF),
            },
            Op::HRead(h) => match &self.handles[*h] {
                Some(f) => read_all_at(f).map(read_result).map_err(|e| errno_of(&e)),
                None => Err(libc::EBADF),
            },
            Op::HTruncate(h, n) => match &self.handles[*h] {
                Some(f) => e(f.set_len(*n)),
                None => Err(libc::EBADF),
            },
            Op::HSync(h) => match &self.handles[*h] {
                Some(f) => e(f.sync_all()),
                None => Err(libc::EBADF),
            },
            Op::Close(h) => match self.handles[*h].take() {
                Some(_) => Ok(None),
                None => Err(libc::EBADF),
            },
        }
    }

    fn close_all(&mut self) {
        for h in &mut self.handles {
            *h = None;
        }
    }
}

/// The model test's fixture: one store, one base version (`models/x@1`
/// from `make_base`), one mount (replaced before the harness watchdog
/// would fire), and a scratch area for the plain directories.
struct Model {
    // Dropped first: fields drop in declaration order, and the mount needs
    // the environment's directories to unmount.
    mount: RefCell<Option<Mounted>>,
    env: TestEnv,
    src: PathBuf,
    base: Snap,
    mounted_at: Cell<Instant>,
    cases: Cell<usize>,
}

/// Remount before this age (the harness watchdog kills a mount at 150 s).
const REMOUNT_AFTER: Duration = Duration::from_secs(90);

impl Model {
    fn new() -> Model {
        let env = TestEnv::file_store();
        let src = env.path("src");
        make_base(&src, 11);
        env.push("models/x", &src, &["-m", "base"]);
        let base = snapshot(&src);
        let m = env.mount("model", &[]);
        Model {
            mount: RefCell::new(Some(m)),
            env,
            src,
            base,
            mounted_at: Cell::new(Instant::now()),
            cases: Cell::new(0),
        }
    }

    fn staging(&self) -> PathBuf {
        self.mount
            .borrow()
            .as_ref()
            .expect("mounted")
            .path("models/x@staging")
    }

    fn maybe_remount(&self) {
        if self.mounted_at.get().elapsed() < REMOUNT_AFTER {
            return;
        }
        let old = self.mount.borrow_mut().take().expect("mounted");
        let cache = old.cache_dir.clone();
        old.unmount();
        *self.mount.borrow_mut() = Some(self.env.mount_with_cache("model", &cache, &[]));
        self.mounted_at.set(Instant::now());
    }

    /// Runs one sequence against a fresh staging (reset to `x@1`) and a
    /// fresh copy of the base tree; any difference is an error.
    fn run_case(&self, ops: &[Op]) -> Result<(), String> {
        self.maybe_remount();
        let n = self.cases.get();
        self.cases.set(n + 1);
        let o = try_cmd(&self.env, &["reset", "models/x", "--yes"]);
        if !o.status.success() {
            return Err(describe("assetfs reset models/x --yes", &o));
        }
        let stage_root = self.staging();
        let fresh = snapshot_masked(&stage_root, 0o7777)?;
        if fresh != self.base {
            return Err(format!(
                "after reset, x@staging is not x@1:\n{}",
                snap_diff(&fresh, &self.base)
            ));
        }
        let case_dir = self.env.path(&format!("model-case-{n}"));
        let plain_root = case_dir.join("root");
        copy_tree(&self.src, &plain_root);
        let mut plain = Side::new(plain_root.clone());
        let mut stage = Side::new(stage_root.clone());
        let mut result = Ok(());
        for (i, op) in ops.iter().enumerate() {
            let want = plain.apply(op);
            let got = stage.apply(op);
            if got != want {
                result = Err(format!(
                    "op {i} {op:?}: staging gave {got:?}, a local directory {want:?}"
                ));
                break;
            }
        }
        plain.close_all();
        stage.close_all();
        if result.is_ok() {
            let want = snapshot_masked(&plain_root, 0o7777)?;
            let got = snapshot_masked(&stage_root, 0o7777)?;
            if got != want {
                result = Err(format!("final trees differ:\n{}", snap_diff(&got, &want)));
            }
        }
        let _ = fs::remove_dir_all(&case_dir);
        result
    }
}

#[test]
fn staging_through_the_mount_behaves_like_a_local_directory() {
    let model = Model::new();
    let cases = std::env::var("ASSETFS_MOUNT_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 400,
        max_shrink_time: 40_000,
        ..Config::default()
    });
    let start = Instant::now();
    let result = runner.run(&prop::collection::vec(op(), 1..30), |ops| {
        model.run_case(&ops).map_err(TestCaseError::fail)
    });
    eprintln!(
        "reference model through the mount: {} sequences in {:.1?}",
        model.cases.get(),
        start.elapsed()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!("minimal failing sequence: {ops:?}\n{why}")
        }
        Err(e) => panic!("{e}"),
    }
    model.mount.borrow_mut().take().expect("mounted").unmount();
}

/// Sequences the property test found, shrunk, kept so they always run.
#[test]
fn staging_model_regressions() {
    let model = Model::new();
    let cases: Vec<Vec<Op>> = vec![
        // Copy-up of a base file opened for writing, then read back by path.
        vec![Op::Write(3, 10, 5, 7), Op::Read(3)],
        // Writing through a handle whose file was replaced by rename (here a
        // base file opened through the symlink `b`): ENOENT before the fix,
        // a local disk keeps the replaced file alive while it is open.
        vec![Op::Open(1, 1, 1), Op::Rename(0, 3), Op::HWrite(1, 0, 1, 0)],
        // The same after unlink, reading back through the handle.
        vec![
            Op::Create(7),
            Op::Open(0, 7, 1),
            Op::HWrite(0, 5, 100, 3),
            Op::Unlink(7),
            Op::HWrite(0, 0, 10, 4),
            Op::HRead(0),
            Op::Close(0),
        ],
    ];
    for ops in cases {
        if let Err(e) = model.run_case(&ops) {
            panic!("{ops:?}: {e}");
        }
    }
    model.mount.borrow_mut().take().expect("mounted").unmount();
}

// ---------------------------------------------------------------------------
// 2. Commit, then remount

/// Applies the same edits to a staging directory and to a plain copy.
fn edit_tree(root: &Path) {
    let mut r = StdRng::seed_from_u64(23);
    fs::create_dir(root.join("ckpt")).expect("mkdir ckpt");
    let model = random_bytes(&mut r, 2 * MIB + 3);
    fs::write(root.join("ckpt/model.bin"), &model).expect("write ckpt/model.bin");
    // Copy-up of a base file: a write in the middle, then a chmod.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(root.join("d/a"))
        .expect("open d/a");
    f.write_all_at(b"patched in the middle", 1000)
        .expect("write d/a");
    drop(f);
    fs::set_permissions(root.join("d/a"), fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("a"))
        .expect("open a");
    f.write_all(b"appended").expect("append a");
    drop(f);
    fs::rename(root.join("d/e/a"), root.join("d/e/renamed")).expect("rename");
    fs::remove_file(root.join("b")).expect("unlink b");
    std::os::unix::fs::symlink("ckpt/model.bin", root.join("latest.bin")).expect("symlink");
    fs::DirBuilder::new()
        .mode(0o700)
        .create(root.join("logs"))
        .expect("mkdir logs");
    let mut f = File::create(root.join("metrics.json")).expect("create");
    f.write_all(br#"{"loss": 0.25}"#).expect("write");
    f.sync_all().expect("fsync");
}

#[test]
fn commit_then_remount_reads_back_byte_for_byte() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    make_base(&src, 21);
    let mut r = StdRng::seed_from_u64(22);
    let weights = random_file(&src, "weights.bin", &mut r, 3 * MIB + 17);
    env.push("models/x", &src, &["-m", "one"]);
    let v1 = snapshot(&src);
    let expect = env.path("expect");
    copy_tree(&src, &expect);
    edit_tree(&expect);
    let want = snapshot(&expect);

    let m = env.mount("c1", &[]);
    let st = m.path("models/x@staging");
    assert_snap("x@staging before any write", &snapshot(&st), &v1);
    edit_tree(&st);
    assert_snap("x@staging after the edits", &snapshot(&st), &want);
    let status = status_json(&env, "models/x");
    assert_eq!(status["base"], json!(1));
    let mut got = changes(&status);
    got.sort();
    let mut expected: Vec<(String, String)> = [
        ("a", "modified"),
        ("b", "deleted"),
        ("ckpt", "added"),
        ("ckpt/model.bin", "added"),
        ("d/a", "modified"),
        ("d/e/a", "deleted"),
        ("d/e/renamed", "added"),
        ("latest.bin", "added"),
        ("logs", "added"),
        ("metrics.json", "added"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect();
    expected.sort();
    assert_eq!(got, expected, "assetfs status models/x");

    let o = env.ok(&["--json", "commit", "models/x", "-m", "two"]);
    let out: Value = serde_json::from_slice(&o.stdout).expect("commit --json is JSON");
    assert_eq!(out["ref"], json!("models/x@2"), "{out}");
    // Only what changed was uploaded: the new 2 MiB file and the copied-up
    // ones, not the unchanged 3 MiB weights.
    let new_bytes = out["new_bytes"].as_u64().expect("new_bytes");
    assert!(
        (2 * MIB as u64..(2 * MIB + 600 * 1024) as u64).contains(&new_bytes),
        "commit uploaded {new_bytes} new bytes: {out}"
    );
    m.unmount();

    // A fresh mount with a cold cache of its own.
    let m2 = env.mount("c2", &[]);
    assert_snap(
        "x@2 after remount",
        &snapshot(&m2.path("models/x@2")),
        &want,
    );
    assert_snap("x@1 after remount", &snapshot(&m2.path("models/x@1")), &v1);
    assert_same_bytes(
        "x@2/weights.bin",
        &fs::read(m2.path("models/x@2/weights.bin")).expect("read"),
        &weights,
    );
    assert_snap(
        "x@staging after the commit is a clean view of x@2",
        &snapshot(&m2.path("models/x@staging")),
        &want,
    );
    let status = status_json(&env, "models/x");
    assert_eq!(status["base"], json!(2), "{status}");
    assert_eq!(changes(&status), vec![], "{status}");
    let sidecar: Value =
        serde_json::from_slice(&fs::read(m2.path("models/x@2.json")).expect("read sidecar"))
            .expect("sidecar is JSON");
    assert_eq!(sidecar["base"], json!(1), "{sidecar}");
    assert_eq!(sidecar["parent"], json!(1), "{sidecar}");
    assert_eq!(sidecar["message"], json!("two"), "{sidecar}");
    assert_eq!(sidecar, env.show_json("models/x@2"));
    env.ok(&["verify"]);
    assert_snap(
        "get models/x@2",
        &get_snapshot(&env, "models/x@2"),
        &mask(&want, 0o777),
    );
    m2.unmount();
}

// ---------------------------------------------------------------------------
// 3. Files open for writing

#[test]
fn commit_refuses_open_writers_and_waits_with_wait() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    make_base(&src, 31);
    env.push("models/x", &src, &[]);
    let m = env.mount("writers", &[]);
    let st = m.path("models/x@staging");

    // A reader never blocks a commit; writers do, and are named.
    let reader = File::open(st.join("a")).expect("open a for reading");
    let mut w = File::create(st.join("ckpt.bin")).expect("create ckpt.bin");
    w.write_all(b"partial").expect("write");
    let w2 = fs::OpenOptions::new()
        .append(true)
        .open(st.join("d/a"))
        .expect("open d/a for appending");
    let o = try_cmd(&env, &["commit", "models/x", "-m", "too early"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", describe("commit", &o));
    assert!(
        err.contains("ckpt.bin") && err.contains("d/a") && err.contains("open for writing"),
        "the refusal names the open files: {err}"
    );
    assert_eq!(
        store_versions(&env, "x"),
        [1],
        "a refused commit made a version"
    );

    drop(w2);
    let o = try_cmd(&env, &["commit", "models/x", "-m", "still early"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("ckpt.bin") && !err.contains("d/a"),
        "after closing d/a only ckpt.bin is open: {}",
        describe("commit", &o)
    );
    w.write_all(b" complete").expect("write");
    drop(w);
    assert_eq!(commit(&env, "models/x", "closed"), 2);
    assert_eq!(
        fs::read(m.path("models/x@2/ckpt.bin")).expect("read"),
        b"partial complete"
    );
    drop(reader);

    // --wait: waits for the writer to close, then commits what it wrote last.
    let mut w = fs::OpenOptions::new()
        .append(true)
        .open(st.join("ckpt.bin"))
        .expect("open ckpt.bin for appending");
    w.write_all(b" more").expect("write");
    let out = env.path("commit-wait.out");
    let start = Instant::now();
    let mut c = spawn(
        &env,
        &["commit", "models/x", "-m", "waited", "--wait"],
        &out,
    );
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        w.write_all(b" final").expect("write");
        drop(w);
    });
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        c.0.as_mut()
            .expect("running")
            .try_wait()
            .expect("try_wait")
            .is_none(),
        "commit --wait exited while a file was still open: {}",
        fs::read_to_string(&out).unwrap_or_default()
    );
    let st_exit = c.wait(Duration::from_secs(60));
    let took = start.elapsed();
    closer.join().expect("closer thread");
    let printed = fs::read_to_string(&out).unwrap_or_default();
    assert!(st_exit.success(), "commit --wait: {st_exit}: {printed}");
    assert!(
        took >= Duration::from_secs(1),
        "commit --wait returned after {took:?}, before the file was closed"
    );
    assert!(printed.contains("models/x@3"), "{printed}");
    assert_eq!(
        fs::read(m.path("models/x@3/ckpt.bin")).expect("read"),
        b"partial complete more final"
    );
    assert_eq!(store_versions(&env, "x"), [1, 2, 3]);
    m.unmount();
}

// ---------------------------------------------------------------------------
// 4. SIGKILL of the commit process

const CRASH_FILES: usize = 4;
const CRASH_FILE_SIZE: usize = 6 * MIB + 11;

/// `n` pseudo-random bytes from a seed, fast even in a debug build (BLAKE3
/// is optimised in every profile), so tests can write tens of MiB.
fn fast_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

/// Writes fresh content (seeded by `seed`) into the big files of staging.
fn stage_big_files(st: &Path, seed: u64) {
    fs::create_dir_all(st.join("shards")).expect("mkdir shards");
    for k in 0..CRASH_FILES {
        let data = fast_bytes(seed * 100 + k as u64, CRASH_FILE_SIZE);
        fs::write(st.join(format!("shards/{k}.bin")), &data).expect("write shard");
    }
    fs::write(st.join("step.txt"), format!("step {seed}\n")).expect("write step");
}

/// The store's state, to see how far a killed commit got.
#[derive(Clone, PartialEq)]
struct StoreState {
    packs: BTreeSet<String>,
    indexes: BTreeSet<String>,
    manifests: BTreeSet<String>,
    versions: Vec<u64>,
}

impl StoreState {
    fn read(env: &TestEnv) -> StoreState {
        StoreState {
            packs: store_objects(env, "packs"),
            indexes: store_objects(env, "indexes"),
            manifests: store_objects(env, "manifests"),
            versions: store_versions(env, "x"),
        }
    }

    /// How many steps of a commit are visible since `before`: 1 a pack,
    /// 2 a chunk index, 3 a manifest, 4 a version.
    fn progress(&self, before: &StoreState) -> u8 {
        if self.versions.len() > before.versions.len() {
            4
        } else if self.manifests.len() > before.manifests.len() {
            3
        } else if self.indexes.len() > before.indexes.len() {
            2
        } else if self.packs.len() > before.packs.len() {
            1
        } else {
            0
        }
    }
}

/// When a trial kills the commit: after a delay, or as soon as the store
/// shows it reached a step (see [`StoreState::progress`]).
#[derive(Debug, Clone, Copy)]
enum KillAt {
    Delay(Duration),
    Step(u8),
}

#[test]
fn commit_killed_at_random_points_is_all_or_nothing() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    make_base(&src, 41);
    env.push("models/x", &src, &[]);
    let cache = env.path("cache-crash");
    let mut rng = StdRng::seed_from_u64(rand::random());

    // Calibration: how long an uninterrupted commit of this size takes.
    let m = env.mount_with_cache("crash", &cache, &[]);
    stage_big_files(&m.path("models/x@staging"), 1000);
    let want = snapshot(&m.path("models/x@staging"));
    let start = Instant::now();
    let v = commit(&env, "models/x", "calibration");
    let full = start.elapsed();
    assert_snap(
        "calibration commit",
        &get_snapshot(&env, &format!("models/x@{v}")),
        &mask(&want, 0o777),
    );
    m.unmount();
    let mib = CRASH_FILES * CRASH_FILE_SIZE / MIB;
    eprintln!("an uninterrupted commit of {mib} MiB takes {full:.2?}");

    // Kills at delays spread over the whole commit, then kills triggered by
    // what appears in the store, so that they also land right after the
    // first pack, the chunk index, the manifest and the version claim.
    const SPREAD: u32 = 12;
    let mut plan: Vec<KillAt> = (0..SPREAD)
        .map(|i| {
            let slot = full * 11 / 10 / SPREAD;
            KillAt::Delay(slot * i + slot.mul_f64(rng.gen::<f64>()))
        })
        .collect();
    for step in 1..=4 {
        plan.extend([KillAt::Step(step); 3]);
    }
    let phases = [
        "before the first pack was stored (start-up, chunking, pack upload)",
        "after a pack was stored, before the chunk index",
        "after the chunk index, before the manifest",
        "after the manifest, before the version claim",
        "after the version claim, before staging was rebased",
        "after the version claim and the rebase",
    ];
    let mut landings: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (t, kill_at) in plan.iter().enumerate() {
        let m = env.mount_with_cache("crash", &cache, &[]);
        let st = m.path("models/x@staging");
        stage_big_files(&st, t as u64);
        let want = snapshot(&st);
        let before = StoreState::read(&env);

        let out = env.path(&format!("commit-kill-{t}.out"));
        let started = Instant::now();
        let mut c = spawn(
            &env,
            &["commit", "models/x", "-m", &format!("trial {t}")],
            &out,
        );
        let mut finished = false;
        loop {
            if c.0
                .as_mut()
                .expect("running")
                .try_wait()
                .expect("try_wait")
                .is_some()
            {
                finished = true;
                break;
            }
            let now = match kill_at {
                KillAt::Delay(d) => started.elapsed() >= *d,
                KillAt::Step(step) => StoreState::read(&env).progress(&before) >= *step,
            };
            if now {
                sigkill(c.pid());
                break;
            }
            assert!(started.elapsed() < CMD_LIMIT, "trial {t}: commit hangs");
            std::thread::sleep(Duration::from_micros(200));
        }
        let killed_after = started.elapsed();
        c.wait(Duration::from_secs(10));

        let after = StoreState::read(&env);
        let new: Vec<u64> = after
            .versions
            .iter()
            .filter(|v| !before.versions.contains(v))
            .copied()
            .collect();
        assert!(
            new.len() <= 1,
            "trial {t}: one commit made versions {new:?}"
        );
        let status = status_json(&env, "models/x");
        let what = match (finished, after.progress(&before)) {
            (true, _) => "the commit finished before the kill",
            (false, 4) if status["base"] == json!(before.versions.last()) => phases[4],
            (false, 4) => phases[5],
            (false, p) => phases[p as usize],
        };
        *landings.entry(what).or_default() += 1;
        eprintln!("trial {t}: {kill_at:?}, killed after {killed_after:.2?}: {what}");
        if let Some(&v) = new.first() {
            let r = format!("models/x@{v}");
            env.ok(&["verify", &r]);
            assert_snap(
                &format!("trial {t}: {r}, made by the killed commit"),
                &get_snapshot(&env, &r),
                &mask(&want, 0o777),
            );
        } else {
            assert_snap(
                &format!("trial {t}: staging after a commit killed before its claim"),
                &snapshot(&st),
                &want,
            );
            assert!(
                changes(&status).iter().any(|(p, _)| p == "shards/0.bin"),
                "trial {t}: status lost the staged change: {status}"
            );
        }

        // Re-running the commit succeeds (unless the killed one had already
        // made staging a clean view of its version) and makes a complete version.
        if what == phases[5] {
            assert_eq!(changes(&status), vec![], "trial {t}: {status}");
        } else {
            let o = try_cmd(&env, &["commit", "models/x", "-m", &format!("retry {t}")]);
            assert!(
                o.status.success(),
                "trial {t}: re-running commit after a kill ({what}): {}\nkilled commit printed: {}",
                describe("commit", &o),
                fs::read_to_string(&out).unwrap_or_default()
            );
            let v = version_of(&stdout(&o), "models/x");
            assert_eq!(
                store_versions(&env, "x").last(),
                Some(&v),
                "trial {t}: the retry's version"
            );
            assert_snap(
                &format!("trial {t}: x@{v} made by the retry"),
                &snapshot(&m.path(&format!("models/x@{v}"))),
                &want,
            );
            assert_eq!(
                changes(&status_json(&env, "models/x")),
                vec![],
                "trial {t}: staging is clean after the retry"
            );
        }
        m.unmount();
    }
    eprintln!("where {} kills landed: {landings:#?}", plan.len());
    env.ok(&["verify"]);
    let killed: Vec<_> = landings.keys().filter(|k| phases.contains(k)).collect();
    assert!(
        killed.len() >= 3,
        "the kills landed in fewer than 3 phases of the commit: {landings:#?}"
    );
}

// ---------------------------------------------------------------------------
// 5. SIGKILL of the mount daemon while staging is being written

/// Block `i` of the stream written to B: 64 KiB derived from `i`.
fn stream_block(i: u64) -> Vec<u8> {
    let mut r = StdRng::seed_from_u64(0xb10c_0000 + i);
    random_bytes(&mut r, 64 * 1024)
}

/// Detaches a dead FUSE mount (its daemon was killed).
fn detach_dead_mount(mnt: &Path) {
    let o = run_limited(
        Command::new("umount").args(["-l", s(mnt)]),
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if !o.status.success() {
        let o2 = run_limited(
            Command::new("fusermount3").args(["-u", "-z", s(mnt)]),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            o2.status.success(),
            "{}\n{}",
            describe("umount -l", &o),
            describe("fusermount3 -u -z", &o2)
        );
    }
    wait_unmounted(mnt, Duration::from_secs(10));
}

#[test]
fn daemon_killed_while_writing_keeps_what_was_fsynced() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    make_base(&src, 51);
    env.push("models/x", &src, &[]);

    let m1 = env.mount("k1", &[]);
    let st = m1.path("models/x@staging");
    let mut r = StdRng::seed_from_u64(52);
    let a = random_bytes(&mut r, 3 * MIB + 5);
    {
        let mut f = File::create(st.join("A.bin")).expect("create A");
        f.write_all(&a).expect("write A");
        f.sync_all().expect("fsync A");
    }
    // A copied-up base file, fsynced, and metadata changes.
    let mut da = fs::read(src.join("d/a")).expect("read d/a");
    {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(st.join("d/a"))
            .expect("open d/a");
        f.write_all_at(b"fsynced patch", 77).expect("write d/a");
        f.sync_data().expect("fdatasync d/a");
        da[77..77 + 13].copy_from_slice(b"fsynced patch");
    }
    fs::rename(st.join("d/a"), st.join("d/moved")).expect("rename");
    fs::create_dir(st.join("logs")).expect("mkdir");

    // B is written, never fsynced, from this thread while another kills the daemon.
    let pid = daemon_pid(&m1.mnt);
    let mut b = File::create(st.join("B.bin")).expect("create B");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        sigkill(pid);
    });
    let start = Instant::now();
    let mut acked = 0u64;
    let err = loop {
        match b.write_all(&stream_block(acked / (64 * 1024))) {
            Ok(()) => acked += 64 * 1024,
            Err(e) => break e,
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "writes kept succeeding 20 s after the daemon was killed"
        );
    };
    killer.join().expect("killer thread");
    assert!(
        [libc::ENOTCONN, libc::EIO, libc::ECONNABORTED].contains(&errno_of(&err)),
        "a write after the daemon died: {err}"
    );
    assert!(acked > 0, "nothing was written to B before the kill");
    drop(b);
    detach_dead_mount(&m1.mnt);
    drop(m1);

    let m2 = env.mount("k2", &[]);
    let st = m2.path("models/x@staging");
    assert_same_bytes(
        "A.bin (fsynced)",
        &fs::read(st.join("A.bin")).expect("read A"),
        &a,
    );
    assert_same_bytes(
        "d/moved (copied up, written, fsynced, renamed)",
        &fs::read(st.join("d/moved")).expect("read d/moved"),
        &da,
    );
    assert!(st.join("logs").is_dir(), "mkdir before the kill was lost");
    assert_eq!(
        fs::metadata(st.join("d/a"))
            .map_err(|e| errno_of(&e))
            .unwrap_err(),
        libc::ENOENT
    );
    // B was never fsynced: whatever survived is a prefix of what was written.
    let got_b = fs::read(st.join("B.bin")).expect("B.bin survives as a file");
    let mut stream = vec![];
    let mut i = 0;
    while stream.len() < got_b.len() {
        stream.extend(stream_block(i));
        i += 1;
    }
    assert_same_bytes(
        "B.bin (a prefix of the stream)",
        &got_b,
        &stream[..got_b.len()],
    );
    eprintln!(
        "B.bin: {} bytes acknowledged before the kill, {} bytes after remount",
        acked,
        got_b.len()
    );

    // Staging keeps working, and the dead mount's open B does not block a commit.
    fs::write(st.join("C.txt"), b"after the crash").expect("write C");
    let o = try_cmd(&env, &["commit", "models/x", "-m", "after crash"]);
    assert!(
        o.status.success(),
        "commit after the daemon crash (B was open in the dead mount): {}",
        describe("commit", &o)
    );
    assert_eq!(version_of(&stdout(&o), "models/x"), 2);
    assert_same_bytes(
        "x@2/A.bin",
        &fs::read(m2.path("models/x@2/A.bin")).expect("read"),
        &a,
    );
    assert_eq!(
        fs::read(m2.path("models/x@2/C.txt")).expect("read"),
        b"after the crash"
    );
    m2.unmount();
}

// ---------------------------------------------------------------------------
// 6. Four nodes commit the same asset at once

#[test]
fn four_nodes_commit_at_once_and_nothing_is_lost() {
    const NODES: usize = 4;
    const ROUNDS: u64 = 3;
    let first = TestEnv::file_store();
    let src = first.path("src");
    make_base(&src, 61);
    first.push("models/x", &src, &[]);
    // Separate HOME, XDG dirs (so separate staging areas), push caches,
    // mounts and mount caches; one store.
    let mut envs = vec![first];
    for _ in 1..NODES {
        let store = envs[0].store.clone();
        envs.push(TestEnv::with_store(&store, vec![]));
    }
    let mounts: Vec<Mounted> = envs
        .iter()
        .enumerate()
        .map(|(i, e)| e.mount(&format!("node{i}"), &[]))
        .collect();

    let mut bases = [1u64; NODES];
    let mut latest = 1u64;
    for round in 0..ROUNDS {
        let mut want = vec![];
        for (i, m) in mounts.iter().enumerate() {
            let st = m.path("models/x@staging");
            let mut r = StdRng::seed_from_u64(round * 100 + i as u64);
            random_file(&st, &format!("node-{i}.bin"), &mut r, 200_000 + i);
            fs::write(st.join("shared.txt"), format!("round {round} node {i}\n")).expect("write");
            want.push(snapshot(&st));
        }
        // All four commits start together.
        let outs: Vec<PathBuf> = (0..NODES)
            .map(|i| envs[i].path(&format!("commit-{round}.out")))
            .collect();
        let mut children: Vec<ChildGuard> = (0..NODES)
            .map(|i| {
                spawn(
                    &envs[i],
                    &[
                        "commit",
                        "models/x",
                        "-m",
                        &format!("round {round} node {i}"),
                    ],
                    &outs[i],
                )
            })
            .collect();
        let mut got = vec![];
        for (i, c) in children.iter_mut().enumerate() {
            let st = c.wait(CMD_LIMIT);
            let printed = fs::read_to_string(&outs[i]).unwrap_or_default();
            assert!(
                st.success(),
                "round {round} node {i}: commit {st}: {printed}"
            );
            got.push(version_of(
                printed.lines().next().unwrap_or_default(),
                "models/x",
            ));
        }
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ((latest + 1)..=(latest + NODES as u64)).collect::<Vec<_>>(),
            "round {round}: each commit its own version, none skipped: {got:?}"
        );
        latest += NODES as u64;
        assert_eq!(
            store_versions(&envs[0], "x"),
            (1..=latest).collect::<Vec<_>>(),
            "round {round}: versions in the store"
        );
        for i in 0..NODES {
            let v = got[i];
            let show = envs[0].show_json(&format!("models/x@{v}"));
            assert_eq!(show["parent"], json!(v - 1), "x@{v}: {show}");
            assert_eq!(show["base"], json!(bases[i]), "x@{v} from node {i}: {show}");
            assert_eq!(show["message"], json!(format!("round {round} node {i}")));
            // Read back through another node's mount.
            let other = &mounts[(i + 1) % NODES];
            assert_snap(
                &format!(
                    "round {round}: x@{v} (node {i}) read on node {}",
                    (i + 1) % NODES
                ),
                &snapshot(&other.path(&format!("models/x@{v}"))),
                &want[i],
            );
            let status = status_json(&envs[i], "models/x");
            assert_eq!(status["base"], json!(v), "node {i}: {status}");
            assert_eq!(changes(&status), vec![], "node {i}: {status}");
            bases[i] = v;
        }
    }
    // `log --json` shows base and parent for every committed version.
    let o = envs[0].ok(&["--json", "log", "models/x"]);
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).expect("log --json");
    assert_eq!(rows.len() as u64, latest);
    for row in &rows {
        let v = row["version"].as_u64().expect("version");
        if v > 1 {
            assert_eq!(row["parent"], json!(v - 1), "{row}");
            assert!(row["base"].as_u64().is_some_and(|b| b < v), "{row}");
        }
    }
    envs[0].ok(&["verify"]);
    for m in mounts {
        m.unmount();
    }
}

// ---------------------------------------------------------------------------
// 7. A full disk under the staging area

#[test]
fn disk_full_under_staging_gives_enospc() {
    let tdir = tempfile::Builder::new()
        .prefix("assetfs-enospc-")
        .tempdir()
        .expect("tempdir");
    let data = tdir.path().join("data");
    let _tmpfs = Tmpfs::mount(&data, "8m");
    let store = format!("file://{}", s(&tdir.path().join("store")));
    let env = TestEnv::with_store(&store, vec![("XDG_DATA_HOME".into(), s(&data).into())]);
    let src = env.path("src");
    make_base(&src, 71);
    let mut r = StdRng::seed_from_u64(72);
    random_file(&src, "base-big.bin", &mut r, 2 * MIB);
    env.push("models/x", &src, &[]);
    let v1 = snapshot(&src);

    let m = env.mount("full", &[]);
    let st = m.path("models/x@staging");
    fs::write(st.join("small.txt"), b"before the disk filled").expect("write small");
    assert!(
        fs::read_dir(&data).expect("data dir").next().is_some(),
        "staging is not under the tmpfs XDG_DATA_HOME"
    );

    let block: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let mut big = File::create(st.join("big.bin")).expect("create big");
    let mut written = 0usize;
    let err = loop {
        match big.write(&block[written % block.len()..]) {
            Ok(0) => panic!("write returned 0"),
            Ok(n) => written += n,
            Err(e) => break e,
        }
        assert!(written < 64 * MIB, "wrote 64 MiB into an 8 MiB tmpfs");
    };
    assert_eq!(
        errno_of(&err),
        libc::ENOSPC,
        "the write that did not fit: {err}"
    );
    assert!(written < 8 * MIB, "{written} bytes fit in an 8 MiB tmpfs");
    eprintln!("{written} bytes fit before ENOSPC");
    // What was written is there, no more.
    let got = fs::read(st.join("big.bin")).expect("read big");
    let want: Vec<u8> = (0..written)
        .map(|i| (i % block.len() % 251) as u8)
        .collect();
    assert_same_bytes("big.bin after ENOSPC", &got, &want);
    // Copying up a 2 MiB base file for writing cannot fit either.
    let e = fs::OpenOptions::new()
        .write(true)
        .open(st.join("base-big.bin"))
        .expect_err("copy-up of 2 MiB into a full disk");
    assert_eq!(errno_of(&e), libc::ENOSPC, "copy-up on a full disk: {e}");
    // Metadata changes either still fit or fail with ENOSPC, never EIO.
    for (what, res) in [
        ("mkdir", fs::create_dir(st.join("newdir"))),
        ("create", File::create(st.join("empty.txt")).map(drop)),
    ] {
        if let Err(e) = res {
            assert_eq!(errno_of(&e), libc::ENOSPC, "{what} on a full disk: {e}");
        }
    }

    // Nothing committed is affected.
    assert_snap(
        "x@1 while staging is full",
        &snapshot(&m.path("models/x@1")),
        &v1,
    );
    env.ok(&["verify"]);
    assert_eq!(
        fs::read(st.join("small.txt")).expect("read"),
        b"before the disk filled"
    );

    // Deleting the big file makes room again.
    drop(big);
    fs::remove_file(st.join("big.bin")).expect("unlink big");
    let mut r = StdRng::seed_from_u64(73);
    let after = random_bytes(&mut r, 2 * MIB);
    fs::write(st.join("after.bin"), &after).expect("write after the unlink");
    assert_same_bytes(
        "after.bin",
        &fs::read(st.join("after.bin")).expect("read"),
        &after,
    );
    let f = fs::OpenOptions::new()
        .write(true)
        .open(st.join("base-big.bin"))
        .expect("copy-up once there is room");
    f.write_all_at(b"patched", 0).expect("write");
    drop(f);
    let want = snapshot(&st);
    assert!(!want.contains_key("big.bin"));
    assert_eq!(commit(&env, "models/x", "after the disk was full"), 2);
    assert_snap("x@2", &snapshot(&m.path("models/x@2")), &want);
    m.unmount();
}

/// A push into a local store on a full disk. Packs are written there in
/// place, so the write that does not fit fails the push with one clear line;
/// no version is claimed, what was stored before still verifies, the partial
/// pack is removed (a full disk left full could not even run gc, which
/// writes records), and a push that fits succeeds.
#[test]
fn push_into_a_full_local_store_fails_cleanly() {
    let tdir = tempfile::Builder::new()
        .prefix("assetfs-enospc-store-")
        .tempdir()
        .expect("tempdir");
    let store_dir = tdir.path().join("store");
    let _tmpfs = Tmpfs::mount(&store_dir, "8m");
    let env = TestEnv::with_store(&format!("file://{}", s(&store_dir)), vec![]);
    let mut r = StdRng::seed_from_u64(74);
    let src = env.path("src");
    random_file(&src, "small.bin", &mut r, MIB);
    env.push("models/x", &src, &[]);
    let big = env.path("big");
    random_file(&big, "big.bin", &mut r, 16 * MIB);

    let o = try_cmd(&env, &["push", "models/x", s(&big)]);
    assert!(
        !o.status.success(),
        "{}",
        describe("push of 16 MiB into 8 MiB", &o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("in the local store") && err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!try_cmd(&env, &["show", "models/x@2"]).status.success());
    env.ok(&["verify"]);
    let out = env.path("got");
    env.ok(&["get", "models/x@1", s(&out)]);
    assert_snap(
        "x@1 after the failed push",
        &snapshot(&out),
        &snapshot(&src),
    );

    let packs_bytes = || -> u64 {
        walkdir::WalkDir::new(store_dir.join("packs"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.metadata().expect("stat pack").len())
            .sum()
    };
    let left = packs_bytes();
    assert!(
        left < 2 * MIB as u64,
        "{left} bytes of packs after the failed push"
    );
    env.ok(&["gc", "--grace", "0s"]);
    env.ok(&["verify"]);
    let fits = env.path("fits");
    random_file(&fits, "mid.bin", &mut r, 4 * MIB);
    env.push("models/x", &fits, &[]);
    env.ok(&["verify"]);
}

// ---------------------------------------------------------------------------
// 8. New assets, name rules, unsupported operations, O_TRUNC without fetching

#[test]
fn new_asset_by_mkdir_and_documented_errnos() {
    let env = TestEnv::file_store();
    let src = env.path("src");
    make_base(&src, 81);
    let mut r = StdRng::seed_from_u64(82);
    random_file(&src, "weights.bin", &mut r, 3 * MIB);
    env.push("models/x", &src, &[]);
    let m = env.mount("misc", &[]);
    let st = m.path("models/x@staging");
    let err = |r: std::io::Result<()>| r.map_err(|e| errno_of(&e)).err();

    // mkdir MNT/models/<name>@staging starts a new asset.
    fs::create_dir(m.path("models/fresh@staging")).expect("mkdir fresh@staging");
    assert!(names(&m.path("models")).contains(&"fresh@staging".to_string()));
    fs::write(m.path("models/fresh@staging/w.bin"), b"new asset").expect("write");
    assert_eq!(commit(&env, "models/fresh", "first"), 1);
    assert_eq!(
        fs::read(m.path("models/fresh@1/w.bin")).expect("read"),
        b"new asset"
    );
    for bad in [
        "Bad name@staging",
        ".hidden@staging",
        "-dash@staging",
        "a/b@staging",
    ] {
        let p = m.path("models").join(bad);
        let e = err(fs::create_dir(&p));
        let want = if bad.contains('/') {
            libc::ENOENT
        } else {
            libc::EINVAL
        };
        assert_eq!(e, Some(want), "mkdir models/{bad}");
    }
    assert_eq!(
        err(fs::create_dir(m.path("models/x@staging"))),
        Some(libc::EEXIST)
    );
    assert_eq!(
        err(fs::create_dir(m.path("models/plain"))),
        Some(libc::EROFS)
    );
    assert_eq!(
        err(fs::metadata(m.path("models/nothing@staging")).map(drop)),
        Some(libc::ENOENT),
        "an asset with neither versions nor staging"
    );

    // Unsupported operations fail with their documented errno.
    assert_eq!(
        err(fs::hard_link(st.join("a"), st.join("a2"))),
        Some(libc::EPERM)
    );
    assert_eq!(err(mkfifo(&st.join("fifo"))), Some(libc::EPERM));
    assert_eq!(
        err(setxattr(&st.join("a"), "user.k", b"v")),
        Some(libc::EOPNOTSUPP)
    );
    assert_eq!(
        err(fs::rename(st.join("a"), m.path("models/fresh@staging/a"))),
        Some(libc::EXDEV)
    );
    assert_eq!(
        err(fs::rename(st.join("a"), m.path("models/x@1/z"))),
        Some(libc::EROFS)
    );
    std::os::unix::fs::symlink("d/a", st.join("link")).expect("symlink in staging");
    assert_eq!(
        fs::read_link(st.join("link")).expect("readlink"),
        Path::new("d/a")
    );

    // Overwriting a base file with O_TRUNC needs none of its old content:
    // it works with the store's packs out of reach.
    let packs = store_root(&env).join("packs");
    let away = store_root(&env).join("packs.away");
    fs::rename(&packs, &away).expect("hide packs");
    let res = fs::write(st.join("weights.bin"), b"overwritten");
    fs::rename(&away, &packs).expect("restore packs");
    res.expect("open(O_TRUNC) + write of an unread base file with the store's packs unreachable");
    assert_eq!(
        fs::read(st.join("weights.bin")).expect("read"),
        b"overwritten"
    );
    m.unmount();
}
