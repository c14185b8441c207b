//! Metadata served from memory, within a byte budget.
//!
//! Two kinds of entry share the budget: the current version of a (GUN, role), and a version
//! asked for by number or checksum, which never changes and stays until it is evicted or
//! its repository is written. Writes through this server drop the repository's entries at
//! once. Writes through another server sharing the database are learnt from the change log
//! (see [`Watch`]): a current entry is served while it is younger than the TTL, or while the
//! newest successful look at the change log began less than a TTL ago. Either way what is
//! served lags the database by at most the TTL, and a warm entry costs no database read
//! however many repositories there are.
//!
//! Each entry holds the identity bytes, their sha256 (the ETag), the expiry, and the gzip
//! and zstd bytes of documents large enough to gain from it, compressed when the entry is
//! made; a current entry read again with the same sha256 keeps the compressed bytes it had,
//! so each version is compressed once per process, never per request.
//!
//! The entries live in shards by GUN, each with its own lock and its share of the budget.
//! When a shard's bytes pass its share, its least recently used entries are evicted until
//! they are below nine tenths of it: a batch, over one shard, so that a full cache neither
//! sorts on every insert nor holds every reader up while it does. Hits only touch an atomic
//! counter, under a shard's read lock, and look a GUN up without copying it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use bytes::Bytes;
use notar_tuf::{Gun, RoleName};
use time::OffsetDateTime;

use crate::store::StoredMeta;

/// Documents shorter than this are sent as they are: a timestamp (about 500 bytes) would
/// gain a few dozen bytes and cost a header and a compression.
pub const COMPRESS_MIN_LEN: usize = 1024;

/// zstd's level for metadata. Metadata is mostly hex and base64 (hashes, key IDs,
/// signatures), which the fastest level packs best: the 1,000-target `targets.json` of the
/// benchmarks (111,230 bytes) comes to 35,624 bytes at level 1 in 0.2 ms, 38,184 at 3,
/// 41,054 at 12 in 2.9 ms, and 35,423 only at 19, in 22 ms.
const ZSTD_LEVEL: i32 = 1;

/// What an entry costs beyond its documents' bytes: the entry, its sha256 and ETag, the
/// map's key and slot, and the allocator's rounding. Measured: RSS over 100,000 cached
/// timestamps (`bench/many-repos.sh`), less their bytes, per entry.
const ENTRY_OVERHEAD: usize = 768;

/// Shards of the cache: enough that two cores rarely meet on one lock, and that an
/// eviction sorts a sixteenth of the entries.
const SHARDS: usize = 16;

/// Which document of a GUN an entry holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The current version of a role (see the module's words on how long it is trusted).
    Current(RoleName),
    /// Version N of a role (immutable).
    Version(RoleName, u64),
    /// The version of a role with this sha256 (immutable).
    Checksum(RoleName, String),
}

impl Slot {
    /// Versions by number or checksum never change.
    pub fn immutable(&self) -> bool {
        !matches!(self, Slot::Current(_))
    }
}

/// One cached document.
#[derive(Clone, Debug)]
pub struct Entry {
    pub data: Bytes,
    pub sha256: String,
    pub expires: OffsetDateTime,
    /// The gzip bytes of `data`, when it is at least [`COMPRESS_MIN_LEN`] long.
    pub gzip: Option<Bytes>,
    /// The zstd bytes of `data`, likewise.
    pub zstd: Option<Bytes>,
    /// The ETag of the identity representation, `"<sha256>"` (made once: it goes with
    /// every small document; a compressed one's, `"<sha256>.gz"` or `.zst`, is made when
    /// sent).
    pub etag: HeaderValue,
    loaded: Instant,
}

impl Entry {
    /// The entry of `meta`, compressing it unless `previous` already holds the same bytes.
    fn of(meta: &StoredMeta, previous: Option<&Entry>) -> Entry {
        let (gzip, zstd) = match previous {
            Some(p) if p.sha256 == meta.sha256 => (p.gzip.clone(), p.zstd.clone()),
            _ => (gzip(&meta.data), zstd(&meta.data)),
        };
        Entry {
            data: meta.data.clone(),
            sha256: meta.sha256.clone(),
            expires: meta.expires,
            gzip,
            zstd,
            etag: HeaderValue::from_str(&format!("\"{}\"", meta.sha256))
                .unwrap_or_else(|_| HeaderValue::from_static("\"\"")),
            loaded: Instant::now(),
        }
    }

