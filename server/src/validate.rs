//! Judging an update: pure, no I/O. Every rule comes from the rulebook
//! (`notar_tuf::rules`), which the client workflow uses too; this module only decides which
//! rule applies to which uploaded role, and maps a [`Rejection`] to the API's error codes
//! ([`reject`]). Each decision has a unit test below; the HTTP tests that break each rule
//! through a real server are in `tests/tests/server_api.rs`, and the table of cases that
//! this validator and the client workflow must judge alike is `tests/tests/rulebook.rs`.
//!
//! All roles of one upload are judged together against the stored state: a new root
//! against the previous one, targets against the root after the update, delegated roles
//! against whichever targets role delegates them (stored or in the same upload), and an
//! uploaded snapshot against every targets role after the update.
//!
//! An upload is read in its repository's dialect ([`upload_dialect`]: TUF 1.0, or Notary's,
//! fixed by the first root) into the one model, so both meet the same rules. Notary adds
//! its own: root certificates fit for the GUN, root pinned in the snapshot, sha256 on
//! every pin, removed delegations dropped from the pins, delegations without metadata
//! allowed (Notary clients skip them); `tests/tests/notary_server.rs` breaks each.

use std::collections::BTreeMap;

use bytes::Bytes;
use notar_tuf::notary::{self, Dialect};
use notar_tuf::rules::{self, Rejection};
use notar_tuf::{
    Error as TufError, KeyId, Role, RoleName, RoleType, Root, Signed, Snapshot, Targets, Timestamp,
    Verified,
};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::store::StoredMeta;

/// What is stored for a GUN, parsed. Everything in it was verified when it was accepted.
#[derive(Debug, Default)]
pub struct RepoState {
    /// The repository's name (a Notary root certificate must name it).
    pub gun: String,
    /// The dialect the first root fixed, once there is a root.
    pub dialect: Option<Dialect>,
    pub root: Option<Verified<Root>>,
    /// `targets` and every delegated role, by name.
    pub targets: BTreeMap<RoleName, Verified<Targets>>,
    pub snapshot: Option<Verified<Snapshot>>,
    pub timestamp: Option<Verified<Timestamp>>,
}

impl RepoState {
    /// Parses the newest stored version of every role of `gun`, in its dialect.
    pub fn from_stored(gun: &notar_tuf::Gun, rows: &[StoredMeta]) -> Result<Self, ApiError> {
        let corrupt = |role: &RoleName, e: TufError| {
            ApiError::internal(format!("stored {role} no longer parses: {e}"))
        };
        let mut state = RepoState {
            gun: gun.to_string(),
            ..RepoState::default()
        };
        let mut dialects = Vec::new();
        for row in rows {
            let data = row.data.to_vec();
            let role = &row.role;
            match role.top_level() {
                Some(RoleType::Root) => {
                    let (dialect, root) =
                        Verified::from_trusted_store_either(data).map_err(|e| corrupt(role, e))?;
                    state.dialect = Some(dialect);
                    state.root = Some(root);
                }
                Some(RoleType::Snapshot) => {
                    let (dialect, snapshot) =
                        Verified::from_trusted_store_either(data).map_err(|e| corrupt(role, e))?;
                    dialects.push((role, dialect));
                    state.snapshot = Some(snapshot);
                }
                Some(RoleType::Timestamp) => {
                    let (dialect, timestamp) =
                        Verified::from_trusted_store_either(data).map_err(|e| corrupt(role, e))?;
                    dialects.push((role, dialect));
                    state.timestamp = Some(timestamp);
                }
                Some(RoleType::Targets) | None => {
                    let (dialect, targets) =
                        Verified::from_trusted_store_either(data).map_err(|e| corrupt(role, e))?;
                    dialects.push((role, dialect));
                    state.targets.insert(role.clone(), targets);
                }
            }
        }
        if let Some(fixed) = state.dialect
            && let Some((role, other)) = dialects.into_iter().find(|(_, d)| *d != fixed)
        {
            return Err(ApiError::internal(format!(
                "stored {role} is written in {other}, its root in {fixed}"
            )));
        }
        Ok(state)
    }

    /// The dialect of this repository, or [`Dialect::Tuf`] before its first root.
    pub fn dialect_or_tuf(&self) -> Dialect {
        self.dialect.unwrap_or(Dialect::Tuf)
    }
}

/// The keys this server handed out for a GUN.
#[derive(Clone, Debug, Default)]
pub struct ServerKeyIds {
    pub timestamp: Vec<KeyId>,
    pub snapshot: Vec<KeyId>,
}

/// Who signs snapshots for a repository, as its root says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotSigner {
    /// Root lists only keys the server holds: the server writes each new snapshot.
    Server,
    /// Root lists the publisher's keys: every update carries a snapshot.
    Client,
}

