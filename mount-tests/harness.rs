//! Helpers for the real-FUSE tests: isolated environments, bounded child
//! processes, the [`Mounted`] guard (a live `assetfs mount --foreground`),
//! the [`Moto`] guard (an S3 server this test owns and can stop), comparing
//! a mounted tree with its source, and thin wrappers over the libc calls std
//! does not offer. What the other integration tests share too (the binary,
//! environment scrubbing, building and listing file trees) is in
//! `tests/common/`, which each mount-test crate root includes as `common`.
//!
//! Every wait here is bounded. A guard's `Drop` never panics, and always
//! leaves no mount and no child process behind.

#![allow(dead_code)]

use std::ffi::{CString, OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{content_hash_hex, env, listing, s, Listed, AUTHOR, BIN};

/// How long a mount may take to come up.
pub const MOUNT_WAIT: Duration = Duration::from_secs(20);
/// How long one CLI command (push, show, unmount...) may take.
pub const CMD_LIMIT: Duration = Duration::from_secs(90);
/// A mount older than this is presumed hung: its daemon is killed and the
/// mount detached, so whatever the test blocks on fails instead of hanging.
pub const WATCHDOG: Duration = Duration::from_secs(150);

/// An environment variable the test cannot run without. Never a silent skip.
pub fn require_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set. The mount tests need the test servers' environment: run \
             `scripts/test.sh`, or `source scripts/test-servers.sh && servers_start` and then \
             `cargo test --test mount` in that shell (see mount-tests/README.md). This test is never \
             skipped."
        ),
    }
}

/// Panics unless this machine can mount FUSE filesystems.
pub fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: the mount tests need FUSE (load the fuse module; in a container, \
         pass --device /dev/fuse --cap-add SYS_ADMIN). See mount-tests/README.md."
    );
}

// ---------------------------------------------------------------------------
// Bounded child processes

/// Runs a command to completion, killing it after `limit`. Stdout and stderr
/// are captured.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = vec![];
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(child.stdout.take().map(|o| Box::new(o) as _));
    let err = drain(child.stderr.take().map(|o| Box::new(o) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?} did not finish within {limit:?}; killed"));
            }
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

pub fn describe(what: &str, o: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// How to build an `assetfs` command in one environment. Cloneable, so a
/// guard can run `unmount` from its `Drop`.
#[derive(Clone, Debug)]
pub struct CmdSpec {
    envs: Vec<(OsString, OsString)>,
    cwd: PathBuf,
    /// Run as this (uid, gid), with no other groups (tests of other users).
    user: Option<(u32, u32)>,
}

impl CmdSpec {
    pub fn command(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        env::scrub(&mut c);
        c.args(args).current_dir(&self.cwd);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            // std drops root's supplementary groups (setgroups) before setuid.
            c.gid(gid).uid(uid);
        }
        c
    }

    pub fn assetfs(&self, args: &[&str]) -> Command {
        self.command(BIN, args)
    }
}

// ---------------------------------------------------------------------------
// Test environment

/// One isolated environment: a temporary directory holding HOME, the XDG
/// dirs, the push cache, the `file://` store (if used), sources, mountpoints
/// and mount caches. Declare it before any [`Mounted`] so it drops last.
pub struct TestEnv {
    pub tmp: tempfile::TempDir,
    pub store: String,
    pub spec: CmdSpec,
}

