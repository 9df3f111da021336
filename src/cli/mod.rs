//! The `assetfs` command line: argument parsing and output formatting only;
//! every command calls into the library.

mod daemon;
mod log_table;
mod mount_helper;
mod test_mounter;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

#[allow(unused_imports)]
use clap::CommandFactory;
use serde_json::{json, Value};

use assetfs::catalog::versions::Catalog;
use assetfs::format::names::{AssetId, AssetName, Kind, Reference, Selector};
use assetfs::ops::metadata::MetaInput;
use assetfs::ops::push::PushOptions;
use assetfs::store::client::{self, Store};

#[derive(Parser, Debug)]
#[command(
    name = "assetfs",
    version,
    about = "Versioned ML models and feature sets, stored in an object store"
)]
pub struct Cli {
    /// Store URL: file:///dir (default: $XDG_DATA_HOME/assetfs/store), s3://bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix, memory://
    #[arg(long, global = true, env = "ASSETFS_STORE")]
    store: Option<String>,
    /// Endpoint of an S3-compatible or Azure store (e.g. http://minio:9000); else AWS_ENDPOINT_URL,
    /// endpoint_url in ~/.aws/config, or the service's default
    #[arg(long, global = true, env = "ASSETFS_ENDPOINT_URL", value_name = "URL")]
    endpoint_url: Option<String>,
    /// Region of an S3 store; else AWS_REGION, region in ~/.aws/config
    #[arg(long, global = true, env = "ASSETFS_REGION")]
    region: Option<String>,
    /// Local cache directory (default: $XDG_CACHE_HOME/assetfs)
    #[arg(long, global = true, env = "ASSETFS_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Print data as JSON
    #[arg(long, global = true)]
    json: bool,
    /// More log output on stderr (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Args, Debug, Clone, Default)]
struct CommitArgs {
    /// Commit message
    #[arg(short, long, default_value = "")]
    message: String,
    /// Metadata KEY=VALUE, stored under `user` (repeatable)
    #[arg(long = "meta", value_name = "K=V")]
    meta: Vec<String>,
    /// JSON object of metadata (context, metrics, tests, user, or your own fields)
    #[arg(long = "meta-file", value_name = "FILE")]
    meta_file: Option<PathBuf>,
    /// A version this one was built from, e.g. features/clicks@7 (repeatable)
    #[arg(long = "input", value_name = "REF")]
    inputs: Vec<String>,
    /// Point this alias at the new version (repeatable)
    #[arg(long = "alias", value_name = "ALIAS")]
    aliases: Vec<String>,
    /// Author (default: $ASSETFS_AUTHOR, git config user.name, or $USER)
    #[arg(long)]
    author: Option<String>,
    #[command(flatten)]
    context: assetfs::ops::context::ContextOptions,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create or validate the store layout (idempotent)
    Init,
    /// Commit a local directory as the next version of an asset
    Push {
        /// The asset, e.g. models/resnet
        reference: String,
        dir: PathBuf,
        #[command(flatten)]
        commit: CommitArgs,
    },
    /// Turn REF@staging (written through a mount) into the next version
    Commit {
        /// The asset, e.g. models/resnet
        reference: String,
        /// Wait for files still open for writing instead of refusing
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        commit: CommitArgs,
    },
    /// What REF@staging changed against its base version
    Status { reference: String },
    /// Discard REF@staging (asks first, unless --yes)
    Reset {
        reference: String,
        #[arg(long)]
        yes: bool,
    },
    /// Materialise a version into a directory (re-runs fetch only what is missing)
    Get { reference: String, dir: PathBuf },
    /// List kinds, assets, versions, or the files of a version
    Ls {
        /// models, features, models/NAME or models/NAME@VERSION
        path: Option<String>,
    },
    /// Versions of an asset, newest first
    Log {
        reference: String,
        /// Deleted versions too, with who deleted them, when and why
        #[arg(long)]
        all: bool,
    },
    /// A version's sidecar JSON
    Show { reference: String },
    /// Point an alias at a version, or remove one with --delete
    Alias {
        /// The version (models/m@3), or with --delete the asset (models/m) or the alias itself (models/m@prod)
        reference: String,
        alias: Option<String>,
        /// Remove the alias instead of moving it
        #[arg(long, conflicts_with = "require_tests")]
        delete: bool,
        /// Refuse unless the version has stored tests and they all pass
        #[arg(long)]
        require_tests: bool,
        /// Time limit per test with --require-tests, e.g. 120s, 10m
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
    /// What a version was built from (recursively), or with --used-by what was built from it
    Lineage {
        reference: String,
        /// Versions built from REF (scans every version record)
        #[arg(long)]
        used_by: bool,
        /// Levels to follow (default: all)
        #[arg(long)]
        depth: Option<usize>,
    },
    /// Run a version's stored input/output tests; exits 1 if any fails
    Test {
        reference: String,
        /// Time limit per test (a test's own `timeout` wins), e.g. 120s, 10m
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
    /// Delete a version (asks first, unless --yes); `gc` reclaims its data later
    Rm {
        /// The version, by number, e.g. models/resnet@3
        reference: String,
        /// Why it is deleted (recorded)
        #[arg(short, long, default_value = "")]
        message: String,
        /// Do not ask (needed when not on a terminal)
        #[arg(long)]
        yes: bool,
        /// Delete even when live versions record it as a lineage input or user aliases point at it
        #[arg(long)]
        force: bool,
        /// Who deletes it (default: $ASSETFS_AUTHOR, git config user.name, or $USER)
        #[arg(long)]
        author: Option<String>,
    },
    /// Delete versions retention rules let go, and reclaim what no live version uses
    Gc {
        /// Show what would go and what that frees; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Unreferenced data younger than this stays, and nothing is deleted
        /// sooner than this after gc found it unreferenced (open files of
        /// deleted versions keep reading), e.g. 24h, 30m, 0s
        #[arg(long, default_value = "24h")]
        grace: String,
        /// Keep the newest N versions of each asset (deletes older ones)
        #[arg(long, value_name = "N")]
        keep_last: Option<usize>,
        /// Keep versions created within DURATION (deletes older ones), e.g. 30d
        #[arg(long, value_name = "DURATION")]
        keep_within: Option<String>,
        /// Who deletes versions by retention (default: $ASSETFS_AUTHOR, git config user.name, or $USER)
        #[arg(long)]
        author: Option<String>,
        /// Rewrite packs less than this fraction of which live versions use (0 turns rewriting off)
        #[arg(long, value_name = "FRACTION", default_value_t = assetfs::ops::gc::DEFAULT_REWRITE_BELOW)]
        rewrite_below: f64,
    },
    /// Files and metadata that differ between two versions
    Diff { from: String, to: String },
    /// Re-fetch and re-hash every chunk of a version (all versions without REF)
    Verify { reference: Option<String> },
    /// Mount the catalog (background by default; returns once the mount is live)
    Mount(MountArgs),
    /// Unmount a mount cleanly; returns once its daemon has exited. Also clears a stale mount
    Unmount { mountpoint: PathBuf },
    /// This node's assetfs mounts: mount point, store, cache, daemon, uptime, hit rate, staged changes
    Mounts,
    /// Print a shell completion script, e.g. `assetfs completions bash > /etc/bash_completion.d/assetfs`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `assetfs man > /usr/share/man/man1/assetfs.1`
    Man,
    /// Inspect or control the node's chunk cache
    Cache {
        #[command(subcommand)]
        cmd: CacheCmd,
    },
}

/// Every flag can also be given as an `-o` option (`-o allow_other,uid=1000`,
/// as in an fstab line) and as an `ASSETFS_*` environment variable.
#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    pub mountpoint: PathBuf,
    /// Bound on the disk cache, e.g. 20G, 512M
    #[arg(long, default_value = "10G", env = "ASSETFS_CACHE_SIZE")]
    pub cache_size: String,
    /// Mount read-only at the kernel level (no @staging)
    #[arg(long, env = "ASSETFS_READ_ONLY")]
    pub read_only: bool,
    /// Stay attached to the terminal (use with systemd Type=notify)
    #[arg(short = 'f', long, env = "ASSETFS_FOREGROUND")]
    pub foreground: bool,
    /// Let other users access the mount (non-root: needs user_allow_other in /etc/fuse.conf)
    #[arg(long, env = "ASSETFS_ALLOW_OTHER")]
    pub allow_other: bool,
    /// Let root (besides the mounting user) access the mount
    #[arg(long, env = "ASSETFS_ALLOW_ROOT", conflicts_with = "allow_other")]
    pub allow_root: bool,
    /// Owner of every file and directory, a user name or number (default: the mounting user)
    #[arg(long, env = "ASSETFS_UID")]
    pub uid: Option<String>,
    /// Group of every file and directory, a name or number (default: the mounting user's group)
    #[arg(long, env = "ASSETFS_GID")]
    pub gid: Option<String>,
    /// Permission bits of every file, e.g. 0444 (default: the mode each file was pushed with)
    #[arg(long, env = "ASSETFS_FILE_MODE")]
    pub file_mode: Option<String>,
    /// Permission bits of every directory, e.g. 0555 (default: the pushed mode; 0755 for the mount's own)
    #[arg(long, env = "ASSETFS_DIR_MODE")]
    pub dir_mode: Option<String>,
    /// Show only this version at the root of the mount, e.g. models/ranker@3; with an alias
    /// (models/ranker@production) or a bare asset (@latest) the root follows it at each refresh
    #[arg(long, value_name = "REF", env = "ASSETFS_ONLY")]
    pub only: Option<String>,
    /// How often new versions and aliases are picked up, e.g. 30s, 5m
    #[arg(long, default_value = "30s", env = "ASSETFS_REFRESH")]
    pub refresh: String,
    /// How long an uncached read waits for the store before failing with EIO
    #[arg(long, default_value = "30s", env = "ASSETFS_TIMEOUT")]
    pub timeout: String,
    /// Bound on the memory of version manifests kept decoded, e.g. 160M
    /// (the least recently used are dropped and reloaded from the local
    /// metadata cache when needed again)
    #[arg(long, default_value = "160M", env = "ASSETFS_MANIFEST_CACHE")]
    pub manifest_cache: String,
    /// Mount options, comma-separated: any flag above with `_` or `-` between words
    /// (allow_other,uid=1000,cache_size=20G), plus cache_dir= and store=; mount(8)
    /// and systemd options (rw, nofail, _netdev, x-systemd.*) are ignored
    #[arg(short = 'o', value_name = "OPTIONS", id = "options")]
    pub options: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum CacheCmd {
    /// Size, entries and hit rate of the chunk cache
    Stats,
    /// Fetch a whole version into the cache
    Prefetch { reference: String },
    /// Evict chunks (all of them, or down to --to SIZE); works while mounted
    Prune {
        #[arg(long)]
        to: Option<String>,
    },
    /// Per store: the catalog cache and staging areas this node keeps
    List,
    /// Empty the caches (refused while a mount uses them); or, given a STORE
    /// or --unused, remove those stores' catalog caches (and staging areas
    /// with --staging)
    Clear {
        /// Only this store's state: its URL as it was given to --store, or its tag from `cache list`
        #[arg(value_name = "STORE", conflicts_with = "unused")]
        only: Option<String>,
        /// Only stores this node has not used for --older-than (never the current --store)
        #[arg(long)]
        unused: bool,
        /// With --unused: how long unused, e.g. 30d, 12h, 0s
        #[arg(long, default_value = "30d", requires = "unused")]
        older_than: String,
        /// Also remove those stores' staging areas that hold no uncommitted changes
        #[arg(long)]
        staging: bool,
        /// With --staging: remove staging areas with uncommitted changes too (they are lost)
        #[arg(long, requires = "staging")]
        force: bool,
    },
}

pub fn main() -> std::process::ExitCode {
    let args = match crate::cli::mount_helper::rewrite_args(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("assetfs: error: {}", one_line(&e));
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = if let Command::Mount(m) = &cli.cmd {
        let m = m.clone();
        crate::cli::daemon::run_mount(&cli_context(&cli), m, &rt)
    } else {
        init_logging(cli.verbose, None);
        rt.block_on(run(cli))
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("assetfs: error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, or to `file` (the mount daemon's log).
pub fn init_logging(verbose: u8, file: Option<std::fs::File>) {
    let level = match (verbose, file.is_some()) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASSETFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(f) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}

/// What the mount command needs from the global options.
pub struct CliContext {
    pub store: Result<Store>,
    pub cache_dir: PathBuf,
    pub verbose: u8,
}

fn cli_context(cli: &Cli) -> CliContext {
    CliContext {
        store: open_store(cli),
        cache_dir: cache_dir(cli),
        verbose: cli.verbose,
    }
}

/// The error and its causes on one line, without repeating a cause that a
/// message already quotes.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
    }
    out.replace('\n', " ")
}

fn store_url(cli: &Cli) -> String {
    match &cli.store {
        Some(u) => u.clone(),
        None => format!("file://{}", client::default_store_dir().display()),
    }
}

fn store_options(cli: &Cli) -> client::StoreOptions {
    client::StoreOptions {
        endpoint: cli.endpoint_url.clone(),
        region: cli.region.clone(),
    }
}

fn open_store(cli: &Cli) -> Result<Store> {
    Ok(Store::open_with(&store_url(cli), &store_options(cli))?)
}

fn cache_dir(cli: &Cli) -> PathBuf {
    cli.cache_dir
        .clone()
        .unwrap_or_else(client::default_cache_dir)
}

fn parse_ref(s: &str) -> Result<Reference> {
    Ok(Reference::parse(s)?)
}

fn print_json(v: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("output serialises")
    );
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    // Commands that need no store.
    match &cli.cmd {
        Command::Unmount { mountpoint } => {
            assetfs::mount::lifecycle::unmount(mountpoint)?;
            if !cli.json {
                println!("unmounted {}", mountpoint.display());
            }
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Mounts => {
            mounts(cli.json).await?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "assetfs", &mut std::io::stdout());
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
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
    match &cli.cmd {
        Command::Init => init(&store, cli.json).await?,
        Command::Push {
            reference,
            dir,
            commit,
        } => {
            let target = parse_ref(reference)?;
            let opts = push_options(&cli, commit)?;
            let out = assetfs::ops::push::push(&catalog, &target, dir, opts).await?;
            print_outcome(&out, cli.json);
        }
        Command::Commit {
            reference,
            wait,
            commit,
        } => {
            let r = parse_ref(reference)?;
            let staging = open_staging(&store, &r, true)?;
            let opts = push_options(&cli, commit)?;
            let out = assetfs::ops::commit::commit(&catalog, &staging, &r, opts, *wait).await?;
            print_outcome(&out, cli.json);
        }
        Command::Status { reference } => {
            let r = parse_ref(reference)?;
            let staging = open_staging(&store, &r, true)?;
            let (base, changes) =
                assetfs::ops::commit::status(&catalog, &staging, &r.asset).await?;
            if cli.json {
                print_json(
                    &json!({"asset": r.asset.to_string(), "base": base, "changes": changes}),
                );
            } else {
                match base {
                    Some(v) => println!("{}@staging, based on {}", r.asset, r.asset.at(v)),
                    None => println!("{}@staging, a new asset", r.asset),
                }
                for c in &changes {
                    println!("{:<9} {}", c.change, c.path);
                }
                if changes.is_empty() {
                    println!("(no changes)");
                }
            }
        }
        Command::Reset { reference, yes } => {
            let r = parse_ref(reference)?;
            let home = client::data_home();
            // Nothing staged: nothing to discard, which is what was asked.
            let staging = match assetfs::ops::commit::open_staging(&home, &store, &r.asset, false) {
                Err(assetfs::ops::commit::CommitError::NoStaging { .. }) => {
                    if !cli.json {
                        println!(
                            "{}@staging: nothing staged on this node; nothing to reset",
                            r.asset
                        );
                    }
                    return Ok(std::process::ExitCode::SUCCESS);
                }
                s => s?,
            };
            if !*yes && !confirm(&format!("discard every change in {}@staging?", r.asset))? {
                bail!("not confirmed; nothing was discarded (use --yes to skip the question)");
            }
            staging.reset()?;
            if !cli.json {
                println!("{}@staging reset", r.asset);
            }
        }
        Command::Get { reference, dir } => {
            let r = parse_ref(reference)?;
            let out = assetfs::ops::get::get(&catalog, &r, dir, !cli.json).await?;
            if cli.json {
                print_json(&json!({
                    "ref": out.reference,
                    "dir": dir,
                    "files_written": out.files_written,
                    "files_skipped": out.files_skipped,
                    "bytes_fetched": out.bytes_fetched,
                }));
            } else {
                println!("{}", out.reference);
                eprintln!(
                    "{} files written, {} already present, {} fetched",
                    out.files_written,
                    out.files_skipped,
                    human_bytes(out.bytes_fetched)
                );
            }
        }
        Command::Ls { path } => ls(&catalog, path.as_deref(), cli.json).await?,
        Command::Log { reference, all } => {
            log(&catalog, &parse_ref(reference)?, *all, cli.json).await?
        }
        Command::Show { reference } => {
            let r = parse_ref(reference)?;
            let v = catalog.resolve(&r).await?;
            print_json(&catalog.sidecar(&r.asset, v).await?);
        }
        Command::Alias {
            reference,
            alias,
            delete: true,
            ..
        } => {
            let r = parse_ref(reference)?;
            let alias = match (alias, &r.selector) {
                (Some(a), Selector::Latest) => a.clone(),
                (None, Selector::Alias(a)) => a.clone(),
                _ => bail!(
                    "alias --delete takes the asset and the alias (`{0} production`) or the alias reference (`{0}@production`)",
                    r.asset
                ),
            };
            store.check_conditional_writes().await?;
            let was = catalog.delete_alias(&r.asset, &alias).await?;
            if cli.json {
                print_json(
                    &json!({"alias": format!("{}@{alias}", r.asset), "deleted": true, "was": r.asset.at(was).to_string()}),
                );
            } else {
                println!("removed {}@{alias} (was {})", r.asset, r.asset.at(was));
            }
        }
        Command::Alias {
            reference,
            alias,
            require_tests,
            timeout,
            ..
        } => {
            let r = parse_ref(reference)?;
            let Some(alias) = alias else {
                bail!("alias needs the alias name: `assetfs alias {r} NAME` (or --delete to remove one)");
            };
            let v = catalog.resolve(&r).await?;
            if *require_tests {
                require_passing_tests(&catalog, &r.asset.at(v), alias, timeout, cli.json).await?;
            }
            store.check_conditional_writes().await?;
            catalog.set_alias(&r.asset, alias, v).await?;
            if cli.json {
                print_json(
                    &json!({"alias": format!("{}@{alias}", r.asset), "ref": r.asset.at(v).to_string()}),
                );
            } else {
                println!("{}@{alias} -> {}", r.asset, r.asset.at(v));
            }
        }
        Command::Diff { from, to } => {
            let d = assetfs::ops::diff::diff(&catalog, &parse_ref(from)?, &parse_ref(to)?).await?;
            if cli.json {
                print_json(&d);
            } else {
                println!("--- {}\n+++ {}", d.from, d.to);
                for f in &d.files {
                    let sizes = match (f.old_size, f.new_size) {
                        (Some(a), Some(b)) if a != b => format!("  ({a} -> {b} bytes)"),
                        _ => String::new(),
                    };
                    println!("{:<9} {}{sizes}", f.change, f.path);
                }
                for m in &d.meta {
                    let delta = m.delta.map(|d| format!("  ({d:+})")).unwrap_or_default();
                    println!("meta      {}: {} -> {}{delta}", m.field, m.old, m.new);
                }
                if d.files.is_empty() && d.meta.is_empty() {
                    println!("(no differences)");
                }
            }
        }
        Command::Rm {
            reference,
            message,
            yes,
            force,
            author,
        } => {
            let r = parse_ref(reference)?;
            let Selector::Version(v) = r.selector else {
                return Err(assetfs::ops::remove::RemoveError::NotAVersion(r.asset.clone()).into());
            };
            // Unknown or already deleted: say so before asking anything.
            catalog.ensure_live(&r.asset, v).await?;
            if !*yes {
                let rec = catalog.record(&r.asset, v).await?;
                let question = format!(
                    "delete {r} ({} files, {}, created {} by {})?",
                    rec.meta
                        .get("file_count")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    human_bytes(
                        rec.meta
                            .get("total_bytes")
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    ),
                    rec.meta
                        .get("created")
                        .and_then(Value::as_str)
                        .unwrap_or("?"),
                    rec.meta
                        .get("author")
                        .and_then(Value::as_str)
                        .unwrap_or("?"),
                );
                if !confirm(&question)? {
                    bail!("not confirmed; nothing was deleted (use --yes to skip the question)");
                }
            }
            store.check_conditional_writes().await?;
            let meta = assetfs::catalog::catalog_cache::CatalogCache::new(
                catalog.clone(),
                &cache_dir(&cli),
            );
            let opts = assetfs::ops::remove::RemoveOptions {
                force: *force,
                by: author
                    .clone()
                    .unwrap_or_else(assetfs::ops::metadata::default_author),
                message: message.clone(),
            };
            let d = assetfs::ops::remove::remove_version(&meta, &r, &opts).await?;
            if cli.json {
                print_json(
                    &json!({"ref": r.to_string(), "deleted": d.deleted, "by": d.by, "message": d.message}),
                );
            } else {
                println!("deleted {r}");
                eprintln!("its data is reclaimed by `assetfs gc` once no live version shares it");
            }
        }
        Command::Gc {
            dry_run,
            grace,
            keep_last,
            keep_within,
            author,
            rewrite_below,
        } => {
            if !(0.0..=1.0).contains(rewrite_below) {
                bail!("--rewrite-below must be a fraction between 0 and 1 (got {rewrite_below})");
            }
            let opts = assetfs::ops::gc::GcOptions {
                rewrite_below: *rewrite_below,
                grace: parse_duration("--grace", grace)?,
                keep_last: *keep_last,
                keep_within: keep_within
                    .as_deref()
                    .map(|d| parse_duration("--keep-within", d))
                    .transpose()?,
                dry_run: *dry_run,
                by: author
                    .clone()
                    .unwrap_or_else(assetfs::ops::metadata::default_author),
                cache_dir: cache_dir(&cli),
                progress: !cli.json,
            };
            let rep = assetfs::ops::gc::run(&catalog, &opts).await?;
            if cli.json {
                print_json(&rep);
            } else {
                print!("{}", gc_text(&rep));
            }
        }
        Command::Verify { reference } => {
            return verify(&catalog, reference.as_deref(), cli.json).await;
        }
        Command::Lineage {
            reference,
            used_by,
            depth,
        } => {
            let r = parse_ref(reference)?;
            let meta = assetfs::catalog::catalog_cache::CatalogCache::new(
                catalog.clone(),
                &cache_dir(&cli),
            );
            let tree = if *used_by {
                assetfs::ops::lineage::used_by_tree(&meta, &r, *depth).await?
            } else {
                assetfs::ops::lineage::inputs_tree(&meta, &r, *depth).await?
            };
            if cli.json {
                print_json(&tree.to_json());
            } else {
                print!("{}", tree.render());
            }
        }
        Command::Test { reference, timeout } => {
            let r = parse_ref(reference)?;
            let t =
                assetfs::ops::stored_tests::parse_timeout(timeout).map_err(anyhow::Error::msg)?;
            let rep = assetfs::ops::stored_tests::test_version(
                &catalog,
                &r,
                t,
                Some(&test_mounter::FuseMounter),
            )
            .await?;
            note_test_fallback(&rep);
            if cli.json {
                print_json(&rep);
            } else {
                print!("{}", rep.render());
            }
            if rep.failed > 0 {
                eprintln!(
                    "assetfs: error: {} of {} stored tests of {} failed: {}",
                    rep.failed,
                    rep.tests.len(),
                    rep.reference,
                    rep.failed_names().join(", ")
                );
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Mount(_) => unreachable!("handled before the runtime starts"),
        Command::Unmount { .. } | Command::Mounts | Command::Completions { .. } | Command::Man => {
            unreachable!("handled above")
        }
        Command::Cache { cmd } => cache_cmd(&cli, &store, cmd).await?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn push_options(cli: &Cli, commit: &CommitArgs) -> Result<PushOptions> {
    Ok(PushOptions {
        meta: meta_input(commit)?,
        inputs: commit
            .inputs
            .iter()
            .map(|s| parse_ref(s))
            .collect::<Result<_>>()?,
        aliases: commit.aliases.clone(),
        progress: !cli.json,
        cache_dir: Some(cache_dir(cli)),
        base: None,
    })
}

/// A duration flag: `30s`, `15m`, `24h`, `7d`, `1h 30m`.
fn parse_duration(flag: &str, s: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        anyhow::anyhow!("invalid {flag} {s:?}: {e}; give a duration like 30s, 15m, 24h or 7d")
    })
}

/// What `gc` did, for people.
fn gc_text(r: &assetfs::ops::gc::GcReport) -> String {
    let would = if r.dry_run { "would " } else { "" };
    let mut out = String::new();
    if !r.deleted_versions.is_empty() {
        out.push_str(&format!(
            "gc: {would}delete {} version(s) by retention: {}\n",
            r.deleted_versions.len(),
            r.deleted_versions.join(", ")
        ));
    }
    for s in r.swept.iter().filter(|s| s.packs + s.manifests > 0) {
        out.push_str(&format!(
            "gc: {}{} in {} pack(s) and {} manifest(s) (run {}){}\n",
            if r.dry_run { "would free " } else { "freed " },
            human_bytes(s.bytes),
            s.packs,
            s.manifests,
            s.seq,
            if s.kept_packs > 0 {
                format!(
                    "; {} condemned pack(s) kept: versions committed since use them",
                    s.kept_packs
                )
            } else {
                String::new()
            }
        ));
    }
    for p in &r.pending {
        if p.waiting_for.is_empty() {
            out.push_str(&format!(
                "gc: run {} ({} pack(s), {}) is deleted by a gc after {}\n",
                p.seq,
                p.packs,
                human_bytes(p.bytes),
                p.sweep_after
            ));
        } else {
            out.push_str(&format!(
                "gc: run {} ({} pack(s), {}) waits for {} running writer(s) (sessions {})\n",
                p.seq,
                p.packs,
                human_bytes(p.bytes),
                p.waiting_for.len(),
                p.waiting_for.join(", ")
            ));
        }
    }
    if let Some(m) = &r.marked {
        let swept_now = r.swept.iter().any(|s| s.seq == m.seq && m.seq != 0);
        if !swept_now && (m.packs > 0 || r.marked_manifests > 0) {
            out.push_str(&format!(
                "gc: {}{} pack(s) ({}) and {} manifest(s) no live version uses; a gc after {} deletes them\n",
                if r.dry_run { "would mark " } else { "marked " },
                m.packs,
                human_bytes(m.bytes),
                r.marked_manifests,
                m.sweep_after
            ));
        }
    }
    if r.rewritten.packs > 0 {
        out.push_str(&format!(
            "gc: {} {} pack(s) mostly unused: {} of live chunks {} into {} new pack(s); the old ones are marked\n",
            if r.dry_run { "would rewrite" } else { "rewrote" },
            r.rewritten.packs,
            human_bytes(r.rewritten.bytes_copied),
            if r.dry_run { "would be copied" } else { "copied" },
            r.rewritten.new_packs
        ));
    }
    if let Some(i) = &r.index {
        out.push_str(&format!(
            "gc: chunk index: {} chunks in {} shard(s) (generation {}), {} delta(s) absorbed\n",
            i.chunks, i.shards, i.gen, i.deltas_absorbed
        ));
    }
    let st = &r.store;
    out.push_str(&format!(
        "gc: store: {} live version(s); {} in {} pack(s), {} used by live versions, {} not ({} in packs no live version uses{})\n",
        st.live_versions,
        human_bytes(st.pack_bytes),
        st.packs,
        human_bytes(st.live_bytes),
        human_bytes(st.dead_bytes),
        human_bytes(st.dead_in_unused_packs),
        if st.young_unused_packs > 0 {
            format!(", of which {} in {} pack(s) younger than the grace period or still being written", human_bytes(st.young_unused_bytes), st.young_unused_packs)
        } else {
            String::new()
        }
    ));
    if r.swept.is_empty()
        && r.marked.as_ref().is_none_or(|m| m.packs == 0)
        && r.deleted_versions.is_empty()
    {
        out.push_str(if r.dry_run {
            "gc: nothing would be deleted\n"
        } else {
            "gc: nothing to delete\n"
        });
    }
    out
}

fn print_outcome(out: &assetfs::ops::push::PushOutcome, as_json: bool) {
    if as_json {
        print_json(&json!({
            "ref": out.reference.to_string(),
            "version": out.version,
            "manifest": out.manifest,
            "files": out.files,
            "total_bytes": out.total_bytes,
            "new_bytes": out.stats.bytes_new,
            "new_chunks": out.stats.chunks_new,
            "reused_chunks": out.stats.chunks_reused,
            "packs": out.stats.packs,
            "claim_retries": out.claim_retries,
            "files_read": out.files_read,
            "files_unchanged": out.files_unchanged,
            "rescued_chunks": out.rescued_chunks,
            "gc_rechecks": out.gc_rechecks,
        }));
    } else {
        println!("{}", out.reference);
        eprintln!(
            "{} files, {} ({} new in {} packs)",
            out.files,
            human_bytes(out.total_bytes),
            human_bytes(out.stats.bytes_new),
            out.stats.packs
        );
    }
}

fn open_staging(
    store: &Store,
    r: &Reference,
    need_base: bool,
) -> Result<assetfs::catalog::staging::Staging> {
    let home = client::data_home();
    match assetfs::ops::commit::open_staging(&home, store, &r.asset, need_base) {
        Ok(s) => Ok(s),
        Err(e @ assetfs::ops::commit::CommitError::NoStaging { .. }) => {
            let hints = assetfs::mount::registry::staging_hints(&home, store, &r.asset);
            bail!("{e}; {}", hints.join("; "))
        }
        Err(e) => Err(e.into()),
    }
}

/// Asks on the terminal; anything but y/yes (or no terminal) is a no.
fn confirm(question: &str) -> Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn meta_input(c: &CommitArgs) -> Result<MetaInput> {
    let mut m = MetaInput {
        message: c.message.clone(),
        author: c.author.clone(),
        ..Default::default()
    };
    if let Some(f) = &c.meta_file {
        m.add_file(f)?;
    }
    for kv in &c.meta {
        m.add_kv(kv)?;
    }
    c.context.apply(&mut m)?;
    Ok(m)
}

async fn init(store: &Store, as_json: bool) -> Result<()> {
    store.check_conditional_writes().await?;
    store.write_marker().await?;
    if as_json {
        print_json(
            &json!({"store": store.url(), "format": client::MARKER_FORMAT, "conditional_writes": true}),
        );
    } else {
        println!(
            "store {} ready (format {}, create-if-absent writes honoured)",
            store.url(),
            client::MARKER_FORMAT
        );
    }
    Ok(())
}

async fn asset_summary(catalog: &Catalog, asset: &AssetId) -> Result<Option<Value>> {
    let keys = catalog.asset_keys(asset).await?;
    let versions = keys.live();
    if versions.is_empty() && !keys.claimed.is_empty() {
        // Every version deleted (`log --all` still shows them).
        return Ok(None);
    }
    let mut aliases = catalog.aliases_of(&keys).await?;
    aliases.retain(|_, v| keys.is_live(*v));
    Ok(Some(json!({
        "asset": asset.to_string(),
        "versions": versions.len(),
        "latest": versions.last(),
        "aliases": aliases,
    })))
}

async fn ls(catalog: &Catalog, path: Option<&str>, as_json: bool) -> Result<()> {
    let kinds: Vec<Kind> = match path {
        None => Kind::ALL.to_vec(),
        Some(p) if !p.contains('/') => vec![p.parse()?],
        Some(p) => {
            let r = parse_ref(p)?;
            return if p.contains('@') {
                ls_files(catalog, &r, as_json).await
            } else {
                ls_versions(catalog, &r.asset, as_json).await
            };
        }
    };
    let mut rows = vec![];
    for kind in kinds {
        for name in catalog.assets(kind).await? {
            rows.extend(asset_summary(catalog, &AssetId { kind, name }).await?);
        }
    }
    if as_json {
        print_json(&rows);
    } else {
        for r in rows {
            let aliases: Vec<String> = r["aliases"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(a, v)| format!("{a}=@{v}"))
                .collect();
            println!(
                "{:<40} latest=@{}  versions={}  {}",
                r["asset"].as_str().unwrap_or_default(),
                r["latest"],
                r["versions"],
                aliases.join(" ")
            );
        }
    }
    Ok(())
}

async fn ls_versions(catalog: &Catalog, asset: &AssetId, as_json: bool) -> Result<()> {
    let mut rows = vec![];
    for v in catalog.versions(asset).await? {
        rows.push(catalog.sidecar(asset, v).await?);
    }
    if rows.is_empty() {
        bail!("{asset} has no versions");
    }
    if as_json {
        print_json(&rows);
    } else {
        for s in rows {
            println!(
                "{:<40} {}  {:>6} files  {:>10}  {}",
                s["ref"].as_str().unwrap_or_default(),
                s["created"].as_str().unwrap_or_default(),
                s["file_count"],
                human_bytes(s["total_bytes"].as_u64().unwrap_or(0)),
                s["message"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn ls_files(catalog: &Catalog, r: &Reference, as_json: bool) -> Result<()> {
    let v = catalog.resolve(r).await?;
    let rec = catalog.record(&r.asset, v).await?;
    let m = catalog.manifest(&rec.manifest).await?;
    if as_json {
        let rows: Vec<Value> = m
            .entries()
            .map(|e| {
                json!({
                    "path": e.path,
                    "type": format!("{:?}", e.kind).to_lowercase(),
                    "mode": format!("{:o}", e.mode),
                    "size": e.size,
                    "blake3": (e.kind == assetfs::format::manifest::EntryKind::File).then(|| assetfs::format::ids::to_hex(&e.hash)),
                    "target": e.target,
                })
            })
            .collect();
        print_json(&rows);
    } else {
        use std::io::Write;
        // One write per line would dominate for a million-file version.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for e in m.entries() {
            let suffix = match (&e.kind, &e.target) {
                (assetfs::format::manifest::EntryKind::Dir, _) => "/".to_string(),
                (_, Some(t)) => format!(" -> {t}"),
                _ => String::new(),
            };
            writeln!(out, "{:04o} {:>12}  {}{suffix}", e.mode, e.size, e.path)?;
        }
        out.flush()?;
    }
    Ok(())
}

async fn log(catalog: &Catalog, r: &Reference, all: bool, as_json: bool) -> Result<()> {
    if !matches!(r.selector, Selector::Latest) {
        bail!(
            "log lists every version of an asset; give the asset only (e.g. {})",
            r.asset
        );
    }
    let keys = catalog.asset_keys(&r.asset).await?;
    let versions: Vec<u64> = if all {
        keys.claimed.iter().copied().collect()
    } else {
        keys.live()
    };
    if versions.is_empty() {
        if keys.claimed.is_empty() {
            bail!("{} has no versions", r.asset);
        }
        bail!(
            "every version of {} was deleted; `assetfs log --all {}` shows them",
            r.asset,
            r.asset
        );
    }
    let mut rows = vec![];
    for v in versions.iter().rev() {
        rows.push(catalog.sidecar_with(&r.asset, *v, &keys).await?);
    }
    if as_json {
        print_json(&rows);
        return Ok(());
    }
    print!("{}", crate::cli::log_table::log_table(&rows));
    Ok(())
}

/// `alias --require-tests`: the version's stored tests must exist and pass.
async fn require_passing_tests(
    catalog: &Catalog,
    r: &Reference,
    alias: &str,
    timeout: &str,
    as_json: bool,
) -> Result<()> {
    let t = assetfs::ops::stored_tests::parse_timeout(timeout).map_err(anyhow::Error::msg)?;
    let rep =
        assetfs::ops::stored_tests::test_version(catalog, r, t, Some(&test_mounter::FuseMounter))
            .await?;
    note_test_fallback(&rep);
    if !as_json {
        print!("{}", rep.render());
    }
    if rep.tests.is_empty() {
        bail!("refusing to point {alias} at {r}: it has no stored tests (--require-tests needs at least one, all passing)");
    }
    if rep.failed > 0 {
        bail!(
            "refusing to point {alias} at {r}: {} of {} stored tests failed ({}); see `assetfs test {r}`",
            rep.failed,
            rep.tests.len(),
            rep.failed_names().join(", ")
        );
    }
    Ok(())
}

async fn verify(
    catalog: &Catalog,
    reference: Option<&str>,
    as_json: bool,
) -> Result<std::process::ExitCode> {
    let mut targets = vec![];
    match reference {
        Some(s) => {
            let r = parse_ref(s)?;
            if r.is_bare() && !s.contains('@') {
                for v in catalog.versions(&r.asset).await? {
                    targets.push((r.asset.clone(), v));
                }
            } else {
                targets.push((r.asset.clone(), catalog.resolve(&r).await?));
            }
        }
        None => {
            for kind in Kind::ALL {
                for name in catalog.assets(kind).await? {
                    let asset = AssetId {
                        kind,
                        name: AssetName::parse(name.as_str())?,
                    };
                    for v in catalog.versions(&asset).await? {
                        targets.push((asset.clone(), v));
                    }
                }
            }
        }
    }
    let mut reports = vec![];
    let mut bad = 0;
    for (asset, v) in targets {
        let rep = assetfs::ops::verify::verify_version(catalog, &asset, v).await?;
        if !rep.problems.is_empty() {
            bad += 1;
        }
        if !as_json {
            if rep.problems.is_empty() {
                println!(
                    "ok    {}  ({} chunks, {})",
                    rep.reference,
                    rep.chunks,
                    human_bytes(rep.bytes)
                );
            } else {
                for p in &rep.problems {
                    println!("BAD   {}  {p}", rep.reference);
                }
            }
        }
        reports.push(rep);
    }
    if as_json {
        print_json(&reports);
    }
    if bad > 0 {
        eprintln!("assetfs: error: {bad} version(s) failed verification");
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn cache_cmd(cli: &Cli, store: &Store, cmd: &CacheCmd) -> Result<()> {
    use assetfs::catalog::disk_cache::{parse_size, DiskCache};
    let dir = cache_dir(cli);
    // Not for list/clear: an open chunk cache counts as a user of the directory.
    let open_disk = || DiskCache::open(&dir, u64::MAX);
    match cmd {
        CacheCmd::List => cache_list(cli, &dir)?,
        CacheCmd::Clear {
            only,
            unused,
            older_than,
            staging,
            force,
        } => {
            use assetfs::ops::node_state::{clear_all, clear_stores, Select};
            let data_home = client::data_home();
            let out = if let Some(s) = only {
                // Its identity too, when the URL opens (a removed local store may not).
                let mut names = vec![s.clone()];
                if let Ok(st) = Store::open(s) {
                    names.push(st.id());
                }
                clear_stores(&dir, &data_home, Select::Store(&names), *staging, *force)?
            } else if *unused {
                let older_than = humantime::parse_duration(older_than).map_err(|e| {
                    anyhow::anyhow!(
                        "invalid --older-than {older_than:?} ({e}): expected e.g. 30d, 12h or 0s"
                    )
                })?;
                let sel = Select::Unused {
                    older_than,
                    current: &store.id(),
                };
                clear_stores(&dir, &data_home, sel, *staging, *force)?
            } else if *staging {
                bail!("--staging needs a STORE (URL or tag from `cache list`) or --unused: staging areas are working copies, not caches, and are removed only store by store");
            } else {
                clear_all(&dir)?
            };
            if cli.json {
                print_json(&out);
            } else {
                println!("freed {}", human_bytes(out.bytes));
                for s in &out.stores {
                    println!("store      {s}: catalog cache removed");
                }
                for s in &out.staging_removed {
                    println!("removed    staging {s}");
                }
                for s in &out.staging_kept {
                    println!("kept       staging {s}");
                }
            }
        }
        CacheCmd::Stats => {
            let disk = open_disk()?;
            let s = disk.stats()?;
            if cli.json {
                print_json(&json!({
                    "dir": dir,
                    "entries": s.entries,
                    "bytes": s.bytes,
                    "hits": s.hits,
                    "misses": s.misses,
                    "hit_rate": s.hit_rate(),
                    "corrupt_dropped": s.corrupt_dropped,
                }));
            } else {
                println!("cache      {}", dir.display());
                println!("entries    {}", s.entries);
                println!("size       {}", human_bytes(s.bytes));
                println!(
                    "hit rate   {:.1}% ({} hits, {} misses)",
                    s.hit_rate() * 100.0,
                    s.hits,
                    s.misses
                );
                println!("corrupt    {} dropped", s.corrupt_dropped);
            }
        }
        CacheCmd::Prefetch { reference } => {
            // Like a mount: a local store's chunks are checked in place, not copied.
            let disk = open_disk()?.with_local_packs(store.local_packs());
            let r = parse_ref(reference)?;
            let meta = assetfs::catalog::catalog_cache::CatalogCache::new(
                Catalog::new(store.clone()),
                &dir,
            );
            let out = assetfs::ops::prefetch::prefetch(&meta, &disk, &r, !cli.json).await?;
            if cli.json {
                print_json(&out);
            } else {
                println!(
                    "{}: {} chunks fetched ({}), {} already cached",
                    out.reference,
                    out.chunks_fetched,
                    human_bytes(out.bytes_fetched),
                    out.chunks_already_cached
                );
            }
        }
        CacheCmd::Prune { to } => {
            let target = match to {
                Some(t) => parse_size(t).map_err(anyhow::Error::msg)?,
                None => 0,
            };
            let freed = open_disk()?.evict_to(target)?;
            if cli.json {
                print_json(&json!({"freed_bytes": freed}));
            } else {
                println!("freed {}", human_bytes(freed));
            }
        }
    }
    Ok(())
}

/// `assetfs mounts`: every assetfs mount of this node.
async fn mounts(as_json: bool) -> Result<()> {
    let mut reports = vec![];
    for m in assetfs::mount::registry::node_mounts() {
        reports.push(assetfs::mount::registry::report(&m).await);
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

/// Says on stderr (also with --json) when stored tests could not run from a
/// mount and ran from a copy instead.
fn note_test_fallback(rep: &assetfs::ops::stored_tests::TestReport) {
    if let Some(why) = &rep.mount_failed {
        eprintln!(
            "assetfs: note: cannot mount {} for its tests ({why}); ran them from a copy made with `get` instead",
            rep.reference
        );
    }
}

fn cache_list(cli: &Cli, dir: &std::path::Path) -> Result<()> {
    let stores = assetfs::ops::node_state::list(dir, &client::data_home());
    if cli.json {
        print_json(&stores);
        return Ok(());
    }
    if stores.is_empty() {
        println!("no store state on this node (cache {})", dir.display());
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for s in stores {
        let used = match s.last_used {
            Some(t) => format!(
                "used {} ago",
                humantime::format_duration(std::time::Duration::from_secs(now.saturating_sub(t)))
            ),
            None => "use time unknown".into(),
        };
        println!(
            "{}  {}  {}  catalog cache {}",
            s.tag,
            s.url.as_deref().unwrap_or("(url unknown)"),
            used,
            human_bytes(s.catalog_cache_bytes)
        );
        for a in s.staging {
            println!(
                "    staging {:<40} {:>10}  {}{}",
                a.asset,
                human_bytes(a.bytes),
                if a.uncommitted {
                    "uncommitted changes"
                } else {
                    "clean"
                },
                if a.in_use { ", open by a mount" } else { "" }
            );
        }
    }
    Ok(())
}
