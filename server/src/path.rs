//! The one parser of request paths under `/v2/`.
//!
//! A GUN holds slashes and comes before `/_trust/`; delegated role names may hold slashes
//! too, percent-encoded by standard clients (`targets%2Freleases`) or not. The parser reads
//! the raw (still percent-encoded) path so that an encoded slash in a role name and a real
//! one in a GUN never get confused.

use notar_tuf::{Gun, RoleName, Version};
use percent_encoding::percent_decode_str;

use crate::error::ApiError;

/// What a `/v2/…` path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v2/` itself.
    Ping,
    /// `/v2/_trust/changefeed` (all GUNs) or `/v2/<gun>/_trust/changefeed`.
    Changefeed(Option<Gun>),
    /// `/v2/<gun>/_trust/tuf/` (POST an update, DELETE the repository).
    Repository(Gun),
    /// `/v2/<gun>/_trust/tuf/<file>.json`.
    Metadata(Gun, MetaRequest),
    /// `/v2/<gun>/_trust/tuf/{timestamp,snapshot}.key`.
    Key(Gun, ManagedRole),
    /// `/v2/<gun>/_trust/pending/`: delegations waiting for their signer's first metadata
    /// (GET lists them, POST stages the owner's next targets).
    Pending(Gun),
    /// `/v2/<gun>/_trust/proposals/` (GET lists co-signing proposals, POST proposes) and
    /// `/v2/<gun>/_trust/proposals/<id>` (POST adds signatures).
    Proposals(Gun, Option<String>),
}

/// Which version of a role a metadata path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaRequest {
    Current(RoleName),
    Version(RoleName, Version),
    /// Lower-case hex sha256 of the stored bytes.
    Checksum(RoleName, String),
}

impl MetaRequest {
    pub fn role(&self) -> &RoleName {
        match self {
            MetaRequest::Current(r) | MetaRequest::Version(r, _) | MetaRequest::Checksum(r, _) => r,
        }
    }
}

/// The roles whose keys the server holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManagedRole {
    Timestamp,
    Snapshot,
}

impl ManagedRole {
    pub fn role_name(self) -> RoleName {
        match self {
            ManagedRole::Timestamp => RoleName::timestamp(),
            ManagedRole::Snapshot => RoleName::snapshot(),
        }
    }
}

/// Parses `path`, the raw request path (starting `/v2/`).
pub fn parse(path: &str) -> Result<Route, ApiError> {
    let not_found = || ApiError::not_found(format!("no such resource: {path}"));
    let rest = path.strip_prefix("/v2/").ok_or_else(not_found)?;
    if rest.is_empty() {
        return Ok(Route::Ping);
    }
    if rest == "_trust/changefeed" {
        return Ok(Route::Changefeed(None));
    }
    let (gun, trust) = rest.split_once("/_trust/").ok_or_else(not_found)?;
    let gun = Gun::new(gun).map_err(|e| ApiError::invalid_name(e.to_string()))?;
    if trust == "changefeed" {
        return Ok(Route::Changefeed(Some(gun)));
    }
    if trust == "pending/" || trust == "pending" {
        return Ok(Route::Pending(gun));
    }
    if trust == "proposals/" || trust == "proposals" {
        return Ok(Route::Proposals(gun, None));
    }
    if let Some(id) = trust.strip_prefix("proposals/") {
        if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ApiError::invalid_name(
                "a proposal ID is 64 lower-case hex digits",
            ));
        }
        return Ok(Route::Proposals(gun, Some(id.to_owned())));
    }
    let file = trust.strip_prefix("tuf/").ok_or_else(not_found)?;
    if file.is_empty() {
        return Ok(Route::Repository(gun));
    }
    let file = percent_decode_str(file)
        .decode_utf8()
        .map_err(|_| ApiError::invalid_name("file name is not UTF-8"))?;
    match file.as_ref() {
        "timestamp.key" => return Ok(Route::Key(gun, ManagedRole::Timestamp)),
        "snapshot.key" => return Ok(Route::Key(gun, ManagedRole::Snapshot)),
        _ => {}
    }
    let stem = file.strip_suffix(".json").ok_or_else(not_found)?;
    Ok(Route::Metadata(gun, parse_meta(stem)?))
}

