//! The Docker CLI's `docker trust` against notar-server over HTTPS: the lab's sequence
//! (`shared/notary/lab/captured/docker_trust.md`, recorded against the real notary-server),
//! with the outputs notary-server gave, normalised (key IDs `<id>`, paths of this run).
//! There is no Docker engine here: `docker trust sign` of a tag that is not signed yet
//! needs one (it reads the image's digest from the engine) and fails as it did in the lab.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_tests::notary_cli::{self, DockerTrust, Notary, normalise};
use notar_tests::server::{Backend, TestServer};

const GUN: &str = "localhost:5000/some/repo";
/// The lab's fake manifest: 110 bytes with this sha256.
const MANIFEST: &str = "412530cbc2e0a19e63b7aafc1c3a49a8f244da272047555ca27062981744029f";

fn normalised(text: &str, dir: &std::path::Path) -> String {
    let text = text.replace(dir.to_str().expect("utf-8"), ".");
    notary_cli::normalise_keeping(&text, &[MANIFEST])
}

fn pretty(tags: &[(&str, &str)], signers: &[&str]) -> String {
    let mut out = format!(
        "\nSignatures for {GUN}\n\nSIGNED TAG   DIGEST                                                             SIGNERS\n"
    );
    for (tag, by) in tags {
        out.push_str(&format!("{tag:<13}{MANIFEST}   {by}\n"));
    }
    if !signers.is_empty() {
        out.push_str(&format!(
            "\nList of signers and their keys for {GUN}\n\nSIGNER    KEYS\n"
        ));
        for signer in signers {
            // Signer key IDs are cut to 12 hex digits: not a key ID the normaliser sees.
            out.push_str(&format!("{signer:<10}<short>\n"));
        }
    }
    out.push_str(&format!(
        "\nAdministrative keys for {GUN}\n\n  Repository Key:\t<id>\n  Root Key:\t<id>"
    ));
    out
}

