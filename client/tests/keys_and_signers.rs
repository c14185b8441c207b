//! End-to-end tests of signers (Docker's delegation model) with the real `notar` binary
//! against a real notar-server: `trust key generate`/`load`, `trust signer add`/`remove`,
//! signing and revoking by signers into `targets/<name>` and `targets/releases`, `trust
//! inspect` showing them, and a threshold of 2 honoured by the client and the server.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use notar_tests::server::{Backend, TestServer};
use serde_json::{Value, json};

mod common;
use common::Run;

const GUN: &str = "localhost:5000/team/app";
const DELEGATION_PASS: &str = "delegation passphrase for the signer tests";

/// `notar` with one trust directory and one server.
struct Client {
    server: String,
    trust_dir: PathBuf,
}

impl Client {
    fn new(server: &TestServer, trust_dir: &Path) -> Self {
        Client {
            server: server.url.clone(),
            trust_dir: trust_dir.to_path_buf(),
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[]).await
    }

    /// [`Client::run`] with `env` set on top of the usual passphrases.
    async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let trust_dir = self.trust_dir.to_str().expect("UTF-8 trust directory");
        let mut all = vec![
            ("NOTAR_SERVER", self.server.as_str()),
            ("NOTAR_TRUST_DIR", trust_dir),
            ("NOTAR_KDF", "test"),
            ("NOTAR_ROOT_PASSPHRASE", "root passphrase"),
            ("NOTAR_TARGETS_PASSPHRASE", "targets passphrase"),
            ("NOTAR_DELEGATION_PASSPHRASE", DELEGATION_PASS),
        ];
        all.extend_from_slice(env);
        common::run_notar(args, &all, Duration::from_secs(120)).await
    }

    async fn sign(&self, reference: &str, manifest: &[u8]) -> Run {
        let args = common::sign_args(reference, manifest);
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
    }

    /// `trust key generate <name> --dir <dir>`; the path of <name>.pub and the key ID.
    async fn generate(&self, name: &str, dir: &Path) -> (PathBuf, String) {
        let run = self
            .run(&[
                "--json",
                "trust",
                "key",
                "generate",
                name,
                "--dir",
                dir.to_str().expect("utf-8 path"),
            ])
            .await
            .ok();
        let made = run.json();
        (
            dir.join(format!("{name}.pub")),
            made["key_id"].as_str().expect("key_id").to_owned(),
        )
    }
}

/// `trust inspect` of one tag: its signers, or `None` when it is not shown.
async fn signers_of(client: &Client, tag: &str) -> Option<Vec<String>> {
    let doc = client.run(&["trust", "inspect", GUN]).await.ok().json();
    doc[0]["SignedTags"]
        .as_array()
        .expect("SignedTags")
        .iter()
        .find(|t| t["SignedTag"] == tag)
        .map(|t| {
            t["Signers"]
                .as_array()
                .expect("Signers")
                .iter()
                .map(|s| s.as_str().expect("name").to_owned())
                .collect()
        })
}

