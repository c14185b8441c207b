//! What the web view shows of a repository, read from the store through the same verified
//! walk a client makes ([`notar_tuf::client::Updater`], Docker's order, from root version
//! 1), so the page and `notar trust inspect` agree: the tags a pull resolves, who signs
//! them, the roles with their versions and expiry, the root's history and the audit trail.
//!
//! When each tag was signed is the time the server stored the oldest version of the
//! vouching role, in an unbroken run up to the current one, that lists the tag with the
//! same digest: the time of the write that the audit trail records. Finding it walks the
//! role's versions backwards once; the answer is kept per (repository, role) and the next
//! page walks only the versions written since.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use notar_tuf::client::{Limits, SearchOrder, UnlistedDelegation, Updater};
use notar_tuf::view::{TrustView, trust_view};
use notar_tuf::{Gun, RoleName, RoleType, Root, Targets, Version};
use time::OffsetDateTime;

use crate::AppState;
use crate::audit::AuditRecord;
use crate::check::StoreFetch;
use crate::error::ApiError;

/// Versions of one role walked back at most to date its tags; older ones read as
/// "no later than".
const MAX_WALK: u64 = 200;
/// (repository, role) answers kept at most; the memory is cleared when it is full.
const MAX_REMEMBERED: usize = 1024;
/// Repositories whose verified walk is kept at most; the memory is cleared when it is full.
const MAX_WALKS_KEPT: usize = 64;
/// Audit records shown on a repository page.
pub const AUDIT_SHOWN: u32 = 25;

/// When a tag got its current digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// Signed at this time, in this version of its role.
    At(OffsetDateTime, u64),
    /// Listed since this version at the latest; older versions were pruned or not walked.
    NoLaterThan(OffsetDateTime, u64),
}

/// A target's sha256.
type Sha256 = [u8; 32];

/// The datings of one role's targets at one version: name → (sha256, since).
type Dated = HashMap<String, (Sha256, Since)>;

/// (GUN, role) → the version datings are for, and the datings.
type Remembered = HashMap<(String, String), (u64, Arc<Dated>)>;

/// Remembered datings, per (GUN, role), and verified walks, per GUN.
#[derive(Debug, Default)]
pub struct Memo {
    dated: Mutex<Remembered>,
    walks: Mutex<HashMap<String, Arc<Walked>>>,
}

impl Memo {
    fn get(&self, gun: &Gun, role: &RoleName) -> Option<(u64, Arc<Dated>)> {
        let dated = self.dated.lock().unwrap_or_else(|p| p.into_inner());
        dated
            .get(&(gun.to_string(), role.to_string()))
            .map(|(v, d)| (*v, d.clone()))
    }

    /// The walk kept for `gun`, if it was made from exactly `heads` and nothing it read
    /// has expired by `now`.
    fn walk(&self, gun: &Gun, heads: &[Head], now: OffsetDateTime) -> Option<Arc<Walked>> {
        let walks = self.walks.lock().unwrap_or_else(|p| p.into_inner());
        walks
            .get(gun.as_str())
            .filter(|w| w.heads == heads && now < w.valid_until)
            .cloned()
    }

    fn keep_walk(&self, gun: &Gun, walked: Arc<Walked>) {
        let mut walks = self.walks.lock().unwrap_or_else(|p| p.into_inner());
        if walks.len() >= MAX_WALKS_KEPT {
            walks.clear();
        }
        walks.insert(gun.to_string(), walked);
    }

    fn put(&self, gun: &Gun, role: &RoleName, version: u64, dated: Arc<Dated>) {
        let mut memo = self.dated.lock().unwrap_or_else(|p| p.into_inner());
        if memo.len() >= MAX_REMEMBERED {
            memo.clear();
        }
        memo.insert((gun.to_string(), role.to_string()), (version, dated));
    }
}

