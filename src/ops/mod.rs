mod alias;
mod commit;
mod context;
mod diff;
mod gc;
mod gc_rewrite;
mod get;
mod init;
mod inspect;
mod lineage;
mod metadata;
mod node_state;
mod npy;
mod prefetch;
mod progress;
mod push;
mod remove;
mod schema;
mod secrets;
mod stored_tests;
mod verify;

pub use alias::{delete_alias, set_alias};
pub use commit::{commit, ensure_init, open_staging, status, CommitError};
pub use context::ContextOptions;
pub use diff::diff;
pub use gc::{run, GcOptions, GcReport, DEFAULT_REWRITE_BELOW};
pub use get::{get, GetError};
pub use init::init_store;
pub use inspect::{
    asset_summaries, describe_version, log_rows, verify_targets, version_manifest,
    version_sidecars, VerifyScope,
};
pub use lineage::{inputs_tree, used_by_tree};
pub use metadata::{default_author, MetaInput};
pub use node_state::{clear_all, clear_stores, list, Select};
pub use npy::write_f64;
pub use prefetch::prefetch;
pub use progress::{set_drawer, Bar, Drawer, Unit};
pub use push::{commit_tree, push, PushError, PushOptions, PushOutcome};
pub use remove::{remove_version, RemoveError, RemoveOptions};
pub use stored_tests::{test_version, MountedVersion, TestReport, VersionMounter};
pub use verify::verify_version;
