//! A root key that never comes online:
//!
//! - on the offline machine, `notar root key --pub-out root.pub` makes the trust
//!   directory's root key (if it has none) and writes its public key; no server is asked;
//! - on the online machine, `notar trust init <gun> --root-pub root.pub --out root.json`
//!   makes the repository's targets key and writes root version 1, unsigned, listing that
//!   root key, the targets key and the server's timestamp and snapshot keys;
//! - offline again, `notar root sign root.json` shows what the root says, checks that this
//!   trust directory's root key is one of its root keys, and adds its signature;
//! - online, `notar trust init <gun> --signed-root root.json` checks the root (its own
//!   threshold, the targets key held here) and uploads it with an empty targets version 1.
//!
//! Later roots go the same way: `notar trust root-update <gun> --out next.json` writes the
//! next version unsigned (a new expiry; with `--root-pub`, a new root key), `notar root sign
//! next.json [--key <previous root key>]` signs it offline, and `notar trust root-update <gun>
//! --signed-root next.json` uploads it; the server checks it against the root before.
//!
//! The online trust directory never holds the root key: signing tags needs the targets key
//! only.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use notar_keys::KeyRole;
use notar_tuf::{
    Expiry, KeyId, PublicKey, RoleName, RoleType, Root, Signed, Signer, Targets, Version,
};

use crate::commands::args::{
    LifetimeArgs, ServerArgs, TrustDataArgs, gun_only, held_key_id, read_limited,
};
use crate::commands::signer::read_public_key;
use crate::output::print;
use crate::trust::publish::unlock_targets_key;
use crate::trust::repo::{Repository, Warnings};
use crate::{Context, Error};

#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Make this trust directory's root key if it has none, and write its public key
    /// (offline: no server is asked)
    Key(RootKeyArgs),
    /// Add this trust directory's root signature to a root file (offline)
    Sign(RootSignArgs),
}

#[derive(Debug, Args)]
pub struct RootKeyArgs {
    /// Where to write the public key
    #[arg(long, value_name = "FILE")]
    pub pub_out: PathBuf,
    /// Make a new root key even if there is one (to rotate to)
    #[arg(long)]
    pub new: bool,
}

#[derive(Debug, Args)]
pub struct RootSignArgs {
    /// The root file from `trust init --out` or `trust root-update --out`; the signatures
    /// are added in place
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Also sign with this root key (all 64 digits or the first 8+), which the file need
    /// not list: the previous root's key, in a rotation
    #[arg(long = "key", value_name = "KEYID")]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RootUpdateArgs {
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,
    /// Write the next root version, unsigned, here: the same keys with a new expiry, or with
    /// --root-pub, the root role moved to that key
    #[arg(long, value_name = "FILE", conflicts_with = "signed_root")]
    pub out: Option<PathBuf>,
    /// The new root key's public key (`notar root key --new --pub-out`)
    #[arg(long, value_name = "FILE", requires = "out")]
    pub root_pub: Option<PathBuf>,
    /// The next root, signed offline: upload it
    #[arg(long, value_name = "FILE")]
    pub signed_root: Option<PathBuf>,
    #[command(flatten)]
    pub lifetimes: LifetimeArgs,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,
    /// The offline root key's public key (`notar root key --pub-out`): prepare root
    /// version 1 for it, unsigned, into --out
    #[arg(
        long,
        value_name = "FILE",
        requires = "out",
        conflicts_with = "signed_root"
    )]
    pub root_pub: Option<PathBuf>,
    /// Where to write the unsigned root
    #[arg(long, value_name = "FILE", requires = "root_pub")]
    pub out: Option<PathBuf>,
    /// The root file signed offline (`notar root sign`): check it and create the
    /// repository with it
    #[arg(long, value_name = "FILE")]
    pub signed_root: Option<PathBuf>,
    #[command(flatten)]
    pub lifetimes: LifetimeArgs,

    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn root(ctx: &Context, command: RootCommand) -> Result<(), Error> {
    match command {
        RootCommand::Key(args) => root_key(ctx, &args.pub_out, args.new).await,
        RootCommand::Sign(args) => root_sign(ctx, &args.file, &args.keys).await,
    }
}

