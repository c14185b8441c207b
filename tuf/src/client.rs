//! The TUF 1.0 client workflow (specification §5, "Detailed client workflow").
//!
//! An [`Updater`] starts from a trusted root and whatever verified metadata the caller kept,
//! then [`Updater::refresh`] walks the root chain, timestamp, snapshot and top-level targets
//! with every check the specification lists; [`Updater::find_target`] searches delegations
//! depth first, fetching a delegated role only when the search reaches it. Downloads go
//! through the [`Fetch`] trait, so HTTP, files or a test double can drive it; the updater
//! itself does no I/O. Every check uses the time the update started (§5.1).
//!
//! What the caller persists after an update, successful or not, is
//! [`Updater::trusted_files`]: the newest metadata of each role that passed every check,
//! as the exact bytes the repository served.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::num::NonZeroU32;

use time::OffsetDateTime;

use crate::metadata::{Authority, Role, RoleType};
use crate::notary::Dialect;
use crate::rules::{self, Freshness, Rejection};
use crate::{
    Error as TufError, KeyId, MetaFile, PublicKey, RoleName, Root, Signed, Snapshot, TargetFile,
    TargetName, Targets, Timestamp, Verified,
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
    /// Root versions one refresh may walk; a longer chain fails with
    /// [`UpdateError::TooManyRoots`] (the roots walked so far stay trusted).
    pub max_root_rotations: u64,
    /// Targets roles one search may visit, the top-level `targets` role included.
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
    /// A rule of the rulebook refused the metadata ([`crate::rules`]).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("{role}: {reason}")]
    Missing { role: String, reason: String },
    #[error("root: more than {limit} new root versions in one update")]
    TooManyRoots { limit: u64 },
    /// A downloaded target does not have the length or hashes its targets role gives.
    #[error("target {target}: {reason}")]
    TargetMismatch { target: String, reason: String },
}

impl UpdateError {
    fn invalid(role: &str, source: TufError) -> Self {
        UpdateError::Rejected(Rejection::Invalid {
            role: role.to_owned(),
            source,
        })
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
    /// The dialect of the trusted root, which every later file must be written in.
    dialect: Dialect,
    /// The repository's name, when known: a Notary root's certificates must name it.
    repository: Option<String>,
    /// The time the update started; every expiry is judged against it.
    now: OffsetDateTime,
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Verified<Snapshot>>,
    /// The newest verified copy of `targets` and of each delegated role. A copy stays here
    /// after a newer snapshot moves on (it is what the caller keeps if the update of that
    /// role fails), so [`Updater::current`] says which copies the trusted snapshot vouches for.
    targets: BTreeMap<RoleName, Verified<Targets>>,
    /// Roles checked against the trusted snapshot (version, length, hashes, expiry) and
    /// against the keys that delegate them: the only copies a search reads. Keyed by role,
    /// valued by the authority that verified it, so a role reached through another
    /// delegator with other keys is checked again.
    current: BTreeMap<RoleName, AuthorityId>,
    /// Delegated roles the caller kept from an earlier update, not yet checked: a delegated
    /// role can only be verified once the search reaches it through its delegator.
    kept: BTreeMap<RoleName, Signed<Targets>>,
    /// What to do with a delegated role the trusted snapshot does not list.
    unlisted: UnlistedDelegation,
    /// Delegated roles the trusted snapshot does not list, read as empty under
    /// [`UnlistedDelegation::Empty`].
    absent: BTreeSet<RoleName>,
    /// The order of the delegation walk.
    order: SearchOrder,
}

/// What a search does when it reaches a delegated role that the trusted snapshot does not
/// list (a signer was added but has not signed yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnlistedDelegation {
    /// Fail, as python-tuf does: the repository is inconsistent.
    #[default]
    Refuse,
    /// Read the role as empty and go on searching, as Notary and Docker do. A role the
    /// client saw listed before cannot be hidden this way: snapshot rollback checks refuse
    /// a snapshot that drops it.
    Empty,
}

/// Which keys and threshold verified a targets role.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AuthorityId {
    keyids: BTreeSet<KeyId>,
    threshold: NonZeroU32,
}

impl AuthorityId {
    fn of(keyids: &[KeyId], threshold: NonZeroU32) -> Self {
        AuthorityId {
            keyids: keyids.iter().cloned().collect(),
            threshold,
        }
    }
}

