//! Moving and removing aliases. Each first proves the store honours
//! create-if-absent writes, as every write of the catalog does.

use crate::catalog::{Catalog, CatalogError};
use crate::format::AssetId;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AliasError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl crate::store::ToErrno for AliasError {
    fn errno(&self) -> libc::c_int {
        match self {
            AliasError::Store(e) => e.errno(),
            AliasError::Catalog(e) => e.errno(),
        }
    }
}

/// Points `asset@alias` at `version`.
pub async fn set_alias(
    catalog: &Catalog,
    asset: &AssetId,
    alias: &str,
    version: u64,
) -> Result<(), AliasError> {
    catalog.store().check_conditional_writes().await?;
    catalog.set_alias(asset, alias, version).await?;
    Ok(())
}

/// Removes `asset@alias`; returns the version it pointed at.
pub async fn delete_alias(
    catalog: &Catalog,
    asset: &AssetId,
    alias: &str,
) -> Result<u64, AliasError> {
    catalog.store().check_conditional_writes().await?;
    Ok(catalog.delete_alias(asset, alias).await?)
}
