//! `assetfs mount`: foreground serving, or daemonising by re-running itself
//! in the background and waiting until the child reports the mount live.
//!
//! Protocol: the background child runs with `ASSETFS_DAEMON=1` and its
//! stdout on a pipe; it writes one line, `ready: <status>` once the mount is
//! live or `error: <reason>`, then detaches stdout. The parent prints that and
//! exits 0 or 1. Re-running the binary avoids forking a multi-threaded process.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use assetfs::mount::{self, MountConfig};

use crate::cli::args::values::{parse_gid, parse_mode, parse_size, parse_uid};
use crate::cli::args::MountArgs;
use crate::cli::commands::env::CliContext;
use crate::cli::logging::init_logging;
use crate::cli::output::one_line;

const DAEMON_ENV: &str = "ASSETFS_DAEMON";
const READY_WAIT: Duration = Duration::from_secs(120);

fn log_path(cache_dir: &Path, mnt: &Path) -> PathBuf {
    let tag = blake3::hash(mnt.as_os_str().as_encoded_bytes()).to_hex();
    cache_dir
        .join("logs")
        .join(format!("mount-{}.log", &tag[..12]))
}

fn parse_duration(what: &str, s: &str) -> Result<Duration> {
    humantime::parse_duration(s)
        .or_else(|_| s.parse::<u64>().map(Duration::from_secs))
        .map_err(|_| anyhow!("invalid {what} {s:?}: expected e.g. 30s, 5m or 2"))
}

/// `--uid/--gid/--file-mode/--dir-mode`, defaulting to the mounting user
/// and the stored modes.
fn ownership(args: &MountArgs) -> Result<assetfs::mount::ownership::Ownership> {
    let mut o = assetfs::mount::ownership::Ownership::current();
    if let Some(u) = &args.uid {
        o.uid = parse_uid(u).map_err(|e| anyhow!("--uid: {e}"))?;
    }
    if let Some(g) = &args.gid {
        o.gid = parse_gid(g).map_err(|e| anyhow!("--gid: {e}"))?;
    }
    if let Some(m) = &args.file_mode {
        o.file_mode = Some(parse_mode(m).map_err(|e| anyhow!("--file-mode: {e}"))?);
    }
    if let Some(m) = &args.dir_mode {
        o.dir_mode = Some(parse_mode(m).map_err(|e| anyhow!("--dir-mode: {e}"))?);
    }
    Ok(o)
}

pub fn run_mount(
    ctx: &CliContext,
    args: MountArgs,
    rt: &tokio::runtime::Runtime,
) -> Result<ExitCode> {
    let is_child = std::env::var_os(DAEMON_ENV).is_some();
    let result = mount_inner(ctx, &args, rt, is_child);
    if is_child {
        if let Err(e) = &result {
            // The parent is waiting for one line on our stdout.
            println!("error: {}", one_line(e));
        }
    }
    result
}

fn mount_inner(
    ctx: &CliContext,
    args: &MountArgs,
    rt: &tokio::runtime::Runtime,
    is_child: bool,
) -> Result<ExitCode> {
    let cfg = MountConfig {
        mountpoint: args.mountpoint.clone(),
        cache_dir: ctx.cache_dir.clone(),
        cache_size: parse_size(&args.cache_size).map_err(anyhow::Error::msg)?,
        read_only: args.read_only,
        allow_other: args.allow_other,
        allow_root: args.allow_root,
        owner: ownership(args)?,
        only: args
            .only
            .as_deref()
            .map(assetfs::format::Reference::parse)
            .transpose()
            .map_err(|e| anyhow!("--only: {e}"))?,
        refresh: parse_duration("--refresh", &args.refresh)?,
        timeout: parse_duration("--timeout", &args.timeout)?,
        manifest_cache: parse_size(&args.manifest_cache).map_err(anyhow::Error::msg)?,
    };
    if let Some(r) = &cfg.only {
        if r.selector == assetfs::format::Selector::Staging {
            bail!("--only {r}: a mount shows versions, aliases or latest, not a staging area");
        }
    }
    let store = match &ctx.store {
        Ok(s) => s.clone(),
        Err(e) => bail!("{}", one_line(e)),
    };
    let mnt = mount::check_mountpoint(&cfg.mountpoint)?;
    mount::check_unprivileged(&cfg)?;
    // Not an assetfs store: refuse. An unreachable one is left to `prepare`,
    // which serves what this node has cached.
    use assetfs::store::StoreError;
    if let Ok(Err(e)) =
        rt.block_on(async { tokio::time::timeout(cfg.timeout, store.check_marker()).await })
    {
        if matches!(
            e,
            StoreError::NoMarker { .. }
                | StoreError::ForeignMarker { .. }
                | StoreError::NewerFormat { .. }
        ) {
            return Err(e.into());
        }
    }
    let log = log_path(&cfg.cache_dir, &mnt);
    if !args.foreground && !is_child {
        return daemonize(&mnt, &log);
    }
    assetfs::store::private_dir(log.parent().expect("log has a parent"))
        .with_context(|| format!("cannot create {}", log.display()))?;
    let file = assetfs::store::append_private(&log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    init_logging(ctx.verbose, Some(file));
    tracing::info!(mountpoint = %mnt.display(), store = store.url(), "mounting");
    let info = mount::ServeInfo {
        store_url: store.url().to_string(),
        log: log.clone(),
        staging_home: (!cfg.read_only && cfg.only.is_none()).then(assetfs::store::data_home),
        only: cfg.only.as_ref().map(|r| r.to_string()),
    };
    let (vfs, status) = rt.block_on(mount::prepare(store, &cfg))?;
    mount::serve(rt, vfs, &mnt, &cfg, &info, || {
        if is_child {
            println!("ready: {status}");
            let _ = std::io::stdout().flush();
            detach_stdout();
        } else {
            println!("mounted {}: {status}", mnt.display());
            println!("log: {}", log.display());
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Points stdout at /dev/null so the parent's read sees EOF.
fn detach_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 1 with a valid open descriptor.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

fn daemonize(mnt: &Path, log: &Path) -> Result<ExitCode> {
    assetfs::store::private_dir(log.parent().expect("log has a parent"))?;
    let errlog = assetfs::store::append_private(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find the assetfs binary")?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(DAEMON_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(errlog)
        // Own process group: the terminal's Ctrl-C does not reach the daemon.
        .process_group(0)
        .spawn()
        .context("cannot start the mount daemon")?;
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(READY_WAIT) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            bail!(
                "the mount daemon did not report within {READY_WAIT:?}; see {}",
                log.display()
            );
        }
    };
    if let Some(status) = line.strip_prefix("ready: ") {
        println!("mounted {}: {}", mnt.display(), status.trim_end());
        println!("log: {}", log.display());
        return Ok(ExitCode::SUCCESS);
    }
    let _ = child.wait();
    match line.strip_prefix("error: ") {
        Some(e) => bail!("{}", e.trim_end()),
        None => bail!(
            "the mount daemon exited without mounting; see {}",
            log.display()
        ),
    }
}
