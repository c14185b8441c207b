//! Writing a repository: accepting an upload, and re-signing what the server signs.
//!
//! Both end the same way: the server signs the next snapshot (when it holds that key) and
//! always the next timestamp, and everything goes to the store in one transaction. If
//! another writer stored the same versions first, the store refuses and nothing is written.

use std::collections::BTreeMap;

use bytes::Bytes;
use notar_tuf::notary::Dialect;
use notar_tuf::{
    Gun, MetaFile, Role, RoleName, RoleType, Root, Signed, Snapshot, Timestamp, Version,
};
use time::OffsetDateTime;

use crate::AppState;
use crate::audit::Origin;
use crate::error::ApiError;
use crate::path::ManagedRole;
use crate::store::NewMeta;
use crate::validate::{self, RepoState, ServerKeyIds, SnapshotSigner};

/// Validates and stores one upload of (role, bytes) pairs for `gun`, made by `actor`.
/// Returns the repository's dialect; errors of a Notary repository come as Notary's.
pub async fn apply_update(
    state: &AppState,
    gun: &Gun,
    uploads: Vec<(RoleName, Bytes)>,
    origin: &Origin,
) -> Result<Dialect, ApiError> {
    let repo = RepoState::from_stored(gun, &state.store.current_all(gun).await?)?;
    let upload = validate::Upload::read(&repo, uploads).map_err(|e| match repo.dialect {
        Some(Dialect::Notary) => e.as_notary(),
        _ => e,
    })?;
    let dialect = upload.dialect;
    match store_update(state, gun, &repo, upload, origin).await {
        Ok(()) => Ok(dialect),
        Err(e) if dialect == Dialect::Notary => Err(e.as_notary()),
        Err(e) => Err(e),
    }
}

async fn store_update(
    state: &AppState,
    gun: &Gun,
    repo: &RepoState,
    upload: validate::Upload,
    origin: &Origin,
) -> Result<(), ApiError> {
    let now = OffsetDateTime::now_utc();
    let dialect = upload.dialect;
    let server_keys = server_key_ids(state, gun, dialect).await?;
    let accepted = validate::check_update_with(
        repo,
        upload,
        &server_keys,
        now,
        validate::Unpublished::Refuse,
        validate::Signatures::Threshold,
    )?;
    let root = accepted
        .root(repo)
        .ok_or_else(|| ApiError::internal("an accepted update has no root"))?;

    let mut files = Vec::new();
    if let Some(new_root) = &accepted.root {
        files.push(new_meta(RoleName::root(), new_root.signed()));
    }
    for (name, targets) in &accepted.targets {
        files.push(new_meta(name.clone(), targets.signed()));
    }
    let snapshot = match (&accepted.snapshot, accepted.snapshot_signer) {
        (Some(uploaded), _) => uploaded.signed().clone(),
        (None, SnapshotSigner::Server) => {
            let version = next_version(repo.snapshot.as_ref().map(|s| s.version));
            let pinned = Pinned {
                dialect,
                root,
                targets: &accepted.targets_after,
            };
            sign_snapshot(state, gun, &pinned, version, now).await?
        }
        (None, SnapshotSigner::Client) => {
            return Err(ApiError::internal(
                "client-signed snapshot missing after validation",
            ));
        }
    };
    files.push(new_meta(RoleName::snapshot(), &snapshot));
    let timestamp_version = next_version(repo.timestamp.as_ref().map(|t| t.version));
    let timestamp =
        sign_timestamp(state, gun, dialect, root, timestamp_version, &snapshot, now).await?;
    files.push(new_meta(RoleName::timestamp(), &timestamp));

    let result = state.store.commit_as(gun, &files, origin).await;
    state.cache.invalidate(gun);
    result?;
    tracing::info!(
        gun = %gun,
        actor = origin.actor.as_deref().unwrap_or("-"),
        roles = ?files.iter().map(|f| f.role.as_str()).collect::<Vec<_>>(),
        timestamp_version = %timestamp_version,
        "stored update"
    );
    Ok(())
}

