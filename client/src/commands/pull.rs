//! `notar pull <gun>:<tag>` and `notar pull <gun>@sha256:<hex>`: an enforced pull into an
//! OCI image layout.
//!
//! By tag, the digest and length come only from verified trust data, found by notar-tuf's
//! delegation walk in Docker's order: the `targets/releases` subtree, then `targets`, then
//! the other delegations, each trusted for the tag through its delegation paths, a
//! terminating delegation ending the search. Only the signed digest is ever fetched: when
//! the registry's tag names another (a push between its upload and its signature, or a tag
//! moved by hand), the pull says so and takes the signed one, as Docker does;
//! `--require-tag-match` refuses instead. The manifest is fetched by digest with the signed
//! length as a cap (more is refused before it is read in full) and its sha256 checked
//! before it is parsed. For an image index, that is the index; the platform's manifest is
//! then fetched by the digest the index names and checked the same way. A platform asked
//! for that the image does not have is an error naming what it has. Blobs are fetched
//! concurrently by digest, hashed and counted while they stream into a staging directory
//! next to the output, and only a complete, verified layout is renamed into place: on any
//! failure the output is left as it was. Blobs a previous pull left in the output are
//! reused when they verify.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use notar_tuf::names::Tag;
use notar_tuf::{Gun, KeyId, RoleName};
use oci_spec::image::{Descriptor, DescriptorBuilder, ImageManifest, MediaType, PlatformBuilder};
use serde::Serialize;

use crate::commands::args::TrustDataArgs;
use crate::oci::digest::Hasher;
use crate::oci::layout::{PULLED_FROM, REF_NAME, Staging, check_output};
use crate::oci::manifest::{self, ConfigPlatform, Manifest, PlatformChoice, show_platform};
use crate::oci::registry::MAX_MANIFEST_BYTES;
use crate::oci::{OciDigest, Registry};
use crate::output::{json_line, print};
use crate::reference::normalize_gun;
use crate::trust::repo::{Repository, Warnings};
use crate::{Context, Error};

/// Concurrent blob downloads.
const PARALLEL_DOWNLOADS: usize = 4;

#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: <gun>:<tag> (verified through trust data) or <gun>@sha256:<hex>
    #[arg(value_name = "GUN:TAG|GUN@DIGEST")]
    pub reference: String,

    /// The OCI image layout directory to write [default: the repository's last path component]
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// The platform to pick from an image index, os/arch[/variant] [default: this machine]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    /// Reach this registry host over plain HTTP (loopback hosts always are)
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Refuse when the registry's tag names another digest than the signed one (by
    /// default the signed digest is pulled, and a note names both)
    #[arg(long)]
    pub require_tag_match: bool,

    /// Pull by tag without trust data (also NOTAR_CONTENT_TRUST=0, or Docker's
    /// DOCKER_CONTENT_TRUST=0); a warning says so
    #[arg(long, conflicts_with_all = ["require_tag_match", "root_key"])]
    pub disable_content_trust: bool,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

/// What a pull names.
#[derive(Debug)]
enum Wanted {
    Tag(Tag),
    Digest(OciDigest),
}

/// `--json` result (format 1).
#[derive(Debug, Serialize)]
struct Pulled {
    reference: String,
    gun: String,
    tag: Option<String>,
    /// The manifest (or image index) digest that was signed or named.
    digest: String,
    size: u64,
    /// The role whose signature vouched for it; absent for digest pulls and unverified pulls.
    role: Option<String>,
    verified: bool,
    /// The platform manifest, when the digest names an image index.
    platform_manifest: Option<Blob>,
    blobs: Vec<Blob>,
    output: String,
}

#[derive(Clone, Debug, Serialize)]
struct Blob {
    digest: String,
    size: u64,
    /// Reused from the output of an earlier pull instead of downloaded.
    reused: bool,
}

