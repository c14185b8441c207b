//! `notar pull <gun>:<tag>` and `notar pull <gun>@sha256:<hex>`: an enforced pull into an
//! OCI image layout.
//!
//! By tag, the digest and length come only from verified trust data, found by notar-tuf's
//! delegation walk in Docker's order: the `targets/releases` subtree, then `targets`, then
//! the other delegations, each trusted for the tag through its delegation paths, a
//! terminating delegation ending the search. The registry's tag must name the
//! signed digest too (a tag moved after signing is refused). The manifest is fetched by
//! digest with the signed length as a cap (more is refused before it is read in full) and
//! its sha256 checked before it is parsed; for an image index the platform's manifest is
//! fetched by digest and checked the same way. Blobs are fetched concurrently by digest,
//! hashed and counted while they stream into a staging directory next to the output, and
//! only a complete, verified layout is renamed into place: on any failure the output is
//! left as it was. Blobs a previous pull left in the output are reused when they verify.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use notar_tuf::names::Tag;
use notar_tuf::{Gun, RoleName};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::commands::push::{Descriptor, Manifest, Platform};
use crate::output::{json_line, print};
use crate::reference::normalize_gun;
use crate::registry::{MAX_MANIFEST_BYTES, OciDigest, Registry};
use crate::repo::{Repository, Warnings};
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

    /// Pull by tag without trust data (also NOTAR_CONTENT_TRUST=0); a warning says so
    #[arg(long)]
    pub disable_content_trust: bool,
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

