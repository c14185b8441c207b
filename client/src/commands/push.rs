//! `notar push <oci-layout-dir> <gun>:<tag>`: uploads an OCI image layout to the registry
//! the GUN names (blobs the registry already has are skipped; the manifests of an image
//! index go up by digest before the index), signs the tag with the digest and size of the
//! bytes uploaded, and only then points the registry's tag at that digest.
//!
//! So the tag never names an unsigned manifest, not even for a moment (a push with Docker's
//! content trust tags first and signs after, docker/cli#2721): until the signature is
//! stored, the manifest is in the registry by digest only. If signing fails (a wrong
//! passphrase, the trust server down), the tag stays where it was, and the message says how
//! to finish.

use std::path::{Path, PathBuf};

use clap::Args;
use notar_tuf::Gun;
use notar_tuf::names::Tag;
use serde::Deserialize;

use crate::cli::SignArgs;
use crate::reference::Reference;
use crate::registry::{OciDigest, Registry};
use crate::{Context, Error};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`)
    #[arg(value_name = "OCI-LAYOUT-DIR")]
    pub layout: PathBuf,

    /// Where to push and what to sign: <gun>:<tag>
    #[arg(value_name = "GUN:TAG")]
    pub reference: String,

    /// Reach this registry host over plain HTTP (loopback hosts always are)
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Lifetime of the new targets metadata, in days
    #[arg(long, value_name = "DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub targets_lifetime: u32,

    /// Lifetime of root metadata when this signature creates the repository, in days
    #[arg(long, value_name = "DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub root_lifetime: u32,
}

/// An OCI descriptor, as much of it as push and pull need.
#[derive(Clone, Debug, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image manifest or an image index.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

impl Manifest {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::Content {
            what: what.to_owned(),
            reason: format!("not an OCI manifest or index: {e}"),
        })
    }

    /// The media type to store it under: its own `mediaType`, else by shape.
    pub fn media_type(&self) -> String {
        self.media_type.clone().unwrap_or_else(|| {
            if self.manifests.is_some() {
                "application/vnd.oci.image.index.v1+json".into()
            } else {
                "application/vnd.oci.image.manifest.v1+json".into()
            }
        })
    }

    /// Config and layers.
    pub fn blobs(&self) -> Vec<Descriptor> {
        self.config.iter().chain(&self.layers).cloned().collect()
    }
}

pub async fn run(ctx: &Context, args: PushArgs) -> Result<(), Error> {
    let (reference, tag) = Reference::parse_tagged(&args.reference)?;
    let registry = Registry::for_gun(&reference.gun, &args.insecure_registry)?;
    let layout = Layout::open(&args.layout)?;
    let top = layout.pick(&tag)?;
    let digest = OciDigest::parse(&top.digest)?;
    let bytes = layout.blob(&digest)?;
    let manifest = Manifest::parse(&bytes, &format!("manifest {digest} in the layout"))?;
    let mut uploaded = 0usize;
    if let Some(children) = &manifest.manifests {
        for child in children {
            let child_digest = OciDigest::parse(&child.digest)?;
            let child_bytes = layout.blob(&child_digest)?;
            let child_manifest = Manifest::parse(
                &child_bytes,
                &format!("manifest {child_digest} in the layout"),
            )?;
            uploaded += push_blobs(&registry, &layout, &child_manifest).await?;
            registry
                .put_manifest(
                    child_digest.as_str(),
                    &child_manifest.media_type(),
                    child_bytes,
                )
                .await?;
        }
    } else {
        uploaded += push_blobs(&registry, &layout, &manifest).await?;
    }
    let size = bytes.len() as u64;
    let media_type = manifest.media_type();
    registry
        .put_manifest(digest.as_str(), &media_type, bytes.clone())
        .await?;
    eprintln!(
        "notar: pushed {}@{digest} ({size} bytes; {uploaded} blobs uploaded); signing {tag}",
        registry.name()
    );
    let sign = SignArgs {
        reference: args.reference.clone(),
        digest: Some(digest.to_string()),
        size: Some(size),
        insecure_registry: args.insecure_registry.clone(),
        role: None,
        targets_lifetime: args.targets_lifetime,
        root_lifetime: args.root_lifetime,
    };
    if let Err(e) = crate::commands::sign::run(ctx, sign, None).await {
        eprintln!(
            "notar: the tag {tag} was left where it was: {}@{digest} is in the registry, unsigned. \
             Fix the cause and run this push again (nothing is uploaded twice), or sign it with \
             `notar trust sign {} --digest {digest} --size {size}` and push again to move the tag",
            registry.name(),
            args.reference
        );
        return Err(e);
    }
    registry
        .put_manifest(tag.as_str(), &media_type, bytes)
        .await?;
    eprintln!("notar: {}:{tag} now names {digest}", registry.name());
    Ok(())
}

/// Uploads the config and layers the registry does not have; returns how many went up.
async fn push_blobs(
    registry: &Registry,
    layout: &Layout,
    manifest: &Manifest,
) -> Result<usize, Error> {
    let mut uploaded = 0;
    for blob in manifest.blobs() {
        let digest = OciDigest::parse(&blob.digest)?;
        if registry.has_blob(&digest).await? {
            continue;
        }
        let bytes = layout.blob(&digest)?;
        registry.put_blob(&digest, bytes).await?;
        uploaded += 1;
    }
    Ok(uploaded)
}

/// The digest and size of the manifest `tag` names in the registry of `gun`.
pub async fn registry_digest(
    gun: &Gun,
    tag: &Tag,
    insecure: &[String],
) -> Result<([u8; 32], u64), Error> {
    let registry = Registry::for_gun(gun, insecure)?;
    let (digest, size) = registry.resolve_tag(tag.as_str()).await?;
    Ok((crate::commands::parse_digest(digest.as_str())?, size))
}

/// An OCI image layout on disk, read-only.
struct Layout {
    dir: PathBuf,
    index: Manifest,
}

impl Layout {
    fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
        let index = Manifest::parse(&bytes, &format!("{}", path.display()))?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            index,
        })
    }

    /// The manifest to push: the one annotated with `tag`, else the only one.
    fn pick(&self, tag: &Tag) -> Result<Descriptor, Error> {
        let manifests = self.index.manifests.clone().unwrap_or_default();
        let named = manifests.iter().find(|d| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                .and_then(|v| v.as_str())
                == Some(tag.as_str())
        });
        match (named, manifests.as_slice()) {
            (Some(d), _) => Ok(d.clone()),
            (None, [only]) => Ok(only.clone()),
            _ => Err(Error::Usage(format!(
                "{}: index.json lists {} manifests and none is named {tag}",
                self.dir.display(),
                manifests.len()
            ))),
        }
    }

    /// The bytes of a blob, checked against its digest.
    fn blob(&self, digest: &OciDigest) -> Result<Vec<u8>, Error> {
        let path = self.dir.join("blobs/sha256").join(digest.hex());
        let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
        if &OciDigest::of(&bytes) != digest {
            return Err(Error::Usage(format!(
                "{}: the content does not have digest {digest}",
                path.display()
            )));
        }
        Ok(bytes)
    }
}
