//! Server settings: command-line flags, then environment variables, then an optional TOML
//! file, then defaults — the first that says something wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

const AFTER_HELP: &str = "\
Settings come from the flags, then their NOTAR_* variables, then --config, then the defaults.

More environment:
  NOTAR_SERVER_SECRET  the secret the server-held keys are sealed under [default: the file
                       server.secret in the data directory, made on first start, 0600]
  NOTAR_LOG            what to log, as a tracing filter: error, warn, info, debug, trace, or
                       per module (notar_server=debug) [default: info]";

/// notar-server: a TUF trust server for container images (Notary URL scheme).
///
/// With no arguments it keeps its data in ./notar-data (SQLite) and listens on
/// 127.0.0.1:4443.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on. Anything but loopback needs TLS (--tls-cert, --tls-key), or
    /// --insecure-http. [default: 127.0.0.1:4443]
    #[arg(long, hide_env_values = true, env = "NOTAR_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// TLS certificate chain, PEM, leaf first. Read again on SIGHUP.
    #[arg(
        long,
        hide_env_values = true,
        env = "NOTAR_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key, PEM (PKCS#8, PKCS#1 or SEC1). Read again on SIGHUP.
    #[arg(
        long,
        hide_env_values = true,
        env = "NOTAR_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy only).
    #[arg(long, hide_env_values = true, env = "NOTAR_INSECURE_HTTP")]
    pub insecure_http: bool,

    /// Connections open at once; more wait until one closes (keep it below `ulimit -n`).
    /// [default: 4096]
    #[arg(long, hide_env_values = true, env = "NOTAR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Seconds a client has for the TLS handshake and each request's headers, and the
    /// longest idle pause on a keep-alive connection. [default: 10]
    #[arg(long, hide_env_values = true, env = "NOTAR_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,

    /// Uploads validated and written at once; more wait their turn. [default: 16]
    #[arg(long, hide_env_values = true, env = "NOTAR_MAX_UPLOADS")]
    pub max_uploads: Option<usize>,

    /// Directory for the SQLite database and the server secret file (created if missing).
    /// [default: ./notar-data]
    #[arg(long, hide_env_values = true, env = "NOTAR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB. Default: SQLite in the
    /// data directory.
    #[arg(long, hide_env_values = true, env = "NOTAR_DATABASE")]
    pub database: Option<String>,

    /// A TOML file with any of these settings (keys as the long flags, with underscores).
    #[arg(long, hide_env_values = true, env = "NOTAR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log format: text for people, json for log collectors. [default: text]
    #[arg(long, hide_env_values = true, env = "NOTAR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Largest accepted update request, in bytes (larger: 413). [default: 16777216]
    #[arg(long, hide_env_values = true, env = "NOTAR_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,

    /// Largest accepted metadata file inside an update, in bytes (larger: 413).
    /// [default: 8388608]
    #[arg(long, hide_env_values = true, env = "NOTAR_MAX_FILE_BYTES")]
    pub max_file_bytes: Option<usize>,

    /// Lifetime of timestamps the server signs, in seconds. [default: 86400, one day]
    #[arg(long, hide_env_values = true, env = "NOTAR_TIMESTAMP_LIFETIME")]
    pub timestamp_lifetime: Option<u64>,

    /// Lifetime of snapshots the server signs, in seconds. [default: 604800, seven days]
    #[arg(long, hide_env_values = true, env = "NOTAR_SNAPSHOT_LIFETIME")]
    pub snapshot_lifetime: Option<u64>,

    /// How long a co-signing proposal waits for its signatures, in seconds (less if its
    /// metadata expires sooner). [default: 604800, seven days]
    #[arg(long, hide_env_values = true, env = "NOTAR_PROPOSAL_LIFETIME")]
    pub proposal_lifetime: Option<u64>,

    /// How often the background task looks for timestamps and snapshots to re-sign, in
    /// seconds. [default: 60]
    #[arg(long, hide_env_values = true, env = "NOTAR_REFRESH_INTERVAL")]
    pub refresh_interval: Option<u64>,

    /// How far behind the database the current metadata served from memory may be, in
    /// milliseconds: every half of it the server reads the change log for writes made
    /// through other servers sharing the database, and drops what they touched (0: no
    /// memory cache of current metadata). [default: 2000]
    #[arg(long, hide_env_values = true, env = "NOTAR_CACHE_TTL_MS")]
    pub cache_ttl_ms: Option<u64>,

    /// Bytes of metadata kept in memory at most (identity, gzip and zstd); the least recently
    /// used go first. [default: 268435456, 256 MiB]
    #[arg(long, hide_env_values = true, env = "NOTAR_CACHE_BYTES")]
    pub cache_bytes: Option<usize>,

    /// Serve /metrics on this address only (default: on the main listener).
    #[arg(long, hide_env_values = true, env = "NOTAR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Do not serve the web view (/ui/: who signed what, what expires when; read-only,
    /// under the same token scopes as the API).
    #[arg(long, hide_env_values = true, env = "NOTAR_NO_UI")]
    pub no_ui: bool,

    /// Authentication: `token` (Docker distribution bearer tokens, with Notary's scopes)
    /// or `none`. Default: `token` with --issuer, otherwise `none`, which only loopback
    /// allows unless asked for by name.
    #[arg(long, hide_env_values = true, env = "NOTAR_AUTH_TYPE", value_enum)]
    pub auth_type: Option<AuthType>,

    /// The token service clients are sent to (default with --issuer: this server's
    /// /auth/token).
    #[arg(long, hide_env_values = true, env = "NOTAR_AUTH_REALM")]
    pub auth_realm: Option<String>,

    /// The service name tokens must be issued for (`aud`). Default: notar.
    #[arg(long, hide_env_values = true, env = "NOTAR_AUTH_SERVICE")]
    pub auth_service: Option<String>,

    /// The issuer tokens must name (`iss`). Default: notar.
    #[arg(long, hide_env_values = true, env = "NOTAR_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,

    /// PEM bundle of the certificates whose keys may sign tokens (the built-in issuer's
    /// is trusted without it).
    #[arg(long, hide_env_values = true, env = "NOTAR_AUTH_ROOT_CERTS")]
    pub auth_root_certs: Option<PathBuf>,

    /// Serve the built-in token issuer at /auth/token (accounts and policy files in the
    /// data directory unless given).
    #[arg(long, hide_env_values = true, env = "NOTAR_ISSUER")]
    pub issuer: bool,

    /// The issuer's accounts file (`notar-server user add` writes it).
    #[arg(long, hide_env_values = true, env = "NOTAR_ISSUER_ACCOUNTS")]
    pub issuer_accounts: Option<PathBuf>,

    /// The issuer's access policy file.
    #[arg(long, hide_env_values = true, env = "NOTAR_ISSUER_POLICY")]
    pub issuer_policy: Option<PathBuf>,

    /// More services the issuer signs tokens for, such as a registry's (repeat, or
    /// separate with commas).
    #[arg(
        long = "issuer-service",
        hide_env_values = true,
        env = "NOTAR_ISSUER_SERVICES",
        value_delimiter = ','
    )]
    pub issuer_services: Vec<String>,

    /// Lifetime of the tokens the issuer signs, in seconds. [default: 300]
    #[arg(long, hide_env_values = true, env = "NOTAR_TOKEN_LIFETIME")]
    pub token_lifetime: Option<u64>,
}

