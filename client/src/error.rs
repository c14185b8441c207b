//! The one error type of the client, and how it becomes an exit code and stderr lines.
//!
//! Exit codes (documented in `notar --help` and the README): 0 success; 1 trust was not
//! established (metadata that does not verify, no trust data, an unsigned tag, a root that
//! is not signed by the pinned key); 2 anything else (usage, keys, passphrases, an
//! unreachable trust server or registry, files).

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use notar_tuf::client::{FetchError, UpdateError};
use notar_tuf::{Gun, KeyId};

/// Exit code: trust was not established.
pub const EXIT_UNTRUSTED: u8 = 1;
/// Exit code: any other error.
pub const EXIT_ERROR: u8 = 2;

/// Everything that can make a `notar` command fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Arguments that parse but make no sense together.
    #[error("{0}")]
    Usage(String),

    /// An image reference or GUN that breaks Docker's grammar.
    #[error("invalid reference {input:?}: {reason}")]
    Reference { input: String, reason: String },

    /// The server has no trust data for the repository (`1.root.json` is 404).
    #[error("no trust data for {gun} on {server}")]
    NoTrustData { gun: Gun, server: String },

    /// The TUF client workflow refused what the server sent.
    #[error("verifying the trust data of {gun}")]
    Untrusted {
        gun: Gun,
        #[source]
        source: Box<UpdateError>,
    },

    /// The trust server could not be reached or answered with a server error, so nothing
    /// could be verified (not a verdict on the trust data: exit 2).
    #[error("cannot read the trust data of {gun} from the trust server")]
    Unreachable {
        gun: Gun,
        #[source]
        source: Box<UpdateError>,
    },

    /// The trusted root kept in the trust directory does not verify.
    #[error("the trusted root of {gun} in {} does not verify; move the directory away to trust the server's root again", .path.display())]
    BadTrustedRoot {
        gun: Gun,
        path: PathBuf,
        #[source]
        source: Box<UpdateError>,
    },

    /// The tag has no verified signature.
    #[error("{gun}:{tag} is not signed")]
    Unsigned { gun: Gun, tag: String },

    /// No root of the repository was signed by the pinned root key.
    #[error(
        "the pinned root key {key} signed no root of {gun} (root versions 1 to {checked} on the server); pin a key that signed one of them, or remove the pin with notar trust unpin {gun}"
    )]
    PinMismatch { gun: Gun, key: KeyId, checked: u64 },

    /// The server's root is not the trusted root nor a successor of it: the repository was
    /// deleted and made again, or someone replaced its root.
    #[error(
        "the root of {gun} changed: this trust directory trusts root version {trusted_version} with root key {trusted_keys}, but the server's root history now starts with root key {server_keys}, which is not a successor of it. If the repository was deleted and re-created on purpose, forget the old trust data with `notar trust reset {gun}` (or pin the new root key); otherwise treat this as an attack"
    )]
    RootChanged {
        gun: Gun,
        trusted_version: u64,
        trusted_keys: String,
        server_keys: String,
    },

    /// Finding, unlocking, creating or saving a private key failed.
    #[error("{action}")]
    Keys {
        action: String,
        #[source]
        source: notar_keys::Error,
    },

    /// The trust directory has no private key for a role this command must sign.
    #[error("{0}")]
    MissingKey(String),

    /// The key agent refused or failed (`notar agent`).
    #[error("{action} in the agent: {reason}")]
    Agent { action: String, reason: String },

    /// An HTTP request failed before the server answered.
    #[error("{action}: {url}")]
    Http {
        action: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The server answered with an error status.
    #[error("{action}: the server answered {status}{}", server_detail(.code, .message))]
    Server {
        action: String,
        status: u16,
        /// The `code` of the error envelope, e.g. `VERSION` or `INVALID_UPDATE`.
        code: Option<String>,
        message: String,
    },

    /// The server refused a request for want of credentials or scope, even with a fresh
    /// token.
    #[error("{action}: not authorised for {scope}: {reason}")]
    Unauthorized {
        action: String,
        scope: String,
        reason: String,
    },

    /// The server sent something that is not what the API promises.
    #[error("{action}: {reason}")]
    Protocol { action: String, reason: String },

    /// Making or signing metadata failed.
    #[error("{action}")]
    Metadata {
        action: String,
        #[source]
        source: notar_tuf::Error,
    },

    /// A file in the trust directory could not be read or written.
    #[error("{action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing results to stdout failed (other than a closed pipe, which is not an error).
    #[error("writing to stdout")]
    Output(#[source] io::Error),

    /// stdout was closed by its reader (`notar … | head`): stop quietly, exit 0.
    #[error("stdout was closed")]
    BrokenPipe,

    /// Errors were already printed (one per reference); only the exit code remains.
    #[error("{count} of the references failed")]
    Reported { count: usize, exit_code: u8 },

    /// An OCI registry refused a request or answered something unusable.
    #[error("{action}: {}", registry_detail(.status, .reason))]
    Registry {
        action: String,
        status: Option<u16>,
        reason: String,
    },

    /// Content from a registry does not match what was signed or what a manifest names.
    #[error("{what}: {reason}")]
    Content { what: String, reason: String },

    /// A background task panicked or was cancelled.
    #[error("a background task failed")]
    Task(#[source] tokio::task::JoinError),
}

fn registry_detail(status: &Option<u16>, reason: &str) -> String {
    match status {
        Some(status) => format!("the registry answered {status} ({reason})"),
        None => reason.to_owned(),
    }
}

fn server_detail(code: &Option<String>, message: &str) -> String {
    match (code, message.is_empty()) {
        (Some(code), false) => format!(" ({code}: {message})"),
        (Some(code), true) => format!(" ({code})"),
        (None, false) => format!(" ({message})"),
        (None, true) => String::new(),
    }
}

impl Error {
    /// The TUF workflow refused the trust data of `gun`, or could not download it: a
    /// transport failure is [`Error::Unreachable`], not a verdict on trust.
    pub fn untrusted(gun: &Gun, source: UpdateError) -> Self {
        let outage = matches!(
            source,
            UpdateError::Fetch {
                source: FetchError::Transport(_),
                ..
            }
        );
        if outage {
            Error::Unreachable {
                gun: gun.clone(),
                source: Box::new(source),
            }
        } else {
            Error::Untrusted {
                gun: gun.clone(),
                source: Box::new(source),
            }
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NoTrustData { .. }
            | Error::Untrusted { .. }
            | Error::BadTrustedRoot { .. }
            | Error::Unsigned { .. }
            | Error::PinMismatch { .. }
            | Error::RootChanged { .. }
            | Error::Content { .. } => EXIT_UNTRUSTED,
            Error::Reported { exit_code, .. } => *exit_code,
            Error::BrokenPipe => 0,
            _ => EXIT_ERROR,
        }
    }

    /// Whether the server refused an upload because another update was stored first.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Server { status: 409, .. })
            || matches!(self, Error::Server { code: Some(code), .. } if code == "VERSION")
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn keys(action: impl Into<String>) -> impl FnOnce(notar_keys::Error) -> Self {
        let action = action.into();
        move |source| Error::Keys { action, source }
    }

    pub(crate) fn metadata(action: impl Into<String>) -> impl FnOnce(notar_tuf::Error) -> Self {
        let action = action.into();
        move |source| Error::Metadata { action, source }
    }
}

/// `notar: error: <what>` and one `  caused by: <cause>` line per cause. A cause whose text
/// the line above already ends with is skipped, so errors that embed their source in their
/// own message are not printed twice.
pub fn render(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("notar: error: {error}\n");
    let mut previous = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let text = current.to_string();
        if !previous.ends_with(&text) {
            let _ = writeln!(out, "  caused by: {text}");
        }
        previous = text;
        cause = current.source();
    }
    out
}

/// Flattens an error and its causes into one line (for messages that must be a string).
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let text = current.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = current.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {inner}")]
    struct Embeds {
        #[source]
        inner: io::Error,
    }

    #[test]
    fn render_prints_causes_once() {
        let err = Error::Io {
            action: "reading",
            path: PathBuf::from("/x"),
            source: io::Error::other("disk on fire"),
        };
        assert_eq!(
            render(&err),
            "notar: error: reading /x\n  caused by: disk on fire\n"
        );
        let embedded = Embeds {
            inner: io::Error::other("root cause"),
        };
        assert_eq!(render(&embedded), "notar: error: outer: root cause\n");
        assert_eq!(one_line(&err), "reading /x: disk on fire");
    }

    #[test]
    fn exit_codes_separate_trust_from_other_failures() {
        let gun = Gun::new("localhost:5000/app").expect("valid");
        assert_eq!(
            Error::Unsigned {
                gun: gun.clone(),
                tag: "v1".into()
            }
            .exit_code(),
            1
        );
        assert_eq!(
            Error::NoTrustData {
                gun,
                server: "s".into()
            }
            .exit_code(),
            1
        );
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        let down = Error::untrusted(
            &Gun::new("localhost:5000/app").expect("valid"),
            UpdateError::Fetch {
                role: "timestamp".into(),
                source: FetchError::Transport("connection refused".into()),
            },
        );
        assert!(matches!(down, Error::Unreachable { .. }), "{down:?}");
        assert_eq!(down.exit_code(), 2, "an outage is not a trust verdict");
        assert_eq!(Error::BrokenPipe.exit_code(), 0);
        let conflict = Error::Server {
            action: "uploading".into(),
            status: 409,
            code: Some("VERSION".into()),
            message: "later".into(),
        };
        assert!(conflict.is_conflict());
        assert_eq!(
            conflict.to_string(),
            "uploading: the server answered 409 (VERSION: later)"
        );
    }
}
