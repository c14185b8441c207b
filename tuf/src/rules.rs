//! The rulebook: every rule for accepting new metadata, written once.
//!
//! The server's upload validation (`notar-server`'s `validate.rs`) and the client workflow
//! ([`crate::client::Updater`]) both judge metadata with these functions and state no rule
//! of their own, so a server never accepts what every client then refuses. Each rule takes
//! what is trusted and what is new, and answers with a [`Rejection`] that names the role.
//!
//! - [`next_root`]: exactly version N+1, signed by a threshold of the trusted root's root
//!   keys and of its own (§5.3.4–§5.3.5); [`first_root`] for a root trusted on its own.
//! - [`verify_role`]: a threshold of distinct key IDs ([`crate::signed::check_threshold`]),
//!   and no key ID twice in one envelope ([`unique_signature_keyids`]; §4.2 says a key ID
//!   MUST be unique in `signatures`).
//! - [`version_order`]: a version never goes back.
//! - [`unexpired`]: through the one [`Expiry`] type.
//! - [`matches_pin`] and [`pinned_version`]: what snapshot or timestamp pins — the length,
//!   every listed hash algorithm (hex in any case; an algorithm Notar cannot compute is
//!   refused, since the pin could not be checked), and the version.
//! - [`snapshot_succession`] and [`timestamp_succession`]: a new snapshot lists every file
//!   the trusted one listed, none older; a new timestamp never pins an older snapshot.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256, Sha384, Sha512};
use time::OffsetDateTime;

use crate::metadata::{Authority, Role, RoleType};
use crate::{Error, Expiry, KeyId, MetaFile, Root, Signature, Signed, Snapshot, Timestamp};
use crate::{Verified, Version};

/// Why new metadata is not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The metadata does not parse, or its signatures do not meet the threshold.
    #[error("{role}: {source}")]
    Invalid {
        role: String,
        #[source]
        source: Error,
    },
    /// A rotation not signed by a threshold of the trusted root's root keys.
    #[error(
        "root version {version} is not signed by a threshold of the previous root's keys: {source}"
    )]
    RootNotSignedByPrevious {
        version: u64,
        #[source]
        source: Error,
    },
    /// A root not signed by a threshold of its own root keys.
    #[error("root version {version} is not signed by a threshold of its own root keys: {source}")]
    RootNotSelfSigned {
        version: u64,
        #[source]
        source: Error,
    },
    #[error("root version {got} is not the next version {expected}")]
    NotNextRoot { expected: u64, got: u64 },
    #[error("{role}: rollback: version {new} is older than the trusted version {trusted}")]
    Rollback {
        role: String,
        trusted: u64,
        new: u64,
    },
    /// The same version again, where only a newer one is accepted (an upload).
    #[error("{role} version {new} is not newer than the stored version {trusted}")]
    NotNewer {
        role: String,
        trusted: u64,
        new: u64,
    },
    #[error("{role}: version {got} where version {expected} was pinned")]
    VersionMismatch {
        role: String,
        expected: u64,
        got: u64,
    },
    #[error("{role} expired at {expires}")]
    Expired { role: String, expires: String },
    #[error("{role}: length {got} does not match the pinned {expected} bytes")]
    LengthMismatch {
        role: String,
        expected: u64,
        got: u64,
    },
    #[error("{role}: the {algorithm} hash does not match the pinned one")]
    HashMismatch { role: String, algorithm: String },
    /// A pin with a hash algorithm Notar cannot compute: the pin cannot be checked.
    #[error("{role}: unsupported hash algorithm {algorithm:?} (sha256, sha384 and sha512 are)")]
    UnsupportedHash { role: String, algorithm: String },
    /// A new snapshot that drops a file the trusted snapshot listed.
    #[error("snapshot: {file} was listed before and is missing now")]
    Dropped { file: String },
    /// A co-signing proposal carries a signature that counts for nothing: by a key the
    /// role does not list, or not over these bytes ([`every_signature_counts`]).
    #[error("{role}: the signature by key {key_id} {reason}")]
    UncountedSignature {
        role: String,
        key_id: String,
        reason: &'static str,
    },
}

