//! Opening the JWE in which notary-signer keeps private keys: compact serialisation,
//! `alg` `PBES2-HS256+A128KW`, `enc` `A256GCM` (RFC 7516, RFC 7518 §4.8 and §5.3), under the
//! passphrase of the key's alias (`NOTARY_SIGNER_<ALIAS>`).
//!
//! Only this one combination is accepted, with an iteration count bounded so a hostile row
//! cannot make the import spin. The three primitives are RustCrypto's (`pbkdf2`, `aes-kw`,
//! `aes-gcm`); a general JOSE crate would bring OpenSSL or ring and every other algorithm.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use base64::Engine as _;
use sha2::Sha256;
use zeroize::Zeroizing;

const ALG: &str = "PBES2-HS256+A128KW";
const ENC: &str = "A256GCM";
/// PBKDF2 iterations accepted: jose2go writes 8192 by default (RFC 7518 asks for at least
/// 1000); more than a million is refused rather than computed.
const MIN_ITERATIONS: u32 = 1000;
const MAX_ITERATIONS: u32 = 1_000_000;

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    enc: String,
    p2c: u32,
    p2s: String,
    #[serde(default)]
    zip: Option<String>,
}

/// Why a JWE does not open. Never holds key material or the passphrase.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JweError {
    #[error("not a compact JWE: {0}")]
    Malformed(&'static str),
    #[error("unsupported JWE: {0}")]
    Unsupported(String),
    #[error("the passphrase does not open it (or it was altered)")]
    WrongPassphrase,
}

fn part(text: &str, what: &'static str) -> Result<Vec<u8>, JweError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JweError::Malformed(what))
}

/// The plaintext of `compact`, opened with `passphrase`.
pub fn decrypt(compact: &str, passphrase: &str) -> Result<Zeroizing<Vec<u8>>, JweError> {
    let parts: Vec<&str> = compact.trim().split('.').collect();
    let [protected, wrapped, iv, ciphertext, tag] = parts.as_slice() else {
        return Err(JweError::Malformed("it does not have five parts"));
    };
    let header: Header = serde_json::from_slice(&part(protected, "the header is not base64url")?)
        .map_err(|_| JweError::Malformed("the header is not the expected JSON"))?;
    if header.alg != ALG || header.enc != ENC {
        return Err(JweError::Unsupported(format!(
            "alg {:?} enc {:?} (only {ALG} with {ENC})",
            header.alg, header.enc
        )));
    }
    if header.zip.is_some() {
        return Err(JweError::Unsupported("compressed content".into()));
    }
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&header.p2c) {
        return Err(JweError::Unsupported(format!(
            "{} PBKDF2 iterations (between {MIN_ITERATIONS} and {MAX_ITERATIONS})",
            header.p2c
        )));
    }
    // RFC 7518 §4.8.1.1: the salt is the algorithm's name, a zero byte, then p2s.
    let mut salt = ALG.as_bytes().to_vec();
    salt.push(0);
    salt.extend(part(&header.p2s, "p2s is not base64url")?);
    let mut kek = Zeroizing::new([0u8; 16]);
    pbkdf2::pbkdf2_hmac::<Sha256>(passphrase.as_bytes(), &salt, header.p2c, kek.as_mut());

    let wrapped = part(wrapped, "the encrypted key is not base64url")?;
    if wrapped.len() != 40 {
        return Err(JweError::Malformed(
            "the encrypted key is not a wrapped 256-bit key",
        ));
    }
    let mut cek = Zeroizing::new([0u8; 32]);
    aes_kw::KekAes128::from(*kek)
        .unwrap(&wrapped, cek.as_mut())
        .map_err(|_| JweError::WrongPassphrase)?;

    let iv = part(iv, "the IV is not base64url")?;
    let tag = part(tag, "the tag is not base64url")?;
    if iv.len() != 12 || tag.len() != 16 {
        return Err(JweError::Malformed(
            "the IV or the tag has the wrong length",
        ));
    }
    let mut plaintext = Zeroizing::new(part(ciphertext, "the ciphertext is not base64url")?);
    aes_gcm::Aes256Gcm::new(aes_gcm::Key::<aes_gcm::Aes256Gcm>::from_slice(cek.as_ref()))
        .decrypt_in_place_detached(
            aes_gcm::Nonce::from_slice(&iv),
            protected.as_bytes(),
            &mut plaintext,
            aes_gcm::Tag::from_slice(&tag),
        )
        .map_err(|_| JweError::WrongPassphrase)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a JWE as jose2go does, with the primitives' encrypt sides (test only).
    fn encrypt(plaintext: &[u8], passphrase: &str, p2c: u32) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let p2s = [3u8; 16];
        let header = format!(
            r#"{{"alg":"{ALG}","enc":"{ENC}","p2c":{p2c},"p2s":"{}"}}"#,
            b64(&p2s)
        );
        let protected = b64(header.as_bytes());
        let mut salt = ALG.as_bytes().to_vec();
        salt.push(0);
        salt.extend(p2s);
        let mut kek = [0u8; 16];
        pbkdf2::pbkdf2_hmac::<Sha256>(passphrase.as_bytes(), &salt, p2c, &mut kek);
        let cek = [5u8; 32];
        let mut wrapped = [0u8; 40];
        aes_kw::KekAes128::from(kek)
            .wrap(&cek, &mut wrapped)
            .expect("wrap");
        let iv = [7u8; 12];
        let mut body = plaintext.to_vec();
        let tag = aes_gcm::Aes256Gcm::new(aes_gcm::Key::<aes_gcm::Aes256Gcm>::from_slice(&cek))
            .encrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(&iv),
                protected.as_bytes(),
                &mut body,
            )
            .expect("encrypt");
        format!(
            "{protected}.{}.{}.{}.{}",
            b64(&wrapped),
            b64(&iv),
            b64(&body),
            b64(&tag)
        )
    }

    #[test]
    fn it_opens_with_the_passphrase_only() {
        let jwe = encrypt(b"private key bytes", "alias passphrase", 8192);
        assert_eq!(
            &decrypt(&jwe, "alias passphrase").expect("opens")[..],
            b"private key bytes"
        );
        assert!(matches!(
            decrypt(&jwe, "another passphrase"),
            Err(JweError::WrongPassphrase)
        ));
        let mut parts: Vec<String> = jwe.split('.').map(str::to_owned).collect();
        parts[3] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"altered text!!!!!");
        assert!(matches!(
            decrypt(&parts.join("."), "alias passphrase"),
            Err(JweError::WrongPassphrase)
        ));
    }

    #[test]
    fn other_algorithms_and_extreme_counts_are_refused() {
        let many = encrypt(b"x", "p", 2_000_000);
        assert!(matches!(decrypt(&many, "p"), Err(JweError::Unsupported(_))));
        assert!(matches!(decrypt("a.b.c", "p"), Err(JweError::Malformed(_))));
        let jwe = encrypt(b"x", "p", 1000);
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"dir","enc":"A256GCM","p2c":1000,"p2s":"AAAA"}"#);
        let rest: Vec<&str> = jwe.splitn(2, '.').collect();
        assert!(matches!(
            decrypt(&format!("{header}.{}", rest[1]), "p"),
            Err(JweError::Unsupported(_))
        ));
    }
}
