//! The four top-level roles of TUF 1.0 (§4.3–§4.6) and the delegation structures of targets.
//!
//! Every struct keeps the fields it does not know in `extra`, so metadata written by a newer
//! tool re-serialises to the same canonical bytes and its signatures stay valid.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::key::{KeyId, PublicKey};
use crate::names::{RoleName, TargetName, Version};
use crate::{Error, Expiry};

/// The four top-level roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleType {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl RoleType {
    pub const ALL: [RoleType; 4] = [
        RoleType::Root,
        RoleType::Targets,
        RoleType::Snapshot,
        RoleType::Timestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoleType::Root => "root",
            RoleType::Targets => "targets",
            RoleType::Snapshot => "snapshot",
            RoleType::Timestamp => "timestamp",
        }
    }

    pub fn role_name(self) -> RoleName {
        match self {
            RoleType::Root => RoleName::root(),
            RoleType::Targets => RoleName::targets(),
            RoleType::Snapshot => RoleName::snapshot(),
            RoleType::Timestamp => RoleName::timestamp(),
        }
    }
}

impl fmt::Display for RoleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RoleType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        RoleType::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::InvalidName {
                kind: "top-level role",
                value: s.into(),
                reason: "expected root, targets, snapshot or timestamp",
            })
    }
}

/// What every role's `signed` part has in common.
pub trait Role: Serialize + DeserializeOwned {
    /// The `_type` this role carries.
    const TYPE: RoleType;
    fn spec_version(&self) -> &str;
    fn version(&self) -> Version;
    fn expires(&self) -> Expiry;
    /// Rules the type system cannot express (key IDs match keys, thresholds reachable, …),
    /// checked once when metadata is parsed.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
    /// Rules of TUF 1.0 that the Notary dialect does not share (every key names a scheme,
    /// every `meta` entry a version), checked when TUF 1.0 bytes are parsed.
    fn tuf_only(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// TUF 1.0 §4.2: a key object names its scheme.
fn schemes_named<'a>(
    role: &str,
    keys: impl IntoIterator<Item = (&'a KeyId, &'a PublicKey)>,
) -> Result<(), Error> {
    for (id, key) in keys {
        if key.scheme.is_empty() {
            return Err(Error::BadRole {
                role: role.into(),
                reason: format!("key {} has no scheme", id.short()),
            });
        }
    }
    Ok(())
}

/// TUF 1.0 §4.4: every `meta` entry pins a version.
fn versions_pinned(role: &str, meta: &BTreeMap<String, MetaFile>) -> Result<(), Error> {
    match meta.iter().find(|(_, m)| m.version.is_none()) {
        Some((file, _)) => Err(Error::BadRole {
            role: role.into(),
            reason: format!("the meta entry for {file} has no version"),
        }),
        None => Ok(()),
    }
}

/// The three accessors every role struct implements the same way.
macro_rules! role_fields {
    () => {
        fn spec_version(&self) -> &str {
            &self.spec_version
        }
        fn version(&self) -> Version {
            self.version
        }
        fn expires(&self) -> Expiry {
            self.expires
        }
    };
}

/// Defines the zero-sized `_type` tag of a role: it serialises as the role's name and
/// refuses any other name, so a parsed `Root` can never carry `"_type": "targets"`.
macro_rules! type_tag {
    ($tag:ident, $name:literal) => {
        #[doc = concat!("The `_type` tag `\"", $name, "\"`.")]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $tag;
        impl Serialize for $tag {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($name)
            }
        }
        impl<'de> Deserialize<'de> for $tag {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let found = String::deserialize(deserializer)?;
                if found == $name {
                    Ok($tag)
                } else {
                    Err(serde::de::Error::custom(format!(
                        "wrong _type: expected {:?}, found {found:?}",
                        $name
                    )))
                }
            }
        }
    };
}
type_tag!(RootTag, "root");
type_tag!(TargetsTag, "targets");
type_tag!(SnapshotTag, "snapshot");
type_tag!(TimestampTag, "timestamp");

