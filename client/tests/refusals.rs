//! Every refusal the client promises (issue 4, "Bad input"), produced against the real
//! notar-server and asserted on the real `notar` binary: exit code 1, the stderr lines
//! naming the role and the check, and what the trust directory keeps afterwards.
//!
//! A publisher signs with `notar trust sign` straight against the server. A reader runs
//! `notar trust resolve` through [`Proxy`], an in-process HTTP proxy that forwards to the
//! server and lets a test replace, rewrite, stream or hide the response for one metadata
//! file. Metadata an attacker holding the server's keys could make is signed with those
//! keys, taken from the server in-process; metadata of the publisher's roles is signed with
//! the keys `notar` made, unlocked from the publisher's trust directory.
//!
//! After each refusal the reader's `<trust-dir>/tuf/<gun>/` must hold only what verified:
//! unchanged where the workflow stopped at the first role, and the newer verified
//! timestamp or snapshot where it stopped at a later one.

#![expect(clippy::expect_used, reason = "a failed setup step fails the test")]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use notar_keys::{KeyRole, KeyStore, PrivateKey};
use notar_server::path::ManagedRole;
use notar_tests::repo::{content_of, far_future, target_for, test_key};
use notar_tests::server::{Backend, TestServer};
use notar_tuf::{
    Delegations, Expiry, MetaFile, Role, RoleName, RoleType, Root, Signed, Signer, Snapshot,
    TargetName, Targets, Timestamp, Version,
};
use serde_json::Value;

mod common;
use common::Run;

const ROOT_PASS: &str = "root passphrase for the refusal tests";
const TARGETS_PASS: &str = "targets passphrase for the refusal tests";
const GUN: &str = "localhost:5000/team/app";
/// The client's size limit for `timestamp.json` (`Limits::default()`).
const TIMESTAMP_MAX_BYTES: usize = 16 * 1024;

// ---------------------------------------------------------------------------------------
// The proxy

/// Changes the body of a forwarded response.
type Change = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// What the proxy answers for one metadata file instead of the server's response.
#[derive(Clone)]
enum Reply {
    /// These bytes, 200, with a `Content-Length`.
    Body(Vec<u8>),
    /// These bytes, 200, in chunks without a `Content-Length`.
    Chunked(Vec<u8>),
    /// 404, as for a file the repository does not have.
    NotFound,
    /// The server's response with its body passed through this function.
    Rewrite(Change),
}

#[derive(Default)]
struct Rules {
    /// By file name relative to the metadata base URL (`timestamp.json`, `2.root.json`,
    /// `2.targets%2Freleases.json`, percent-encoding as requested).
    replies: BTreeMap<String, Reply>,
    /// Every file requested, in order.
    requested: Vec<String>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    /// A std mutex: only held to copy a rule out, never across an await.
    rules: Mutex<Rules>,
}

/// A rewriting HTTP proxy in front of one server, on 127.0.0.1:0. It runs until the test's
/// runtime stops.
struct Proxy {
    url: String,
    state: Arc<ProxyState>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            rules: Mutex::default(),
        });
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.state
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn reply(&self, file: &str, reply: Reply) {
        self.rules().replies.insert(file.to_owned(), reply);
    }

    fn serve(&self, file: &str, bytes: &[u8]) {
        self.reply(file, Reply::Body(bytes.to_vec()));
    }

    fn rewrite(&self, file: &str, change: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) {
        self.reply(file, Reply::Rewrite(Arc::new(change)));
    }

    /// Back to forwarding everything unchanged; forgets the requests seen.
    fn reset(&self) {
        let mut rules = self.rules();
        rules.replies.clear();
        rules.requested.clear();
    }

    fn requested(&self) -> Vec<String> {
        self.rules().requested.clone()
    }
}

