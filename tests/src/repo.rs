//! A complete repository (root, targets with a delegation, snapshot, timestamp) built and
//! signed with notar-tuf, for tests that need real metadata.

use std::fs;
use std::io;
use std::path::Path;

use ed25519_dalek::SigningKey;
use notar_tuf::{
    Delegations, Expiry, MetaFile, RoleName, RoleType, Root, Signed, Signer, Snapshot, TargetFile,
    TargetName, Targets, Timestamp, Version,
};
use sha2::{Digest, Sha256};

/// The delegated role every test repository has.
pub const RELEASES: &str = "targets/releases";

/// Keys and signed metadata of one repository.
#[derive(Debug)]
pub struct TestRepo {
    pub root_key: SigningKey,
    pub targets_key: SigningKey,
    pub snapshot_key: SigningKey,
    pub timestamp_key: SigningKey,
    pub releases_key: SigningKey,
    pub root: Signed<Root>,
    pub targets: Signed<Targets>,
    pub releases: Signed<Targets>,
    pub snapshot: Signed<Snapshot>,
    pub timestamp: Signed<Timestamp>,
}

/// A deterministic key for tests: `seed` picks which.
pub fn test_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// An expiry far enough away for any test.
pub fn far_future() -> Expiry {
    Expiry::after(time::OffsetDateTime::now_utc(), time::Duration::days(365))
}

/// A target for `content`: its length and sha256.
pub fn target_for(content: &[u8]) -> TargetFile {
    TargetFile::sha256(content.len() as u64, Sha256::digest(content).into())
}

/// The content the target `name` stands for in test repositories.
pub fn content_of(name: &str) -> Vec<u8> {
    format!("manifest of {name}").into_bytes()
}

impl TestRepo {
    /// A repository with `count` targets in `targets` (`tag-0`, `tag-1`, …) and one target,
    /// `release-1`, in the delegated role `targets/releases` (paths `release-*`).
    pub fn new(count: usize) -> Self {
        let (root_key, targets_key, snapshot_key, timestamp_key, releases_key) = (
            test_key(1),
            test_key(2),
            test_key(3),
            test_key(4),
            test_key(5),
        );
        let mut root = Root::new(Version::ONE, far_future());
        root.add_key(RoleType::Root, root_key.public_key());
        root.add_key(RoleType::Targets, targets_key.public_key());
        root.add_key(RoleType::Snapshot, snapshot_key.public_key());
        root.add_key(RoleType::Timestamp, timestamp_key.public_key());
        let root = Signed::sign(root, &[&root_key]).expect("sign root");

        let mut releases = Targets::new(Version::ONE, far_future());
        releases.targets.insert(
            TargetName::new("release-1").expect("valid"),
            target_for(&content_of("release-1")),
        );
        let releases = Signed::sign(releases, &[&releases_key]).expect("sign releases");

        let mut targets = Targets::new(Version::ONE, far_future());
        for i in 0..count {
            let name = format!("tag-{i}");
            targets.targets.insert(
                TargetName::new(name.clone()).expect("valid"),
                target_for(&content_of(&name)),
            );
        }
        let mut delegations = Delegations::new();
        delegations.add_role(
            RoleName::new(RELEASES).expect("valid"),
            &[releases_key.public_key()],
            std::num::NonZeroU32::MIN,
            vec!["release-*".into()],
        );
        targets.delegations = Some(delegations);
        let targets = Signed::sign(targets, &[&targets_key]).expect("sign targets");

        let mut snapshot = Snapshot::new(Version::ONE, far_future());
        snapshot.meta.insert(
            "targets.json".into(),
            MetaFile::new(Version::ONE, Some(targets.as_bytes())),
        );
        snapshot.meta.insert(
            format!("{RELEASES}.json"),
            MetaFile::new(Version::ONE, Some(releases.as_bytes())),
        );
        let snapshot = Signed::sign(snapshot, &[&snapshot_key]).expect("sign snapshot");
        let timestamp = Timestamp::new(
            Version::ONE,
            far_future(),
            MetaFile::new(Version::ONE, Some(snapshot.as_bytes())),
        );
        let timestamp = Signed::sign(timestamp, &[&timestamp_key]).expect("sign timestamp");
        TestRepo {
            root_key,
            targets_key,
            snapshot_key,
            timestamp_key,
            releases_key,
            root,
            targets,
            releases,
            snapshot,
            timestamp,
        }
    }

    /// Writes the metadata into `dir` under every name a TUF client may ask for: plain
    /// (`root.json`), versioned (`1.root.json`), and delegated role names both
    /// percent-encoded (`1.targets%2Freleases.json`) and as a path.
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        let files: [(&str, &[u8]); 5] = [
            ("root", self.root.as_bytes()),
            ("targets", self.targets.as_bytes()),
            ("snapshot", self.snapshot.as_bytes()),
            ("timestamp", self.timestamp.as_bytes()),
            (RELEASES, self.releases.as_bytes()),
        ];
        for (role, bytes) in files {
            let names = [
                format!("{role}.json"),
                format!("1.{role}.json"),
                format!("{}.json", role.replace('/', "%2F")),
                format!("1.{}.json", role.replace('/', "%2F")),
            ];
            for name in names {
                let path = dir.join(&name);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                fs::write(path, bytes)?;
            }
        }
        Ok(())
    }
}