impl Rejection {
    /// The role the rejection is about.
    pub fn role(&self) -> &str {
        match self {
            Rejection::Invalid { role, .. }
            | Rejection::Rollback { role, .. }
            | Rejection::NotNewer { role, .. }
            | Rejection::VersionMismatch { role, .. }
            | Rejection::Expired { role, .. }
            | Rejection::LengthMismatch { role, .. }
            | Rejection::HashMismatch { role, .. }
            | Rejection::UnsupportedHash { role, .. }
            | Rejection::UncountedSignature { role, .. } => role,
            Rejection::RootNotSignedByPrevious { .. }
            | Rejection::RootNotSelfSigned { .. }
            | Rejection::NotNextRoot { .. } => "root",
            Rejection::Dropped { .. } => "snapshot",
        }
    }

    /// Whether the rejection is about versions (a lost race or a replay) rather than
    /// content: the server answers these with its `VERSION` code.
    pub fn is_version(&self) -> bool {
        matches!(
            self,
            Rejection::NotNextRoot { .. } | Rejection::Rollback { .. } | Rejection::NotNewer { .. }
        )
    }
}

/// A root trusted on its own (the first root a repository or a client has): signed by a
/// threshold of its own root keys.
pub fn first_root(candidate: Signed<Root>) -> Result<Verified<Root>, Rejection> {
    let version = candidate.untrusted().version.get();
    candidate
        .verify_self()
        .map_err(|source| Rejection::RootNotSelfSigned { version, source })
}

/// The root that may follow `trusted`: exactly version N+1, signed by a threshold of the
/// trusted root's root keys and by a threshold of its own.
pub fn next_root(trusted: &Root, candidate: Signed<Root>) -> Result<Verified<Root>, Rejection> {
    let expected = trusted.version.next();
    let got = candidate.untrusted().version;
    if got != expected {
        return Err(Rejection::NotNextRoot {
            expected: expected.get(),
            got: got.get(),
        });
    }
    let previous =
        trusted
            .authority(RoleType::Root)
            .ok_or_else(|| Rejection::RootNotSignedByPrevious {
                version: got.get(),
                source: Error::BadRole {
                    role: "root".into(),
                    reason: "the trusted root lists no root keys".into(),
                },
            })?;
    candidate
        .check(&previous)
        .map_err(|source| Rejection::RootNotSignedByPrevious {
            version: got.get(),
            source,
        })?;
    first_root(candidate)
}

/// Metadata signed by a threshold of the keys `authority` names; see
/// [`crate::signed::check_threshold`] for how signatures count.
pub fn verify_role<T: Role>(
    candidate: Signed<T>,
    authority: &Authority<'_>,
) -> Result<Verified<T>, Rejection> {
    candidate
        .verify(authority)
        .map_err(|source| Rejection::Invalid {
            role: authority.role.to_string(),
            source,
        })
}

/// §4.2: "The keyid MUST be unique in the signatures array": an envelope that lists one key
/// ID twice is refused whole, even if it meets the threshold without the repeat (clients
/// such as python-tuf refuse it, so a server must not store it).
pub fn unique_signature_keyids(role: &str, signatures: &[Signature]) -> Result<(), Error> {
    let mut seen: BTreeSet<&KeyId> = BTreeSet::new();
    match signatures.iter().find(|s| !seen.insert(&s.keyid)) {
        Some(repeated) => Err(Error::DuplicateSignature {
            role: role.to_owned(),
            key_id: repeated.keyid.to_string(),
        }),
        None => Ok(()),
    }
}

