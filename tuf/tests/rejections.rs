//! Runs every folder of `fixtures/rejections/`: each holds metadata with one fault, which
//! notar-tuf must refuse with the error named in `expected`.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::fs;
use std::path::Path;

use notar_tuf::{Error, Role, RoleType, Root, Signed, Snapshot, Targets, Timestamp, Verified};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

fn trusted_root() -> Signed<Root> {
    let bytes = fs::read(fixtures().join("python-tuf/repo/root.json")).expect("fixture root");
    Signed::from_bytes(bytes).expect("fixture root parses")
}

/// Parses `bytes` as role `T`, verifies it against `root` (root against itself) and checks
/// its expiry now; returns the first failure.
fn check<T: Role>(bytes: Vec<u8>, root: &Root) -> Result<(), Error> {
    let signed = Signed::<T>::from_bytes(bytes)?;
    let verified = if T::TYPE == RoleType::Root {
        Signed::<Root>::from_bytes(signed.bytes())?.check_self()?;
        Verified::<T>::from_trusted_store(signed.bytes())?
    } else {
        signed.verify(
            &root
                .authority(T::TYPE)
                .expect("valid roots list every role"),
        )?
    };
    verified.check_expiry(time::OffsetDateTime::now_utc())
}

#[test]
fn every_rejection_fixture_is_refused_with_its_error() {
    let root = trusted_root();
    let mut seen = 0;
    let mut folders: Vec<_> = fs::read_dir(fixtures().join("rejections"))
        .expect("rejections folder")
        .map(|e| e.expect("dir entry").path())
        .collect();
    folders.sort();
    for folder in folders {
        let expected = fs::read_to_string(folder.join("expected")).expect("expected file");
        let file = fs::read_dir(&folder)
            .expect("fixture folder")
            .map(|e| e.expect("dir entry").path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .expect("one metadata file per folder");
        let bytes = fs::read(&file).expect("metadata file");
        let role = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let result = match role {
            "root" => check::<Root>(bytes, root.untrusted()),
            "targets" => check::<Targets>(bytes, root.untrusted()),
            "snapshot" => check::<Snapshot>(bytes, root.untrusted()),
            "timestamp" => check::<Timestamp>(bytes, root.untrusted()),
            other => panic!("unknown role file {other} in {}", folder.display()),
        };
        let err = match result {
            Ok(()) => panic!("{} was accepted", folder.display()),
            Err(err) => err.to_string(),
        };
        assert!(
            err.contains(expected.trim()),
            "{}: expected an error containing {:?}, got {:?}",
            folder.display(),
            expected.trim(),
            err
        );
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} rejection fixtures ran");
}