/// An update that passed every rule.
#[derive(Debug)]
pub struct Accepted {
    /// The dialect of the repository after the update.
    pub dialect: Dialect,
    /// The new root, if the update rotates root.
    pub root: Option<Verified<Root>>,
    /// New versions of `targets` and delegated roles.
    pub targets: Vec<(RoleName, Verified<Targets>)>,
    /// The uploaded snapshot, when the publisher signs snapshots.
    pub snapshot: Option<Verified<Snapshot>>,
    pub snapshot_signer: SnapshotSigner,
    /// Version and bytes of every targets role after the update (what a snapshot pins).
    pub targets_after: BTreeMap<RoleName, (notar_tuf::Version, Bytes)>,
}

impl Accepted {
    /// The root in force after the update.
    pub fn root<'a>(&'a self, state: &'a RepoState) -> Option<&'a Verified<Root>> {
        self.root.as_ref().or(state.root.as_ref())
    }
}

fn parse<T: Role + 'static>(
    dialect: Dialect,
    role: &RoleName,
    bytes: Bytes,
) -> Result<Signed<T>, ApiError> {
    dialect
        .parse::<T>(bytes.to_vec())
        .map_err(|e| ApiError::malformed(format!("{role}: {e}")).with_detail(detail(role)))
}

/// An upload whose dialect is read: the files as they came, and the dialect every one of
/// them is written in.
#[derive(Debug)]
pub struct Upload {
    pub dialect: Dialect,
    pub files: Vec<(RoleName, Bytes)>,
}

impl Upload {
    /// Reads the dialect of `files` for `state` ([`upload_dialect`]).
    pub fn read(state: &RepoState, files: Vec<(RoleName, Bytes)>) -> Result<Self, ApiError> {
        Ok(Upload {
            dialect: upload_dialect(state, &files)?,
            files,
        })
    }
}

/// The dialect an upload is written in: every file the same, and the repository's own once
/// its first root fixed it. A mix, or a change of dialect, is refused.
pub fn upload_dialect(
    state: &RepoState,
    uploads: &[(RoleName, Bytes)],
) -> Result<Dialect, ApiError> {
    let mut seen: Option<(&RoleName, Dialect)> = None;
    for (role, bytes) in uploads {
        let kind = role.top_level().map_or("targets", RoleType::as_str);
        let dialect = Dialect::of_document(bytes, &format!("{kind} metadata"))
            .map_err(|e| ApiError::malformed(format!("{role}: {e}")).with_detail(detail(role)))?;
        match seen {
            Some((first, other)) if other != dialect => {
                return Err(ApiError::invalid_update(
                    role.as_str(),
                    format!(
                        "the update mixes dialects: {first} is written in {other}, {role} in {dialect}"
                    ),
                ));
            }
            _ => seen = Some((role, dialect)),
        }
    }
    let dialect = seen.map_or(state.dialect_or_tuf(), |(_, d)| d);
    if let Some(fixed) = state.dialect
        && fixed != dialect
    {
        return Err(ApiError::invalid_update(
            "root",
            format!(
                "{} is a {fixed} repository (its first root fixed the dialect); this update is written in {dialect}",
                state.gun
            ),
        ));
    }
    Ok(dialect)
}

fn detail(role: &RoleName) -> serde_json::Value {
    serde_json::json!({ "role": role.as_str() })
}

/// The one mapping from a rulebook rejection to the API: version rules (a lost race, a
/// replay) are `VERSION`, every other rule `INVALID_UPDATE`.
pub fn reject(rejection: Rejection) -> ApiError {
    let role = rejection.role().to_owned();
    if rejection.is_version() {
        ApiError::version(rejection.to_string()).with_detail(serde_json::json!({ "role": role }))
    } else {
        ApiError::invalid_update(&role, rejection.to_string())
    }
}

fn unexpired<T: Role>(
    role: &RoleName,
    verified: Verified<T>,
    now: OffsetDateTime,
) -> Result<Verified<T>, ApiError> {
    rules::unexpired(role.as_str(), verified.expires(), now).map_err(reject)?;
    Ok(verified)
}

fn newer(
    role: &RoleName,
    new: notar_tuf::Version,
    stored: Option<notar_tuf::Version>,
) -> Result<(), ApiError> {
    rules::newer_version(role.as_str(), stored, new).map_err(reject)
}

/// The rulebook's signature rule, for a role this upload carries.
fn verify<T: Role>(
    signed: Signed<T>,
    authority: &notar_tuf::metadata::Authority<'_>,
    signatures: Signatures,
) -> Result<Verified<T>, ApiError> {
    match signatures {
        Signatures::Threshold => rules::verify_role(signed, authority).map_err(reject),
        Signatures::Proposal => {
            rules::every_signature_counts(
                authority.role.as_str(),
                &signed,
                std::slice::from_ref(authority),
            )
            .map_err(reject)?;
            let one = notar_tuf::metadata::Authority {
                role: authority.role.clone(),
                keys: authority.keys,
                keyids: authority.keyids,
                threshold: std::num::NonZeroU32::MIN,
            };
            rules::verify_role(signed, &one).map_err(reject)
        }
    }
}

/// How many signatures an upload must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signatures {
    /// A threshold of each role's keys: what is published.
    Threshold,
    /// A co-signing proposal: at least one, and every one by a key the role lists and
    /// valid over the bytes ([`rules::every_signature_counts`]). Every other rule holds as
    /// for publishing. What passes is judged only, never stored as current.
    Proposal,
}

