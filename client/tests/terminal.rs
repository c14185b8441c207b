//! notar at a real terminal: each command runs in a tmux session of its own
//! ([`notar_tests::tmux::Pane`]), typed into with `send-keys` and read with `capture-pane`.
//!
//! - A new key's passphrase that is too short or does not match is asked again, with the
//!   reason; typed passphrases are never echoed; a wrong one gets three tries.
//! - The first root key comes with a note on what it protects and how to back it up.
//! - Confirmations: "n" changes nothing, "y" goes on.
//! - A pull draws one progress bar per blob.
//!
//! And none of it when the streams are not a terminal: the command stops at once with the
//! variable's name, or asks for `-y`, and draws no bar.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::path::Path;
use std::time::Duration;

use notar_tests::registry::{TestImage, TestRegistry};
use notar_tests::server::{Backend, TestServer};
use notar_tests::tmux::Pane;

mod common;
use common::{BIN, run_bin};

/// `notar args` in a terminal of its own, with `env` (and the test KDF) as its whole
/// environment.
fn at_terminal(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Pane {
    let mut vars = vec![
        ("NOTAR_KDF", "test"),
        ("HOME", dir.to_str().expect("utf-8")),
    ];
    vars.extend_from_slice(env);
    Pane::start(BIN, args, &vars, dir)
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

const NEW_KEY: &str = "Enter passphrase for new delegation key";
const REPEAT: &str = "Repeat passphrase for new delegation key";
const OPEN_KEY: &str = "Enter passphrase for delegation key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrases_at_a_terminal_are_asked_again_and_wrong_ones_get_three_tries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trust");
    let trust_var = ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8"));
    let keys = dir.path().to_str().expect("utf-8");

    // Too short, then a mismatch, then right: three tries, each reason said.
    let pane = at_terminal(
        dir.path(),
        &["trust", "key", "generate", "ci", "--dir", keys],
        &[trust_var],
    );
    pane.wait_for(NEW_KEY, 1);
    pane.type_line("tiny7");
    pane.wait_for("at least 8 characters", 1);
    pane.wait_for(NEW_KEY, 2);
    pane.type_line("mismatch-aaa");
    pane.wait_for(REPEAT, 1);
    pane.type_line("mismatch-bbb");
    pane.wait_for("The passphrases did not match.", 1);
    pane.wait_for(NEW_KEY, 3);
    pane.type_line("the real one");
    pane.wait_for(REPEAT, 2);
    pane.type_line("the real one");
    let (code, screen) = pane.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("ci"), "{screen}");
    for typed in ["tiny7", "mismatch-", "the real one"] {
        assert!(!screen.contains(typed), "{typed:?} was echoed:\n{screen}");
    }
    let ids = key_ids(&trust);
    assert_eq!(ids.len(), 1, "one key made");
    let prefix = &ids[0][..8];

    // A wrong passphrase, then the right one: the key opens on the second try.
    let pane = at_terminal(
        dir.path(),
        &["key", "passwd", prefix],
        &[trust_var, ("NOTAR_NEW_PASSPHRASE", "the next one")],
    );
    pane.wait_for(OPEN_KEY, 1);
    pane.type_line("not it");
    pane.wait_for("try again (2 of 3)", 1);
    pane.wait_for(OPEN_KEY, 2);
    pane.type_line("the real one");
    let (code, screen) = pane.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("wrong passphrase for delegation key")
            && screen.contains("Changed the passphrase"),
        "{screen}"
    );

    // Three wrong ones: the command gives up, and the key file is as it was.
    let key_file = trust.join("private").join(format!("{}.key", ids[0]));
    let before = std::fs::read(&key_file).expect("key file");
    let pane = at_terminal(
        dir.path(),
        &["key", "passwd", prefix],
        &[trust_var, ("NOTAR_NEW_PASSPHRASE", "never used")],
    );
    for n in 1..=3 {
        pane.wait_for(OPEN_KEY, n);
        pane.type_line(&format!("wrong {n}"));
    }
    let (code, screen) = pane.finish();
    assert_eq!(code, 2, "{screen}");
    assert!(
        screen.contains("try again (3 of 3)")
            && screen.contains("notar: error: unlocking the delegation key"),
        "{screen}"
    );
    assert_eq!(
        before,
        std::fs::read(&key_file).expect("key file"),
        "nothing changed"
    );

    // No terminal and no variable: an error naming the variable, at once, and no prompt.
    let no_tty = run_bin(
        Path::new(BIN),
        &["key", "passwd", prefix],
        &[trust_var, ("NOTAR_NEW_PASSPHRASE", "x")],
        Duration::from_secs(30),
    )
    .await
    .expect_code(2);
    assert!(
        no_tty.stderr.contains("NOTAR_DELEGATION_PASSPHRASE")
            && !no_tty.stderr.contains("Enter passphrase"),
        "{}",
        no_tty.stderr
    );

    // An environment passphrase that is wrong is not asked again.
    let env_wrong = run_bin(
        Path::new(BIN),
        &["key", "passwd", prefix],
        &[
            trust_var,
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

/// The first sign at a terminal: two new keys, each typed twice, and the root key's note.
/// Then `trust revoke` of every tag asks first: "n" changes nothing, "y" revokes; without a
/// terminal it asks for -y instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_root_key_is_explained_and_confirmations_are_asked() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trust");
    let env = [
        ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
        ("NOTAR_SERVER", server.url.as_str()),
    ];
    let gun = "localhost:5000/terminal";
    let (digest, size) = common::digest_of(b"terminal");
    let digest = format!("sha256:{digest}");
    let size = size.to_string();
    let tag = format!("{gun}:v1");
    let pane = at_terminal(
        dir.path(),
        &["trust", "sign", &tag, "--digest", &digest, "--size", &size],
        &env,
    );
    for role in ["root", "targets"] {
        pane.wait_for(&format!("Enter passphrase for new {role} key"), 1);
        pane.type_line(&format!("{role} passphrase"));
        pane.wait_for(&format!("Repeat passphrase for new {role} key"), 1);
        pane.type_line(&format!("{role} passphrase"));
    }
    let (code, screen) = pane.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("the root key signs the root of every repository")
            && screen.contains("notar key backup <file>")
            && screen.contains(trust.join("private").to_str().expect("utf-8")),
        "{screen}"
    );
    assert!(!screen.contains("root passphrase"), "echoed:\n{screen}");

    let inspect = || async {
        run_bin(
            Path::new(BIN),
            &["trust", "inspect", gun],
            &env,
            Duration::from_secs(30),
        )
        .await
        .ok()
        .json()[0]["SignedTags"]
            .as_array()
            .expect("tags")
            .len()
    };
    const CONFIRM: &str = "Please confirm you would like to delete all signature data";
    let pane = at_terminal(dir.path(), &["trust", "revoke", gun], &env);
    pane.wait_for(CONFIRM, 1);
    pane.type_line("n");
    let (code, screen) = pane.finish();
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("nothing was changed"), "{screen}");
    assert_eq!(inspect().await, 1, "still signed");

    // Without a terminal: no question, a request for -y, nothing changed.
    let piped = run_bin(
        Path::new(BIN),
        &["trust", "revoke", gun],
        &env,
        Duration::from_secs(30),
    )
    .await
    .expect_code(2);
    assert!(
        piped.stderr.contains("pass -y to confirm") && !piped.stderr.contains(CONFIRM),
        "{}",
        piped.stderr
    );
    assert_eq!(inspect().await, 1, "still signed");

    let pane = at_terminal(dir.path(), &["trust", "revoke", gun], &env);
    pane.wait_for(CONFIRM, 1);
    pane.type_line("y");
    pane.wait_for("Enter passphrase for targets key", 1);
    pane.type_line("targets passphrase");
    let (code, screen) = pane.finish();
    assert_eq!(code, 0, "{screen}");
    assert_eq!(inspect().await, 0, "revoked");
}

