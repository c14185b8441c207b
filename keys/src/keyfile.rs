//! The encrypted key file format, version 1, specified in `keys/FORMAT.md`.
//!
//! A file is one line of JSON header and one line of hex: the nonce, the key's 32 secret
//! bytes (an ed25519 seed or a P-256 scalar, as the header's `algorithm` says) sealed with
//! XChaCha20-Poly1305, and the tag. The cipher key comes from the passphrase
//! through argon2id; the header bytes, exactly as stored, are the associated data, so a
//! header cannot be edited or moved onto another key's ciphertext without failing to
//! decrypt. The server uses the same functions to keep its managed keys in its database.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use notar_tuf::{Gun, KeyId};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::private_key::SEED_LEN;
use crate::{Algorithm, Error, KdfParams, KeyRole, PrivateKey, Result};

/// The `format` field of every key file header.
pub const FORMAT_NAME: &str = "notar-key";
/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u64 = 1;
/// Key files are a few hundred bytes; anything much larger is not one and is not read.
pub const MAX_FILE_LEN: usize = 64 * 1024;

const KDF_NAME: &str = "argon2id";
const CIPHER: &str = "xchacha20-poly1305";
const SALT_LEN: usize = 16;
const MAX_SALT_LEN: usize = 64;
const CHECK_LEN: usize = 16;
const CIPHER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const BODY_LEN: usize = NONCE_LEN + SEED_LEN + TAG_LEN;

/// What a key file says about its key, readable without the passphrase.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyHeader {
    /// The key ID the file claims; checked against the decrypted key when it is unlocked.
    pub key_id: KeyId,
    pub role: KeyRole,
    /// The repository the key belongs to; `None` for keys shared across repositories
    /// (root, delegation).
    pub gun: Option<Gun>,
    /// The cost of unlocking the file.
    pub kdf: KdfParams,
}

/// The header as it is written: field order here is the order in the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    format: String,
    version: u64,
    key_id: KeyId,
    role: KeyRole,
    gun: Option<Gun>,
    algorithm: String,
    kdf: WireKdf,
    cipher: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireKdf {
    pub(crate) name: String,
    pub(crate) m_cost_kib: u32,
    pub(crate) t_cost: u32,
    pub(crate) p_cost: u32,
    /// Hex.
    pub(crate) salt: String,
    /// Hex of derived bytes 32..48: tells a wrong passphrase from a damaged file.
    pub(crate) check: String,
}

impl WireKdf {
    /// A new random salt for `params`, and what `passphrase` derives with it: the cipher
    /// key (first 32 bytes) and the check the header stores.
    pub(crate) fn fresh(
        params: KdfParams,
        passphrase: &str,
    ) -> Result<(Self, Zeroizing<[u8; crate::kdf::DERIVED_LEN]>)> {
        let salt: [u8; SALT_LEN] = random()?;
        let derived = params.derive(passphrase.as_bytes(), &salt)?;
        let kdf = WireKdf {
            name: KDF_NAME.to_owned(),
            m_cost_kib: params.m_cost_kib(),
            t_cost: params.t_cost(),
            p_cost: params.p_cost(),
            salt: hex::encode(salt),
            check: hex::encode(&derived[CIPHER_KEY_LEN..CIPHER_KEY_LEN + CHECK_LEN]),
        };
        Ok((kdf, derived))
    }

    /// What `passphrase` derives under these stored parameters, or `None` when the check
    /// says it is not the passphrase they were made with. Parameters outside the limits
    /// and malformed hex are errors, found before argon2id runs.
    pub(crate) fn derive_checked(
        &self,
        passphrase: &str,
    ) -> Result<Option<Zeroizing<[u8; crate::kdf::DERIVED_LEN]>>> {
        if self.name != KDF_NAME {
            return Err(Error::corrupt(format!("unknown KDF {:?}", self.name)));
        }
        let params = KdfParams::from_file(self.m_cost_kib, self.t_cost, self.p_cost)?;
        let salt = hex::decode(&self.salt)
            .ok()
            .filter(|salt| (SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()))
            .ok_or_else(|| Error::corrupt("the salt is not 16 to 64 bytes of hex"))?;
        let check = decode_exact::<CHECK_LEN>(&self.check)
            .ok_or_else(|| Error::corrupt(format!("the check is not {CHECK_LEN} bytes of hex")))?;
        let derived = params.derive(passphrase.as_bytes(), &salt)?;
        // The check is public, so a plain comparison leaks nothing.
        Ok((derived[CIPHER_KEY_LEN..CIPHER_KEY_LEN + CHECK_LEN] == check).then_some(derived))
    }
}

