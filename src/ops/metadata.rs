//! Version metadata (docs/usage.md): building it from command-line options.
//! The sidecar that `show` and the mount print is assembled in
//! [`crate::catalog::sidecar`].

use serde_json::{Map, Value};

use crate::format::AssetId;

/// Fields assetfs computes itself; user input may not set them.
pub const RESERVED: &[&str] = &[
    "asset",
    "version",
    "created",
    "parent",
    "manifest",
    "file_count",
    "total_bytes",
    "aliases",
    "ref",
    "base",
];

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("--meta {0:?}: expected KEY=VALUE")]
    NotKeyValue(String),
    #[error("metadata field `{0}` is computed by assetfs and cannot be set")]
    Reserved(String),
    #[error("metadata file {path}: {why}")]
    File { path: String, why: String },
    #[error("metadata field `{field}` must be {expected}")]
    Shape {
        field: &'static str,
        expected: &'static str,
    },
    #[error(transparent)]
    Secret(#[from] crate::ops::secrets::SecretError),
}

use crate::format::now_rfc3339;

/// The author: `ASSETFS_AUTHOR`, else `git config user.name`, else `$USER`.
pub fn default_author() -> String {
    if let Ok(a) = std::env::var("ASSETFS_AUTHOR") {
        if !a.is_empty() {
            return a;
        }
    }
    if let Ok(out) = std::process::Command::new("git")
        .args(["config", "user.name"])
        .stderr(std::process::Stdio::null())
        .output()
    {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !name.is_empty() {
            return name;
        }
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// User-supplied metadata, before assetfs adds its computed fields.
#[derive(Debug, Default, Clone)]
pub struct MetaInput {
    pub message: String,
    pub author: Option<String>,
    /// Top-level fields from `--meta-file` (may include `context`, `metrics`,
    /// `tests`, `user` and fields assetfs does not know, kept verbatim).
    pub fields: Map<String, Value>,
    /// Resolved lineage inputs, e.g. `features/clicks@7`.
    pub inputs: Vec<String>,
}

impl MetaInput {
    /// `--meta K=V`: sets `user.K`. V is parsed as JSON when it is valid JSON
    /// (numbers, booleans, objects), else kept as a string.
    pub fn add_kv(&mut self, kv: &str) -> Result<(), MetaError> {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| MetaError::NotKeyValue(kv.to_string()))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        let user = self
            .fields
            .entry("user")
            .or_insert_with(|| Value::Object(Map::new()));
        match user {
            Value::Object(m) => {
                m.insert(k.to_string(), value);
                Ok(())
            }
            _ => Err(MetaError::Shape {
                field: "user",
                expected: "a JSON object",
            }),
        }
    }

    /// `--meta-file F`: a JSON object merged into the metadata.
    pub fn add_file(&mut self, path: &std::path::Path) -> Result<(), MetaError> {
        let err = |why: String| MetaError::File {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let Value::Object(m) = v else {
            return Err(err("expected a JSON object".into()));
        };
        for (k, v) in m {
            if k == "message" {
                if let Value::String(s) = &v {
                    if self.message.is_empty() {
                        self.message = s.clone();
                    }
                    continue;
                }
            }
            if k == "author" {
                if let Value::String(s) = &v {
                    self.author.get_or_insert_with(|| s.clone());
                    continue;
                }
            }
            self.fields.insert(k, v);
        }
        Ok(())
    }

    /// Checks what [`MetaInput::build`] would refuse, so a commit can fail
    /// before it uploads anything.
    pub fn validate(&self) -> Result<(), MetaError> {
        for k in self.fields.keys() {
            if RESERVED.contains(&k.as_str()) {
                return Err(MetaError::Reserved(k.clone()));
            }
        }
        check_shape(&self.fields, "lineage", "a JSON object", Value::is_object)?;
        check_shape(&self.fields, "context", "a JSON object", Value::is_object)?;
        check_shape(&self.fields, "user", "a JSON object", Value::is_object)?;
        check_shape(&self.fields, "tests", "a JSON array", Value::is_array)?;
        check_shape(&self.fields, "metrics", "an object of numbers", |v| {
            v.as_object()
                .is_some_and(|m| m.values().all(Value::is_number))
        })?;
        // Secrets never belong in metadata (see crate::ops::secrets).
        crate::ops::secrets::check_str("message", &self.message)?;
        if let Some(a) = &self.author {
            crate::ops::secrets::check_str("author", a)?;
        }
        crate::ops::secrets::check(&self.fields)?;
        Ok(())
    }

    /// Removes `lineage.inputs` given in a metadata file and returns them, so
    /// they are resolved to concrete versions like `--input` values.
    pub fn take_file_inputs(&mut self) -> Result<Vec<String>, MetaError> {
        let Some(Value::Object(lineage)) = self.fields.get_mut("lineage") else {
            return Ok(vec![]);
        };
        match lineage.remove("inputs") {
            None => Ok(vec![]),
            Some(Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(MetaError::Shape {
                        field: "lineage.inputs",
                        expected: "an array of references",
                    }),
                })
                .collect(),
            Some(_) => Err(MetaError::Shape {
                field: "lineage.inputs",
                expected: "an array of references",
            }),
        }
    }

    /// The metadata stored with a version. `file_count`/`total_bytes` come from
    /// the manifest being committed.
    pub fn build(
        &self,
        asset: &AssetId,
        file_count: u64,
        total_bytes: u64,
    ) -> Result<Map<String, Value>, MetaError> {
        self.validate()?;
        let mut m = Map::new();
        m.insert("asset".into(), asset.to_string().into());
        m.insert("created".into(), now_rfc3339().into());
        m.insert(
            "author".into(),
            self.author.clone().unwrap_or_else(default_author).into(),
        );
        m.insert("message".into(), self.message.clone().into());
        m.insert("file_count".into(), file_count.into());
        m.insert("total_bytes".into(), total_bytes.into());
        let mut lineage = match self.fields.get("lineage") {
            Some(Value::Object(l)) => l.clone(),
            _ => Map::new(),
        };
        let mut inputs: Vec<Value> = match lineage.remove("inputs") {
            Some(Value::Array(a)) => a,
            _ => vec![],
        };
        inputs.extend(self.inputs.iter().cloned().map(Value::String));
        lineage.insert("inputs".into(), Value::Array(inputs));
        m.insert("lineage".into(), Value::Object(lineage));
        for s in ["context", "metrics", "user"] {
            m.insert(
                s.into(),
                self.fields
                    .get(s)
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new())),
            );
        }
        m.insert(
            "tests".into(),
            self.fields
                .get("tests")
                .cloned()
                .unwrap_or(Value::Array(vec![])),
        );
        for (k, v) in &self.fields {
            if !m.contains_key(k) {
                m.insert(k.clone(), v.clone());
            }
        }
        Ok(m)
    }
}

