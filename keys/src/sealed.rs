//! Secrets other than ed25519 seeds, sealed under a passphrase the way key files are
//! (argon2id, then XChaCha20-Poly1305 with the header line as associated data).
//!
//! The server keeps its token issuer's ECDSA key this way, under the server secret. A
//! sealed blob is two lines: a JSON header naming its `purpose` and the KDF, and the hex of
//! nonce, ciphertext and tag. Opening checks the purpose, so a blob sealed for one use is
//! never taken for another.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keyfile::{WireKdf, random};
use crate::{Error, KdfParams, Result};

const FORMAT_NAME: &str = "notar-sealed";
const FORMAT_VERSION: u64 = 1;
const KDF_NAME: &str = "argon2id";
const CIPHER: &str = "xchacha20-poly1305";
/// Shortest salt accepted on opening.
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
const CIPHER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Sealed secrets are keys: a few hundred bytes. Larger input is refused unread.
pub const MAX_SECRET_LEN: usize = 16 * 1024;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u64,
    purpose: String,
    kdf: WireKdf,
    cipher: String,
}

/// Seals `secret` under `passphrase` for `purpose`. Runs argon2id: call it from blocking
/// context.
pub fn seal(secret: &[u8], purpose: &str, passphrase: &str, params: KdfParams) -> Result<Vec<u8>> {
    let fail = |reason: &str| Error::Sealed {
        purpose: purpose.to_owned(),
        reason: reason.to_owned(),
    };
    if passphrase.is_empty() {
        return Err(fail("the passphrase is empty"));
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(fail("the secret is too long"));
    }
    let nonce: [u8; NONCE_LEN] = random()?;
    let (kdf, derived) = WireKdf::fresh(params, passphrase)?;
    let cipher_key = &derived[..CIPHER_KEY_LEN];
    let header = Header {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        purpose: purpose.to_owned(),
        kdf,
        cipher: CIPHER.to_owned(),
    };
    let line = serde_json::to_string(&header).map_err(|_| fail("the header does not serialise"))?;
    let mut body = Zeroizing::new(secret.to_vec());
    let tag = XChaCha20Poly1305::new(Key::from_slice(cipher_key))
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), line.as_bytes(), &mut body)
        .map_err(|_| Error::Encrypt)?;
    Ok(join_two_lines(line, &[&nonce, &body, &tag]))
}

/// Opens a blob made by [`seal`] for the same `purpose`. A wrong passphrase, an altered
/// blob and a blob for another purpose are all [`Error::Sealed`], before or without
/// decrypting anything. Runs argon2id: call it from blocking context.
pub fn open(sealed: &[u8], purpose: &str, passphrase: &str) -> Result<Zeroizing<Vec<u8>>> {
    let fail = |reason: &str| Error::Sealed {
        purpose: purpose.to_owned(),
        reason: reason.to_owned(),
    };
    let (line, raw) = two_lines(sealed, 4 * MAX_SECRET_LEN).map_err(fail)?;
    let header: Header =
        serde_json::from_str(line).map_err(|_| fail("its header is not a sealed-secret header"))?;
    if header.format != FORMAT_NAME || header.version != FORMAT_VERSION {
        return Err(fail("it is not a version 1 sealed secret"));
    }
    if header.purpose != purpose {
        return Err(fail(&format!("it was sealed for {:?}", header.purpose)));
    }
    if header.kdf.name != KDF_NAME || header.cipher != CIPHER {
        return Err(fail("it uses a KDF or cipher this build does not know"));
    }
    let params = KdfParams::from_file(header.kdf.m_cost_kib, header.kdf.t_cost, header.kdf.p_cost)?;
    let salt = hex::decode(&header.kdf.salt).map_err(|_| fail("its salt is not hex"))?;
    let check = hex::decode(&header.kdf.check).map_err(|_| fail("its check is not hex"))?;
    if salt.len() < SALT_LEN || check.len() != CHECK_LEN || raw.len() < NONCE_LEN + TAG_LEN {
        return Err(fail("it is truncated"));
    }
    let derived = params.derive(passphrase.as_bytes(), &salt)?;
    let (cipher_key, rest) = derived.split_at(CIPHER_KEY_LEN);
    if rest[..CHECK_LEN] != check[..] {
        return Err(fail("wrong secret"));
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    XChaCha20Poly1305::new(Key::from_slice(cipher_key))
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            line.as_bytes(),
            &mut plain,
            Tag::from_slice(tag),
        )
        .map_err(|_| fail("it was altered or damaged"))?;
    Ok(plain)
}

/// A sealed or wrapped blob: the header `line`, then the hex of `parts` (nonce,
/// ciphertext, tag) on a second line.
pub(crate) fn join_two_lines(line: String, parts: &[&[u8]]) -> Vec<u8> {
    let raw: Vec<u8> = parts.concat();
    let mut out = line.into_bytes();
    out.push(b'\n');
    out.extend_from_slice(hex::encode(raw).as_bytes());
    out.push(b'\n');
    out
}

/// The two lines of a sealed or wrapped blob: the header line, and the bytes of the hex
/// body. The reason in an error is for the caller's message.
pub(crate) fn two_lines(blob: &[u8], max_len: usize) -> Result<(&str, Vec<u8>), &'static str> {
    if blob.len() > max_len {
        return Err("it is too long");
    }
    let text = std::str::from_utf8(blob).map_err(|_| "it is not text")?;
    let (line, body) = text.split_once('\n').ok_or("it has no body (truncated?)")?;
    let raw = hex::decode(body.trim_end()).map_err(|_| "its body is not hex")?;
    Ok((line, raw))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    const PASS: &str = "server secret 0123";

    #[test]
    fn a_sealed_secret_opens_only_with_its_passphrase_and_purpose() {
        let sealed = seal(
            b"issuer key bytes",
            "token issuer",
            PASS,
            KdfParams::for_tests(),
        )
        .expect("seals");
        let text = String::from_utf8(sealed.clone()).expect("text");
        assert!(!text.contains("issuer key bytes"));
        assert_eq!(
            &*open(&sealed, "token issuer", PASS).expect("opens"),
            b"issuer key bytes"
        );
        for (blob, purpose, pass, why) in [
            (sealed.clone(), "token issuer", "wrong", "wrong secret"),
            (sealed.clone(), "something else", PASS, "sealed for"),
            (
                sealed[..sealed.len() / 2].to_vec(),
                "token issuer",
                PASS,
                "",
            ),
        ] {
            let err = open(&blob, purpose, pass).expect_err("refused");
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(why), "{shown}");
            assert!(!shown.contains(PASS), "{shown}");
        }
        // One flipped ciphertext byte: the passphrase check passes, authentication fails.
        let (line, body) = text.split_once('\n').expect("two lines");
        let mut raw = hex::decode(body.trim_end()).expect("hex");
        raw[NONCE_LEN] ^= 1;
        let flipped = format!("{line}\n{}\n", hex::encode(raw));
        let err = open(flipped.as_bytes(), "token issuer", PASS).expect_err("refused");
        assert!(err.to_string().contains("altered"), "{err}");
        assert!(seal(b"x", "p", "", KdfParams::for_tests()).is_err());
    }
}
