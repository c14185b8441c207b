//! The TUF client workflow (specification §5) against an in-memory repository: every check
//! the specification lists is broken once and must fail with the precise error, naming the
//! role; the delegation search is checked through the requests it makes.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step should stop the test with its message"
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use ed25519_dalek::SigningKey;
use notar_tuf::client::{
    Fetch, FetchError, Limits, SearchOrder, UpdateError, Updater, encode_role, verify_target,
};
use notar_tuf::rules::Rejection;
use notar_tuf::{
    DelegatedRole, Delegations, Error as TufError, Expiry, MetaFile, RoleName, RoleType, Root,
    Signed, Signer, Snapshot, TargetFile, TargetName, Targets, Timestamp, Version,
};
use sha2::{Digest, Sha256, Sha512};
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------------------
// An in-memory repository and fetcher
// ---------------------------------------------------------------------------------------

/// What the "server" holds and what was asked of it; shared by the repository (which
/// writes) and every updater (which reads).
#[derive(Debug, Default)]
struct Served {
    files: BTreeMap<String, Vec<u8>>,
    requests: Vec<String>,
    /// A broken fetcher that ignores `max_len`, to show the updater enforces it itself.
    ignore_limit: bool,
}

#[derive(Clone, Debug, Default)]
struct MemFetch(Arc<Mutex<Served>>);

impl MemFetch {
    fn put(&self, name: &str, bytes: Vec<u8>) {
        self.0.lock().unwrap().files.insert(name.to_owned(), bytes);
    }
    fn get(&self, name: &str) -> Vec<u8> {
        self.0.lock().unwrap().files[name].clone()
    }
    fn remove(&self, name: &str) {
        self.0.lock().unwrap().files.remove(name);
    }
    /// The requests since the last call.
    fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap().requests)
    }
}

impl Fetch for MemFetch {
    fn fetch(
        &self,
        name: &str,
        max_len: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send {
        let mut served = self.0.lock().unwrap();
        served.requests.push(name.to_owned());
        let result = match served.files.get(name) {
            None => Ok(None),
            Some(b) if b.len() as u64 > max_len && !served.ignore_limit => {
                Err(FetchError::TooLarge { limit: max_len })
            }
            Some(b) => Ok(Some(b.clone())),
        };
        std::future::ready(result)
    }
}

/// Runs a future that never waits (the in-memory fetcher answers at once).
fn block_on<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the in-memory fetcher never waits"),
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn in_days(days: i64) -> Expiry {
    Expiry::after(OffsetDateTime::now_utc(), Duration::days(days))
}

fn v(n: u64) -> Version {
    Version::new(n).unwrap()
}

fn target_for(content: &[u8]) -> TargetFile {
    TargetFile::sha256(content.len() as u64, Sha256::digest(content).into())
}

fn sign<T: notar_tuf::Role + Clone>(value: &T, keys: &[SigningKey]) -> Vec<u8> {
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| k as &dyn Signer).collect();
    Signed::sign(value.clone(), &signers)
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// A repository with consistent snapshots, built and re-signed step by step. Fields are
/// public to the tests so an attack is one assignment away.
struct Repo {
    net: MemFetch,
    root: Root,
    root_keys: Vec<SigningKey>,
    /// Signing keys of timestamp, snapshot, targets and every delegated role.
    keys: BTreeMap<String, Vec<SigningKey>>,
    /// Content of `targets` and every delegated role.
    targets: BTreeMap<String, Targets>,
    /// The last signed (version, bytes) of each targets role: what snapshot pins.
    signed_targets: BTreeMap<String, (Version, Vec<u8>)>,
    snapshot: Snapshot,
    snapshot_bytes: Vec<u8>,
    timestamp: Timestamp,
    /// Pin lengths and sha256 hashes in snapshot and timestamp meta.
    hashes: bool,
    /// Every root signed, oldest first.
    roots: Vec<Vec<u8>>,
}

impl Repo {
    fn new() -> Repo {
        Repo::with_hashes(false)
    }

    fn with_hashes(hashes: bool) -> Repo {
        let mut root = Root::new(Version::ONE, in_days(365));
        root.add_key(RoleType::Root, key(1).public_key());
        root.add_key(RoleType::Targets, key(2).public_key());
        root.add_key(RoleType::Snapshot, key(3).public_key());
        root.add_key(RoleType::Timestamp, key(4).public_key());
        let mut targets = Targets::new(Version::ONE, in_days(365));
        targets.targets.insert(
            TargetName::new("file1.txt").unwrap(),
            target_for(b"content 1"),
        );
        let mut repo = Repo {
            net: MemFetch::default(),
            root,
            root_keys: vec![key(1)],
            keys: BTreeMap::from([
                ("targets".to_owned(), vec![key(2)]),
                ("snapshot".to_owned(), vec![key(3)]),
                ("timestamp".to_owned(), vec![key(4)]),
            ]),
            targets: BTreeMap::from([("targets".to_owned(), targets)]),
            signed_targets: BTreeMap::new(),
            snapshot: Snapshot::new(Version::ONE, in_days(365)),
            snapshot_bytes: Vec::new(),
            timestamp: Timestamp::new(
                Version::ONE,
                in_days(365),
                MetaFile::new(Version::ONE, None),
            ),
            hashes,
            roots: Vec::new(),
        };
        repo.sign_root(&[]);
        repo.sign_targets("targets");
        repo.sign_snapshot();
        repo.sign_timestamp();
        repo
    }

    fn root_v1(&self) -> Vec<u8> {
        self.roots[0].clone()
    }

    /// Signs the current root with the root keys and `also`, serves it as `N.root.json`.
    fn sign_root(&mut self, also: &[SigningKey]) -> Vec<u8> {
        let mut signers = self.root_keys.clone();
        signers.extend(also.iter().cloned());
        let bytes = sign(&self.root, &signers);
        self.net
            .put(&format!("{}.root.json", self.root.version), bytes.clone());
        self.roots.push(bytes.clone());
        bytes
    }

    /// Root version N+1 in which `role` has the keys `new` (threshold `threshold`). A new
    /// root is signed by the old and the new root keys.
    fn rotate(&mut self, role: RoleType, new: Vec<SigningKey>, threshold: u32) -> Vec<u8> {
        let old_ids = self.root.roles[&role].keyids.clone();
        for id in &old_ids {
            self.root.remove_key(role, id);
        }
        for k in &new {
            self.root.add_key(role, k.public_key());
        }
        self.root.roles.get_mut(&role).unwrap().threshold = NonZeroU32::new(threshold).unwrap();
        self.root.version = self.root.version.next();
        if role == RoleType::Root {
            let old = std::mem::replace(&mut self.root_keys, new);
            self.sign_root(&old)
        } else {
            self.keys.insert(role.to_string(), new);
            self.sign_root(&[])
        }
    }

    fn sign_targets(&mut self, role: &str) {
        let t = &self.targets[role];
        let bytes = sign(t, &self.keys[role]);
        self.net.put(
            &format!("{}.{}.json", t.version, encode_role(role)),
            bytes.clone(),
        );
        self.signed_targets
            .insert(role.to_owned(), (t.version, bytes));
    }

    fn bump_targets(&mut self, role: &str) {
        let t = self.targets.get_mut(role).unwrap();
        t.version = t.version.next();
        self.sign_targets(role);
    }