async fn forward(State(proxy): State<Arc<ProxyState>>, request: Request) -> Response {
    let file = request
        .uri()
        .path()
        .split_once("/_trust/tuf/")
        .map(|(_, file)| file.to_owned())
        .unwrap_or_default();
    let reply = {
        let mut rules = proxy.rules.lock().unwrap_or_else(PoisonError::into_inner);
        rules.requested.push(file.clone());
        rules.replies.get(&file).cloned()
    };
    match &reply {
        Some(Reply::Body(bytes)) => return (StatusCode::OK, bytes.clone()).into_response(),
        Some(Reply::Chunked(bytes)) => {
            let chunks: Vec<Result<Bytes, Infallible>> = bytes
                .chunks(64 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            return Body::from_stream(futures::stream::iter(chunks)).into_response();
        }
        Some(Reply::NotFound) => return StatusCode::NOT_FOUND.into_response(),
        Some(Reply::Rewrite(_)) | None => {}
    }
    let url = format!(
        "{}{}",
        proxy.upstream,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let method = request.method().clone();
    let body = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let upstream = match proxy.http.request(method, &url).body(body).send().await {
        Ok(response) => response,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = upstream.status();
    let body = match upstream.bytes().await {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let body = match &reply {
        Some(Reply::Rewrite(change)) => change(&body),
        _ => body.to_vec(),
    };
    (status, body).into_response()
}

// ---------------------------------------------------------------------------------------
// The binary

impl Run {
    /// Trust not established: exit 1, nothing on stdout, and exactly the error the TUF
    /// workflow gives, `cause` naming the role and the check.
    fn refused(self, cause: &str) {
        let run = self.expect_code(1);
        assert_eq!(run.stdout, "", "stdout of a refusal");
        assert_eq!(
            run.stderr,
            format!("notar: error: verifying the trust data of {GUN}\n  caused by: {cause}\n")
        );
    }
}

/// `notar` with one trust directory and one server URL.
#[derive(Clone, Debug)]
struct Client {
    server: String,
    trust_dir: PathBuf,
}

impl Client {
    async fn run(&self, args: &[&str]) -> Run {
        let env = [
            ("NOTAR_SERVER", self.server.as_str()),
            (
                "NOTAR_TRUST_DIR",
                self.trust_dir.to_str().expect("UTF-8 trust directory"),
            ),
            ("NOTAR_KDF", "test"),
            ("NOTAR_ROOT_PASSPHRASE", ROOT_PASS),
            ("NOTAR_TARGETS_PASSPHRASE", TARGETS_PASS),
        ];
        common::run_notar(args, &env, Duration::from_secs(120)).await
    }

    async fn sign(&self, tag: &str) -> Run {
        let args = common::sign_args(&format!("{GUN}:{tag}"), &content_of(tag));
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
    }

    async fn resolve(&self, tag: &str) -> Run {
        self.run(&["trust", "resolve", &format!("{GUN}:{tag}")])
            .await
    }

    /// The `*.json` files the trust directory keeps for [`GUN`], as text.
    fn cached(&self) -> BTreeMap<String, String> {
        let dir = self.trust_dir.join("tuf").join(GUN);
        std::fs::read_dir(&dir)
            .expect("metadata directory")
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .map(|path| {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("UTF-8 name");
                let bytes = std::fs::read(&path).expect("readable");
                (name.to_owned(), text(&bytes))
            })
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("metadata is UTF-8")
}

/// What the cache should hold: (file, bytes) pairs.
fn files(pairs: &[(&str, &[u8])]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), text(bytes)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The world of one test

/// A server, a proxy in front of it, a publisher that has signed `v1`, and a reader that
/// resolved `v1` through the proxy, so it holds a trusted state.
struct World {
    server: TestServer,
    proxy: Proxy,
    publisher: Client,
    reader: Client,
    http: reqwest::Client,
    _dirs: [tempfile::TempDir; 2],
}

impl World {
    async fn new() -> Self {
        let server = TestServer::start(Backend::Sqlite).await;
        let proxy = Proxy::start(&server.url).await;
        let dirs = [
            tempfile::tempdir().expect("temp dir"),
            tempfile::tempdir().expect("temp dir"),
        ];
        let publisher = Client {
            server: server.url.clone(),
            trust_dir: dirs[0].path().to_path_buf(),
        };
        let reader = Client {
            server: proxy.url.clone(),
            trust_dir: dirs[1].path().to_path_buf(),
        };
        publisher.sign("v1").await.ok();
        let first = reader.resolve("v1").await.ok();
        assert!(first.stderr.contains("first contact"), "{}", first.stderr);
        World {
            server,
            proxy,
            publisher,
            reader,
            http: reqwest::Client::new(),
            _dirs: dirs,
        }
    }

    /// `file` as the server serves it (not through the proxy).
    async fn served(&self, file: &str) -> Vec<u8> {
        let url = format!("{}{file}", self.server.tuf_url(GUN));
        let response = self.http.get(&url).send().await.expect("GET");
        assert!(response.status().is_success(), "GET {url}: {response:?}");
        response.bytes().await.expect("body").to_vec()
    }

    /// The keys an attacker would need: the server's timestamp and snapshot keys, and the
    /// publisher's root and targets keys.
    async fn keys(&self) -> Keys {
        let gun = notar_tuf::Gun::new(GUN).expect("valid GUN");
        let managed = |role: ManagedRole| {
            let gun = gun.clone();
            async move {
                let keys = &self.server.state.keys;
                let ids = keys.key_ids(&gun, role).await.expect("managed key IDs");
                keys.signer(&gun, role, &ids)
                    .await
                    .expect("managed key")
                    .expect("the server holds the key root lists")
            }
        };
        let store = KeyStore::open(&self.publisher.trust_dir).expect("key store");
        let unlock = |role: KeyRole, gun: Option<&notar_tuf::Gun>, passphrase: &str| {
            let listing = store.find(role, gun).expect("list keys");
            let info = listing.keys.first().expect("the publisher's key");
            store.load(&info.key_id, passphrase).expect("unlock")
        };
        Keys {
            timestamp: managed(ManagedRole::Timestamp).await,
            snapshot: managed(ManagedRole::Snapshot).await,
            root: unlock(KeyRole::Root, None, ROOT_PASS),
            targets: unlock(KeyRole::Targets, Some(&gun), TARGETS_PASS),
        }
    }
}

struct Keys {
    timestamp: Arc<PrivateKey>,
    snapshot: Arc<PrivateKey>,
    root: PrivateKey,
    targets: PrivateKey,
}

impl Keys {
    /// A timestamp pinning exactly `snapshot`.
    fn timestamp(&self, version: u64, expires: Expiry, snapshot: &[u8]) -> Vec<u8> {
        let pinned = parse::<Snapshot>(snapshot).version;
        let timestamp = Timestamp::new(v(version), expires, MetaFile::new(pinned, Some(snapshot)));
        sign(timestamp, &[&*self.timestamp])
    }

    /// A snapshot pinning each (file, version, bytes) exactly.
    fn snapshot(&self, version: u64, pins: &[(&str, &[u8])]) -> Vec<u8> {
        let meta = pins
            .iter()
            .map(|(file, bytes)| {
                let pinned = parse::<Targets>(bytes).version;
                ((*file).to_owned(), MetaFile::new(pinned, Some(bytes)))
            })
            .collect();
        self.snapshot_with(version, meta)
    }

    fn snapshot_with(&self, version: u64, meta: BTreeMap<String, MetaFile>) -> Vec<u8> {
        let mut snapshot = Snapshot::new(v(version), far_future());
        snapshot.meta = meta;
        sign(snapshot, &[&*self.snapshot])
    }
}

fn v(version: u64) -> Version {
    Version::new(version).expect("version")
}

fn sign<T: Role>(content: T, keys: &[&dyn Signer]) -> Vec<u8> {
    Signed::sign(content, keys)
        .expect("sign")
        .as_bytes()
        .to_vec()
}

/// The content of metadata bytes, signatures unchecked.
fn parse<T: Role + Clone>(bytes: &[u8]) -> T {
    Signed::<T>::from_bytes(bytes.to_vec())
        .expect("well-formed metadata")
        .untrusted()
        .clone()
}

fn new_key() -> PrivateKey {
    PrivateKey::generate().expect("random key")
}

/// `bytes` with one byte changed: the first hex digit of the first sha256 hash, so the
/// JSON still parses.
fn one_byte_changed(bytes: &[u8]) -> Vec<u8> {
    let marker = b"\"sha256\":\"";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("a sha256 hash")
        + marker.len();
    let mut changed = bytes.to_vec();
    changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
    changed
}

// ---------------------------------------------------------------------------------------
// The refusals

/// A tampered file: one byte of a served targets file (its hash is pinned by snapshot),
/// one byte of the timestamp (nothing pins it; its signature no longer verifies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_file_is_refused() {
    let world = World::new().await;
    let (r1, t1) = (
        world.served("1.root.json").await,
        world.served("1.targets.json").await,
    );
    let before = world.reader.cached();

    world.proxy.rewrite("timestamp.json", one_byte_changed);
    world
        .reader
        .resolve("v1")
        .await
        .refused("timestamp: verifying timestamp: 0 valid signature(s), threshold 1");
    assert_eq!(world.reader.cached(), before);

    world.proxy.reset();
    world.publisher.sign("v2").await.ok();
    world.proxy.rewrite("2.targets.json", one_byte_changed);
    world
        .reader
        .resolve("v2")
        .await
        .refused("targets: the sha256 hash does not match the pinned one");
    // Timestamp and snapshot verified and are kept; targets stays the trusted version 1.
    assert_eq!(
        world.reader.cached(),
        files(&[
            ("root.json", &r1),
            ("timestamp.json", &world.served("timestamp.json").await),
            ("snapshot.json", &world.served("2.snapshot.json").await),
            ("targets.json", &t1),
        ])
    );

    // The genuine file is accepted afterwards.
    world.proxy.reset();
    world.reader.resolve("v2").await.ok();
}

/// Targets re-signed by a key root does not list, pinned by a snapshot and timestamp
/// signed with the server's keys, so that only the signature check can catch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_by_an_unknown_key_is_refused() {
    let world = World::new().await;
    let keys = world.keys().await;
    let (r1, t1) = (
        world.served("1.root.json").await,
        world.served("1.targets.json").await,
    );
    let mut targets = parse::<Targets>(&t1);
    targets.version = v(2);
    targets
        .targets
        .insert(TargetName::new("v2").expect("name"), target_for(b"evil"));
    let t2 = sign(targets, &[&new_key()]);
    let s2 = keys.snapshot(2, &[("targets.json", &t2)]);
    let ts2 = keys.timestamp(2, far_future(), &s2);
    world.proxy.serve("timestamp.json", &ts2);
    world.proxy.serve("2.snapshot.json", &s2);
    world.proxy.serve("2.targets.json", &t2);

    world
        .reader
        .resolve("v2")
        .await
        .refused("targets: verifying targets: 0 valid signature(s), threshold 1");
    assert_eq!(
        world.reader.cached(),
        files(&[
            ("root.json", &r1),
            ("timestamp.json", &ts2),
            ("snapshot.json", &s2),
            ("targets.json", &t1),
        ])
    );
}

/// Signatures below threshold: a timestamp whose signature was removed (0 of 1); a root
/// version 2 that raises its root threshold to 2 and carries one signature (1 of 2); a
/// valid root version 2 that asks two timestamp keys, then the server's timestamp with
/// one (1 of 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_below_threshold_are_refused() {
    let world = World::new().await;
    let keys = world.keys().await;
    let (r1, t1) = (
        world.served("1.root.json").await,
        world.served("1.targets.json").await,
    );
    let before = world.reader.cached();

    world.proxy.rewrite("timestamp.json", |bytes| {
        let mut doc: Value = serde_json::from_slice(bytes).expect("JSON");
        doc["signatures"] = Value::Array(Vec::new());
        serde_json::to_vec(&doc).expect("JSON")
    });
    world
        .reader
        .resolve("v1")
        .await
        .refused("timestamp: verifying timestamp: 0 valid signature(s), threshold 1");
    assert_eq!(world.reader.cached(), before);

    world.proxy.reset();
    let mut root = parse::<Root>(&r1);
    root.version = v(2);
    root.add_key(RoleType::Root, new_key().public_key());
    root.roles
        .get_mut(&RoleType::Root)
        .expect("root role")
        .threshold = NonZeroU32::new(2).expect("two");
    world.proxy.serve("2.root.json", &sign(root, &[&keys.root]));
    world.reader.resolve("v1").await.refused(
        "root version 2 is not signed by a threshold of its own root keys: verifying root: 1 valid signature(s), threshold 2",
    );
    assert_eq!(world.reader.cached(), before);

    world.proxy.reset();
    let mut root = parse::<Root>(&r1);
    root.version = v(2);
    root.add_key(RoleType::Timestamp, new_key().public_key());
    root.roles
        .get_mut(&RoleType::Timestamp)
        .expect("timestamp role")
        .threshold = NonZeroU32::new(2).expect("two");
    let r2 = sign(root, &[&keys.root]);
    world.proxy.serve("2.root.json", &r2);
    world
        .reader
        .resolve("v1")
        .await
        .refused("timestamp: verifying timestamp: 1 valid signature(s), threshold 2");
    // Root 2 verified and is kept; the timestamp and snapshot signed under the old keys
    // are no rollback reference any more (§5.3.11) and are gone.
    assert_eq!(
        world.reader.cached(),
        files(&[("root.json", &r2), ("targets.json", &t1)])
    );
}

/// An old timestamp served again after the reader saw a newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_timestamp_is_refused() {
    let world = World::new().await;
    let ts1 = world.served("timestamp.json").await;
    world.publisher.sign("v2").await.ok();
    world.reader.resolve("v2").await.ok();
    let before = world.reader.cached();

    world.proxy.serve("timestamp.json", &ts1);
    world
        .reader
        .resolve("v2")
        .await
        .refused("timestamp: rollback: version 1 is older than the trusted version 2");
    assert_eq!(world.reader.cached(), before);
}

/// The old snapshot served again, under a fresh timestamp signed with the server's key
/// (replaying the old timestamp is the case above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_snapshot_is_refused() {
    let world = World::new().await;
    let keys = world.keys().await;
    let s1 = world.served("1.snapshot.json").await;
    world.publisher.sign("v2").await.ok();
    world.reader.resolve("v2").await.ok();
    let before = world.reader.cached();

    world
        .proxy
        .serve("timestamp.json", &keys.timestamp(3, far_future(), &s1));
    world.proxy.serve("1.snapshot.json", &s1);
    world.reader.resolve("v2").await.refused(
        "timestamp (snapshot version): rollback: version 1 is older than the trusted version 2",
    );
    assert_eq!(world.reader.cached(), before);
}

