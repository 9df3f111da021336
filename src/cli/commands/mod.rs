//! `run`: one arm per command, each calling its command group's file.

pub mod alias;
pub mod cache;
pub mod env;
pub mod gc;
pub mod get;
pub mod init;
pub mod inspect;
pub mod node;
pub mod remove;
pub mod tests;
pub mod verify;
pub mod write;

use std::process::ExitCode;

use anyhow::Result;

use assetfs::catalog::Catalog;
use assetfs::store::Store;

use self::env::{cache_dir, open_store, store_options, store_url};
use crate::cli::args::{CacheCmd, Cli, Command};

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.json;
    // Commands that need no store.
    match &cli.cmd {
        Command::Unmount { mountpoint } => return done(node::unmount(mountpoint, json)),
        Command::Mounts => return done(node::mounts(json).await),
        Command::Completions { shell } => return done(node::completions(*shell)),
        Command::Man => return done(node::man()),
        _ => {}
    }
    let store = match &cli.cmd {
        Command::Init => Store::create_with(&store_url(&cli), &store_options(&cli))?,
        _ => open_store(&cli)?,
    };
    // Every command but `init` refuses what is not an assetfs store, so a
    // mistyped --store fails instead of showing an empty catalog.
    let needs_store = !matches!(
        &cli.cmd,
        Command::Init
            | Command::Cache {
                cmd: CacheCmd::Stats | CacheCmd::Prune { .. }
            }
    );
    if needs_store {
        store.check_marker().await?;
    }
    let catalog = Catalog::new(store.clone());
    let cache = cache_dir(&cli);
    match &cli.cmd {
        Command::Init => init::init(&store, json).await?,
        Command::Push {
            reference,
            dir,
            commit,
        } => write::push(&cli, &catalog, reference, dir, commit).await?,
        Command::Commit {
            reference,
            wait,
            commit,
        } => write::commit(&cli, &catalog, reference, *wait, commit).await?,
        Command::Status { reference } => write::status(&catalog, reference, json).await?,
        Command::Reset { reference, yes } => write::reset(&store, reference, *yes, json)?,
        Command::Get { reference, dir } => get::get(&catalog, reference, dir, json).await?,
        Command::Ls { path } => inspect::ls(&catalog, path.as_deref(), json).await?,
        Command::Log { reference, all } => inspect::log(&catalog, reference, *all, json).await?,
        Command::Show { reference } => inspect::show(&catalog, reference).await?,
        Command::Alias(a) => alias::alias(&catalog, a, json).await?,
        Command::Diff { from, to } => inspect::diff(&catalog, from, to, json).await?,
        Command::Rm(a) => remove::rm(&catalog, &cache, a, json).await?,
        Command::Gc(a) => gc::gc(&catalog, &cache, a, json).await?,
        Command::Verify { reference } => {
            return verify::verify(&catalog, reference.as_deref(), json).await
        }
        Command::Lineage {
            reference,
            used_by,
            depth,
        } => inspect::lineage(&catalog, &cache, reference, *used_by, *depth, json).await?,
        Command::Test { reference, timeout } => {
            return tests::test(&catalog, reference, timeout, json).await
        }
        Command::Cache { cmd } => cache::cache(&cli, &store, cmd).await?,
        Command::Mount(_) => unreachable!("handled before the runtime starts"),
        Command::Unmount { .. } | Command::Mounts | Command::Completions { .. } | Command::Man => {
            unreachable!("handled above")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn done(r: Result<()>) -> Result<ExitCode> {
    r.map(|()| ExitCode::SUCCESS)
}
