//! Metadata served from memory, within a byte budget.
//!
//! Two kinds of entry share the budget: the current version of a (GUN, role), which is read
//! again from the store once older than the TTL (bounding staleness when several servers
//! share one PostgreSQL), and a version asked for by number or checksum, which never changes
//! and stays until it is evicted or its repository is written. Writes through this server
//! drop the repository's entries at once.
//!
//! Each entry holds the identity bytes, their sha256 (the ETag), the expiry, and the gzip
//! bytes of documents large enough to gain from it, compressed when the entry is made; a
//! current entry read again with the same sha256 keeps the gzip bytes it had, so each
//! version is compressed once per process, never per request.
//!
//! When the entries' bytes pass the budget, the least recently used are evicted until they
//! are below nine tenths of it. Hits only touch an atomic counter, under the read lock.

use std::collections::HashMap;
use std::io::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use notar_tuf::{Gun, RoleName};
use time::OffsetDateTime;

use crate::store::StoredMeta;

/// Documents shorter than this are sent as they are: a timestamp (about 500 bytes) would
/// gain a few dozen bytes and cost a header and a compression.
pub const GZIP_MIN_LEN: usize = 1024;

/// Which document of a GUN an entry holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The current version of a role (expires from memory after the TTL).
    Current(RoleName),
    /// Version N of a role (immutable).
    Version(RoleName, u64),
    /// The version of a role with this sha256 (immutable).
    Checksum(RoleName, String),
}

impl Slot {
    fn immutable(&self) -> bool {
        !matches!(self, Slot::Current(_))
    }
}

/// One cached document.
#[derive(Clone, Debug)]
pub struct Entry {
    pub data: Bytes,
    pub sha256: String,
    pub expires: OffsetDateTime,
    /// The gzip bytes of `data`, when it is at least [`GZIP_MIN_LEN`] long.
    pub gzip: Option<Bytes>,
    loaded: Instant,
}

impl Entry {
    /// The entry of `meta`, compressing it unless `previous` already holds the same bytes.
    fn of(meta: &StoredMeta, previous: Option<&Entry>) -> Entry {
        let gzip = match previous {
            Some(p) if p.sha256 == meta.sha256 => p.gzip.clone(),
            _ => gzip(&meta.data),
        };
        Entry {
            data: meta.data.clone(),
            sha256: meta.sha256.clone(),
            expires: meta.expires,
            gzip,
            loaded: Instant::now(),
        }
    }

    /// What the entry costs the budget.
    fn weight(&self) -> usize {
        self.data.len() + self.gzip.as_ref().map_or(0, Bytes::len) + 128
    }
}

