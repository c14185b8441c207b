//! `notar agent`: the real binary holds keys for later commands, which then sign without a
//! passphrase and without unlocking anything themselves; `--stop` and the lifetime end
//! that; a wrong passphrase is refused through the agent as without it.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use notar_tests::server::{Backend, TestServer};

mod common;
use common::Run;

const GUN: &str = "localhost:5000/team/agent";

async fn notar(server: &TestServer, trust: &Path, args: &[&str], passphrases: bool) -> Run {
    let mut env = vec![
        ("NOTAR_SERVER", server.url.as_str()),
        ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
        ("NOTAR_KDF", "test"),
    ];
    if passphrases {
        env.push(("NOTAR_ROOT_PASSPHRASE", "root passphrase"));
        env.push(("NOTAR_TARGETS_PASSPHRASE", "targets passphrase"));
    }
    common::run_notar(args, &env, Duration::from_secs(60)).await
}

fn sign(tag: &str) -> Vec<String> {
    let mut args = common::sign_args(&format!("{GUN}:{tag}"), tag.as_bytes());
    args.push("-vv".into());
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn the_agent_signs_for_later_commands_until_stopped() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trust");
    // The repository exists; its keys are in files, encrypted.
    notar(&server, &trust, &strs(&sign("v1")), true).await.ok();

    // No agent: without passphrases (and no terminal), signing fails at once.
    let refused = notar(&server, &trust, &strs(&sign("v2")), false)
        .await
        .expect_code(2);
    assert!(refused.stderr.contains("passphrase"), "{}", refused.stderr);

    let started = notar(&server, &trust, &["agent", "--lifetime", "60s"], false)
        .await
        .ok();
    assert!(
        started.stderr.contains("keeps unlocked keys for 60 s"),
        "{}",
        started.stderr
    );
    let socket = trust.join("agent.sock");
    let meta = std::fs::metadata(&socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let again = notar(&server, &trust, &["agent"], false)
        .await
        .expect_code(2);
    assert!(again.stderr.contains("already runs"), "{}", again.stderr);

    // A wrong passphrase goes to the agent and is refused; it keeps nothing.
    let wrong = common::run_notar(
        &strs(&sign("v2")),
        &[
            ("NOTAR_SERVER", server.url.as_str()),
            ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
            ("NOTAR_TARGETS_PASSPHRASE", "not it"),
        ],
        Duration::from_secs(60),
    )
    .await
    .expect_code(2);
    assert!(
        wrong.stderr.contains("in the agent") && wrong.stderr.contains("passphrase"),
        "{}",
        wrong.stderr
    );
    let status = notar(&server, &trust, &["agent", "--status", "--json"], false)
        .await
        .ok()
        .json();
    assert_eq!(status["keys"], serde_json::json!([]));

    // With the passphrase once, the agent unlocks the key and keeps it...
    let first = notar(&server, &trust, &strs(&sign("v2")), true).await.ok();
    assert!(
        first.stderr.contains("the agent unlocked the targets key"),
        "{}",
        first.stderr
    );
    // ...and signs for every later command, with no passphrase at all.
    for tag in ["v3", "v4"] {
        let later = notar(&server, &trust, &strs(&sign(tag)), false).await.ok();
        assert!(
            later.stderr.contains("the agent holds the targets key")
                && !later.stderr.contains("unlocked the targets key"),
            "{}",
            later.stderr
        );
        assert!(
            later.stdout.contains(&format!("Signed {GUN}:{tag}")),
            "{}",
            later.stdout
        );
    }
    let status = notar(&server, &trust, &["agent", "--status", "--json"], false)
        .await
        .ok()
        .json();
    assert_eq!(status["keys"].as_array().expect("keys").len(), 1);
    assert!(status["seconds_left"].as_u64().expect("seconds") <= 60);

    // What it signed verifies for a reader with a trust directory of its own.
    let reader = dir.path().join("reader");
    let inspected = notar(&server, &reader, &["trust", "inspect", GUN], false)
        .await
        .ok()
        .json();
    assert_eq!(
        inspected[0]["SignedTags"].as_array().expect("tags").len(),
        4
    );

    // Stopped: the socket is gone, and signing needs the passphrase again.
    notar(&server, &trust, &["agent", "--stop"], false)
        .await
        .ok();
    assert!(!socket.exists());
    notar(&server, &trust, &strs(&sign("v5")), false)
        .await
        .expect_code(2);
    notar(&server, &trust, &["agent", "--stop"], false)
        .await
        .expect_code(2);
}

#[tokio::test]
async fn the_agent_exits_and_forgets_when_its_lifetime_ends() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trust");
    notar(&server, &trust, &strs(&sign("v1")), true).await.ok();
    notar(&server, &trust, &["agent", "--lifetime", "2s"], false)
        .await
        .ok();
    notar(&server, &trust, &strs(&sign("v2")), true).await.ok();
    notar(&server, &trust, &strs(&sign("v3")), false).await.ok();
    let socket = trust.join("agent.sock");
    for _ in 0..50 {
        if !socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!socket.exists(), "the agent outlived its lifetime");
    let after = notar(&server, &trust, &strs(&sign("v4")), false)
        .await
        .expect_code(2);
    assert!(after.stderr.contains("passphrase"), "{}", after.stderr);
}