impl TestEnv {
    /// A fresh local store at `<tmp>/store`.
    pub fn file_store() -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("assetfs-mount-")
            .tempdir()
            .expect("tempdir");
        let store = format!("file://{}", s(&tmp.path().join("store")));
        TestEnv::finish(tmp, store, vec![])
    }

    /// The given store URL, with extra environment (e.g. a dedicated S3 endpoint).
    pub fn with_store(url: &str, extra: Vec<(String, String)>) -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("assetfs-mount-")
            .tempdir()
            .expect("tempdir");
        TestEnv::finish(tmp, url.to_string(), extra)
    }

    /// A fresh local store owned by `user`, whose commands all run as that
    /// user (in a directory tree the user owns, reachable by everyone).
    pub fn for_user(user: &TestUser) -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("assetfs-user-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        chown(tmp.path(), user.uid, user.gid).expect("chown");
        let store = format!("file://{}", s(&tmp.path().join("store")));
        TestEnv::finish_as(tmp, store, vec![], Some((user.uid, user.gid)))
    }

    fn finish(tmp: tempfile::TempDir, store: String, extra: Vec<(String, String)>) -> TestEnv {
        TestEnv::finish_as(tmp, store, extra, None)
    }

    fn finish_as(
        tmp: tempfile::TempDir,
        store: String,
        extra: Vec<(String, String)>,
        user: Option<(u32, u32)>,
    ) -> TestEnv {
        let p = tmp.path();
        for d in [
            "home",
            "xdg-data",
            "xdg-cache",
            "xdg-config",
            "xdg-runtime",
            "work",
        ] {
            std::fs::create_dir_all(p.join(d)).expect("mkdir");
        }
        std::fs::set_permissions(
            p.join("xdg-runtime"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");
        let mut envs: Vec<(OsString, OsString)> = vec![
            ("HOME".into(), p.join("home").into()),
            ("XDG_DATA_HOME".into(), p.join("xdg-data").into()),
            ("XDG_CACHE_HOME".into(), p.join("xdg-cache").into()),
            ("XDG_CONFIG_HOME".into(), p.join("xdg-config").into()),
            ("XDG_RUNTIME_DIR".into(), p.join("xdg-runtime").into()),
            ("ASSETFS_STORE".into(), store.clone().into()),
            // Pushes and other commands use their own cache, so every mount starts cold.
            ("ASSETFS_CACHE_DIR".into(), p.join("push-cache").into()),
            ("ASSETFS_AUTHOR".into(), AUTHOR.into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ];
        envs.extend(extra.into_iter().map(|(k, v)| (k.into(), v.into())));
        if let Some((uid, gid)) = user {
            for e in walkdir::WalkDir::new(p).min_depth(1) {
                chown(e.expect("walk").path(), uid, gid).expect("chown");
            }
        }
        let spec = CmdSpec {
            envs,
            cwd: p.join("work"),
            user,
        };
        let env = TestEnv { tmp, store, spec };
        // Every command but `init` refuses a store without its marker.
        env.ok(&["init"]);
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.spec.assetfs(args)
    }

    /// Runs `assetfs ARGS` (bounded) and asserts success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let o = run_limited(&mut self.cmd(args), CMD_LIMIT).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            o.status.success(),
            "{}",
            describe(&format!("assetfs {}", args.join(" ")), &o)
        );
        o
    }

    /// `assetfs push REF DIR EXTRA...`, as a separate process.
    pub fn push(&self, reference: &str, dir: &Path, extra: &[&str]) {
        let mut args = vec!["push", reference, s(dir)];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// `assetfs show REF --json`, parsed.
    pub fn show_json(&self, reference: &str) -> Value {
        let o = self.ok(&["show", reference, "--json"]);
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "show {reference} --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
    }

    /// `assetfs --cache-dir DIR cache stats --json`, parsed.
    pub fn cache_stats(&self, cache_dir: &Path) -> Value {
        let o = self.ok(&["--cache-dir", s(cache_dir), "cache", "stats", "--json"]);
        serde_json::from_slice(&o.stdout).expect("cache stats --json is JSON")
    }

    /// Mounts with a cache and mountpoint of its own, named after `name`.
    pub fn mount(&self, name: &str, opts: &[&str]) -> Mounted {
        self.mount_with_cache(name, &self.path(&format!("cache-{name}")), opts)
    }

    /// Mounts at `<tmp>/mnt-<name>` using the given cache directory.
    pub fn mount_with_cache(&self, name: &str, cache_dir: &Path, opts: &[&str]) -> Mounted {
        let mnt = self.path(&format!("mnt-{name}"));
        std::fs::create_dir_all(&mnt).expect("mkdir mountpoint");
        let stderr = self.path(&format!("mount-{name}-{}.stderr", rand::random::<u32>()));
        Mounted::start(self.spec.clone(), &mnt, cache_dir, opts, &stderr)
    }
}

// ---------------------------------------------------------------------------
// Mount table

/// The filesystem type and source of the mount at `p` (e.g. `fuse assetfs`), if `p` is a mount point.
pub fn mount_type(p: &Path) -> Option<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table.lines().rev().find_map(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let point = fields.get(4)?;
        if Path::new(&assetfs::mount::unescape_mountinfo(point)) != p {
            return None;
        }
        let sep = fields.iter().position(|f| *f == "-")?;
        Some(format!("{} {}", fields.get(sep + 1)?, fields.get(sep + 2)?))
    })
}