    fn sign_snapshot(&mut self) {
        self.snapshot.meta = self
            .signed_targets
            .iter()
            .map(|(role, (version, bytes))| {
                let pinned = self.hashes.then_some(bytes.as_slice());
                (format!("{role}.json"), MetaFile::new(*version, pinned))
            })
            .collect();
        self.snapshot_bytes = sign(&self.snapshot, &self.keys["snapshot"]);
        self.net.put(
            &format!("{}.snapshot.json", self.snapshot.version),
            self.snapshot_bytes.clone(),
        );
    }

    fn sign_timestamp(&mut self) {
        let pinned = self.hashes.then_some(self.snapshot_bytes.as_slice());
        self.timestamp.meta.insert(
            "snapshot.json".into(),
            MetaFile::new(self.snapshot.version, pinned),
        );
        self.net.put(
            "timestamp.json",
            sign(&self.timestamp, &self.keys["timestamp"]),
        );
    }

    fn bump_timestamp(&mut self) {
        self.timestamp.version = self.timestamp.version.next();
        self.sign_timestamp();
    }

    /// A new snapshot (pinning the targets roles as last signed) and a new timestamp.
    fn publish(&mut self) {
        self.snapshot.version = self.snapshot.version.next();
        self.sign_snapshot();
        self.bump_timestamp();
    }

    /// Adds a delegation from `parent` to a new role `name` signed by `signer`, and signs
    /// both (the parent at its current version, as during setting up).
    fn delegate(&mut self, parent: &str, role: DelegatedRole, signer: SigningKey) {
        let public = signer.public_key();
        let name = role.name.to_string();
        let p = self.targets.get_mut(parent).unwrap();
        let d = p.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Vec::new(),
            extra: BTreeMap::new(),
        });
        d.keys.insert(public.key_id(), public);
        d.roles.push(role);
        self.targets
            .entry(name.clone())
            .or_insert_with(|| Targets::new(Version::ONE, in_days(365)));
        self.keys.insert(name.clone(), vec![signer]);
        self.sign_targets(&name);
        self.sign_targets(parent);
    }

    fn add_target(&mut self, role: &str, name: &str, content: &[u8]) {
        self.targets
            .get_mut(role)
            .unwrap()
            .targets
            .insert(TargetName::new(name).unwrap(), target_for(content));
        self.sign_targets(role);
    }
}

/// A delegated role trusted for `paths`, signed by `signer` with threshold 1.
fn delegation(name: &str, signer: &SigningKey, paths: &[&str], terminating: bool) -> DelegatedRole {
    DelegatedRole {
        name: RoleName::new(name).unwrap(),
        keyids: vec![signer.public_key().key_id()],
        threshold: NonZeroU32::MIN,
        terminating,
        paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
        path_hash_prefixes: None,
        path_rule: Default::default(),
        extra: BTreeMap::new(),
    }
}

/// The client's metadata directory: file name → bytes, as `trusted_files` gave them.
struct Local {
    files: BTreeMap<String, Vec<u8>>,
    now: OffsetDateTime,
    limits: Limits,
}

/// The role a metadata file name stands for (`targets%2Fa.json` → `targets/a`).
fn decode_role(file: &str) -> String {
    let stem = file.strip_suffix(".json").unwrap();
    let mut out = Vec::new();
    let b = stem.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&stem[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

impl Local {
    fn new(root: Vec<u8>) -> Local {
        Local {
            files: BTreeMap::from([("root.json".to_owned(), root)]),
            now: OffsetDateTime::now_utc(),
            limits: Limits::default(),
        }
    }

    fn updater(&self, net: &MemFetch) -> Updater<MemFetch> {
        let mut u = Updater::new(
            self.files["root.json"].clone(),
            net.clone(),
            self.now,
            self.limits,
        )
        .expect("the kept root verifies");
        for (file, bytes) in &self.files {
            if file != "root.json" {
                let role = RoleName::new(decode_role(file)).unwrap();
                u.load_trusted(&role, bytes.clone())
                    .expect("kept metadata verifies");
            }
        }
        u
    }

    fn keep(&mut self, u: &Updater<MemFetch>) {
        self.files = u
            .trusted_files()
            .into_iter()
            .map(|(name, bytes)| (name, bytes.to_vec()))
            .collect();
    }

    /// One update cycle, persisting what is trusted afterwards whatever the outcome.
    fn refresh(&mut self, net: &MemFetch) -> (Updater<MemFetch>, Result<(), UpdateError>) {
        let mut u = self.updater(net);
        let result = block_on(u.refresh());
        self.keep(&u);
        (u, result)
    }

    fn refresh_ok(&mut self, net: &MemFetch) -> Updater<MemFetch> {
        let (u, result) = self.refresh(net);
        result.expect("refresh succeeds");
        u
    }

    fn refresh_err(&mut self, net: &MemFetch) -> UpdateError {
        let (_, result) = self.refresh(net);
        result.expect_err("refresh must fail")
    }

    fn version(&self, file: &str) -> u64 {
        let json: serde_json::Value = serde_json::from_slice(&self.files[file]).unwrap();
        json["signed"]["version"].as_u64().unwrap()
    }

    fn names(&self) -> Vec<&str> {
        self.files.keys().map(String::as_str).collect()
    }
}

fn is_threshold(source: &TufError, valid: usize, threshold: u32) -> bool {
    matches!(source, TufError::Threshold { valid: v, threshold: t, .. } if *v == valid && *t == threshold)
}

#[track_caller]
fn assert_invalid_threshold(err: &UpdateError, role: &str, valid: usize, threshold: u32) {
    assert!(
        match err {
            UpdateError::Rejected(Rejection::Invalid { role: r, source }) => {
                r == role && is_threshold(source, valid, threshold)
            }
            UpdateError::Rejected(Rejection::RootNotSignedByPrevious { source, .. }) => {
                role == "root (signed by the previous root's keys)"
                    && is_threshold(source, valid, threshold)
            }
            UpdateError::Rejected(Rejection::RootNotSelfSigned { source, .. }) => {
                role == "root (signed by its own keys)" && is_threshold(source, valid, threshold)
            }
            _ => false,
        },
        "expected {role}: {valid} valid signature(s), threshold {threshold}; got {err:?}"
    );
}

#[track_caller]
fn assert_rollback(err: &UpdateError, role: &str, trusted: u64, new: u64) {
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::Rollback { role: r, trusted: t, new: n }) if r == role && *t == trusted && *n == new),
        "expected rollback of {role} {trusted} -> {new}; got {err:?}"
    );
}

#[track_caller]
fn assert_expired(err: &UpdateError, role: &str) {
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::Expired { role: r, .. }) if r == role),
        "expected {role} expired; got {err:?}"
    );
}