/// The old targets served again, under a fresh snapshot and timestamp signed with the
/// server's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_targets_are_refused() {
    let world = World::new().await;
    let keys = world.keys().await;
    let t1 = world.served("1.targets.json").await;
    world.publisher.sign("v2").await.ok();
    world.reader.resolve("v2").await.ok();
    let before = world.reader.cached();

    let s3 = keys.snapshot(3, &[("targets.json", &t1)]);
    let ts3 = keys.timestamp(3, far_future(), &s3);
    world.proxy.serve("timestamp.json", &ts3);
    world.proxy.serve("3.snapshot.json", &s3);
    world.proxy.serve("1.targets.json", &t1);
    world.reader.resolve("v1").await.refused(
        "snapshot (targets.json): rollback: version 1 is older than the trusted version 2",
    );
    // The new timestamp verified and is kept; snapshot and targets are as before.
    let mut expected = before;
    expected.insert("timestamp.json".into(), text(&ts3));
    assert_eq!(world.reader.cached(), expected);
}

/// A timestamp signed with the server's key that expired an hour ago.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_timestamp_is_refused() {
    let world = World::new().await;
    let keys = world.keys().await;
    let before = world.reader.cached();
    let expired = Expiry::from_datetime(time::OffsetDateTime::now_utc() - time::Duration::hours(1));
    let s1 = world.served("1.snapshot.json").await;
    world
        .proxy
        .serve("timestamp.json", &keys.timestamp(2, expired, &s1));
    world
        .reader
        .resolve("v1")
        .await
        .refused(&format!("timestamp expired at {expired}"));
    assert_eq!(world.reader.cached(), before);
}

