//! One shard's part of the answer cache: the entries whose image hash this shard owns.
//!
//! - **Bounds**: at most `cache_entries` answers and `cache_bytes` bytes (each entry's
//!   estimated cost: its key and answer on the heap, plus the tables' own share). Beyond
//!   either, the least recently used entries go first (LRU: a captcha that comes back tends
//!   to come back again soon; a lookup that hits moves its entry to the front).
//! - **Expiry**: an entry expires `cache_ttl_secs` after it was filled (a site may change
//!   what a captcha image means). An expired entry is dropped when a lookup meets it, and
//!   those never looked up again leave as the least recently used.
//! - **Reports**: [`CacheStore::forget`] drops every answer of the reported image (all
//!   options: the record of the upload keeps the image's hash, not its options) and
//!   remembers the image for the TTL, so that neither a recognition still in flight nor the
//!   next upload of it puts the same answer back (the models are deterministic: running
//!   the image again gives the same, wrong, answer). Those marks are bounded too.
//!
//! Nothing here is shared: the shard's thread owns its store.

use crate::config::CacheConfig;
use crate::metrics::CacheCounters;
use crate::recognition::cache::{CacheKey, ClickHintKey, ImagePrefix, TaskKey};
use crate::recognition::JobAnswer;
use lru::LruCache;
use std::collections::HashMap;

/// The store's limits (from the configuration).
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    /// 0 disables the cache: nothing is kept, every lookup misses.
    pub max_entries: usize,
    pub max_bytes: usize,
    pub ttl_ms: u64,
}

impl CacheLimits {
    /// The configured limits.
    pub fn of(config: &CacheConfig) -> CacheLimits {
        CacheLimits {
            max_entries: config.cache_entries,
            max_bytes: config.cache_bytes,
            ttl_ms: config.cache_ttl_secs.saturating_mul(1000),
        }
    }
}

struct Entry {
    answer: JobAnswer,
    bytes: usize,
    expires_at_ms: u64,
}

pub struct CacheStore {
    limits: CacheLimits,
    /// Unbounded as a data structure: the bounds (entries and bytes) are enforced here.
    entries: LruCache<CacheKey, Entry>,
    /// Every key of an image, by the prefix of its hash (what a report knows).
    by_image: HashMap<ImagePrefix, Vec<CacheKey>>,
    /// Reported images, until when they may not be cached again. At most `max_entries`.
    reported: LruCache<ImagePrefix, u64>,
    bytes: usize,
    counters: CacheCounters,
}

/// What an entry costs besides its key's and answer's heap: the LRU's node and map slot,
/// the image index's key copy and slot (measured shapes, rounded up).
const ENTRY_OVERHEAD: usize = 2 * std::mem::size_of::<CacheKey>()
    + std::mem::size_of::<Entry>()
    + std::mem::size_of::<ImagePrefix>()
    + 64;

