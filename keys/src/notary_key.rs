//! Reading the private keys of Notary's and Docker's trust directories
//! (`~/.notary/private/*.key`, `~/.docker/trust/private/*.key`, and `notary key export`).
//!
//! Each key is a PEM block, `ENCRYPTED PRIVATE KEY` (or `PRIVATE KEY` when it was stored
//! without a passphrase), with RFC 1421 headers before the base64: `role` (`root`,
//! `targets`, `snapshot`, a delegation such as `targets/releases`, or a Docker signer's
//! name), `gun` for keys bound to one repository, and `path` (the key ID) in exports. The
//! body is PKCS#8: `EncryptedPrivateKeyInfo` with PBES2 (PBKDF2, HMAC-SHA1 by default, and
//! AES-256-CBC), around a `PrivateKeyInfo` of an ECDSA P-256 key (SEC1 inside) or an
//! ed25519 key (Notary's own OID 1.3.6.1.4.1.11591.15.1 with Go's 64-byte key, or RFC 8410's).
//!
//! Notary writes the P-256 `PrivateKeyInfo` with version 1 but no public key, which strict
//! PKCS#8 readers refuse, so the structure is read here by hand with the `der` crate. The
//! decrypted bytes live in `Zeroizing` buffers only; the key leaves as a [`PrivateKey`].

use pkcs8::der::asn1::{ObjectIdentifier, OctetStringRef};
use pkcs8::der::{Decode, Reader, SliceReader};
use zeroize::Zeroizing;

use crate::{Error, PrivateKey, Result};

/// PKCS#8 files of Notary's trust directories are under 4 KiB; an export of many keys is
/// more, but a file past this is not a key file.
pub const MAX_FILE_LEN: usize = 1024 * 1024;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_NOTARY_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11591.15.1");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// One key block of a Notary or Docker key file, not yet decrypted.
pub struct NotaryKeyBlock {
    /// The `role` header: `root`, `targets`, `snapshot`, `timestamp`, a delegation role
    /// (`targets/releases`) or a Docker signer's name; `None` when the block has none.
    pub role: Option<String>,
    /// The `gun` header, for keys bound to one repository.
    pub gun: Option<String>,
    /// The `path` header `notary key export` adds: the key's Notary key ID.
    pub path: Option<String>,
    encrypted: bool,
    /// A SEC1 `EC PRIVATE KEY` on its own, not in PKCS#8.
    sec1: bool,
    der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for NotaryKeyBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotaryKeyBlock")
            .field("role", &self.role)
            .field("gun", &self.gun)
            .field("path", &self.path)
            .field("encrypted", &self.encrypted)
            .finish_non_exhaustive()
    }
}

fn import(reason: impl Into<String>) -> Error {
    Error::Import {
        reason: reason.into(),
    }
}

