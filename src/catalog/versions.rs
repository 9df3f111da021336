//! The catalog: which assets exist, their versions and aliases, and the
//! commit protocol that claims version numbers.
//!
//! Version `n` of an asset exists once `refs/<kind>/<name>/v/<n>` exists.
//! Writers claim it with create-if-absent; a writer that loses the race tries
//! the next number, so concurrent commits never overwrite each other. Alias
//! moves append a record `a/<alias>/<seq>` the same way; the highest sequence
//! wins. No compare-and-swap is needed, so every backend that honours
//! `If-None-Match: *` (or its equivalent) is a valid coordination point.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::format::keys;
use crate::format::to_hex;
use crate::format::{validate_alias, AssetId, AssetName, Kind, NameError, Reference, Selector};
use crate::format::{Manifest, ManifestError};
use crate::store::{Store, StoreError};

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
    CorruptManifest {
        hash: String,
        #[source]
        why: BadManifest,
    },
    #[error("version record {key} is corrupt: {why}")]
    CorruptRecord {
        key: String,
        #[source]
        why: BadRecord,
    },
    #[error("gave up claiming a version of {0} after {MAX_CLAIM_ATTEMPTS} attempts")]
    ClaimExhausted(AssetId),
    #[error("{asset}@{version} was deleted by {} at {}{}", d.by, d.deleted, if d.message.is_empty() { String::new() } else { format!(" ({})", d.message) })]
    Deleted {
        asset: AssetId,
        version: u64,
        d: Box<DeletionRecord>,
    },
    #[error("{asset}@{alias} points at version {version}, which was deleted by {} at {}; point the alias at a live version, or remove it with `assetfs alias --delete {asset} {alias}`", d.by, d.deleted)]
    AliasToDeleted {
        asset: AssetId,
        alias: String,
        version: u64,
        d: Box<DeletionRecord>,
    },
}

/// A version, alias or asset that does not exist (or was deleted) is ENOENT;
/// anything else the catalog fails at is an I/O error.
impl crate::store::ToErrno for CatalogError {
    fn errno(&self) -> libc::c_int {
        match self {
            CatalogError::NoSuchVersion { .. }
            | CatalogError::NoVersions(_)
            | CatalogError::NoSuchAlias { .. }
            | CatalogError::Deleted { .. }
            | CatalogError::AliasToDeleted { .. } => libc::ENOENT,
            _ => libc::EIO,
        }
    }
}

/// What is wrong with a stored manifest.
#[derive(Debug, thiserror::Error)]
pub enum BadManifest {
    #[error("its bytes hash to {0}")]
    Hash(String),
    #[error(transparent)]
    Decode(#[from] ManifestError),
}

/// What is wrong with a stored record.
#[derive(Debug, thiserror::Error)]
pub enum BadRecord {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("version number or manifest hash does not match its key")]
    KeyMismatch,
}

