//! The Notary v1 dialect: parsing it into the one model of this crate, and writing the model
//! back in it.
//!
//! Notary 0.7 and `docker trust` speak a pre-1.0 TUF: capitalised `_type` (`"Root"`), no
//! `spec_version`, key objects without a `scheme` whose `keytype` names the algorithm
//! (`ed25519`, `ecdsa`, `rsa`, and X.509 certificates as `ecdsa-x509`/`rsa-x509`), base64
//! hashes and signatures, a `method` in each signature, RFC 3339 expiries with nanoseconds,
//! and snapshot and timestamp `meta` keyed by role name (`"targets"`, not `"targets.json"`),
//! without versions, with root listed in snapshot.
//!
//! Everything past this module sees the same [`Root`], [`Targets`], [`Snapshot`] and
//! [`Timestamp`] as for TUF 1.0, so the rulebook ([`crate::rules`]) judges both dialects.
//! What stays in the model: Notary key objects (their key ID is the hash of the object as
//! Notary writes it, which [`PublicKey::key_id`] computes unchanged), meta entries without a
//! version (pinned by hash alone), and the canonical bytes the signatures cover. A
//! repository's dialect is fixed by its first root ([`Dialect::of_bytes`]).
//!
//! Notary signs the canonical JSON of `docker/go/canonical/json`, which, like OLPC canonical
//! JSON, sorts keys, drops whitespace and escapes only `"` and `\` in strings: the bytes
//! [`crate::cjson::to_canonical`] makes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::key::{KeyVal, Signer};
use crate::metadata::{Role, RoleType};
use crate::{Error, Expiry, PathRule, PublicKey, Root, Signature, Signed, Targets, cjson};

/// The two ways metadata is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// TUF 1.0, what Notar writes and python-tuf, tough and go-tuf read.
    Tuf,
    /// Notary v1, what the stock `notary` and `docker trust` clients read and write.
    Notary,
}

impl Dialect {
    /// The dialect of a metadata document: a capitalised `_type` and no `spec_version` is
    /// Notary, a lower-case `_type` is TUF 1.0. A capitalised `_type` beside a
    /// `spec_version` is neither, and refused.
    pub fn of_bytes(bytes: &[u8]) -> Result<Dialect, Error> {
        Self::of_document(bytes, "metadata")
    }

    /// [`Dialect::of_bytes`], naming the document `what` ("targets metadata") in errors.
    pub fn of_document(bytes: &[u8], what: &str) -> Result<Dialect, Error> {
        Self::of_value(&cjson::parse_strict(bytes, what)?)
    }

