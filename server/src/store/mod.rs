//! Storage of TUF metadata, the change log and server-managed keys.
//!
//! [`Store`] is what the rest of the server sees. [`sql::SqlStore`] implements it on SQLite
//! (the embedded default) and PostgreSQL through one set of queries; the schema of each lives
//! in `migrations/sqlite/` and `migrations/postgres/` and is applied at start. Everything
//! that must be atomic (an update of several roles, a deletion) is one transaction, and the
//! unique key (gun, role, version) is what makes one of two racing updates lose.

pub mod sql;

use async_trait::async_trait;
use bytes::Bytes;
use notar_tuf::{Gun, RoleName, Version};
use time::OffsetDateTime;

use crate::audit::{AuditRecord, Origin};

/// One stored version of one role's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMeta {
    pub role: RoleName,
    pub version: Version,
    /// Lower-case hex sha256 of `data`.
    pub sha256: String,
    /// The metadata exactly as uploaded or signed.
    pub data: Bytes,
    /// When the metadata expires (from its `expires`), for the freshness task.
    pub expires: OffsetDateTime,
    pub created: OffsetDateTime,
}

/// What a page needs of one stored version: everything but the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaHead {
    pub role: RoleName,
    pub version: Version,
    pub expires: OffsetDateTime,
    pub created: OffsetDateTime,
}

/// Metadata to write.
#[derive(Clone, Debug)]
pub struct NewMeta {
    pub role: RoleName,
    pub version: Version,
    pub data: Bytes,
    pub expires: OffsetDateTime,
}

/// A change log entry: a new timestamp (category `update`) or a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub id: i64,
    pub created: OffsetDateTime,
    pub gun: String,
    pub version: u64,
    pub sha256: String,
    pub category: ChangeCategory,
    /// The token subject that made the change; `None` without authentication.
    pub actor: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeCategory {
    Update,
    Deletion,
}

impl ChangeCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeCategory::Update => "update",
            ChangeCategory::Deletion => "deletion",
        }
    }
}

/// Which part of the change log to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeQuery {
    /// Up to `limit` changes with an ID greater than `after`, oldest first.
    After { after: i64, limit: u32 },
    /// Up to `limit` changes with an ID less than `before` (`None`: the newest), oldest first.
    Before { before: Option<i64>, limit: u32 },
}

/// A co-signing proposal as stored (see `proposals` in the migrations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredProposal {
    /// Lower-case hex sha256 over the canonical signed parts of its files, in role order.
    pub id: String,
    pub roles: Vec<RoleName>,
    /// JSON object: role name to metadata text, with the signatures so far.
    pub files: Bytes,
    /// Bumped by every change; a co-signature writes only over the revision it read.
    pub revision: i64,
    pub proposed_by: String,
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
}

/// A server-managed private key, encrypted (notar-keys key file format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub gun: Gun,
    /// `timestamp` or `snapshot`.
    pub role: RoleName,
    pub key_id: String,
    /// The encrypted key file; never leaves the server.
    pub encrypted: Vec<u8>,
    pub created: OffsetDateTime,
}

/// The built-in token issuer's key: PKCS#8 sealed under the server secret
/// ([`notar_keys::sealed`]), and its certificate (PEM), which is public.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedIssuerKey {
    pub sealed: Vec<u8>,
    pub certificate: String,
}

impl std::fmt::Debug for SealedIssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedIssuerKey").finish_non_exhaustive()
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another writer stored one of these (gun, role, version) first.
    #[error("a version of {gun} was written concurrently")]
    VersionConflict { gun: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Unsupported(String),
}