    /// What the entry costs the budget: its bytes, and what holding them costs besides
    /// ([`ENTRY_OVERHEAD`]).
    fn weight(&self) -> usize {
        self.data.len()
            + self.gzip.as_ref().map_or(0, Bytes::len)
            + self.zstd.as_ref().map_or(0, Bytes::len)
            + ENTRY_OVERHEAD
    }
}

/// gzip (level 6) of `data`, when it is long enough to be worth it.
pub fn gzip(data: &[u8]) -> Option<Bytes> {
    if data.len() < COMPRESS_MIN_LEN {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::default(),
    );
    encoder.write_all(data).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// zstd of `data`, when it is long enough to be worth it.
pub fn zstd(data: &[u8]) -> Option<Bytes> {
    if data.len() < COMPRESS_MIN_LEN {
        return None;
    }
    zstd::bulk::compress(data, ZSTD_LEVEL).ok().map(Bytes::from)
}

struct Held {
    slot: Slot,
    entry: Arc<Entry>,
    /// The tick of the last hit, for eviction.
    used: AtomicU64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Gun, Vec<Held>>,
    bytes: usize,
}

impl Shard {
    /// Drops every entry of `gun`, and their bytes from the count.
    fn remove(&mut self, gun: &Gun) {
        if let Some(held) = self.map.remove(gun) {
            self.bytes -= held.iter().map(|h| h.entry.weight()).sum::<usize>();
        }
    }
}

struct Cell {
    shard: RwLock<Shard>,
    /// Bumped by every invalidation in this shard; a read that began before one must not
    /// store what it read (it may be older than the write that invalidated).
    generation: AtomicU64,
}

/// The cache.
pub struct MetaCache {
    ttl: Duration,
    /// Each shard's share of the budget.
    share: usize,
    cells: Box<[Cell]>,
    hasher: std::collections::hash_map::RandomState,
    tick: AtomicU64,
    evictions: AtomicU64,
    /// The time base of `confirmed`.
    base: Instant,
    /// When the newest successful look at the change log began, in nanoseconds after
    /// `base`, plus one; 0 before the first.
    confirmed: AtomicU64,
}

impl std::fmt::Debug for MetaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaCache")
            .field("ttl", &self.ttl)
            .field("budget", &(self.share * SHARDS))
            .finish_non_exhaustive()
    }
}

