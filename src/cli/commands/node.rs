//! mounts, unmount, completions, man: this node, and the command line itself.

use std::path::Path;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::args::Cli;
use crate::cli::output::print_json;

pub fn unmount(mountpoint: &Path, as_json: bool) -> Result<()> {
    assetfs::mount::unmount(mountpoint)?;
    if !as_json {
        println!("unmounted {}", mountpoint.display());
    }
    Ok(())
}

/// `assetfs mounts`: every assetfs mount of this node.
pub async fn mounts(as_json: bool) -> Result<()> {
    let mut reports = vec![];
    for m in assetfs::mount::node_mounts() {
        reports.push(assetfs::mount::report(&m).await);
    }
    if as_json {
        print_json(&reports);
        return Ok(());
    }
    if reports.is_empty() {
        println!("no assetfs mounts on this node");
    }
    let unknown = || "?".to_string();
    for r in &reports {
        match r.state {
            "stale" => println!(
                "{}  STALE: {}",
                r.mountpoint.display(),
                r.hint.as_deref().unwrap_or("its daemon is gone")
            ),
            "unknown" => println!(
                "{}  live, no record of its daemon (mounted by another user or an older assetfs)",
                r.mountpoint.display()
            ),
            _ => println!(
                "{}  live  pid {}  up {}",
                r.mountpoint.display(),
                r.pid.map(|p| p.to_string()).unwrap_or_else(unknown),
                r.uptime_s
                    .map(
                        |s| humantime::format_duration(std::time::Duration::from_secs(s))
                            .to_string()
                    )
                    .unwrap_or_else(unknown)
            ),
        }
        if let Some(store) = &r.store {
            println!("  store    {store}");
        }
        if let Some(only) = &r.only {
            println!("  only     {only}");
        }
        if let Some(c) = &r.cache_dir {
            let rate = r
                .cache_hit_rate
                .map(|h| format!("hit rate {:.1}%", h * 100.0))
                .unwrap_or_else(|| "hit rate unknown".into());
            println!("  cache    {}  ({rate})", c.display());
        }
        for st in &r.staging {
            let base = st
                .base
                .map(|b| format!("@{b}"))
                .unwrap_or_else(|| "(new)".into());
            println!(
                "  staging  {}@staging: {} change(s) against {base}",
                st.asset, st.changes
            );
        }
        if let Some(log) = &r.log {
            println!("  log      {}", log.display());
        }
    }
    Ok(())
}

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "assetfs", &mut std::io::stdout());
    Ok(())
}

pub fn man() -> Result<()> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(())
}
