//! A real notar-server on 127.0.0.1:0 over SQLite in a temporary directory, or over a fresh
//! PostgreSQL database, and a publisher that signs with notar-tuf and uploads over HTTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use notar_server::{AppState, Config};
use notar_tuf::{
    MetaFile, PublicKey, RoleType, Root, Signed, Signer, Snapshot, TargetFile, TargetName, Targets,
    Version,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::repo::{far_future, test_key};

/// Which database a test server runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// A database URL (a fresh database made by [`Backend::postgres`]).
    Postgres(String),
}

impl Backend {
    /// A fresh PostgreSQL database on the server named by `NOTAR_TEST_POSTGRES_URL`. Without
    /// it: `None`, unless `CI` is set, where a missing PostgreSQL is a failure.
    pub async fn postgres() -> Option<Backend> {
        let Ok(admin_url) = std::env::var("NOTAR_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "NOTAR_TEST_POSTGRES_URL must be set in CI"
            );
            eprintln!("skipping PostgreSQL variant: NOTAR_TEST_POSTGRES_URL is not set");
            return None;
        };
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL admin database");
        let name = format!("notar_e2e_{}", hex::encode(rand_bytes()));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .expect("URL with a database");
        Some(Backend::Postgres(format!("{base}/{name}")))
    }

    /// Both backends (PostgreSQL only when available).
    pub async fn all() -> Vec<Backend> {
        let mut all = vec![Backend::Sqlite];
        all.extend(Backend::postgres().await);
        all
    }
}

fn rand_bytes() -> [u8; 6] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut out = [0u8; 6];
    let mixed = nanos ^ (u128::from(std::process::id()) << 64);
    let digest = <sha2::Sha256 as sha2::Digest>::digest(mixed.to_le_bytes());
    out.copy_from_slice(&digest[..6]);
    out
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub state: AppState,
    pub data_dir: PathBuf,
    dir: Option<tempfile::TempDir>,
    backend: Backend,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Writes the built-in issuer's files into `dir`: an accounts file with `accounts` (name,
/// password, groups) and, when given, the policy (TOML; without it every account may do
/// everything).
pub fn write_issuer_files(
    dir: &std::path::Path,
    accounts: &[(&str, &str, &[&str])],
    policy: Option<&str>,
) {
    use notar_server::accounts::{Account, Accounts, hash_password};
    let mut file = Accounts::default();
    for (name, password, groups) in accounts {
        file.users.insert(
            (*name).to_owned(),
            Account {
                password: hash_password(password).expect("hash a password"),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            },
        );
    }
    file.save(&dir.join("accounts.toml"))
        .expect("write accounts");
    if let Some(policy) = policy {
        std::fs::write(dir.join("policy.toml"), policy).expect("write policy");
    }
}

/// Token auth through the built-in issuer whose files are in `dir`, service and issuer
/// `notar`, clients sent to `realm`.
pub fn issuer_auth(dir: &std::path::Path, realm: String) -> notar_server::config::AuthConfig {
    notar_server::config::AuthConfig {
        token: notar_server::auth::TokenSettings {
            realm,
            service: "notar".into(),
            issuer: "notar".into(),
        },
        root_certs: None,
        issuer: Some(Config::default_issuer(dir, "notar")),
    }
}

