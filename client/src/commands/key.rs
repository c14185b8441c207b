//! `notar key list`: the private keys of the trust directory, from their file headers (no
//! passphrase needed). Files that cannot be read are reported on stderr (and under
//! `damaged` with `--json`) rather than skipped.

use std::collections::BTreeMap;
use std::path::Path;

use notar_tuf::{KeyId, Targets};
use serde::Serialize;

use crate::trust::keyring::held_id;

use crate::output::{json_line, print, table};
use crate::{Context, Error};

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Listing {
    keys: Vec<Key>,
    damaged: Vec<Damaged>,
}

#[derive(Debug, Serialize)]
struct Key {
    role: String,
    gun: Option<String>,
    key_id: String,
    /// For a delegation key: the signers it is the key of, `name (gun)`, as the
    /// repositories this trust directory has read delegate to it.
    signers: Vec<String>,
    file: String,
}

#[derive(Debug, Serialize)]
struct Damaged {
    file: String,
    error: String,
}

pub fn list(ctx: &Context) -> Result<(), Error> {
    let keyring = ctx.keyring()?;
    let listing = keyring.store.list().map_err(Error::keys("listing keys"))?;
    let mut infos: Vec<&notar_keys::KeyInfo> = listing.keys.iter().collect();
    infos.sort_by(|a, b| (a.role, &a.gun, &a.key_id).cmp(&(b.role, &b.gun, &b.key_id)));
    let signers = signer_names(&ctx.trust_dir);
    let keys: Vec<Key> = infos
        .into_iter()
        .map(|k| Key {
            role: k.role.to_string(),
            gun: k.gun.as_ref().map(ToString::to_string),
            key_id: k.key_id.to_string(),
            signers: signers.get(&k.key_id).cloned().unwrap_or_default(),
            file: k.path.display().to_string(),
        })
        .collect();
    let damaged: Vec<Damaged> = listing
        .damaged
        .iter()
        .map(|d| Damaged {
            file: d.path.display().to_string(),
            error: crate::error::one_line(&d.error),
        })
        .collect();
    for d in &damaged {
        eprintln!(
            "notar: warning: cannot read key file {}: {}",
            d.file, d.error
        );
    }
    if ctx.json {
        return print(&json_line(&Listing { keys, damaged }));
    }
    if keys.is_empty() {
        eprintln!(
            "notar: no keys in {}",
            keyring.store.private_dir().display()
        );
        return Ok(());
    }
    let mut rows = vec![vec![
        "ROLE".to_owned(),
        "GUN".to_owned(),
        "KEY ID".to_owned(),
        "SIGNER".to_owned(),
        "FILE".to_owned(),
    ]];
    rows.extend(keys.into_iter().map(|k| {
        vec![
            k.role,
            k.gun.unwrap_or_else(|| "-".to_owned()),
            k.key_id,
            if k.signers.is_empty() {
                "-".to_owned()
            } else {
                k.signers.join(", ")
            },
            k.file,
        ]
    }));
    print(&table(&rows))
}

/// The signer names of delegation keys, from the verified targets metadata kept in the trust
/// directory: each `targets/<name>` role (but the shared `targets/releases`) names its keys'
/// signer. Only repositories this trust directory has read are known; metadata that does
/// not parse is skipped (this is a listing, not a verification).
fn signer_names(trust_dir: &Path) -> BTreeMap<KeyId, Vec<String>> {
    let mut names: BTreeMap<KeyId, Vec<String>> = BTreeMap::new();
    for (gun, bytes) in crate::trust::cache::cached_targets(trust_dir) {
        let Ok((dialect, targets)) = notar_tuf::notary::parse_either::<Targets>(bytes) else {
            continue;
        };
        let Some(delegations) = targets.untrusted().delegations.as_ref() else {
            continue;
        };
        for role in &delegations.roles {
            let Some(name) = role.name.as_str().strip_prefix("targets/") else {
                continue;
            };
            if name == "releases" || name.contains('/') {
                continue;
            }
            for id in &role.keyids {
                let held = held_id(dialect, &delegations.keys, id);
                names
                    .entry(held)
                    .or_default()
                    .push(format!("{name} ({gun})"));
            }
        }
    }
    for list in names.values_mut() {
        list.sort();
        list.dedup();
    }
    names
}
