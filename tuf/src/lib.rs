//! notar-tuf: TUF 1.0 metadata for Notar, pure and without I/O.
//!
//! - [`names`] holds the validated newtypes (`Gun`, `RoleName`, `TargetName`, `KeyId`,
//!   `Version`) and [`expiry`] the `YYYY-MM-DDTHH:MM:SSZ` time type: parse, don't validate.
//! - [`cjson`] produces OLPC canonical JSON and refuses JSON objects with duplicate keys.
//! - [`key`] holds public key objects, key IDs and signature verification (ed25519,
//!   ecdsa-sha2-nistp256, rsassa-pss-sha256) and the [`key::Signer`] trait for signing.
//! - [`metadata`] holds the four role types as the specification defines them.
//! - [`signed`] holds the `Signed<T>` envelope (untrusted, with the exact bytes it was parsed
//!   from), the one threshold rule, and `Verified<T>`, which only the verifier makes.
//! - [`rules`] is the rulebook: every rule for accepting new metadata, used by the server's
//!   upload validation and by the client workflow alike.
//! - [`notary`] parses and writes the Notary v1 dialect into and out of the same model, and
//!   [`x509`] reads the certificates that stand for its root keys.
//! - [`delegation`] matches target names against delegated `paths` and `path_hash_prefixes`.

pub mod cjson;
pub mod client;
pub mod delegation;
mod error;
pub mod expiry;
pub mod key;
pub mod metadata;
pub mod names;
pub mod notary;
pub mod rules;
pub mod signed;
pub mod view;
pub mod x509;

pub use error::Error;
pub use expiry::Expiry;
pub use key::{KeyId, PublicKey, Signer};
pub use metadata::{
    DelegatedRole, Delegations, MetaFile, PathRule, Role, RoleKeys, RoleType, Root, Snapshot,
    TargetFile, Targets, Timestamp,
};
pub use names::{Gun, RoleName, TargetName, Version};
pub use signed::{Signature, Signed, Verified};

/// The TUF specification version Notar writes into new metadata.
pub const SPEC_VERSION: &str = "1.0.31";
