//! `verify`: re-fetch and re-hash every chunk a version uses.

use std::collections::HashSet;

use crate::catalog::{Catalog, CatalogError};
use crate::format::fetch_chunks;
use crate::format::AssetId;

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub reference: String,
    pub chunks: u64,
    pub bytes: u64,
    /// One line per problem; empty when the version is intact.
    pub problems: Vec<String>,
}

pub async fn verify_version(
    catalog: &Catalog,
    asset: &AssetId,
    version: u64,
) -> Result<VerifyReport, CatalogError> {
    let mut report = VerifyReport {
        reference: asset.at(version).to_string(),
        chunks: 0,
        bytes: 0,
        problems: vec![],
    };
    let rec = catalog.record(asset, version).await?;
    let m = match catalog.manifest(&rec.manifest).await {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(e.to_string());
            return Ok(report);
        }
    };
    let mut seen = HashSet::new();
    let unique: Vec<_> = m
        .chunks
        .iter()
        .filter(|c| seen.insert((c.pack, c.offset)))
        .copied()
        .collect();
    let result = fetch_chunks(catalog.store(), &m, unique, |_, data| {
        report.chunks += 1;
        match data {
            Ok(d) => report.bytes += d.len() as u64,
            Err(e) => report.problems.push(e.to_string()),
        }
        Ok::<_, CatalogError>(())
    })
    .await;
    if let Err(e) = result {
        report.problems.push(e.to_string());
    }
    Ok(report)
}