pub async fn run(ctx: &Context, args: PullArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let (gun, wanted) = parse_reference(&args.reference)?;
    // Docker's switch works as Docker's users expect it to; notar's own wins when both
    // are set, and content trust stays on when neither says off.
    let off = |name: &str| {
        std::env::var(name).is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            )
        })
    };
    let notar_says = std::env::var_os("NOTAR_CONTENT_TRUST").is_some();
    let trust = !(args.disable_content_trust
        || off("NOTAR_CONTENT_TRUST")
        || (!notar_says && off("DOCKER_CONTENT_TRUST")));
    let asked = args
        .platform
        .as_deref()
        .map(PlatformChoice::parse)
        .transpose()?;
    let platform = asked.clone().unwrap_or_else(PlatformChoice::this_machine);
    let output = match &args.output {
        Some(dir) => dir.clone(),
        None => PathBuf::from(gun.as_str().rsplit('/').next().unwrap_or("image")),
    };
    check_output(&output)?;
    let registry = Registry::for_gun(&gun, &args.insecure_registry)?;

    // What to fetch: digest, length cap, whether the length is signed, the vouching role.
    let (digest, limit, signed_length, role) = match &wanted {
        Wanted::Digest(digest) => (digest.clone(), MAX_MANIFEST_BYTES, None, None),
        Wanted::Tag(tag) if trust => {
            let (digest, length, role) = trusted_target(ctx, &gun, tag, pin).await?;
            compare_tag(&registry, &gun, tag, &digest, args.require_tag_match).await?;
            (digest, length, Some(length), Some(role))
        }
        Wanted::Tag(tag) => {
            eprintln!(
                "notar: warning: content trust is disabled: pulling {gun}:{tag} as the registry names it, without verifying a signature"
            );
            let (digest, size) = registry.resolve_tag(tag.as_str()).await?;
            (digest, size, None, None)
        }
    };

    let top = fetch_manifest(&registry, &digest, limit, signed_length).await?;
    let parsed = Manifest::parse(&top, &format!("manifest {digest}"))?;
    let (manifest_digest, manifest_bytes, manifest, chosen) = match parsed {
        Manifest::Index(index) => {
            let children = index.manifests();
            let child = children
                .iter()
                .find(|c| c.platform().as_ref().is_some_and(|p| platform.matches(p)))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "the image index {digest} has no manifest for {platform}; it has {}",
                        platforms_of(children)
                    ))
                })?;
            let (child_digest, child_size) = manifest::target(child)?;
            let bytes =
                fetch_manifest(&registry, &child_digest, child_size, Some(child_size)).await?;
            let what = format!("manifest {child_digest} of the index {digest}");
            let Manifest::Image(image) = Manifest::parse(&bytes, &what)? else {
                return Err(Error::Content {
                    what,
                    reason: "an index inside an index; notar pulls one level".into(),
                });
            };
            let blob = Blob {
                digest: child_digest.to_string(),
                size: child_size,
                reused: false,
            };
            (child_digest, bytes, image, Some((blob, child.clone())))
        }
        Manifest::Image(image) => (digest.clone(), top.clone(), image, None),
    };

    let staging = Staging::create(&output)?;
    staging.write_blob(&digest, &top)?;
    staging.write_blob(&manifest_digest, &manifest_bytes)?;
    let config = manifest.config();
    let (config_digest, config_size) = manifest::target(config)?;
    let mut config_reused = None;
    if chosen.is_none() {
        // A single image: its platform is in its config, fetched (and checked) first.
        let config_path = staging.blobs().join(config_digest.hex());
        let old = output.join("blobs/sha256").join(config_digest.hex());
        let reused = reuse(&old, &config_digest, config_size, &config_path).await;
        if !reused {
            registry
                .get_blob(&config_digest, config_size, &config_path, |_| {})
                .await?;
        }
        config_reused = Some(reused);
        check_image_platform(&config_path, &config_digest, &platform, asked.is_some())?;
    }
    let mut blobs = fetch_blobs(&registry, &manifest, &staging.blobs(), &output).await?;
    if let Some(reused) = config_reused {
        for blob in blobs
            .iter_mut()
            .filter(|b| b.digest == config_digest.as_str())
        {
            blob.reused = reused;
        }
    }

    let mut annotations = std::collections::HashMap::new();
    if let Wanted::Tag(tag) = &wanted {
        annotations.insert(REF_NAME.to_owned(), tag.as_str().to_owned());
    }
    annotations.insert(PULLED_FROM.to_owned(), gun.to_string());
    let mut entry = DescriptorBuilder::default()
        .media_type(MediaType::from(
            Manifest::Image(manifest.clone()).media_type().as_str(),
        ))
        .digest(
            manifest_digest
                .as_str()
                .parse::<oci_spec::image::Digest>()
                .map_err(|e| Error::Content {
                    what: format!("digest {manifest_digest}"),
                    reason: e.to_string(),
                })?,
        )
        .size(manifest_bytes.len() as u64)
        .annotations(annotations)
        .build()
        .map_err(|e| Error::Content {
            what: "the pulled layout's index.json".into(),
            reason: e.to_string(),
        })?;
    if let Some((_, child)) = &chosen {
        entry.set_platform(child.platform().clone().or_else(|| {
            PlatformBuilder::default()
                .os(platform.os.as_str())
                .architecture(platform.architecture.as_str())
                .build()
                .ok()
        }));
    }
    staging.finish(entry)?;
    staging.commit(&output)?;

    let report = Pulled {
        reference: args.reference.clone(),
        gun: gun.to_string(),
        tag: match &wanted {
            Wanted::Tag(tag) => Some(tag.to_string()),
            Wanted::Digest(_) => None,
        },
        digest: digest.to_string(),
        size: top.len() as u64,
        role: role.map(|r| r.to_string()),
        verified: trust || matches!(wanted, Wanted::Digest(_)),
        platform_manifest: chosen.map(|(blob, _)| blob),
        blobs,
        output: output.display().to_string(),
    };
    if ctx.json {
        print(&json_line(&report))
    } else {
        print(&format!(
            "Pulled {} ({digest}, {} blobs) into {}\n",
            args.reference,
            report.blobs.len(),
            output.display()
        ))
    }
}

