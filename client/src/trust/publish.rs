//! Publishing: the owner's targets key and the next versions of top-level targets, signing
//! one tag (into targets or into the signer roles this trust directory holds keys for, as
//! Docker chooses them), and creating a repository with its first signature.
//!
//! A repository with trust data gets the tag added or replaced in a new version of its
//! targets role. A repository without is created: this trust directory's root key (made on
//! first use, then shared by every repository) and a new targets key for the GUN sign
//! root v1, which lists them and the server's timestamp and snapshot keys, and targets v1;
//! both go up in one request. Existing keys are unlocked before anything is created or
//! written, so a wrong passphrase changes no file.

use std::sync::Arc;

use notar_keys::KeyRole;
use notar_tuf::names::Tag;
use notar_tuf::{
    Expiry, Gun, KeyId, PublicKey, RoleName, RoleType, Root, Signed, Signer, TargetFile, Targets,
    Version,
};

use crate::trust::cache::MetadataCache;
use crate::trust::keyring::Keyring;
use crate::trust::keyring::UnlockedKey;
use crate::trust::pending;
use crate::trust::repo::{Repository, Warnings, signed_by_root_key};
use crate::trust::signers::{Change, Held, RoleVersion, held_roles, sign_roles};
use crate::trust::targets::next_targets;
pub use crate::trust::targets::{targets_signer, unlock_targets_key};
use crate::{Context, Error};

/// How long new metadata lives.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub targets: time::Duration,
    /// Root, when a signature creates the repository.
    pub root: time::Duration,
}

/// Where the signatures of one command went.
#[derive(Debug)]
pub enum Signature {
    /// Into top-level targets, in this version.
    Targets {
        version: Version,
        /// The tags this replaced, with the sha256 (hex) each had before.
        replaced: Vec<(Tag, String)>,
        /// Whether this created the repository's trust data.
        created: bool,
    },
    /// Into these signer roles.
    Roles(Vec<RoleVersion>),
}

/// Where Docker would sign one tag: into these signer roles (with the owner's pending
/// targets that delegate them, when the signer's first signature publishes them), or
/// into top-level targets.
enum Route {
    Roles(Vec<Held>, Option<Vec<u8>>),
    Targets,
}

impl Route {
    fn roles(&self) -> Vec<&RoleName> {
        match self {
            Route::Roles(held, _) => held.iter().map(|h| &h.role).collect(),
            Route::Targets => Vec::new(),
        }
    }
}

