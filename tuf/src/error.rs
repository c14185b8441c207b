//! The one error type of notar-tuf.

/// Everything that can be wrong with metadata, names, keys or signatures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not JSON, are truncated, or do not have the shape of the role.
    #[error("malformed {what}: {source}")]
    Malformed {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// A JSON object names one key twice; parsers disagree on which value wins, so we refuse.
    #[error("malformed {what}: duplicate key {key:?} in a JSON object")]
    DuplicateKey { what: String, key: String },

    /// The envelope holds another role than the one expected.
    #[error("wrong _type: expected {expected:?}, found {found:?}")]
    WrongType {
        expected: &'static str,
        found: String,
    },

    /// `spec_version` is not a TUF 1.x version.
    #[error("unsupported spec_version {found:?} in {role} (expected 1.x)")]
    SpecVersion { role: String, found: String },

    /// A key listed under one key ID hashes to another.
    #[error("key ID {claimed} does not match its key (the key hashes to {computed})")]
    KeyIdMismatch { claimed: String, computed: String },

    /// Fewer distinct keys than the threshold signed the role.
    #[error("verifying {role}: {valid} valid signature(s), threshold {threshold}")]
    Threshold {
        role: String,
        valid: usize,
        threshold: u32,
    },

    /// One envelope lists a key ID twice in `signatures` (§4.2: a key ID MUST be unique).
    #[error("verifying {role}: key ID {key_id} appears twice in signatures")]
    DuplicateSignature { role: String, key_id: String },

    /// A role declares a threshold of zero or names fewer keys than its threshold.
    #[error("role {role}: {reason}")]
    BadRole { role: String, reason: String },

    /// A time that is not `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("invalid expiry {value:?}: expected YYYY-MM-DDTHH:MM:SSZ")]
    InvalidExpiry { value: String },

    /// A name, version or ID that does not meet its grammar.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },

    /// A key type or scheme that Notar cannot verify.
    #[error("unsupported key type {keytype:?} with scheme {scheme:?}")]
    UnsupportedKey { keytype: String, scheme: String },

    /// A public key whose value cannot be decoded.
    #[error("bad public key {key_id}: {reason}")]
    BadKey { key_id: String, reason: String },

    /// The metadata expired.
    #[error("{role} expired at {expires}")]
    Expired { role: String, expires: String },

    /// Serialising to canonical JSON failed (a float, for example).
    #[error("canonical JSON: {0}")]
    Canonical(String),
}

impl Error {
    pub(crate) fn malformed(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Malformed {
            what: what.into(),
            source,
        }
    }
}
