//! Key backup and recovery:
//!
//! - `notar key backup <file> [--gun G]`: one archive (`notar-key-backup`, see
//!   `notar_keys::backup`) of the key files, still encrypted, with a manifest.
//! - `notar key restore <file>`: checks the whole archive, then writes the keys the trust
//!   directory lacks; identical keys are skipped and said to be.
//! - `notar key export <keyid> [--output F]`: one encrypted key file.
//! - `notar key import <file|dir> [--role R] [--gun G]`: a notar key file; or Docker's or
//!   Notary's keys (a trust directory, a `.key` file, an export, or an unencrypted PKCS#8
//!   PEM), encrypted on import under a new passphrase ([`super::key_import`]).
//! - `notar key passwd <keyid>`: re-encrypts a key under a new passphrase
//!   (`NOTAR_NEW_PASSPHRASE`, or asked twice); the file is replaced atomically, so the old
//!   file stays as it was if anything fails.
//!
//! Nothing prints "success" for a key it skipped: each key is reported as restored,
//! identical (skipped) or kept (skipped).

use std::path::PathBuf;

use clap::Args;
use notar_keys::{KeyRole, PassphraseSource, Prompt};
use notar_tuf::Gun;
use serde::Serialize;

use crate::commands::args::{held_key_id, read_limited};
use crate::commands::key_import::{self, KeyOutcome};
use crate::output::{json_line, print};
use crate::reference::Reference;
use crate::{Context, Error};

/// The variable `key passwd` reads the new passphrase from.
pub const NEW_PASSPHRASE_ENV: &str = "NOTAR_NEW_PASSPHRASE";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to write (refused if it exists)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only this repository's keys, with the root and delegation keys
    #[arg(long, value_name = "GUN")]
    pub gun: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive `notar key backup` wrote
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The key ID: all 64 digits, or the first 8 or more
    #[arg(value_name = "KEYID")]
    pub key_id: String,
    /// Write here instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A notar key file; or Docker's or Notary's keys: a trust directory (~/.docker/trust,
    /// ~/.notary), one of its .key files, a `notary key export`, or a PKCS#8 PEM
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The role, where the file does not say (a PEM without a role header; checked
    /// against a notar key file's header)
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// The repository (targets keys)
    #[arg(long, value_name = "GUN")]
    pub gun: Option<String>,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The key ID: all 64 digits, or the first 8 or more
    #[arg(value_name = "KEYID")]
    pub key_id: String,
}

/// `--json` result of backup, restore and import (format 1): each key and what happened.
#[derive(Debug, Serialize)]
struct KeysReport {
    file: String,
    keys: Vec<KeyOutcome>,
}

fn parse_gun(text: Option<&str>) -> Result<Option<Gun>, Error> {
    text.map(|t| {
        let reference = Reference::parse(t)?;
        if reference.tag.is_some() {
            return Err(Error::Usage(format!(
                "{t}: expected a repository without a tag"
            )));
        }
        Ok(reference.gun)
    })
    .transpose()
}

fn report(ctx: &Context, file: &std::path::Path, keys: Vec<KeyOutcome>) -> Result<(), Error> {
    if ctx.json {
        return print(&json_line(&KeysReport {
            file: file.display().to_string(),
            keys,
        }));
    }
    let mut out = String::new();
    for k in &keys {
        let gun = k
            .gun
            .as_deref()
            .map(|g| format!(" for {g}"))
            .unwrap_or_default();
        let what = match k.outcome {
            "backed-up" => "backed up",
            "restored" => "restored",
            "imported" => "imported",
            "skipped-identical" => "skipped: already present and identical",
            "skipped-server-role" => "skipped: the server holds this role",
            _ => "skipped: a different file for this key is present and was kept",
        };
        out.push_str(&format!("{} key {}{gun}: {what}\n", k.role, k.key_id));
    }
    print(&out)
}

pub fn backup(ctx: &Context, args: BackupArgs) -> Result<(), Error> {
    let gun = parse_gun(args.gun.as_deref())?;
    if args.file.exists() {
        return Err(Error::Usage(format!(
            "{} exists already; choose another file",
            args.file.display()
        )));
    }
    let keyring = ctx.keyring()?;
    let (bytes, infos) = keyring
        .store
        .backup(gun.as_ref())
        .map_err(Error::keys("backing up keys"))?;
    if infos.is_empty() {
        return Err(Error::Usage(format!(
            "no keys to back up in {}",
            keyring.store.private_dir().display()
        )));
    }
    write_private(&args.file, &bytes)?;
    let keys = infos
        .into_iter()
        .map(|k| KeyOutcome {
            key_id: k.key_id.to_string(),
            role: k.role.to_string(),
            gun: k.gun.map(|g| g.to_string()),
            outcome: "backed-up",
        })
        .collect();
    report(ctx, &args.file, keys)
}

/// Writes a new file readable by its owner only (it holds encrypted keys).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(Error::io("creating", path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", path))
}

