//! This node in the platform: its shards, its id, its models, what one shard holds for the
//! others (inbox, waiters), and how long a stop may take.

use super::check::first_failed;
use super::keys::Kind;
use crate::store::ids;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Shard (reactor) count; 0 means one per available core. Fixed at data creation.
    pub shards: u16,
    /// Node id written into snowflake ids (0..=ids::MAX_NODE_ID).
    pub node_id: u16,
    pub model_dir: PathBuf,
    /// Length of each shard's inbox of work forwarded by the other shards. A forward to a
    /// full inbox is answered 5001 (busy, `Retry-After`) before anything ran on the owner.
    pub shard_inbox_len: usize,
    /// `wait=1` requests one shard holds at once; beyond it an upload is answered 5001 before
    /// its points are reserved.
    pub max_waiters_per_shard: usize,
    /// On SIGTERM, how long in-flight requests may take before the server stops anyway.
    pub drain_timeout_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            shards: 0,
            node_id: 0,
            model_dir: PathBuf::from("models"),
            shard_inbox_len: 4096,
            max_waiters_per_shard: 16_384,
            drain_timeout_ms: 10_000,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("shards", Kind::Number),
    ("node_id", Kind::Number),
    ("model_dir", Kind::Text),
    ("shard_inbox_len", Kind::Number),
    ("max_waiters_per_shard", Kind::Number),
    ("drain_timeout_ms", Kind::Number),
];

impl NodeConfig {
    /// The shard count to run: the configured one, else one per usable core, at most
    /// `ids::MAX_SHARDS` (the shard lives in 4 bits of every id).
    pub fn shard_count(&self) -> u16 {
        if self.shards > 0 {
            return self.shards;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.min(usize::from(ids::MAX_SHARDS)) as u16
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                self.shards <= ids::MAX_SHARDS,
                "shards must be at most 16 (4 shard bits in ids)",
            ),
            (
                self.node_id <= ids::MAX_NODE_ID,
                "node_id must be below 64 (6 bits in ids)",
            ),
            (self.shard_inbox_len > 0, "shard_inbox_len must be positive"),
            (
                self.max_waiters_per_shard > 0,
                "max_waiters_per_shard must be positive",
            ),
        ])
    }
}