/// The keys and threshold of a role (`roles` in root, TUF 1.0 §4.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<KeyId>,
    pub threshold: NonZeroU32,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl RoleKeys {
    pub fn new(keyids: Vec<KeyId>, threshold: NonZeroU32) -> Self {
        RoleKeys {
            keyids,
            threshold,
            extra: BTreeMap::new(),
        }
    }
}

/// Root metadata (TUF 1.0 §4.3): the keys of every top-level role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_tag: RootTag,
    pub spec_version: String,
    pub version: Version,
    pub expires: Expiry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    pub keys: BTreeMap<KeyId, PublicKey>,
    pub roles: BTreeMap<RoleType, RoleKeys>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Root {
    /// A root with no keys yet: every role threshold 1, consistent snapshots on.
    pub fn new(version: Version, expires: Expiry) -> Self {
        Root {
            type_tag: RootTag,
            spec_version: crate::SPEC_VERSION.into(),
            version,
            expires,
            consistent_snapshot: Some(true),
            keys: BTreeMap::new(),
            roles: RoleType::ALL
                .into_iter()
                .map(|r| (r, RoleKeys::new(Vec::new(), NonZeroU32::MIN)))
                .collect(),
            extra: BTreeMap::new(),
        }
    }

    /// Lists `key` for `role` (once, however often it is added).
    pub fn add_key(&mut self, role: RoleType, key: PublicKey) {
        let id = key.key_id();
        self.keys.insert(id.clone(), key);
        let entry = self
            .roles
            .entry(role)
            .or_insert_with(|| RoleKeys::new(Vec::new(), NonZeroU32::MIN));
        if !entry.keyids.contains(&id) {
            entry.keyids.push(id);
        }
    }

    /// Stops listing `key_id` for `role`; the key object goes too once no role lists it.
    pub fn remove_key(&mut self, role: RoleType, key_id: &KeyId) {
        if let Some(entry) = self.roles.get_mut(&role) {
            entry.keyids.retain(|k| k != key_id);
        }
        if !self.roles.values().any(|r| r.keyids.contains(key_id)) {
            self.keys.remove(key_id);
        }
    }

    /// The keys and threshold root gives `role`. Every valid root names all four roles.
    pub fn role_keys(&self, role: RoleType) -> Option<&RoleKeys> {
        self.roles.get(&role)
    }

    /// Who may sign `role` according to this root.
    pub fn authority(&self, role: RoleType) -> Option<Authority<'_>> {
        self.role_keys(role).map(|r| Authority {
            role: role.role_name(),
            keys: &self.keys,
            keyids: &r.keyids,
            threshold: r.threshold,
        })
    }
}

impl Role for Root {
    const TYPE: RoleType = RoleType::Root;
    role_fields!();
    fn validate(&self) -> Result<(), Error> {
        check_key_ids(&self.keys)?;
        for role in RoleType::ALL {
            let keys = self.roles.get(&role).ok_or_else(|| Error::BadRole {
                role: role.to_string(),
                reason: "root does not list this role".into(),
            })?;
            check_role_keys(role.as_str(), &keys.keyids)?;
        }
        Ok(())
    }
    fn tuf_only(&self) -> Result<(), Error> {
        schemes_named("root", &self.keys)
    }
}

/// One target (TUF 1.0 §4.5 `TARGETS`): for Notar, a tag and its manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl TargetFile {
    /// A target with one sha256 hash.
    pub fn sha256(length: u64, digest: [u8; 32]) -> Self {
        TargetFile {
            length,
            hashes: BTreeMap::from([("sha256".to_owned(), hex::encode(digest))]),
            custom: None,
            extra: BTreeMap::new(),
        }
    }

    /// The sha256 hash as bytes, if the target has a well-formed one.
    pub fn sha256_digest(&self) -> Option<[u8; 32]> {
        self.hashes
            .get("sha256")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| b.try_into().ok())
    }
}

