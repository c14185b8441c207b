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

/// Parses an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`), ed25519 or ECDSA P-256.
/// RFC 1421 headers before the base64, as Docker writes them in `<name>.pub`
/// (`role: <name>`), are skipped.
pub fn public_key_from_pem(pem: &str) -> Result<notar_tuf::PublicKey> {
    let bare = without_headers(pem);
    {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        if let Ok(verifying) = ed25519_dalek::VerifyingKey::from_public_key_pem(&bare) {
            return Ok(notar_tuf::PublicKey::ed25519(&verifying));
        }
    }
    use p256::pkcs8::DecodePublicKey;
    p256::ecdsa::VerifyingKey::from_public_key_pem(&bare)
        .map(|k| notar_tuf::PublicKey::ecdsa_p256(&k))
        .map_err(|e| Error::Import {
            reason: format!("not an ed25519 or P-256 public key PEM: {e}"),
        })
}

/// `pem` without the `name: value` header lines (and the blank line after them) that
/// Notary and Docker put after a BEGIN line, which RFC 7468 parsers refuse.
fn without_headers(pem: &str) -> String {
    let mut out = String::with_capacity(pem.len());
    let mut in_headers = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN ") {
            in_headers = true;
        } else if in_headers && (line.contains(':') || line.trim().is_empty()) {
            continue;
        } else {
            in_headers = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
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
    fn dockers_public_key_files_with_headers_read_as_p256_keys() {
        use p256::pkcs8::EncodePublicKey as _;
        let secret = p256::SecretKey::from_slice(&[4; 32]).expect("scalar");
        let pem = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        let docker = pem.replacen("-----\n", "-----\nrole: alice\n\n", 1);
        let key = public_key_from_pem(&docker).expect("reads");
        assert_eq!(key.keytype, "ecdsa");
        assert_eq!(
            key.key_id(),
            PrivateKey::p256_from_scalar(&[4; 32])
                .expect("key")
                .key_id()
                .clone()
        );
        let err =
            public_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .expect_err("garbage");
        assert!(err.to_string().contains("not an ed25519 or P-256"), "{err}");
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
