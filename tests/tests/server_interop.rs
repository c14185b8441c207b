//! What notar-server serves over HTTP verifies with independent TUF clients: python-tuf's
//! ngclient `Updater` and tough's `RepositoryLoader`, on SQLite and PostgreSQL, across a
//! second publish and across a server restart.
//!
//! Every repository has a delegation: targets delegates `release-*` to `targets/releases`,
//! which holds `release-1`, so both clients must walk it (and ask for the role by its
//! percent-encoded name).

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::SigningKey;
use notar_tests::python;
use notar_tests::repo::{RELEASES, content_of, far_future, target_for, test_key};
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use notar_tuf::{Delegations, RoleName, Root, Signed, Signer, TargetName, Targets, Version};
use sha2::{Digest, Sha256};

/// A GUN with slashes, as registries name repositories.
const GUN: &str = "registry.example/team/app";
/// Tags of the first publish.
const FIRST: &[&str] = &["tag-a", "tag-b"];
/// Tags of the second publish: one more.
const SECOND: &[&str] = &["tag-a", "tag-b", "tag-c"];
/// What the delegated role holds.
const RELEASED: &str = "release-1";

/// The key `targets` delegates `targets/releases` to.
fn releases_key() -> SigningKey {
    test_key(21)
}

/// Targets `version` holding `tags` and delegating `release-*` to `targets/releases`.
fn targets_with_delegation(publisher: &Publisher, version: u64, tags: &[&str]) -> Signed<Targets> {
    let mut targets = publisher.make_targets(version, tags);
    let mut delegations = Delegations::new();
    delegations.add_role(
        RoleName::new(RELEASES).expect("valid role name"),
        &[releases_key().public_key()],
        std::num::NonZeroU32::MIN,
        vec!["release-*".into()],
    );
    targets.delegations = Some(delegations);
    publisher.sign_targets(targets)
}

/// `targets/releases` version `version` holding `names`, signed by the delegated key.
fn releases(version: u64, names: &[&str]) -> Signed<Targets> {
    let mut role = Targets::new(Version::new(version).expect("version"), far_future());
    for name in names {
        role.targets.insert(
            TargetName::new(*name).expect("valid target name"),
            target_for(&content_of(name)),
        );
    }
    Signed::sign(role, &[&releases_key()]).expect("sign releases")
}

/// Uploads `files` and panics unless the server accepts them.
async fn upload_ok(publisher: &Publisher, files: Vec<(&str, &Signed<Targets>)>) {
    let files = files
        .into_iter()
        .map(|(role, signed)| (role.to_owned(), signed.as_bytes().to_vec()))
        .collect();
    let response = publisher.upload(files).await;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "upload refused: {status} {body}");
}

/// Publishes root v1 and targets v1 with [`FIRST`], then targets v2 with the delegation and
/// `targets/releases` v1 in one upload. Returns the publisher and the root it signed.
async fn publish_repository(server: &TestServer) -> (Publisher, Signed<Root>) {
    let mut publisher = Publisher::new(server, GUN, SnapshotKey::Server);
    let (root, _) = publisher.init(FIRST).await;
    let targets = targets_with_delegation(&publisher, 2, FIRST);
    let delegated = releases(1, &[RELEASED]);
    upload_ok(
        &publisher,
        vec![("targets", &targets), (RELEASES, &delegated)],
    )
    .await;
    (publisher, root)
}

/// The second publish: targets v3 with [`SECOND`]; `targets/releases` stays as it is.
async fn publish_second(publisher: &Publisher) {
    let targets = targets_with_delegation(publisher, 3, SECOND);
    upload_ok(publisher, vec![("targets", &targets)]).await;
}

/// Length and hex sha256 of what `name` was signed for.
fn signed_for(name: &str) -> (u64, String) {
    let content = content_of(name);
    (content.len() as u64, hex::encode(Sha256::digest(&content)))
}

/// What a client reported for each name: length and hex sha256, or `None` when missing.
type Found = BTreeMap<String, Option<(u64, String)>>;

/// Checks every name in `present` was found with the length and hash it was signed for,
/// and every name in `absent` was not found.
fn assert_found(found: &Found, present: &[&str], absent: &[&str]) {
    for name in present {
        assert_eq!(
            found.get(*name),
            Some(&Some(signed_for(name))),
            "{name} in {found:?}"
        );
    }
    for name in absent {
        assert_eq!(found.get(*name), Some(&None), "{name} in {found:?}");
    }
}

