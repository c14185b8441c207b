//! Signers, Docker's delegation model:
//!
//! - `notar trust key generate <name> [--dir DIR]` makes a delegation key, keeps it
//!   encrypted in the key store and writes its public key to `<DIR>/<name>.pub` (a TUF 1.0
//!   key object, `{"keytype","scheme","keyval":{"public"}}`);
//!   `notar trust key load <pem> --name <name>` imports a PKCS#8 PEM private key, ed25519
//!   or ECDSA P-256, encrypted as Docker writes them or not.
//! - `notar trust signer add <name> <gun> --key <pub>… [--paths P…] [--threshold N]`
//!   delegates to `targets/<name>` in a new version of top-level targets signed by the
//!   repository's targets key. A signer without `--paths` may sign every tag: as in
//!   Docker, its keys also go into the shared `targets/releases` role. A signer with
//!   `--paths` gets `targets/<name>` with exactly those paths and stays out of
//!   `targets/releases`, whose paths are `*`: putting its key there would let it sign any
//!   tag, whatever its own paths say. `--threshold` sets the threshold of the signer's roles.
//! - `notar trust signer remove <name> <gun> [-y]` takes the signer's role away and its
//!   keys out of `targets/releases`.
//! - [`sign_roles`] and [`revoke`]: `notar trust sign` / `revoke` into the signer roles the
//!   trust directory holds keys for (`commands::sign::signing_roles` chooses them, as
//!   Docker does), all in one upload; a role whose threshold needs more keys than the trust
//!   directory holds is refused before anything is uploaded.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use notar_keys::KeyRole;
use notar_keys::notary_key::NotaryKeyBlock;
use notar_tuf::names::Tag;
use notar_tuf::{Delegations, Gun, KeyId, PublicKey, RoleName, Targets, Version};
use serde::Serialize;

use crate::commands::args::{TargetsLifetime, TrustDataArgs, gun_only};
use crate::commands::key_import;
use crate::output::{json_line, print};
use crate::trust::keyring::held_id;
use crate::trust::publish::{publish_targets, targets_signer, unlock_targets_key};
use crate::trust::repo::{Repository, Warnings};
use crate::trust::signers::{RELEASES, RoleVersion};
use crate::trust::targets::next_targets;
use crate::{Context, Error};

#[derive(Debug, Subcommand)]
pub enum TrustKeyCommand {
    /// Generate a signer key: the private key goes to the key store, <name>.pub to --dir
    Generate(KeyGenerateArgs),
    /// Import a signer's PKCS#8 PEM private key (ed25519 or ECDSA P-256, as Docker makes them)
    Load(KeyLoadArgs),
}

#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// The signer's name
    pub name: String,
    /// Where to write <name>.pub
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct KeyLoadArgs {
    /// The PEM file
    #[arg(value_name = "PEM")]
    pub file: PathBuf,
    /// The signer's name
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// Delegate to a signer: targets/<name> and targets/releases get its keys
    Add(SignerAddArgs),
    /// Remove a signer's role and its keys from targets/releases
    Remove(SignerRemoveArgs),
}

#[derive(Debug, Args)]
pub struct SignerAddArgs {
    /// The signer's name
    pub name: String,
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,
    /// Public key files (<name>.pub from `trust key generate`, or an SPKI PEM)
    #[arg(long = "key", value_name = "PUB", required = true)]
    pub keys: Vec<PathBuf>,
    /// Tag patterns the signer may sign (shell globs) [default: *]
    #[arg(long, value_name = "PATTERN", num_args = 1..)]
    pub paths: Vec<String>,
    /// Signatures needed from distinct keys, in targets/<name> and targets/releases
    #[arg(long, value_name = "N")]
    pub threshold: Option<NonZeroU32>,
    #[command(flatten)]
    pub lifetime: TargetsLifetime,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

#[derive(Debug, Args)]
pub struct SignerRemoveArgs {
    /// The signer's name
    pub name: String,
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,
    /// Do not ask for confirmation
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Remove the signer even when no remaining signer's key here can re-sign
    /// targets/releases, which then goes too (its tags stay signed only where another role
    /// signs them)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub lifetime: TargetsLifetime,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

/// `--json` result of `trust key generate` / `load` (format 1).
#[derive(Debug, Serialize)]
struct KeyMade<'a> {
    name: &'a str,
    key_id: String,
    public_key_file: Option<String>,
}

/// `--json` result of `trust signer add` / `remove` (format 1).
#[derive(Debug, Serialize)]
struct SignerChanged<'a> {
    name: &'a str,
    gun: &'a Gun,
    roles: Vec<String>,
    keys: Vec<String>,
    targets_version: u64,
}