/// The two fields read before anything else, so that other files and other versions get
/// a precise message rather than a parse error.
#[derive(Deserialize)]
struct Probe {
    format: Option<String>,
    version: Option<u64>,
}

/// A parsed key file, not yet decrypted.
struct Sealed<'a> {
    /// The header line exactly as stored: the associated data.
    aad: &'a [u8],
    algorithm: Algorithm,
    header: KeyHeader,
    salt: Vec<u8>,
    check: [u8; CHECK_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: [u8; SEED_LEN],
    tag: [u8; TAG_LEN],
}

/// Encrypts `key` under `passphrase` into the bytes of a key file.
///
/// This runs argon2id with `params`: call it from blocking context (or through
/// [`crate::KeyStore::save_async`]). An empty passphrase is refused.
pub fn encrypt_key(
    key: &PrivateKey,
    role: KeyRole,
    gun: Option<&Gun>,
    passphrase: &str,
    params: KdfParams,
) -> Result<Vec<u8>> {
    let secret = key.secret_bytes();
    seal(
        key.algorithm(),
        &secret,
        key.key_id(),
        role,
        gun,
        passphrase,
        params,
    )
}

/// Decrypts the key in a key file.
///
/// Fails with [`Error::WrongPassphrase`] for a wrong passphrase, [`Error::Tampered`] when
/// the header or ciphertext was changed, [`Error::KeyIdMismatch`] when the key is not the
/// one the header names, and [`Error::Corrupt`], [`Error::UnsupportedVersion`],
/// [`Error::Unsupported`] or [`Error::UnsafeKdfParams`] (before any key derivation) when
/// the file cannot be read. Runs argon2id: call it from blocking context.
pub fn decrypt_key(bytes: &[u8], passphrase: &str) -> Result<PrivateKey> {
    let sealed = parse(bytes)?;
    let header = &sealed.header;
    let derived = header.kdf.derive(passphrase.as_bytes(), &sealed.salt)?;
    let (cipher_key, rest) = derived.split_at(CIPHER_KEY_LEN);
    // The check is public (it is in the header), so a plain comparison leaks nothing.
    if rest[..CHECK_LEN] != sealed.check {
        return Err(Error::WrongPassphrase {
            role: header.role,
            key_id: header.key_id.clone(),
        });
    }
    let mut seed = Zeroizing::new(sealed.ciphertext);
    XChaCha20Poly1305::new(Key::from_slice(cipher_key))
        .decrypt_in_place_detached(
            XNonce::from_slice(&sealed.nonce),
            sealed.aad,
            seed.as_mut(),
            Tag::from_slice(&sealed.tag),
        )
        .map_err(|_| Error::Tampered {
            path: None,
            role: header.role,
            key_id: header.key_id.clone(),
        })?;
    let key = PrivateKey::from_secret(sealed.algorithm, &seed).map_err(|_| Error::Tampered {
        path: None,
        role: header.role,
        key_id: header.key_id.clone(),
    })?;
    if key.key_id() != &header.key_id {
        return Err(Error::KeyIdMismatch {
            path: None,
            expected: header.key_id.clone(),
            actual: key.key_id().clone(),
        });
    }
    Ok(key)
}

/// Reads a key file's header without the passphrase. The whole file is checked for shape
/// (a truncated file fails here too), but nothing is decrypted or authenticated.
pub fn read_header(bytes: &[u8]) -> Result<KeyHeader> {
    parse(bytes).map(|sealed| sealed.header)
}

