//! The signed envelope, the threshold rule, and the typestate from untrusted to verified.
//!
//! [`Signed<T>`] is metadata as it arrived: parsed and well-formed, signatures unchecked.
//! It keeps the exact bytes it came from, because hashes in snapshot and timestamp cover
//! those bytes. [`Signed::verify`] applies [`check_threshold`], the one threshold rule of
//! Notar, and yields [`Verified<T>`]; nothing else makes a `Verified<T>`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::key::{KeyId, Signer};
use crate::metadata::{Authority, Role};
use crate::{Error, cjson};

/// One entry of `signatures`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: KeyId,
    /// Hex of the raw signature bytes.
    pub sig: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct Envelope {
    signed: Value,
    signatures: Vec<Signature>,
}

/// Metadata parsed from bytes, signatures not yet checked.
#[derive(Clone, Debug)]
pub struct Signed<T> {
    /// The bytes exactly as received or produced; hashes and lengths refer to these.
    raw: Arc<[u8]>,
    /// Canonical JSON of the `signed` object as received: what the signatures cover.
    canonical: Vec<u8>,
    signed: T,
    signatures: Vec<Signature>,
}

impl<T: Role> Signed<T> {
    /// Parses metadata bytes: strict JSON (no duplicate keys), the right `_type`, TUF 1.x,
    /// every field well-formed. Signatures are not checked here.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Result<Self, Error> {
        let raw: Arc<[u8]> = bytes.into();
        let what = format!("{} metadata", T::TYPE);
        let value = cjson::parse_strict(&raw, &what)?;
        Self::from_document(raw, value)
    }

    /// [`Signed::from_bytes`] for bytes already parsed (strictly) into `value`.
    pub(crate) fn from_document(raw: Arc<[u8]>, value: Value) -> Result<Self, Error> {
        let what = format!("{} metadata", T::TYPE);
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| Error::malformed(&what, e))?;
        match envelope.signed.get("_type").and_then(Value::as_str) {
            Some(found) if found == T::TYPE.as_str() => {}
            found => {
                return Err(Error::WrongType {
                    expected: T::TYPE.as_str(),
                    found: found.unwrap_or("(none)").to_owned(),
                });
            }
        }
        let canonical = cjson::to_canonical(&envelope.signed)?;
        let signed: T = T::deserialize(&envelope.signed).map_err(|e| Error::malformed(&what, e))?;
        let spec = signed.spec_version();
        if !is_spec_1x(spec) {
            return Err(Error::SpecVersion {
                role: T::TYPE.to_string(),
                found: spec.to_owned(),
            });
        }
        signed.validate()?;
        signed.tuf_only()?;
        Ok(Signed {
            raw,
            canonical,
            signed,
            signatures: envelope.signatures,
        })
    }

    /// Metadata a dialect layer parsed ([`crate::notary`]): `raw` as received, `canonical`
    /// the bytes its signatures cover, `signed` already translated into the model.
    pub(crate) fn from_dialect(
        raw: Arc<[u8]>,
        canonical: Vec<u8>,
        signed: T,
        signatures: Vec<Signature>,
    ) -> Result<Self, Error> {
        signed.validate()?;
        Ok(Signed {
            raw,
            canonical,
            signed,
            signatures,
        })
    }

    /// Signs `signed` with every signer and serialises the envelope as canonical JSON.
    pub fn sign(signed: T, signers: &[&dyn Signer]) -> Result<Self, Error> {
        let canonical = cjson::to_canonical(&signed)?;
        let signatures: Vec<Signature> = signers
            .iter()
            .map(|s| Signature {
                keyid: s.public_key().key_id(),
                sig: hex::encode(s.sign(&canonical)),
                extra: BTreeMap::new(),
            })
            .collect();
        Self::assemble(signed, canonical, signatures)
    }

    /// Adds signatures by more signers (a second root key, a co-signer) to this metadata.
    pub fn add_signatures(self, signers: &[&dyn Signer]) -> Result<Self, Error> {
        let mut signatures = self.signatures;
        for s in signers {
            let keyid = s.public_key().key_id();
            signatures.retain(|existing| existing.keyid != keyid);
            signatures.push(Signature {
                keyid,
                sig: hex::encode(s.sign(&self.canonical)),
                extra: BTreeMap::new(),
            });
        }
        Self::assemble(self.signed, self.canonical, signatures)
    }

    /// This metadata with `more` signatures added (made elsewhere: a co-signer's), one per
    /// key ID; a key that signed already keeps its first signature. Not checked here.
    pub fn with_signatures(self, more: &[Signature]) -> Result<Self, Error> {
        let mut signatures = self.signatures;
        for s in more {
            if !signatures.iter().any(|existing| existing.keyid == s.keyid) {
                signatures.push(s.clone());
            }
        }
        Self::assemble(self.signed, self.canonical, signatures)
    }

    fn assemble(signed: T, canonical: Vec<u8>, signatures: Vec<Signature>) -> Result<Self, Error> {
        // The envelope's canonical form is `{"signatures":[…],"signed":<canonical signed>}`
        // ("signatures" sorts before "signed"), so the signed part, canonicalised once
        // already, is spliced in rather than serialised a second time.
        let sigs = cjson::to_canonical(&signatures)?;
        let mut raw = Vec::with_capacity(canonical.len() + sigs.len() + 28);
        raw.extend_from_slice(b"{\"signatures\":");
        raw.extend_from_slice(&sigs);
        raw.extend_from_slice(b",\"signed\":");
        raw.extend_from_slice(&canonical);
        raw.push(b'}');
        Ok(Signed {
            raw: raw.into(),
            canonical,
            signed,
            signatures,
        })
    }

    /// Checks the signatures against `authority` and, on success, vouches for the content.
    pub fn verify(self, authority: &Authority<'_>) -> Result<Verified<T>, Error> {
        check_threshold(authority, &self.canonical, &self.signatures)?;
        Ok(Verified(self))
    }

    /// Checks the signatures without consuming the metadata (for a root that must meet two
    /// authorities, the old root's and its own).
    pub fn check(&self, authority: &Authority<'_>) -> Result<usize, Error> {
        check_threshold(authority, &self.canonical, &self.signatures)
    }
}