/// Whether an update may delegate to a role that has no metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unpublished {
    /// A published update may not: standard TUF clients (python-tuf) refuse every lookup
    /// that reaches such a delegation, so the repository would break for them.
    Refuse,
    /// A pending delegation (staged, not published) exists to do exactly that.
    Allow,
}

/// Judges `uploads` (role name → bytes) against `state`, for publishing.
pub fn check_update(
    state: &RepoState,
    uploads: Vec<(RoleName, Bytes)>,
    server_keys: &ServerKeyIds,
    now: OffsetDateTime,
) -> Result<Accepted, ApiError> {
    let upload = Upload::read(state, uploads)?;
    check_update_with(
        state,
        upload,
        server_keys,
        now,
        Unpublished::Refuse,
        Signatures::Threshold,
    )
}

/// [`check_update`] of an upload whose dialect is read already, saying whether delegations
/// to roles without metadata are allowed.
pub fn check_update_with(
    state: &RepoState,
    upload: Upload,
    server_keys: &ServerKeyIds,
    now: OffsetDateTime,
    unpublished: Unpublished,
    signatures: Signatures,
) -> Result<Accepted, ApiError> {
    let dialect = upload.dialect;
    let mut files: BTreeMap<RoleName, Bytes> = BTreeMap::new();
    for (role, bytes) in upload.files {
        if role.top_level() == Some(RoleType::Timestamp) {
            return Err(ApiError::invalid_update(
                "timestamp",
                "timestamps are made by the server; an update must not carry one",
            ));
        }
        if files.insert(role.clone(), bytes).is_some() {
            return Err(ApiError::malformed(format!(
                "{role} appears twice in one update"
            )));
        }
    }
    if files.is_empty() {
        return Err(ApiError::malformed("the update holds no metadata files"));
    }

    // Root.
    let new_root = match files.remove(&RoleName::root()) {
        Some(bytes) => {
            let root = check_root(
                state,
                parse(dialect, &RoleName::root(), bytes)?,
                now,
                signatures,
            )?;
            if dialect == Dialect::Notary {
                notary::check_root_certificates(&root, &state.gun, now)
                    .map_err(|e| ApiError::invalid_update("root", e.to_string()))?;
            }
            Some(root)
        }
        None => None,
    };
    let root = new_root.as_ref().or(state.root.as_ref()).ok_or_else(|| {
        ApiError::invalid_update(
            "root",
            "the repository has no root yet: the first update must include root",
        )
    })?;
    let snapshot_signer = check_server_keys(root, server_keys, new_root.is_some())?;

    // Targets and delegated roles.
    let mut accepted: BTreeMap<RoleName, Verified<Targets>> = BTreeMap::new();
    let targets_name = RoleName::targets();
    if let Some(bytes) = files.remove(&targets_name) {
        let signed: Signed<Targets> = parse(dialect, &targets_name, bytes)?;
        newer(
            &targets_name,
            signed.untrusted().version,
            state.targets.get(&targets_name).map(|t| t.version),
        )?;
        let authority = root
            .authority(RoleType::Targets)
            .ok_or_else(|| ApiError::invalid_update("root", "root lists no targets role"))?;
        let verified = verify(signed, &authority, signatures)?;
        accepted.insert(
            targets_name.clone(),
            unexpired(&targets_name, verified, now)?,
        );
    } else if let Some(stored) = state.targets.get(&targets_name) {
        if new_root.is_some() {
            let authority = root
                .authority(RoleType::Targets)
                .ok_or_else(|| ApiError::invalid_update("root", "root lists no targets role"))?;
            stored.signed().check(&authority).map_err(|e| {
                ApiError::invalid_update(
                    "targets",
                    format!(
                        "the new root's targets keys do not sign the stored targets ({e}); \
                         upload targets re-signed with the new key in the same update"
                    ),
                )
            })?;
        }
    } else {
        return Err(ApiError::invalid_update(
            "targets",
            "the repository has no targets yet: the first update must include targets",
        ));
    }

    let snapshot_bytes = files.remove(&RoleName::snapshot());
    check_delegated(state, dialect, &mut accepted, files, now, signatures)?;
    // Notary clients skip a delegation without metadata, as the specification of their
    // dialect allows; only TUF 1.0 clients need every delegated role published.
    if unpublished == Unpublished::Refuse && dialect == Dialect::Tuf {
        for (delegator, targets) in &accepted {
            let Some(delegations) = &targets.delegations else {
                continue;
            };
            if let Some(missing) = delegations
                .roles
                .iter()
                .find(|r| !state.targets.contains_key(&r.name) && !accepted.contains_key(&r.name))
            {
                return Err(ApiError::invalid_update(
                    delegator.as_str(),
                    format!(
                        "{delegator} delegates {}, which has no metadata: standard TUF clients would refuse the repository. \
                         Upload {} in the same update, or stage the delegation as pending (POST …/_trust/pending/)",
                        missing.name, missing.name
                    ),
                ));
            }
        }
    }

    let mut targets_after: BTreeMap<RoleName, (notar_tuf::Version, Bytes)> = state
        .targets
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                (t.version, Bytes::copy_from_slice(t.as_bytes())),
            )
        })
        .collect();
    for (name, t) in &accepted {
        targets_after.insert(
            name.clone(),
            (t.version, Bytes::copy_from_slice(t.as_bytes())),
        );
    }
    if dialect == Dialect::Notary {
        // Notary drops a removed delegation from the snapshot: only roles still delegated
        // are pinned.
        let reachable = reachable_roles(state, &accepted);
        targets_after.retain(|name, _| reachable.contains(name));
    }

    // Snapshot.
    let snapshot = match (snapshot_bytes, snapshot_signer) {
        (Some(bytes), _) => {
            let name = RoleName::snapshot();
            let signed: Signed<Snapshot> = parse(dialect, &name, bytes)?;
            newer(
                &name,
                signed.untrusted().version,
                state.snapshot.as_ref().map(|s| s.version),
            )?;
            let authority = root
                .authority(RoleType::Snapshot)
                .ok_or_else(|| ApiError::invalid_update("root", "root lists no snapshot role"))?;
            let verified = verify(signed, &authority, signatures)?;
            let verified = unexpired(&name, verified, now)?;
            if dialect == Dialect::Notary {
                // Notary pins root too, and by sha256 always.
                let root_bytes = Bytes::copy_from_slice(root.as_bytes());
                check_snapshot_meta(
                    &verified,
                    &BTreeMap::from([(RoleName::root(), (root.version, root_bytes))]),
                )?;
                for meta in verified.meta.values() {
                    if !meta
                        .hashes
                        .as_ref()
                        .is_some_and(|h| h.contains_key("sha256"))
                    {
                        return Err(ApiError::invalid_update(
                            "snapshot",
                            "a Notary snapshot pins every file by sha256",
                        ));
                    }
                }
            } else if let Some(stored) = &state.snapshot {
                rules::snapshot_succession(stored, &verified).map_err(reject)?;
            }
            check_snapshot_meta(&verified, &targets_after)?;
            Some(verified)
        }
        (None, SnapshotSigner::Server) => None,
        (None, SnapshotSigner::Client) => {
            return Err(ApiError::invalid_update(
                "snapshot",
                "the server does not hold this repository's snapshot key: the update must include snapshot",
            )
            .with_detail(serde_json::json!({ "role": "snapshot", "missing": "snapshot" })));
        }
    };

    Ok(Accepted {
        dialect,
        root: new_root,
        targets: accepted.into_iter().collect(),
        snapshot,
        snapshot_signer,
        targets_after,
    })
}