async fn root_key(ctx: &Context, out: &Path, new: bool) -> Result<(), Error> {
    let keyring = ctx.keyring()?;
    // With --new a key is made even when there is one already.
    let existing = if new {
        None
    } else {
        keyring.find(KeyRole::Root, None)?
    };
    let public = match existing {
        Some(info) => keyring
            .unlock(KeyRole::Root, &info.key_id)
            .await?
            .public_key(),
        None => {
            let new = keyring.generate(KeyRole::Root, None).await?;
            let info = keyring.save(&new).await?;
            eprintln!(
                "notar: created root key {} in {}",
                info.key_id,
                info.path.display()
            );
            new.key.public_key()
        }
    };
    write_new(out, &pretty(&public)?)?;
    print(&format!(
        "Root key {}: public key in {}\n",
        public.key_id(),
        out.display()
    ))
}

async fn root_sign(ctx: &Context, file: &Path, extra: &[String]) -> Result<(), Error> {
    let bytes = read_root_file(file)?;
    let root: Signed<Root> = Signed::from_bytes(bytes).map_err(Error::metadata(format!(
        "reading the root in {}",
        file.display()
    )))?;
    let keyring = ctx.keyring()?;
    let listed: Vec<KeyId> = root
        .untrusted()
        .role_keys(RoleType::Root)
        .map(|r| r.keyids.clone())
        .unwrap_or_default();
    let held: Vec<KeyId> = keyring
        .store
        .find(KeyRole::Root, None)
        .map_err(Error::keys("listing keys"))?
        .keys
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    let mut signing: Vec<KeyId> = held
        .iter()
        .filter(|k| listed.contains(k))
        .cloned()
        .collect();
    for text in extra {
        let id = held_key_id(text, &held)?;
        if !signing.contains(&id) {
            eprintln!(
                "notar: signing with root key {} too, which this root does not list (the previous root's key)",
                id.short()
            );
            signing.push(id);
        }
    }
    signing.retain(|id| !root.signatures().iter().any(|s| s.keyid == *id));
    if signing.is_empty() {
        return Err(Error::MissingKey(format!(
            "the root in {} names root keys {}, and this trust directory holds none of them that has not signed it \
             (for a rotation, name the previous root key with --key)",
            file.display(),
            listed
                .iter()
                .map(|k| k.short())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // What is being signed, before a passphrase is asked for.
    eprintln!("{}", describe(root.untrusted()));
    let mut keys = Vec::new();
    for id in &signing {
        keys.push(keyring.unlock(KeyRole::Root, id).await?);
    }
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| &**k as &dyn Signer).collect();
    let signed = root
        .add_signatures(&signers)
        .map_err(Error::metadata("signing the root"))?;
    crate::trust::cache::write_atomically(file, signed.as_bytes())?;
    print(&format!(
        "Signed root version {} with root key {} ({} signatures; its root role needs {})\n",
        signed.untrusted().version,
        signing
            .iter()
            .map(KeyId::short)
            .collect::<Vec<_>>()
            .join(", "),
        signed.signatures().len(),
        signed
            .untrusted()
            .role_keys(RoleType::Root)
            .map_or(1, |r| r.threshold.get())
    ))
}

/// `trust root-update`: the next root of a repository, prepared here for an offline root
/// key to sign (`--out`), then uploaded (`--signed-root`).
pub async fn update(ctx: &Context, args: RootUpdateArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let gun = gun_only(&args.gun)?;
    let mut repo = Repository::open(ctx, &gun, pin, Warnings::RootOnly).await?;
    repo.refuse_notary("updating its root")?;
    let current = repo.updater.root().signed().untrusted().clone();
    match (&args.out, &args.signed_root) {
        (Some(out), None) => {
            let mut next = current.clone();
            next.version = next.version.next();
            next.expires = Expiry::after(ctx.now, args.lifetimes.lifetimes().root);
            let what = match &args.root_pub {
                Some(path) => {
                    let key = read_public_key(path)?;
                    let old: Vec<KeyId> = current
                        .role_keys(RoleType::Root)
                        .map(|r| r.keyids.clone())
                        .unwrap_or_default();
                    for id in &old {
                        next.remove_key(RoleType::Root, id);
                    }
                    let id = key.key_id();
                    next.add_key(RoleType::Root, key);
                    format!(
                        "the root key moves to {}: sign it with the new and the old key (notar root sign {} --key <old key ID>)",
                        id.short(),
                        out.display()
                    )
                }
                None => format!(
                    "the same keys until {}: sign it offline (notar root sign {})",
                    next.expires.datetime(),
                    out.display()
                ),
            };
            let version = next.version;
            let unsigned = Signed::sign(next, &[])
                .map_err(Error::metadata(format!("writing root version {version}")))?;
            write_new(out, unsigned.as_bytes())?;
            print(&format!(
                "Root version {version} of {gun} is in {}; {what}, then upload it with notar trust root-update {gun} --signed-root <file>\n",
                out.display()
            ))
        }
        (None, Some(file)) => {
            let bytes = read_root_file(file)?;
            let next: Signed<Root> = Signed::from_bytes(bytes.clone())
                .map_err(Error::metadata(format!("reading the root in {}", file.display())))?;
            if next.untrusted().version != current.version.next() {
                return Err(Error::Usage(format!(
                    "{} holds root version {}, and the next root of {gun} is version {}",
                    file.display(),
                    next.untrusted().version,
                    current.version.next()
                )));
            }
            ctx.server.upload(&gun, vec![(RoleName::root(), bytes)]).await?;
            repo.refresh().await?;
            print(&format!(
                "Root version {} of {gun} is published\n",
                next.untrusted().version
            ))
        }
        _ => Err(Error::Usage(
            "trust root-update takes --out FILE [--root-pub FILE] (prepare the next root) or --signed-root FILE (upload it)"
                .into(),
        )),
    }
}

/// What a root says, for the person about to sign it.
fn describe(root: &Root) -> String {
    let mut text = format!(
        "root version {}, expires {}:",
        root.version,
        root.expires.datetime()
    );
    for role in [
        RoleType::Root,
        RoleType::Targets,
        RoleType::Snapshot,
        RoleType::Timestamp,
    ] {
        if let Some(keys) = root.role_keys(role) {
            text.push_str(&format!(
                "\n  {role}: {} of {}",
                keys.threshold,
                keys.keyids
                    .iter()
                    .map(|k| k.short())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    text
}

pub async fn init(ctx: &Context, args: InitArgs) -> Result<(), Error> {
    let gun = gun_only(&args.gun)?;
    match (&args.root_pub, &args.out, &args.signed_root) {
        (Some(root_pub), Some(out), None) => prepare(ctx, &gun, root_pub, out, &args).await,
        (None, None, Some(signed)) => create(ctx, &gun, signed, &args).await,
        _ => Err(Error::Usage(
            "trust init takes --root-pub FILE --out FILE (prepare root version 1 for an offline root key), \
             or --signed-root FILE (create the repository with the root signed offline)"
                .into(),
        )),
    }
}

async fn prepare(
    ctx: &Context,
    gun: &notar_tuf::Gun,
    root_pub: &Path,
    out: &Path,
    args: &InitArgs,
) -> Result<(), Error> {
    let root_key = read_public_key(root_pub)?;
    match Repository::open(ctx, gun, None, Warnings::RootOnly).await {
        Err(Error::NoTrustData { .. }) => {}
        Ok(_) => return Err(Error::Usage(format!("{gun} has trust data already"))),
        Err(e) => return Err(e),
    }
    let keyring = ctx.keyring()?;
    let targets_public = match unlock_targets_key(ctx, gun).await? {
        Some(key) => key.public_key(),
        None => {
            let new = keyring.generate(KeyRole::Targets, Some(gun)).await?;
            let info = keyring.save(&new).await?;
            eprintln!(
                "notar: created targets key {} for {gun} in {}",
                info.key_id,
                info.path.display()
            );
            new.key.public_key()
        }
    };
    let timestamp: PublicKey = ctx.server.managed_key(gun, "timestamp").await?;
    let snapshot: PublicKey = ctx.server.managed_key(gun, "snapshot").await?;
    let lifetimes = args.lifetimes.lifetimes();
    let mut root = Root::new(Version::ONE, Expiry::after(ctx.now, lifetimes.root));
    root.add_key(RoleType::Root, root_key.clone());
    root.add_key(RoleType::Targets, targets_public);
    root.add_key(RoleType::Timestamp, timestamp);
    root.add_key(RoleType::Snapshot, snapshot);
    let unsigned = Signed::sign(root, &[]).map_err(Error::metadata("writing root version 1"))?;
    write_new(out, unsigned.as_bytes())?;
    print(&format!(
        "Root version 1 of {gun}, for root key {}, is in {}: sign it offline (notar root sign {}), \
         then create the repository with notar trust init {gun} --signed-root <file>\n",
        root_key.key_id().short(),
        out.display(),
        out.display()
    ))
}

async fn create(
    ctx: &Context,
    gun: &notar_tuf::Gun,
    file: &Path,
    args: &InitArgs,
) -> Result<(), Error> {
    let bytes = read_root_file(file)?;
    let root: Signed<Root> = Signed::from_bytes(bytes.clone()).map_err(Error::metadata(
        format!("reading the root in {}", file.display()),
    ))?;
    // Its own root role must sign it: the offline signature is there, and valid.
    root.check_self().map_err(Error::metadata(format!(
        "checking the signatures of {}",
        file.display()
    )))?;
    let targets_key = unlock_targets_key(ctx, gun).await?.ok_or_else(|| {
        Error::MissingKey(format!(
            "no targets key for {gun} in this trust directory: prepare the root here (trust init --root-pub)"
        ))
    })?;
    let listed = root
        .untrusted()
        .role_keys(RoleType::Targets)
        .map(|r| r.keyids.clone())
        .unwrap_or_default();
    if !listed.contains(targets_key.key_id()) {
        return Err(Error::Usage(format!(
            "the root in {} does not list this trust directory's targets key {} for {gun}",
            file.display(),
            targets_key.key_id().short()
        )));
    }
    let lifetimes = args.lifetimes.lifetimes();
    let targets = Targets::new(Version::ONE, Expiry::after(ctx.now, lifetimes.targets));
    let signers: [&dyn Signer; 1] = [&*targets_key];
    let targets =
        Signed::sign(targets, &signers).map_err(Error::metadata("signing targets version 1"))?;
    ctx.server
        .upload(
            gun,
            vec![
                (RoleName::root(), bytes),
                (RoleName::targets(), targets.as_bytes().to_vec()),
            ],
        )
        .await?;
    Repository::open_with_root(ctx, gun, root.as_bytes().to_vec(), None).await?;
    print(&format!(
        "Created the trust data of {gun} on {} with the root signed offline\n",
        ctx.server.url()
    ))
}

/// Root files are a few KiB; anything past this is not one.
const MAX_ROOT_FILE: usize = 1024 * 1024;

fn read_root_file(path: &Path) -> Result<Vec<u8>, Error> {
    read_limited(path, MAX_ROOT_FILE)
}

fn pretty(key: &PublicKey) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(key)
        .map(|mut v| {
            v.push(b'\n');
            v
        })
        .map_err(|e| Error::Usage(format!("encoding the public key: {e}")))
}

/// Writes `bytes` to `path`, which must not exist yet.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(Error::io("creating", path))?;
    file.write_all(bytes).map_err(Error::io("writing", path))
}
