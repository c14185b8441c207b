//! Metadata signed by notar-tuf: the threshold rule, expiry, and parse → serialise laws.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::num::NonZeroU32;

use ed25519_dalek::SigningKey;
use notar_tuf::{
    Error, Expiry, RoleType, Root, Signed, Signer, TargetFile, TargetName, Targets, Version,
};
use proptest::prelude::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn far_future() -> Expiry {
    "2099-01-01T00:00:00Z".parse().expect("valid expiry")
}

/// A root whose targets role lists keys 1, 2 and 3 with threshold `threshold`.
fn root_with_targets_threshold(threshold: u32) -> Root {
    let mut root = Root::new(Version::ONE, far_future());
    for role in RoleType::ALL {
        root.add_key(role, key(9).public_key());
    }
    root.remove_key(RoleType::Targets, &key(9).public_key().key_id());
    for seed in 1..=3 {
        root.add_key(RoleType::Targets, key(seed).public_key());
    }
    root.roles
        .get_mut(&RoleType::Targets)
        .expect("targets role")
        .threshold = NonZeroU32::new(threshold).expect("non-zero");
    root
}

fn targets() -> Targets {
    let mut t = Targets::new(Version::ONE, far_future());
    t.targets.insert(
        TargetName::new("latest").expect("valid"),
        TargetFile::sha256(1234, [7; 32]),
    );
    t
}

#[test]
fn threshold_counts_distinct_listed_keys() {
    let root = root_with_targets_threshold(2);
    let authority = root.authority(RoleType::Targets).expect("targets");
    let (k1, k2, k4) = (key(1), key(2), key(4));

    let two = Signed::sign(targets(), &[&k1, &k2]).expect("sign");
    assert_eq!(two.check(&authority).expect("meets threshold"), 2);

    // The same key twice is never two signatures: a key ID must be unique in signatures,
    // so the envelope is refused whole.
    let same_twice = Signed::sign(targets(), &[&k1, &k1]).expect("sign");
    assert_eq!(same_twice.signatures().len(), 2);
    match same_twice.check(&authority) {
        Err(Error::DuplicateSignature { .. }) => {}
        other => panic!("expected a refusal of the repeated key ID, got {other:?}"),
    }

    // A key the role does not list counts zero, even though its signature is valid.
    let with_stranger = Signed::sign(targets(), &[&k1, &k4]).expect("sign");
    assert!(matches!(
        with_stranger.check(&authority),
        Err(Error::Threshold { valid: 1, .. })
    ));

    // A root key is listed in root, but not for targets: counts zero.
    let with_root_key = Signed::sign(targets(), &[&k1, &key(9)]).expect("sign");
    assert!(matches!(
        with_root_key.check(&authority),
        Err(Error::Threshold { valid: 1, .. })
    ));

    // add_signatures reaches the threshold later (co-signing).
    let cosigned = Signed::sign(targets(), &[&k1])
        .expect("sign")
        .add_signatures(&[&k2])
        .expect("co-sign");
    assert_eq!(cosigned.check(&authority).expect("meets threshold"), 2);
}

#[test]
fn signed_bytes_parse_back_and_verify() {
    let root = root_with_targets_threshold(1);
    let signed = Signed::sign(targets(), &[&key(1)]).expect("sign");
    let reparsed = Signed::<Targets>::from_bytes(signed.bytes()).expect("parses");
    assert_eq!(reparsed.as_bytes(), signed.as_bytes());
    let verified = reparsed
        .verify(&root.authority(RoleType::Targets).expect("targets"))
        .expect("verifies");
    assert_eq!(verified.targets.len(), 1);
    // Root signs itself and parses back.
    let root_signed = Signed::sign(root.clone(), &[&key(9)]).expect("sign root");
    let root_back = Signed::<Root>::from_bytes(root_signed.bytes()).expect("root parses");
    root_back
        .verify(&root.authority(RoleType::Root).expect("root"))
        .expect("root verifies");
}

#[test]
fn expiry_is_enforced_at_the_given_time() {
    let root = root_with_targets_threshold(1);
    let mut t = targets();
    t.expires = "2020-01-01T00:00:00Z".parse().expect("valid");
    let verified = Signed::sign(t, &[&key(1)])
        .expect("sign")
        .verify(&root.authority(RoleType::Targets).expect("targets"))
        .expect("signature is fine");
    let err = verified
        .check_expiry(time::OffsetDateTime::now_utc())
        .expect_err("expired");
    assert_eq!(err.to_string(), "targets expired at 2020-01-01T00:00:00Z");
    let before = "2019-12-31T00:00:00Z"
        .parse::<Expiry>()
        .expect("valid")
        .datetime();
    verified.check_expiry(before).expect("not yet expired then");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn targets_parse_serialise_round_trip(
        entries in prop::collection::btree_map(
            "[a-z0-9][a-z0-9._-]{0,20}",
            (any::<u64>(), any::<[u8; 32]>()),
            0..20,
        ),
        version in 1u64..1_000_000,
    ) {
        let mut t = Targets::new(Version::new(version).expect("non-zero"), far_future());
        for (name, (len, digest)) in entries {
            t.targets.insert(TargetName::new(name).expect("valid"), TargetFile::sha256(len, digest));
        }
        let signed = Signed::sign(t.clone(), &[&key(1)]).expect("sign");
        let back = Signed::<Targets>::from_bytes(signed.bytes()).expect("parses");
        prop_assert_eq!(back.untrusted(), &t);
        let again = Signed::sign(back.untrusted().clone(), &[&key(1)]).expect("sign");
        prop_assert_eq!(again.as_bytes(), signed.as_bytes());
    }
}
