//! Notary-dialect repositories on notar-server, through HTTP: what is accepted is answered
//! as notary-server answers it (an empty 200, timestamps and snapshots in the dialect, keys
//! in Notary form), and each refusal of the dialect's rules and of mixing dialects comes
//! with Notary's status and code, a validation error the stock client prints, and no
//! change to what is stored.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_tests::notary_repo::{NotaryRepo, Validity};
use notar_tests::server::{Backend, Publisher, SnapshotKey, TestServer};
use notar_tuf::notary::{self, Dialect};
use notar_tuf::{PublicKey, RoleType, Root, Signed, Signer, Snapshot, Targets, Timestamp, rules};
use reqwest::StatusCode;

const GUN: &str = "example.com/notary/app";

async fn timestamp_key(publisher: &Publisher) -> PublicKey {
    notar_tests::notary_repo::notary_timestamp_key(publisher).await
}

async fn new_repo(publisher: &Publisher, validity: Validity, common_name: &str) -> NotaryRepo {
    let key = timestamp_key(publisher).await;
    NotaryRepo::new(GUN, common_name, validity, key)
}

/// The error of a refused update: status, code, and the `Name` and `Msg` of its
/// validation error (what the stock client decodes and prints), else its message.
async fn refusal(response: reqwest::Response) -> (StatusCode, String, String, String) {
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("error JSON");
    let error = &body["errors"][0];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let msg = error["detail"]["Error"]["Msg"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| text(&error["message"]));
    (
        status,
        text(&error["code"]),
        text(&error["detail"]["Name"]),
        msg,
    )
}

async fn nothing_stored(publisher: &Publisher) {
    assert_eq!(
        publisher.get("root.json").await.0,
        StatusCode::NOT_FOUND,
        "a refused first update stores nothing"
    );
}

#[tokio::test]
async fn a_notary_repository_is_served_in_its_dialect() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = Publisher::new(&server, GUN, SnapshotKey::Client);
    let key = timestamp_key(&publisher).await;
    assert_eq!(key.keytype, "ed25519");
    assert_eq!(key.scheme, "", "Notary key objects have no scheme");
    assert_eq!(
        key.keyval.extra.get("private"),
        Some(&serde_json::Value::Null)
    );
    let repo = NotaryRepo::new(GUN, GUN, Validity::current(), key.clone());

    let response = publisher.upload(repo.first_publish(&["v1"])).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.bytes().await.expect("body").is_empty(),
        "notary-server answers an update with an empty body"
    );

    let (_, root_bytes) = publisher.get("root.json").await;
    let root = rules::first_root(notary::parse::<Root>(root_bytes).expect("root")).expect("root");
    let (_, timestamp_bytes) = publisher.get("timestamp.json").await;
    assert_eq!(
        Dialect::of_bytes(&timestamp_bytes).expect("dialect"),
        Dialect::Notary
    );
    let timestamp = notary::parse::<Timestamp>(timestamp_bytes).expect("Notary timestamp");
    let timestamp = rules::verify_role(
        timestamp,
        &root.authority(RoleType::Timestamp).expect("role"),
    )
    .expect("signed with the key root lists, by its Notary key ID");
    let pin = timestamp.snapshot_meta().expect("snapshot pin");
    let sha256 = &pin.hashes.as_ref().expect("hashes")["sha256"];
    let (status, snapshot) = publisher.get(&format!("snapshot.{sha256}.json")).await;
    assert_eq!(status, StatusCode::OK, "Notary clients fetch by checksum");
    rules::matches_pin("snapshot", &snapshot, pin).expect("timestamp pins the snapshot");
    assert!(pin.hashes.as_ref().expect("hashes").contains_key("sha512"));

    // The key of a Notary repository stays in Notary form, even for a client that asks
    // for TUF 1.0 keys: the repository's dialect decides.
    let asked_tuf: PublicKey = publisher
        .http
        .get(publisher.url("timestamp.key"))
        .header("accept", notar_server::api::TUF_KEY_MEDIA_TYPE)
        .send()
        .await
        .expect("GET key")
        .json()
        .await
        .expect("key JSON");
    assert_eq!(asked_tuf, key);
}

