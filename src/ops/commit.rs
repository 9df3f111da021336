//! `commit`, `status` and `reset` of an asset's staging area. Commit goes
//! through the same implementation as `push` ([`crate::ops::push::commit_tree`]);
//! unchanged files keep their chunks, so only what changed is hashed and
//! uploaded.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{Catalog, CatalogError};
use crate::catalog::{Change, Staging, StagingError, StartError};
use crate::format::Manifest;
use crate::format::{AssetId, Reference};
use crate::ops::push::{commit_tree, PushError, PushOptions, PushOutcome};

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{0}@staging has nothing staged (no working copy on this node)")]
    NothingStaged(AssetId),
    #[error("{asset}@staging: nothing staged on this node for store {store} (looked in {})", dir.display())]
    NoStaging {
        asset: AssetId,
        store: String,
        dir: std::path::PathBuf,
    },
    #[error("files are still open for writing in {asset}@staging: {files}; close them, or commit with --wait")]
    OpenWriters { asset: AssetId, files: String },
    #[error("{asset}@staging is based on {asset}@{base}, which was deleted{by} and collected by gc: the bytes of {count} unchanged file(s) are gone ({files}); nothing was committed. Write those files again, or start over from the latest version with `assetfs reset {asset}`")]
    BaseCollected {
        asset: AssetId,
        base: u64,
        by: String,
        count: usize,
        files: String,
    },
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Push(#[from] PushError),
}

impl From<StartError> for CommitError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Staging(e) => e.into(),
            StartError::Catalog(e) => e.into(),
            // Not asked for: `commit` creates an empty area for a new asset.
            StartError::NoVersions(asset) => CommitError::NothingStaged(asset),
        }
    }
}

/// Opens the staging area of `asset` for `store` under `data_home`; one
/// that no mount has made yet (or, with `need_base`, one not initialised
/// from a base) is [`CommitError::NoStaging`], naming where it was looked
/// for. Nothing is created. `reset` of an area just reset needs no base.
pub fn open_staging(
    data_home: &Path,
    store: &crate::store::Store,
    asset: &AssetId,
    need_base: bool,
) -> Result<Staging, CommitError> {
    let dir = crate::catalog::locate(data_home, store, asset);
    let missing = || CommitError::NoStaging {
        asset: asset.clone(),
        store: store.url().to_string(),
        dir: dir.clone(),
    };
    if !dir.join("staging.sqlite").is_file() {
        return Err(missing());
    }
    let st = Staging::open(&dir)?;
    if need_base && st.base()?.is_none() {
        return Err(missing());
    }
    Ok(st)
}

/// Initialises staging from the asset's latest version if it is not yet.
/// Returns the base manifest, if there is a base.
pub async fn ensure_init(
    catalog: &Catalog,
    staging: &Staging,
    asset: &AssetId,
) -> Result<Option<Arc<Manifest>>, CommitError> {
    if let Some((v, hash)) = staging.base()? {
        return match hash {
            Some(h) => match catalog.manifest(&h).await {
                Ok(m) => Ok(Some(Arc::new(m))),
                Err(CatalogError::Store(crate::store::StoreError::NotFound { .. })) => {
                    base_gone(catalog, staging, asset, v).await
                }
                Err(e) => Err(e.into()),
            },
            None => Ok(None),
        };
    }
    Ok(staging.start_from_latest(catalog, asset, true).await?)
}

/// The base manifest is gone from the store. When the base version was
/// deleted (and gc collected it), say so, naming the files whose bytes went
/// with it; with none left that need them, staging works without a base.
async fn base_gone(
    catalog: &Catalog,
    staging: &Staging,
    asset: &AssetId,
    base: Option<u64>,
) -> Result<Option<Arc<Manifest>>, CommitError> {
    let Some(v) = base else {
        return Err(CommitError::NothingStaged(asset.clone()));
    };
    let Some(d) = catalog.deletion(asset, v).await? else {
        // Not deleted, yet its manifest is missing: a damaged store.
        let rec = catalog.record(asset, v).await?;
        return Err(catalog.manifest(&rec.manifest).await.err().map_or_else(
            || CommitError::NothingStaged(asset.clone()),
            CommitError::Catalog,
        ));
    };
    let files = staging.base_files()?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
    if files.len() > shown.len() {
        shown.push("...");
    }
    Err(CommitError::BaseCollected {
        asset: asset.clone(),
        base: v,
        by: format!(" by {} at {}", d.by, d.deleted),
        count: files.len(),
        files: shown.join(", "),
    })
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

/// How long `commit` gives writers that just closed their file to be
/// deregistered by the mount daemon before refusing.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

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
    // The kernel sends a FUSE release after close() has returned, so a file
    // closed just before `commit` may still be registered for a moment.
    let grace = std::time::Instant::now() + RELEASE_GRACE;
    loop {
        let open = staging.open_writers()?;
        if open.is_empty() {
            break;
        }
        if !wait && std::time::Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
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