#[track_caller]
fn assert_version_mismatch(err: &UpdateError, role: &str, expected: u64, got: u64) {
    assert!(
        match err {
            UpdateError::Rejected(Rejection::VersionMismatch {
                role: r,
                expected: e,
                got: g,
            }) => {
                r == role && *e == expected && *g == got
            }
            UpdateError::Rejected(Rejection::NotNextRoot {
                expected: e,
                got: g,
            }) => {
                role == "root" && *e == expected && *g == got
            }
            _ => false,
        },
        "expected {role} version {got} where {expected} was expected; got {err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Happy path
// ---------------------------------------------------------------------------------------

#[test]
fn happy_path_fetches_each_role_once_and_keeps_the_bytes_as_served() {
    let repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    let mut u = local.refresh_ok(&repo.net);
    assert_eq!(
        repo.net.take_requests(),
        [
            "2.root.json",
            "timestamp.json",
            "1.snapshot.json",
            "1.targets.json"
        ]
    );
    assert_eq!(
        local.names(),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    for (file, served) in [
        ("root.json", "1.root.json"),
        ("timestamp.json", "timestamp.json"),
        ("snapshot.json", "1.snapshot.json"),
        ("targets.json", "1.targets.json"),
    ] {
        assert_eq!(local.files[file], repo.net.get(served), "{file}");
    }
    let found = block_on(u.find_target("file1.txt")).unwrap().unwrap();
    assert_eq!(found.role.as_str(), "targets");
    assert_eq!(found.target, target_for(b"content 1"));
    assert!(block_on(u.find_target("nothing.txt")).unwrap().is_none());
    assert!(
        repo.net.take_requests().is_empty(),
        "the search used what refresh loaded"
    );

    // Nothing changed: only the root probe and the timestamp are fetched.
    local.refresh_ok(&repo.net);
    assert_eq!(repo.net.take_requests(), ["2.root.json", "timestamp.json"]);
}

#[test]
fn a_new_timestamp_with_an_old_version_is_not_taken() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    let kept = local.files["timestamp.json"].clone();
    // Same version, other content: the trusted copy stays.
    repo.timestamp.expires = in_days(30);
    repo.sign_timestamp();
    local.refresh_ok(&repo.net);
    assert_eq!(local.files["timestamp.json"], kept);
}

#[test]
fn an_invalid_trusted_root_is_refused_before_any_request() {
    let repo = Repo::new();
    let mut tampered = repo.root_v1();
    let at = tampered.len() - 10;
    tampered[at] ^= 1;
    let err = Updater::new(
        tampered,
        repo.net.clone(),
        OffsetDateTime::now_utc(),
        Limits::default(),
    )
    .expect_err("tampered root");
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::Invalid { ref role, .. }) if role == "root"),
        "{err:?}"
    );
    assert!(repo.net.take_requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// Root rotation (§5.3)
// ---------------------------------------------------------------------------------------

#[test]
fn root_rotation_chain_is_walked_one_version_at_a_time() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.rotate(RoleType::Root, vec![key(11)], 1);
    let v3 = repo.rotate(RoleType::Root, vec![key(12), key(13)], 2);
    local.refresh_ok(&repo.net);
    assert_eq!(local.files["root.json"], v3);
    assert_eq!(
        repo.net.take_requests()[..3],
        ["2.root.json", "3.root.json", "4.root.json"]
    );
}

#[test]
fn a_missing_link_in_the_root_chain_is_not_skipped() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.rotate(RoleType::Root, vec![key(11)], 1);
    repo.rotate(RoleType::Timestamp, vec![key(14)], 1);
    repo.bump_timestamp();
    repo.net.remove("2.root.json");
    repo.net.take_requests();
    let err = local.refresh_err(&repo.net);
    // Without version 2 the client stays on root 1, whose timestamp key did not sign.
    assert_invalid_threshold(&err, "timestamp", 0, 1);
    assert_eq!(local.version("root.json"), 1);
    assert!(!repo.net.take_requests().contains(&"3.root.json".to_owned()));
}

#[test]
fn a_new_root_signed_only_by_its_own_keys_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    let v1 = repo.root_v1();
    repo.rotate(RoleType::Root, vec![key(11)], 1);
    // Re-sign version 2 with the new key alone.
    repo.net.put("2.root.json", sign(&repo.root, &[key(11)]));
    let err = local.refresh_err(&repo.net);
    assert_invalid_threshold(&err, "root (signed by the previous root's keys)", 0, 1);
    assert_eq!(local.files["root.json"], v1);
}

#[test]
fn a_new_root_not_signed_by_its_own_keys_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.rotate(RoleType::Root, vec![key(11)], 1);
    repo.net.put("2.root.json", sign(&repo.root, &[key(1)]));
    let err = local.refresh_err(&repo.net);
    assert_invalid_threshold(&err, "root (signed by its own keys)", 0, 1);
    assert_eq!(local.version("root.json"), 1);
}

#[test]
fn a_root_served_under_the_wrong_version_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    // Version 3, correctly signed, served as 2.root.json.
    repo.root.version = v(3);
    repo.net.put("2.root.json", sign(&repo.root, &[key(1)]));
    let err = local.refresh_err(&repo.net);
    assert_version_mismatch(&err, "root", 2, 3);
    // The old root replayed as the next one.
    repo.net.put("2.root.json", repo.root_v1());
    let err = local.refresh_err(&repo.net);
    assert_version_mismatch(&err, "root", 2, 1);
    assert_eq!(local.version("root.json"), 1);
}

#[test]
fn an_expired_final_root_is_kept_but_stops_the_update() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.root.expires = in_days(-1);
    let v2 = repo.rotate(RoleType::Root, vec![key(11)], 1);
    repo.net.take_requests();
    let err = local.refresh_err(&repo.net);
    assert_expired(&err, "root");
    // §5.3.10 comes after §5.3.7: the new root is persisted, nothing after it is fetched.
    assert_eq!(local.files["root.json"], v2);
    assert_eq!(repo.net.take_requests(), ["2.root.json", "3.root.json"]);
    assert_eq!(local.version("timestamp.json"), 1);
}

#[test]
fn an_expired_intermediate_root_does_not_matter() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.root.expires = in_days(-1);
    repo.rotate(RoleType::Root, vec![key(11)], 1);
    repo.root.expires = in_days(30);
    repo.rotate(RoleType::Root, vec![key(12)], 1);
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("root.json"), 3);
}

#[test]
fn too_many_root_versions_in_one_update_are_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.limits.max_root_rotations = 2;
    for seed in 11..14 {
        repo.rotate(RoleType::Root, vec![key(seed)], 1);
    }
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::TooManyRoots { limit: 2 }),
        "{err:?}"
    );
    // The versions walked stay trusted; the next update continues from there.
    assert_eq!(local.version("root.json"), 3);
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("root.json"), 4);
}

// ---------------------------------------------------------------------------------------
// Key rotation of each role, fast-forward recovery (§5.3.11)
// ---------------------------------------------------------------------------------------

#[test]
fn timestamp_key_rotation_recovers_from_a_fast_forward() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.timestamp.version = v(10);
    repo.sign_timestamp();
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("timestamp.json"), 10);

    // Without a key rotation, going back to version 1 is a rollback.
    repo.timestamp.version = v(1);
    repo.sign_timestamp();
    let err = local.refresh_err(&repo.net);
    assert_rollback(&err, "timestamp", 10, 1);
    assert_eq!(local.version("timestamp.json"), 10);

    // With one, version 1 signed by the new key is accepted.
    repo.rotate(RoleType::Timestamp, vec![key(14)], 1);
    repo.sign_timestamp();
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("timestamp.json"), 1);
    assert_eq!(
        local.files["timestamp.json"],
        repo.net.get("timestamp.json")
    );
}

#[test]
fn snapshot_key_rotation_recovers_from_a_fast_forward() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.snapshot.version = v(9);
    repo.publish(); // snapshot 10
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("snapshot.json"), 10);

    repo.rotate(RoleType::Snapshot, vec![key(13)], 1);
    repo.snapshot.version = Version::ONE;
    repo.sign_snapshot();
    repo.bump_timestamp();
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("snapshot.json"), 1);
}

