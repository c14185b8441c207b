//! The owner's side of targets: this trust directory's targets key for a repository, and
//! the next version of top-level targets signed with it, in the repository's dialect.

use std::sync::Arc;

use notar_keys::KeyRole;
use notar_tuf::{Expiry, Gun, KeyId, RoleType, Signed, Signer, Targets, Version};

use crate::trust::keyring::{UnlockedKey, held_id};
use crate::trust::repo::Repository;
use crate::{Context, Error};

/// Unlocks this trust directory's targets key for `gun`, if it has one. Commands call it
/// before anything else touches a file, so a wrong passphrase changes nothing.
pub async fn unlock_targets_key(
    ctx: &Context,
    gun: &Gun,
) -> Result<Option<Arc<UnlockedKey>>, Error> {
    let keyring = ctx.keyring()?;
    match keyring.find(KeyRole::Targets, Some(gun))? {
        Some(info) => Ok(Some(keyring.unlock(KeyRole::Targets, &info.key_id).await?)),
        None => Ok(None),
    }
}

/// The targets key to sign `repo` with: `key` (from [`unlock_targets_key`]), which the
/// verified root must list for the targets role.
pub fn targets_signer<'k>(
    ctx: &Context,
    repo: &Repository,
    key: Option<&'k UnlockedKey>,
) -> Result<&'k UnlockedKey, Error> {
    let root = repo.updater.root();
    let listed: Vec<KeyId> = root
        .role_keys(RoleType::Targets)
        .map(|r| r.keyids.clone())
        .unwrap_or_default();
    let held = |key: &UnlockedKey| {
        listed
            .iter()
            .any(|id| held_id(repo.dialect(), &root.keys, id) == *key.key_id())
    };
    match key {
        Some(key) if held(key) => Ok(key),
        _ => Err(Error::MissingKey(format!(
            "no private key for the targets role of {} in {} (root lists {}{}); sign from the trust directory that holds it",
            repo.gun,
            ctx.trust_dir.join(notar_keys::PRIVATE_DIR).display(),
            listed
                .iter()
                .map(KeyId::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            key.map(|k| format!(", this trust directory has {}", k.key_id()))
                .unwrap_or_default()
        ))),
    }
}

/// The next version of top-level targets: the current one changed by `edit`, renewed for
/// `lifetime`, signed with `key`.
pub fn next_targets(
    ctx: &Context,
    repo: &Repository,
    key: &UnlockedKey,
    lifetime: time::Duration,
    edit: impl Fn(&mut Targets) -> Result<(), Error>,
) -> Result<(Version, Signed<Targets>), Error> {
    let current = repo.targets()?;
    let mut next: Targets = (**current).clone();
    next.version = current.version.next();
    next.expires = Expiry::after(ctx.now, lifetime);
    edit(&mut next)?;
    let version = next.version;
    let signers: [&dyn Signer; 1] = [key];
    let signed = repo
        .dialect()
        .sign(next, &signers)
        .map_err(Error::metadata(format!(
            "signing targets version {version}"
        )))?;
    Ok((version, signed))
}