#[tokio::test]
async fn two_signers_sign_inspect_revoke_and_remove() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    let alice = Client::new(&server, &dirs.path().join("alice"));
    let bob = Client::new(&server, &dirs.path().join("bob"));
    let pubs = dirs.path().join("pubs");
    std::fs::create_dir_all(&pubs).expect("mkdir");

    owner.sign(&format!("{GUN}:v1"), b"manifest one").await.ok();
    let (alice_pub, alice_id) = alice.generate("alice", &pubs).await;
    let (bob_pub, bob_id) = bob.generate("bob", &pubs).await;
    let alice_pub = alice_pub.to_str().expect("utf-8");
    let bob_pub = bob_pub.to_str().expect("utf-8");
    // The same name twice would overwrite a public key: refused.
    let again = alice
        .run(&[
            "trust",
            "key",
            "generate",
            "alice",
            "--dir",
            pubs.to_str().expect("utf-8"),
        ])
        .await
        .expect_code(2);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);

    // Signing before any delegation: the signer's trust directory has no key that may sign.
    let refused = alice
        .sign(&format!("{GUN}:v2"), b"manifest two")
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("no private key for the targets role"),
        "{}",
        refused.stderr
    );

    let added = owner
        .run(&["trust", "signer", "add", "alice", GUN, "--key", alice_pub])
        .await
        .ok();
    assert!(
        added.stdout.contains("Added (pending) signer alice"),
        "{}",
        added.stdout
    );
    assert!(
        added.stderr.contains(
            "the delegation to targets/alice and targets/releases of localhost:5000/team/app is pending"
        ),
        "{}",
        added.stderr
    );
    // Until alice signs, her delegation is pending on the server and the published
    // repository is unchanged: python-tuf reads it, the owner's tag still resolves and
    // inspect still works.
    let python_cache = dirs.path().join("ngclient");
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v1", "v2"]).await,
        ["v1"]
    );
    let resolved = owner
        .run(&["trust", "resolve", &format!("{GUN}:v1")])
        .await
        .ok();
    assert!(resolved.stdout.contains("@sha256:"), "{}", resolved.stdout);
    let inspected = owner.run(&["trust", "inspect", GUN]).await.ok();
    assert!(
        inspected.stdout.contains("\"SignedTag\": \"v1\""),
        "{}",
        inspected.stdout
    );
    // Adding her again while pending stages the same delegation again.
    let twice = owner
        .run(&["trust", "signer", "add", "alice", GUN, "--key", alice_pub])
        .await
        .ok();
    assert!(
        twice.stdout.contains("Added (pending) signer alice"),
        "{}",
        twice.stdout
    );
    // A private key where a public key belongs.
    let private = dirs.path().join("private.pem");
    std::fs::write(
        &private,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let wrong = owner
        .run(&[
            "trust",
            "signer",
            "add",
            "carol",
            GUN,
            "--key",
            private.to_str().expect("utf-8"),
        ])
        .await
        .expect_code(2);
    assert!(
        wrong.stderr.contains("holds a private key"),
        "{}",
        wrong.stderr
    );

    owner
        .run(&["trust", "signer", "add", "bob", GUN, "--key", bob_pub])
        .await
        .ok();

    // Both sign v2 with the same digest: into their own roles and targets/releases.
    let signed = alice
        .run(&[
            "--json",
            "trust",
            "sign",
            &format!("{GUN}:v2"),
            "--digest",
            &format!("sha256:{}", common::digest_of(b"manifest two").0),
            "--size",
            &common::digest_of(b"manifest two").1.to_string(),
        ])
        .await
        .ok()
        .json();
    let roles: Vec<&str> = signed["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| r["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["targets/alice", "targets/releases"]);
    assert_eq!(signed["roles"][0]["key_ids"], json!([alice_id]));
    // Her first signature published her delegation with her roles: python-tuf follows.
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v1", "v2"]).await,
        ["v1", "v2"]
    );
    // Bob's pending delegation was signed on the targets alice's first signature replaced:
    // it is stale until the owner publishes targets again, and bob is told so.
    let stale = bob
        .sign(&format!("{GUN}:v2"), b"manifest two")
        .await
        .expect_code(2);
    assert!(
        stale
            .stderr
            .contains("has moved on since the owner signed it"),
        "{}",
        stale.stderr
    );
    let mut resign = common::sign_args(&format!("{GUN}:v1"), b"manifest one");
    resign.extend(["--role".to_owned(), "targets".to_owned()]);
    let run = owner
        .run(&resign.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok();
    assert!(
        run.stderr
            .contains("re-signed the pending delegation to targets/bob"),
        "{}",
        run.stderr
    );
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v1", "v2"]).await,
        ["v1", "v2"]
    );
    bob.sign(&format!("{GUN}:v2"), b"manifest two").await.ok();
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v1", "v2"]).await,
        ["v1", "v2"]
    );

    assert_eq!(
        signers_of(&owner, "v2").await,
        Some(vec!["alice".into(), "bob".into()])
    );
    assert_eq!(
        signers_of(&owner, "v1").await,
        Some(vec!["Repo Admin".into()])
    );
    let doc = owner.run(&["trust", "inspect", GUN]).await.ok().json();
    assert_eq!(
        doc[0]["Signers"],
        json!([
            {"Name": "bob", "Keys": [{"ID": bob_id}]},
            {"Name": "alice", "Keys": [{"ID": alice_id}]},
        ])
    );

    // Bob revokes: the tag leaves targets/bob and targets/releases. Alice's own role still
    // signs it, and a pull resolves it through her role, so inspect names her (Docker
    // would hide a tag that is not in targets/releases); alice signing it again releases it.
    let revoked = bob
        .run(&["trust", "revoke", &format!("{GUN}:v2")])
        .await
        .ok();
    assert!(revoked.stdout.contains("Revoked"), "{}", revoked.stdout);
    assert_eq!(signers_of(&owner, "v2").await, Some(vec!["alice".into()]));
    alice.sign(&format!("{GUN}:v2"), b"manifest two").await.ok();
    assert_eq!(signers_of(&owner, "v2").await, Some(vec!["alice".into()]));
    // Revoking a tag the signer never signed: a clear error, nothing uploaded.
    let never = bob
        .run(&["trust", "revoke", &format!("{GUN}:v9")])
        .await
        .expect_code(1);
    assert!(never.stderr.contains("v9"), "{}", never.stderr);

    // Removing: an unknown signer, no confirmation without a terminal, then bob.
    let unknown = owner
        .run(&["trust", "signer", "remove", "carol", GUN, "-y"])
        .await
        .expect_code(2);
    assert!(
        unknown.stderr.contains("has no signer carol"),
        "{}",
        unknown.stderr
    );
    let unconfirmed = owner
        .run(&["trust", "signer", "remove", "bob", GUN])
        .await
        .expect_code(2);
    assert!(
        unconfirmed.stderr.contains("pass -y"),
        "{}",
        unconfirmed.stderr
    );
    owner
        .run(&["trust", "signer", "remove", "bob", GUN, "-y"])
        .await
        .ok();
    let doc = owner.run(&["trust", "inspect", GUN]).await.ok().json();
    assert_eq!(
        doc[0]["Signers"],
        json!([{"Name": "alice", "Keys": [{"ID": alice_id}]}])
    );
    // Bob's key may no longer sign anything here.
    let refused = bob
        .sign(&format!("{GUN}:v4"), b"manifest four")
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("holds no key of one whose paths allow v4"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn threshold_two_needs_two_keys_in_the_client_and_the_server() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    let team = Client::new(&server, &dirs.path().join("team"));
    let pubs = dirs.path().join("pubs");
    std::fs::create_dir_all(&pubs).expect("mkdir");
    owner.sign(&format!("{GUN}:v1"), b"manifest one").await.ok();
    let (a_pub, a_id) = team.generate("a", &pubs).await;
    let (b_pub, b_id) = team.generate("b", &pubs).await;
    let too_high = owner
        .run(&[
            "trust",
            "signer",
            "add",
            "team",
            GUN,
            "--key",
            a_pub.to_str().expect("utf-8"),
            "--threshold",
            "3",
        ])
        .await
        .expect_code(2);
    assert!(
        too_high.stderr.contains("has only 1 keys"),
        "{}",
        too_high.stderr
    );
    owner
        .run(&[
            "trust",
            "signer",
            "add",
            "team",
            GUN,
            "--key",
            a_pub.to_str().expect("utf-8"),
            "--key",
            b_pub.to_str().expect("utf-8"),
            "--threshold",
            "2",
        ])
        .await
        .ok();

    // With both keys, one sign carries both signatures.
    team.sign(&format!("{GUN}:v2"), b"manifest two").await.ok();
    let (status, bytes) = get(&server, "targets%2Fteam.json").await;
    assert_eq!(status, 200);
    let role: Value = serde_json::from_slice(&bytes).expect("json");
    let mut sigs: Vec<&str> = role["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|s| s["keyid"].as_str().expect("keyid"))
        .collect();
    sigs.sort_unstable();
    let mut expected = vec![a_id.as_str(), b_id.as_str()];
    expected.sort_unstable();
    assert_eq!(sigs, expected);
    assert_eq!(signers_of(&owner, "v2").await, Some(vec!["team".into()]));

    // The server refuses a version carrying one of the two signatures.
    let store = notar_keys::KeyStore::open(team.trust_dir.clone()).expect("store");
    let a = store
        .load(
            &notar_tuf::KeyId::new(a_id.clone()).expect("key id"),
            DELEGATION_PASS,
        )
        .expect("unlocks");
    let signed: notar_tuf::Signed<notar_tuf::Targets> =
        notar_tuf::Signed::from_bytes(bytes.clone()).expect("parses");
    let mut next = signed.untrusted().clone();
    next.version = next.version.next();
    let signers: [&dyn notar_tuf::Signer; 1] = [&a];
    let one = notar_tuf::Signed::sign(next, &signers).expect("signs");
    let response = upload(&server, "targets/team", one.as_bytes().to_vec()).await;
    assert_eq!(response.0, 400, "{}", response.1);
    assert!(response.1.contains("INVALID_UPDATE"), "{}", response.1);

    // Without the second key, the client refuses before it uploads anything.
    std::fs::remove_file(team.trust_dir.join("private").join(format!("{b_id}.key")))
        .expect("remove key b");
    let refused = team
        .sign(&format!("{GUN}:v3"), b"manifest three")
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("needs signatures from 2 keys, and this trust directory holds 1"),
        "{}",
        refused.stderr
    );
    let (_, after) = get(&server, "targets%2Fteam.json").await;
    assert_eq!(after, bytes, "nothing was uploaded");
}

#[tokio::test]
async fn trust_key_load_imports_a_pkcs8_pem_encrypted() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let client = Client::new(&server, &dirs.path().join("trust"));
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let pem = signing.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let file = dirs.path().join("key.pem");
    std::fs::write(&file, pem.as_bytes()).expect("write");
    let made = client
        .run(&[
            "--json",
            "trust",
            "key",
            "load",
            file.to_str().expect("utf-8"),
            "--name",
            "ci",
        ])
        .await
        .ok()
        .json();
    let id = notar_tuf::PublicKey::ed25519(&signing.verifying_key()).key_id();
    assert_eq!(made["key_id"], id.as_str());
    let stored = std::fs::read(client.trust_dir.join("private").join(format!("{id}.key")))
        .expect("key file");
    assert!(
        !stored.windows(pem.len()).any(|w| w == pem.as_bytes()),
        "the PEM is not stored in the clear"
    );
    // Loading it again imports nothing and says so.
    let again = client
        .run(&[
            "trust",
            "key",
            "load",
            file.to_str().expect("utf-8"),
            "--name",
            "ci",
        ])
        .await
        .expect_code(2);
    assert!(
        again.stderr.contains("already in the key store"),
        "{}",
        again.stderr
    );
    assert!(!again.stdout.to_lowercase().contains("success"));
    // A public key is not a private key.
    let public = dirs.path().join("pub.pem");
    std::fs::write(
        &public,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .expect("write");
    let wrong = client
        .run(&[
            "trust",
            "key",
            "load",
            public.to_str().expect("utf-8"),
            "--name",
            "x",
        ])
        .await
        .expect_code(2);
    assert!(
        wrong.stderr.contains("this is a public key"),
        "{}",
        wrong.stderr
    );
}

