//! Keys wrapped under a key-encryption key (KEK), for the server's managed keys.
//!
//! The server secret is 32 random bytes, not a password: stretching it once per key buys
//! nothing and costs 64 MiB and a core's tenth of a second for every new repository. So the
//! server derives one [`Kek`] from its secret at start-up (argon2id, [`KekSalt`] kept in the
//! database), and seals each managed key under it with XChaCha20-Poly1305. The associated
//! data binds the blob to what it is for (GUN, role, key ID), so a row moved to another
//! repository or role does not open.
//!
//! A wrapped key is two lines: a JSON header (`format`, `version`, `cipher`, `key_id`) and
//! the hex of nonce, ciphertext (the 32-byte ed25519 seed) and tag. The header line is part
//! of the associated data too.

use std::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keyfile::{WireKdf, random};
use crate::private_key::SEED_LEN;
use crate::{Error, KdfParams, PrivateKey, Result};

const FORMAT_NAME: &str = "notar-wrapped";
const FORMAT_VERSION: u64 = 1;
const CIPHER: &str = "xchacha20-poly1305";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEK_LEN: usize = 32;
/// Longest wrapped key accepted: header and hex body are a few hundred bytes.
const MAX_WRAPPED_LEN: usize = 4096;

/// How a [`Kek`] is derived from the server secret: argon2id parameters, salt and check
/// value, as JSON text (the key file's `kdf` object). Public; kept in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KekSalt(String);

impl KekSalt {
    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Stored text, checked when the KEK is derived.
    pub fn from_stored(text: String) -> Self {
        KekSalt(text)
    }
}

/// The key-encryption key. Wiped on drop; `Debug` shows nothing of it.
pub struct Kek(Zeroizing<[u8; KEK_LEN]>);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u64,
    cipher: String,
    key_id: String,
    /// Absent for ed25519 (the body is its seed); `ecdsa-p256` for a P-256 key (the body
    /// is its scalar), as imported from notary-signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    algorithm: Option<String>,
}

fn wrap_error(reason: &str) -> Error {
    Error::Sealed {
        purpose: "managed key".to_owned(),
        reason: reason.to_owned(),
    }
}

impl Kek {
    /// A new KEK from `secret` with a fresh salt and `params`, and the salt to store.
    /// Runs argon2id: call it from blocking context.
    pub fn create(secret: &str, params: KdfParams) -> Result<(Kek, KekSalt)> {
        if secret.is_empty() {
            return Err(wrap_error("the server secret is empty"));
        }
        let (kdf, derived) = WireKdf::fresh(params, secret)?;
        let text = serde_json::to_string(&kdf).map_err(|_| wrap_error("the KDF header"))?;
        Ok((Kek::from_derived(derived.as_ref()), KekSalt(text)))
    }

    /// The KEK `secret` derives with the stored `salt`. A secret other than the one the
    /// salt was made with is refused (the check value differs) before anything is opened.
    /// Runs argon2id: call it from blocking context.
    pub fn derive(secret: &str, salt: &KekSalt) -> Result<Kek> {
        let kdf: WireKdf = serde_json::from_str(&salt.0)
            .map_err(|_| wrap_error("the stored KEK salt is not a KDF header"))?;
        let derived = kdf.derive_checked(secret)?.ok_or_else(|| {
            wrap_error("the server secret is not the one the stored keys were sealed under")
        })?;
        Ok(Kek::from_derived(derived.as_ref()))
    }

    fn from_derived(derived: &[u8]) -> Kek {
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        key.copy_from_slice(&derived[..KEK_LEN]);
        Kek(key)
    }

