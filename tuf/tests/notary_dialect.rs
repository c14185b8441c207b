//! The Notary dialect layer against metadata the real notary-server 0.7 served
//! (`fixtures/notary-0.7/`): it parses into the one model, the rulebook verifies it, and what
//! Notar writes in the dialect parses back the same way. Each refusal has its own test.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use notar_tuf::notary::{self, Dialect};
use notar_tuf::rules;
use notar_tuf::{Error, RoleType, Root, Signed, Signer, Snapshot, Targets, Timestamp, Version};

const GUN: &str = "example.com/lab/repo1";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/notary-0.7/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Inside the validity of the captured root certificates (2026-11-28 + 10 years).
fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2027-06-01 00:00 UTC)
}

#[test]
fn the_dialect_is_read_off_the_type() {
    assert_eq!(
        Dialect::of_bytes(&fixture("r1_after_first_publish_root")).expect("dialect"),
        Dialect::Notary
    );
    let tuf = br#"{"signed":{"_type":"root","spec_version":"1.0.31"},"signatures":[]}"#;
    assert_eq!(Dialect::of_bytes(tuf).expect("dialect"), Dialect::Tuf);
    let mixed = br#"{"signed":{"_type":"Root","spec_version":"1.0.31"},"signatures":[]}"#;
    let err = Dialect::of_bytes(mixed).expect_err("mixed dialects");
    assert!(err.to_string().contains("mixes dialects"), "{err}");
}

#[test]
fn a_published_repository_verifies_through_the_rulebook() {
    let root_bytes = fixture("r1_after_first_publish_root");
    let root: Signed<Root> = notary::parse(root_bytes.clone()).expect("root parses");
    let root = rules::first_root(root).expect("root is self-signed");
    notary::check_root_certificates(&root, GUN, now()).expect("certificate fits the GUN");
    assert_eq!(root.version, Version::ONE);
    assert_eq!(root.consistent_snapshot, Some(false));

    let targets_bytes = fixture("r1_after_first_publish_targets");
    let targets: Signed<Targets> = notary::parse(targets_bytes.clone()).expect("targets parse");
    let authority = root.authority(RoleType::Targets).expect("targets role");
    let targets = rules::verify_role(targets, &authority).expect("targets verify");
    assert_eq!(
        targets.version.get(),
        2,
        "Notary's first publish writes targets v2"
    );
    let (name, target) = targets.targets.iter().next().expect("one target");
    assert_eq!(name.as_str(), "v1");
    assert_eq!(
        target.hashes["sha256"].len(),
        64,
        "base64 hashes are hex in the model"
    );

    let snapshot_bytes = fixture("r1_after_first_publish_snapshot");
    let snapshot: Signed<Snapshot> = notary::parse(snapshot_bytes.clone()).expect("snapshot");
    let authority = root.authority(RoleType::Snapshot).expect("snapshot role");
    let snapshot = rules::verify_role(snapshot, &authority).expect("client-signed snapshot");
    for (file, bytes) in [("root.json", &root_bytes), ("targets.json", &targets_bytes)] {
        let pin = snapshot.meta.get(file).expect("snapshot pins the file");
        assert_eq!(pin.version, None, "Notary pins by hash alone");
        rules::matches_pin(file, bytes, pin).expect("pin matches the served bytes");
    }
    let err = rules::matches_pin("targets.json", &root_bytes, &snapshot.meta["targets.json"])
        .expect_err("other bytes do not match the pin");
    assert!(err.to_string().contains("length") || err.to_string().contains("hash"));

    let timestamp: Signed<Timestamp> =
        notary::parse(fixture("r1_after_first_publish_timestamp")).expect("timestamp");
    let authority = root.authority(RoleType::Timestamp).expect("timestamp role");
    let timestamp = rules::verify_role(timestamp, &authority).expect("server timestamp (eddsa)");
    rules::matches_pin(
        "snapshot",
        &snapshot_bytes,
        timestamp.snapshot_meta().expect("snapshot entry"),
    )
    .expect("timestamp pins the snapshot");
}

#[test]
fn a_delegation_with_a_certificate_key_verifies() {
    let root: Signed<Root> = notary::parse(fixture("r1_with_delegation_root")).expect("root");
    let root = rules::first_root(root).expect("root");
    let targets: Signed<Targets> =
        notary::parse(fixture("r1_with_delegation_targets")).expect("targets");
    let targets = rules::verify_role(targets, &root.authority(RoleType::Targets).expect("role"))
        .expect("targets verify");
    let delegations = targets.delegations.as_ref().expect("delegations");
    let authority = delegations
        .authority("targets/releases")
        .expect("releases is delegated");
    assert_eq!(
        delegations.keys.values().next().expect("a key").keytype,
        "ecdsa-x509"
    );
    let releases: Signed<Targets> =
        notary::parse(fixture("r1_with_delegation_targets_releases")).expect("releases");
    rules::verify_role(releases, &authority).expect("signed by the delegated certificate");
}