/// `--json` result of a signer's `trust sign` / `revoke` (format 1).
#[derive(Debug, Serialize)]
struct SignerSigned<'a> {
    gun: &'a Gun,
    tag: &'a str,
    /// `signed` or `revoked`.
    action: &'a str,
    /// Each delegated role and the version that holds the change.
    roles: &'a [RoleVersion],
    server: &'a str,
}

fn signer_role(name: &str) -> Result<RoleName, Error> {
    let bad = |reason: &str| Error::Usage(format!("invalid signer name {name:?}: {reason}"));
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || !name.chars().all(allowed) || name.starts_with('.') {
        return Err(bad(
            "expected letters, digits, '-', '_' and '.', not starting with '.'",
        ));
    }
    if name == "releases" {
        return Err(bad("\"releases\" is the role every signer shares"));
    }
    RoleName::new(format!("targets/{name}")).map_err(|e| bad(&e.to_string()))
}

pub async fn key(ctx: &Context, command: TrustKeyCommand) -> Result<(), Error> {
    let keyring = ctx.keyring()?;
    let (name, new, pub_file) = match command {
        TrustKeyCommand::Generate(args) => {
            signer_role(&args.name)?;
            let pub_file = args.dir.join(format!("{}.pub", args.name));
            if pub_file.exists() {
                return Err(Error::Usage(format!(
                    "{} exists already: choose another name or --dir",
                    pub_file.display()
                )));
            }
            let new = keyring.generate(KeyRole::Delegation, None).await?;
            (args.name, new, Some(pub_file))
        }
        TrustKeyCommand::Load(args) => {
            signer_role(&args.name)?;
            let pem = read_small(&args.file)?;
            let mut blocks = NotaryKeyBlock::parse_all(&pem)
                .map_err(Error::keys(format!("loading {}", args.file.display())))?;
            if blocks.len() != 1 {
                return Err(Error::Usage(format!(
                    "{} holds {} private keys; load one at a time",
                    args.file.display(),
                    blocks.len()
                )));
            }
            let block = blocks.remove(0);
            let key = key_import::decrypt(&block, &args.name, &args.file).await?;
            if let Ok(info) = keyring.store.info(key.key_id()) {
                return Err(Error::Usage(format!(
                    "the key {} in {} is already in the key store as a {} key ({}); nothing was imported",
                    key.key_id(),
                    args.file.display(),
                    info.role,
                    info.path.display()
                )));
            }
            let new = keyring.adopt(key, KeyRole::Delegation, None).await?;
            (args.name, new, None)
        }
    };
    if let Some(path) = &pub_file {
        let text = format!(
            "{}\n",
            serde_json::to_string_pretty(&new.key.public_key())
                .map_err(|e| Error::Usage(format!("encoding the public key: {e}")))?
        );
        std::fs::write(path, text).map_err(Error::io("writing the public key to", path))?;
    }
    let info = keyring.save(&new).await?;
    if ctx.json {
        return print(&json_line(&KeyMade {
            name: &name,
            key_id: info.key_id.to_string(),
            public_key_file: pub_file.map(|p| p.display().to_string()),
        }));
    }
    let public = pub_file
        .map(|p| format!("; public key in {}", p.display()))
        .unwrap_or_default();
    print(&format!(
        "Signer key {} for {name} in {}{public}\n",
        info.key_id,
        info.path.display()
    ))
}

fn read_small(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    if bytes.len() > 64 * 1024 {
        return Err(Error::Usage(format!(
            "{} is larger than 64 KiB: not a key file",
            path.display()
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::Usage(format!("{} is not text: not a key file", path.display())))
}

/// A public key file: a TUF key object (what `trust key generate` writes) or an SPKI PEM
/// ed25519 public key.
pub fn read_public_key(path: &Path) -> Result<PublicKey, Error> {
    let text = read_small(path)?;
    if text.contains("PRIVATE KEY") {
        return Err(Error::Usage(format!(
            "{} holds a private key; give the signer's public key (<name>.pub)",
            path.display()
        )));
    }
    if let Ok(key) = serde_json::from_str::<PublicKey>(&text) {
        key.verifier().map_err(Error::metadata(format!(
            "reading the public key in {}",
            path.display()
        )))?;
        return Ok(key);
    }
    notar_keys::public_key_from_pem(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is neither a TUF public key object nor a public key PEM (ed25519 or P-256): {e}",
            path.display()
        ))
    })
}