/// The server's storage.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The newest version of `role`.
    async fn current(&self, gun: &Gun, role: &RoleName) -> Result<Option<StoredMeta>, StoreError>;
    /// The newest version of every role of `gun`.
    async fn current_all(&self, gun: &Gun) -> Result<Vec<StoredMeta>, StoreError>;
    /// [`Store::current_all`] without the documents (a list of many repositories).
    async fn current_heads(&self, gun: &Gun) -> Result<Vec<MetaHead>, StoreError>;
    async fn by_version(
        &self,
        gun: &Gun,
        role: &RoleName,
        version: Version,
    ) -> Result<Option<StoredMeta>, StoreError>;
    async fn by_checksum(
        &self,
        gun: &Gun,
        role: &RoleName,
        sha256: &str,
    ) -> Result<Option<StoredMeta>, StoreError>;
    /// Writes all of `files` in one transaction, or nothing. A (gun, role, version) that
    /// exists already gives [`StoreError::VersionConflict`]. Every timestamp written adds an
    /// `update` row to the change log; a delegated role written is no longer pending.
    /// The write is an audit record of `origin` (see [`crate::audit`]).
    async fn commit_as(
        &self,
        gun: &Gun,
        files: &[NewMeta],
        origin: &Origin,
    ) -> Result<(), StoreError>;
    /// [`Store::commit_as`] from no one in particular.
    async fn commit(&self, gun: &Gun, files: &[NewMeta]) -> Result<(), StoreError> {
        self.commit_as(gun, files, &Origin::default()).await
    }
    /// Deletes all metadata, keys and pending delegations of `gun` and logs the deletion,
    /// an audit record of `origin`. False if it had no metadata.
    async fn delete_as(&self, gun: &Gun, origin: &Origin) -> Result<bool, StoreError>;
    /// [`Store::delete_as`] from no one in particular.
    async fn delete(&self, gun: &Gun) -> Result<bool, StoreError> {
        self.delete_as(gun, &Origin::default()).await
    }
    async fn changes(
        &self,
        gun: Option<&Gun>,
        query: ChangeQuery,
    ) -> Result<Vec<Change>, StoreError>;
    /// Deletes every version of `gun`'s roles but the newest `keep` of each; root versions
    /// are all kept (clients walk the chain from any root they trust). An audit record of
    /// `origin` when something was removed. Returns how many files went.
    async fn prune(&self, gun: &Gun, keep: u64, origin: &Origin) -> Result<u64, StoreError>;

    /// Every GUN with trust data, in order.
    async fn guns(&self) -> Result<Vec<Gun>, StoreError>;
    /// GUNs whose newest timestamp expires before `before` (the freshness task's work list).
    async fn expiring(&self, before: OffsetDateTime) -> Result<Vec<Gun>, StoreError>;

    /// Claims the re-signing of `gun` until `until`, unless another server holds an
    /// unexpired claim; true when this caller got it.
    async fn claim_refresh(&self, gun: &Gun, until: OffsetDateTime) -> Result<bool, StoreError>;

    /// All server-managed keys of (gun, role), oldest first.
    async fn keys(&self, gun: &Gun, role: &RoleName) -> Result<Vec<StoredKey>, StoreError>;
    /// Adds a key. With `only_if_none`, adds it only when (gun, role) has no key yet, and
    /// returns whether it was added (two first GETs racing must agree on one key). An
    /// added key is an audit record of `origin`.
    async fn add_key_as(
        &self,
        key: &StoredKey,
        only_if_none: bool,
        origin: &Origin,
    ) -> Result<bool, StoreError>;
    /// [`Store::add_key_as`] from no one in particular.
    async fn add_key(&self, key: &StoredKey, only_if_none: bool) -> Result<bool, StoreError> {
        self.add_key_as(key, only_if_none, &Origin::default()).await
    }
    /// Any one stored key, to check the server secret at start-up.
    /// The stored derivation of the key-encryption key (`notar_keys::KekSalt` text).
    async fn kek_salt(&self) -> Result<Option<String>, StoreError>;
    /// Stores the KEK derivation unless there is one already; true when this one was kept.
    async fn add_kek_salt(&self, kdf: &str) -> Result<bool, StoreError>;
    /// Replaces key `key_id`'s stored bytes `old` with `new` (a legacy key file rewritten
    /// wrapped); false when the row no longer holds `old` (another server did it).
    async fn rewrap_key(&self, key_id: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError>;
    /// The server key written last, if any (readiness unlocks it).
    async fn newest_key(&self) -> Result<Option<StoredKey>, StoreError>;
    async fn any_key(&self) -> Result<Option<StoredKey>, StoreError>;

    /// Keeps `targets` (the owner's next targets, already validated) as pending for each
    /// of `roles`, replacing what was pending for them.
    async fn put_pending_as(
        &self,
        gun: &Gun,
        roles: &[RoleName],
        targets: &Bytes,
        origin: &Origin,
    ) -> Result<(), StoreError>;
    /// [`Store::put_pending_as`] from no one in particular.
    async fn put_pending(
        &self,
        gun: &Gun,
        roles: &[RoleName],
        targets: &Bytes,
    ) -> Result<(), StoreError> {
        self.put_pending_as(gun, roles, targets, &Origin::default())
            .await
    }

    /// Keeps `proposal`, replacing every proposal of `gun` that shares a role with it.
    async fn put_proposal_as(
        &self,
        gun: &Gun,
        proposal: &StoredProposal,
        origin: &Origin,
    ) -> Result<(), StoreError>;
    /// The proposals of `gun`, oldest first, expired ones included (the caller drops them).
    async fn proposals(&self, gun: &Gun) -> Result<Vec<StoredProposal>, StoreError>;
    /// Replaces the files of proposal `id` if it is still at `revision` (false: it changed
    /// or went); `signers` are the key IDs the co-signature added, for the audit trail.
    async fn cosign_proposal_as(
        &self,
        gun: &Gun,
        id: &str,
        revision: i64,
        files: &Bytes,
        signers: &[String],
        origin: &Origin,
    ) -> Result<bool, StoreError>;
    /// Drops proposal `id`, saying why in the audit trail. False: it was gone already.
    async fn drop_proposal_as(
        &self,
        gun: &Gun,
        id: &str,
        reason: &str,
        origin: &Origin,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` audit records with IDs above `after`, in ID order.
    async fn audit_records(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
    /// The newest `limit` audit records of `gun`, newest first.
    async fn audit_of(&self, gun: &Gun, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
    /// Current roots, targets and delegations (what publishers renew) expiring before
    /// `before`, soonest first, at most `limit`: (GUN, role, expiry).
    async fn expiring_roles(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<(String, String, OffsetDateTime)>, StoreError>;
    /// Every pending delegation of `gun`: (waiting role, targets that delegate it).
    async fn pending(&self, gun: &Gun) -> Result<Vec<(RoleName, Bytes)>, StoreError>;

    /// The token issuer's sealed signing key, if one was made.
    async fn issuer_key(&self) -> Result<Option<SealedIssuerKey>, StoreError>;
    /// Stores the issuer key unless there is one already; false if another server made
    /// its key first (the caller then uses that one).
    async fn add_issuer_key(&self, key: &SealedIssuerKey) -> Result<bool, StoreError>;

    /// The earliest expiry among the current timestamps and snapshots (what the server
    /// re-signs), and among the current roots, targets and delegations (what publishers
    /// must renew); `None` where there is no such role.
    async fn expiry_horizon(
        &self,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StoreError>;
    /// Database connections (open, idle).
    fn pool_use(&self) -> (u32, u32);

    /// A cheap query proving the database answers.
    async fn health(&self) -> Result<(), StoreError>;
}