/// The server secret test servers use.
pub const TEST_SECRET: &str = "test server secret";

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        Self::start_in(backend, Some(dir), data_dir, |_| {}).await
    }

    /// Starts serving TLS with the PEM certificate chain and key files given; `url` is
    /// `https://127.0.0.1:PORT`.
    pub async fn start_tls(
        backend: Backend,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        let tls = notar_server::serve::TlsReloader::load(cert, key).expect("TLS files load");
        Self::start_serving(backend, Some(dir), data_dir, |_, _| {}, Some(tls)).await
    }

    /// [`TestServer::start_tls`] with settings adjusted by `adjust`, which knows the
    /// address the server will listen on.
    pub async fn start_tls_bound(
        backend: Backend,
        cert: &std::path::Path,
        key: &std::path::Path,
        adjust: impl FnOnce(&mut Config, SocketAddr),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        let tls = notar_server::serve::TlsReloader::load(cert, key).expect("TLS files load");
        Self::start_serving(backend, Some(dir), data_dir, adjust, Some(tls)).await
    }

    /// Starts with settings adjusted by `adjust`.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        Self::start_in(backend, Some(dir), data_dir, adjust).await
    }

    /// Starts with settings adjusted by `adjust`, which knows the address the server will
    /// listen on (for settings that name it, such as a token realm).
    pub async fn start_bound(
        backend: Backend,
        adjust: impl FnOnce(&mut Config, SocketAddr),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().to_path_buf();
        Self::start_serving(backend, Some(dir), data_dir, adjust, None).await
    }

    async fn start_in(
        backend: Backend,
        dir: Option<tempfile::TempDir>,
        data_dir: PathBuf,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_serving(backend, dir, data_dir, |c, _| adjust(c), None).await
    }

    async fn start_serving(
        backend: Backend,
        dir: Option<tempfile::TempDir>,
        data_dir: PathBuf,
        adjust: impl FnOnce(&mut Config, SocketAddr),
        tls: Option<notar_server::serve::TlsReloader>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        let mut config = Config::for_data_dir(&data_dir);
        if let Backend::Postgres(url) = &backend {
            config.database = url.clone();
        }
        adjust(&mut config, addr);
        let state = AppState::open(
            config,
            Zeroizing::new(TEST_SECRET.to_owned()),
            notar_keys::KdfParams::for_tests(),
        )
        .await
        .expect("server state opens");
        let (stop, stopped) = oneshot::channel::<()>();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let options = notar_server::serve::ServeOptions {
            tls,
            ..notar_server::serve::ServeOptions::plain()
        };
        let task = tokio::spawn(notar_server::serve::run(
            listener,
            state.clone(),
            async move {
                let _ = stopped.await;
            },
            options,
        ));
        TestServer {
            addr,
            url: format!("{scheme}://{addr}"),
            state,
            data_dir,
            dir,
            backend,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A second server on this one's database and settings, serving beside it (as
    /// stateless servers share one PostgreSQL, or two processes one SQLite file).
    pub async fn beside(&self) -> Self {
        let config = self.state.config.clone();
        Self::start_in(
            self.backend.clone(),
            None,
            self.data_dir.clone(),
            move |c| *c = config,
        )
        .await
    }

    /// Stops the server gracefully and starts a new one on the same data and settings.
    pub async fn restart(mut self) -> Self {
        self.shutdown().await;
        let dir = self.dir.take();
        let data_dir = self.data_dir.clone();
        let backend = self.backend.clone();
        let config = self.state.config.clone();
        Self::start_in(backend, dir, data_dir, move |c| *c = config).await
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task joins")
                .expect("server stops cleanly");
        }
    }

    /// The metadata base URL of `gun`, as a TUF client wants it.
    pub fn tuf_url(&self, gun: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/", self.url)
    }
}

/// Who signs snapshots in a published repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKey {
    Server,
    Client,
}

/// A publisher with its own root, targets and (optionally) snapshot keys.
#[derive(Debug)]
pub struct Publisher {
    pub http: reqwest::Client,
    pub server: String,
    pub gun: String,
    pub root_key: SigningKey,
    pub targets_key: SigningKey,
    pub snapshot_key: SigningKey,
    pub snapshot: SnapshotKey,
    pub timestamp_public: Option<PublicKey>,
    pub snapshot_public: Option<PublicKey>,
}

impl Publisher {
    pub fn new(server: &TestServer, gun: &str, snapshot: SnapshotKey) -> Self {
        Publisher {
            http: reqwest::Client::new(),
            server: server.url.clone(),
            gun: gun.to_owned(),
            root_key: test_key(11),
            targets_key: test_key(12),
            snapshot_key: test_key(13),
            snapshot,
            timestamp_public: None,
            snapshot_public: None,
        }
    }

