//! `notar key rotate <gun> <role> [--key PEM] [--server-managed]`: one command, one atomic
//! upload per rotation.
//!
//! - `targets`: a new targets key (or `--key`); root v+1 lists it instead of the old one,
//!   and targets v+1 is re-signed with it; both go up in one request.
//! - `root`: a new root key for this repository (kept with the GUN in its key file, so the
//!   trust directory's shared root key stays for other repositories); root v+1 lists only
//!   the new key and is signed by the old and the new, so clients that cached any older root
//!   follow the chain.
//! - `timestamp` and `snapshot --server-managed`: the server makes a new key
//!   (`POST …/<role>.key`); root v+1 lists it instead of the old one. The server keeps
//!   signing with the old key until a root lists the new one, so a failed upload changes
//!   nothing that clients see.
//!
//! The existing root key is unlocked and every new key made before anything is written. A
//! new key file is written before the upload (so a stored rotation never loses its key) and
//! removed again if the upload fails. After a targets rotation the retired key file moves
//! to `private/retired/`, out of the key store's sight, so later commands cannot pick it.
//!
//! Rotating `snapshot` to a client-held key is not supported: notar does not yet upload
//! client-signed snapshots, so such a repository could not be updated afterwards.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use notar_keys::KeyRole;
use notar_tuf::{Expiry, KeyId, PublicKey, RoleName, RoleType, Signed, Signer, Targets};
use serde::Serialize;

