//! notar-server: TUF repositories per GUN over HTTP, on the Notary v1 URL scheme.
//!
//! - [`path`] parses every `/v2/…` path; [`api`] answers it; [`error`] maps failures to
//!   status, code and the JSON error envelope in one place.
//! - [`validate`] holds the pure rules for accepting an upload; [`update`] applies an
//!   accepted one (signing the next snapshot and timestamp) and re-signs before expiry.
//! - [`managed_keys`] makes and keeps the per-GUN timestamp and snapshot keys, encrypted
//!   under the server secret; [`store`] is the database (SQLite or PostgreSQL); [`cache`]
//!   serves current metadata from memory.
//! - [`serve`] serves a bound listener (plain or TLS, with connection limits and timeouts)
//!   until `shutdown` resolves, with the freshness task beside it; the `notar-server`
//!   binary only parses settings and calls it.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod check;
pub mod config;
pub mod error;
pub mod import;
pub mod issuer;
pub mod jwe;
pub mod managed_keys;
pub mod metrics;
pub mod path;
pub mod proposals;
pub mod serve;
pub mod store;
pub mod ui;
pub mod update;
pub mod validate;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use notar_keys::KdfParams;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

pub use config::Config;

use crate::cache::MetaCache;
use crate::managed_keys::ManagedKeys;
use crate::store::Store;

/// What every request handler shares; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub keys: ManagedKeys,
    pub cache: MetaCache,
    pub config: Config,
    /// Bounds the uploads validated and written at once.
    pub uploads: tokio::sync::Semaphore,
    /// Verifies bearer tokens; `None` when authentication is off.
    pub auth: Option<auth::TokenVerifier>,
    /// The built-in token issuer, when it serves.
    pub issuer: Option<issuer::Issuer>,
    pub metrics: metrics::Metrics,
    /// The web view's remembered tag datings.
    pub ui_memo: ui::Memo,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the database: {0}")]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Secret(#[from] managed_keys::SecretError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Issuer(#[from] issuer::IssuerError),
    #[error("server secret file {path}: {source}")]
    SecretFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AppState {
    /// Opens the store named in `config`, checks that `secret` unlocks the keys already in
    /// it, and builds the state. `kdf` is the argon2id cost of new managed key files.
    pub async fn open(
        config: Config,
        secret: Zeroizing<String>,
        kdf: KdfParams,
    ) -> Result<Self, StartError> {
        let store: Arc<dyn Store> =
            Arc::new(store::sql::SqlStore::connect(&config.database).await?);
        let secret = Arc::new(secret);
        let keys = ManagedKeys::open(Arc::clone(&store), Arc::clone(&secret), kdf).await?;
        let (auth, issuer) = match &config.auth {
            None => (None, None),
            Some(settings) => {
                let mut bundle = match &settings.root_certs {
                    Some(path) => auth::read_bundle(path)?,
                    None => Vec::new(),
                };
                let issuer = match &settings.issuer {
                    Some(issuer_settings) => {
                        let issuer =
                            issuer::Issuer::open(&*store, secret, kdf, issuer_settings.clone())
                                .await?;
                        bundle.push(issuer.certificate_der());
                        Some(issuer)
                    }
                    None => None,
                };
                let verifier = auth::TokenVerifier::new(settings.token.clone(), bundle)?;
                (Some(verifier), issuer)
            }
        };
        Ok(AppState(Arc::new(Inner {
            store,
            keys,
            cache: MetaCache::new(config.cache_ttl, config.cache_bytes),
            uploads: tokio::sync::Semaphore::new(config.max_uploads),
            config,
            auth,
            issuer,
            metrics: metrics::Metrics::default(),
            ui_memo: ui::Memo::default(),
        })))
    }
}

/// Makes the data directory private (0700) and the SQLite database files in it, and the
/// secret file, 0600, whatever the umask: the database holds the encrypted server keys.
/// A missing database file is created 0600 before SQLite opens it.
pub fn secure_data_dir(config: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let private = |path: &Path, mode: u32| -> std::io::Result<()> {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    std::fs::create_dir_all(&config.data_dir)?;
    private(&config.data_dir, 0o700)?;
    private(&config.data_dir.join("server.secret"), 0o600)?;
    if let Some(db) = config::sqlite_path(&config.database) {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&db)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            private(Path::new(&name), 0o600)?;
        }
    }
    Ok(())
}

/// The server secret: `NOTAR_SERVER_SECRET` when set (passed in as `from_env`), otherwise
/// the file `server.secret` in the data directory, made (0600, 32 random bytes as hex) on
/// first start.
pub fn load_secret(
    data_dir: &Path,
    from_env: Option<String>,
) -> Result<Zeroizing<String>, StartError> {
    if let Some(secret) = from_env.filter(|s| !s.is_empty()) {
        return Ok(Zeroizing::new(secret));
    }
    let path = data_dir.join("server.secret");
    let fail = |source| StartError::SecretFile {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Zeroizing::new(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand_core::RngCore;
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut raw = Zeroizing::new([0u8; 32]);
            rand_core::OsRng.fill_bytes(raw.as_mut());
            let secret = Zeroizing::new(hex::encode(raw.as_ref()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(fail)?;
            file.write_all(secret.as_bytes()).map_err(fail)?;
            file.sync_all().map_err(fail)?;
            tracing::info!(path = %path.display(), "made a new server secret");
            Ok(secret)
        }
        Err(e) => Err(fail(e)),
    }
}

/// Serves `listener` over plain HTTP, with the default connection limits, until
/// `shutdown` resolves; see [`serve::run`] for TLS and other limits.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve::run(listener, state, shutdown, serve::ServeOptions::plain()).await
}
