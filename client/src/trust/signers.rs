//! Signing as a signer: of the delegated roles of a repository, those this trust directory
//! holds keys for ([`held_roles`]), and one change of a tag signed into all of them in one
//! upload ([`sign_roles`], [`revoke`]). A role whose threshold needs more keys than the
//! trust directory holds is refused before anything is uploaded.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use notar_keys::KeyRole;
use notar_tuf::names::Tag;
use notar_tuf::notary::Dialect;
use notar_tuf::{
    DelegatedRole, Delegations, Expiry, Gun, KeyId, RoleName, Signer, TargetFile, Targets, Version,
};
use serde::Serialize;

use crate::trust::keyring::{Keyring, UnlockedKey, held_id};
use crate::trust::repo::{Repository, Warnings};
use crate::{Context, Error};

/// The delegated role every signer's keys are added to, as Docker does.
pub const RELEASES: &str = "targets/releases";

/// A delegated role and the version that holds a change (`--json` format 1).
#[derive(Debug, Serialize)]
pub struct RoleVersion {
    pub role: String,
    pub version: u64,
    pub key_ids: Vec<String>,
}

/// A delegated role this trust directory can sign, with the keys it holds for it.
#[derive(Debug)]
pub struct Held {
    pub role: RoleName,
    threshold: NonZeroU32,
    keys: Vec<KeyId>,
}

/// Of the direct delegations `delegated` of targets, those that may sign `tag` and for
/// which the key store holds at least one key. `delegations` holds their key objects, in
/// the repository's dialect.
pub fn held_roles(
    keyring: &Keyring,
    dialect: Dialect,
    delegations: Option<&Delegations>,
    delegated: &[&DelegatedRole],
    tag: &str,
) -> Vec<Held> {
    let no_keys = BTreeMap::new();
    let keys = delegations.map_or(&no_keys, |d| &d.keys);
    delegated
        .iter()
        .filter(|r| r.matches(tag))
        .filter_map(|r| {
            let keys: Vec<KeyId> = r
                .keyids
                .iter()
                .map(|id| held_id(dialect, keys, id))
                .filter(|id| keyring.holds_delegation_key(id))
                .collect();
            (!keys.is_empty()).then(|| Held {
                role: r.name.clone(),
                threshold: r.threshold,
                keys,
            })
        })
        .collect()
}

/// The current content of the delegated role `role`, as the client workflow verified it
/// (the version the trusted snapshot pins, checked against the delegation's keys);
/// `None` if the role has never been published. Call after `load_all_targets`.
fn current_role(repo: &Repository, role: &RoleName) -> Option<Targets> {
    repo.updater.current_role(role).map(|t| (**t).clone())
}

/// What a signer does to one tag: sign it as this target, or (`None`) revoke it.
pub type Change = (Tag, Option<TargetFile>);