pub fn is_mounted(p: &Path) -> bool {
    mount_type(p).is_some()
}

fn lazy_unmount(p: &Path) {
    if let Ok(c) = CString::new(p.as_os_str().as_bytes()) {
        // SAFETY: a valid NUL-terminated path.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

// ---------------------------------------------------------------------------
// The mount guard

/// A live `assetfs mount MNT --foreground` child. Dropping it unmounts
/// (`assetfs unmount`, then a lazy unmount if that failed), then kills and
/// reaps the daemon. A watchdog kills the daemon after [`WATCHDOG`], so a
/// test blocked on the mount fails instead of hanging.
pub struct Mounted {
    pub mnt: PathBuf,
    pub cache_dir: PathBuf,
    /// The daemon's "mounted ..." line.
    pub ready_line: String,
    spec: CmdSpec,
    child: Option<Child>,
    /// The daemon's pid while the watchdog may still kill it.
    alive: Arc<Mutex<Option<u32>>>,
    watchdog: Option<mpsc::Sender<()>>,
    stderr_path: PathBuf,
}

impl Mounted {
    fn start(spec: CmdSpec, mnt: &Path, cache_dir: &Path, opts: &[&str], stderr: &Path) -> Mounted {
        require_fuse();
        let mnt = mnt.canonicalize().expect("mountpoint exists");
        assert!(
            !is_mounted(&mnt),
            "{} is already a mount point",
            mnt.display()
        );
        let mut args = vec![
            "--cache-dir",
            s(cache_dir),
            "mount",
            s(&mnt),
            "--foreground",
        ];
        args.extend_from_slice(opts);
        let errfile = std::fs::File::create(stderr).expect("create stderr file");
        let mut child = spec
            .assetfs(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errfile)
            .spawn()
            .expect("start assetfs mount");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Read to EOF, so the daemon never writes into a closed pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let alive = Arc::new(Mutex::new(Some(child.id())));
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        {
            let alive = alive.clone();
            let mnt = mnt.clone();
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(WATCHDOG) {
                    let g = alive.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(pid) = *g {
                        eprintln!(
                            "WATCHDOG: mount {} still up after {WATCHDOG:?}; killing its daemon \
                             (pid {pid}) so the test fails instead of hanging",
                            mnt.display()
                        );
                        // SAFETY: plain kill(2); the pid is not reaped while we hold the lock.
                        unsafe {
                            libc::kill(pid as libc::pid_t, libc::SIGKILL);
                        }
                        drop(g);
                        lazy_unmount(&mnt);
                    }
                }
            });
        }

        // From here on the guard owns the child: a panic below still cleans up.
        let mut m = Mounted {
            mnt,
            cache_dir: cache_dir.to_path_buf(),
            ready_line: String::new(),
            spec,
            child: Some(child),
            alive,
            watchdog: Some(stop_tx),
            stderr_path: stderr.to_path_buf(),
        };
        let deadline = Instant::now() + MOUNT_WAIT;
        let mut seen = vec![];
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line.starts_with("mounted ") => {
                    m.ready_line = line;
                    break;
                }
                Ok(line) => seen.push(line),
                Err(_) => {}
            }
            if let Some(Ok(Some(st))) = m.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "assetfs mount {} exited ({st}) before mounting; stdout: {seen:?}\n{}",
                    m.mnt.display(),
                    m.diagnostics()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "assetfs mount {} printed no `mounted` line within {MOUNT_WAIT:?}; stdout: \
                     {seen:?}\n{}",
                    m.mnt.display(),
                    m.diagnostics()
                );
            }
        }
        // The line comes after the kernel mount; confirm it in the table anyway.
        // (The type is `fuse`, or `fuse.assetfs` when mounted through fusermount3.)
        while !mount_type(&m.mnt).is_some_and(|t| t.starts_with("fuse") && t.ends_with(" assetfs"))
        {
            assert!(
                Instant::now() < deadline,
                "{} said mounted but is not an assetfs FUSE mount within {MOUNT_WAIT:?}: {:?}\n{}",
                m.mnt.display(),
                mount_type(&m.mnt),
                m.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The daemon's stderr and whole log.
    pub fn log_text(&self) -> String {
        let mut out = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.cache_dir.join("logs")) {
            for e in rd.flatten() {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    /// The daemon's stderr and the tail of its log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out = format!(
            "--- daemon stderr ---\n{}",
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        );
        if let Ok(rd) = std::fs::read_dir(self.cache_dir.join("logs")) {
            for e in rd.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                out.push_str(&format!(
                    "\n--- {} (last lines) ---\n{}",
                    e.path().display(),
                    tail.join("\n")
                ));
            }
        }
        out
    }

    /// Waits (bounded) for the daemon to exit on its own; kills it otherwise.
    /// Returns its exit status when it exited by itself.
    fn reap(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        // The watchdog must not kill a pid that is about to be reaped.
        *self.alive.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.watchdog.take();
        let mut child = self.child.take()?;
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// A clean unmount through `assetfs unmount`, asserting that it worked,
    /// that the mount is gone and that the daemon exited successfully.
    pub fn unmount(mut self) {
        let o = run_limited(
            &mut self.spec.assetfs(&["unmount", s(&self.mnt)]),
            CMD_LIMIT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            o.status.success(),
            "{}\n{}",
            describe("assetfs unmount", &o),
            self.diagnostics()
        );
        assert!(
            !is_mounted(&self.mnt),
            "{} still mounted after a successful unmount",
            self.mnt.display()
        );
        let st = self.reap(Duration::from_secs(10));
        let diag = self.diagnostics();
        match st {
            Some(st) => assert!(st.success(), "mount daemon exited with {st}\n{diag}"),
            None => panic!("mount daemon did not exit within 10 s of unmount\n{diag}"),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        *self.alive.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.watchdog.take();
        if is_mounted(&self.mnt) {
            match run_limited(
                &mut self.spec.assetfs(&["unmount", s(&self.mnt)]),
                Duration::from_secs(15),
            ) {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!("cleanup: {}", describe("assetfs unmount", &o)),
                Err(e) => eprintln!("cleanup: {e}"),
            }
            if is_mounted(&self.mnt) {
                eprintln!("cleanup: lazily unmounting {}", self.mnt.display());
                lazy_unmount(&self.mnt);
            }
        }
        self.reap(Duration::from_secs(10));
        if is_mounted(&self.mnt) {
            lazy_unmount(&self.mnt);
        }
    }
}

// ---------------------------------------------------------------------------
// A moto S3 server owned by one test

/// A `moto_server` on a free loopback port, with one bucket. Killed (by PID)
/// by [`Moto::kill`] or on drop.
pub struct Moto {
    child: Option<Child>,
    pub port: u16,
    pub bucket: String,
    log: PathBuf,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// One plain HTTP/1.1 request with an empty body; returns the status line.
pub fn http_status(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut resp = vec![];
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

impl Moto {
    pub fn start(dir: &Path, bucket: &str) -> Moto {
        let bin = require_env("ASSETFS_TEST_MOTO");
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let log = dir.join(format!("moto-{port}.log"));
            let logf = std::fs::File::create(&log).expect("moto log");
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .current_dir(dir)
                .env("HOME", dir)
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("dup log"))
                .stderr(logf)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin} (ASSETFS_TEST_MOTO): {e}"));
            let mut m = Moto {
                child: Some(child),
                port,
                bucket: bucket.to_string(),
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let up = loop {
                if let Some(Ok(Some(st))) = m.child.as_mut().map(|c| c.try_wait()) {
                    last = format!("moto exited ({st}) on port {port} (attempt {attempt})");
                    break false;
                }
                if http_status(port, "GET", "/").is_ok_and(|l| l.starts_with("HTTP/")) {
                    break true;
                }
                if Instant::now() > deadline {
                    last = format!("moto did not answer on port {port} within 30 s");
                    break false;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if !up {
                last.push_str(&format!(
                    "\n{}",
                    std::fs::read_to_string(&m.log).unwrap_or_default()
                ));
                m.kill();
                continue;
            }
            let st = http_status(port, "PUT", &format!("/{bucket}"))
                .unwrap_or_else(|e| panic!("creating bucket {bucket} on moto: {e}"));
            assert!(
                st.contains(" 200"),
                "creating bucket {bucket} on moto: {st}"
            );
            return m;
        }
        panic!("could not start a dedicated moto server: {last}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points the AWS S3 client at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        let ep = self.endpoint();
        [
            ("AWS_ENDPOINT", ep.as_str()),
            ("AWS_ENDPOINT_URL", ep.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Freezes the server (SIGSTOP): connections are accepted, never answered.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGSTOP);
            }
        }
    }

    /// Kills (SIGKILL) and reaps the server; its port then refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Comparing trees and reading files

/// Asserts equal bytes without printing megabytes on failure.
pub fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: content differs: got {} bytes, want {} bytes, first difference at byte {first}",
        got.len(),
        want.len()
    );
}

/// Asserts that `mounted` shows exactly the tree at `src`: same entries,
/// types, permissions, sizes, symlink targets, bytes of every file, and a
/// `user.assetfs.blake3` xattr equal to each file's content hash.
pub fn assert_tree_same(src: &Path, mounted: &Path) {
    let want = listing(src);
    let got = listing(mounted);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "entries of {} vs {}",
        mounted.display(),
        src.display()
    );
    for (rel, w) in &want {
        assert_eq!(&got[rel], w, "{rel} under {}", mounted.display());
        if let Listed::File { .. } = w {
            let wb = std::fs::read(src.join(rel)).expect("read source");
            let path = mounted.join(rel);
            let gb =
                std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            assert_same_bytes(&path.display().to_string(), &gb, &wb);
            let x = getxattr(&path, "user.assetfs.blake3")
                .unwrap_or_else(|e| panic!("getxattr {}: {e}", path.display()));
            assert_eq!(
                String::from_utf8_lossy(&x),
                content_hash_hex(&wb),
                "user.assetfs.blake3 of {}",
                path.display()
            );
        }
    }
}

/// Names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .collect();
    v.sort();
    v
}

/// Reads a whole file in `buf_size` pieces through one descriptor.
pub fn read_in_pieces(path: &Path, buf_size: usize) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut out = vec![];
    let mut buf = vec![0u8; buf_size];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Reads `[offset, offset + len)` with pread, to EOF if the range crosses it.
pub fn pread_range(f: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// Drops a file's pages from the kernel page cache, so the next read goes
/// to the filesystem again.
pub fn drop_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).expect("open for fadvise");
    // SAFETY: a valid open descriptor.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise DONTNEED on {}", path.display());
}