/// `<role>`, `<N>.<role>` or `<role>.<sha256>`.
pub fn parse_meta(stem: &str) -> Result<MetaRequest, ApiError> {
    let role = |name: &str| RoleName::new(name).map_err(|e| ApiError::invalid_name(e.to_string()));
    if let Some((prefix, name)) = stem.split_once('.')
        && !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_digit())
    {
        let version = prefix
            .parse::<u64>()
            .ok()
            .and_then(|v| Version::new(v).ok())
            .ok_or_else(|| ApiError::invalid_name(format!("bad version {prefix:?}")))?;
        return Ok(MetaRequest::Version(role(name)?, version));
    }
    if let Some((name, hash)) = stem.rsplit_once('.')
        && hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
    {
        if hash.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ApiError::invalid_name(
                "checksums in paths are lower-case hex sha256",
            ));
        }
        return Ok(MetaRequest::Checksum(role(name)?, hash.to_owned()));
    }
    Ok(MetaRequest::Current(role(stem)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn gun(s: &str) -> Gun {
        Gun::new(s).expect("valid gun")
    }

    fn role(s: &str) -> RoleName {
        RoleName::new(s).expect("valid role")
    }

    #[test]
    fn parses_every_route() {
        let sha = "ab".repeat(32);
        let cases = [
            ("/v2/", Route::Ping),
            ("/v2/_trust/changefeed", Route::Changefeed(None)),
            (
                "/v2/localhost:5000/a/b/_trust/changefeed",
                Route::Changefeed(Some(gun("localhost:5000/a/b"))),
            ),
            (
                "/v2/localhost:5000/a/b/_trust/tuf/",
                Route::Repository(gun("localhost:5000/a/b")),
            ),
            (
                "/v2/x/_trust/tuf/root.json",
                Route::Metadata(gun("x"), MetaRequest::Current(role("root"))),
            ),
            (
                "/v2/x/_trust/tuf/3.root.json",
                Route::Metadata(
                    gun("x"),
                    MetaRequest::Version(role("root"), Version::new(3).expect("v")),
                ),
            ),
            (
                &format!("/v2/x/_trust/tuf/targets.{sha}.json"),
                Route::Metadata(
                    gun("x"),
                    MetaRequest::Checksum(role("targets"), sha.clone()),
                ),
            ),
            (
                "/v2/a/b/_trust/tuf/targets%2Freleases.json",
                Route::Metadata(gun("a/b"), MetaRequest::Current(role("targets/releases"))),
            ),
            (
                "/v2/a/b/_trust/tuf/targets/releases.json",
                Route::Metadata(gun("a/b"), MetaRequest::Current(role("targets/releases"))),
            ),
            (
                "/v2/a/b/_trust/tuf/2.targets%2Freleases.json",
                Route::Metadata(
                    gun("a/b"),
                    MetaRequest::Version(role("targets/releases"), Version::new(2).expect("v")),
                ),
            ),
            (
                "/v2/a/_trust/tuf/timestamp.key",
                Route::Key(gun("a"), ManagedRole::Timestamp),
            ),
            (
                "/v2/a/_trust/tuf/snapshot.key",
                Route::Key(gun("a"), ManagedRole::Snapshot),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(parse(path).expect(path), expected, "{path}");
        }
    }

    #[test]
    fn pending_delegations_have_one_path() {
        for path in ["/v2/a/b/_trust/pending/", "/v2/a/b/_trust/pending"] {
            assert_eq!(parse(path).expect(path), Route::Pending(gun("a/b")));
        }
        let id = "ab".repeat(32);
        assert_eq!(
            parse("/v2/a/b/_trust/proposals/").expect("list"),
            Route::Proposals(gun("a/b"), None)
        );
        assert_eq!(
            parse(&format!("/v2/a/b/_trust/proposals/{id}")).expect("one"),
            Route::Proposals(gun("a/b"), Some(id.clone()))
        );
        for bad in ["AB".repeat(32), "ab".repeat(31), "../x".into()] {
            assert!(
                parse(&format!("/v2/a/b/_trust/proposals/{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    /// TUF role names are opaque strings: percent-decoded, they are database keys, never
    /// paths, so `..` or `?` in one is just a name.
    #[test]
    fn unusual_role_names_are_names() {
        for (path, name) in [
            ("/v2/a/_trust/tuf/%3F.json", "?"),
            ("/v2/a/_trust/tuf/1.%23.json", "#"),
            (
                "/v2/a/_trust/tuf/..%2Fdelegatedrole.json",
                "../delegatedrole",
            ),
            (
                "/v2/a/_trust/tuf/targets%2F..%2Froot.json",
                "targets/../root",
            ),
        ] {
            match parse(path).expect(path) {
                Route::Metadata(_, request) => assert_eq!(request.role().as_str(), name),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_bad_names_and_unknown_paths() {
        let upper = "AB".repeat(32);
        let long = format!("/v2/{}/_trust/tuf/root.json", "a".repeat(300));
        let invalid = [
            "/v2/a/../b/_trust/tuf/root.json",
            "/v2/a/*/_trust/tuf/root.json",
            "/v2/Alpine/_trust/tuf/root.json",
            long.as_str(),
            "/v2/a/_trust/tuf/0.root.json",
            "/v2/a/_trust/tuf/targets%0A.json",
        ];
        for path in invalid {
            assert_eq!(
                parse(path).expect_err(path).kind,
                ErrorKind::InvalidName,
                "{path}"
            );
        }
        assert_eq!(
            parse(&format!("/v2/a/_trust/tuf/root.{upper}.json"))
                .expect_err("upper-case hex")
                .kind,
            ErrorKind::InvalidName
        );
        for path in [
            "/v1/",
            "/v2/a/b",
            "/v2/a/_trust/other",
            "/v2/a/_trust/tuf/root.txt",
        ] {
            assert_eq!(
                parse(path).expect_err(path).kind,
                ErrorKind::NotFound,
                "{path}"
            );
        }
    }
}
