//! Asset names, versions, aliases and references (docs/usage.md, "Names and references").
//!
//! Every parser here returns an error that names the rule the input broke,
//! because these strings come straight from users and from the object store.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid asset kind {0:?}: the kind must be `models` or `features`")]
    Kind(String),
    #[error("invalid asset name {0:?}: a name is 1-128 characters of [A-Za-z0-9._-], not starting with `.` or `-`")]
    Name(String),
    #[error("invalid version {0:?}: a version is a positive integer (1, 2, ...)")]
    Version(String),
    #[error(
        "invalid alias {0:?}: an alias is 1-64 characters of [a-z0-9_-], starting with a letter"
    )]
    Alias(String),
    #[error("alias {0:?} is reserved: `latest` always names the newest version and `staging` the working copy")]
    ReservedAlias(String),
    #[error("invalid reference {0:?}: a reference is <kind>/<name>[@<version|alias>], e.g. models/resnet@3 or features/clicks@production")]
    Reference(String),
}

/// The two kinds of asset a catalog holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Models,
    Features,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Models, Kind::Features];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Models => "models",
            Kind::Features => "features",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        match s {
            "models" => Ok(Kind::Models),
            "features" => Ok(Kind::Features),
            _ => Err(NameError::Kind(s.to_string())),
        }
    }
}

/// A validated asset name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetName(String);

impl AssetName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = (1..=128).contains(&s.len())
            && !s.starts_with('.')
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(AssetName(s.to_string()))
        } else {
            Err(NameError::Name(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AssetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a user alias (not `latest`, not `staging`).
pub fn validate_alias(s: &str) -> Result<(), NameError> {
    let ok = (1..=64).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if !ok {
        return Err(NameError::Alias(s.to_string()));
    }
    if s == "latest" || s == "staging" {
        return Err(NameError::ReservedAlias(s.to_string()));
    }
    Ok(())
}

/// Parses a version number: positive, decimal, no sign, no leading zeros.
pub fn parse_version(s: &str) -> Result<u64, NameError> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    match s.parse::<u64>() {
        Ok(v) if ok => Ok(v),
        _ => Err(NameError::Version(s.to_string())),
    }
}

/// What follows the `@` of a reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    Latest,
    Version(u64),
    Alias(String),
    Staging,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Latest => f.write_str("latest"),
            Selector::Version(v) => write!(f, "{v}"),
            Selector::Alias(a) => f.write_str(a),
            Selector::Staging => f.write_str("staging"),
        }
    }
}

/// An asset: kind plus name, e.g. `models/resnet`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetId {
    pub kind: Kind,
    pub name: AssetName,
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl AssetId {
    pub fn at(&self, version: u64) -> Reference {
        Reference {
            asset: self.clone(),
            selector: Selector::Version(version),
        }
    }
}

/// `<kind>/<name>[@<version|alias>]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub asset: AssetId,
    pub selector: Selector,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::Reference(s.to_string());
        let (kind, rest) = s.split_once('/').ok_or_else(bad)?;
        let kind: Kind = kind.parse()?;
        let (name, sel) = match rest.split_once('@') {
            Some((n, sel)) => (n, Some(sel)),
            None => (rest, None),
        };
        if name.contains('/') {
            return Err(bad());
        }
        let name = AssetName::parse(name)?;
        let selector = match sel {
            None | Some("latest") => Selector::Latest,
            Some("staging") => Selector::Staging,
            Some(v) if v.bytes().next().is_some_and(|b| b.is_ascii_digit()) => {
                Selector::Version(parse_version(v)?)
            }
            Some(a) => {
                validate_alias(a)?;
                Selector::Alias(a.to_string())
            }
        };
        Ok(Reference {
            asset: AssetId { kind, name },
            selector,
        })
    }

    /// True when the reference names the asset only (no `@`, or `@latest`).
    pub fn is_bare(&self) -> bool {
        self.selector == Selector::Latest
    }
}

impl FromStr for Reference {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.asset, self.selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["resnet", "a", "ResNet-50_v1.2", &"x".repeat(128)] {
            assert!(AssetName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(129),
            "a@b",
        ] {
            assert!(
                matches!(AssetName::parse(bad), Err(NameError::Name(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn aliases() {
        for ok in ["production", "a", "v2-candidate", "x_1"] {
            validate_alias(ok).unwrap();
        }
        for bad in ["", "Prod", "1abc", "123", "_x", "a.b", &"a".repeat(65)] {
            assert!(
                matches!(validate_alias(bad), Err(NameError::Alias(_))),
                "{bad}"
            );
        }
        assert_eq!(
            validate_alias("latest"),
            Err(NameError::ReservedAlias("latest".into()))
        );
        assert_eq!(
            validate_alias("staging"),
            Err(NameError::ReservedAlias("staging".into()))
        );
    }

    #[test]
    fn references() {
        let r = Reference::parse("models/resnet@3").unwrap();
        assert_eq!(r.asset.kind, Kind::Models);
        assert_eq!(r.selector, Selector::Version(3));
        assert_eq!(r.to_string(), "models/resnet@3");
        assert_eq!(
            Reference::parse("features/clicks").unwrap().selector,
            Selector::Latest
        );
        assert_eq!(
            Reference::parse("features/clicks@production")
                .unwrap()
                .selector,
            Selector::Alias("production".into())
        );
        assert_eq!(
            Reference::parse("models/x@staging").unwrap().selector,
            Selector::Staging
        );
        assert!(matches!(
            Reference::parse("model/x"),
            Err(NameError::Kind(_))
        ));
        assert!(matches!(
            Reference::parse("models/x@0"),
            Err(NameError::Version(_))
        ));
        assert!(matches!(
            Reference::parse("models/x@03"),
            Err(NameError::Version(_))
        ));
        assert!(matches!(
            Reference::parse("resnet"),
            Err(NameError::Reference(_))
        ));
        assert!(matches!(
            Reference::parse("models/a/b"),
            Err(NameError::Reference(_))
        ));
        assert!(matches!(
            Reference::parse("models/x@Prod"),
            Err(NameError::Alias(_))
        ));
    }

    #[test]
    fn errors_name_the_rule() {
        let msg = Reference::parse("models/.x").unwrap_err().to_string();
        assert!(msg.contains("not starting with `.`"), "{msg}");
    }
}