/// Signs each tag of `gun` as its target, all in one upload: into `role` if given
/// (`targets` or a signer role), else where Docker would ([`signing_roles`]); creates the
/// repository if it has no trust data yet. Tags that Docker's rules would send to
/// different roles are refused together. Nothing is written unless every key needed
/// unlocks.
pub async fn sign_tags(
    ctx: &Context,
    gun: &Gun,
    tags: &[(Tag, TargetFile)],
    role: Option<&RoleName>,
    lifetimes: Lifetimes,
    pin: Option<&KeyId>,
) -> Result<Signature, Error> {
    let Some((first, _)) = tags.first() else {
        return Err(Error::Usage("no tag to sign".into()));
    };
    // With the passphrase in the environment (CI, scripts), the targets key's unlock
    // (argon2id: most of a signature's time) runs while the repository is fetched. It is
    // kept in the keyring, and the steps below take it from there; should it fail, they
    // unlock again and report the error. A passphrase that would be asked for at the
    // terminal waits until the key is known to be needed.
    let early = role.is_none_or(|r| *r == RoleName::targets())
        && notar_keys::passphrase::env_vars(KeyRole::Targets)
            .iter()
            .any(|var| std::env::var_os(var).is_some());
    let opened = if early {
        let (opened, _unlocked) = tokio::join!(
            Repository::open(ctx, gun, pin, Warnings::RootOnly),
            unlock_targets_key(ctx, gun)
        );
        opened
    } else {
        Repository::open(ctx, gun, pin, Warnings::RootOnly).await
    };
    let mut repo = match opened {
        Ok(repo) => repo,
        Err(Error::NoTrustData { .. }) => {
            if let Some(role) = role.filter(|r| **r != RoleName::targets()) {
                return Err(Error::Usage(format!(
                    "{gun} has no trust data yet: its first signature creates it in the targets role, so --role {role} cannot be used"
                )));
            }
            let targets_key = unlock_targets_key(ctx, gun).await?;
            let version = create(ctx, gun, tags, lifetimes, pin, targets_key).await?;
            return Ok(Signature::Targets {
                version,
                replaced: Vec::new(),
                created: true,
            });
        }
        Err(e) => return Err(e),
    };
    let keyring = ctx.keyring()?;
    let chosen = route(ctx, &keyring, &repo, first, role).await?;
    for (tag, _) in &tags[1..] {
        let other = route(ctx, &keyring, &repo, tag, role).await?;
        if other.roles() != chosen.roles() {
            return Err(Error::Usage(format!(
                "{gun}:{first} and {gun}:{tag} are signed into different roles ({} and {}); sign them in separate commands",
                show_roles(&chosen),
                show_roles(&other)
            )));
        }
    }
    if let Route::Roles(held, waiting) = chosen {
        let changes: Vec<Change> = tags
            .iter()
            .map(|(tag, target)| (tag.clone(), Some(target.clone())))
            .collect();
        let roles = sign_roles(
            ctx,
            &keyring,
            &mut repo,
            &held,
            &changes,
            lifetimes.targets,
            waiting,
        )
        .await?;
        return Ok(Signature::Roles(roles));
    }
    // Before anything is uploaded: a wrong passphrase must change nothing.
    let targets_key = unlock_targets_key(ctx, gun).await?;
    let key = targets_signer(ctx, &repo, targets_key.as_deref())?;
    let current = repo.targets()?;
    let replaced: Vec<(Tag, String)> = tags
        .iter()
        .filter_map(|(tag, target)| {
            let old = current.targets.get(tag.as_str())?;
            let hash = old.hashes.get("sha256")?;
            (old != target).then(|| (tag.clone(), hash.clone()))
        })
        .collect();
    let version = publish_targets(ctx, &mut repo, key, lifetimes.targets, |targets| {
        for (tag, target) in tags {
            targets.targets.insert(tag.target_name(), target.clone());
        }
        Ok(())
    })
    .await?;
    Ok(Signature::Targets {
        version,
        replaced,
        created: false,
    })
}

/// Where `tag` is signed, as the first tag of a command.
async fn route(
    ctx: &Context,
    keyring: &Keyring,
    repo: &Repository,
    tag: &Tag,
    role: Option<&RoleName>,
) -> Result<Route, Error> {
    // A signer's first signature also publishes the delegation waiting for it.
    if role != Some(&RoleName::targets())
        && let Some((targets, held)) = pending::for_signer(ctx, keyring, repo, tag, role).await?
    {
        return Ok(Route::Roles(held, Some(targets)));
    }
    Ok(match signing_roles(keyring, repo, tag, role)? {
        SigningRoles::Delegations(held) => Route::Roles(held, None),
        SigningRoles::Targets => Route::Targets,
    })
}