async fn get(server: &TestServer, file: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(format!("{}{file}", server.tuf_url(GUN)))
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

async fn upload(server: &TestServer, role: &str, bytes: Vec<u8>) -> (u16, String) {
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(bytes).file_name(role.to_owned()),
    );
    let response = reqwest::Client::new()
        .post(server.tuf_url(GUN))
        .multipart(form)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Runs python-tuf's ngclient (refresh, then look up `names`) with `cache` as its metadata
/// directory; returns the names it found.
async fn ngclient_found(server: &TestServer, cache: &Path, names: &[&str]) -> Vec<String> {
    let mut args = vec![
        server.tuf_url(GUN),
        cache.to_str().expect("utf-8 path").to_owned(),
    ];
    args.extend(names.iter().map(|n| (*n).to_owned()));
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        notar_tests::python::run("ngclient_fetch.py", &args)
    })
    .await
    .expect("python task joins");
    out.lines()
        .filter(|line| !line.ends_with("MISSING"))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Tags `trust inspect` shows.
async fn tags_of(client: &Client) -> Vec<String> {
    let doc = client.run(&["trust", "inspect", GUN]).await.ok().json();
    doc[0]["SignedTags"]
        .as_array()
        .expect("SignedTags")
        .iter()
        .map(|t| t["SignedTag"].as_str().expect("tag").to_owned())
        .collect()
}

/// Rotates `role` with `extra` flags between two signatures; a notar client and
/// python-tuf's ngclient that cached the state before the rotation follow it. Returns the
/// `key rotate --json` result.
async fn rotation_round_trip(
    server: &TestServer,
    dirs: &Path,
    role: &str,
    extra: &[&str],
) -> Value {
    let owner = Client::new(server, &dirs.join("owner"));
    let consumer = Client::new(server, &dirs.join("consumer"));
    let python_cache = dirs.join("ngclient");
    owner.sign(&format!("{GUN}:v1"), b"manifest one").await.ok();
    assert_eq!(tags_of(&consumer).await, ["v1"]);
    assert_eq!(
        ngclient_found(server, &python_cache, &["v1", "v2"]).await,
        ["v1"]
    );

    let mut args = vec!["--json", "key", "rotate", GUN, role];
    args.extend_from_slice(extra);
    let rotated = owner.run(&args).await.ok().json();
    assert_eq!(rotated["role"], role);
    assert_eq!(rotated["root_version"], 2);
    assert_ne!(rotated["old_keys"][0], rotated["new_key"]);
    let (_, root) = get(server, "root.json").await;
    let root: Value = serde_json::from_slice(&root).expect("json");
    assert_eq!(
        root["signed"]["roles"][role]["keyids"],
        json!([rotated["new_key"]]),
        "root v2 lists the new key only"
    );

    owner.sign(&format!("{GUN}:v2"), b"manifest two").await.ok();
    assert_eq!(tags_of(&consumer).await, ["v1", "v2"]);
    assert_eq!(
        ngclient_found(server, &python_cache, &["v1", "v2"]).await,
        ["v1", "v2"]
    );
    rotated
}

#[tokio::test]
async fn rotating_targets_then_the_old_key_is_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let rotated = rotation_round_trip(&server, dirs.path(), "targets", &[]).await;
    let owner = Client::new(&server, &dirs.path().join("owner"));
    let old_id = rotated["old_keys"][0].as_str().expect("old key");
    // The retired key left the key store: `key list` shows the new targets key only.
    let listed = owner.run(&["--json", "key", "list"]).await.ok().json();
    let targets_keys: Vec<&Value> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["role"] == "targets")
        .map(|k| &k["key_id"])
        .collect();
    assert_eq!(targets_keys, [&rotated["new_key"]]);

    // Compromise drill: the old key signs a new targets version with an evil tag.
    let retired = owner
        .trust_dir
        .join("private")
        .join("retired")
        .join(format!("{old_id}.key"));
    let old = notar_keys::decrypt_key(
        &std::fs::read(retired).expect("retired key"),
        "targets passphrase",
    )
    .expect("unlocks");
    let (_, current) = get(&server, "targets.json").await;
    let current: notar_tuf::Signed<notar_tuf::Targets> =
        notar_tuf::Signed::from_bytes(current).expect("parses");
    let mut evil = current.untrusted().clone();
    evil.targets.insert(
        "evil".parse().expect("target name"),
        notar_tuf::TargetFile::sha256(4, [0xee; 32]),
    );
    // The same content and version the snapshot pins, so only the signature can tell.
    let same_version = current.untrusted().clone();
    evil.version = evil.version.next();
    let signers: [&dyn notar_tuf::Signer; 1] = [&old];
    let forged = notar_tuf::Signed::sign(evil, &signers).expect("signs");
    let (status, body) = upload(&server, "targets", forged.as_bytes().to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("INVALID_UPDATE"), "{body}");

    // A client served targets signed by the old key refuses them.
    let forged = notar_tuf::Signed::sign(same_version, &signers).expect("signs");
    let (_, root) = get(&server, "1.root.json").await;
    let fetch = Forging {
        base: server.tuf_url(GUN),
        targets: forged.as_bytes().to_vec(),
    };
    let mut updater = notar_tuf::client::Updater::new(
        root,
        fetch,
        time::OffsetDateTime::now_utc(),
        notar_tuf::client::Limits::default(),
    )
    .expect("root v1 verifies");
    let err = updater.refresh().await.expect_err("forged targets refused");
    assert!(err.to_string().contains("targets"), "{err}");
    assert!(updater.targets(&notar_tuf::RoleName::targets()).is_none());
    // Offered as trusted (a cache written by someone else), the same bytes are refused
    // under root v2, which no longer lists the old key.
    let (_, root2) = get(&server, "2.root.json").await;
    let mut updater = notar_tuf::client::Updater::new(
        root2,
        Forging {
            base: server.tuf_url(GUN),
            targets: Vec::new(),
        },
        time::OffsetDateTime::now_utc(),
        notar_tuf::client::Limits::default(),
    )
    .expect("root v2 verifies");
    let err = updater
        .load_trusted(&notar_tuf::RoleName::targets(), forged.as_bytes().to_vec())
        .expect_err("old key refused");
    assert!(err.to_string().contains("signature"), "{err}");
}

/// Serves the server's files, except top-level targets, which it replaces with `targets`.
struct Forging {
    base: String,
    targets: Vec<u8>,
}

