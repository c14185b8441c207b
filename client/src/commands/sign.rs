//! `notar trust sign <gun>:<tag> [--digest sha256:<hex> --size <bytes>]`: without
//! `--digest`, the digest and size are those of the manifest the registry's tag names.
//! The signing itself is [`crate::trust::publish::sign_tag`].

use clap::Args;
use notar_tuf::names::Tag;
use notar_tuf::{Gun, KeyId, RoleName, TargetFile};
use serde::Serialize;

use crate::commands::args::LifetimeArgs;
use crate::oci::digest::parse_sha256;
use crate::oci::{OciDigest, Registry};
use crate::output::{json_line, print};
use crate::reference::Reference;
use crate::trust::publish::{Signature, sign_tag};
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The tag to sign: <gun>:<tag>
    #[arg(value_name = "GUN:TAG")]
    pub reference: String,

    /// Manifest digest, sha256:<64 hex> (default: what the tag names in the registry)
    #[arg(long, value_name = "sha256:HEX", requires = "size")]
    pub digest: Option<String>,

    /// Manifest size in bytes
    #[arg(long, value_name = "BYTES", requires = "digest")]
    pub size: Option<u64>,

    /// Reach this registry host over plain HTTP (loopback hosts always are)
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Sign into this role only: `targets`, or a signer's role (`targets/<name>`, or just
    /// `<name>`). Default, as Docker does: every signer role whose paths allow the tag and
    /// whose key this trust directory holds; `targets` only when the repository has no
    /// signers
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,

    #[command(flatten)]
    pub lifetimes: LifetimeArgs,
}

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Signed1<'a> {
    gun: &'a Gun,
    tag: &'a str,
    digest: String,
    size: u64,
    /// The targets version that holds the signature.
    targets_version: u64,
    /// The digest the tag had before, when this signature replaced it.
    replaced: Option<String>,
    /// Whether this signature created the repository's trust data.
    created: bool,
    server: &'a str,
}

pub async fn run(ctx: &Context, args: SignArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let (reference, tag) = Reference::parse_tagged(&args.reference)?;
    let gun = &reference.gun;
    let (digest, size) = match (&args.digest, args.size) {
        (Some(digest), Some(size)) => (OciDigest::from_sha256(parse_sha256(digest)?), size),
        _ => {
            Registry::for_gun(gun, &args.insecure_registry)?
                .resolve_tag(tag.as_str())
                .await?
        }
    };
    let role = args.role.as_deref().map(parse_role).transpose()?;
    let target = TargetFile::sha256(size, digest.sha256());
    let signature = sign_tag(
        ctx,
        gun,
        &tag,
        target,
        role.as_ref(),
        args.lifetimes.lifetimes(),
        pin,
    )
    .await?;
    report(ctx, gun, &tag, &digest, size, signature)
}

/// Prints where a signature of `tag` as `digest` went.
pub fn report(
    ctx: &Context,
    gun: &Gun,
    tag: &Tag,
    digest: &OciDigest,
    size: u64,
    signature: Signature,
) -> Result<(), Error> {
    let (version, replaced, created) = match signature {
        Signature::Roles(roles) => {
            return crate::commands::signer::report_roles(ctx, gun, tag, true, roles);
        }
        Signature::Targets {
            version,
            replaced,
            created,
        } => (version, replaced, created),
    };
    if ctx.json {
        print(&json_line(&Signed1 {
            gun,
            tag: tag.as_str(),
            digest: digest.to_string(),
            size,
            targets_version: version.get(),
            replaced: replaced.map(|h| format!("sha256:{h}")),
            created,
            server: ctx.server.url(),
        }))
    } else {
        let replacing = replaced
            .map(|h| format!(", replacing sha256:{h}"))
            .unwrap_or_default();
        print(&format!(
            "Signed {gun}:{tag} as {digest} ({size} bytes{replacing}) in targets version {version} on {}\n",
            ctx.server.url()
        ))
    }
}

/// `--role targets`, `--role targets/alice` or `--role alice`.
fn parse_role(text: &str) -> Result<RoleName, Error> {
    let name = if text == "targets" || text.starts_with("targets/") {
        text.to_owned()
    } else {
        format!("targets/{text}")
    };
    RoleName::new(name).map_err(|e| Error::Usage(format!("--role {text}: {e}")))
}