#[test]
fn a_root_rotation_is_signed_by_the_old_and_the_new_key() {
    let old: Signed<Root> = notary::parse(fixture("r1_root_before_root_rotation")).expect("v5");
    let old = rules::first_root(old).expect("v5 self-signed");
    let new: Signed<Root> = notary::parse(fixture("r1_root_after_rotation")).expect("v6");
    let new = rules::next_root(&old, new).expect("v6 follows v5");
    notary::check_root_certificates(&new, GUN, now()).expect("the new certificate fits");
    let skipped: Signed<Root> = notary::parse(fixture("r1_root_after_rotation")).expect("v6 again");
    let older: Signed<Root> = notary::parse(fixture("r1_after_first_publish_root")).expect("v1");
    let older = rules::first_root(older).expect("v1");
    let err = rules::next_root(&older, skipped).expect_err("v1 → v6 skips versions");
    assert!(err.is_version(), "{err}");
}

#[test]
fn a_tampered_document_fails_its_signature() {
    let bytes = String::from_utf8(fixture("r1_after_first_publish_targets")).expect("utf-8");
    let tampered = bytes.replacen("\"length\":", "\"length\":1", 1);
    let root: Signed<Root> = notary::parse(fixture("r1_after_first_publish_root")).expect("root");
    let root = rules::first_root(root).expect("root");
    let targets: Signed<Targets> = notary::parse(tampered.into_bytes()).expect("still parses");
    let err = rules::verify_role(targets, &root.authority(RoleType::Targets).expect("role"))
        .expect_err("signature no longer covers the content");
    assert!(err.to_string().contains("0 valid signature"), "{err}");
}

#[test]
fn a_root_certificate_must_name_the_repository_and_be_in_date() {
    let root: Signed<Root> = notary::parse(fixture("r1_after_first_publish_root")).expect("root");
    let root = rules::first_root(root).expect("root");
    let err =
        notary::check_root_certificates(&root, "example.com/other", now()).expect_err("wrong GUN");
    assert!(err.to_string().contains("common name"), "{err}");
    let later = time::macros::datetime!(2037-01-01 00:00 UTC);
    let err = notary::check_root_certificates(&root, GUN, later).expect_err("expired");
    assert!(err.to_string().contains("expired at"), "{err}");
    let earlier = time::macros::datetime!(2026-01-01 00:00 UTC);
    let err = notary::check_root_certificates(&root, GUN, earlier).expect_err("too early");
    assert!(err.to_string().contains("not valid before"), "{err}");
}

#[test]
fn a_root_whose_root_key_is_no_certificate_is_refused() {
    let text = String::from_utf8(fixture("r1_after_first_publish_root")).expect("utf-8");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    // Let the targets key (a bare ecdsa key) stand as the root key.
    let targets_id = doc["signed"]["roles"]["targets"]["keyids"][0].clone();
    doc["signed"]["roles"]["root"]["keyids"] = serde_json::json!([targets_id]);
    let root: Signed<Root> = notary::parse(serde_json::to_vec(&doc).expect("json")).expect("root");
    let err = notary::check_root_certificates(root.untrusted(), GUN, now())
        .expect_err("bare key as root key");
    assert!(err.to_string().contains("X.509 certificate"), "{err}");
}

#[test]
fn a_tuf_document_is_not_read_as_notary_nor_the_other_way() {
    let err = notary::parse::<Root>(
        br#"{"signed":{"_type":"root","spec_version":"1.0.31"},"signatures":[]}"#.to_vec(),
    )
    .expect_err("TUF root through the Notary parser");
    assert!(matches!(err, Error::WrongType { .. }), "{err}");
    let err = Signed::<Root>::from_bytes(fixture("r1_after_first_publish_root"))
        .expect_err("Notary root through the TUF parser");
    assert!(matches!(err, Error::WrongType { .. }), "{err}");
}

