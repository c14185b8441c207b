//! `notar` on repositories the stock `notary` 0.7 client signed (Notary dialect): inspect,
//! resolve and an enforced pull from a real registry (Debian's `docker-registry`), with the
//! same refusals as for TUF 1.0 repositories: a tag nobody signed, a signed length the
//! manifest does not have, and a repository re-created under another root.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::path::Path;
use std::time::Duration;

use notar_tests::notary_cli::{self, DockerTrust, Notary, PASSPHRASES};
use notar_tests::registry::{TestImage, TestRegistry, digest};
use notar_tests::server::{Backend, TestServer};

mod common;
use common::Run;

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

struct World {
    server: TestServer,
    registry: TestRegistry,
    dir: tempfile::TempDir,
    ca: std::path::PathBuf,
    notary: Notary,
}

impl World {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = notar_tests::tls::TestPki::new("notary-repos");
        let (ca, cert, key) = pki.write(dir.path());
        let server = TestServer::start_tls(Backend::Sqlite, &cert, &key).await;
        let notary = Notary::new(&server.url, &dir.path().join("notary"), &ca);
        World {
            server,
            registry: TestRegistry::start().await,
            dir,
            ca,
            notary,
        }
    }

    async fn notar(&self, args: &[&str]) -> Run {
        self.notar_env(args, &[]).await
    }

    /// [`World::notar`] with more variables (passphrases).
    async fn notar_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let trust = self.dir.path().join("notar");
        let mut env = vec![
            ("NOTAR_SERVER", self.server.url.as_str()),
            ("NOTAR_CA_CERT", path_str(&self.ca)),
            ("NOTAR_TRUST_DIR", path_str(&trust)),
            ("HOME", path_str(self.dir.path())),
        ];
        env.extend_from_slice(extra);
        common::run_notar(args, &env, Duration::from_secs(120)).await
    }

    async fn store(&self, repository: &str, tag: &str, image: &TestImage) {
        for (_, bytes) in &image.blobs {
            self.registry.put_blob(repository, bytes).await;
        }
        self.registry
            .put_manifest(repository, tag, image.media_type, &image.manifest)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notar_reads_and_pulls_what_the_stock_notary_client_signed() {
    if !notary_cli::available() {
        eprintln!("skipped: the stock notary CLI is not installed");
        return;
    }
    let w = World::start().await;
    let gun = format!("{}/team/app", w.registry.host);
    let image = TestImage::single("linux", "amd64", 2, 2048);
    w.store("team/app", "v1", &image).await;
    w.store("team/app", "unsigned", &image).await;
    let hex = digest(&image.manifest)
        .trim_start_matches("sha256:")
        .to_owned();
    let size = image.manifest.len().to_string();

    // As Docker initialises a repository: server-held snapshot, then the tag.
    w.notary.run(&["init", &gun]).await.expect_code(0);
    w.notary
        .run(&["key", "rotate", &gun, "snapshot", "-r"])
        .await
        .expect_code(0);
    w.notary
        .run(&["addhash", &gun, "v1", &size, "--sha256", &hex, "-p"])
        .await
        .expect_code(0);
    // A second tag signed with a length the manifest does not have.
    let wrong = (image.manifest.len() + 1).to_string();
    w.notary
        .run(&[
            "addhash",
            &gun,
            "v1-bad-size",
            &wrong,
            "--sha256",
            &hex,
            "-p",
        ])
        .await
        .expect_code(0);
    w.store("team/app", "v1-bad-size", &image).await;

    let inspected = w.notar(&["trust", "inspect", &gun]).await.ok().json();
    let tags: Vec<&str> = inspected[0]["SignedTags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["SignedTag"].as_str())
        .collect();
    assert_eq!(tags, ["v1", "v1-bad-size"]);
    assert_eq!(inspected[0]["SignedTags"][0]["Digest"], hex.as_str());
    assert_eq!(inspected[0]["SignedTags"][0]["Signers"][0], "Repo Admin");

    let resolved = w
        .notar(&["trust", "resolve", &format!("{gun}:v1")])
        .await
        .ok();
    assert_eq!(resolved.stdout.trim(), format!("{gun}@sha256:{hex}"));

    let out = w.dir.path().join("out");
    let pulled = w
        .notar(&["pull", &format!("{gun}:v1"), "-o", path_str(&out), "--json"])
        .await
        .ok()
        .json();
    assert_eq!(pulled["digest"], digest(&image.manifest));
    assert_eq!(pulled["verified"], true);
    assert!(out.join("index.json").exists());

    // Refusals, exit 1, nothing written.
    let refused_out = w.dir.path().join("refused");
    let unsigned = w
        .notar(&[
            "pull",
            &format!("{gun}:unsigned"),
            "-o",
            path_str(&refused_out),
        ])
        .await
        .expect_code(1);
    assert!(unsigned.stderr.contains("unsigned"), "{}", unsigned.stderr);
    let bad_size = w
        .notar(&[
            "pull",
            &format!("{gun}:v1-bad-size"),
            "-o",
            path_str(&refused_out),
        ])
        .await
        .expect_code(1);
    assert!(
        bad_size.stderr.contains("length") || bad_size.stderr.contains("size"),
        "{}",
        bad_size.stderr
    );
    assert!(!refused_out.exists());

    // The repository deleted and made again with another root: notar, which trusts the
    // first root, refuses it.
    w.notary
        .run(&["delete", &gun, "--remote"])
        .await
        .expect_code(0);
    let other = w.notary.with_trust_dir(&w.dir.path().join("notary-2"));
    other.run(&["init", &gun]).await.expect_code(0);
    other
        .run(&["addhash", &gun, "v1", &size, "--sha256", &hex, "-p"])
        .await
        .expect_code(0);
    let changed = w
        .notar(&["trust", "resolve", &format!("{gun}:v1")])
        .await
        .expect_code(1);
    assert!(
        changed.stderr.contains("root"),
        "a new root is not trusted silently: {}",
        changed.stderr
    );
}

/// The client judges a Notary root's certificates as the server does: once the root
/// certificate has expired, the repository is refused (the root metadata itself is still
/// valid), while the same trust directory read it before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notar_refuses_a_notary_root_whose_certificate_expired() {
    use notar_tests::notary_repo::{NotaryRepo, Validity};
    use notar_tests::server::{Publisher, SnapshotKey};
    let server = TestServer::start(Backend::Sqlite).await;
    let gun = "example.com/notary/short-lived";
    let publisher = Publisher::new(&server, gun, SnapshotKey::Client);
    let key = notar_tests::notary_repo::notary_timestamp_key(&publisher).await;
    let now = time::OffsetDateTime::now_utc();
    let validity = Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::hours(1),
    };
    let repo = NotaryRepo::new(gun, gun, validity, key);
    let response = publisher.upload(repo.first_publish(&["v1"])).await;
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let trust = dir.path().join("trust");
    let env = [
        ("NOTAR_SERVER", server.url.as_str()),
        ("NOTAR_TRUST_DIR", path_str(&trust)),
        ("HOME", path_str(dir.path())),
    ];
    let reference = format!("{gun}:v1");
    common::run_notar(
        &["trust", "resolve", &reference],
        &env,
        Duration::from_secs(60),
    )
    .await
    .ok();
    let later = common::run_bin(
        Path::new("faketime"),
        &["-f", "+2h", common::BIN, "trust", "resolve", &reference],
        &env,
        Duration::from_secs(60),
    )
    .await
    .expect_code(1);
    assert!(
        later.stderr.contains("root certificate") && later.stderr.contains("expired at"),
        "{}",
        later.stderr
    );
}