fn check_shape(
    m: &Map<String, Value>,
    field: &'static str,
    expected: &'static str,
    ok: impl Fn(&Value) -> bool,
) -> Result<(), MetaError> {
    match m.get(field) {
        Some(v) if !ok(v) => Err(MetaError::Shape { field, expected }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Reference;

    #[test]
    fn kv_and_reserved() {
        let mut m = MetaInput::default();
        m.add_kv("lr=0.01").unwrap();
        m.add_kv("note=hello world").unwrap();
        assert!(m.add_kv("novalue").is_err());
        let asset = Reference::parse("models/x").unwrap().asset;
        let built = m.build(&asset, 1, 2).unwrap();
        assert_eq!(built["user"]["lr"], serde_json::json!(0.01));
        assert_eq!(built["user"]["note"], "hello world");
        m.fields.insert("version".into(), 3.into());
        assert!(matches!(m.build(&asset, 1, 2), Err(MetaError::Reserved(_))));
    }

    #[test]
    fn unknown_fields_survive_and_metrics_are_numbers() {
        let mut m = MetaInput::default();
        m.fields.insert("x-team".into(), "vision".into());
        m.fields
            .insert("metrics".into(), serde_json::json!({"acc": 0.9}));
        let asset = Reference::parse("models/x").unwrap().asset;
        let built = m.build(&asset, 0, 0).unwrap();
        assert_eq!(built["x-team"], "vision");
        m.fields
            .insert("metrics".into(), serde_json::json!({"acc": "high"}));
        assert!(matches!(
            m.build(&asset, 0, 0),
            Err(MetaError::Shape { .. })
        ));
    }
}