#[test]
fn snapshot_key_rotation_recovers_targets_from_a_fast_forward() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.targets.get_mut("targets").unwrap().version = v(99);
    repo.bump_targets("targets");
    repo.publish();
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("targets.json"), 100);

    repo.rotate(RoleType::Snapshot, vec![key(13)], 1);
    repo.targets.get_mut("targets").unwrap().version = v(1);
    repo.bump_targets("targets");
    repo.publish();
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("targets.json"), 2);
}

#[test]
fn targets_key_rotation() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.rotate(RoleType::Targets, vec![key(12)], 1);
    // Still signed by the old key: refused.
    repo.keys.insert("targets".into(), vec![key(2)]);
    repo.bump_targets("targets");
    repo.publish();
    let err = local.refresh_err(&repo.net);
    assert_invalid_threshold(&err, "targets", 0, 1);
    // Signed by the new key: accepted.
    repo.keys.insert("targets".into(), vec![key(12)]);
    repo.bump_targets("targets");
    repo.publish();
    local.refresh_ok(&repo.net);
    assert_eq!(
        local.files["targets.json"],
        repo.signed_targets["targets"].1
    );
}

#[test]
fn a_delegated_role_key_rotated_by_its_delegator() {
    let mut repo = Repo::new();
    repo.delegate("targets", delegation("a", &key(20), &["*"], false), key(20));
    repo.add_target("a", "a.txt", b"by a");
    repo.publish();
    let mut local = Local::new(repo.root_v1());
    let mut u = local.refresh_ok(&repo.net);
    assert!(block_on(u.find_target("a.txt")).unwrap().is_some());
    local.keep(&u);

    // targets now delegates "a" to key 21; "a" is still signed by key 20.
    let t = repo.targets.get_mut("targets").unwrap();
    let d = t.delegations.as_mut().unwrap();
    d.keys.clear();
    d.keys
        .insert(key(21).public_key().key_id(), key(21).public_key());
    d.roles[0].keyids = vec![key(21).public_key().key_id()];
    repo.bump_targets("targets");
    repo.bump_targets("a");
    repo.publish();
    let mut u = local.refresh_ok(&repo.net);
    let err = block_on(u.find_target("a.txt")).expect_err("old key");
    assert_invalid_threshold(&err, "a", 0, 1);

    repo.keys.insert("a".into(), vec![key(21)]);
    repo.bump_targets("a");
    repo.publish();
    let mut u = local.refresh_ok(&repo.net);
    assert_eq!(
        block_on(u.find_target("a.txt"))
            .unwrap()
            .unwrap()
            .role
            .as_str(),
        "a"
    );
}

#[test]
fn a_kept_timestamp_below_a_raised_threshold_is_no_longer_trusted() {
    let mut repo = Repo::new();
    repo.rotate(RoleType::Timestamp, vec![key(4), key(14)], 1);
    repo.keys.insert("timestamp".into(), vec![key(4)]);
    repo.timestamp.version = v(5);
    repo.sign_timestamp();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("timestamp.json"), 5);

    // Same keys, threshold 2; version 5 again, now signed by both keys.
    repo.rotate(RoleType::Timestamp, vec![key(4), key(14)], 2);
    repo.timestamp.expires = in_days(100);
    repo.sign_timestamp();
    let before = local.files["timestamp.json"].clone();
    local.refresh_ok(&repo.net);
    assert_ne!(local.files["timestamp.json"], before);
    assert_eq!(
        local.files["timestamp.json"],
        repo.net.get("timestamp.json")
    );
}

// ---------------------------------------------------------------------------------------
// Rollback (§5.4.3, §5.5.5, §5.6.4)
// ---------------------------------------------------------------------------------------

#[test]
fn timestamp_rollback_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    let old = repo.net.get("timestamp.json");
    repo.bump_timestamp();
    local.refresh_ok(&repo.net);
    repo.net.put("timestamp.json", old);
    let kept = local.files.clone();
    let err = local.refresh_err(&repo.net);
    assert_rollback(&err, "timestamp", 2, 1);
    assert_eq!(local.files, kept);
}

#[test]
fn a_timestamp_pinning_an_older_snapshot_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.publish(); // snapshot 2, timestamp 2
    local.refresh_ok(&repo.net);
    repo.snapshot.version = v(1);
    repo.sign_snapshot();
    repo.bump_timestamp(); // timestamp 3 pins snapshot 1
    let kept = local.files.clone();
    let err = local.refresh_err(&repo.net);
    assert_rollback(&err, "timestamp (snapshot version)", 2, 1);
    assert_eq!(local.files, kept);
}

#[test]
fn a_snapshot_rolling_back_a_targets_version_is_refused() {
    for hashes in [false, true] {
        let mut repo = Repo::with_hashes(hashes);
        let mut local = Local::new(repo.root_v1());
        repo.bump_targets("targets"); // 2
        repo.publish();
        local.refresh_ok(&repo.net);
        let kept = local.files.clone();
        repo.targets.get_mut("targets").unwrap().version = v(1);
        repo.sign_targets("targets");
        repo.publish();
        let err = local.refresh_err(&repo.net);
        assert_rollback(&err, "snapshot (targets.json)", 2, 1);
        // The new timestamp was fine; snapshot and targets stay as they were.
        assert_eq!(local.version("timestamp.json"), 3);
        for file in ["snapshot.json", "targets.json"] {
            assert_eq!(local.files[file], kept[file], "{file}, hashes: {hashes}");
        }
    }
}

#[test]
fn a_snapshot_dropping_a_role_is_refused() {
    let mut repo = Repo::new();
    repo.delegate("targets", delegation("a", &key(20), &["*"], false), key(20));
    repo.publish();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.signed_targets.remove("a");
    repo.publish();
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::Dropped { ref file }) if file == "a.json"),
        "{err:?}"
    );
}

#[test]
fn a_snapshot_with_a_lower_version_than_the_trusted_one_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.publish(); // snapshot 2
    local.refresh_ok(&repo.net);
    // The trusted timestamp is lost (a fresh cache), the trusted snapshot is not.
    local.files.remove("timestamp.json");
    repo.snapshot.version = v(1);
    repo.sign_snapshot();
    repo.bump_timestamp();
    let err = local.refresh_err(&repo.net);
    assert_rollback(&err, "snapshot", 2, 1);
}

#[test]
fn targets_served_at_an_older_version_than_snapshot_pins_are_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    let v1 = repo.net.get("1.targets.json");
    repo.bump_targets("targets");
    repo.publish();
    repo.net.put("2.targets.json", v1);
    let err = local.refresh_err(&repo.net);
    assert_version_mismatch(&err, "targets", 2, 1);
    // The snapshot moved on, the trusted targets stays the last one verified.
    assert_eq!(local.version("snapshot.json"), 2);
    assert_eq!(local.version("targets.json"), 1);
}

// ---------------------------------------------------------------------------------------
// Freeze (expiry against the time the update started)
// ---------------------------------------------------------------------------------------

#[test]
fn an_expired_timestamp_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.timestamp.expires = in_days(-1);
    repo.bump_timestamp();
    let err = local.refresh_err(&repo.net);
    assert_expired(&err, "timestamp");
    assert_eq!(local.version("timestamp.json"), 1);
}

#[test]
fn a_trusted_timestamp_that_expired_is_refused_when_nothing_newer_exists() {
    let mut repo = Repo::new();
    repo.timestamp.expires = in_days(7);
    repo.sign_timestamp();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    local.now += Duration::days(8);
    let err = local.refresh_err(&repo.net);
    assert_expired(&err, "timestamp");
}

