//! `notar trust pin <gun> <keyid>`: from now on, every root of `<gun>` must be signed by
//! this root key, on first contact as on every update (`--root-key` does the same for one
//! command). Pinning a key that did not sign the root this trust directory already trusts
//! is refused, since every later command would fail.

use notar_tuf::{Root, Signed};
use serde::Serialize;

use crate::cache::MetadataCache;
use crate::cli::PinArgs;
use crate::commands::parse_key_id;
use crate::output::{json_line, print};
use crate::reference::Reference;
use crate::repo::signed_by_root_key;
use crate::{Context, Error};

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Pinned<'a> {
    gun: &'a str,
    root_key: &'a str,
}

pub fn run(ctx: &Context, args: PinArgs) -> Result<(), Error> {
    let reference = Reference::parse_repository(&args.gun)?;
    let gun = &reference.gun;
    let key = parse_key_id(&args.key_id)?;
    let cache = MetadataCache::load(&ctx.trust_dir, gun)?;
    if let Some(bytes) = cache.get("root.json") {
        let path = cache.dir().join("root.json");
        let root = Signed::<Root>::from_bytes(bytes.to_vec()).map_err(|e| Error::Io {
            action: "reading the trusted root",
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
        if !signed_by_root_key(&root, &key) {
            return Err(Error::PinMismatch {
                gun: gun.clone(),
                key,
            });
        }
    }
    cache.save_pin(&key)?;
    if ctx.json {
        print(&json_line(&Pinned {
            gun: gun.as_str(),
            root_key: key.as_str(),
        }))
    } else {
        print(&format!("Pinned the root key of {gun} to {key}\n"))
    }
}