#[tokio::test]
async fn a_server_held_snapshot_is_written_in_the_dialect_and_pins_root() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = Publisher::new(&server, GUN, SnapshotKey::Client);
    let mut repo = new_repo(&publisher, Validity::current(), GUN).await;
    let first = repo.first_publish(&["v1"]);
    assert_eq!(publisher.upload(first).await.status(), StatusCode::OK);

    // `notary key rotate … snapshot -r`: the server makes a key, root v2 lists it, and the
    // next update carries no snapshot.
    let snapshot_key: PublicKey = publisher
        .http
        .post(publisher.url("snapshot.key"))
        .send()
        .await
        .expect("POST key")
        .json()
        .await
        .expect("key JSON");
    assert_eq!(
        snapshot_key.scheme, "",
        "a Notary repository's key in Notary form"
    );
    let mut root = notary::parse::<Root>(repo.root(1).as_bytes().to_vec())
        .expect("root")
        .untrusted()
        .clone();
    root.version = notar_tuf::Version::new(2).expect("v2");
    let old = root.role_keys(RoleType::Snapshot).expect("role").keyids[0].clone();
    root.remove_key(RoleType::Snapshot, &old);
    root.add_key(RoleType::Snapshot, snapshot_key.clone());
    let root = notary::sign(root, &[&repo.root]).expect("sign root");
    repo.snapshot = notar_tests::notary_repo::NotarySigner::generate();
    let targets = repo.targets(3, &["v1", "v2"]);
    let response = publisher
        .upload(vec![
            ("root".into(), root.as_bytes().to_vec()),
            ("targets".into(), targets.as_bytes().to_vec()),
        ])
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{:?}",
        response.text().await
    );

    let (_, bytes) = publisher.get("snapshot.json").await;
    let snapshot = notary::parse::<Snapshot>(bytes).expect("a Notary snapshot");
    let root = rules::first_root(notary::parse::<Root>(root.as_bytes().to_vec()).expect("root"))
        .expect("root v2");
    let snapshot = rules::verify_role(snapshot, &root.authority(RoleType::Snapshot).expect("r"))
        .expect("signed by the server's snapshot key");
    rules::matches_pin("root", root.as_bytes(), &snapshot.meta["root.json"])
        .expect("Notary snapshots pin root");
    rules::matches_pin(
        "targets",
        targets.as_bytes(),
        &snapshot.meta["targets.json"],
    )
    .expect("and targets");
    let left = snapshot.expires.datetime() - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::days(365 * 2),
        "a Notary snapshot lives three years, as notary-server's: {left}"
    );
}

#[tokio::test]
async fn a_root_certificate_out_of_date_or_for_another_repository_is_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = Publisher::new(&server, GUN, SnapshotKey::Client);
    let now = time::OffsetDateTime::now_utc();
    let cases = [
        (
            Validity {
                not_before: now - time::Duration::days(60),
                not_after: now - time::Duration::days(30),
            },
            GUN,
            "expired at",
        ),
        (
            Validity {
                not_before: now + time::Duration::days(30),
                not_after: now + time::Duration::days(60),
            },
            GUN,
            "not valid before",
        ),
        (
            Validity::current(),
            "example.com/someone/else",
            "common name \"example.com/someone/else\" is not the repository",
        ),
    ];
    for (validity, common_name, reason) in cases {
        let repo = new_repo(&publisher, validity, common_name).await;
        let (status, code, name, message) =
            refusal(publisher.upload(repo.first_publish(&["v1"])).await).await;
        assert_eq!(
            (status, code.as_str(), name.as_str()),
            (StatusCode::BAD_REQUEST, "INVALID_UPDATE", "ErrBadRoot"),
            "{message}"
        );
        assert!(message.contains(reason), "{reason}: {message}");
        nothing_stored(&publisher).await;
    }
}

#[tokio::test]
async fn a_notary_root_key_that_is_no_certificate_is_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = Publisher::new(&server, GUN, SnapshotKey::Client);
    let mut repo = new_repo(&publisher, Validity::current(), GUN).await;
    repo.root = notar_tests::notary_repo::NotarySigner::generate();
    let (status, _, name, message) =
        refusal(publisher.upload(repo.first_publish(&["v1"])).await).await;
    assert_eq!(
        (status, name.as_str()),
        (StatusCode::BAD_REQUEST, "ErrBadRoot")
    );
    assert!(
        message.contains("must be an X.509 certificate"),
        "{message}"
    );
    nothing_stored(&publisher).await;
}

