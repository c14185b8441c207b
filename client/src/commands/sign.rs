//! `notar trust sign <gun>:<tag> [--digest sha256:<hex> --size <bytes>]`: without
//! `--digest`, the digest and size are those of the manifest the registry's tag names.
//!
//! A repository with trust data gets the tag added or replaced in a new version of its
//! targets role. A repository without creates it: this trust directory's root key (made on
//! first use, then shared by every repository) and a new targets key for the GUN sign
//! root v1, which lists them and the server's timestamp and snapshot keys, and targets v1;
//! both go up in one request. Existing keys are unlocked before anything is created or
//! written, so a wrong passphrase changes no file.

use notar_keys::{KeyRole, PrivateKey};
use notar_tuf::{
    Expiry, Gun, KeyId, PublicKey, RoleName, RoleType, Root, Signed, Signer, TargetFile, Targets,
    Version,
};
use serde::Serialize;

use crate::cache::MetadataCache;
use crate::cli::SignArgs;
use crate::commands::signer::{Held, held_roles};
use crate::commands::{days, parse_digest, publish_targets, targets_signer, unlock_targets_key};
use crate::keyring::Keyring;
use crate::output::{json_line, print};
use crate::reference::Reference;
use crate::repo::{Repository, Warnings, signed_by_root_key};
use crate::{Context, Error};

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Signed1<'a> {
    gun: &'a Gun,
    tag: &'a str,
    digest: String,
    size: u64,
    /// The targets version that holds the signature.
    targets_version: u64,
    /// The digest the tag had before, when this signature replaced it.
    replaced: Option<String>,
    /// Whether this signature created the repository's trust data.
    created: bool,
    server: &'a str,
}

pub async fn run(ctx: &Context, args: SignArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let (reference, tag) = Reference::parse_tagged(&args.reference)?;
    let (digest, size) = match (&args.digest, args.size) {
        (Some(digest), Some(size)) => (parse_digest(digest)?, size),
        _ => {
            crate::commands::push::registry_digest(&reference.gun, &tag, &args.insecure_registry)
                .await?
        }
    };
    let target = TargetFile::sha256(size, digest);
    let gun = &reference.gun;
    let wanted = args.role.as_deref().map(parse_role).transpose()?;

    let (version, replaced, created) = match Repository::open(ctx, gun, pin, Warnings::RootOnly)
        .await
    {
        Ok(mut repo) => {
            let keyring = Keyring::open(&ctx.trust_dir, ctx.kdf)?;
            // A signer's first signature also publishes the delegation waiting for it.
            let pending = if wanted.as_ref() == Some(&RoleName::targets()) {
                None
            } else {
                crate::commands::pending::for_signer(ctx, &keyring, &repo, &tag, wanted.as_ref())
                    .await?
            };
            let delegations = match pending {
                Some((targets, held)) => Some((held, Some(targets))),
                None => match signing_roles(&keyring, &repo, &tag, wanted.as_ref())? {
                    SigningRoles::Delegations(held) => Some((held, None)),
                    SigningRoles::Targets => None,
                },
            };
            if let Some((held, pending)) = delegations {
                return crate::commands::signer::sign_roles(
                    ctx,
                    &keyring,
                    &mut repo,
                    &held,
                    &tag,
                    Some(&target),
                    args.targets_lifetime,
                    pending,
                )
                .await;
            }
            // Before anything is uploaded: a wrong passphrase must change nothing.
            let targets_key = unlock_targets_key(ctx, gun).await?;
            let key = targets_signer(ctx, &repo, targets_key.as_ref())?;
            let replaced = repo
                .targets()?
                .targets
                .get(tag.as_str())
                .filter(|old| **old != target)
                .and_then(|old| old.hashes.get("sha256").cloned());
            let name = tag.target_name();
            let version = publish_targets(
                ctx,
                &mut repo,
                key,
                days(args.targets_lifetime),
                |targets| {
                    targets.targets.insert(name.clone(), target.clone());
                    Ok(())
                },
            )
            .await?;
            (version, replaced, false)
        }
        Err(Error::NoTrustData { .. }) => {
            if wanted.as_ref().is_some_and(|r| *r != RoleName::targets()) {
                return Err(Error::Usage(format!(
                    "{gun} has no trust data yet: its first signature creates it in the targets role, so --role {} cannot be used",
                    args.role.as_deref().unwrap_or_default()
                )));
            }
            let targets_key = unlock_targets_key(ctx, gun).await?;
            let version = create(ctx, gun, &tag, target, &args, pin, targets_key).await?;
            (version, None, true)
        }
        Err(e) => return Err(e),
    };

    let digest_text = format!("sha256:{}", hex::encode(digest));
    if ctx.json {
        print(&json_line(&Signed1 {
            gun,
            tag: tag.as_str(),
            digest: digest_text,
            size,
            targets_version: version.get(),
            replaced: replaced.map(|h| format!("sha256:{h}")),
            created,
            server: ctx.server.url(),
        }))
    } else {
        let replacing = replaced
            .map(|h| format!(", replacing sha256:{h}"))
            .unwrap_or_default();
        print(&format!(
            "Signed {gun}:{tag} as {digest_text} ({} bytes{replacing}) in targets version {version} on {}\n",
            size,
            ctx.server.url()
        ))
    }
}

