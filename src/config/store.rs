//! The ledger on disk: where it is, how acknowledgements wait for it, what happens after
//! the disk failed, and how long records are kept.

use super::check::first_failed;
use super::keys::Kind;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// `false` acknowledges uploads before their reservation is fsynced. Only for measuring
    /// the cost of durability: a crash may then lose acknowledged reservations.
    pub durable_acks: bool,
    /// Create a demo user and an admin when the data directory is new.
    pub create_demo_users: bool,
    /// After a shard's storage failed (disk full, I/O error), the first pause before the disk
    /// is probed again; each failed probe doubles it up to `storage_probe_max_ms`.
    pub storage_probe_ms: u64,
    pub storage_probe_max_ms: u64,
    pub retention_days: u32,
    /// Page cache of each shard's database, in MiB: memory a node grows into as its ledger
    /// grows, then keeps.
    pub store_cache_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("data"),
            durable_acks: true,
            create_demo_users: true,
            storage_probe_ms: 250,
            storage_probe_max_ms: 5_000,
            retention_days: 7,
            store_cache_mb: crate::store::CACHE_CAPACITY_BYTES >> 20,
        }
    }
}

/// Largest `store_cache_mb` (1 TiB), so that the bytes fit in a u64 with room to spare.
const MAX_STORE_CACHE_MB: u64 = 1 << 20;

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Text),
    ("durable_acks", Kind::Flag),
    ("create_demo_users", Kind::Flag),
    ("storage_probe_ms", Kind::Number),
    ("storage_probe_max_ms", Kind::Number),
    ("retention_days", Kind::Number),
    ("store_cache_mb", Kind::Number),
];

impl StoreConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                self.storage_probe_ms > 0 && self.storage_probe_max_ms >= self.storage_probe_ms,
                "storage_probe_ms must be positive and at most storage_probe_max_ms",
            ),
            (
                (1..=MAX_STORE_CACHE_MB).contains(&self.store_cache_mb),
                "store_cache_mb must be 1..=1048576",
            ),
        ])
    }
}
