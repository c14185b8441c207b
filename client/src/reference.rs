//! Image references as users type them, parsed once into a GUN and an optional tag.
//!
//! Docker's normalisation applies: a name without a registry host is on Docker Hub
//! (`alpine` → `docker.io/library/alpine`, `user/app` → `docker.io/user/app`), and
//! `index.docker.io` is `docker.io`. The first path component is a registry host when it
//! contains `.` or `:` or is `localhost`, so `localhost:5000/app:v1` is the GUN
//! `localhost:5000/app` with the tag `v1`: a tag is the part after the last `:` that
//! follows the last `/`. Digest references (`name@sha256:…`) name no tag and are refused.

use std::fmt;

use notar_tuf::Gun;
use notar_tuf::names::Tag;

use crate::Error;

/// A parsed `<gun>[:<tag>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// What the user typed (Docker shows it as `Name` in `trust inspect`).
    pub input: String,
    pub gun: Gun,
    pub tag: Option<Tag>,
}

impl Reference {
    /// Parses `<name>[:<tag>]` with Docker's normalisation of `<name>`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let fail = |reason: String| Error::Reference {
            input: input.to_owned(),
            reason,
        };
        if input.contains('@') {
            return Err(fail(
                "digest references are not supported here; name a tag".into(),
            ));
        }
        let last_slash = input.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match input[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&input[..at], Some(&input[at + 1..]))
            }
            None => (input, None),
        };
        let tag = tag
            .map(|t| Tag::new(t).map_err(|e| fail(e.to_string())))
            .transpose()?;
        let gun = normalize_gun(name).map_err(fail)?;
        Ok(Reference {
            input: input.to_owned(),
            gun,
            tag,
        })
    }

    /// Parses a reference that must name a tag.
    pub fn parse_tagged(input: &str) -> Result<(Self, Tag), Error> {
        let reference = Self::parse(input)?;
        match reference.tag.clone() {
            Some(tag) => Ok((reference, tag)),
            None => Err(Error::Reference {
                input: input.to_owned(),
                reason: "a tag is required (<gun>:<tag>)".into(),
            }),
        }
    }

    /// Parses a reference that must not name a tag (a repository).
    pub fn parse_repository(input: &str) -> Result<Self, Error> {
        let reference = Self::parse(input)?;
        if reference.tag.is_some() {
            return Err(Error::Reference {
                input: input.to_owned(),
                reason: "expected a repository without a tag".into(),
            });
        }
        Ok(reference)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{}:{tag}", self.gun),
            None => write!(f, "{}", self.gun),
        }
    }
}

/// Docker's `ParseNormalizedNamed` for a name without tag: adds `docker.io` and
/// `library/` where Docker would, then validates the result as a GUN.
pub fn normalize_gun(name: &str) -> Result<Gun, String> {
    if name.is_empty() {
        return Err("empty repository name".into());
    }
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first, rest)
        }
        _ => ("docker.io", name),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    if remainder.to_lowercase() != remainder {
        return Err("repository names must be lower case".into());
    }
    let full = if domain == "docker.io" && !remainder.contains('/') {
        format!("{domain}/library/{remainder}")
    } else {
        format!("{domain}/{remainder}")
    };
    Gun::new(full).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> (String, Option<String>) {
        let r = Reference::parse(input).expect("valid reference");
        (r.gun.to_string(), r.tag.map(|t| t.to_string()))
    }

    #[test]
    fn docker_normalisation() {
        let cases = [
            ("alpine", "docker.io/library/alpine", None),
            ("alpine:3.19", "docker.io/library/alpine", Some("3.19")),
            ("user/app", "docker.io/user/app", None),
            ("docker.io/alpine", "docker.io/library/alpine", None),
            (
                "index.docker.io/user/app:v1",
                "docker.io/user/app",
                Some("v1"),
            ),
            ("localhost:5000/app:v1", "localhost:5000/app", Some("v1")),
            ("localhost:5000/team/app", "localhost:5000/team/app", None),
            ("localhost/app", "localhost/app", None),
            (
                "registry.example.com/a/b:latest",
                "registry.example.com/a/b",
                Some("latest"),
            ),
            ("127.0.0.1:5000/x:y", "127.0.0.1:5000/x", Some("y")),
        ];
        for (input, gun, tag) in cases {
            assert_eq!(
                parse(input),
                (gun.to_owned(), tag.map(str::to_owned)),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_references_are_refused_with_a_reason() {
        for bad in [
            "",
            "Alpine",
            "user/App",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:abcd",
            "a//b",
            "Registry.example.com/app",
        ] {
            let err = Reference::parse(bad).expect_err(bad);
            assert!(matches!(err, Error::Reference { .. }), "{bad}: {err:?}");
        }
    }

    #[test]
    fn tagged_and_untagged_forms() {
        assert!(Reference::parse_tagged("alpine").is_err());
        assert!(Reference::parse_repository("alpine:1").is_err());
        let (r, tag) = Reference::parse_tagged("localhost:5000/app:v1").expect("tagged");
        assert_eq!(tag.as_str(), "v1");
        assert_eq!(r.to_string(), "localhost:5000/app:v1");
        assert_eq!(r.input, "localhost:5000/app:v1");
    }
}
