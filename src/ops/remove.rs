//! `rm`: deleting a version. The version record stays (its number is never
//! reused and `log --all` still shows it); a deletion record says who
//! deleted it, when and why. The bytes go later, when `gc` finds no live
//! version that shares them (docs/storage-format.md, "Deleting and gc").

use std::collections::BTreeSet;

use crate::catalog::CatalogCache;
use crate::catalog::{CatalogError, DeletionRecord};
use crate::format::{AssetId, Reference, Selector};

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("rm takes one version by number (e.g. {0}@3), so that an alias that moves cannot delete the wrong one; to remove an alias use `assetfs alias --delete`")]
    NotAVersion(AssetId),
    #[error("refusing to delete {reference}: {reasons}; nothing was deleted (--force deletes it anyway)")]
    InUse { reference: String, reasons: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    /// Delete even when live versions record it as a lineage input or user
    /// aliases point at it.
    pub force: bool,
    /// Who deletes (recorded).
    pub by: String,
    /// Why (recorded).
    pub message: String,
}

/// What still refers to a version: live versions that list it as a lineage
/// input, and user aliases that point at it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Users {
    pub lineage: Vec<String>,
    pub aliases: Vec<String>,
}

impl Users {
    pub fn is_empty(&self) -> bool {
        self.lineage.is_empty() && self.aliases.is_empty()
    }

    fn describe(&self) -> String {
        let mut out = vec![];
        if !self.lineage.is_empty() {
            out.push(format!(
                "it is a lineage input of {}",
                self.lineage.join(", ")
            ));
        }
        if !self.aliases.is_empty() {
            out.push(format!(
                "alias{} {} point{} at it",
                if self.aliases.len() > 1 { "es" } else { "" },
                self.aliases.join(", "),
                if self.aliases.len() > 1 { "" } else { "s" },
            ));
        }
        out.join(" and ")
    }
}

/// Live versions and user aliases that refer to `asset@version`.
pub async fn users_of(
    cache: &CatalogCache,
    asset: &AssetId,
    version: u64,
) -> Result<Users, CatalogError> {
    let me = asset.at(version).to_string();
    let mut lineage = BTreeSet::new();
    for (r, inputs) in crate::ops::lineage::all_inputs(cache).await? {
        if r != me && inputs.contains(&me) {
            lineage.insert(r);
        }
    }
    let aliases = cache
        .catalog()
        .aliases(asset)
        .await?
        .into_iter()
        .filter(|(_, v)| *v == version)
        .map(|(a, _)| format!("{asset}@{a}"))
        .collect();
    Ok(Users {
        lineage: lineage.into_iter().collect(),
        aliases,
    })
}

/// Deletes one version, unless something still refers to it and `force` is off.
pub async fn remove_version(
    cache: &CatalogCache,
    r: &Reference,
    opts: &RemoveOptions,
) -> Result<DeletionRecord, RemoveError> {
    let Selector::Version(v) = r.selector else {
        return Err(RemoveError::NotAVersion(r.asset.clone()));
    };
    let catalog = cache.catalog();
    // Unknown or already deleted: say so before anything else.
    catalog.ensure_live(&r.asset, v).await?;
    if !opts.force {
        let users = users_of(cache, &r.asset, v).await?;
        if !users.is_empty() {
            return Err(RemoveError::InUse {
                reference: r.to_string(),
                reasons: users.describe(),
            });
        }
    }
    Ok(catalog
        .delete_version(&r.asset, v, &opts.by, &opts.message)
        .await?)
}
