//! The server's HTTP API and every upload rule, against the real server on SQLite and on
//! PostgreSQL. Each refused update is checked for its status, its error code, a message that
//! names the rule, and that the current metadata did not change.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_tests::repo::{content_of, far_future, target_for, test_key};
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use notar_tuf::{
    Delegations, Expiry, RoleName, RoleType, Root, Signed, Signer, Snapshot, TargetName, Targets,
    Timestamp, Version,
};
use reqwest::StatusCode;

const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// Asserts an error response: status, envelope code, and a message containing `needle`.
async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str, needle: &str) {
    let got = response.status();
    let body: serde_json::Value = response.json().await.expect("error body is JSON");
    assert_eq!(got, status, "status for {body}");
    let error = &body["errors"][0];
    assert_eq!(error["code"], code, "code in {body}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains(needle),
        "message {message:?} should contain {needle:?}"
    );
}

fn files(items: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    items
        .iter()
        .map(|(n, b)| ((*n).to_owned(), b.to_vec()))
        .collect()
}

fn expired() -> Expiry {
    "2001-01-01T00:00:00Z".parse().expect("valid")
}

/// Runs `test` against every backend.
macro_rules! on_every_backend {
    ($name:ident, $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in Backend::all().await {
                let server = TestServer::start(backend).await;
                $body(server).await;
            }
        }
    };
}

on_every_backend!(
    publish_then_read_every_way,
    |server: TestServer| async move {
        let mut publisher = Publisher::new(&server, "localhost:5000/team/app", SnapshotKey::Server);
        let (root, targets) = publisher.init(&["latest", "v1"]).await;

        let (status, body) = publisher.get("root.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, root.as_bytes(), "bytes served verbatim");
        let (status, body) = publisher.get("1.targets.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, targets.as_bytes());
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(targets.as_bytes()));
        let (status, body) = publisher.get(&format!("targets.{sha}.json")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, targets.as_bytes());

        // The server's timestamp and snapshot verify under the published root and pin targets.
        let root = root.verify_self().expect("root");
        let (_, ts) = publisher.get("timestamp.json").await;
        let ts = Signed::<Timestamp>::from_bytes(ts)
            .expect("timestamp parses")
            .verify(&root.authority(RoleType::Timestamp).expect("role"))
            .expect("timestamp signed by the server key root lists");
        let (_, snap) = publisher.get("snapshot.json").await;
        let meta = ts.snapshot_meta().expect("snapshot meta");
        assert_eq!(meta.length, Some(snap.len() as u64));
        let snap = Signed::<Snapshot>::from_bytes(snap)
            .expect("snapshot parses")
            .verify(&root.authority(RoleType::Snapshot).expect("role"))
            .expect("snapshot signed by the server key");
        assert_eq!(snap.meta["targets.json"].version, Some(Version::ONE));

        // Caching headers and conditional GET.
        let response = publisher
            .http
            .get(publisher.url("targets.json"))
            .send()
            .await
            .expect("GET");
        let etag = response.headers()["etag"]
            .to_str()
            .expect("etag")
            .to_owned();
        assert!(
            response.headers()["cache-control"]
                .to_str()
                .expect("cc")
                .contains("must-revalidate")
        );
        let again = publisher
            .http
            .get(publisher.url("targets.json"))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("GET");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let immutable = publisher
            .http
            .get(publisher.url("1.root.json"))
            .send()
            .await
            .expect("GET");
        assert!(
            immutable.headers()["cache-control"]
                .to_str()
                .expect("cc")
                .contains("immutable")
        );

        // Ping and health.
        let ping = publisher
            .http
            .get(format!("{}/v2/", server.url))
            .send()
            .await
            .expect("ping");
        assert_eq!(ping.status(), StatusCode::OK);
        assert_eq!(ping.text().await.expect("body"), "{}");
        let health = publisher
            .http
            .get(format!("{}/_notary_server/health", server.url))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), StatusCode::OK);
    }
);

