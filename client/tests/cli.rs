//! End-to-end tests of the real `notar` binary against a real notar-server (SQLite) on a
//! loopback port: sign → inspect → resolve, second tag, replaced tag, revoke, python-tuf's
//! ngclient on the same repository, trust on first use, root key pins, passphrase failures,
//! `key list`, concurrent signers, Docker's delegation display, broken pipes.
//!
//! Every run gets a clean environment (no passphrase or server variables from the caller),
//! `NOTAR_KDF=test` for cheap key derivation, stdin from /dev/null (never a terminal) and a
//! timeout, so a command that would wait for input fails the test instead of hanging it.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notar_tests::python;
use notar_tests::repo::{content_of, far_future, target_for, test_key};
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use notar_tuf::{Delegations, RoleName, Signed, Signer, TargetName, Targets, Version};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod common;
use common::Run;

const ROOT_PASS: &str = "root passphrase for the cli tests";
const TARGETS_PASS: &str = "targets passphrase for the cli tests";
/// A GUN with a registry port, so reference parsing must find the tag after the last `/`.
const GUN: &str = "localhost:5000/team/app";

/// `notar` with one trust directory and one server.
#[derive(Clone, Debug)]
struct Client {
    /// The binary under test (the timing test may point it at a release build).
    bin: PathBuf,
    server: String,
    trust_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Client {
    fn new(server: &TestServer, trust_dir: &Path) -> Self {
        Client {
            bin: PathBuf::from(common::BIN),
            server: server.url.clone(),
            trust_dir: trust_dir.to_path_buf(),
            env: vec![
                ("NOTAR_ROOT_PASSPHRASE".into(), ROOT_PASS.into()),
                ("NOTAR_TARGETS_PASSPHRASE".into(), TARGETS_PASS.into()),
            ],
        }
    }

    fn without_passphrases(mut self) -> Self {
        self.env.clear();
        self
    }

    fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// The environment of every run: server, trust directory, cheap key derivation, then
    /// [`Client::env`].
    fn env(&self) -> Vec<(&str, &str)> {
        let mut env = vec![
            ("NOTAR_SERVER", self.server.as_str()),
            (
                "NOTAR_TRUST_DIR",
                self.trust_dir.to_str().expect("UTF-8 trust directory"),
            ),
            ("NOTAR_KDF", "test"),
        ];
        env.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        env
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        common::command(&self.bin, args, &self.env())
    }

    async fn run(&self, args: &[&str]) -> Run {
        common::run_bin(&self.bin, args, &self.env(), Duration::from_secs(120)).await
    }

    async fn sign(&self, reference: &str, manifest: &[u8]) -> Run {
        let args = common::sign_args(reference, manifest);
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
    }

    /// (role, GUN, key ID) of every key, from `key list --json`.
    async fn keys(&self) -> Vec<(String, Option<String>, String)> {
        let listing = self.run(&["key", "list", "--json"]).await.ok().json();
        listing["keys"]
            .as_array()
            .expect("keys array")
            .iter()
            .map(|k| {
                (
                    k["role"].as_str().expect("role").to_owned(),
                    k["gun"].as_str().map(str::to_owned),
                    k["key_id"].as_str().expect("key_id").to_owned(),
                )
            })
            .collect()
    }

    async fn key_id(&self, role: &str) -> String {
        self.keys()
            .await
            .into_iter()
            .find(|(r, _, _)| r == role)
            .map(|(_, _, id)| id)
            .unwrap_or_else(|| panic!("no {role} key"))
    }

    fn metadata_dir(&self, gun: &str) -> PathBuf {
        self.trust_dir.join("tuf").join(gun)
    }
}

/// Every file under `dir` with its bytes.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).expect("readable"));
            }
        }
    }
    files
}

/// Runs python-tuf's ngclient on `gun` with a fresh cache; name → (length, sha256) or None.
async fn ngclient(
    server: &TestServer,
    gun: &str,
    names: &[&str],
) -> BTreeMap<String, Option<(u64, String)>> {
    let cache = tempfile::tempdir().expect("temp dir");
    let mut args = vec![
        server.tuf_url(gun),
        cache.path().to_str().expect("utf-8").to_owned(),
    ];
    args.extend(names.iter().map(|n| (*n).to_owned()));
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python::run("ngclient_fetch.py", &args)
    })
    .await
    .expect("python task joins");
    out.lines()
        .map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [name, "MISSING"] => (name.to_owned(), None),
                [name, length, sha256] => (
                    name.to_owned(),
                    Some((length.parse().expect("length"), sha256.to_owned())),
                ),
                _ => panic!("unexpected line from ngclient_fetch.py: {line:?}"),
            },
        )
        .collect()
}

fn tag(name: &str, manifest: &[u8], signers: &[&str]) -> Value {
    json!({"SignedTag": name, "Digest": common::digest_of(manifest).0, "Signers": signers})
}