impl From<ManifestError> for CatalogError {
    fn from(e: ManifestError) -> Self {
        CatalogError::CorruptManifest {
            hash: "?".into(),
            why: e.into(),
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
    /// 0 in a removal record.
    version: u64,
    created: String,
    /// `alias --delete`: the alias has no target from this record on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

/// The object at `refs/<kind>/<name>/d/<n>`: version `n` is deleted. The
/// version record stays (its number is never reused, `log --all` shows it);
/// `gc` reclaims the data no live version shares.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeletionRecord {
    pub format: u32,
    pub version: u64,
    /// RFC 3339 UTC.
    pub deleted: String,
    pub by: String,
    #[serde(default)]
    pub message: String,
}

/// What one listing of an asset's keys says: claimed and deleted version
/// numbers and the newest record of each alias.
#[derive(Debug, Clone, Default)]
pub struct AssetKeys {
    /// Every claimed version number, live or deleted.
    pub claimed: BTreeSet<u64>,
    /// Versions with a deletion record.
    pub deleted: BTreeSet<u64>,
    /// Alias -> (highest sequence, its key).
    alias_heads: BTreeMap<String, (u64, String)>,
}

impl AssetKeys {
    /// Adds one key, given relative to the asset's directory. Keys not
    /// written by assetfs are ignored rather than fatal.
    fn add(&mut self, rest: &str, key: &str) {
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["v", n] => {
                if let Some(v) = n.parse::<u64>().ok().filter(|v| *v > 0) {
                    self.claimed.insert(v);
                }
            }
            ["d", n] => {
                if let Some(v) = n.parse::<u64>().ok().filter(|v| *v > 0) {
                    self.deleted.insert(v);
                }
            }
            ["a", alias, seq] => {
                let Ok(seq) = seq.parse::<u64>() else {
                    return;
                };
                if validate_alias(alias).is_err() {
                    return;
                }
                if self.alias_heads.get(*alias).is_none_or(|(s, _)| seq > *s) {
                    self.alias_heads
                        .insert(alias.to_string(), (seq, key.to_string()));
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        // A deletion record without its version record (hand-made) means nothing.
        let claimed = &self.claimed;
        self.deleted.retain(|v| claimed.contains(v));
    }

    /// Live versions, ascending.
    pub fn live(&self) -> Vec<u64> {
        self.claimed.difference(&self.deleted).copied().collect()
    }

    pub fn is_live(&self, v: u64) -> bool {
        self.claimed.contains(&v) && !self.deleted.contains(&v)
    }

    pub fn latest_live(&self) -> Option<u64> {
        self.claimed
            .iter()
            .rev()
            .find(|v| !self.deleted.contains(v))
            .copied()
    }

    /// The highest number ever claimed: new versions go above it, so a
    /// deleted version's number is never reused.
    pub fn max_claimed(&self) -> u64 {
        self.claimed.last().copied().unwrap_or(0)
    }

    fn latest_hint(&self) -> String {
        match self.latest_live() {
            Some(v) => v.to_string(),
            None if self.claimed.is_empty() => "none: the asset has no versions".to_string(),
            None => "none: every version was deleted".to_string(),
        }
    }
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

    /// One listing of everything the catalog keeps about an asset.
    pub async fn asset_keys(&self, asset: &AssetId) -> Result<AssetKeys> {
        let dir = keys::asset_dir(asset);
        let mut out = AssetKeys::default();
        for (key, _) in self.store.list(&dir).await? {
            if let Some(rest) = key.strip_prefix(&dir).and_then(|r| r.strip_prefix('/')) {
                out.add(rest, &key);
            }
        }
        out.finish();
        Ok(out)
    }

    /// Every asset's keys, from one recursive listing of `refs/` (gc).
    pub async fn all_asset_keys(&self) -> Result<BTreeMap<AssetId, AssetKeys>> {
        let mut out: BTreeMap<AssetId, AssetKeys> = BTreeMap::new();
        for (key, _) in self.store.list(keys::REFS).await? {
            let mut parts = key.splitn(4, '/');
            let (Some("refs"), Some(kind), Some(name), Some(rest)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(kind), Ok(name)) = (kind.parse::<Kind>(), AssetName::parse(name)) else {
                continue;
            };
            out.entry(AssetId { kind, name })
                .or_default()
                .add(rest, &key);
        }
        for k in out.values_mut() {
            k.finish();
        }
        Ok(out)
    }

    /// Live (not deleted) version numbers of an asset, ascending.
    pub async fn versions(&self, asset: &AssetId) -> Result<Vec<u64>> {
        Ok(self.asset_keys(asset).await?.live())
    }

    /// The newest live version.
    pub async fn latest(&self, asset: &AssetId) -> Result<Option<u64>> {
        Ok(self.asset_keys(asset).await?.latest_live())
    }

    /// The deletion record of a version, if it was deleted.
    pub async fn deletion(&self, asset: &AssetId, version: u64) -> Result<Option<DeletionRecord>> {
        let key = keys::deletion(asset, version);
        match self.store.get(&key).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| CatalogError::CorruptRecord { key, why: e.into() }),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn deleted_error(asset: &AssetId, d: DeletionRecord) -> CatalogError {
        CatalogError::Deleted {
            asset: asset.clone(),
            version: d.version,
            d: Box::new(d),
        }
    }

    /// Ok when `v` is a live version; otherwise why not (deleted by whom and
    /// when, or does not exist).
    async fn check_live(&self, asset: &AssetId, k: &AssetKeys, v: u64) -> Result<()> {
        if k.deleted.contains(&v) {
            return Err(match self.deletion(asset, v).await? {
                Some(d) => Self::deleted_error(asset, d),
                None => CatalogError::NoSuchVersion {
                    asset: asset.clone(),
                    version: v,
                    latest: k.latest_hint(),
                },
            });
        }
        if !k.claimed.contains(&v) {
            return Err(CatalogError::NoSuchVersion {
                asset: asset.clone(),
                version: v,
                latest: k.latest_hint(),
            });
        }
        Ok(())
    }

    /// Ok when `v` is a live version of `asset` (see [`CatalogError::Deleted`]).
    pub async fn ensure_live(&self, asset: &AssetId, v: u64) -> Result<()> {
        let k = self.asset_keys(asset).await?;
        self.check_live(asset, &k, v).await
    }

    /// A version record, live or deleted (its metadata stays for `log --all`).
    pub async fn record(&self, asset: &AssetId, version: u64) -> Result<VersionRecord> {
        let key = keys::version(asset, version);
        let bytes = match self.store.get(&key).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => {
                let k = self.asset_keys(asset).await?;
                return Err(CatalogError::NoSuchVersion {
                    asset: asset.clone(),
                    version,
                    latest: k.latest_hint(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let rec: VersionRecord =
            serde_json::from_slice(&bytes).map_err(|e| CatalogError::CorruptRecord {
                key: key.clone(),
                why: e.into(),
            })?;
        if rec.version != version || rec.manifest.len() != 64 {
            return Err(CatalogError::CorruptRecord {
                key,
                why: BadRecord::KeyMismatch,
            });
        }
        Ok(rec)
    }

    /// Loads a manifest and checks its bytes against the hash it is named by.
    pub async fn manifest(&self, hash: &str) -> Result<Manifest> {
        let bytes = self.manifest_bytes(hash).await?;
        decode_manifest(hash, &bytes)
    }

    /// A manifest's encoded bytes, checked against its hash (not decoded).
    pub async fn manifest_bytes(&self, hash: &str) -> Result<bytes::Bytes> {
        let bytes = self.store.get(&keys::manifest(hash)).await?;
        let actual = to_hex(blake3::hash(&bytes).as_bytes());
        if actual != hash {
            return Err(CatalogError::CorruptManifest {
                hash: hash.to_string(),
                why: BadManifest::Hash(actual),
            });
        }
        Ok(bytes)
    }

    /// Current alias targets, by alias name. An alias can point at a
    /// version deleted with `rm --force`; [`AssetKeys::is_live`] tells.
    pub async fn aliases(&self, asset: &AssetId) -> Result<BTreeMap<String, u64>> {
        let k = self.asset_keys(asset).await?;
        self.aliases_of(&k).await
    }

    /// Alias targets from an existing listing (one GET per alias).
    pub async fn aliases_of(&self, k: &AssetKeys) -> Result<BTreeMap<String, u64>> {
        let reads = k.alias_heads.iter().map(|(alias, (_, key))| async move {
            let bytes = self.store.get(key).await?;
            let rec: AliasRecord =
                serde_json::from_slice(&bytes).map_err(|e| CatalogError::CorruptRecord {
                    key: key.clone(),
                    why: e.into(),
                })?;
            Ok::<_, CatalogError>((alias.clone(), rec))
        });
        let mut out = BTreeMap::new();
        for (alias, rec) in futures::future::try_join_all(reads).await? {
            if !rec.deleted {
                out.insert(alias, rec.version);
            }
        }
        Ok(out)
    }

    /// Resolves a reference to a concrete, live version number.
    pub async fn resolve(&self, r: &Reference) -> Result<u64> {
        match &r.selector {
            Selector::Version(v) => {
                let k = self.asset_keys(&r.asset).await?;
                self.check_live(&r.asset, &k, *v).await?;
                Ok(*v)
            }
            Selector::Latest => self
                .latest(&r.asset)
                .await?
                .ok_or_else(|| CatalogError::NoVersions(r.asset.clone())),
            Selector::Alias(a) => {
                let k = self.asset_keys(&r.asset).await?;
                let v = self.aliases_of(&k).await?.get(a).copied().ok_or_else(|| {
                    CatalogError::NoSuchAlias {
                        asset: r.asset.clone(),
                        alias: a.clone(),
                    }
                })?;
                match self.check_live(&r.asset, &k, v).await {
                    Err(CatalogError::Deleted { d, .. }) => Err(CatalogError::AliasToDeleted {
                        asset: r.asset.clone(),
                        alias: a.clone(),
                        version: v,
                        d,
                    }),
                    other => other.map(|()| v),
                }
            }
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
        Ok(self
            .claim_version_counted(asset, manifest_hash, meta)
            .await?
            .0)
    }

    /// [`Catalog::claim_version`], also returning how many claims were lost
    /// to other writers first (evidence of a race, for tests and `--json`).
    pub async fn claim_version_counted(
        &self,
        asset: &AssetId,
        manifest_hash: &str,
        meta: &Map<String, Value>,
    ) -> Result<(u64, u32)> {
        let mut k = self.asset_keys(asset).await?;
        // Above every number ever claimed, deleted ones included: a number is never reused.
        let mut next = k.max_claimed() + 1;
        for attempt in 0..MAX_CLAIM_ATTEMPTS {
            let rec = VersionRecord {
                format: RECORD_FORMAT,
                version: next,
                manifest: manifest_hash.to_string(),
                // The newest live version below it: what this one follows.
                parent: k
                    .claimed
                    .range(..next)
                    .rev()
                    .find(|v| !k.deleted.contains(v))
                    .copied(),
                meta: meta.clone(),
            };
            let body = serde_json::to_vec_pretty(&rec).expect("record serialises");
            if self
                .store
                .put_if_absent(&keys::version(asset, next), Bytes::from(body))
                .await?
            {
                tracing::debug!(%asset, version = next, attempt, "claimed version");
                return Ok((next, attempt as u32));
            }
            // Lost the race: jump past whatever has been claimed meanwhile.
            k = self.asset_keys(asset).await?;
            next = (next + 1).max(k.max_claimed() + 1);
        }
        Err(CatalogError::ClaimExhausted(asset.clone()))
    }

    /// Appends the next record of an alias (create-if-absent, highest wins).
    async fn append_alias(
        &self,
        asset: &AssetId,
        alias: &str,
        k: &AssetKeys,
        rec: &AliasRecord,
    ) -> Result<()> {
        let first = k.alias_heads.get(alias).map(|(s, _)| *s).unwrap_or(0) + 1;
        let body = Bytes::from(serde_json::to_vec(rec).expect("alias record serialises"));
        for seq in first..first + MAX_CLAIM_ATTEMPTS as u64 {
            if self
                .store
                .put_if_absent(&keys::alias(asset, alias, seq), body.clone())
                .await?
            {
                return Ok(());
            }
        }
        Err(CatalogError::ClaimExhausted(asset.clone()))
    }

    /// Points `alias` at `version` (which must be live).
    pub async fn set_alias(&self, asset: &AssetId, alias: &str, version: u64) -> Result<()> {
        validate_alias(alias)?;
        let k = self.asset_keys(asset).await?;
        self.check_live(asset, &k, version).await?;
        let rec = AliasRecord {
            version,
            created: crate::format::now_rfc3339(),
            deleted: false,
        };
        self.append_alias(asset, alias, &k, &rec).await
    }

    /// Removes a user alias; returns the version it pointed at.
    pub async fn delete_alias(&self, asset: &AssetId, alias: &str) -> Result<u64> {
        validate_alias(alias)?;
        let k = self.asset_keys(asset).await?;
        let target = self
            .aliases_of(&k)
            .await?
            .get(alias)
            .copied()
            .ok_or_else(|| CatalogError::NoSuchAlias {
                asset: asset.clone(),
                alias: alias.to_string(),
            })?;
        let rec = AliasRecord {
            version: 0,
            created: crate::format::now_rfc3339(),
            deleted: true,
        };
        self.append_alias(asset, alias, &k, &rec).await?;
        Ok(target)
    }

    /// Marks a version deleted (create-if-absent, so a second delete fails
    /// with [`CatalogError::Deleted`] naming the first). Policy checks
    /// (lineage, aliases) are the caller's: see `crate::ops::remove`.
    pub async fn delete_version(
        &self,
        asset: &AssetId,
        version: u64,
        by: &str,
        message: &str,
    ) -> Result<DeletionRecord> {
        let k = self.asset_keys(asset).await?;
        self.check_live(asset, &k, version).await?;
        let rec = DeletionRecord {
            format: RECORD_FORMAT,
            version,
            deleted: crate::format::now_rfc3339(),
            by: by.to_string(),
            message: message.to_string(),
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&rec).expect("record serialises"));
        if self
            .store
            .put_if_absent(&keys::deletion(asset, version), body)
            .await?
        {
            return Ok(rec);
        }
        // Someone else deleted it first: name them.
        Err(match self.deletion(asset, version).await? {
            Some(d) => Self::deleted_error(asset, d),
            None => CatalogError::NoSuchVersion {
                asset: asset.clone(),
                version,
                latest: k.latest_hint(),
            },
        })
    }
}

/// Decodes manifest bytes already checked against `hash`.
pub fn decode_manifest(hash: &str, bytes: &[u8]) -> Result<Manifest> {
    Manifest::decode(bytes).map_err(|e| CatalogError::CorruptManifest {
        hash: hash.to_string(),
        why: e.into(),
    })
}