impl notar_tuf::client::Fetch for Forging {
    fn fetch(
        &self,
        name: &str,
        _max_len: u64,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, notar_tuf::client::FetchError>> + Send
    {
        let url = format!("{}{name}", self.base);
        let forged = name.ends_with(".targets.json") || name == "targets.json";
        let targets = self.targets.clone();
        async move {
            if forged {
                return Ok(Some(targets));
            }
            let response = reqwest::get(url).await.expect("GET");
            if response.status() == 404 {
                return Ok(None);
            }
            Ok(Some(response.bytes().await.expect("body").to_vec()))
        }
    }
}

#[tokio::test]
async fn rotating_root_is_followed_through_the_chain() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let rotated = rotation_round_trip(&server, dirs.path(), "root", &[]).await;
    // Root v2 is signed by the old and the new root keys.
    let (_, root) = get(&server, "2.root.json").await;
    let root: Value = serde_json::from_slice(&root).expect("json");
    let mut sigs: Vec<&str> = root["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|s| s["keyid"].as_str().expect("keyid"))
        .collect();
    sigs.sort_unstable();
    let mut expected = vec![
        rotated["old_keys"][0].as_str().expect("old"),
        rotated["new_key"].as_str().expect("new"),
    ];
    expected.sort_unstable();
    assert_eq!(sigs, expected);
    // A second rotation signs with the new key (found by its ID in root v2).
    let owner = Client::new(&server, &dirs.path().join("owner"));
    let again = owner
        .run(&["--json", "key", "rotate", GUN, "root"])
        .await
        .ok()
        .json();
    assert_eq!(again["old_keys"], json!([rotated["new_key"]]));
    assert_eq!(again["root_version"], 3);
}

#[tokio::test]
async fn rotating_timestamp_and_snapshot_to_new_server_keys() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    rotation_round_trip(&server, dirs.path(), "timestamp", &[]).await;
    let owner = Client::new(&server, &dirs.path().join("owner"));
    let consumer = Client::new(&server, &dirs.path().join("consumer"));
    let rotated = owner
        .run(&[
            "--json",
            "key",
            "rotate",
            GUN,
            "snapshot",
            "--server-managed",
        ])
        .await
        .ok()
        .json();
    assert_eq!(rotated["root_version"], 3);
    owner
        .sign(&format!("{GUN}:v3"), b"manifest three")
        .await
        .ok();
    assert_eq!(tags_of(&consumer).await, ["v1", "v2", "v3"]);
    let (_, snapshot) = get(&server, "snapshot.json").await;
    let snapshot: Value = serde_json::from_slice(&snapshot).expect("json");
    assert_eq!(snapshot["signatures"][0]["keyid"], rotated["new_key"]);

    // Refusals, each before anything changes.
    let client_held = owner
        .run(&["key", "rotate", GUN, "snapshot"])
        .await
        .expect_code(2);
    assert!(
        client_held.stderr.contains("--server-managed"),
        "{}",
        client_held.stderr
    );
    let misplaced = owner
        .run(&["key", "rotate", GUN, "targets", "--server-managed"])
        .await
        .expect_code(2);
    assert!(
        misplaced.stderr.contains("snapshot only"),
        "{}",
        misplaced.stderr
    );
    let stranger = Client::new(&server, &dirs.path().join("stranger"));
    let no_key = stranger
        .run(&["key", "rotate", GUN, "targets"])
        .await
        .expect_code(2);
    assert!(
        no_key.stderr.contains("no private key for the root role"),
        "{}",
        no_key.stderr
    );
    let (_, root) = get(&server, "root.json").await;
    let root: Value = serde_json::from_slice(&root).expect("json");
    assert_eq!(
        root["signed"]["version"], 3,
        "no refused rotation stored a root"
    );
}

/// Each key's outcome from a `--json` key report.
fn outcomes(run: &Run) -> Vec<(String, String)> {
    run.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["role"].as_str().expect("role").to_owned(),
                k["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn backup_wipe_restore_sign_and_after_a_passphrase_change() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    owner.sign(&format!("{GUN}:v1"), b"manifest one").await.ok();
    let archive = dirs.path().join("keys.backup");
    let archive_arg = archive.to_str().expect("utf-8");
    let backed = owner
        .run(&["--json", "key", "backup", archive_arg])
        .await
        .ok();
    let mut roles = outcomes(&backed);
    roles.sort();
    assert_eq!(
        roles,
        [
            ("root".into(), "backed-up".into()),
            ("targets".into(), "backed-up".into())
        ]
    );
    let exists = owner
        .run(&["key", "backup", archive_arg])
        .await
        .expect_code(2);
    assert!(
        exists.stderr.contains("exists already"),
        "{}",
        exists.stderr
    );

    // Wipe, restore, sign.
    std::fs::remove_dir_all(&owner.trust_dir).expect("wipe");
    let restored = owner
        .run(&["--json", "key", "restore", archive_arg])
        .await
        .ok();
    assert!(outcomes(&restored).iter().all(|(_, o)| o == "restored"));
    owner.sign(&format!("{GUN}:v2"), b"manifest two").await.ok();
    // Again: nothing written, nothing called restored.
    let again = owner.run(&["key", "restore", archive_arg]).await.ok();
    assert!(!again.stdout.contains(": restored"), "{}", again.stdout);
    assert_eq!(
        again
            .stdout
            .matches("skipped: already present and identical")
            .count(),
        2
    );

    // A passphrase change: the old passphrase stops working, the new one signs.
    let targets_id = owner.run(&["--json", "key", "list"]).await.ok().json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["role"] == "targets")
        .map(|k| k["key_id"].as_str().expect("id").to_owned())
        .expect("targets key");
    let key_file = owner
        .trust_dir
        .join("private")
        .join(format!("{targets_id}.key"));
    let before = std::fs::read(&key_file).expect("key file");
    // No new passphrase and no terminal: refused, the file as it was.
    let refused = owner
        .run(&["key", "passwd", &targets_id])
        .await
        .expect_code(2);
    assert!(
        refused.stderr.contains("NOTAR_NEW_PASSPHRASE"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read(&key_file).expect("key file"), before);
    owner
        .run_env(
            &["key", "passwd", &targets_id],
            &[("NOTAR_NEW_PASSPHRASE", "new targets pass")],
        )
        .await
        .ok();
    owner
        .sign(&format!("{GUN}:v3"), b"manifest three")
        .await
        .expect_code(2);
    let (digest, size) = common::digest_of(b"manifest three");
    let new_pass = [("NOTAR_TARGETS_PASSPHRASE", "new targets pass")];
    let sign_v3 = [
        "trust",
        "sign",
        &format!("{GUN}:v3"),
        "--digest",
        &format!("sha256:{digest}"),
        "--size",
        &size.to_string(),
    ]
    .map(|s| s.to_owned());
    let sign_v3: Vec<&str> = sign_v3.iter().map(String::as_str).collect();
    owner.run_env(&sign_v3, &new_pass).await.ok();

    // Back up after the change, wipe, restore: the new passphrase signs.
    let archive2 = dirs.path().join("keys2.backup");
    owner
        .run(&["key", "backup", archive2.to_str().expect("utf-8")])
        .await
        .ok();
    std::fs::remove_dir_all(&owner.trust_dir).expect("wipe");
    owner
        .run(&["key", "restore", archive2.to_str().expect("utf-8")])
        .await
        .ok();
    let (digest, size) = common::digest_of(b"manifest four");
    let sign_v4: Vec<String> = [
        "trust",
        "sign",
        &format!("{GUN}:v4"),
        "--digest",
        &format!("sha256:{digest}"),
        "--size",
        &size.to_string(),
    ]
    .map(|s| s.to_owned())
    .to_vec();
    let sign_v4: Vec<&str> = sign_v4.iter().map(String::as_str).collect();
    owner.run_env(&sign_v4, &new_pass).await.ok();
    assert_eq!(tags_of(&owner).await, ["v1", "v2", "v3", "v4"]);
}

#[tokio::test]
async fn damaged_archives_restore_nothing_and_name_the_entry() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    owner.sign(&format!("{GUN}:v1"), b"manifest one").await.ok();
    let archive = dirs.path().join("keys.backup");
    owner
        .run(&["key", "backup", archive.to_str().expect("utf-8")])
        .await
        .ok();
    let bytes = std::fs::read(&archive).expect("archive");
    let mut doc: Value = serde_json::from_slice(&bytes).expect("json");
    let id = doc["keys"][1]["key_id"].as_str().expect("id").to_owned();
    let file = doc["keys"][1]["file"].as_str().expect("file").to_owned();
    let flipped = if file.ends_with("0\n") { "1\n" } else { "0\n" };
    doc["keys"][1]["file"] = format!("{}{flipped}", &file[..file.len() - 2]).into();
    let altered = dirs.path().join("altered.backup");
    std::fs::write(&altered, serde_json::to_vec(&doc).expect("json")).expect("write");
    let truncated = dirs.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).expect("write");

    let fresh = Client::new(&server, &dirs.path().join("fresh"));
    let run = fresh
        .run(&["key", "restore", altered.to_str().expect("utf-8")])
        .await
        .expect_code(2);
    assert!(
        run.stderr.contains(&id) && run.stderr.contains("checksum"),
        "{}",
        run.stderr
    );
    let run = fresh
        .run(&["key", "restore", truncated.to_str().expect("utf-8")])
        .await
        .expect_code(2);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
    let listed = fresh.run(&["--json", "key", "list"]).await.ok().json();
    assert_eq!(listed["keys"], json!([]), "nothing was written");
}