/// One role's row.
#[derive(Clone, Debug)]
pub struct RoleRow {
    pub role: String,
    pub version: u64,
    pub expires: OffsetDateTime,
    /// Keys the role lists (root's entry for top-level roles, the delegation for others).
    pub keys: Vec<String>,
    pub threshold: u32,
    /// Key IDs of the signatures the current version carries that the role lists.
    pub signed_by: Vec<String>,
}

/// One root version.
#[derive(Clone, Debug)]
pub struct RootRow {
    pub version: u64,
    pub stored: OffsetDateTime,
    pub expires: OffsetDateTime,
    pub root_keys: Vec<String>,
    pub targets_keys: Vec<String>,
    /// What this version changed against the one before, in words.
    pub change: String,
}

/// A stored row's identity: a version of a role is written once, and a repository made
/// again writes its versions at other times.
type Head = (RoleName, Version, OffsetDateTime);

/// What the verified walk of a repository gave the page. It is kept while the rows it
/// read are still the newest and none of them has expired, so a page of many tags pays
/// for the walk once per change.
#[derive(Debug)]
pub struct Walked {
    heads: Vec<Head>,
    /// The earliest expiry of what it read: from then on clients refuse it.
    valid_until: OffsetDateTime,
    /// What a client sees.
    view: TrustView,
    /// Dating of each shown tag, by tag.
    since: HashMap<String, Since>,
    roles: Vec<RoleRow>,
}

/// A repository as its page shows it.
#[derive(Debug)]
pub struct RepoData {
    pub gun: Gun,
    /// Why a client refuses the repository now, when it does.
    pub problem: Option<String>,
    /// What a client sees (at the last moment it could, when `problem` is an expiry).
    walked: Option<Arc<Walked>>,
    pub roots: Vec<RootRow>,
    /// Newest first.
    pub audit: Vec<AuditRecord>,
}

impl RepoData {
    /// What a client sees, when the walk got that far.
    pub fn view(&self) -> Option<&TrustView> {
        self.walked.as_deref().map(|w| &w.view)
    }

    /// When `tag` got its digest, when known.
    pub fn since(&self, tag: &str) -> Option<&Since> {
        self.walked.as_deref().and_then(|w| w.since.get(tag))
    }

    /// Every role's row.
    pub fn roles(&self) -> &[RoleRow] {
        self.walked.as_deref().map_or(&[], |w| &w.roles)
    }
}

/// Reads everything the repository page shows; `None` when `gun` has no trust data.
pub async fn repository(state: &AppState, gun: &Gun) -> Result<Option<RepoData>, ApiError> {
    let current = state.store.current_heads(gun).await?;
    let Some(first_root) = state
        .store
        .by_version(gun, &RoleName::root(), Version::ONE)
        .await?
    else {
        return Ok(None);
    };
    let now = OffsetDateTime::now_utc();
    let heads: Vec<Head> = current
        .iter()
        .map(|m| (m.role.clone(), m.version, m.created))
        .collect();
    let valid_until = current.iter().map(|m| m.expires).min();
    let kept = state.ui_memo.walk(gun, &heads, now);
    let started = std::time::Instant::now();
    let (walked, problem) = match kept {
        Some(walked) => (Some(walked), None),
        None => match walk(state, gun, &first_root.data, now).await {
            Ok(updater) => {
                let walked_at = std::time::Instant::now();
                let walked = Arc::new(walked_view(state, gun, updater, &current, heads).await?);
                tracing::debug!(
                    %gun,
                    walk_ms = (walked_at - started).as_secs_f64() * 1e3,
                    view_ms = walked_at.elapsed().as_secs_f64() * 1e3,
                    "the web view walked a repository"
                );
                state.ui_memo.keep_walk(gun, walked.clone());
                (Some(walked), None)
            }
            Err(why) => {
                // Expired metadata: show what clients saw last, and say that they refuse it
                // now.
                let earlier = match valid_until {
                    Some(at) if at <= now => {
                        walk(state, gun, &first_root.data, at - time::Duration::SECOND)
                            .await
                            .ok()
                    }
                    _ => None,
                };
                let walked = match earlier {
                    Some(updater) => Some(Arc::new(
                        walked_view(state, gun, updater, &current, heads).await?,
                    )),
                    None => None,
                };
                (walked, Some(why))
            }
        },
    };
    Ok(Some(RepoData {
        gun: gun.clone(),
        problem,
        walked,
        roots: root_history(state, gun).await?,
        audit: state.store.audit_of(gun, AUDIT_SHOWN).await?,
    }))
}

