//! A simulated TUF repository served over loopback HTTP, for driving a client (the
//! `notar-conformance` binary) through the specification's update workflow.
//!
//! The repository is plain state — root, the keys of every role, the content of every
//! targets role, snapshot and timestamp — that a test changes and re-signs step by step
//! ([`SimRepo::rotate`], [`SimRepo::bump_targets`], [`SimRepo::publish`]), or bypasses to
//! serve whatever bytes an attack needs ([`SimRepo::put_metadata`]). It always uses
//! consistent snapshots. Metadata is served under `/metadata/` (`N.root.json`,
//! `timestamp.json`, `N.snapshot.json`, `N.<role>.json` with the role name percent-encoded as
//! python-tuf does) and targets under `/targets/` (`<dir>/<sha256>.<basename>`); every
//! request is logged, so a test can check what the client fetched and in which order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::SigningKey;
use notar_tuf::{
    DelegatedRole, Delegations, Expiry, MetaFile, Role, RoleName, RoleType, Root, Signed, Signer,
    Snapshot, TargetFile, TargetName, Targets, Timestamp, Version,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// What `urllib.parse.quote(name, safe="")` leaves alone: letters, digits and `-_.~`. The
/// simulator encodes role names itself rather than with notar-tuf's function, so a test
/// checks the client's encoding against the convention, not against itself.
const QUOTE_ALL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A deterministic signing key; `seed` picks which.
pub fn sim_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// An expiry `days` from now (negative: in the past).
pub fn in_days(days: i64) -> Expiry {
    Expiry::after(time::OffsetDateTime::now_utc(), time::Duration::days(days))
}

/// A target entry for `content`: its length and sha256.
pub fn target_for(content: &[u8]) -> TargetFile {
    TargetFile::sha256(content.len() as u64, Sha256::digest(content).into())
}

/// A delegated role trusted for `paths`, signed by `signer` alone.
pub fn delegation(
    name: &str,
    signer: &SigningKey,
    paths: &[&str],
    terminating: bool,
) -> DelegatedRole {
    DelegatedRole {
        name: RoleName::new(name).expect("valid role name"),
        keyids: vec![signer.public_key().key_id()],
        threshold: NonZeroU32::MIN,
        terminating,
        paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
        path_hash_prefixes: None,
        path_rule: Default::default(),
        extra: BTreeMap::new(),
    }
}

fn sign<T: Role + Clone>(value: &T, keys: &[SigningKey]) -> Vec<u8> {
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| k as &dyn Signer).collect();
    Signed::sign(value.clone(), &signers)
        .expect("sign metadata")
        .as_bytes()
        .to_vec()
}

