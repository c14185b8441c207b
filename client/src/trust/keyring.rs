//! The private keys a command signs with: found in the trust directory's key store,
//! unlocked or created with a passphrase from the environment or the terminal.
//!
//! Passphrase prompts and argon2id run off the async runtime. Commands unlock every
//! existing key they need before they create or write anything, so a wrong passphrase
//! leaves every file as it was.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use notar_keys::{KdfParams, KeyInfo, KeyRole, KeyStore, PassphraseSource, PrivateKey};
use notar_tuf::notary::Dialect;
use notar_tuf::{Gun, KeyId, PublicKey};
use zeroize::Zeroizing;

use crate::Error;
use crate::trust::agent::{Agent, AgentKey};

/// The ID under which a trust directory holds the key a repository lists as `id`, among
/// its key objects `keys`. In TUF 1.0 it is `id` itself. A Notary repository lists its keys
/// in Notary's forms (base64 DER, X.509 certificates), and Notar's key files are named by
/// the ID of the key's TUF 1.0 form, so the ID of that form is the one to look for. A key
/// object that does not decode keeps its ID (and matches no key file).
pub fn held_id(dialect: Dialect, keys: &BTreeMap<KeyId, PublicKey>, id: &KeyId) -> KeyId {
    if dialect == Dialect::Tuf {
        return id.clone();
    }
    keys.get(id)
        .and_then(|key| key.tuf_form().ok())
        .map(|key| key.key_id())
        .unwrap_or_else(|| id.clone())
}

/// An unlocked key: in this process, or held by the agent (which signs for it).
#[derive(Debug)]
pub enum UnlockedKey {
    Local(PrivateKey),
    Agent(AgentKey),
}

impl UnlockedKey {
    pub fn key_id(&self) -> &KeyId {
        match self {
            UnlockedKey::Local(key) => key.key_id(),
            UnlockedKey::Agent(key) => key.key_id(),
        }
    }

    pub fn public_key(&self) -> notar_tuf::PublicKey {
        notar_tuf::Signer::public_key(self)
    }
}

impl notar_tuf::Signer for UnlockedKey {
    fn public_key(&self) -> notar_tuf::PublicKey {
        match self {
            UnlockedKey::Local(key) => key.public_key(),
            UnlockedKey::Agent(key) => key.public_key(),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            UnlockedKey::Local(key) => notar_tuf::Signer::sign(key, message),
            UnlockedKey::Agent(key) => key.sign(message),
        }
    }
}

/// The keys one command has unlocked, by key ID, so that it unlocks each (asks for its
/// passphrase, runs argon2id) at most once. In memory only; dropped, and wiped, with the
/// command.
#[derive(Clone, Debug, Default)]
pub struct Unlocked(Arc<Mutex<HashMap<KeyId, Arc<UnlockedKey>>>>);

impl Unlocked {
    fn get(&self, key_id: &KeyId) -> Option<Arc<UnlockedKey>> {
        self.0.lock().ok()?.get(key_id).cloned()
    }

    fn put(&self, key: Arc<UnlockedKey>) {
        if let Ok(mut keys) = self.0.lock() {
            keys.insert(key.key_id().clone(), key);
        }
    }
}

/// The key store of the trust directory, with the KDF cost new keys get.
#[derive(Clone, Debug)]
pub struct Keyring {
    pub store: KeyStore,
    kdf: KdfParams,
    unlocked: Unlocked,
    trust_dir: std::path::PathBuf,
}

/// A key made in memory, with its passphrase, not yet written.
#[derive(Debug)]
pub struct NewKey {
    pub key: PrivateKey,
    pub role: KeyRole,
    pub gun: Option<Gun>,
    passphrase: Zeroizing<String>,
}