/// gzip (level 6) of `data`, when it is long enough to be worth it.
pub fn gzip(data: &[u8]) -> Option<Bytes> {
    if data.len() < GZIP_MIN_LEN {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::default(),
    );
    encoder.write_all(data).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

struct Held {
    entry: Entry,
    /// The tick of the last hit, for eviction.
    used: AtomicU64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<(Gun, Slot), Held>,
    bytes: usize,
}

/// The cache.
pub struct MetaCache {
    ttl: Duration,
    budget: usize,
    entries: RwLock<Entries>,
    /// Bumped by every invalidation; a read that began before one must not store what it
    /// read (it may be older than the write that invalidated).
    generation: AtomicU64,
    tick: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for MetaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaCache")
            .field("ttl", &self.ttl)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl MetaCache {
    /// A cache whose current entries live `ttl` and whose entries hold at most about
    /// `budget` bytes.
    pub fn new(ttl: Duration, budget: usize) -> Self {
        MetaCache {
            ttl,
            budget,
            entries: RwLock::new(Entries::default()),
            generation: AtomicU64::new(0),
            tick: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The entry for (`gun`, `slot`), unless it is missing or a current entry past the TTL.
    pub fn get(&self, gun: &Gun, slot: &Slot) -> Option<Entry> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = entries.map.get(&(gun.clone(), slot.clone()))?;
        if !slot.immutable() && held.entry.loaded.elapsed() >= self.ttl {
            return None;
        }
        held.used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(held.entry.clone())
    }

    /// The generation to pass to [`MetaCache::put`] for a store read about to start.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `meta` for (`gun`, `slot`) unless the repository was written since the read
    /// began (`seen` is the generation then), and returns its entry either way.
    pub fn put(&self, gun: &Gun, slot: Slot, meta: &StoredMeta, seen: u64) -> Entry {
        let key = (gun.clone(), slot);
        let previous = {
            let entries = self
                .entries
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            entries.map.get(&key).map(|h| h.entry.clone())
        };
        // Compress outside the lock.
        let entry = Entry::of(meta, previous.as_ref());
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != seen {
            return entry;
        }
        let held = Held {
            entry: entry.clone(),
            used: AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed)),
        };
        entries.bytes += held.entry.weight();
        if let Some(old) = entries.map.insert(key, held) {
            entries.bytes -= old.entry.weight();
        }
        if entries.bytes > self.budget {
            self.evict(&mut entries);
        }
        entry
    }

    /// Drops the least recently used entries until they hold under nine tenths of the
    /// budget: a batch, so that a full cache does not sort on every insert.
    fn evict(&self, entries: &mut Entries) {
        let target = self.budget / 10 * 9;
        let mut by_use: Vec<(u64, usize, (Gun, Slot))> = entries
            .map
            .iter()
            .map(|(k, h)| (h.used.load(Ordering::Relaxed), h.entry.weight(), k.clone()))
            .collect();
        by_use.sort_unstable_by_key(|(used, _, _)| *used);
        for (_, weight, key) in by_use {
            if entries.bytes <= target {
                break;
            }
            entries.map.remove(&key);
            entries.bytes -= weight;
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops every entry of `gun` (after a write to it).
    pub fn invalidate(&self, gun: &Gun) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut freed = 0;
        entries.map.retain(|(g, _), held| {
            let keep = g != gun;
            if !keep {
                freed += held.entry.weight();
            }
            keep
        });
        entries.bytes -= freed;
    }

    /// (entries, bytes held, evictions so far), for metrics.
    pub fn usage(&self) -> (usize, usize, u64) {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            entries.map.len(),
            entries.bytes,
            self.evictions.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use std::io::Read;

    use super::*;

    fn meta(version: u64, len: usize) -> StoredMeta {
        let mut data = format!("{{\"version\":{version},\"pad\":\"").into_bytes();
        if data.len() + 2 < len {
            data.resize(len - 2, b'a');
        }
        data.extend_from_slice(b"\"}");
        StoredMeta {
            role: RoleName::targets(),
            version: notar_tuf::Version::new(version).unwrap(),
            sha256: format!("{version:064}"),
            data: Bytes::from(data),
            expires: OffsetDateTime::now_utc(),
            created: OffsetDateTime::now_utc(),
        }
    }

    fn current() -> Slot {
        Slot::Current(RoleName::targets())
    }

    #[test]
    fn a_read_that_began_before_a_write_is_not_cached_after_it() {
        let cache = MetaCache::new(Duration::from_secs(60), 1 << 20);
        let gun = Gun::new("example.com/app").unwrap();
        let seen = cache.generation();
        cache.invalidate(&gun);
        cache.put(&gun, current(), &meta(1, 10), seen);
        assert!(cache.get(&gun, &current()).is_none());
        let seen = cache.generation();
        cache.put(&gun, current(), &meta(2, 10), seen);
        let entry = cache.get(&gun, &current()).unwrap();
        assert!(entry.data.starts_with(b"{\"version\":2"));
    }

    #[test]
    fn large_documents_carry_their_gzip_bytes_and_small_ones_do_not() {
        let cache = MetaCache::new(Duration::from_secs(60), 1 << 20);
        let gun = Gun::new("example.com/app").unwrap();
        let big = cache.put(&gun, current(), &meta(1, 50_000), cache.generation());
        let gz = big.gzip.clone().expect("compressed");
        assert!(gz.len() < big.data.len() / 10, "{} bytes", gz.len());
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, big.data);
        let small = cache.put(&gun, current(), &meta(2, 500), cache.generation());
        assert!(small.gzip.is_none());
    }

    #[test]
    fn current_entries_expire_after_the_ttl_and_immutable_ones_do_not() {
        let cache = MetaCache::new(Duration::from_millis(30), 1 << 20);
        let gun = Gun::new("example.com/app").unwrap();
        let pinned = Slot::Version(RoleName::targets(), 1);
        cache.put(&gun, current(), &meta(1, 10), cache.generation());
        cache.put(&gun, pinned.clone(), &meta(1, 10), cache.generation());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&gun, &current()).is_none());
        assert!(cache.get(&gun, &pinned).is_some());
        cache.invalidate(&gun);
        assert!(cache.get(&gun, &pinned).is_none());
        assert_eq!(cache.usage().1, 0, "invalidation frees the bytes");
    }

    #[test]
    fn the_budget_holds_and_the_least_recently_used_go_first() {
        // Room for about ten 10 KB documents.
        let cache = MetaCache::new(Duration::from_secs(60), 100_000);
        let guns: Vec<Gun> = (0..50)
            .map(|i| Gun::new(format!("example.com/app-{i}")).unwrap())
            .collect();
        let hot = &guns[0];
        for gun in &guns {
            cache.put(gun, current(), &meta(1, 10_000), cache.generation());
            // Keep the first one in use.
            assert!(cache.get(hot, &current()).is_some(), "the hot entry stays");
            assert!(cache.usage().1 <= 100_000);
        }
        let (entries, bytes, evictions) = cache.usage();
        assert!(entries < 12 && bytes <= 100_000 && evictions > 0);
        assert!(cache.get(&guns[1], &current()).is_none(), "a cold one went");
        assert!(
            cache.get(&guns[49], &current()).is_some(),
            "the newest stays"
        );
    }
}
