//! The rules for accepting an update: pure, no I/O, so each rule is tested by a request
//! that breaks it (server/tests/api.rs) and reads without the HTTP layer here.
//!
//! All roles of one upload are judged together against the stored state: a new root
//! against the previous one, targets against the root after the update, delegated roles
//! against whichever targets role delegates them (stored or in the same upload), and an
//! uploaded snapshot against every targets role after the update.

use std::collections::BTreeMap;

use bytes::Bytes;
use notar_tuf::{
    Error as TufError, KeyId, Role, RoleName, RoleType, Root, Signed, Snapshot, Targets, Timestamp,
    Verified,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::store::StoredMeta;

/// What is stored for a GUN, parsed. Everything in it was verified when it was accepted.
#[derive(Debug, Default)]
pub struct RepoState {
    pub root: Option<Verified<Root>>,
    /// `targets` and every delegated role, by name.
    pub targets: BTreeMap<RoleName, Verified<Targets>>,
    pub snapshot: Option<Verified<Snapshot>>,
    pub timestamp: Option<Verified<Timestamp>>,
}

impl RepoState {
    /// Parses the newest stored version of every role.
    pub fn from_stored(rows: &[StoredMeta]) -> Result<Self, ApiError> {
        let corrupt = |role: &RoleName, e: TufError| {
            ApiError::internal(format!("stored {role} no longer parses: {e}"))
        };
        let mut state = RepoState::default();
        for row in rows {
            let data = row.data.to_vec();
            match row.role.top_level() {
                Some(RoleType::Root) => {
                    state.root = Some(
                        Verified::from_trusted_store(data).map_err(|e| corrupt(&row.role, e))?,
                    )
                }
                Some(RoleType::Snapshot) => {
                    state.snapshot = Some(
                        Verified::from_trusted_store(data).map_err(|e| corrupt(&row.role, e))?,
                    )
                }
                Some(RoleType::Timestamp) => {
                    state.timestamp = Some(
                        Verified::from_trusted_store(data).map_err(|e| corrupt(&row.role, e))?,
                    )
                }
                Some(RoleType::Targets) | None => {
                    let targets =
                        Verified::from_trusted_store(data).map_err(|e| corrupt(&row.role, e))?;
                    state.targets.insert(row.role.clone(), targets);
                }
            }
        }
        Ok(state)
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

fn parse<T: Role>(role: &RoleName, bytes: Bytes) -> Result<Signed<T>, ApiError> {
    Signed::<T>::from_bytes(bytes.to_vec())
        .map_err(|e| ApiError::malformed(format!("{role}: {e}")).with_detail(detail(role)))
}

fn detail(role: &RoleName) -> serde_json::Value {
    serde_json::json!({ "role": role.as_str() })
}

fn unexpired<T: Role>(
    role: &RoleName,
    verified: Verified<T>,
    now: OffsetDateTime,
) -> Result<Verified<T>, ApiError> {
    verified
        .check_expiry(now)
        .map_err(|e| ApiError::invalid_update(role.as_str(), format!("{e}")))?;
    Ok(verified)
}

fn newer(
    role: &RoleName,
    new: notar_tuf::Version,
    stored: Option<notar_tuf::Version>,
) -> Result<(), ApiError> {
    match stored {
        Some(old) if new <= old => Err(ApiError::version(format!(
            "{role} version {new} is not newer than the stored version {old}"
        ))
        .with_detail(detail(role))),
        _ => Ok(()),
    }
}

/// Judges `uploads` (role name → bytes) against `state`.
pub fn check_update(
    state: &RepoState,
    uploads: Vec<(RoleName, Bytes)>,
    server_keys: &ServerKeyIds,
    now: OffsetDateTime,
) -> Result<Accepted, ApiError> {
    let mut files: BTreeMap<RoleName, Bytes> = BTreeMap::new();
    for (role, bytes) in uploads {
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
        Some(bytes) => Some(check_root(state, parse(&RoleName::root(), bytes)?, now)?),
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
        let signed: Signed<Targets> = parse(&targets_name, bytes)?;
        newer(
            &targets_name,
            signed.untrusted().version,
            state.targets.get(&targets_name).map(|t| t.version),
        )?;
        let authority = root
            .authority(RoleType::Targets)
            .ok_or_else(|| ApiError::invalid_update("root", "root lists no targets role"))?;
        let verified = signed
            .verify(&authority)
            .map_err(|e| ApiError::invalid_update("targets", e.to_string()))?;
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
    check_delegated(state, &mut accepted, files, now)?;

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

    // Snapshot.
    let snapshot = match (snapshot_bytes, snapshot_signer) {
        (Some(bytes), _) => {
            let name = RoleName::snapshot();
            let signed: Signed<Snapshot> = parse(&name, bytes)?;
            newer(
                &name,
                signed.untrusted().version,
                state.snapshot.as_ref().map(|s| s.version),
            )?;
            let authority = root
                .authority(RoleType::Snapshot)
                .ok_or_else(|| ApiError::invalid_update("root", "root lists no snapshot role"))?;
            let verified = signed
                .verify(&authority)
                .map_err(|e| ApiError::invalid_update("snapshot", e.to_string()))?;
            let verified = unexpired(&name, verified, now)?;
            check_snapshot_meta(&verified, &targets_after)?;
            Some(verified)
        }
        (None, SnapshotSigner::Server) => None,
        (None, SnapshotSigner::Client) => {
            return Err(ApiError::invalid_update(
                "snapshot",
                "the server does not hold this repository's snapshot key: the update must include snapshot",
            ));
        }
    };

    Ok(Accepted {
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
) -> Result<Verified<Root>, ApiError> {
    let invalid = |message: String| ApiError::invalid_update("root", message);
    if let Some(old) = &state.root {
        let expected = old.version.next();
        if signed.untrusted().version != expected {
            return Err(ApiError::version(format!(
                "root version {} is not the next version {expected}",
                signed.untrusted().version
            ))
            .with_detail(detail(&RoleName::root())));
        }
        let authority = old
            .authority(RoleType::Root)
            .ok_or_else(|| ApiError::internal("stored root lists no root role"))?;
        signed.check(&authority).map_err(|e| {
            invalid(format!(
                "the new root is not signed by a threshold of the previous root's keys: {e}"
            ))
        })?;
    }
    let verified = signed.verify_self().map_err(|e| {
        invalid(format!(
            "root is not signed by a threshold of its own root keys: {e}"
        ))
    })?;
    unexpired(&RoleName::root(), verified, now)
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
    accepted: &mut BTreeMap<RoleName, Verified<Targets>>,
    mut pending: BTreeMap<RoleName, Bytes>,
    now: OffsetDateTime,
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
            let signed: Signed<Targets> = parse(&name, bytes)?;
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
            let verified = signed
                .verify(&authority)
                .map_err(|e| ApiError::invalid_update(name.as_str(), e.to_string()))?;
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

/// An uploaded snapshot must pin exactly the version (and, where it gives them, the length
/// and sha256) of every targets role after the update.
fn check_snapshot_meta(
    snapshot: &Snapshot,
    targets_after: &BTreeMap<RoleName, (notar_tuf::Version, Bytes)>,
) -> Result<(), ApiError> {
    let invalid = |message: String| ApiError::invalid_update("snapshot", message);
    for (name, (version, bytes)) in targets_after {
        let file = format!("{name}.json");
        let meta = snapshot
            .meta
            .get(&file)
            .ok_or_else(|| invalid(format!("snapshot does not list {file}")))?;
        if meta.version != *version {
            return Err(invalid(format!(
                "snapshot pins {file} version {}, but after this update it is version {version}",
                meta.version
            )));
        }
        if meta.length.is_some_and(|l| l != bytes.len() as u64) {
            return Err(invalid(format!(
                "snapshot gives the wrong length for {file}"
            )));
        }
        if let Some(hash) = meta.hashes.as_ref().and_then(|h| h.get("sha256")) {
            if *hash != hex::encode(Sha256::digest(bytes)) {
                return Err(invalid(format!(
                    "snapshot gives the wrong sha256 for {file}"
                )));
            }
        }
    }
    Ok(())
}