/// The rule of a co-signing proposal, which carries fewer signatures than its threshold:
/// every signature it carries must verify over its bytes by a key one of `authorities`
/// lists (a root rotation has two: the trusted root's root keys and the new root's). A
/// signature that would count for nothing is refused, not ignored: a co-signer who signed
/// other bytes, or whose key the role does not list, must hear so. No key ID twice. Returns
/// the key IDs that signed; the threshold is judged when the proposal is complete.
pub fn every_signature_counts<T>(
    role: &str,
    candidate: &Signed<T>,
    authorities: &[Authority<'_>],
) -> Result<BTreeSet<KeyId>, Rejection> {
    unique_signature_keyids(role, candidate.signatures()).map_err(|source| Rejection::Invalid {
        role: role.to_owned(),
        source,
    })?;
    let uncounted = |key_id: &KeyId, reason| Rejection::UncountedSignature {
        role: role.to_owned(),
        key_id: key_id.to_string(),
        reason,
    };
    let mut signers = BTreeSet::new();
    for signature in candidate.signatures() {
        let Some(key) = authorities
            .iter()
            .filter(|a| a.keyids.contains(&signature.keyid))
            .find_map(|a| a.keys.get(&signature.keyid))
        else {
            return Err(uncounted(
                &signature.keyid,
                "is by a key the role does not list",
            ));
        };
        let verifies = hex::decode(&signature.sig).is_ok_and(|sig| {
            key.verifier()
                .is_ok_and(|v| v.verify(candidate.canonical_signed(), &sig))
        });
        if !verifies {
            return Err(uncounted(
                &signature.keyid,
                "does not verify over these bytes",
            ));
        }
        signers.insert(signature.keyid.clone());
    }
    if signers.is_empty() {
        return Err(Rejection::Invalid {
            role: role.to_owned(),
            source: Error::Threshold {
                role: role.to_owned(),
                valid: 0,
                threshold: 1,
            },
        });
    }
    Ok(signers)
}

/// How a new version relates to the trusted one, when it is not older.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Newer than the trusted version, or nothing was trusted.
    Newer,
    /// The trusted version again: a client keeps its copy; an upload is refused
    /// ([`Freshness::require_newer`]).
    Same,
}

impl Freshness {
    /// For uploads, where only a newer version is accepted.
    pub fn require_newer(
        self,
        role: &str,
        trusted: Version,
        new: Version,
    ) -> Result<(), Rejection> {
        match self {
            Freshness::Newer => Ok(()),
            Freshness::Same => Err(Rejection::NotNewer {
                role: role.to_owned(),
                trusted: trusted.get(),
                new: new.get(),
            }),
        }
    }
}

/// A version never goes back: `new` older than `trusted` is a rollback.
pub fn version_order(
    role: &str,
    trusted: Option<Version>,
    new: Version,
) -> Result<Freshness, Rejection> {
    match trusted {
        Some(old) if new < old => Err(Rejection::Rollback {
            role: role.to_owned(),
            trusted: old.get(),
            new: new.get(),
        }),
        Some(old) if new == old => Ok(Freshness::Same),
        _ => Ok(Freshness::Newer),
    }
}

/// [`version_order`] for uploads: only a newer version than the stored one.
pub fn newer_version(role: &str, stored: Option<Version>, new: Version) -> Result<(), Rejection> {
    let freshness = version_order(role, stored, new)?;
    match stored {
        Some(old) => freshness.require_newer(role, old, new),
        None => Ok(()),
    }
}

/// Metadata that expires at `expires` is no longer trusted at `now` (an expiry equal to
/// `now` counts as expired).
pub fn unexpired(role: &str, expires: Expiry, now: OffsetDateTime) -> Result<(), Rejection> {
    if expires.is_expired_at(now) {
        Err(Rejection::Expired {
            role: role.to_owned(),
            expires: expires.to_string(),
        })
    } else {
        Ok(())
    }
}

/// The bytes of `role` against what `pin` (a snapshot or timestamp entry) gives: the
/// length, if given, and every listed hash, compared as hex in any case. An algorithm other
/// than sha256, sha384 and sha512 is refused: the pin could not be checked.
pub fn matches_pin(role: &str, bytes: &[u8], pin: &MetaFile) -> Result<(), Rejection> {
    if let Some(expected) = pin.length
        && expected != bytes.len() as u64
    {
        return Err(Rejection::LengthMismatch {
            role: role.to_owned(),
            expected,
            got: bytes.len() as u64,
        });
    }
    for (algorithm, expected) in pin.hashes.iter().flatten() {
        check_hash(role, algorithm, expected, bytes)?;
    }
    Ok(())
}

/// One hash of `bytes` against `expected` hex (any case).
pub fn check_hash(
    role: &str,
    algorithm: &str,
    expected: &str,
    bytes: &[u8],
) -> Result<(), Rejection> {
    let actual = match algorithm {
        "sha256" => hex::encode(Sha256::digest(bytes)),
        "sha384" => hex::encode(Sha384::digest(bytes)),
        "sha512" => hex::encode(Sha512::digest(bytes)),
        _ => {
            return Err(Rejection::UnsupportedHash {
                role: role.to_owned(),
                algorithm: algorithm.to_owned(),
            });
        }
    };
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(Rejection::HashMismatch {
            role: role.to_owned(),
            algorithm: algorithm.to_owned(),
        })
    }
}

