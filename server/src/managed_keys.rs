//! The keys the server holds for each GUN: timestamp always, snapshot by default.
//!
//! Keys are made on the first `GET …/{timestamp,snapshot}.key` and kept in the store,
//! wrapped under the key-encryption key ([`notar_keys::Kek`]) that every server derives from
//! the server secret once, at start-up. Making a key for a new repository is then a few
//! microseconds of AEAD, not an argon2id run. Keys stored before the KEK existed (key files
//! under the secret itself) are still read, and rewritten wrapped on first use. A repeated
//! GET returns the same (newest) key; `POST` makes a new newest key, which signs once a root
//! lists it. Unlocked keys stay in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use notar_keys::{KdfParams, Kek, KekSalt, PrivateKey};
use notar_tuf::notary::Dialect;
use notar_tuf::{Gun, KeyId, PublicKey};
use zeroize::Zeroizing;

use crate::audit::Origin;
use crate::error::ApiError;
use crate::path::ManagedRole;
use crate::store::{Store, StoredKey};

/// New keys per GUN and role in an hour, counting the first; more are refused (429).
pub const ROTATIONS_PER_HOUR: usize = 5;

/// Holder of the server-managed keys.
pub struct ManagedKeys {
    store: Arc<dyn Store>,
    /// The server secret, for keys stored before the KEK (key files under the secret).
    secret: Arc<Zeroizing<String>>,
    /// Wraps every new key.
    kek: Kek,
    /// Unlocked keys by key ID, at most [`UNLOCKED_MAX`]; a std mutex, never held across an
    /// await.
    unlocked: Mutex<HashMap<String, Arc<PrivateKey>>>,
}

/// Unlocked keys kept in memory at most: enough for the repositories in use, bounded
/// whatever their number (two keys for each of 100,000 repositories would hold some
/// 100 MB). Unwrapping a key under the KEK takes microseconds, so one dropped (an
/// arbitrary one, when the map is full) costs little when it is needed again.
pub const UNLOCKED_MAX: usize = 4096;

impl std::fmt::Debug for ManagedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedKeys").finish_non_exhaustive()
    }
}

/// Why the server secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the server secret does not decrypt the keys already in the database \
         (was NOTAR_SERVER_SECRET or the secret file changed?): {0}"
    )]
    Wrong(String),
    #[error("reading the keys in the database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("checking the server secret: {0}")]
    Task(String),
}

/// What a wrapped key is bound to: its GUN, role and key ID (the associated data).
fn wrap_context(gun: &Gun, role: &str, key_id: &str) -> String {
    format!("{gun}\n{role}\n{key_id}")
}

impl ManagedKeys {
    /// The managed keys of `store`, under the KEK `secret` derives (argon2id with `kdf`, once;
    /// the salt is made and stored by the first server to start on the database).
    ///
    /// A wrong secret is refused before anything is written: against the KEK's check value
    /// once there is a KEK, and, on a database from before the KEK, by opening its oldest
    /// key file with the secret before a KEK is made under it.
    pub async fn open(
        store: Arc<dyn Store>,
        secret: Arc<Zeroizing<String>>,
        kdf: KdfParams,
    ) -> Result<Self, SecretError> {
        let kek = match store.kek_salt().await? {
            Some(salt) => derive_kek(&secret, salt).await?,
            None => {
                if let Some(oldest) = store.any_key().await?
                    && !notar_keys::is_wrapped(&oldest.encrypted)
                {
                    let secret = Arc::clone(&secret);
                    blocking(move || notar_keys::decrypt_key(&oldest.encrypted, secret.as_str()))
                        .await?;
                }
                let made = {
                    let secret = Arc::clone(&secret);
                    blocking(move || Kek::create(secret.as_str(), kdf)).await?
                };
                let (kek, salt) = made;
                if store.add_kek_salt(salt.as_str()).await? {
                    kek
                } else {
                    // Another server made it first: use theirs.
                    let salt = store.kek_salt().await?.ok_or_else(|| {
                        SecretError::Task("the KEK row vanished while it was made".into())
                    })?;
                    derive_kek(&secret, salt).await?
                }
            }
        };
        let keys = ManagedKeys {
            store,
            secret,
            kek,
            unlocked: Mutex::new(HashMap::new()),
        };
        keys.check_oldest().await?;
        Ok(keys)
    }

    /// Unlocks the oldest stored key, so that a secret that opens the KEK but not the keys
    /// (a restored database from elsewhere) stops start-up rather than the first publish.
    async fn check_oldest(&self) -> Result<(), SecretError> {
        let Some(stored) = self.store.any_key().await? else {
            return Ok(());
        };
        self.unlock(&stored)
            .await
            .map(drop)
            .map_err(|e| SecretError::Wrong(e.message))
    }