#[tokio::test]
async fn export_and_import_single_keys() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    owner.sign(&format!("{GUN}:v1"), b"manifest one").await.ok();
    let listed = owner.run(&["--json", "key", "list"]).await.ok().json();
    let targets_id = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["role"] == "targets")
        .map(|k| k["key_id"].as_str().expect("id").to_owned())
        .expect("targets key");
    let exported = dirs.path().join("targets.key");
    let exported_arg = exported.to_str().expect("utf-8");
    owner
        .run(&["key", "export", &targets_id, "-o", exported_arg])
        .await
        .ok();

    let other = Client::new(&server, &dirs.path().join("other"));
    let wrong = other
        .run(&["key", "import", exported_arg, "--role", "root"])
        .await
        .expect_code(2);
    assert!(wrong.stderr.contains("not a root key"), "{}", wrong.stderr);
    let imported = other
        .run(&["--json", "key", "import", exported_arg])
        .await
        .ok();
    assert_eq!(outcomes(&imported), [("targets".into(), "imported".into())]);
    let again = other.run(&["key", "import", exported_arg]).await.ok();
    assert!(
        again
            .stdout
            .contains("skipped: already present and identical"),
        "{}",
        again.stdout
    );
    assert!(!again.stdout.to_lowercase().contains("success"));

    // An unencrypted PKCS#8 PEM is encrypted on import.
    let signing = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
    let pem = dirs.path().join("key.pem");
    std::fs::write(
        &pem,
        signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pem")
            .as_bytes(),
    )
    .expect("write");
    let pem_arg = pem.to_str().expect("utf-8");
    let no_role = other.run(&["key", "import", pem_arg]).await.expect_code(2);
    assert!(
        no_role.stderr.contains("needs --role"),
        "{}",
        no_role.stderr
    );
    let imported = other
        .run(&[
            "--json",
            "key",
            "import",
            pem_arg,
            "--role",
            "targets",
            "--gun",
            "example.com/x",
        ])
        .await
        .ok();
    assert_eq!(outcomes(&imported), [("targets".into(), "imported".into())]);
    let not_ed25519 = dirs.path().join("rsa.pem");
    std::fs::write(&not_ed25519, "-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEA\n-----END PRIVATE KEY-----\n").expect("write");
    let refused = other
        .run(&[
            "key",
            "import",
            not_ed25519.to_str().expect("utf-8"),
            "--role",
            "root",
        ])
        .await
        .expect_code(2);
    assert!(
        refused.stderr.contains("not a PKCS#8 PrivateKeyInfo"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn rotating_to_a_given_key_and_failed_rotations_change_nothing() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    owner.sign(&format!("{GUN}:v1"), b"manifest one").await.ok();
    let private = owner.trust_dir.join("private");
    let files_before: Vec<_> = std::fs::read_dir(&private)
        .expect("private dir")
        .map(|e| e.expect("entry").file_name())
        .collect();

    // A wrong root passphrase: refused before any key is made or anything uploaded.
    let wrong = owner
        .run_env(
            &["key", "rotate", GUN, "targets"],
            &[("NOTAR_ROOT_PASSPHRASE", "not the root passphrase")],
        )
        .await
        .expect_code(2);
    assert!(
        wrong.stderr.contains("wrong passphrase"),
        "{}",
        wrong.stderr
    );
    let files_after: Vec<_> = std::fs::read_dir(&private)
        .expect("private dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files_before, files_after, "no key file made or moved");
    let (_, root) = get(&server, "root.json").await;
    let root: Value = serde_json::from_slice(&root).expect("json");
    assert_eq!(root["signed"]["version"], 1);

    // --key: rotate to a given PKCS#8 key, encrypted on import.
    let signing = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let pem = dirs.path().join("new-targets.pem");
    std::fs::write(
        &pem,
        signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pem")
            .as_bytes(),
    )
    .expect("write");
    let pem_arg = pem.to_str().expect("utf-8");
    let rotated = owner
        .run(&["--json", "key", "rotate", GUN, "targets", "--key", pem_arg])
        .await
        .ok()
        .json();
    let expected = notar_tuf::PublicKey::ed25519(&signing.verifying_key()).key_id();
    assert_eq!(rotated["new_key"], expected.as_str());
    owner.sign(&format!("{GUN}:v2"), b"manifest two").await.ok();
    // The same key again: nothing to rotate.
    let same = owner
        .run(&["key", "rotate", GUN, "targets", "--key", pem_arg])
        .await
        .expect_code(2);
    assert!(
        same.stderr.contains("already the targets key"),
        "{}",
        same.stderr
    );
    let misplaced = owner
        .run(&["key", "rotate", GUN, "timestamp", "--key", pem_arg])
        .await
        .expect_code(2);
    assert!(
        misplaced.stderr.contains("held by the server"),
        "{}",
        misplaced.stderr
    );
}

/// A signer added with `--paths` can make no client accept a tag outside them: it gets
/// only its own role with those paths, the server refuses a role listing another tag,
/// and notar and python-tuf resolve only what the paths allow.
#[tokio::test]
async fn a_path_restricted_signer_signs_only_inside_its_paths() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    let bob = Client::new(&server, &dirs.path().join("bob"));
    let consumer = Client::new(&server, &dirs.path().join("consumer"));
    let pubs = dirs.path().join("pubs");
    std::fs::create_dir_all(&pubs).expect("mkdir");
    owner
        .sign(&format!("{GUN}:v9"), b"the owner's v9")
        .await
        .ok();
    // Bob's key is one the test holds too, so it can forge what a malicious bob would.
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    let bob_key = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let pem_file = dirs.path().join("bob.pem");
    std::fs::write(
        &pem_file,
        bob_key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pem")
            .as_bytes(),
    )
    .expect("write");
    bob.run(&[
        "trust",
        "key",
        "load",
        pem_file.to_str().expect("utf-8"),
        "--name",
        "bob",
    ])
    .await
    .ok();
    let bob_public = notar_tuf::PublicKey::ed25519(&bob_key.verifying_key());
    let bob_id = bob_public.key_id().to_string();
    let bob_pub = pubs.join("bob.pub");
    std::fs::write(&bob_pub, serde_json::to_vec(&bob_public).expect("json")).expect("write");
    owner
        .run(&[
            "trust",
            "signer",
            "add",
            "bob",
            GUN,
            "--key",
            bob_pub.to_str().expect("utf-8"),
            "--paths",
            "rc-*",
        ])
        .await
        .ok();
    // Pending until bob signs: python-tuf reads the repository as before.
    let python_cache = dirs.path().join("ngclient");
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v9"]).await,
        ["v9"]
    );

    // Bob may not sign v9: no role of his allows it, so nothing is uploaded.
    let refused = bob
        .sign(&format!("{GUN}:v9"), b"bob's v9")
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("holds no key of one whose paths allow v9"),
        "{}",
        refused.stderr
    );
    let signed = bob.sign(&format!("{GUN}:rc-1"), b"bob's rc-1").await.ok();
    assert!(
        signed.stdout.contains("in targets/bob version 1"),
        "{}",
        signed.stdout
    );
    // Two tags in one command: one new version of bob's role holds both. A tag his paths
    // do not allow refuses the whole command, and nothing is signed.
    let (rc, rc_size) = common::digest_of(b"bob's rc-2 and rc-3");
    let both = bob
        .run(&[
            "trust",
            "sign",
            &format!("{GUN}:rc-2"),
            &format!("{GUN}:rc-3"),
            "--digest",
            &format!("sha256:{rc}"),
            "--size",
            &rc_size.to_string(),
        ])
        .await
        .ok();
    assert!(
        both.stdout
            .contains(&format!("Signed {GUN}:rc-2 in targets/bob version 2"))
            && both
                .stdout
                .contains(&format!("Signed {GUN}:rc-3 in targets/bob version 2")),
        "{}",
        both.stdout
    );
    let mixed = bob
        .run(&[
            "trust",
            "sign",
            &format!("{GUN}:rc-4"),
            &format!("{GUN}:v10"),
            "--digest",
            &format!("sha256:{rc}"),
            "--size",
            &rc_size.to_string(),
        ])
        .await
        .expect_code(2);
    assert!(
        mixed
            .stderr
            .contains("holds no key of one whose paths allow v10"),
        "{}",
        mixed.stderr
    );
    assert_eq!(signers_of(&consumer, "rc-4").await, None);
    assert_eq!(
        signers_of(&consumer, "rc-3").await,
        Some(vec!["bob".into()])
    );

    let (_, targets) = get(&server, "targets.json").await;
    let targets: Value = serde_json::from_slice(&targets).expect("json");
    assert_eq!(
        &targets["signed"]["delegations"]["roles"],
        &json!([{"name": "targets/bob", "keyids": [bob_id], "threshold": 1,
                 "terminating": false, "paths": ["rc-*"]}]),
        "bob gets his own role with his paths, and stays out of targets/releases"
    );

    // Bob signs v9 into his role by hand, with his own key: the server refuses it.
    let (_, bob_role) = get(&server, "targets%2Fbob.json").await;
    let mut forged = notar_tuf::Signed::<notar_tuf::Targets>::from_bytes(bob_role)
        .expect("bob's role")
        .untrusted()
        .clone();
    let rc1 = forged.targets.values().next().expect("rc-1").clone();
    forged
        .targets
        .insert(notar_tuf::TargetName::new("v9").expect("name"), rc1);
    forged.version = forged.version.next();
    let forged = notar_tuf::Signed::sign(forged, &[&bob_key]).expect("sign");
    let (status, body) = upload(&server, "targets/bob", forged.as_bytes().to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("outside the paths delegated to targets/bob"),
        "{body}"
    );

    // notar resolves v9 to the owner's digest and rc-1 to bob's; inspect names bob.
    let v9 = consumer
        .run(&["trust", "resolve", &format!("{GUN}:v9")])
        .await
        .ok();
    assert!(
        v9.stdout.contains(&common::digest_of(b"the owner's v9").0),
        "{}",
        v9.stdout
    );
    assert_eq!(
        signers_of(&consumer, "rc-1").await,
        Some(vec!["bob".into()])
    );
    assert_eq!(
        signers_of(&consumer, "v9").await,
        Some(vec!["Repo Admin".into()])
    );
    // python-tuf finds both, each through the role trusted for it.
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v9", "rc-1"]).await,
        ["v9", "rc-1"]
    );
}

