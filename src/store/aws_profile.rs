//! The AWS shared config and credentials files (`~/.aws/credentials`,
//! `~/.aws/config`), which object_store does not read: credentials, region
//! and endpoint of the selected profile, used where the environment does
//! not set them.

use std::collections::HashMap;
use std::path::PathBuf;

/// What one profile sets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The sections of an INI file, keys lower-cased.
fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    out
}

fn home_file(var: &str, rel: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rel)),
    }
}

/// The profile from `credentials_text` and `config_text`.
pub fn from_texts(profile: &str, credentials_text: &str, config_text: &str) -> Profile {
    let creds = parse_ini(credentials_text);
    let config = parse_ini(config_text);
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let empty = HashMap::new();
    let c = creds.get(profile).unwrap_or(&empty);
    let f = config.get(&config_section).unwrap_or(&empty);
    let get = |k: &str| c.get(k).or_else(|| f.get(k)).cloned();
    Profile {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: f.get("region").cloned(),
        endpoint_url: f.get("endpoint_url").cloned(),
    }
}

/// The profile named by `AWS_PROFILE` (else `default`) from the files named
/// by `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` (else under `~/.aws`).
pub fn load() -> Profile {
    let profile = std::env::var("AWS_PROFILE")
        .or_else(|_| std::env::var("AWS_DEFAULT_PROFILE"))
        .unwrap_or_else(|_| "default".into());
    let read = |p: Option<PathBuf>| {
        p.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    from_texts(
        &profile,
        &read(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")),
        &read(home_file("AWS_CONFIG_FILE", ".aws/config")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles() {
        let creds = "[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key=sd\n\n[ml]\n# team keys\naws_access_key_id = AKIML\naws_secret_access_key = sml\naws_session_token = tok\n";
        let config = "[default]\nregion = eu-west-1\n[profile ml]\nregion=us-west-2\nendpoint_url = http://minio:9000\n";
        let d = from_texts("default", creds, config);
        assert_eq!(d.access_key_id.as_deref(), Some("AKIDEFAULT"));
        assert_eq!(d.region.as_deref(), Some("eu-west-1"));
        assert_eq!(d.endpoint_url, None);
        let m = from_texts("ml", creds, config);
        assert_eq!(m.secret_access_key.as_deref(), Some("sml"));
        assert_eq!(m.session_token.as_deref(), Some("tok"));
        assert_eq!(m.region.as_deref(), Some("us-west-2"));
        assert_eq!(m.endpoint_url.as_deref(), Some("http://minio:9000"));
        assert_eq!(from_texts("none", creds, config), Profile::default());
    }
}
