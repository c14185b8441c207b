//! Public key objects, key IDs, signature verification and the signing trait.
//!
//! A key object is `{"keytype", "scheme", "keyval": {"public"}}` (TUF 1.0 §4.2); its key ID
//! is the hex sha256 of its canonical JSON. Notar makes ed25519 keys and verifies ed25519,
//! `ecdsa-sha2-nistp256` and `rsassa-pss-sha256` signatures, because other TUF tools make them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Error;

/// A key ID: 64 lower-case hex digits (sha256 of the canonical key object).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(KeyId(id))
        } else {
            Err(Error::InvalidName {
                kind: "key ID",
                value: id,
                reason: "a key ID is 64 lower-case hex digits",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for messages meant for people.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.short())
    }
}

impl std::borrow::Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for KeyId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        KeyId::new(s)
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        KeyId::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The `keyval` of a key object. Only the public part is ever stored in metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    pub public: String,
    /// Fields this version does not know, kept so that key IDs and signatures stay valid.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A public key object as it appears in root and delegations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub keytype: String,
    /// Empty for the key objects of the Notary dialect, which carry no scheme (their
    /// keytype names the algorithm); TUF 1.0 metadata must name one ([`crate::Role::tuf_only`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    pub keyval: KeyVal,
    /// Fields this version does not know (`keyid_hash_algorithms`, …), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl PublicKey {
    /// The key object of an ed25519 public key.
    pub fn ed25519(public: &ed25519_dalek::VerifyingKey) -> Self {
        PublicKey {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: KeyVal {
                public: hex::encode(public.as_bytes()),
                extra: BTreeMap::new(),
            },
            extra: BTreeMap::new(),
        }
    }

    /// The key object of a P-256 public key, as TUF 1.0 writes it: `ecdsa`,
    /// `ecdsa-sha2-nistp256`, PEM SubjectPublicKeyInfo with LF line endings.
    pub fn ecdsa_p256(public: &p256::ecdsa::VerifyingKey) -> Self {
        use p256::pkcs8::EncodePublicKey;
        // Encoding a valid P-256 point as PEM cannot fail; were it to, the empty key would
        // verify nothing rather than panic.
        let pem = public
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap_or_default();
        PublicKey {
            keytype: "ecdsa".into(),
            scheme: "ecdsa-sha2-nistp256".into(),
            keyval: KeyVal {
                public: pem,
                extra: BTreeMap::new(),
            },
            extra: BTreeMap::new(),
        }
    }

    /// The same key as Notar's key files name it: the TUF 1.0 object of an ed25519 or
    /// P-256 key, whichever form this one is in (a Notary key object, an X.509 certificate,
    /// or a TUF key with a hex point). A key Notar holds has the key ID of this form, so a
    /// role that lists the key in another form is matched through it. RSA keys have no
    /// other form here and are returned as they are.
    pub fn tuf_form(&self) -> Result<PublicKey, Error> {
        Ok(match self.verifier()? {
            Verifier::Ed25519(key) => PublicKey::ed25519(&key),
            Verifier::EcdsaP256(key) => PublicKey::ecdsa_p256(&key),
            Verifier::RsaPssSha256(_) => self.clone(),
        })
    }

    /// The key ID: hex sha256 of this key object's canonical JSON.
    pub fn key_id(&self) -> KeyId {
        // A key object holds only strings and maps of strings, which always have a
        // canonical form; the fallback keeps this function total without a panic path.
        let canonical = crate::cjson::to_canonical(self).unwrap_or_default();
        KeyId(hex::encode(Sha256::digest(canonical)))
    }

    /// Decodes the key so that it can verify signatures. Fails for unsupported types and
    /// undecodable key values.
    pub fn verifier(&self) -> Result<Verifier, Error> {
        let bad = |reason: String| Error::BadKey {
            key_id: self.key_id().to_string(),
            reason,
        };
        match (self.keytype.as_str(), self.scheme.as_str()) {
            ("ed25519", "ed25519") => {
                let bytes: [u8; 32] = hex::decode(&self.keyval.public)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("ed25519 public key must be 32 bytes of hex".into()))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|e| bad(format!("ed25519: {e}")))?;
                Ok(Verifier::Ed25519(key))
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                use p256::pkcs8::DecodePublicKey;
                let public = &self.keyval.public;
                let key = if public.trim_start().starts_with("-----BEGIN") {
                    p256::ecdsa::VerifyingKey::from_public_key_pem(public)
                        .map_err(|e| bad(format!("ecdsa PEM: {e}")))?
                } else {
                    let sec1 = hex::decode(public)
                        .map_err(|_| bad("ecdsa key is neither PEM nor hex".into()))?;
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                        .map_err(|e| bad(format!("ecdsa point: {e}")))?
                };
                Ok(Verifier::EcdsaP256(key))
            }
            ("rsa", "rsassa-pss-sha256") => {
                use rsa::pkcs8::DecodePublicKey;
                let key = rsa::RsaPublicKey::from_public_key_pem(&self.keyval.public)
                    .map_err(|e| bad(format!("rsa PEM: {e}")))?;
                Ok(Verifier::RsaPssSha256(rsa::pss::VerifyingKey::new(key)))
            }
            ("ed25519", "") => {
                let bytes: [u8; 32] = base64_decode(&self.keyval.public)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("ed25519 public key must be 32 bytes of base64".into()))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|e| bad(format!("ed25519: {e}")))?;
                Ok(Verifier::Ed25519(key))
            }
            ("ecdsa" | "rsa", "") => {
                let der = base64_decode(&self.keyval.public)
                    .ok_or_else(|| bad("the public key is not base64".into()))?;
                spki_verifier(&self.keytype, &der).map_err(bad)
            }
            ("ecdsa-x509" | "rsa-x509", "") => {
                let cert =
                    crate::x509::Certificate::from_key_value(&self.keyval.public).map_err(bad)?;
                spki_verifier(&self.keytype, cert.spki_der()).map_err(bad)
            }
            (keytype, scheme) => Err(Error::UnsupportedKey {
                keytype: keytype.into(),
                scheme: scheme.into(),
            }),
        }
    }
}