/// The signed tags of `docker trust inspect GUN` (JSON): each tag with its digest and signers.
async fn docker_tags(docker: &DockerTrust, gun: &str) -> Vec<(String, String, Vec<String>)> {
    let out = docker.run(&["inspect", gun]).await.expect_code(0);
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    parsed[0]["SignedTags"]
        .as_array()
        .expect("SignedTags")
        .iter()
        .map(|t| {
            let signers = t["Signers"]
                .as_array()
                .expect("Signers")
                .iter()
                .map(|s| s.as_str().expect("name").to_owned())
                .collect();
            (
                t["SignedTag"].as_str().expect("tag").to_owned(),
                t["Digest"].as_str().expect("digest").to_owned(),
                signers,
            )
        })
        .collect()
}

/// Docker makes a repository (`docker trust signer add` on a GUN without trust data: its
/// root and targets keys, a server-held snapshot, the signer's roles); `notar key import`
/// takes Docker's keys, and notar then signs as the signer and as the owner, revokes and
/// pulls there, writing the Notary dialect: `docker trust inspect` and `notary list` read
/// what notar signed. A wrong Docker passphrase imports nothing; changing the signers of a
/// Notary repository is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notar_signs_the_repositories_docker_made_with_dockers_keys() {
    if !notary_cli::available() || !notary_cli::docker_available() {
        eprintln!("skipped: the stock notary or docker CLI is not installed");
        return;
    }
    let w = World::start().await;
    let gun = format!("{}/team/docker", w.registry.host);
    let image = TestImage::single("linux", "arm64", 3, 1024);
    w.store("team/docker", "v1", &image).await;
    let hex = digest(&image.manifest)
        .trim_start_matches("sha256:")
        .to_owned();
    let size = image.manifest.len().to_string();

    let docker = DockerTrust::new(&w.server.url, &w.dir.path().join("docker"), &w.ca);
    let keys = w.dir.path().join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    docker
        .run(&["key", "generate", "ci", "--dir", path_str(&keys)])
        .await
        .expect_code(0);
    let ci_pub = keys.join("ci.pub");
    docker
        .run(&["signer", "add", "--key", path_str(&ci_pub), "ci", &gun])
        .await
        .expect_code(0);
    let docker_trust = w.dir.path().join("docker/trust");

    // A wrong passphrase for Docker's keys: nothing is imported.
    let wrong = w
        .notar_env(
            &["key", "import", path_str(&docker_trust)],
            &[
                ("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "not-the-one"),
                ("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "not-the-one"),
            ],
        )
        .await
        .expect_code(2);
    assert!(
        wrong
            .stderr
            .contains("caused by: wrong passphrase for the Notary/Docker"),
        "{}",
        wrong.stderr
    );
    let listed = w.notar(&["--json", "key", "list"]).await.ok().json();
    assert_eq!(listed["keys"], serde_json::json!([]), "nothing imported");

    let passphrases = [
        ("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", PASSPHRASES[0].1),
        (
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
            PASSPHRASES[1].1,
        ),
        ("NOTAR_ROOT_PASSPHRASE", "notar root passphrase"),
        ("NOTAR_TARGETS_PASSPHRASE", "notar targets passphrase"),
        ("NOTAR_DELEGATION_PASSPHRASE", "notar signer passphrase"),
        ("NOTAR_KDF", "test"),
    ];
    let imported = w
        .notar_env(
            &["--json", "key", "import", path_str(&docker_trust)],
            &passphrases,
        )
        .await
        .ok()
        .json();
    let outcomes = common::import_outcomes(&imported);
    assert_eq!(
        outcomes,
        [
            ("delegation".into(), "-".into(), "imported".into()),
            ("root".into(), "-".into(), "imported".into()),
            ("targets".into(), gun.clone(), "imported".into()),
        ]
    );
    // Importing again changes nothing.
    let again = w
        .notar_env(&["key", "import", path_str(&docker_trust)], &passphrases)
        .await
        .ok();
    assert_eq!(
        again.stdout.matches("skipped").count(),
        3,
        "{}",
        again.stdout
    );

    // The signer signs a tag that is in the registry, as `docker trust sign` would.
    let signed = w
        .notar_env(
            &[
                "--json",
                "trust",
                "sign",
                &format!("{gun}:v1"),
                "--insecure-registry",
                &w.registry.host,
            ],
            &passphrases,
        )
        .await
        .ok()
        .json();
    let mut roles: Vec<&str> = signed["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| r["role"].as_str().expect("role"))
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["targets/ci", "targets/releases"], "{signed}");
    assert_eq!(
        docker_tags(&docker, &gun).await,
        [("v1".to_owned(), hex.clone(), vec!["ci".to_owned()])]
    );

    // notar reads back what it signed, and pulls it with enforcement.
    let out = w.dir.path().join("out");
    let pulled = w
        .notar(&["pull", &format!("{gun}:v1"), "-o", path_str(&out), "--json"])
        .await
        .ok()
        .json();
    assert_eq!(pulled["verified"], true);
    assert_eq!(pulled["digest"], digest(&image.manifest));

    // As the owner, with Docker's targets key: into targets itself.
    let other = TestImage::single("linux", "amd64", 1, 512);
    let other_hex = digest(&other.manifest)
        .trim_start_matches("sha256:")
        .to_owned();
    w.notar_env(
        &[
            "trust",
            "sign",
            &format!("{gun}:v2"),
            "--role",
            "targets",
            "--digest",
            &format!("sha256:{other_hex}"),
            "--size",
            &other.manifest.len().to_string(),
        ],
        &passphrases,
    )
    .await
    .ok();
    assert_eq!(
        docker_tags(&docker, &gun).await,
        [
            ("v1".to_owned(), hex.clone(), vec!["ci".to_owned()]),
            (
                "v2".to_owned(),
                other_hex.clone(),
                vec!["Repo Admin".to_owned()]
            ),
        ]
    );

    // The stock notary client, trusting on first use, lists both.
    let listed = w.notary.run(&["list", &gun]).await.expect_code(0);
    for expected in [
        format!("v1    {hex}    {size}"),
        format!("v2    {other_hex}"),
    ] {
        assert!(
            listed
                .stdout
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&expected.split_whitespace().collect::<Vec<_>>().join(" ")),
            "{expected} in\n{}",
            listed.stdout
        );
    }

    // The signer revokes v1: Docker no longer sees it signed.
    w.notar_env(
        &["trust", "revoke", &format!("{gun}:v1"), "-y"],
        &passphrases,
    )
    .await
    .ok();
    assert_eq!(
        docker_tags(&docker, &gun).await,
        [(
            "v2".to_owned(),
            other_hex.clone(),
            vec!["Repo Admin".to_owned()]
        )]
    );

    // Signers of a Notary repository are Docker's to change.
    let refused = w
        .notar_env(
            &[
                "trust",
                "signer",
                "add",
                "qa",
                &gun,
                "--key",
                path_str(&ci_pub),
            ],
            &passphrases,
        )
        .await
        .expect_code(2);
    assert!(
        refused.stderr.contains("is a Notary repository"),
        "{}",
        refused.stderr
    );
}