fn read(cell: &Cell) -> std::sync::RwLockReadGuard<'_, Shard> {
    cell.shard
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(cell: &Cell) -> std::sync::RwLockWriteGuard<'_, Shard> {
    cell.shard
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MetaCache {
    /// A cache whose current entries are trusted for `ttl` (see the module) and whose
    /// entries hold at most about `budget` bytes.
    pub fn new(ttl: Duration, budget: usize) -> Self {
        let cells = (0..SHARDS)
            .map(|_| Cell {
                shard: RwLock::new(Shard::default()),
                generation: AtomicU64::new(0),
            })
            .collect();
        MetaCache {
            ttl,
            share: budget / SHARDS,
            cells,
            hasher: std::collections::hash_map::RandomState::new(),
            tick: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            base: Instant::now(),
            confirmed: AtomicU64::new(0),
        }
    }

    /// How long a current entry is trusted without news from the change log.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn cell(&self, gun: &Gun) -> &Cell {
        let hash = self.hasher.hash_one(gun.as_str());
        // usize is at least 32 bits here; the modulo keeps it in range.
        &self.cells[(hash % SHARDS as u64) as usize]
    }

    /// Records that a look at the change log which began at `started` saw every change
    /// and dropped the entries they touched.
    pub fn confirm(&self, started: Instant) {
        let nanos = started.saturating_duration_since(self.base).as_nanos();
        let stamp = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.confirmed.fetch_max(stamp, Ordering::AcqRel);
    }

    /// Whether the newest successful look at the change log began less than a TTL ago.
    fn confirmed_recently(&self) -> bool {
        let stamp = self.confirmed.load(Ordering::Acquire);
        if stamp == 0 {
            return false;
        }
        let started = self.base + Duration::from_nanos(stamp - 1);
        started.elapsed() < self.ttl
    }

    /// The entry for (`gun`, `slot`), unless it is missing or a current entry that can no
    /// longer be trusted.
    pub fn get(&self, gun: &Gun, slot: &Slot) -> Option<Arc<Entry>> {
        let shard = read(self.cell(gun));
        let held = shard.map.get(gun)?.iter().find(|h| h.slot == *slot)?;
        if !slot.immutable()
            && held.entry.loaded.elapsed() >= self.ttl
            && !self.confirmed_recently()
        {
            return None;
        }
        held.used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(Arc::clone(&held.entry))
    }

    /// The generation to pass to [`MetaCache::put`] for a store read of `gun` about to
    /// start.
    pub fn generation(&self, gun: &Gun) -> u64 {
        self.cell(gun).generation.load(Ordering::Acquire)
    }

    /// Keeps `meta` for (`gun`, `slot`) unless the repository was written since the read
    /// began (`seen` is the generation then), and returns its entry either way.
    pub fn put(&self, gun: &Gun, slot: Slot, meta: &StoredMeta, seen: u64) -> Arc<Entry> {
        let cell = self.cell(gun);
        let previous = read(cell)
            .map
            .get(gun)
            .and_then(|held| held.iter().find(|h| h.slot == slot))
            .map(|h| Arc::clone(&h.entry));
        // Compress outside the lock.
        let entry = Arc::new(Entry::of(meta, previous.as_deref()));
        let mut shard = write(cell);
        if cell.generation.load(Ordering::Acquire) != seen {
            return entry;
        }
        let weight = entry.weight();
        let used = AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed));
        let list = shard.map.entry(gun.clone()).or_default();
        let old = match list.iter_mut().find(|h| h.slot == slot) {
            Some(held) => {
                let old = held.entry.weight();
                held.entry = Arc::clone(&entry);
                held.used = used;
                old
            }
            None => {
                list.push(Held {
                    slot,
                    entry: Arc::clone(&entry),
                    used,
                });
                0
            }
        };
        shard.bytes = shard.bytes + weight - old;
        if shard.bytes > self.share {
            self.evict(&mut shard);
        }
        entry
    }

    /// Drops the shard's least recently used entries until they hold under nine tenths of
    /// its share: a batch, so that a full shard does not sort on every insert.
    fn evict(&self, shard: &mut Shard) {
        let target = self.share / 10 * 9;
        let mut by_use: Vec<(u64, usize)> = shard
            .map
            .values()
            .flatten()
            .map(|h| (h.used.load(Ordering::Relaxed), h.entry.weight()))
            .collect();
        by_use.sort_unstable_by_key(|(used, _)| *used);
        // The newest tick to let go: everything used at or before it goes.
        let mut left = shard.bytes;
        let mut cutoff = None;
        for (used, weight) in by_use {
            if left <= target {
                break;
            }
            left -= weight;
            cutoff = Some(used);
        }
        let Some(cutoff) = cutoff else { return };
        let mut gone = 0u64;
        let mut freed = 0;
        shard.map.retain(|_, list| {
            list.retain(|h| {
                let keep = h.used.load(Ordering::Relaxed) > cutoff;
                if !keep {
                    gone += 1;
                    freed += h.entry.weight();
                }
                keep
            });
            !list.is_empty()
        });
        shard.bytes -= freed;
        self.evictions.fetch_add(gone, Ordering::Relaxed);
    }

    /// Drops every entry of `gun` (after a write to it, here or elsewhere).
    pub fn invalidate(&self, gun: &Gun) {
        let cell = self.cell(gun);
        let mut shard = write(cell);
        cell.generation.fetch_add(1, Ordering::AcqRel);
        shard.remove(gun);
    }

    /// (entries, bytes held, evictions so far), for metrics.
    pub fn usage(&self) -> (usize, usize, u64) {
        let (mut entries, mut bytes) = (0, 0);
        for cell in &self.cells {
            let shard = read(cell);
            entries += shard.map.values().map(Vec::len).sum::<usize>();
            bytes += shard.bytes;
        }
        (entries, bytes, self.evictions.load(Ordering::Relaxed))
    }
}

/// How far the change log is read back each time: a PostgreSQL transaction takes its
/// change's ID when it inserts and may commit after one with a higher ID, so IDs at or
/// below the highest seen may still appear. Each look reads again from the highest ID
/// seen this long ago, and acts only on IDs it has not seen.
pub const WATCH_WINDOW: Duration = Duration::from_secs(15);

/// What the server knows of the change log: which IDs it has acted on, and from where to
/// read next.
#[derive(Debug)]
pub struct ChangeWatch {
    window: Duration,
    /// Read changes with IDs above this one (`None` before the first look).
    floor: Option<i64>,
    /// IDs above `floor` already acted on.
    seen: HashSet<i64>,
    /// (when a look ended, the highest ID known then), oldest first.
    marks: VecDeque<(Instant, i64)>,
}

impl ChangeWatch {
    pub fn new(window: Duration) -> Self {
        ChangeWatch {
            window,
            floor: None,
            seen: HashSet::new(),
            marks: VecDeque::new(),
        }
    }