/// A root chain with a missing link. The reader holds root 1; root 3 moves root and
/// timestamp to new keys. With `2.root.json` missing, root 3 is never reached and the
/// timestamp signed by the key only root 3 lists is refused; served as `2.root.json`,
/// root 3 is refused for its version; a root 2 that the old root key did not sign is
/// refused for that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_chain_with_a_missing_link_is_refused() {
    let world = World::new().await;
    let keys = world.keys().await;
    let before = world.reader.cached();
    let r1 = world.served("1.root.json").await;
    let (new_root, new_timestamp) = (new_key(), new_key());
    let rotated = |version| {
        let mut root = parse::<Root>(&r1);
        root.version = v(version);
        root.remove_key(RoleType::Root, keys.root.key_id());
        root.remove_key(RoleType::Timestamp, keys.timestamp.key_id());
        root.add_key(RoleType::Root, new_root.public_key());
        root.add_key(RoleType::Timestamp, new_timestamp.public_key());
        root
    };
    let r3 = sign(rotated(3), &[&keys.root, &new_root]);

    world.proxy.reply("2.root.json", Reply::NotFound);
    world.proxy.serve("3.root.json", &r3);
    let s1 = world.served("1.snapshot.json").await;
    let ts2 = Timestamp::new(v(2), far_future(), MetaFile::new(v(1), Some(&s1)));
    world
        .proxy
        .serve("timestamp.json", &sign(ts2, &[&new_timestamp]));
    world
        .reader
        .resolve("v1")
        .await
        .refused("timestamp: verifying timestamp: 0 valid signature(s), threshold 1");
    let requested = world.proxy.requested();
    assert!(
        requested.contains(&"2.root.json".to_owned())
            && !requested.contains(&"3.root.json".to_owned()),
        "{requested:?}"
    );
    assert_eq!(world.reader.cached(), before);

    world.proxy.reset();
    world.proxy.serve("2.root.json", &r3);
    world
        .reader
        .resolve("v1")
        .await
        .refused("root version 3 is not the next version 2");
    assert_eq!(world.reader.cached(), before);

    world.proxy.reset();
    world
        .proxy
        .serve("2.root.json", &sign(rotated(2), &[&new_root]));
    world.reader.resolve("v1").await.refused(
        "root version 2 is not signed by a threshold of the previous root's keys: verifying root: 0 valid signature(s), threshold 1",
    );
    assert_eq!(world.reader.cached(), before);
}