/// What to do instead of serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Manage the built-in token issuer's accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Check the audit trail's hash chain; names the first record edited, removed or
    /// reordered (exit 1)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Ask the running server's /readyz (on --metrics-listen when set, else on --listen
    /// without TLS): exit 0 when it is ready, 1 otherwise. For images without a shell
    Healthcheck,
    /// Write a consistent copy of the SQLite database while the server runs (PostgreSQL:
    /// use pg_dump). The server secret is not in it: keep that too
    Backup {
        /// The file to write (must not exist)
        file: PathBuf,
    },
    /// Put a backup in place of the SQLite database; stop the server first. The secret it
    /// was made under must come back too
    Restore {
        /// A file written by `notar-server backup`
        file: PathBuf,
    },
    /// Verify every repository's trust data as a client would, and list the roles that
    /// expire soon (exit 1 when a repository does not verify)
    Check {
        /// List roles expiring within this many days
        #[arg(long, default_value_t = 30)]
        within_days: u32,
    },
    /// Remove old metadata versions: all but the newest N of each role (roots are all
    /// kept, and so is everything a client can still be sent)
    Prune {
        /// Versions of each role to keep (at least 1)
        #[arg(long)]
        keep: u64,
    },
    /// Import a Notary server: every repository in its database (`tuf_files`, `changefeed`),
    /// every version byte for byte, and given notary-signer's database the server-held keys
    /// too (passphrases in NOTARY_SIGNER_<ALIAS>), all checked before anything is written
    Import {
        /// The Notary server's database: postgres://USER@HOST:PORT/DB or mysql://USER:PASS@HOST:PORT/DB
        #[arg(long)]
        from: String,
        /// notary-signer's database, for the timestamp and snapshot keys it holds
        #[arg(long)]
        signer_from: Option<String>,
    },
    /// Print the token issuer's certificate (PEM), for the root certificate bundles of
    /// registries and other trust servers; makes the issuer key if there is none yet.
    IssuerCert,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, notar-server(1), as roff
    Man,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the whole chain
    Verify,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add an account, or set the password and groups of one.
    Add {
        name: String,
        /// A group the user belongs to (repeat for several).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Read the password from the first line of stdin instead of asking twice.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove an account.
    Remove { name: String },
    /// List the accounts and their groups.
    List,
}

