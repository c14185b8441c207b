//! `notar trust pin <gun> <keyid>`, `trust unpin <gun>`, `trust reset <gun>`.
//!
//! A pinned root key must have signed a root of the repository from which the chain of
//! verified rotations reaches the current root: the original root key keeps working after
//! any number of rotations, and so does the current one. `--root-key` does the same for
//! one command. A key that signed no root of the repository is refused.

use clap::Args;
use serde::Serialize;

use std::collections::BTreeSet;

use notar_keys::KeyRole;
use notar_tuf::{KeyId, RoleType};

use crate::commands::args::{ServerArgs, key_id_among, parse_key_id};
use crate::output::{json_line, print};
use crate::reference::Reference;
use crate::trust::cache::{MetadataCache, cached_roots};
use crate::trust::keyring::held_id;
use crate::trust::repo::{Repository, Warnings};
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct GunArgs {
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The repository
    #[arg(value_name = "GUN")]
    pub gun: String,

    /// The root key ID: 64 hex digits, as `trust inspect` shows them, or the first 8 or
    /// more of a root key this trust directory holds or has trusted
    #[arg(value_name = "KEYID")]
    pub key_id: String,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Pinned<'a> {
    gun: &'a str,
    root_key: &'a str,
}

pub async fn run(ctx: &Context, args: PinArgs) -> Result<(), Error> {
    let reference = Reference::parse_repository(&args.gun)?;
    let gun = &reference.gun;
    let key = root_pin(ctx, &args.key_id)?;
    // The pin must hold now: the chain from a root the key signed must reach the current
    // root. Opening the repository with the pin walks that chain (and refuses a key that
    // signed no root); only then is the pin kept.
    let repo = Repository::open(ctx, gun, Some(&key), Warnings::RootOnly).await?;
    let cache = MetadataCache::load(&ctx.trust_dir, gun)?;
    cache.save_pin(&key)?;
    let current = repo.updater.root();
    if ctx.json {
        print(&json_line(&Pinned {
            gun: gun.as_str(),
            root_key: key.as_str(),
        }))
    } else {
        print(&format!(
            "Pinned the root key of {gun} to {key} (the current root, version {}, descends from a root it signed)\n",
            current.version
        ))
    }
}

/// A root key as `trust pin` and `--root-key` take it. All 64 digits name any key. A
/// prefix (8 digits or more) must name a root key this trust directory already knows: one
/// it holds, or one that a root it has trusted lists. A prefix is never matched against
/// what a server offers: a key made to share its first 8 or 12 digits with the wanted one
/// is cheap to find, and would then be pinned.
pub fn root_pin(ctx: &Context, text: &str) -> Result<KeyId, Error> {
    if text.trim().len() == 64 {
        return parse_key_id(text);
    }
    let known: Vec<KeyId> = known_root_keys(ctx)?.into_iter().collect();
    key_id_among(text, &known, |wanted| {
        format!(
            "no root key this trust directory holds or has trusted starts with {wanted}: a \
             prefix only names a key already known here; give all 64 digits of another \
             (trust inspect shows them)"
        )
    })
}

/// The root keys this trust directory holds, and those the roots it keeps list (by the
/// IDs the roots give them, and by their TUF 1.0 IDs where a Notary root gives others).
fn known_root_keys(ctx: &Context) -> Result<BTreeSet<KeyId>, Error> {
    let keyring = ctx.keyring()?;
    let mut known: BTreeSet<KeyId> = keyring
        .store
        .list()
        .map_err(Error::keys("listing keys"))?
        .keys
        .into_iter()
        .filter(|k| k.role == KeyRole::Root)
        .map(|k| k.key_id)
        .collect();
    for (_gun, bytes) in cached_roots(&ctx.trust_dir) {
        let Ok((dialect, root)) = notar_tuf::notary::parse_either::<notar_tuf::Root>(bytes) else {
            continue;
        };
        let root = root.untrusted();
        for id in root
            .role_keys(RoleType::Root)
            .into_iter()
            .flat_map(|r| &r.keyids)
        {
            known.insert(held_id(dialect, &root.keys, id));
            known.insert(id.clone());
        }
    }
    Ok(known)
}

/// `notar trust unpin <gun>`: removes the pin; roots are then trusted as any other
/// repository's (the kept root stays the anchor).
pub fn unpin(ctx: &Context, gun: &str) -> Result<(), Error> {
    let reference = Reference::parse_repository(gun)?;
    let gun = &reference.gun;
    let removed = MetadataCache::load(&ctx.trust_dir, gun)?.remove_pin()?;
    if !removed {
        eprintln!("notar: {gun} had no pinned root key");
    }
    if ctx.json {
        print(&json_line(
            &serde_json::json!({"gun": gun, "unpinned": removed}),
        ))
    } else if removed {
        print(&format!("Removed the root key pin of {gun}\n"))
    } else {
        Ok(())
    }
}

/// `notar trust reset <gun>`: forgets the trust data kept for a repository (its trusted
/// metadata and its pin), so the next command meets it as on first contact. For a
/// repository that was deleted and re-created on purpose.
pub fn reset(ctx: &Context, gun: &str) -> Result<(), Error> {
    let reference = Reference::parse_repository(gun)?;
    let gun = &reference.gun;
    let removed = MetadataCache::load(&ctx.trust_dir, gun)?.forget()?;
    if ctx.json {
        print(&json_line(
            &serde_json::json!({"gun": gun, "forgotten": removed}),
        ))
    } else if removed {
        print(&format!(
            "Forgot the trust data of {gun}; the next command trusts its root on first use (or by --root-key)\n"
        ))
    } else {
        eprintln!("notar: this trust directory kept nothing for {gun}");
        Ok(())
    }
}