impl NotaryKeyBlock {
    /// Every private key block of `text`, in order. Text without one, public keys and
    /// certificates only, and OpenSSL's legacy `Proc-Type`/`DEK-Info` encryption are
    /// refused with a reason that names them.
    pub fn parse_all(text: &str) -> Result<Vec<NotaryKeyBlock>> {
        if text.len() > MAX_FILE_LEN {
            return Err(import(format!(
                "the file is {} bytes long, and key files are under {MAX_FILE_LEN}",
                text.len()
            )));
        }
        let mut blocks = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start + "-----BEGIN ".len()..];
            let label_end = after
                .find("-----")
                .ok_or_else(|| import("a PEM BEGIN line is not closed"))?;
            let label = &after[..label_end];
            let body_start = &after[label_end + 5..];
            let end_line = format!("-----END {label}-----");
            let end = body_start
                .find(&end_line)
                .ok_or_else(|| import(format!("the PEM block {label} has no END line")))?;
            let body = &body_start[..end];
            rest = &body_start[end + end_line.len()..];
            let encrypted = match label {
                "ENCRYPTED PRIVATE KEY" => true,
                "PRIVATE KEY" | "EC PRIVATE KEY" => false,
                "PUBLIC KEY" | "CERTIFICATE" => continue,
                other => {
                    return Err(import(format!(
                        "a PEM block of type {other:?}: Notary and Docker keys are PKCS#8 (ENCRYPTED PRIVATE KEY)"
                    )));
                }
            };
            blocks.push(Self::parse_block(label, body, encrypted)?);
        }
        if blocks.is_empty() && text.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(import(
                "this is a public key; a private key (-----BEGIN ENCRYPTED PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----) is expected",
            ));
        }
        if blocks.is_empty() {
            return Err(import(
                "no private key in it (expected -----BEGIN ENCRYPTED PRIVATE KEY-----, as Notary and Docker write)",
            ));
        }
        Ok(blocks)
    }

    fn parse_block(label: &str, body: &str, encrypted: bool) -> Result<NotaryKeyBlock> {
        let (mut role, mut gun, mut path) = (None, None, None);
        let mut base64_text = Zeroizing::new(String::new());
        let mut in_headers = true;
        for line in body.lines().map(str::trim) {
            if in_headers {
                if line.is_empty() {
                    continue;
                }
                if let Some((name, value)) = line.split_once(':') {
                    let value = value.trim().to_owned();
                    match name.trim().to_ascii_lowercase().as_str() {
                        "role" => role = Some(value),
                        "gun" => gun = Some(value).filter(|g| !g.is_empty()),
                        "path" => path = Some(value),
                        "proc-type" | "dek-info" => {
                            return Err(import(
                                "OpenSSL's legacy PEM encryption (DEK-Info) is not supported: \
                                 convert the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc`",
                            ));
                        }
                        _ => {}
                    }
                    continue;
                }
                in_headers = false;
            }
            base64_text.push_str(line);
        }
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(base64_text.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| import(format!("the PEM block {label} is not base64")))?;
        Ok(NotaryKeyBlock {
            role,
            gun,
            path,
            encrypted,
            sec1: label == "EC PRIVATE KEY",
            der,
        })
    }

    /// Whether the key is encrypted, so [`NotaryKeyBlock::decrypt`] needs its passphrase.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// The private key, decrypted with `passphrase` (ignored for an unencrypted block).
    /// A wrong passphrase is [`Error::ForeignWrongPassphrase`]; an RSA key, another curve,
    /// or a scheme other than PBES2 is refused by name.
    pub fn decrypt(&self, passphrase: &str) -> Result<PrivateKey> {
        if self.sec1 {
            return PrivateKey::p256_from_sec1_der(&self.der)
                .map_err(|_| import("not a SEC1 P-256 private key"));
        }
        if !self.encrypted {
            return private_key_info(&self.der);
        }
        let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&self.der)
            .map_err(|e| import(format!("not a PKCS#8 EncryptedPrivateKeyInfo: {e}")))?;
        let plain = match &info.encryption_algorithm {
            pkcs5::EncryptionScheme::Pbes2(params) => params
                .decrypt(passphrase, info.encrypted_data)
                .map(Zeroizing::new),
            _ => {
                return Err(import(
                    "the key is encrypted with PBES1; Notary and Docker write PBES2",
                ));
            }
        };
        // AES-CBC under the wrong key almost always fails its padding; when it does not,
        // the plaintext is no PrivateKeyInfo. Both mean the passphrase is wrong.
        let wrong = || Error::ForeignWrongPassphrase {
            role: self.role.clone().unwrap_or_else(|| "unnamed".into()),
        };
        let plain = plain.map_err(|e| match e {
            // pkcs5 reports a bad CBC padding as EncryptFailed.
            pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed => wrong(),
            other => import(format!("decrypting the key: {other}")),
        })?;
        private_key_info(&plain).map_err(|e| match e {
            Error::Import { reason } if reason.starts_with("unsupported") => {
                Error::Import { reason }
            }
            _ => wrong(),
        })
    }
}

