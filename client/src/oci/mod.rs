//! The OCI side, knowing nothing of trust: content digests, manifests and indexes (the
//! oci-spec types), image layouts on disk, and the registry client with Docker's auth.

pub mod auth;
pub mod digest;
pub mod layout;
pub mod manifest;
pub mod registry;

pub use digest::OciDigest;
pub use registry::Registry;