/// The page's share of a finished walk.
async fn walked_view(
    state: &AppState,
    gun: &Gun,
    (updater, roles): (Updater<StoreFetch>, Vec<RoleName>),
    current: &[crate::store::MetaHead],
    heads: Vec<Head>,
) -> Result<Walked, ApiError> {
    let view = trust_view(&updater, &roles);
    let since = date_tags(state, gun, &updater, &view, current).await?;
    Ok(Walked {
        heads,
        valid_until: current
            .iter()
            .map(|m| m.expires)
            .min()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        roles: role_rows(&updater, &roles, current),
        since,
        view,
    })
}

/// A client's update of `gun` at time `now`, with every targets role loaded.
async fn walk(
    state: &AppState,
    gun: &Gun,
    first_root: &[u8],
    now: OffsetDateTime,
) -> Result<(Updater<StoreFetch>, Vec<RoleName>), String> {
    let fetch = StoreFetch {
        store: state.store.clone(),
        gun: gun.clone(),
    };
    let mut updater = Updater::new(first_root.to_vec(), fetch, now, Limits::default())
        .map_err(|e| e.to_string())?
        .with_repository(gun.as_str())
        .with_unlisted_delegations(UnlistedDelegation::Empty)
        .with_search_order(SearchOrder::Docker);
    updater.refresh().await.map_err(|e| e.to_string())?;
    let roles = updater
        .load_all_targets()
        .await
        .map_err(|e| e.to_string())?;
    Ok((updater, roles))
}

fn ids<'a>(keys: impl IntoIterator<Item = &'a notar_tuf::KeyId>) -> Vec<String> {
    keys.into_iter().map(ToString::to_string).collect()
}

/// The rows of the role table: top-level roles from root, delegated ones from the
/// delegation that names them, in walk order.
fn role_rows(
    updater: &Updater<StoreFetch>,
    roles: &[RoleName],
    current: &[crate::store::MetaHead],
) -> Vec<RoleRow> {
    let root = updater.root();
    let signed_by = |signatures: &[notar_tuf::Signature], listed: &[String]| -> Vec<String> {
        let mut by: Vec<String> = signatures
            .iter()
            .map(|s| s.keyid.to_string())
            .filter(|id| listed.contains(id))
            .collect();
        by.dedup();
        by
    };
    let stored_expiry =
        |role: &RoleName| current.iter().find(|m| m.role == *role).map(|m| m.expires);
    let mut rows = Vec::new();
    let top = |role: RoleType, version: Version, signatures: &[notar_tuf::Signature]| {
        let entry = root.role_keys(role);
        let keys = entry.map(|r| ids(&r.keyids)).unwrap_or_default();
        RoleRow {
            role: role.as_str().to_owned(),
            version: version.get(),
            expires: stored_expiry(&role.role_name()).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            threshold: entry.map_or(1, |r| r.threshold.get()),
            signed_by: signed_by(signatures, &keys),
            keys,
        }
    };
    rows.push(top(
        RoleType::Root,
        root.version,
        root.signed().signatures(),
    ));
    for role in roles {
        let Some(targets) = updater.targets(role) else {
            continue;
        };
        if *role == RoleName::targets() {
            rows.push(top(
                RoleType::Targets,
                targets.version,
                targets.signed().signatures(),
            ));
            continue;
        }
        let Some(entry) = roles
            .iter()
            .filter_map(|parent| updater.targets(parent))
            .filter_map(|parent| parent.delegations.as_ref())
            .flat_map(|d| d.roles.iter())
            .find(|d| d.name == *role)
        else {
            continue;
        };
        let keys = ids(&entry.keyids);
        rows.push(RoleRow {
            role: role.to_string(),
            version: targets.version.get(),
            expires: targets.expires.datetime(),
            threshold: entry.threshold.get(),
            signed_by: signed_by(targets.signed().signatures(), &keys),
            keys,
        });
    }
    if let Some(snapshot) = updater.snapshot() {
        rows.push(top(
            RoleType::Snapshot,
            snapshot.version,
            snapshot.signed().signatures(),
        ));
    }
    if let Some(timestamp) = updater.timestamp() {
        rows.push(top(
            RoleType::Timestamp,
            timestamp.version,
            timestamp.signed().signatures(),
        ));
    }
    rows
}

