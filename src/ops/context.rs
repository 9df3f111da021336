//! Capturing the context of a version (see `docs/usage.md`) from the command
//! line, and the checks that need the directory being committed.
//!
//! [`ContextOptions`] are the flags `push` (and `commit`) share; the binary
//! parses them. They are merged into [`MetaInput`] on top of `--meta-file`
//! (flags win over a `--context-file`, which wins over the meta file's
//! `context`):
//!
//! | flag | stored in |
//! | --- | --- |
//! | `--context-file F` (JSON or TOML object) | `context.*` |
//! | `--framework`, `--command`, `--paper URL` | `context.framework`, `.command`, `.paper` |
//! | `--container IMAGE@sha256:<64 hex>` | `context.container` |
//! | `--log PATH` (a file inside the version) | `context.log` |
//! | `--metric NAME=NUMBER`, `--metrics-file F` | `metrics.NAME` |
//! | `--source TEXT` | `lineage.source` |
//! | `--tests-file F` (JSON array) | appended to `tests` |
//!
//! [`check_tree`] runs in the shared commit path (`push` and `commit`)
//! before anything is uploaded: it validates `context.container`,
//! `context.paper`, `context.log` and the stored tests against the tree being
//! committed, and for a feature snapshot adds the `schema` summary (see
//! [`crate::ops::schema`]).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Number, Value};

use crate::catalog::Catalog;
use crate::format::ChunkLocation;
use crate::format::TreeItem;
use crate::format::{fetch_located, FetchError};
use crate::format::{to_hex, Hash};
use crate::format::{AssetId, Kind};
use crate::ops::metadata::MetaInput;
use crate::ops::stored_tests::SpecError;
use crate::store::StoreError;

#[derive(Debug, Clone, Default)]
pub struct ContextOptions {
    /// JSON or TOML object of context fields (framework, command, paper, container, log, notes, ...)
    pub context_file: Option<PathBuf>,
    /// Framework and version, e.g. "pytorch 2.3"
    pub framework: Option<String>,
    /// How to run or reproduce this version, e.g. "python train.py --epochs 3"
    pub command: Option<String>,
    /// Paper or project link
    pub paper: Option<String>,
    /// Container image pinned by digest: IMAGE@sha256:<64 hex digits>
    pub container: Option<String>,
    /// The training log: a file inside the version being committed
    pub log: Option<String>,
    /// A metric, stored under `metrics` (repeatable)
    pub metrics: Vec<String>,
    /// JSON object of metric names to numbers
    pub metrics_file: Option<PathBuf>,
    /// How the data was chosen (for feature snapshots), stored in `lineage.source`
    pub source: Option<String>,
    /// JSON array of stored input/output tests (see `assetfs test`)
    pub tests_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{flag} {path}: {why}")]
    File {
        flag: &'static str,
        path: String,
        why: String,
    },
    #[error("--metric {0:?}: expected NAME=NUMBER with a finite number")]
    Metric(String),
    #[error("container {0:?}: expected IMAGE@sha256:<64 hex digits>, an image pinned by digest (a tag can move)")]
    Container(String),
    #[error("paper link {0:?}: expected an absolute URL, e.g. https://arxiv.org/abs/...")]
    Paper(String),
    #[error("training log {path:?}: {why}")]
    Log { path: String, why: String },
    #[error("metadata field `{field}` must be {expected}")]
    Shape {
        field: &'static str,
        expected: &'static str,
    },
    #[error(
        "metadata field `schema` is computed by assetfs for feature snapshots and cannot be set"
    )]
    SchemaReserved,
    #[error(transparent)]
    Tests(#[from] SpecError),
    #[error("temporary file for a schema summary: {0}")]
    Temp(#[source] std::io::Error),
    #[error("chunk {0} read for a schema summary is corrupt")]
    Chunk(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ContextOptions {
    /// Merges the flags into the metadata.
    pub fn apply(&self, meta: &mut MetaInput) -> Result<(), ContextError> {
        let mut context = take_object(meta, "context", "a JSON object")?;
        if let Some(p) = &self.context_file {
            for (k, v) in read_object(p, "--context-file")? {
                context.insert(k, v);
            }
        }
        for (k, v) in [
            ("framework", &self.framework),
            ("command", &self.command),
            ("paper", &self.paper),
            ("container", &self.container),
            ("log", &self.log),
        ] {
            if let Some(v) = v {
                context.insert(k.into(), v.clone().into());
            }
        }
        if !context.is_empty() || meta.fields.contains_key("context") {
            meta.fields.insert("context".into(), Value::Object(context));
        }

        let mut metrics = take_object(meta, "metrics", "an object of numbers")?;
        if let Some(p) = &self.metrics_file {
            for (k, v) in read_object(p, "--metrics-file")? {
                if !v.is_number() {
                    return Err(ContextError::File {
                        flag: "--metrics-file",
                        path: p.display().to_string(),
                        why: format!("metric {k:?} is not a number"),
                    });
                }
                metrics.insert(k, v);
            }
        }
        for m in &self.metrics {
            let (k, v) = parse_metric(m)?;
            metrics.insert(k, v);
        }
        if !metrics.is_empty() || meta.fields.contains_key("metrics") {
            meta.fields.insert("metrics".into(), Value::Object(metrics));
        }

        if let Some(s) = &self.source {
            let mut lineage = take_object(meta, "lineage", "a JSON object")?;
            lineage.insert("source".into(), s.clone().into());
            meta.fields.insert("lineage".into(), Value::Object(lineage));
        }

        if let Some(p) = &self.tests_file {
            let file_err = |why: String| ContextError::File {
                flag: "--tests-file",
                path: p.display().to_string(),
                why,
            };
            let text = std::fs::read_to_string(p).map_err(|e| file_err(e.to_string()))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))?;
            let Value::Array(new) = v else {
                return Err(file_err("expected a JSON array of tests".into()));
            };
            let mut tests = match meta.fields.remove("tests") {
                None => vec![],
                Some(Value::Array(a)) => a,
                Some(_) => {
                    return Err(ContextError::Shape {
                        field: "tests",
                        expected: "a JSON array",
                    })
                }
            };
            tests.extend(new);
            meta.fields.insert("tests".into(), Value::Array(tests));
        }
        Ok(())
    }
}

/// Removes `field` from the metadata and returns it as an object (empty when
/// absent).
fn take_object(
    meta: &mut MetaInput,
    field: &'static str,
    expected: &'static str,
) -> Result<Map<String, Value>, ContextError> {
    match meta.fields.get(field) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ContextError::Shape { field, expected }),
    }
}