#[test]
fn unknown_key_types_and_bad_hashes_are_refused() {
    let text = String::from_utf8(fixture("r1_after_first_publish_root")).expect("utf-8");
    let err = notary::parse::<Root>(text.replacen("\"ecdsa\"", "\"dsa\"", 1).into_bytes())
        .expect_err("dsa key");
    assert!(err.to_string().contains("Notary keys are"), "{err}");
    let text = String::from_utf8(fixture("r1_after_first_publish_targets")).expect("utf-8");
    let err = notary::parse::<Targets>(
        text.replacen("\"sha256\":\"", "\"sha256\":\"!", 1)
            .into_bytes(),
    )
    .expect_err("hash not base64");
    assert!(err.to_string().contains("not base64"), "{err}");
}

#[test]
fn what_notar_signs_in_the_dialect_parses_back_and_verifies() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let snapshot_bytes = fixture("r1_after_first_publish_snapshot");
    let timestamp = Timestamp::new(
        Version::new(7).expect("version"),
        "2030-01-01T00:00:00Z".parse().expect("expiry"),
        notar_tuf::MetaFile::sha256_sha512(Version::new(2).expect("v"), &snapshot_bytes),
    );
    let signed = notary::sign(timestamp, &[&key]).expect("sign");
    let text = std::str::from_utf8(signed.as_bytes()).expect("utf-8");
    assert!(text.starts_with(r#"{"signed":{"_type":"Timestamp","expires":"2030-01-01T00:00:00Z","meta":{"snapshot":{"hashes":{"sha256":""#), "{text}");
    assert!(text.contains(r#""method":"eddsa""#), "{text}");
    assert!(
        !text.contains("spec_version") && !text.contains("\"version\":2"),
        "{text}"
    );

    let notary_key = notary::notary_key(&key.public_key()).expect("notary key");
    assert_eq!(notary_key.scheme, "");
    let mut root = Root::new(
        Version::ONE,
        "2030-01-01T00:00:00Z".parse().expect("expiry"),
    );
    root.add_key(RoleType::Timestamp, notary_key.clone());
    let parsed: Signed<Timestamp> = notary::parse(signed.bytes()).expect("parses back");
    let verified = rules::verify_role(parsed, &root.authority(RoleType::Timestamp).expect("role"))
        .expect("verifies with the Notary key ID");
    rules::matches_pin(
        "snapshot",
        &snapshot_bytes,
        verified.snapshot_meta().expect("entry"),
    )
    .expect("sha256 and sha512 pins hold");
    assert_eq!(
        verified.signed().signatures()[0].keyid,
        notary_key.key_id(),
        "signatures name the Notary key ID"
    );
}

#[test]
fn expiries_with_nanoseconds_and_offsets_are_read() {
    let at = notary::parse_expiry("2029-11-27T11:57:40.95943673Z").expect("nanoseconds");
    assert_eq!(at.to_string(), "2029-11-27T11:57:40Z");
    let at = notary::parse_expiry("2029-11-27T12:57:40.5+01:00").expect("offset");
    assert_eq!(at.to_string(), "2029-11-27T11:57:40Z");
    assert!(notary::parse_expiry("next year").is_err());
}

#[test]
fn tuf_metadata_keeps_its_own_rules_for_schemes_and_versions() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut root = Root::new(
        Version::ONE,
        "2030-01-01T00:00:00Z".parse().expect("expiry"),
    );
    for role in RoleType::ALL {
        root.add_key(role, key.public_key());
    }
    let signed = Signed::sign(root, &[&key]).expect("sign");
    let mut doc: serde_json::Value = serde_json::from_slice(signed.as_bytes()).expect("json");
    let mut schemeless = key.public_key();
    schemeless.scheme.clear();
    let id = schemeless.key_id().to_string();
    doc["signed"]["keys"] = serde_json::json!({ &id: schemeless });
    for role in RoleType::ALL {
        doc["signed"]["roles"][role.as_str()]["keyids"] = serde_json::json!([&id]);
    }
    let err = Signed::<Root>::from_bytes(serde_json::to_vec(&doc).expect("json"))
        .expect_err("TUF 1.0 key without a scheme");
    assert!(err.to_string().contains("no scheme"), "{err}");

    let timestamp = Timestamp::new(
        Version::ONE,
        "2030-01-01T00:00:00Z".parse().expect("expiry"),
        notar_tuf::MetaFile::new(Version::ONE, None),
    );
    let signed = Signed::sign(timestamp, &[&key]).expect("sign");
    let mut doc: serde_json::Value = serde_json::from_slice(signed.as_bytes()).expect("json");
    doc["signed"]["meta"]["snapshot.json"]
        .as_object_mut()
        .expect("entry")
        .remove("version");
    let err = Signed::<Timestamp>::from_bytes(serde_json::to_vec(&doc).expect("json"))
        .expect_err("TUF 1.0 meta entry without a version");
    assert!(err.to_string().contains("has no version"), "{err}");
}