on_every_backend!(first_root_rules, |server: TestServer| async move {
    let mut publisher = Publisher::new(&server, "example.com/first", SnapshotKey::Server);
    let targets = publisher.sign_targets(publisher.make_targets(1, &["a"]));

    // A timestamp key the server did not make.
    let mut root = publisher.make_root(1).await;
    let ts_id = root.role_keys(RoleType::Timestamp).expect("role").keyids[0].clone();
    root.remove_key(RoleType::Timestamp, &ts_id);
    root.add_key(RoleType::Timestamp, test_key(77).public_key());
    let root = Signed::sign(root, &[&publisher.root_key]).expect("sign");
    expect_error(
        publisher
            .upload(files(&[
                ("root", root.as_bytes()),
                ("targets", targets.as_bytes()),
            ]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "timestamp keys this server made",
    )
    .await;

    // Not signed by its own root key.
    let root = publisher.make_root(1).await;
    let root = Signed::sign(root, &[&test_key(78)]).expect("sign");
    expect_error(
        publisher
            .upload(files(&[
                ("root.json", root.as_bytes()),
                ("targets.json", targets.as_bytes()),
            ]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "threshold of its own root keys",
    )
    .await;

    // Targets without any root.
    expect_error(
        publisher
            .upload(files(&[("targets", targets.as_bytes())]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "no root yet",
    )
    .await;

    // Root without targets.
    let root = publisher.make_root(1).await;
    let root = Signed::sign(root, &[&publisher.root_key]).expect("sign");
    expect_error(
        publisher.upload(files(&[("root", root.as_bytes())])).await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "no targets yet",
    )
    .await;

    // Nothing was stored by any of these.
    for role in ROLES {
        let (status, _) = publisher.get(&format!("{role}.json")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{role} must not exist");
    }
});

on_every_backend!(root_rotation_rules, |server: TestServer| async move {
    let mut publisher = Publisher::new(&server, "example.com/rotate", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    let before = publisher.snapshot_of_state(&ROLES).await;
    let new_key = test_key(21);
    let root_v = |v: u64, publisher_key: &ed25519_dalek::SigningKey, base: &Root| {
        let mut root = base.clone();
        root.version = Version::new(v).expect("v");
        let old = publisher_key.public_key().key_id();
        root.remove_key(RoleType::Root, &old);
        root.add_key(RoleType::Root, new_key.public_key());
        root
    };
    let base = publisher.make_root(1).await;

    let skipped = Signed::sign(
        root_v(3, &publisher.root_key, &base),
        &[&publisher.root_key, &new_key],
    )
    .expect("sign");
    expect_error(
        publisher
            .upload(files(&[("root", skipped.as_bytes())]))
            .await,
        StatusCode::CONFLICT,
        "VERSION",
        "not the next version 2",
    )
    .await;
    let only_new = Signed::sign(root_v(2, &publisher.root_key, &base), &[&new_key]).expect("sign");
    expect_error(
        publisher
            .upload(files(&[("root", only_new.as_bytes())]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "previous root's keys",
    )
    .await;
    let only_old = Signed::sign(
        root_v(2, &publisher.root_key, &base),
        &[&publisher.root_key],
    )
    .expect("sign");
    expect_error(
        publisher
            .upload(files(&[("root", only_old.as_bytes())]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "its own root keys",
    )
    .await;
    let mut stale = root_v(2, &publisher.root_key, &base);
    stale.expires = expired();
    let stale = Signed::sign(stale, &[&publisher.root_key, &new_key]).expect("sign");
    expect_error(
        publisher.upload(files(&[("root", stale.as_bytes())])).await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "expired",
    )
    .await;
    // Rotating the targets key without re-signing targets would strand clients.
    let mut new_targets_key_root = base.clone();
    new_targets_key_root.version = Version::new(2).expect("v");
    new_targets_key_root.remove_key(
        RoleType::Targets,
        &publisher.targets_key.public_key().key_id(),
    );
    new_targets_key_root.add_key(RoleType::Targets, test_key(22).public_key());
    let stranded = Signed::sign(new_targets_key_root, &[&publisher.root_key]).expect("sign");
    expect_error(
        publisher
            .upload(files(&[("root", stranded.as_bytes())]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "re-signed with the new key",
    )
    .await;
    assert_eq!(
        publisher.snapshot_of_state(&ROLES).await,
        before,
        "refusals change nothing"
    );

    // The proper rotation: signed by old and new.
    let good = Signed::sign(
        root_v(2, &publisher.root_key, &base),
        &[&publisher.root_key, &new_key],
    )
    .expect("sign");
    let response = publisher.upload(files(&[("root", good.as_bytes())])).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let (_, v2) = publisher.get("2.root.json").await;
    assert_eq!(v2, good.as_bytes());
    let (_, v1) = publisher.get("1.root.json").await;
    assert_eq!(v1, before["root"], "old versions stay addressable");
});

on_every_backend!(targets_rules, |server: TestServer| async move {
    let mut publisher = Publisher::new(&server, "example.com/targets", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    let before = publisher.snapshot_of_state(&ROLES).await;

    let same_version = publisher.sign_targets(publisher.make_targets(1, &["b"]));
    expect_error(
        publisher
            .upload(files(&[("targets", same_version.as_bytes())]))
            .await,
        StatusCode::CONFLICT,
        "VERSION",
        "not newer than the stored version 1",
    )
    .await;
    let wrong_key =
        Signed::sign(publisher.make_targets(2, &["b"]), &[&test_key(40)]).expect("sign");
    expect_error(
        publisher
            .upload(files(&[("targets", wrong_key.as_bytes())]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "0 valid signature(s), threshold 1",
    )
    .await;
    let mut stale = publisher.make_targets(2, &["b"]);
    stale.expires = expired();
    let stale = publisher.sign_targets(stale);
    expect_error(
        publisher
            .upload(files(&[("targets", stale.as_bytes())]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "targets expired",
    )
    .await;
    let timestamp = publisher.get("timestamp.json").await.1;
    expect_error(
        publisher.upload(files(&[("timestamp", &timestamp)])).await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "timestamps are made by the server",
    )
    .await;
    expect_error(
        publisher
            .upload(files(&[("targets", b"{\"signed\": ")]))
            .await,
        StatusCode::BAD_REQUEST,
        "MALFORMED_UPLOAD",
        "malformed targets metadata",
    )
    .await;
    let root_bytes = publisher.get("root.json").await.1;
    expect_error(
        publisher.upload(files(&[("targets", &root_bytes)])).await,
        StatusCode::BAD_REQUEST,
        "MALFORMED_UPLOAD",
        "wrong _type",
    )
    .await;
    assert_eq!(
        publisher.snapshot_of_state(&ROLES).await,
        before,
        "refusals change nothing"
    );

    let good = publisher.sign_targets(publisher.make_targets(2, &["a", "b"]));
    let response = publisher
        .upload(files(&[("targets", good.as_bytes())]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (_, snapshot) = publisher.get("snapshot.json").await;
    let snapshot = Signed::<Snapshot>::from_bytes(snapshot).expect("snapshot");
    assert_eq!(snapshot.untrusted().version.get(), 2);
    assert_eq!(
        snapshot.untrusted().meta["targets.json"]
            .version
            .map(|v| v.get()),
        Some(2)
    );
});

/// Targets v`version` delegating `targets/releases` (paths `release-*`) to `key`.
fn delegating_targets(
    publisher: &Publisher,
    version: u64,
    key: &ed25519_dalek::SigningKey,
) -> Signed<Targets> {
    let mut targets = publisher.make_targets(version, &["a"]);
    let mut delegations = Delegations::new();
    delegations.add_role(
        RoleName::new("targets/releases").expect("valid"),
        &[key.public_key()],
        std::num::NonZeroU32::MIN,
        vec!["release-*".into()],
    );
    targets.delegations = Some(delegations);
    publisher.sign_targets(targets)
}

fn releases(version: u64, tags: &[&str], key: &ed25519_dalek::SigningKey) -> Signed<Targets> {
    let mut t = Targets::new(Version::new(version).expect("v"), far_future());
    for tag in tags {
        t.targets.insert(
            TargetName::new(*tag).expect("valid"),
            target_for(&content_of(tag)),
        );
    }
    Signed::sign(t, &[key]).expect("sign")
}

on_every_backend!(delegation_rules, |server: TestServer| async move {
    let mut publisher = Publisher::new(&server, "example.com/delegated", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    let signer = test_key(50);
    let roles = [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/releases",
    ];
    let before = publisher.snapshot_of_state(&roles).await;

    // Not declared by any targets role.
    expect_error(
        publisher
            .upload(files(&[(
                "targets/releases",
                releases(1, &["release-1"], &signer).as_bytes(),
            )]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "no targets role delegates targets/releases",
    )
    .await;
    let delegating = delegating_targets(&publisher, 2, &signer);
    // Declared in the same upload, but signed by another key.
    expect_error(
        publisher
            .upload(files(&[
                ("targets", delegating.as_bytes()),
                (
                    "targets%2Freleases",
                    releases(1, &["release-1"], &test_key(51)).as_bytes(),
                ),
            ]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "targets/releases: 0 valid signature(s)",
    )
    .await;
    // A target outside the delegated paths.
    expect_error(
        publisher
            .upload(files(&[
                ("targets", delegating.as_bytes()),
                (
                    "targets/releases",
                    releases(1, &["latest"], &signer).as_bytes(),
                ),
            ]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "target latest is outside the paths delegated to targets/releases",
    )
    .await;
    assert_eq!(
        publisher.snapshot_of_state(&roles).await,
        before,
        "refusals change nothing"
    );

    // Both in one upload: accepted; the snapshot pins the delegated role.
    let response = publisher
        .upload(files(&[
            ("targets", delegating.as_bytes()),
            (
                "targets/releases.json",
                releases(1, &["release-1"], &signer).as_bytes(),
            ),
        ]))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let (status, _) = publisher.get("targets%2Freleases.json").await;
    assert_eq!(status, StatusCode::OK);
    let snapshot =
        Signed::<Snapshot>::from_bytes(publisher.get("snapshot.json").await.1).expect("parses");
    assert_eq!(
        snapshot.untrusted().meta["targets/releases.json"]
            .version
            .map(|v| v.get())
            .unwrap_or_default(),
        1
    );

    // Later: the delegated role alone, against the stored delegation; versions must grow.
    expect_error(
        publisher
            .upload(files(&[(
                "targets/releases",
                releases(1, &["release-2"], &signer).as_bytes(),
            )]))
            .await,
        StatusCode::CONFLICT,
        "VERSION",
        "not newer",
    )
    .await;
    let response = publisher
        .upload(files(&[(
            "targets/releases",
            releases(2, &["release-2"], &signer).as_bytes(),
        )]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
});

on_every_backend!(
    client_held_snapshot_rules,
    |server: TestServer| async move {
        let mut publisher = Publisher::new(&server, "example.com/ownsnap", SnapshotKey::Client);
        let (_, targets_v1) = publisher.init(&["a"]).await;
        let before = publisher.snapshot_of_state(&ROLES).await;
        let targets = publisher.sign_targets(publisher.make_targets(2, &["a", "b"]));

        expect_error(
            publisher
                .upload(files(&[("targets", targets.as_bytes())]))
                .await,
            StatusCode::BAD_REQUEST,
            "INVALID_UPDATE",
            "must include snapshot",
        )
        .await;
        let stale_pin = publisher.make_snapshot(2, &[("targets", targets_v1.as_bytes(), 1)]);
        expect_error(
            publisher
                .upload(files(&[
                    ("targets", targets.as_bytes()),
                    ("snapshot", stale_pin.as_bytes()),
                ]))
                .await,
            StatusCode::BAD_REQUEST,
            "INVALID_UPDATE",
            "targets (as snapshot pins it): version 2 where version 1 was pinned",
        )
        .await;
        let wrong_key = Signed::sign(
            publisher
                .make_snapshot(2, &[("targets", targets.as_bytes(), 2)])
                .untrusted()
                .clone(),
            &[&test_key(60)],
        )
        .expect("sign");
        expect_error(
            publisher
                .upload(files(&[
                    ("targets", targets.as_bytes()),
                    ("snapshot", wrong_key.as_bytes()),
                ]))
                .await,
            StatusCode::BAD_REQUEST,
            "INVALID_UPDATE",
            "snapshot: 0 valid signature(s)",
        )
        .await;
        assert_eq!(
            publisher.snapshot_of_state(&ROLES).await,
            before,
            "refusals change nothing"
        );
        let good = publisher.make_snapshot(2, &[("targets", targets.as_bytes(), 2)]);
        let response = publisher
            .upload(files(&[
                ("targets", targets.as_bytes()),
                ("snapshot", good.as_bytes()),
            ]))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(publisher.get("snapshot.json").await.1, good.as_bytes());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut publisher = Publisher::new(&server, "example.com/bad", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    let before = publisher.snapshot_of_state(&ROLES).await;
    let http = &publisher.http;

    let not_multipart = http
        .post(publisher.url(""))
        .body("{}")
        .send()
        .await
        .expect("POST");
    expect_error(
        not_multipart,
        StatusCode::BAD_REQUEST,
        "MALFORMED_UPLOAD",
        "multipart",
    )
    .await;

    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(b"{}".to_vec()).file_name(""),
    );
    let empty_name = http
        .post(publisher.url(""))
        .multipart(form)
        .send()
        .await
        .expect("POST");
    expect_error(
        empty_name,
        StatusCode::BAD_REQUEST,
        "MALFORMED_UPLOAD",
        "no filename",
    )
    .await;

    let unknown = publisher.upload(files(&[("bogus", b"{}")])).await;
    expect_error(
        unknown,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "no targets role delegates bogus",
    )
    .await;

    // A 50 MiB update is refused from its headers, before the body is read. (Sent over a
    // raw socket: an HTTP client still writing the body when the refusal comes back may
    // see a broken pipe instead of the response.)
    let too_big = raw_request(
        server.addr,
        "POST /v2/example.com/bad/_trust/tuf/ HTTP/1.1\r\nContent-Type: multipart/form-data; \
         boundary=x\r\nContent-Length: 52428800\r\n",
    )
    .await;
    assert!(too_big.starts_with("HTTP/1.1 413"), "{too_big}");
    assert!(too_big.contains("TOO_LARGE"), "{too_big}");

    // HTTP clients normalise `..` away, so this one goes over a raw socket.
    let raw = raw_request(
        server.addr,
        "GET /v2/a/../b/_trust/tuf/root.json HTTP/1.1\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("INVALID_NAME"), "{raw}");
    for gun in ["a/*", "Upper/case", &"a".repeat(300)] {
        let url = format!("{}/v2/{gun}/_trust/tuf/root.json", server.url);
        let response = http.get(&url).send().await.expect("GET");
        expect_error(
            response,
            StatusCode::BAD_REQUEST,
            "INVALID_NAME",
            "invalid GUN",
        )
        .await;
    }
    let upper = "AB".repeat(32);
    let response = publisher
        .http
        .get(publisher.url(&format!("targets.{upper}.json")))
        .send()
        .await
        .expect("GET");
    expect_error(
        response,
        StatusCode::BAD_REQUEST,
        "INVALID_NAME",
        "lower-case hex",
    )
    .await;
    let (status, _) = publisher
        .get(&format!("targets.{}.json", "ab".repeat(32)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let unknown_gun = http
        .delete(format!("{}/v2/example.com/nothing/_trust/tuf/", server.url))
        .send()
        .await
        .expect("DELETE");
    expect_error(
        unknown_gun,
        StatusCode::NOT_FOUND,
        "METADATA_NOT_FOUND",
        "has no trust data",
    )
    .await;
    assert_eq!(
        publisher.snapshot_of_state(&ROLES).await,
        before,
        "bad requests change nothing"
    );
}

/// Sends a request line and headers exactly as written (no body) and returns the whole
/// response as text.
async fn raw_request(addr: std::net::SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("{head}Host: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_limit_gives_413() {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.limits.max_file_bytes = 4096).await;
    let mut publisher = Publisher::new(&server, "example.com/limits", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    let tags: Vec<String> = (0..100).map(|i| format!("tag-{i}")).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let big = publisher.sign_targets(publisher.make_targets(2, &tags));
    let response = publisher
        .upload(files(&[("targets", big.as_bytes())]))
        .await;
    expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "TOO_LARGE",
        "targets is larger than 4096 bytes",
    )
    .await;
}

on_every_backend!(managed_keys_and_deletion, |server: TestServer| async move {
    let mut publisher = Publisher::new(&server, "example.com/keys", SnapshotKey::Server);
    let first = publisher.server_key("timestamp").await;
    assert_eq!(
        publisher.server_key("timestamp").await,
        first,
        "repeated GETs agree"
    );
    publisher.init(&["a"]).await;

    // Rotation: POST makes a new key; it signs once a root lists it.
    let rotated: notar_tuf::PublicKey = publisher
        .http
        .post(publisher.url("timestamp.key"))
        .send()
        .await
        .expect("POST key")
        .json()
        .await
        .expect("key JSON");
    assert_ne!(rotated, first);
    assert_eq!(publisher.server_key("timestamp").await, rotated);
    let targets = publisher.sign_targets(publisher.make_targets(2, &["a", "b"]));
    assert_eq!(
        publisher
            .upload(files(&[("targets", targets.as_bytes())]))
            .await
            .status(),
        StatusCode::OK
    );
    let ts = Signed::<Timestamp>::from_bytes(publisher.get("timestamp.json").await.1).expect("ts");
    assert_eq!(
        ts.signatures()[0].keyid,
        first.key_id(),
        "old key signs until root adopts the new one"
    );

    let mut root = publisher.make_root(2).await;
    root.version = Version::new(2).expect("v");
    let root = Signed::sign(root, &[&publisher.root_key]).expect("sign");
    assert_eq!(
        publisher
            .upload(files(&[("root", root.as_bytes())]))
            .await
            .status(),
        StatusCode::OK
    );
    let ts = Signed::<Timestamp>::from_bytes(publisher.get("timestamp.json").await.1).expect("ts");
    assert_eq!(
        ts.signatures()[0].keyid,
        rotated.key_id(),
        "the adopted key signs"
    );

    // Changefeed and deletion.
    let feed: serde_json::Value = publisher
        .http
        .get(format!(
            "{}/v2/example.com/keys/_trust/changefeed?change_id=0&records=10",
            server.url
        ))
        .send()
        .await
        .expect("changefeed")
        .json()
        .await
        .expect("JSON");
    assert_eq!(feed["count"], 3, "three timestamps so far: {feed}");
    assert_eq!(feed["records"][0]["Category"], "update");
    assert_eq!(feed["records"][0]["GUN"], "example.com/keys");
    assert_eq!(publisher.delete().await, StatusCode::OK);
    for role in ROLES {
        assert_eq!(
            publisher.get(&format!("{role}.json")).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let feed: serde_json::Value = publisher
        .http
        .get(format!(
            "{}/v2/_trust/changefeed?change_id=0&records=-1",
            server.url
        ))
        .send()
        .await
        .expect("changefeed")
        .json()
        .await
        .expect("JSON");
    assert_eq!(feed["records"][0]["Category"], "deletion", "{feed}");
});

on_every_backend!(
    concurrent_updates_lose_nothing,
    |server: TestServer| async move {
        let mut publisher = Publisher::new(&server, "example.com/race", SnapshotKey::Server);
        publisher.init(&["base"]).await;
        let publisher = std::sync::Arc::new(publisher);
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let publisher = std::sync::Arc::clone(&publisher);
            tasks.push(tokio::spawn(async move {
                let (mut accepted, mut refused) = (0, 0);
                for _attempt in 0..40 {
                    let current =
                        Signed::<Targets>::from_bytes(publisher.get("targets.json").await.1)
                            .expect("targets");
                    let mut next = current.untrusted().clone();
                    next.version = next.version.next();
                    next.targets.insert(
                        TargetName::new(format!("writer-{writer}")).expect("valid"),
                        target_for(&content_of("x")),
                    );
                    let response = publisher
                        .upload(files(&[(
                            "targets",
                            publisher.sign_targets(next).as_bytes(),
                        )]))
                        .await;
                    match response.status() {
                        StatusCode::OK => {
                            accepted += 1;
                            break;
                        }
                        StatusCode::CONFLICT => {
                            let body: serde_json::Value = response.json().await.expect("JSON");
                            assert_eq!(body["errors"][0]["code"], "VERSION");
                            refused += 1;
                        }
                        other => panic!(
                            "unexpected {other}: {}",
                            response.text().await.unwrap_or_default()
                        ),
                    }
                }
                (accepted, refused)
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            accepted += task.await.expect("writer").0;
        }
        assert_eq!(accepted, 8, "every writer got through eventually");
        let final_targets =
            Signed::<Targets>::from_bytes(publisher.get("targets.json").await.1).expect("targets");
        assert_eq!(
            final_targets.untrusted().version.get(),
            9,
            "versions are contiguous"
        );
        for writer in 0..8 {
            assert!(
                final_targets
                    .untrusted()
                    .targets
                    .contains_key(format!("writer-{writer}").as_str())
            );
        }
        for v in 1..=9 {
            assert_eq!(
                publisher.get(&format!("{v}.targets.json")).await.0,
                StatusCode::OK,
                "version {v}"
            );
        }
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_are_refreshed_on_read_and_in_the_background() {
    // On read: a 2-second timestamp is within its margin after 2 seconds.
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.lifetimes.timestamp = time::Duration::seconds(2);
        c.lifetimes.snapshot = time::Duration::seconds(4);
        c.refresh_interval = std::time::Duration::from_secs(3600);
        c.cache_ttl = std::time::Duration::from_millis(200);
    })
    .await;
    let mut publisher = Publisher::new(&server, "example.com/fresh", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    // Once the change log has shown the server its own write, read once, so that the next
    // read finds the timestamp in memory (answered before the router, which must still
    // see that it is due).
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let ts = Signed::<Timestamp>::from_bytes(publisher.get("timestamp.json").await.1).expect("ts");
    assert_eq!(ts.untrusted().version.get(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    let ts = Signed::<Timestamp>::from_bytes(publisher.get("timestamp.json").await.1).expect("ts");
    assert_eq!(ts.untrusted().version.get(), 2, "re-signed on read");
    assert!(
        !ts.untrusted()
            .expires
            .is_expired_at(time::OffsetDateTime::now_utc())
    );
    // The server-held snapshot would have expired before the new timestamp: re-signed too.
    let snapshot =
        Signed::<Snapshot>::from_bytes(publisher.get("snapshot.json").await.1).expect("snapshot");
    assert_eq!(
        snapshot.untrusted().version.get(),
        2,
        "snapshot re-signed with the timestamp"
    );
    assert_eq!(
        ts.untrusted()
            .snapshot_meta()
            .and_then(|m| m.version)
            .map(|v| v.get())
            .unwrap_or_default(),
        2
    );

    // In the background: nobody reads, the task re-signs.
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.lifetimes.timestamp = time::Duration::seconds(2);
        c.refresh_interval = std::time::Duration::from_secs(1);
    })
    .await;
    let mut publisher = Publisher::new(&server, "example.com/idle", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    let gun = notar_tuf::Gun::new("example.com/idle").expect("gun");
    let mut version = 1;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let stored = server
            .state
            .store
            .current(&gun, &RoleName::timestamp())
            .await
            .expect("store")
            .expect("timestamp");
        version = stored.version.get();
        if version > 1 {
            break;
        }
    }
    assert!(version > 1, "the background task re-signed the timestamp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_server_secret_stops_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = notar_server::Config::for_data_dir(dir.path());
    let state = notar_server::AppState::open(
        config.clone(),
        zeroize::Zeroizing::new("right".to_owned()),
        notar_keys::KdfParams::for_tests(),
    )
    .await
    .expect("opens");
    state
        .keys
        .current_public(
            &notar_tuf::Gun::new("a/b").expect("gun"),
            notar_server::path::ManagedRole::Timestamp,
            &notar_server::audit::Origin::default(),
        )
        .await
        .expect("key made");
    drop(state);
    let err = notar_server::AppState::open(
        config,
        zeroize::Zeroizing::new("not-the-secret-8c1f".to_owned()),
        notar_keys::KdfParams::for_tests(),
    )
    .await
    .expect_err("a wrong secret must stop start-up");
    assert!(
        err.to_string().contains("server secret does not decrypt"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("8c1f"),
        "the secret itself is not in the message: {err}"
    );
}

/// `POST /v2/<gun>/_trust/pending/` with the owner's next targets.
async fn stage(publisher: &Publisher, targets: &[u8]) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(targets.to_vec()).file_name("targets"),
    );
    publisher
        .http
        .post(format!(
            "{}/v2/{}/_trust/pending/",
            publisher.server, publisher.gun
        ))
        .multipart(form)
        .send()
        .await
        .expect("POST pending")
}

async fn pending_roles(publisher: &Publisher) -> Vec<(String, Vec<u8>)> {
    let listing: serde_json::Value = publisher
        .http
        .get(format!(
            "{}/v2/{}/_trust/pending/",
            publisher.server, publisher.gun
        ))
        .send()
        .await
        .expect("GET pending")
        .json()
        .await
        .expect("JSON");
    listing["pending"]
        .as_array()
        .expect("pending")
        .iter()
        .map(|e| {
            (
                e["role"].as_str().expect("role").to_owned(),
                e["targets"].as_str().expect("targets").as_bytes().to_vec(),
            )
        })
        .collect()
}

// A delegation to a role without metadata waits on the server, unpublished, until the
// signer's first version of the role comes with it; both are then published together.
on_every_backend!(pending_delegations, |server: TestServer| async move {
    let mut publisher = Publisher::new(&server, "example.com/pending", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    let roles = ["root", "targets", "snapshot", "timestamp"];
    let before = publisher.snapshot_of_state(&roles).await;
    let signer = test_key(60);

    // Targets that delegate nothing new, a bad signature, or two files: refused.
    let plain = publisher.sign_targets(publisher.make_targets(2, &["a", "b"]));
    expect_error(
        stage(&publisher, plain.as_bytes()).await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "delegate no role that lacks metadata",
    )
    .await;
    let delegating = delegating_targets(&publisher, 2, &signer);
    let mut forged: serde_json::Value =
        serde_json::from_slice(delegating.as_bytes()).expect("json");
    forged["signed"]["expires"] = serde_json::json!("2199-01-01T00:00:00Z");
    expect_error(
        stage(&publisher, &serde_json::to_vec(&forged).expect("json")).await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "0 valid signature(s)",
    )
    .await;
    assert!(pending_roles(&publisher).await.is_empty());

    // Staged: listed with the exact bytes; nothing published.
    let response = stage(&publisher, delegating.as_bytes()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        pending_roles(&publisher).await,
        vec![(
            "targets/releases".to_owned(),
            delegating.as_bytes().to_vec()
        )]
    );
    assert_eq!(
        publisher.snapshot_of_state(&roles).await,
        before,
        "staging publishes nothing"
    );
    // Nobody can publish the staged targets without the signer's role: a delegation to a
    // role without metadata would break standard TUF clients.
    expect_error(
        publisher
            .upload(files(&[("targets", delegating.as_bytes())]))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "targets delegates targets/releases, which has no metadata",
    )
    .await;

    // The signer's first role with the pending targets: published, no longer pending.
    let response = publisher
        .upload(files(&[
            ("targets", delegating.as_bytes()),
            (
                "targets/releases",
                releases(1, &["release-1"], &signer).as_bytes(),
            ),
        ]))
        .await;
    assert!(response.status().is_success());
    assert!(pending_roles(&publisher).await.is_empty());
    let (status, current) = publisher.get("targets.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(current, delegating.as_bytes());

    // Deleting the repository forgets what was pending.
    let mut next = publisher.make_targets(3, &["a"]);
    let mut delegations = Delegations::new();
    delegations.add_role(
        RoleName::new("targets/carol").expect("valid"),
        &[test_key(61).public_key()],
        std::num::NonZeroU32::MIN,
        vec!["*".into()],
    );
    next.delegations = Some(delegations);
    let next = publisher.sign_targets(next);
    assert_eq!(
        stage(&publisher, next.as_bytes()).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(pending_roles(&publisher).await.len(), 1);
    assert!(publisher.delete().await.is_success());
    assert!(pending_roles(&publisher).await.is_empty());
});

/// The web view is on by default and `--no-ui` (`ui = false`) takes it away, API intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_is_served_unless_turned_off() {
    let on = TestServer::start(Backend::Sqlite).await;
    let page = reqwest::get(format!("{}/ui/", on.url))
        .await
        .expect("GET /ui/");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .expect("body")
            .contains("<h1>Repositories</h1>")
    );
    let off = TestServer::start_with(Backend::Sqlite, |config| config.ui = false).await;
    let page = reqwest::get(format!("{}/ui/", off.url))
        .await
        .expect("GET /ui/");
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let ping = reqwest::get(format!("{}/v2/", off.url))
        .await
        .expect("GET /v2/");
    assert_eq!(ping.status(), StatusCode::OK);
}

/// POSTs `files` as a co-signing proposal.
async fn propose(publisher: &Publisher, files: Vec<(String, Vec<u8>)>) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (role, bytes) in files {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(bytes).file_name(role),
        );
    }
    publisher
        .http
        .post(proposals_url(publisher, None))
        .multipart(form)
        .send()
        .await
        .expect("POST proposal")
}

fn proposals_url(publisher: &Publisher, id: Option<&str>) -> String {
    format!(
        "{}/v2/{}/_trust/proposals/{}",
        publisher.server,
        publisher.gun,
        id.unwrap_or("")
    )
}

async fn cosign(
    publisher: &Publisher,
    id: &str,
    role: &str,
    sigs: &[notar_tuf::Signature],
) -> reqwest::Response {
    publisher
        .http
        .post(proposals_url(publisher, Some(id)))
        .json(&serde_json::json!({ "signatures": { role: sigs } }))
        .send()
        .await
        .expect("POST co-signature")
}

async fn proposal_list(publisher: &Publisher) -> Vec<serde_json::Value> {
    let response = publisher
        .http
        .get(proposals_url(publisher, None))
        .send()
        .await
        .expect("GET proposals");
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("JSON");
    body["proposals"].as_array().expect("list").clone()
}

async fn releases_version(publisher: &Publisher) -> u64 {
    let (status, bytes) = publisher.get("targets%2Freleases.json").await;
    assert_eq!(status, StatusCode::OK);
    Signed::<Targets>::from_bytes(bytes)
        .expect("releases")
        .untrusted()
        .version
        .get()
}

on_every_backend!(co_signing_proposals, |server: TestServer| async move {
    let mut publisher = Publisher::new(&server, "example.com/cosigned", SnapshotKey::Server);
    publisher.init(&["a"]).await;
    let (alice, bob, carol, stranger) = (test_key(61), test_key(62), test_key(63), test_key(64));
    // targets/releases: three people's keys, two of them needed.
    let mut targets = publisher.make_targets(2, &["a"]);
    let mut delegations = Delegations::new();
    delegations.add_role(
        RoleName::new("targets/releases").expect("valid"),
        &[alice.public_key(), bob.public_key(), carol.public_key()],
        std::num::NonZeroU32::new(2).expect("two"),
        vec!["release-*".into()],
    );
    targets.delegations = Some(delegations);
    let targets = publisher.sign_targets(targets);
    let first = Signed::sign(
        releases(1, &["release-1"], &alice).untrusted().clone(),
        &[&alice, &bob],
    )
    .expect("sign");
    let response = publisher
        .upload(files(&[
            ("targets", targets.as_bytes()),
            ("targets%2Freleases", first.as_bytes()),
        ]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    // Alice proposes release-2 alone: kept, never current.
    let next = releases(2, &["release-1", "release-2"], &alice);
    let response = propose(
        &publisher,
        files(&[("targets%2Freleases", next.as_bytes())]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = response.json().await.expect("JSON");
    let id = body["proposal"].as_str().expect("id").to_owned();
    assert_eq!(releases_version(&publisher).await, 1);
    let listed = proposal_list(&publisher).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["roles"], serde_json::json!(["targets/releases"]));

    // Carol signs something else (release-3 instead): refused, the proposal unchanged.
    let other = Signed::sign(
        releases(2, &["release-1", "release-3"], &carol)
            .untrusted()
            .clone(),
        &[&carol],
    )
    .expect("sign");
    expect_error(
        cosign(&publisher, &id, "targets/releases", other.signatures()).await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "does not verify",
    )
    .await;
    // A key the role does not list: refused too.
    let foreign = next.clone().add_signatures(&[&stranger]).expect("sign");
    expect_error(
        cosign(
            &publisher,
            &id,
            "targets/releases",
            &foreign.signatures()[1..],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "INVALID_UPDATE",
        "does not list",
    )
    .await;
    assert_eq!(
        proposal_list(&publisher).await[0]["files"],
        listed[0]["files"]
    );
    assert_eq!(releases_version(&publisher).await, 1);

    // Bob signs the same bytes: the threshold is met and it is published.
    let bobs = next.clone().add_signatures(&[&bob]).expect("sign");
    let response = cosign(&publisher, &id, "targets/releases", &bobs.signatures()[1..]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(releases_version(&publisher).await, 2);
    assert!(proposal_list(&publisher).await.is_empty());
    // Signing it again: it is gone.
    expect_error(
        cosign(&publisher, &id, "targets/releases", &bobs.signatures()[1..]).await,
        StatusCode::NOT_FOUND,
        "METADATA_NOT_FOUND",
        "no proposal",
    )
    .await;

    // Two proposals of one role: the newer replaces the older; an update of the role drops it.
    let by_alice = releases(3, &["release-4"], &alice);
    let by_carol = releases(3, &["release-5"], &carol);
    for proposal in [&by_alice, &by_carol] {
        let response = propose(
            &publisher,
            files(&[("targets%2Freleases", proposal.as_bytes())]),
        )
        .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let listed = proposal_list(&publisher).await;
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0]["files"]["targets/releases"]
            .as_str()
            .expect("text")
            .contains("release-5")
    );
    let whole = by_alice.clone().add_signatures(&[&bob]).expect("sign");
    let response = publisher
        .upload(files(&[("targets%2Freleases", whole.as_bytes())]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(proposal_list(&publisher).await.is_empty());

    // A proposal that meets the threshold already is simply published.
    let both = Signed::sign(
        releases(4, &["release-6"], &alice).untrusted().clone(),
        &[&alice, &carol],
    )
    .expect("sign");
    let response = propose(
        &publisher,
        files(&[("targets%2Freleases", both.as_bytes())]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(releases_version(&publisher).await, 4);
    // Unsigned, or stale: refused.
    let stale = releases(4, &["release-7"], &alice);
    expect_error(
        propose(
            &publisher,
            files(&[("targets%2Freleases", stale.as_bytes())]),
        )
        .await,
        StatusCode::CONFLICT,
        "VERSION",
        "not newer",
    )
    .await;
    assert!(proposal_list(&publisher).await.is_empty());
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_rotations_are_co_signed_and_proposals_expire() {
    for backend in Backend::all().await {
        let server = TestServer::start_with(backend, |c| {
            c.lifetimes.proposal = time::Duration::seconds(2);
        })
        .await;
        let mut publisher =
            Publisher::new(&server, "example.com/cosigned-root", SnapshotKey::Server);
        publisher.init(&["a"]).await;
        let second = test_key(65);
        // Root v2: a second root key, both needed. The first key's signature satisfies the
        // old root but not the new one's threshold of two.
        let mut next = publisher.make_root(2).await;
        next.add_key(RoleType::Root, second.public_key());
        next.roles
            .get_mut(&RoleType::Root)
            .expect("root role")
            .threshold = std::num::NonZeroU32::new(2).expect("two");
        let half = Signed::sign(next.clone(), &[&publisher.root_key]).expect("sign");
        let response = propose(&publisher, files(&[("root", half.as_bytes())])).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: serde_json::Value = response.json().await.expect("JSON");
        let id = body["proposal"].as_str().expect("id").to_owned();
        let root_version = |bytes: Vec<u8>| {
            Signed::<Root>::from_bytes(bytes)
                .expect("root")
                .untrusted()
                .version
                .get()
        };
        assert_eq!(root_version(publisher.get("root.json").await.1), 1);
        let whole = half.clone().add_signatures(&[&second]).expect("sign");
        let response = cosign(&publisher, &id, "root", &whole.signatures()[1..]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(root_version(publisher.get("root.json").await.1), 2);

        // A proposal nobody finishes is gone after its lifetime, and cannot be signed.
        let partial = Signed::sign(next_version(&next, 3), &[&second]).expect("sign");
        let response = propose(&publisher, files(&[("root", partial.as_bytes())])).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: serde_json::Value = response.json().await.expect("JSON");
        let id = body["proposal"].as_str().expect("id").to_owned();
        assert_eq!(proposal_list(&publisher).await.len(), 1);
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        assert!(proposal_list(&publisher).await.is_empty());
        let completing =
            Signed::sign(next_version(&next, 3), &[&publisher.root_key]).expect("sign");
        expect_error(
            cosign(&publisher, &id, "root", completing.signatures()).await,
            StatusCode::NOT_FOUND,
            "METADATA_NOT_FOUND",
            "no proposal",
        )
        .await;
        assert_eq!(root_version(publisher.get("root.json").await.1), 2);
    }
}

fn next_version(root: &Root, version: u64) -> Root {
    let mut next = root.clone();
    next.version = Version::new(version).expect("v");
    next
}