/// What the HTTP server hands out, and what it was asked.
#[derive(Debug, Default)]
struct Served {
    /// Metadata by file name as requested (`2.targets%2Fa.json`).
    metadata: BTreeMap<String, Vec<u8>>,
    /// Targets by decoded path (`dir/<sha256>.name`).
    targets: BTreeMap<String, Vec<u8>>,
    /// Request paths as sent, without the leading `/`.
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Served>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Served> {
    // A panic elsewhere in a test must not hide behind a poisoned lock here.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(State(shared): State<Shared>, uri: Uri) -> Response {
    let raw = uri.path().trim_start_matches('/').to_owned();
    let mut served = lock(&shared);
    served.requests.push(raw.clone());
    let found = if let Some(name) = raw.strip_prefix("metadata/") {
        served.metadata.get(name).cloned()
    } else if let Some(path) = raw.strip_prefix("targets/") {
        let decoded = percent_decode_str(path).decode_utf8_lossy().into_owned();
        served.targets.get(&decoded).cloned()
    } else {
        None
    };
    match found {
        Some(bytes) => (StatusCode::OK, bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A repository and the loopback server that serves it. Fields are public so that an attack
/// is one assignment away; re-sign with the methods.
#[derive(Debug)]
pub struct SimRepo {
    /// The root the next [`SimRepo::sign_root`] signs.
    pub root: Root,
    /// The keys that sign root.
    pub root_keys: Vec<SigningKey>,
    /// The signing keys of timestamp, snapshot, targets and every delegated role.
    pub keys: BTreeMap<String, Vec<SigningKey>>,
    /// The content of `targets` and every delegated role.
    pub targets: BTreeMap<String, Targets>,
    /// The last signed (version, bytes) of each targets role: what the next snapshot pins.
    pub signed_targets: BTreeMap<String, (Version, Vec<u8>)>,
    pub snapshot: Snapshot,
    /// The bytes of the last signed snapshot: what the next timestamp pins.
    pub snapshot_bytes: Vec<u8>,
    pub timestamp: Timestamp,
    /// Pin lengths and sha256 hashes in snapshot and timestamp meta (off: versions only).
    pub hashes: bool,
    /// Every root signed, oldest first.
    pub roots: Vec<Vec<u8>>,
    addr: SocketAddr,
    shared: Shared,
    server: JoinHandle<()>,
}

impl Drop for SimRepo {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl SimRepo {
    /// A repository with root v1 (keys 1–4 for root, targets, snapshot, timestamp), targets
    /// v1 listing `file1.txt`, snapshot v1 and timestamp v1, served on `127.0.0.1:0`.
    pub async fn start() -> SimRepo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let shared = Shared::default();
        let app = Router::new()
            .fallback(serve)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // The server stops when the test drops the repository (abort) or ends.
            let _ = axum::serve(listener, app).await;
        });

        let mut root = Root::new(Version::ONE, in_days(365));
        root.add_key(RoleType::Root, sim_key(1).public_key());
        root.add_key(RoleType::Targets, sim_key(2).public_key());
        root.add_key(RoleType::Snapshot, sim_key(3).public_key());
        root.add_key(RoleType::Timestamp, sim_key(4).public_key());
        let mut repo = SimRepo {
            root,
            root_keys: vec![sim_key(1)],
            keys: BTreeMap::from([
                ("targets".to_owned(), vec![sim_key(2)]),
                ("snapshot".to_owned(), vec![sim_key(3)]),
                ("timestamp".to_owned(), vec![sim_key(4)]),
            ]),
            targets: BTreeMap::from([(
                "targets".to_owned(),
                Targets::new(Version::ONE, in_days(365)),
            )]),
            signed_targets: BTreeMap::new(),
            snapshot: Snapshot::new(Version::ONE, in_days(365)),
            snapshot_bytes: Vec::new(),
            timestamp: Timestamp::new(
                Version::ONE,
                in_days(365),
                MetaFile::new(Version::ONE, None),
            ),
            hashes: false,
            roots: Vec::new(),
            addr,
            shared,
            server,
        };
        repo.sign_root(&[]);
        repo.add_target("targets", "file1.txt", b"content of file1");
        repo.sign_snapshot();
        repo.sign_timestamp();
        repo
    }

    /// `http://127.0.0.1:PORT/metadata/`
    pub fn metadata_url(&self) -> String {
        format!("http://{}/metadata/", self.addr)
    }

    /// `http://127.0.0.1:PORT/targets/`
    pub fn targets_url(&self) -> String {
        format!("http://{}/targets/", self.addr)
    }

    /// The first root: what a client is initialised with.
    pub fn root_v1(&self) -> Vec<u8> {
        self.roots[0].clone()
    }

    /// Serves `bytes` as the metadata file `name` (`timestamp.json`, `3.snapshot.json`).
    pub fn put_metadata(&self, name: &str, bytes: Vec<u8>) {
        lock(&self.shared).metadata.insert(name.to_owned(), bytes);
    }

    /// Stops serving the metadata file `name`.
    pub fn remove_metadata(&self, name: &str) {
        lock(&self.shared).metadata.remove(name);
    }

    /// The metadata file `name` as served now.
    pub fn metadata(&self, name: &str) -> Vec<u8> {
        lock(&self.shared)
            .metadata
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not served"))
    }

    /// Serves `bytes` at the target path `path` (decoded, relative to the targets URL).
    pub fn put_target_file(&self, path: &str, bytes: Vec<u8>) {
        lock(&self.shared).targets.insert(path.to_owned(), bytes);
    }

    /// The request paths since the last call (`metadata/2.root.json`, `targets/…`).
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut lock(&self.shared).requests)
    }

    /// The file name of role metadata, the role percent-encoded as python-tuf does.
    pub fn role_file(version: Version, role: &str) -> String {
        format!("{version}.{}.json", utf8_percent_encode(role, QUOTE_ALL))
    }