/// A delegated targets role (TUF 1.0 §4.5 `DELEGATIONS`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    pub name: RoleName,
    pub keyids: Vec<KeyId>,
    pub threshold: NonZeroU32,
    #[serde(default)]
    pub terminating: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// How `paths` read: TUF 1.0 patterns, or Notary prefixes (set by the dialect layer;
    /// never on the wire).
    #[serde(skip)]
    pub path_rule: PathRule,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// How the `paths` of a delegated role are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PathRule {
    /// TUF 1.0 §4.5: shell-glob patterns, segment by segment.
    #[default]
    Pattern,
    /// Notary: a target is delegated when its name starts with a path (`""` is every name).
    Prefix,
}

/// The `delegations` of a targets role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<KeyId, PublicKey>,
    pub roles: Vec<DelegatedRole>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Delegations {
    /// Delegations with no roles yet.
    pub fn new() -> Self {
        Delegations {
            keys: BTreeMap::new(),
            roles: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    /// Delegates `paths` to a new role `name`, signed by `threshold` of `keys`, after the
    /// roles already listed (search order is list order).
    pub fn add_role(
        &mut self,
        name: RoleName,
        keys: &[PublicKey],
        threshold: NonZeroU32,
        paths: Vec<String>,
    ) {
        let mut keyids = Vec::with_capacity(keys.len());
        for key in keys {
            let id = key.key_id();
            self.keys.insert(id.clone(), key.clone());
            if !keyids.contains(&id) {
                keyids.push(id);
            }
        }
        self.roles.push(DelegatedRole {
            name,
            keyids,
            threshold,
            terminating: false,
            paths: Some(paths),
            path_hash_prefixes: None,
            path_rule: PathRule::Pattern,
            extra: BTreeMap::new(),
        });
    }

    pub fn role(&self, name: &str) -> Option<&DelegatedRole> {
        self.roles.iter().find(|r| r.name.as_str() == name)
    }

    /// Who may sign the delegated role `name` according to these delegations.
    pub fn authority(&self, name: &str) -> Option<Authority<'_>> {
        self.role(name).map(|r| Authority {
            role: r.name.clone(),
            keys: &self.keys,
            keyids: &r.keyids,
            threshold: r.threshold,
        })
    }
}

/// Targets metadata (TUF 1.0 §4.5), top-level or delegated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_tag: TargetsTag,
    pub spec_version: String,
    pub version: Version,
    pub expires: Expiry,
    pub targets: BTreeMap<TargetName, TargetFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Targets {
    /// An empty targets role.
    pub fn new(version: Version, expires: Expiry) -> Self {
        Targets {
            type_tag: TargetsTag,
            spec_version: crate::SPEC_VERSION.into(),
            version,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            extra: BTreeMap::new(),
        }
    }
}

impl Role for Targets {
    const TYPE: RoleType = RoleType::Targets;
    role_fields!();
    fn validate(&self) -> Result<(), Error> {
        for (name, target) in &self.targets {
            if target.hashes.is_empty() {
                return Err(Error::BadRole {
                    role: "targets".into(),
                    reason: format!("target {name} has no hashes"),
                });
            }
        }
        let Some(delegations) = &self.delegations else {
            return Ok(());
        };
        check_key_ids(&delegations.keys)?;
        let mut names = BTreeSet::new();
        for role in &delegations.roles {
            if !role.name.is_delegated() {
                return Err(Error::BadRole {
                    role: role.name.to_string(),
                    reason: "a top-level role name cannot be delegated".into(),
                });
            }
            if !names.insert(role.name.as_str()) {
                return Err(Error::BadRole {
                    role: role.name.to_string(),
                    reason: "delegated twice in one targets role".into(),
                });
            }
            if role.paths.is_some() && role.path_hash_prefixes.is_some() {
                return Err(Error::BadRole {
                    role: role.name.to_string(),
                    reason: "both paths and path_hash_prefixes are set".into(),
                });
            }
            check_role_keys(role.name.as_str(), &role.keyids)?;
        }
        Ok(())
    }
    fn tuf_only(&self) -> Result<(), Error> {
        match &self.delegations {
            Some(d) => schemes_named("targets", &d.keys),
            None => Ok(()),
        }
    }
}

/// A `meta` entry of snapshot or timestamp (TUF 1.0 §4.4 `METAFILES`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// Always set in TUF 1.0. The Notary dialect pins files by hash alone and has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl MetaFile {
    /// An entry pinning `version`, and, when given, the exact bytes of that metadata.
    pub fn new(version: Version, bytes: Option<&[u8]>) -> Self {
        use sha2::{Digest, Sha256};
        MetaFile {
            version: Some(version),
            length: bytes.map(|b| b.len() as u64),
            hashes: bytes
                .map(|b| BTreeMap::from([("sha256".to_owned(), hex::encode(Sha256::digest(b)))])),
            extra: BTreeMap::new(),
        }
    }

    /// [`MetaFile::new`] with sha512 beside sha256, as Notary pins files.
    pub fn sha256_sha512(version: Version, bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha512};
        let mut meta = MetaFile::new(version, Some(bytes));
        if let Some(hashes) = meta.hashes.as_mut() {
            hashes.insert("sha512".into(), hex::encode(Sha512::digest(bytes)));
        }
        meta
    }
}

