//! The cost of unlocking a key file (argon2id dominates) with the default and the test
//! parameters, and of one ed25519 signature over 1 KiB.
//!
//! `cargo bench -p notar-keys --bench unlock`

#![expect(
    clippy::expect_used,
    reason = "a benchmark whose setup fails should stop"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use notar_keys::{KdfParams, KeyRole, PrivateKey, decrypt_key, encrypt_key};
use notar_tuf::Signer;

const PASSPHRASE: &str = "benchmark passphrase";

fn unlock(c: &mut Criterion) {
    let key = PrivateKey::generate().expect("system rng");
    let mut group = c.benchmark_group("unlock");
    // Each default unlock takes a sizeable fraction of a second: few samples suffice.
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (name, params) in [
        ("default_64MiB_t3_lanes", KdfParams::default()),
        (
            "one_lane_64MiB_t3_p1",
            KdfParams::new(64 * 1024, 3, 1).expect("valid"),
        ),
        ("for_tests_8MiB_t1_p1", KdfParams::for_tests()),
    ] {
        let file = encrypt_key(&key, KeyRole::Targets, None, PASSPHRASE, params).expect("encrypts");
        group.bench_function(name, |b| {
            b.iter(|| decrypt_key(black_box(&file), black_box(PASSPHRASE)).expect("decrypts"));
        });
    }
    group.finish();
}

fn sign(c: &mut Criterion) {
    let key = PrivateKey::generate().expect("system rng");
    let message = vec![0x42u8; 1024];
    c.bench_function("sign_ed25519_1KiB", |b| {
        b.iter(|| Signer::sign(&key, black_box(&message)));
    });
}

criterion_group!(benches, unlock, sign);
criterion_main!(benches);