/// A pull at a terminal draws a bar per blob, named by its short digest, and leaves each
/// finished; with stdout and stderr not a terminal, no bar and no escape sequence is
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_at_a_terminal_shows_its_progress_and_a_pipe_gets_none() {
    let server = TestServer::start(Backend::Sqlite).await;
    let registry = TestRegistry::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trust");
    let env = [
        ("NOTAR_TRUST_DIR", trust.to_str().expect("utf-8")),
        ("NOTAR_SERVER", server.url.as_str()),
        ("NOTAR_ROOT_PASSPHRASE", "root passphrase"),
        ("NOTAR_TARGETS_PASSPHRASE", "targets passphrase"),
        ("NOTAR_KDF", "test"),
        ("HOME", dir.path().to_str().expect("utf-8")),
    ];
    let image = TestImage::single("linux", "amd64", 3, 2 << 20);
    let layout = dir.path().join("layout");
    image.write_layout(&layout, "v1");
    let tag = format!("{}/progress:v1", registry.host);
    run_bin(
        Path::new(BIN),
        &["push", layout.to_str().expect("utf-8"), &tag],
        &env,
        Duration::from_secs(120),
    )
    .await
    .ok();
    let shorts: Vec<String> = image
        .layers
        .iter()
        .map(|d| d.trim_start_matches("sha256:")[..12].to_owned())
        .collect();

    let out = dir.path().join("tty");
    let pane = at_terminal(
        dir.path(),
        &["pull", &tag, "-o", out.to_str().expect("utf-8")],
        &env,
    );
    let (code, screen) = pane.finish();
    assert_eq!(code, 0, "{screen}");
    for short in &shorts {
        let finished = format!("{short} [{}]", "=".repeat(30));
        assert!(
            screen.contains(&finished),
            "no finished bar for {short}:\n{screen}"
        );
    }

    let piped = run_bin(
        Path::new(BIN),
        &[
            "pull",
            &tag,
            "-o",
            dir.path().join("piped").to_str().expect("utf-8"),
        ],
        &env,
        Duration::from_secs(60),
    )
    .await
    .ok();
    for short in &shorts {
        assert!(!piped.stderr.contains(short.as_str()), "{}", piped.stderr);
    }
    assert!(
        !piped.stderr.contains('\x1b') && !piped.stdout.contains('\x1b'),
        "no escape sequences: {:?}",
        piped.stderr
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
