//! One table of cases, judged by the server's upload validation and by the client workflow,
//! which must give the same verdict on every row: both take their rules from
//! `notar_tuf::rules`, and this table is what shows they cannot drift apart.
//!
//! Every row starts from the same trusted repository (root v1, targets v2, a client-held
//! snapshot v2, timestamp v2) and brings new metadata. The server judges it as an upload
//! (`validate::check_update` against the stored state). The client judges it as a
//! repository that serves it: an updater that trusts the same state refreshes against the
//! new files, with a timestamp v3 pinning the new snapshot.
//!
//! Rows where the two must differ by design are left out and said so here: an upload of
//! the same version with other content (the server wants every upload to be newer, so
//! that clients' rollback checks mean something; TUF clients accept a re-signed copy of the
//! same version), and a delegated role listing a target outside its paths (the server
//! refuses the upload; a client ignores that target, which the delegation tests show).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use notar_server::validate::{RepoState, ServerKeyIds, check_update};
use notar_tuf::client::{Fetch, FetchError, Limits, Updater};
use notar_tuf::{
    Expiry, MetaFile, Role, RoleName, RoleType, Root, Signed, Signer, Snapshot, TargetFile,
    TargetName, Targets, Timestamp, Verified, Version,
};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}
const ROOT: u8 = 1;
const TARGETS: u8 = 2;
const TIMESTAMP: u8 = 3;
const SNAPSHOT: u8 = 4;

fn v(n: u64) -> Version {
    Version::new(n).expect("version")
}
fn later() -> Expiry {
    Expiry::after(OffsetDateTime::now_utc(), time::Duration::days(30))
}
fn past() -> Expiry {
    Expiry::after(OffsetDateTime::now_utc(), time::Duration::days(-1))
}

fn sign<T: Role>(content: T, seeds: &[u8]) -> Vec<u8> {
    let keys: Vec<SigningKey> = seeds.iter().map(|s| key(*s)).collect();
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| k as &dyn Signer).collect();
    Signed::sign(content, &signers)
        .expect("sign")
        .as_bytes()
        .to_vec()
}

fn root(version: u64, root_seeds: &[u8], expires: Expiry) -> Root {
    let mut root = Root::new(v(version), expires);
    for s in root_seeds {
        root.add_key(RoleType::Root, key(*s).public_key());
    }
    root.add_key(RoleType::Targets, key(TARGETS).public_key());
    root.add_key(RoleType::Timestamp, key(TIMESTAMP).public_key());
    root.add_key(RoleType::Snapshot, key(SNAPSHOT).public_key());
    root
}

fn targets(version: u64, tags: &[&str], expires: Expiry) -> Targets {
    let mut t = Targets::new(v(version), expires);
    for tag in tags {
        t.targets.insert(
            TargetName::new(*tag).expect("tag"),
            TargetFile::sha256(100, Sha256::digest(tag.as_bytes()).into()),
        );
    }
    t
}

/// A snapshot pinning `targets.json` at `version` with the exact bytes.
fn snapshot(version: u64, targets_bytes: &[u8], targets_version: u64, expires: Expiry) -> Snapshot {
    let mut s = Snapshot::new(v(version), expires);
    s.meta.insert(
        "targets.json".into(),
        MetaFile::new(v(targets_version), Some(targets_bytes)),
    );
    s
}

/// The same envelope with its first signature listed twice (`garbage`: the repeat has
/// other signature bytes).
fn repeat_signature(bytes: &[u8], garbage: bool) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(bytes).expect("json");
    let mut repeat = doc["signatures"][0].clone();
    if garbage {
        repeat["sig"] = Value::String("ab".repeat(64));
    }
    doc["signatures"]
        .as_array_mut()
        .expect("signatures")
        .push(repeat);
    serde_json::to_vec(&doc).expect("json")
}

