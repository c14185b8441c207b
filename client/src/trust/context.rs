//! What every command needs: where the server and the trust directory are, and when the
//! command started.

use std::path::PathBuf;

use notar_keys::KdfParams;
use time::OffsetDateTime;

use crate::Error;
use crate::trust::keyring::{Keyring, Unlocked};
use crate::trust::server::Server;

/// Test-only: `NOTAR_KDF=test` encrypts new keys with `KdfParams::for_tests()` (8 MiB, one
/// pass), so end-to-end tests do not spend seconds in argon2id. Never set it otherwise.
pub const KDF_ENV: &str = "NOTAR_KDF";

/// The server when neither a flag nor an environment variable names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:4443";

#[derive(Debug)]
pub struct Context {
    pub server: Server,
    pub trust_dir: PathBuf,
    /// `--json`: results as JSON.
    pub json: bool,
    /// The cost of key derivation for new key files.
    pub kdf: KdfParams,
    /// The time the command started; every expiry is judged against it.
    pub now: OffsetDateTime,
    /// `--ca-cert` or `NOTAR_CA_CERT`, for servers other than the trust server (login).
    pub ca_cert: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// The keys this command has unlocked (each at most once).
    pub unlocked: Unlocked,
}

/// What the command line says; the environment fills in the rest.
#[derive(Debug, Default)]
pub struct Flags {
    pub server: Option<String>,
    pub trust_dir: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    pub json: bool,
}

impl Context {
    /// Resolves flags and environment: `--server`, then `NOTAR_SERVER`, then
    /// `DOCKER_CONTENT_TRUST_SERVER`, then the default; `--trust-dir`, then
    /// `NOTAR_TRUST_DIR`, then `~/.notar`.
    pub fn new(flags: Flags) -> Result<Self, Error> {
        let server = flags
            .server
            .or_else(|| env_nonempty("NOTAR_SERVER"))
            .or_else(|| env_nonempty("DOCKER_CONTENT_TRUST_SERVER"))
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let trust_dir = match flags.trust_dir {
            Some(dir) => dir,
            None => match env_nonempty("NOTAR_TRUST_DIR") {
                Some(dir) => PathBuf::from(dir),
                None => default_trust_dir()?,
            },
        };
        let kdf = match env_nonempty(KDF_ENV).as_deref() {
            None | Some("default") => KdfParams::default(),
            Some("test") => KdfParams::for_tests(),
            Some(other) => {
                return Err(Error::Usage(format!(
                    "{KDF_ENV}={other:?}: expected \"test\" (test suites only) or \"default\""
                )));
            }
        };
        let ca_cert = flags
            .ca_cert
            .or_else(|| env_nonempty("NOTAR_CA_CERT").map(PathBuf::from));
        let home = env_nonempty("HOME").map(PathBuf::from);
        Ok(Context {
            server: Server::with_ca(&server, ca_cert.as_deref(), home.as_deref())?,
            trust_dir,
            json: flags.json,
            kdf,
            now: OffsetDateTime::now_utc(),
            ca_cert,
            home,
            unlocked: Unlocked::default(),
        })
    }

    /// The trust directory's keys, sharing what this command has unlocked.
    pub fn keyring(&self) -> Result<Keyring, Error> {
        Keyring::open(&self.trust_dir, self.kdf, self.unlocked.clone())
    }
}

pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn default_trust_dir() -> Result<PathBuf, Error> {
    env_nonempty("HOME")
        .map(|home| PathBuf::from(home).join(".notar"))
        .ok_or_else(|| {
            Error::Usage(
                "HOME is not set: give the trust directory with --trust-dir or NOTAR_TRUST_DIR"
                    .into(),
            )
        })
}