/// Masks the 12-digit signer key IDs of `--pretty` in the signer table.
fn mask_short_ids(text: &str) -> String {
    let mut in_signers = false;
    text.lines()
        .map(|line| {
            if line.starts_with("SIGNER    KEYS") {
                in_signers = true;
                return line.to_owned();
            }
            if line.is_empty() {
                in_signers = false;
            }
            match line.split_once(char::is_whitespace) {
                Some((name, rest)) if in_signers && rest.trim().len() == 12 => {
                    format!("{name:<10}<short>")
                }
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn expect(
    docker: &DockerTrust,
    args: &[&str],
    code: i32,
    stdout: &str,
    dir: &std::path::Path,
) {
    let output = docker.run(args).await;
    assert_eq!(
        output.code, code,
        "docker trust {args:?}\nstdout:\n{}\nstderr:\n{}",
        output.stdout, output.stderr
    );
    assert_eq!(
        mask_short_ids(&normalised(&output.stdout, dir)).trim(),
        stdout.trim(),
        "docker trust {args:?} (stderr:\n{})",
        output.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_trust_runs_the_lab_sequence() {
    if !notary_cli::available() || !notary_cli::docker_available() {
        eprintln!("skipped: the stock notary or docker CLI is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    let pki = notar_tests::tls::TestPki::new("docker");
    let (ca, cert, key) = pki.write(path);
    let server = TestServer::start_tls(Backend::Sqlite, &cert, &key).await;
    let notary = Notary::new(&server.url, &path.join("trust"), &ca);
    let docker = DockerTrust::new(&server.url, &path.join("dockercfg"), &ca);

    // The lab's set-up: a repository as docker makes them (server-held snapshot), one tag.
    notary.run(&["init", GUN]).await.expect_code(0);
    notary
        .run(&["key", "rotate", GUN, "snapshot", "-r"])
        .await
        .expect_code(0);
    notary
        .run(&["addhash", GUN, "latest", "110", "--sha256", MANIFEST, "-p"])
        .await
        .expect_code(0);

    expect(
        &docker,
        &["inspect", "--pretty", GUN],
        0,
        &pretty(&[("latest", "(Repo Admin)")], &[]),
        path,
    )
    .await;
    let json = docker
        .run(&["inspect", &format!("{GUN}:latest")])
        .await
        .expect_code(0);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        normalised(&serde_json::to_string(&parsed).expect("JSON"), path),
        format!(
            r#"[{{"AdministrativeKeys":[{{"Keys":[{{"ID":"<id>"}}],"Name":"Root"}},{{"Keys":[{{"ID":"<id>"}}],"Name":"Repository"}}],"Name":"{GUN}:latest","SignedTags":[{{"Digest":"{MANIFEST}","SignedTag":"latest","Signers":["Repo Admin"]}}],"Signers":[]}}]"#
        )
    );
    // The root key ID docker shows is the certificate's, as root.json lists it.
    let root: serde_json::Value = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("CA"))
        .build()
        .expect("client")
        .get(format!("{}/v2/{GUN}/_trust/tuf/root.json", server.url))
        .send()
        .await
        .expect("GET root")
        .json()
        .await
        .expect("root JSON");
    let root_id = parsed[0]["AdministrativeKeys"][0]["Keys"][0]["ID"]
        .as_str()
        .expect("ID");
    assert_eq!(root["signed"]["keys"][root_id]["keytype"], "ecdsa-x509");

    let unknown = docker
        .run(&["inspect", "localhost:5000/no/such"])
        .await
        .expect_code(1);
    assert_eq!(unknown.stdout.trim(), "[]");
    assert_eq!(
        unknown.stderr.trim(),
        "no signatures or cannot access localhost:5000/no/such"
    );

    let keys = path.join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let keys_dir = keys.to_str().expect("utf-8");
    expect(&docker, &["key", "generate", "alice", "--dir", keys_dir], 0, "Generating key for alice...\nSuccessfully generated and loaded private key. Corresponding public key available: ./keys/alice.pub", path).await;
    let alice_pub = format!("{keys_dir}/alice.pub");
    let refused = docker
        .run(&["signer", "add", "--key", &alice_pub, "alice", GUN])
        .await
        .expect_code(1);
    assert_eq!(
        normalised(&format!("{}{}", refused.stdout, refused.stderr), path).trim(),
        format!(
            "Adding signer \"alice\" to {GUN}...\ncould not find necessary signing keys, at least one of these keys must be available: <id>\n\nfailed to add signer to: {GUN}"
        )
    );

    // With the repository's keys copied into Docker's trust directory.
    let private = path.join("dockercfg/trust/private");
    for entry in std::fs::read_dir(path.join("trust/private")).expect("notary keys") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), private.join(entry.file_name())).expect("copy key");
    }
    expect(
        &docker,
        &["signer", "add", "--key", &alice_pub, "alice", GUN],
        0,
        &format!("Adding signer \"alice\" to {GUN}...\nSuccessfully added signer: alice to {GUN}"),
        path,
    )
    .await;
    let delegations = notary
        .run(&["delegation", "list", GUN])
        .await
        .expect_code(0);
    assert_eq!(
        normalise(&delegations.stdout).trim(),
        "ROLE                PATHS             KEY IDS                                                             THRESHOLD\n----                -----             -------                                                             ---------\ntargets/alice       \"\" <all paths>    <id>    1\ntargets/releases    \"\" <all paths>    <id>    1"
    );

    // signer add on a repository with no trust data makes it.
    let fresh = "localhost:5000/some/fresh";
    docker
        .run(&["key", "generate", "bob", "--dir", keys_dir])
        .await
        .expect_code(0);
    expect(&docker, &["signer", "add", "--key", &format!("{keys_dir}/bob.pub"), "bob", fresh], 0, &format!("Adding signer \"bob\" to {fresh}...\nInitializing signed repository for {fresh}...\nSuccessfully initialized \"{fresh}\"\nSuccessfully added signer: bob to {fresh}"), path).await;

    // alice signs v2 with the notary CLI and her docker key.
    let alice_key = std::fs::read_dir(&private)
        .expect("docker keys")
        .map(|e| e.expect("entry").path())
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("role: alice")))
        .expect("alice's key");
    std::fs::copy(
        &alice_key,
        path.join("trust/private")
            .join(alice_key.file_name().expect("name")),
    )
    .expect("copy");
    notary
        .with_env("NOTARY_DELEGATION_PASSPHRASE", "targetspass123")
        .with_env("NOTARY_ALICE_PASSPHRASE", "targetspass123")
        .run(&[
            "addhash",
            GUN,
            "v2",
            "110",
            "--sha256",
            MANIFEST,
            "-r",
            "targets/releases",
            "-r",
            "targets/alice",
            "-p",
        ])
        .await
        .expect_code(0);
    expect(
        &docker,
        &["inspect", "--pretty", GUN],
        0,
        &pretty(&[("latest", "(Repo Admin)"), ("v2", "alice")], &["alice"]),
        path,
    )
    .await;

    let carol = path.join("carol.pem");
    notary_cli::p256_pkcs8_key(&carol);
    expect(
        &docker,
        &[
            "key",
            "load",
            carol.to_str().expect("utf-8"),
            "--name",
            "carol",
        ],
        0,
        "Loading key from \"./carol.pem\"...\nSuccessfully imported key from ./carol.pem",
        path,
    )
    .await;

    expect(
        &docker,
        &["revoke", &format!("{GUN}:v2"), "-y"],
        0,
        &format!("Successfully deleted signature for {GUN}:v2"),
        path,
    )
    .await;
    expect(
        &docker,
        &["inspect", "--pretty", GUN],
        0,
        &pretty(&[("latest", "(Repo Admin)")], &["alice"]),
        path,
    )
    .await;
    expect(
        &docker,
        &["signer", "remove", "alice", GUN, "-f"],
        0,
        &format!("Removing signer \"alice\" from {GUN}..."),
        path,
    )
    .await;
    expect(&docker, &["sign", &format!("{GUN}:latest")], 0, &format!("Signing and pushing trust metadata for {GUN}:latest\nExisting signatures for tag latest digest {MANIFEST} from:\n\nSuccessfully signed {GUN}:latest"), path).await;
    let needs_engine = docker
        .run(&["sign", &format!("{GUN}:newtag")])
        .await
        .expect_code(1);
    assert!(
        needs_engine
            .stderr
            .contains("Cannot connect to the Docker daemon"),
        "{}",
        needs_engine.stderr
    );
    expect(
        &docker,
        &["inspect", "--pretty", GUN],
        0,
        &pretty(&[("latest", "alice")], &["alice"]),
        path,
    )
    .await;
}