fn check_root(
    state: &RepoState,
    signed: Signed<Root>,
    now: OffsetDateTime,
    signatures: Signatures,
) -> Result<Verified<Root>, ApiError> {
    if signatures == Signatures::Proposal {
        return check_proposed_root(state, signed, now);
    }
    let verified = match &state.root {
        Some(old) => rules::next_root(old, signed),
        None => rules::first_root(signed),
    }
    .map_err(reject)?;
    unexpired(&RoleName::root(), verified, now)
}

/// A proposed root rotation: exactly the next version, and every signature by a root key of
/// the stored root or of the new one. Judged only: a proposal is never stored as current.
fn check_proposed_root(
    state: &RepoState,
    signed: Signed<Root>,
    now: OffsetDateTime,
) -> Result<Verified<Root>, ApiError> {
    let Some(old) = &state.root else {
        return Err(ApiError::invalid_update(
            "root",
            "a repository's first root is uploaded signed, not proposed",
        ));
    };
    let expected = old.version.next();
    let got = signed.untrusted().version;
    if got != expected {
        return Err(reject(rules::Rejection::NotNextRoot {
            expected: expected.get(),
            got: got.get(),
        }));
    }
    let no_keys = || ApiError::invalid_update("root", "root lists no root role");
    let old_keys = old.authority(RoleType::Root).ok_or_else(no_keys)?;
    let new_keys = signed
        .untrusted()
        .authority(RoleType::Root)
        .ok_or_else(no_keys)?;
    rules::every_signature_counts("root", &signed, &[old_keys, new_keys]).map_err(reject)?;
    let judged = Verified::from_trusted_store(signed.bytes())
        .map_err(|e| ApiError::malformed(format!("root: {e}")))?;
    unexpired(&RoleName::root(), judged, now)
}