#[test]
fn an_expired_trusted_timestamp_still_guards_against_rollback_and_is_replaced() {
    let mut repo = Repo::new();
    repo.timestamp.expires = in_days(7);
    repo.sign_timestamp();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.bump_targets("targets");
    repo.timestamp.expires = in_days(21);
    repo.publish();
    local.now += Duration::days(18);
    local.refresh_ok(&repo.net);
    assert_eq!(local.version("timestamp.json"), 2);
    assert_eq!(local.version("snapshot.json"), 2);
    assert_eq!(local.version("targets.json"), 2);
}

#[test]
fn an_expired_snapshot_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.snapshot.expires = in_days(-1);
    repo.publish();
    let err = local.refresh_err(&repo.net);
    assert_expired(&err, "snapshot");
    assert_eq!(local.version("timestamp.json"), 2);
    assert_eq!(local.version("snapshot.json"), 1);
}

#[test]
fn an_expired_targets_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.targets.get_mut("targets").unwrap().expires = in_days(-1);
    repo.bump_targets("targets");
    repo.publish();
    let err = local.refresh_err(&repo.net);
    assert_expired(&err, "targets");
    assert_eq!(local.version("targets.json"), 1);
}

#[test]
fn an_expired_delegated_role_is_refused_when_reached() {
    let mut repo = Repo::new();
    repo.delegate("targets", delegation("a", &key(20), &["*"], false), key(20));
    repo.targets.get_mut("a").unwrap().expires = in_days(-1);
    repo.sign_targets("a");
    repo.publish();
    let mut local = Local::new(repo.root_v1());
    let mut u = local.refresh_ok(&repo.net);
    let err = block_on(u.find_target("x")).expect_err("expired a");
    assert_expired(&err, "a");
}

// ---------------------------------------------------------------------------------------
// Mix-and-match, tampering, signatures
// ---------------------------------------------------------------------------------------

#[test]
fn a_snapshot_that_differs_from_the_timestamp_pin_is_refused() {
    let mut repo = Repo::with_hashes(true);
    let mut local = Local::new(repo.root_v1());
    local.refresh_ok(&repo.net);
    repo.publish(); // snapshot 2 pinned by timestamp 2
    // Another validly signed snapshot 2 (longer expiry): same length, other hash.
    repo.snapshot.expires = in_days(300);
    let other = sign(&repo.snapshot, &repo.keys["snapshot"]);
    assert_eq!(other.len(), repo.snapshot_bytes.len());
    repo.net.put("2.snapshot.json", other);
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::HashMismatch { ref role, .. }) if role == "snapshot"),
        "{err:?}"
    );
    assert_eq!(local.version("snapshot.json"), 1);
}

#[test]
fn a_snapshot_shorter_or_longer_than_the_timestamp_pin_is_refused() {
    let mut repo = Repo::with_hashes(true);
    let mut local = Local::new(repo.root_v1());
    repo.publish();
    let mut longer = repo.snapshot_bytes.clone();
    longer.push(b' ');
    repo.net.put("2.snapshot.json", longer);
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Fetch { ref role, source: FetchError::TooLarge { .. } } if role == "snapshot"),
        "{err:?}"
    );
    let shorter = repo.snapshot_bytes[..repo.snapshot_bytes.len() - 1].to_vec();
    repo.net.put("2.snapshot.json", shorter);
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::LengthMismatch { ref role, .. }) if role == "snapshot"),
        "{err:?}"
    );
}

#[test]
fn a_snapshot_of_another_version_than_the_timestamp_pins_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.snapshot.version = v(3);
    repo.sign_snapshot();
    repo.net.put("2.snapshot.json", repo.snapshot_bytes.clone());
    repo.snapshot.version = v(2);
    repo.bump_timestamp(); // pins snapshot 2
    let err = local.refresh_err(&repo.net);
    assert_version_mismatch(&err, "snapshot", 2, 3);
    assert_eq!(local.names(), ["root.json", "timestamp.json"]);
}

#[test]
fn targets_of_another_version_than_snapshot_pins_are_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.bump_targets("targets"); // 2
    let v2 = repo.net.get("2.targets.json");
    repo.bump_targets("targets"); // 3
    repo.publish(); // pins 3
    repo.net.put("3.targets.json", v2);
    let err = local.refresh_err(&repo.net);
    assert_version_mismatch(&err, "targets", 3, 2);
}

#[test]
fn targets_that_differ_from_the_snapshot_pin_are_refused() {
    let mut repo = Repo::with_hashes(true);
    let mut local = Local::new(repo.root_v1());
    repo.bump_targets("targets");
    repo.publish();
    // Version 2 again, validly signed, same length, other content than snapshot pins.
    repo.targets.get_mut("targets").unwrap().expires = in_days(300);
    repo.sign_targets("targets");
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::HashMismatch { ref role, .. }) if role == "targets"),
        "{err:?}"
    );
}

#[test]
fn hashes_other_than_sha256_are_checked_and_unknown_ones_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    // A new timestamp each time, pinning snapshot 1 by one hash.
    let mut pin = |algorithm: &str, digest: String| {
        let mut m = MetaFile::new(Version::ONE, None);
        m.hashes = Some(BTreeMap::from([(algorithm.to_owned(), digest)]));
        repo.timestamp.meta.insert("snapshot.json".into(), m);
        repo.timestamp.version = repo.timestamp.version.next();
        repo.net.put(
            "timestamp.json",
            sign(&repo.timestamp, &repo.keys["timestamp"]),
        );
    };
    let good = hex::encode(Sha512::digest(&repo.snapshot_bytes));
    pin("sha512", "00".repeat(64));
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::HashMismatch { ref role, .. }) if role == "snapshot"),
        "{err:?}"
    );

    pin("md5", "00".repeat(16));
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::UnsupportedHash { ref role, ref algorithm }) if role == "snapshot" && algorithm == "md5"),
        "{err:?}"
    );

    pin("sha512", good);
    local.refresh_ok(&repo.net);
}

#[test]
fn a_tampered_byte_is_refused() {
    let repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    let tampered = String::from_utf8(repo.net.get("1.targets.json"))
        .unwrap()
        .replace("file1.txt", "file1.txT")
        .into_bytes();
    repo.net.put("1.targets.json", tampered);
    let err = local.refresh_err(&repo.net);
    assert_invalid_threshold(&err, "targets", 0, 1);
    assert!(!local.files.contains_key("targets.json"));

    // One digit of the signed expiry year: still well-formed, no longer what was signed.
    let mut ts = repo.net.get("timestamp.json");
    let marker = b"\"expires\":\"";
    let at = ts.windows(marker.len()).position(|w| w == marker).unwrap() + marker.len() + 3;
    ts[at] = if ts[at] == b'9' { b'8' } else { ts[at] + 1 };
    repo.net.put("timestamp.json", ts);
    let err = local.refresh_err(&repo.net);
    assert_invalid_threshold(&err, "timestamp", 0, 1);
}

#[test]
fn a_signature_by_an_unknown_key_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.keys.insert("timestamp".into(), vec![key(99)]);
    repo.bump_timestamp();
    let err = local.refresh_err(&repo.net);
    assert_invalid_threshold(&err, "timestamp", 0, 1);
    assert_eq!(local.names(), ["root.json"]);
}

