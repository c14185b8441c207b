//! The `notar-server` binary itself: starts on its defaults in a fresh directory, answers,
//! stops cleanly on SIGTERM, and refuses to start with a secret that does not open its keys.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::BIN;

/// Starts the binary in `dir` with `args`; see [`common::start`].
fn start(dir: &std::path::Path, args: &[&str], secret: &str) -> (Child, String) {
    common::start(dir, &[], args, secret)
}

fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.notar.tuf-key+json\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    child.wait().expect("server exits")
}

#[test]
fn starts_on_defaults_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, addr) = start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        "binary test secret",
    );
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let ping = get(&addr, "/v2/");
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    let health = get(&addr, "/_notary_server/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let key = get(&addr, "/v2/example.com/app/_trust/tuf/timestamp.key");
    assert!(key.contains("\"keytype\":\"ed25519\""), "{key}");
    let status = terminate(&mut child);
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
    assert!(
        dir.path().join("notar-data/notar.db").exists(),
        "default data dir and database"
    );

    // The same data with another secret: start-up stops with a clear error.
    let stderr = common::refused_start(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        "another secret 41d9",
    );
    assert!(
        stderr.contains("server secret does not decrypt"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("41d9"),
        "the secret is not printed: {stderr}"
    );
}

#[test]
fn help_explains_every_setting() {
    let output = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--database",
        "--config",
        "--log-format",
        "--max-request-bytes",
        "--timestamp-lifetime",
        "NOTAR_DATA_DIR",
        "NOTAR_SERVER_SECRET",
        "NOTAR_LOG ",
        "[default: 127.0.0.1:4443]",
        "[default: ./notar-data]",
        "[default: 86400, one day]",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
    // Variables are named, never shown with their values (a secret could be one).
    assert!(!help.contains("=]"), "{help}");
    let secret = Command::new(BIN)
        .arg("--help")
        .env("NOTAR_TLS_KEY", "/very/secret/path")
        .output()
        .expect("runs");
    assert!(!String::from_utf8_lossy(&secret.stdout).contains("/very/secret/path"));
}

#[test]
fn completions_and_the_manual_need_no_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (args, expected) in [
        (&["completion", "bash"][..], "notar-server"),
        (&["completion", "zsh"], "#compdef notar-server"),
        (&["completion", "fish"], "complete -c notar-server"),
        (&["man"], ".TH notar-server"),
    ] {
        let output = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("NOTAR_SERVER_SECRET")
            .stdin(Stdio::null())
            .output()
            .expect("runs");
        assert!(output.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains(expected), "{args:?}: {text}");
        assert!(text.contains("import"), "{args:?} names the subcommands");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "no data directory was made"
    );
}

#[test]
fn config_file_is_read_and_bad_ones_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("bad.toml"), "listen = 5\n").expect("write");
    let output = Command::new(BIN)
        .args(["--config", "bad.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.toml"));

    std::fs::write(
        dir.path().join("good.toml"),
        "listen = \"127.0.0.1:0\"\ndata_dir = \"elsewhere\"\n",
    )
    .expect("write");
    let (mut child, addr) = start(dir.path(), &["--config", "good.toml"], "s");
    assert!(get(&addr, "/v2/").starts_with("HTTP/1.1 200"));
    assert!(terminate(&mut child).success());
    assert!(
        dir.path().join("elsewhere/notar.db").exists(),
        "data_dir from the file"
    );
}

/// `notar-server audit verify` on a database the binary wrote: intact, then edited.
#[test]
fn audit_verify_names_the_record_that_was_edited() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, addr) = start(dir.path(), &[], "audit test secret");
    // Each first GET of a managed key makes the key: one audit record each.
    for gun in ["example.com/a", "example.com/b"] {
        let response = get(&addr, &format!("/v2/{gun}/_trust/tuf/timestamp.key"));
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    assert!(terminate(&mut child).success());
    let verify = || {
        Command::new(BIN)
            .args(["audit", "verify"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    let intact = verify();
    let stdout = String::from_utf8_lossy(&intact.stdout);
    assert!(intact.status.success(), "{stdout}");
    assert!(stdout.contains("2 audit records, chain intact"), "{stdout}");

    let db = dir.path().join("notar-data/notar.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open");
        sqlx::query("UPDATE audit_log SET gun = 'example.com/c' WHERE id = 1")
            .execute(&pool)
            .await
            .expect("tamper");
        pool.close().await;
    });
    let broken = verify();
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("audit record 1:"), "{stdout}");
    assert!(stdout.contains("edited"), "{stdout}");
}

/// A lost secret file is one clear refusal, and no new secret is written over it.
#[test]
fn a_lost_secret_is_refused_and_not_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |env_secret: bool| {
        let mut command = Command::new(BIN);
        command
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("NOTAR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !env_secret {
            command.env_remove("NOTAR_SERVER_SECRET");
        }
        command
    };
    // First start makes server.secret; a GET of a managed key seals a key under it.
    let mut first = run(false).spawn().expect("starts");
    let stderr = first.stderr.take().expect("stderr");
    // The log is read to its end on a thread, so the server never writes to a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if line.contains("notar-server ready")
                && let Some(rest) = line.split("listen=").nth(1)
            {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("ready");
    let response = get(&addr, "/v2/example.com/a/_trust/tuf/timestamp.key");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(terminate(&mut first).success());
    let secret = dir.path().join("notar-data/server.secret");
    std::fs::remove_file(&secret).expect("secret removed");

    let refused = run(false).output().expect("runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server secret"), "{stderr}");
    assert!(stderr.contains("is missing"), "{stderr}");
    assert!(stderr.contains("restore"), "{stderr}");
    assert!(!secret.exists(), "a new secret was written over the loss");
}