/// Keeps the owner's next `targets` as pending for each role it delegates that has no
/// metadata yet, instead of publishing it (see `pending_delegations` in the migrations).
/// The targets must pass every rule of an update; they are published later, in the same
/// transaction as the signer's first version of its role. Returns the waiting roles.
pub async fn stage_pending(
    state: &AppState,
    gun: &Gun,
    uploads: Vec<(RoleName, Bytes)>,
    origin: &Origin,
) -> Result<Vec<RoleName>, ApiError> {
    let bytes = match uploads.as_slice() {
        [(role, bytes)] if *role == RoleName::targets() => bytes.clone(),
        _ => {
            return Err(ApiError::malformed(
                "a pending delegation is one file, targets, that delegates a role without metadata",
            ));
        }
    };
    let now = OffsetDateTime::now_utc();
    let repo = RepoState::from_stored(gun, &state.store.current_all(gun).await?)?;
    let upload = validate::Upload::read(&repo, vec![(RoleName::targets(), bytes.clone())])?;
    let server_keys = server_key_ids(state, gun, upload.dialect).await?;
    let accepted = validate::check_update_with(
        &repo,
        upload,
        &server_keys,
        now,
        validate::Unpublished::Allow,
        validate::Signatures::Threshold,
    )?;
    let waiting: Vec<RoleName> = accepted
        .targets
        .iter()
        .filter(|(name, _)| *name == RoleName::targets())
        .filter_map(|(_, t)| t.delegations.as_ref())
        .flat_map(|d| d.roles.iter().map(|r| r.name.clone()))
        .filter(|name| !repo.targets.contains_key(name))
        .collect();
    if waiting.is_empty() {
        return Err(ApiError::invalid_update(
            "targets",
            "these targets delegate no role that lacks metadata: upload them as an update",
        ));
    }
    state
        .store
        .put_pending_as(gun, &waiting, &bytes, origin)
        .await?;
    tracing::info!(gun = %gun, roles = ?waiting, "staged a pending delegation");
    Ok(waiting)
}