/// Root must give the timestamp role only keys this server made for the GUN (it signs every
/// timestamp alone), and the snapshot role either only server keys or none of them.
fn check_server_keys(
    root: &Root,
    server: &ServerKeyIds,
    root_is_new: bool,
) -> Result<SnapshotSigner, ApiError> {
    let listed = |role: RoleType| {
        root.role_keys(role)
            .map(|r| (r.keyids.clone(), r.threshold.get()))
            .unwrap_or_default()
    };
    let (ts_keys, ts_threshold) = listed(RoleType::Timestamp);
    if root_is_new
        && (ts_keys.is_empty()
            || ts_threshold != 1
            || !ts_keys.iter().all(|k| server.timestamp.contains(k)))
    {
        return Err(ApiError::invalid_update(
            "root",
            "root must list, with threshold 1, only timestamp keys this server made for the \
             repository (GET …/_trust/tuf/timestamp.key)",
        ));
    }
    let (snap_keys, snap_threshold) = listed(RoleType::Snapshot);
    let held = snap_keys
        .iter()
        .filter(|k| server.snapshot.contains(k))
        .count();
    match held {
        0 => Ok(SnapshotSigner::Client),
        n if n == snap_keys.len() && snap_threshold == 1 => Ok(SnapshotSigner::Server),
        _ if !root_is_new => Ok(SnapshotSigner::Client),
        _ => Err(ApiError::invalid_update(
            "root",
            "root's snapshot role mixes server-held and other keys, or needs more than one \
             server signature",
        )),
    }
}

/// Accepts delegated roles in delegation order: a role is judged once the role that
/// delegates it (stored, or earlier in this upload) is known.
fn check_delegated(
    state: &RepoState,
    dialect: Dialect,
    accepted: &mut BTreeMap<RoleName, Verified<Targets>>,
    mut pending: BTreeMap<RoleName, Bytes>,
    now: OffsetDateTime,
    signatures: Signatures,
) -> Result<(), ApiError> {
    while !pending.is_empty() {
        let mut progressed = false;
        let names: Vec<RoleName> = pending.keys().cloned().collect();
        for name in names {
            let Some(delegator) = find_delegator(state, accepted, &name) else {
                continue;
            };
            let Some(bytes) = pending.remove(&name) else {
                continue;
            };
            let signed: Signed<Targets> = parse(dialect, &name, bytes)?;
            newer(
                &name,
                signed.untrusted().version,
                state.targets.get(&name).map(|t| t.version),
            )?;
            let delegations = delegator
                .delegations
                .as_ref()
                .ok_or_else(|| ApiError::internal("a delegator without delegations was chosen"))?;
            let authority = delegations
                .authority(name.as_str())
                .ok_or_else(|| ApiError::internal("a delegator without the role was chosen"))?;
            let role = delegations
                .role(name.as_str())
                .ok_or_else(|| ApiError::internal("a delegator without the role was chosen"))?;
            let verified = verify(signed, &authority, signatures)?;
            let verified = unexpired(&name, verified, now)?;
            if let Some(outside) = verified.targets.keys().find(|t| !role.matches(t.as_str())) {
                return Err(ApiError::invalid_update(
                    name.as_str(),
                    format!("target {outside} is outside the paths delegated to {name}"),
                ));
            }
            accepted.insert(name, verified);
            progressed = true;
        }
        if !progressed {
            let orphan = pending
                .keys()
                .next()
                .map(|r| r.to_string())
                .unwrap_or_default();
            return Err(ApiError::invalid_update(
                &orphan,
                format!("no targets role delegates {orphan}"),
            ));
        }
    }
    Ok(())
}

/// The targets roles reachable from `targets` through delegations after the update.
fn reachable_roles(
    state: &RepoState,
    accepted: &BTreeMap<RoleName, Verified<Targets>>,
) -> std::collections::BTreeSet<RoleName> {
    let mut reachable = std::collections::BTreeSet::new();
    let mut queue = vec![RoleName::targets()];
    while let Some(name) = queue.pop() {
        if !reachable.insert(name.clone()) {
            continue;
        }
        let Some(targets) = accepted.get(&name).or_else(|| state.targets.get(&name)) else {
            continue;
        };
        for role in targets.delegations.iter().flat_map(|d| d.roles.iter()) {
            queue.push(role.name.clone());
        }
    }
    reachable
}

/// The targets role that delegates `name`: this upload's version of a role wins over the
/// stored one; `targets` is asked first, then the others by name.
fn find_delegator<'a>(
    state: &'a RepoState,
    accepted: &'a BTreeMap<RoleName, Verified<Targets>>,
    name: &RoleName,
) -> Option<&'a Verified<Targets>> {
    let mut candidates: Vec<&RoleName> = accepted.keys().chain(state.targets.keys()).collect();
    candidates.sort_by_key(|r| (r.is_delegated(), r.as_str().to_owned()));
    candidates.dedup();
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .filter_map(|c| accepted.get(c).or_else(|| state.targets.get(c)))
        .find(|t| {
            t.delegations
                .as_ref()
                .is_some_and(|d| d.role(name.as_str()).is_some())
        })
}