fn inspect_doc(name: &str, tags: Vec<Value>, signers: Value, root: &str, targets: &str) -> Value {
    json!([{
        "Name": name,
        "SignedTags": tags,
        "Signers": signers,
        "AdministrativeKeys": [
            {"Name": "Root", "Keys": [{"ID": root}]},
            {"Name": "Repository", "Keys": [{"ID": targets}]},
        ],
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_inspect_resolve_replace_revoke() {
    let server = TestServer::start(Backend::Sqlite).await;
    let trust = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, trust.path());
    let (m1, m2, m3) = (
        b"manifest one".as_slice(),
        b"manifest two, longer".as_slice(),
        b"manifest three".as_slice(),
    );

    // First publish: keys on first use, root v1 and targets v1 in one upload.
    let signed = client.sign(&format!("{GUN}:v1"), m1).await.ok();
    let (d1, s1) = common::digest_of(m1);
    assert_eq!(
        signed.stdout,
        format!(
            "Signed {GUN}:v1 as sha256:{d1} ({s1} bytes) in targets version 1 on {}\n",
            server.url
        )
    );
    assert!(
        signed.stderr.contains("notar: created root key "),
        "{}",
        signed.stderr
    );
    assert!(
        signed.stderr.contains("notar: created targets key ")
            && signed.stderr.contains(&format!(" for {GUN} in ")),
        "{}",
        signed.stderr
    );
    assert!(
        !signed.stderr.contains("first contact"),
        "{}",
        signed.stderr
    );
    let root_id = client.key_id("root").await;
    let targets_id = client.key_id("targets").await;

    // Inspect: Docker's document, field by field, 4-space indent.
    let inspected = client.run(&["trust", "inspect", GUN]).await.ok();
    assert!(
        inspected
            .stdout
            .starts_with(&format!("[\n    {{\n        \"Name\": \"{GUN}\",\n        \"SignedTags\": [\n            {{\n                \"SignedTag\": \"v1\",")),
        "{}",
        inspected.stdout
    );
    assert_eq!(
        inspected.json(),
        inspect_doc(
            GUN,
            vec![tag("v1", m1, &["Repo Admin"])],
            json!([]),
            &root_id,
            &targets_id
        )
    );
    let resolved = client
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    assert_eq!(resolved.stdout, format!("{GUN}@sha256:{d1}\n"));

    // A second tag: targets version 2.
    let signed = client.sign(&format!("{GUN}:v2"), m2).await.ok();
    assert!(
        signed.stdout.contains("in targets version 2"),
        "{}",
        signed.stdout
    );
    let inspected = client.run(&["trust", "inspect", GUN]).await.ok();
    assert_eq!(
        inspected.json(),
        inspect_doc(
            GUN,
            vec![
                tag("v1", m1, &["Repo Admin"]),
                tag("v2", m2, &["Repo Admin"])
            ],
            json!([]),
            &root_id,
            &targets_id
        )
    );
    // One tag only when the reference names it; as typed in `Name`.
    let one = client
        .run(&["trust", "inspect", &format!("{GUN}:v2")])
        .await
        .ok();
    assert_eq!(
        one.json(),
        inspect_doc(
            &format!("{GUN}:v2"),
            vec![tag("v2", m2, &["Repo Admin"])],
            json!([]),
            &root_id,
            &targets_id
        )
    );

    // python-tuf verifies the same repository and finds the tags with the signed hashes.
    let found = ngclient(&server, GUN, &["v1", "v2", "v3"]).await;
    assert_eq!(found["v1"], Some((s1, d1.clone())));
    let (d2, s2) = common::digest_of(m2);
    assert_eq!(found["v2"], Some((s2, d2.clone())));
    assert_eq!(found["v3"], None);

    // Replacing a tag.
    let (d3, _) = common::digest_of(m3);
    let signed = client.sign(&format!("{GUN}:v1"), m3).await.ok();
    assert!(
        signed.stdout.contains(&format!("replacing sha256:{d1}")),
        "{}",
        signed.stdout
    );
    let resolved = client
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    assert_eq!(resolved.stdout, format!("{GUN}@sha256:{d3}\n"));
    let resolved = client
        .run(&["trust", "resolve", "--json", &format!("{GUN}:v1")])
        .await
        .ok();
    assert_eq!(resolved.json()["role"], "targets");
    assert_eq!(resolved.json()["size"], m3.len());

    // Revoking one tag: resolve and inspect of it now fail with exit 1.
    let revoked = client
        .run(&["trust", "revoke", &format!("{GUN}:v1")])
        .await
        .ok();
    assert!(
        revoked
            .stdout
            .starts_with(&format!("Revoked {GUN}:v1 in targets version 4")),
        "{}",
        revoked.stdout
    );
    let resolved = client
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .expect_code(1);
    assert_eq!(resolved.stdout, "");
    assert!(
        resolved
            .stderr
            .contains(&format!("notar: error: {GUN}:v1 is not signed")),
        "{}",
        resolved.stderr
    );
    // As Docker: a repository with trust data and no signature for the tag is an answer,
    // not an error.
    let inspected = client
        .run(&["trust", "inspect", &format!("{GUN}:v1")])
        .await
        .expect_code(0);
    assert_eq!(inspected.json()[0]["SignedTags"], json!([]));
    assert_eq!(inspected.json()[0]["Name"], format!("{GUN}:v1"));
    let revoked = client
        .run(&["trust", "revoke", &format!("{GUN}:v1")])
        .await
        .expect_code(1);
    assert!(
        revoked.stderr.contains("is not signed"),
        "{}",
        revoked.stderr
    );

    // Revoking everything needs a confirmation; without a terminal, -y.
    let refused = client.run(&["trust", "revoke", GUN]).await.expect_code(2);
    assert!(refused.stderr.contains("pass -y"), "{}", refused.stderr);
    client
        .run(&["trust", "resolve", &format!("{GUN}:v2")])
        .await
        .ok();
    let revoked = client.run(&["trust", "revoke", "-y", GUN]).await.ok();
    assert!(
        revoked
            .stdout
            .starts_with(&format!("Revoked {GUN}:v2 in targets version 5")),
        "{}",
        revoked.stdout
    );
    let inspected = client.run(&["trust", "inspect", GUN]).await.ok();
    assert_eq!(
        inspected.json(),
        inspect_doc(GUN, vec![], json!([]), &root_id, &targets_id)
    );
    let found = ngclient(&server, GUN, &["v1", "v2"]).await;
    assert_eq!(found["v1"], None);
    assert_eq!(found["v2"], None);

    // --pretty: Docker's sections.
    client.sign(&format!("{GUN}:v10"), m1).await.ok();
    client.sign(&format!("{GUN}:v9"), m2).await.ok();
    let pretty = client
        .run(&["trust", "inspect", "--pretty", GUN])
        .await
        .ok();
    let pad = " ".repeat(64 + 3 - "DIGEST".len());
    assert_eq!(
        pretty.stdout,
        format!(
            "\nSignatures for {GUN}\n\nSIGNED TAG   DIGEST{pad}SIGNERS\n\
             v9           {d2}   (Repo Admin)\n\
             v10          {d1}   (Repo Admin)\n\
             \nAdministrative keys for {GUN}\n\n  Repository Key:\t{targets_id}\n  Root Key:\t{root_id}\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_trust_directory_trusts_on_first_use_then_updates_from_what_it_kept() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher_dir = tempfile::tempdir().expect("temp dir");
    let publisher = Client::new(&server, publisher_dir.path());
    publisher.sign(&format!("{GUN}:v1"), b"one").await.ok();

    let reader_dir = tempfile::tempdir().expect("temp dir");
    let reader = Client::new(&server, reader_dir.path()).without_passphrases();
    let first = reader
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    assert!(
        first.stderr.contains(&format!(
            "notar: first contact with {GUN}: trusting the root the server sent (trust on first use"
        )),
        "{}",
        first.stderr
    );
    // Kept exactly as served.
    let http = reqwest::Client::new();
    let served = |file: &str| {
        let url = format!("{}{file}", server.tuf_url(GUN));
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .expect("GET")
                .bytes()
                .await
                .expect("body")
                .to_vec()
        }
    };
    let dir = reader.metadata_dir(GUN);
    for file in [
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
    ] {
        let kept = std::fs::read(dir.join(file)).expect("kept");
        let wanted = if file == "root.json" {
            served("1.root.json").await
        } else {
            served(file).await
        };
        assert_eq!(kept, wanted, "{file} differs from what the server serves");
    }
    let second = reader
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    assert!(
        !second.stderr.contains("first contact"),
        "{}",
        second.stderr
    );

    // The publisher signs again; the reader follows from its kept state.
    publisher.sign(&format!("{GUN}:v2"), b"two").await.ok();
    let third = reader
        .run(&["trust", "resolve", &format!("{GUN}:v2")])
        .await
        .ok();
    assert_eq!(
        third.stdout,
        format!("{GUN}@sha256:{}\n", common::digest_of(b"two").0)
    );
    assert_eq!(
        std::fs::read(dir.join("targets.json")).expect("kept"),
        served("targets.json").await
    );

    // Short-lived targets draw a warning from every reading command.
    publisher
        .run(&[
            "trust",
            "sign",
            &format!("{GUN}:v3"),
            "--digest",
            &format!("sha256:{}", common::digest_of(b"three").0),
            "--size",
            "5",
            "--targets-lifetime",
            "10",
        ])
        .await
        .ok();
    let warned = reader.run(&["trust", "inspect", GUN]).await.ok();
    assert!(
        warned.stderr.contains(&format!(
            "notar: warning: the targets metadata of {GUN} expires at "
        )),
        "{}",
        warned.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_without_trust_data_prints_an_empty_array_and_exits_1() {
    let server = TestServer::start(Backend::Sqlite).await;
    let trust = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, trust.path());
    let run = client
        .run(&["trust", "inspect", "localhost:5000/nothing"])
        .await
        .expect_code(1);
    assert_eq!(run.stdout, "[]\n");
    assert_eq!(
        run.stderr,
        format!(
            "notar: error: no trust data for localhost:5000/nothing on {}\n",
            server.url
        )
    );
    let run = client
        .run(&["trust", "resolve", "alpine:latest"])
        .await
        .expect_code(1);
    assert!(
        run.stderr
            .contains("no trust data for docker.io/library/alpine"),
        "{}",
        run.stderr
    );
    assert!(files_under(trust.path()).is_empty(), "nothing written");
    // An unreachable trust server is not a verdict on trust: `[]`, its own message, exit 2.
    let run = client
        .run(&["trust", "inspect", "--server", "http://127.0.0.1:9", GUN])
        .await
        .expect_code(2);
    assert_eq!(run.stdout, "[]\n");
    assert!(
        run.stderr.contains(&format!(
            "notar: error: cannot read the trust data of {GUN} from the trust server"
        )),
        "{}",
        run.stderr
    );

    // Several references: the good one is shown, the bad one is reported, exit 1.
    client.sign(&format!("{GUN}:v1"), b"one").await.ok();
    let run = client
        .run(&["trust", "inspect", GUN, "localhost:5000/nothing"])
        .await
        .expect_code(1);
    let doc = run.json();
    assert_eq!(doc.as_array().expect("array").len(), 1);
    assert_eq!(doc[0]["Name"], GUN);
    assert!(
        run.stderr
            .contains("no trust data for localhost:5000/nothing"),
        "{}",
        run.stderr
    );

    // Usage errors are exit 2.
    let run = client
        .run(&["trust", "resolve", "Bad/Name:v1"])
        .await
        .expect_code(2);
    assert!(
        run.stderr.starts_with("notar: error: invalid reference"),
        "{}",
        run.stderr
    );
    let run = client
        .run(&[
            "trust",
            "sign",
            &format!("{GUN}:v2"),
            "--digest",
            "sha256:xyz",
            "--size",
            "1",
        ])
        .await
        .expect_code(2);
    assert!(run.stderr.contains("invalid digest"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_is_refused_and_changes_no_file() {
    let server = TestServer::start(Backend::Sqlite).await;
    let trust = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, trust.path());
    client.sign(&format!("{GUN}:v1"), b"one").await.ok();
    let before = files_under(trust.path());

    // Wrong targets passphrase on an existing repository.
    let wrong_targets = client
        .clone()
        .with_env("NOTAR_TARGETS_PASSPHRASE", "not the targets passphrase");
    let run = wrong_targets
        .sign(&format!("{GUN}:v2"), b"two")
        .await
        .expect_code(2);
    assert!(
        run.stderr
            .starts_with("notar: error: unlocking the targets key ")
            && run
                .stderr
                .contains("caused by: wrong passphrase for targets key "),
        "{}",
        run.stderr
    );
    assert_eq!(files_under(trust.path()), before, "a file changed");

    // Wrong root passphrase while creating another repository: no key, no metadata made.
    let wrong_root = client
        .clone()
        .with_env("NOTAR_ROOT_PASSPHRASE", "not the root passphrase");
    let run = wrong_root
        .sign("localhost:5000/other:v1", b"one")
        .await
        .expect_code(2);
    assert!(
        run.stderr
            .contains("caused by: wrong passphrase for root key "),
        "{}",
        run.stderr
    );
    assert_eq!(files_under(trust.path()), before, "a file changed");
    client
        .run(&["trust", "resolve", "localhost:5000/other:v1"])
        .await
        .expect_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_passphrase_or_a_terminal_sign_fails_at_once() {
    let server = TestServer::start(Backend::Sqlite).await;
    let trust = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, trust.path()).without_passphrases();
    let started = Instant::now();
    let run = client
        .sign(&format!("{GUN}:v1"), b"one")
        .await
        .expect_code(2);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        run.stderr
            .contains("set NOTAR_ROOT_PASSPHRASE (stdin is not a terminal, so notar cannot ask)"),
        "{}",
        run.stderr
    );
    assert!(
        files_under(&trust.path().join("private")).is_empty(),
        "no key written"
    );
    // With the root passphrase only, the targets passphrase is what is missing; still
    // nothing is written (the root key is made in memory first).
    let run = client
        .clone()
        .with_env("NOTAR_ROOT_PASSPHRASE", ROOT_PASS)
        .sign(&format!("{GUN}:v1"), b"one")
        .await
        .expect_code(2);
    assert!(
        run.stderr.contains("set NOTAR_TARGETS_PASSPHRASE"),
        "{}",
        run.stderr
    );
    assert!(files_under(&trust.path().join("private")).is_empty());
    // Docker's variables work too.
    client
        .clone()
        .with_env("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", ROOT_PASS)
        .with_env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", TARGETS_PASS)
        .sign(&format!("{GUN}:v1"), b"one")
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_root_key_refuses_other_roots() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher_dir = tempfile::tempdir().expect("temp dir");
    let publisher = Client::new(&server, publisher_dir.path());
    publisher.sign(&format!("{GUN}:v1"), b"one").await.ok();
    let root_id = publisher.key_id("root").await;
    let other_id = publisher.key_id("targets").await;

    // --root-key with a key that signed no root: refused on first contact, nothing kept.
    let reader_dir = tempfile::tempdir().expect("temp dir");
    let reader = Client::new(&server, reader_dir.path());
    let run = reader
        .run(&["trust", "inspect", "--root-key", &other_id, GUN])
        .await
        .expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "notar: error: the pinned root key {other_id} signed no root of {GUN} (root versions 1 to 1 on the server)"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "[]\n");
    assert!(!reader.metadata_dir(GUN).join("root.json").exists());
    // The right key: accepted, no trust-on-first-use notice.
    let run = reader
        .run(&[
            "trust",
            "resolve",
            "--root-key",
            &root_id,
            &format!("{GUN}:v1"),
        ])
        .await
        .ok();
    assert!(!run.stderr.contains("first contact"), "{}", run.stderr);

    // A saved pin is checked against the server's roots before it is kept.
    let run = reader
        .run(&["trust", "pin", GUN, &other_id])
        .await
        .expect_code(1);
    assert!(run.stderr.contains("signed no root of"), "{}", run.stderr);
    let pinned_dir = tempfile::tempdir().expect("temp dir");
    let pinned = Client::new(&server, pinned_dir.path());
    pinned
        .run(&["trust", "pin", GUN, &other_id])
        .await
        .expect_code(1);
    assert!(
        !pinned.metadata_dir(GUN).join("_pinned_root_key").exists(),
        "a refused pin is not kept"
    );
    // A prefix names only a root key known here: never one the server offers, since a
    // key sharing its first 12 digits is cheap to make.
    let run = pinned
        .run(&["trust", "pin", GUN, &root_id[..12]])
        .await
        .expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "no root key this trust directory holds or has trusted starts with {}",
            &root_id[..12]
        )),
        "{}",
        run.stderr
    );
    // The reader kept the root on first contact, the publisher holds the key: both may
    // give 8 digits.
    let run = reader.run(&["trust", "pin", GUN, &root_id[..8]]).await.ok();
    assert!(
        run.stdout
            .starts_with(&format!("Pinned the root key of {GUN} to {root_id}")),
        "{}",
        run.stdout
    );
    reader.run(&["trust", "unpin", GUN]).await.ok();
    publisher
        .run(&[
            "trust",
            "resolve",
            "--root-key",
            &root_id[..8].to_ascii_uppercase(),
            &format!("{GUN}:v1"),
        ])
        .await
        .ok();
    let run = reader
        .run(&[
            "trust",
            "resolve",
            "--root-key",
            &other_id[..8],
            &format!("{GUN}:v1"),
        ])
        .await
        .expect_code(2);
    assert!(
        run.stderr.contains("has trusted starts with"),
        "{}",
        run.stderr
    );
    let run = pinned.run(&["trust", "pin", GUN, &root_id]).await.ok();
    assert!(
        run.stdout
            .starts_with(&format!("Pinned the root key of {GUN} to {root_id}")),
        "{}",
        run.stdout
    );
    let run = pinned
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    assert!(!run.stderr.contains("first contact"), "{}", run.stderr);
    // A pin also guards the first publish of a repository.
    let run = publisher
        .run(&[
            "trust",
            "sign",
            "--root-key",
            &other_id,
            "localhost:5000/new:v1",
            "--digest",
            &format!("sha256:{}", common::digest_of(b"x").0),
            "--size",
            "1",
        ])
        .await
        .expect_code(2);
    assert!(
        run.stderr.contains("would not match the pin"),
        "{}",
        run.stderr
    );
}

/// Pins hold across root rotations: a key that signed any root from which the chain to
/// the current root verifies is accepted; a re-created repository is named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_survive_root_rotations_and_a_changed_root_is_named() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let client = |name: &str| Client::new(&server, &dirs.path().join(name));
    let owner = client("owner");
    owner.sign(&format!("{GUN}:v1"), b"one").await.ok();
    let original = owner.key_id("root").await;
    let targets_key = owner.key_id("targets").await;
    let consumer = client("consumer");
    consumer.run(&["trust", "pin", GUN, &original]).await.ok();
    consumer
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();

    let mut current = original.clone();
    for version in [2, 3] {
        let rotated = owner
            .run(&["--json", "key", "rotate", GUN, "root"])
            .await
            .ok()
            .json();
        assert_eq!(rotated["root_version"], version);
        current = rotated["new_key"].as_str().expect("new key").to_owned();
    }
    owner.sign(&format!("{GUN}:v2"), b"two").await.ok();

    // Pinned before both rotations: still works.
    let run = consumer
        .run(&["trust", "resolve", &format!("{GUN}:v2")])
        .await
        .ok();
    assert!(run.stdout.contains("@sha256:"), "{}", run.stdout);
    // Fresh trust directories pinned to the original or the current key both work.
    for (name, key) in [("fresh-original", &original), ("fresh-current", &current)] {
        let run = client(name)
            .run(&["trust", "resolve", "--root-key", key, &format!("{GUN}:v2")])
            .await
            .ok();
        assert!(
            !run.stderr.contains("first contact"),
            "{name}: {}",
            run.stderr
        );
    }
    // A key that signed no root is refused, saying so.
    let run = client("fresh-wrong")
        .run(&[
            "trust",
            "resolve",
            "--root-key",
            &targets_key,
            &format!("{GUN}:v2"),
        ])
        .await
        .expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "{targets_key} signed no root of {GUN} (root versions 1 to 3"
        )),
        "{}",
        run.stderr
    );
    // trust pin after the rotations, then unpin.
    consumer.run(&["trust", "pin", GUN, &current]).await.ok();
    let run = consumer.run(&["trust", "unpin", GUN]).await.ok();
    assert_eq!(run.stdout, format!("Removed the root key pin of {GUN}\n"));
    assert!(!consumer.metadata_dir(GUN).join("_pinned_root_key").exists());
    // First contact names the current root, not root v1.
    let run = client("tofu")
        .run(&["trust", "resolve", &format!("{GUN}:v2")])
        .await
        .ok();
    assert!(
        run.stderr
            .contains(&format!("root version 3, root key {current}")),
        "{}",
        run.stderr
    );

    // The repository is deleted and made again with another root.
    let deleted = reqwest::Client::new()
        .delete(format!("{}/v2/{GUN}/_trust/tuf/", server.url))
        .send()
        .await
        .expect("delete");
    assert!(deleted.status().is_success());
    let other = client("other-owner");
    other.sign(&format!("{GUN}:v1"), b"evil").await.ok();
    let new_root = other.key_id("root").await;
    let run = consumer
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .expect_code(1);
    assert!(
        run.stderr.contains(&format!("the root of {GUN} changed"))
            && run.stderr.contains(&current)
            && run.stderr.contains(&new_root)
            && run.stderr.contains(&format!("notar trust reset {GUN}")),
        "{}",
        run.stderr
    );
    consumer.run(&["trust", "reset", GUN]).await.ok();
    let run = consumer
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    assert!(run.stderr.contains("first contact"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_list_shows_role_gun_key_id_and_file_and_reports_damaged_files() {
    let server = TestServer::start(Backend::Sqlite).await;
    let trust = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, trust.path());
    client.sign(&format!("{GUN}:v1"), b"one").await.ok();
    client.sign("localhost:5000/second:v1", b"one").await.ok();
    let keys = client.keys().await;
    assert_eq!(
        keys.len(),
        3,
        "one root key shared, one targets key per GUN: {keys:?}"
    );
    let root_id = client.key_id("root").await;
    let private = trust.path().join("private");
    let listed = client.run(&["key", "list"]).await.ok();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", listed.stdout);
    let columns = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        columns(lines[0]),
        ["ROLE", "GUN", "KEY", "ID", "SIGNER", "FILE"]
    );
    assert_eq!(
        columns(lines[1]),
        [
            "root".to_owned(),
            "-".to_owned(),
            root_id.clone(),
            "-".to_owned(),
            private.join(format!("{root_id}.key")).display().to_string()
        ]
    );
    assert_eq!(columns(lines[2])[..2], ["targets", "localhost:5000/second"]);
    assert_eq!(columns(lines[3])[..2], ["targets", GUN]);

    let damaged = private.join(format!("{}.key", "0".repeat(64)));
    std::fs::write(&damaged, b"not a key file\n").expect("write");
    let listed = client.run(&["key", "list"]).await.ok();
    assert_eq!(listed.stdout.lines().count(), 4);
    assert!(
        listed.stderr.contains(&format!(
            "notar: warning: cannot read key file {}: ",
            damaged.display()
        )),
        "{}",
        listed.stderr
    );
    let listed = client.run(&["key", "list", "--json"]).await.ok();
    assert_eq!(
        listed.json()["damaged"][0]["file"],
        damaged.display().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signers_both_land() {
    let server = TestServer::start(Backend::Sqlite).await;
    let first = tempfile::tempdir().expect("temp dir");
    let a = Client::new(&server, first.path());
    a.sign(&format!("{GUN}:v0"), b"zero").await.ok();
    // A second trust directory with the same keys and metadata.
    let second = tempfile::tempdir().expect("temp dir");
    for (path, bytes) in files_under(first.path()) {
        let to = second
            .path()
            .join(path.strip_prefix(first.path()).expect("under"));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::write(to, bytes).expect("copy");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            second.path().join("private"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");
    }
    let b = Client::new(&server, second.path());
    for round in 0..3 {
        let (ta, tb) = (format!("{GUN}:a{round}"), format!("{GUN}:b{round}"));
        let (ra, rb) = tokio::join!(a.sign(&ta, b"a"), b.sign(&tb, b"b"));
        ra.ok();
        rb.ok();
    }
    let inspected = a.run(&["trust", "inspect", GUN]).await.ok();
    let doc = inspected.json();
    let inspected_tags: Vec<&str> = doc[0]["SignedTags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["SignedTag"].as_str().expect("tag"))
        .collect();
    assert_eq!(inspected_tags, ["a0", "a1", "a2", "b0", "b1", "b2", "v0"]);
}

/// Docker's display of delegations: tags released in `targets` or `targets/releases`,
/// signers from the other delegated roles, `targets/releases` itself not a signer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_delegated_signers_as_docker_does() {
    const DGUN: &str = "registry.example/team/delegated";
    let server = TestServer::start(Backend::Sqlite).await;
    let mut publisher = Publisher::new(&server, DGUN, SnapshotKey::Server);
    publisher.init(&["admin-tag"]).await;
    let (releases_key, alice_key) = (test_key(31), test_key(32));
    let mut targets = publisher.make_targets(2, &["admin-tag"]);
    let mut delegations = Delegations::new();
    delegations.add_role(
        RoleName::new("targets/releases").expect("name"),
        &[releases_key.public_key()],
        NonZeroU32::MIN,
        vec!["*".into()],
    );
    delegations.add_role(
        RoleName::new("targets/alice").expect("name"),
        &[alice_key.public_key()],
        NonZeroU32::MIN,
        vec!["*".into()],
    );
    // A signer that signs only tags outside releases: Docker would hide them, but a pull
    // resolves them, so notar shows them with the signer that really signed.
    delegations.add_role(
        RoleName::new("targets/bob").expect("name"),
        &[test_key(33).public_key()],
        NonZeroU32::MIN,
        vec!["bob-*".into()],
    );
    targets.delegations = Some(delegations);
    // targets and targets/releases disagree on `contested`: Docker's order reads releases.
    targets.targets.insert(
        TargetName::new("contested").expect("name"),
        target_for(b"the admin's contested"),
    );
    let targets = publisher.sign_targets(targets);
    let role = |names: &[&str], key: &ed25519_dalek::SigningKey| {
        let mut role = Targets::new(Version::ONE, far_future());
        for name in names {
            role.targets.insert(
                TargetName::new(*name).expect("name"),
                target_for(&content_of(name)),
            );
        }
        Signed::sign(role, &[key]).expect("sign")
    };
    let releases = role(&["released", "release-only", "contested"], &releases_key);
    let alice = role(&["released", "alice-only"], &alice_key);
    let bob = role(&["bob-1"], &test_key(33));
    let response = publisher
        .upload(vec![
            ("targets".into(), targets.as_bytes().to_vec()),
            ("targets/releases".into(), releases.as_bytes().to_vec()),
            ("targets/alice".into(), alice.as_bytes().to_vec()),
            ("targets/bob".into(), bob.as_bytes().to_vec()),
        ])
        .await;
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );

    let trust = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, trust.path());
    let doc = client.run(&["trust", "inspect", DGUN]).await.ok().json();
    let digest = |name: &str| hex::encode(Sha256::digest(content_of(name)));
    let key_id = |key: &ed25519_dalek::SigningKey| key.public_key().key_id().to_string();
    assert_eq!(
        doc[0]["SignedTags"],
        json!([
            {"SignedTag": "admin-tag", "Digest": digest("admin-tag"), "Signers": ["Repo Admin"]},
            {"SignedTag": "alice-only", "Digest": digest("alice-only"), "Signers": ["alice"]},
            {"SignedTag": "bob-1", "Digest": digest("bob-1"), "Signers": ["bob"]},
            {"SignedTag": "contested", "Digest": digest("contested"), "Signers": ["Repo Admin"]},
            {"SignedTag": "release-only", "Digest": digest("release-only"), "Signers": ["Repo Admin"]},
            {"SignedTag": "released", "Digest": digest("released"), "Signers": ["alice"]},
        ])
    );
    assert_eq!(
        doc[0]["Signers"],
        json!([
            {"Name": "bob", "Keys": [{"ID": key_id(&test_key(33))}]},
            {"Name": "alice", "Keys": [{"ID": key_id(&alice_key)}]},
        ])
    );
    // resolve walks in Docker's order, as pull does: releases before targets.
    let resolved = client
        .run(&["trust", "resolve", "--json", &format!("{DGUN}:contested")])
        .await
        .ok()
        .json();
    assert_eq!(resolved["role"], "targets/releases");
    assert_eq!(
        resolved["digest"],
        format!("sha256:{}", digest("contested"))
    );
    let run = client
        .run(&["trust", "resolve", "--json", &format!("{DGUN}:alice-only")])
        .await
        .ok();
    assert_eq!(run.json()["role"], "targets/alice");
    let run = client
        .run(&["trust", "resolve", "--json", &format!("{DGUN}:released")])
        .await
        .ok();
    assert_eq!(run.json()["role"], "targets/releases");
    // The delegated roles are kept too, percent-encoded.
    assert!(
        client
            .metadata_dir(DGUN)
            .join("targets%2Freleases.json")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_is_not_an_error() {
    const BGUN: &str = "localhost:5000/big";
    let server = TestServer::start(Backend::Sqlite).await;
    let names: Vec<String> = (0..2000).map(|i| format!("tag-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Publisher::new(&server, BGUN, SnapshotKey::Server)
        .init(&names)
        .await;
    let trust = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, trust.path());
    let mut child = client
        .command(&["trust", "inspect", BGUN])
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("finishes")
        .expect("waits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// notar asks for gzip and verifies what it decodes: a cold `trust inspect` of a large
/// repository gets targets.json compressed and lists every tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_large_metadata_through_gzip() {
    const BGUN: &str = "localhost:5000/gzip";
    let server = TestServer::start(Backend::Sqlite).await;
    let names: Vec<String> = (0..500).map(|i| format!("tag-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Publisher::new(&server, BGUN, SnapshotKey::Server)
        .init(&names)
        .await;
    let before = server.state.metrics.compressed.get();
    let trust = tempfile::tempdir().expect("temp dir");
    let run = Client::new(&server, trust.path())
        .run(&["trust", "inspect", BGUN])
        .await
        .ok();
    assert_eq!(
        run.json()[0]["SignedTags"].as_array().expect("tags").len(),
        500
    );
    assert!(
        server.state.metrics.compressed.get() > before,
        "targets.json came gzip-encoded"
    );
}

/// Wall time of `notar trust inspect` on 10,000 tags, cold (empty trust directory) and
/// warm (metadata kept from the run before). Run with
/// `cargo test -p notar --test cli -- --ignored --nocapture inspect_timing`; set
/// `NOTAR_TIMING_BIN=target/release/notar` to time a release build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn inspect_timing_10k_tags() {
    const TGUN: &str = "localhost:5000/ten-thousand";
    const RUNS: usize = 7;
    let server = TestServer::start(Backend::Sqlite).await;
    let names: Vec<String> = (0..10_000).map(|i| format!("tag-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Publisher::new(&server, TGUN, SnapshotKey::Server)
        .init(&names)
        .await;
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let bin = std::env::var_os("NOTAR_TIMING_BIN").map(PathBuf::from);
    let client_in = |dir: &Path| {
        let mut client = Client::new(&server, dir);
        if let Some(bin) = &bin {
            client.bin = bin.clone();
        }
        client
    };
    let mut cold = Vec::new();
    for _ in 0..RUNS {
        let trust = tempfile::tempdir().expect("temp dir");
        let client = client_in(trust.path());
        let started = Instant::now();
        let run = client.run(&["trust", "inspect", TGUN]).await.ok();
        cold.push(started.elapsed());
        assert_eq!(
            run.json()[0]["SignedTags"].as_array().expect("tags").len(),
            10_000
        );
    }
    let trust = tempfile::tempdir().expect("temp dir");
    let client = client_in(trust.path());
    client.run(&["trust", "inspect", TGUN]).await.ok();
    let mut warm = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        client.run(&["trust", "inspect", TGUN]).await.ok();
        warm.push(started.elapsed());
    }
    let mut resolve = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        client
            .run(&["trust", "resolve", &format!("{TGUN}:tag-1")])
            .await
            .ok();
        resolve.push(started.elapsed());
    }
    eprintln!(
        "notar trust inspect, 10000 tags, {RUNS} runs each: cold median {:?} (all {cold:?}); warm median {:?} (all {warm:?}); warm resolve median {:?}",
        median(cold.clone()),
        median(warm.clone()),
        median(resolve.clone())
    );
}

/// The trust server over TLS: a certificate from an unknown CA is refused with a message
/// that says what to do; the CA from `--ca-cert`, `NOTAR_CA_CERT` or Docker's
/// `~/.docker/tls/<host:port>/ca.crt` is trusted; plain HTTP off loopback is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_server_over_tls() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let pki = notar_tests::tls::TestPki::new("cli");
    let (ca, cert, key) = pki.write(pki_dir.path());
    let server = TestServer::start_tls(Backend::Sqlite, &cert, &key).await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let trust = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("temp dir");
    let client =
        Client::new(&server, trust.path()).with_env("HOME", home.path().to_str().expect("utf-8"));
    let ca = ca.to_str().expect("utf-8");

    let refused = client.run(&["trust", "inspect", GUN]).await.expect_code(2);
    assert!(
        refused
            .stderr
            .contains("the server's TLS certificate is not trusted here")
            && refused.stderr.contains("--ca-cert"),
        "{}",
        refused.stderr
    );
    let digest = common::digest_of(b"over tls");
    let signed = client
        .run(&[
            "trust",
            "sign",
            "--ca-cert",
            ca,
            &format!("{GUN}:v1"),
            "--digest",
            &format!("sha256:{}", digest.0),
            "--size",
            &digest.1.to_string(),
        ])
        .await
        .ok();
    assert!(signed.stdout.starts_with("Signed"), "{}", signed.stdout);
    let with_env = client.clone().with_env("NOTAR_CA_CERT", ca);
    let resolved = with_env
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    assert!(resolved.stdout.contains(&digest.0), "{}", resolved.stdout);
    // Docker's convention: the CA of one server in ~/.docker/tls/<host:port>/ca.crt.
    let docker = home
        .path()
        .join(".docker/tls")
        .join(server.addr.to_string());
    std::fs::create_dir_all(&docker).expect("mkdir");
    std::fs::write(docker.join("ca.crt"), &pki.ca_pem).expect("write");
    client
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    // Plain HTTP to a server that is not on loopback is refused before any request.
    let run = client
        .run(&[
            "trust",
            "inspect",
            "--server",
            "http://trust.example.com:4443",
            GUN,
        ])
        .await
        .expect_code(2);
    assert!(
        run.stderr
            .contains("reach it over HTTPS (https://trust.example.com:4443)"),
        "{}",
        run.stderr
    );
}

/// Several tags in one `trust sign`: one upload, one new targets version, each key
/// unlocked once (`-vv` logs every unlock). With `--digest` they are all that manifest.
/// Tags of two repositories, or one tag twice, are refused before anything is touched.
#[tokio::test]
async fn several_tags_sign_in_one_upload_and_unlock_each_key_once() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, dir.path());
    let (digest, size) = common::digest_of(b"release 1.2.3");
    let sign = |tags: &[&str]| {
        let mut args: Vec<String> = vec!["trust".into(), "sign".into()];
        args.extend(tags.iter().map(|t| format!("{GUN}:{t}")));
        args.extend([
            "--digest".into(),
            format!("sha256:{digest}"),
            "--size".into(),
            size.to_string(),
            "-vv".into(),
        ]);
        args
    };
    let created = client
        .run(
            &sign(&["1.2.3", "1.2", "latest"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await
        .ok();
    for tag in ["1.2.3", "1.2", "latest"] {
        assert!(
            created.stdout.contains(&format!(
                "Signed {GUN}:{tag} as sha256:{digest} ({size} bytes) in targets version 1"
            )),
            "{}",
            created.stdout
        );
    }
    let again = client
        .run(
            &sign(&["1.2.4", "1.3", "latest"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await
        .ok();
    assert!(
        again.stdout.contains("latest as") && again.stdout.contains("in targets version 2"),
        "{}",
        again.stdout
    );
    assert_eq!(
        again.stderr.matches("unlocked the targets key").count(),
        1,
        "{}",
        again.stderr
    );
    let inspected = client.run(&["trust", "inspect", GUN]).await.ok().json();
    let tags: Vec<&str> = inspected[0]["SignedTags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["SignedTag"].as_str().expect("tag"))
        .collect();
    assert_eq!(tags, ["1.2", "1.2.3", "1.2.4", "1.3", "latest"]);
    let changes = server
        .state
        .store
        .changes(
            Some(&notar_tuf::Gun::new(GUN).expect("GUN")),
            notar_server::store::ChangeQuery::After {
                after: 0,
                limit: 10,
            },
        )
        .await
        .expect("changes");
    assert_eq!(changes.len(), 2, "one update per command: {changes:?}");

    let before = files_under(dir.path());
    let two_repos = client
        .run(&[
            "trust",
            "sign",
            &format!("{GUN}:2.0"),
            "localhost:5000/other:2.0",
            "--digest",
            &format!("sha256:{digest}"),
            "--size",
            &size.to_string(),
        ])
        .await
        .expect_code(2);
    assert!(
        two_repos.stderr.contains("must be of one repository"),
        "{}",
        two_repos.stderr
    );
    let twice = client
        .run(
            &sign(&["2.0", "2.0"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await
        .expect_code(2);
    assert!(twice.stderr.contains("is given twice"), "{}", twice.stderr);
    assert_eq!(files_under(dir.path()), before);
}
