//! The keys the server holds for each GUN: timestamp always, snapshot by default.
//!
//! Keys are made on the first `GET …/{timestamp,snapshot}.key` and kept, encrypted in the
//! notar-keys key file format under the server secret, in the store. A repeated GET returns
//! the same (newest) key; `POST` makes a new newest key, which signs once a root lists it.
//! Unlocked keys stay in memory, so argon2id runs once per key per process, off the async
//! runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use notar_keys::{KdfParams, KeyRole, PrivateKey};
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
    /// The server secret every managed key is encrypted under.
    secret: Arc<Zeroizing<String>>,
    /// argon2id cost for new key files (tests lower it).
    kdf: KdfParams,
    /// Unlocked keys by key ID; a std mutex, never held across an await.
    unlocked: Mutex<HashMap<String, Arc<PrivateKey>>>,
}

impl std::fmt::Debug for ManagedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedKeys")
            .field("kdf", &self.kdf)
            .finish_non_exhaustive()
    }
}

/// Why the server secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the server secret does not decrypt the keys already in the database \
         (was NOTAR_SERVER_SECRET or the secret file changed?): {0}"
    )]
    Wrong(notar_keys::Error),
    #[error("reading the keys in the database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("checking the server secret: {0}")]
    Task(String),
}

fn key_role(role: ManagedRole) -> KeyRole {
    match role {
        ManagedRole::Timestamp => KeyRole::Timestamp,
        ManagedRole::Snapshot => KeyRole::Snapshot,
    }
}

impl ManagedKeys {
    pub fn new(store: Arc<dyn Store>, secret: Arc<Zeroizing<String>>, kdf: KdfParams) -> Self {
        ManagedKeys {
            store,
            secret,
            kdf,
            unlocked: Mutex::new(HashMap::new()),
        }
    }

    /// Decrypts one stored key, if there is any, so that a wrong secret stops start-up
    /// rather than the first publish.
    pub async fn check_secret(&self) -> Result<(), SecretError> {
        let Some(stored) = self.store.any_key().await? else {
            return Ok(());
        };
        let secret = Arc::clone(&self.secret);
        let key = tokio::task::spawn_blocking(move || {
            notar_keys::decrypt_key(&stored.encrypted, secret.as_str())
        })
        .await
        .map_err(|e| SecretError::Task(e.to_string()))?
        .map_err(SecretError::Wrong)?;
        self.remember(key);
        Ok(())
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
        let secret = Arc::clone(&self.secret);
        let kdf = self.kdf;
        let gun_owned = gun.clone();
        let (key, encrypted) = tokio::task::spawn_blocking(move || {
            let key = PrivateKey::generate()?;
            let encrypted = notar_keys::encrypt_key(
                &key,
                key_role(role),
                Some(&gun_owned),
                secret.as_str(),
                kdf,
            )?;
            Ok::<_, notar_keys::Error>((key, encrypted))
        })
        .await
        .map_err(|e| ApiError::internal(format!("key generation task: {e}")))?
        .map_err(|e| ApiError::internal(format!("generating a {role:?} key: {e}")))?;
        let stored = StoredKey {
            gun: gun.clone(),
            role: role.role_name(),
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
        let secret = Arc::clone(&self.secret);
        let encrypted = stored.encrypted.clone();
        let key = tokio::task::spawn_blocking(move || {
            notar_keys::decrypt_key(&encrypted, secret.as_str())
        })
        .await
        .map_err(|e| ApiError::internal(format!("key unlock task: {e}")))?
        .map_err(|e| ApiError::internal(format!("unlocking managed key {}: {e}", stored.key_id)))?;
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
        self.unlocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.key_id().to_string(), Arc::clone(&key));
        key
    }
}
