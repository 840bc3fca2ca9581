//! The answer cache: its size per shard, how long an answer stays, how many lookups one
//! request may carry.

use super::check::first_failed;
use super::keys::Kind;
use serde::Deserialize;

/// The smallest `cache_bytes` of an enabled cache: room for a few entries at least.
const MIN_CACHE_BYTES: usize = 4096;
/// The longest `cache_ttl_secs`: 30 days.
const MAX_CACHE_TTL_SECS: u64 = 30 * 24 * 3600;
/// The largest `cache_lookup_max`: what one request may ask (each lookup may be a hop's
/// worth of work and an upload record).
pub const MAX_CACHE_LOOKUPS: usize = 4096;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Answers the answer cache keeps per shard (each shard keeps the entries whose image
    /// hash it owns; 0 disables the cache).
    pub cache_entries: usize,
    /// Bytes the answer cache's entries may take per shard (an estimate of each entry's
    /// heap and table cost); the least recently used go first beyond it or `cache_entries`.
    pub cache_bytes: usize,
    /// An answer leaves the cache this long after it was made (and a reported image is not
    /// cached again for as long).
    pub cache_ttl_secs: u64,
    /// Most lookups one `POST /v2/decode/cached` request may carry.
    pub cache_lookup_max: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            cache_entries: 65_536,
            cache_bytes: 32 << 20,
            cache_ttl_secs: 3600,
            cache_lookup_max: 256,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("cache_entries", Kind::Number),
    ("cache_bytes", Kind::Number),
    ("cache_ttl_secs", Kind::Number),
    ("cache_lookup_max", Kind::Number),
];

impl CacheConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                self.cache_entries == 0 || self.cache_bytes >= MIN_CACHE_BYTES,
                "cache_bytes must be at least 4096 (or cache_entries 0)",
            ),
            (
                (1..=MAX_CACHE_TTL_SECS).contains(&self.cache_ttl_secs),
                "cache_ttl_secs must be 1..=2592000 (30 days)",
            ),
            (
                (1..=MAX_CACHE_LOOKUPS).contains(&self.cache_lookup_max),
                "cache_lookup_max must be 1..=4096",
            ),
        ])
    }
}