    /// Readiness of the signing side: the key written last (by any server sharing the
    /// store) unlocks under this server's secret and is the key its row names. Unlocked
    /// keys are remembered, so a probe costs one query once the key is known.
    pub async fn ready(&self) -> Result<(), ApiError> {
        let Some(stored) = self.store.newest_key().await? else {
            return Ok(());
        };
        let key = self.unlock(&stored).await?;
        if key.key_id().as_str() != stored.key_id {
            return Err(ApiError::internal(format!(
                "managed key {} decrypts to the key {}",
                stored.key_id,
                key.key_id()
            )));
        }
        Ok(())
    }

    /// The newest key of (gun, role), made now if there is none.
    pub async fn current_public(
        &self,
        gun: &Gun,
        role: ManagedRole,
        origin: &Origin,
    ) -> Result<PublicKey, ApiError> {
        let keys = self.store.keys(gun, &role.role_name()).await?;
        if let Some(newest) = keys.last() {
            return Ok(self.unlock(newest).await?.public_key());
        }
        if let Some(key) = self.generate(gun, role, true, origin).await? {
            return Ok(key.public_key());
        }
        // Another request made the first key between our read and our write: use theirs.
        let keys = self.store.keys(gun, &role.role_name()).await?;
        let newest = keys
            .last()
            .ok_or_else(|| ApiError::internal("a managed key vanished while it was made"))?;
        Ok(self.unlock(newest).await?.public_key())
    }

    /// Makes a new newest key for (gun, role), at most [`ROTATIONS_PER_HOUR`] an hour (the
    /// keys are counted in the store, so the limit holds across servers sharing it).
    pub async fn rotate(
        &self,
        gun: &Gun,
        role: ManagedRole,
        origin: &Origin,
    ) -> Result<PublicKey, ApiError> {
        let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let recent = self
            .store
            .keys(gun, &role.role_name())
            .await?
            .iter()
            .filter(|k| k.created > hour_ago)
            .count();
        if recent >= ROTATIONS_PER_HOUR {
            return Err(ApiError::new(
                crate::error::ErrorKind::TooManyRequests,
                format!("{gun} got {recent} new {role:?} keys in the last hour; try again later"),
            )
            .with_header(axum::http::header::RETRY_AFTER, "3600"));
        }
        let key = self
            .generate(gun, role, false, origin)
            .await?
            .ok_or_else(|| ApiError::internal("a rotated key was not stored"))?;
        Ok(key.public_key())
    }

    /// IDs of every key the server ever handed out for (gun, role).
    pub async fn key_ids(&self, gun: &Gun, role: ManagedRole) -> Result<Vec<KeyId>, ApiError> {
        let keys = self.store.keys(gun, &role.role_name()).await?;
        Ok(keys
            .iter()
            .filter_map(|k| KeyId::new(k.key_id.clone()).ok())
            .collect())
    }

    /// Keeps `key`, made elsewhere (notary-signer's, for an imported repository), as a
    /// managed key of (gun, role), wrapped under this server's KEK like its own. A key
    /// already held is left as it is. Returns whether it was added.
    pub async fn import(
        &self,
        gun: &Gun,
        role: ManagedRole,
        key: &PrivateKey,
        created: time::OffsetDateTime,
        origin: &Origin,
    ) -> Result<bool, ApiError> {
        let name = role.role_name();
        let key_id = key.key_id().to_string();
        if self
            .store
            .keys(gun, &name)
            .await?
            .iter()
            .any(|k| k.key_id == key_id)
        {
            return Ok(false);
        }
        let context = wrap_context(gun, name.as_str(), &key_id);
        let encrypted = self
            .kek
            .wrap(key, &context)
            .map_err(|e| ApiError::internal(format!("wrapping an imported {role:?} key: {e}")))?;
        let stored = StoredKey {
            gun: gun.clone(),
            role: name,
            key_id,
            encrypted,
            created,
        };
        Ok(self.store.add_key_as(&stored, false, origin).await?)
    }

    /// IDs of every key the server ever handed out for (gun, role), as `dialect` writes
    /// key objects (a Notary key ID hashes the Notary form of the key).
    pub async fn key_ids_in(
        &self,
        gun: &Gun,
        role: ManagedRole,
        dialect: Dialect,
    ) -> Result<Vec<KeyId>, ApiError> {
        if dialect == Dialect::Tuf {
            return self.key_ids(gun, role).await;
        }
        let mut ids = Vec::new();
        for stored in self.store.keys(gun, &role.role_name()).await? {
            ids.push(notary_id(&*self.unlock(&stored).await?)?);
        }
        Ok(ids)
    }