#[test]
fn signatures_below_a_threshold_of_two_are_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    repo.rotate(RoleType::Targets, vec![key(2), key(12)], 2);
    repo.keys.insert("targets".into(), vec![key(2)]);
    repo.bump_targets("targets");
    repo.publish();
    let err = local.refresh_err(&repo.net);
    assert_invalid_threshold(&err, "targets", 1, 2);

    // One key signing twice is not two signatures: the envelope is refused whole, since a
    // key ID must be unique in `signatures`.
    repo.keys.insert("targets".into(), vec![key(2), key(2)]);
    repo.bump_targets("targets");
    repo.publish();
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Rejected(Rejection::Invalid { ref role, source: TufError::DuplicateSignature { .. } }) if role == "targets"),
        "{err:?}"
    );

    repo.keys.insert("targets".into(), vec![key(2), key(12)]);
    repo.bump_targets("targets");
    repo.publish();
    local.refresh_ok(&repo.net);
}

// ---------------------------------------------------------------------------------------
// Size limits
// ---------------------------------------------------------------------------------------

#[test]
fn an_oversize_response_is_refused_even_from_a_fetcher_that_ignores_the_limit() {
    let repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.limits.timestamp_max_bytes = 100;
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Fetch { ref role, source: FetchError::TooLarge { limit: 100 } } if role == "timestamp"),
        "{err:?}"
    );
    repo.net.0.lock().unwrap().ignore_limit = true;
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Fetch { ref role, source: FetchError::TooLarge { limit: 100 } } if role == "timestamp"),
        "{err:?}"
    );
}

