//! Validated names: each type rejects bad input in its constructor, so code past the edge
//! never meets a malformed GUN, role, target or version.

use std::borrow::Borrow;
use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Implements the string plumbing shared by the name types: `Display`, `AsRef<str>`,
/// `Borrow<str>` (map lookups by `&str`), `FromStr` and serde through the validating
/// constructor.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl $ty {
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                $ty::new(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                $ty::new(s)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                $ty::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A globally unique name: the repository a trust collection belongs to, following the Docker
/// reference grammar (`[host[:port]/]component[/component…]`), lower case, at most 255 bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gun(String);

/// Docker's limit on the length of a repository name.
pub const GUN_MAX_LEN: usize = 255;

impl Gun {
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let fail = |reason| Error::InvalidName {
            kind: "GUN",
            value: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(fail("empty"));
        }
        if name.len() > GUN_MAX_LEN {
            return Err(fail("longer than 255 bytes"));
        }
        let mut parts = name.split('/');
        let first = parts.next().unwrap_or_default();
        let has_domain = name.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        if has_domain {
            if !valid_domain(first) {
                return Err(fail(
                    "host must be lower-case DNS labels with an optional :port",
                ));
            }
        } else if !valid_path_component(first) {
            return Err(fail(
                "path components are lower-case letters and digits joined by '.', '_', '__' or '-'",
            ));
        }
        let mut components = usize::from(!has_domain);
        for part in parts {
            if !valid_path_component(part) {
                return Err(fail(
                    "path components are lower-case letters and digits joined by '.', '_', '__' or '-'",
                ));
            }
            components += 1;
        }
        if components == 0 {
            return Err(fail("a host alone is not a repository"));
        }
        Ok(Gun(name))
    }
}
string_newtype!(Gun);

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    port_ok && !host.is_empty() && host.split('.').all(label_ok)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(part: &str) -> bool {
    let b = part.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// The name of a role: one of the four top-level roles or a delegated targets role
/// (`targets/releases`, `targets/alice`, or any other name a delegation gives).
///
/// TUF puts no grammar on delegated role names, and other repositories use names such as
/// `?`, `#` or `../x`; so a name is any non-empty string of at most 255 bytes without
/// control characters. A role name is never used raw in a URL or a file name: both go
/// through `client::encode_role`, which percent-encodes every byte but `A-Za-z0-9-_.~`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName(String);

impl RoleName {
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let fail = |reason| Error::InvalidName {
            kind: "role name",
            value: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(fail("empty"));
        }
        if name.len() > 255 {
            return Err(fail("longer than 255 bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err(fail("control characters"));
        }
        Ok(RoleName(name))
    }

    pub fn root() -> Self {
        RoleName("root".into())
    }
    pub fn targets() -> Self {
        RoleName("targets".into())
    }
    pub fn snapshot() -> Self {
        RoleName("snapshot".into())
    }
    pub fn timestamp() -> Self {
        RoleName("timestamp".into())
    }
    /// `targets/releases`, Docker's role for released tags.
    pub fn releases() -> Self {
        RoleName("targets/releases".into())
    }

    /// The top-level role this name is, if it is one.
    pub fn top_level(&self) -> Option<crate::RoleType> {
        self.0.parse().ok()
    }

    /// Whether this is a delegated targets role rather than one of the four top-level roles.
    pub fn is_delegated(&self) -> bool {
        self.top_level().is_none()
    }
}
string_newtype!(RoleName);

/// The name of a target: for Notar a tag, for TUF in general a path relative to the
/// repository's target base URL. Never absolute, never with `..` segments, no control
/// characters, at most 1024 bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetName(String);

impl TargetName {
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let fail = |reason| Error::InvalidName {
            kind: "target name",
            value: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(fail("empty"));
        }
        if name.len() > 1024 {
            return Err(fail("longer than 1024 bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err(fail("control characters"));
        }
        if name.starts_with('/') || name.split('/').any(|s| s == "..") {
            return Err(fail("absolute, or a '..' segment"));
        }
        Ok(TargetName(name))
    }
}
string_newtype!(TargetName);

/// A Docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let b = name.as_bytes();
        let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
        let ok = !b.is_empty()
            && b.len() <= 128
            && word(&b[0])
            && b[1..].iter().all(|c| word(c) || *c == b'.' || *c == b'-');
        if ok {
            Ok(Tag(name))
        } else {
            Err(Error::InvalidName {
                kind: "tag",
                value: name,
                reason: "a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
            })
        }
    }

    /// The target name this tag is signed under.
    pub fn target_name(&self) -> TargetName {
        TargetName(self.0.clone())
    }
}
string_newtype!(Tag);

/// A metadata version: an integer of at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(NonZeroU64);

impl Version {
    pub const ONE: Version = Version(NonZeroU64::MIN);

    pub fn new(v: u64) -> Result<Self, Error> {
        NonZeroU64::new(v).map(Version).ok_or(Error::InvalidName {
            kind: "version",
            value: v.to_string(),
            reason: "versions start at 1",
        })
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The version after this one (saturating at `u64::MAX`, which no repository reaches).
    pub fn next(self) -> Version {
        Version(self.0.saturating_add(1))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0.get())
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(deserializer)?;
        Version::new(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gun_accepts_docker_references() {
        for good in [
            "alpine",
            "library/alpine",
            "docker.io/library/alpine",
            "localhost:5000/team/app",
            "localhost/app",
            "127.0.0.1:5000/a/b-c/d__e/f.g",
            "registry.example.com/x",
            "a--b",
        ] {
            assert!(Gun::new(good).is_ok(), "{good} must be accepted");
        }
    }

    #[test]
    fn gun_refuses_bad_names() {
        let long = format!("localhost:5000/{}", "a".repeat(300));
        for bad in [
            "",
            "Alpine",
            "localhost:5000/App",
            "a/../b",
            "a/*",
            "a//b",
            "a/",
            "/a",
            "a/b.",
            "a/-b",
            "a/b___c",
            "local host/a",
            "localhost:port/a",
            "localhost:5000",
            long.as_str(),
        ] {
            assert!(
                matches!(Gun::new(bad), Err(Error::InvalidName { kind: "GUN", .. })),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn role_names() {
        assert!(
            RoleName::new("targets/releases")
                .expect("valid")
                .is_delegated()
        );
        assert!(!RoleName::new("snapshot").expect("valid").is_delegated());
        for unusual in [
            "?",
            "#",
            "/delegatedrole",
            "../delegatedrole",
            "a b",
            "a%2Fb",
        ] {
            assert!(
                RoleName::new(unusual).is_ok(),
                "{unusual:?} is a TUF role name"
            );
        }
        for bad in ["", "a\nb", "a\u{7f}"] {
            assert!(RoleName::new(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(RoleName::new("x".repeat(256)).is_err());
    }

    #[test]
    fn target_names_and_tags() {
        assert!(TargetName::new("v1.0").is_ok());
        assert!(TargetName::new("dir/file.txt").is_ok());
        for bad in ["", "/etc/passwd", "a/../../b", "a\nb"] {
            assert!(TargetName::new(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(Tag::new("latest").is_ok());
        assert!(Tag::new("v1.2.3-rc_1").is_ok());
        for bad in ["", ".hidden", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(Tag::new(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn version_starts_at_one() {
        assert!(Version::new(0).is_err());
        assert_eq!(Version::new(1).expect("valid"), Version::ONE);
        assert!(serde_json::from_str::<Version>("0").is_err());
        assert!(serde_json::from_str::<Version>("-1").is_err());
        assert_eq!(Version::ONE.next().get(), 2);
    }
}