/// A backup taken while the server runs, restored after later writes, brings back exactly
/// what it held; both commands say the secret must be kept apart.
#[test]
fn backup_while_serving_and_restore_bring_back_the_same_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = "backup test secret";
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env("NOTAR_SERVER_SECRET", secret)
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    let (mut child, addr) = start(dir.path(), &["--listen", "127.0.0.1:0"], secret);
    let key_a = get(&addr, "/v2/example.com/a/_trust/tuf/timestamp.key");
    assert!(key_a.starts_with("HTTP/1.1 200"), "{key_a}");
    let backup = dir.path().join("backup.db");
    let made = run(&["backup", backup.to_str().expect("utf-8")]);
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(
        made.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(said.contains("server secret"), "{said}");
    // A second backup to the same file is refused.
    assert!(
        !run(&["backup", backup.to_str().expect("utf-8")])
            .status
            .success()
    );
    // A write after the backup.
    let key_b = get(&addr, "/v2/example.com/b/_trust/tuf/timestamp.key");
    assert!(key_b.starts_with("HTTP/1.1 200"), "{key_b}");
    assert!(terminate(&mut child).success());

    // Garbage is refused and changes nothing.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").expect("junk");
    let refused = run(&["restore", junk.to_str().expect("utf-8")]);
    assert!(!refused.status.success());
    let restored = run(&["restore", backup.to_str().expect("utf-8")]);
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(
        restored.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(said.contains("1 audit records, chain intact"), "{said}");

    let (mut child, addr) = start(dir.path(), &["--listen", "127.0.0.1:0"], secret);
    let body = |r: &str| r.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    let again_a = get(&addr, "/v2/example.com/a/_trust/tuf/timestamp.key");
    assert_eq!(body(&again_a), body(&key_a), "the backed-up key is back");
    let again_b = get(&addr, "/v2/example.com/b/_trust/tuf/timestamp.key");
    assert_ne!(
        body(&again_b),
        body(&key_b),
        "the later key is not in the backup"
    );
    assert!(terminate(&mut child).success());
}

/// `notar-server check` on a fresh database: nothing to verify, exit 0.
#[test]
fn check_runs_on_an_empty_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(BIN)
        .args(["check", "--within-days", "7"])
        .current_dir(dir.path())
        .env("NOTAR_SERVER_SECRET", "check secret")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("0 repositories checked, 0 do not verify"),
        "{stdout}"
    );
}

/// The sample settings file parses, and names every setting `--help` lists.
#[test]
fn the_sample_config_is_valid_and_documents_every_setting() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/notar-server.toml");
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&sample)
        .args([
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
            "user",
            "list",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&sample).expect("sample");
    let help = Command::new(BIN).arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    // Flags whose TOML name differs: Notary's [auth] names, and [issuer].
    let renamed = [
        ("auth-type", "type ="),
        ("auth-realm", "realm ="),
        ("auth-service", "service ="),
        ("auth-issuer", "issuer ="),
        ("auth-root-certs", "rootcertbundle ="),
        ("issuer", "enabled ="),
        ("issuer-accounts", "accounts ="),
        ("issuer-policy", "policy ="),
        ("issuer-service", "services ="),
        ("no-ui", "ui ="),
    ];
    let mut checked = 0;
    for flag in help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|f| f.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|f| !matches!(*f, "help" | "version" | "config"))
    {
        let key = renamed
            .iter()
            .find(|(f, _)| *f == flag)
            .map(|(_, k)| (*k).to_owned())
            .unwrap_or_else(|| format!("{} =", flag.replace('-', "_")));
        assert!(
            text.contains(&key),
            "the sample does not set or mention {key:?} (--{flag})"
        );
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} flags found in --help");
}

/// The systemd unit passes `systemd-analyze verify` (with the binary under test).
#[test]
fn the_systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing in CI"
        );
        eprintln!("skipping: systemd-analyze is not installed");
        return;
    }
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/notar-server.service");
    let text = std::fs::read_to_string(&unit).expect("unit");
    assert!(text.contains("DynamicUser=yes") && text.contains("ProtectSystem=strict"));
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("notar-server.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/notar-server", BIN)).expect("copy");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `notar-server healthcheck` against a running server (on its metrics listener) and a
/// stopped one.
#[test]
fn healthcheck_asks_readyz() {
    let dir = tempfile::tempdir().expect("temp dir");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        metrics.as_str(),
    ];
    let (mut child, _) = start(dir.path(), &args, "health secret");
    let check = || {
        Command::new(BIN)
            .args(["--metrics-listen", metrics.as_str(), "healthcheck"])
            .current_dir(dir.path())
            .env("NOTAR_SERVER_SECRET", "health secret")
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    // The metrics listener comes up just after "ready": allow it a moment.
    let mut ready = check();
    for _ in 0..50 {
        if ready.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        ready = check();
    }
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let metrics_text = get(&metrics, "/metrics");
    assert!(
        metrics_text.contains("notar_server_server_signed_expiry_horizon_seconds"),
        "{metrics_text}"
    );
    assert!(terminate(&mut child).success());
    let down = check();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("not ready"));
}

/// `notar-server prune` refuses to keep nothing, and runs on an empty database.
#[test]
fn prune_keeps_at_least_one_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prune = |keep: &str| {
        Command::new(BIN)
            .args(["prune", "--keep", keep])
            .current_dir(dir.path())
            .env("NOTAR_SERVER_SECRET", "prune secret")
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    let refused = prune("0");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at least 1"));
    let ran = prune("3");
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(String::from_utf8_lossy(&ran.stdout).contains("Removed 0 old metadata files"));
}