/// Docker's choice of signing roles: a trust directory that holds the repository key and
/// a signer key signs into the signer's roles, and into `targets` only with `--role`.
#[tokio::test]
async fn sign_chooses_the_delegations_it_holds_keys_for() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    owner.sign(&format!("{GUN}:v1"), b"one").await.ok();
    let (ci_pub, _) = owner.generate("ci", &dirs.path().join("owner")).await;
    owner
        .run(&[
            "trust",
            "signer",
            "add",
            "ci",
            GUN,
            "--key",
            ci_pub.to_str().expect("utf-8"),
        ])
        .await
        .ok();
    let targets_version = || async {
        let (_, t) = get(&server, "targets.json").await;
        serde_json::from_slice::<Value>(&t).expect("json")["signed"]["version"].clone()
    };
    // The first signature publishes the pending delegation with the signer's roles.
    let signed = owner.sign(&format!("{GUN}:v2"), b"two").await.ok();
    assert!(
        signed
            .stdout
            .contains("in targets/ci version 1, targets/releases version 1"),
        "{}",
        signed.stdout
    );
    let before = targets_version().await;
    let signed = owner.sign(&format!("{GUN}:v2"), b"two again").await.ok();
    assert!(
        signed
            .stdout
            .contains("in targets/ci version 2, targets/releases version 2"),
        "{}",
        signed.stdout
    );
    assert_eq!(targets_version().await, before, "targets was not re-signed");
    assert_eq!(signers_of(&owner, "v2").await, Some(vec!["ci".into()]));

    // --role targets signs the targets role directly; --role ci only the signer's role.
    let mut args = common::sign_args(&format!("{GUN}:v3"), b"three");
    args.extend(["--role".to_owned(), "targets".to_owned()]);
    let run = owner
        .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok();
    assert!(run.stdout.contains("in targets version"), "{}", run.stdout);
    assert_eq!(
        signers_of(&owner, "v3").await,
        Some(vec!["Repo Admin".into()])
    );
    let mut args = common::sign_args(&format!("{GUN}:v4"), b"four");
    args.extend(["--role".to_owned(), "ci".to_owned()]);
    let run = owner
        .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok();
    assert!(
        run.stdout.contains("in targets/ci version 3"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("targets/releases"), "{}", run.stdout);
    let mut args = common::sign_args(&format!("{GUN}:v5"), b"five");
    args.extend(["--role".to_owned(), "nobody".to_owned()]);
    let run = owner
        .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .expect_code(2);
    assert!(
        run.stderr.contains("has no signer role targets/nobody"),
        "{}",
        run.stderr
    );
}

/// Removing a signer that is still pending cancels it: it is not re-signed when targets
/// move on, and the targets staged for it can never be published.
#[tokio::test]
async fn removing_a_pending_signer_cancels_it() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    let mallory = Client::new(&server, &dirs.path().join("mallory"));
    let pubs = dirs.path().join("pubs");
    std::fs::create_dir_all(&pubs).expect("mkdir");
    owner.sign(&format!("{GUN}:v1"), b"one").await.ok();
    let (mallory_pub, _) = mallory.generate("mallory", &pubs).await;
    let mallory_pub = mallory_pub.to_str().expect("utf-8");
    owner
        .run(&[
            "trust",
            "signer",
            "add",
            "mallory",
            GUN,
            "--key",
            mallory_pub,
        ])
        .await
        .ok();
    let removed = owner
        .run(&["trust", "signer", "remove", "mallory", GUN, "-y"])
        .await
        .ok();
    assert!(
        removed.stdout.contains("Removed (pending) signer mallory"),
        "{}",
        removed.stdout
    );
    assert!(
        removed
            .stderr
            .contains("cancelled the pending delegation to targets/mallory"),
        "{}",
        removed.stderr
    );
    // The owner's next publish does not bring mallory back.
    let signed = owner.sign(&format!("{GUN}:v2"), b"two").await.ok();
    assert!(
        !signed.stderr.contains("re-signed the pending delegation"),
        "{}",
        signed.stderr
    );
    // Mallory's first signature finds only superseded targets, and publishes nothing.
    let refused = mallory
        .sign(&format!("{GUN}:v3"), b"three")
        .await
        .expect_code(2);
    assert!(
        refused.stderr.contains("has moved on"),
        "{}",
        refused.stderr
    );
    let (_, targets) = get(&server, "targets.json").await;
    let targets: Value = serde_json::from_slice(&targets).expect("json");
    assert!(
        targets["signed"]["delegations"].is_null(),
        "no delegation was published: {targets}"
    );
}

