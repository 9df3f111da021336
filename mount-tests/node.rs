//! Real-FUSE tests of a shared node (issue 10): restarts at one path,
//! `assetfs mounts` and stale mounts, other users, boot-time mounts,
//! one-asset mounts, file modes. See mount-tests/README.md.

#[path = "../tests/common/mod.rs"]
mod common;
mod harness;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;
use harness::*;

/// A store holding models/x@1 (two small files).
fn env_with_model() -> TestEnv {
    let env = TestEnv::file_store();
    env.ok(&["init"]);
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"version one\n", 0o644);
    write_file(&src.join("w/weights.bin"), &[7u8; 70_000], 0o600);
    env.push("models/x", &src, &[]);
    env
}

fn mounts_json(env: &TestEnv) -> Vec<Value> {
    let o = env.ok(&["mounts", "--json"]);
    serde_json::from_slice::<Value>(&o.stdout)
        .expect("mounts --json is JSON")
        .as_array()
        .expect("an array")
        .clone()
}

fn mount_entry(env: &TestEnv, mnt: &Path) -> Option<Value> {
    mounts_json(env)
        .into_iter()
        .find(|m| m["mountpoint"].as_str() == Some(s(mnt)))
}

// ---------------------------------------------------------------------------
// 5. Restarts at one path