    /// Seals `key` for `context` (what it is for, such as GUN, role and key ID).
    pub fn wrap(&self, key: &PrivateKey, context: &str) -> Result<Vec<u8>> {
        let header = Header {
            format: FORMAT_NAME.to_owned(),
            version: FORMAT_VERSION,
            cipher: CIPHER.to_owned(),
            key_id: key.key_id().to_string(),
            algorithm: match key.algorithm() {
                crate::Algorithm::Ed25519 => None,
                other => Some(other.name().to_owned()),
            },
        };
        let line = serde_json::to_string(&header).map_err(|_| wrap_error("the header"))?;
        let nonce: [u8; NONCE_LEN] = random()?;
        let mut body = key.secret_bytes();
        let tag = self
            .cipher()
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &associated(&line, context),
                body.as_mut(),
            )
            .map_err(|_| Error::Encrypt)?;
        Ok(crate::sealed::join_two_lines(
            line,
            &[&nonce, body.as_ref(), &tag],
        ))
    }

    /// Opens a blob made by [`Kek::wrap`] for the same `context`. Another KEK, another
    /// context, an edited header or body: all refused, and nothing is returned.
    pub fn unwrap(&self, blob: &[u8], context: &str) -> Result<PrivateKey> {
        let (line, raw) = crate::sealed::two_lines(blob, MAX_WRAPPED_LEN).map_err(wrap_error)?;
        let header: Header =
            serde_json::from_str(line).map_err(|_| wrap_error("its header is not readable"))?;
        if header.format != FORMAT_NAME || header.version != FORMAT_VERSION {
            return Err(wrap_error("it is not a version 1 wrapped key"));
        }
        if header.cipher != CIPHER {
            return Err(wrap_error("it uses a cipher this build does not know"));
        }
        if raw.len() != NONCE_LEN + SEED_LEN + TAG_LEN {
            return Err(wrap_error("its body has the wrong length"));
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(SEED_LEN);
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        seed.copy_from_slice(ciphertext);
        self.cipher()
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                &associated(line, context),
                seed.as_mut(),
                Tag::from_slice(tag),
            )
            .map_err(|_| wrap_error("it does not open under this KEK for this key"))?;
        let algorithm = match header.algorithm.as_deref() {
            None => crate::Algorithm::Ed25519,
            Some(name) => crate::Algorithm::from_name(name)
                .ok_or_else(|| wrap_error("its key algorithm is not known to this build"))?,
        };
        let key = PrivateKey::from_secret(algorithm, &seed)
            .map_err(|_| wrap_error("its secret is not a key of its algorithm"))?;
        if key.key_id().as_str() != header.key_id {
            return Err(wrap_error("it holds another key than its header names"));
        }
        Ok(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(self.0.as_ref()))
    }
}

/// Whether `blob` is a wrapped key (rather than a passphrase-encrypted key file).
pub fn is_wrapped(blob: &[u8]) -> bool {
    blob.starts_with(br#"{"format":"notar-wrapped""#)
}

fn associated(line: &str, context: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 1 + context.len());
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(context.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    fn fresh(secret: &str) -> (Kek, KekSalt) {
        Kek::create(secret, KdfParams::for_tests()).unwrap()
    }

    #[test]
    fn a_wrapped_key_opens_only_under_its_kek_and_context() {
        let (kek, salt) = fresh("server secret");
        let key = PrivateKey::generate().unwrap();
        let blob = kek.wrap(&key, "example.com/app\ntimestamp").unwrap();
        assert!(is_wrapped(&blob));
        let again = Kek::derive("server secret", &salt).unwrap();
        let opened = again.unwrap(&blob, "example.com/app\ntimestamp").unwrap();
        assert_eq!(opened.key_id(), key.key_id());

        // Another context (GUN or role), another KEK, a wrong secret: refused.
        assert!(again.unwrap(&blob, "example.com/other\ntimestamp").is_err());
        assert!(again.unwrap(&blob, "example.com/app\nsnapshot").is_err());
        let (other, _) = fresh("server secret");
        assert!(other.unwrap(&blob, "example.com/app\ntimestamp").is_err());
        assert!(Kek::derive("another secret", &salt).is_err());
    }

    #[test]
    fn a_p256_key_wraps_and_opens_as_itself() {
        let (kek, _) = fresh("server secret");
        let key = PrivateKey::p256_from_scalar(&[9; 32]).unwrap();
        let blob = kek.wrap(&key, "ctx").unwrap();
        assert!(String::from_utf8_lossy(&blob).contains(r#""algorithm":"ecdsa-p256""#));
        let opened = kek.unwrap(&blob, "ctx").unwrap();
        assert_eq!(opened.key_id(), key.key_id());
        assert_eq!(opened.algorithm(), crate::Algorithm::EcdsaP256);
        // An ed25519 wrap has no algorithm field: its format is unchanged.
        let ed = kek.wrap(&PrivateKey::generate().unwrap(), "ctx").unwrap();
        assert!(!String::from_utf8_lossy(&ed).contains("algorithm"));
    }

    #[test]
    fn edits_to_a_wrapped_key_are_refused() {
        let (kek, _) = fresh("server secret");
        let key = PrivateKey::generate().unwrap();
        let blob = kek.wrap(&key, "ctx").unwrap();
        let text = String::from_utf8(blob.clone()).unwrap();
        let (line, body) = text.split_once('\n').unwrap();
        // A flipped body byte.
        let mut flipped = body.as_bytes().to_vec();
        flipped[60] = if flipped[60] == b'0' { b'1' } else { b'0' };
        let edited = format!("{line}\n{}", String::from_utf8(flipped).unwrap());
        assert!(kek.unwrap(edited.as_bytes(), "ctx").is_err());
        // A header that names another key ID (the header is associated data too).
        let other = PrivateKey::generate().unwrap();
        let renamed = text.replace(key.key_id().as_str(), other.key_id().as_str());
        assert!(kek.unwrap(renamed.as_bytes(), "ctx").is_err());
        // Truncated.
        assert!(kek.unwrap(&blob[..blob.len() / 2], "ctx").is_err());
    }

    #[test]
    fn nothing_secret_in_debug() {
        let (kek, _) = fresh("server secret");
        assert_eq!(format!("{kek:?}"), "Kek(..)");
    }
}