/// Snapshots (signed with the server's key) that pin targets other than the ones served:
/// the right version with another hash, then a version the served file does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_match_targets_is_refused() {
    let world = World::new().await;
    let keys = world.keys().await;
    let (r1, t1) = (
        world.served("1.root.json").await,
        world.served("1.targets.json").await,
    );
    world.publisher.sign("v2").await.ok();
    let t2 = world.served("2.targets.json").await;

    let mut wrong_hash = MetaFile::new(v(2), Some(&t2));
    wrong_hash.hashes = MetaFile::new(v(2), Some(&t1)).hashes;
    let s3 = keys.snapshot_with(3, BTreeMap::from([("targets.json".into(), wrong_hash)]));
    let ts3 = keys.timestamp(3, far_future(), &s3);
    world.proxy.serve("timestamp.json", &ts3);
    world.proxy.serve("3.snapshot.json", &s3);
    world
        .reader
        .resolve("v2")
        .await
        .refused("targets: the sha256 hash does not match the pinned one");
    let kept = |ts: &[u8], sn: &[u8]| {
        files(&[
            ("root.json", &r1),
            ("timestamp.json", ts),
            ("snapshot.json", sn),
            ("targets.json", &t1),
        ])
    };
    assert_eq!(world.reader.cached(), kept(&ts3, &s3));

    world.proxy.reset();
    let s4 = keys.snapshot_with(
        4,
        BTreeMap::from([("targets.json".into(), MetaFile::new(v(3), Some(&t2)))]),
    );
    let ts4 = keys.timestamp(4, far_future(), &s4);
    world.proxy.serve("timestamp.json", &ts4);
    world.proxy.serve("4.snapshot.json", &s4);
    world.proxy.serve("3.targets.json", &t2);
    world
        .reader
        .resolve("v2")
        .await
        .refused("targets: version 2 where version 3 was pinned");
    assert_eq!(world.reader.cached(), kept(&ts4, &s4));
}