/// Every stored root version, oldest first, with what each changed.
async fn root_history(state: &AppState, gun: &Gun) -> Result<Vec<RootRow>, ApiError> {
    let mut rows: Vec<RootRow> = Vec::new();
    let mut version = Version::ONE;
    while let Some(meta) = state
        .store
        .by_version(gun, &RoleName::root(), version)
        .await?
    {
        let root: Root = match notar_tuf::notary::parse_either::<Root>(meta.data.to_vec()) {
            Ok((_, signed)) => signed.untrusted().clone(),
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "stored root v{version} of {gun}: {e}"
                )));
            }
        };
        let keys_of = |role: RoleType| {
            let mut keys = root
                .role_keys(role)
                .map(|r| ids(&r.keyids))
                .unwrap_or_default();
            keys.sort();
            keys
        };
        let (root_keys, targets_keys) = (keys_of(RoleType::Root), keys_of(RoleType::Targets));
        let change = match rows.last() {
            None => "first root".to_owned(),
            Some(before) => {
                let mut changed = Vec::new();
                if before.root_keys != root_keys {
                    changed.push("root key rotated");
                }
                if before.targets_keys != targets_keys {
                    changed.push("targets key rotated");
                }
                if changed.is_empty() {
                    "re-signed, same keys".to_owned()
                } else {
                    changed.join(", ")
                }
            }
        };
        rows.push(RootRow {
            version: version.get(),
            stored: meta.created,
            expires: meta.expires,
            root_keys,
            targets_keys,
            change,
        });
        let Some(next) = version
            .get()
            .checked_add(1)
            .and_then(|v| Version::new(v).ok())
        else {
            break;
        };
        version = next;
    }
    Ok(rows)
}

/// When each shown tag got its digest, from the versions of the role that vouches for it.
async fn date_tags(
    state: &AppState,
    gun: &Gun,
    updater: &Updater<StoreFetch>,
    view: &TrustView,
    current: &[crate::store::MetaHead],
) -> Result<HashMap<String, Since>, ApiError> {
    let mut vouching: Vec<&RoleName> = view.tags.iter().map(|t| &t.role).collect();
    vouching.sort();
    vouching.dedup();
    let mut since = HashMap::new();
    for role in vouching {
        let Some(targets) = updater.targets(role) else {
            continue;
        };
        let Some(stored) = current.iter().find(|m| m.role == *role) else {
            continue;
        };
        let dated = date_role(state, gun, role, targets, stored.created).await?;
        for tag in view.tags.iter().filter(|t| t.role == *role) {
            if let Some((_, when)) = dated.get(&tag.tag) {
                since.insert(tag.tag.clone(), *when);
            }
        }
    }
    Ok(since)
}

/// The sha256 of each target of `targets`.
fn digests(targets: &Targets) -> HashMap<String, Sha256> {
    targets
        .targets
        .iter()
        .filter_map(|(name, file)| Some((name.to_string(), file.sha256_digest()?)))
        .collect()
}