/// A snapshot v3 pinning `targets_bytes` (targets v3) with these hashes instead of the
/// computed ones.
fn snapshot_with_hashes(targets_bytes: &[u8], length: u64, hashes: &[(&str, String)]) -> Vec<u8> {
    let mut s = Snapshot::new(v(3), later());
    let mut pin = MetaFile::new(v(3), None);
    pin.length = Some(length);
    pin.hashes = Some(
        hashes
            .iter()
            .map(|(a, h)| ((*a).to_owned(), h.clone()))
            .collect(),
    );
    s.meta.insert("targets.json".into(), pin);
    let _ = targets_bytes;
    sign(s, &[SNAPSHOT])
}

/// The trusted repository every row starts from.
struct Trusted {
    root: Vec<u8>,
    targets: Vec<u8>,
    snapshot: Vec<u8>,
    timestamp: Vec<u8>,
}

fn trusted() -> Trusted {
    let root = sign(root(1, &[ROOT], later()), &[ROOT]);
    let targets = sign(targets(2, &["v1", "v2"], later()), &[TARGETS]);
    let snapshot = sign(snapshot(2, &targets, 2, later()), &[SNAPSHOT]);
    let timestamp = sign(
        Timestamp::new(v(2), later(), MetaFile::new(v(2), Some(&snapshot))),
        &[TIMESTAMP],
    );
    Trusted {
        root,
        targets,
        snapshot,
        timestamp,
    }
}

/// New metadata of one row: what a publisher uploads, which is also what the repository
/// then serves.
#[derive(Default)]
struct New {
    root: Option<Vec<u8>>,
    targets: Option<Vec<u8>>,
    snapshot: Option<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accept,
    Reject,
}
use Verdict::{Accept, Reject};

/// targets v3 (tag v3 added) with a snapshot v3 that pins it correctly.
fn good_update() -> New {
    let t = sign(targets(3, &["v1", "v2", "v3"], later()), &[TARGETS]);
    let s = sign(snapshot(3, &t, 3, later()), &[SNAPSHOT]);
    New {
        targets: Some(t),
        snapshot: Some(s),
        ..New::default()
    }
}

/// `t` as targets, with a snapshot v3 pinning it as version `version`.
fn with_targets(t: Vec<u8>, version: u64) -> New {
    let s = sign(snapshot(3, &t, version, later()), &[SNAPSHOT]);
    New {
        targets: Some(t),
        snapshot: Some(s),
        ..New::default()
    }
}

/// Root `version` with root key 5 instead of key 1, signed by `signers`, and (the snapshot
/// is client-held, so every upload carries one) a snapshot v3 of the unchanged targets.
fn rotated_root(trusted: &Trusted, version: u64, signers: &[u8], expires: Expiry) -> New {
    New {
        root: Some(sign(root(version, &[5], expires), signers)),
        snapshot: Some(sign(snapshot(3, &trusted.targets, 2, later()), &[SNAPSHOT])),
        ..New::default()
    }
}

