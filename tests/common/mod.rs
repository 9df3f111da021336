//! Helpers shared by the integration tests (`tests/`) and the mount tests
//! (`mount-tests/`, which include this file with `#[path]`): run the real
//! `assetfs` binary in an isolated temporary environment (`env`), check its
//! outcome, build trees of files and compare them (`trees`).

#![allow(dead_code)]

pub mod env;
pub mod live;
pub mod trees;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

// Not every test crate builds trees.
#[allow(unused_imports)]
pub use trees::*;

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
        env::scrub(&mut c);
        c.args(args)
            .current_dir(self.work())
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("xdg-data"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env("ASSETFS_STORE", &self.store)
            .env("ASSETFS_CACHE_DIR", self.cache_dir())
            .env("ASSETFS_AUTHOR", AUTHOR)
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