    /// Where a target is served with consistent snapshots: `<dir>/<sha256>.<basename>`.
    pub fn target_path(path: &str, content: &[u8]) -> String {
        let digest = hex::encode(Sha256::digest(content));
        match path.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/{digest}.{base}"),
            None => format!("{digest}.{path}"),
        }
    }

    /// Signs the current root with the root keys and `also`; serves it as `N.root.json`.
    pub fn sign_root(&mut self, also: &[SigningKey]) -> Vec<u8> {
        let mut signers = self.root_keys.clone();
        signers.extend(also.iter().cloned());
        let bytes = sign(&self.root, &signers);
        self.put_metadata(&format!("{}.root.json", self.root.version), bytes.clone());
        self.roots.push(bytes.clone());
        bytes
    }

    /// Root version N+1 in which `role` has the keys `new` with `threshold`. A new root key
    /// set is signed by the old and the new root keys, as rotation requires.
    pub fn rotate(&mut self, role: RoleType, new: Vec<SigningKey>, threshold: u32) -> Vec<u8> {
        let old_ids = self.root.roles[&role].keyids.clone();
        for id in &old_ids {
            self.root.remove_key(role, id);
        }
        for k in &new {
            self.root.add_key(role, k.public_key());
        }
        if let Some(keys) = self.root.roles.get_mut(&role) {
            keys.threshold = NonZeroU32::new(threshold).expect("threshold above zero");
        }
        self.root.version = self.root.version.next();
        if role == RoleType::Root {
            let old = std::mem::replace(&mut self.root_keys, new);
            self.sign_root(&old)
        } else {
            self.keys.insert(role.to_string(), new);
            self.sign_root(&[])
        }
    }

    /// Signs targets role `role` at its current version and serves it.
    pub fn sign_targets(&mut self, role: &str) {
        let t = &self.targets[role];
        let bytes = sign(t, &self.keys[role]);
        self.put_metadata(&Self::role_file(t.version, role), bytes.clone());
        self.signed_targets
            .insert(role.to_owned(), (t.version, bytes));
    }

    /// Raises the version of targets role `role` and signs it.
    pub fn bump_targets(&mut self, role: &str) {
        let t = self.targets.get_mut(role).expect("known role");
        t.version = t.version.next();
        self.sign_targets(role);
    }

    /// Signs the snapshot at its current version, pinning every targets role as last
    /// signed, and serves it.
    pub fn sign_snapshot(&mut self) {
        self.snapshot.meta = self
            .signed_targets
            .iter()
            .map(|(role, (version, bytes))| {
                let pinned = self.hashes.then_some(bytes.as_slice());
                (format!("{role}.json"), MetaFile::new(*version, pinned))
            })
            .collect();
        self.snapshot_bytes = sign(&self.snapshot, &self.keys["snapshot"]);
        self.put_metadata(
            &format!("{}.snapshot.json", self.snapshot.version),
            self.snapshot_bytes.clone(),
        );
    }

    /// Signs the timestamp at its current version, pinning the last signed snapshot.
    pub fn sign_timestamp(&mut self) {
        let pinned = self.hashes.then_some(self.snapshot_bytes.as_slice());
        self.timestamp.meta.insert(
            "snapshot.json".into(),
            MetaFile::new(self.snapshot.version, pinned),
        );
        let bytes = sign(&self.timestamp, &self.keys["timestamp"]);
        self.put_metadata("timestamp.json", bytes);
    }

    /// Raises the timestamp version and signs it.
    pub fn bump_timestamp(&mut self) {
        self.timestamp.version = self.timestamp.version.next();
        self.sign_timestamp();
    }

    /// A new snapshot version pinning the targets roles as last signed, and a new timestamp.
    pub fn publish(&mut self) {
        self.snapshot.version = self.snapshot.version.next();
        self.sign_snapshot();
        self.bump_timestamp();
    }

    /// Delegates `role` from `parent` to `signer`, creating the role if new; signs both at
    /// their current versions (call [`SimRepo::publish`] afterwards).
    pub fn delegate(&mut self, parent: &str, role: DelegatedRole, signer: &SigningKey) {
        let public = signer.public_key();
        let name = role.name.to_string();
        let p = self.targets.get_mut(parent).expect("known parent");
        let d = p.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Vec::new(),
            extra: BTreeMap::new(),
        });
        d.keys.insert(public.key_id(), public);
        d.roles.push(role);
        if !self.targets.contains_key(&name) {
            self.targets
                .insert(name.clone(), Targets::new(Version::ONE, in_days(365)));
            self.keys.insert(name.clone(), vec![signer.clone()]);
            self.sign_targets(&name);
        }
        self.sign_targets(parent);
    }

    /// Lists `path` with `content` in targets role `role` (re-signed at its current
    /// version) and serves the content at its consistent-snapshot path.
    pub fn add_target(&mut self, role: &str, path: &str, content: &[u8]) {
        self.targets
            .get_mut(role)
            .expect("known role")
            .targets
            .insert(
                TargetName::new(path).expect("valid target name"),
                target_for(content),
            );
        self.put_target_file(&Self::target_path(path, content), content.to_vec());
        self.sign_targets(role);
    }
}
