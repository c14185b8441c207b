//! The notar-server image, end to end. `server/dist/build-image.sh` builds it (CI runs it
//! before the tests and points `NOTAR_TEST_IMAGE` at its output); this test pushes it to
//! Debian's docker-registry and signs it with `notar push`, pulls it back with `notar
//! pull`, reads its config with skopeo (user, labels, volume), unpacks its layers and
//! starts the binary from them, in a chroot of nothing but those layers, as the image's
//! user, and asks it `notar-server healthcheck`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use notar_tests::process::spawn_ready;
use notar_tests::registry::TestRegistry;
use notar_tests::server::{Backend, TestServer};
use serde_json::Value;

mod common;

/// The image's user, as the Dockerfile sets it.
const USER: &str = "65532:65532";

fn image_dir() -> Option<PathBuf> {
    match std::env::var_os("NOTAR_TEST_IMAGE") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "NOTAR_TEST_IMAGE must be set in CI (.ci/run builds the image)"
            );
            eprintln!("skipping: NOTAR_TEST_IMAGE is not set (run server/dist/build-image.sh)");
            None
        }
    }
}

/// `key=value` lines of the build's `image.txt`.
fn image_facts(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(dir.join("image.txt"))
        .expect("image.txt")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("readable")).expect("JSON")
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    layout.join("blobs").join(algorithm).join(hex)
}

/// Every path under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable") {
            let path = entry.expect("entry").path();
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_image_is_pushed_signed_pulled_and_started() {
    let Some(image) = image_dir() else {
        return;
    };
    let facts = image_facts(&image);
    let version = facts["version"].as_str();
    let server = TestServer::start(Backend::Sqlite).await;
    let registry = TestRegistry::start().await;
    let work = tempfile::tempdir().expect("temp dir");
    let trust = work.path().join("trust");
    let env = [
        ("NOTAR_SERVER", server.url.as_str()),
        ("NOTAR_TRUST_DIR", trust.to_str().unwrap()),
        ("NOTAR_KDF", "test"),
        ("NOTAR_ROOT_PASSPHRASE", "root passphrase"),
        ("NOTAR_TARGETS_PASSPHRASE", "targets passphrase"),
        ("HOME", work.path().to_str().unwrap()),
    ];
    let notar = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::run_notar(&args, &env, Duration::from_secs(300)).await
    };
    let reference = format!("{}/notar/notar-server:{version}", registry.host);

    // Push and sign.
    let layout = image.join("layout");
    let pushed = notar(vec![
        "push".into(),
        layout.to_str().unwrap().into(),
        reference.clone(),
    ])
    .await
    .ok();
    assert!(
        pushed
            .stdout
            .contains(&format!("Signed {reference} as {}", facts["digest"])),
        "{}",
        pushed.stdout
    );

    // Pull it back, verified.
    let out = work.path().join("pulled");
    let pulled = notar(vec![
        "pull".into(),
        reference.clone(),
        "--output".into(),
        out.to_str().unwrap().into(),
        "--json".into(),
    ])
    .await
    .ok()
    .json();
    assert_eq!(pulled["verified"], true);
    assert_eq!(pulled["digest"].as_str(), Some(facts["digest"].as_str()));

    // The config, as skopeo reads it from the pulled layout.
    let inspected = Command::new("skopeo")
        .args(["--insecure-policy", "inspect", "--config"])
        .arg(format!("oci:{}", out.display()))
        .output()
        .expect("skopeo runs");
    assert!(
        inspected.status.success(),
        "{}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let config: Value = serde_json::from_slice(&inspected.stdout).expect("config JSON");
    let runtime = &config["config"];
    assert_eq!(runtime["User"], USER, "{config}");
    assert_eq!(
        runtime["Entrypoint"],
        serde_json::json!(["/usr/local/bin/notar-server"])
    );
    assert!(runtime["Volumes"]["/var/lib/notar"].is_object(), "{config}");
    let labels = &runtime["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "notar-server");
    assert_eq!(labels["org.opencontainers.image.version"], version);
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .expect("revision");
    assert_eq!(revision.len(), 40, "a commit: {revision}");
    let env_vars: Vec<String> = runtime["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect();
    assert!(
        env_vars
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("secret")),
        "{env_vars:?}"
    );

    // The layers hold the binary and the empty data directory, nothing else: no secret,
    // no key, no shell.
    let index = read_json(&out.join("index.json"));
    let manifest = read_json(&blob(
        &out,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let layers = manifest["layers"].as_array().expect("layers");
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    for layer in layers {
        let unpacked = Command::new("tar")
            .arg("-xf")
            .arg(blob(&out, layer["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&rootfs)
            .arg("--same-owner")
            .status()
            .expect("tar runs");
        assert!(unpacked.success());
    }
    assert_eq!(
        tree(&rootfs),
        [
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/notar-server",
            "var",
            "var/lib",
            "var/lib/notar",
        ]
    );
    let binary = rootfs.join("usr/local/bin/notar-server");
    let (sha256, size) = common::digest_of(&std::fs::read(&binary).unwrap());
    assert_eq!(labels["dev.notar.binary.sha256"], sha256.as_str());
    let owner = |path: &str| {
        let meta = std::fs::metadata(rootfs.join(path)).unwrap();
        (meta.uid(), meta.gid())
    };
    assert_eq!(owner("usr/local/bin/notar-server"), (0, 0));
    assert_eq!(owner("var/lib"), (0, 0));
    assert_eq!(owner("var/lib/notar"), (65532, 65532));
    eprintln!(
        "image {}: {} bytes in all, {} layer(s); binary {size} bytes",
        facts["digest"],
        facts["bytes"],
        layers.len()
    );

    // Start it: a chroot of the unpacked layers alone (so nothing from the host is
    // linked), as the image's user, with the image's environment.
    if !nix_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipping the start: chroot needs root");
        return;
    }
    let in_image = |args: &[&str]| {
        let mut command = Command::new("chroot");
        command
            .arg(format!("--userspec={USER}"))
            .arg(&rootfs)
            .arg("/usr/local/bin/notar-server")
            .args(args)
            .env_clear()
            .envs(env_vars.iter().filter_map(|v| v.split_once('=')))
            .env("NOTAR_LOG", "info");
        command
    };
    let (mut child, addr) = spawn_ready(&mut in_image(&["--listen", "127.0.0.1:0"]));
    let health = in_image(&["--listen", &addr, "healthcheck"])
        .output()
        .expect("healthcheck runs");
    let ping = reqwest::get(format!("http://{addr}/v2/")).await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        health.status.success(),
        "healthcheck: {}",
        String::from_utf8_lossy(&health.stderr)
    );
    assert_eq!(ping.status(), reqwest::StatusCode::OK);
    // The server wrote its secret and database into the volume, as the image's user.
    let mode = |path: &str| {
        let meta = std::fs::metadata(rootfs.join(path)).unwrap();
        (meta.uid(), meta.mode() & 0o777)
    };
    assert_eq!(mode("var/lib/notar"), (65532, 0o700));
    assert_eq!(mode("var/lib/notar/server.secret"), (65532, 0o600));
    assert_eq!(mode("var/lib/notar/notar.db"), (65532, 0o600));
}

/// Whether this process runs as root (chroot needs it).
fn nix_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
