//! `notar push`, `notar pull` and `notar trust sign` without `--digest`, end to end: the
//! real binary, a real notar-server (SQLite) and a real OCI registry (Debian's
//! `docker-registry`) on loopback ports, images built in the tests as OCI layouts, and
//! skopeo reading what `pull` wrote. Each attack in issue 5 has a test that expects the
//! precise refusal and an untouched output.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use notar_tests::registry::{TestImage, TestRegistry, digest};
use notar_tests::server::{Backend, TestServer};
use serde_json::Value;

mod common;
use common::Run;

/// One test's world: trust server, registry, trust directory, a work directory.
struct World {
    server: TestServer,
    registry: TestRegistry,
    trust: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        World {
            server: TestServer::start(Backend::Sqlite).await,
            registry: TestRegistry::start().await,
            trust: tempfile::tempdir().expect("temp dir"),
            work: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn gun(&self, repository: &str) -> String {
        format!("{}/{repository}", self.registry.host)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec![
            ("NOTAR_SERVER", self.server.url.as_str()),
            ("NOTAR_TRUST_DIR", path_str(self.trust.path())),
            ("NOTAR_KDF", "test"),
            ("NOTAR_ROOT_PASSPHRASE", "root passphrase"),
            ("NOTAR_TARGETS_PASSPHRASE", "targets passphrase"),
            ("HOME", path_str(self.work.path())),
        ];
        all.extend_from_slice(env);
        common::run_notar(args, &all, Duration::from_secs(120)).await
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[]).await
    }

