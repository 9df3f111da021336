//! `diff`: what changed between two versions, in files and in metadata.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::catalog::{Catalog, CatalogError};
use crate::format::Reference;
use crate::format::{Entry, EntryKind, Manifest};

/// Sidecar fields that differ between any two versions by construction.
const IGNORED: &[&str] = &["version", "ref", "manifest", "parent", "created", "aliases"];
/// Sections compared key by key, so a changed metric shows as `metrics.acc`.
const NESTED: &[&str] = &["metrics", "context", "user", "lineage"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileChange {
    pub path: String,
    /// `added`, `removed`, `modified`, `mode` (permissions only) or `type`.
    pub change: &'static str,
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetaChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
    /// new - old, when both are numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub from: String,
    pub to: String,
    pub files: Vec<FileChange>,
    pub meta: Vec<MetaChange>,
}

pub async fn diff(catalog: &Catalog, a: &Reference, b: &Reference) -> Result<Diff, CatalogError> {
    let va = catalog.resolve(a).await?;
    let vb = catalog.resolve(b).await?;
    let (ra, rb) = (
        catalog.record(&a.asset, va).await?,
        catalog.record(&b.asset, vb).await?,
    );
    let (ma, mb) = (
        catalog.manifest(&ra.manifest).await?,
        catalog.manifest(&rb.manifest).await?,
    );
    let (sa, sb) = (
        catalog.sidecar(&a.asset, va).await?,
        catalog.sidecar(&b.asset, vb).await?,
    );
    Ok(Diff {
        from: a.asset.at(va).to_string(),
        to: b.asset.at(vb).to_string(),
        files: diff_files(&ma, &mb),
        meta: diff_meta(&sa, &sb),
    })
}

pub fn diff_files(a: &Manifest, b: &Manifest) -> Vec<FileChange> {
    let mut out = vec![];
    let (mut i, mut j) = (0, 0);
    let change =
        |path: &str, change, old: Option<&Entry<'_>>, new: Option<&Entry<'_>>| FileChange {
            path: path.to_string(),
            change,
            old_size: old.map(|e| e.size),
            new_size: new.map(|e| e.size),
        };
    // Both entry lists are sorted by path: a merge walk.
    while i < a.len() || j < b.len() {
        let ea = a.get_entry(i);
        let eb = b.get_entry(j);
        match (ea.as_ref(), eb.as_ref()) {
            (Some(x), Some(y)) if x.path == y.path => {
                let what = if x.kind != y.kind {
                    Some("type")
                } else if x.kind == EntryKind::File && !crate::format::same_content(a, x, b, y)
                    || x.kind == EntryKind::Symlink && x.target != y.target
                {
                    Some("modified")
                } else if x.mode != y.mode {
                    Some("mode")
                } else {
                    None
                };
                if let Some(w) = what {
                    out.push(change(x.path, w, Some(x), Some(y)));
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.path < y.path => {
                out.push(change(x.path, "removed", Some(x), None));
                i += 1;
            }
            (Some(x), None) => {
                out.push(change(x.path, "removed", Some(x), None));
                i += 1;
            }
            (_, Some(y)) => {
                out.push(change(y.path, "added", None, Some(y)));
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    out
}

pub fn diff_meta(a: &Value, b: &Value) -> Vec<MetaChange> {
    let mut out = vec![];
    let keys: BTreeSet<&String> = a
        .as_object()
        .into_iter()
        .chain(b.as_object())
        .flat_map(|m| m.keys())
        .collect();
    for k in keys {
        if IGNORED.contains(&k.as_str()) {
            continue;
        }
        let (x, y) = (&a[k], &b[k]);
        if k == "schema" && (x.is_object() || y.is_object()) {
            // Feature schema summaries: one change per file.
            out.extend(
                diff_meta_flat(&x["files"], &y["files"])
                    .into_iter()
                    .map(|mut c| {
                        c.field = format!("schema.files.{}", c.field);
                        c
                    }),
            );
            if x["truncated"] != y["truncated"] {
                out.push(meta_change(
                    "schema.truncated",
                    &x["truncated"],
                    &y["truncated"],
                ));
            }
        } else if NESTED.contains(&k.as_str()) && (x.is_object() || y.is_object()) {
            out.extend(diff_meta_flat(x, y).into_iter().map(|mut c| {
                c.field = format!("{k}.{}", c.field);
                c
            }));
        } else if x != y {
            out.push(meta_change(k, x, y));
        }
    }
    out
}

fn diff_meta_flat(a: &Value, b: &Value) -> Vec<MetaChange> {
    let keys: BTreeSet<&String> = a
        .as_object()
        .into_iter()
        .chain(b.as_object())
        .flat_map(|m| m.keys())
        .collect();
    keys.into_iter()
        .filter(|k| a[*k] != b[*k])
        .map(|k| meta_change(k, &a[k], &b[k]))
        .collect()
}

fn meta_change(k: &str, x: &Value, y: &Value) -> MetaChange {
    MetaChange {
        field: k.to_string(),
        old: x.clone(),
        new: y.clone(),
        delta: match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => Some(tidy(q - p)),
            _ => None,
        },
    }
}

/// A difference of two decimals without binary noise: 0.95 - 0.9 is 0.05,
/// not 0.04999999999999993 (rounded to 12 significant digits).
fn tidy(d: f64) -> f64 {
    if d == 0.0 || !d.is_finite() {
        return d;
    }
    let scale = 10f64.powi(11 - d.abs().log10().floor() as i32);
    if !scale.is_finite() || scale == 0.0 {
        return d;
    }
    (d * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ChunkLocation, ManifestBuilder};
    use serde_json::json;

    fn m(files: &[(&str, u8, u32)]) -> Manifest {
        let mut b = ManifestBuilder::default();
        for (p, h, mode) in files {
            let loc = ChunkLocation {
                pack: [0; 16],
                offset: 0,
                len: 1,
            };
            b.add_file(p, *mode, 1, &[([*h; 32], loc)]);
        }
        b.finish("{}".into())
    }

    #[test]
    fn files() {
        let a = m(&[("a", 1, 0o644), ("b", 2, 0o644), ("c", 3, 0o644)]);
        let b = m(&[("b", 9, 0o644), ("c", 3, 0o755), ("d", 4, 0o644)]);
        let d: Vec<_> = diff_files(&a, &b)
            .into_iter()
            .map(|c| (c.path, c.change))
            .collect();
        assert_eq!(
            d,
            vec![
                ("a".into(), "removed"),
                ("b".into(), "modified"),
                ("c".into(), "mode"),
                ("d".into(), "added")
            ]
        );
    }

    #[test]
    fn meta() {
        let a = json!({"message": "x", "metrics": {"acc": 0.5, "loss": 1}, "version": 1});
        let b = json!({"message": "y", "metrics": {"acc": 0.75, "loss": 1}, "version": 2});
        let d = diff_meta(&a, &b);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].field, "message");
        assert_eq!(d[1].field, "metrics.acc");
        assert_eq!(d[1].delta, Some(0.25));
        let a = json!({"metrics": {"acc": 0.9}, "schema": {"files": {"a.csv": {"rows": 1}, "b.npy": {"rows": 2}}}});
        let b = json!({"metrics": {"acc": 0.95}, "schema": {"files": {"a.csv": {"rows": 3}, "b.npy": {"rows": 2}}}});
        let d = diff_meta(&a, &b);
        assert_eq!(d[0].delta, Some(0.05));
        assert_eq!(d[1].field, "schema.files.a.csv");
        assert_eq!(d.len(), 2);
    }
}