/// Mount, read, unmount, mount again at one path, 60 times, as a deploy
/// script or a systemd restart does. Even rounds unmount with `assetfs
/// unmount`, which must return only once the daemon is gone; odd rounds
/// unmount with a plain umount(2) and mount again at once, while the old
/// daemon may still be exiting: that daemon must leave the new mount alone.
/// Every mount must stay up until the test unmounts it.
#[test]
fn remount_in_a_tight_loop_keeps_every_mount() {
    let env = env_with_model();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let cache = env.path("cache");
    const ROUNDS: usize = 60;
    let started = Instant::now();
    let mut overlaps = 0;
    let mut guard = Some(BgMount::start(&env.spec, &mnt, &cache, &[]));
    let mut previous: Option<u32> = None;
    for round in 0..ROUNDS {
        let m = guard.take().expect("a mount");
        let pid = m.pid().expect("the daemon has a record");
        // The previous daemon (unmounted by plain umount) has exited by now or
        // exits soon; whenever it does, this mount must survive it.
        if let Some(old) = previous.take() {
            assert!(
                wait_gone(old, Duration::from_secs(10)),
                "round {round}: old daemon {old} still running"
            );
        }
        assert!(is_mounted(&m.mnt), "round {round}: the mount vanished");
        assert_eq!(
            fs::read(m.mnt.join("models/x@1/a.txt"))
                .unwrap_or_else(|e| panic!("round {round}: read through the mount: {e}")),
            b"version one\n"
        );
        if round % 2 == 0 {
            env.ok(&["unmount", s(&mnt)]);
            assert!(
                assetfs::mount::process_start(pid).is_none(),
                "round {round}: `assetfs unmount` returned while daemon {pid} was still running"
            );
            m.disarm();
        } else {
            plain_unmount(&mnt).expect("umount");
            m.disarm();
            if assetfs::mount::process_start(pid).is_some() {
                overlaps += 1;
            }
            previous = Some(pid);
        }
        guard = Some(BgMount::start(&env.spec, &mnt, &cache, &[]));
    }
    let m = guard.take().unwrap();
    if let Some(old) = previous {
        assert!(wait_gone(old, Duration::from_secs(10)));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(is_mounted(&m.mnt), "the last mount vanished");
    drop(m);
    println!(
        "{ROUNDS} rounds in {:?}; {overlaps} new mounts made while the old daemon was still running",
        started.elapsed()
    );
    assert!(
        overlaps >= 5,
        "only {overlaps} of {} plain-umount rounds remounted while the old daemon was alive; \
         the race was not exercised",
        ROUNDS / 2
    );
    assert!(!is_mounted(&mnt));
}

// ---------------------------------------------------------------------------
// 6. `assetfs mounts`, stale mounts

#[test]
fn mounts_lists_live_and_stale_mounts() {
    let env = env_with_model();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let cache = env.path("cache");
    let m = BgMount::start(&env.spec, &mnt, &cache, &[]);
    let mnt = m.mnt.clone();
    fs::write(mnt.join("models/x@staging/new.txt"), b"staged").unwrap();
    assert_eq!(
        fs::read(mnt.join("models/x@1/w/weights.bin")).unwrap(),
        vec![7u8; 70_000]
    );
    let e = mount_entry(&env, &mnt).expect("mounts lists the mount");
    assert_eq!(e["state"], "live");
    assert_eq!(e["store"].as_str(), Some(env.store.as_str()));
    assert_eq!(e["cache_dir"].as_str(), Some(s(&cache)));
    let pid = e["pid"].as_u64().expect("pid") as u32;
    assert_eq!(Some(pid), m.pid());
    assert!(e["uptime_s"].as_u64().is_some());
    let rate = e["cache_hit_rate"].as_f64().expect("hit rate");
    assert!((0.0..=1.0).contains(&rate));
    assert_eq!(
        e["staging"],
        serde_json::json!([{"asset": "models/x", "base": 1, "changes": 1}])
    );
    let text = String::from_utf8(env.ok(&["mounts"]).stdout).unwrap();
    assert!(
        text.contains(&format!("{}  live  pid {pid}", mnt.display())),
        "{text}"
    );
    assert!(
        text.contains("models/x@staging: 1 change(s) against @1"),
        "{text}"
    );

    // The daemon dies: the mount is stale, named as such, with the fix.
    // SAFETY: plain kill(2) of the daemon this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    assert!(wait_gone(pid, Duration::from_secs(10)));
    let e = mount_entry(&env, &mnt).expect("a stale mount is listed");
    assert_eq!(e["state"], "stale");
    let hint = e["hint"].as_str().unwrap();
    assert!(
        hint.contains(&format!("assetfs unmount {}", mnt.display())),
        "{hint}"
    );
    let text = String::from_utf8(env.ok(&["mounts"]).stdout).unwrap();
    assert!(text.contains("STALE"), "{text}");
    // Mounting over it names the stale mount, not a missing directory.
    let o = run_limited(
        &mut env.cmd(&["--cache-dir", s(&cache), "mount", s(&mnt)]),
        CMD_LIMIT,
    )
    .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("stale mount") && err.contains("assetfs unmount"),
        "{err}"
    );
    // `unmount` clears it; then a mount works again.
    env.ok(&["unmount", s(&mnt)]);
    assert!(!is_mounted(&mnt));
    assert!(mount_entry(&env, &mnt).is_none());
    m.disarm();
    let m = BgMount::start(&env.spec, &mnt, &cache, &[]);
    assert_eq!(
        fs::read(m.mnt.join("models/x@staging/new.txt")).unwrap(),
        b"staged"
    );
    drop(m);
    // Unmounting what is not mounted: one clear line.
    let o = run_limited(&mut env.cmd(&["unmount", s(&mnt)]), CMD_LIMIT).unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not mounted"));
}

// ---------------------------------------------------------------------------
// 1 and 8. Other users: what the mount's permissions allow, and nothing else

