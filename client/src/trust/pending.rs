//! Pending delegations: a signer added before it has signed anything.
//!
//! A delegation to a role that has no metadata makes standard TUF clients (python-tuf)
//! refuse every lookup that reaches it. So `trust signer add` does not publish such a
//! delegation: it signs the next targets with it and leaves them with the server as
//! pending ([`stage`]). The signer's first `trust sign` finds them ([`for_signer`]),
//! checks them against root, and uploads them unchanged together with its first version of
//! its roles: the server publishes both in one transaction, so the repository verifies for
//! every client at every step.
//!
//! Pending targets are built on one version of targets. When the owner publishes targets
//! again, [`rebase`] re-signs each pending delegation on top of the new version, so it
//! stays publishable; only pending targets this trust directory staged itself are re-signed
//! (their sha256 is kept in the repository's cache), never others the server offers.
//! `trust signer remove` of a pending signer cancels it ([`cancel`]). Two signers pending at once: when one publishes, the other's pending
//! targets are stale until the owner publishes again (any owner command that signs
//! targets does), and the signer is told so.

use std::collections::BTreeMap;

use notar_tuf::names::Tag;
use notar_tuf::{DelegatedRole, KeyId, RoleName, RoleType, Signed, Targets, Version, rules};

use crate::trust::keyring::Keyring;
use crate::trust::keyring::UnlockedKey;
use crate::trust::keyring::held_id;
use crate::trust::repo::Repository;
use crate::trust::signers::{Held, held_roles};
use crate::{Context, Error};

/// Whether `role` has metadata in the repository (the trusted snapshot lists it).
pub fn published(repo: &Repository, role: &RoleName) -> bool {
    repo.updater
        .snapshot()
        .is_some_and(|s| s.meta.contains_key(&format!("{role}.json")))
}