    /// The ID after which the next look reads, or `None` if the first look is to come
    /// (it reads the newest changes, with [`ChangeWatch::start`]).
    pub fn floor(&self) -> Option<i64> {
        self.floor
    }

    /// The first look: `newest` holds the IDs of the newest changes (any order). The floor
    /// goes below the oldest of them, so that the next read takes them all (the entries they
    /// touched may have been cached before this look) and catches a late commit among them.
    pub fn start(&mut self, newest: &[i64], now: Instant) {
        let low = newest.iter().copied().min().unwrap_or(1);
        let high = newest.iter().copied().max().unwrap_or(0);
        self.floor = Some(low.saturating_sub(1).max(0));
        self.seen.clear();
        self.marks = VecDeque::from([(now, high)]);
    }

    /// Takes the changes read above the floor; returns the GUNs of those not seen before
    /// (the entries to drop), and moves the floor up to the highest ID known a window ago.
    pub fn take<'a>(&mut self, changes: &'a [(i64, String)], now: Instant) -> Vec<&'a str> {
        let mut touched = Vec::new();
        let mut high = self.marks.back().map_or(0, |m| m.1);
        for (id, gun) in changes {
            high = high.max(*id);
            if self.seen.insert(*id) {
                touched.push(gun.as_str());
            }
        }
        self.marks.push_back((now, high));
        let window = self.window;
        let old_enough = |mark: &(Instant, i64)| now.saturating_duration_since(mark.0) >= window;
        while self.marks.len() > 1 && self.marks.get(1).is_some_and(old_enough) {
            self.marks.pop_front();
        }
        if let Some(mark) = self.marks.front().filter(|m| old_enough(m)) {
            let floor = mark.1.max(self.floor.unwrap_or(0));
            self.floor = Some(floor);
            self.seen.retain(|id| *id > floor);
        }
        touched.sort_unstable();
        touched.dedup();
        touched
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

    fn gun(name: &str) -> Gun {
        Gun::new(name).unwrap()
    }

    #[test]
    fn a_read_that_began_before_a_write_is_not_cached_after_it() {
        let cache = MetaCache::new(Duration::from_secs(60), 1 << 20);
        let gun = gun("example.com/app");
        let seen = cache.generation(&gun);
        cache.invalidate(&gun);
        cache.put(&gun, current(), &meta(1, 10), seen);
        assert!(cache.get(&gun, &current()).is_none());
        let seen = cache.generation(&gun);
        cache.put(&gun, current(), &meta(2, 10), seen);
        let entry = cache.get(&gun, &current()).unwrap();
        assert!(entry.data.starts_with(b"{\"version\":2"));
    }

    #[test]
    fn large_documents_carry_their_gzip_and_zstd_bytes_and_small_ones_do_not() {
        let cache = MetaCache::new(Duration::from_secs(60), 1 << 20);
        let gun = gun("example.com/app");
        let big = cache.put(&gun, current(), &meta(1, 50_000), cache.generation(&gun));
        let gz = big.gzip.clone().expect("gzip");
        assert!(gz.len() < big.data.len() / 10, "{} bytes", gz.len());
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, big.data);
        let zst = big.zstd.clone().expect("zstd");
        assert!(zst.len() < big.data.len() / 10, "{} bytes", zst.len());
        assert_eq!(zstd::decode_all(&zst[..]).unwrap(), big.data);
        let small = cache.put(&gun, current(), &meta(2, 500), cache.generation(&gun));
        assert!(small.gzip.is_none() && small.zstd.is_none());
    }

    #[test]
    fn the_same_bytes_read_again_are_not_compressed_again() {
        let cache = MetaCache::new(Duration::from_secs(60), 1 << 20);
        let gun = gun("example.com/app");
        let first = cache.put(&gun, current(), &meta(1, 5_000), cache.generation(&gun));
        let again = cache.put(&gun, current(), &meta(1, 5_000), cache.generation(&gun));
        let (a, b) = (first.gzip.clone().unwrap(), again.gzip.clone().unwrap());
        assert_eq!(a.as_ptr(), b.as_ptr(), "the compressed bytes are shared");
        assert_eq!(cache.usage().0, 1, "one entry, replaced in place");
    }

    #[test]
    fn current_entries_expire_after_the_ttl_unless_the_change_log_was_read_since() {
        let cache = MetaCache::new(Duration::from_millis(40), 1 << 20);
        let gun = gun("example.com/app");
        let pinned = Slot::Version(RoleName::targets(), 1);
        cache.put(&gun, current(), &meta(1, 10), cache.generation(&gun));
        cache.put(&gun, pinned.clone(), &meta(1, 10), cache.generation(&gun));
        std::thread::sleep(Duration::from_millis(50));
        assert!(cache.get(&gun, &current()).is_none(), "past the TTL");
        assert!(cache.get(&gun, &pinned).is_some(), "immutable");
        // A look at the change log that began now vouches for the entry for a TTL more.
        cache.confirm(Instant::now());
        assert!(cache.get(&gun, &current()).is_some(), "confirmed");
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            cache.get(&gun, &current()).is_none(),
            "the confirmation is old"
        );
        // A look that began long ago vouches for nothing, even if it ended later.
        cache.confirm(Instant::now() - Duration::from_secs(1));
        assert!(cache.get(&gun, &current()).is_none());
        cache.invalidate(&gun);
        assert!(cache.get(&gun, &pinned).is_none());
        assert_eq!(cache.usage().1, 0, "invalidation frees the bytes");
    }

    #[test]
    fn the_budget_holds_and_the_least_recently_used_go_first() {
        // Room for about ten 10 KB documents per shard.
        let budget = SHARDS * 100_000;
        let cache = MetaCache::new(Duration::from_secs(60), budget);
        let guns: Vec<Gun> = (0..600)
            .map(|i| gun(&format!("example.com/app-{i}")))
            .collect();
        let hot = &guns[0];
        for g in &guns {
            cache.put(g, current(), &meta(1, 10_000), cache.generation(g));
            // Keep the first one in use.
            assert!(cache.get(hot, &current()).is_some(), "the hot entry stays");
            assert!(cache.usage().1 <= budget);
        }
        let (entries, bytes, evictions) = cache.usage();
        assert!(entries < 170 && bytes <= budget && evictions > 400);
        assert!(cache.get(&guns[1], &current()).is_none(), "a cold one went");
        assert!(
            cache.get(&guns[599], &current()).is_some(),
            "the newest stays"
        );
    }

    #[test]
    fn invalidating_one_repository_leaves_the_others() {
        let cache = MetaCache::new(Duration::from_secs(60), 1 << 20);
        let (a, b) = (gun("example.com/a"), gun("example.com/b"));
        for g in [&a, &b] {
            cache.put(g, current(), &meta(1, 10), cache.generation(g));
            cache.put(
                g,
                Slot::Version(RoleName::targets(), 1),
                &meta(1, 10),
                cache.generation(g),
            );
        }
        cache.invalidate(&a);
        assert!(cache.get(&a, &current()).is_none());
        assert!(cache.get(&b, &current()).is_some());
        assert_eq!(cache.usage().0, 2);
    }

    fn changes(ids: &[(i64, &str)]) -> Vec<(i64, String)> {
        ids.iter().map(|(i, g)| (*i, (*g).to_owned())).collect()
    }

    #[test]
    fn the_change_watch_acts_once_per_change_and_catches_late_commits() {
        let window = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut watch = ChangeWatch::new(window);
        assert_eq!(watch.floor(), None);
        watch.start(&[7, 8, 10], t0);
        assert_eq!(watch.floor(), Some(6), "below the newest changes known");
        // The first read takes the newest changes too; 9 commits late (it took its ID
        // before 10); 11 and 12 are new and touch one repository.
        let first = changes(&[(7, "a"), (8, "b"), (10, "d")]);
        assert_eq!(watch.take(&first, t0), vec!["a", "b", "d"]);
        let read = changes(&[
            (7, "a"),
            (8, "b"),
            (9, "c"),
            (10, "d"),
            (11, "e"),
            (12, "e"),
        ]);
        assert_eq!(
            watch.take(&read, t0 + Duration::from_secs(1)),
            vec!["c", "e"]
        );
        // The same rows again: nothing new.
        assert!(watch.take(&read, t0 + Duration::from_secs(2)).is_empty());
        assert_eq!(watch.floor(), Some(6), "the window has not passed");
        // A window later the floor rises to what was known a window ago, no further.
        let later = changes(&[(13, "f")]);
        assert_eq!(watch.take(&later, t0 + Duration::from_secs(12)), vec!["f"]);
        assert_eq!(watch.floor(), Some(12));
        // 13 stays seen.
        assert!(watch.take(&later, t0 + Duration::from_secs(13)).is_empty());
    }

    #[test]
    fn an_empty_change_log_starts_at_zero() {
        let mut watch = ChangeWatch::new(Duration::from_secs(10));
        watch.start(&[], Instant::now());
        assert_eq!(watch.floor(), Some(0));
        let read = changes(&[(1, "a")]);
        assert_eq!(watch.take(&read, Instant::now()), vec!["a"]);
    }
}
