//! `notar key list`: the private keys of the trust directory, from their file headers (no
//! passphrase needed). Files that cannot be read are reported on stderr (and under
//! `damaged` with `--json`) rather than skipped.

use serde::Serialize;

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
    let keys: Vec<Key> = infos
        .into_iter()
        .map(|k| Key {
            role: k.role.to_string(),
            gun: k.gun.as_ref().map(ToString::to_string),
            key_id: k.key_id.to_string(),
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
        "FILE".to_owned(),
    ]];
    rows.extend(keys.into_iter().map(|k| {
        vec![
            k.role,
            k.gun.unwrap_or_else(|| "-".to_owned()),
            k.key_id,
            k.file,
        ]
    }));
    print(&table(&rows))
}