/// `trust revoke` by a signer. `Ok(None)`: this trust directory holds no key for a
/// delegated role that may sign `tag` (or the repository has no trust data), so the caller
/// goes on as the repository owner.
pub async fn revoke(
    ctx: &Context,
    gun: &Gun,
    tag: &Tag,
    lifetime: time::Duration,
    pin: Option<&KeyId>,
) -> Result<Option<Vec<RoleVersion>>, Error> {
    let keyring = ctx.keyring()?;
    let has_delegation_key = keyring
        .store
        .list()
        .map_err(Error::keys("listing keys"))?
        .keys
        .iter()
        .any(|k| k.role == KeyRole::Delegation);
    if !has_delegation_key {
        return Ok(None);
    }
    let mut repo = match Repository::open(ctx, gun, pin, Warnings::RootOnly).await {
        Ok(repo) => repo,
        Err(Error::NoTrustData { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let targets = repo.targets()?;
    let delegations = targets.delegations.as_ref();
    let delegated: Vec<&DelegatedRole> = delegations
        .map(|d| d.roles.iter().collect())
        .unwrap_or_default();
    let held = held_roles(
        &keyring,
        repo.dialect(),
        delegations,
        &delegated,
        tag.as_str(),
    );
    if held.is_empty() {
        return Ok(None);
    }
    let changes = [(tag.clone(), None)];
    sign_roles(ctx, &keyring, &mut repo, &held, &changes, lifetime, None)
        .await
        .map(Some)
}

/// Makes every change (a tag signed as a target, or revoked) in each of the `held` roles,
/// in one upload, and returns which roles changed, in which versions. A role that has none
/// of the tags to revoke is left alone. `pending`: the owner's pending targets that
/// delegate these roles, uploaded unchanged in the same request, so the delegation and the
/// signer's first roles are published together.
pub async fn sign_roles(
    ctx: &Context,
    keyring: &Keyring,
    repo: &mut Repository,
    held: &[Held],
    changes: &[Change],
    lifetime: time::Duration,
    pending: Option<Vec<u8>>,
) -> Result<Vec<RoleVersion>, Error> {
    let gun = &repo.gun.clone();
    // Every key and every threshold first: a wrong passphrase or a missing co-signer must
    // change nothing.
    for h in held {
        if h.keys.len() < h.threshold.get() as usize {
            return Err(Error::MissingKey(format!(
                "{} of {gun} needs signatures from {} keys, and this trust directory holds {} of them ({})",
                h.role,
                h.threshold,
                h.keys.len(),
                h.keys
                    .iter()
                    .map(KeyId::short)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut unlocked: Vec<std::sync::Arc<UnlockedKey>> = Vec::new();
    for id in held.iter().flat_map(|h| h.keys.iter()) {
        if !unlocked.iter().any(|k| k.key_id() == id) {
            unlocked.push(keyring.unlock(KeyRole::Delegation, id).await?);
        }
    }
    repo.load_all_targets().await?;
    let mut uploads: Vec<(RoleName, Vec<u8>)> = pending
        .map(|bytes| (RoleName::targets(), bytes))
        .into_iter()
        .collect();
    let mut results = Vec::new();
    for h in held {
        let current = current_role(repo, &h.role);
        let touches = changes.iter().any(|(tag, target)| {
            target.is_some()
                || current
                    .as_ref()
                    .is_some_and(|t| t.targets.contains_key(tag.as_str()))
        });
        if !touches {
            continue;
        }
        let mut next = match current {
            Some(mut t) => {
                t.version = t.version.next();
                t
            }
            None => Targets::new(Version::ONE, Expiry::after(ctx.now, lifetime)),
        };
        next.expires = Expiry::after(ctx.now, lifetime);
        for (tag, target) in changes {
            match target {
                Some(target) => {
                    next.targets.insert(tag.target_name(), target.clone());
                }
                None => {
                    next.targets.remove(tag.as_str());
                }
            }
        }
        let signers: Vec<&dyn Signer> = unlocked
            .iter()
            .filter(|k| h.keys.contains(k.key_id()))
            .map(|k| &**k as &dyn Signer)
            .collect();
        let version = next.version;
        let signed = repo
            .dialect()
            .sign(next, &signers)
            .map_err(Error::metadata(format!(
                "signing {} version {version}",
                h.role
            )))?;
        uploads.push((h.role.clone(), signed.as_bytes().to_vec()));
        results.push(RoleVersion {
            role: h.role.to_string(),
            version: version.get(),
            key_ids: h.keys.iter().map(ToString::to_string).collect(),
        });
    }
    if uploads.is_empty() {
        let tags: Vec<String> = changes.iter().map(|(t, _)| t.to_string()).collect();
        return Err(Error::Unsigned {
            gun: gun.clone(),
            tag: format!(
                "{} (in the delegated roles this trust directory holds keys for)",
                tags.join(", ")
            ),
        });
    }
    ctx.server.upload(gun, uploads).await?;
    repo.refresh().await?;
    Ok(results)
}