/// The registry's tag against the signed digest. They differ while a push is between its
/// upload and its signature, or after the tag was moved: only the signed digest is ever
/// fetched, so the pull goes on, saying so, unless `require` asks for a refusal.
async fn compare_tag(
    registry: &Registry,
    gun: &Gun,
    tag: &Tag,
    signed: &OciDigest,
    require: bool,
) -> Result<(), Error> {
    let current = registry.lookup_tag(tag.as_str()).await?.map(|(d, _)| d);
    if current.as_ref() == Some(signed) {
        return Ok(());
    }
    let names = match &current {
        Some(other) => format!("the registry's tag names {other}"),
        None => "the registry has no such tag".to_owned(),
    };
    if require {
        return Err(Error::Content {
            what: format!("{gun}:{tag}"),
            reason: format!("{names}, but the signed digest is {signed} (--require-tag-match)"),
        });
    }
    eprintln!("notar: {gun}:{tag}: {names}; pulling the signed digest {signed}");
    Ok(())
}

/// A single image's platform, from its config, against the one asked for: an error when
/// `--platform` named another; a warning when this machine's platform is not the image's.
fn check_image_platform(
    config_path: &Path,
    config_digest: &OciDigest,
    want: &PlatformChoice,
    asked: bool,
) -> Result<(), Error> {
    let bytes = std::fs::read(config_path).map_err(Error::io("reading", config_path))?;
    let has = ConfigPlatform::parse(&bytes, &format!("config {config_digest}"))?;
    if want.matches_parts(&has.os, &has.architecture, has.variant.as_deref()) {
        return Ok(());
    }
    if asked {
        return Err(Error::Usage(format!(
            "the image is for {has} only (a single-platform image, not an index), not {want}"
        )));
    }
    eprintln!("notar: warning: the image is for {has}, and this machine is {want}");
    Ok(())
}

fn platforms_of(children: &[Descriptor]) -> String {
    let list: Vec<String> = children
        .iter()
        .filter_map(|c| c.platform().as_ref().map(show_platform))
        .collect();
    if list.is_empty() {
        "no platforms listed".into()
    } else {
        list.join(", ")
    }
}

fn parse_reference(input: &str) -> Result<(Gun, Wanted), Error> {
    if let Some((name, digest)) = input.split_once('@') {
        let gun = normalize_gun(name).map_err(|reason| Error::Reference {
            input: input.to_owned(),
            reason,
        })?;
        return Ok((gun, Wanted::Digest(OciDigest::parse(digest)?)));
    }
    let (reference, tag) = crate::reference::Reference::parse_tagged(input)?;
    Ok((reference.gun, Wanted::Tag(tag)))
}

/// The verified target of `tag` in Docker's order, with the role that signed it: the one
/// delegation walk of notar-tuf, so `trust resolve` names the same digest.
async fn trusted_target(
    ctx: &Context,
    gun: &Gun,
    tag: &Tag,
    pin: Option<&notar_tuf::KeyId>,
) -> Result<(OciDigest, u64, RoleName), Error> {
    let mut repo = Repository::open(ctx, gun, pin, Warnings::RootAndTargets).await?;
    let unsigned = || Error::Unsigned {
        gun: gun.clone(),
        tag: tag.to_string(),
    };
    let found = repo.find_target(tag.as_str()).await?.ok_or_else(unsigned)?;
    let digest = found.target.sha256_digest().ok_or_else(unsigned)?;
    Ok((
        OciDigest::from_sha256(digest),
        found.target.length,
        found.role,
    ))
}