/// Re-signs the timestamp of `gun`, and its snapshot when the server holds that key and it
/// is close to expiry, if either expires within its margin. Returns whether it wrote.
/// Losing a race to another writer is not an error: that writer refreshed it.
pub async fn refresh(state: &AppState, gun: &Gun) -> Result<bool, ApiError> {
    let now = OffsetDateTime::now_utc();
    let repo = RepoState::from_stored(gun, &state.store.current_all(gun).await?)?;
    let dialect = repo.dialect_or_tuf();
    let (Some(root), Some(snapshot), Some(timestamp)) =
        (&repo.root, &repo.snapshot, &repo.timestamp)
    else {
        return Ok(false);
    };
    let lifetimes = state.config.lifetimes;
    let due = |expires: notar_tuf::Expiry, lifetime: time::Duration| {
        expires.datetime() - now < crate::config::Lifetimes::margin(lifetime)
    };
    let server_keys = state
        .keys
        .key_ids_in(gun, ManagedRole::Snapshot, dialect)
        .await?;
    let server_snapshot = root
        .role_keys(RoleType::Snapshot)
        .is_some_and(|r| !r.keyids.is_empty() && r.keyids.iter().all(|k| server_keys.contains(k)));
    // A server-held snapshot is re-signed inside its margin, and also whenever the next
    // timestamp would outlive it, so the freshness task need only watch timestamps.
    let snapshot_due = server_snapshot
        && (due(snapshot.expires, lifetimes.snapshot)
            || snapshot.expires.datetime() <= now + lifetimes.timestamp);
    if !snapshot_due && !due(timestamp.expires, lifetimes.timestamp) {
        return Ok(false);
    }
    let mut files = Vec::new();
    let snapshot_signed = if snapshot_due {
        let targets_after: BTreeMap<RoleName, (Version, Bytes)> = repo
            .targets
            .iter()
            .map(|(n, t)| (n.clone(), (t.version, Bytes::copy_from_slice(t.as_bytes()))))
            .collect();
        let pinned = Pinned {
            dialect,
            root,
            targets: &targets_after,
        };
        let signed = sign_snapshot(state, gun, &pinned, snapshot.version.next(), now).await?;
        files.push(new_meta(RoleName::snapshot(), &signed));
        signed
    } else {
        snapshot.signed().clone()
    };
    let ts = sign_timestamp(
        state,
        gun,
        dialect,
        root,
        timestamp.version.next(),
        &snapshot_signed,
        now,
    )
    .await?;
    files.push(new_meta(RoleName::timestamp(), &ts));
    let result = state.store.commit_as(gun, &files, &Origin::server()).await;
    state.cache.invalidate(gun);
    match result {
        Ok(()) => {
            tracing::info!(gun = %gun, snapshot = snapshot_due, "re-signed before expiry");
            Ok(true)
        }
        Err(crate::store::StoreError::VersionConflict { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The IDs of the keys this server made for `gun`, as `dialect` writes key IDs.
pub(crate) async fn server_key_ids(
    state: &AppState,
    gun: &Gun,
    dialect: Dialect,
) -> Result<ServerKeyIds, ApiError> {
    Ok(ServerKeyIds {
        timestamp: state
            .keys
            .key_ids_in(gun, ManagedRole::Timestamp, dialect)
            .await?,
        snapshot: state
            .keys
            .key_ids_in(gun, ManagedRole::Snapshot, dialect)
            .await?,
    })
}

/// notary-server's lifetime for the snapshots it signs (`NotaryDefaultExpiries`).
const NOTARY_SNAPSHOT_LIFETIME: time::Duration = time::Duration::days(3 * 365);

/// What a snapshot the server signs pins: every targets role (Notary adds root).
struct Pinned<'a> {
    dialect: Dialect,
    root: &'a notar_tuf::Verified<Root>,
    targets: &'a BTreeMap<RoleName, (Version, Bytes)>,
}

fn next_version(stored: Option<Version>) -> Version {
    stored.map_or(Version::ONE, Version::next)
}

fn new_meta<T: Role>(role: RoleName, signed: &Signed<T>) -> NewMeta {
    NewMeta {
        role,
        version: signed.untrusted().version(),
        data: Bytes::copy_from_slice(signed.as_bytes()),
        expires: signed.untrusted().expires().datetime(),
    }
}

async fn managed_signer(
    state: &AppState,
    gun: &Gun,
    dialect: Dialect,
    root: &Root,
    role: ManagedRole,
) -> Result<std::sync::Arc<notar_keys::PrivateKey>, ApiError> {
    let role_type = match role {
        ManagedRole::Timestamp => RoleType::Timestamp,
        ManagedRole::Snapshot => RoleType::Snapshot,
    };
    let wanted = root
        .role_keys(role_type)
        .map(|r| r.keyids.clone())
        .unwrap_or_default();
    state
        .keys
        .signer_in(gun, role, &wanted, dialect)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_update(
                "root",
                format!("the server holds no {role_type} key that root lists"),
            )
        })
}

async fn sign_snapshot(
    state: &AppState,
    gun: &Gun,
    pinned: &Pinned<'_>,
    version: Version,
    now: OffsetDateTime,
) -> Result<Signed<Snapshot>, ApiError> {
    let dialect = pinned.dialect;
    let key = managed_signer(state, gun, dialect, pinned.root, ManagedRole::Snapshot).await?;
    // Stock Notary clients warn on every command while the snapshot has less than six
    // months left, so a Notary repository's snapshot lives as long as notary-server makes
    // it (three years); the timestamp, re-signed daily, is what keeps it fresh.
    let lifetime = match dialect {
        Dialect::Tuf => state.config.lifetimes.snapshot,
        Dialect::Notary => state
            .config
            .lifetimes
            .snapshot
            .max(NOTARY_SNAPSHOT_LIFETIME),
    };
    let mut snapshot = Snapshot::new(version, notar_tuf::Expiry::after(now, lifetime));
    let pin = |v: Version, bytes: &[u8]| match dialect {
        Dialect::Tuf => MetaFile::new(v, Some(bytes)),
        Dialect::Notary => MetaFile::sha256_sha512(v, bytes),
    };
    for (name, (v, bytes)) in pinned.targets {
        snapshot.meta.insert(format!("{name}.json"), pin(*v, bytes));
    }
    if dialect == Dialect::Notary {
        snapshot.meta.insert(
            "root.json".into(),
            pin(pinned.root.version, pinned.root.as_bytes()),
        );
    }
    state.metrics.signed("snapshot");
    dialect
        .sign(snapshot, &[key.as_ref()])
        .map_err(|e| ApiError::internal(format!("signing snapshot: {e}")))
}

async fn sign_timestamp(
    state: &AppState,
    gun: &Gun,
    dialect: Dialect,
    root: &Root,
    version: Version,
    snapshot: &Signed<Snapshot>,
    now: OffsetDateTime,
) -> Result<Signed<Timestamp>, ApiError> {
    let key = managed_signer(state, gun, dialect, root, ManagedRole::Timestamp).await?;
    let snapshot_version = snapshot.untrusted().version;
    let pin = match dialect {
        Dialect::Tuf => MetaFile::new(snapshot_version, Some(snapshot.as_bytes())),
        Dialect::Notary => MetaFile::sha256_sha512(snapshot_version, snapshot.as_bytes()),
    };
    let timestamp = Timestamp::new(
        version,
        notar_tuf::Expiry::after(now, state.config.lifetimes.timestamp),
        pin,
    );
    state.metrics.signed("timestamp");
    dialect
        .sign(timestamp, &[key.as_ref()])
        .map_err(|e| ApiError::internal(format!("signing timestamp: {e}")))
}
