//! The command line as clap sees it. The doc comments are the `--help`
//! text: change them only to change what users read.

pub mod commit;
pub mod mount;
pub mod values;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use commit::CommitArgs;
pub use mount::MountArgs;

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
    pub store: Option<String>,
    /// Endpoint of an S3-compatible or Azure store (e.g. http://minio:9000); else AWS_ENDPOINT_URL,
    /// endpoint_url in ~/.aws/config, or the service's default
    #[arg(long, global = true, env = "ASSETFS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Region of an S3 store; else AWS_REGION, region in ~/.aws/config
    #[arg(long, global = true, env = "ASSETFS_REGION")]
    pub region: Option<String>,
    /// Local cache directory (default: $XDG_CACHE_HOME/assetfs)
    #[arg(long, global = true, env = "ASSETFS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print data as JSON
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
    Alias(AliasArgs),
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
    Rm(RmArgs),
    /// Delete versions retention rules let go, and reclaim what no live version uses
    Gc(GcArgs),
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

#[derive(Subcommand, Debug)]
pub enum CacheCmd {
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

// The variants' doc comments are the commands' help; these structs carry
// none (clap would take one as help text).

#[derive(Args, Debug)]
pub struct AliasArgs {
    /// The version (models/m@3), or with --delete the asset (models/m) or the alias itself (models/m@prod)
    pub reference: String,
    pub alias: Option<String>,
    /// Remove the alias instead of moving it
    #[arg(long, conflicts_with = "require_tests")]
    pub delete: bool,
    /// Refuse unless the version has stored tests and they all pass
    #[arg(long)]
    pub require_tests: bool,
    /// Time limit per test with --require-tests, e.g. 120s, 10m
    #[arg(long, default_value = "120s")]
    pub timeout: String,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// The version, by number, e.g. models/resnet@3
    pub reference: String,
    /// Why it is deleted (recorded)
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Do not ask (needed when not on a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Delete even when live versions record it as a lineage input or user aliases point at it
    #[arg(long)]
    pub force: bool,
    /// Who deletes it (default: $ASSETFS_AUTHOR, git config user.name, or $USER)
    #[arg(long)]
    pub author: Option<String>,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Show what would go and what that frees; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Unreferenced data younger than this stays, and nothing is deleted
    /// sooner than this after gc found it unreferenced (open files of
    /// deleted versions keep reading), e.g. 24h, 30m, 0s
    #[arg(long, default_value = "24h")]
    pub grace: String,
    /// Keep the newest N versions of each asset (deletes older ones)
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep versions created within DURATION (deletes older ones), e.g. 30d
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Who deletes versions by retention (default: $ASSETFS_AUTHOR, git config user.name, or $USER)
    #[arg(long)]
    pub author: Option<String>,
    /// Rewrite packs less than this fraction of which live versions use (0 turns rewriting off)
    #[arg(long, value_name = "FRACTION", default_value_t = assetfs::ops::DEFAULT_REWRITE_BELOW)]
    pub rewrite_below: f64,
}