pub async fn run(ctx: &Context, args: PullArgs) -> Result<(), Error> {
    let (gun, wanted) = parse_reference(&args.reference)?;
    let trust = !(args.disable_content_trust
        || std::env::var("NOTAR_CONTENT_TRUST")
            .is_ok_and(|v| matches!(v.as_str(), "0" | "false" | "no" | "off")));
    let platform = match &args.platform {
        Some(text) => parse_platform(text)?,
        None => this_platform(),
    };
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
            let (digest, length, role) = trusted_target(ctx, &gun, tag).await?;
            let (current, _) = registry.resolve_tag(tag.as_str()).await?;
            if current != digest {
                return Err(Error::Content {
                    what: format!("{gun}:{tag}"),
                    reason: format!(
                        "the registry's tag names {current}, but the signed digest is {digest}"
                    ),
                });
            }
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
    let (manifest_digest, manifest_bytes, manifest, platform_manifest) = match &parsed.manifests {
        Some(children) => {
            let child = choose_platform(children, &platform).ok_or_else(|| {
                Error::Usage(format!(
                    "the image index {digest} has no manifest for {}; it has {}",
                    show_platform(&platform),
                    children
                        .iter()
                        .filter_map(|c| c.platform.as_ref().map(show_platform))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let child_digest = OciDigest::parse(&child.digest)?;
            let bytes =
                fetch_manifest(&registry, &child_digest, child.size, Some(child.size)).await?;
            let manifest = Manifest::parse(&bytes, &format!("manifest {child_digest}"))?;
            let blob = Blob {
                digest: child_digest.to_string(),
                size: child.size,
                reused: false,
            };
            (child_digest, bytes, manifest, Some(blob))
        }
        None => (digest.clone(), top.clone(), parsed, None),
    };
    if manifest.config.is_none() {
        return Err(Error::Content {
            what: format!("manifest {manifest_digest}"),
            reason: "an image manifest without a config".into(),
        });
    }

    let staging = Staging::create(&output)?;
    let blobs_dir = staging.dir.join("blobs/sha256");
    write_file(&blobs_dir.join(digest.hex()), &top)?;
    write_file(&blobs_dir.join(manifest_digest.hex()), &manifest_bytes)?;
    let blobs = fetch_blobs(&registry, &manifest.blobs(), &blobs_dir, &output).await?;

    let mut annotations = serde_json::Map::new();
    if let Wanted::Tag(tag) = &wanted {
        annotations.insert(
            "org.opencontainers.image.ref.name".into(),
            tag.as_str().into(),
        );
    }
    let mut entry = serde_json::json!({
        "mediaType": manifest.media_type(),
        "digest": manifest_digest.as_str(),
        "size": manifest_bytes.len(),
    });
    if !annotations.is_empty() {
        entry["annotations"] = annotations.into();
    }
    if platform_manifest.is_some() {
        entry["platform"] =
            serde_json::json!({"os": platform.os, "architecture": platform.architecture});
    }
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [entry] });
    write_file(
        &staging.dir.join("index.json"),
        serde_json::to_string(&index).unwrap_or_default().as_bytes(),
    )?;
    write_file(
        &staging.dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
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
        platform_manifest,
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
) -> Result<(OciDigest, u64, RoleName), Error> {
    let mut repo = Repository::open(ctx, gun, None, Warnings::RootAndTargets).await?;
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

/// Fetches (or reuses from `previous`) every blob into `dir`, concurrently.
async fn fetch_blobs(
    registry: &Registry,
    blobs: &[Descriptor],
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
    for blob in blobs {
        let digest = OciDigest::parse(&blob.digest)?;
        if !seen.insert(digest.clone()) {
            continue;
        }
        let size = blob.size;
        let registry = registry.clone();
        let final_path = dir.join(digest.hex());
        let old = previous.join("blobs/sha256").join(digest.hex());
        let limit = limit.clone();
        let bar = bars.add(ProgressBar::new(size).with_style(style.clone()));
        bar.set_prefix(digest.hex()[..12].to_owned());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
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
        let mut hasher = Sha256::new();
        if std::io::copy(&mut file, &mut hasher).is_err() {
            return false;
        }
        OciDigest::from_sha256(hasher.finalize().into()) == digest
            && std::fs::copy(&old, &to).is_ok()
    })
    .await
    .unwrap_or(false)
}

/// Refuses an output that exists and is neither empty nor an OCI layout, before any work.
fn check_output(output: &Path) -> Result<(), Error> {
    match std::fs::read_dir(output) {
        Ok(mut entries) => {
            if entries.next().is_none() || output.join("oci-layout").is_file() {
                Ok(())
            } else {
                Err(Error::Usage(format!(
                    "{} exists and is not an OCI image layout; choose another --output",
                    output.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("reading", output)(e)),
    }
}

/// A directory next to the output where the layout is assembled; removed unless committed.
#[derive(Debug)]
struct Staging {
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    fn create(output: &Path) -> Result<Self, Error> {
        let dir = sibling(output, "pull");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(Error::io("creating", &dir))?;
        Ok(Staging {
            dir,
            committed: false,
        })
    }

    /// Moves the verified layout to `output`, replacing an earlier layout there.
    fn commit(mut self, output: &Path) -> Result<(), Error> {
        let old = sibling(output, "old");
        let had_old = output.exists();
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(output, &old).map_err(Error::io("moving aside", output))?;
        }
        if let Err(e) = std::fs::rename(&self.dir, output) {
            if had_old {
                let _ = std::fs::rename(&old, output);
            }
            return Err(Error::io("moving the pulled layout to", output)(e));
        }
        self.committed = true;
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // The file write of an aborted download runs on tokio's blocking pool and may still
        // create a file while the directory is being removed (then removal fails with "not
        // empty"): try again for a moment.
        for _ in 0..100 {
            match std::fs::remove_dir_all(&self.dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ => return,
            }
        }
    }
}

/// `<parent>/.<name>.notar-<what>-<pid>`: on the same file system as the output.
fn sibling(output: &Path, what: &str) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "layout".into());
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.notar-{what}-{}", std::process::id()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(Error::io("writing", path))
}

fn parse_platform(text: &str) -> Result<Platform, Error> {
    let mut parts = text.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(os), Some(arch), variant, None) if !os.is_empty() && !arch.is_empty() => {
            Ok(Platform {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant: variant.map(str::to_owned),
            })
        }
        _ => Err(Error::Usage(format!(
            "invalid platform {text:?}: expected os/arch[/variant], e.g. linux/amd64"
        ))),
    }
}

/// This machine's platform in OCI's names.
fn this_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        os: std::env::consts::OS.to_owned(),
        architecture: architecture.to_owned(),
        variant: None,
    }
}

fn choose_platform<'a>(children: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    children.iter().find(|c| {
        c.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && p.architecture == want.architecture
                && (want.variant.is_none() || p.variant == want.variant)
        })
    })
}

fn show_platform(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
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

    #[test]
    fn platforms() {
        let p = parse_platform("linux/arm64/v8").expect("platform");
        assert_eq!(show_platform(&p), "linux/arm64/v8");
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("a/b/c/d").is_err());
    }
}
