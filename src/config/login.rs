//! Logins: the password hash threads and their queue, and the guards against guessing
//! (per-account and per-address backoffs, the delay of a refusal).

use super::check::first_failed;
use super::keys::Kind;
use super::values;
use crate::recognition::ThreadPriority;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Threads hashing and verifying passwords (argon2id), for the whole node; 0 means one
    /// per 4 usable cores, at least 1. They never share glommio's blocking pool (the
    /// group commit's fsync).
    pub password_hash_threads: usize,
    /// Passwords waiting for a hash thread; a login or password change finding it full is
    /// answered 5001 (`Retry-After: 1`) at once, without hashing.
    pub password_hash_queue_len: usize,
    /// Scheduling priority of the hash threads: `normal`, `idle` (SCHED_IDLE) or `nice:N`.
    #[serde(deserialize_with = "values::parsed")]
    pub password_hash_priority: ThreadPriority,
    /// Failed logins of one account (by username, whether it exists or not) that cost
    /// nothing; each later one locks the account's logins for a backoff.
    pub login_account_free_failures: u32,
    /// Failed logins from one client address (per shard) that cost nothing; each later one
    /// locks that address's logins for a backoff.
    pub login_address_free_failures: u32,
    /// The first backoff; each further failure doubles it, up to `login_backoff_max_ms`.
    pub login_backoff_base_ms: u64,
    pub login_backoff_max_ms: u64,
    /// An account's or address's failures are forgotten this long after the last one.
    pub login_backoff_forget_secs: u64,
    /// Accounts and addresses each shard tracks (each kind); beyond it the longest quiet
    /// are forgotten first.
    pub login_backoff_entries: usize,
    /// A login or password change answered "try later" (5002 in a backoff or over the
    /// per-user limit, 5001 with a full hash queue) is answered after this long (at most its
    /// `Retry-After`), so that a flood of refused guesses costs a timer per connection, not a
    /// request per round trip. 0 answers at once.
    pub login_refusal_delay_ms: u64,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            password_hash_threads: 0,
            password_hash_queue_len: 32,
            password_hash_priority: ThreadPriority::Nice(10),
            login_account_free_failures: 5,
            login_address_free_failures: 20,
            login_backoff_base_ms: 1_000,
            login_backoff_max_ms: 60_000,
            login_backoff_forget_secs: 3_600,
            login_backoff_entries: 100_000,
            login_refusal_delay_ms: 1_000,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("password_hash_threads", Kind::Number),
    ("password_hash_queue_len", Kind::Number),
    ("password_hash_priority", Kind::Text),
    ("login_account_free_failures", Kind::Number),
    ("login_address_free_failures", Kind::Number),
    ("login_backoff_base_ms", Kind::Number),
    ("login_backoff_max_ms", Kind::Number),
    ("login_backoff_forget_secs", Kind::Number),
    ("login_backoff_entries", Kind::Number),
    ("login_refusal_delay_ms", Kind::Number),
];

impl LoginConfig {
    /// The password hash threads: those configured, or else one per 4 usable cores (at
    /// least 1): logins are rare next to uploads, and hashing must not take the shards' cores.
    pub fn password_hash_threads(&self, usable_cores: usize) -> usize {
        match self.password_hash_threads {
            0 => (usable_cores / 4).max(1),
            threads => threads,
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                self.password_hash_threads <= 64 && self.password_hash_queue_len > 0,
                "password_hash_threads must be at most 64 and password_hash_queue_len positive",
            ),
            (
                self.login_backoff_base_ms > 0
                    && self.login_backoff_max_ms >= self.login_backoff_base_ms,
                "login_backoff_base_ms must be positive and at most login_backoff_max_ms",
            ),
            (
                // A lock is never forgotten before it ends.
                self.login_backoff_forget_secs.saturating_mul(1000) >= self.login_backoff_max_ms,
                "login_backoff_forget_secs must cover login_backoff_max_ms",
            ),
            (
                self.login_backoff_entries > 0,
                "login_backoff_entries must be positive",
            ),
            (
                self.login_refusal_delay_ms <= 60_000,
                "login_refusal_delay_ms must be at most 60000",
            ),
        ])
    }
}
