//! `notar trust revoke <gun>[:<tag>] [-y]`
//!
//! Removes one tag, or every tag, from the targets role in a new version of it. Revoking
//! every tag asks for confirmation on a terminal; without a terminal it needs `-y`, so a
//! script never blocks on a question nobody sees. Signatures in delegated roles need that
//! role's key and are not removed here; the error says which role holds the tag.

use clap::Args;
use notar_tuf::{Gun, KeyId};
use serde::Serialize;

use crate::commands::args::{TargetsLifetime, TrustDataArgs, confirm};
use crate::output::{json_line, print};
use crate::reference::Reference;
use crate::trust::publish::{publish_targets, targets_signer, unlock_targets_key};
use crate::trust::repo::{Repository, Warnings};
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// <gun>:<tag> removes one tag; <gun> removes every tag (after a confirmation)
    #[arg(value_name = "GUN[:TAG]")]
    pub reference: String,

    /// Do not ask for confirmation when revoking every tag
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,

    #[command(flatten)]
    pub lifetime: TargetsLifetime,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Revoked<'a> {
    gun: &'a Gun,
    /// The tags whose signatures were removed.
    revoked: Vec<String>,
    /// The targets version without them (absent when there was nothing to revoke).
    targets_version: Option<u64>,
    server: &'a str,
}

pub async fn run(ctx: &Context, args: RevokeArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let reference = Reference::parse(&args.reference)?;
    let gun = &reference.gun;
    if reference.tag.is_none() && !args.yes {
        confirm(
            format!("Please confirm you would like to delete all signature data for {gun}? [y/N] "),
            &format!("revoking every tag of {gun}"),
        )
        .await?;
    }
    let targets_key = unlock_targets_key(ctx, gun).await?;
    // No targets key here: a signer removes the tag from its delegated roles.
    if let (None, Some(tag)) = (&targets_key, &reference.tag)
        && let Some(roles) =
            crate::trust::signers::revoke(ctx, gun, tag, args.lifetime.duration(), pin).await?
    {
        return crate::commands::signer::report_roles(ctx, gun, &[tag], false, roles);
    }
    let mut repo = Repository::open(ctx, gun, pin, Warnings::RootOnly).await?;
    let current = repo.targets()?;
    let revoked: Vec<String> = match &reference.tag {
        Some(tag) => {
            if !current.targets.contains_key(tag.as_str()) {
                // The owner who is also a signer (Docker's trust directories often hold
                // both keys): the tag goes from the signer roles, as `docker trust revoke`
                // takes it from every role it holds a key of.
                if targets_key.is_some()
                    && let Some(roles) =
                        crate::trust::signers::revoke(ctx, gun, tag, args.lifetime.duration(), pin)
                            .await?
                {
                    return crate::commands::signer::report_roles(ctx, gun, &[tag], false, roles);
                }
                return Err(match repo.find_target(tag.as_str()).await? {
                    Some(found) => Error::Usage(format!(
                        "{gun}:{tag} is signed by the delegated role {}, not by the targets role; notar trust revoke removes targets signatures only",
                        found.role
                    )),
                    None => Error::Unsigned {
                        gun: gun.clone(),
                        tag: tag.to_string(),
                    },
                });
            }
            vec![tag.to_string()]
        }
        None => current.targets.keys().map(ToString::to_string).collect(),
    };
    if revoked.is_empty() {
        eprintln!("notar: the targets role of {gun} signs no tags; nothing to revoke");
        return report(ctx, gun, revoked, None);
    }
    let key = targets_signer(ctx, &repo, targets_key.as_deref())?;
    let tag = reference.tag.clone();
    let version =
        publish_targets(
            ctx,
            &mut repo,
            key,
            args.lifetime.duration(),
            |targets| match &tag {
                Some(tag) => targets
                    .targets
                    .remove(tag.as_str())
                    .map(|_| ())
                    .ok_or_else(|| Error::Unsigned {
                        gun: gun.clone(),
                        tag: tag.to_string(),
                    }),
                None => {
                    targets.targets.clear();
                    Ok(())
                }
            },
        )
        .await?;
    report(ctx, gun, revoked, Some(version.get()))
}

fn report(
    ctx: &Context,
    gun: &Gun,
    revoked: Vec<String>,
    version: Option<u64>,
) -> Result<(), Error> {
    if ctx.json {
        return print(&json_line(&Revoked {
            gun,
            revoked,
            targets_version: version,
            server: ctx.server.url(),
        }));
    }
    let Some(version) = version else {
        return Ok(());
    };
    let what = match revoked.as_slice() {
        [one] => format!("{gun}:{one}"),
        all => format!("all {} tags of {gun}", all.len()),
    };
    print(&format!(
        "Revoked {what} in targets version {version} on {}\n",
        ctx.server.url()
    ))
}