fn show_roles(route: &Route) -> String {
    match route {
        Route::Targets => "targets".into(),
        Route::Roles(held, _) => held
            .iter()
            .map(|h| h.role.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Makes the next version of top-level targets with `edit`, signs it with `key`, and
/// uploads it; the server signs snapshot and timestamp. If another update was stored first
/// (409 `VERSION`), refreshes and tries once more on top of it. Returns the version stored.
pub async fn publish_targets(
    ctx: &Context,
    repo: &mut Repository,
    key: &UnlockedKey,
    lifetime: time::Duration,
    edit: impl Fn(&mut Targets) -> Result<(), Error>,
) -> Result<Version, Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (version, signed) = next_targets(ctx, repo, key, lifetime, &edit)?;
        let upload = ctx
            .server
            .upload(
                &repo.gun,
                vec![(RoleName::targets(), signed.as_bytes().to_vec())],
            )
            .await;
        match upload {
            Ok(()) => {
                repo.refresh().await?;
                // Signers added but not yet signed: their pending targets follow this version.
                // The publish itself succeeded, so a failure here is only a warning.
                if let Err(e) = pending::rebase(ctx, repo, key, lifetime).await {
                    eprintln!(
                        "notar: warning: targets version {version} is published, but re-signing the pending delegations of {} failed: {}",
                        repo.gun,
                        crate::error::one_line(&e)
                    );
                }
                return Ok(version);
            }
            Err(e) if e.is_conflict() && attempt < MAX_PUBLISH_ATTEMPTS => {
                eprintln!(
                    "notar: another update of {} was stored first; refreshing and trying again",
                    repo.gun
                );
                conflict_pause(attempt).await;
                ctx.server.insist_on_fresh_reads();
                repo.refresh().await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Tries at publishing one change while other writers keep winning the race (`VERSION`):
/// parallel CI jobs signing their own tags into one repository all get through.
pub(crate) const MAX_PUBLISH_ATTEMPTS: u32 = 12;

/// A short random pause after the `attempt`th lost race, growing with each, so that
/// writers that lost together do not collide again in step.
pub(crate) async fn conflict_pause(attempt: u32) {
    use rand_core::RngCore;
    let spread = u64::from(rand_core::OsRng.next_u32() % 40);
    let millis = u64::from(attempt.min(8)) * (20 + spread);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

/// Where `trust sign` puts a signature.
#[derive(Debug)]
pub enum SigningRoles {
    Targets,
    /// Signer roles (direct delegations of `targets`) and the keys held for each.
    Delegations(Vec<Held>),
}

/// Docker's choice of signing roles: with `--role`, that role only; otherwise every direct
/// delegation of `targets` whose paths allow the tag and whose key this trust directory
/// holds, and `targets` itself only when the repository has no delegations at all.
pub fn signing_roles(
    keyring: &Keyring,
    repo: &Repository,
    tag: &Tag,
    wanted: Option<&RoleName>,
) -> Result<SigningRoles, Error> {
    let gun = &repo.gun;
    let targets = repo.targets()?;
    let delegated: Vec<&notar_tuf::DelegatedRole> = targets
        .delegations
        .as_ref()
        .map(|d| d.roles.iter().collect())
        .unwrap_or_default();
    if wanted == Some(&RoleName::targets()) || (wanted.is_none() && delegated.is_empty()) {
        return Ok(SigningRoles::Targets);
    }
    let held = held_roles(
        keyring,
        repo.dialect(),
        targets.delegations.as_ref(),
        &delegated,
        tag.as_str(),
    );
    if let Some(role) = wanted {
        let Some(entry) = delegated.iter().find(|d| d.name == *role) else {
            return Err(Error::Usage(format!(
                "{gun} has no signer role {role} (its targets role delegates: {})",
                names(&delegated)
            )));
        };
        if !entry.matches(tag.as_str()) {
            return Err(Error::Usage(format!(
                "{role} of {gun} may not sign {tag}: its paths are {}",
                entry.paths.as_deref().unwrap_or_default().join(", ")
            )));
        }
        return held
            .into_iter()
            .find(|h| h.role == *role)
            .map(|h| SigningRoles::Delegations(vec![h]))
            .ok_or_else(|| {
                Error::MissingKey(format!(
                    "this trust directory holds no key of {role} of {gun}"
                ))
            });
    }
    if held.is_empty() {
        return Err(Error::MissingKey(format!(
            "{gun} has signers ({}), and this trust directory holds no key of one whose paths allow {tag}; \
             add your key as a signer (notar trust signer add), or sign as the repository owner with --role targets",
            names(&delegated)
        )));
    }
    Ok(SigningRoles::Delegations(held))
}

fn names(roles: &[&notar_tuf::DelegatedRole]) -> String {
    roles
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a new root key is for, and how to keep it: said once, when it is made.
fn root_key_notice(path: &std::path::Path) -> String {
    format!(
        "notar: the root key signs the root of every repository this trust directory creates: \
         with it and its passphrase, anyone can replace their keys, and without it their roots \
         can never change again. Keep its passphrase safe and back the key up offline now: \
         notar key backup <file> (the key file is {})",
        path.display()
    )
}

/// The first publish of a repository: root v1 and targets v1 in one upload.
async fn create(
    ctx: &Context,
    gun: &Gun,
    tags: &[(Tag, TargetFile)],
    lifetimes: Lifetimes,
    pin: Option<&KeyId>,
    targets_existing: Option<Arc<UnlockedKey>>,
) -> Result<Version, Error> {
    let pin = match pin {
        Some(key) => Some(key.clone()),
        None => MetadataCache::load(&ctx.trust_dir, gun)?.pinned_root_key()?,
    };
    let keyring = ctx.keyring()?;

    // Unlock what exists first (the targets key already is): a wrong passphrase must
    // leave every file as it was.
    let root_existing = match keyring.find(KeyRole::Root, None)? {
        Some(info) => Some(keyring.unlock(KeyRole::Root, &info.key_id).await?),
        None => None,
    };
    // New keys and their passphrases, in memory until the metadata is ready.
    let root_new = match root_existing {
        Some(_) => None,
        None => Some(keyring.generate(KeyRole::Root, None).await?),
    };
    let targets_new = match targets_existing {
        Some(_) => None,
        None => Some(keyring.generate(KeyRole::Targets, Some(gun)).await?),
    };
    let root_key: &dyn Signer = match (&root_existing, &root_new) {
        (Some(key), _) => &**key,
        (None, Some(new)) => &new.key,
        (None, None) => return Err(Error::MissingKey("no root key to sign with".into())),
    };
    let targets_key: &dyn Signer = match (&targets_existing, &targets_new) {
        (Some(key), _) => &**key,
        (None, Some(new)) => &new.key,
        (None, None) => return Err(Error::MissingKey("no targets key to sign with".into())),
    };
    let root_id = root_key.public_key().key_id();
    let targets_id = targets_key.public_key().key_id();

    let timestamp_key: PublicKey = ctx.server.managed_key(gun, "timestamp").await?;
    let snapshot_key: PublicKey = ctx.server.managed_key(gun, "snapshot").await?;

    let mut root = Root::new(Version::ONE, Expiry::after(ctx.now, lifetimes.root));
    root.add_key(RoleType::Root, root_key.public_key());
    root.add_key(RoleType::Targets, targets_key.public_key());
    root.add_key(RoleType::Timestamp, timestamp_key);
    root.add_key(RoleType::Snapshot, snapshot_key);
    let root_signers: [&dyn Signer; 1] = [root_key];
    let root =
        Signed::sign(root, &root_signers).map_err(Error::metadata("signing root version 1"))?;
    if let Some(pin) = &pin
        && !signed_by_root_key(&root, pin)
    {
        return Err(Error::Usage(format!(
            "{gun} is pinned to the root key {pin}, but this trust directory's root key is {root_id}: the new repository's root would not match the pin"
        )));
    }
    let mut targets = Targets::new(Version::ONE, Expiry::after(ctx.now, lifetimes.targets));
    for (tag, target) in tags {
        targets.targets.insert(tag.target_name(), target.clone());
    }
    let targets_signers: [&dyn Signer; 1] = [targets_key];
    let targets = Signed::sign(targets, &targets_signers)
        .map_err(Error::metadata("signing targets version 1"))?;

    for new in [&root_new, &targets_new].into_iter().flatten() {
        let info = keyring.save(new).await?;
        eprintln!(
            "notar: created {} key {}{} in {}",
            new.role,
            info.key_id,
            new.gun
                .as_ref()
                .map(|g| format!(" for {g}"))
                .unwrap_or_default(),
            info.path.display()
        );
        if new.role == KeyRole::Root {
            eprintln!("{}", root_key_notice(&info.path));
        }
    }
    ctx.server
        .upload(
            gun,
            vec![
                (RoleName::root(), root.as_bytes().to_vec()),
                (RoleName::targets(), targets.as_bytes().to_vec()),
            ],
        )
        .await?;
    eprintln!(
        "notar: created the trust data of {gun} on {} (root key {root_id}, targets key {targets_id})",
        ctx.server.url(),
    );
    Repository::open_with_root(ctx, gun, root.as_bytes().to_vec(), pin.as_ref()).await?;
    Ok(Version::ONE)
}