#[test]
fn an_oversize_root_is_refused() {
    let mut repo = Repo::new();
    let mut local = Local::new(repo.root_v1());
    local.limits.root_max_bytes = 200;
    repo.rotate(RoleType::Root, vec![key(11)], 1);
    let err = local.refresh_err(&repo.net);
    assert!(
        matches!(err, UpdateError::Fetch { ref role, source: FetchError::TooLarge { .. } } if role == "root"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Delegations (§5.6.7)
// ---------------------------------------------------------------------------------------

/// The delegated roles requested since the last call, by name.
fn roles_fetched(repo: &Repo) -> Vec<String> {
    repo.net
        .take_requests()
        .into_iter()
        .filter_map(|r| {
            let (_, rest) = r.split_once('.')?;
            rest.ends_with(".json").then_some(())?;
            let role = decode_role(rest);
            (!["root", "timestamp", "snapshot", "targets"].contains(&role.as_str())).then_some(role)
        })
        .collect()
}

/// One delegation: (parent, child, paths, terminating).
type Edge<'a> = (&'a str, &'a str, &'a [&'a str], bool);

/// Sets up `edges`, each new child with its own key.
fn graph(edges: &[Edge<'_>]) -> Repo {
    let mut repo = Repo::new();
    for (seed, (parent, child, paths, terminating)) in (30u8..).zip(edges) {
        let signer = key(seed);
        if repo.targets.contains_key(*child) {
            // A second delegation to a known role: same key as the first.
            let existing = repo.keys[*child][0].clone();
            let p = repo.targets.get_mut(*parent).unwrap();
            let d = p.delegations.get_or_insert_with(|| Delegations {
                keys: BTreeMap::new(),
                roles: Vec::new(),
                extra: BTreeMap::new(),
            });
            d.keys
                .insert(existing.public_key().key_id(), existing.public_key());
            d.roles
                .push(delegation(child, &existing, paths, *terminating));
            repo.sign_targets(parent);
        } else {
            repo.delegate(
                parent,
                delegation(child, &signer, paths, *terminating),
                signer,
            );
        }
    }
    repo.publish();
    repo
}

fn search(repo: &Repo, limits: Limits, target: &str) -> (Option<String>, Vec<String>) {
    let mut local = Local::new(repo.root_v1());
    local.limits = limits;
    let mut u = local.refresh_ok(&repo.net);
    repo.net.take_requests();
    let found = block_on(u.find_target(target))
        .unwrap()
        .map(|f| f.role.to_string());
    (found, roles_fetched(repo))
}

#[test]
fn delegations_are_searched_depth_first_in_listed_order() {
    let cases: &[(&str, &[Edge<'_>], &[&str])] = &[
        (
            "single level",
            &[
                ("targets", "A", &["*"], false),
                ("targets", "B", &["*"], false),
            ],
            &["A", "B"],
        ),
        (
            "two levels, DFS",
            &[
                ("targets", "A", &["*"], false),
                ("targets", "B", &["*"], false),
                ("A", "C", &["*"], false),
                ("A", "D", &["*"], false),
            ],
            &["A", "C", "D", "B"],
        ),
        (
            "three levels, DFS",
            &[
                ("targets", "A", &["*"], false),
                ("targets", "B", &["*"], false),
                ("A", "C", &["*"], false),
                ("C", "D", &["*"], false),
            ],
            &["A", "C", "D", "B"],
        ),
        (
            "terminating ignores all but its descendants",
            &[
                ("targets", "A", &["*"], false),
                ("targets", "B", &["*"], false),
                ("A", "C", &["*"], true),
                ("A", "D", &["*"], false),
            ],
            &["A", "C"],
        ),
        (
            "terminating: its own delegations are still searched",
            &[
                ("targets", "A", &["*"], false),
                ("targets", "B", &["*"], false),
                ("A", "C", &["*"], true),
                ("C", "D", &["*"], false),
            ],
            &["A", "C", "D"],
        ),
        (
            "branches whose paths do not match are skipped",
            &[
                ("targets", "A", &["*.py"], false),
                ("targets", "B", &["*"], false),
                ("A", "C", &["*"], false),
            ],
            &["B"],
        ),
        (
            "a cycle is visited once",
            &[
                ("targets", "A", &["*"], false),
                ("targets", "B", &["*"], false),
                ("B", "C", &["*"], false),
                ("C", "D", &["*"], false),
                ("D", "B", &["*"], false),
            ],
            &["A", "B", "C", "D"],
        ),
        (
            "a role delegated twice is visited where first reached",
            &[
                ("targets", "A", &["*"], false),
                ("targets", "B", &["*"], false),
                ("B", "C", &["*"], false),
                ("A", "C", &["*"], false),
            ],
            &["A", "C", "B"],
        ),
        (
            "a role delegated twice, the first time for other paths",
            &[
                ("targets", "A", &["*"], false),
                ("targets", "B", &["*"], false),
                ("B", "C", &["*"], false),
                ("A", "C", &["*.py"], false),
            ],
            &["A", "B", "C"],
        ),
    ];
    for (what, edges, order) in cases {
        let repo = graph(edges);
        let (found, fetched) = search(&repo, Limits::default(), "missingpath");
        assert_eq!(found, None, "{what}");
        assert_eq!(fetched, *order, "{what}");
    }
}

#[test]
fn targets_are_found_through_matching_paths_only() {
    let mut repo = graph(&[
        ("targets", "A", &["*.doc", "*.md"], false),
        ("targets", "B", &["releases/*/*"], false),
        ("B", "C", &["releases/x/*"], false),
        ("B", "D", &["releases/y/*.zip"], false),
    ]);
    repo.add_target("A", "README.md", b"readme by A");
    repo.add_target("C", "releases/x/x_v1", b"x by C");
    repo.add_target("D", "releases/y/y_v1.zip", b"y by D");
    repo.add_target("D", "releases/z/z_v1.zip", b"z by D");
    // Outside A's paths: must not be found although A lists it.
    repo.add_target("A", "docs/guide.md", b"not for A");
    repo.publish();
    let cases: &[(&str, Option<&str>, &[&str])] = &[
        ("file1.txt", Some("targets"), &[]),
        ("README.md", Some("A"), &["A"]),
        ("releases/x/x_v1", Some("C"), &["B", "C"]),
        ("releases/y/y_v1.zip", Some("D"), &["B", "D"]),
        ("releases/z/z_v1.zip", None, &["B"]),
        // `*` does not cross `/`: neither A (`*.md`) nor B (`releases/*/*`) matches.
        ("docs/guide.md", None, &[]),
    ];
    for (target, role, fetched) in cases {
        let (found, requested) = search(&repo, Limits::default(), target);
        assert_eq!(found.as_deref(), *role, "{target}");
        assert_eq!(requested, *fetched, "{target}");
    }
}

#[test]
fn path_hash_prefixes_select_the_role() {
    let mut repo = Repo::new();
    let digest = hex::encode(Sha256::digest(b"bin/tool"));
    let wrong = if digest.starts_with('0') { "1" } else { "0" };
    for (name, seed, prefix) in [("wrong", 40u8, wrong), ("right", 41, &digest[..2])] {
        let mut role = delegation(name, &key(seed), &[], false);
        role.paths = None;
        role.path_hash_prefixes = Some(vec![prefix.to_owned()]);
        repo.delegate("targets", role, key(seed));
        repo.add_target(name, "bin/tool", name.as_bytes());
    }
    repo.publish();
    let (found, fetched) = search(&repo, Limits::default(), "bin/tool");
    assert_eq!(found.as_deref(), Some("right"));
    assert_eq!(fetched, ["right"]);
}

#[test]
fn a_terminating_role_stops_the_search_even_without_the_target() {
    let mut repo = graph(&[
        ("targets", "A", &["app/*"], true),
        ("targets", "B", &["app/*", "app/*/*"], false),
    ]);
    repo.add_target("B", "app/one", b"by B");
    repo.add_target("B", "app/one/two", b"by B, deeper");
    repo.publish();
    let (found, fetched) = search(&repo, Limits::default(), "app/one");
    assert_eq!(found, None);
    assert_eq!(fetched, ["A"]);
    // A terminating role that does not match the target does not stop anything: B is
    // searched and vouches for it.
    let (found, fetched) = search(&repo, Limits::default(), "app/one/two");
    assert_eq!(found.as_deref(), Some("B"));
    assert_eq!(fetched, ["B"]);
}

#[test]
fn the_search_visits_at_most_max_delegations_roles() {
    let mut repo = graph(&[
        ("targets", "r1", &["*"], false),
        ("r1", "r2", &["*"], false),
        ("r2", "r3", &["*"], false),
        ("r3", "r4", &["*"], false),
    ]);
    repo.add_target("r4", "deep", b"deep");
    repo.publish();
    let limits = Limits {
        max_delegations: 3,
        ..Limits::default()
    };
    // targets, r1, r2: three roles, then the search gives up.
    let (found, fetched) = search(&repo, limits, "deep");
    assert_eq!(found, None);
    assert_eq!(fetched, ["r1", "r2"]);
    let (found, fetched) = search(&repo, Limits::default(), "deep");
    assert_eq!(found.as_deref(), Some("r4"));
    assert_eq!(fetched, ["r1", "r2", "r3", "r4"]);
}

#[test]
fn delegated_roles_are_fetched_only_when_reached_and_reused_when_kept() {
    let mut repo = graph(&[
        ("targets", "A", &["a/*"], false),
        ("targets", "B", &["b/*"], false),
    ]);
    repo.add_target("A", "a/1", b"a1");
    repo.add_target("B", "b/1", b"b1");
    repo.publish();
    let mut local = Local::new(repo.root_v1());
    let mut u = local.refresh_ok(&repo.net);
    assert!(
        roles_fetched(&repo).is_empty(),
        "refresh fetches no delegated role"
    );
    assert!(block_on(u.find_target("file1.txt")).unwrap().is_some());
    assert!(roles_fetched(&repo).is_empty());
    assert_eq!(
        block_on(u.find_target("b/1"))
            .unwrap()
            .unwrap()
            .role
            .as_str(),
        "B"
    );
    assert_eq!(roles_fetched(&repo), ["B"]);
    // Found again without a second fetch.
    assert!(block_on(u.find_target("b/1")).unwrap().is_some());
    assert!(roles_fetched(&repo).is_empty());
    local.keep(&u);
    assert!(local.files.contains_key("B.json"));

    // The next update reuses the kept copy of B while the snapshot pins its version…
    let mut u = local.refresh_ok(&repo.net);
    assert!(block_on(u.find_target("b/1")).unwrap().is_some());
    assert!(roles_fetched(&repo).is_empty());
    // …and fetches it again once the snapshot moves on.
    repo.bump_targets("B");
    repo.publish();
    let mut u = local.refresh_ok(&repo.net);
    assert!(block_on(u.find_target("b/1")).unwrap().is_some());
    assert_eq!(roles_fetched(&repo), ["B"]);
}

#[test]
fn a_kept_delegated_role_not_reached_is_handed_back_while_pinned() {
    let mut repo = graph(&[("targets", "A", &["*"], false)]);
    let mut local = Local::new(repo.root_v1());
    let mut u = local.refresh_ok(&repo.net);
    block_on(u.find_target("x")).unwrap();
    local.keep(&u);
    let kept = local.files["A.json"].clone();
    local.refresh_ok(&repo.net);
    assert_eq!(local.files["A.json"], kept);
    repo.bump_targets("A");
    repo.publish();
    local.refresh_ok(&repo.net);
    assert!(!local.files.contains_key("A.json"), "no longer pinned");
}

#[test]
fn a_delegated_role_missing_or_badly_signed_fails_the_search() {
    let mut repo = graph(&[("targets", "A", &["*"], false)]);
    repo.keys.insert("A".into(), vec![key(99)]);
    repo.bump_targets("A");
    repo.publish();
    let mut local = Local::new(repo.root_v1());
    let mut u = local.refresh_ok(&repo.net);
    let err = block_on(u.find_target("x")).expect_err("bad signature");
    assert_invalid_threshold(&err, "A", 0, 1);

    repo.signed_targets.remove("A");
    repo.snapshot.meta.clear();
    let mut fresh = Local::new(repo.root_v1());
    repo.publish();
    let mut u = fresh.refresh_ok(&repo.net);
    let err = block_on(u.find_target("x")).expect_err("not in snapshot");
    assert!(
        matches!(err, UpdateError::Missing { ref role, .. } if role == "A"),
        "{err:?}"
    );
}

#[test]
fn trusted_targets_resolve_each_name_as_the_search_does() {
    let mut repo = graph(&[
        ("targets", "A", &["a/*"], false),
        ("targets", "B", &["*/*"], false),
    ]);
    repo.add_target("A", "a/1", b"a1");
    repo.add_target("A", "b/1", b"outside A's paths");
    repo.add_target("B", "a/1", b"shadowed by A");
    repo.add_target("B", "b/2", b"b2");
    repo.publish();
    let mut local = Local::new(repo.root_v1());
    let mut u = local.refresh_ok(&repo.net);
    let order = block_on(u.load_all_targets()).unwrap();
    let names: Vec<&str> = order.iter().map(RoleName::as_str).collect();
    assert_eq!(names, ["targets", "A", "B"]);
    let trusted: BTreeMap<String, String> = u
        .trusted_targets()
        .into_iter()
        .map(|(name, found)| (name.to_string(), found.role.to_string()))
        .collect();
    assert_eq!(
        trusted,
        BTreeMap::from([
            ("a/1".to_owned(), "A".to_owned()),
            ("b/2".to_owned(), "B".to_owned()),
            ("file1.txt".to_owned(), "targets".to_owned()),
        ])
    );
    // b/1 is listed by A outside its paths; the search finds no role trusted for it.
    assert!(block_on(u.find_target("b/1")).unwrap().is_none());
}

// ---------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------

#[test]
fn target_bytes_are_checked_against_length_and_every_hash() {
    let content = b"payload";
    let mut target = target_for(content);
    verify_target("t", &target, content).unwrap();
    for bad in [&b"payloaX"[..], b"payload!"] {
        let err = verify_target("t", &target, bad).expect_err("mismatch");
        assert!(
            matches!(err, UpdateError::TargetMismatch { ref target, .. } if target == "t"),
            "{err:?}"
        );
    }
    target
        .hashes
        .insert("sha512".into(), hex::encode(Sha512::digest(b"other")));
    assert!(
        verify_target("t", &target, content).is_err(),
        "sha512 is checked too"
    );
    target
        .hashes
        .insert("sha512".into(), hex::encode(Sha512::digest(content)));
    verify_target("t", &target, content).unwrap();
    target.hashes.insert("blake3".into(), "00".into());
    assert!(
        verify_target("t", &target, content).is_err(),
        "unknown algorithm"
    );
}

#[test]
fn an_unlisted_delegated_role_reads_as_empty_only_when_asked() {
    // A is delegated first but has no metadata yet (a signer added, not yet signed); B,
    // delegated after it, signs x.
    let mut repo = graph(&[
        ("targets", "A", &["*"], false),
        ("targets", "B", &["*"], false),
    ]);
    repo.add_target("B", "x", b"x");
    repo.signed_targets.remove("A");
    repo.publish();
    let mut local = Local::new(repo.root_v1());
    let mut strict = local.refresh_ok(&repo.net);
    let err = block_on(strict.find_target("x")).expect_err("A is delegated but unlisted");
    assert!(
        matches!(err, UpdateError::Missing { ref role, .. } if role == "A"),
        "{err:?}"
    );

    let mut lenient = local
        .updater(&repo.net)
        .with_unlisted_delegations(notar_tuf::client::UnlistedDelegation::Empty);
    block_on(lenient.refresh()).expect("refresh");
    let found = block_on(lenient.find_target("x"))
        .expect("search")
        .expect("found in B");
    assert_eq!(found.role.as_str(), "B");
    assert!(
        !lenient
            .trusted_files()
            .iter()
            .any(|(name, _)| name == "A.json"),
        "nothing is invented for A"
    );
    let order = block_on(lenient.load_all_targets()).expect("walk");
    assert!(!order.iter().any(|r| r.as_str() == "A"), "{order:?}");
}

/// Docker's order: the `targets/releases` subtree first, then `targets`, then the other
/// delegations; TUF's pre-order reads `targets` first. Both honour paths and terminating.
#[test]
fn docker_order_reads_releases_before_targets() {
    let mut repo = graph(&[
        ("targets", "A", &["*"], false),
        ("targets", "targets/releases", &["*"], false),
        ("targets", "rc", &["rc-*"], true),
        ("targets", "after", &["*"], false),
    ]);
    repo.add_target("targets", "v1", b"admin's v1");
    repo.add_target("targets/releases", "v1", b"released v1");
    repo.add_target("A", "v1", b"A's v1");
    repo.add_target("A", "only-a", b"A");
    repo.add_target("rc", "rc-1", b"rc's rc-1");
    repo.add_target("after", "rc-1", b"hidden by the terminating rc");
    repo.add_target("after", "v9", b"outside nothing");
    repo.add_target("rc", "v8", b"outside rc's paths");
    repo.add_target("after", "rc-2", b"behind the terminating rc");
    repo.publish();
    let found = |order: SearchOrder, target: &str| {
        let mut local = Local::new(repo.root_v1());
        let u = local.refresh_ok(&repo.net);
        let mut u = u.with_search_order(order);
        block_on(u.find_target(target))
            .unwrap()
            .map(|f| (f.role.to_string(), f.target.length))
    };
    let len = |s: &[u8]| s.len() as u64;
    assert_eq!(
        found(SearchOrder::Docker, "v1"),
        Some(("targets/releases".into(), len(b"released v1")))
    );
    assert_eq!(
        found(SearchOrder::Preorder, "v1"),
        Some(("targets".into(), len(b"admin's v1")))
    );
    // After targets, Docker's order goes on with the other delegations in listed order.
    assert_eq!(
        found(SearchOrder::Docker, "only-a"),
        Some(("A".into(), len(b"A")))
    );
    // The terminating rc ends the search for rc-* names: `after` is never read for them.
    for order in [SearchOrder::Docker, SearchOrder::Preorder] {
        assert_eq!(
            found(order, "rc-1"),
            Some(("rc".into(), len(b"rc's rc-1"))),
            "{order:?}"
        );
        // rc-2 is listed only after the terminating rc: never found.
        assert_eq!(found(order, "rc-2"), None, "{order:?}");
        // A role reached outside its paths is never used.
        assert_eq!(found(order, "v8"), None, "{order:?}");
        assert_eq!(
            found(order, "v9"),
            Some(("after".into(), len(b"outside nothing"))),
            "{order:?}"
        );
    }
    // The roles that co-sign a name, in walk order: what inspect reports as signers.
    let mut local = Local::new(repo.root_v1());
    let mut u = local
        .refresh_ok(&repo.net)
        .with_search_order(SearchOrder::Docker);
    block_on(u.load_all_targets()).unwrap();
    let vouchers: Vec<String> = u
        .vouchers("v1")
        .into_iter()
        .map(|f| f.role.to_string())
        .collect();
    assert_eq!(vouchers, ["targets/releases", "targets", "A"]);
}

/// A terminating targets/releases ends Docker's walk for the names it matches: the other
/// delegations are not searched (targets' own list still is); without `terminating` they are.
#[test]
fn a_terminating_releases_role_ends_dockers_walk() {
    for terminating in [true, false] {
        let mut repo = graph(&[
            ("targets", "targets/releases", &["*"], terminating),
            ("targets", "B", &["*"], false),
        ]);
        repo.add_target("B", "x", b"B's x");
        repo.add_target("targets", "own", b"targets' own");
        repo.publish();
        for order in [SearchOrder::Docker, SearchOrder::Preorder] {
            let mut local = Local::new(repo.root_v1());
            let mut u = local.refresh_ok(&repo.net).with_search_order(order);
            let x = block_on(u.find_target("x"))
                .unwrap()
                .map(|f| f.role.to_string());
            let own = block_on(u.find_target("own"))
                .unwrap()
                .map(|f| f.role.to_string());
            let expected = (!terminating).then(|| "B".to_owned());
            assert_eq!(x, expected, "{order:?}, terminating {terminating}");
            assert_eq!(
                own.as_deref(),
                Some("targets"),
                "{order:?}, terminating {terminating}"
            );
        }
    }
}
