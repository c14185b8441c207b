//! The one error type of this crate.
//!
//! Messages are lower case and name the key by role and short key ID. No variant holds a
//! passphrase or key material, so errors are safe to print and to log.

use std::io;
use std::path::{Path, PathBuf};

use notar_tuf::KeyId;

use crate::KeyRole;
use crate::keyfile::FORMAT_VERSION;

/// Everything that can go wrong while making, storing, finding or unlocking a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The passphrase does not match the key file (its passphrase check failed).
    #[error("wrong passphrase for {role} key {}", .key_id.short())]
    WrongPassphrase { role: KeyRole, key_id: KeyId },

    /// The passphrase is right, but the header or the encrypted key was changed after the
    /// file was written: damage on disk, or tampering.
    #[error(
        "key file{} for {role} key {} does not authenticate: its header or encrypted key was altered or damaged",
        at(.path),
        .key_id.short()
    )]
    Tampered {
        path: Option<PathBuf>,
        role: KeyRole,
        key_id: KeyId,
    },

    /// The file decrypted, but holds a different key than its header (or its file name) says.
    #[error(
        "key file{} should hold key {} but holds key {}",
        at(.path),
        .expected.short(),
        .actual.short()
    )]
    KeyIdMismatch {
        path: Option<PathBuf>,
        expected: KeyId,
        actual: KeyId,
    },

    /// The file is not a well-formed key file.
    #[error("key file{} is corrupt: {reason}", at(.path))]
    Corrupt {
        path: Option<PathBuf>,
        reason: String,
    },

    /// The file is a Notar key file of a format version this build does not know.
    #[error(
        "key file{} has format version {version}, but this build of notar reads only version {}",
        at(.path),
        FORMAT_VERSION
    )]
    UnsupportedVersion { path: Option<PathBuf>, version: u64 },

    /// The file names an algorithm, KDF or cipher this build does not implement.
    #[error("key file{} uses {what}, which this build of notar does not support", at(.path))]
    Unsupported { path: Option<PathBuf>, what: String },

    /// The file asks for key derivation so expensive that running it would be a denial of
    /// service; it is refused before any work is done.
    #[error("key file{} asks for unsafe key derivation parameters: {reason}", at(.path))]
    UnsafeKdfParams {
        path: Option<PathBuf>,
        reason: String,
    },

    /// [`crate::KdfParams::new`] was given parameters outside the accepted range.
    #[error("invalid key derivation parameters: {reason}")]
    InvalidKdfParams { reason: String },

    /// The passphrase does not open a key file of Notary's or Docker's trust directory.
    #[error("wrong passphrase for the Notary/Docker {role} key")]
    ForeignWrongPassphrase { role: String },

    /// A key to import that cannot be read (its format, algorithm or structure).
    #[error("importing a key: {reason}")]
    Import { reason: String },

    /// A backup archive that cannot be restored; `entry` names the damaged key, if one is.
    #[error("backup archive{}: {reason}", .entry.as_ref().map(|e| format!(", entry {e}")).unwrap_or_default())]
    Backup {
        entry: Option<String>,
        reason: String,
    },

    /// A string that is not one of the five key roles.
    #[error("unknown key role {0:?}: expected root, targets, snapshot, timestamp or delegation")]
    UnknownRole(String),

    /// The key store has no file for this key ID.
    #[error("no private key {} in {}", .key_id.short(), .dir.display())]
    KeyNotFound { key_id: KeyId, dir: PathBuf },

    /// No environment variable holds the passphrase and there is no terminal to ask on.
    #[error(
        "no passphrase for {role} key {}: set {env_var} (stdin is not a terminal, so notar cannot ask)",
        .key_id.short()
    )]
    PassphraseUnavailable {
        role: KeyRole,
        key_id: KeyId,
        env_var: &'static str,
    },

    /// The two passphrases typed for a new key differ.
    #[error("the passphrases entered for new {role} key {} do not match", .key_id.short())]
    PassphraseMismatch { role: KeyRole, key_id: KeyId },

    /// An empty passphrase was given; keys are never encrypted under one.
    /// A passphrase typed for a new key is shorter than the minimum, at every try.
    #[error("the passphrase for new {role} key {} is shorter than {min} characters", .key_id.short())]
    PassphraseTooShort {
        role: KeyRole,
        key_id: KeyId,
        min: usize,
    },

    #[error("empty passphrase for {role} key {}", .key_id.short())]
    EmptyPassphrase { role: KeyRole, key_id: KeyId },

    /// Reading from the terminal failed.
    #[error("reading the passphrase for {role} key {} from the terminal", .key_id.short())]
    Prompt {
        role: KeyRole,
        key_id: KeyId,
        #[source]
        source: io::Error,
    },

    /// A file system operation on the key store failed.
    #[error("{action} {}", .path.display())]
    Io {
        /// What was being done, e.g. "writing key file".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// argon2id refused to run; the parameters are validated first, so this is not expected.
    #[error("deriving the key file key with argon2id: {reason}")]
    Kdf { reason: String },

    /// Sealing the key with XChaCha20-Poly1305 failed; not expected for a 32-byte seed.
    #[error("encrypting the key with xchacha20-poly1305 failed")]
    Encrypt,

    /// A sealed secret (see [`crate::sealed`]) that the secret does not open: the wrong
    /// secret, or a sealed blob that was altered.
    #[error("the sealed {purpose} does not open: {reason}")]
    Sealed { purpose: String, reason: String },

    /// The operating system could not provide random bytes.
    #[error("the system random number generator failed")]
    Random(#[source] rand_core::Error),

    /// The blocking task that ran the key derivation panicked or was cancelled.
    #[error("the background key derivation task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Crate result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Names the file an error from the byte-level format functions is about.
    pub(crate) fn in_file(self, file: &Path) -> Self {
        let file = Some(file.to_path_buf());
        match self {
            Error::Tampered { role, key_id, .. } => Error::Tampered {
                path: file,
                role,
                key_id,
            },
            Error::KeyIdMismatch {
                expected, actual, ..
            } => Error::KeyIdMismatch {
                path: file,
                expected,
                actual,
            },
            Error::Corrupt { reason, .. } => Error::Corrupt { path: file, reason },
            Error::UnsupportedVersion { version, .. } => Error::UnsupportedVersion {
                path: file,
                version,
            },
            Error::Unsupported { what, .. } => Error::Unsupported { path: file, what },
            Error::UnsafeKdfParams { reason, .. } => Error::UnsafeKdfParams { path: file, reason },
            other => other,
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// `" <path>"` when the file is known, so messages read "key file /x/y.key is …" or
/// "key file is …".
fn at(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}