use crate::commands::args::{LifetimeArgs, TrustDataArgs, gun_only};
use crate::output::{json_line, print};
use crate::trust::keyring::{Keyring, NewKey};
use crate::trust::repo::{Repository, Warnings};
use crate::{Context, Error};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RotateRole {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl RotateRole {
    fn role_type(self) -> RoleType {
        match self {
            RotateRole::Root => RoleType::Root,
            RotateRole::Targets => RoleType::Targets,
            RotateRole::Snapshot => RoleType::Snapshot,
            RotateRole::Timestamp => RoleType::Timestamp,
        }
    }
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,

    /// The role whose key to replace
    #[arg(value_enum)]
    pub role: RotateRole,

    /// Rotate to this PKCS#8 PEM private key (root, targets; ed25519 or P-256, encrypted as
    /// Docker writes them or not) instead of a new one; it is encrypted on import
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,

    /// snapshot: rotate to a new server-managed key
    #[arg(long)]
    pub server_managed: bool,

    #[command(flatten)]
    pub lifetimes: LifetimeArgs,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Rotated<'a> {
    gun: &'a notar_tuf::Gun,
    role: &'a str,
    old_keys: Vec<String>,
    new_key: String,
    root_version: u64,
    server: &'a str,
}

pub async fn run(ctx: &Context, args: RotateArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let gun = gun_only(&args.gun)?;
    let role = args.role;
    let client_key = matches!(role, RotateRole::Root | RotateRole::Targets);
    if args.server_managed && role != RotateRole::Snapshot {
        return Err(Error::Usage(
            "--server-managed applies to snapshot only (timestamp is always server-managed)".into(),
        ));
    }
    if args.key.is_some() && !client_key {
        return Err(Error::Usage(format!(
            "--key: the {} key is held by the server; only root and targets rotate to a given key",
            role.role_type()
        )));
    }
    if role == RotateRole::Snapshot && !args.server_managed {
        return Err(Error::Usage(
            "rotating snapshot to a client-held key is not supported (notar does not upload client-signed snapshots); use --server-managed".into(),
        ));
    }
    // A given key is read before anything else, so a bad file changes nothing.
    let imported = match &args.key {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
            let mut blocks = notar_keys::notary_key::NotaryKeyBlock::parse_all(&pem)
                .map_err(Error::keys(format!("loading {}", path.display())))?;
            if blocks.len() != 1 {
                return Err(Error::Usage(format!(
                    "{} holds {} private keys; give one",
                    path.display(),
                    blocks.len()
                )));
            }
            let block = blocks.remove(0);
            let role_name = role.role_type().as_str();
            Some(crate::commands::key_import::decrypt(&block, role_name, path).await?)
        }
        None => None,
    };

    let keyring = ctx.keyring()?;
    let mut repo = Repository::open(ctx, &gun, pin, Warnings::RootOnly).await?;
    repo.refuse_notary("rotating its keys")?;
    let root = repo.updater.root();
    let role_type = role.role_type();
    let root_ids = key_ids(root, RoleType::Root);
    let old_ids = key_ids(root, role_type);
    let root_info = keyring
        .find_any(KeyRole::Root, &root_ids)
        .ok_or_else(|| {
            Error::MissingKey(format!(
                "no private key for the root role of {gun} in this trust directory (root lists {}); rotate from the trust directory that holds it",
                join(&root_ids)
            ))
        })?;
    let root_key = keyring.unlock(KeyRole::Root, &root_info.key_id).await?;

    // The new key: made here (root, targets) or by the server (snapshot, timestamp).
    let key_role = match role {
        RotateRole::Root => KeyRole::Root,
        _ => KeyRole::Targets,
    };
    let new_local: Option<NewKey> = if client_key {
        let new = match imported {
            Some(key) => keyring.adopt(key, key_role, Some(&gun)).await?,
            None => keyring.generate(key_role, Some(&gun)).await?,
        };
        if old_ids.contains(new.key.key_id()) {
            return Err(Error::Usage(format!(
                "the key {} is already the {role_type} key of {gun}; nothing to rotate",
                new.key.key_id()
            )));
        }
        if keyring.store.info(new.key.key_id()).is_ok() {
            return Err(Error::Usage(format!(
                "the key {} is already in the key store for another role; give a key of its own",
                new.key.key_id()
            )));
        }
        Some(new)
    } else {
        None
    };
    let new_public: PublicKey = match &new_local {
        Some(new) => new.key.public_key(),
        None => {
            ctx.server
                .rotate_managed_key(&gun, role_type.as_str())
                .await?
        }
    };
    let new_id = new_public.key_id();

    let mut next = root.signed().untrusted().clone();
    next.version = next.version.next();
    next.expires = Expiry::after(ctx.now, args.lifetimes.lifetimes().root);
    for id in &old_ids {
        next.remove_key(role_type, id);
    }
    next.add_key(role_type, new_public);
    let root_version = next.version;
    let mut signers: Vec<&dyn Signer> = vec![&*root_key];
    if let (RotateRole::Root, Some(new)) = (role, &new_local) {
        signers.push(&new.key);
    }
    let signed_root = Signed::sign(next, &signers).map_err(Error::metadata(format!(
        "signing root version {root_version}"
    )))?;
    let mut files = vec![(RoleName::root(), signed_root.as_bytes().to_vec())];
    if let (RotateRole::Targets, Some(new)) = (role, &new_local) {
        let mut targets: Targets = (**repo.targets()?).clone();
        targets.version = targets.version.next();
        targets.expires = Expiry::after(ctx.now, args.lifetimes.lifetimes().targets);
        let version = targets.version;
        let targets_signers: [&dyn Signer; 1] = [&new.key];
        let signed = Signed::sign(targets, &targets_signers).map_err(Error::metadata(format!(
            "signing targets version {version}"
        )))?;
        files.push((RoleName::targets(), signed.as_bytes().to_vec()));
    }

    let saved = match &new_local {
        Some(new) => Some(keyring.save(new).await?),
        None => None,
    };
    if let Err(e) = ctx.server.upload(&gun, files).await {
        if let Some(info) = &saved
            && let Err(rm) = std::fs::remove_file(&info.path)
        {
            eprintln!(
                "notar: warning: the rotation failed and the unused new key {} could not be removed: {rm}",
                info.path.display()
            );
        }
        return Err(e);
    }
    if role == RotateRole::Targets {
        retire(&keyring, &old_ids);
    }
    repo.refresh().await?;

    let role_name = role_type.as_str();
    if ctx.json {
        return print(&json_line(&Rotated {
            gun: &gun,
            role: role_name,
            old_keys: old_ids.iter().map(ToString::to_string).collect(),
            new_key: new_id.to_string(),
            root_version: root_version.get(),
            server: ctx.server.url(),
        }));
    }
    let held = saved
        .map(|info| format!(" (private key in {})", info.path.display()))
        .unwrap_or_else(|| " (held by the server)".into());
    print(&format!(
        "Rotated the {role_name} key of {gun}: {} -> {new_id}{held}; root version {root_version} on {}\n",
        join(&old_ids),
        ctx.server.url()
    ))
}

fn key_ids(root: &notar_tuf::Verified<notar_tuf::Root>, role: RoleType) -> Vec<KeyId> {
    root.role_keys(role)
        .map(|r| r.keyids.clone())
        .unwrap_or_default()
}

fn join(ids: &[KeyId]) -> String {
    ids.iter().map(KeyId::as_str).collect::<Vec<_>>().join(", ")
}

/// Moves retired targets key files to `private/retired/`, where the key store does not
/// look; a failure is a warning, since the rotation is already stored.
fn retire(keyring: &Keyring, ids: &[KeyId]) {
    let dir = keyring.store.private_dir().join("retired");
    for id in ids {
        let path = keyring.store.path_of(id);
        if !path.exists() {
            continue;
        }
        let moved = create_private_dir(&dir)
            .and_then(|()| std::fs::rename(&path, dir.join(format!("{id}.key"))));
        match moved {
            Ok(()) => eprintln!(
                "notar: moved the retired targets key {} to {}",
                id.short(),
                dir.display()
            ),
            Err(e) => eprintln!(
                "notar: warning: could not move the retired key {} out of the key store: {e}",
                path.display()
            ),
        }
    }
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