    fn of_value(document: &Value) -> Result<Dialect, Error> {
        let signed = document.get("signed");
        let kind = signed
            .and_then(|s| s.get("_type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let capitalised = kind.starts_with(|c: char| c.is_ascii_uppercase());
        match (
            capitalised,
            signed.and_then(|s| s.get("spec_version")).is_some(),
        ) {
            (false, _) => Ok(Dialect::Tuf),
            (true, false) => Ok(Dialect::Notary),
            (true, true) => Err(Error::BadRole {
                role: kind.to_ascii_lowercase(),
                reason: format!(
                    "a capitalised _type {kind:?} (Notary) beside a spec_version (TUF 1.0): \
                     the document mixes dialects"
                ),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Tuf => "TUF 1.0",
            Dialect::Notary => "Notary",
        }
    }

    /// Parses `bytes` written in this dialect.
    pub fn parse<T: Role + 'static>(self, bytes: impl Into<Arc<[u8]>>) -> Result<Signed<T>, Error> {
        match self {
            Dialect::Tuf => Signed::from_bytes(bytes),
            Dialect::Notary => parse(bytes),
        }
    }

    /// Signs `signed` and writes it in this dialect.
    pub fn sign<T: Role>(self, signed: T, signers: &[&dyn Signer]) -> Result<Signed<T>, Error> {
        match self {
            Dialect::Tuf => Signed::sign(signed, signers),
            Dialect::Notary => sign(signed, signers),
        }
    }

    /// The key object of `key` as this dialect writes it (its key ID differs between them).
    pub fn key(self, key: &PublicKey) -> Result<PublicKey, Error> {
        match self {
            Dialect::Tuf => Ok(key.clone()),
            Dialect::Notary => notary_key(key),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses bytes in whichever dialect they are written.
pub fn parse_either<T: Role + 'static>(
    bytes: impl Into<Arc<[u8]>>,
) -> Result<(Dialect, Signed<T>), Error> {
    // Parsed once, for the dialect and for the document both.
    let raw: Arc<[u8]> = bytes.into();
    let document = cjson::parse_strict(&raw, &format!("{} metadata", T::TYPE))?;
    match Dialect::of_value(&document)? {
        Dialect::Tuf => Ok((Dialect::Tuf, Signed::from_document(raw, document)?)),
        Dialect::Notary => Ok((Dialect::Notary, parse_document(raw, document)?)),
    }
}

/// The `_type` Notary writes for a role.
fn notary_type(role: RoleType) -> &'static str {
    match role {
        RoleType::Root => "Root",
        RoleType::Targets => "Targets",
        RoleType::Snapshot => "Snapshot",
        RoleType::Timestamp => "Timestamp",
    }
}

#[derive(Deserialize)]
struct NotarySignature {
    keyid: crate::KeyId,
    #[serde(default)]
    method: Option<String>,
    sig: String,
}

#[derive(Deserialize)]
struct Envelope {
    signed: Value,
    signatures: Vec<NotarySignature>,
}

/// The key types the Notary dialect knows.
const KEY_TYPES: [&str; 5] = ["ed25519", "ecdsa", "rsa", "ecdsa-x509", "rsa-x509"];

/// Parses Notary-dialect bytes of role `T`: strict JSON, the capitalised `_type`, no
/// `spec_version`, and every field well-formed. Signatures are not checked here.
pub fn parse<T: Role + 'static>(bytes: impl Into<Arc<[u8]>>) -> Result<Signed<T>, Error> {
    let raw: Arc<[u8]> = bytes.into();
    let document = cjson::parse_strict(&raw, &format!("{} metadata", T::TYPE))?;
    parse_document(raw, document)
}

/// [`parse`] for bytes already parsed (strictly) into `document`.
fn parse_document<T: Role + 'static>(raw: Arc<[u8]>, document: Value) -> Result<Signed<T>, Error> {
    let what = format!("{} metadata", T::TYPE);
    let envelope: Envelope =
        serde_json::from_value(document).map_err(|e| Error::malformed(&what, e))?;
    let expected = notary_type(T::TYPE);
    match envelope.signed.get("_type").and_then(Value::as_str) {
        Some(found) if found == expected => {}
        found => {
            return Err(Error::WrongType {
                expected,
                found: found.unwrap_or("(none)").to_owned(),
            });
        }
    }
    if envelope.signed.get("spec_version").is_some() {
        return Err(Error::BadRole {
            role: T::TYPE.to_string(),
            reason: "Notary metadata carries no spec_version: the document mixes dialects".into(),
        });
    }
    let canonical = cjson::to_canonical(&envelope.signed)?;
    let mut model = envelope.signed;
    to_model(T::TYPE, &mut model)?;
    let mut signed: T = T::deserialize(&model).map_err(|e| Error::malformed(&what, e))?;
    if let Some(targets) = (&mut signed as &mut dyn std::any::Any).downcast_mut::<Targets>()
        && let Some(delegations) = targets.delegations.as_mut()
    {
        for role in &mut delegations.roles {
            role.path_rule = PathRule::Prefix;
        }
    }
    let signatures = envelope
        .signatures
        .into_iter()
        .map(|s| {
            let bytes = crate::key::base64_decode(&s.sig).ok_or_else(|| Error::BadRole {
                role: T::TYPE.to_string(),
                reason: format!("the signature by {} is not base64", s.keyid.short()),
            })?;
            let mut extra = BTreeMap::new();
            if let Some(method) = s.method {
                extra.insert("method".to_owned(), Value::String(method));
            }
            Ok(Signature {
                keyid: s.keyid,
                sig: hex::encode(bytes),
                extra,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Signed::from_dialect(raw, canonical, signed, signatures)
}

/// Signs `signed` as Notary does: the canonical JSON of the Notary form, base64 signatures
/// with their `method`, key IDs of the Notary key objects; `{"signed":…,"signatures":…}`.
pub fn sign<T: Role>(signed: T, signers: &[&dyn Signer]) -> Result<Signed<T>, Error> {
    let mut form = serde_json::to_value(&signed).map_err(|e| Error::Canonical(e.to_string()))?;
    from_model(T::TYPE, &mut form)?;
    let canonical = cjson::to_canonical(&form)?;
    let mut wire = Vec::with_capacity(signers.len());
    let mut model = Vec::with_capacity(signers.len());
    for signer in signers {
        let key = notary_key(&signer.public_key())?;
        let keyid = key.key_id();
        let sig = signer.sign(&canonical);
        let method = match key.keytype.as_str() {
            "ed25519" => "eddsa",
            "ecdsa" | "ecdsa-x509" => "ecdsa",
            _ => "rsapss",
        };
        wire.push(serde_json::json!({
            "keyid": keyid,
            "method": method,
            "sig": base64::engine::general_purpose::STANDARD.encode(&sig),
        }));
        model.push(Signature {
            keyid,
            sig: hex::encode(&sig),
            extra: BTreeMap::from([("method".to_owned(), Value::String(method.into()))]),
        });
    }
    let sigs = cjson::to_canonical(&wire)?;
    let mut raw = Vec::with_capacity(canonical.len() + sigs.len() + 28);
    raw.extend_from_slice(b"{\"signed\":");
    raw.extend_from_slice(&canonical);
    raw.extend_from_slice(b",\"signatures\":");
    raw.extend_from_slice(&sigs);
    raw.push(b'}');
    Signed::from_dialect(raw.into(), canonical, signed, model)
}

/// The Notary key object of a key Notar holds: ed25519 as base64 of the raw 32 bytes, P-256
/// as base64 of its DER SubjectPublicKeyInfo, `"private": null` beside the public part.
/// A key already in Notary form is returned as it is.
pub fn notary_key(key: &PublicKey) -> Result<PublicKey, Error> {
    if key.scheme.is_empty() {
        return Ok(key.clone());
    }
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (keytype, public) = match key.verifier()? {
        crate::key::Verifier::Ed25519(k) => ("ed25519", b64(k.as_bytes())),
        crate::key::Verifier::EcdsaP256(k) => {
            use p256::pkcs8::EncodePublicKey;
            let der = k.to_public_key_der().map_err(|e| Error::BadKey {
                key_id: key.key_id().to_string(),
                reason: format!("encoding the P-256 key: {e}"),
            })?;
            ("ecdsa", b64(der.as_bytes()))
        }
        crate::key::Verifier::RsaPssSha256(_) => {
            return Err(Error::UnsupportedKey {
                keytype: key.keytype.clone(),
                scheme: key.scheme.clone(),
            });
        }
    };
    Ok(PublicKey {
        keytype: keytype.into(),
        scheme: String::new(),
        keyval: KeyVal {
            public,
            extra: BTreeMap::from([("private".to_owned(), Value::Null)]),
        },
        extra: BTreeMap::new(),
    })
}

/// Reads a Notary expiry: RFC 3339, fractions and offsets allowed, kept to the second below
/// (so a role never lives longer here than its signer said).
pub fn parse_expiry(text: &str) -> Result<Expiry, Error> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(Expiry::from_datetime)
        .map_err(|_| Error::InvalidExpiry {
            value: text.to_owned(),
        })
}

fn bad(role: RoleType, reason: impl Into<String>) -> Error {
    Error::BadRole {
        role: role.to_string(),
        reason: reason.into(),
    }
}

/// Rewrites a Notary `signed` object into the model's shape, in place.
fn to_model(role: RoleType, signed: &mut Value) -> Result<(), Error> {
    let object = signed
        .as_object_mut()
        .ok_or_else(|| bad(role, "signed is not an object"))?;
    object.insert("_type".into(), Value::String(role.as_str().into()));
    object.insert("spec_version".into(), Value::String(String::new()));
    let expires = object
        .get("expires")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(role, "no expires"))?;
    let expires = parse_expiry(expires)?;
    object.insert("expires".into(), Value::String(expires.to_string()));
    match role {
        RoleType::Root => check_key_types(role, object.get("keys"))?,
        RoleType::Targets => {
            // Go writes an empty list or map as null (`"roles": null` once the last
            // delegation is removed); the model reads them as empty.
            empty_if_null(object, "targets", Value::Object(Map::new()));
            if let Some(targets) = object.get_mut("targets").and_then(Value::as_object_mut) {
                for (name, target) in targets {
                    hashes_to_hex(role, name, target)?;
                }
            }
            if let Some(delegations) = object.get_mut("delegations").and_then(Value::as_object_mut)
            {
                empty_if_null(delegations, "keys", Value::Object(Map::new()));
                empty_if_null(delegations, "roles", Value::Array(Vec::new()));
                for delegated in delegations
                    .get_mut("roles")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object_mut)
                {
                    empty_if_null(delegated, "keyids", Value::Array(Vec::new()));
                    empty_if_null(delegated, "paths", Value::Array(Vec::new()));
                }
                check_key_types(role, delegations.get("keys"))?;
            }
        }
        RoleType::Snapshot | RoleType::Timestamp => {
            let meta = object
                .get_mut("meta")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| bad(role, "no meta"))?;
            let mut renamed = Map::new();
            for (name, mut entry) in std::mem::take(meta) {
                hashes_to_hex(role, &name, &mut entry)?;
                renamed.insert(format!("{name}.json"), entry);
            }
            *meta = renamed;
        }
    }
    Ok(())
}

/// Rewrites the model's `signed` object into the Notary shape, in place.
fn from_model(role: RoleType, signed: &mut Value) -> Result<(), Error> {
    let object = signed
        .as_object_mut()
        .ok_or_else(|| bad(role, "signed is not an object"))?;
    object.insert("_type".into(), Value::String(notary_type(role).into()));
    object.remove("spec_version");
    match role {
        RoleType::Root => {}
        RoleType::Targets => {
            if let Some(targets) = object.get_mut("targets").and_then(Value::as_object_mut) {
                for (name, target) in targets {
                    hashes_to_base64(role, name, target)?;
                }
            }
        }
        RoleType::Snapshot | RoleType::Timestamp => {
            if let Some(meta) = object.get_mut("meta").and_then(Value::as_object_mut) {
                let mut renamed = Map::new();
                for (name, mut entry) in std::mem::take(meta) {
                    hashes_to_base64(role, &name, &mut entry)?;
                    if let Some(entry) = entry.as_object_mut() {
                        entry.remove("version");
                    }
                    let name = name.strip_suffix(".json").unwrap_or(&name).to_owned();
                    renamed.insert(name, entry);
                }
                *meta = renamed;
            }
        }
    }
    Ok(())
}

fn empty_if_null(object: &mut Map<String, Value>, field: &str, empty: Value) {
    if object.get(field).is_some_and(Value::is_null) {
        object.insert(field.to_owned(), empty);
    }
}

fn check_key_types(role: RoleType, keys: Option<&Value>) -> Result<(), Error> {
    for (id, key) in keys.and_then(Value::as_object).into_iter().flatten() {
        let keytype = key.get("keytype").and_then(Value::as_str).unwrap_or("");
        if !KEY_TYPES.contains(&keytype) {
            return Err(bad(
                role,
                format!(
                    "key {id} has type {keytype:?}; Notary keys are {}",
                    KEY_TYPES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn hashes_to_hex(role: RoleType, name: &str, entry: &mut Value) -> Result<(), Error> {
    for (algorithm, hash) in hashes_mut(entry) {
        let bytes = hash
            .as_str()
            .and_then(crate::key::base64_decode)
            .ok_or_else(|| {
                bad(
                    role,
                    format!("the {algorithm} hash of {name} is not base64"),
                )
            })?;
        *hash = Value::String(hex::encode(bytes));
    }
    Ok(())
}

fn hashes_to_base64(role: RoleType, name: &str, entry: &mut Value) -> Result<(), Error> {
    for (algorithm, hash) in hashes_mut(entry) {
        let bytes = hash
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| bad(role, format!("the {algorithm} hash of {name} is not hex")))?;
        *hash = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    Ok(())
}

fn hashes_mut(entry: &mut Value) -> impl Iterator<Item = (&String, &mut Value)> {
    entry
        .get_mut("hashes")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|h| h.iter_mut())
}

/// Notary's rule for the root keys of a new root of `gun`: every key the root role lists
/// is an X.509 certificate (`ecdsa-x509`, `rsa-x509`) fit to certify it at `now`: naming
/// the GUN, within its validity period, not SHA-1 signed, a leaf.
///
/// Notary itself drops unfit certificates and counts the rest towards the threshold;
/// refusing any unfit one is stricter and says what is wrong instead of a bare threshold
/// error.
pub fn check_root_certificates(root: &Root, gun: &str, now: OffsetDateTime) -> Result<(), Error> {
    let listed = root
        .role_keys(RoleType::Root)
        .map(|r| r.keyids.as_slice())
        .unwrap_or_default();
    for id in listed {
        let key = root.keys.get(id).ok_or_else(|| {
            bad(
                RoleType::Root,
                format!("root key {} is not in keys", id.short()),
            )
        })?;
        if !key.keytype.ends_with("-x509") {
            return Err(bad(
                RoleType::Root,
                format!(
                    "root key {} is {:?}; a Notary root key must be an X.509 certificate (ecdsa-x509 or rsa-x509)",
                    id.short(),
                    key.keytype
                ),
            ));
        }
        let cert = crate::x509::Certificate::from_key_value(&key.keyval.public).map_err(|e| {
            bad(
                RoleType::Root,
                format!("root certificate {}: {e}", id.short()),
            )
        })?;
        if let Some(why) = cert.unfit_for_root(gun, now) {
            return Err(bad(
                RoleType::Root,
                format!(
                    "root certificate {} cannot certify {gun}: {why}",
                    id.short()
                ),
            ));
        }
    }
    Ok(())
}