/// How requests are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    None,
    Token,
}

/// `[auth]` in the TOML file, named as Notary's `auth.options` are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(rename = "type")]
    kind: Option<AuthType>,
    realm: Option<String>,
    service: Option<String>,
    issuer: Option<String>,
    rootcertbundle: Option<PathBuf>,
}

/// `[issuer]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerFile {
    enabled: Option<bool>,
    accounts: Option<PathBuf>,
    policy: Option<PathBuf>,
    services: Option<Vec<String>>,
    token_lifetime: Option<u64>,
}

/// Token authentication, when it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    pub token: crate::auth::TokenSettings,
    /// Certificates whose keys may sign tokens, beside the built-in issuer's.
    pub root_certs: Option<PathBuf>,
    /// The built-in issuer, when it serves.
    pub issuer: Option<crate::issuer::IssuerSettings>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The TOML file: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure_http: Option<bool>,
    max_connections: Option<usize>,
    header_timeout: Option<u64>,
    max_uploads: Option<usize>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    log_format: Option<LogFormat>,
    max_request_bytes: Option<usize>,
    max_file_bytes: Option<usize>,
    timestamp_lifetime: Option<u64>,
    snapshot_lifetime: Option<u64>,
    proposal_lifetime: Option<u64>,
    refresh_interval: Option<u64>,
    cache_ttl_ms: Option<u64>,
    cache_bytes: Option<usize>,
    metrics_listen: Option<SocketAddr>,
    ui: Option<bool>,
    auth: Option<AuthFile>,
    issuer: Option<IssuerFile>,
}

/// Settings after merging every source.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Certificate chain and key files, when serving TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain HTTP allowed on a non-loopback address.
    pub insecure_http: bool,
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// Uploads validated and written at once; more wait their turn.
    pub max_uploads: usize,
    pub data_dir: PathBuf,
    pub database: String,
    pub log_format: LogFormat,
    pub limits: Limits,
    pub lifetimes: Lifetimes,
    pub refresh_interval: Duration,
    pub cache_ttl: Duration,
    /// The metadata cache's byte budget.
    pub cache_bytes: usize,
    /// Token authentication; `None`: every request is allowed.
    pub auth: Option<AuthConfig>,
    /// `none` was asked for by name (which allows a non-loopback address).
    pub auth_none_chosen: bool,
    /// The issuer's accounts file, whether or not the issuer serves (`user` commands).
    pub accounts_file: PathBuf,
    /// A listener of its own for /metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the web view under /ui/.
    pub ui: bool,
}