/// Runs `ngclient_fetch.py` (refresh, then look up `names`) with `cache` as its metadata
/// directory, off the runtime so the in-process server keeps serving.
async fn ngclient(server: &TestServer, cache: &Path, names: &[&str]) -> Found {
    let mut args = vec![
        server.tuf_url(GUN),
        cache.to_str().expect("utf-8 path").to_owned(),
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
                _ => panic!("unexpected line from ngclient_fetch.py: {line:?}\n{out}"),
            },
        )
        .collect()
}

const ALL_NAMES: &[&str] = &["tag-a", "tag-b", "tag-c", RELEASED, "release-2"];

async fn python_tuf_verifies_and_follows_updates(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (publisher, root) = publish_repository(&server).await;
    let cache = tempfile::tempdir().expect("temp dir");

    let found = ngclient(&server, cache.path(), ALL_NAMES).await;
    assert_found(
        &found,
        &["tag-a", "tag-b", RELEASED],
        &["tag-c", "release-2"],
    );
    // The root the client bootstrapped from the server is byte for byte the one signed.
    let trusted = std::fs::read(cache.path().join("root.json")).expect("client root.json");
    assert_eq!(
        trusted,
        root.as_bytes(),
        "served 1.root.json differs from the signed root"
    );

    // The same cache, after a second publish: the client updates.
    publish_second(&publisher).await;
    let found = ngclient(&server, cache.path(), ALL_NAMES).await;
    assert_found(
        &found,
        &["tag-a", "tag-b", "tag-c", RELEASED],
        &["release-2"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tuf_verifies_and_follows_updates_on_sqlite() {
    python_tuf_verifies_and_follows_updates(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tuf_verifies_and_follows_updates_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        python_tuf_verifies_and_follows_updates(backend).await;
    }
}

/// Loads the repository of [`GUN`] with tough over HTTP, trusting `root`.
async fn tough_load(server: &TestServer, root: &Signed<Root>) -> tough::Repository {
    let metadata = url::Url::parse(&server.tuf_url(GUN)).expect("metadata URL");
    // Never fetched: no target is downloaded.
    let targets = url::Url::parse("http://127.0.0.1:9/targets/").expect("targets URL");
    tough::RepositoryLoader::new(&root.as_bytes(), metadata, targets)
        .transport(tough::HttpTransport::default())
        .load()
        .await
        .expect("tough loads the repository over HTTP")
}

/// Every target tough lists, with its length and hex sha256.
fn tough_targets(repo: &tough::Repository) -> Found {
    repo.all_targets()
        .map(|(name, target)| {
            let sha256 = hex::encode(target.hashes.sha256.as_ref() as &[u8]);
            (name.raw().to_owned(), Some((target.length, sha256)))
        })
        .collect()
}

async fn tough_loads_and_follows_updates(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (publisher, root) = publish_repository(&server).await;

    let repo = tough_load(&server, &root).await;
    assert!(
        repo.delegated_role(RELEASES).is_some(),
        "tough loaded {RELEASES}"
    );
    let listed = tough_targets(&repo);
    assert_found(&listed, &["tag-a", "tag-b", RELEASED], &[]);
    assert_eq!(listed.len(), 3, "exactly what was published: {listed:?}");

    publish_second(&publisher).await;
    let listed = tough_targets(&tough_load(&server, &root).await);
    assert_found(&listed, &["tag-a", "tag-b", "tag-c", RELEASED], &[]);
    assert_eq!(listed.len(), 4, "exactly what was published: {listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tough_loads_and_follows_updates_on_sqlite() {
    tough_loads_and_follows_updates(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tough_loads_and_follows_updates_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        tough_loads_and_follows_updates(backend).await;
    }
}

async fn publishing_continues_after_restart(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (mut publisher, _) = publish_repository(&server).await;
    let timestamp_key = publisher.server_key("timestamp").await;
    let snapshot_key = publisher.server_key("snapshot").await;
    let cache = tempfile::tempdir().expect("temp dir");
    let found = ngclient(&server, cache.path(), ALL_NAMES).await;
    assert_found(&found, &["tag-a", "tag-b", RELEASED], &["tag-c"]);

    let server = server.restart().await;
    // The restarted server listens on a new port.
    publisher.server = server.url.clone();
    assert_eq!(publisher.server_key("timestamp").await, timestamp_key);
    assert_eq!(publisher.server_key("snapshot").await, snapshot_key);

    // The server signs snapshot and timestamp for this publish with the keys it kept.
    publish_second(&publisher).await;
    let found = ngclient(&server, cache.path(), ALL_NAMES).await;
    assert_found(
        &found,
        &["tag-a", "tag-b", "tag-c", RELEASED],
        &["release-2"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_continues_after_restart_on_sqlite() {
    publishing_continues_after_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_continues_after_restart_on_postgres() {
    if let Some(backend) = Backend::postgres().await {
        publishing_continues_after_restart(backend).await;
    }
}