// ---------------------------------------------------------------------------
// libc calls std does not offer

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in path")
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `getxattr(2)`: first asks for the size, then reads the value.
pub fn getxattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let (p, n) = (cpath(path), CString::new(name).expect("name"));
    // SAFETY: valid C strings; a NULL buffer of size 0 asks for the size.
    let size = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
    if size < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = vec![0u8; size as usize];
    // SAFETY: the buffer is valid for buf.len() bytes.
    let got = unsafe {
        libc::getxattr(
            p.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    if got < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(got as usize);
    Ok(buf)
}

/// `getxattr(2)` into a buffer of exactly `size` bytes.
pub fn getxattr_sized(path: &Path, name: &str, size: usize) -> std::io::Result<usize> {
    let (p, n) = (cpath(path), CString::new(name).expect("name"));
    let mut buf = vec![0u8; size];
    // SAFETY: the buffer is valid for `size` bytes.
    let got = unsafe {
        libc::getxattr(
            p.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            size,
        )
    };
    if got < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(got as usize)
    }
}

/// `listxattr(2)`, split at the NULs.
pub fn listxattr(path: &Path) -> std::io::Result<Vec<String>> {
    let p = cpath(path);
    let mut buf = vec![0u8; 4096];
    // SAFETY: the buffer is valid for buf.len() bytes.
    let n =
        unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

pub fn setxattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let (p, n) = (cpath(path), CString::new(name).expect("name"));
    // SAFETY: valid C strings and a value buffer of value.len() bytes.
    check(unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    })
}