    /// The same publisher sending `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header value"),
        );
        self.http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("HTTP client");
        self
    }

    pub fn url(&self, file: &str) -> String {
        format!("{}/v2/{}/_trust/tuf/{file}", self.server, self.gun)
    }

    /// Fetches the server's key for `role` (`timestamp` or `snapshot`).
    pub async fn server_key(&self, role: &str) -> PublicKey {
        self.http
            .get(self.url(&format!("{role}.key")))
            .header(
                reqwest::header::ACCEPT,
                notar_server::api::TUF_KEY_MEDIA_TYPE,
            )
            .send()
            .await
            .expect("GET key")
            .error_for_status()
            .expect("key status")
            .json()
            .await
            .expect("key JSON")
    }

    /// Root version `version` listing this publisher's keys and the server's.
    pub async fn make_root(&mut self, version: u64) -> Root {
        let ts = self.server_key("timestamp").await;
        self.timestamp_public = Some(ts.clone());
        let mut root = Root::new(Version::new(version).expect("version"), far_future());
        root.add_key(RoleType::Root, self.root_key.public_key());
        root.add_key(RoleType::Targets, self.targets_key.public_key());
        root.add_key(RoleType::Timestamp, ts);
        match self.snapshot {
            SnapshotKey::Server => {
                let sn = self.server_key("snapshot").await;
                self.snapshot_public = Some(sn.clone());
                root.add_key(RoleType::Snapshot, sn);
            }
            SnapshotKey::Client => root.add_key(RoleType::Snapshot, self.snapshot_key.public_key()),
        }
        root
    }

    /// Targets version `version` holding `tags` (each tag's content is `content_of(tag)`).
    pub fn make_targets(&self, version: u64, tags: &[&str]) -> Targets {
        let mut targets = Targets::new(Version::new(version).expect("version"), far_future());
        for tag in tags {
            targets.targets.insert(
                TargetName::new(*tag).expect("valid"),
                crate::repo::target_for(&crate::repo::content_of(tag)),
            );
        }
        targets
    }

    pub fn sign_targets(&self, targets: Targets) -> Signed<Targets> {
        Signed::sign(targets, &[&self.targets_key]).expect("sign targets")
    }

    /// A snapshot pinning `roles` (name → signed bytes, version).
    pub fn make_snapshot(&self, version: u64, roles: &[(&str, &[u8], u64)]) -> Signed<Snapshot> {
        let mut snapshot = Snapshot::new(Version::new(version).expect("version"), far_future());
        for (name, bytes, v) in roles {
            snapshot.meta.insert(
                format!("{name}.json"),
                MetaFile::new(Version::new(*v).expect("version"), Some(bytes)),
            );
        }
        Signed::sign(snapshot, &[&self.snapshot_key]).expect("sign snapshot")
    }

    /// Uploads `files` (role name → bytes) in one multipart request.
    pub async fn upload(&self, files: Vec<(String, Vec<u8>)>) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new();
        for (role, bytes) in files {
            form = form.part(
                "files",
                reqwest::multipart::Part::bytes(bytes).file_name(role),
            );
        }
        self.http
            .post(self.url(""))
            .multipart(form)
            .send()
            .await
            .expect("POST update")
    }

    /// Signs `targets` with this publisher's targets key and uploads it alone.
    pub async fn upload_targets(&self, targets: Targets) -> reqwest::Response {
        let signed = self.sign_targets(targets);
        self.upload(vec![("targets".to_owned(), signed.as_bytes().to_vec())])
            .await
    }

    /// Publishes root v1 and targets v1 with `tags` (and snapshot v1 when the publisher
    /// holds that key). Panics unless the server accepts.
    pub async fn init(&mut self, tags: &[&str]) -> (Signed<Root>, Signed<Targets>) {
        let root = self.make_root(1).await;
        let root = Signed::sign(root, &[&self.root_key]).expect("sign root");
        let targets = self.sign_targets(self.make_targets(1, tags));
        let mut files = vec![
            ("root".to_owned(), root.as_bytes().to_vec()),
            ("targets".to_owned(), targets.as_bytes().to_vec()),
        ];
        if self.snapshot == SnapshotKey::Client {
            let snapshot = self.make_snapshot(1, &[("targets", targets.as_bytes(), 1)]);
            files.push(("snapshot".to_owned(), snapshot.as_bytes().to_vec()));
        }
        let response = self.upload(files).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "init upload refused: {status} {body}");
        (root, targets)
    }

    /// DELETEs the repository's trust data and returns the status.
    pub async fn delete(&self) -> reqwest::StatusCode {
        self.http
            .delete(self.url(""))
            .send()
            .await
            .expect("DELETE")
            .status()
    }

    /// GETs `file` and returns status and body.
    pub async fn get(&self, file: &str) -> (reqwest::StatusCode, Vec<u8>) {
        let response = self.http.get(self.url(file)).send().await.expect("GET");
        let status = response.status();
        (status, response.bytes().await.expect("body").to_vec())
    }

    /// The current bytes of every role, to show that a refused update changed nothing.
    pub async fn snapshot_of_state(&self, roles: &[&str]) -> BTreeMap<String, Vec<u8>> {
        let mut state = BTreeMap::new();
        for role in roles {
            let (status, body) = self
                .get(&format!("{}.json", role.replace('/', "%2F")))
                .await;
            state.insert(
                (*role).to_owned(),
                if status.is_success() {
                    body
                } else {
                    Vec::new()
                },
            );
        }
        state
    }
}

/// A target file for `content`.
pub fn target(content: &[u8]) -> TargetFile {
    crate::repo::target_for(content)
}
