//! A real OCI registry for tests (Debian's `docker-registry`, the CNCF distribution
//! registry) on a free loopback port with a temporary storage directory, and test images
//! built in code as OCI image layouts: random layers, a config, a manifest, and a
//! two-platform image index.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The registry binary `.ci/run` installs.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The token auth of a registry: where tokens come from, and who may sign them.
#[derive(Clone, Debug)]
pub struct RegistryTokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// PEM bundle of the certificates whose keys sign tokens.
    pub bundle: PathBuf,
}

/// A running registry; killed on drop.
#[derive(Debug)]
pub struct TestRegistry {
    /// `127.0.0.1:PORT`, the first component of GUNs on this registry.
    pub host: String,
    /// The storage root (`docker/registry/v2/…` below it).
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
    child: tokio::process::Child,
}

impl TestRegistry {
    /// Starts the registry and waits until `GET /v2/` answers.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts the registry with `auth: token` (Docker distribution bearer tokens) and
    /// waits until `GET /v2/` answers its challenge.
    pub async fn start_token(auth: &RegistryTokenAuth) -> Self {
        Self::start_with(Some(auth)).await
    }

    async fn start_with(auth: Option<&RegistryTokenAuth>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{}",
                storage.display(),
                auth.map(|a| format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    a.realm, a.service, a.issuer, a.bundle.display()
                ))
                .unwrap_or_default()
            ),
        )
        .expect("config");
        let child = tokio::process::Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry starts");
        let registry = TestRegistry {
            host,
            storage,
            _dir: dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        loop {
            let url = format!("http://{}/v2/", registry.host);
            if let Ok(r) = http.get(&url).send().await
                && (r.status().is_success()
                    || (auth.is_some() && r.status() == reqwest::StatusCode::UNAUTHORIZED))
            {
                break;
            }
            assert!(Instant::now() < deadline, "docker-registry did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry
    }

    /// The storage file of blob `digest` (`sha256:<hex>`).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stores `bytes` as the manifest of `repository` under `reference`.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) {
        let url = format!("http://{}/v2/{repository}/manifests/{reference}", self.host);
        let r = reqwest::Client::new()
            .put(url)
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("manifest upload");
        assert!(r.status().is_success(), "manifest upload: {}", r.status());
    }

    /// Stores a blob.
    pub async fn put_blob(&self, repository: &str, bytes: &[u8]) {
        let http = reqwest::Client::new();
        let r = http
            .post(format!(
                "http://{}/v2/{repository}/blobs/uploads/",
                self.host
            ))
            .send()
            .await
            .expect("upload session");
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned();
        let mut url = reqwest::Url::parse(&format!("http://{}", self.host))
            .and_then(|b| b.join(&location))
            .expect("url");
        url.query_pairs_mut().append_pair("digest", &digest(bytes));
        let r = http
            .put(url)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("blob upload");
        assert!(r.status().is_success(), "blob upload: {}", r.status());
    }

    /// Whether `repository` has blob `digest`.
    pub async fn has_blob(&self, repository: &str, digest: &str) -> bool {
        let r = reqwest::Client::new()
            .head(format!(
                "http://{}/v2/{repository}/blobs/{digest}",
                self.host
            ))
            .send()
            .await
            .expect("blob HEAD");
        r.status().is_success()
    }

    /// What the registry says blob `digest` is: (Docker-Content-Digest, length).
    pub async fn blob_head(&self, repository: &str, digest: &str) -> (String, u64) {
        let r = reqwest::Client::new()
            .head(format!(
                "http://{}/v2/{repository}/blobs/{digest}",
                self.host
            ))
            .send()
            .await
            .expect("blob HEAD");
        assert!(
            r.status().is_success(),
            "blob HEAD {digest}: {}",
            r.status()
        );
        let d = r.headers()["docker-content-digest"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let len = r.headers()["content-length"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("length");
        (d, len)
    }

    /// The digest the registry's `tag` of `repository` names, or `None` when there is no
    /// such tag.
    pub async fn tag_digest(&self, repository: &str, tag: &str) -> Option<String> {
        let r = reqwest::Client::new()
            .head(format!("http://{}/v2/{repository}/manifests/{tag}", self.host))
            .header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                 application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
            .await
            .expect("manifest HEAD");
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(
            r.status().is_success(),
            "manifest HEAD {tag}: {}",
            r.status()
        );
        Some(
            r.headers()["docker-content-digest"]
                .to_str()
                .expect("ascii")
                .to_owned(),
        )
    }

    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Random bytes (not cryptographic; distinct per call).
pub fn random_bytes(len: usize) -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = COUNTER.fetch_add(1, Ordering::Relaxed)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(seed.to_le_bytes()).to_vec();
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(&block).to_vec();
    }
    out.truncate(len);
    out
}

/// An image built in memory: its blobs and its top manifest (or index).
#[derive(Clone, Debug)]
pub struct TestImage {
    /// Every blob, manifests included, by digest.
    pub blobs: Vec<(String, Vec<u8>)>,
    /// The top manifest or index bytes.
    pub manifest: Vec<u8>,
    pub media_type: &'static str,
    /// Digests of config and layers of each platform manifest.
    pub layers: Vec<String>,
}

impl TestImage {
    /// A single-platform image with `layers` random layers of `size` bytes.
    pub fn single(os: &str, arch: &str, layers: usize, size: usize) -> Self {
        let (manifest, blobs) = manifest(os, arch, layers, size);
        let layers = blobs.iter().map(|(d, _)| d.clone()).collect();
        let mut all = blobs;
        all.push((digest(&manifest), manifest.clone()));
        TestImage {
            blobs: all,
            manifest,
            media_type: MANIFEST_TYPE,
            layers,
        }
    }

    /// An image index over linux/amd64 and linux/arm64 images.
    pub fn two_platform(layers: usize, size: usize) -> (Self, Vec<(String, String, Vec<String>)>) {
        let mut all = Vec::new();
        let mut entries = Vec::new();
        let mut platforms = Vec::new();
        for arch in ["amd64", "arm64"] {
            let (m, blobs) = manifest("linux", arch, layers, size);
            let d = digest(&m);
            platforms.push((
                arch.to_owned(),
                d.clone(),
                blobs.iter().map(|(d, _)| d.clone()).collect(),
            ));
            entries.push(json!({
                "mediaType": MANIFEST_TYPE,
                "digest": d,
                "size": m.len(),
                "platform": {"os": "linux", "architecture": arch},
            }));
            all.extend(blobs);
            all.push((d, m));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": entries,
        }))
        .expect("json");
        all.push((digest(&index), index.clone()));
        (
            TestImage {
                blobs: all,
                manifest: index,
                media_type: INDEX_TYPE,
                layers: Vec::new(),
            },
            platforms,
        )
    }

    /// Writes the image as an OCI image layout tagged `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).expect("layout dir");
        for (d, bytes) in &self.blobs {
            std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).expect("blob");
        }
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": self.media_type,
                "digest": digest(&self.manifest),
                "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_vec(&index).expect("json"),
        )
        .expect("index.json");
    }
}

fn manifest(os: &str, arch: &str, layers: usize, size: usize) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let mut blobs = Vec::new();
    let mut layer_descs: Vec<Value> = Vec::new();
    let mut diff_ids = Vec::new();
    for _ in 0..layers {
        let layer = random_bytes(size);
        let d = digest(&layer);
        layer_descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d,
            "size": layer.len(),
        }));
        diff_ids.push(d.clone());
        blobs.push((d, layer));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": os,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .expect("json");
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layer_descs,
    }))
    .expect("json");
    blobs.insert(0, (config_digest, config));
    (manifest, blobs)
}