/// A snapshot longer than the length the timestamp gives, and a timestamp of 4 MiB (the
/// limit is 16 KiB), each with a `Content-Length` and streamed in chunks without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_longer_than_declared_or_over_the_limit_is_refused() {
    let world = World::new().await;
    let before = world.reader.cached();
    world.publisher.sign("v2").await.ok();
    let (ts2, s2) = (
        world.served("timestamp.json").await,
        world.served("2.snapshot.json").await,
    );
    let mut longer = s2.clone();
    longer.extend_from_slice(b"\n");
    // The timestamp verified and is kept; snapshot and targets are as before.
    let mut after = before.clone();
    after.insert("timestamp.json".into(), text(&ts2));

    for reply in [Reply::Body(longer.clone()), Reply::Chunked(longer)] {
        world.proxy.reset();
        world.proxy.reply("2.snapshot.json", reply);
        world
            .reader
            .resolve("v2")
            .await
            .refused(&format!("fetching snapshot: more than {} bytes", s2.len()));
        assert_eq!(world.reader.cached(), after);
    }

    let mut huge = ts2.clone();
    huge.resize(4 * 1024 * 1024, b' ');
    for reply in [Reply::Body(huge.clone()), Reply::Chunked(huge)] {
        world.proxy.reset();
        world.proxy.reply("timestamp.json", reply);
        world.reader.resolve("v2").await.refused(&format!(
            "fetching timestamp: more than {TIMESTAMP_MAX_BYTES} bytes"
        ));
        assert_eq!(world.reader.cached(), after);
    }
}

