//! Private keys: ed25519 (what Notar makes), and ECDSA P-256 (what Notary and Docker make:
//! imported from their trust directories, and the server-held keys of repositories imported
//! from a Notary server).

use std::fmt;

use ed25519_dalek::SigningKey;
use notar_tuf::{KeyId, PublicKey, Signer};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The length of an ed25519 seed, the only secret an ed25519 key has.
pub(crate) const SEED_LEN: usize = 32;

/// A private key in memory.
///
/// The secret is wiped when the key is dropped (both `ed25519_dalek::SigningKey` and
/// `p256::ecdsa::SigningKey` zeroize themselves). There is deliberately no `Clone` and no
/// `Serialize`: the only ways out of memory are an encrypted key file
/// ([`crate::encrypt_key`]) and a key wrapped under the server's KEK, and
/// `Debug` prints the key ID only.
pub struct PrivateKey {
    secret: Secret,
    /// Cached: computing it means canonical JSON and sha256, and it is asked for often.
    key_id: KeyId,
}

enum Secret {
    Ed25519(SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// The algorithm of a [`PrivateKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    /// ECDSA on P-256 with SHA-256; signatures are the raw 64 bytes `r‖s`, as Notary writes
    /// them (verifiers of TUF 1.0 accept them beside DER).
    EcdsaP256,
}

impl Algorithm {
    /// The name key files and wrapped keys record.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }

    /// The algorithm [`Algorithm::name`] names.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        [Algorithm::Ed25519, Algorithm::EcdsaP256]
            .into_iter()
            .find(|a| a.name() == name)
    }
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
        PrivateKey {
            secret: Secret::Ed25519(signing),
            key_id,
        }
    }

    /// The ed25519 key whose 32-byte seed starts `bytes` (Go's 64-byte private key is the
    /// seed, then the public key).
    pub fn ed25519_from_bytes(bytes: &[u8]) -> Result<Self> {
        let seed: Zeroizing<[u8; SEED_LEN]> = bytes
            .get(..SEED_LEN)
            .and_then(|s| <[u8; SEED_LEN]>::try_from(s).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| Error::Corrupt {
                path: None,
                reason: "not an ed25519 private key".into(),
            })?;
        Ok(Self::from_seed(&seed))
    }

    /// The P-256 key whose secret scalar is `scalar` (32 bytes, big-endian).
    pub fn p256_from_scalar(scalar: &[u8]) -> Result<Self> {
        let signing = p256::ecdsa::SigningKey::from_slice(scalar).map_err(|_| Error::Corrupt {
            path: None,
            reason: "not a P-256 private key".into(),
        })?;
        Ok(Self::from_p256(signing))
    }

    /// The P-256 key of a SEC1 `EC PRIVATE KEY` DER (what notary-signer stores).
    pub fn p256_from_sec1_der(der: &[u8]) -> Result<Self> {
        let secret = p256::SecretKey::from_sec1_der(der).map_err(|_| Error::Corrupt {
            path: None,
            reason: "not a SEC1 P-256 private key".into(),
        })?;
        Ok(Self::from_p256(p256::ecdsa::SigningKey::from(secret)))
    }

    fn from_p256(signing: p256::ecdsa::SigningKey) -> Self {
        let key_id = PublicKey::ecdsa_p256(signing.verifying_key()).key_id();
        PrivateKey {
            secret: Secret::P256(signing),
            key_id,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.secret {
            Secret::Ed25519(_) => Algorithm::Ed25519,
            Secret::P256(_) => Algorithm::EcdsaP256,
        }
    }

    /// The secret bytes (ed25519 seed or P-256 scalar), for the key file and the KEK wrap
    /// only, which seal them beside [`PrivateKey::algorithm`].
    pub(crate) fn secret_bytes(&self) -> Zeroizing<[u8; SEED_LEN]> {
        match &self.secret {
            Secret::Ed25519(signing) => Zeroizing::new(*signing.as_bytes()),
            Secret::P256(signing) => {
                let mut out = Zeroizing::new([0u8; SEED_LEN]);
                out.copy_from_slice(&signing.to_bytes());
                out
            }
        }
    }

    /// The key of `algorithm` whose secret bytes are `secret`, as
    /// [`PrivateKey::secret_bytes`] gave them.
    pub(crate) fn from_secret(algorithm: Algorithm, secret: &[u8; SEED_LEN]) -> Result<Self> {
        match algorithm {
            Algorithm::Ed25519 => Ok(Self::from_seed(secret)),
            Algorithm::EcdsaP256 => Self::p256_from_scalar(secret),
        }
    }

    /// The TUF key ID of this key's public key.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The TUF public key object, as it goes into root or a delegation.
    pub fn public_key(&self) -> PublicKey {
        match &self.secret {
            Secret::Ed25519(signing) => PublicKey::ed25519(&signing.verifying_key()),
            Secret::P256(signing) => PublicKey::ecdsa_p256(signing.verifying_key()),
        }
    }
}

impl Signer for PrivateKey {
    fn public_key(&self) -> PublicKey {
        PrivateKey::public_key(self)
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.secret {
            Secret::Ed25519(signing) => Signer::sign(signing, message),
            Secret::P256(signing) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = signing.sign(message);
                signature.to_bytes().to_vec()
            }
        }
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
    fn p256_keys_sign_raw_signatures_that_verify_and_round_trip_their_secret() {
        let key = PrivateKey::p256_from_scalar(&[7; 32]).expect("scalar");
        assert_eq!(key.algorithm(), Algorithm::EcdsaP256);
        let public = key.public_key();
        assert_eq!(&public.key_id(), key.key_id());
        let sig = Signer::sign(&key, b"timestamp");
        assert_eq!(sig.len(), 64, "r||s, as Notary writes ECDSA signatures");
        let verifier = public.verifier().expect("P-256 is supported");
        assert!(verifier.verify(b"timestamp", &sig));
        assert!(!verifier.verify(b"timestamps", &sig));
        let again = PrivateKey::from_secret(Algorithm::EcdsaP256, &key.secret_bytes())
            .expect("the scalar is a key");
        assert_eq!(again.key_id(), key.key_id());
        assert!(!format!("{key:?}").contains("0707"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = PrivateKey::generate().expect("system rng works");
        let b = PrivateKey::generate().expect("system rng works");
        assert_ne!(a.key_id(), b.key_id());
    }
}
