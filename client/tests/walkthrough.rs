//! The README's walk-through ("Five minutes with notar"), run as it is written: the shell
//! block after `<!-- walkthrough -->`, in bash with `set -euo pipefail`, against a real
//! notar-server, Debian's docker-registry and buildah, with `notar` on the PATH. Then its
//! results are checked: both tags verified, v2 signed by the signer, the backup present;
//! and `pull` draws its progress bars on a (pseudo-)terminal and nowhere else.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::path::Path;
use std::time::Duration;

use notar_tests::registry::TestRegistry;
use notar_tests::server::{Backend, TestServer};

mod common;
use common::{BIN, run_bin};

/// The walk-through's commands, from the README.
fn walkthrough() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README");
    let after = readme
        .split_once("<!-- walkthrough -->")
        .expect("the README marks its walk-through")
        .1;
    let block = after
        .split_once("```sh\n")
        .expect("a sh block follows the marker")
        .1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_owned()
}

fn buildah_available() -> bool {
    let found = std::process::Command::new("buildah")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "buildah must be installed in CI"
    );
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_as_written() {
    if !buildah_available() {
        eprintln!("skipped: buildah is not installed");
        return;
    }
    let server = TestServer::start(Backend::Sqlite).await;
    let registry = TestRegistry::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bin_dir = Path::new(BIN).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let storage = dir.path().join("buildah");
    let script = format!(
        "set -euo pipefail\ncd {}\n{}",
        dir.path().display(),
        walkthrough()
    );
    let run = run_bin(
        Path::new("bash"),
        &["-c", &script],
        &[
            ("PATH", &path),
            ("HOME", dir.path().to_str().expect("utf-8")),
            ("NOTAR_SERVER", &server.url),
            ("REGISTRY", &registry.host),
            // buildah's storage in the test's directory, not the machine's.
            (
                "CONTAINERS_STORAGE_CONF",
                &write_storage_conf(dir.path(), &storage),
            ),
        ],
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(
        run.code, 0,
        "the walk-through failed\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout, run.stderr
    );
    // What it should have done.
    assert!(
        run.stdout.contains("SIGNED TAG") && run.stdout.contains("v2"),
        "{}",
        run.stdout
    );
    let demo = dir.path().join("demo");
    assert!(demo.join("pulled/index.json").exists());
    assert!(demo.join("notar-keys.backup").exists());
    let gun = format!("{}/demo/app", registry.host);
    let env = [
        ("NOTAR_SERVER", server.url.as_str()),
        ("HOME", dir.path().to_str().expect("utf-8")),
    ];
    let inspected = run_bin(
        Path::new(BIN),
        &["trust", "inspect", &gun],
        &env,
        Duration::from_secs(60),
    )
    .await
    .ok()
    .json();
    let signers: Vec<(String, Vec<String>)> = inspected[0]["SignedTags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| {
            (
                t["SignedTag"].as_str().expect("tag").to_owned(),
                t["Signers"]
                    .as_array()
                    .expect("signers")
                    .iter()
                    .map(|s| s.as_str().expect("name").to_owned())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        signers,
        [
            ("v1".to_owned(), vec!["Repo Admin".to_owned()]),
            ("v2".to_owned(), vec!["ci".to_owned()]),
        ]
    );

    // Progress bars are never written when stderr is a pipe (terminal.rs shows them drawn
    // at a terminal).
    let piped = dir.path().join("piped");
    let pulled = run_bin(
        Path::new(BIN),
        &[
            "--json",
            "pull",
            &format!("{gun}:v1"),
            "-o",
            piped.to_str().expect("utf-8"),
        ],
        &env,
        Duration::from_secs(60),
    )
    .await
    .ok();
    let json = pulled.json();
    let blob = json["blobs"][0]["digest"].as_str().expect("a blob");
    let short = &blob.trim_start_matches("sha256:")[..12];
    assert!(!pulled.stderr.contains(short), "{}", pulled.stderr);

    // `pull --root-key`: the repository's root key passes; another key is refused, and
    // nothing is written.
    let keys = run_bin(
        Path::new(BIN),
        &["--json", "key", "list"],
        &env,
        Duration::from_secs(30),
    )
    .await
    .ok()
    .json();
    let signer_names: Vec<&serde_json::Value> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["role"] == "delegation")
        .map(|k| &k["signers"])
        .collect();
    assert_eq!(
        signer_names,
        [&serde_json::json!([format!("ci ({gun})")])],
        "key list names the signer of a delegation key"
    );
    let root = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["role"] == "root")
        .and_then(|k| k["key_id"].as_str())
        .expect("a root key")
        .to_owned();
    let fresh_trust = dir.path().join("fresh-trust");
    let fresh = [
        ("NOTAR_SERVER", server.url.as_str()),
        ("HOME", dir.path().to_str().expect("utf-8")),
        ("NOTAR_TRUST_DIR", fresh_trust.to_str().expect("utf-8")),
    ];
    let other = "ab".repeat(32);
    let refused_out = dir.path().join("refused");
    let refused = run_bin(
        Path::new(BIN),
        &[
            "pull",
            &format!("{gun}:v1"),
            "--root-key",
            &other,
            "-o",
            refused_out.to_str().expect("utf-8"),
        ],
        &fresh,
        Duration::from_secs(60),
    )
    .await
    .expect_code(1);
    assert!(refused.stderr.contains(&other[..12]), "{}", refused.stderr);
    assert!(!refused_out.exists());
    let pinned_out = dir.path().join("pinned");
    run_bin(
        Path::new(BIN),
        &[
            "pull",
            &format!("{gun}:v1"),
            "--root-key",
            &root,
            "-o",
            pinned_out.to_str().expect("utf-8"),
        ],
        &fresh,
        Duration::from_secs(60),
    )
    .await
    .ok();
    assert!(pinned_out.join("index.json").exists());
}

/// A containers-storage configuration that keeps buildah's images under `root`.
fn write_storage_conf(dir: &Path, root: &Path) -> String {
    let conf = dir.join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{}/run\"\ngraphroot = \"{}/root\"\n",
            root.display(),
            root.display()
        ),
    )
    .expect("storage.conf");
    conf.to_str().expect("utf-8").to_owned()
}