/// An uploaded snapshot must pin every targets role after the update as the client
/// workflow will check it: the version exactly, and the length and every listed hash
/// (the rulebook's pin rules).
fn check_snapshot_meta(
    snapshot: &Snapshot,
    targets_after: &BTreeMap<RoleName, (notar_tuf::Version, Bytes)>,
) -> Result<(), ApiError> {
    for (name, (version, bytes)) in targets_after {
        let file = format!("{name}.json");
        let meta = snapshot.meta.get(&file).ok_or_else(|| {
            ApiError::invalid_update("snapshot", format!("snapshot does not list {file}"))
        })?;
        let pinned = format!("{name} (as snapshot pins it)");
        rules::pinned_version(&pinned, meta, *version)
            .and_then(|()| rules::matches_pin(&pinned, bytes, meta))
            .map_err(|r| ApiError::invalid_update("snapshot", r.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! One test per decision of [`check_update`], each with an update that breaks it.
    use super::*;
    use crate::error::ErrorKind;
    use notar_tuf::{Expiry, MetaFile, Signer, TargetFile, Version};
    use sha2::Digest as _;

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }
    fn v(n: u64) -> Version {
        Version::new(n).expect("version")
    }
    fn later() -> Expiry {
        "2099-01-01T00:00:00Z".parse().expect("expiry")
    }
    fn now() -> OffsetDateTime {
        time::macros::datetime!(2030-01-01 00:00 UTC)
    }

    /// Root key 1, targets key 2, timestamp key 3 (server), snapshot key 4 (client-held
    /// unless `server_snapshot`).
    struct Repo {
        state: RepoState,
        keys: ServerKeyIds,
        root: Root,
    }

    fn root_v1() -> Root {
        let mut root = Root::new(v(1), later());
        root.add_key(RoleType::Root, key(1).public_key());
        root.add_key(RoleType::Targets, key(2).public_key());
        root.add_key(RoleType::Timestamp, key(3).public_key());
        root.add_key(RoleType::Snapshot, key(4).public_key());
        root
    }

    fn targets(version: u64, tags: &[&str]) -> Targets {
        let mut t = Targets::new(v(version), later());
        for tag in tags {
            t.targets.insert(
                notar_tuf::TargetName::new(*tag).expect("name"),
                TargetFile::sha256(3, [7; 32]),
            );
        }
        t
    }

    fn sign<T: Role>(content: T, keys: &[&ed25519_dalek::SigningKey]) -> Signed<T> {
        let signers: Vec<&dyn Signer> = keys.iter().map(|k| *k as &dyn Signer).collect();
        Signed::sign(content, &signers).expect("sign")
    }

    fn repo(server_snapshot: bool) -> Repo {
        let root = root_v1();
        let signed_root = sign(root.clone(), &[&key(1)]);
        let t1 = sign(targets(1, &["v1"]), &[&key(2)]);
        let mut state = RepoState {
            root: Some(
                Verified::from_trusted_store(signed_root.as_bytes().to_vec()).expect("root"),
            ),
            ..RepoState::default()
        };
        state.targets.insert(
            RoleName::targets(),
            Verified::from_trusted_store(t1.as_bytes().to_vec()).expect("targets"),
        );
        let mut snap = Snapshot::new(v(1), later());
        snap.meta.insert(
            "targets.json".into(),
            MetaFile::new(v(1), Some(t1.as_bytes())),
        );
        state.snapshot = Some(
            Verified::from_trusted_store(sign(snap, &[&key(4)]).as_bytes().to_vec())
                .expect("snapshot"),
        );
        let keys = ServerKeyIds {
            timestamp: vec![key(3).public_key().key_id()],
            snapshot: if server_snapshot {
                vec![key(4).public_key().key_id()]
            } else {
                Vec::new()
            },
        };
        Repo { state, keys, root }
    }

    fn check(repo: &Repo, uploads: &[(&str, &[u8])]) -> Result<Accepted, ApiError> {
        let uploads = uploads
            .iter()
            .map(|(r, b)| (RoleName::new(*r).expect("role"), Bytes::copy_from_slice(b)))
            .collect();
        check_update(&repo.state, uploads, &repo.keys, now())
    }

    fn refused(result: Result<Accepted, ApiError>, kind: ErrorKind, needle: &str) {
        match result {
            Ok(_) => panic!("accepted; expected {kind:?} with {needle:?}"),
            Err(e) => {
                assert_eq!(e.kind, kind, "{e}");
                assert!(e.message.contains(needle), "{e} should contain {needle:?}");
            }
        }
    }

    fn snapshot_for(
        version: u64,
        targets: &Signed<Targets>,
        hashes: &[(&str, String)],
    ) -> Signed<Snapshot> {
        let mut snap = Snapshot::new(v(version), later());
        let mut meta = MetaFile::new(targets.untrusted().version, None);
        meta.length = Some(targets.as_bytes().len() as u64);
        meta.hashes = Some(
            hashes
                .iter()
                .map(|(a, h)| ((*a).to_owned(), h.clone()))
                .collect(),
        );
        snap.meta.insert("targets.json".into(), meta);
        sign(snap, &[&key(4)])
    }

    fn judge(
        repo: &Repo,
        role: &str,
        bytes: &[u8],
        signatures: Signatures,
    ) -> Result<Accepted, ApiError> {
        let uploads = vec![(
            RoleName::new(role).expect("role"),
            Bytes::copy_from_slice(bytes),
        )];
        let upload = Upload::read(&repo.state, uploads)?;
        check_update_with(
            &repo.state,
            upload,
            &repo.keys,
            now(),
            Unpublished::Refuse,
            signatures,
        )
    }

    #[test]
    fn a_proposal_needs_every_signature_valid_but_not_the_threshold() {
        let repo = repo(true);
        // Root v2 with a second root key and threshold 2, signed by the first key only.
        let mut next = repo.root.clone();
        next.version = v(2);
        next.add_key(RoleType::Root, key(5).public_key());
        next.roles
            .get_mut(&RoleType::Root)
            .expect("root role")
            .threshold = std::num::NonZeroU32::new(2).expect("two");
        let half = sign(next.clone(), &[&key(1)]);
        assert!(judge(&repo, "root", half.as_bytes(), Signatures::Proposal).is_ok());
        refused(
            judge(&repo, "root", half.as_bytes(), Signatures::Threshold),
            ErrorKind::InvalidUpdate,
            "threshold",
        );
        // Both keys: complete, so it publishes.
        let whole = sign(next.clone(), &[&key(1), &key(5)]);
        assert!(judge(&repo, "root", whole.as_bytes(), Signatures::Threshold).is_ok());
        // A key neither root lists, a signature over other bytes, the wrong version.
        let stranger = sign(next.clone(), &[&key(1), &key(9)]);
        refused(
            judge(&repo, "root", stranger.as_bytes(), Signatures::Proposal),
            ErrorKind::InvalidUpdate,
            "does not list",
        );
        let mut other = next.clone();
        other.expires = "2098-01-01T00:00:00Z".parse().expect("expiry");
        let spliced = half
            .clone()
            .with_signatures(sign(other, &[&key(5)]).signatures())
            .expect("splice");
        refused(
            judge(&repo, "root", spliced.as_bytes(), Signatures::Proposal),
            ErrorKind::InvalidUpdate,
            "does not verify",
        );
        let mut skipped = next;
        skipped.version = v(3);
        refused(
            judge(
                &repo,
                "root",
                sign(skipped, &[&key(1)]).as_bytes(),
                Signatures::Proposal,
            ),
            ErrorKind::Version,
            "next version",
        );
        // Targets with no signature at all are no proposal; the other rules still hold.
        let unsigned = sign(targets(2, &["v2"]), &[]);
        refused(
            judge(&repo, "targets", unsigned.as_bytes(), Signatures::Proposal),
            ErrorKind::InvalidUpdate,
            "threshold",
        );
        let stale = sign(targets(1, &["v2"]), &[&key(2)]);
        refused(
            judge(&repo, "targets", stale.as_bytes(), Signatures::Proposal),
            ErrorKind::Version,
            "not newer",
        );
    }

    #[test]
    fn accepts_a_newer_signed_targets() {
        let repo = repo(true);
        let t2 = sign(targets(2, &["v1", "v2"]), &[&key(2)]);
        let accepted = check(&repo, &[("targets", t2.as_bytes())]).expect("accepted");
        assert_eq!(accepted.snapshot_signer, SnapshotSigner::Server);
        assert_eq!(accepted.targets.len(), 1);
    }

    #[test]
    fn newer_version() {
        let repo = repo(true);
        let same = sign(targets(1, &["v2"]), &[&key(2)]);
        refused(
            check(&repo, &[("targets", same.as_bytes())]),
            ErrorKind::Version,
            "not newer",
        );
    }

    #[test]
    fn unexpired() {
        let repo = repo(true);
        let mut t = targets(2, &["v2"]);
        t.expires = "2020-01-01T00:00:00Z".parse().expect("expiry");
        let t = sign(t, &[&key(2)]);
        refused(
            check(&repo, &[("targets", t.as_bytes())]),
            ErrorKind::InvalidUpdate,
            "targets expired",
        );
    }

    #[test]
    fn signatures_meet_the_threshold() {
        let repo = repo(true);
        let t = sign(targets(2, &["v2"]), &[&key(9)]);
        refused(
            check(&repo, &[("targets", t.as_bytes())]),
            ErrorKind::InvalidUpdate,
            "0 valid signature(s)",
        );
    }

    #[test]
    fn a_key_id_twice_is_refused() {
        let repo = repo(true);
        let t = sign(targets(2, &["v2"]), &[&key(2)]);
        let mut doc: serde_json::Value = serde_json::from_slice(t.as_bytes()).expect("json");
        let first = doc["signatures"][0].clone();
        let mut garbage = first.clone();
        garbage["sig"] = serde_json::json!("00");
        doc["signatures"] = serde_json::json!([first, garbage]);
        let bytes = serde_json::to_vec(&doc).expect("json");
        refused(
            check(&repo, &[("targets", &bytes)]),
            ErrorKind::InvalidUpdate,
            "appears twice",
        );
    }

    #[test]
    fn next_root() {
        let repo = repo(true);
        let mut r3 = repo.root.clone();
        r3.version = v(3);
        let r3 = sign(r3, &[&key(1)]);
        refused(
            check(&repo, &[("root", r3.as_bytes())]),
            ErrorKind::Version,
            "not the next version 2",
        );
        let mut r2 = repo.root.clone();
        r2.version = v(2);
        r2.remove_key(RoleType::Root, &key(1).public_key().key_id());
        r2.add_key(RoleType::Root, key(5).public_key());
        let only_new = sign(r2.clone(), &[&key(5)]);
        refused(
            check(&repo, &[("root", only_new.as_bytes())]),
            ErrorKind::InvalidUpdate,
            "previous root's keys",
        );
        let both = sign(r2, &[&key(1), &key(5)]);
        assert!(check(&repo, &[("root", both.as_bytes())]).is_ok());
    }

    #[test]
    fn snapshot_pins_every_hash_in_any_case() {
        let repo = repo(false);
        let t2 = sign(targets(2, &["v2"]), &[&key(2)]);
        let sha256 = hex::encode(sha2::Sha256::digest(t2.as_bytes()));
        let upper = snapshot_for(2, &t2, &[("sha256", sha256.to_uppercase())]);
        assert!(
            check(
                &repo,
                &[("targets", t2.as_bytes()), ("snapshot", upper.as_bytes())]
            )
            .is_ok()
        );
        let wrong512 = snapshot_for(
            2,
            &t2,
            &[("sha256", sha256.clone()), ("sha512", "0".repeat(128))],
        );
        refused(
            check(
                &repo,
                &[
                    ("targets", t2.as_bytes()),
                    ("snapshot", wrong512.as_bytes()),
                ],
            ),
            ErrorKind::InvalidUpdate,
            "sha512 hash does not match",
        );
        let unknown = snapshot_for(2, &t2, &[("md5", "00".into())]);
        refused(
            check(
                &repo,
                &[("targets", t2.as_bytes()), ("snapshot", unknown.as_bytes())],
            ),
            ErrorKind::InvalidUpdate,
            "unsupported hash algorithm",
        );
        let old = snapshot_for(1, &t2, &[("sha256", sha256)]);
        refused(
            check(
                &repo,
                &[("targets", t2.as_bytes()), ("snapshot", old.as_bytes())],
            ),
            ErrorKind::Version,
            "not newer",
        );
    }

    #[test]
    fn a_client_signed_snapshot_comes_with_every_update() {
        let repo = repo(false);
        let t2 = sign(targets(2, &["v2"]), &[&key(2)]);
        refused(
            check(&repo, &[("targets", t2.as_bytes())]),
            ErrorKind::InvalidUpdate,
            "must include snapshot",
        );
    }

    #[test]
    fn delegated_targets_stay_inside_their_paths() {
        let repo = repo(true);
        let mut t2 = targets(2, &[]);
        let mut delegations = notar_tuf::Delegations::new();
        delegations.add_role(
            RoleName::new("targets/bob").expect("role"),
            &[key(6).public_key()],
            std::num::NonZeroU32::MIN,
            vec!["rc-*".into()],
        );
        t2.delegations = Some(delegations);
        let t2 = sign(t2, &[&key(2)]);
        let bob = sign(targets(1, &["v9"]), &[&key(6)]);
        refused(
            check(
                &repo,
                &[("targets", t2.as_bytes()), ("targets/bob", bob.as_bytes())],
            ),
            ErrorKind::InvalidUpdate,
            "outside the paths delegated to targets/bob",
        );
        let ok = sign(targets(1, &["rc-1"]), &[&key(6)]);
        assert!(
            check(
                &repo,
                &[("targets", t2.as_bytes()), ("targets/bob", ok.as_bytes())]
            )
            .is_ok()
        );
    }

    #[test]
    fn a_delegation_to_a_role_without_metadata_is_only_staged() {
        let repo = repo(true);
        let mut t2 = targets(2, &[]);
        let mut delegations = notar_tuf::Delegations::new();
        delegations.add_role(
            RoleName::new("targets/alice").expect("role"),
            &[key(7).public_key()],
            std::num::NonZeroU32::MIN,
            vec!["*".into()],
        );
        t2.delegations = Some(delegations);
        let t2 = sign(t2, &[&key(2)]);
        refused(
            check(&repo, &[("targets", t2.as_bytes())]),
            ErrorKind::InvalidUpdate,
            "delegates targets/alice, which has no metadata",
        );
        let uploads = vec![(RoleName::targets(), Bytes::copy_from_slice(t2.as_bytes()))];
        let upload = Upload::read(&repo.state, uploads).expect("TUF 1.0");
        assert!(
            check_update_with(
                &repo.state,
                upload,
                &repo.keys,
                now(),
                Unpublished::Allow,
                Signatures::Threshold
            )
            .is_ok()
        );
        let alice = sign(targets(1, &["v1"]), &[&key(7)]);
        assert!(
            check(
                &repo,
                &[
                    ("targets", t2.as_bytes()),
                    ("targets/alice", alice.as_bytes())
                ]
            )
            .is_ok()
        );
    }

    #[test]
    fn timestamps_are_the_servers() {
        let repo = repo(true);
        let ts = sign(
            Timestamp::new(v(2), later(), MetaFile::new(v(1), None)),
            &[&key(3)],
        );
        refused(
            check(&repo, &[("timestamp", ts.as_bytes())]),
            ErrorKind::InvalidUpdate,
            "made by the server",
        );
    }
}
