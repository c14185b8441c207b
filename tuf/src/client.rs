//! The TUF 1.0 client workflow (specification §5, "Detailed client workflow").
//!
//! An [`Updater`] starts from a trusted root and whatever verified metadata the caller kept,
//! then [`Updater::refresh`] walks the root chain, timestamp, snapshot and top-level targets
//! with every check the specification lists; [`Updater::find_target`] searches delegations
//! depth first, fetching a delegated role only when the search reaches it. Downloads go
//! through the [`Fetch`] trait, so HTTP, files or a test double can drive it; the updater
//! itself does no I/O. Every check uses the time the update started.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::metadata::{Role, RoleType};
use crate::{
    Error as TufError, MetaFile, RoleName, Root, Signed, Snapshot, TargetFile, Targets,
    Timestamp, Verified, Version,
};

/// Downloads metadata. `name` is a file name relative to the metadata base URL
/// (`timestamp.json`, `3.root.json`, `2.targets%2Freleases.json`).
pub trait Fetch {
    /// The file's bytes, `Ok(None)` if the repository does not have it (HTTP 404), or an
    /// error. Must not return more than `max_len` bytes: stop reading and fail with
    /// [`FetchError::TooLarge`] instead.
    fn fetch(
        &self,
        name: &str,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send;
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Transport(String),
}

/// Size limits on downloads where the metadata gives none, and on the work one update may do.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub root_max_bytes: u64,
    pub timestamp_max_bytes: u64,
    pub snapshot_max_bytes: u64,
    pub targets_max_bytes: u64,
    /// Root versions one refresh may walk.
    pub max_root_rotations: u64,
    /// Roles one target search may visit.
    pub max_delegations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            root_max_bytes: 512 * 1024,
            timestamp_max_bytes: 16 * 1024,
            snapshot_max_bytes: 16 * 1024 * 1024,
            targets_max_bytes: 64 * 1024 * 1024,
            max_root_rotations: 256,
            max_delegations: 32,
        }
    }
}

/// Why an update did not establish trust. Every variant names the role.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    #[error("fetching {role}: {source}")]
    Fetch {
        role: String,
        #[source]
        source: FetchError,
    },
    #[error("{role}: not found on the server")]
    NotFound { role: String },
    #[error("{role}: {source}")]
    Invalid {
        role: String,
        #[source]
        source: TufError,
    },
    #[error("{role}: rollback: version {new} is older than the trusted version {trusted}")]
    Rollback { role: String, trusted: u64, new: u64 },
    #[error("{role}: version {got} where version {expected} was expected")]
    VersionMismatch {
        role: String,
        expected: u64,
        got: u64,
    },
    #[error("{role}: length {got} does not match the {expected} bytes snapshot or timestamp gives")]
    LengthMismatch { role: String, expected: u64, got: u64 },
    #[error("{role}: sha256 does not match the hash snapshot or timestamp gives")]
    HashMismatch { role: String },
    #[error("{role}: expired at {expires}")]
    Expired { role: String, expires: String },
    #[error("{role}: {reason}")]
    Missing { role: String, reason: String },
    #[error("root: more than {limit} new root versions in one update")]
    TooManyRoots { limit: u64 },
}

impl UpdateError {
    fn invalid(role: &str, source: TufError) -> Self {
        UpdateError::Invalid {
            role: role.to_owned(),
            source,
        }
    }
}

/// Where a target was found.
#[derive(Clone, Debug)]
pub struct FoundTarget {
    pub target: TargetFile,
    /// The role that signed it (`targets` or a delegated role).
    pub role: RoleName,
}

/// The client's view of one repository: what it trusts, and how to get more.
#[derive(Debug)]
pub struct Updater<F> {
    fetch: F,
    limits: Limits,
    /// The time the update started; every expiry is judged against it.
    now: OffsetDateTime,
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Verified<Snapshot>>,
    /// `targets` and delegated roles loaded so far.
    targets: BTreeMap<RoleName, Verified<Targets>>,
}