/// Seals `seed`, the secret of an `algorithm` key, under a header naming `key_id`. Separate
/// from [`encrypt_key`] so that the store can seal a copy on a blocking thread, and tests can
/// write a lying header.
pub(crate) fn seal(
    algorithm: Algorithm,
    seed: &[u8; SEED_LEN],
    key_id: &KeyId,
    role: KeyRole,
    gun: Option<&Gun>,
    passphrase: &str,
    params: KdfParams,
) -> Result<Vec<u8>> {
    if passphrase.is_empty() {
        return Err(Error::EmptyPassphrase {
            role,
            key_id: key_id.clone(),
        });
    }
    let nonce: [u8; NONCE_LEN] = random()?;
    let (kdf, derived) = WireKdf::fresh(params, passphrase)?;
    let cipher_key = &derived[..CIPHER_KEY_LEN];
    let header = WireHeader {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        key_id: key_id.clone(),
        role,
        gun: gun.cloned(),
        algorithm: algorithm.name().to_owned(),
        kdf,
        cipher: CIPHER.to_owned(),
    };
    let header_line = serialize_header(&header);

    let mut sealed_seed = Zeroizing::new(*seed);
    let tag = XChaCha20Poly1305::new(Key::from_slice(cipher_key))
        .encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            header_line.as_bytes(),
            sealed_seed.as_mut(),
        )
        .map_err(|_| Error::Encrypt)?;

    let mut body = Vec::with_capacity(BODY_LEN);
    body.extend_from_slice(&nonce);
    body.extend_from_slice(sealed_seed.as_ref());
    body.extend_from_slice(&tag);

    let mut file = header_line.into_bytes();
    file.push(b'\n');
    file.extend_from_slice(hex::encode(body).as_bytes());
    file.push(b'\n');
    Ok(file)
}

#[expect(
    clippy::expect_used,
    reason = "a struct of strings, integers and validated names always serialises"
)]
fn serialize_header(header: &WireHeader) -> String {
    serde_json::to_string(header).expect("key file header serialises")
}

fn parse(bytes: &[u8]) -> Result<Sealed<'_>> {
    if bytes.len() > MAX_FILE_LEN {
        return Err(Error::corrupt(format!(
            "it is {} bytes long, and key files are under {MAX_FILE_LEN} bytes",
            bytes.len()
        )));
    }
    if bytes.is_empty() {
        return Err(Error::corrupt("it is empty"));
    }
    let (aad, body) = match bytes.iter().position(|&b| b == b'\n') {
        Some(newline) => (&bytes[..newline], Some(&bytes[newline + 1..])),
        None => (bytes, None),
    };

    let probe: Probe = serde_json::from_slice(aad).map_err(|e| {
        Error::corrupt(format!(
            "its first line is not a notar key header (truncated?): {e}"
        ))
    })?;
    if probe.format.as_deref() != Some(FORMAT_NAME) {
        return Err(Error::corrupt(format!(
            "its header lacks \"format\": \"{FORMAT_NAME}\""
        )));
    }
    match probe.version {
        Some(FORMAT_VERSION) => {}
        Some(version) => {
            return Err(Error::UnsupportedVersion {
                path: None,
                version,
            });
        }
        None => return Err(Error::corrupt("its header has no format version")),
    }

    let wire: WireHeader =
        serde_json::from_slice(aad).map_err(|e| Error::corrupt(format!("invalid header: {e}")))?;
    let unsupported = |what: String| Error::Unsupported { path: None, what };
    let algorithm = Algorithm::from_name(&wire.algorithm)
        .ok_or_else(|| unsupported(format!("key algorithm {:?}", wire.algorithm)))?;
    if wire.kdf.name != KDF_NAME {
        return Err(unsupported(format!(
            "key derivation function {:?}",
            wire.kdf.name
        )));
    }
    if wire.cipher != CIPHER {
        return Err(unsupported(format!("cipher {:?}", wire.cipher)));
    }
    let kdf = KdfParams::from_file(wire.kdf.m_cost_kib, wire.kdf.t_cost, wire.kdf.p_cost)?;
    let salt = hex::decode(&wire.kdf.salt)
        .ok()
        .filter(|salt| (SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()))
        .ok_or_else(|| {
            Error::corrupt(format!(
                "the salt is not {SALT_LEN} to {MAX_SALT_LEN} bytes of hex"
            ))
        })?;
    let check = decode_exact::<CHECK_LEN>(&wire.kdf.check)
        .ok_or_else(|| Error::corrupt(format!("the check is not {CHECK_LEN} bytes of hex")))?;

    let body = body.ok_or_else(|| Error::corrupt("it ends after the header (truncated?)"))?;
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    if body.len() != 2 * BODY_LEN {
        return Err(Error::corrupt(format!(
            "the encrypted key is {} hex digits long, expected {}{}",
            body.len(),
            2 * BODY_LEN,
            if body.len() < 2 * BODY_LEN {
                " (truncated?)"
            } else {
                ""
            }
        )));
    }
    let body = std::str::from_utf8(body)
        .ok()
        .and_then(decode_exact::<BODY_LEN>)
        .ok_or_else(|| Error::corrupt("the encrypted key is not hex"))?;
    let (nonce, rest) = body.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(SEED_LEN);

    Ok(Sealed {
        aad,
        algorithm,
        header: KeyHeader {
            key_id: wire.key_id,
            role: wire.role,
            gun: wire.gun,
            kdf,
        },
        salt,
        check,
        nonce: to_array(nonce),
        ciphertext: to_array(ciphertext),
        tag: to_array(tag),
    })
}

fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Copies a slice whose length the caller has fixed by construction.
fn to_array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

/// `N` bytes from the operating system's random number generator.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    OsRng.try_fill_bytes(&mut out).map_err(Error::Random)?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use notar_tuf::Signer;
    use serde_json::Value;

    use super::*;

    /// A change to a parsed header.
    type Edit = Box<dyn FnOnce(&mut Value)>;

    pub(crate) const PASS: &str = "correct horse battery staple";

    pub(crate) fn gun() -> Gun {
        Gun::new("localhost:5000/team/app").expect("valid GUN")
    }

    fn encrypted(role: KeyRole, gun: Option<&Gun>) -> (PrivateKey, Vec<u8>) {
        let key = PrivateKey::generate().expect("rng");
        let file = encrypt_key(&key, role, gun, PASS, KdfParams::for_tests()).expect("encrypts");
        (key, file)
    }

    fn lines(file: &[u8]) -> (String, String) {
        let text = String::from_utf8(file.to_vec()).expect("utf-8");
        let (header, body) = text.split_once('\n').expect("two lines");
        (header.to_owned(), body.to_owned())
    }

    /// The file with its header parsed, changed by `edit`, and written back compactly.
    fn edit_header(file: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let (header, body) = lines(file);
        let mut value: Value = serde_json::from_str(&header).expect("json header");
        edit(&mut value);
        format!("{value}\n{body}").into_bytes()
    }

    /// The file with one byte of its binary body (nonce, ciphertext or tag) flipped.
    fn flip_body_byte(file: &[u8], index: usize) -> Vec<u8> {
        let (header, body) = lines(file);
        let mut raw = hex::decode(body.trim_end()).expect("hex body");
        raw[index] ^= 0x01;
        format!("{header}\n{}\n", hex::encode(raw)).into_bytes()
    }

    fn assert_secret_free(err: &Error) {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(PASS), "{text}");
            assert!(!text.contains("horse"), "{text}");
        }
    }

    /// `fixtures/format-v1/targets.key`: written by an earlier build; see its README.
    #[test]
    fn the_version_1_fixture_still_reads_and_decrypts() {
        let file = include_bytes!("../fixtures/format-v1/targets.key");
        let key_id = "63d00ee3cf4f5c61ad94efa696c68f13b608fe56ecea13fb144a6fd18e9235b9";
        let header = read_header(file).expect("header");
        assert_eq!(header.key_id.as_str(), key_id);
        assert_eq!(header.role, KeyRole::Targets);
        assert_eq!(
            header.gun.expect("has a GUN").as_str(),
            "localhost:5000/notar/fixture"
        );
        assert_eq!(header.kdf, KdfParams::for_tests());
        let key = decrypt_key(file, "fixture passphrase").expect("decrypts");
        assert_eq!(key.key_id().as_str(), key_id);
        let seed: [u8; SEED_LEN] = core::array::from_fn(|i| u8::try_from(i).expect("< 32"));
        assert_eq!(*key.secret_bytes(), seed);
        assert!(matches!(
            decrypt_key(file, "fixture passphrase!"),
            Err(Error::WrongPassphrase { .. })
        ));
    }

    #[test]
    fn round_trip_restores_the_same_key() {
        let gun = gun();
        let (key, file) = encrypted(KeyRole::Targets, Some(&gun));
        let restored = decrypt_key(&file, PASS).expect("decrypts");
        assert_eq!(restored.key_id(), key.key_id());
        assert_eq!(*restored.secret_bytes(), *key.secret_bytes());
        let verifier = key.public_key().verifier().expect("ed25519");
        assert!(verifier.verify(b"m", &Signer::sign(&restored, b"m")));

        let header = read_header(&file).expect("header");
        assert_eq!(header.key_id, *key.key_id());
        assert_eq!(header.role, KeyRole::Targets);
        assert_eq!(header.gun, Some(gun));
        assert_eq!(header.kdf, KdfParams::for_tests());
    }

    #[test]
    fn p256_keys_round_trip_and_their_algorithm_is_authenticated() {
        let key = PrivateKey::p256_from_scalar(&[9; 32]).expect("scalar");
        let file = encrypt_key(
            &key,
            KeyRole::Delegation,
            None,
            PASS,
            KdfParams::for_tests(),
        )
        .expect("encrypts");
        let (header, _) = lines(&file);
        assert!(header.contains(r#""algorithm":"ecdsa-p256""#), "{header}");
        let restored = decrypt_key(&file, PASS).expect("decrypts");
        assert_eq!(restored.algorithm(), Algorithm::EcdsaP256);
        assert_eq!(restored.key_id(), key.key_id());
        let verifier = key.public_key().verifier().expect("P-256");
        assert!(verifier.verify(b"m", &Signer::sign(&restored, b"m")));

        // Calling the same 32 bytes an ed25519 seed: the header is authenticated data.
        let relabelled = edit_header(&file, |h| h["algorithm"] = "ed25519".into());
        let err = decrypt_key(&relabelled, PASS).expect_err("relabelled");
        assert!(matches!(err, Error::Tampered { .. }), "{err:?}");
        let unknown = edit_header(&file, |h| h["algorithm"] = "ecdsa-p384".into());
        let err = decrypt_key(&unknown, PASS).expect_err("unknown algorithm");
        assert!(err.to_string().contains("ecdsa-p384"), "{err}");
    }

    #[test]
    fn file_is_a_json_header_line_and_a_hex_line() {
        let (key, file) = encrypted(KeyRole::Root, None);
        let (header, body) = lines(&file);
        assert!(
            header.starts_with(r#"{"format":"notar-key","version":1,"key_id":""#),
            "{header}"
        );
        assert!(header.contains(r#""role":"root","gun":null,"algorithm":"ed25519""#));
        assert!(header.contains(
            r#""kdf":{"name":"argon2id","m_cost_kib":8192,"t_cost":1,"p_cost":1,"salt":""#
        ));
        assert!(
            header.ends_with(r#","cipher":"xchacha20-poly1305"}"#),
            "{header}"
        );
        assert!(header.contains(key.key_id().as_str()));
        assert_eq!(body, format!("{}\n", &body[..144]));
        assert!(!String::from_utf8_lossy(&file).contains(&hex::encode(*key.secret_bytes())));
    }

    #[test]
    fn two_encryptions_of_one_key_differ_in_salt_and_nonce() {
        let key = PrivateKey::generate().expect("rng");
        let params = KdfParams::for_tests();
        let a = encrypt_key(&key, KeyRole::Root, None, PASS, params).expect("encrypts");
        let b = encrypt_key(&key, KeyRole::Root, None, PASS, params).expect("encrypts");
        assert_ne!(lines(&a).0, lines(&b).0);
        assert_ne!(lines(&a).1, lines(&b).1);
    }

    #[test]
    fn wrong_passphrase_names_role_and_short_key_id() {
        let (key, file) = encrypted(KeyRole::Targets, Some(&gun()));
        let err = decrypt_key(&file, "correct horse battery stapler").expect_err("wrong");
        assert!(matches!(err, Error::WrongPassphrase { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("wrong passphrase for targets key {}", key.key_id().short())
        );
        assert_secret_free(&err);
        assert!(matches!(
            decrypt_key(&file, ""),
            Err(Error::WrongPassphrase { .. })
        ));
    }

    #[test]
    fn empty_passphrase_is_refused_when_encrypting() {
        let key = PrivateKey::generate().expect("rng");
        let err = encrypt_key(&key, KeyRole::Root, None, "", KdfParams::for_tests())
            .expect_err("empty passphrase");
        assert_eq!(
            err.to_string(),
            format!("empty passphrase for root key {}", key.key_id().short())
        );
    }

    #[test]
    fn truncated_files_are_corrupt_at_every_length() {
        let (_, file) = encrypted(KeyRole::Snapshot, None);
        let header_len = lines(&file).0.len();
        for len in [
            0,
            1,
            header_len / 2,
            header_len,
            header_len + 1,
            header_len + 100,
            file.len() - 2,
        ] {
            let err = decrypt_key(&file[..len], PASS).expect_err("truncated");
            assert!(
                matches!(err, Error::Corrupt { .. }),
                "length {len}: {err:?}"
            );
            assert!(
                err.to_string().starts_with("key file is corrupt: "),
                "{err}"
            );
            assert!(read_header(&file[..len]).is_err(), "length {len}");
        }
        // The final newline is optional.
        assert!(decrypt_key(&file[..file.len() - 1], PASS).is_ok());
    }

    #[test]
    fn flipped_bytes_in_nonce_ciphertext_or_tag_do_not_authenticate() {
        let (key, file) = encrypted(KeyRole::Targets, Some(&gun()));
        for index in [0, NONCE_LEN - 1, NONCE_LEN, NONCE_LEN + 31, BODY_LEN - 1] {
            let err = decrypt_key(&flip_body_byte(&file, index), PASS).expect_err("flipped");
            assert!(
                matches!(err, Error::Tampered { .. }),
                "byte {index}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "key file for targets key {} does not authenticate: its header or encrypted key was altered or damaged",
                    key.key_id().short()
                )
            );
            assert_secret_free(&err);
        }
    }

    #[test]
    fn edited_headers_do_not_decrypt() {
        let (_, file) = encrypted(KeyRole::Targets, Some(&gun()));
        let other_id = PrivateKey::generate().expect("rng").key_id().to_string();
        let tampering: Vec<(&str, Edit)> = vec![
            ("role", Box::new(|h| h["role"] = "root".into())),
            (
                "gun",
                Box::new(|h| h["gun"] = "localhost:5000/team/other".into()),
            ),
            ("gun removed", Box::new(|h| h["gun"] = Value::Null)),
            ("key id", Box::new(move |h| h["key_id"] = other_id.into())),
        ];
        for (what, edit) in tampering {
            let err = decrypt_key(&edit_header(&file, edit), PASS).expect_err(what);
            assert!(matches!(err, Error::Tampered { .. }), "{what}: {err:?}");
        }

        // Parameters that feed the KDF change the derived key, so the check fails first.
        let kdf_edits: Vec<(&str, Edit)> = vec![
            ("m_cost", Box::new(|h| h["kdf"]["m_cost_kib"] = 8200.into())),
            ("t_cost", Box::new(|h| h["kdf"]["t_cost"] = 2.into())),
            ("p_cost", Box::new(|h| h["kdf"]["p_cost"] = 2.into())),
            (
                "salt",
                Box::new(|h| h["kdf"]["salt"] = "00".repeat(16).into()),
            ),
        ];
        for (what, edit) in kdf_edits {
            let err = decrypt_key(&edit_header(&file, edit), PASS).expect_err(what);
            assert!(
                matches!(err, Error::WrongPassphrase { .. }),
                "{what}: {err:?}"
            );
        }

        // Even a change that keeps the JSON meaning changes the authenticated bytes.
        let (header, body) = lines(&file);
        let spaced = format!("{}\n{body}", header.replacen(':', ": ", 1));
        assert!(matches!(
            decrypt_key(spaced.as_bytes(), PASS),
            Err(Error::Tampered { .. })
        ));

        // Unknown fields are refused outright.
        let extra = edit_header(&file, |h| h["comment"] = "hi".into());
        let err = decrypt_key(&extra, PASS).expect_err("unknown field");
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("unknown field `comment`"), "{err}");
    }

    #[test]
    fn a_header_moved_onto_another_keys_ciphertext_does_not_decrypt() {
        let (_, first) = encrypted(KeyRole::Targets, Some(&gun()));
        let (_, second) = encrypted(KeyRole::Targets, Some(&gun()));
        let spliced = format!("{}\n{}", lines(&first).0, lines(&second).1);
        let err = decrypt_key(spliced.as_bytes(), PASS).expect_err("spliced");
        assert!(matches!(err, Error::Tampered { .. }), "{err:?}");
    }

    #[test]
    fn a_header_naming_another_key_is_detected_after_decryption() {
        let key = PrivateKey::generate().expect("rng");
        let other = PrivateKey::generate().expect("rng");
        let file = seal(
            Algorithm::Ed25519,
            &key.secret_bytes(),
            other.key_id(),
            KeyRole::Targets,
            None,
            PASS,
            KdfParams::for_tests(),
        )
        .expect("seals");
        let err = decrypt_key(&file, PASS).expect_err("lying header");
        assert!(matches!(err, Error::KeyIdMismatch { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "key file should hold key {} but holds key {}",
                other.key_id().short(),
                key.key_id().short()
            )
        );
    }

    #[test]
    fn other_versions_formats_and_algorithms_are_refused_by_name() {
        let (_, file) = encrypted(KeyRole::Root, None);

        let v2 = edit_header(&file, |h| {
            h["version"] = 2.into();
            h["new_field"] = true.into();
        });
        let err = read_header(&v2).expect_err("version 2");
        assert!(
            matches!(err, Error::UnsupportedVersion { version: 2, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "key file has format version 2, but this build of notar reads only version 1"
        );

        let pem =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n";
        assert!(matches!(read_header(pem), Err(Error::Corrupt { .. })));
        let other_json = edit_header(&file, |h| h["format"] = "something-else".into());
        assert!(matches!(
            read_header(&other_json),
            Err(Error::Corrupt { .. })
        ));

        let rsa = edit_header(&file, |h| h["algorithm"] = "rsa".into());
        let err = read_header(&rsa).expect_err("rsa");
        assert_eq!(
            err.to_string(),
            "key file uses key algorithm \"rsa\", which this build of notar does not support"
        );
        let scrypt = edit_header(&file, |h| h["kdf"]["name"] = "scrypt".into());
        assert!(matches!(
            read_header(&scrypt),
            Err(Error::Unsupported { .. })
        ));
        let aes = edit_header(&file, |h| h["cipher"] = "aes-256-gcm".into());
        assert!(matches!(read_header(&aes), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn absurd_kdf_parameters_are_refused_before_any_work() {
        let (_, file) = encrypted(KeyRole::Root, None);
        let huge_memory = edit_header(&file, |h| h["kdf"]["m_cost_kib"] = u32::MAX.into());
        let err = decrypt_key(&huge_memory, PASS).expect_err("4 TiB");
        assert!(matches!(err, Error::UnsafeKdfParams { .. }), "{err:?}");
        let many_passes = edit_header(&file, |h| h["kdf"]["t_cost"] = 1_000_000.into());
        assert!(matches!(
            decrypt_key(&many_passes, PASS),
            Err(Error::UnsafeKdfParams { .. })
        ));
        let many_lanes = edit_header(&file, |h| h["kdf"]["p_cost"] = 1000.into());
        assert!(matches!(
            read_header(&many_lanes),
            Err(Error::UnsafeKdfParams { .. })
        ));
    }

    #[test]
    fn malformed_salt_check_and_body_are_corrupt() {
        let (_, file) = encrypted(KeyRole::Root, None);
        let short_salt = edit_header(&file, |h| h["kdf"]["salt"] = "abcd".into());
        assert!(matches!(
            read_header(&short_salt),
            Err(Error::Corrupt { .. })
        ));
        let bad_check = edit_header(&file, |h| h["kdf"]["check"] = "zz".into());
        assert!(matches!(
            read_header(&bad_check),
            Err(Error::Corrupt { .. })
        ));

        let (header, body) = lines(&file);
        let not_hex = format!("{header}\n{}\n", "zz".repeat(BODY_LEN));
        assert!(matches!(
            read_header(not_hex.as_bytes()),
            Err(Error::Corrupt { .. })
        ));
        let trailing = format!("{header}\n{body}more\n");
        assert!(matches!(
            read_header(trailing.as_bytes()),
            Err(Error::Corrupt { .. })
        ));
        let oversized = vec![b' '; MAX_FILE_LEN + 1];
        assert!(matches!(
            read_header(&oversized),
            Err(Error::Corrupt { .. })
        ));
    }
}