impl Keyring {
    /// The key store of `trust_dir`, sharing the keys `unlocked` so far.
    pub fn open(
        trust_dir: &std::path::Path,
        kdf: KdfParams,
        unlocked: Unlocked,
    ) -> Result<Self, Error> {
        let store = KeyStore::open(trust_dir).map_err(Error::keys("opening the key store"))?;
        Ok(Keyring {
            store,
            kdf,
            unlocked,
            trust_dir: trust_dir.to_path_buf(),
        })
    }

    /// The one key for `role` and `gun` in the store, if there is one. A damaged key file
    /// could be that key, so it is an error rather than a reason to make a new key.
    pub fn find(&self, role: KeyRole, gun: Option<&Gun>) -> Result<Option<KeyInfo>, Error> {
        let listing = self
            .store
            .find(role, gun)
            .map_err(Error::keys("listing keys"))?;
        if listing.keys.is_empty()
            && let Some(damaged) = listing.damaged.into_iter().next()
        {
            return Err(Error::Keys {
                action: format!(
                    "looking for the {role} key{}: {} cannot be read, and it may be that key; repair or move it",
                    for_gun(gun),
                    damaged.path.display()
                ),
                source: damaged.error,
            });
        }
        Ok(listing.keys.into_iter().next())
    }

    /// Whether the store holds `key_id` as a signer's (delegation) key.
    pub fn holds_delegation_key(&self, key_id: &KeyId) -> bool {
        self.store
            .info(key_id)
            .is_ok_and(|info| info.role == KeyRole::Delegation)
    }

    /// The first of `key_ids` the store holds for `role`.
    pub fn find_any(&self, role: KeyRole, key_ids: &[KeyId]) -> Option<KeyInfo> {
        key_ids
            .iter()
            .filter_map(|id| self.store.info(id).ok())
            .find(|info| info.role == role)
    }

    /// Unlocks the key `key_id` for signing, unless this command has already: through the
    /// agent when one runs (it may hold the key already; if not, it gets the passphrase
    /// and keeps the key), else here, asking for its passphrase.
    pub async fn unlock(&self, role: KeyRole, key_id: &KeyId) -> Result<Arc<UnlockedKey>, Error> {
        if let Some(key) = self.unlocked.get(key_id) {
            tracing::debug!(key = key_id.short(), "{role} key already unlocked");
            return Ok(key);
        }
        // Connecting to the agent blocks: off the runtime's one thread.
        let dir = self.trust_dir.clone();
        let agent = tokio::task::spawn_blocking(move || Agent::find(&dir))
            .await
            .map_err(Error::Task)?;
        let key = match agent {
            Some(agent) => self.unlock_in(agent, role, key_id).await?,
            None => {
                let key = UnlockedKey::Local(self.unlock_local(role, key_id).await?);
                tracing::debug!(key = key_id.short(), "unlocked the {role} key");
                key
            }
        };
        let key = Arc::new(key);
        self.unlocked.put(key.clone());
        Ok(key)
    }

    async fn unlock_in(
        &self,
        agent: Agent,
        role: KeyRole,
        key_id: &KeyId,
    ) -> Result<UnlockedKey, Error> {
        let action = format!("unlocking the {role} key {}", key_id.short());
        let held = {
            let (agent, key_id) = (agent.clone(), key_id.clone());
            tokio::task::spawn_blocking(move || agent.holds(&key_id))
                .await
                .map_err(Error::Task)?
        };
        let public = match held {
            Some(public) => {
                tracing::debug!(key = key_id.short(), "the agent holds the {role} key");
                public
            }
            None => {
                let passphrase = passphrase(role, key_id.clone(), Ask::Unlock)
                    .await?
                    .map_err(Error::keys(action.clone()))?;
                let (agent, id) = (agent.clone(), key_id.clone());
                let public =
                    tokio::task::spawn_blocking(move || agent.unlock(&id, passphrase.as_str()))
                        .await
                        .map_err(Error::Task)?
                        .map_err(|reason| Error::Agent {
                            action: action.clone(),
                            reason,
                        })?;
                tracing::debug!(key = key_id.short(), "the agent unlocked the {role} key");
                public
            }
        };
        Ok(UnlockedKey::Agent(AgentKey::new(
            agent,
            key_id.clone(),
            public,
        )))
    }