/// The file name under which a role's metadata is stored or fetched (`targets%2Freleases`).
pub fn encode_role(role: &str) -> String {
    let mut out = String::with_capacity(role.len());
    for b in role.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl<F: Fetch> Updater<F> {
    /// Starts from `trusted_root`, which must be signed by a threshold of its own root keys
    /// (its expiry is checked only after the root chain is walked, as §5.3.10 says).
    pub fn new(
        trusted_root: Vec<u8>,
        fetch: F,
        now: OffsetDateTime,
        limits: Limits,
    ) -> Result<Self, UpdateError> {
        let root = Signed::<Root>::from_bytes(trusted_root)
            .and_then(Signed::verify_self)
            .map_err(|e| UpdateError::invalid("root", e))?;
        Ok(Updater {
            fetch,
            limits,
            now,
            root,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
        })
    }

    /// Offers metadata the caller kept from an earlier update. It is used as the rollback
    /// reference only if it still verifies under the trusted root; otherwise it is dropped
    /// (as after a key rotation) and the error says why.
    pub fn load_trusted(&mut self, role: &RoleName, bytes: Vec<u8>) -> Result<(), UpdateError> {
        match role.top_level() {
            Some(RoleType::Timestamp) => {
                let ts = self.verify_top::<Timestamp>(bytes)?;
                self.timestamp = Some(ts);
            }
            Some(RoleType::Snapshot) => {
                let sn = self.verify_top::<Snapshot>(bytes)?;
                self.snapshot = Some(sn);
            }
            Some(RoleType::Targets) => {
                let t = self.verify_top::<Targets>(bytes)?;
                self.targets.insert(RoleName::targets(), t);
            }
            Some(RoleType::Root) | None => {}
        }
        Ok(())
    }

    fn verify_top<T: Role>(&self, bytes: Vec<u8>) -> Result<Verified<T>, UpdateError> {
        let role = T::TYPE.as_str();
        let authority = self.root.authority(T::TYPE).ok_or_else(|| UpdateError::Missing {
            role: role.into(),
            reason: "root does not list this role".into(),
        })?;
        Signed::<T>::from_bytes(bytes)
            .and_then(|s| s.verify(&authority))
            .map_err(|e| UpdateError::invalid(role, e))
    }

    /// Runs the workflow up to and including top-level targets.
    pub async fn refresh(&mut self) -> Result<(), UpdateError> {
        self.update_root().await?;
        self.update_timestamp().await?;
        self.update_snapshot().await?;
        self.update_targets().await
    }

    /// §5.3: walk root versions N+1, N+2, … each signed by the old and the new root.
    async fn update_root(&mut self) -> Result<(), UpdateError> {
        for _ in 0..self.limits.max_root_rotations {
            let next = self.root.version.next();
            let name = format!("{next}.root.json");
            let Some(bytes) = self.download("root", &name, self.limits.root_max_bytes).await?
            else {
                return self.finish_root();
            };
            let signed =
                Signed::<Root>::from_bytes(bytes).map_err(|e| UpdateError::invalid("root", e))?;
            let old = self
                .root
                .authority(RoleType::Root)
                .ok_or_else(|| UpdateError::Missing {
                    role: "root".into(),
                    reason: "trusted root lists no root keys".into(),
                })?;
            signed
                .check(&old)
                .map_err(|e| UpdateError::invalid("root (signed by the previous root's keys)", e))?;
            let verified = signed
                .verify_self()
                .map_err(|e| UpdateError::invalid("root (signed by its own keys)", e))?;
            if verified.version != next {
                return Err(UpdateError::VersionMismatch {
                    role: "root".into(),
                    expected: next.get(),
                    got: verified.version.get(),
                });
            }
            let rotated = |role: RoleType| {
                self.root.role_keys(role).map(|r| &r.keyids) != verified.role_keys(role).map(|r| &r.keyids)
            };
            // §5.3.11: new timestamp or snapshot keys make the old copies worthless as a
            // rollback reference (fast-forward attack recovery).
            if rotated(RoleType::Timestamp) || rotated(RoleType::Snapshot) {
                self.timestamp = None;
                self.snapshot = None;
            }
            if rotated(RoleType::Targets) {
                self.targets.clear();
            }
            self.root = verified;
        }
        Err(UpdateError::TooManyRoots {
            limit: self.limits.max_root_rotations,
        })
    }

    fn finish_root(&self) -> Result<(), UpdateError> {
        check_expiry("root", self.root.expires, self.now)
    }

    /// §5.4: timestamp.
    async fn update_timestamp(&mut self) -> Result<(), UpdateError> {
        let bytes = self
            .download("timestamp", "timestamp.json", self.limits.timestamp_max_bytes)
            .await?
            .ok_or_else(|| UpdateError::NotFound {
                role: "timestamp".into(),
            })?;
        let new = self.verify_top::<Timestamp>(bytes)?;
        let new_snap = new.snapshot_meta().map(|m| m.version).ok_or_else(|| {
            UpdateError::Missing {
                role: "timestamp".into(),
                reason: "no snapshot.json entry".into(),
            }
        })?;
        if let Some(trusted) = &self.timestamp {
            if new.version < trusted.version {
                return Err(rollback("timestamp", trusted.version, new.version));
            }
            let trusted_snap = trusted.snapshot_meta().map(|m| m.version);
            if let Some(trusted_snap) = trusted_snap {
                if new_snap < trusted_snap {
                    return Err(rollback("timestamp (snapshot version)", trusted_snap, new_snap));
                }
            }
            if new.version == trusted.version {
                // Nothing new; the trusted copy stays (it must still be fresh).
                return check_expiry("timestamp", trusted.expires, self.now);
            }
        }
        check_expiry("timestamp", new.expires, self.now)?;
        self.timestamp = Some(new);
        Ok(())
    }

    /// §5.5: snapshot, as the timestamp pins it.
    async fn update_snapshot(&mut self) -> Result<(), UpdateError> {
        let meta = self
            .timestamp
            .as_ref()
            .and_then(|t| t.snapshot_meta().cloned())
            .ok_or_else(|| UpdateError::Missing {
                role: "snapshot".into(),
                reason: "no trusted timestamp".into(),
            })?;
        if let Some(trusted) = &self.snapshot {
            if trusted.version == meta.version && matches_meta(trusted.as_bytes(), &meta) {
                return check_expiry("snapshot", trusted.expires, self.now);
            }
        }
        let name = if self.root.consistent_snapshot.unwrap_or(false) {
            format!("{}.snapshot.json", meta.version)
        } else {
            "snapshot.json".to_owned()
        };
        let limit = meta.length.unwrap_or(self.limits.snapshot_max_bytes);
        let bytes = self
            .download("snapshot", &name, limit)
            .await?
            .ok_or_else(|| UpdateError::NotFound {
                role: "snapshot".into(),
            })?;
        check_meta("snapshot", &bytes, &meta)?;
        let new = self.verify_top::<Snapshot>(bytes)?;
        if new.version != meta.version {
            return Err(UpdateError::VersionMismatch {
                role: "snapshot".into(),
                expected: meta.version.get(),
                got: new.version.get(),
            });
        }
        if let Some(trusted) = &self.snapshot {
            if new.version < trusted.version {
                return Err(rollback("snapshot", trusted.version, new.version));
            }
            for (file, old) in &trusted.meta {
                match new.meta.get(file) {
                    None => {
                        return Err(UpdateError::Missing {
                            role: "snapshot".into(),
                            reason: format!("{file} was listed before and is missing now"),
                        });
                    }
                    Some(m) if m.version < old.version => {
                        return Err(rollback(
                            &format!("snapshot ({file})"),
                            old.version,
                            m.version,
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        check_expiry("snapshot", new.expires, self.now)?;
        self.snapshot = Some(new);
        // Targets roles pinned at other versions are fetched again.
        let snapshot = self.snapshot.as_ref().map(|s| &s.meta);
        self.targets.retain(|name, t| {
            snapshot
                .and_then(|m| m.get(&format!("{name}.json")))
                .is_some_and(|m| m.version == t.version)
        });
        Ok(())
    }

    /// §5.6: top-level targets.
    async fn update_targets(&mut self) -> Result<(), UpdateError> {
        let authority_root = self.root.clone();
        let authority = authority_root
            .authority(RoleType::Targets)
            .ok_or_else(|| UpdateError::Missing {
                role: "targets".into(),
                reason: "root does not list targets".into(),
            })?;
        self.load_targets_role(&RoleName::targets(), &authority).await
    }

    /// Loads one targets role as the trusted snapshot pins it, verified by `authority`.
    async fn load_targets_role(
        &mut self,
        name: &RoleName,
        authority: &crate::metadata::Authority<'_>,
    ) -> Result<(), UpdateError> {
        let role = name.as_str();
        let meta = self
            .snapshot
            .as_ref()
            .and_then(|s| s.meta.get(&format!("{role}.json")).cloned())
            .ok_or_else(|| UpdateError::Missing {
                role: role.into(),
                reason: "the trusted snapshot does not list it".into(),
            })?;
        if let Some(trusted) = self.targets.get(name) {
            if trusted.version == meta.version {
                return check_expiry(role, trusted.expires, self.now);
            }
        }
        let file = if self.root.consistent_snapshot.unwrap_or(false) {
            format!("{}.{}.json", meta.version, encode_role(role))
        } else {
            format!("{}.json", encode_role(role))
        };
        let limit = meta.length.unwrap_or(self.limits.targets_max_bytes);
        let bytes = self
            .download(role, &file, limit)
            .await?
            .ok_or_else(|| UpdateError::NotFound { role: role.into() })?;
        check_meta(role, &bytes, &meta)?;
        let new = Signed::<Targets>::from_bytes(bytes)
            .and_then(|s| s.verify(authority))
            .map_err(|e| UpdateError::invalid(role, e))?;
        if new.version != meta.version {
            return Err(UpdateError::VersionMismatch {
                role: role.into(),
                expected: meta.version.get(),
                got: new.version.get(),
            });
        }
        check_expiry(role, new.expires, self.now)?;
        self.targets.insert(name.clone(), new);
        Ok(())
    }

    /// §5.6.7: finds `target` by a depth-first search of the delegations, in listed order,
    /// honouring paths, hash prefixes and terminating roles. `Ok(None)`: no role trusted for
    /// the name lists it. Call after [`Updater::refresh`].
    pub async fn find_target(&mut self, target: &str) -> Result<Option<FoundTarget>, UpdateError> {
        let mut stack: Vec<(RoleName, Option<RoleName>)> = vec![(RoleName::targets(), None)];
        let mut visited: BTreeSet<RoleName> = BTreeSet::new();
        while let Some((role, delegator)) = stack.pop() {
            if visited.len() >= self.limits.max_delegations {
                break;
            }
            if !visited.insert(role.clone()) {
                continue;
            }
            if let Some(delegator) = delegator {
                let parent = self.targets.get(&delegator).cloned().ok_or_else(|| {
                    UpdateError::Missing {
                        role: delegator.to_string(),
                        reason: "delegator not loaded".into(),
                    }
                })?;
                let authority = parent
                    .delegations
                    .as_ref()
                    .and_then(|d| d.authority(role.as_str()))
                    .ok_or_else(|| UpdateError::Missing {
                        role: role.to_string(),
                        reason: format!("{delegator} no longer delegates it"),
                    })?;
                self.load_targets_role(&role, &authority).await?;
            }
            let current = self.targets.get(&role).ok_or_else(|| UpdateError::Missing {
                role: role.to_string(),
                reason: "not loaded (refresh first)".into(),
            })?;
            if let Some(found) = current.targets.get(target) {
                return Ok(Some(FoundTarget {
                    target: found.clone(),
                    role,
                }));
            }
            let Some(delegations) = &current.delegations else {
                continue;
            };
            let mut children = Vec::new();
            for child in &delegations.roles {
                if child.matches(target) {
                    children.push((child.name.clone(), Some(role.clone())));
                    if child.terminating {
                        stack.clear();
                        break;
                    }
                }
            }
            children.reverse();
            stack.extend(children);
        }
        Ok(None)
    }

    /// Loads every targets role reachable from `targets` (for listing all signed tags).
    /// Roles are visited in search order; at most `limits.max_delegations` of them.
    pub async fn load_all_targets(&mut self) -> Result<Vec<RoleName>, UpdateError> {
        let mut order = Vec::new();
        let mut stack: Vec<(RoleName, Option<RoleName>)> = vec![(RoleName::targets(), None)];
        let mut seen = BTreeSet::new();
        while let Some((role, delegator)) = stack.pop() {
            if seen.len() >= self.limits.max_delegations || !seen.insert(role.clone()) {
                continue;
            }
            if let Some(delegator) = delegator {
                let parent = self.targets.get(&delegator).cloned();
                let authority = parent
                    .as_ref()
                    .and_then(|p| p.delegations.as_ref())
                    .and_then(|d| d.authority(role.as_str()));
                let Some(authority) = authority else { continue };
                self.load_targets_role(&role, &authority).await?;
            }
            if let Some(current) = self.targets.get(&role) {
                if let Some(d) = &current.delegations {
                    let mut children: Vec<_> = d
                        .roles
                        .iter()
                        .map(|c| (c.name.clone(), Some(role.clone())))
                        .collect();
                    children.reverse();
                    stack.extend(children);
                }
            }
            order.push(role);
        }
        Ok(order)
    }

    async fn download(
        &self,
        role: &str,
        name: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, UpdateError> {
        let bytes = self
            .fetch
            .fetch(name, limit)
            .await
            .map_err(|source| UpdateError::Fetch {
                role: role.into(),
                source,
            })?;
        if let Some(b) = &bytes {
            if b.len() as u64 > limit {
                return Err(UpdateError::Fetch {
                    role: role.into(),
                    source: FetchError::TooLarge { limit },
                });
            }
        }
        Ok(bytes)
    }

    pub fn root(&self) -> &Verified<Root> {
        &self.root
    }

    pub fn timestamp(&self) -> Option<&Verified<Timestamp>> {
        self.timestamp.as_ref()
    }

    pub fn snapshot(&self) -> Option<&Verified<Snapshot>> {
        self.snapshot.as_ref()
    }

    pub fn targets(&self, role: &RoleName) -> Option<&Verified<Targets>> {
        self.targets.get(role)
    }

    pub fn fetcher(&self) -> &F {
        &self.fetch
    }

    /// Every trusted file, as (file name with the role percent-encoded, exact bytes): what a
    /// caller persists after an update, whether it succeeded or not.
    pub fn trusted_files(&self) -> Vec<(String, &[u8])> {
        let mut files = vec![("root.json".to_owned(), self.root.as_bytes())];
        if let Some(t) = &self.timestamp {
            files.push(("timestamp.json".to_owned(), t.as_bytes()));
        }
        if let Some(s) = &self.snapshot {
            files.push(("snapshot.json".to_owned(), s.as_bytes()));
        }
        for (name, t) in &self.targets {
            files.push((format!("{}.json", encode_role(name.as_str())), t.as_bytes()));
        }
        files
    }
}

fn rollback(role: &str, trusted: Version, new: Version) -> UpdateError {
    UpdateError::Rollback {
        role: role.into(),
        trusted: trusted.get(),
        new: new.get(),
    }
}

fn check_expiry(role: &str, expires: crate::Expiry, now: OffsetDateTime) -> Result<(), UpdateError> {
    if expires.is_expired_at(now) {
        Err(UpdateError::Expired {
            role: role.into(),
            expires: expires.to_string(),
        })
    } else {
        Ok(())
    }
}

fn matches_meta(bytes: &[u8], meta: &MetaFile) -> bool {
    check_meta("", bytes, meta).is_ok()
}

/// Length and sha256 of `bytes` against `meta`, where `meta` gives them.
fn check_meta(role: &str, bytes: &[u8], meta: &MetaFile) -> Result<(), UpdateError> {
    if let Some(expected) = meta.length {
        if expected != bytes.len() as u64 {
            return Err(UpdateError::LengthMismatch {
                role: role.into(),
                expected,
                got: bytes.len() as u64,
            });
        }
    }
    if let Some(hash) = meta.hashes.as_ref().and_then(|h| h.get("sha256")) {
        if *hash != hex::encode(Sha256::digest(bytes)) {
            return Err(UpdateError::HashMismatch { role: role.into() });
        }
    }
    Ok(())
}