/// owner signs v1, delegates to alice (who signs v2), then to bob (who signs v3): bob's
/// signature is then the only one on targets/releases.
async fn releases_last_signed_by_bob(
    gun: &str,
    owner: &Client,
    (alice, alice_pub): (&Client, &str),
    (bob, bob_pub): (&Client, &str),
) {
    owner.sign(&format!("{gun}:v1"), b"manifest one").await.ok();
    owner
        .run(&["trust", "signer", "add", "alice", gun, "--key", alice_pub])
        .await
        .ok();
    alice.sign(&format!("{gun}:v2"), b"manifest two").await.ok();
    owner
        .run(&["trust", "signer", "add", "bob", gun, "--key", bob_pub])
        .await
        .ok();
    bob.sign(&format!("{gun}:v3"), b"manifest three").await.ok();
}

/// `trust resolve GUN:TAG` succeeds (exit 0) or not (exit 1: unsigned).
async fn resolves(client: &Client, gun: &str, tag: &str) -> bool {
    let run = client
        .run(&["trust", "resolve", &format!("{gun}:{tag}")])
        .await;
    assert!(matches!(run.code, 0 | 1), "{run:?}");
    run.code == 0
}

/// Removing the signer whose signature is the last on targets/releases: refused with the
/// reason when no remaining signer's key is at hand (nothing changes); re-signed in the same
/// update when the trust directory holds one (every tag still verifies); or done anyway
/// with --force, which takes targets/releases away too: left unverifiable (as Docker leaves
/// it), it would stop every client's delegation walk, and with it every tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_last_signer_of_releases_re_signs_it_or_refuses() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let owner = Client::new(&server, &dirs.path().join("owner"));
    let alice = Client::new(&server, &dirs.path().join("alice"));
    let bob = Client::new(&server, &dirs.path().join("bob"));
    let pubs = dirs.path().join("pubs");
    std::fs::create_dir_all(&pubs).expect("mkdir");
    let (alice_pub, alice_id) = alice.generate("alice", &pubs).await;
    let (bob_pub, _) = bob.generate("bob", &pubs).await;
    let (alice_pub, bob_pub) = (
        alice_pub.to_str().expect("utf-8"),
        bob_pub.to_str().expect("utf-8"),
    );

    releases_last_signed_by_bob(GUN, &owner, (&alice, alice_pub), (&bob, bob_pub)).await;
    let refused = owner
        .run(&["trust", "signer", "remove", "bob", GUN, "-y"])
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains("targets/releases of localhost:5000/team/app was last signed by bob's key")
            && refused.stderr.contains("v2, v3")
            && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert_eq!(signers_of(&owner, "v3").await, Some(vec!["bob".into()]));

    // The owner's trust directory gets alice's key: the removal re-signs targets/releases.
    let exported = dirs.path().join("alice.key");
    alice
        .run(&[
            "key",
            "export",
            &alice_id[..8],
            "-o",
            exported.to_str().expect("utf-8"),
        ])
        .await
        .ok();
    owner
        .run(&["key", "import", exported.to_str().expect("utf-8")])
        .await
        .ok();
    let removed = owner
        .run(&["trust", "signer", "remove", "bob", GUN, "-y"])
        .await
        .ok();
    assert!(
        removed
            .stderr
            .contains("re-signed targets/releases of localhost:5000/team/app"),
        "{}",
        removed.stderr
    );
    let reader = Client::new(&server, &dirs.path().join("reader"));
    for tag in ["v1", "v2", "v3"] {
        assert!(resolves(&reader, GUN, tag).await, "{tag} still verifies");
    }
    let python_cache = dirs.path().join("ngclient");
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v1", "v2", "v3"]).await,
        ["v1", "v2", "v3"]
    );

    // --force, in a second repository, from a trust directory with no signer's key.
    let gun = "localhost:5000/team/forced";
    let bare_owner = Client::new(&server, &dirs.path().join("bare-owner"));
    releases_last_signed_by_bob(gun, &bare_owner, (&alice, alice_pub), (&bob, bob_pub)).await;
    let forced = bare_owner
        .run(&["trust", "signer", "remove", "bob", gun, "-y", "--force"])
        .await
        .ok();
    assert!(
        forced.stderr.contains("warning: --force")
            && forced.stderr.contains("it is removed from the delegations"),
        "{}",
        forced.stderr
    );
    let reader = Client::new(&server, &dirs.path().join("reader-2"));
    assert!(resolves(&reader, gun, "v1").await, "targets still signs v1");
    assert!(
        resolves(&reader, gun, "v2").await,
        "targets/alice still signs v2"
    );
    assert!(
        !resolves(&reader, gun, "v3").await,
        "v3 was only in bob's roles and targets/releases"
    );
    // The repository goes on: alice signs again, into her own role.
    alice
        .sign(&format!("{gun}:v4"), b"manifest four")
        .await
        .ok();
    assert!(resolves(&reader, gun, "v4").await);
}

