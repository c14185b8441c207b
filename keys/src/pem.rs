//! Public keys from PEM (a signer's `.pub`, as Docker writes them too). Private keys in PEM
//! are read by [`crate::notary_key`], whatever tool wrote them.

use crate::{Error, Result};

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

    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    use super::*;
    use crate::PrivateKey;

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
}