/// Size limits on uploads.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_file_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 16 * 1024 * 1024,
            max_file_bytes: 8 * 1024 * 1024,
        }
    }
}

/// How long what the server signs stays valid.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub timestamp: time::Duration,
    pub snapshot: time::Duration,
    /// How long a co-signing proposal is kept.
    pub proposal: time::Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            timestamp: time::Duration::days(1),
            snapshot: time::Duration::days(7),
            proposal: time::Duration::days(7),
        }
    }
}

impl Lifetimes {
    /// Re-sign when less than a quarter of the lifetime is left.
    pub fn margin(lifetime: time::Duration) -> time::Duration {
        lifetime / 4
    }
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Settings for tests and embedding: SQLite in `data_dir`, defaults for the rest.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            insecure_http: false,
            max_connections: crate::serve::DEFAULT_MAX_CONNECTIONS,
            header_timeout: crate::serve::DEFAULT_HEADER_TIMEOUT,
            max_uploads: 16,
            data_dir: data_dir.to_path_buf(),
            database: sqlite_url(data_dir),
            log_format: LogFormat::Text,
            limits: Limits::default(),
            lifetimes: Lifetimes::default(),
            refresh_interval: Duration::from_secs(60),
            cache_ttl: Duration::from_secs(2),
            cache_bytes: DEFAULT_CACHE_BYTES,
            auth: None,
            auth_none_chosen: false,
            accounts_file: data_dir.join("accounts.toml"),
            metrics_listen: None,
            ui: true,
        }
    }

    /// The built-in issuer's settings for `data_dir`: accounts and policy files there,
    /// tokens for `service`, five minutes long.
    pub fn default_issuer(data_dir: &Path, service: &str) -> crate::issuer::IssuerSettings {
        crate::issuer::IssuerSettings {
            issuer: DEFAULT_TOKEN_NAME.to_owned(),
            services: vec![service.to_owned()],
            accounts: data_dir.join("accounts.toml"),
            policy: data_dir.join("policy.toml"),
            lifetime: Duration::from_secs(300),
        }
    }

    /// Merges flags and environment (`args`) over the TOML file over defaults.
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("notar-data"));
        let defaults = Config::for_data_dir(&data_dir);
        let limits = Limits {
            max_request_bytes: args
                .max_request_bytes
                .or(file.max_request_bytes)
                .unwrap_or(defaults.limits.max_request_bytes),
            max_file_bytes: args
                .max_file_bytes
                .or(file.max_file_bytes)
                .unwrap_or(defaults.limits.max_file_bytes),
        };
        let seconds =
            |v: Option<u64>, default: time::Duration| -> Result<time::Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(0) => Err(ConfigError::Invalid(
                        "lifetimes must be at least one second".into(),
                    )),
                    Some(s) => i64::try_from(s)
                        .map(time::Duration::seconds)
                        .map_err(|_| ConfigError::Invalid(format!("lifetime {s} is too long"))),
                }
            };
        let lifetimes = Lifetimes {
            timestamp: seconds(
                args.timestamp_lifetime.or(file.timestamp_lifetime),
                defaults.lifetimes.timestamp,
            )?,
            snapshot: seconds(
                args.snapshot_lifetime.or(file.snapshot_lifetime),
                defaults.lifetimes.snapshot,
            )?,
            proposal: seconds(
                args.proposal_lifetime.or(file.proposal_lifetime),
                defaults.lifetimes.proposal,
            )?,
        };
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "TLS needs both tls_cert and tls_key".into(),
                ));
            }
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4443)));
        let auth_file = file.auth.unwrap_or_default();
        let issuer_file = file.issuer.unwrap_or_default();
        let issuer_on = args.issuer || issuer_file.enabled.unwrap_or(false);
        let accounts_file = args
            .issuer_accounts
            .clone()
            .or_else(|| issuer_file.accounts.clone())
            .unwrap_or_else(|| data_dir.join("accounts.toml"));
        let auth_type = args.auth_type.or(auth_file.kind);
        let auth_none_chosen = auth_type == Some(AuthType::None);
        if issuer_on && auth_none_chosen {
            return Err(ConfigError::Invalid(
                "the built-in issuer needs auth type token".into(),
            ));
        }
        let auth = if auth_type == Some(AuthType::Token) || issuer_on {
            let service = args
                .auth_service
                .or(auth_file.service)
                .unwrap_or_else(|| DEFAULT_TOKEN_NAME.to_owned());
            let issuer_name = args
                .auth_issuer
                .or(auth_file.issuer)
                .unwrap_or_else(|| DEFAULT_TOKEN_NAME.to_owned());
            let root_certs = args.auth_root_certs.or(auth_file.rootcertbundle);
            let issuer = issuer_on.then(|| {
                let defaults = Config::default_issuer(&data_dir, &service);
                let mut services = defaults.services;
                for extra in args
                    .issuer_services
                    .into_iter()
                    .chain(issuer_file.services.unwrap_or_default())
                {
                    if !extra.is_empty() && !services.contains(&extra) {
                        services.push(extra);
                    }
                }
                crate::issuer::IssuerSettings {
                    issuer: issuer_name.clone(),
                    services,
                    accounts: accounts_file.clone(),
                    policy: args
                        .issuer_policy
                        .or(issuer_file.policy)
                        .unwrap_or(defaults.policy),
                    lifetime: args
                        .token_lifetime
                        .or(issuer_file.token_lifetime)
                        .map_or(defaults.lifetime, |s| {
                            Duration::from_secs(s.clamp(10, 86_400))
                        }),
                }
            });
            let realm = match args.auth_realm.or(auth_file.realm) {
                Some(realm) => realm,
                None if issuer_on && !listen.ip().is_unspecified() => format!(
                    "{}://{listen}/auth/token",
                    if tls.is_some() { "https" } else { "http" }
                ),
                None => {
                    return Err(ConfigError::Invalid(
                        "token auth needs a realm (--auth-realm): the URL clients get tokens from"
                            .into(),
                    ));
                }
            };
            if issuer.is_none() && root_certs.is_none() {
                return Err(ConfigError::Invalid(
                    "token auth needs the certificates of the token signers (--auth-root-certs), \
                     or the built-in issuer (--issuer)"
                        .into(),
                ));
            }
            Some(AuthConfig {
                token: crate::auth::TokenSettings {
                    realm,
                    service,
                    issuer: issuer_name,
                },
                root_certs,
                issuer,
            })
        } else {
            None
        };
        Ok(Config {
            listen,
            tls,
            insecure_http: args.insecure_http || file.insecure_http.unwrap_or(false),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections)
                .max(1),
            header_timeout: args
                .header_timeout
                .or(file.header_timeout)
                .map(|s| Duration::from_secs(s.max(1)))
                .unwrap_or(defaults.header_timeout),
            max_uploads: args
                .max_uploads
                .or(file.max_uploads)
                .unwrap_or(defaults.max_uploads)
                .max(1),
            database: args.database.or(file.database).unwrap_or(defaults.database),
            data_dir,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            limits,
            lifetimes,
            refresh_interval: Duration::from_secs(
                args.refresh_interval
                    .or(file.refresh_interval)
                    .unwrap_or(60)
                    .max(1),
            ),
            cache_ttl: Duration::from_millis(
                args.cache_ttl_ms.or(file.cache_ttl_ms).unwrap_or(2000),
            ),
            cache_bytes: args
                .cache_bytes
                .or(file.cache_bytes)
                .unwrap_or(DEFAULT_CACHE_BYTES),
            auth,
            auth_none_chosen,
            accounts_file,
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            ui: !args.no_ui && file.ui.unwrap_or(true),
        })
    }
}

/// The default service and issuer name of token auth.
pub const DEFAULT_TOKEN_NAME: &str = "notar";

/// The metadata cache's default byte budget: 256 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// The file of a `sqlite://PATH[?options]` URL; `None` for other databases.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The SQLite URL of the database file `path`.
pub fn sqlite_url_of(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The SQLite URL of the default database in `data_dir`.
pub fn sqlite_url(data_dir: &Path) -> String {
    sqlite_url_of(&data_dir.join("notar.db"))
}
