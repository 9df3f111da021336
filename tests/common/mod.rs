//! Helpers shared by the integration tests: run the real `assetfs` binary in
//! an isolated temporary environment, check its outcome, build trees of files
//! and compare them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_assetfs");

/// The author every test command commits as.
pub const AUTHOR: &str = "tester";

/// A random hex id, for unique store prefixes.
pub fn unique_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// A path as `&str` (temporary directories are UTF-8 on the test machines).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// One isolated environment: its own temporary directory holding `home`,
/// XDG dirs, a cache dir, a working directory (`work`, the commands' cwd),
/// and, for a `file://` store, the store itself.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// The store URL every command gets through `ASSETFS_STORE`.
    pub store: String,
}

impl Env {
    /// A fresh `file://` store at `<tmp>/store`, created with `assetfs init`.
    pub fn new() -> Env {
        let env = Env::uninit();
        env.ok(&["init"]);
        env
    }

    /// Like [`Env::new`], but the store is not created yet.
    pub fn uninit() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = format!("file://{}", s(&dir.path().join("store")));
        Env::finish(dir, store)
    }

    /// An environment using the given store URL (initialised with `assetfs init`).
    pub fn with_store(url: &str) -> Env {
        let env = Env::finish(tempfile::tempdir().expect("tempdir"), url.to_string());
        env.ok(&["init"]);
        env
    }

    fn finish(dir: tempfile::TempDir, store: String) -> Env {
        for d in ["home", "xdg-data", "xdg-cache", "work"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        Env { dir, store }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The commands' working directory.
    pub fn work(&self) -> PathBuf {
        self.path("work")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.path("cache")
    }

    /// The local directory of a `file://` store.
    pub fn store_dir(&self) -> PathBuf {
        PathBuf::from(
            self.store
                .strip_prefix("file://")
                .expect("store_dir needs a file:// store"),
        )
    }

    /// The binary with this environment, nothing inherited that could leak
    /// in from the caller's own assetfs setup.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.command(BIN, args)
    }

    /// Any program (e.g. a wrapper around the binary) with this environment.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(self.work())
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("xdg-data"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("ASSETFS_STORE", &self.store)
            .env("ASSETFS_CACHE_DIR", self.cache_dir())
            .env("ASSETFS_AUTHOR", AUTHOR)
            .env_remove("ASSETFS_LOG")
            .env_remove("ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(args, self.cmd(args).output().expect("spawn assetfs"))
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(r.success(), "expected success:\n{r}");
        r
    }

    /// Runs with `--json`, asserts success and that stdout is one JSON value.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok(&all).json()
    }

    /// Runs and asserts a clean failure: non-zero exit (not a panic), exactly
    /// one non-empty line on stderr, containing every word of `words`
    /// (case-insensitive). Returns that line.
    pub fn fail(&self, args: &[&str], words: &[&str]) -> String {
        self.run(args).one_error_line(words)
    }
}

/// The outcome of one command.
pub struct Run {
    pub cmdline: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(args: &[&str], out: Output) -> Run {
        Run {
            cmdline: format!("assetfs {}", args.join(" ")),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{self}"))
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// See [`Env::fail`].
    pub fn one_error_line(&self, words: &[&str]) -> String {
        match self.code {
            Some(0) => panic!("expected failure, got success:\n{self}"),
            Some(101) => panic!("the command panicked:\n{self}"),
            None => panic!("the command was killed by a signal:\n{self}"),
            Some(_) => {}
        }
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr:\n{self}"
        );
        let line = lines[0];
        assert!(!line.contains("panicked"), "panic message:\n{self}");
        let lower = line.to_lowercase();
        for w in words {
            assert!(
                lower.contains(&w.to_lowercase()),
                "stderr line does not mention {w:?}:\n{self}"
            );
        }
        line.to_string()
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }
}

/// One node of a file tree, as far as assetfs promises to preserve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        blake3: String,
    },
    Symlink {
        target: String,
    },
    Other {
        mode: u32,
    },
}

/// Every entry under `root` (not `root` itself), by `/`-separated relative
/// path. An absent `root` gives an empty map.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    if root.symlink_metadata().is_err() {
        return out;
    }
    for e in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let e = e.expect("walk");
        let rel = s(e.path().strip_prefix(root).unwrap()).to_string();
        let md = e.path().symlink_metadata().expect("lstat");
        let mode = md.permissions().mode() & 0o7777;
        let node = if md.file_type().is_symlink() {
            Node::Symlink {
                target: s(&std::fs::read_link(e.path()).unwrap()).to_string(),
            }
        } else if md.is_dir() {
            Node::Dir { mode }
        } else if md.is_file() {
            Node::File {
                mode,
                size: md.len(),
                blake3: file_blake3(e.path()),
            }
        } else {
            Node::Other { mode }
        };
        out.insert(rel, node);
    }
    out
}