/// Snapshot metadata (TUF 1.0 §4.4): the versions of every targets role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_tag: SnapshotTag,
    pub spec_version: String,
    pub version: Version,
    pub expires: Expiry,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Snapshot {
    /// A snapshot pinning nothing yet.
    pub fn new(version: Version, expires: Expiry) -> Self {
        Snapshot {
            type_tag: SnapshotTag,
            spec_version: crate::SPEC_VERSION.into(),
            version,
            expires,
            meta: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }
}

impl Role for Snapshot {
    const TYPE: RoleType = RoleType::Snapshot;
    role_fields!();
    fn tuf_only(&self) -> Result<(), Error> {
        versions_pinned("snapshot", &self.meta)
    }
}

/// Timestamp metadata (TUF 1.0 §4.6): the current snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_tag: TimestampTag,
    pub spec_version: String,
    pub version: Version,
    pub expires: Expiry,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Timestamp {
    /// A timestamp pinning `snapshot`.
    pub fn new(version: Version, expires: Expiry, snapshot: MetaFile) -> Self {
        Timestamp {
            type_tag: TimestampTag,
            spec_version: crate::SPEC_VERSION.into(),
            version,
            expires,
            meta: BTreeMap::from([("snapshot.json".to_owned(), snapshot)]),
            extra: BTreeMap::new(),
        }
    }

    /// The snapshot entry every timestamp carries (checked at parse time).
    pub fn snapshot_meta(&self) -> Option<&MetaFile> {
        self.meta.get("snapshot.json")
    }
}

impl Role for Timestamp {
    const TYPE: RoleType = RoleType::Timestamp;
    role_fields!();
    fn validate(&self) -> Result<(), Error> {
        if self.meta.len() == 1 && self.meta.contains_key("snapshot.json") {
            Ok(())
        } else {
            Err(Error::BadRole {
                role: "timestamp".into(),
                reason: "meta must hold exactly \"snapshot.json\"".into(),
            })
        }
    }
    fn tuf_only(&self) -> Result<(), Error> {
        versions_pinned("timestamp", &self.meta)
    }
}

/// The keys that may sign a role and how many of them must: from root for top-level roles,
/// from the delegating targets role for delegated ones.
#[derive(Clone, Debug)]
pub struct Authority<'a> {
    pub role: RoleName,
    pub keys: &'a BTreeMap<KeyId, PublicKey>,
    pub keyids: &'a [KeyId],
    pub threshold: NonZeroU32,
}

fn check_key_ids(keys: &BTreeMap<KeyId, PublicKey>) -> Result<(), Error> {
    for (claimed, key) in keys {
        let computed = key.key_id();
        if &computed != claimed {
            return Err(Error::KeyIdMismatch {
                claimed: claimed.to_string(),
                computed: computed.to_string(),
            });
        }
    }
    Ok(())
}

fn check_role_keys(role: &str, keyids: &[KeyId]) -> Result<(), Error> {
    let distinct: BTreeSet<&KeyId> = keyids.iter().collect();
    if distinct.len() != keyids.len() {
        return Err(Error::BadRole {
            role: role.into(),
            reason: "a key ID is listed twice".into(),
        });
    }
    Ok(())
}
