//! The catalog: which assets exist, their versions and aliases, and the
//! commit protocol that claims version numbers.
//!
//! Version `n` of an asset exists once `refs/<kind>/<name>/v/<n>` exists.
//! Writers claim it with create-if-absent; a writer that loses the race tries
//! the next number, so concurrent commits never overwrite each other. Alias
//! moves append a record `a/<alias>/<seq>` the same way; the highest sequence
//! wins. No compare-and-swap is needed, so every backend that honours
//! `If-None-Match: *` (or its equivalent) is a valid coordination point.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::to_hex;
use crate::manifest::{Manifest, ManifestError};
use crate::names::{validate_alias, AssetId, AssetName, Kind, NameError, Reference, Selector};
use crate::store::{keys, Store, StoreError};

pub const RECORD_FORMAT: u32 = 1;
const MAX_CLAIM_ATTEMPTS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("{0} has no versions")]
    NoVersions(AssetId),
    #[error("{asset}@{version} does not exist (latest is {latest})")]
    NoSuchVersion {
        asset: AssetId,
        version: u64,
        latest: String,
    },
    #[error("{asset} has no alias `{alias}`")]
    NoSuchAlias { asset: AssetId, alias: String },
    #[error("{0} names the staging working copy, which only a mount has; name a version, an alias or latest")]
    Staging(Reference),
    #[error("manifest {hash} is corrupt: {why}")]
    CorruptManifest { hash: String, why: String },
    #[error("version record {key} is corrupt: {why}")]
    CorruptRecord { key: String, why: String },
    #[error("gave up claiming a version of {0} after {MAX_CLAIM_ATTEMPTS} attempts")]
    ClaimExhausted(AssetId),
}