pub fn restore(ctx: &Context, args: RestoreArgs) -> Result<(), Error> {
    let bytes = read_limited(&args.file, notar_keys::backup::MAX_ARCHIVE_LEN)?;
    let keyring = ctx.keyring()?;
    let result = keyring
        .store
        .restore(&bytes)
        .map_err(Error::keys(format!("restoring {}", args.file.display())))?;
    let mut keys = Vec::new();
    for k in result.restored {
        keys.push(KeyOutcome {
            key_id: k.key_id.to_string(),
            role: k.role.to_string(),
            gun: k.gun.map(|g| g.to_string()),
            outcome: "restored",
        });
    }
    for (entries, outcome) in [
        (result.identical, "skipped-identical"),
        (result.kept_existing, "skipped-kept-existing"),
    ] {
        for e in entries {
            keys.push(KeyOutcome {
                key_id: e.key_id.to_string(),
                role: e.role.to_string(),
                gun: e.gun.map(|g| g.to_string()),
                outcome,
            });
        }
    }
    report(ctx, &args.file, keys)
}

/// The IDs of the keys the trust directory holds.
fn held_ids(keyring: &crate::trust::keyring::Keyring) -> Result<Vec<notar_tuf::KeyId>, Error> {
    Ok(keyring
        .store
        .list()
        .map_err(Error::keys("listing keys"))?
        .keys
        .into_iter()
        .map(|k| k.key_id)
        .collect())
}

pub fn export(ctx: &Context, args: ExportArgs) -> Result<(), Error> {
    let keyring = ctx.keyring()?;
    let key_id = held_key_id(&args.key_id, &held_ids(&keyring)?)?;
    let info = keyring
        .store
        .info(&key_id)
        .map_err(Error::keys(format!("exporting key {}", key_id.short())))?;
    let bytes = std::fs::read(&info.path).map_err(Error::io("reading", &info.path))?;
    match &args.output {
        Some(path) => {
            write_private(path, &bytes)?;
            eprintln!(
                "notar: exported the {} key {} (encrypted) to {}",
                info.role,
                key_id,
                path.display()
            );
            Ok(())
        }
        None => print(&String::from_utf8_lossy(&bytes)),
    }
}

pub async fn import(ctx: &Context, args: ImportArgs) -> Result<(), Error> {
    let gun = parse_gun(args.gun.as_deref())?;
    if args.file.is_dir() {
        let outcomes =
            key_import::import(ctx, &args.file, args.role.as_deref(), gun.as_ref()).await?;
        return report(ctx, &args.file, outcomes);
    }
    let bytes = read_limited(&args.file, notar_keys::notary_key::MAX_FILE_LEN)?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.starts_with("{\"format\":\"notar-key\"") && key_import::is_pem(&text) {
        let outcomes =
            key_import::import(ctx, &args.file, args.role.as_deref(), gun.as_ref()).await?;
        return report(ctx, &args.file, outcomes);
    }
    let role: Option<KeyRole> = args
        .role
        .as_deref()
        .map(|r| r.parse::<KeyRole>())
        .transpose()
        .map_err(Error::keys("reading --role"))?;
    let keyring = ctx.keyring()?;
    let header = notar_keys::read_header(&bytes)
        .map_err(Error::keys(format!("importing {}", args.file.display())))?;
    if let Some(role) = role
        && role != header.role
    {
        return Err(Error::Usage(format!(
            "{} holds a {} key, not a {role} key; nothing was imported",
            args.file.display(),
            header.role
        )));
    }
    if gun.is_some() && gun != header.gun {
        return Err(Error::Usage(format!(
            "{} holds a key for {}, not for the --gun given; nothing was imported",
            args.file.display(),
            header
                .gun
                .as_ref()
                .map(Gun::as_str)
                .unwrap_or("no repository"),
        )));
    }
    let result = keyring
        .store
        .import_key_file(&bytes)
        .map_err(Error::keys(format!("importing {}", args.file.display())))?;
    let outcome = if !result.restored.is_empty() {
        "imported"
    } else if !result.identical.is_empty() {
        "skipped-identical"
    } else {
        "skipped-kept-existing"
    };
    let outcome = KeyOutcome {
        key_id: header.key_id.to_string(),
        role: header.role.to_string(),
        gun: header.gun.map(|g| g.to_string()),
        outcome,
    };
    report(ctx, &args.file, vec![outcome])
}

pub async fn passwd(ctx: &Context, args: PasswdArgs) -> Result<(), Error> {
    let keyring = ctx.keyring()?;
    let key_id = held_key_id(&args.key_id, &held_ids(&keyring)?)?;
    let info = keyring.store.info(&key_id).map_err(Error::keys(format!(
        "changing the passphrase of key {}",
        key_id.short()
    )))?;
    let key = keyring.unlock_local(info.role, &key_id).await?;
    let role = info.role;
    let id = key_id.clone();
    let passphrase = tokio::task::spawn_blocking(move || {
        PassphraseSource::new(
            |_| {
                std::env::var(NEW_PASSPHRASE_ENV)
                    .ok()
                    .filter(|v| !v.is_empty())
            },
            Prompt::Terminal,
        )
        .create(role, &id)
    })
    .await
    .map_err(Error::Task)?
    .map_err(Error::keys(format!(
        "reading the new passphrase for key {} ({NEW_PASSPHRASE_ENV}, or a terminal)",
        key_id.short()
    )))?;
    let saved = keyring
        .store
        .save_async(&key, info.role, info.gun.as_ref(), passphrase, ctx.kdf)
        .await
        .map_err(Error::keys(format!("re-encrypting key {}", key_id.short())))?;
    print(&format!(
        "Changed the passphrase of the {} key {} ({})\n",
        saved.role,
        saved.key_id,
        saved.path.display()
    ))
}