fn cases(trusted: &Trusted) -> Vec<(&'static str, New, Verdict)> {
    let t3 = sign(targets(3, &["v1", "v2", "v3"], later()), &[TARGETS]);
    let t3_sha256 = hex::encode(Sha256::digest(&t3));
    let t3_sha512 = hex::encode(Sha512::digest(&t3));
    let t3_len = t3.len() as u64;
    let pinned = |hashes: &[(&str, String)], length: u64| New {
        targets: Some(t3.clone()),
        snapshot: Some(snapshot_with_hashes(&t3, length, hashes)),
        ..New::default()
    };
    vec![
        ("a newer signed targets and snapshot", good_update(), Accept),
        (
            "targets signed by a key root does not list",
            with_targets(sign(targets(3, &["v3"], later()), &[9]), 3),
            Reject,
        ),
        (
            "targets with a valid signature and garbage under the same key ID",
            with_targets(repeat_signature(&t3, true), 3),
            Reject,
        ),
        (
            "targets with its one signature listed twice",
            with_targets(repeat_signature(&t3, false), 3),
            Reject,
        ),
        (
            "expired targets",
            with_targets(sign(targets(3, &["v3"], past()), &[TARGETS]), 3),
            Reject,
        ),
        (
            "targets rolled back to version 1",
            with_targets(sign(targets(1, &["v1"], later()), &[TARGETS]), 1),
            Reject,
        ),
        (
            "snapshot pinning upper-case sha256 hex",
            pinned(&[("sha256", t3_sha256.to_uppercase())], t3_len),
            Accept,
        ),
        (
            "snapshot pinning sha256 and sha512, both right",
            pinned(
                &[("sha256", t3_sha256.clone()), ("sha512", t3_sha512.clone())],
                t3_len,
            ),
            Accept,
        ),
        (
            "snapshot pinning the right sha256 and a wrong sha512",
            pinned(
                &[("sha256", t3_sha256.clone()), ("sha512", "0".repeat(128))],
                t3_len,
            ),
            Reject,
        ),
        (
            "snapshot pinning only an unknown hash algorithm",
            pinned(&[("md5", "0".repeat(32))], t3_len),
            Reject,
        ),
        (
            "snapshot pinning the wrong length",
            pinned(&[("sha256", t3_sha256.clone())], t3_len + 1),
            Reject,
        ),
        (
            "snapshot with its one signature listed twice",
            New {
                targets: Some(t3.clone()),
                snapshot: Some(repeat_signature(
                    &sign(snapshot(3, &t3, 3, later()), &[SNAPSHOT]),
                    false,
                )),
                ..New::default()
            },
            Reject,
        ),
        (
            "snapshot signed by the targets key",
            New {
                targets: Some(t3.clone()),
                snapshot: Some(sign(snapshot(3, &t3, 3, later()), &[TARGETS])),
                ..New::default()
            },
            Reject,
        ),
        (
            "expired snapshot",
            New {
                targets: Some(t3.clone()),
                snapshot: Some(sign(snapshot(3, &t3, 3, past()), &[SNAPSHOT])),
                ..New::default()
            },
            Reject,
        ),
        (
            "snapshot that lists no targets",
            New {
                targets: Some(t3.clone()),
                snapshot: Some(sign(Snapshot::new(v(3), later()), &[SNAPSHOT])),
                ..New::default()
            },
            Reject,
        ),
        (
            "root v2 signed by the old and the new root key",
            rotated_root(trusted, 2, &[ROOT, 5], later()),
            Accept,
        ),
        (
            "root v3 after v1",
            rotated_root(trusted, 3, &[ROOT, 5], later()),
            Reject,
        ),
        (
            "root v2 signed by the new key only",
            rotated_root(trusted, 2, &[5], later()),
            Reject,
        ),
        (
            "root v2 signed by the old key only",
            rotated_root(trusted, 2, &[ROOT], later()),
            Reject,
        ),
        (
            "expired root v2",
            rotated_root(trusted, 2, &[ROOT, 5], past()),
            Reject,
        ),
        (
            "root v2 with the old key's signature listed twice",
            New {
                root: Some(repeat_signature(
                    &sign(root(2, &[ROOT], later()), &[ROOT]),
                    false,
                )),
                ..rotated_root(trusted, 2, &[ROOT], later())
            },
            Reject,
        ),
    ]
}

fn server_verdict(trusted: &Trusted, new: &New) -> (Verdict, String) {
    let stored = |bytes: &[u8]| bytes.to_vec();
    let mut state = RepoState {
        root: Some(Verified::from_trusted_store(stored(&trusted.root)).expect("root")),
        snapshot: Some(Verified::from_trusted_store(stored(&trusted.snapshot)).expect("snapshot")),
        timestamp: Some(Verified::from_trusted_store(stored(&trusted.timestamp)).expect("ts")),
        ..RepoState::default()
    };
    state.targets.insert(
        RoleName::targets(),
        Verified::from_trusted_store(stored(&trusted.targets)).expect("targets"),
    );
    let keys = ServerKeyIds {
        timestamp: vec![key(TIMESTAMP).public_key().key_id()],
        snapshot: Vec::new(),
    };
    let mut uploads = Vec::new();
    for (role, bytes) in [
        (RoleName::root(), &new.root),
        (RoleName::targets(), &new.targets),
        (RoleName::snapshot(), &new.snapshot),
    ] {
        if let Some(bytes) = bytes {
            uploads.push((role, Bytes::copy_from_slice(bytes)));
        }
    }
    match check_update(&state, uploads, &keys, OffsetDateTime::now_utc()) {
        Ok(_) => (Accept, "accepted".into()),
        Err(e) => (Reject, e.to_string()),
    }
}