pub async fn signer(
    ctx: &Context,
    command: SignerCommand,
    pin: Option<&KeyId>,
) -> Result<(), Error> {
    match command {
        SignerCommand::Add(args) => add(ctx, args, pin).await,
        SignerCommand::Remove(args) => remove(ctx, args, pin).await,
    }
}

async fn add(ctx: &Context, args: SignerAddArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let role = signer_role(&args.name)?;
    let gun = gun_only(&args.gun)?;
    let keys = args
        .keys
        .iter()
        .map(|p| read_public_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    let everything = vec!["*".to_owned()];
    // A signer restricted to some paths must stay out of the shared releases role.
    let restricted = !args.paths.is_empty() && args.paths != everything;
    let paths = if restricted {
        args.paths.clone()
    } else {
        everything.clone()
    };
    let targets_key = unlock_targets_key(ctx, &gun).await?;
    let mut repo = Repository::open(ctx, &gun, pin, Warnings::RootOnly).await?;
    repo.refuse_notary("adding a signer")?;
    let key = targets_signer(ctx, &repo, targets_key.as_deref())?;
    let name = args.name.clone();
    let roles: Vec<RoleName> = if restricted {
        vec![role.clone()]
    } else {
        vec![role.clone(), RoleName::releases()]
    };
    let edit = |targets: &mut Targets| -> Result<(), Error> {
        let delegations = targets.delegations.get_or_insert_with(Delegations::new);
        add_keys(delegations, &role, &keys, &paths, true, &name)?;
        if !restricted {
            add_keys(
                delegations,
                &RoleName::releases(),
                &keys,
                &everything,
                false,
                &name,
            )?;
        }
        if let Some(threshold) = args.threshold {
            for r in delegations
                .roles
                .iter_mut()
                .filter(|r| roles.contains(&r.name))
            {
                if r.keyids.len() < threshold.get() as usize {
                    return Err(Error::Usage(format!(
                        "--threshold {threshold}: {} has only {} keys",
                        r.name,
                        r.keyids.len()
                    )));
                }
                r.threshold = threshold;
            }
        }
        Ok(())
    };
    // A role without metadata would make standard TUF clients refuse the repository: its
    // delegation waits, pending, for the signer's first signature.
    let waiting: Vec<RoleName> = roles
        .iter()
        .filter(|r| !crate::trust::pending::published(&repo, r))
        .cloned()
        .collect();
    let lifetime = args.lifetime.duration();
    let (version, pending) = if waiting.is_empty() {
        (
            publish_targets(ctx, &mut repo, key, lifetime, edit).await?,
            false,
        )
    } else {
        (
            crate::trust::pending::stage(ctx, &repo, key, lifetime, edit).await?,
            true,
        )
    };
    if pending {
        eprintln!(
            "notar: the delegation to {} of {gun} is pending: the server publishes targets version {version} with {}'s first signature (notar trust sign as {}), so every TUF client can read the repository meanwhile",
            waiting
                .iter()
                .map(RoleName::as_str)
                .collect::<Vec<_>>()
                .join(" and "),
            args.name,
            args.name
        );
    }
    report_change(
        ctx,
        &args.name,
        &gun,
        if pending { "Added (pending)" } else { "Added" },
        &keys.iter().map(PublicKey::key_id).collect::<Vec<_>>(),
        version,
    )
}

/// Takes the signer `role` out of `delegations`: its own role, and its keys (`removed`)
/// out of targets/releases (whose threshold shrinks to the keys left, and which goes when
/// none are left); keys no role lists any more are dropped.
fn without_signer(delegations: &mut Delegations, role: &RoleName, removed: &[KeyId]) {
    delegations.roles.retain(|r| r.name != *role);
    for r in &mut delegations.roles {
        if r.name.as_str() == RELEASES {
            r.keyids.retain(|k| !removed.contains(k));
            let left = u32::try_from(r.keyids.len()).unwrap_or(u32::MAX);
            if let Some(left) = NonZeroU32::new(left) {
                r.threshold = r.threshold.min(left);
            }
        }
    }
    delegations
        .roles
        .retain(|r| !(r.name.as_str() == RELEASES && r.keyids.is_empty()));
    drop_unused_keys(delegations);
}

/// Drops the keys no delegated role lists.
fn drop_unused_keys(delegations: &mut Delegations) {
    let used: Vec<KeyId> = delegations
        .roles
        .iter()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    delegations.keys.retain(|k, _| used.contains(k));
}

/// The tags of targets/releases when its current version would not verify under the
/// delegation `after` makes (its signatures are by keys no longer listed); `None` when it
/// still verifies, has no version yet, or is no longer delegated.
fn strands_releases(
    repo: &Repository,
    releases: &RoleName,
    after: &Targets,
) -> Option<Vec<String>> {
    let current = repo.updater.current_role(releases)?;
    let authority = after.delegations.as_ref()?.authority(RELEASES)?;
    if current.signed().check(&authority).is_ok() {
        return None;
    }
    Some(current.targets.keys().map(ToString::to_string).collect())
}

/// Adds `keys` to `role` (creating it with `paths`; an existing role keeps its paths).
/// `exclusive`: the role is the signer's own, so a key it has already means the signer was
/// added before.
fn add_keys(
    delegations: &mut Delegations,
    role: &RoleName,
    keys: &[PublicKey],
    paths: &[String],
    exclusive: bool,
    name: &str,
) -> Result<(), Error> {
    for key in keys {
        delegations.keys.insert(key.key_id(), key.clone());
    }
    let Some(existing) = delegations.roles.iter_mut().find(|r| &r.name == role) else {
        delegations.add_role(role.clone(), keys, NonZeroU32::MIN, paths.to_vec());
        return Ok(());
    };
    for key in keys {
        let id = key.key_id();
        if existing.keyids.contains(&id) {
            if exclusive {
                return Err(Error::Usage(format!(
                    "the signer {name} already has the key {id}; nothing was changed"
                )));
            }
            continue;
        }
        existing.keyids.push(id);
    }
    // The paths of an existing role are left as they are: widening a shared role's paths
    // would widen what every key in it may sign.
    Ok(())
}

async fn remove(ctx: &Context, args: SignerRemoveArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let role = signer_role(&args.name)?;
    let gun = gun_only(&args.gun)?;
    let targets_key = unlock_targets_key(ctx, &gun).await?;
    let mut repo = Repository::open(ctx, &gun, pin, Warnings::RootOnly).await?;
    repo.refuse_notary("removing a signer")?;
    let published = repo
        .targets()?
        .delegations
        .as_ref()
        .and_then(|d| d.role(role.as_str()))
        .map(|r| r.keyids.clone());
    let Some(removed) = published else {
        // A signer still pending: cancel it, and publish targets again so the pending
        // targets (built on the version now replaced) can never be published.
        if !crate::trust::pending::cancel(ctx, &repo, &role).await? {
            return Err(Error::Usage(format!("{gun} has no signer {}", args.name)));
        }
        let key = targets_signer(ctx, &repo, targets_key.as_deref())?;
        let version =
            publish_targets(ctx, &mut repo, key, args.lifetime.duration(), |_| Ok(())).await?;
        eprintln!(
            "notar: cancelled the pending delegation to {role} of {gun}; targets version {version} supersedes it"
        );
        return report_change(ctx, &args.name, &gun, "Removed (pending)", &[], version);
    };
    // What targets/releases becomes, and whether its current version still verifies then:
    // removing the signer whose signature is the last on it would leave its tags unsigned.
    repo.load_all_targets().await?;
    let releases_role = RoleName::new(RELEASES).map_err(|e| Error::Usage(e.to_string()))?;
    let mut after = (**repo.targets()?).clone();
    if let Some(delegations) = after.delegations.as_mut() {
        without_signer(delegations, &role, &removed);
    }
    let stranded = strands_releases(&repo, &releases_role, &after);
    let keyring = ctx.keyring()?;
    let resigners: Vec<KeyId> = match (&stranded, after.delegations.as_ref()) {
        (Some(_), Some(delegations)) => delegations
            .role(RELEASES)
            .map(|r| {
                r.keyids
                    .iter()
                    .map(|id| held_id(repo.dialect(), &delegations.keys, id))
                    .filter(|id| keyring.holds_delegation_key(id))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let threshold = after
        .delegations
        .as_ref()
        .and_then(|d| d.role(RELEASES))
        .map_or(1, |r| r.threshold.get() as usize);
    let resign = stranded.is_some() && resigners.len() >= threshold;
    if let Some(tags) = &stranded
        && !resign
        && !args.force
    {
        return Err(Error::Usage(format!(
            "{RELEASES} of {gun} was last signed by {}'s key: without it, its tags ({}) would no longer verify \
             until another signer signs that role again. Remove the signer from a trust directory that also holds \
             the key of a remaining signer (the role is then re-signed in the same update), or pass --force",
            args.name,
            tags.join(", ")
        )));
    }
    if !args.yes {
        crate::commands::args::confirm(
            format!(
                "Remove signer {} from {gun} (its role and its keys in {RELEASES})? [y/N] ",
                args.name
            ),
            &format!("removing signer {} from {gun}", args.name),
        )
        .await?;
    }
    let key = targets_signer(ctx, &repo, targets_key.as_deref())?;
    let lifetime = args.lifetime.duration();
    let version = if resign {
        // The new targets and targets/releases, re-signed by the keys held of the
        // remaining signers, in one update: no moment where the tags do not verify.
        let mut keys = Vec::new();
        for id in &resigners {
            keys.push(keyring.unlock(KeyRole::Delegation, id).await?);
        }
        let (version, targets) = next_targets(ctx, &repo, key, lifetime, |targets| {
            if let Some(delegations) = targets.delegations.as_mut() {
                without_signer(delegations, &role, &removed);
            }
            Ok(())
        })?;
        let current = repo
            .updater
            .current_role(&releases_role)
            .map(|t| (**t).clone())
            .ok_or_else(|| Error::Usage(format!("{RELEASES} of {gun} could not be read")))?;
        let mut next = current;
        next.version = next.version.next();
        next.expires = notar_tuf::Expiry::after(ctx.now, lifetime);
        let signers: Vec<&dyn notar_tuf::Signer> = keys
            .iter()
            .map(|k| &**k as &dyn notar_tuf::Signer)
            .collect();
        let releases_version = next.version;
        let releases = repo
            .dialect()
            .sign(next, &signers)
            .map_err(Error::metadata(format!(
                "signing {RELEASES} version {releases_version}"
            )))?;
        ctx.server
            .upload(
                &gun,
                vec![
                    (RoleName::targets(), targets.as_bytes().to_vec()),
                    (releases_role.clone(), releases.as_bytes().to_vec()),
                ],
            )
            .await?;
        repo.refresh().await?;
        eprintln!(
            "notar: re-signed {RELEASES} of {gun} (version {releases_version}) with {}, so its tags keep verifying",
            resigners
                .iter()
                .map(KeyId::short)
                .collect::<Vec<_>>()
                .join(", ")
        );
        version
    } else {
        // Forced: a delegated role that does not verify stops every client's delegation
        // walk, and with it every tag and every later signature. So the role goes too;
        // tags that other roles sign still verify.
        let drop_releases = stranded.is_some();
        if let Some(tags) = &stranded {
            eprintln!(
                "notar: warning: --force: {RELEASES} of {gun} was signed by {}'s key only, so it is removed from the \
                 delegations, and its tags ({}) stay signed only where another role signs them; \
                 `notar trust signer add` puts signers back into it",
                args.name,
                tags.join(", ")
            );
        }
        publish_targets(ctx, &mut repo, key, lifetime, |targets| {
            if let Some(delegations) = targets.delegations.as_mut() {
                without_signer(delegations, &role, &removed);
                if drop_releases {
                    delegations.roles.retain(|r| r.name.as_str() != RELEASES);
                    drop_unused_keys(delegations);
                }
            }
            Ok(())
        })
        .await?
    };
    report_change(ctx, &args.name, &gun, "Removed", &removed, version)
}

fn report_change(
    ctx: &Context,
    name: &str,
    gun: &Gun,
    verb: &str,
    keys: &[KeyId],
    version: Version,
) -> Result<(), Error> {
    let roles = vec![format!("targets/{name}"), RELEASES.to_owned()];
    if ctx.json {
        return print(&json_line(&SignerChanged {
            name,
            gun,
            roles,
            keys: keys.iter().map(ToString::to_string).collect(),
            targets_version: version.get(),
        }));
    }
    print(&format!(
        "{verb} signer {name} of {gun} (keys {}) in targets version {version}\n",
        keys.iter()
            .map(KeyId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Prints what a signer's `trust sign` (`signed`) or `trust revoke` of `tags` changed: a
/// line (or a JSON line) per tag.
pub fn report_roles(
    ctx: &Context,
    gun: &Gun,
    tags: &[&Tag],
    signed: bool,
    roles: Vec<RoleVersion>,
) -> Result<(), Error> {
    let list = roles
        .iter()
        .map(|r| format!("{} version {}", r.role, r.version))
        .collect::<Vec<_>>()
        .join(", ");
    let verb = if signed { "Signed" } else { "Revoked" };
    let mut out = String::new();
    for tag in tags {
        if ctx.json {
            out.push_str(&json_line(&SignerSigned {
                gun,
                tag: tag.as_str(),
                action: if signed { "signed" } else { "revoked" },
                roles: &roles,
                server: ctx.server.url(),
            }));
        } else {
            out.push_str(&format!(
                "{verb} {gun}:{tag} in {list} on {}\n",
                ctx.server.url()
            ));
        }
    }
    print(&out)
}