/// Signs the next targets (the current ones changed by `edit`) and stages them as pending
/// for the delegated roles they name that have no metadata yet. Returns the version.
pub async fn stage(
    ctx: &Context,
    repo: &Repository,
    key: &UnlockedKey,
    lifetime: time::Duration,
    edit: impl Fn(&mut Targets) -> Result<(), Error>,
) -> Result<Version, Error> {
    let (version, signed) = crate::trust::targets::next_targets(ctx, repo, key, lifetime, edit)?;
    ctx.server
        .upload_pending(&repo.gun, signed.as_bytes().to_vec())
        .await?;
    repo.cache()
        .update_staged(Some(&sha256_hex(signed.as_bytes())), None)?;
    Ok(version)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The pending targets of `repo` that verify under root's targets keys, with the roles each
/// waits for; the same targets wait for several roles at once when one signer was given
/// two (its own and `targets/releases`).
async fn verified(
    ctx: &Context,
    repo: &Repository,
) -> Result<Vec<(Signed<Targets>, Vec<RoleName>)>, Error> {
    let root = repo.updater.root();
    let authority = root.authority(RoleType::Targets).ok_or_else(|| {
        Error::MissingKey(format!("the root of {} lists no targets keys", repo.gun))
    })?;
    let mut by_bytes: BTreeMap<Vec<u8>, Vec<RoleName>> = BTreeMap::new();
    for (role, bytes) in ctx.server.pending(&repo.gun).await? {
        by_bytes.entry(bytes).or_default().push(role);
    }
    let mut out = Vec::new();
    for (bytes, roles) in by_bytes {
        let checked = Signed::<Targets>::from_bytes(bytes)
            .map_err(|source| rules::Rejection::Invalid {
                role: "targets".into(),
                source,
            })
            .and_then(|s| rules::verify_role(s, &authority));
        match checked {
            Ok(verified) => out.push((verified.into_signed(), roles)),
            Err(e) => {
                tracing::warn!(gun = %repo.gun, error = %e, "ignoring pending targets that do not verify");
            }
        }
    }
    Ok(out)
}

/// Pending targets this trust directory can publish by signing `tag` into roles it holds
/// keys for: the targets bytes, unchanged, and the roles. `None` if there are none.
/// Pending targets built on an older version than the current one are stale: if only such
/// ones would serve, the error says the owner must publish again.
pub async fn for_signer(
    ctx: &Context,
    keyring: &Keyring,
    repo: &Repository,
    tag: &Tag,
    wanted: Option<&RoleName>,
) -> Result<Option<(Vec<u8>, Vec<Held>)>, Error> {
    let current = repo.targets()?.version;
    let mut stale = None;
    for (pending, waiting) in verified(ctx, repo).await? {
        let delegated: Vec<&DelegatedRole> = pending
            .untrusted()
            .delegations
            .as_ref()
            .map(|d| d.roles.iter().collect())
            .unwrap_or_default();
        // Only targets that wait for one of this signer's roles are its to publish.
        let mine: Vec<&DelegatedRole> = delegated
            .iter()
            .copied()
            .filter(|r| waiting.contains(&r.name) && wanted.is_none_or(|w| r.name == *w))
            .filter(|r| {
                r.keyids.iter().any(|id| {
                    let keys = pending.untrusted().delegations.as_ref().map(|d| &d.keys);
                    keys.is_some_and(|keys| {
                        keyring.holds_delegation_key(&held_id(repo.dialect(), keys, id))
                    })
                })
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        let held: Vec<Held> = held_roles(
            keyring,
            repo.dialect(),
            pending.untrusted().delegations.as_ref(),
            &delegated,
            tag.as_str(),
        )
        .into_iter()
        .filter(|h| wanted.is_none_or(|w| h.role == *w))
        .collect();
        if !held.iter().any(|h| waiting.contains(&h.role)) {
            return Err(Error::MissingKey(format!(
                "{} of {} may not sign {tag}, and this trust directory holds no key of one whose paths allow {tag} (paths: {})",
                mine.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                repo.gun,
                mine.iter()
                    .flat_map(|r| r.paths.iter().flatten())
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if pending.untrusted().version != current.next() {
            stale = Some(waiting);
            continue;
        }
        return Ok(Some((pending.as_bytes().to_vec(), held)));
    }
    match stale {
        Some(waiting) => Err(Error::MissingKey(format!(
            "the delegation to {} of {} waits for its first signature, but the repository has moved on since the owner signed it; \
             it is re-signed by the next command of the owner that publishes targets (for instance notar trust signer add again)",
            names(&waiting),
            repo.gun
        ))),
        None => Ok(None),
    }
}

/// After the owner published targets: re-signs every stale pending delegation on top of
/// the current targets with `key`, keeping the delegation entries (and their keys) of the
/// roles it waits for.
pub async fn rebase(
    ctx: &Context,
    repo: &Repository,
    key: &UnlockedKey,
    lifetime: time::Duration,
) -> Result<(), Error> {
    let current = repo.targets()?.version;
    let staged = repo.cache().staged_pending();
    for (pending, waiting) in verified(ctx, repo).await? {
        // Only what this trust directory staged: the server could offer any targets the
        // owner ever signed, including delegations long removed.
        let sha = sha256_hex(pending.as_bytes());
        if pending.untrusted().version > current || !staged.contains(&sha) {
            continue;
        }
        let Some(delegations) = pending.untrusted().delegations.clone() else {
            continue;
        };
        // The waiting roles' entries as the owner signed them, and the waiting signers'
        // keys in other roles (an unrestricted signer's key in targets/releases).
        let entries: Vec<DelegatedRole> = delegations
            .roles
            .iter()
            .filter(|r| waiting.contains(&r.name) && !published(repo, &r.name))
            .cloned()
            .collect();
        if entries.is_empty() {
            continue;
        }
        let signer_keys: Vec<KeyId> = entries.iter().flat_map(|e| e.keyids.clone()).collect();
        let shared: Vec<(RoleName, Vec<KeyId>)> = delegations
            .roles
            .iter()
            .filter(|r| !waiting.contains(&r.name))
            .map(|r| {
                let keys = r
                    .keyids
                    .iter()
                    .filter(|k| signer_keys.contains(k))
                    .cloned()
                    .collect();
                (r.name.clone(), keys)
            })
            .collect();
        repo.cache().update_staged(None, Some(&sha))?;
        let version = stage(ctx, repo, key, lifetime, |next| {
            let d = next
                .delegations
                .get_or_insert_with(notar_tuf::Delegations::new);
            for id in &signer_keys {
                if let Some(k) = delegations.keys.get(id) {
                    d.keys.insert(id.clone(), k.clone());
                }
            }
            for entry in &entries {
                match d.roles.iter_mut().find(|r| r.name == entry.name) {
                    Some(existing) => *existing = entry.clone(),
                    None => d.roles.push(entry.clone()),
                }
            }
            for (name, keys) in &shared {
                if let Some(role) = d.roles.iter_mut().find(|r| r.name == *name) {
                    for k in keys {
                        if !role.keyids.contains(k) {
                            role.keyids.push(k.clone());
                        }
                    }
                }
            }
            Ok(())
        })
        .await?;
        eprintln!(
            "notar: re-signed the pending delegation to {} of {} on top of targets version {current} (as version {version})",
            names(&waiting),
            repo.gun
        );
    }
    Ok(())
}

/// Cancels the pending delegations this trust directory staged for `role`: they are no
/// longer re-signed, and the caller publishes targets again so that the pending targets,
/// built on the version it replaces, can never be published. `Ok(false)`: none.
pub async fn cancel(ctx: &Context, repo: &Repository, role: &RoleName) -> Result<bool, Error> {
    let staged = repo.cache().staged_pending();
    let mut cancelled = false;
    for (pending, waiting) in verified(ctx, repo).await? {
        let sha = sha256_hex(pending.as_bytes());
        if waiting.contains(role) && staged.contains(&sha) {
            repo.cache().update_staged(None, Some(&sha))?;
            cancelled = true;
        }
    }
    Ok(cancelled)
}

fn names(roles: &[RoleName]) -> String {
    roles
        .iter()
        .map(RoleName::as_str)
        .collect::<Vec<_>>()
        .join(" and ")
}
