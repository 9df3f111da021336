//! The sidecar of a version: the JSON that `show --json` prints and a mount
//! serves as `<name>@<v>.json` (docs/usage.md). Built here only: the catalog
//! adds what it knows of deletions, the mount serves the pretty bytes.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::catalog::versions::{AssetKeys, Catalog, Result, VersionRecord};
use crate::format::AssetId;

/// Sections with a defined shape, kept in this order in the sidecar.
const SECTIONS: &[&str] = &["lineage", "context", "metrics", "tests", "user"];

/// Assembles the sidecar: computed fields first, then the sections, then
/// anything unknown, verbatim. `aliases` are those pointing at this version
/// (see [`aliases_at`]); `latest` puts `latest` first among them.
pub fn sidecar(asset: &AssetId, rec: &VersionRecord, aliases: Vec<String>, latest: bool) -> Value {
    let meta = &rec.meta;
    let mut out = Map::new();
    let get = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    out.insert("asset".into(), asset.to_string().into());
    out.insert("version".into(), rec.version.into());
    out.insert("ref".into(), format!("{}@{}", asset, rec.version).into());
    out.insert("created".into(), get("created"));
    out.insert("author".into(), get("author"));
    out.insert("message".into(), get("message"));
    out.insert(
        "parent".into(),
        rec.parent.map(Value::from).unwrap_or(Value::Null),
    );
    // A staging commit records the version it started from; with another
    // node's commit in between, `base` differs from `parent`.
    if let Some(base) = meta.get("base") {
        out.insert("base".into(), base.clone());
    }
    out.insert("manifest".into(), rec.manifest.clone().into());
    out.insert("file_count".into(), get("file_count"));
    out.insert("total_bytes".into(), get("total_bytes"));
    let mut all_aliases = aliases;
    if latest {
        all_aliases.insert(0, "latest".into());
    }
    out.insert(
        "aliases".into(),
        Value::Array(all_aliases.into_iter().map(Value::String).collect()),
    );
    for s in SECTIONS {
        out.insert((*s).into(), get(s));
    }
    for (k, v) in meta {
        if !out.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// The aliases (of an alias -> version map) that point at version `v`, in
/// name order.
pub fn aliases_at(aliases: &BTreeMap<String, u64>, v: u64) -> Vec<String> {
    aliases
        .iter()
        .filter(|(_, t)| **t == v)
        .map(|(a, _)| a.clone())
        .collect()
}

/// The sidecar as a file: pretty JSON and a final newline.
pub fn sidecar_bytes(side: &Value) -> Bytes {
    let mut text = serde_json::to_vec_pretty(side).expect("sidecar serialises");
    text.push(b'\n');
    Bytes::from(text)
}

impl Catalog {
    /// The sidecar JSON of a version. A deleted version's sidecar (for
    /// `log --all`) carries `deleted: {by, at, message}`.
    pub async fn sidecar(&self, asset: &AssetId, version: u64) -> Result<Value> {
        let k = self.asset_keys(asset).await?;
        self.sidecar_with(asset, version, &k).await
    }

    /// [`Catalog::sidecar`] from an existing listing of the asset.
    pub async fn sidecar_with(
        &self,
        asset: &AssetId,
        version: u64,
        k: &AssetKeys,
    ) -> Result<Value> {
        let rec = self.record(asset, version).await?;
        let aliases = aliases_at(&self.aliases_of(k).await?, version);
        let mut side = sidecar(asset, &rec, aliases, k.latest_live() == Some(version));
        if k.deleted.contains(&version) {
            if let Some(d) = self.deletion(asset, version).await? {
                side["deleted"] =
                    serde_json::json!({"by": d.by, "at": d.deleted, "message": d.message});
            }
        }
        Ok(side)
    }
}
