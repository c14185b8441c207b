//! `notar push <oci-layout-dir> <gun>:<tag>`: uploads an OCI image layout to the registry
//! the GUN names, signs the tag with the digest and size of the bytes uploaded, and only
//! then points the registry's tag at that digest.
//!
//! So the tag never names an unsigned manifest, not even for a moment (a push with Docker's
//! content trust tags first and signs after, docker/cli#2721): until the signature is
//! stored, the manifest is in the registry by digest only. If signing fails (a wrong
//! passphrase, the trust server down), the tag stays where it was, and the message says how
//! to finish.
//!
//! Blobs stream from disk ([`Registry::stream_blob`]: hashed as they are read, in chunks
//! of bounded size, a few at once), so memory stays flat whatever the size of a layer.
//! A blob the registry has is skipped; one in another repository of the same registry
//! (`--mount-from`, or the repository a `notar pull` wrote the layout from) is mounted.
//! An index's manifests go up by digest before the index.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use notar_tuf::KeyId;
use oci_spec::image::ImageManifest;

use crate::commands::args::{LifetimeArgs, TrustDataArgs};
use crate::oci::layout::Layout;
use crate::oci::manifest::{self, Manifest};
use crate::oci::registry::Upload;
use crate::oci::{OciDigest, Registry};
use crate::reference::Reference;
use crate::trust::publish::sign_tags;
use crate::{Context, Error};

/// Concurrent blob uploads; each holds at most one chunk in memory.
const PARALLEL_UPLOADS: usize = 4;

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

    /// Mount blobs the registry holds in this other repository of it (`team/base`)
    /// instead of uploading them
    #[arg(long, value_name = "REPOSITORY")]
    pub mount_from: Vec<String>,

    #[command(flatten)]
    pub lifetimes: LifetimeArgs,

    #[command(flatten)]
    pub trust: TrustDataArgs,
}

/// How the blobs of a push got there.
#[derive(Debug, Default)]
struct Moved {
    uploaded: usize,
    mounted: usize,
    present: usize,
    bytes: u64,
}

pub async fn run(ctx: &Context, args: PushArgs, pin: Option<&KeyId>) -> Result<(), Error> {
    let (reference, tag) = Reference::parse_tagged(&args.reference)?;
    let registry = Registry::for_gun(&reference.gun, &args.insecure_registry)?;
    let layout = Layout::open(&args.layout)?;
    let top = layout.pick(tag.as_str())?;
    let (digest, size) = manifest::target(top)?;
    let bytes = layout.small_blob(&digest, size)?;
    let media_type = Manifest::parse(&bytes, &format!("manifest {digest} in the layout"))?;
    let mut sources: Vec<String> = args.mount_from.clone();
    if let Some(from) = Layout::pulled_from(top)
        && let Some((host, repository)) = from.split_once('/')
        && host == registry.host()
        && repository != registry.repository()
    {
        sources.push(repository.to_owned());
    }

    let mut images: Vec<(OciDigest, Vec<u8>, ImageManifest)> = Vec::new();
    match &media_type {
        Manifest::Index(index) => {
            for child in index.manifests() {
                let (child_digest, child_size) = manifest::target(child)?;
                let child_bytes = layout.small_blob(&child_digest, child_size)?;
                let what = format!("manifest {child_digest} in the layout");
                match Manifest::parse(&child_bytes, &what)? {
                    Manifest::Image(image) => images.push((child_digest, child_bytes, image)),
                    Manifest::Index(_) => {
                        return Err(Error::Usage(format!(
                            "{what} is an index inside an index; notar pushes one level"
                        )));
                    }
                }
            }
        }
        Manifest::Image(image) => images.push((digest.clone(), Vec::new(), image.clone())),
    }
    let moved = push_blobs(&registry, &layout, &images, &sources).await?;
    for (child_digest, child_bytes, image) in &images {
        if *child_digest != digest {
            let media = Manifest::Image(image.clone()).media_type();
            registry
                .put_manifest(child_digest.as_str(), &media, child_bytes.clone().into())
                .await?;
        }
    }
    let media = media_type.media_type();
    let bytes = bytes::Bytes::from(bytes);
    registry
        .put_manifest(digest.as_str(), &media, bytes.clone())
        .await?;
    eprintln!(
        "notar: pushed {}@{digest} ({size} bytes; blobs: {} uploaded, {} bytes; {} mounted; {} already there); signing {tag}",
        registry.name(),
        moved.uploaded,
        moved.bytes,
        moved.mounted,
        moved.present,
    );
    let target = notar_tuf::TargetFile::sha256(size, digest.sha256());
    let signed = sign_tags(
        ctx,
        &reference.gun,
        &[(tag.clone(), target)],
        None,
        args.lifetimes.lifetimes(),
        pin,
    )
    .await;
    let signature = match signed {
        Ok(signature) => signature,
        Err(e) => {
            eprintln!(
                "notar: the tag {tag} was left where it was: {}@{digest} is in the registry, unsigned. \
             Fix the cause and run this push again (nothing is uploaded twice), or sign it with \
             `notar trust sign {} --digest {digest} --size {size}` and push again to move the tag",
                registry.name(),
                args.reference
            );
            return Err(e);
        }
    };
    registry.put_manifest(tag.as_str(), &media, bytes).await?;
    eprintln!(
        "notar: signed {tag}; {}:{tag} now names {digest}",
        registry.name()
    );
    crate::commands::sign::report(ctx, &reference.gun, &[(tag, digest, size)], signature)
}

