//! Passphrases at a real terminal (a pseudo-terminal, driven by `tests/interop/pty_answer.py`):
//! a new key's passphrase that is too short or does not match is asked again, with the
//! reason; a wrong passphrase gets three tries; a key ID prefix of eight digits names a key.
//! Without a terminal and without the variable, the command stops at once with the
//! variable's name.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{BIN, Run, run_bin};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/pty_answer.py")
}

/// `notar ARGS` on a pseudo-terminal, typing `answers` (`regex=answer`) as their prompts come.
async fn at_terminal(trust: &Path, answers: &[&str], args: &[&str], env: &[(&str, &str)]) -> Run {
    let script = script();
    let mut argv: Vec<&str> = vec![script.to_str().expect("utf-8")];
    argv.extend_from_slice(answers);
    argv.push("--");
    argv.push(BIN);
    argv.extend_from_slice(args);
    let mut vars = vec![
        ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
        ("NOTAR_KDF", "test"),
    ];
    vars.extend_from_slice(env);
    run_bin(Path::new("python3"), &argv, &vars, Duration::from_secs(90)).await
}

fn key_ids(trust: &Path) -> Vec<String> {
    std::fs::read_dir(trust.join("private"))
        .expect("private dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("utf-8");
            name.strip_suffix(".key").map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrases_at_a_terminal_are_asked_again_and_wrong_ones_get_three_tries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trust");
    let keys = dir.path().to_str().expect("utf-8");

    // Too short, then a mismatch, then right: three tries, each reason said.
    let made = at_terminal(
        &trust,
        &[
            "Enter passphrase for new delegation key [0-9a-f]+: =short",
            "at least 8 characters.*Enter passphrase for new delegation key [0-9a-f]+: =long enough 1",
            "Repeat passphrase for new delegation key [0-9a-f]+: =long enough 2",
            "did not match\\. Enter passphrase for new delegation key [0-9a-f]+: =the real one",
            "Repeat passphrase for new delegation key [0-9a-f]+: =the real one",
        ],
        &["trust", "key", "generate", "ci", "--dir", keys],
        &[],
    )
    .await
    .ok();
    assert!(made.stdout.contains("ci"), "{}", made.stdout);
    let ids = key_ids(&trust);
    assert_eq!(ids.len(), 1, "one key made");
    let prefix = &ids[0][..8];

    // A wrong passphrase, then the right one: the key opens on the second try.
    let changed = at_terminal(
        &trust,
        &[
            "Enter passphrase for delegation key [0-9a-f]+: =not it",
            "Enter passphrase for delegation key [0-9a-f]+: =the real one",
        ],
        &["key", "passwd", prefix],
        &[("NOTAR_NEW_PASSPHRASE", "the next one")],
    )
    .await
    .ok();
    assert!(
        changed
            .stdout
            .contains("wrong passphrase for delegation key")
            && changed.stdout.contains("try again (2 of 3)"),
        "{}",
        changed.stdout
    );
    assert!(
        changed.stdout.contains("Changed the passphrase"),
        "{}",
        changed.stdout
    );

    // Three wrong ones: the command gives up, and the key file is as it was.
    let before =
        std::fs::read(trust.join("private").join(format!("{}.key", ids[0]))).expect("key file");
    let refused = at_terminal(
        &trust,
        &[
            "Enter passphrase for delegation key [0-9a-f]+: =wrong 1",
            "Enter passphrase for delegation key [0-9a-f]+: =wrong 2",
            "Enter passphrase for delegation key [0-9a-f]+: =wrong 3",
        ],
        &["key", "passwd", prefix],
        &[("NOTAR_NEW_PASSPHRASE", "never used")],
    )
    .await
    .expect_code(2);
    assert!(
        refused.stdout.contains("try again (3 of 3)")
            && refused
                .stdout
                .contains("notar: error: unlocking the delegation key"),
        "{}",
        refused.stdout
    );
    let after =
        std::fs::read(trust.join("private").join(format!("{}.key", ids[0]))).expect("key file");
    assert_eq!(before, after, "nothing changed");

    // No terminal and no variable: an error naming the variable, at once.
    let no_tty = run_bin(
        Path::new(BIN),
        &["key", "passwd", prefix],
        &[
            ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
            ("NOTAR_NEW_PASSPHRASE", "x"),
        ],
        Duration::from_secs(30),
    )
    .await
    .expect_code(2);
    assert!(
        no_tty.stderr.contains("NOTAR_DELEGATION_PASSPHRASE"),
        "{}",
        no_tty.stderr
    );

    // An environment passphrase that is wrong is not asked again.
    let env_wrong = run_bin(
        Path::new(BIN),
        &["key", "passwd", prefix],
        &[
            ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
            ("NOTAR_DELEGATION_PASSPHRASE", "not it"),
            ("NOTAR_NEW_PASSPHRASE", "x"),
        ],
        Duration::from_secs(30),
    )
    .await
    .expect_code(2);
    assert!(
        !env_wrong.stderr.contains("try again"),
        "{}",
        env_wrong.stderr
    );
}

/// `notar completion` and `notar man` run anywhere: no trust directory is made, no server
/// is asked.
#[tokio::test]
async fn completions_and_the_manual_need_no_trust_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trust");
    for (args, expected) in [
        (&["completion", "bash"][..], "_notar()"),
        (&["completion", "zsh"], "#compdef notar"),
        (&["completion", "fish"], "complete -c notar"),
        (&["man"], ".TH notar"),
    ] {
        let run = run_bin(
            Path::new(BIN),
            args,
            &[
                ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
                ("NOTAR_SERVER", "http://127.0.0.1:9"),
            ],
            Duration::from_secs(30),
        )
        .await
        .ok();
        assert!(run.stdout.contains(expected), "{args:?}: {}", run.stdout);
        assert!(run.stdout.contains("agent"), "{args:?} names the commands");
    }
    assert!(!trust.exists(), "no trust directory was made");

    // One page per command, with its own options.
    let pages = dir.path().join("man");
    run_bin(
        Path::new(BIN),
        &["man", "--out-dir", pages.to_str().expect("utf-8")],
        &[("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8"))],
        Duration::from_secs(30),
    )
    .await
    .ok();
    let sign =
        std::fs::read_to_string(pages.join("notar-trust-sign.1")).expect("notar-trust-sign.1");
    assert!(
        sign.contains(".TH notar-trust-sign") && sign.contains("digest"),
        "{sign}"
    );
    let passwd = std::fs::read_to_string(pages.join("notar-key-passwd.1")).expect("passwd page");
    assert!(passwd.contains("KEYID"), "{passwd}");
    assert!(pages.join("notar.1").exists());
}