impl From<ManifestError> for CatalogError {
    fn from(e: ManifestError) -> Self {
        CatalogError::CorruptManifest {
            hash: "?".into(),
            why: e.to_string(),
        }
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The object at `refs/<kind>/<name>/v/<n>`: claims version `n`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub format: u32,
    pub version: u64,
    /// Hex BLAKE3 of the encoded manifest.
    pub manifest: String,
    /// The version this one follows in the asset's history (`n - 1`).
    pub parent: Option<u64>,
    /// The version metadata, duplicated from the manifest so that `log` and
    /// `show` need not load a large manifest.
    pub meta: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AliasRecord {
    version: u64,
    created: String,
}

#[derive(Clone, Debug)]
pub struct Catalog {
    store: Store,
}

impl Catalog {
    pub fn new(store: Store) -> Catalog {
        Catalog { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Asset names of one kind, sorted.
    pub async fn assets(&self, kind: Kind) -> Result<Vec<AssetName>> {
        let mut names: Vec<AssetName> = self
            .store
            .list_dirs(&keys::kind_dir(kind))
            .await?
            .iter()
            // Keys not written by assetfs are ignored rather than fatal.
            .filter_map(|n| AssetName::parse(n).ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// All committed version numbers of an asset, ascending.
    pub async fn versions(&self, asset: &AssetId) -> Result<Vec<u64>> {
        let mut vs: Vec<u64> = self
            .store
            .list(&keys::versions_dir(asset))
            .await?
            .iter()
            .filter_map(|(k, _)| k.rsplit('/').next()?.parse().ok())
            .filter(|v| *v > 0)
            .collect();
        vs.sort_unstable();
        Ok(vs)
    }

    pub async fn latest(&self, asset: &AssetId) -> Result<Option<u64>> {
        Ok(self.versions(asset).await?.last().copied())
    }

    pub async fn record(&self, asset: &AssetId, version: u64) -> Result<VersionRecord> {
        let key = keys::version(asset, version);
        let bytes = match self.store.get(&key).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => {
                let latest = match self.latest(asset).await? {
                    Some(v) => v.to_string(),
                    None => "none: the asset has no versions".to_string(),
                };
                return Err(CatalogError::NoSuchVersion {
                    asset: asset.clone(),
                    version,
                    latest,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let rec: VersionRecord =
            serde_json::from_slice(&bytes).map_err(|e| CatalogError::CorruptRecord {
                key: key.clone(),
                why: e.to_string(),
            })?;
        if rec.version != version || rec.manifest.len() != 64 {
            return Err(CatalogError::CorruptRecord {
                key,
                why: "version number or manifest hash does not match its key".into(),
            });
        }
        Ok(rec)
    }

    /// Loads a manifest and checks its bytes against the hash it is named by.
    pub async fn manifest(&self, hash: &str) -> Result<Manifest> {
        let bytes = self.store.get(&keys::manifest(hash)).await?;
        let actual = to_hex(blake3::hash(&bytes).as_bytes());
        if actual != hash {
            return Err(CatalogError::CorruptManifest {
                hash: hash.to_string(),
                why: format!("its bytes hash to {actual}"),
            });
        }
        Manifest::decode(&bytes).map_err(|e| CatalogError::CorruptManifest {
            hash: hash.to_string(),
            why: e.to_string(),
        })
    }

    /// Current alias targets, by alias name.
    pub async fn aliases(&self, asset: &AssetId) -> Result<BTreeMap<String, u64>> {
        let mut newest: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for (key, _) in self.store.list(&keys::aliases_dir(asset)).await? {
            let mut parts = key.rsplit('/');
            let (Some(seq), Some(alias)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(seq) = seq.parse::<u64>() else {
                continue;
            };
            if validate_alias(alias).is_err() {
                continue;
            }
            if newest.get(alias).is_none_or(|(s, _)| seq > *s) {
                newest.insert(alias.to_string(), (seq, key));
            }
        }
        let mut out = BTreeMap::new();
        for (alias, (_, key)) in newest {
            let bytes = self.store.get(&key).await?;
            let rec: AliasRecord =
                serde_json::from_slice(&bytes).map_err(|e| CatalogError::CorruptRecord {
                    key: key.clone(),
                    why: e.to_string(),
                })?;
            out.insert(alias, rec.version);
        }
        Ok(out)
    }

    /// Resolves a reference to a concrete version number.
    pub async fn resolve(&self, r: &Reference) -> Result<u64> {
        match &r.selector {
            Selector::Version(v) => {
                // Existence check, with the "latest is" hint on failure.
                self.record(&r.asset, *v).await?;
                Ok(*v)
            }
            Selector::Latest => self
                .latest(&r.asset)
                .await?
                .ok_or_else(|| CatalogError::NoVersions(r.asset.clone())),
            Selector::Alias(a) => self
                .aliases(&r.asset)
                .await?
                .get(a)
                .copied()
                .ok_or_else(|| CatalogError::NoSuchAlias {
                    asset: r.asset.clone(),
                    alias: a.clone(),
                }),
            Selector::Staging => Err(CatalogError::Staging(r.clone())),
        }
    }

    /// Stores a manifest under its hash and returns the hash.
    pub async fn put_manifest(&self, m: &Manifest) -> Result<String> {
        let bytes = m.encode();
        let hash = to_hex(blake3::hash(&bytes).as_bytes());
        self.store
            .put(&keys::manifest(&hash), Bytes::from(bytes))
            .await?;
        Ok(hash)
    }

    /// Claims the next free version number for an already-stored manifest.
    /// This is the commit point: before it nothing is visible, after it the
    /// whole version is.
    pub async fn claim_version(
        &self,
        asset: &AssetId,
        manifest_hash: &str,
        meta: &Map<String, Value>,
    ) -> Result<u64> {
        let mut next = self.latest(asset).await?.unwrap_or(0) + 1;
        for attempt in 0..MAX_CLAIM_ATTEMPTS {
            let rec = VersionRecord {
                format: RECORD_FORMAT,
                version: next,
                manifest: manifest_hash.to_string(),
                parent: (next > 1).then(|| next - 1),
                meta: meta.clone(),
            };
            let body = serde_json::to_vec_pretty(&rec).expect("record serialises");
            if self
                .store
                .put_if_absent(&keys::version(asset, next), Bytes::from(body))
                .await?
            {
                tracing::debug!(%asset, version = next, attempt, "claimed version");
                return Ok(next);
            }
            // Lost the race: jump past whatever has been claimed meanwhile.
            let latest = self.latest(asset).await?.unwrap_or(0);
            next = (next + 1).max(latest + 1);
        }
        Err(CatalogError::ClaimExhausted(asset.clone()))
    }

    /// Points `alias` at `version` (which must exist).
    pub async fn set_alias(&self, asset: &AssetId, alias: &str, version: u64) -> Result<()> {
        validate_alias(alias)?;
        self.record(asset, version).await?;
        let prefix = format!("{}/{alias}", keys::aliases_dir(asset));
        let mut seq = self
            .store
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|(k, _)| k.rsplit('/').next()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let rec = AliasRecord {
            version,
            created: crate::meta::now_rfc3339(),
        };
        let body = Bytes::from(serde_json::to_vec(&rec).expect("alias record serialises"));
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            if self
                .store
                .put_if_absent(&keys::alias(asset, alias, seq), body.clone())
                .await?
            {
                return Ok(());
            }
            seq += 1;
        }
        Err(CatalogError::ClaimExhausted(asset.clone()))
    }

    /// The sidecar JSON of a version (DESIGN.md section 3).
    pub async fn sidecar(&self, asset: &AssetId, version: u64) -> Result<Value> {
        let rec = self.record(asset, version).await?;
        let aliases: Vec<String> = self
            .aliases(asset)
            .await?
            .into_iter()
            .filter(|(_, v)| *v == version)
            .map(|(a, _)| a)
            .collect();
        let latest = self.latest(asset).await?;
        Ok(crate::meta::sidecar(
            asset,
            &rec,
            aliases,
            latest == Some(version),
        ))
    }
}
