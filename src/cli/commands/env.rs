//! What every command takes from the global options: the store, the cache
//! directory, references, and the terminal for questions.

use std::path::PathBuf;

use anyhow::Result;

use assetfs::format::Reference;
use assetfs::store::{self, Store};

use crate::cli::args::Cli;

/// What the mount command needs from the global options.
pub struct CliContext {
    pub store: Result<Store>,
    pub cache_dir: PathBuf,
    pub verbose: u8,
}

pub fn cli_context(cli: &Cli) -> CliContext {
    CliContext {
        store: open_store(cli),
        cache_dir: cache_dir(cli),
        verbose: cli.verbose,
    }
}

pub fn store_url(cli: &Cli) -> String {
    match &cli.store {
        Some(u) => u.clone(),
        None => format!("file://{}", store::default_store_dir().display()),
    }
}

pub fn store_options(cli: &Cli) -> store::StoreOptions {
    store::StoreOptions {
        endpoint: cli.endpoint_url.clone(),
        region: cli.region.clone(),
    }
}

pub fn open_store(cli: &Cli) -> Result<Store> {
    Ok(Store::open_with(&store_url(cli), &store_options(cli))?)
}

pub fn cache_dir(cli: &Cli) -> PathBuf {
    cli.cache_dir
        .clone()
        .unwrap_or_else(store::default_cache_dir)
}

pub fn parse_ref(s: &str) -> Result<Reference> {
    Ok(Reference::parse(s)?)
}

/// Asks on the terminal; anything but y/yes (or no terminal) is a no.
pub fn confirm(question: &str) -> Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
