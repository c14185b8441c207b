//! Importing an ed25519 private key from unencrypted PKCS#8 PEM (`openssl genpkey
//! -algorithm ed25519`, Docker's `docker trust key load`). The key is encrypted as soon as
//! it is saved to a [`crate::KeyStore`]; the PEM text is never kept.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use zeroize::Zeroizing;

use crate::{Error, PrivateKey, Result};

impl PrivateKey {
    /// Parses an unencrypted PKCS#8 PEM ed25519 private key. A public key, an encrypted
    /// PEM, or a key of another algorithm is refused with a reason that says which.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let reason = |r: &str| Error::Import { reason: r.into() };
        if pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(reason(
                "this is a public key; a private key (-----BEGIN PRIVATE KEY-----) is expected",
            ));
        }
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(reason(
                "encrypted PKCS#8 is not supported: decrypt it first (openssl pkey)",
            ));
        }
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(reason(
                "not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)",
            ));
        }
        let signing = SigningKey::from_pkcs8_pem(pem).map_err(|e| Error::Import {
            reason: format!(
                "not an ed25519 PKCS#8 private key (only ed25519 keys can be imported): {e}"
            ),
        })?;
        let seed = Zeroizing::new(signing.to_bytes());
        Ok(PrivateKey::from_seed(&seed))
    }
}

/// Parses an SPKI PEM ed25519 public key (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key_from_pem(pem: &str) -> Result<notar_tuf::PublicKey> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let verifying =
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem).map_err(|e| Error::Import {
            reason: format!("not an ed25519 public key PEM: {e}"),
        })?;
    Ok(notar_tuf::PublicKey::ed25519(&verifying))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    use super::*;

    #[test]
    fn pkcs8_pem_round_trips_to_the_same_key_id() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let pem = signing.to_pkcs8_pem(LineEnding::LF).expect("encodes");
        let key = PrivateKey::from_pkcs8_pem(&pem).expect("imports");
        assert_eq!(
            key.key_id(),
            &notar_tuf::PublicKey::ed25519(&signing.verifying_key()).key_id()
        );
    }

    #[test]
    fn public_keys_and_garbage_are_refused_by_name() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let public = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encodes");
        let err = PrivateKey::from_pkcs8_pem(&public).expect_err("public key");
        assert!(err.to_string().contains("this is a public key"), "{err}");
        let err = PrivateKey::from_pkcs8_pem("hello").expect_err("garbage");
        assert!(err.to_string().contains("not a PKCS#8 PEM"), "{err}");
        let bad =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        let err = PrivateKey::from_pkcs8_pem(bad).expect_err("truncated");
        assert!(err.to_string().contains("only ed25519"), "{err}");
    }
}
