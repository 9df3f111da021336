//! The flags `push` and `commit` share: the message, metadata, lineage
//! inputs, aliases, and the version's context.

use std::path::PathBuf;

use clap::Args;

use assetfs::ops::ContextOptions;

#[derive(Args, Debug, Clone, Default)]
pub struct CommitArgs {
    /// Commit message
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Metadata KEY=VALUE, stored under `user` (repeatable)
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// JSON object of metadata (context, metrics, tests, user, or your own fields)
    #[arg(long = "meta-file", value_name = "FILE")]
    pub meta_file: Option<PathBuf>,
    /// A version this one was built from, e.g. features/clicks@7 (repeatable)
    #[arg(long = "input", value_name = "REF")]
    pub inputs: Vec<String>,
    /// Point this alias at the new version (repeatable)
    #[arg(long = "alias", value_name = "ALIAS")]
    pub aliases: Vec<String>,
    /// Author (default: $ASSETFS_AUTHOR, git config user.name, or $USER)
    #[arg(long)]
    pub author: Option<String>,
    #[command(flatten)]
    pub context: ContextArgs,
}

// `ContextOptions` as flags, same order and help. A plain comment: clap
// would take a doc comment here as help text.
#[derive(Args, Debug, Clone, Default)]
pub struct ContextArgs {
    /// JSON or TOML object of context fields (framework, command, paper, container, log, notes, ...)
    #[arg(long = "context-file", value_name = "FILE")]
    pub context_file: Option<PathBuf>,
    /// Framework and version, e.g. "pytorch 2.3"
    #[arg(long, value_name = "TEXT")]
    pub framework: Option<String>,
    /// How to run or reproduce this version, e.g. "python train.py --epochs 3"
    #[arg(long = "command", value_name = "CMD")]
    pub command: Option<String>,
    /// Paper or project link
    #[arg(long, value_name = "URL")]
    pub paper: Option<String>,
    /// Container image pinned by digest: IMAGE@sha256:<64 hex digits>
    #[arg(long, value_name = "IMAGE@sha256:DIGEST")]
    pub container: Option<String>,
    /// The training log: a file inside the version being committed
    #[arg(long = "log", value_name = "PATH")]
    pub log: Option<String>,
    /// A metric, stored under `metrics` (repeatable)
    #[arg(long = "metric", value_name = "NAME=NUMBER")]
    pub metrics: Vec<String>,
    /// JSON object of metric names to numbers
    #[arg(long = "metrics-file", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// How the data was chosen (for feature snapshots), stored in `lineage.source`
    #[arg(long, value_name = "TEXT")]
    pub source: Option<String>,
    /// JSON array of stored input/output tests (see `assetfs test`)
    #[arg(long = "tests-file", value_name = "FILE")]
    pub tests_file: Option<PathBuf>,
}

impl From<ContextArgs> for ContextOptions {
    fn from(a: ContextArgs) -> ContextOptions {
        ContextOptions {
            context_file: a.context_file,
            framework: a.framework,
            command: a.command,
            paper: a.paper,
            container: a.container,
            log: a.log,
            metrics: a.metrics,
            metrics_file: a.metrics_file,
            source: a.source,
            tests_file: a.tests_file,
        }
    }
}
