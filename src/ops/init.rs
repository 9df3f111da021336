//! `init`: makes a store an assetfs store, once it has proven it honours
//! create-if-absent writes (idempotent).

use serde::Serialize;

use crate::store::{Store, StoreError, MARKER_FORMAT};

/// A store ready for assetfs. Serialises to `init --json` (field order is
/// the output's).
#[derive(Debug, Clone, Serialize)]
pub struct StoreReady {
    pub store: String,
    pub format: u64,
    pub conditional_writes: bool,
}

/// Checks conditional writes, then writes (or validates) the marker.
pub async fn init_store(store: &Store) -> Result<StoreReady, StoreError> {
    store.check_conditional_writes().await?;
    store.write_marker().await?;
    Ok(StoreReady {
        store: store.url().to_string(),
        format: MARKER_FORMAT,
        conditional_writes: true,
    })
}
