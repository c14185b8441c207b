//! Server settings: command-line flags, then environment variables, then an optional TOML
//! file, then defaults — the first that says something wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

/// notar-server: a TUF trust server for container images (Notary URL scheme).
///
/// With no arguments it keeps its data in ./notar-data (SQLite) and listens on
/// 127.0.0.1:4443.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Address to listen on. Anything but loopback needs TLS (--tls-cert, --tls-key), or
    /// --insecure-http.
    #[arg(long, env = "NOTAR_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// TLS certificate chain, PEM, leaf first. Read again on SIGHUP.
    #[arg(long, env = "NOTAR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key, PEM (PKCS#8, PKCS#1 or SEC1). Read again on SIGHUP.
    #[arg(long, env = "NOTAR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy only).
    #[arg(long, env = "NOTAR_INSECURE_HTTP")]
    pub insecure_http: bool,

    /// Connections open at once; more wait until one closes (keep it below `ulimit -n`).
    #[arg(long, env = "NOTAR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Seconds a client has for the TLS handshake and each request's headers, and the
    /// longest idle pause on a keep-alive connection.
    #[arg(long, env = "NOTAR_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,

    /// Uploads validated and written at once; more wait their turn.
    #[arg(long, env = "NOTAR_MAX_UPLOADS")]
    pub max_uploads: Option<usize>,

    /// Directory for the SQLite database and the server secret file (created if missing).
    #[arg(long, env = "NOTAR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB. Default: SQLite in the
    /// data directory.
    #[arg(long, env = "NOTAR_DATABASE")]
    pub database: Option<String>,

    /// A TOML file with any of these settings (keys as the long flags, with underscores).
    #[arg(long, env = "NOTAR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log format: text for people, json for log collectors.
    #[arg(long, env = "NOTAR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Largest accepted update request, in bytes (larger: 413).
    #[arg(long, env = "NOTAR_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,

    /// Largest accepted metadata file inside an update, in bytes (larger: 413).
    #[arg(long, env = "NOTAR_MAX_FILE_BYTES")]
    pub max_file_bytes: Option<usize>,

    /// Lifetime of timestamps the server signs, in seconds (default one day).
    #[arg(long, env = "NOTAR_TIMESTAMP_LIFETIME")]
    pub timestamp_lifetime: Option<u64>,

    /// Lifetime of snapshots the server signs, in seconds (default seven days).
    #[arg(long, env = "NOTAR_SNAPSHOT_LIFETIME")]
    pub snapshot_lifetime: Option<u64>,

    /// How often the background task looks for timestamps and snapshots to re-sign, in
    /// seconds.
    #[arg(long, env = "NOTAR_REFRESH_INTERVAL")]
    pub refresh_interval: Option<u64>,

    /// How long current metadata is served from memory before the database is asked
    /// again, in milliseconds (matters when several servers share one PostgreSQL).
    #[arg(long, env = "NOTAR_CACHE_TTL_MS")]
    pub cache_ttl_ms: Option<u64>,
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
    refresh_interval: Option<u64>,
    cache_ttl_ms: Option<u64>,
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
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            timestamp: time::Duration::days(1),
            snapshot: time::Duration::days(7),
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
        Ok(Config {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4443))),
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
        })
    }
}

/// The file of a `sqlite://PATH[?options]` URL; `None` for other databases.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The SQLite URL of the default database in `data_dir`.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("notar.db").display())
}