/// The version a role has must be the version its pin names.
pub fn pinned_version(role: &str, pin: &MetaFile, got: Version) -> Result<(), Rejection> {
    match pin.version {
        // A pin without a version (the Notary dialect) pins by its hashes alone.
        None => Ok(()),
        Some(expected) if expected == got => Ok(()),
        Some(expected) => Err(Rejection::VersionMismatch {
            role: role.to_owned(),
            expected: expected.get(),
            got: got.get(),
        }),
    }
}

/// A new snapshot after a trusted one: not an older version, and every file the trusted
/// snapshot listed is still listed at a version no older (§5.5.5).
pub fn snapshot_succession(trusted: &Snapshot, new: &Snapshot) -> Result<Freshness, Rejection> {
    let freshness = version_order("snapshot", Some(trusted.version), new.version)?;
    for (file, old) in &trusted.meta {
        let Some(now) = new.meta.get(file) else {
            return Err(Rejection::Dropped { file: file.clone() });
        };
        if let (Some(old), Some(now)) = (old.version, now.version) {
            version_order(&format!("snapshot ({file})"), Some(old), now)?;
        }
    }
    Ok(freshness)
}

/// A new timestamp after a trusted one: not an older version, and not pinning an older
/// snapshot (§5.4.3).
pub fn timestamp_succession(trusted: &Timestamp, new: &Timestamp) -> Result<Freshness, Rejection> {
    let freshness = version_order("timestamp", Some(trusted.version), new.version)?;
    if let (Some(old), Some(now)) = (
        trusted.snapshot_meta().and_then(|m| m.version),
        new.snapshot_meta().and_then(|m| m.version),
    ) {
        version_order("timestamp (snapshot version)", Some(old), now)?;
    }
    Ok(freshness)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Signer, TargetFile, TargetName, Targets};

    fn expires() -> Expiry {
        "2099-01-01T00:00:00Z".parse().expect("expiry")
    }

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn root(version: u64, root_keys: &[&ed25519_dalek::SigningKey]) -> Root {
        let mut root = Root::new(Version::new(version).expect("version"), expires());
        for k in root_keys {
            root.add_key(RoleType::Root, k.public_key());
        }
        root
    }

    fn sign_root(root: Root, signers: &[&ed25519_dalek::SigningKey]) -> Signed<Root> {
        let signers: Vec<&dyn Signer> = signers.iter().map(|k| *k as &dyn Signer).collect();
        Signed::sign(root, &signers).expect("sign")
    }

    #[test]
    fn a_proposal_counts_every_signature_or_is_refused() {
        let (a, b, stranger) = (key(1), key(2), key(3));
        let mut trusted = root(1, &[&a, &b]);
        trusted
            .roles
            .get_mut(&RoleType::Root)
            .expect("root role")
            .threshold = std::num::NonZeroU32::new(2).expect("two");
        let authority = trusted.authority(RoleType::Root).expect("root keys");
        let next = sign_root(root(2, &[&a, &b]), &[&a]);
        let signers = every_signature_counts("root", &next, std::slice::from_ref(&authority))
            .expect("one listed signature");
        assert_eq!(signers.len(), 1);
        // The same bytes, co-signed: both count.
        let both = next
            .clone()
            .add_signatures(&[&b as &dyn Signer])
            .expect("co-sign");
        let signers = every_signature_counts("root", &both, std::slice::from_ref(&authority))
            .expect("two listed signatures");
        assert_eq!(signers.len(), 2);
        // A key the role does not list.
        let foreign = next
            .clone()
            .add_signatures(&[&stranger as &dyn Signer])
            .expect("sign");
        assert!(matches!(
            every_signature_counts("root", &foreign, std::slice::from_ref(&authority)),
            Err(Rejection::UncountedSignature { reason, .. }) if reason.contains("does not list")
        ));
        // b's signature over other bytes (version 3), spliced onto version 2.
        let other = sign_root(root(3, &[&a, &b]), &[&b]);
        let spliced = next
            .clone()
            .with_signatures(other.signatures())
            .expect("splice");
        assert!(matches!(
            every_signature_counts("root", &spliced, std::slice::from_ref(&authority)),
            Err(Rejection::UncountedSignature { reason, .. }) if reason.contains("does not verify")
        ));
        // No signature at all.
        let bare = sign_root(root(2, &[&a, &b]), &[]);
        assert!(every_signature_counts("root", &bare, &[authority]).is_err());
    }

    #[test]
    fn next_root_is_exactly_one_more_and_signed_by_both() {
        let (old, new) = (key(1), key(2));
        let trusted = root(1, &[&old]);
        let good = sign_root(root(2, &[&new]), &[&old, &new]);
        assert!(next_root(&trusted, good).is_ok());
        let skipped = sign_root(root(3, &[&new]), &[&old, &new]);
        assert!(matches!(
            next_root(&trusted, skipped),
            Err(Rejection::NotNextRoot {
                expected: 2,
                got: 3
            })
        ));
        let only_new = sign_root(root(2, &[&new]), &[&new]);
        assert!(matches!(
            next_root(&trusted, only_new),
            Err(Rejection::RootNotSignedByPrevious { .. })
        ));
        let only_old = sign_root(root(2, &[&new]), &[&old]);
        assert!(matches!(
            next_root(&trusted, only_old),
            Err(Rejection::RootNotSelfSigned { .. })
        ));
    }

    #[test]
    fn a_key_id_twice_refuses_the_envelope() {
        let k = key(1);
        let mut targets = Targets::new(Version::ONE, expires());
        targets.targets.insert(
            TargetName::new("v1").expect("name"),
            TargetFile::sha256(1, [0; 32]),
        );
        let signed = Signed::sign(targets, &[&k]).expect("sign");
        let mut sigs = signed.signatures().to_vec();
        sigs.push(sigs[0].clone());
        assert!(matches!(
            unique_signature_keyids("targets", &sigs),
            Err(Error::DuplicateSignature { .. })
        ));
        assert!(unique_signature_keyids("targets", signed.signatures()).is_ok());
    }

    #[test]
    fn versions_never_go_back() {
        let v = |n| Version::new(n).expect("version");
        assert_eq!(
            version_order("targets", None, v(1)).ok(),
            Some(Freshness::Newer)
        );
        assert_eq!(
            version_order("targets", Some(v(2)), v(2)).ok(),
            Some(Freshness::Same)
        );
        assert!(matches!(
            version_order("targets", Some(v(2)), v(1)),
            Err(Rejection::Rollback {
                trusted: 2,
                new: 1,
                ..
            })
        ));
        assert!(matches!(
            newer_version("targets", Some(v(2)), v(2)),
            Err(Rejection::NotNewer { .. })
        ));
        assert!(newer_version("targets", Some(v(2)), v(3)).is_ok());
    }

    #[test]
    fn expiry_at_now_is_expired() {
        let at: Expiry = "2030-01-01T00:00:00Z".parse().expect("expiry");
        assert!(unexpired("targets", at, at.datetime()).is_err());
        assert!(unexpired("targets", at, at.datetime() - time::Duration::seconds(1)).is_ok());
    }

    #[test]
    fn pins_check_length_every_hash_and_any_case() {
        let bytes = b"metadata";
        let sha256 = hex::encode(Sha256::digest(bytes));
        let sha512 = hex::encode(Sha512::digest(bytes));
        let pin = |hashes: &[(&str, &str)], length: Option<u64>| {
            let mut m = MetaFile::new(Version::ONE, None);
            m.length = length;
            m.hashes = Some(
                hashes
                    .iter()
                    .map(|(a, h)| ((*a).to_owned(), (*h).to_owned()))
                    .collect(),
            );
            m
        };
        assert!(
            matches_pin(
                "t",
                bytes,
                &pin(&[("sha256", &sha256.to_uppercase())], Some(8))
            )
            .is_ok()
        );
        assert!(matches!(
            matches_pin("t", bytes, &pin(&[("sha256", &sha256)], Some(9))),
            Err(Rejection::LengthMismatch { .. })
        ));
        let wrong512 = "0".repeat(128);
        assert!(matches!(
            matches_pin("t", bytes, &pin(&[("sha256", &sha256), ("sha512", &wrong512)], None)),
            Err(Rejection::HashMismatch { algorithm, .. }) if algorithm == "sha512"
        ));
        assert!(matches_pin("t", bytes, &pin(&[("sha512", &sha512)], None)).is_ok());
        assert!(matches!(
            matches_pin("t", bytes, &pin(&[("md5", "00")], None)),
            Err(Rejection::UnsupportedHash { .. })
        ));
    }
}
