//! Metadata written and signed by python-tuf (see fixtures/python-tuf/make_fixtures.py)
//! parses, verifies with every key type, keeps its exact bytes, and re-serialises to the
//! same canonical form through notar-tuf's own types.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::fs;
use std::path::PathBuf;

use notar_tuf::cjson;
use notar_tuf::{Role, RoleType, Root, Signed, Snapshot, Targets, Timestamp};

fn repo(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/fixtures/python-tuf/repo",
        name,
    ]
    .iter()
    .collect();
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The original `signed` object, canonicalised, must equal notar-tuf's model serialised back.
fn assert_model_round_trips<T: Role>(bytes: &[u8]) {
    let original: serde_json::Value = serde_json::from_slice(bytes).expect("fixture is JSON");
    let signed = Signed::<T>::from_bytes(bytes.to_vec()).expect("parses");
    assert_eq!(signed.as_bytes(), bytes, "bytes are kept exactly");
    let from_model = cjson::to_canonical(signed.untrusted()).expect("canonical");
    let from_original = cjson::to_canonical(&original["signed"]).expect("canonical");
    assert_eq!(
        String::from_utf8_lossy(&from_model),
        String::from_utf8_lossy(&from_original)
    );
}

#[test]
fn python_tuf_repository_verifies_with_all_three_key_types() {
    let root = Signed::<Root>::from_bytes(repo("root.json")).expect("root parses");
    let key_types: Vec<&str> = root
        .untrusted()
        .keys
        .values()
        .map(|k| k.scheme.as_str())
        .collect();
    assert!(key_types.contains(&"ed25519"));
    assert!(key_types.contains(&"ecdsa-sha2-nistp256"));
    assert!(key_types.contains(&"rsassa-pss-sha256"));
    // Threshold 3 with one key of each type: all three verifiers must accept.
    let root = root.verify_self().expect("root verifies");

    let targets = Signed::<Targets>::from_bytes(repo("targets.json"))
        .expect("targets parses")
        .verify(&root.authority(RoleType::Targets).expect("targets role"))
        .expect("targets verifies (ed25519)");
    assert_eq!(targets.targets.len(), 2);
    let delegations = targets.delegations.as_ref().expect("delegations");
    let releases = Signed::<Targets>::from_bytes(repo("targets%2Freleases.json"))
        .expect("delegated role parses")
        .verify(
            &delegations
                .authority("targets/releases")
                .expect("delegation"),
        )
        .expect("delegated role verifies");
    assert!(releases.targets.contains_key("v2"));
    Signed::<Snapshot>::from_bytes(repo("snapshot.json"))
        .expect("snapshot parses")
        .verify(&root.authority(RoleType::Snapshot).expect("snapshot role"))
        .expect("snapshot verifies (ecdsa)");
    Signed::<Timestamp>::from_bytes(repo("timestamp.json"))
        .expect("timestamp parses")
        .verify(&root.authority(RoleType::Timestamp).expect("timestamp role"))
        .expect("timestamp verifies (rsa-pss)");
}

#[test]
fn python_tuf_metadata_round_trips() {
    assert_model_round_trips::<Root>(&repo("root.json"));
    assert_model_round_trips::<Targets>(&repo("targets.json"));
    assert_model_round_trips::<Targets>(&repo("targets.pretty.json"));
    assert_model_round_trips::<Targets>(&repo("targets%2Freleases.json"));
    assert_model_round_trips::<Snapshot>(&repo("snapshot.json"));
    assert_model_round_trips::<Timestamp>(&repo("timestamp.json"));
}

#[test]
fn unknown_fields_survive_and_stay_signed() {
    let targets = Signed::<Targets>::from_bytes(repo("targets.pretty.json")).expect("parses");
    assert_eq!(
        targets.untrusted().extra.get("x-notar-test"),
        Some(&serde_json::json!({"kept": true}))
    );
    // Re-sign nothing: the signature made by python-tuf covers the re-serialised model.
    let root = Signed::<Root>::from_bytes(repo("root.json")).expect("root parses");
    let rebuilt = serde_json::json!({
        "signatures": targets.signatures(),
        "signed": targets.untrusted(),
    });
    let rebuilt = Signed::<Targets>::from_bytes(serde_json::to_vec(&rebuilt).expect("json"))
        .expect("rebuilt parses");
    rebuilt
        .verify(
            &root
                .untrusted()
                .authority(RoleType::Targets)
                .expect("targets role"),
        )
        .expect("signature still valid after re-serialisation");
}