impl CacheStore {
    pub fn new(limits: CacheLimits) -> CacheStore {
        CacheStore {
            limits,
            entries: LruCache::unbounded(),
            by_image: HashMap::new(),
            reported: LruCache::unbounded(),
            bytes: 0,
            counters: CacheCounters::default(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.limits.max_entries > 0
    }

    /// The answer for `key` if there is one that has not expired; counted as a hit or a miss.
    pub fn get(&mut self, key: &CacheKey, now_ms: u64) -> Option<JobAnswer> {
        let found = match self.entries.get(key) {
            Some(entry) if entry.expires_at_ms > now_ms => Some(entry.answer.clone()),
            Some(_) => {
                self.remove(key);
                self.counters.expired += 1;
                None
            }
            None => None,
        };
        match found {
            Some(_) => self.counters.hits += 1,
            None => self.counters.misses += 1,
        }
        found
    }

    /// Keeps `answer` for `key` (replacing an older one), then evicts the least recently
    /// used entries until the store is within its bounds. Refused (false) when the cache
    /// is off, the image was reported within the TTL, or the entry alone exceeds the bytes.
    pub fn insert(&mut self, key: CacheKey, answer: JobAnswer, now_ms: u64) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let bytes = entry_bytes(&key, &answer);
        if self.is_reported(&key.prefix(), now_ms) || bytes > self.limits.max_bytes {
            self.counters.fills_refused += 1;
            return false;
        }
        self.remove(&key);
        self.by_image
            .entry(key.prefix())
            .or_default()
            .push(key.clone());
        let expires_at_ms = now_ms.saturating_add(self.limits.ttl_ms);
        let entry = Entry {
            answer,
            bytes,
            expires_at_ms,
        };
        let displaced = self.entries.push(key, entry);
        assert!(displaced.is_none(), "an unbounded LRU displaces nothing");
        self.bytes += bytes;
        self.counters.fills += 1;
        self.evict_beyond_bounds();
        true
    }

    /// Drops every answer of the image whose hash starts with `prefix` and keeps it out of
    /// the cache until the TTL passes. Returns how many answers were dropped.
    pub fn forget(&mut self, prefix: ImagePrefix, now_ms: u64) -> usize {
        let keys = self.by_image.get(&prefix).cloned().unwrap_or_default();
        for key in &keys {
            self.remove(key);
        }
        self.counters.evicted_reported += keys.len() as u64;
        if self.is_enabled() {
            self.reported
                .push(prefix, now_ms.saturating_add(self.limits.ttl_ms));
            while self.reported.len() > self.limits.max_entries {
                self.reported.pop_lru();
            }
        }
        self.sync_gauges();
        keys.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The counters, with the entries and bytes held now.
    pub fn counters(&self) -> CacheCounters {
        self.counters
    }

    fn is_reported(&mut self, prefix: &ImagePrefix, now_ms: u64) -> bool {
        match self.reported.peek(prefix) {
            Some(until) if *until > now_ms => true,
            Some(_) => {
                self.reported.pop(prefix);
                false
            }
            None => false,
        }
    }

    fn evict_beyond_bounds(&mut self) {
        while self.entries.len() > self.limits.max_entries || self.bytes > self.limits.max_bytes {
            let (key, _) = self
                .entries
                .peek_lru()
                .expect("over a bound means not empty");
            let key = key.clone();
            self.remove(&key);
            self.counters.evicted_capacity += 1;
        }
        self.sync_gauges();
        assert!(self.entries.len() <= self.limits.max_entries);
        assert!(self.bytes <= self.limits.max_bytes);
    }

    /// Removes one entry and its index line, if it is there.
    fn remove(&mut self, key: &CacheKey) {
        let Some(entry) = self.entries.pop(key) else {
            return;
        };
        self.bytes -= entry.bytes;
        let prefix = key.prefix();
        if let Some(keys) = self.by_image.get_mut(&prefix) {
            keys.retain(|indexed| indexed != key);
            if keys.is_empty() {
                self.by_image.remove(&prefix);
            }
        }
        self.sync_gauges();
    }

    fn sync_gauges(&mut self) {
        self.counters.entries = self.entries.len() as u64;
        self.counters.bytes = self.bytes as u64;
    }
}

/// An entry's estimated cost in bytes: its fixed shapes and what its key and answer hold on
/// the heap.
fn entry_bytes(key: &CacheKey, answer: &JobAnswer) -> usize {
    let key_heap = match &key.task {
        TaskKey::Ocr(options) => {
            let charset = match &options.charset_range {
                Some(crate::engine::CharsetRange::Characters(text)) => text.len(),
                _ => 0,
            };
            let colors = options
                .color_filter
                .as_ref()
                .map_or(0, |filter| std::mem::size_of_val(filter.ranges()));
            // Twice: the LRU's key and the image index's copy.
            2 * (options.model.len() + charset + colors)
        }
        TaskKey::Click {
            hint: ClickHintKey::Text(text),
            ..
        } => 2 * text.len(),
        TaskKey::Detect | TaskKey::Click { .. } | TaskKey::Slide(_) => 0,
    };
    let answer_heap = match answer {
        JobAnswer::Text(text) => text.text.len(),
        JobAnswer::Boxes(boxes) => std::mem::size_of_val(boxes.as_slice()),
        JobAnswer::Points(points) => std::mem::size_of_val(points.as_slice()),
        JobAnswer::Slide(_) => 0,
    };
    ENTRY_OVERHEAD + key_heap + answer_heap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Answer, RecognizeOptions};
    use crate::recognition::cache::digest;

    fn answer(text: &str) -> JobAnswer {
        JobAnswer::Text(Answer {
            text: text.into(),
            confidence: None,
        })
    }

    fn key(bytes: &[u8]) -> CacheKey {
        CacheKey::ocr(digest(bytes), RecognizeOptions::default())
    }

    fn store(max_entries: usize, max_bytes: usize) -> CacheStore {
        CacheStore::new(CacheLimits {
            max_entries,
            max_bytes,
            ttl_ms: 1000,
        })
    }

    #[test]
    fn same_bytes_and_options_hit_other_options_miss() {
        let mut cache = store(8, 1 << 20);
        let beta = RecognizeOptions {
            model: "beta".into(),
            ..Default::default()
        };
        assert!(cache.insert(key(b"image-1"), answer("ab12"), 0));
        assert_eq!(cache.get(&key(b"image-1"), 1), Some(answer("ab12")));
        assert_eq!(cache.get(&CacheKey::ocr(digest(b"image-1"), beta), 1), None);
        assert_eq!(cache.get(&key(b"image-2"), 1), None);
        let detect = CacheKey {
            digest: digest(b"image-1"),
            task: TaskKey::Detect,
        };
        assert_eq!(cache.get(&detect, 1), None, "another kind, another answer");
        let counters = cache.counters();
        assert_eq!((counters.hits, counters.misses, counters.fills), (1, 3, 1));
    }

    #[test]
    fn least_recently_used_goes_first_by_count_and_by_bytes() {
        let mut cache = store(2, 1 << 20);
        cache.insert(key(b"a"), answer("a"), 0);
        cache.insert(key(b"b"), answer("b"), 0);
        assert!(cache.get(&key(b"a"), 1).is_some());
        cache.insert(key(b"c"), answer("c"), 0);
        assert!(
            cache.get(&key(b"b"), 1).is_none(),
            "b was least recently used"
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.counters().evicted_capacity, 1);

        // Room for two small entries by bytes: a third pushes out the oldest.
        let one = entry_bytes(&key(b"a"), &answer("a"));
        let mut cache = store(100, 2 * one + one / 2);
        cache.insert(key(b"a"), answer("a"), 0);
        cache.insert(key(b"b"), answer("b"), 0);
        cache.insert(key(b"c"), answer("c"), 0);
        assert_eq!(cache.len(), 2);
        assert!(cache.bytes() <= 2 * one + one / 2);
        assert!(cache.get(&key(b"a"), 1).is_none());
        // An entry larger than the whole budget is refused, not stored over the bound.
        assert!(!cache.insert(key(b"d"), answer(&"x".repeat(4 * one)), 0));
        assert_eq!(cache.counters().fills_refused, 1);
        assert_eq!(cache.counters().entries, 2);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let mut cache = store(8, 1 << 20);
        cache.insert(key(b"a"), answer("a"), 1000);
        assert!(cache.get(&key(b"a"), 1999).is_some());
        assert!(
            cache.get(&key(b"a"), 2000).is_none(),
            "filled at 1000, ttl 1000"
        );
        assert_eq!(cache.counters().expired, 1);
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_report_drops_every_answer_of_the_image_and_keeps_it_out_for_the_ttl() {
        let mut cache = store(8, 1 << 20);
        let beta = CacheKey::ocr(
            digest(b"a"),
            RecognizeOptions {
                model: "beta".into(),
                ..Default::default()
            },
        );
        cache.insert(key(b"a"), answer("old"), 0);
        cache.insert(beta.clone(), answer("beta"), 0);
        cache.insert(key(b"b"), answer("b"), 0);
        assert_eq!(cache.forget(key(b"a").prefix(), 10), 2);
        assert!(cache.get(&key(b"a"), 11).is_none());
        assert!(cache.get(&beta, 11).is_none());
        assert!(cache.get(&key(b"b"), 11).is_some(), "other images stay");
        assert!(
            !cache.insert(key(b"a"), answer("old"), 20),
            "reported: not again"
        );
        assert!(
            cache.insert(key(b"a"), answer("old"), 1010),
            "after the TTL"
        );
        assert_eq!(cache.counters().evicted_reported, 2);
        assert_eq!(cache.forget(key(b"zzz").prefix(), 0), 0);
    }

    #[test]
    fn zero_entries_disables() {
        let mut cache = store(0, 1 << 20);
        assert!(!cache.insert(key(b"a"), answer("a"), 0));
        assert!(cache.get(&key(b"a"), 0).is_none());
        cache.forget(key(b"a").prefix(), 0);
        assert!(cache.is_empty());
    }
}
