//! notar-keys: Notar's private keys, encrypted at rest.
//!
//! - [`PrivateKey`] is an ed25519 key that wipes itself on drop, cannot be cloned or
//!   serialised, and signs through [`notar_tuf::Signer`].
//! - [`keyfile`] is the versioned encrypted key file format (`keys/FORMAT.md`): a JSON
//!   header, authenticated as associated data, over the seed sealed with
//!   XChaCha20-Poly1305 under an argon2id-derived key ([`KdfParams`]). The server stores
//!   its managed keys in its database with the same [`encrypt_key`] and [`decrypt_key`].
//! - [`KeyStore`] keeps those files in a trust directory's `private/` (0700, files 0600,
//!   atomic writes), lists them by [`KeyRole`] and GUN from headers alone, and runs the
//!   KDF off the async runtime in its `*_async` methods.
//! - [`notary_key`] reads the PKCS#8 key files of Notary's and Docker's trust directories,
//!   so that their keys can be imported.
//! - [`passphrase`] finds a key's passphrase in the environment or on the terminal.
//!
//! Everything fails with the one [`Error`] type, which never holds a secret.

pub mod backup;
mod error;
mod kdf;
pub mod keyfile;
pub mod notary_key;
pub mod passphrase;
mod pem;
mod private_key;
mod role;
pub mod sealed;
mod store;
mod wrapped;

pub use error::{Error, Result};
pub use kdf::KdfParams;
pub use keyfile::{KeyHeader, decrypt_key, encrypt_key, read_header};
pub use passphrase::{PassphraseSource, Prompt};
pub use pem::public_key_from_pem;
pub use private_key::{Algorithm, PrivateKey};
pub use role::KeyRole;
pub use store::{DamagedKeyFile, KeyInfo, KeyListing, KeyStore, PRIVATE_DIR};
pub use wrapped::{Kek, KekSalt, is_wrapped};