pub fn file_blake3(p: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p).expect("open"))
        .expect("read");
    h.finalize().to_hex().to_string()
}

/// Asserts two snapshots are equal, listing what differs.
pub fn assert_same_tree(want: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>, what: &str) {
    if want == got {
        return;
    }
    let mut diffs = vec![];
    for (k, v) in want {
        match got.get(k) {
            None => diffs.push(format!("missing  {k}: {v:?}")),
            Some(g) if g != v => diffs.push(format!("differs  {k}: want {v:?}, got {g:?}")),
            _ => {}
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            diffs.push(format!("extra    {k}: {v:?}"));
        }
    }
    panic!("{what}: trees differ:\n{}", diffs.join("\n"));
}

/// Regular files of a snapshot: path -> (size, blake3).
pub fn files_of(snap: &BTreeMap<String, Node>) -> BTreeMap<String, (u64, String)> {
    snap.iter()
        .filter_map(|(k, v)| match v {
            Node::File { size, blake3, .. } => Some((k.clone(), (*size, blake3.clone()))),
            _ => None,
        })
        .collect()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` pseudo-random bytes, determined by `rng`. They come from BLAKE3's
/// output stream, which (unlike `rand` in a debug build) is compiled with
/// optimisations, so tens of megabytes cost milliseconds.
pub fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    blake3::Hasher::new()
        .update(&rng.next_u64().to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

pub fn write_file(p: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(p, data).expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn make_dir(p: &Path, mode: u32) {
    std::fs::create_dir_all(p).expect("mkdir");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// What [`make_tree`] made.
#[derive(Debug, Clone, Copy)]
pub struct TreeInfo {
    /// Regular files.
    pub files: u64,
    /// Bytes in regular files.
    pub bytes: u64,
}

/// A deterministic tree (same seed, same tree) with what a model directory
/// has and what tends to break copies: empty files, a multi-chunk file and a
/// duplicate of it, nested and empty directories, unusual modes (0600, 0755,
/// 0640; directories 0750 and 0700), a relative symlink and a dangling one.
pub fn make_tree(root: &Path, seed: u64) -> TreeInfo {
    let mut r = rng(seed);
    make_dir(root, 0o755);
    let mut info = TreeInfo { files: 0, bytes: 0 };
    let mut file = |rel: &str, data: &[u8], mode: u32| {
        write_file(&root.join(rel), data, mode);
        info.files += 1;
        info.bytes += data.len() as u64;
    };
    file("empty.txt", b"", 0o644);
    let n = r.gen_range(100..4000);
    file("secret.key", &random_bytes(&mut r, n), 0o600);
    file(
        "run.sh",
        format!("#!/bin/sh\necho model {seed}\n").as_bytes(),
        0o755,
    );
    make_dir(&root.join("weights"), 0o750);
    // Random bytes well over the 64 KiB minimum chunk: several chunks.
    let n = r.gen_range(600_000..800_000);
    let big = random_bytes(&mut r, n);
    file("weights/model.bin", &big, 0o644);
    file("weights/copy-of-model.bin", &big, 0o640);
    for i in 0..4 {
        let n = r.gen_range(1..20_000);
        file(
            &format!("weights/shard-{i:03}"),
            &random_bytes(&mut r, n),
            0o644,
        );
    }
    make_dir(&root.join("weights/deep/er"), 0o755);
    std::fs::set_permissions(
        root.join("weights/deep/er"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    file(
        "weights/deep/er/leaf.json",
        format!("{{\"seed\": {seed}}}\n").as_bytes(),
        0o644,
    );
    file("weights/deep/er/empty-too", b"", 0o600);
    make_dir(&root.join("logs/empty-dir"), 0o755);
    symlink("weights/model.bin", root.join("model.bin")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    info
}

/// Creates a FIFO.
pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(s(p)).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", p.display());
}

/// The value of a required environment variable naming a test object store,
/// plus a unique prefix so tests never see each other's data. Panics with a
/// pointer to scripts/test.sh when it is missing: these tests must never
/// pass silently without their server.
pub fn cloud_store(var: &str) -> String {
    let base = match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs the local S3 (moto), Azure (Azurite) and GCS \
             (fake-gcs-server) test servers. Run the suite with scripts/test.sh, which starts them and exports \
             {var} and the AWS_*/AZURE_*/GOOGLE_* variables (or `source scripts/test-servers.sh && \
             servers_start` first)"
        ),
    };
    format!("{}/{}", base.trim_end_matches('/'), unique_id())
}
pub mod live;