    /// Unlocks the key `key_id` in this process, asking for its passphrase: for commands
    /// that need the key itself (a new passphrase), not only its signatures.
    ///
    /// A passphrase typed at the terminal gets [`notar_keys::passphrase::CREATE_TRIES`]
    /// tries; one from the environment gets one (asking again would change nothing).
    pub async fn unlock_local(&self, role: KeyRole, key_id: &KeyId) -> Result<PrivateKey, Error> {
        let action = format!("unlocking the {role} key {}", key_id.short());
        let tries = if PassphraseSource::from_env().in_environment(role) {
            1
        } else {
            notar_keys::passphrase::CREATE_TRIES
        };
        let mut attempt = 1;
        loop {
            let passphrase = passphrase(role, key_id.clone(), Ask::Unlock)
                .await?
                .map_err(Error::keys(action.clone()))?;
            match self.store.load_async(key_id, passphrase).await {
                Err(e @ notar_keys::Error::WrongPassphrase { .. }) if attempt < tries => {
                    eprintln!("notar: {e}; try again ({} of {tries})", attempt + 1);
                    attempt += 1;
                }
                result => return result.map_err(Error::keys(action)),
            }
        }
    }

    /// Generates a key and gets a passphrase for it; nothing is written yet.
    pub async fn generate(&self, role: KeyRole, gun: Option<&Gun>) -> Result<NewKey, Error> {
        let key = PrivateKey::generate().map_err(Error::keys("generating a key"))?;
        self.with_passphrase(key, role, gun, "creating").await
    }

    /// Gets a passphrase for a key made elsewhere (an import); nothing is written yet.
    pub async fn adopt(
        &self,
        key: PrivateKey,
        role: KeyRole,
        gun: Option<&Gun>,
    ) -> Result<NewKey, Error> {
        self.with_passphrase(key, role, gun, "importing").await
    }

    /// A new passphrase for `key`; `doing` names the step in errors.
    async fn with_passphrase(
        &self,
        key: PrivateKey,
        role: KeyRole,
        gun: Option<&Gun>,
        doing: &str,
    ) -> Result<NewKey, Error> {
        let passphrase = passphrase(role, key.key_id().clone(), Ask::Create)
            .await?
            .map_err(Error::keys(format!(
                "{doing} the {role} key{}",
                for_gun(gun)
            )))?;
        Ok(NewKey {
            key,
            role,
            gun: gun.cloned(),
            passphrase,
        })
    }

    /// Encrypts and writes a generated key.
    pub async fn save(&self, new: &NewKey) -> Result<KeyInfo, Error> {
        self.store
            .save_async(
                &new.key,
                new.role,
                new.gun.as_ref(),
                new.passphrase.clone(),
                self.kdf,
            )
            .await
            .map_err(Error::keys(format!(
                "saving the new {} key {}",
                new.role,
                new.key.key_id().short()
            )))
    }
}

fn for_gun(gun: Option<&Gun>) -> String {
    gun.map(|g| format!(" of {g}")).unwrap_or_default()
}

enum Ask {
    Unlock,
    Create,
}

/// Asks [`PassphraseSource::from_env`] on a blocking thread (it may prompt on the terminal).
async fn passphrase(
    role: KeyRole,
    key_id: KeyId,
    ask: Ask,
) -> Result<notar_keys::Result<Zeroizing<String>>, Error> {
    tokio::task::spawn_blocking(move || {
        let source = PassphraseSource::from_env();
        match ask {
            Ask::Unlock => source.unlock(role, &key_id),
            Ask::Create => source.create(role, &key_id),
        }
    })
    .await
    .map_err(Error::Task)
}