/// `--role targets`, `--role targets/alice` or `--role alice`.
fn parse_role(text: &str) -> Result<RoleName, Error> {
    let name = if text == "targets" || text.starts_with("targets/") {
        text.to_owned()
    } else {
        format!("targets/{text}")
    };
    RoleName::new(name).map_err(|e| Error::Usage(format!("--role {text}: {e}")))
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
    tag: &notar_tuf::names::Tag,
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
    let held = held_roles(keyring, &delegated, tag.as_str());
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

/// The first publish of a repository: root v1 and targets v1 in one upload.
async fn create(
    ctx: &Context,
    gun: &Gun,
    tag: &notar_tuf::names::Tag,
    target: TargetFile,
    args: &SignArgs,
    pin: Option<&KeyId>,
    targets_existing: Option<PrivateKey>,
) -> Result<Version, Error> {
    let pin = match pin {
        Some(key) => Some(key.clone()),
        None => MetadataCache::load(&ctx.trust_dir, gun)?.pinned_root_key()?,
    };
    let keyring = Keyring::open(&ctx.trust_dir, ctx.kdf)?;

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
    let (Some(root_key), Some(targets_key)) = (
        root_existing.as_ref().or(root_new.as_ref().map(|n| &n.key)),
        targets_existing
            .as_ref()
            .or(targets_new.as_ref().map(|n| &n.key)),
    ) else {
        return Err(Error::MissingKey(
            "no root or targets key to sign with".into(),
        ));
    };

    let timestamp_key: PublicKey = ctx.server.managed_key(gun, "timestamp").await?;
    let snapshot_key: PublicKey = ctx.server.managed_key(gun, "snapshot").await?;

    let mut root = Root::new(
        Version::ONE,
        Expiry::after(ctx.now, days(args.root_lifetime)),
    );
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
            "{gun} is pinned to the root key {pin}, but this trust directory's root key is {}: the new repository's root would not match the pin",
            root_key.key_id()
        )));
    }
    let mut targets = Targets::new(
        Version::ONE,
        Expiry::after(ctx.now, days(args.targets_lifetime)),
    );
    targets.targets.insert(tag.target_name(), target);
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
        "notar: created the trust data of {gun} on {} (root key {}, targets key {})",
        ctx.server.url(),
        root_key.key_id(),
        targets_key.key_id()
    );
    Repository::open_with_root(ctx, gun, root.as_bytes().to_vec(), pin.as_ref()).await?;
    Ok(Version::ONE)
}