/// `NAME=NUMBER`.
pub fn parse_metric(s: &str) -> Result<(String, Value), ContextError> {
    let bad = || ContextError::Metric(s.to_string());
    let (k, v) = s.split_once('=').ok_or_else(bad)?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() {
        return Err(bad());
    }
    let n = match serde_json::from_str::<Number>(v) {
        Ok(n) => n,
        Err(_) => v
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(bad)?,
    };
    Ok((k.to_string(), Value::Number(n)))
}

/// A JSON or TOML file holding an object: TOML for `.toml`, JSON for
/// `.json`, otherwise whichever parses.
fn read_object(path: &Path, flag: &'static str) -> Result<Map<String, Value>, ContextError> {
    let err = |why: String| ContextError::File {
        flag,
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let from_toml = |text: &str| -> Result<Value, String> {
        let t: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
        toml_to_json(toml::Value::Table(t))
    };
    let v = match ext.as_deref() {
        Some("toml") => from_toml(&text).map_err(|e| err(format!("not valid TOML: {e}")))?,
        Some("json") => {
            serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?
        }
        _ => match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(json_err) => {
                from_toml(&text).map_err(|_| err(format!("neither JSON ({json_err}) nor TOML")))?
            }
        },
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(err("expected an object".into())),
    }
}