/// An owned copy of the keys that may sign one targets role, so that a search can hold it
/// while it fetches that role.
#[derive(Debug)]
struct RoleAuthority {
    role: RoleName,
    keys: BTreeMap<KeyId, PublicKey>,
    keyids: Vec<KeyId>,
    threshold: NonZeroU32,
}

impl RoleAuthority {
    fn from_authority(a: &Authority<'_>) -> Self {
        RoleAuthority {
            role: a.role.clone(),
            keys: a
                .keyids
                .iter()
                .filter_map(|id| a.keys.get(id).map(|k| (id.clone(), k.clone())))
                .collect(),
            keyids: a.keyids.to_vec(),
            threshold: a.threshold,
        }
    }

    fn borrow(&self) -> Authority<'_> {
        Authority {
            role: self.role.clone(),
            keys: &self.keys,
            keyids: &self.keyids,
            threshold: self.threshold,
        }
    }

    fn id(&self) -> AuthorityId {
        AuthorityId::of(&self.keyids, self.threshold)
    }
}

/// The order in which the delegation walk visits targets roles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchOrder {
    /// TUF §5.6.7: pre-order, depth first from `targets`, delegations in listed order.
    #[default]
    Preorder,
    /// Docker's order (what `docker pull` and `docker trust inspect` ask Notary for): the
    /// subtree under `targets/releases` first, then `targets` itself, then its other
    /// delegations in pre-order. A terminating delegation within the releases subtree still
    /// lets `targets`' own list be read, since `targets` is the delegator of all.
    Docker,
}

/// What a walk looks for.
#[derive(Clone, Copy, Debug)]
enum Goal<'a> {
    /// The first role that lists the target: stop there.
    First(&'a str),
    /// Every role trusted for the target.
    Every(&'a str),
    /// Every reachable role, whatever its paths.
    AllRoles,
}

impl Goal<'_> {
    fn target(&self) -> Option<&str> {
        match self {
            Goal::First(t) | Goal::Every(t) => Some(t),
            Goal::AllRoles => None,
        }
    }
}

/// One pass of a walk: Docker's order is two passes, TUF's one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Everything,
    /// From `targets`, into `targets/releases` only, without reading `targets`' own list.
    ReleasesSubtree,
    /// `targets` and every delegation but `targets/releases`.
    TargetsAndOthers,
}

/// One step of a delegation walk over the roles loaded so far.
enum Step<T> {
    /// The walk finished.
    Done(T),
    /// The walk reached a role that is not loaded (or not checked against the trusted
    /// snapshot yet): load it with these keys and walk again.
    Load(RoleAuthority),
}

