//! Current metadata served from memory.
//!
//! Each (GUN, role) entry holds the bytes, their sha256 (the ETag) and the expiry. Writes
//! through this server replace entries at once; an entry older than the TTL is read again
//! from the store, which bounds staleness when several servers share one PostgreSQL.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use notar_tuf::{Gun, RoleName};
use time::OffsetDateTime;

use crate::store::StoredMeta;

/// One cached current version.
#[derive(Clone, Debug)]
pub struct Entry {
    pub data: Bytes,
    pub sha256: String,
    pub expires: OffsetDateTime,
    loaded: Instant,
}

impl From<&StoredMeta> for Entry {
    fn from(m: &StoredMeta) -> Self {
        Entry {
            data: m.data.clone(),
            sha256: m.sha256.clone(),
            expires: m.expires,
            loaded: Instant::now(),
        }
    }
}

/// The cache of current metadata.
#[derive(Debug)]
pub struct MetaCache {
    ttl: Duration,
    entries: RwLock<HashMap<(Gun, RoleName), Entry>>,
}

impl MetaCache {
    pub fn new(ttl: Duration) -> Self {
        MetaCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The entry, if present and younger than the TTL.
    pub fn get(&self, gun: &Gun, role: &RoleName) -> Option<Entry> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(&(gun.clone(), role.clone()))
            .filter(|e| e.loaded.elapsed() < self.ttl)
            .cloned()
    }

    pub fn put(&self, gun: &Gun, meta: &StoredMeta) -> Entry {
        let entry = Entry::from(meta);
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((gun.clone(), meta.role.clone()), entry.clone());
        entry
    }

    /// Forgets every role of `gun` (after a write or a deletion).
    pub fn invalidate(&self, gun: &Gun) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(g, _), _| g != gun);
    }
}