/// A repository as files in memory.
#[derive(Clone)]
struct Files(BTreeMap<String, Vec<u8>>);

impl Fetch for Files {
    fn fetch(
        &self,
        name: &str,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send {
        let found = self.0.get(name).cloned();
        async move {
            match found {
                Some(b) if b.len() as u64 > max_len => Err(FetchError::TooLarge { limit: max_len }),
                other => Ok(other),
            }
        }
    }
}

async fn client_verdict(trusted: &Trusted, new: &New) -> (Verdict, String) {
    let mut files = BTreeMap::new();
    files.insert("1.root.json".to_owned(), trusted.root.clone());
    if let Some(root) = &new.root {
        // Served as the next root, whatever version it claims.
        files.insert("2.root.json".to_owned(), root.clone());
    }
    for (name, bytes) in [
        ("targets", &trusted.targets),
        ("snapshot", &trusted.snapshot),
    ] {
        files.insert(format!("2.{name}.json"), bytes.clone());
        files.insert(format!("{name}.json"), bytes.clone());
    }
    if let Some(t) = &new.targets {
        let version = Signed::<Targets>::from_bytes(t.clone())
            .map(|s| s.untrusted().version.get())
            .unwrap_or(3);
        files.insert(format!("{version}.targets.json"), t.clone());
        files.insert("targets.json".to_owned(), t.clone());
    }
    let snapshot = new.snapshot.as_ref().unwrap_or(&trusted.snapshot);
    let snapshot_version = Signed::<Snapshot>::from_bytes(snapshot.clone())
        .map(|s| s.untrusted().version)
        .unwrap_or(v(3));
    files.insert(
        format!("{snapshot_version}.snapshot.json"),
        snapshot.clone(),
    );
    files.insert("snapshot.json".to_owned(), snapshot.clone());
    files.insert(
        "timestamp.json".to_owned(),
        sign(
            Timestamp::new(
                v(3),
                later(),
                MetaFile::new(snapshot_version, Some(snapshot)),
            ),
            &[TIMESTAMP],
        ),
    );
    let mut updater = Updater::new(
        trusted.root.clone(),
        Files(files),
        OffsetDateTime::now_utc(),
        Limits::default(),
    )
    .expect("trusted root");
    for (role, bytes) in [
        (RoleName::timestamp(), &trusted.timestamp),
        (RoleName::snapshot(), &trusted.snapshot),
        (RoleName::targets(), &trusted.targets),
    ] {
        updater.load_trusted(&role, bytes.clone()).expect("kept");
    }
    match updater.refresh().await {
        Ok(()) => (Accept, "accepted".into()),
        Err(e) => (Reject, e.to_string()),
    }
}

#[tokio::test]
async fn server_and_client_give_the_same_verdict_on_every_case() {
    let trusted = trusted();
    let mut disagreements = Vec::new();
    let cases = cases(&trusted);
    assert!(cases.len() >= 20, "the table keeps its rows");
    for (name, new, expected) in &cases {
        let (server, server_why) = server_verdict(&trusted, new);
        let (client, client_why) = client_verdict(&trusted, new).await;
        eprintln!("{name}: server {server:?} ({server_why}); client {client:?} ({client_why})");
        if server != *expected || client != *expected {
            disagreements.push(format!(
                "{name}: expected {expected:?}; server {server:?} ({server_why}); client {client:?} ({client_why})"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "rows where a verdict differs:\n{}",
        disagreements.join("\n")
    );
}
