//! The stock `notary` 0.7 CLI against notar-server over HTTPS: the lab's client workflow
//! (`shared/notary/lab/captured/client_workflow.md`, recorded against the real
//! notary-server), command by command, with the outputs notary-server gave.
//!
//! Expected outputs are the transcript's, normalised (`notar_tests::notary_cli::normalise`):
//! key IDs become `<id>`, the server's address `<server>`; content digests stay.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::path::Path;

use notar_tests::notary_cli::{self, Notary, normalise};
use notar_tests::server::{Backend, TestServer};

const GUN: &str = "example.com/lab/repo1";

struct Lab {
    _server: TestServer,
    dir: tempfile::TempDir,
    owner: Notary,
}

impl Lab {
    async fn start() -> Option<Lab> {
        if !notary_cli::available() {
            eprintln!("skipped: the stock notary CLI is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = notar_tests::tls::TestPki::new("notary");
        let (ca, cert, key) = pki.write(dir.path());
        let server = TestServer::start_tls(Backend::Sqlite, &cert, &key).await;
        std::fs::write(dir.path().join("v1.txt"), "hello\n").expect("write");
        std::fs::write(dir.path().join("v2.txt"), "world 2\n").expect("write");
        std::fs::write(dir.path().join("custom.json"), "{\"note\":\"custom\"}\n").expect("write");
        let owner = Notary::new(&server.url, &dir.path().join("trust"), &ca);
        Some(Lab {
            _server: server,
            dir,
            owner,
        })
    }

    fn file(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .to_str()
            .expect("utf-8")
            .to_owned()
    }

    fn reader(&self, name: &str) -> Notary {
        self.owner.with_trust_dir(&self.dir.path().join(name))
    }
}

/// Runs `args`, expects exit `code` and, normalised, `stdout`.
async fn step(notary: &Notary, args: &[&str], code: i32, stdout: &str) -> notary_cli::Output {
    let output = notary.run(args).await;
    assert_eq!(
        output.code, code,
        "notary {args:?}: exit code\nstdout:\n{}\nstderr:\n{}",
        output.stdout, output.stderr
    );
    assert_eq!(
        output.out().trim(),
        stdout.trim(),
        "notary {args:?}: stdout (stderr:\n{})",
        output.stderr
    );
    output
}

const LIST_HEADER: &str = "NAME    DIGEST                                                              SIZE (BYTES)    ROLE
----    ------                                                              ------------    ----";
const V1: &str = "v1      5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03    6               targets";
const V2: &str = "v2      408460797278cc6555f7ecf654e4f414c7c28be31bacad47489975dc8356a6a7    8               targets";
const V3: &str = "v3      aff2997b4b06a36ea7882f36732ad9b9fdb07b4058e97d6ff7156c4120de8148    1024            targets";
const V4: &str = "v4      5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03    6               targets";
const R1: &str = "r1      5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03    6               targets/releases";
const DELEGATION_HEADER: &str = "ROLE                PATHS             KEY IDS                                                             THRESHOLD
----                -----             -------                                                             ---------";
const RELEASES: &str = "targets/releases    \"\" <all paths>    <id>    1";

fn list(rows: &[&str]) -> String {
    format!("{LIST_HEADER}\n{}", rows.join("\n"))
}

/// What `notary add` prints for `tag`.
fn staged(tag: &str, gun: &str) -> String {
    format!("Addition of target \"{tag}\" to repository \"{gun}\" staged for next publish.")
}

fn published(gun: &str) -> String {
    format!("Pushing changes to {gun}\nSuccessfully published changes for repository {gun}")
}

fn auto_published(staged: &str, gun: &str) -> String {
    format!(
        "{staged}\nAuto-publishing changes to {gun}\nSuccessfully published changes for repository {gun}"
    )
}

/// init, add, addhash, publish, list, lookup, verify, a second trust directory, delegations
/// with a certificate and a bare key, witness, staging, every key rotation (targets;
/// snapshot to the server and back; timestamp; root), a reader whose cached root is the
/// old one, init -p, key export and import into a new trust directory that then publishes,
/// and delete --remote: each as notary-server answered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_notary_cli_runs_the_lab_workflow() {
    let Some(lab) = Lab::start().await else {
        return;
    };
    let owner = &lab.owner;
    let (v1, v2) = (lab.file("v1.txt"), lab.file("v2.txt"));

    step(owner, &["init", GUN], 0, "").await;
    step(
        owner,
        &["status", GUN],
        0,
        &format!("No unpublished changes for {GUN}"),
    )
    .await;
    step(owner, &["add", GUN, "v1", &v1], 0, &staged("v1", GUN)).await;
    step(
        owner,
        &["add", GUN, "v2", &v2, "--custom", &lab.file("custom.json")],
        0,
        &staged("v2", GUN),
    )
    .await;
    step(owner, &["addhash", GUN, "v3", "1024", "--sha256", notary_cli::LAB_DIGESTS[2]], 0, &format!("Addition of target \"v3\" by sha256 hash to repository \"{GUN}\" staged for next publish.")).await;
    step(owner, &["publish", GUN], 0, &published(GUN)).await;
    step(owner, &["list", GUN], 0, &list(&[V1, V2, V3])).await;
    step(
        owner,
        &["lookup", GUN, "v1"],
        0,
        &format!("v1 sha256:{} 6", notary_cli::LAB_DIGESTS[0]),
    )
    .await;

    let verified = owner
        .run_with_stdin(&["verify", GUN, "v1"], Some(b"hello\n"))
        .await
        .expect_code(0);
    assert_eq!(verified.stdout, "hello\n");
    let refused = owner
        .run_with_stdin(&["verify", GUN, "v1"], Some(b"world 2\n"))
        .await
        .expect_code(1);
    assert!(
        refused
            .stdout
            .contains("* fatal: data not present in the trusted collection")
            && refused.stdout.contains("checksum for v1 did not match"),
        "{}",
        refused.stdout
    );

    let fresh = lab.reader("fresh1");
    step(&fresh, &["list", GUN], 0, &list(&[V1, V2, V3])).await;

    // Delegations: a certificate for targets/releases, a bare key for targets/qa.
    let (key, cert) = (lab.file("releases.key"), lab.file("releases.crt"));
    notary_cli::p256_pkcs8_key(Path::new(&key));
    notary_cli::openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        &key,
        "-subj",
        "/CN=releases",
        "-days",
        "365",
        "-out",
        &cert,
    ]);
    step(
        owner,
        &["key", "import", &key, "--role", "targets/releases"],
        0,
        "",
    )
    .await;
    step(owner, &["delegation", "add", GUN, "targets/releases", &cert, "--all-paths"], 0, &format!("\nAddition of delegation role targets/releases with keys [<id>], with paths [\"\" <all paths>], to repository \"{GUN}\" staged for next publish.\n")).await;
    step(
        owner,
        &["delegation", "list", GUN],
        0,
        "\nNo delegations present in this repository.\n",
    )
    .await;
    step(owner, &["publish", GUN], 0, &published(GUN)).await;
    step(
        owner,
        &["delegation", "list", GUN],
        0,
        &format!("\n{DELEGATION_HEADER}\n{RELEASES}\n"),
    )
    .await;
    step(
        owner,
        &["add", GUN, "r1", &v1, "-r", "targets/releases"],
        0,
        &staged("r1", GUN),
    )
    .await;
    step(owner, &["publish", GUN], 0, &published(GUN)).await;
    step(owner, &["list", GUN], 0, &list(&[R1, V1, V2, V3])).await;
    step(
        owner,
        &["list", GUN, "-r", "targets/releases"],
        0,
        &list(&[R1]),
    )
    .await;

    let qa = lab.file("qa");
    step(
        owner,
        &[
            "key",
            "generate",
            "ecdsa",
            "--role",
            "targets/qa",
            "-o",
            &qa,
        ],
        0,
        "",
    )
    .await;
    step(owner, &["delegation", "add", GUN, "targets/qa", &format!("{qa}.pem"), "--paths", "qa/", "-p"], 0, &format!("\nAddition of delegation role targets/qa with keys [<id>], with paths [qa/], to repository \"{GUN}\" staged for next publish.\n\nAuto-publishing changes to {GUN}\nSuccessfully published changes for repository {GUN}")).await;
    step(
        owner,
        &["delegation", "list", GUN],
        0,
        &format!(
            "\n{DELEGATION_HEADER}\ntargets/qa          qa/               <id>    1\n{RELEASES}\n"
        ),
    )
    .await;
    step(owner, &["delegation", "remove", GUN, "targets/qa", "-y", "-p"], 0, &format!("Are you sure you want to remove all data for this delegation? (yes/no)\nConfirmed `yes` from flag\n\nForced removal (including all keys and paths) of delegation role targets/qa to repository \"{GUN}\" staged for next publish.\n\nAuto-publishing changes to {GUN}\nSuccessfully published changes for repository {GUN}")).await;
    step(
        owner,
        &["delegation", "list", GUN],
        0,
        &format!("\n{DELEGATION_HEADER}\n{RELEASES}\n"),
    )
    .await;
    step(
        &fresh,
        &["delegation", "list", GUN],
        0,
        &format!("\n{DELEGATION_HEADER}\n{RELEASES}\n"),
    )
    .await;
    step(owner, &["witness", GUN, "targets/releases", "-p"], 0, &format!("The following roles were successfully marked for witnessing on the next publish:\n\t- targets/releases\nAuto-publishing changes to {GUN}\nSuccessfully published changes for repository {GUN}")).await;

    // Staging and resetting never reach the server.
    step(owner, &["add", GUN, "v9", &v1], 0, &staged("v9", GUN)).await;
    step(
        owner,
        &["remove", GUN, "v2"],
        0,
        &format!("Removal of v2 from {GUN} staged for next publish."),
    )
    .await;
    step(
        owner,
        &["reset", GUN, "--all"],
        0,
        &format!("Successfully reset specified changes for repository {GUN}"),
    )
    .await;

    // Every key rotation Notary allows, each published at once.
    step(
        owner,
        &["key", "rotate", GUN, "targets"],
        0,
        &format!("Successfully rotated targets key for repository {GUN}"),
    )
    .await;
    step(
        owner,
        &["key", "rotate", GUN, "snapshot", "-r"],
        0,
        &format!("Successfully rotated snapshot key for repository {GUN}"),
    )
    .await;
    let server_snapshot = step(
        owner,
        &["add", GUN, "v4", &v1, "-p"],
        0,
        &auto_published(&staged("v4", GUN), GUN),
    )
    .await;
    assert!(
        !server_snapshot.stderr.contains("nearing expiry"),
        "a server-signed Notary snapshot lives as long as notary-server's: {}",
        server_snapshot.stderr
    );
    step(
        owner,
        &["key", "rotate", GUN, "timestamp", "-r"],
        0,
        &format!("Successfully rotated timestamp key for repository {GUN}"),
    )
    .await;
    let refused = owner
        .run(&["key", "rotate", GUN, "timestamp"])
        .await
        .expect_code(1);
    assert!(
        refused
            .stdout
            .contains("notary does not permit the client managing the timestamp key"),
        "{}",
        refused.stdout
    );
    step(
        owner,
        &["key", "rotate", GUN, "snapshot"],
        0,
        &format!("Successfully rotated snapshot key for repository {GUN}"),
    )
    .await;
    let rotated = owner
        .run_with_stdin(&["key", "rotate", GUN, "root"], Some(b"yes\n"))
        .await
        .expect_code(0);
    assert!(
        rotated.out().ends_with(&format!("Are you sure you want to proceed?  (yes/no)  Successfully rotated root key for repository {GUN}")),
        "{}",
        rotated.stdout
    );
    let after_rotation = list(&[R1, V1, V2, V3, V4]);
    step(&lab.reader("fresh2"), &["list", GUN], 0, &after_rotation).await;
    // fresh1 holds the first root: it walks the root chain to the new one.
    step(&fresh, &["list", GUN], 0, &after_rotation).await;
    step(owner, &["list", GUN], 0, &after_rotation).await;

    // A second repository published by init -p (the root key is reused).
    let repo3 = "example.com/lab/repo3";
    let init = step(owner, &["init", repo3, "-p"], 0, &format!("Root key found, using: <id>\nAuto-publishing changes to {repo3}\nSuccessfully published changes for repository {repo3}")).await;
    assert!(init.stderr.trim().is_empty(), "{}", init.stderr);
    step(
        &fresh,
        &["list", repo3],
        0,
        "\nNo targets present in this repository.\n",
    )
    .await;

    // Backup and restore: the restored trust directory publishes.
    let backup = lab.file("backup.pem");
    step(owner, &["key", "export", "-o", &backup], 0, "").await;
    let restored = lab.reader("restored");
    step(&restored, &["key", "import", &backup], 0, "").await;
    step(
        &restored,
        &["add", GUN, "v5", &v2, "-p"],
        0,
        &auto_published(&staged("v5", GUN), GUN),
    )
    .await;
    let v5 = "v5      408460797278cc6555f7ecf654e4f414c7c28be31bacad47489975dc8356a6a7    8               targets";
    step(owner, &["list", GUN], 0, &list(&[R1, V1, V2, V3, V4, v5])).await;

    step(owner, &["delete", repo3, "--remote"], 0, &format!("Deleting trust data for repository {repo3}\nSuccessfully deleted local and remote trust data for repository {repo3}")).await;
    let gone = owner.run(&["list", repo3]).await.expect_code(1);
    assert_eq!(
        normalise(gone.stdout.trim()),
        format!("* fatal: <server> does not have trust data for {repo3}")
    );
}