/// A root key that never comes online: the offline trust directory (its server address
/// points nowhere) makes the root key and signs root version 1; the online one prepares that
/// root and creates the repository with it, then signs tags, and never holds a root key.
/// A root signed by another key, or edited after signing, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_root_signs_the_first_root_and_never_comes_online() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let online = Client::new(&server, &dirs.path().join("online"));
    // No server: every request from here would fail.
    let offline = Client {
        server: "http://127.0.0.1:9".into(),
        trust_dir: dirs.path().join("offline"),
    };
    let root_pub = dirs.path().join("root.pub");
    let made = offline
        .run(&[
            "root",
            "key",
            "--pub-out",
            root_pub.to_str().expect("utf-8"),
        ])
        .await
        .ok();
    assert!(made.stdout.contains("Root key"), "{}", made.stdout);

    let unsigned = dirs.path().join("root.json");
    let unsigned_arg = unsigned.to_str().expect("utf-8");
    online
        .run(&[
            "trust",
            "init",
            GUN,
            "--root-pub",
            root_pub.to_str().expect("utf-8"),
            "--out",
            unsigned_arg,
        ])
        .await
        .ok();
    // Unsigned, it is refused.
    let refused = online
        .run(&["trust", "init", GUN, "--signed-root", unsigned_arg])
        .await
        .expect_code(2);
    assert!(
        refused.stderr.contains("0 valid signature"),
        "{}",
        refused.stderr
    );

    // Signed by a stranger's root key: refused by the signer (not its root).
    let stranger = Client {
        server: "http://127.0.0.1:9".into(),
        trust_dir: dirs.path().join("stranger"),
    };
    let stranger_pub = dirs.path().join("stranger.pub");
    stranger
        .run(&[
            "root",
            "key",
            "--pub-out",
            stranger_pub.to_str().expect("utf-8"),
        ])
        .await
        .ok();
    let not_listed = stranger
        .run(&["root", "sign", unsigned_arg])
        .await
        .expect_code(2);
    assert!(
        not_listed
            .stderr
            .contains("this trust directory holds none of them"),
        "{}",
        not_listed.stderr
    );

    let signed = offline.run(&["root", "sign", unsigned_arg]).await.ok();
    assert!(
        signed.stdout.contains("Signed root version 1"),
        "{}",
        signed.stdout
    );
    assert!(signed.stderr.contains("targets: 1 of"), "{}", signed.stderr);
    // An edit after signing breaks the signature.
    let text = std::fs::read_to_string(&unsigned).expect("root");
    let edited = dirs.path().join("edited.json");
    assert!(text.contains("\"expires\""), "{text}");
    std::fs::write(
        &edited,
        text.replacen("\"expires\":\"20", "\"expires\":\"21", 1),
    )
    .expect("write");
    let broken = online
        .run(&[
            "trust",
            "init",
            GUN,
            "--signed-root",
            edited.to_str().expect("utf-8"),
        ])
        .await
        .expect_code(2);
    assert!(
        broken.stderr.contains("0 valid signature"),
        "{}",
        broken.stderr
    );

    let created = online
        .run(&["trust", "init", GUN, "--signed-root", unsigned_arg])
        .await
        .ok();
    assert!(
        created.stdout.contains("with the root signed offline"),
        "{}",
        created.stdout
    );
    online
        .sign(&format!("{GUN}:v1"), b"manifest one")
        .await
        .ok();
    let python_cache = dirs.path().join("ngclient");
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v1"]).await,
        ["v1"]
    );
    let keys = online.run(&["--json", "key", "list"]).await.ok().json();
    let roles: Vec<&str> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["targets"], "the online side never held a root key");
    // A second init of the same repository is refused.
    let again = online
        .run(&[
            "trust",
            "init",
            GUN,
            "--root-pub",
            root_pub.to_str().expect("utf-8"),
            "--out",
            dirs.path().join("again.json").to_str().expect("utf-8"),
        ])
        .await
        .expect_code(2);
    assert!(
        again.stderr.contains("has trust data already"),
        "{}",
        again.stderr
    );
    // Renewing the root before it expires: the same keys, the next version, signed offline.
    let renew = dirs.path().join("root-2.json");
    let renew_arg = renew.to_str().expect("utf-8");
    online
        .run(&["trust", "root-update", GUN, "--out", renew_arg])
        .await
        .ok();
    offline.run(&["root", "sign", renew_arg]).await.ok();
    // Signing twice adds nothing: refused.
    let twice = offline
        .run(&["root", "sign", renew_arg])
        .await
        .expect_code(2);
    assert!(
        twice.stderr.contains("none of them that has not signed it"),
        "{}",
        twice.stderr
    );
    online
        .run(&["trust", "root-update", GUN, "--signed-root", renew_arg])
        .await
        .ok();
    // The same file again is no longer the next root.
    let stale = online
        .run(&["trust", "root-update", GUN, "--signed-root", renew_arg])
        .await
        .expect_code(2);
    assert!(
        stale.stderr.contains(
            "holds root version 2, and the next root of localhost:5000/team/app is version 3"
        ),
        "{}",
        stale.stderr
    );

    // Rotating to a new offline root key: both keys sign (the old one named with --key).
    let old_key = made
        .stdout
        .strip_prefix("Root key ")
        .and_then(|rest| rest.split(':').next())
        .expect("the root key's ID")
        .to_owned();
    let new_pub = dirs.path().join("root-new.pub");
    offline
        .run(&[
            "root",
            "key",
            "--new",
            "--pub-out",
            new_pub.to_str().expect("utf-8"),
        ])
        .await
        .ok();
    let rotate = dirs.path().join("root-3.json");
    let rotate_arg = rotate.to_str().expect("utf-8");
    online
        .run(&[
            "trust",
            "root-update",
            GUN,
            "--out",
            rotate_arg,
            "--root-pub",
            new_pub.to_str().expect("utf-8"),
        ])
        .await
        .ok();
    // Signed by the new key alone, the server refuses it: the old root must sign too.
    let only_new = dirs.path().join("root-3-new-only.json");
    std::fs::copy(&rotate, &only_new).expect("copy");
    offline
        .run(&["root", "sign", only_new.to_str().expect("utf-8")])
        .await
        .ok();
    let refused = online
        .run(&[
            "trust",
            "root-update",
            GUN,
            "--signed-root",
            only_new.to_str().expect("utf-8"),
        ])
        .await;
    assert_ne!(refused.code, 0, "{refused:?}");
    let both = offline
        .run(&["root", "sign", rotate_arg, "--key", &old_key[..8]])
        .await
        .ok();
    assert!(
        both.stderr.contains("which this root does not list"),
        "{}",
        both.stderr
    );
    online
        .run(&["trust", "root-update", GUN, "--signed-root", rotate_arg])
        .await
        .ok();
    // Every reader follows the chain 1 -> 2 -> 3; tags sign on with the targets key.
    online
        .sign(&format!("{GUN}:v2"), b"manifest two")
        .await
        .ok();
    let fresh = Client::new(&server, &dirs.path().join("fresh-reader"));
    assert!(resolves(&fresh, GUN, "v2").await);
    assert_eq!(
        ngclient_found(&server, &python_cache, &["v1", "v2"]).await,
        ["v1", "v2"]
    );
    let (status, body) = get(&server, "root.json").await;
    assert_eq!(status, 200);
    let root: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(root["signed"]["version"], 3);
}

/// `notar key import` of a whole `notary key export` (the lab's, eight blocks): every key
/// decrypts with Notary's passphrase variables and keeps its role and GUN, snapshot keys are
/// skipped (the server holds that role), and a key file named for another key than it holds
/// is refused, importing nothing.
#[tokio::test]
async fn a_notary_export_imports_every_key_it_holds() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys/fixtures/notary-0.7");
    let notary = [
        ("NOTARY_ROOT_PASSPHRASE", "rootpass123"),
        ("NOTARY_TARGETS_PASSPHRASE", "targetspass123"),
        ("NOTARY_DELEGATION_PASSPHRASE", "delegpass123"),
    ];

    // A file named for another key ID: nothing is imported.
    let client = Client::new(&server, &dirs.path().join("trust"));
    let misnamed = dirs.path().join(format!("{}.key", "ab".repeat(32)));
    std::fs::copy(fixtures.join("targets.key"), &misnamed).expect("copy");
    let refused = client
        .run_env(
            &["key", "import", misnamed.to_str().expect("utf-8")],
            &[("NOTARY_TARGETS_PASSPHRASE", "newtargets123")],
        )
        .await
        .expect_code(2);
    assert!(
        refused
            .stderr
            .contains(&format!("is named for the key {}", "ab".repeat(32))),
        "{}",
        refused.stderr
    );
    let listed = client.run(&["--json", "key", "list"]).await.ok().json();
    assert_eq!(listed["keys"], json!([]));

    let imported = client
        .run_env(
            &[
                "--json",
                "key",
                "import",
                fixtures.join("export.pem").to_str().expect("utf-8"),
            ],
            &notary,
        )
        .await
        .ok()
        .json();
    let outcomes = common::import_outcomes(&imported);
    let row = |role: &str, gun: &str, outcome: &str| (role.into(), gun.into(), outcome.into());
    assert_eq!(
        outcomes,
        [
            row("delegation", "-", "imported"),
            row("root", "-", "imported"),
            row("root", "-", "imported"),
            row("snapshot", "example.com/lab/repo1", "skipped-server-role"),
            row("snapshot", "example.com/lab/repo3", "skipped-server-role"),
            row("targets", "example.com/lab/repo1", "imported"),
            row("targets", "example.com/lab/repo2", "imported"),
            row("targets", "example.com/lab/repo3", "imported"),
        ]
    );
}
