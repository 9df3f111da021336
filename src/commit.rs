//! `commit`, `status` and `reset` of an asset's staging area. Commit goes
//! through the same implementation as `push` ([`crate::push::commit_tree`]);
//! unchanged files keep their chunks, so only what changed is hashed and
//! uploaded.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{Catalog, CatalogError};
use crate::manifest::Manifest;
use crate::names::{AssetId, Reference};
use crate::push::{commit_tree, PushError, PushOptions, PushOutcome};
use crate::staging::{staging_dir, Change, Staging, StagingError};

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{0}@staging has nothing staged (no working copy on this node)")]
    NothingStaged(AssetId),
    #[error("files are still open for writing in {asset}@staging: {files}; close them, or commit with --wait")]
    OpenWriters { asset: AssetId, files: String },
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Push(#[from] PushError),
}

/// Opens the staging area of `asset` for the store at `store_url`.
pub fn open_staging(
    data_home: &Path,
    store_url: &str,
    asset: &AssetId,
) -> Result<Staging, CommitError> {
    Ok(Staging::open(&staging_dir(data_home, store_url, asset))?)
}

/// Initialises staging from the asset's latest version if it is not yet.
/// Returns the base manifest, if there is a base.
pub async fn ensure_init(
    catalog: &Catalog,
    staging: &Staging,
    asset: &AssetId,
) -> Result<Option<Arc<Manifest>>, CommitError> {
    if let Some((_, hash)) = staging.base()? {
        return match hash {
            Some(h) => Ok(Some(Arc::new(catalog.manifest(&h).await?))),
            None => Ok(None),
        };
    }
    match catalog.latest(asset).await? {
        None => {
            staging.init(None)?;
            Ok(None)
        }
        Some(v) => {
            let rec = catalog.record(asset, v).await?;
            let m = catalog.manifest(&rec.manifest).await?;
            staging.init(Some((v, &rec.manifest, &m)))?;
            Ok(Some(Arc::new(m)))
        }
    }
}

/// What staging changed against its base.
pub async fn status(
    catalog: &Catalog,
    staging: &Staging,
    asset: &AssetId,
) -> Result<(Option<u64>, Vec<Change>), CommitError> {
    if staging.base()?.is_none() {
        return Err(CommitError::NothingStaged(asset.clone()));
    }
    let base = ensure_init(catalog, staging, asset).await?;
    let base_version = staging.base()?.and_then(|(v, _)| v);
    Ok((base_version, staging.status(base.as_deref())?))
}

/// Commits staging as the next version, then makes staging a clean view of
/// it. With `wait`, waits for files open for writing to be closed.
pub async fn commit(
    catalog: &Catalog,
    staging: &Staging,
    r: &Reference,
    mut opts: PushOptions,
    wait: bool,
) -> Result<PushOutcome, CommitError> {
    let asset = r.asset.clone();
    if staging.base()?.is_none() {
        return Err(CommitError::NothingStaged(asset));
    }
    loop {
        let open = staging.open_writers()?;
        if open.is_empty() {
            break;
        }
        if !wait {
            return Err(CommitError::OpenWriters {
                asset,
                files: open.join(", "),
            });
        }
        tracing::info!("waiting for {} open file(s) in staging", open.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let base = ensure_init(catalog, staging, &asset).await?;
    opts.base = staging.base()?.and_then(|(v, _)| v);
    let items = staging.items(base.as_deref())?;
    let out = commit_tree(catalog, r, items, opts).await?;
    // The version is committed. Staging becomes a clean view of it in one
    // transaction: a crash before that leaves staging as it was (committing
    // again makes another, identical version), never half reset.
    let rec = catalog.record(&asset, out.version).await?;
    let m = catalog.manifest(&rec.manifest).await?;
    staging.rebase(out.version, &rec.manifest, &m)?;
    Ok(out)
}
