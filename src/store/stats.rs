//! Per-day counters per user and per soft_id, in the day's `stats-YYYYMMDD` tree.

use super::day::{self, DayNumber};
use super::journal::{decode_tx, TxResult};
use super::layout::{self, soft_stats_key, user_stats_key};
use super::records::{decode, encode, DayCounters};
use super::{DayStats, ShardStore, StoreError};
use sled::transaction::TransactionalTree;

/// Longest stats query, in days (bounds the work of one request).
pub const MAX_STATS_DAYS: u32 = 366;

/// Adds `change` to the counters of the upload's user and (if any) soft_id.
pub fn bump(
    stats: &TransactionalTree,
    user_id: u64,
    soft_id: Option<&str>,
    change: impl Fn(&mut DayCounters),
) -> TxResult<()> {
    let mut keys = vec![user_stats_key(user_id)];
    keys.extend(soft_id.map(soft_stats_key));
    for key in keys {
        let mut counters: DayCounters = match stats.get(&key)? {
            Some(bytes) => decode_tx(&bytes)?,
            None => DayCounters::default(),
        };
        change(&mut counters);
        stats.insert(key, encode(&counters))?;
    }
    Ok(())
}

impl ShardStore {
    /// The user's rows for the `days` UTC days ending today (oldest first, zero rows included).
    pub fn user_stats(
        &self,
        user_id: u64,
        days: u32,
        now_ms: u64,
    ) -> Result<Vec<DayStats>, StoreError> {
        self.day_rows(&user_stats_key(user_id), days, now_ms)
    }

    /// This shard's part of a soft_id's rows (uploads by this shard's users); the server sums
    /// the parts of all shards per day.
    pub fn soft_stats(
        &self,
        soft_id: &str,
        days: u32,
        now_ms: u64,
    ) -> Result<Vec<DayStats>, StoreError> {
        self.day_rows(&soft_stats_key(soft_id), days, now_ms)
    }

    fn day_rows(&self, key: &[u8], days: u32, now_ms: u64) -> Result<Vec<DayStats>, StoreError> {
        if days == 0 || days > MAX_STATS_DAYS {
            return Err(StoreError::InvalidInput(format!(
                "days must be 1..={MAX_STATS_DAYS}"
            )));
        }
        (0..days)
            .rev()
            .map(|days_back| self.day_row(day::day_before(now_ms, days_back), key))
            .collect()
    }

    fn day_row(&self, day_number: DayNumber, key: &[u8]) -> Result<DayStats, StoreError> {
        let mut counters = DayCounters::default();
        if self.days.contains(&day_number) {
            let tree = self.db.open_tree(layout::stats_tree_name(day_number))?;
            if let Some(bytes) = tree.get(key)? {
                counters = decode(&bytes)?;
            }
        }
        Ok(DayStats {
            day: day::display(day_number),
            counters,
        })
    }
}