/// The key in a PKCS#8 `PrivateKeyInfo`: version, algorithm identifier, the private key
/// octets; attributes and a public key after them are ignored.
fn private_key_info(der: &[u8]) -> Result<PrivateKey> {
    let malformed = |e: pkcs8::der::Error| import(format!("not a PKCS#8 PrivateKeyInfo: {e}"));
    let mut reader = SliceReader::new(der).map_err(malformed)?;
    let (algorithm, parameter, key) = reader
        .sequence(|r| {
            let _version: u8 = r.decode()?;
            let (algorithm, parameter) = r.sequence(|alg| {
                let oid: ObjectIdentifier = alg.decode()?;
                let parameter = if alg.is_finished() {
                    None
                } else {
                    // An OID (the curve), or NULL; anything else is left unread.
                    let any: pkcs8::der::asn1::AnyRef<'_> = alg.decode()?;
                    any.decode_as::<ObjectIdentifier>().ok()
                };
                Ok((oid, parameter))
            })?;
            let key: OctetStringRef<'_> = r.decode()?;
            let key = Zeroizing::new(key.as_bytes().to_vec());
            // Attributes ([0]) and the public key ([1]) may follow.
            let rest = r.remaining_len();
            r.read_slice(rest)?;
            Ok((algorithm, parameter, key))
        })
        .map_err(malformed)?;
    match algorithm {
        OID_EC_PUBLIC_KEY => {
            if parameter.is_some_and(|curve| curve != OID_P256) {
                return Err(import(
                    "unsupported ECDSA curve: notar signs with P-256, as Notary and Docker do",
                ));
            }
            PrivateKey::p256_from_sec1_der(&key).map_err(|_| import("not a SEC1 P-256 key"))
        }
        OID_NOTARY_ED25519 => {
            PrivateKey::ed25519_from_bytes(&key).map_err(|_| import("not an ed25519 key"))
        }
        OID_ED25519 => {
            let inner = OctetStringRef::from_der(&key)
                .map_err(|_| import("not an RFC 8410 ed25519 key"))?;
            PrivateKey::ed25519_from_bytes(inner.as_bytes())
        }
        OID_RSA => Err(import(
            "unsupported key type RSA: notar signs with ed25519 and ECDSA P-256 keys",
        )),
        other => Err(import(format!("unsupported key algorithm OID {other}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use notar_tuf::Signer;

    use super::*;

    const TARGETS: &str = include_str!("../fixtures/notary-0.7/targets.key");
    const EXPORT: &str = include_str!("../fixtures/notary-0.7/export.pem");

    /// The Notary key ID of a key: what Notary's file names and root.json use.
    fn notary_id(key: &PrivateKey) -> String {
        notar_tuf::notary::notary_key(&key.public_key())
            .expect("notary form")
            .key_id()
            .to_string()
    }

    #[test]
    fn a_key_notary_wrote_decrypts_to_the_key_its_file_is_named_for() {
        let blocks = NotaryKeyBlock::parse_all(TARGETS).expect("parses");
        assert_eq!(blocks.len(), 1);
        let block = &blocks[0];
        assert_eq!(block.role.as_deref(), Some("targets"));
        assert_eq!(block.gun.as_deref(), Some("example.com/lab/repo1"));
        assert!(block.is_encrypted());
        let key = block.decrypt("newtargets123").expect("decrypts");
        assert_eq!(key.algorithm(), crate::Algorithm::EcdsaP256);
        assert_eq!(
            notary_id(&key),
            "1de0c7d5355b893ad470abef2d3b54cc130f63b23a1dbbe5b9e3e8d3fd525625"
        );
        let verifier = key.public_key().verifier().expect("P-256");
        assert!(verifier.verify(b"m", &Signer::sign(&key, b"m")));
    }

    #[test]
    fn a_wrong_passphrase_is_named_and_yields_nothing() {
        let block = NotaryKeyBlock::parse_all(TARGETS)
            .expect("parses")
            .remove(0);
        for wrong in ["targetspass123", "", "rootpass123"] {
            let err = block.decrypt(wrong).expect_err("wrong passphrase");
            assert!(
                matches!(err, Error::ForeignWrongPassphrase { .. }),
                "{wrong}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                "wrong passphrase for the Notary/Docker targets key"
            );
        }
    }

    #[test]
    fn an_export_holds_every_block_with_its_headers() {
        let blocks = NotaryKeyBlock::parse_all(EXPORT).expect("parses");
        assert_eq!(blocks.len(), 8);
        let roles: Vec<_> = blocks.iter().map(|b| b.role.as_deref().unwrap()).collect();
        assert_eq!(
            roles,
            [
                "targets",
                "targets/releases",
                "root",
                "snapshot",
                "root",
                "snapshot",
                "targets",
                "targets"
            ]
        );
        let first = &blocks[0];
        assert_eq!(
            first.path.as_deref(),
            Some("1de0c7d5355b893ad470abef2d3b54cc130f63b23a1dbbe5b9e3e8d3fd525625")
        );
        // Exported before the lab changed the passphrase.
        let key = first.decrypt("targetspass123").expect("decrypts");
        assert_eq!(notary_id(&key), first.path.clone().unwrap());
        assert!(blocks[1].gun.is_none(), "delegation keys have no GUN");
        let debug = format!("{first:?}");
        assert!(!debug.contains("MIH"), "{debug}");
    }

    #[test]
    fn damaged_and_foreign_files_are_refused_by_name() {
        let cases = [
            ("hello", "no private key in it"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "this is a public key",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                "RSA PRIVATE KEY",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nrole: root\n\nAAAA\n",
                "has no END line",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nrole: root\n\n!!!!\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "not base64",
            ),
        ];
        for (text, expected) in cases {
            let err = NotaryKeyBlock::parse_all(text).expect_err(text);
            assert!(err.to_string().contains(expected), "{text}: {err}");
        }
        // An RSA key (as PrivateKeyInfo names it) is refused by name.
        let rsa = "-----BEGIN PRIVATE KEY-----\nMBUCAQAwDQYJKoZIhvcNAQEBBQAEAXg=\n-----END PRIVATE KEY-----\n";
        let block = NotaryKeyBlock::parse_all(rsa).expect("PEM").remove(0);
        let err = block.decrypt("").expect_err("RSA");
        assert!(
            err.to_string().contains("unsupported key type RSA"),
            "{err}"
        );
        // A truncated body parses as PEM but is no EncryptedPrivateKeyInfo.
        let truncated = TARGETS.replace("kA==\n", "");
        let block = NotaryKeyBlock::parse_all(&truncated)
            .expect("PEM")
            .remove(0);
        let err = block.decrypt("newtargets123").expect_err("truncated");
        assert!(err.to_string().contains("importing a key"), "{err}");
    }

    #[test]
    fn unencrypted_pkcs8_p256_sec1_and_ed25519_keys_read_too() {
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::SecretKey::from_slice(&[5; 32]).expect("scalar");
        let pkcs8 = secret
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("pkcs8");
        let sec1 = secret
            .to_sec1_pem(p256::pkcs8::LineEnding::LF)
            .expect("sec1");
        let expected = PrivateKey::p256_from_scalar(&[5; 32]).expect("key");
        for text in [pkcs8.as_str(), sec1.as_str()] {
            let block = NotaryKeyBlock::parse_all(text).expect("parses").remove(0);
            assert!(!block.is_encrypted());
            let key = block.decrypt("").expect("reads");
            assert_eq!(key.key_id(), expected.key_id(), "{text}");
        }
        // ed25519 as openssl genpkey writes it (RFC 8410).
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pem = signing
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("pem");
        let block = NotaryKeyBlock::parse_all(&pem).expect("parses").remove(0);
        let key = block.decrypt("").expect("reads");
        assert_eq!(
            key.key_id(),
            &notar_tuf::PublicKey::ed25519(&signing.verifying_key()).key_id()
        );
    }
}
