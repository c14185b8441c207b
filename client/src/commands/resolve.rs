//! `notar trust resolve <gun>:<tag>`: the verified digest reference of a tag, for scripts:
//! `docker pull "$(notar trust resolve registry.example/app:v1)"`.
//!
//! The tag is found by notar-tuf's one delegation walk in Docker's order (the
//! `targets/releases` subtree, then `targets`, then the other delegations, within their
//! paths), the same walk `notar pull` uses, so the answer is what a verifying pull fetches.

use clap::Args;
use notar_tuf::{Gun, KeyId};
use serde::Serialize;

use crate::commands::args::TrustDataArgs;
use crate::output::{json_line, print};
use crate::reference::Reference;
use crate::trust::repo::{Repository, Warnings};
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The tag: <gun>:<tag>
    #[arg(value_name = "GUN:TAG")]
    pub reference: String,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Resolved<'a> {
    /// `<gun>@sha256:<hex>`
    reference: String,
    gun: &'a Gun,
    tag: &'a str,
    digest: String,
    size: u64,
    /// The role whose signature vouches for it (`targets`, `targets/releases`, …).
    role: String,
}

pub async fn run(ctx: &Context, args: ResolveArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let (reference, tag) = Reference::parse_tagged(&args.reference)?;
    let gun = &reference.gun;
    let mut repo = Repository::open(ctx, gun, pin, Warnings::RootAndTargets).await?;
    let unsigned = || Error::Unsigned {
        gun: gun.clone(),
        tag: tag.to_string(),
    };
    let found = repo.find_target(tag.as_str()).await?.ok_or_else(unsigned)?;
    // Only a well-formed sha256 names an image; a target without one is not a signed tag.
    let digest = found
        .target
        .sha256_digest()
        .map(|d| format!("sha256:{}", hex::encode(d)))
        .ok_or_else(unsigned)?;
    let pinned = format!("{gun}@{digest}");
    if ctx.json {
        print(&json_line(&Resolved {
            reference: pinned,
            gun,
            tag: tag.as_str(),
            digest,
            size: found.target.length,
            role: found.role.to_string(),
        }))
    } else {
        print(&format!("{pinned}\n"))
    }
}