pub fn removexattr(path: &Path, name: &str) -> std::io::Result<()> {
    let (p, n) = (cpath(path), CString::new(name).expect("name"));
    // SAFETY: valid C strings.
    check(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) })
}

pub fn truncate(path: &Path, len: i64) -> std::io::Result<()> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    check(unsafe { libc::truncate(p.as_ptr(), len) })
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let p = cpath(path);
    // SAFETY: a valid C string.
    check(unsafe { libc::chown(p.as_ptr(), uid, gid) })
}

/// Sets atime and mtime to now (`touch`).
pub fn touch_times(path: &Path) -> std::io::Result<()> {
    let p = cpath(path);
    // SAFETY: a valid C string; NULL times means "now".
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), std::ptr::null(), 0) })
}

/// A read-only memory mapping of a whole file, unmapped on drop.
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    /// `mmap(PROT_READ, MAP_SHARED or MAP_PRIVATE)` of the whole file.
    pub fn new(f: &std::fs::File, private: bool) -> std::io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        let len = f.metadata()?.len() as usize;
        assert!(len > 0, "cannot map an empty file");
        let flags = if private {
            libc::MAP_PRIVATE
        } else {
            libc::MAP_SHARED
        };
        // SAFETY: a fresh mapping of an open descriptor; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                flags,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is valid and readable for len bytes until drop.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what mmap returned.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