    /// `notar pull <reference> -o <out> <extra…>`.
    async fn pull(&self, reference: &str, out: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["pull", reference, "-o", path_str(out)];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    /// Writes `image` as a layout and pushes it with `notar push`.
    async fn push(&self, image: &TestImage, reference: &str) -> Run {
        let layout = self.path(&format!("layout-{}", digest(&image.manifest)));
        image.write_layout(&layout, reference.rsplit(':').next().expect("tag"));
        self.run(&["push", path_str(&layout), reference]).await
    }

    /// Stores `image` in the registry under `tag` without signing anything.
    async fn store_unsigned(&self, repository: &str, tag: &str, image: &TestImage) {
        for (_, bytes) in &image.blobs {
            self.registry.put_blob(repository, bytes).await;
        }
        self.registry
            .put_manifest(repository, tag, image.media_type, &image.manifest)
            .await;
    }

    /// Asserts nothing was written next to or at `output` (no layout, no staging left).
    fn assert_untouched(&self, output: &Path) {
        assert!(!output.exists(), "{} was written", output.display());
        let leftovers: Vec<_> = std::fs::read_dir(self.work.path())
            .expect("work dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("notar-"))
            .collect();
        assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Every blob file under `layout`, checked against its name; returns the digests.
fn layout_blobs(layout: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).expect("blobs dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("blob");
        let name = format!(
            "sha256:{}",
            path.file_name().expect("name").to_string_lossy()
        );
        assert_eq!(digest(&bytes), name, "blob file content matches its name");
        out.push((name, bytes.len() as u64));
    }
    out.sort();
    out
}

fn skopeo(args: &[&str]) -> std::process::Output {
    std::process::Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_sign_pull_then_skopeo_reads_the_layout() {
    let w = World::start().await;
    let gun = w.gun("team/app");
    let image = TestImage::single("linux", "amd64", 3, 100_000);
    let pushed = w.push(&image, &format!("{gun}:v1")).await.ok();
    assert!(
        pushed
            .stdout
            .contains(&format!("Signed {gun}:v1 as {}", digest(&image.manifest))),
        "{}",
        pushed.stdout
    );
    // A second push of the same blobs uploads none of them.
    let again = w.push(&image, &format!("{gun}:v1")).await.ok();
    assert!(
        again.stderr.contains("blobs: 0 uploaded"),
        "{}",
        again.stderr
    );

    let out = w.path("out");
    let pulled = w
        .run(&[
            "pull",
            &format!("{gun}:v1"),
            "--output",
            path_str(&out),
            "--json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(pulled["digest"], digest(&image.manifest));
    assert_eq!(pulled["role"], "targets");
    assert_eq!(pulled["verified"], true);
    assert_eq!(pulled["blobs"].as_array().expect("blobs").len(), 4);

    // Every blob in the layout has the digest and size the registry reports.
    let blobs = layout_blobs(&out);
    assert_eq!(blobs.len(), 5, "config, 3 layers, manifest");
    let manifest = (digest(&image.manifest), image.manifest.len() as u64);
    assert!(blobs.contains(&manifest));
    for (d, size) in blobs.iter().filter(|b| **b != manifest) {
        assert_eq!(
            w.registry.blob_head("team/app", d).await,
            (d.clone(), *size)
        );
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).expect("index.json"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], digest(&image.manifest));
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );

    // skopeo, an independent consumer, accepts the layout.
    let inspect = skopeo(&["inspect", &format!("oci:{}", path_str(&out))]);
    assert!(
        inspect.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let inspected: Value = serde_json::from_slice(&inspect.stdout).expect("skopeo json");
    assert_eq!(inspected["Digest"], digest(&image.manifest));
    let copied = w.path("copied");
    let copy = skopeo(&[
        "copy",
        &format!("oci:{}", path_str(&out)),
        &format!("dir:{}", path_str(&copied)),
    ]);
    assert!(
        copy.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );

    // Pulling again into the same output reuses the verified blobs.
    let again = w
        .run(&[
            "pull",
            &format!("{gun}:v1"),
            "--output",
            path_str(&out),
            "--json",
        ])
        .await
        .ok()
        .json();
    assert!(
        again["blobs"]
            .as_array()
            .expect("blobs")
            .iter()
            .all(|b| b["reused"] == true)
    );

    // By digest: content addressed, checked the same way.
    let by_digest = w.path("by-digest");
    w.run(&[
        "pull",
        &format!("{gun}@{}", digest(&image.manifest)),
        "-o",
        path_str(&by_digest),
    ])
    .await
    .ok();
    assert_eq!(layout_blobs(&by_digest), blobs);

    // `trust sign` without --digest signs what the registry's tag names.
    w.registry
        .put_manifest("team/app", "v2", image.media_type, &image.manifest)
        .await;
    let signed = w
        .run(&["trust", "sign", &format!("{gun}:v2"), "--json"])
        .await
        .ok()
        .json();
    assert_eq!(signed["digest"], digest(&image.manifest));
    assert_eq!(signed["size"], image.manifest.len());
    w.run(&["pull", &format!("{gun}:v2"), "-o", path_str(&w.path("v2"))])
        .await
        .ok();
}

/// The registry's tag moves only once the signature is stored: a push whose signing
/// fails (a wrong passphrase, the trust server down) leaves the tag where it was, with the
/// image in the registry by digest only and a message that says how to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_signing_fails_leaves_the_tag_where_it_was() {
    let w = World::start().await;
    let gun = w.gun("team/safe");
    let first = TestImage::single("linux", "amd64", 1, 1_000);
    w.push(&first, &format!("{gun}:v1")).await.ok();
    assert_eq!(
        w.registry.tag_digest("team/safe", "v1").await,
        Some(digest(&first.manifest))
    );

    let second = TestImage::single("linux", "amd64", 1, 2_000);
    let layout = w.path("second");
    second.write_layout(&layout, "v1");
    let wrong = w
        .run_with(
            &["push", path_str(&layout), &format!("{gun}:v1")],
            &[("NOTAR_TARGETS_PASSPHRASE", "not the passphrase")],
        )
        .await;
    assert_ne!(wrong.code, 0);
    assert!(
        wrong.stderr.contains("the tag v1 was left where it was")
            && wrong
                .stderr
                .contains(&format!("--digest {}", digest(&second.manifest))),
        "{}",
        wrong.stderr
    );
    assert_eq!(
        w.registry.tag_digest("team/safe", "v1").await,
        Some(digest(&first.manifest)),
        "the tag still names the signed image"
    );
    let by_digest = digest(&second.manifest);
    assert_eq!(
        w.registry.tag_digest("team/safe", &by_digest).await,
        Some(by_digest.clone()),
        "the new image is there by digest"
    );

    // The trust server down: a new tag is not created at all.
    let down = w
        .run_with(
            &["push", path_str(&layout), &format!("{gun}:v2")],
            &[("NOTAR_SERVER", "http://127.0.0.1:9")],
        )
        .await;
    assert_ne!(down.code, 0);
    assert!(
        down.stderr.contains("the tag v2 was left where it was"),
        "{}",
        down.stderr
    );
    assert_eq!(w.registry.tag_digest("team/safe", "v2").await, None);

    // Fixed and pushed again: signed, then tagged.
    let again = w
        .run(&["push", path_str(&layout), &format!("{gun}:v1")])
        .await
        .ok();
    assert!(
        again.stderr.contains("blobs: 0 uploaded"),
        "{}",
        again.stderr
    );
    assert_eq!(
        w.registry.tag_digest("team/safe", "v1").await,
        Some(by_digest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_index_pulls_the_requested_platform() {
    let w = World::start().await;
    let gun = w.gun("multi");
    let (image, platforms) = TestImage::two_platform(2, 10_000);
    let pushed = w.push(&image, &format!("{gun}:v1")).await.ok();
    // The index digest is what is signed.
    assert!(
        pushed
            .stdout
            .contains(&format!("Signed {gun}:v1 as {}", digest(&image.manifest))),
        "{}",
        pushed.stdout
    );
    for (arch, manifest_digest, blobs) in &platforms {
        let out = w.path(arch);
        w.pull(
            &format!("{gun}:v1"),
            &out,
            &["--platform", &format!("linux/{arch}")],
        )
        .await
        .ok();
        let index: Value =
            serde_json::from_slice(&std::fs::read(out.join("index.json")).expect("index"))
                .expect("json");
        assert_eq!(&index["manifests"][0]["digest"], manifest_digest);
        assert_eq!(
            index["manifests"][0]["platform"]["architecture"],
            arch.as_str()
        );
        let present: Vec<String> = layout_blobs(&out).into_iter().map(|(d, _)| d).collect();
        for d in blobs {
            assert!(present.contains(d), "{arch}: {d} missing");
        }
        for (other, _, other_blobs) in &platforms {
            if other != arch {
                assert!(
                    other_blobs.iter().all(|d| !present.contains(d)),
                    "{arch} holds {other} blobs"
                );
            }
        }
        let inspect = skopeo(&["inspect", &format!("oci:{}", path_str(&out))]);
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
    }
    let out = w.path("s390x");
    let missing = w
        .pull(&format!("{gun}:v1"), &out, &["--platform", "linux/s390x"])
        .await
        .expect_code(2);
    assert!(
        missing
            .stderr
            .contains("no manifest for linux/s390x; it has linux/amd64, linux/arm64"),
        "{}",
        missing.stderr
    );
    w.assert_untouched(&out);

    // Verified in order: the signed index, then the platform's manifest by the digest the
    // index names. A platform manifest altered in the registry's storage is refused.
    let json = w
        .pull(
            &format!("{gun}:v1"),
            &w.path("arm64-json"),
            &["--platform", "linux/arm64", "--json"],
        )
        .await
        .ok()
        .json();
    assert_eq!(json["digest"], digest(&image.manifest));
    assert_eq!(json["platform_manifest"]["digest"], platforms[1].1.as_str());
    let file = w.registry.blob_file(&platforms[1].1);
    let mut bytes = std::fs::read(&file).expect("stored manifest");
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b' ' { b'\t' } else { b' ' };
    std::fs::write(&file, &bytes).expect("alter manifest");
    let out = w.path("altered");
    let refused = w
        .pull(&format!("{gun}:v1"), &out, &["--platform", "linux/arm64"])
        .await
        .expect_code(1);
    assert!(
        refused
            .stderr
            .contains(&format!("manifest {} of", platforms[1].1)),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);
}

/// The registry's tag names another digest than the signed one (moved by hand, or a push
/// between its upload and its signature): the pull takes the signed digest and says so,
/// naming both, as Docker does; `--require-tag-match` refuses instead. A tag the registry
/// does not have at all is pulled by its signed digest too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_tag_pulls_the_signed_digest_unless_a_match_is_required() {
    let w = World::start().await;
    let gun = w.gun("moved");
    let signed = TestImage::single("linux", "amd64", 1, 1000);
    w.push(&signed, &format!("{gun}:v1")).await.ok();
    let other = TestImage::single("linux", "amd64", 1, 1000);
    w.store_unsigned("moved", "v1", &other).await;

    let strict = w.path("strict");
    let refused = w
        .run(&[
            "pull",
            &format!("{gun}:v1"),
            "-o",
            path_str(&strict),
            "--require-tag-match",
        ])
        .await
        .expect_code(1);
    assert!(
        refused.stderr.contains(&format!(
            "the registry's tag names {}, but the signed digest is {} (--require-tag-match)",
            digest(&other.manifest),
            digest(&signed.manifest)
        )),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&strict);

    let out = w.path("out");
    let pulled = w
        .run(&["pull", &format!("{gun}:v1"), "-o", path_str(&out), "--json"])
        .await
        .ok();
    assert!(
        pulled.stderr.contains(&format!(
            "the registry's tag names {}; pulling the signed digest {}",
            digest(&other.manifest),
            digest(&signed.manifest)
        )),
        "{}",
        pulled.stderr
    );
    assert_eq!(pulled.json()["digest"], digest(&signed.manifest));
    let present: Vec<String> = layout_blobs(&out).into_iter().map(|(d, _)| d).collect();
    assert!(present.contains(&digest(&signed.manifest)));
    assert!(!present.contains(&digest(&other.manifest)));
    assert!(signed.layers.iter().all(|d| present.contains(d)));

    // Signed, pushed by digest, never tagged: pulled by the signed digest.
    let untagged = TestImage::single("linux", "amd64", 1, 500);
    w.store_unsigned("moved", &digest(&untagged.manifest), &untagged)
        .await;
    w.run(&[
        "trust",
        "sign",
        &format!("{gun}:v2"),
        "--digest",
        &digest(&untagged.manifest),
        "--size",
        &untagged.manifest.len().to_string(),
    ])
    .await
    .ok();
    let v2 = w.path("v2");
    let pulled = w
        .run(&["pull", &format!("{gun}:v2"), "-o", path_str(&v2)])
        .await
        .ok();
    assert!(
        pulled.stderr.contains(&format!(
            "the registry has no such tag; pulling the signed digest {}",
            digest(&untagged.manifest)
        )),
        "{}",
        pulled.stderr
    );
    w.run(&[
        "pull",
        &format!("{gun}:v2"),
        "-o",
        path_str(&w.path("v2-strict")),
        "--require-tag-match",
    ])
    .await
    .expect_code(1);
}

/// A layer larger than one upload chunk streams in chunks and arrives whole; a second
/// repository on the registry gets the blobs by mount, named with `--mount-from` or
/// found in the layout a `notar pull` wrote; a source without them falls back to an
/// upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_layers_stream_in_chunks_and_blobs_mount_across_repositories() {
    let w = World::start().await;
    let base = w.gun("team/base");
    // 20 MiB: three chunks of the 8 MiB upload chunk, the last one short.
    let image = TestImage::single("linux", "amd64", 2, 20 << 20);
    let pushed = w.push(&image, &format!("{base}:v1")).await.ok();
    assert!(
        pushed.stderr.contains(&format!(
            "blobs: 3 uploaded, {} bytes; 0 mounted",
            (40 << 20) + image_config_len(&image)
        )),
        "{}",
        pushed.stderr
    );
    for d in &image.layers {
        assert!(w.registry.has_blob("team/base", d).await, "{d}");
    }

    // Named on the command line.
    let layout = w.path(&format!("layout-{}", digest(&image.manifest)));
    let named = w
        .run(&[
            "push",
            path_str(&layout),
            &format!("{}:v1", w.gun("team/named")),
            "--mount-from",
            "team/empty",
            "--mount-from",
            "team/base",
        ])
        .await
        .ok();
    assert!(
        named
            .stderr
            .contains("blobs: 0 uploaded, 0 bytes; 3 mounted"),
        "{}",
        named.stderr
    );
    for d in &image.layers {
        assert!(w.registry.has_blob("team/named", d).await, "{d}");
    }

    // Remembered by the pull that wrote the layout.
    let pulled = w.path("pulled");
    w.run(&["pull", &format!("{base}:v1"), "-o", path_str(&pulled)])
        .await
        .ok();
    let copy = w
        .run(&[
            "push",
            path_str(&pulled),
            &format!("{}:v1", w.gun("team/copy")),
        ])
        .await
        .ok();
    assert!(
        copy.stderr
            .contains("blobs: 0 uploaded, 0 bytes; 3 mounted"),
        "{}",
        copy.stderr
    );
    let copied = w.path("copied");
    w.run(&[
        "pull",
        &format!("{}:v1", w.gun("team/copy")),
        "-o",
        path_str(&copied),
    ])
    .await
    .ok();
    assert_eq!(layout_blobs(&copied), layout_blobs(&pulled));

    // A source that lacks them: uploaded after all.
    let fallback = w
        .run(&[
            "push",
            path_str(&layout),
            &format!("{}:v1", w.gun("team/fresh")),
            "--mount-from",
            "team/empty",
        ])
        .await
        .ok();
    assert!(
        fallback.stderr.contains("blobs: 3 uploaded"),
        "{}",
        fallback.stderr
    );
}

fn image_config_len(image: &TestImage) -> u64 {
    let config = image.layers.first().expect("config digest");
    image
        .blobs
        .iter()
        .find(|(d, _)| d == config)
        .map(|(_, b)| b.len() as u64)
        .expect("config blob")
}

/// A layout whose blob file does not hold what its digest says (changed after the
/// manifest was written): the stream is hashed as it is sent, the upload is never
/// closed, and the registry stores neither the blob nor the manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_blob_that_does_not_match_its_digest_is_never_stored() {
    let w = World::start().await;
    let gun = w.gun("team/bad");
    for size in [1_000, 12 << 20] {
        let image = TestImage::single("linux", "amd64", 1, size);
        let layout = w.path(&format!("bad-{size}"));
        image.write_layout(&layout, "v1");
        let layer = &image.layers[1];
        let file = layout
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"));
        let mut bytes = std::fs::read(&file).expect("layer");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&file, &bytes).expect("alter layer");
        let refused = w
            .run(&["push", path_str(&layout), &format!("{gun}:v1")])
            .await
            .expect_code(2);
        assert!(
            refused.stderr.contains("the content has digest")
                && refused.stderr.contains(&format!("not {layer}"))
                && refused.stderr.contains("nothing was stored"),
            "{}",
            refused.stderr
        );
        assert!(!w.registry.has_blob("team/bad", layer).await);
        assert_eq!(
            w.registry
                .tag_digest("team/bad", &digest(&image.manifest))
                .await,
            None
        );
        assert_eq!(w.registry.tag_digest("team/bad", "v1").await, None);
    }
    w.run(&["trust", "inspect", &gun]).await.expect_code(1);
}

/// `--platform` that a single-platform image is not: an error naming its platform, and
/// nothing written. The platform it is: pulled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_the_single_image_is_not_is_refused_naming_its_own() {
    let w = World::start().await;
    let gun = w.gun("single");
    let image = TestImage::single("linux", "amd64", 1, 1000);
    w.push(&image, &format!("{gun}:v1")).await.ok();
    let out = w.path("arm");
    let refused = w
        .pull(&format!("{gun}:v1"), &out, &["--platform", "linux/arm64"])
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("the image is for linux/amd64 only (a single-platform image, not an index), not linux/arm64"),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);
    w.pull(
        &format!("{gun}:v1"),
        &w.path("amd"),
        &["--platform", "linux/amd64"],
    )
    .await
    .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_blob_fails_naming_its_digest() {
    let w = World::start().await;
    let gun = w.gun("altered");
    let image = TestImage::single("linux", "amd64", 3, 50_000);
    w.push(&image, &format!("{gun}:v1")).await.ok();
    let victim = &image.layers[2];
    let file = w.registry.blob_file(victim);
    let mut bytes = std::fs::read(&file).expect("stored blob");
    bytes[1000] ^= 0xff;
    std::fs::write(&file, &bytes).expect("alter blob");
    let out = w.path("out");
    let refused = w
        .run(&["pull", &format!("{gun}:v1"), "-o", path_str(&out)])
        .await
        .expect_code(1);
    assert!(
        refused.stderr.contains(&format!("blob {victim} of"))
            && refused.stderr.contains("the content has digest"),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_larger_than_signed_is_refused_before_reading_it() {
    let w = World::start().await;
    let gun = w.gun("large");
    let image = TestImage::single("linux", "amd64", 1, 1000);
    w.store_unsigned("large", "v1", &image).await;
    let short = image.manifest.len() - 10;
    w.run(&[
        "trust",
        "sign",
        &format!("{gun}:v1"),
        "--digest",
        &digest(&image.manifest),
        "--size",
        &short.to_string(),
    ])
    .await
    .ok();
    let out = w.path("out");
    let refused = w
        .run(&["pull", &format!("{gun}:v1"), "-o", path_str(&out)])
        .await
        .expect_code(1);
    assert!(
        refused.stderr.contains(&format!(
            "the registry announces {} bytes, more than the {short} bytes signed",
            image.manifest.len()
        )),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_tags_missing_trust_data_and_unreachable_services() {
    let mut w = World::start().await;
    let gun = w.gun("app");
    let image = TestImage::single("linux", "amd64", 1, 1000);
    w.push(&image, &format!("{gun}:v1")).await.ok();
    let out = w.path("out");

    // A tag in the registry that nobody signed.
    w.store_unsigned("app", "unsigned", &image).await;
    let refused = w
        .run(&["pull", &format!("{gun}:unsigned"), "-o", path_str(&out)])
        .await
        .expect_code(1);
    assert!(
        refused
            .stderr
            .contains(&format!("{gun}:unsigned is not signed")),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);

    // The explicit opt-out pulls it, with a warning.
    let warned = w
        .run(&[
            "pull",
            &format!("{gun}:unsigned"),
            "-o",
            path_str(&out),
            "--disable-content-trust",
        ])
        .await
        .ok();
    assert!(
        warned.stderr.contains("content trust is disabled"),
        "{}",
        warned.stderr
    );
    std::fs::remove_dir_all(&out).expect("clean");
    for switch in [
        &[("NOTAR_CONTENT_TRUST", "0")][..],
        &[("DOCKER_CONTENT_TRUST", "0")],
        &[("DOCKER_CONTENT_TRUST", "false")],
    ] {
        let warned = w
            .run_with(
                &["pull", &format!("{gun}:unsigned"), "-o", path_str(&out)],
                switch,
            )
            .await
            .ok();
        assert!(
            warned.stderr.contains("content trust is disabled"),
            "{switch:?}: {}",
            warned.stderr
        );
        std::fs::remove_dir_all(&out).expect("clean");
    }
    // notar's own switch wins over Docker's, and Docker's "on" changes nothing.
    for switch in [
        &[("NOTAR_CONTENT_TRUST", "1"), ("DOCKER_CONTENT_TRUST", "0")][..],
        &[("DOCKER_CONTENT_TRUST", "1")],
    ] {
        let refused = w
            .run_with(
                &["pull", &format!("{gun}:unsigned"), "-o", path_str(&out)],
                switch,
            )
            .await
            .expect_code(1);
        assert!(
            !refused.stderr.contains("content trust is disabled"),
            "{switch:?}: {}",
            refused.stderr
        );
        w.assert_untouched(&out);
    }

    // A repository without trust data.
    w.store_unsigned("never-signed", "v1", &image).await;
    let refused = w
        .run(&[
            "pull",
            &format!("{}:v1", w.gun("never-signed")),
            "-o",
            path_str(&out),
        ])
        .await
        .expect_code(1);
    assert!(
        refused.stderr.contains("no trust data for"),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);

    // The trust server is unreachable.
    let refused = w
        .run(&[
            "pull",
            &format!("{gun}:v1"),
            "-o",
            path_str(&out),
            "--server",
            "http://127.0.0.1:9",
        ])
        .await
        // An outage is not a verdict on trust: exit 2, with its own message.
        .expect_code(2);
    assert!(
        refused.stderr.contains("cannot read the trust data of")
            && refused
                .stderr
                .contains("fetching root: GET http://127.0.0.1:9/"),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);

    // The repository's trust data is deleted on the server.
    let deleted = reqwest::Client::new()
        .delete(w.server.tuf_url(&gun))
        .send()
        .await
        .expect("delete");
    assert!(
        deleted.status().is_success(),
        "delete: {}",
        deleted.status()
    );
    let refused = w
        .run(&["pull", &format!("{gun}:v1"), "-o", path_str(&out)])
        .await
        .expect_code(1);
    assert!(
        refused
            .stderr
            .contains(&format!("verifying the trust data of {gun}")),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);

    // The registry is unreachable.
    w.registry.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gun2 = gun.clone();
    let refused = w
        .run(&[
            "pull",
            &format!("{gun2}@{}", digest(&image.manifest)),
            "-o",
            path_str(&out),
        ])
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains(&format!("(registry {})", w.registry.host)),
        "{}",
        refused.stderr
    );
    w.assert_untouched(&out);
}

/// `pull` and `trust resolve` share one delegation walk in Docker's order: when targets and
/// targets/releases sign different digests for a tag, both take the one in releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_and_resolve_take_the_releases_digest_when_targets_disagrees() {
    let w = World::start().await;
    let gun = w.gun("contested");
    let admin = TestImage::single("linux", "amd64", 1, 1000);
    w.push(&admin, &format!("{gun}:v1")).await.ok();
    let released = TestImage::single("linux", "amd64", 1, 1000);
    w.store_unsigned("contested", "v1", &released).await;

    // A signer whose key this trust directory holds signs v1 as the other image, into its
    // own role and targets/releases; targets still signs the first image.
    let env = [("NOTAR_DELEGATION_PASSPHRASE", "delegation passphrase")];
    w.run_with(
        &[
            "trust",
            "key",
            "generate",
            "rel",
            "--dir",
            path_str(w.work.path()),
        ],
        &env,
    )
    .await
    .ok();
    let key = w.path("rel.pub");
    w.run_with(
        &[
            "trust",
            "signer",
            "add",
            "rel",
            &gun,
            "--key",
            path_str(&key),
        ],
        &env,
    )
    .await
    .ok();
    let manifest_digest = digest(&released.manifest);
    let size = released.manifest.len().to_string();
    let signed = w
        .run_with(
            &[
                "trust",
                "sign",
                &format!("{gun}:v1"),
                "--digest",
                &manifest_digest,
                "--size",
                &size,
            ],
            &env,
        )
        .await
        .ok();
    assert!(
        signed.stdout.contains("targets/releases"),
        "{}",
        signed.stdout
    );

    let resolved = w
        .run(&["trust", "resolve", "--json", &format!("{gun}:v1")])
        .await
        .ok()
        .json();
    assert_eq!(resolved["digest"], manifest_digest.as_str());
    assert_eq!(resolved["role"], "targets/releases");
    let out = w.path("out");
    let pulled = w
        .run(&["--json", "pull", &format!("{gun}:v1"), "-o", path_str(&out)])
        .await
        .ok()
        .json();
    assert_eq!(pulled["digest"], manifest_digest.as_str(), "{pulled}");
    assert_eq!(pulled["role"], "targets/releases", "{pulled}");
}