/// Standard base64 (the Notary dialect's encoding of keys, hashes and signatures).
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A verifier from a DER SubjectPublicKeyInfo, of the family `keytype` names (`ecdsa…`
/// must hold a P-256 key, `rsa…` an RSA key of at least 2048 bits, as Notary requires).
fn spki_verifier(keytype: &str, der: &[u8]) -> Result<Verifier, String> {
    if keytype.starts_with("ecdsa") {
        use p256::pkcs8::DecodePublicKey;
        p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map(Verifier::EcdsaP256)
            .map_err(|e| format!("not a P-256 public key: {e}"))
    } else {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPublicKey::from_public_key_der(der)
            .map_err(|e| format!("not an RSA public key: {e}"))?;
        if key.size() * 8 < 2048 {
            return Err(format!(
                "RSA key of {} bits (2048 at least)",
                key.size() * 8
            ));
        }
        Ok(Verifier::RsaPssSha256(rsa::pss::VerifyingKey::new(key)))
    }
}

/// A decoded public key, ready to verify signatures.
#[derive(Clone, Debug)]
pub enum Verifier {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
    RsaPssSha256(rsa::pss::VerifyingKey<Sha256>),
}

impl Verifier {
    /// Whether `signature` is a valid signature of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Verifier::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok()),
            Verifier::EcdsaP256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(signature));
                sig.is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
            Verifier::RsaPssSha256(key) => {
                use rsa::signature::Verifier as _;
                rsa::pss::Signature::try_from(signature)
                    .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
        }
    }
}

/// Something that can sign metadata: a private key held in memory, or one held elsewhere.
pub trait Signer {
    /// The public key object that verifies this signer's signatures.
    fn public_key(&self) -> PublicKey;
    /// The signature of `message`, as raw bytes (hex-encoded into metadata by the caller).
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

impl Signer for ed25519_dalek::SigningKey {
    fn public_key(&self) -> PublicKey {
        PublicKey::ed25519(&self.verifying_key())
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        ed25519_dalek::Signer::sign(self, message)
            .to_bytes()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn key_id_is_sha256_of_the_canonical_key_object() {
        let key = test_key(7).public_key();
        let canonical = format!(
            r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
            key.keyval.public
        );
        assert_eq!(
            key.key_id().as_str(),
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
    }

    #[test]
    fn unknown_fields_count_in_the_key_id() {
        let plain = test_key(1).public_key();
        let mut extended = plain.clone();
        extended.extra.insert(
            "keyid_hash_algorithms".into(),
            serde_json::json!(["sha256"]),
        );
        assert_ne!(plain.key_id(), extended.key_id());
    }

    #[test]
    fn ed25519_signatures_verify_and_forgeries_do_not() {
        let key = test_key(3);
        let verifier = key.public_key().verifier().expect("ed25519 is supported");
        let sig = Signer::sign(&key, b"message");
        assert!(verifier.verify(b"message", &sig));
        assert!(!verifier.verify(b"massage", &sig));
        let mut flipped = sig.clone();
        flipped[10] ^= 1;
        assert!(!verifier.verify(b"message", &flipped));
        assert!(!verifier.verify(b"message", &sig[..63]));
        let other = test_key(4).public_key().verifier().expect("supported");
        assert!(!other.verify(b"message", &sig));
    }

    #[test]
    fn unsupported_and_undecodable_keys_are_named() {
        let mut key = test_key(1).public_key();
        key.scheme = "ed448".into();
        assert!(matches!(key.verifier(), Err(Error::UnsupportedKey { .. })));
        let mut key = test_key(1).public_key();
        key.keyval.public = "abcd".into();
        assert!(matches!(key.verifier(), Err(Error::BadKey { .. })));
    }

    #[test]
    fn key_ids_are_64_lower_hex() {
        assert!(KeyId::new("a".repeat(64)).is_ok());
        assert!(KeyId::new("A".repeat(64)).is_err());
        assert!(KeyId::new("a".repeat(63)).is_err());
        assert!(KeyId::new("g".repeat(64)).is_err());
    }
}
