//! Image manifests and image indexes, as oci-spec types.
//!
//! oci-spec's `ImageManifest` and `ImageIndex` also read Docker's schema 2 manifests and
//! manifest lists (same fields, other media types). What oci-spec does not settle is which
//! of the two some bytes are: [`Manifest::parse`] decides by `mediaType`, else by shape.
//! The platform a user asks for is [`PlatformChoice`], three strings, compared with the
//! platforms of an index or of an image's config.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, Platform};
use serde::Deserialize;

use crate::Error;
use crate::oci::digest::OciDigest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Manifest media types this client asks registries for.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// An image manifest or an image index.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a few per command, never in a collection"
)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// Just enough to tell the two apart.
#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
}

impl Manifest {
    /// `what` names the bytes in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, Error> {
        let bad = |e: serde_json::Error| Error::Content {
            what: what.to_owned(),
            reason: format!("not an OCI image manifest or index: {e}"),
        };
        let shape: Shape = serde_json::from_slice(bytes).map_err(bad)?;
        let index = match shape.media_type.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            _ => shape.manifests.is_some(),
        };
        if index {
            serde_json::from_slice(bytes)
                .map(Manifest::Index)
                .map_err(bad)
        } else {
            serde_json::from_slice(bytes)
                .map(Manifest::Image)
                .map_err(bad)
        }
    }

    /// The media type to store it under: its own `mediaType`, else OCI's by shape.
    pub fn media_type(&self) -> String {
        let (own, default) = match self {
            Manifest::Image(m) => (m.media_type(), OCI_MANIFEST),
            Manifest::Index(i) => (i.media_type(), OCI_INDEX),
        };
        own.as_ref()
            .map_or_else(|| default.to_owned(), ToString::to_string)
    }
}

/// An image's config and layers, in order.
pub fn blobs(manifest: &ImageManifest) -> Vec<&Descriptor> {
    std::iter::once(manifest.config())
        .chain(manifest.layers())
        .collect()
}

/// A descriptor's digest and size, the digest narrowed to sha256.
pub fn target(descriptor: &Descriptor) -> Result<(OciDigest, u64), Error> {
    Ok((
        OciDigest::from_spec(descriptor.digest())?,
        descriptor.size(),
    ))
}

/// A platform as given on the command line: `os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformChoice {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl PlatformChoice {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut parts = text.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant, None)
                if !os.is_empty() && !arch.is_empty() && variant != Some("") =>
            {
                Ok(PlatformChoice {
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
    pub fn this_machine() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        PlatformChoice {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// Whether `platform` is this one. A choice without a variant takes any variant; one
    /// with a variant takes that variant only (`arm64` without one counts as `v8`).
    pub fn matches(&self, platform: &Platform) -> bool {
        let os = platform.os().to_string();
        let arch = platform.architecture().to_string();
        self.matches_parts(&os, &arch, platform.variant().as_deref())
    }

    pub fn matches_parts(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let normal = |v: Option<&str>| match (arch, v) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.map(str::to_owned),
        };
        self.os == os
            && self.architecture == arch
            && (self.variant.is_none() || normal(self.variant.as_deref()) == normal(variant))
    }
}

impl std::fmt::Display for PlatformChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// `os/arch[/variant]` of a platform, for messages.
pub fn show_platform(platform: &Platform) -> String {
    match platform.variant() {
        Some(v) => format!("{}/{}/{v}", platform.os(), platform.architecture()),
        None => format!("{}/{}", platform.os(), platform.architecture()),
    }
}

/// The platform fields of an image config (`os`, `architecture`, `variant`).
#[derive(Debug, Deserialize)]
pub struct ConfigPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl ConfigPlatform {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::Content {
            what: what.to_owned(),
            reason: format!("not an image config: {e}"),
        })
    }
}

impl std::fmt::Display for ConfigPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = PlatformChoice::parse("linux/arm64/v8").expect("platform");
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches_parts("linux", "arm64", None));
        assert!(!p.matches_parts("linux", "amd64", None));
        let any = PlatformChoice::parse("linux/arm").expect("platform");
        assert!(any.matches_parts("linux", "arm", Some("v7")));
        let v6 = PlatformChoice::parse("linux/arm/v6").expect("platform");
        assert!(!v6.matches_parts("linux", "arm", Some("v7")));
        for bad in ["linux", "a/b/c/d", "linux/", "/amd64", "linux/arm/"] {
            assert!(PlatformChoice::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests_and_indexes_are_told_apart() {
        let config = format!(
            r#"{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":2}}"#,
            "a".repeat(64)
        );
        let image = format!(r#"{{"schemaVersion":2,"config":{config},"layers":[]}}"#);
        assert!(matches!(
            Manifest::parse(image.as_bytes(), "m").expect("image"),
            Manifest::Image(_)
        ));
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"sha256:{}","size":3,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            "b".repeat(64)
        );
        let parsed = Manifest::parse(list.as_bytes(), "l").expect("list");
        assert_eq!(parsed.media_type(), DOCKER_LIST);
        let Manifest::Index(index) = parsed else {
            panic!("an index");
        };
        assert_eq!(index.manifests().len(), 1);
        let err = Manifest::parse(br#"{"schemaVersion":2}"#, "x").expect_err("no config");
        assert!(
            err.to_string().contains("not an OCI image manifest"),
            "{err}"
        );
    }
}
