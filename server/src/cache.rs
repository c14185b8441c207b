//! Current metadata served from memory.
//!
//! Each (GUN, role) entry holds the bytes, their sha256 (the ETag) and the expiry. Writes
//! through this server replace entries at once; an entry older than the TTL is read again
//! from the store, which bounds staleness when several servers share one PostgreSQL.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Counts invalidations. A read from the store that began before one may have seen
    /// the old state; [`MetaCache::put`] drops it rather than cache it after the write.
    generation: AtomicU64,
}

impl MetaCache {
    pub fn new(ttl: Duration) -> Self {
        MetaCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
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

    /// The generation to pass to [`MetaCache::put`]: take it before reading the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches `meta`, read from the store after [`MetaCache::generation`] returned `seen`,
    /// unless the cache was invalidated since (the read may predate a write).
    pub fn put(&self, gun: &Gun, meta: &StoredMeta, seen: u64) -> Entry {
        let entry = Entry::from(meta);
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) == seen {
            entries.insert((gun.clone(), meta.role.clone()), entry.clone());
        }
        entry
    }

    /// Forgets every role of `gun` (after a write or a deletion).
    pub fn invalidate(&self, gun: &Gun) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|(g, _), _| g != gun);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    fn meta(version: u64) -> StoredMeta {
        StoredMeta {
            role: RoleName::targets(),
            version: notar_tuf::Version::new(version).unwrap(),
            sha256: format!("{version:064}"),
            data: Bytes::from(version.to_string()),
            expires: OffsetDateTime::now_utc(),
            created: OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn a_read_that_began_before_a_write_is_not_cached_after_it() {
        let cache = MetaCache::new(Duration::from_secs(60));
        let gun = Gun::new("example.com/app").unwrap();
        let seen = cache.generation();
        // A write lands (and invalidates) while the read of version 1 is in flight.
        cache.invalidate(&gun);
        cache.put(&gun, &meta(1), seen);
        assert!(cache.get(&gun, &RoleName::targets()).is_none());
        // A read that began after the write is cached.
        let seen = cache.generation();
        cache.put(&gun, &meta(2), seen);
        let entry = cache.get(&gun, &RoleName::targets()).unwrap();
        assert_eq!(&entry.data[..], b"2");
    }
}
