//! Signing, parsing and verifying targets metadata with 10,000 targets.
#![expect(
    clippy::expect_used,
    reason = "benchmark set-up: a failure should stop the run"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use notar_tuf::{Expiry, RoleType, Root, Signed, Signer, TargetFile, TargetName, Targets, Version};

fn big_targets(count: u32) -> Targets {
    let expires: Expiry = "2099-01-01T00:00:00Z".parse().expect("valid expiry");
    let mut t = Targets::new(Version::ONE, expires);
    for i in 0..count {
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&i.to_be_bytes());
        t.targets.insert(
            TargetName::new(format!("tag-{i}")).expect("valid name"),
            TargetFile::sha256(u64::from(i) + 500, digest),
        );
    }
    t
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[1; 32]);
    let mut root = Root::new(Version::ONE, "2099-01-01T00:00:00Z".parse().expect("valid"));
    root.add_key(RoleType::Targets, key.public_key());
    let authority = root.authority(RoleType::Targets).expect("targets role");
    let targets = big_targets(10_000);
    let signed = Signed::sign(targets.clone(), &[&key]).expect("sign");
    let bytes = signed.bytes();

    let mut group = c.benchmark_group("targets_10k");
    group.sample_size(20);
    group.bench_function("sign", |b| {
        b.iter(|| Signed::sign(targets.clone(), &[&key]).expect("sign"))
    });
    group.bench_function("parse", |b| {
        b.iter(|| Signed::<Targets>::from_bytes(bytes.clone()).expect("parse"))
    });
    group.bench_function("parse_and_verify", |b| {
        b.iter(|| {
            Signed::<Targets>::from_bytes(bytes.clone())
                .expect("parse")
                .verify(&authority)
                .expect("verify")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