/// Gets the config and layers of every image into the registry, a few at once: skipped
/// when it has them, mounted from `sources` when it can, streamed from disk otherwise.
async fn push_blobs(
    registry: &Registry,
    layout: &Layout,
    images: &[(OciDigest, Vec<u8>, ImageManifest)],
    sources: &[String],
) -> Result<Moved, Error> {
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_UPLOADS));
    let sources = Arc::new(sources.to_vec());
    let mut seen = BTreeSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (_, _, image) in images {
        for blob in manifest::blobs(image) {
            let (digest, size) = manifest::target(blob)?;
            if !seen.insert(digest.clone()) {
                continue;
            }
            let path = layout.blob_path(&digest);
            let registry = registry.clone();
            let limit = limit.clone();
            let sources = sources.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                push_blob(&registry, &digest, size, &path, &sources).await
            });
        }
    }
    let mut moved = Moved::default();
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(Error::Task)? {
            Ok(How::Present) => moved.present += 1,
            Ok(How::Mounted) => moved.mounted += 1,
            Ok(How::Uploaded(n)) => {
                moved.uploaded += 1;
                moved.bytes += n;
            }
            Err(e) => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return Err(e);
            }
        }
    }
    Ok(moved)
}

enum How {
    Present,
    Mounted,
    Uploaded(u64),
}

async fn push_blob(
    registry: &Registry,
    digest: &OciDigest,
    size: u64,
    path: &std::path::Path,
    sources: &[String],
) -> Result<How, Error> {
    if registry.has_blob(digest).await? {
        return Ok(How::Present);
    }
    let mut session = None;
    for (i, from) in sources.iter().enumerate() {
        match registry.start_upload(Some((digest, from))).await? {
            Upload::Mounted => return Ok(How::Mounted),
            // Not there, or not ours to read: the registry opened a session instead. The
            // last one takes the upload; the others are given back.
            Upload::Session(url) if i + 1 == sources.len() => session = Some(url),
            Upload::Session(url) => registry.cancel_upload(&url).await,
        }
    }
    let session = match session {
        Some(url) => url,
        None => match registry.start_upload(None).await? {
            Upload::Session(url) => url,
            Upload::Mounted => return Ok(How::Mounted),
        },
    };
    registry
        .stream_blob(digest, size, path, session, |_| {})
        .await?;
    Ok(How::Uploaded(size))
}