/// With token authentication on (the built-in issuer), the stock client logs in as Notary
/// clients do: a 401 with a Bearer challenge on `GET /v2/`, basic credentials from
/// `NOTARY_AUTH` at the realm, a token with the scope each request needs. Without
/// credentials it gets Notary's message for a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_notary_cli_logs_in_through_the_token_issuer() {
    use notar_tests::server::{issuer_auth, write_issuer_files};
    if !notary_cli::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = notar_tests::tls::TestPki::new("notary-auth");
    let (ca, cert, key) = pki.write(dir.path());
    let issuer_dir = dir.path().join("issuer");
    std::fs::create_dir_all(&issuer_dir).expect("dir");
    write_issuer_files(
        &issuer_dir,
        &[("alice", "alice pw", &["team"])],
        Some(
            "[[grant]]\nto = [\"group:team\"]\nrepositories = [\"example.com/*\"]\nactions = [\"pull\", \"push\", \"*\"]\n",
        ),
    );
    let server = TestServer::start_tls_bound(Backend::Sqlite, &cert, &key, |config, addr| {
        config.auth = Some(issuer_auth(
            &issuer_dir,
            format!("https://{addr}/auth/token"),
        ));
    })
    .await;
    std::fs::write(dir.path().join("f.txt"), "hello\n").expect("write");
    let gun = "example.com/app";
    let alice = Notary::new(&server.url, &dir.path().join("alice"), &ca)
        .with_env("NOTARY_AUTH", "YWxpY2U6YWxpY2UgcHc="); // alice:alice pw
    alice.run(&["init", gun]).await.expect_code(0);
    let file = dir.path().join("f.txt");
    step(
        &alice,
        &["add", gun, "v1", file.to_str().expect("utf-8"), "-p"],
        0,
        &auto_published(&staged("v1", gun), gun),
    )
    .await;
    step(
        &alice.with_trust_dir(&dir.path().join("reader")),
        &["list", gun],
        0,
        &list(&[V1]),
    )
    .await;
    let anonymous =
        Notary::new(&server.url, &dir.path().join("anonymous"), &ca).with_env("NOTARY_AUTH", "");
    let refused = anonymous.run(&["list", gun]).await.expect_code(1);
    assert!(
        refused.stdout.contains(
            "* fatal: you are not authorized to perform this operation: server returned 401."
        ),
        "{}",
        refused.stdout
    );
}
