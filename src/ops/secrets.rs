//! Refusing secrets in version metadata (docs/usage.md, "Context, metrics and
//! tests", lists what is refused). Metadata is copied into every sidecar,
//! cache and mount, so a credential that gets in is effectively published.
//!
//! Refused, anywhere in the metadata tree:
//! - a key whose name mentions `secret`, `password`, `passwd`, or `token`;
//!   `token` is let through where ML uses the word for text units rather than
//!   credentials: in `tokenizer`/`tokenization`/`tokenise…`, and when the
//!   value is a number or boolean (`max_tokens: 512`, `per_token_loss: 0.3`);
//! - a string containing an AWS access key id (`AKIA`/`ASIA` and 16
//!   uppercase letters or digits);
//! - a string containing a word that looks like an AWS secret access key:
//!   exactly 40 characters of `[A-Za-z0-9/+]` with upper case, lower case and
//!   digits and at most two `/` (paths have more);
//! - a PEM private key block.

use serde_json::{Map, Value};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("metadata field `{path}` looks like a secret ({why}); secrets never belong in version metadata, which every reader of the store can see: pass credentials through the environment instead")]
pub struct SecretError {
    /// Where it was found, e.g. `user.hf_token` or `context.command`.
    pub path: String,
    pub why: String,
}

/// Checks a metadata object (the top level of a sidecar).
pub fn check(fields: &Map<String, Value>) -> Result<(), SecretError> {
    for (k, v) in fields {
        check_entry(k, k, v)?;
    }
    Ok(())
}

/// Checks one string given outside the tree (a message, an author).
pub fn check_str(path: &str, s: &str) -> Result<(), SecretError> {
    match secret_in_text(s) {
        Some(why) => Err(SecretError {
            path: path.to_string(),
            why: why.to_string(),
        }),
        None => Ok(()),
    }
}

fn check_entry(path: &str, key: &str, v: &Value) -> Result<(), SecretError> {
    if let Some(word) = secret_key_word(key, v) {
        return Err(SecretError {
            path: path.to_string(),
            why: format!("its name mentions `{word}`"),
        });
    }
    check_value(path, v)
}

fn check_value(path: &str, v: &Value) -> Result<(), SecretError> {
    match v {
        Value::String(s) => check_str(path, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check_value(&format!("{path}[{i}]"), x)?;
            }
            Ok(())
        }
        Value::Object(m) => {
            for (k, x) in m {
                check_entry(&format!("{path}.{k}"), k, x)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The credential word a key's name mentions, if it should be refused.
fn secret_key_word(key: &str, v: &Value) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    for w in ["secret", "password", "passwd"] {
        if k.contains(w) {
            return Some(w);
        }
    }
    if v.is_number() || v.is_boolean() {
        return None;
    }
    let credential_token = k.match_indices("token").any(|(i, _)| {
        let rest = &k[i + "token".len()..];
        !(rest.starts_with("iz") || rest.starts_with("is"))
    });
    credential_token.then_some("token")
}

/// Why a string looks like it holds a secret.
fn secret_in_text(s: &str) -> Option<&'static str> {
    if s.contains("PRIVATE KEY-----") {
        return Some("it holds a private key");
    }
    let b = s.as_bytes();
    // AWS access key ids: AKIA/ASIA + 16 of [A-Z0-9], as a whole word.
    for (i, _) in s.match_indices("AKIA").chain(s.match_indices("ASIA")) {
        let end = i + 20;
        let before_ok = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let after_ok = end == b.len() || (end < b.len() && !b[end].is_ascii_alphanumeric());
        if end <= b.len()
            && before_ok
            && after_ok
            && b[i + 4..end]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Some("it contains an AWS access key id");
        }
    }
    // AWS secret access keys: 40 base64 characters, as a whole word.
    let is_key_char = |c: u8| c.is_ascii_alphanumeric() || c == b'/' || c == b'+';
    let mut i = 0;
    while i < b.len() {
        if !is_key_char(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_key_char(b[i]) {
            i += 1;
        }
        let w = &b[start..i];
        if w.len() == 40
            && w.iter().any(u8::is_ascii_uppercase)
            && w.iter().any(u8::is_ascii_lowercase)
            && w.iter().any(u8::is_ascii_digit)
            && w.iter().filter(|c| **c == b'/').count() <= 2
        {
            return Some("it contains what looks like an AWS secret access key");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_json(v: Value) -> Result<(), SecretError> {
        check(v.as_object().unwrap())
    }

    #[test]
    fn secret_names_are_refused_anywhere() {
        for (v, path) in [
            (json!({"user": {"hf_token": "abc"}}), "user.hf_token"),
            (json!({"user": {"API_TOKEN": "abc"}}), "user.API_TOKEN"),
            (
                json!({"context": {"db": {"Password": "x"}}}),
                "context.db.Password",
            ),
            (json!({"x": [{"client_secret": 1}]}), "x[0].client_secret"),
            (json!({"secrets": {}}), "secrets"),
            (json!({"tokens": "abc"}), "tokens"),
            (json!({"user": {"passwd": null}}), "user.passwd"),
        ] {
            let e = check_json(v).unwrap_err();
            assert_eq!(e.path, path);
        }
    }

    #[test]
    fn ml_words_are_not_secrets() {
        check_json(json!({
            "context": {"tokenizer": "bert-base-uncased", "tokenization": "bpe"},
            "metrics": {"per_token_loss": 0.3, "tokens_per_second": 1200},
            "user": {"max_tokens": 512, "use_token_type_ids": true,
                     "git": "3f786850e387550fdab836ed7e6dc881de23001b",
                     "path": "/mnt/Data/features2024/clicks/Train/part-0001/x.parquet"},
            "message": "ASIAN market features, AKIAS is a name"
        }))
        .unwrap();
    }

    #[test]
    fn aws_keys_and_private_keys_are_refused() {
        let e = check_json(json!({"context": {"command": "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE python train.py"}}))
            .unwrap_err();
        assert_eq!(e.path, "context.command");
        assert!(e.why.contains("access key id"));
        let e =
            check_json(json!({"user": {"k": ["ok", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]}}))
                .unwrap_err();
        assert_eq!(e.path, "user.k[1]");
        assert!(e.why.contains("secret access key"));
        let e =
            check_json(json!({"notes": "-----BEGIN RSA PRIVATE KEY-----\nMII..."})).unwrap_err();
        assert_eq!(e.path, "notes");
        assert!(check_str("message", "ASIAY34FZKBOKMUTVV7A").is_err());
    }
}