    /// [`Self::signer`] for key IDs written in `dialect`.
    pub async fn signer_in(
        &self,
        gun: &Gun,
        role: ManagedRole,
        wanted: &[KeyId],
        dialect: Dialect,
    ) -> Result<Option<Arc<PrivateKey>>, ApiError> {
        if dialect == Dialect::Tuf {
            return self.signer(gun, role, wanted).await;
        }
        for stored in self.store.keys(gun, &role.role_name()).await?.iter().rev() {
            let key = self.unlock(stored).await?;
            if wanted.contains(&notary_id(&key)?) {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// The newest key of (gun, role) among `wanted` (the key IDs root lists for the role).
    pub async fn signer(
        &self,
        gun: &Gun,
        role: ManagedRole,
        wanted: &[KeyId],
    ) -> Result<Option<Arc<PrivateKey>>, ApiError> {
        let keys = self.store.keys(gun, &role.role_name()).await?;
        let chosen = keys
            .iter()
            .rev()
            .find(|k| wanted.iter().any(|w| w.as_str() == k.key_id));
        match chosen {
            Some(stored) => Ok(Some(self.unlock(stored).await?)),
            None => Ok(None),
        }
    }

    async fn generate(
        &self,
        gun: &Gun,
        role: ManagedRole,
        only_if_none: bool,
        origin: &Origin,
    ) -> Result<Option<Arc<PrivateKey>>, ApiError> {
        let key = PrivateKey::generate()
            .map_err(|e| ApiError::internal(format!("generating a {role:?} key: {e}")))?;
        let name = role.role_name();
        let context = wrap_context(gun, name.as_str(), key.key_id().as_str());
        let encrypted = self
            .kek
            .wrap(&key, &context)
            .map_err(|e| ApiError::internal(format!("wrapping a {role:?} key: {e}")))?;
        let stored = StoredKey {
            gun: gun.clone(),
            role: name,
            key_id: key.key_id().to_string(),
            encrypted,
            created: time::OffsetDateTime::now_utc(),
        };
        if !self.store.add_key_as(&stored, only_if_none, origin).await? {
            return Ok(None);
        }
        tracing::info!(gun = %gun, role = ?role, key_id = %key.key_id(), "made a server-managed key");
        Ok(Some(self.remember(key)))
    }

    async fn unlock(&self, stored: &StoredKey) -> Result<Arc<PrivateKey>, ApiError> {
        if let Some(key) = self.cached(&stored.key_id) {
            return Ok(key);
        }
        let context = wrap_context(&stored.gun, stored.role.as_str(), &stored.key_id);
        let failed = |e: notar_keys::Error| {
            ApiError::internal(format!("unlocking managed key {}: {e}", stored.key_id))
        };
        if notar_keys::is_wrapped(&stored.encrypted) {
            let key = self
                .kek
                .unwrap(&stored.encrypted, &context)
                .map_err(failed)?;
            return Ok(self.remember(key));
        }
        // A key file from before the KEK: argon2id under the secret, once, then rewritten
        // wrapped so that no server pays that again.
        let secret = Arc::clone(&self.secret);
        let encrypted = stored.encrypted.clone();
        let key = blocking(move || notar_keys::decrypt_key(&encrypted, secret.as_str()))
            .await
            .map_err(|e| match e {
                SecretError::Wrong(message) | SecretError::Task(message) => ApiError::internal(
                    format!("unlocking managed key {}: {message}", stored.key_id),
                ),
                SecretError::Store(e) => e.into(),
            })?;
        if key.key_id().as_str() != stored.key_id {
            return Err(ApiError::internal(format!(
                "managed key {} decrypts to the key {}",
                stored.key_id,
                key.key_id()
            )));
        }
        let wrapped = self.kek.wrap(&key, &context).map_err(failed)?;
        if self
            .store
            .rewrap_key(&stored.key_id, &stored.encrypted, &wrapped)
            .await?
        {
            tracing::info!(key_id = %stored.key_id, "rewrote a managed key under the KEK");
        }
        Ok(self.remember(key))
    }

    fn cached(&self, key_id: &str) -> Option<Arc<PrivateKey>> {
        self.unlocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key_id)
            .cloned()
    }

    fn remember(&self, key: PrivateKey) -> Arc<PrivateKey> {
        let key = Arc::new(key);
        let mut unlocked = self
            .unlocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if unlocked.len() >= UNLOCKED_MAX
            && !unlocked.contains_key(key.key_id().as_str())
            && let Some(other) = unlocked.keys().next().cloned()
        {
            unlocked.remove(&other);
        }
        unlocked.insert(key.key_id().to_string(), Arc::clone(&key));
        key
    }

    /// How many unlocked keys are held (for tests).
    pub fn unlocked_count(&self) -> usize {
        self.unlocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// Runs argon2id (or another slow step) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, notar_keys::Error> + Send + 'static,
) -> Result<T, SecretError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SecretError::Task(e.to_string()))?
        .map_err(|e| SecretError::Wrong(e.to_string()))
}

async fn derive_kek(secret: &Arc<Zeroizing<String>>, salt: String) -> Result<Kek, SecretError> {
    let secret = Arc::clone(secret);
    blocking(move || Kek::derive(secret.as_str(), &KekSalt::from_stored(salt))).await
}

/// The key ID of `key` in its Notary form.
fn notary_id(key: &PrivateKey) -> Result<KeyId, ApiError> {
    notar_tuf::notary::notary_key(&key.public_key())
        .map(|k| k.key_id())
        .map_err(|e| ApiError::internal(format!("a managed key has no Notary form: {e}")))
}