/// What the dating needs of an older version of a role: each target's sha256. Only the
/// current version is verified (by the walk); older ones are read for their listing
/// alone, without building a document tree, in either dialect (hex in TUF 1.0, base64 in
/// Notary's).
#[derive(serde::Deserialize)]
struct Listing<'a> {
    #[serde(borrow)]
    signed: ListingBody<'a>,
}

#[derive(serde::Deserialize)]
struct ListingBody<'a> {
    #[serde(default, borrow)]
    targets: HashMap<Cow<'a, str>, Listed<'a>>,
}

#[derive(serde::Deserialize)]
struct Listed<'a> {
    #[serde(default, borrow)]
    hashes: ListedHashes<'a>,
}

#[derive(Default, serde::Deserialize)]
struct ListedHashes<'a> {
    #[serde(borrow)]
    sha256: Option<Cow<'a, str>>,
}

fn listed_digests(bytes: &[u8]) -> Option<HashMap<String, Sha256>> {
    use base64::Engine as _;
    let listing: Listing = serde_json::from_slice(bytes).ok()?;
    let decode = |text: &str| -> Option<Sha256> {
        let bytes = match hex::decode(text) {
            Ok(bytes) => bytes,
            Err(_) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?,
        };
        bytes.try_into().ok()
    };
    Some(
        listing
            .signed
            .targets
            .into_iter()
            .filter_map(|(name, file)| Some((name.into_owned(), decode(&file.hashes.sha256?)?)))
            .collect(),
    )
}

/// Dates every target of the current version of `role` (`targets`, stored at `created`),
/// walking back from it to the version the memo holds, or as far as versions exist.
async fn date_role(
    state: &AppState,
    gun: &Gun,
    role: &RoleName,
    targets: &Targets,
    created: OffsetDateTime,
) -> Result<Arc<Dated>, ApiError> {
    let newest = targets.version.get();
    let memo = state.ui_memo.get(gun, role);
    if let Some((version, dated)) = &memo
        && *version == newest
    {
        return Ok(dated.clone());
    }
    // Targets not yet dated: name → digest. Each is listed, with that digest, by every
    // version from `oldest` (stored at `oldest_at`) to the newest.
    let mut open = digests(targets);
    let mut dated: Dated = HashMap::with_capacity(open.len());
    let (mut oldest, mut oldest_at) = (newest, created);
    loop {
        if open.is_empty() {
            break;
        }
        let before = oldest - 1;
        let settle = |open: &mut HashMap<String, Sha256>, dated: &mut Dated, when: Since| {
            for (name, digest) in open.drain() {
                dated.insert(name, (digest, when));
            }
        };
        if before == 0 {
            settle(&mut open, &mut dated, Since::At(oldest_at, oldest));
            break;
        }
        if let Some((version, remembered)) = &memo
            && *version == before
        {
            for (name, digest) in open.drain() {
                let when = match remembered.get(&name) {
                    Some((same, when)) if *same == digest => *when,
                    _ => Since::At(oldest_at, oldest),
                };
                dated.insert(name, (digest, when));
            }
            break;
        }
        let earlier = match Version::new(before) {
            Ok(v) if newest - before <= MAX_WALK => state.store.by_version(gun, role, v).await?,
            _ => None,
        };
        let Some(earlier) = earlier else {
            settle(&mut open, &mut dated, Since::NoLaterThan(oldest_at, oldest));
            break;
        };
        let listed = match listed_digests(&earlier.data) {
            Some(listed) => listed,
            // A version that does not parse any more dates nothing older.
            None => {
                settle(&mut open, &mut dated, Since::NoLaterThan(oldest_at, oldest));
                break;
            }
        };
        open.retain(|name, digest| {
            let kept = listed.get(name) == Some(digest);
            if !kept {
                dated.insert(name.clone(), (*digest, Since::At(oldest_at, oldest)));
            }
            kept
        });
        (oldest, oldest_at) = (before, earlier.created);
    }
    let dated = Arc::new(dated);
    state.ui_memo.put(gun, role, newest, dated.clone());
    Ok(dated)
}