/// A delegated role, signed by its own key and pinned by a snapshot signed with the
/// server's key, that lists a tag outside the paths delegated to it: the tag does not
/// resolve, and inspect does not show it. (The server refuses such uploads, so the role is
/// served through the proxy.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_outside_its_delegations_paths_is_not_trusted() {
    const RELEASES: &str = "targets/releases";
    let world = World::new().await;
    let keys = world.keys().await;
    let releases_key = test_key(41);

    // Publish targets 2 delegating `release-*` to targets/releases, with release-1 in it.
    let mut targets = parse::<Targets>(&world.served("1.targets.json").await);
    targets.version = v(2);
    let mut delegations = Delegations::new();
    delegations.add_role(
        RoleName::new(RELEASES).expect("name"),
        &[releases_key.public_key()],
        NonZeroU32::MIN,
        vec!["release-*".into()],
    );
    targets.delegations = Some(delegations);
    let releases = |version, names: &[&str]| {
        let mut role = Targets::new(v(version), far_future());
        for name in names {
            role.targets.insert(
                TargetName::new(*name).expect("name"),
                target_for(&content_of(name)),
            );
        }
        sign(role, &[&releases_key])
    };
    let form = reqwest::multipart::Form::new()
        .part(
            "files",
            reqwest::multipart::Part::bytes(sign(targets, &[&keys.targets])).file_name("targets"),
        )
        .part(
            "files",
            reqwest::multipart::Part::bytes(releases(1, &["release-1"])).file_name(RELEASES),
        );
    let response = world
        .http
        .post(world.server.tuf_url(GUN))
        .multipart(form)
        .send()
        .await
        .expect("POST");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    let found = world
        .reader
        .run(&["trust", "resolve", "--json", &format!("{GUN}:release-1")])
        .await
        .ok();
    assert_eq!(found.json()["role"], RELEASES);

    // Serve a releases version 2 that also lists `evil`, pinned by a new snapshot.
    let t2 = world.served("2.targets.json").await;
    let r2 = releases(2, &["release-1", "evil"]);
    let served_ts = parse::<Timestamp>(&world.served("timestamp.json").await);
    let next = served_ts.version.get() + 1;
    let snapshot = keys.snapshot(
        next,
        &[("targets.json", &t2), ("targets/releases.json", &r2)],
    );
    world.proxy.serve(
        "timestamp.json",
        &keys.timestamp(next, far_future(), &snapshot),
    );
    world
        .proxy
        .serve(&format!("{next}.snapshot.json"), &snapshot);
    world.proxy.serve("2.targets%2Freleases.json", &r2);

    let run = world.reader.resolve("evil").await.expect_code(1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!("notar: error: {GUN}:evil is not signed\n")
    );
    assert!(
        !world
            .proxy
            .requested()
            .contains(&"2.targets%2Freleases.json".to_owned()),
        "a search for a name outside its paths does not fetch the role"
    );

    // inspect loads every role: the new releases verifies, and still `evil` is not shown.
    let run = world.reader.run(&["trust", "inspect", GUN]).await.ok();
    let tags: Vec<String> = run.json()[0]["SignedTags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["SignedTag"].as_str().expect("tag").to_owned())
        .collect();
    assert_eq!(tags, ["release-1", "v1"]);
    assert_eq!(
        world.reader.cached().get("targets%2Freleases.json"),
        Some(&text(&r2))
    );
    // Asked for by name, `evil` shows no signed tag (an answer, exit 0, as in Docker).
    let run = world
        .reader
        .run(&["trust", "inspect", &format!("{GUN}:evil")])
        .await
        .ok();
    assert_eq!(run.json()[0]["SignedTags"], serde_json::json!([]));
}

