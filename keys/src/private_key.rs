//! The ed25519 private key.

use std::fmt;

use ed25519_dalek::SigningKey;
use notar_tuf::{KeyId, PublicKey, Signer};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The length of an ed25519 seed, the only secret an ed25519 key has.
pub(crate) const SEED_LEN: usize = 32;

/// An ed25519 private key in memory.
///
/// The secret is wiped when the key is dropped (`ed25519_dalek::SigningKey` zeroizes itself).
/// There is deliberately no `Clone` and no `Serialize`: the only way out of memory is an
/// encrypted key file ([`crate::encrypt_key`]), and `Debug` prints the key ID only.
pub struct PrivateKey {
    signing: SigningKey,
    /// Cached: computing it means canonical JSON and sha256, and it is asked for often.
    key_id: KeyId,
}

impl PrivateKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        OsRng.try_fill_bytes(seed.as_mut()).map_err(Error::Random)?;
        Ok(Self::from_seed(&seed))
    }

    /// The key whose seed is `seed`. The caller keeps `seed` in a `Zeroizing` buffer.
    pub(crate) fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let key_id = PublicKey::ed25519(&signing.verifying_key()).key_id();
        PrivateKey { signing, key_id }
    }

    /// The seed, borrowed; only the key file format reads it.
    pub(crate) fn seed(&self) -> &[u8; SEED_LEN] {
        self.signing.as_bytes()
    }

    /// The TUF key ID of this key's public key.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The TUF public key object, as it goes into root or a delegation.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::ed25519(&self.signing.verifying_key())
    }
}

impl Signer for PrivateKey {
    fn public_key(&self) -> PublicKey {
        PrivateKey::public_key(self)
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        Signer::sign(&self.signing, message)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_id", &self.key_id.as_str())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn debug_shows_the_key_id_and_not_the_seed() {
        let seed = Zeroizing::new([0x5a; SEED_LEN]);
        let key = PrivateKey::from_seed(&seed);
        let debug = format!("{key:?}");
        assert!(debug.contains(key.key_id().as_str()), "{debug}");
        assert!(!debug.contains(&hex::encode(*seed)), "{debug}");
        assert!(!debug.contains("5a5a5a5a"), "{debug}");
        assert!(!debug.contains("90, 90, 90"), "{debug}");
    }

    #[test]
    fn signatures_verify_under_the_public_key_and_key_ids_agree() {
        let key = PrivateKey::generate().expect("system rng works");
        let public = key.public_key();
        assert_eq!(&public.key_id(), key.key_id());
        let verifier = public.verifier().expect("ed25519 is supported");
        let sig = Signer::sign(&key, b"tag -> digest");
        assert!(verifier.verify(b"tag -> digest", &sig));
        assert!(!verifier.verify(b"tag -> other", &sig));
    }

    #[test]
    fn generated_keys_differ() {
        let a = PrivateKey::generate().expect("system rng works");
        let b = PrivateKey::generate().expect("system rng works");
        assert_ne!(a.key_id(), b.key_id());
    }
}