/// A manifest by digest, at most `limit` bytes, checked against its digest and, when
/// signed, its exact length.
async fn fetch_manifest(
    registry: &Registry,
    digest: &OciDigest,
    limit: u64,
    signed_length: Option<u64>,
) -> Result<Vec<u8>, Error> {
    let (bytes, _) = registry.get_manifest(digest.as_str(), limit).await?;
    let what = || format!("manifest {digest} of {}", registry.name());
    if let Some(length) = signed_length
        && bytes.len() as u64 != length
    {
        return Err(Error::Content {
            what: what(),
            reason: format!("{} bytes, the signed length is {length}", bytes.len()),
        });
    }
    let got = OciDigest::of(&bytes);
    if &got != digest {
        return Err(Error::Content {
            what: what(),
            reason: format!("the registry sent content with digest {got}"),
        });
    }
    Ok(bytes)
}

/// Fetches (or reuses from `previous`) every blob of `manifest` into `dir`, concurrently;
/// one already in `dir` (the config of a single image) is kept.
async fn fetch_blobs(
    registry: &Registry,
    manifest: &ImageManifest,
    dir: &Path,
    previous: &Path,
) -> Result<Vec<Blob>, Error> {
    // Progress bars on stderr when it is a terminal; nothing otherwise.
    let bars = if std::io::stderr().is_terminal() {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    };
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_DOWNLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen = BTreeSet::new();
    for blob in manifest::blobs(manifest) {
        let (digest, size) = manifest::target(blob)?;
        if !seen.insert(digest.clone()) {
            continue;
        }
        let registry = registry.clone();
        let final_path = dir.join(digest.hex());
        let old = previous.join("blobs/sha256").join(digest.hex());
        let limit = limit.clone();
        let bar = bars.add(ProgressBar::new(size).with_style(style.clone()));
        bar.set_prefix(digest.hex()[..12].to_owned());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            if final_path.is_file() {
                bar.finish();
                return Ok(Blob {
                    digest: digest.to_string(),
                    size,
                    reused: false,
                });
            }
            if reuse(&old, &digest, size, &final_path).await {
                bar.finish_with_message("reused");
                return Ok(Blob {
                    digest: digest.to_string(),
                    size,
                    reused: true,
                });
            }
            let partial = final_path.with_extension("partial");
            let fetched = registry
                .get_blob(&digest, size, &partial, |n| bar.inc(n))
                .await;
            bar.finish();
            fetched?;
            tokio::fs::rename(&partial, &final_path)
                .await
                .map_err(Error::io("renaming", &partial))?;
            Ok::<_, Error>(Blob {
                digest: digest.to_string(),
                size,
                reused: false,
            })
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(Error::Task)? {
            Ok(blob) => done.push(blob),
            Err(e) => {
                // Stop the others and let them go before the staging directory is removed.
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return Err(e);
            }
        }
    }
    done.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(done)
}

/// Copies a blob from an earlier pull if it has the right size and digest.
async fn reuse(old: &Path, digest: &OciDigest, size: u64, to: &Path) -> bool {
    let (old, to, digest) = (old.to_path_buf(), to.to_path_buf(), digest.clone());
    tokio::task::spawn_blocking(move || {
        let Ok(meta) = std::fs::metadata(&old) else {
            return false;
        };
        if meta.len() != size {
            return false;
        }
        let Ok(mut file) = std::fs::File::open(&old) else {
            return false;
        };
        let mut hasher = Hasher::default();
        if std::io::copy(&mut file, &mut hasher).is_err() {
            return false;
        }
        hasher.finish() == digest && std::fs::copy(&old, &to).is_ok()
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_by_tag_and_digest() {
        let hex = "a".repeat(64);
        let (gun, wanted) =
            parse_reference(&format!("127.0.0.1:5000/app@sha256:{hex}")).expect("digest");
        assert_eq!(gun.as_str(), "127.0.0.1:5000/app");
        assert!(matches!(wanted, Wanted::Digest(d) if d.hex() == hex));
        let (_, wanted) = parse_reference("127.0.0.1:5000/app:v1").expect("tag");
        assert!(matches!(wanted, Wanted::Tag(t) if t.as_str() == "v1"));
        assert!(parse_reference("127.0.0.1:5000/app@sha256:xyz").is_err());
        assert!(parse_reference("127.0.0.1:5000/app").is_err());
    }
}