/// The file name under which a role's metadata is stored or fetched (`targets%2Freleases`):
/// every byte but ASCII letters, digits and `-_.~` percent-encoded, as python-tuf does.
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
        let (dialect, root) = crate::notary::parse_either::<Root>(trusted_root)
            .map_err(|e| UpdateError::invalid("root", e))?;
        let root = rules::first_root(root)?;
        Ok(Updater {
            fetch,
            limits,
            dialect,
            repository: None,
            now,
            root,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
            current: BTreeMap::new(),
            kept: BTreeMap::new(),
            unlisted: UnlistedDelegation::Refuse,
            absent: BTreeSet::new(),
            order: SearchOrder::Preorder,
        })
    }

    /// Names the repository (its GUN). For a Notary-dialect repository the root in force
    /// after the root chain is walked must then have root certificates fit to certify it
    /// ([`crate::notary::check_root_certificates`]), as the server requires of every new
    /// root: naming the GUN, in their validity period, not SHA-1 signed.
    pub fn with_repository(mut self, name: &str) -> Self {
        self.repository = Some(name.to_owned());
        self
    }

    /// The dialect of the repository, fixed by the trusted root.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Sets the order of the delegation walk ([`SearchOrder::Preorder`] unless set).
    pub fn with_search_order(mut self, order: SearchOrder) -> Self {
        self.order = order;
        self
    }

    /// Sets what a search does with delegated roles the snapshot does not list.
    pub fn with_unlisted_delegations(mut self, policy: UnlistedDelegation) -> Self {
        self.unlisted = policy;
        self
    }

    /// Offers metadata the caller kept from an earlier update, before [`Updater::refresh`].
    /// Top-level roles are used as the rollback reference only if they still verify under
    /// the trusted root; otherwise they are dropped and the error says why. A delegated role
    /// is parsed now and verified when a search reaches it; if it then matches the trusted
    /// snapshot it is not downloaded again.
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
            Some(RoleType::Root) => {}
            None => {
                let signed = self
                    .dialect
                    .parse::<Targets>(bytes)
                    .map_err(|e| UpdateError::invalid(role.as_str(), e))?;
                self.kept.insert(role.clone(), signed);
            }
        }
        Ok(())
    }

    fn verify_top<T: Role + 'static>(&self, bytes: Vec<u8>) -> Result<Verified<T>, UpdateError> {
        let role = T::TYPE.as_str();
        let authority = self
            .root
            .authority(T::TYPE)
            .ok_or_else(|| UpdateError::Missing {
                role: role.into(),
                reason: "root does not list this role".into(),
            })?;
        let signed = self
            .dialect
            .parse::<T>(bytes)
            .map_err(|e| UpdateError::invalid(role, e))?;
        Ok(rules::verify_role(signed, &authority)?)
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
        let mut walked = 0;
        loop {
            let next = self.root.version.next();
            let name = format!("{next}.root.json");
            let Some(bytes) = self
                .download("root", &name, self.limits.root_max_bytes)
                .await?
            else {
                break;
            };
            if walked == self.limits.max_root_rotations {
                return Err(UpdateError::TooManyRoots {
                    limit: self.limits.max_root_rotations,
                });
            }
            walked += 1;
            let signed = self
                .dialect
                .parse::<Root>(bytes)
                .map_err(|e| UpdateError::invalid("root", e))?;
            // §5.3.3–§5.3.4: exactly N+1, signed by the trusted root's keys and its own.
            let verified = rules::next_root(&self.root, signed)?;
            let rotated = |role: RoleType| {
                let keyids = |root: &Root| {
                    root.role_keys(role)
                        .map(|r| r.keyids.iter().cloned().collect::<BTreeSet<_>>())
                };
                keyids(&self.root) != keyids(&verified)
            };
            // §5.3.11: new timestamp or snapshot keys make the old copies worthless as a
            // rollback reference (fast-forward attack recovery).
            if rotated(RoleType::Timestamp) || rotated(RoleType::Snapshot) {
                self.timestamp = None;
                self.snapshot = None;
            }
            if rotated(RoleType::Targets) {
                self.targets.remove(&RoleName::targets());
            }
            self.root = verified;
        }
        self.drop_unverifiable();
        // §5.3.10: the freeze check, once the newest root is trusted (intermediate roots
        // may have expired long ago).
        rules::unexpired("root", self.root.expires, self.now)?;
        // Notary's certificates, likewise judged on the newest root only.
        if let (Dialect::Notary, Some(name)) = (self.dialect, &self.repository) {
            crate::notary::check_root_certificates(&self.root, name, self.now)
                .map_err(|e| UpdateError::invalid("root", e))?;
        }
        Ok(())
    }

    /// A threshold or key change in the new root can leave a kept copy signed by too few of
    /// the keys root now names; such a copy is no rollback reference and is dropped.
    fn drop_unverifiable(&mut self) {
        let ts_ok = self
            .timestamp
            .as_ref()
            .is_none_or(|t| still_verifies(&self.root, t));
        let sn_ok = self
            .snapshot
            .as_ref()
            .is_none_or(|s| still_verifies(&self.root, s));
        if !ts_ok || !sn_ok {
            self.timestamp = None;
            self.snapshot = None;
        }
        let top = RoleName::targets();
        if self
            .targets
            .get(&top)
            .is_some_and(|t| !still_verifies(&self.root, t))
        {
            self.targets.remove(&top);
        }
    }

    /// §5.4: timestamp.
    async fn update_timestamp(&mut self) -> Result<(), UpdateError> {
        let bytes = self
            .download(
                "timestamp",
                "timestamp.json",
                self.limits.timestamp_max_bytes,
            )
            .await?
            .ok_or_else(|| UpdateError::NotFound {
                role: "timestamp".into(),
            })?;
        let new = self.verify_top::<Timestamp>(bytes)?;
        if new.snapshot_meta().is_none() {
            return Err(UpdateError::Missing {
                role: "timestamp".into(),
                reason: "no snapshot.json entry".into(),
            });
        }
        if let Some(trusted) = &self.timestamp
            && rules::timestamp_succession(trusted, &new)? == Freshness::Same
        {
            // Nothing new; the trusted copy stays (it must still be fresh).
            return Ok(rules::unexpired("timestamp", trusted.expires, self.now)?);
        }
        rules::unexpired("timestamp", new.expires, self.now)?;
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
            // The kept copy is the one the timestamp pins: nothing to download. An expired
            // copy is downloaded again, in case the repository re-signed it.
            if meta.version.is_none_or(|v| v == trusted.version)
                && rules::matches_pin("snapshot", trusted.as_bytes(), &meta).is_ok()
                && !trusted.expires.is_expired_at(self.now)
            {
                return Ok(());
            }
        }
        let name = pinned_file_name(
            "snapshot",
            &meta,
            self.root.consistent_snapshot.unwrap_or(false),
        );
        let limit = meta.length.unwrap_or(self.limits.snapshot_max_bytes);
        let bytes = self
            .download("snapshot", &name, limit)
            .await?
            .ok_or_else(|| UpdateError::NotFound {
                role: "snapshot".into(),
            })?;
        rules::matches_pin("snapshot", &bytes, &meta)?;
        let new = self.verify_top::<Snapshot>(bytes)?;
        rules::pinned_version("snapshot", &meta, new.version)?;
        if let Some(trusted) = &self.snapshot {
            rules::snapshot_succession(trusted, &new)?;
        }
        rules::unexpired("snapshot", new.expires, self.now)?;
        self.snapshot = Some(new);
        // Every targets role is checked against the new snapshot before a search reads it.
        self.current.clear();
        self.absent.clear();
        Ok(())
    }

    /// §5.6: top-level targets.
    async fn update_targets(&mut self) -> Result<(), UpdateError> {
        let authority = self.top_targets_authority()?;
        self.load_targets_role(&authority).await
    }

    fn top_targets_authority(&self) -> Result<RoleAuthority, UpdateError> {
        self.root
            .authority(RoleType::Targets)
            .map(|a| RoleAuthority::from_authority(&a))
            .ok_or_else(|| UpdateError::Missing {
                role: "targets".into(),
                reason: "root does not list targets".into(),
            })
    }

    /// §5.6.1–§5.6.6 for one targets role, as the trusted snapshot pins it and verified by
    /// `authority`. A kept copy that passes every check is used without a download.
    async fn load_targets_role(&mut self, authority: &RoleAuthority) -> Result<(), UpdateError> {
        let name = &authority.role;
        let role = name.as_str();
        let listed = self
            .snapshot
            .as_ref()
            .and_then(|s| s.meta.get(&format!("{role}.json")).cloned());
        let meta = match listed {
            Some(meta) => meta,
            None if name.is_delegated() && self.unlisted == UnlistedDelegation::Empty => {
                self.absent.insert(name.clone());
                return Ok(());
            }
            None => {
                return Err(UpdateError::Missing {
                    role: role.into(),
                    reason: "the trusted snapshot does not list it".into(),
                });
            }
        };
        let usable = |copy: &Signed<Targets>| {
            let t = copy.untrusted();
            meta.version.is_none_or(|v| v == t.version)
                && rules::matches_pin(role, copy.as_bytes(), &meta).is_ok()
                && !t.expires.is_expired_at(self.now)
                && copy.check(&authority.borrow()).is_ok()
        };
        if self.targets.get(name).is_some_and(|t| usable(t.signed())) {
            self.current.insert(name.clone(), authority.id());
            return Ok(());
        }
        if let Some(kept) = self.kept.remove(name)
            && usable(&kept)
        {
            let verified = kept
                .verify(&authority.borrow())
                .map_err(|e| UpdateError::invalid(role, e))?;
            self.targets.insert(name.clone(), verified);
            self.current.insert(name.clone(), authority.id());
            return Ok(());
        }
        let file = pinned_file_name(
            &encode_role(role),
            &meta,
            self.root.consistent_snapshot.unwrap_or(false),
        );
        let limit = meta.length.unwrap_or(self.limits.targets_max_bytes);
        let bytes = self
            .download(role, &file, limit)
            .await?
            .ok_or_else(|| UpdateError::NotFound { role: role.into() })?;
        rules::matches_pin(role, &bytes, &meta)?;
        let signed = self
            .dialect
            .parse::<Targets>(bytes)
            .map_err(|e| UpdateError::invalid(role, e))?;
        let new = rules::verify_role(signed, &authority.borrow())?;
        rules::pinned_version(role, &meta, new.version)?;
        rules::unexpired(role, new.expires, self.now)?;
        self.targets.insert(name.clone(), new);
        self.current.insert(name.clone(), authority.id());
        Ok(())
    }

    /// The copy of `role` a search may read, if it was checked against the trusted snapshot
    /// with the keys `(keyids, threshold)`.
    fn current(
        &self,
        role: &RoleName,
        keyids: &[KeyId],
        threshold: NonZeroU32,
    ) -> Option<&Verified<Targets>> {
        (self.current.get(role) == Some(&AuthorityId::of(keyids, threshold)))
            .then(|| self.targets.get(role))
            .flatten()
    }

    /// The keys that may sign `role`: root's for `targets`, the delegator's otherwise.
    fn keys_for(
        &self,
        role: &RoleName,
        delegator: Option<&RoleName>,
    ) -> Result<(Vec<KeyId>, NonZeroU32), UpdateError> {
        match delegator {
            None => self
                .root
                .role_keys(RoleType::Targets)
                .map(|r| (r.keyids.clone(), r.threshold))
                .ok_or_else(|| UpdateError::Missing {
                    role: "targets".into(),
                    reason: "root does not list targets".into(),
                }),
            Some(parent) => self
                .targets
                .get(parent)
                .and_then(|p| p.delegations.as_ref())
                .and_then(|d| d.role(role.as_str()))
                .map(|r| (r.keyids.clone(), r.threshold))
                .ok_or_else(|| UpdateError::Missing {
                    role: role.to_string(),
                    reason: format!("{parent} does not delegate it"),
                }),
        }
    }

    fn authority_for(
        &self,
        role: &RoleName,
        delegator: Option<&RoleName>,
    ) -> Result<RoleAuthority, UpdateError> {
        let Some(parent) = delegator else {
            return self.top_targets_authority();
        };
        self.targets
            .get(parent)
            .and_then(|p| p.delegations.as_ref())
            .and_then(|d| d.authority(role.as_str()))
            .map(|a| RoleAuthority::from_authority(&a))
            .ok_or_else(|| UpdateError::Missing {
                role: role.to_string(),
                reason: format!("{parent} does not delegate it"),
            })
    }

    /// The one delegation walk, over the roles loaded so far (§5.6.7). It visits targets
    /// roles in the updater's [`SearchOrder`], enters a delegation only when its `paths` or
    /// `path_hash_prefixes` match `target` (every delegation, for [`Goal::AllRoles`]),
    /// visits each role once and at most `limits.max_delegations` roles, and stops at a
    /// terminating delegation: nothing after it is entered, neither its siblings nor what
    /// was pending from its ancestors. It returns the visited roles in order, or asks for
    /// the next role it needs that is not loaded yet. [`Updater::find_target`],
    /// [`Updater::vouchers`], [`Updater::trusted_targets`] and
    /// [`Updater::load_all_targets`] all use it; nothing else walks delegations.
    fn walk(&self, goal: Goal<'_>) -> Result<Step<Vec<RoleName>>, UpdateError> {
        let target = goal.target();
        let releases = RoleName::releases();
        let passes: &[Pass] = match self.order {
            SearchOrder::Preorder => &[Pass::Everything],
            SearchOrder::Docker => &[Pass::ReleasesSubtree, Pass::TargetsAndOthers],
        };
        let mut visited: Vec<RoleName> = Vec::new();
        // Delegated roles entered so far; `targets` is counted in the bound besides them.
        let mut seen: BTreeSet<RoleName> = BTreeSet::new();
        let mut terminated = false;
        for pass in passes {
            let mut stack: Vec<(RoleName, Option<RoleName>)> = vec![(RoleName::targets(), None)];
            while let Some((role, delegator)) = stack.pop() {
                let top = delegator.is_none();
                if !top {
                    if seen.len() + 1 >= self.limits.max_delegations {
                        return Ok(Step::Done(visited));
                    }
                    if !seen.insert(role.clone()) {
                        continue;
                    }
                }
                if self.absent.contains(&role) {
                    continue;
                }
                let (keyids, threshold) = self.keys_for(&role, delegator.as_ref())?;
                let Some(current) = self.current(&role, &keyids, threshold) else {
                    return self
                        .authority_for(&role, delegator.as_ref())
                        .map(Step::Load);
                };
                // Docker's first pass goes through `targets` without reading its list.
                if !(top && *pass == Pass::ReleasesSubtree) {
                    visited.push(role.clone());
                    if let Goal::First(t) = goal
                        && current.targets.contains_key(t)
                    {
                        return Ok(Step::Done(visited));
                    }
                }
                let Some(delegations) = &current.delegations else {
                    continue;
                };
                if top && terminated {
                    continue;
                }
                let mut children = Vec::new();
                for child in &delegations.roles {
                    let in_pass = match pass {
                        Pass::Everything => true,
                        Pass::ReleasesSubtree => !top || child.name == releases,
                        Pass::TargetsAndOthers => !top || child.name != releases,
                    };
                    if in_pass && target.is_none_or(|t| child.matches(t)) {
                        children.push((child.name.clone(), Some(role.clone())));
                        if target.is_some() && child.terminating {
                            stack.clear();
                            terminated = true;
                            break;
                        }
                    }
                }
                children.reverse();
                stack.extend(children);
            }
        }
        Ok(Step::Done(visited))
    }

    /// Runs the walk for `goal`, loading each role it reaches, until it is done.
    async fn walk_loading(&mut self, goal: Goal<'_>) -> Result<Vec<RoleName>, UpdateError> {
        // Each load makes one more role current, so the walk ends; the bound is a backstop.
        for _ in 0..=self.limits.max_delegations {
            match self.walk(goal)? {
                Step::Done(visited) => return Ok(visited),
                Step::Load(authority) => self.load_targets_role(&authority).await?,
            }
        }
        Ok(Vec::new())
    }

    /// The visited roles that list `target`, with their entries, in walk order.
    fn listing(&self, visited: &[RoleName], target: &str) -> Vec<FoundTarget> {
        visited
            .iter()
            .filter_map(|role| {
                let t = self.targets.get(role)?.targets.get(target)?;
                Some(FoundTarget {
                    target: t.clone(),
                    role: role.clone(),
                })
            })
            .collect()
    }

    /// §5.6.7: finds `target` by the delegation walk in the updater's [`SearchOrder`],
    /// honouring paths, hash prefixes and terminating roles. A delegated role is fetched
    /// only when the walk reaches it. `Ok(None)`: no role trusted for the name lists it.
    /// Call after [`Updater::refresh`].
    pub async fn find_target(&mut self, target: &str) -> Result<Option<FoundTarget>, UpdateError> {
        let visited = self.walk_loading(Goal::First(target)).await?;
        Ok(self.listing(&visited, target).into_iter().next())
    }

    /// Every role trusted for `target` that lists it, in walk order: the first is what
    /// [`Updater::find_target`] gives; the others are co-signers (Docker's "signers" of a
    /// tag). Does no I/O: call [`Updater::load_all_targets`] first; a role the walk would
    /// need and that is not loaded ends the list.
    pub fn vouchers(&self, target: &str) -> Vec<FoundTarget> {
        match self.walk(Goal::Every(target)) {
            Ok(Step::Done(visited)) => self.listing(&visited, target),
            _ => Vec::new(),
        }
    }

    /// Loads every targets role reachable from `targets`, whatever its paths, in walk
    /// order and at most `limits.max_delegations` of them. The roles may list targets their
    /// delegation does not trust them for: use [`Updater::trusted_targets`] or
    /// [`Updater::vouchers`] for the targets themselves.
    pub async fn load_all_targets(&mut self) -> Result<Vec<RoleName>, UpdateError> {
        self.walk_loading(Goal::AllRoles).await
    }

    /// Every target the loaded roles list, each resolved exactly as [`Updater::find_target`]
    /// would resolve it, so a target listed by a role outside its delegated paths, or
    /// shadowed by an earlier role, is reported as the search finds it or not at all. Does
    /// no I/O: call [`Updater::load_all_targets`] first.
    pub fn trusted_targets(&self) -> BTreeMap<TargetName, FoundTarget> {
        self.listed_target_names()
            .into_iter()
            .filter_map(|name| {
                let found = self.vouchers(name.as_str()).into_iter().next()?;
                Some((name.clone(), found))
            })
            .collect()
    }

    /// Every target name some loaded role lists, trusted for it or not: give each to
    /// [`Updater::vouchers`] to learn which roles vouch for it. Does no I/O.
    pub fn listed_target_names(&self) -> BTreeSet<&TargetName> {
        self.current
            .keys()
            .filter_map(|role| self.targets.get(role))
            .flat_map(|t| t.targets.keys())
            .collect()
    }

    /// The current copy of a delegated or top-level targets role: checked against the
    /// trusted snapshot and the keys that delegate it. `None` until a walk reached it (or
    /// when the snapshot does not list it).
    pub fn current_role(&self, role: &RoleName) -> Option<&Verified<Targets>> {
        self.current
            .contains_key(role)
            .then(|| self.targets.get(role))
            .flatten()
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
        if let Some(b) = &bytes
            && b.len() as u64 > limit
        {
            return Err(UpdateError::Fetch {
                role: role.into(),
                source: FetchError::TooLarge { limit },
            });
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

    /// The newest verified copy of a targets role. After a successful [`Updater::refresh`]
    /// the top-level `targets` is the one the trusted snapshot pins; a delegated role is
    /// current once [`Updater::find_target`] or [`Updater::load_all_targets`] reached it.
    pub fn targets(&self, role: &RoleName) -> Option<&Verified<Targets>> {
        self.targets.get(role)
    }

    pub fn fetcher(&self) -> &F {
        &self.fetch
    }

    /// Every trusted file, as (file name with the role percent-encoded, exact bytes): what a
    /// caller persists after an update, whether it succeeded or not. A delegated role offered
    /// by [`Updater::load_trusted`] and not reached in this update is handed back while the
    /// trusted snapshot still pins its version.
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
        for (name, kept) in &self.kept {
            let pinned = self
                .snapshot
                .as_ref()
                .and_then(|s| s.meta.get(&format!("{name}.json")))
                .is_some_and(|m| m.version.is_none_or(|v| v == kept.untrusted().version));
            if pinned && !self.targets.contains_key(name) {
                files.push((
                    format!("{}.json", encode_role(name.as_str())),
                    kept.as_bytes(),
                ));
            }
        }
        files
    }
}