/// `cat PATH` as `user`: Ok(bytes) or Err(stderr).
fn cat_as(user: &TestUser, env: &TestEnv, path: &Path) -> Result<Vec<u8>, String> {
    let o = user.run(env, "cat", &[s(path)]);
    if o.status.success() {
        Ok(o.stdout)
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

fn assert_denied(r: Result<Vec<u8>, String>, what: &str) {
    match r {
        Ok(_) => panic!("{what}: another user could read it"),
        Err(e) => assert!(e.contains("Permission denied"), "{what}: {e}"),
    }
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Root mounts with `--allow-other`; an unprivileged user reads what the
/// modes allow and is refused the rest; `--file-mode/--dir-mode` and
/// `--uid/--gid` change that; without `--allow-other` the user sees nothing.
/// The staging area, the cache and the log on disk are owner-only, so the
/// user cannot read staged or cached bytes around the mount's permissions.
#[test]
fn other_users_get_what_the_mount_permissions_allow() {
    let _lock = NODE_STATE.lock().unwrap_or_else(|e| e.into_inner());
    let user = TestUser::create();
    let env = TestEnv::file_store();
    // The user must be able to reach the mountpoints (the temp dir is 0700).
    std::fs::set_permissions(
        env.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let src = env.path("src");
    write_file(&src.join("open.txt"), b"everyone\n", 0o644);
    write_file(&src.join("secret.bin"), b"owner only\n", 0o600);
    make_dir(&src.join("private"), 0o700);
    write_file(&src.join("private/inner.txt"), b"inner\n", 0o644);
    env.push("models/x", &src, &[]);
    let mnt_dir = |n: &str| {
        let p = env.path(n);
        fs::create_dir_all(&p).unwrap();
        p
    };

    // --allow-other, stored modes: 0644 readable, 0600 and a 0700 dir not.
    let m = BgMount::start(
        &env.spec,
        &mnt_dir("m1"),
        &env.path("c1"),
        &["--allow-other"],
    );
    let v = m.mnt.join("models/x@1");
    assert_eq!(
        cat_as(&user, &env, &v.join("open.txt")).unwrap(),
        b"everyone\n"
    );
    assert_denied(cat_as(&user, &env, &v.join("secret.bin")), "0600 file");
    assert_denied(
        cat_as(&user, &env, &v.join("private/inner.txt")),
        "file in a 0700 dir",
    );
    // Root itself reads everything; the owner shown is the mounting user.
    assert_eq!(fs::read(v.join("secret.bin")).unwrap(), b"owner only\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(v.join("secret.bin")).unwrap().uid(), 0);

    // Staged and cached bytes are not readable on disk either.
    fs::write(m.mnt.join("models/x@staging/staged.bin"), b"staged secret").unwrap();
    let staging_root = env.path("xdg-data/assetfs/staging");
    assert_eq!(mode_of(&staging_root), 0o700, "staging root");
    let mut staged_files = 0;
    for e in walkdir::WalkDir::new(&staging_root) {
        let e = e.unwrap();
        let mode = mode_of(e.path());
        if e.file_type().is_dir() {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", e.path().display());
        } else if e.path().parent().is_some_and(|p| p.ends_with("data")) {
            assert_eq!(mode, 0o600, "{} is {mode:o}", e.path().display());
            staged_files += 1;
            assert_denied(cat_as(&user, &env, e.path()), "staging data file");
        }
    }
    assert!(staged_files >= 1, "no staged data file found");
    let cache = env.path("c1");
    assert_eq!(mode_of(&cache), 0o700, "cache dir");
    let segment = walkdir::WalkDir::new(cache.join("segments"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_type().is_file())
        .expect("a cache segment file");
    assert_eq!(mode_of(segment.path()), 0o600, "cache segment");
    assert_denied(cat_as(&user, &env, segment.path()), "cache segment");
    let log = fs::read_dir(cache.join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(mode_of(&log), 0o600, "log file");
    assert_denied(cat_as(&user, &env, &log), "mount log");
    drop(m);

    // --file-mode/--dir-mode: every file 0444, every dir 0555.
    let m = BgMount::start(
        &env.spec,
        &mnt_dir("m2"),
        &env.path("c2"),
        &["--allow-other", "--file-mode", "0444", "--dir-mode", "0555"],
    );
    let v = m.mnt.join("models/x@1");
    assert_eq!(
        cat_as(&user, &env, &v.join("secret.bin")).unwrap(),
        b"owner only\n"
    );
    assert_eq!(
        cat_as(&user, &env, &v.join("private/inner.txt")).unwrap(),
        b"inner\n"
    );
    assert_eq!(mode_of(&v.join("secret.bin")), 0o444);
    assert_eq!(mode_of(&v.join("private")), 0o555);
    assert_eq!(mode_of(&m.mnt.join("models")), 0o555);
    drop(m);

    // --uid/--gid (by name): the user owns everything and reads its 0600 files.
    let m = BgMount::start(
        &env.spec,
        &mnt_dir("m3"),
        &env.path("c3"),
        &[
            "-o",
            &format!("allow_other,uid={},gid={}", user.name, user.name),
        ],
    );
    let v = m.mnt.join("models/x@1");
    let md = fs::metadata(v.join("secret.bin")).unwrap();
    assert_eq!((md.uid(), md.gid()), (user.uid, user.gid));
    assert_eq!(mode_of(&v.join("secret.bin")), 0o600);
    assert_eq!(
        cat_as(&user, &env, &v.join("secret.bin")).unwrap(),
        b"owner only\n"
    );
    drop(m);

    // Without --allow-other the user gets nothing, not even a listing.
    let m = BgMount::start(&env.spec, &mnt_dir("m4"), &env.path("c4"), &[]);
    assert_denied(
        cat_as(&user, &env, &m.mnt.join("models/x@1/open.txt")),
        "no allow-other",
    );
    drop(m);

    // Bad values: one line each, nothing mounted.
    for (flag, val, words) in [
        ("--file-mode", "rw-r--r--", "invalid mode"),
        ("--dir-mode", "99", "invalid mode"),
        ("--uid", "no-such-user-xyz", "no such user"),
        ("--gid", "no-such-group-xyz", "no such group"),
    ] {
        let mnt = mnt_dir("bad");
        let o = run_limited(&mut env.cmd(&["mount", s(&mnt), flag, val]), CMD_LIMIT).unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.trim().lines().count() == 1,
            "{flag}: {err}"
        );
        assert!(err.contains(words) && err.contains(flag), "{flag}: {err}");
        assert!(!is_mounted(&mnt));
    }
}

// ---------------------------------------------------------------------------
// 2. A normal user mounts through fusermount3

#[test]
fn a_normal_user_mounts_through_fusermount3() {
    let _lock = NODE_STATE.lock().unwrap_or_else(|e| e.into_inner());
    let user = TestUser::create();
    let env = TestEnv::for_user(&user);
    let src = env.path("src");
    write_file(&src.join("a.txt"), b"user data\n", 0o644);
    write_file(&src.join("expected.txt"), b"user data\n", 0o644);
    let tests = env.path("tests.json");
    fs::write(
        &tests,
        br#"[{"name": "same", "command": "cat a.txt", "expected": "expected.txt"}]"#,
    )
    .unwrap();
    for p in [&src, &tests] {
        for e in walkdir::WalkDir::new(p) {
            chown(e.unwrap().path(), user.uid, user.gid).unwrap();
        }
    }
    env.push("models/u", &src, &["--tests-file", s(&tests)]);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    chown(&mnt, user.uid, user.gid).unwrap();
    let cache = env.path("cache");
    let fail = |args: &[&str], words: &[&str]| {
        let o = run_limited(&mut env.cmd(args), CMD_LIMIT).unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
        }
        assert!(!is_mounted(&mnt));
    };

    // /dev/fuse closed to users (mode 0600): a clear error with the fix.
    {
        let _dev = DevFuseMode::set(0o600);
        fail(&["mount", s(&mnt)], &["/dev/fuse", "chmod 0666 /dev/fuse"]);
        // `assetfs test` cannot mount either: it says so, and runs from a copy.
        let o = env.ok(&["test", "models/u", "--json"]);
        let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(rep["ran_from"], "copy", "{rep}");
        assert_eq!(rep["passed"], 1, "{rep}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("cannot mount models/u@1 for its tests") && err.contains("copy"),
            "{err}"
        );
    }
    let _dev = DevFuseMode::set(0o666);
    let o = env.ok(&["test", "models/u", "--json"]);
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["ran_from"], "mount", "{rep}");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // No fusermount3: named, with the package to install.
    let mut c = env.cmd(&["mount", s(&mnt)]);
    c.env("FUSERMOUNT_PATH", "/nonexistent/fusermount3");
    let o = run_limited(&mut c, CMD_LIMIT).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("fusermount3 not found") && err.contains("fuse3"),
        "{err}"
    );
    // --allow-other without user_allow_other in /etc/fuse.conf.
    {
        let _conf = FuseConf::set("# no user_allow_other here\n");
        fail(
            &["mount", s(&mnt), "--allow-other"],
            &["user_allow_other", "/etc/fuse.conf"],
        );
        fail(
            &["mount", s(&mnt), "--allow-root"],
            &["user_allow_other", "--allow-root"],
        );
    }

    // The user mounts (fusermount3), reads, writes staging, commits, unmounts.
    let m = BgMount::start(&env.spec, &mnt, &cache, &[]);
    let t = mount_type(&m.mnt).unwrap();
    assert!(
        t.starts_with("fuse.assetfs") || t.starts_with("fuse "),
        "{t}"
    );
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(&format!(" {} ", s(&m.mnt))))
        .unwrap();
    assert!(
        line.contains(&format!("user_id={}", user.uid)),
        "not the user's mount: {line}"
    );
    let cat = user.run(&env, "cat", &[s(&m.mnt.join("models/u@1/a.txt"))]);
    assert_eq!(cat.stdout, b"user data\n");
    // Not even root may use a user's mount without --allow-root/--allow-other...
    let e = fs::read(m.mnt.join("models/u@1/a.txt")).unwrap_err();
    assert_eq!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied,
        "root read a user's mount: {e}"
    );
    // ...with --allow-root (and user_allow_other in /etc/fuse.conf) it may.
    {
        let _conf = FuseConf::set("user_allow_other\n");
        let mnt2 = env.path("mnt-root");
        fs::create_dir_all(&mnt2).unwrap();
        chown(&mnt2, user.uid, user.gid).unwrap();
        let m2 = BgMount::start(&env.spec, &mnt2, &env.path("cache2"), &["--allow-root"]);
        assert_eq!(
            fs::read(m2.mnt.join("models/u@1/a.txt")).unwrap(),
            b"user data\n"
        );
        drop(m2);
    }
    let st = m.mnt.join("models/u@staging/new.txt");
    let w = user.run(
        &env,
        "sh",
        &["-c", &format!("echo staged by user > {}", s(&st))],
    );
    assert!(w.status.success(), "{}", describe("write to staging", &w));
    env.ok(&["commit", "models/u", "-m", "from the user"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = m.mnt.join("models/u@2/new.txt");
    while user.run(&env, "cat", &[s(&new)]).stdout != b"staged by user\n" {
        assert!(
            Instant::now() < deadline,
            "models/u@2 not visible through the user's mount"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The user's `mounts` lists it (the record is in the user's runtime dir).
    let mounts: Value = serde_json::from_slice(&env.ok(&["mounts", "--json"]).stdout).unwrap();
    let e = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["mountpoint"].as_str() == Some(s(&m.mnt)))
        .expect("listed");
    assert_eq!(e["uid"], user.uid);
    assert_eq!(e["state"], "live");
    let pid = e["pid"].as_u64().unwrap() as u32;
    env.ok(&["unmount", s(&m.mnt)]);
    assert!(!is_mounted(&m.mnt));
    assert!(
        assetfs::mount::process_start(pid).is_none(),
        "daemon still running"
    );
    m.disarm();
}

// ---------------------------------------------------------------------------
// 3. Boot: mount(8), fstab, systemd readiness, ASSETFS_* variables

/// `/usr/local/sbin/assetfs` -> the binary under test, for the life of the
/// guard: mount.fuse3 runs the helper through /bin/sh without PATH (mount(8)
/// drops it), so it must be in the shell's default path, as an installed
/// assetfs would be.
struct InstalledBinary(std::path::PathBuf);

impl InstalledBinary {
    fn install() -> InstalledBinary {
        let p = std::path::PathBuf::from("/usr/local/sbin/assetfs");
        if let Ok(t) = fs::read_link(&p) {
            assert_eq!(t, Path::new(BIN), "{} exists and is not ours", p.display());
        } else {
            assert!(
                !p.exists(),
                "{} exists (an installed assetfs?); not replacing it",
                p.display()
            );
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(BIN, &p).expect("symlink into /usr/local/sbin (needs root)");
        }
        InstalledBinary(p)
    }
}

impl Drop for InstalledBinary {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Runs mount(8) with this environment (bounded).
fn run_mount8(env: &TestEnv, args: &[&str]) -> std::process::Output {
    run_limited(&mut env.spec.command("mount", args), CMD_LIMIT).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn boot_time_mounts_with_mount8_fstab_and_systemd_notify() {
    let _lock = NODE_STATE.lock().unwrap_or_else(|e| e.into_inner());
    let _bin = InstalledBinary::install();
    let env = env_with_model();
    let store_dir = env.store.strip_prefix("file://").unwrap().to_string();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let cache = env.path("boot-cache");

    // mount -t fuse.assetfs STORE MNT -o OPTIONS, with options for mount(8),
    // systemd and the kernel that assetfs ignores.
    let opts = format!(
        "cache_dir={},file_mode=0440,refresh=5s,_netdev,nofail,x-systemd.requires=network-online.target,noatime,nodev",
        s(&cache)
    );
    let o = run_mount8(
        &env,
        &["-t", "fuse.assetfs", &store_dir, s(&mnt), "-o", &opts],
    );
    assert!(
        o.status.success(),
        "{}",
        describe("mount -t fuse.assetfs", &o)
    );
    let guard = BgMount {
        mnt: mnt.canonicalize().unwrap(),
        cache_dir: cache.clone(),
        stdout: String::new(),
        spec: env.spec.clone(),
    };
    assert!(
        is_mounted(&guard.mnt),
        "mount(8) returned but nothing is mounted"
    );
    assert_eq!(
        fs::read(guard.mnt.join("models/x@1/a.txt")).unwrap(),
        b"version one\n"
    );
    assert_eq!(
        mode_of(&guard.mnt.join("models/x@1/a.txt")),
        0o440,
        "file_mode= ignored"
    );
    let e = mount_entry(&env, &guard.mnt).expect("listed by mounts");
    assert_eq!(e["store"].as_str(), Some(store_dir.as_str()));
    assert_eq!(e["cache_dir"].as_str(), Some(s(&cache)));
    env.ok(&["unmount", s(&mnt)]);
    guard.disarm();

    // The same through an fstab line and `mount -a`, read-only.
    let fstab = env.path("fstab");
    fs::write(
        &fstab,
        format!(
            "# assetfs at boot\n{store_dir} {} fuse.assetfs ro,cache_dir={},_netdev,nofail,x-systemd.automount 0 0\n",
            s(&mnt),
            s(&cache)
        ),
    )
    .unwrap();
    let o = run_mount8(&env, &["-T", s(&fstab), "-a"]);
    assert!(o.status.success(), "{}", describe("mount -T FSTAB -a", &o));
    let guard = BgMount {
        mnt: mnt.canonicalize().unwrap(),
        cache_dir: cache.clone(),
        stdout: String::new(),
        spec: env.spec.clone(),
    };
    assert_eq!(
        fs::read(guard.mnt.join("models/x@1/a.txt")).unwrap(),
        b"version one\n"
    );
    assert!(
        !names(&guard.mnt.join("models")).contains(&"x@staging".to_string()),
        "ro from fstab ignored: @staging shown"
    );
    drop(guard);

    // An unknown option is refused by the helper, with one line.
    let o = run_mount8(
        &env,
        &[
            "-t",
            "fuse.assetfs",
            &store_dir,
            s(&mnt),
            "-o",
            "bogus_option",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown mount option"),
        "{}",
        describe("mount", &o)
    );
    assert!(!is_mounted(&mnt));

    // Every flag from an ASSETFS_* variable.
    let mut c = env.cmd(&["--cache-dir", s(&cache), "mount", s(&mnt)]);
    c.env("ASSETFS_READ_ONLY", "true")
        .env("ASSETFS_DIR_MODE", "0500");
    let o = run_limited(&mut c, CMD_LIMIT).unwrap();
    assert!(
        o.status.success(),
        "{}",
        describe("mount with ASSETFS_*", &o)
    );
    let guard = BgMount {
        mnt: mnt.canonicalize().unwrap(),
        cache_dir: cache.clone(),
        stdout: String::new(),
        spec: env.spec.clone(),
    };
    assert_eq!(mode_of(&guard.mnt.join("models")), 0o500);
    assert!(!names(&guard.mnt.join("models")).contains(&"x@staging".to_string()));
    drop(guard);

    // systemd Type=notify: READY=1 once the mount is live, STOPPING=1 on unmount.
    let sock_path = env.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut c = env.cmd(&["--cache-dir", s(&cache), "mount", s(&mnt), "-f"]);
    c.env("NOTIFY_SOCKET", &sock_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    /// The foreground daemon: killed (and its mount detached) if the test fails.
    struct Kill(std::process::Child, std::path::PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            if is_mounted(&self.1) {
                let _ = plain_unmount(&self.1);
            }
        }
    }
    let mut child = Kill(c.spawn().unwrap(), mnt.canonicalize().unwrap());
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("READY=1 within 20 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    assert!(
        is_mounted(&mnt.canonicalize().unwrap()),
        "READY=1 before the mount was live"
    );
    let unmounter = {
        let env_spec = env.spec.clone();
        let mnt = mnt.clone();
        std::thread::spawn(move || {
            run_limited(&mut env_spec.assetfs(&["unmount", s(&mnt)]), CMD_LIMIT)
        })
    };
    let n = sock.recv(&mut buf).expect("STOPPING=1 on unmount");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "STOPPING=1"), "{msg:?}");
    let o = unmounter.join().unwrap().unwrap();
    assert!(o.status.success(), "{}", describe("unmount", &o));
    let st = child.0.wait().unwrap();
    assert!(st.success(), "foreground daemon exited with {st}");
}

// ---------------------------------------------------------------------------
// 4. One asset at a fixed path

#[test]
fn only_mount_follows_the_alias_and_keeps_open_files() {
    let env = TestEnv::file_store();
    let v1 = env.path("v1");
    write_file(&v1.join("model.bin"), b"weights one", 0o644);
    write_file(&v1.join("conf/c.json"), b"{\"v\": 1}", 0o644);
    env.push("models/ranker", &v1, &["--alias", "production"]);
    // v2 has a file of its own named like the sidecar.
    let v2 = env.path("v2");
    write_file(&v2.join("model.bin"), b"weights two!", 0o644);
    write_file(&v2.join(".assetfs.json"), b"mine", 0o644);
    env.push("models/ranker", &v2, &[]);

    let mnt = env.path("srv-ranker");
    fs::create_dir_all(&mnt).unwrap();
    let m = BgMount::start(
        &env.spec,
        &mnt,
        &env.path("cache"),
        &["--only", "models/ranker@production", "--refresh", "1s"],
    );
    assert_eq!(names(&m.mnt), [".assetfs.json", "conf", "model.bin"]);
    assert_eq!(fs::read(m.mnt.join("model.bin")).unwrap(), b"weights one");
    assert_eq!(fs::read(m.mnt.join("conf/c.json")).unwrap(), b"{\"v\": 1}");
    let side: Value =
        serde_json::from_slice(&fs::read(m.mnt.join(".assetfs.json")).unwrap()).unwrap();
    assert_eq!(side["ref"], "models/ranker@1");
    assert_eq!(side, env.show_json("models/ranker@1"));
    let mut open = fs::File::open(m.mnt.join("model.bin")).unwrap();

    env.ok(&["alias", "models/ranker@2", "production"]);
    let moved = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        fs::read(m.mnt.join("model.bin")).ok().as_deref() == Some(b"weights two!")
    });
    assert!(moved, "the root did not follow the alias within 10 s");
    assert_eq!(
        names(&m.mnt),
        [".assetfs.1.json", ".assetfs.json", "model.bin"]
    );
    assert_eq!(
        fs::read(m.mnt.join(".assetfs.json")).unwrap(),
        b"mine",
        "the version's own file"
    );
    let side: Value =
        serde_json::from_slice(&fs::read(m.mnt.join(".assetfs.1.json")).unwrap()).unwrap();
    assert_eq!(side["ref"], "models/ranker@2");
    assert!(!m.mnt.join("conf").exists());
    // The file opened before the move still reads version 1.
    let mut got = vec![];
    std::io::Read::read_to_end(&mut open, &mut got).unwrap();
    assert_eq!(got, b"weights one");
    drop(open);
    // Read-only view: no staging, writes refused.
    assert!(fs::write(m.mnt.join("new.txt"), b"x").is_err());
    let e = mount_entry(&env, &m.mnt).unwrap();
    assert_eq!(e["only"], "models/ranker@production");
    drop(m);

    // A fixed version; a missing alias or version is refused at mount time.
    let m = BgMount::start(
        &env.spec,
        &mnt,
        &env.path("cache"),
        &["--only", "models/ranker@1"],
    );
    assert_eq!(fs::read(m.mnt.join("model.bin")).unwrap(), b"weights one");
    drop(m);
    for (only, words) in [
        ("models/ranker@nope", "no alias"),
        ("models/ranker@9", "ranker@9"),
        ("models/ghost", "no versions"),
        ("models/ranker@staging", "staging"),
        ("nonsense", "invalid reference"),
    ] {
        let o = run_limited(&mut env.cmd(&["mount", s(&mnt), "--only", only]), CMD_LIMIT).unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "--only {only} mounted");
        assert_eq!(err.trim().lines().count(), 1, "{only}: {err}");
        assert!(
            err.contains("--only") && err.contains(words),
            "{only}: {err}"
        );
        assert!(!is_mounted(&mnt));
    }
}

// ---------------------------------------------------------------------------
// 7. commit/status find staging, or say where they looked

#[test]
fn commit_and_status_find_staging_or_say_where_they_looked() {
    let _lock = NODE_STATE.lock().unwrap_or_else(|e| e.into_inner());
    let env = env_with_model();
    std::fs::set_permissions(
        env.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let store_dir = env.store.strip_prefix("file://").unwrap().to_string();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    // Mounted with the store spelled as a plain path...
    let m = BgMount::start(
        &env.spec,
        &mnt,
        &env.path("cache"),
        &["--store", &store_dir],
    );
    fs::write(m.mnt.join("models/x@staging/new.txt"), b"staged").unwrap();
    // ...found by status and commit with it spelled as a URL (with a trailing slash).
    let o = env.ok(&["status", "models/x", "--json"]);
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["changes"][0]["path"], "new.txt", "{st}");
    let spelled = format!("file://{store_dir}/");
    env.ok(&["--store", &spelled, "commit", "models/x", "-m", "found"]);
    env.ok(&["show", "models/x@2"]);

    // Nothing staged for an asset: where it looked, and how staging is made.
    let o = run_limited(&mut env.cmd(&["status", "models/other"]), CMD_LIMIT).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(
        err.contains("nothing staged on this node") && err.contains("looked in"),
        "{err}"
    );

    // Another store: names the store that has staging for this asset.
    let other = env.path("other-store");
    env.ok(&["--store", s(&other), "init"]);
    let o = run_limited(
        &mut env.cmd(&["--store", s(&other), "status", "models/x"]),
        CMD_LIMIT,
    )
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!("has models/x@staging for store {store_dir}")),
        "{err}"
    );

    // Another user: says which mount keeps staging where, and as whom.
    fs::write(m.mnt.join("models/x@staging/more.txt"), b"more").unwrap();
    let user = TestUser::create();
    let home = env.path("user-data");
    fs::create_dir_all(&home).unwrap();
    chown(&home, user.uid, user.gid).unwrap();
    let mut c = user.command(&env, BIN, &["status", "models/x"]);
    c.env("XDG_DATA_HOME", &home)
        .env("ASSETFS_CACHE_DIR", home.join("cache"));
    let o = run_limited(&mut c, CMD_LIMIT).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(
        err.contains(&format!("the mount at {}", m.mnt.display()))
            && err.contains("uid 0")
            && err.contains("run this as that user"),
        "{err}"
    );
    drop(m);
}