fn toml_to_json(v: toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} cannot be stored in JSON"))?,
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => {
            Value::Array(a.into_iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => Value::Object(
            t.into_iter()
                .map(|(k, v)| Ok((k, toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// `IMAGE@sha256:<64 lowercase hex>`.
pub fn check_container(s: &str) -> Result<(), ContextError> {
    let ok = s.rsplit_once("@sha256:").is_some_and(|(image, digest)| {
        !image.is_empty()
            && !image.chars().any(char::is_whitespace)
            && digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(ContextError::Container(s.to_string()))
    }
}

pub fn check_paper(s: &str) -> Result<(), ContextError> {
    match url::Url::parse(s) {
        Ok(u) if u.has_host() || u.scheme() == "doi" => Ok(()),
        _ => Err(ContextError::Paper(s.to_string())),
    }
}

/// A path inside a version as the manifest spells it (`./a//b` -> `a/b`).
pub fn normalise(p: &str) -> String {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The checks that need the tree being committed, run before anything is
/// uploaded: `context.container`, `context.paper` and `context.log` (a file
/// of the tree), and the stored tests (their files are in the tree). For a
/// feature snapshot it adds the `schema` summary: local files are read where
/// they are; a file carried over unchanged from the `base` version reuses
/// that version's summary, or is fetched from the store to be summarised.
pub async fn check_tree(
    meta: &mut MetaInput,
    catalog: &Catalog,
    asset: &AssetId,
    items: &[TreeItem],
    base: Option<u64>,
) -> Result<(), ContextError> {
    let files: BTreeSet<&str> = items
        .iter()
        .filter_map(|i| match i {
            TreeItem::Local { path, .. } | TreeItem::Stored { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    if let Some(Value::Object(ctx)) = meta.fields.get_mut("context") {
        match ctx.get("container") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => check_container(s)?,
            Some(other) => return Err(ContextError::Container(other.to_string())),
        }
        match ctx.get("paper") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => check_paper(s)?,
            Some(other) => return Err(ContextError::Paper(other.to_string())),
        }
        match ctx.get("log") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                let err = |why: &str| ContextError::Log {
                    path: s.clone(),
                    why: why.to_string(),
                };
                crate::ops::stored_tests::check_rel_path(s).map_err(|e| err(&e))?;
                let rel = normalise(s);
                if !files.contains(rel.as_str()) {
                    return Err(err(
                        "not a file in the version being committed; give its path \
                         relative to the version root, e.g. logs/train.log",
                    ));
                }
                ctx.insert("log".into(), rel.into());
            }
            Some(other) => {
                return Err(ContextError::Log {
                    path: other.to_string(),
                    why: "must be a path (a string)".into(),
                })
            }
        }
    }
    if let Some(tests) = meta.fields.get("tests") {
        let specs = crate::ops::stored_tests::parse_specs(tests)?;
        crate::ops::stored_tests::check_files(&specs, |p| files.contains(normalise(p).as_str()))?;
    }
    if asset.kind == Kind::Features {
        if meta.fields.contains_key("schema") {
            return Err(ContextError::SchemaReserved);
        }
        let schema = schema_of_tree(catalog, asset, items, base).await?;
        meta.fields.insert("schema".into(), schema);
    }
    Ok(())
}

/// Where a file to summarise is read from.
enum Source {
    Local(PathBuf),
    Fetched(tempfile::NamedTempFile),
    Reused(Value),
}

async fn schema_of_tree(
    catalog: &Catalog,
    asset: &AssetId,
    items: &[TreeItem],
    base: Option<u64>,
) -> Result<Value, ContextError> {
    // The base version's summaries and manifest, for unchanged files.
    let mut base_files = Map::new();
    let mut base_manifest = None;
    if let Some(b) = base {
        if let Ok(rec) = catalog.record(asset, b).await {
            if let Some(Value::Object(f)) = rec.meta.get("schema").and_then(|s| s.get("files")) {
                base_files = f.clone();
                base_manifest = catalog.manifest(&rec.manifest).await.ok();
            }
        }
    }
    let mut jobs: Vec<(String, &'static str, Source)> = vec![];
    let mut truncated = false;
    for item in items {
        let path = match item {
            TreeItem::Local { path, .. } | TreeItem::Stored { path, .. } => path,
            _ => continue,
        };
        let Some(format) = crate::ops::schema::format_of(path) else {
            continue;
        };
        if jobs.len() == crate::ops::schema::MAX_FILES {
            truncated = true;
            break;
        }
        let source = match item {
            TreeItem::Stored { hash, chunks, .. } => {
                let same = base_manifest
                    .as_ref()
                    .and_then(|m: &crate::format::Manifest| m.get(path))
                    .is_some_and(|e| e.hash == *hash);
                match base_files.get(path.as_str()) {
                    Some(v) if same => Source::Reused(v.clone()),
                    _ => Source::Fetched(fetch_to_temp(catalog, chunks).await?),
                }
            }
            TreeItem::Local { file, .. } => Source::Local(file.clone()),
            _ => unreachable!("only files get here"),
        };
        jobs.push((path.clone(), format, source));
    }
    let files = tokio::task::spawn_blocking(move || {
        let mut files = Map::new();
        for (path, format, source) in jobs {
            let v = match source {
                Source::Local(p) => crate::ops::schema::summarise_file(&p, format),
                Source::Fetched(t) => crate::ops::schema::summarise_file(t.path(), format),
                Source::Reused(v) => v,
            };
            files.insert(path, v);
        }
        files
    })
    .await
    .expect("schema worker panicked");
    let mut out = Map::new();
    out.insert("files".into(), Value::Object(files));
    if truncated {
        out.insert("truncated".into(), true.into());
    }
    Ok(Value::Object(out))
}

/// A stored file's bytes, chunk by chunk, each verified, in a temporary file.
async fn fetch_to_temp(
    catalog: &Catalog,
    chunks: &[(Hash, ChunkLocation)],
) -> Result<tempfile::NamedTempFile, ContextError> {
    let mut t = tempfile::NamedTempFile::new().map_err(ContextError::Temp)?;
    for (hash, loc) in chunks {
        let data = fetch_located(catalog.store(), hash, loc)
            .await
            .map_err(|e| match e {
                FetchError::Store(e) => ContextError::Store(e),
                _ => ContextError::Chunk(to_hex(hash)),
            })?;
        t.write_all(&data).map_err(ContextError::Temp)?;
    }
    t.flush().map_err(ContextError::Temp)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_merge_over_files() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("ctx.toml");
        std::fs::write(
            &toml_path,
            "framework = \"jax\"\nnotes = \"from toml\"\n[hyper]\nlr = 0.1\nwhen = 2024-01-02\n",
        )
        .unwrap();
        let metrics_path = dir.path().join("m.json");
        std::fs::write(&metrics_path, r#"{"auc": 0.8, "loss": 2}"#).unwrap();
        let mut meta = MetaInput::default();
        meta.fields
            .insert("context".into(), json!({"framework": "tf", "kept": 1}));
        meta.fields.insert("metrics".into(), json!({"old": 1}));
        let opts = ContextOptions {
            context_file: Some(toml_path),
            command: Some("python train.py".into()),
            metrics: vec!["auc=0.9".into(), "n=3".into()],
            metrics_file: Some(metrics_path),
            source: Some("clicks of 2024-01".into()),
            ..Default::default()
        };
        opts.apply(&mut meta).unwrap();
        assert_eq!(
            Value::Object(meta.fields.clone()),
            json!({
                "context": {"framework": "jax", "kept": 1, "notes": "from toml",
                            "hyper": {"lr": 0.1, "when": "2024-01-02"},
                            "command": "python train.py"},
                "metrics": {"old": 1, "auc": 0.9, "loss": 2, "n": 3},
                "lineage": {"source": "clicks of 2024-01"}
            })
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for m in ["acc", "=1", "acc=high", "acc=NaN", "acc=inf"] {
            assert!(parse_metric(m).is_err(), "{m}");
        }
        assert_eq!(parse_metric("a=1e-3").unwrap().1, json!(0.001));
        let digest = "a".repeat(64);
        check_container(&format!("ghcr.io/org/img:1.0@sha256:{digest}")).unwrap();
        for c in [
            "ghcr.io/org/img:1.0".to_string(),
            format!("@sha256:{digest}"),
            format!("img@sha256:{}", "A".repeat(64)),
            format!("img@sha256:{}", "a".repeat(63)),
        ] {
            assert!(check_container(&c).is_err(), "{c}");
        }
        check_paper("https://arxiv.org/abs/1706.03762").unwrap();
        assert!(check_paper("arxiv 1706.03762").is_err());
    }

    async fn check(meta: &mut MetaInput, kind: Kind, dir: &Path) -> Result<(), ContextError> {
        let catalog = Catalog::new(crate::store::Store::open("memory://").unwrap());
        let items = crate::ops::push::scan_dir(dir).unwrap();
        let asset = crate::format::Reference::parse(&format!("{kind}/x"))
            .unwrap()
            .asset;
        check_tree(meta, &catalog, &asset, &items, None).await
    }

    #[tokio::test]
    async fn tree_checks_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/train.log"), "ok").unwrap();
        std::fs::write(dir.path().join("a.csv"), "x\n1\n").unwrap();
        let mut meta = MetaInput::default();
        meta.fields
            .insert("context".into(), json!({"log": "./logs//train.log"}));
        check(&mut meta, Kind::Features, dir.path()).await.unwrap();
        assert_eq!(meta.fields["context"]["log"], "logs/train.log");
        assert_eq!(meta.fields["schema"]["files"]["a.csv"]["rows"], 1);

        let mut meta = MetaInput::default();
        meta.fields
            .insert("context".into(), json!({"log": "logs/train.log"}));
        check(&mut meta, Kind::Models, dir.path()).await.unwrap();
        assert!(!meta.fields.contains_key("schema"));

        for (ctx, word) in [
            (json!({"log": "logs/missing.log"}), "not a file"),
            (json!({"log": "logs"}), "not a file"),
            (json!({"log": "../x"}), ".."),
            (json!({"log": "/etc/passwd"}), "relative"),
            (json!({"log": 3}), "a path"),
            (json!({"container": "img:latest"}), "sha256"),
            (json!({"paper": "see the wiki"}), "absolute URL"),
        ] {
            let mut meta = MetaInput::default();
            meta.fields.insert("context".into(), ctx);
            let e = check(&mut meta, Kind::Models, dir.path())
                .await
                .unwrap_err();
            assert!(e.to_string().contains(word), "{e}");
        }
        let mut meta = MetaInput::default();
        meta.fields.insert(
            "tests".into(),
            json!([{"name": "t", "command": "cat {input}", "input": "./a.csv", "expected": "nope.csv"}]),
        );
        let e = check(&mut meta, Kind::Models, dir.path())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("nope.csv"), "{e}");
        let mut meta = MetaInput::default();
        meta.fields.insert("schema".into(), json!({}));
        assert!(matches!(
            check(&mut meta, Kind::Features, dir.path()).await,
            Err(ContextError::SchemaReserved)
        ));
    }
}