/// Checks a downloaded target against the length and every hash its targets role gives
/// (sha256, sha384, sha512; any other algorithm fails, since it cannot be checked).
pub fn verify_target(name: &str, target: &TargetFile, bytes: &[u8]) -> Result<(), UpdateError> {
    let mismatch = |reason: String| UpdateError::TargetMismatch {
        target: name.to_owned(),
        reason,
    };
    if bytes.len() as u64 != target.length {
        return Err(mismatch(format!(
            "length {} where {} was signed",
            bytes.len(),
            target.length
        )));
    }
    for (algorithm, expected) in &target.hashes {
        match rules::check_hash(name, algorithm, expected, bytes) {
            Ok(()) => {}
            Err(Rejection::UnsupportedHash { .. }) => {
                return Err(mismatch(format!(
                    "unsupported hash algorithm {algorithm:?}"
                )));
            }
            Err(_) => return Err(mismatch(format!("{algorithm} does not match"))),
        }
    }
    Ok(())
}

/// Whether a top-level role kept from before still meets the threshold `root` sets for it.
fn still_verifies<T: Role>(root: &Root, copy: &Verified<T>) -> bool {
    root.authority(T::TYPE)
        .is_some_and(|a| copy.signed().check(&a).is_ok())
}

/// The file name under which to fetch `role` as `pin` pins it: `N.role.json` with consistent
/// snapshots, `role.<sha256>.json` for a pin without a version (the Notary dialect, whose
/// clients fetch by checksum), else `role.json`.
fn pinned_file_name(role: &str, pin: &MetaFile, consistent: bool) -> String {
    match (
        pin.version,
        pin.hashes.as_ref().and_then(|h| h.get("sha256")),
    ) {
        (Some(version), _) if consistent => format!("{version}.{role}.json"),
        (None, Some(sha256)) => format!("{role}.{}.json", sha256.to_ascii_lowercase()),
        _ => format!("{role}.json"),
    }
}