#[tokio::test]
async fn dialects_are_not_mixed_in_an_upload_nor_in_a_repository() {
    let server = TestServer::start(Backend::Sqlite).await;
    let tuf = Publisher::new(&server, GUN, SnapshotKey::Client);
    let notary_repo = new_repo(&tuf, Validity::current(), GUN).await;

    // A Notary root beside TUF 1.0 targets.
    let mut files = notary_repo.first_publish(&["v1"]);
    files[1].1 = tuf
        .sign_targets(tuf.make_targets(2, &["v1"]))
        .as_bytes()
        .to_vec();
    let (status, code, _, message) = refusal(tuf.upload(files).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_UPDATE")
    );
    assert!(message.contains("the update mixes dialects"), "{message}");
    nothing_stored(&tuf).await;

    // A Notary repository refuses TUF 1.0 metadata, with the error the stock client prints.
    assert_eq!(
        tuf.upload(notary_repo.first_publish(&["v1"]))
            .await
            .status(),
        StatusCode::OK
    );
    let targets = tuf.sign_targets(tuf.make_targets(3, &["v2"]));
    let (status, code, name, message) = refusal(
        tuf.upload(vec![("targets".into(), targets.as_bytes().to_vec())])
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str(), name.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_UPDATE", "ErrBadRoot")
    );
    assert!(message.contains("is a Notary repository"), "{message}");

    // And a TUF 1.0 repository refuses Notary metadata.
    let other = "example.com/tuf/app";
    let mut tuf = Publisher::new(&server, other, SnapshotKey::Server);
    tuf.init(&["v1"]).await;
    let notary_targets = notary_repo.targets(5, &["v9"]);
    let response = tuf
        .upload(vec![("targets".into(), notary_targets.as_bytes().to_vec())])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.expect("JSON");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("is a TUF 1.0 repository"), "{message}");
}

#[tokio::test]
async fn a_replayed_version_is_notarys_400_version() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = Publisher::new(&server, GUN, SnapshotKey::Client);
    let repo = new_repo(&publisher, Validity::current(), GUN).await;
    let files = repo.first_publish(&["v1"]);
    assert_eq!(
        publisher.upload(files.clone()).await.status(),
        StatusCode::OK
    );
    let (_, before) = publisher.get("timestamp.json").await;
    let replay = vec![files[1].clone(), files[2].clone()];
    let (status, code, _, message) = refusal(publisher.upload(replay).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "VERSION"),
        "notary-server answers VERSION with 400, not 409: {message}"
    );
    assert_eq!(
        publisher.get("timestamp.json").await.1,
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_notary_snapshot_must_pin_the_root_it_is_uploaded_with() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = Publisher::new(&server, GUN, SnapshotKey::Client);
    let repo = new_repo(&publisher, Validity::current(), GUN).await;
    let root = repo.root(1);
    let targets = repo.targets(2, &["v1"]);
    // The snapshot pins another root (version 2) than the one uploaded.
    let other_root = repo.root(2);
    let snapshot = repo.snapshot(2, other_root.as_bytes(), targets.as_bytes());
    let (status, _, name, message) = refusal(
        publisher
            .upload(vec![
                ("root".into(), root.as_bytes().to_vec()),
                ("targets".into(), targets.as_bytes().to_vec()),
                ("snapshot".into(), snapshot.as_bytes().to_vec()),
            ])
            .await,
    )
    .await;
    assert_eq!(
        (status, name.as_str()),
        (StatusCode::BAD_REQUEST, "ErrBadSnapshot")
    );
    assert!(message.contains("root"), "{message}");
    nothing_stored(&publisher).await;
}

#[tokio::test]
async fn a_root_signed_by_another_key_is_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = Publisher::new(&server, GUN, SnapshotKey::Client);
    let repo = new_repo(&publisher, Validity::current(), GUN).await;
    let impostor = new_repo(&publisher, Validity::current(), GUN).await;
    let mut files = repo.first_publish(&["v1"]);
    // The right root content, signed by another certificate's key under the right key ID.
    let root = notary::parse::<Root>(files[0].1.clone()).expect("root");
    let resigned = notary::sign(root.untrusted().clone(), &[&impostor.root]).expect("sign");
    let mut doc: serde_json::Value = serde_json::from_slice(resigned.as_bytes()).expect("JSON");
    doc["signatures"][0]["keyid"] =
        serde_json::Value::String(Signer::public_key(&repo.root).key_id().to_string());
    files[0].1 = serde_json::to_vec(&doc).expect("JSON");
    let (status, _, name, message) = refusal(publisher.upload(files).await).await;
    assert_eq!(
        (status, name.as_str()),
        (StatusCode::BAD_REQUEST, "ErrBadRoot")
    );
    assert!(message.contains("0 valid signature"), "{message}");
    nothing_stored(&publisher).await;
}