impl<T> Signed<T> {
    /// The exact bytes this metadata was parsed from or serialised to.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// A cheap shared handle on the bytes.
    pub fn bytes(&self) -> Arc<[u8]> {
        Arc::clone(&self.raw)
    }

    /// The content, **not verified**. Use it to find out who should have signed; use
    /// [`Verified`] for decisions.
    pub fn untrusted(&self) -> &T {
        &self.signed
    }

    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// The canonical JSON the signatures cover.
    pub fn canonical_signed(&self) -> &[u8] {
        &self.canonical
    }
}

fn is_spec_1x(spec: &str) -> bool {
    let mut parts = spec.split('.');
    parts.next() == Some("1")
        && parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The threshold rule, the only one in Notar: the number of **distinct** key IDs that the
/// authority lists, whose key it holds, and whose signature over `message` verifies, must
/// reach the threshold. A signature by a key the
/// role does not list counts zero. Returns the count on success. An envelope that lists a
/// key ID twice is refused before anything is counted ([`crate::rules::unique_signature_keyids`]).
pub fn check_threshold(
    authority: &Authority<'_>,
    message: &[u8],
    signatures: &[Signature],
) -> Result<usize, Error> {
    crate::rules::unique_signature_keyids(authority.role.as_str(), signatures)?;
    let mut valid: BTreeSet<&KeyId> = BTreeSet::new();
    for signature in signatures {
        if valid.contains(&signature.keyid) || !authority.keyids.contains(&signature.keyid) {
            continue;
        }
        let Some(key) = authority.keys.get(&signature.keyid) else {
            continue;
        };
        let Ok(sig) = hex::decode(&signature.sig) else {
            continue;
        };
        // An undecodable or unsupported key cannot vouch for anything; it counts zero.
        if key
            .verifier()
            .is_ok_and(|verifier| verifier.verify(message, &sig))
        {
            valid.insert(&signature.keyid);
        }
    }
    let threshold = authority.threshold.get();
    if valid.len() >= threshold as usize {
        Ok(valid.len())
    } else {
        Err(Error::Threshold {
            role: authority.role.to_string(),
            valid: valid.len(),
            threshold,
        })
    }
}

impl Signed<crate::Root> {
    /// Checks a root against its own root role: the first root of a repository, or the
    /// new root's half of a rotation (the old root's half is [`Signed::check`]).
    pub fn check_self(&self) -> Result<usize, Error> {
        let authority = self
            .signed
            .authority(crate::RoleType::Root)
            .ok_or_else(|| Error::BadRole {
                role: "root".into(),
                reason: "root does not list this role".into(),
            })?;
        check_threshold(&authority, &self.canonical, &self.signatures)
    }

    /// [`Signed::check_self`], then vouches for the root.
    pub fn verify_self(self) -> Result<Verified<crate::Root>, Error> {
        self.check_self()?;
        Ok(Verified(self))
    }
}

/// Metadata whose signatures met the threshold of the keys that delegate it.
#[derive(Clone, Debug)]
pub struct Verified<T>(Signed<T>);

impl<T> Verified<T> {
    pub fn signed(&self) -> &Signed<T> {
        &self.0
    }

    pub fn into_signed(self) -> Signed<T> {
        self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.signed
    }
}

impl<T: Role> Verified<T> {
    /// Re-wraps metadata this process itself accepted earlier (a trusted local store, a
    /// database row written only after verification). The caller vouches for the origin.
    pub fn from_trusted_store(bytes: impl Into<Arc<[u8]>>) -> Result<Self, Error> {
        Signed::from_bytes(bytes).map(Verified)
    }

    /// [`Verified::from_trusted_store`] for bytes in either dialect.
    pub fn from_trusted_store_either(
        bytes: impl Into<Arc<[u8]>>,
    ) -> Result<(crate::notary::Dialect, Self), Error>
    where
        T: 'static,
    {
        crate::notary::parse_either(bytes).map(|(dialect, signed)| (dialect, Verified(signed)))
    }

    /// Fails if this metadata is expired at `now`.
    pub fn check_expiry(&self, now: time::OffsetDateTime) -> Result<(), Error> {
        let expires = self.0.signed.expires();
        if expires.is_expired_at(now) {
            Err(Error::Expired {
                role: T::TYPE.to_string(),
                expires: expires.to_string(),
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expiry, TargetFile, TargetName, Targets, Version};

    #[test]
    fn signed_envelopes_are_canonical_json() {
        let expires: Expiry = "2099-01-01T00:00:00Z".parse().expect("valid");
        let mut targets = Targets::new(Version::ONE, expires);
        targets.targets.insert(
            TargetName::new("latest").expect("valid"),
            TargetFile::sha256(5, [1; 32]),
        );
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let signed = Signed::sign(targets, &[&key]).expect("sign");
        let value: Value = serde_json::from_slice(signed.as_bytes()).expect("JSON");
        assert_eq!(
            cjson::to_canonical(&value).expect("canonical"),
            signed.as_bytes(),
            "the spliced envelope is exactly its canonical form"
        );
    }
}
