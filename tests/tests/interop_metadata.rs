//! Metadata signed by notar-tuf verifies with independent implementations: python-tuf's
//! Metadata API and tough's repository loader.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_tests::python;
use notar_tests::repo::{RELEASES, TestRepo};

#[test]
fn python_tuf_verifies_notar_metadata() {
    let repo = TestRepo::new(3);
    let dir = tempfile::tempdir().expect("temp dir");
    repo.write_to(dir.path()).expect("write repo");
    let out = python::run(
        "verify_metadata.py",
        &[dir.path().to_str().expect("utf-8 path"), RELEASES],
    );
    for line in [
        "root ok",
        "targets ok",
        "snapshot ok",
        "timestamp ok",
        "targets/releases ok (1 targets)",
    ] {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }
}

#[test]
fn python_tuf_refuses_tampered_notar_metadata() {
    let repo = TestRepo::new(1);
    let dir = tempfile::tempdir().expect("temp dir");
    repo.write_to(dir.path()).expect("write repo");
    let tampered = String::from_utf8(repo.targets.as_bytes().to_vec())
        .expect("utf-8")
        .replace("tag-0", "tag-X");
    std::fs::write(dir.path().join("targets.json"), tampered).expect("write");
    let status = std::process::Command::new("python3")
        .arg(python::script("verify_metadata.py"))
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(!status.status.success(), "tampered targets must not verify");
    assert!(String::from_utf8_lossy(&status.stderr).contains("UnsignedMetadataError"));
}

#[tokio::test]
async fn tough_loads_notar_repository() {
    let repo = TestRepo::new(3);
    let dir = tempfile::tempdir().expect("temp dir");
    repo.write_to(dir.path()).expect("write repo");
    let base = url_for(dir.path());
    let loaded = tough::RepositoryLoader::new(&repo.root.as_bytes(), base.clone(), base)
        .load()
        .await
        .expect("tough loads the repository");
    let names: Vec<String> = loaded
        .all_targets()
        .map(|(name, _)| name.raw().to_owned())
        .collect();
    for expected in ["tag-0", "tag-1", "tag-2", "release-1"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
}

#[tokio::test]
async fn tough_refuses_tampered_notar_repository() {
    let repo = TestRepo::new(1);
    let dir = tempfile::tempdir().expect("temp dir");
    repo.write_to(dir.path()).expect("write repo");
    // Timestamp signed by the targets key: not a timestamp key.
    let forged = notar_tuf::Signed::sign(repo.timestamp.untrusted().clone(), &[&repo.targets_key])
        .expect("sign");
    std::fs::write(dir.path().join("timestamp.json"), forged.as_bytes()).expect("write");
    let base = url_for(dir.path());
    let result = tough::RepositoryLoader::new(&repo.root.as_bytes(), base.clone(), base)
        .load()
        .await;
    assert!(result.is_err(), "forged timestamp must be refused");
}

fn url_for(dir: &std::path::Path) -> url::Url {
    let mut url = url::Url::from_directory_path(dir).expect("absolute path");
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    url
}