/// A pin check never takes a client back to an older root: a server that hides the roots
/// after the one a pinned key signed gets the pin refused, and the kept root stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_check_cannot_roll_the_root_back() {
    let world = World::new().await;
    let original = parse::<Root>(&world.served("1.root.json").await)
        .role_keys(RoleType::Root)
        .expect("root role")
        .keyids[0]
        .to_string();
    for _ in 0..2 {
        world
            .publisher
            .run(&["key", "rotate", GUN, "root"])
            .await
            .ok();
    }
    world.reader.resolve("v1").await.ok();
    let kept = world.reader.cached();
    assert!(
        kept["root.json"].contains("\"version\":3"),
        "the reader follows to root v3"
    );

    // The proxy hides roots 2 and 3: the chain from the pinned key's root v1 ends at v1.
    world.proxy.reply("2.root.json", Reply::NotFound);
    world.proxy.reply("3.root.json", Reply::NotFound);
    let run = world
        .reader
        .run(&[
            "trust",
            "resolve",
            "--root-key",
            &original,
            &format!("{GUN}:v1"),
        ])
        .await
        .expect_code(1);
    assert!(run.stderr.contains("signed no root of"), "{}", run.stderr);
    assert_eq!(world.reader.cached(), kept, "root v3 is still the one kept");

    // With the roots served again, the same pin holds.
    world.proxy.reset();
    world
        .reader
        .run(&[
            "trust",
            "resolve",
            "--root-key",
            &original,
            &format!("{GUN}:v1"),
        ])
        .await
        .ok();
}
