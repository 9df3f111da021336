//! What `ls`, `log`, `verify` and `rm` read from the catalog, as data: which
//! versions are live, which aliases count, which versions a target names.
//! The binary formats it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::catalog::{Catalog, CatalogError};
use crate::format::Manifest;
use crate::format::{AssetId, AssetName, Kind, NameError, Reference};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("every version of {0} was deleted; `assetfs log --all {0}` shows them")]
    AllDeleted(AssetId),
}

/// An asset whose versions were all deleted is gone (ENOENT), like one that
/// never had any; the rest is the catalog's.
impl crate::store::ToErrno for InspectError {
    fn errno(&self) -> libc::c_int {
        match self {
            InspectError::Catalog(e) => e.errno(),
            InspectError::Name(_) => libc::EINVAL,
            InspectError::AllDeleted(_) => libc::ENOENT,
        }
    }
}

type Result<T, E = InspectError> = std::result::Result<T, E>;

/// One asset in `ls`: its live versions, and the aliases that point at one.
/// Serialises to the `ls --json` row (field order is the output's).
#[derive(Debug, Clone, Serialize)]
pub struct AssetSummary {
    pub asset: String,
    pub versions: usize,
    pub latest: Option<u64>,
    pub aliases: BTreeMap<String, u64>,
}

/// `None` when every version of the asset was deleted (`log --all` still
/// shows them); an asset with no versions at all is listed.
pub async fn asset_summary(catalog: &Catalog, asset: &AssetId) -> Result<Option<AssetSummary>> {
    let keys = catalog.asset_keys(asset).await?;
    let versions = keys.live();
    if versions.is_empty() && !keys.claimed.is_empty() {
        return Ok(None);
    }
    let mut aliases = catalog.aliases_of(&keys).await?;
    aliases.retain(|_, v| keys.is_live(*v));
    Ok(Some(AssetSummary {
        asset: asset.to_string(),
        versions: versions.len(),
        latest: versions.last().copied(),
        aliases,
    }))
}

/// The summaries of every asset of these kinds, in listing order.
pub async fn asset_summaries(catalog: &Catalog, kinds: &[Kind]) -> Result<Vec<AssetSummary>> {
    let mut rows = vec![];
    for &kind in kinds {
        for name in catalog.assets(kind).await? {
            rows.extend(asset_summary(catalog, &AssetId { kind, name }).await?);
        }
    }
    Ok(rows)
}

/// The sidecars of an asset's live versions, oldest first (`ls ASSET`).
pub async fn version_sidecars(catalog: &Catalog, asset: &AssetId) -> Result<Vec<Value>> {
    let mut rows = vec![];
    for v in catalog.versions(asset).await? {
        rows.push(catalog.sidecar(asset, v).await?);
    }
    if rows.is_empty() {
        return Err(CatalogError::NoVersions(asset.clone()).into());
    }
    Ok(rows)
}

/// The manifest of the version `r` names (`ls ASSET@VERSION`).
pub async fn version_manifest(catalog: &Catalog, r: &Reference) -> Result<Manifest> {
    let v = catalog.resolve(r).await?;
    let rec = catalog.record(&r.asset, v).await?;
    Ok(catalog.manifest(&rec.manifest).await?)
}

/// The sidecars `log` shows, newest first: live versions, or with `all`
/// every claimed one (deleted ones say who deleted them).
pub async fn log_rows(catalog: &Catalog, asset: &AssetId, all: bool) -> Result<Vec<Value>> {
    let keys = catalog.asset_keys(asset).await?;
    let versions: Vec<u64> = if all {
        keys.claimed.iter().copied().collect()
    } else {
        keys.live()
    };
    if versions.is_empty() {
        if keys.claimed.is_empty() {
            return Err(CatalogError::NoVersions(asset.clone()).into());
        }
        return Err(InspectError::AllDeleted(asset.clone()));
    }
    let mut rows = vec![];
    for v in versions.iter().rev() {
        rows.push(catalog.sidecar_with(asset, *v, &keys).await?);
    }
    Ok(rows)
}

/// What `verify` checks.
#[derive(Debug, Clone, Copy)]
pub enum VerifyScope<'a> {
    /// Every version of every asset.
    Everything,
    /// Every version of one asset.
    Asset(&'a AssetId),
    /// The one version a reference resolves to.
    Version(&'a Reference),
}

/// The versions `verify` checks, in order.
pub async fn verify_targets(
    catalog: &Catalog,
    scope: VerifyScope<'_>,
) -> Result<Vec<(AssetId, u64)>> {
    let mut targets = vec![];
    match scope {
        VerifyScope::Asset(asset) => {
            for v in catalog.versions(asset).await? {
                targets.push((asset.clone(), v));
            }
        }
        VerifyScope::Version(r) => targets.push((r.asset.clone(), catalog.resolve(r).await?)),
        VerifyScope::Everything => {
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
    Ok(targets)
}

/// A version as `rm` describes it before deleting it.
#[derive(Debug, Clone)]
pub struct VersionDescription {
    pub file_count: u64,
    pub total_bytes: u64,
    pub created: Option<String>,
    pub author: Option<String>,
}

pub async fn describe_version(
    catalog: &Catalog,
    asset: &AssetId,
    v: u64,
) -> Result<VersionDescription> {
    let rec = catalog.record(asset, v).await?;
    let text = |k: &str| rec.meta.get(k).and_then(Value::as_str).map(str::to_string);
    let num = |k: &str| rec.meta.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(VersionDescription {
        file_count: num("file_count"),
        total_bytes: num("total_bytes"),
        created: text("created"),
        author: text("author"),
    })
}
