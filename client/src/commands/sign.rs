//! `notar trust sign <gun>:<tag>… [--digest sha256:<hex> --size <bytes>]`: every tag
//! (of one GUN) is signed in one upload, so ten tags cost one new targets version and one
//! unlock of each key. With `--digest`, every tag is signed as that manifest (`v1.2.3`,
//! `v1.2` and `latest` of one release); without, each as the manifest its tag names in the
//! registry. The signing itself is [`crate::trust::publish::sign_tags`].

use clap::Args;
use notar_tuf::names::Tag;
use notar_tuf::{Gun, KeyId, RoleName, TargetFile};
use serde::Serialize;

use crate::commands::args::{LifetimeArgs, TrustDataArgs};
use crate::oci::digest::parse_sha256;
use crate::oci::{OciDigest, Registry};
use crate::output::{json_line, print};
use crate::reference::Reference;
use crate::trust::publish::{Signature, sign_tags};
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The tags to sign, of one repository: <gun>:<tag>…
    #[arg(value_name = "GUN:TAG", required = true, num_args = 1..)]
    pub references: Vec<String>,

    /// Manifest digest, sha256:<64 hex>, for every tag given (default: what each tag names
    /// in the registry)
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

    #[command(flatten)]
    pub trust: TrustDataArgs,
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
    let mut gun: Option<Gun> = None;
    let mut tags: Vec<Tag> = Vec::new();
    for text in &args.references {
        let (reference, tag) = Reference::parse_tagged(text)?;
        match &gun {
            Some(first) if *first != reference.gun => {
                return Err(Error::Usage(format!(
                    "{text}: every tag of one trust sign must be of one repository, and the first is of {first}"
                )));
            }
            _ => gun = Some(reference.gun),
        }
        if tags.contains(&tag) {
            return Err(Error::Usage(format!("{text} is given twice")));
        }
        tags.push(tag);
    }
    let Some(gun) = gun else {
        return Err(Error::Usage("no tag to sign".into()));
    };
    let mut signed: Vec<(Tag, OciDigest, u64)> = Vec::new();
    match (&args.digest, args.size) {
        (Some(digest), Some(size)) => {
            let digest = OciDigest::from_sha256(parse_sha256(digest)?);
            for tag in tags {
                signed.push((tag, digest.clone(), size));
            }
        }
        _ => {
            let registry = Registry::for_gun(&gun, &args.insecure_registry)?;
            for tag in tags {
                let (digest, size) = registry.resolve_tag(tag.as_str()).await?;
                signed.push((tag, digest, size));
            }
        }
    }
    let role = args.role.as_deref().map(parse_role).transpose()?;
    let targets: Vec<(Tag, TargetFile)> = signed
        .iter()
        .map(|(tag, digest, size)| (tag.clone(), TargetFile::sha256(*size, digest.sha256())))
        .collect();
    let signature = sign_tags(
        ctx,
        &gun,
        &targets,
        role.as_ref(),
        args.lifetimes.lifetimes(),
        pin,
    )
    .await?;
    report(ctx, &gun, &signed, signature)
}

/// Prints where the signatures of `signed` (tag, digest, size) went: a line each, or a
/// JSON line each with `--json`.
pub fn report(
    ctx: &Context,
    gun: &Gun,
    signed: &[(Tag, OciDigest, u64)],
    signature: Signature,
) -> Result<(), Error> {
    let (version, replaced, created) = match signature {
        Signature::Roles(roles) => {
            let tags: Vec<&Tag> = signed.iter().map(|(t, _, _)| t).collect();
            return crate::commands::signer::report_roles(ctx, gun, &tags, true, roles);
        }
        Signature::Targets {
            version,
            replaced,
            created,
        } => (version, replaced, created),
    };
    let mut out = String::new();
    for (tag, digest, size) in signed {
        let old = replaced
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, hash)| format!("sha256:{hash}"));
        if ctx.json {
            out.push_str(&json_line(&Signed1 {
                gun,
                tag: tag.as_str(),
                digest: digest.to_string(),
                size: *size,
                targets_version: version.get(),
                replaced: old,
                created,
                server: ctx.server.url(),
            }));
        } else {
            let replacing = old.map(|h| format!(", replacing {h}")).unwrap_or_default();
            out.push_str(&format!(
                "Signed {gun}:{tag} as {digest} ({size} bytes{replacing}) in targets version {version} on {}\n",
                ctx.server.url()
            ));
        }
    }
    print(&out)
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
