//! OCI image layouts on disk: `oci-layout`, `index.json` and `blobs/sha256/`.
//!
//! [`Layout`] reads one for `push`: the index, a manifest picked by its `ref.name`
//! annotation, blobs by digest (small ones whole and checked, large ones as paths that the
//! registry client streams and hashes). [`Staging`] writes one for `pull`: in a directory
//! next to the output, renamed into place only once complete, so a failed pull leaves the
//! output as it was.

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};

use crate::Error;
use crate::oci::digest::{Hasher, OciDigest};

/// The annotation that names a manifest's tag in an image layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The annotation `notar pull` leaves on the manifest it wrote: the repository it came
/// from, so that a push of the same layout to that registry mounts its blobs from there
/// instead of uploading them.
pub const PULLED_FROM: &str = "dev.notar.pulled-from";

/// An OCI image layout on disk, read-only.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    index: ImageIndex,
}

impl Layout {
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let marker = dir.join("oci-layout");
        if !marker.is_file() {
            return Err(Error::Usage(format!(
                "{} is not an OCI image layout: it has no oci-layout file",
                dir.display()
            )));
        }
        let path = dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| Error::Content {
            what: path.display().to_string(),
            reason: format!("not an OCI image index: {e}"),
        })?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            index,
        })
    }

    /// The manifest for `tag`: the one annotated with it, else the only one.
    pub fn pick(&self, tag: &str) -> Result<&Descriptor, Error> {
        let manifests = self.index.manifests();
        let named = manifests.iter().find(|d| ref_name(d) == Some(tag));
        match (named, manifests.as_slice()) {
            (Some(d), _) => Ok(d),
            (None, [only]) => Ok(only),
            _ => Err(Error::Usage(format!(
                "{}: index.json lists {} manifests and none is named {tag} (names: {})",
                self.dir.display(),
                manifests.len(),
                manifests
                    .iter()
                    .filter_map(ref_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Where blob `digest` is.
    pub fn blob_path(&self, digest: &OciDigest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// A small blob (a manifest), read whole, refused unless it is `size` bytes with
    /// `digest`.
    pub fn small_blob(&self, digest: &OciDigest, size: u64) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest);
        let length = std::fs::metadata(&path)
            .map_err(Error::io("reading", &path))?
            .len();
        if length != size {
            return Err(Error::Usage(format!(
                "{}: {length} bytes, its descriptor says {size}",
                path.display()
            )));
        }
        let limit = crate::oci::registry::MAX_MANIFEST_BYTES;
        if size > limit {
            return Err(Error::Usage(format!(
                "{}: a manifest of {size} bytes, more than the {limit} registries take",
                path.display()
            )));
        }
        let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
        let mut hasher = Hasher::default();
        hasher.update(&bytes);
        if &hasher.finish() != digest {
            return Err(Error::Usage(format!(
                "{}: the content does not have digest {digest}",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// Repositories the manifest `descriptor` was pulled from ([`PULLED_FROM`]).
    pub fn pulled_from(descriptor: &Descriptor) -> Option<&str> {
        descriptor
            .annotations()
            .as_ref()
            .and_then(|a| a.get(PULLED_FROM))
            .map(String::as_str)
    }
}

fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// Refuses an output that exists and is neither empty nor an OCI layout, before any work.
pub fn check_output(output: &Path) -> Result<(), Error> {
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

/// A directory next to the output where a layout is assembled; removed unless committed.
#[derive(Debug)]
pub struct Staging {
    pub dir: PathBuf,
    committed: bool,
}

impl Staging {
    pub fn create(output: &Path) -> Result<Self, Error> {
        let dir = sibling(output, "pull");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(Error::io("creating", &dir))?;
        Ok(Staging {
            dir,
            committed: false,
        })
    }

    pub fn blobs(&self) -> PathBuf {
        self.dir.join("blobs/sha256")
    }

    pub fn write_blob(&self, digest: &OciDigest, bytes: &[u8]) -> Result<(), Error> {
        write_file(&self.blobs().join(digest.hex()), bytes)
    }

    /// Writes `index.json` with the one `entry`, and `oci-layout`.
    pub fn finish(&self, entry: Descriptor) -> Result<(), Error> {
        let index = oci_spec::image::ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(vec![entry])
            .build()
            .map_err(|e| Error::Content {
                what: "the pulled layout's index.json".into(),
                reason: e.to_string(),
            })?;
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::Content {
            what: "the pulled layout's index.json".into(),
            reason: e.to_string(),
        })?;
        write_file(&self.dir.join("index.json"), &bytes)?;
        write_file(
            &self.dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
    }

    /// Moves the layout to `output`, replacing an earlier layout there.
    pub fn commit(mut self, output: &Path) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_with(blob: &[u8]) -> (tempfile::TempDir, Layout, OciDigest) {
        let dir = tempfile::tempdir().expect("temp dir");
        let digest = OciDigest::of(blob);
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).expect("blobs");
        std::fs::write(dir.path().join("blobs/sha256").join(digest.hex()), blob).expect("blob");
        std::fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("marker");
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{},"annotations":{{"{REF_NAME}":"v1"}}}}]}}"#,
            blob.len()
        );
        std::fs::write(dir.path().join("index.json"), index).expect("index");
        let layout = Layout::open(dir.path()).expect("layout");
        (dir, layout, digest)
    }

    /// A manifest is read only when its size and digest are the descriptor's.
    #[test]
    fn small_blobs_are_checked_against_their_descriptor() {
        let (dir, layout, digest) = layout_with(b"{\"a\":1}");
        assert_eq!(layout.small_blob(&digest, 7).expect("read"), b"{\"a\":1}");
        let err = layout.small_blob(&digest, 8).expect_err("wrong size");
        assert!(
            err.to_string().contains("7 bytes, its descriptor says 8"),
            "{err}"
        );
        std::fs::write(layout.blob_path(&digest), b"{\"a\":2}").expect("alter");
        let err = layout.small_blob(&digest, 7).expect_err("wrong content");
        assert!(err.to_string().contains("does not have digest"), "{err}");
        assert_eq!(layout.pick("v1").expect("named").size(), 7);
        // The only manifest is the one to push, whatever its name.
        assert_eq!(layout.pick("v2").expect("the only one").size(), 7);
        drop(dir);
    }

    #[test]
    fn a_directory_without_the_marker_is_not_a_layout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = Layout::open(dir.path()).expect_err("no oci-layout");
        assert!(err.to_string().contains("no oci-layout file"), "{err}");
    }
}