// ---------------------------------------------------------------------------
// A background mount (`assetfs mount MNT`, the daemon detached)

/// A mount made by `assetfs mount MNT` without `--foreground`, as a deploy
/// script or systemd does it. Dropping it unmounts (`assetfs unmount`, then
/// a lazy unmount), then kills its daemon if it is still alive.
pub struct BgMount {
    pub mnt: PathBuf,
    pub cache_dir: PathBuf,
    pub stdout: String,
    pub spec: CmdSpec,
}

impl BgMount {
    /// Runs `assetfs --cache-dir CACHE mount MNT OPTS...` and asserts that it
    /// returned success with the mount live.
    pub fn start(spec: &CmdSpec, mnt: &Path, cache_dir: &Path, opts: &[&str]) -> BgMount {
        require_fuse();
        let mut args = vec!["--cache-dir", s(cache_dir), "mount", s(mnt)];
        args.extend_from_slice(opts);
        let o = run_limited(
            &mut spec.assetfs(&args),
            MOUNT_WAIT + Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let m = BgMount {
            mnt: mnt.canonicalize().expect("mountpoint"),
            cache_dir: cache_dir.to_path_buf(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            spec: spec.clone(),
        };
        assert!(o.status.success(), "{}", describe("assetfs mount", &o));
        assert!(
            is_mounted(&m.mnt),
            "mount returned success but {} is not mounted",
            m.mnt.display()
        );
        m
    }

    /// The daemon's pid, from the node's mount records.
    pub fn pid(&self) -> Option<u32> {
        let e = assetfs::mount::mount_at(&self.mnt)?;
        assetfs::mount::record_for(&e).map(|r| r.pid)
    }

    /// Forgets the guard without unmounting (the test unmounts some other way).
    pub fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for BgMount {
    fn drop(&mut self) {
        let pid = self.pid();
        if is_mounted(&self.mnt) {
            match run_limited(
                &mut self.spec.assetfs(&["unmount", s(&self.mnt)]),
                Duration::from_secs(15),
            ) {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!("cleanup: {}", describe("assetfs unmount", &o)),
                Err(e) => eprintln!("cleanup: {e}"),
            }
            if is_mounted(&self.mnt) {
                lazy_unmount(&self.mnt);
            }
        }
        if let Some(pid) = pid {
            if assetfs::mount::process_start(pid).is_some() {
                // SAFETY: plain kill(2) of a daemon this test started.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }
}

/// `umount2(p, 0)`: an unmount by someone else than assetfs (an admin's
/// `umount`, systemd stopping a mount unit).
pub fn plain_unmount(p: &Path) -> std::io::Result<()> {
    let c = cpath(p);
    // EBUSY is retried (bounded): tests running beside this one list the
    // node's assetfs mounts, and a stale check opens each mount's root for
    // a moment, which makes a plain umount(2) fail right then.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // SAFETY: a valid C string.
        match check(unsafe { libc::umount2(c.as_ptr(), 0) }) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Waits (bounded) until process `pid` has exited.
pub fn wait_gone(pid: u32, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while assetfs::mount::process_start(pid).is_some() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

// ---------------------------------------------------------------------------
// Other local users

/// Serialises tests that create users or change node-wide state
/// (/dev/fuse's mode, /etc/fuse.conf) within one test binary.
pub static NODE_STATE: Mutex<()> = Mutex::new(());

/// A local unprivileged user made for one test (`useradd`), deleted on drop.
/// A test that cannot create one fails: it is never skipped.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    pub fn create() -> TestUser {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("afs{}x{n}", std::process::id());
        let mut last = String::new();
        // useradd takes a lock on /etc/passwd; another process may hold it.
        for _ in 0..20 {
            let o = Command::new("useradd")
                .args([
                    "--no-create-home",
                    "--user-group",
                    "--shell",
                    "/bin/sh",
                    &name,
                ])
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run useradd (the tests of other users need it, as root): {e}")
                });
            if o.status.success() {
                let id = |flag: &str| -> u32 {
                    let o = Command::new("id").args([flag, &name]).output().expect("id");
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse()
                        .expect("numeric id")
                };
                return TestUser {
                    uid: id("-u"),
                    gid: id("-g"),
                    name,
                };
            }
            last = String::from_utf8_lossy(&o.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "cannot create a test user with useradd (these tests need root and the passwd \
             package): {last}"
        );
    }

    /// A command run as this user, with the given environment's variables.
    pub fn command(&self, env: &TestEnv, program: &str, args: &[&str]) -> Command {
        let mut spec = env.spec.clone();
        spec.user = Some((self.uid, self.gid));
        spec.command(program, args)
    }

    /// Runs a command as this user (bounded); returns its output.
    pub fn run(&self, env: &TestEnv, program: &str, args: &[&str]) -> Output {
        run_limited(&mut self.command(env, program, args), CMD_LIMIT)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for _ in 0..20 {
            match Command::new("userdel").arg(&self.name).output() {
                Ok(o) if o.status.success() => return,
                Ok(o) if String::from_utf8_lossy(&o.stderr).contains("does not exist") => return,
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        eprintln!("cleanup: could not delete test user {}", self.name);
    }
}

/// Sets /dev/fuse's mode for the life of the guard, restoring the old one.
pub struct DevFuseMode {
    old: u32,
}

impl DevFuseMode {
    pub fn set(mode: u32) -> DevFuseMode {
        require_fuse();
        let old = std::fs::metadata("/dev/fuse")
            .expect("stat /dev/fuse")
            .permissions()
            .mode()
            & 0o7777;
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(mode))
            .expect("chmod /dev/fuse (needs root)");
        DevFuseMode { old }
    }
}

impl Drop for DevFuseMode {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.old));
    }
}

/// Replaces /etc/fuse.conf for the life of the guard, restoring the old one.
pub struct FuseConf {
    old: Option<Vec<u8>>,
}

impl FuseConf {
    pub fn set(text: &str) -> FuseConf {
        let old = std::fs::read("/etc/fuse.conf").ok();
        std::fs::write("/etc/fuse.conf", text).expect("write /etc/fuse.conf (needs root)");
        FuseConf { old }
    }
}

impl Drop for FuseConf {
    fn drop(&mut self) {
        match &self.old {
            Some(b) => {
                let _ = std::fs::write("/etc/fuse.conf", b);
            }
            None => {
                let _ = std::fs::remove_file("/etc/fuse.conf");
            }
        }
    }
}

/// A tmpfs mounted for the test, lazily unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mkdir tmpfs mountpoint");
        let o = run_limited(
            Command::new("mount").args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                s(dir),
            ]),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            o.status.success(),
            "a disk-full test mounts a small tmpfs and needs root (or CAP_SYS_ADMIN): {}",
            describe("mount -t tmpfs", &o)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(c) = CString::new(self.0.as_os_str().as_bytes()) {
            // SAFETY: a valid NUL-terminated path.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// Space on the filesystem holding `p`: (total, available) bytes.
pub fn fs_space(p: &Path) -> (u64, u64) {
    let c = CString::new(p.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: statvfs writes only the struct it is given; `c` is a valid
    // NUL-terminated path.
    let s = unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        assert_eq!(
            libc::statvfs(c.as_ptr(), &mut s),
            0,
            "statvfs {}",
            p.display()
        );
        s
    };
    let unit = s.f_frsize as u64;
    (s.f_blocks as u64 * unit, s.f_bavail as u64 * unit)
}

/// Writes file `name` in `dir` until the filesystem has at most `leave`
/// bytes available (0: until it is full); returns the bytes written.
pub fn fill_disk(dir: &Path, name: &str, leave: u64) -> u64 {
    let mut f = std::fs::File::create(dir.join(name)).expect("create filler");
    let block = vec![0x5a_u8; 64 << 10];
    let mut written = 0u64;
    loop {
        let (_, avail) = fs_space(dir);
        if leave > 0 && avail <= leave {
            break;
        }
        let n = if leave > 0 {
            (avail - leave).min(block.len() as u64) as usize
        } else {
            block.len()
        };
        match f.write(&block[..n]) {
            Ok(0) => break,
            Ok(k) => written += k as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    // Flushed, so the space is taken now (tmpfs takes it at write already).
    let _ = f.sync_all();
    written
}

/// A value sampled on a thread until [`Watch::stop`], folded as it goes
/// (the greatest or least seen, say).
pub struct Watch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Watch {
    pub fn start(
        every: Duration,
        init: u64,
        fold: fn(u64, u64) -> u64,
        sample: impl Fn() -> u64 + Send + 'static,
    ) -> Watch {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acc = init;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    acc = fold(acc, sample());
                    std::thread::sleep(every);
                }
                fold(acc, sample())
            })
        };
        Watch { stop, thread }
    }

    /// Stops sampling (after one last sample); the folded value.
    pub fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("watch thread")
    }
}