/// Notary's upload rules (SPEC §1.6), each broken once on a published Notary repository:
/// refused with Notary's status and code, the validation error naming the role, nothing
/// stored.
#[tokio::test]
async fn each_notary_upload_rule_is_refused_with_notarys_code() {
    let server = TestServer::start(Backend::Sqlite).await;
    let publisher = Publisher::new(&server, GUN, SnapshotKey::Client);
    let repo = new_repo(&publisher, Validity::current(), GUN).await;

    // No root yet: targets alone cannot start a repository.
    let targets = repo.targets(2, &["v1"]);
    let (status, code, name, message) = refusal(
        publisher
            .upload(vec![("targets".into(), targets.as_bytes().to_vec())])
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str(), name.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_UPDATE", "ErrBadRoot"),
        "{message}"
    );
    assert!(message.contains("no root yet"), "{message}");

    assert_eq!(
        publisher.upload(repo.first_publish(&["v1"])).await.status(),
        StatusCode::OK
    );
    let (_, before) = publisher.get("timestamp.json").await;
    let root = repo.root(1);
    let with_snapshot = |targets: &Signed<Targets>, version: u64| {
        let snapshot = repo.snapshot(version, root.as_bytes(), targets.as_bytes());
        vec![
            ("targets".to_owned(), targets.as_bytes().to_vec()),
            ("snapshot".to_owned(), snapshot.as_bytes().to_vec()),
        ]
    };

    let past = notar_tuf::Expiry::after(
        time::OffsetDateTime::now_utc() - time::Duration::days(2),
        time::Duration::days(1),
    );
    let mut expired = Targets::new(notar_tuf::Version::new(3).unwrap(), past);
    expired.targets = repo.targets(3, &["v2"]).untrusted().targets.clone();
    let expired = notary::sign(expired, &[&repo.targets]).unwrap();

    // A snapshot whose pins carry sha512 only (Notary requires sha256 on every pin).
    let sha512_only = {
        let targets = repo.targets(3, &["v2"]);
        let mut snapshot = Snapshot::new(
            notar_tuf::Version::new(3).unwrap(),
            notar_tuf::Expiry::after(time::OffsetDateTime::now_utc(), time::Duration::days(30)),
        );
        for (file, bytes) in [
            ("root.json", root.as_bytes()),
            ("targets.json", targets.as_bytes()),
        ] {
            let mut pin = notar_tuf::MetaFile::sha256_sha512(notar_tuf::Version::ONE, bytes);
            pin.hashes.as_mut().unwrap().remove("sha256");
            snapshot.meta.insert(file.into(), pin);
        }
        let snapshot = notary::sign(snapshot, &[&repo.snapshot]).unwrap();
        vec![
            ("targets".to_owned(), targets.as_bytes().to_vec()),
            ("snapshot".to_owned(), snapshot.as_bytes().to_vec()),
        ]
    };

    let by_snapshot_key = {
        let t = repo.targets(3, &["v2"]).untrusted().clone();
        notary::sign(t, &[&repo.snapshot]).unwrap()
    };
    let ghost = repo.targets(1, &["g"]);
    // (what, files, code, validation error, words of its message)
    type Case<'a> = (&'a str, Vec<(String, Vec<u8>)>, &'a str, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "expired targets",
            with_snapshot(&expired, 3),
            "INVALID_UPDATE",
            "ErrBadTargets",
            "expired",
        ),
        (
            "targets by the snapshot key",
            with_snapshot(&by_snapshot_key, 3),
            "INVALID_UPDATE",
            "ErrBadTargets",
            "0 valid signature",
        ),
        (
            "an old targets version",
            with_snapshot(&repo.targets(2, &["v2"]), 3),
            "VERSION",
            "ErrBadTargets",
            "not newer",
        ),
        (
            "a role nobody delegates",
            vec![("targets/ghost".into(), ghost.as_bytes().to_vec())],
            "INVALID_UPDATE",
            "ErrBadTargets",
            "no targets role delegates targets/ghost",
        ),
        (
            "a root two versions ahead",
            vec![("root".into(), repo.root(3).as_bytes().to_vec())],
            "VERSION",
            "ErrBadRoot",
            "not the next version",
        ),
        (
            "a snapshot pinning by sha512 only",
            sha512_only,
            "INVALID_UPDATE",
            "ErrBadSnapshot",
            "pins every file by sha256",
        ),
        (
            "targets without the client-held snapshot",
            vec![(
                "targets".into(),
                repo.targets(3, &["v2"]).as_bytes().to_vec(),
            )],
            "INVALID_UPDATE",
            "ErrBadHierarchy",
            "must include snapshot",
        ),
    ];
    for (what, files, want_code, want_name, needle) in cases {
        let (status, code, name, message) = refusal(publisher.upload(files).await).await;
        assert_eq!(
            (status, code.as_str(), name.as_str()),
            (StatusCode::BAD_REQUEST, want_code, want_name),
            "{what}: {message}"
        );
        assert!(message.contains(needle), "{what}: {message}");
        assert_eq!(
            publisher.get("timestamp.json").await.1,
            before,
            "{what}: nothing changed"
        );
    }
}
