//! Failed logins back off exponentially, per account and per client address (issue 14: 71
//! wrong guesses a second on one account got through). Single-threaded, one table per shard
//! and kind; the clock is a parameter (`*_at`) so tests never sleep.
//!
//! - A key (an account's or an address's hash) may fail `free_failures` times at no cost;
//!   each later failure locks it for `base · 2^(k-1)` (k: failures beyond the free ones), at
//!   most `max`. During a lock every attempt is refused before any hashing (5002 with
//!   `Retry-After`), the right password too: otherwise a lock would still test guesses.
//! - Attempts are counted when they start (`begin`), not only when they fail: beyond the
//!   free failures only one attempt at a time is let through, so a burst of concurrent
//!   guesses cannot all pass the check before the first of them fails.
//! - Entries are forgotten `forget` after their last failure (and never while an attempt is
//!   in flight or a lock lasts); a full table forgets the longest quiet first, so memory
//!   stays bounded whatever names or addresses an attacker makes up.
//! - Accounts are keyed by a hash of the username whether or not the account exists: an
//!   unknown name backs off exactly like a real one.

use std::collections::HashMap;
use std::time::Instant;

/// How failures turn into locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub free_failures: u32,
    pub base_ms: u64,
    pub max_ms: u64,
    /// An entry is forgotten this long after its last failure (at least `max_ms`).
    pub forget_ms: u64,
}

impl BackoffPolicy {
    /// The lock after the `failures`-th failure (0 while within the free ones).
    fn lock_ms(&self, failures: u32) -> u64 {
        let beyond = failures.saturating_sub(self.free_failures);
        if beyond == 0 {
            return 0;
        }
        // 2^(beyond-1), saturating long before u64 overflows: the cap decides anyway.
        let doublings = (beyond - 1).min(62);
        self.base_ms.saturating_mul(1 << doublings).min(self.max_ms)
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Wrong password (or unknown user): counts.
    Failed,
    /// The right password: an account's failures are forgiven (only its owner can do this);
    /// an address's stay (one good account must not launder an address's guesses).
    Succeeded { forgive: bool },
    /// Nothing was checked (the hash queue was full, the request went away): as if the
    /// attempt had not been made.
    NotChecked,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    failures: u32,
    in_flight: u32,
    locked_until_ms: u64,
    last_failure_ms: u64,
}

impl Entry {
    fn is_idle(&self) -> bool {
        self.failures == 0 && self.in_flight == 0
    }
}

pub struct LoginBackoff {
    policy: BackoffPolicy,
    max_entries: usize,
    entries: HashMap<u64, Entry>,
    started: Instant,
}

impl LoginBackoff {
    pub fn new(policy: BackoffPolicy, max_entries: usize) -> LoginBackoff {
        assert!(policy.base_ms > 0 && policy.max_ms >= policy.base_ms);
        assert!(
            policy.forget_ms >= policy.max_ms,
            "a lock outlives no entry"
        );
        LoginBackoff {
            policy,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Starts an attempt for `key` now; `Err(retry_after_secs)` when it must wait.
    pub fn begin(&mut self, key: u64) -> Result<(), u64> {
        let now_ms = self.now_ms();
        self.begin_at(key, now_ms)
    }

    /// Ends an attempt `begin` let through.
    pub fn finish(&mut self, key: u64, outcome: Outcome) {
        let now_ms = self.now_ms();
        self.finish_at(key, outcome, now_ms);
    }

    pub fn begin_at(&mut self, key: u64, now_ms: u64) -> Result<(), u64> {
        self.forget_if_quiet(key, now_ms);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_entries {
            self.evict(now_ms);
        }
        let policy = self.policy;
        let entry = self.entries.entry(key).or_default();
        if entry.locked_until_ms > now_ms {
            return Err(retry_after_secs(entry.locked_until_ms - now_ms));
        }
        // Beyond the free failures, the outcome of one attempt decides the next lock.
        let budget = policy.free_failures.saturating_sub(entry.failures).max(1);
        if entry.in_flight >= budget {
            return Err(1);
        }
        entry.in_flight += 1;
        Ok(())
    }

    pub fn finish_at(&mut self, key: u64, outcome: Outcome, now_ms: u64) {
        let policy = self.policy;
        // Missing only if the table was cleared meanwhile: then this attempt starts afresh.
        let entry = self.entries.entry(key).or_default();
        entry.in_flight = entry.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Failed => {
                entry.failures = entry.failures.saturating_add(1);
                entry.last_failure_ms = now_ms;
                let lock_ms = policy.lock_ms(entry.failures);
                if lock_ms > 0 {
                    entry.locked_until_ms = now_ms + lock_ms;
                }
            }
            Outcome::Succeeded { forgive: true } => {
                entry.failures = 0;
                entry.locked_until_ms = 0;
            }
            Outcome::Succeeded { forgive: false } | Outcome::NotChecked => {}
        }
        if entry.is_idle() {
            self.entries.remove(&key);
        }
    }

    /// Forgets `key`'s entry if its last failure is `forget_ms` old (its lock is then over).
    fn forget_if_quiet(&mut self, key: u64, now_ms: u64) {
        let forget_ms = self.policy.forget_ms;
        if let Some(entry) = self.entries.get(&key) {
            if entry.in_flight == 0 && now_ms.saturating_sub(entry.last_failure_ms) >= forget_ms {
                self.entries.remove(&key);
            }
        }
    }

    /// Makes room: forgets the quiet entries, then (still full) the eighth whose last failure
    /// is oldest. Entries with an attempt in flight stay.
    fn evict(&mut self, now_ms: u64) {
        let forget_ms = self.policy.forget_ms;
        self.entries.retain(|_, entry| {
            entry.in_flight > 0 || now_ms.saturating_sub(entry.last_failure_ms) < forget_ms
        });
        if self.entries.len() < self.max_entries {
            return;
        }
        let mut ages: Vec<u64> = self
            .entries
            .values()
            .filter(|entry| entry.in_flight == 0)
            .map(|entry| entry.last_failure_ms)
            .collect();
        let evict = (self.max_entries / 8).max(1).min(ages.len());
        if evict == 0 {
            return;
        }
        let (_, &mut newest_evicted, _) = ages.select_nth_unstable(evict - 1);
        self.entries
            .retain(|_, entry| entry.in_flight > 0 || entry.last_failure_ms > newest_evicted);
    }

    /// Keys tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

fn retry_after_secs(wait_ms: u64) -> u64 {
    wait_ms.div_ceil(1000).max(1)
}

/// The account key of a username: the same for a name that exists and one that does not.
pub fn account_key(username: &str) -> u64 {
    let hash = blake3::Hasher::new()
        .update(b"aiocr login account\0")
        .update(username.as_bytes())
        .finalize();
    u64::from_be_bytes(*hash.as_bytes().first_chunk().expect("32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(free_failures: u32) -> BackoffPolicy {
        BackoffPolicy {
            free_failures,
            base_ms: 1_000,
            max_ms: 8_000,
            forget_ms: 60_000,
        }
    }

    /// One attempt at `now_ms` that fails; the refusal's Retry-After if it was refused.
    fn fail(table: &mut LoginBackoff, key: u64, now_ms: u64) -> Result<(), u64> {
        table.begin_at(key, now_ms)?;
        table.finish_at(key, Outcome::Failed, now_ms);
        Ok(())
    }

    #[test]
    fn free_failures_then_locks_that_double_up_to_the_cap() {
        let mut table = LoginBackoff::new(policy(2), 100);
        assert_eq!(fail(&mut table, 1, 0), Ok(()));
        assert_eq!(fail(&mut table, 1, 0), Ok(()));
        // The third failure locks for the base, and the lock refuses without counting.
        assert_eq!(fail(&mut table, 1, 0), Ok(()));
        assert_eq!(table.begin_at(1, 0), Err(1));
        assert_eq!(table.begin_at(1, 999), Err(1));
        // Each further failure doubles the lock: 2 s, 4 s, then the 8 s cap.
        let mut now = 1_000;
        for expected_secs in [2, 4, 8, 8] {
            assert_eq!(fail(&mut table, 1, now), Ok(()));
            assert_eq!(table.begin_at(1, now), Err(expected_secs));
            now += expected_secs * 1000;
        }
        // Another key is untouched.
        assert_eq!(fail(&mut table, 2, now), Ok(()));
    }

    #[test]
    fn a_success_forgives_an_account_but_not_an_address() {
        let mut accounts = LoginBackoff::new(policy(1), 100);
        fail(&mut accounts, 7, 0).unwrap();
        accounts.begin_at(7, 0).unwrap();
        accounts.finish_at(7, Outcome::Succeeded { forgive: true }, 0);
        assert_eq!(accounts.tracked(), 0, "forgiven and forgotten");
        let mut addresses = LoginBackoff::new(policy(1), 100);
        fail(&mut addresses, 7, 0).unwrap();
        addresses.begin_at(7, 0).unwrap();
        addresses.finish_at(7, Outcome::Succeeded { forgive: false }, 0);
        assert_eq!(fail(&mut addresses, 7, 0), Ok(()));
        assert_eq!(addresses.begin_at(7, 0), Err(1), "the failures still count");
        // Successes alone never lock anyone out.
        for _ in 0..100 {
            addresses.begin_at(8, 0).unwrap();
            addresses.finish_at(8, Outcome::Succeeded { forgive: false }, 0);
        }
        assert_eq!(addresses.begin_at(8, 0), Ok(()));
    }

    #[test]
    fn concurrent_attempts_beyond_the_free_failures_go_one_at_a_time() {
        let mut table = LoginBackoff::new(policy(3), 100);
        // Within the free failures, as many at once as remain free.
        for _ in 0..3 {
            table.begin_at(5, 0).unwrap();
        }
        assert_eq!(table.begin_at(5, 0), Err(1));
        for _ in 0..3 {
            table.finish_at(5, Outcome::Failed, 0);
        }
        // The free failures are spent: one attempt at a time.
        table.begin_at(5, 0).unwrap();
        assert_eq!(table.begin_at(5, 0), Err(1));
        // An attempt that checked nothing gives its place back without counting.
        table.finish_at(5, Outcome::NotChecked, 0);
        table.begin_at(5, 0).unwrap();
        table.finish_at(5, Outcome::Failed, 0);
        // Locked now; once the lock ends, one at a time again.
        assert_eq!(table.begin_at(5, 999), Err(1));
        table.begin_at(5, 1_000).unwrap();
        assert_eq!(table.begin_at(5, 1_000), Err(1));
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let mut table = LoginBackoff::new(policy(1), 100);
        fail(&mut table, 3, 0).unwrap();
        fail(&mut table, 3, 0).unwrap();
        assert_eq!(table.begin_at(3, 59_999), Ok(()), "the 1 s lock is over");
        table.finish_at(3, Outcome::NotChecked, 59_999);
        // Forgotten 60 s after the last failure: free failures again.
        assert_eq!(fail(&mut table, 3, 60_000), Ok(()));
        assert_eq!(
            fail(&mut table, 3, 60_000),
            Ok(()),
            "the first failure was free again"
        );
        assert_eq!(
            table.begin_at(3, 60_000),
            Err(1),
            "the second one locks again"
        );
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_attempts_in_flight() {
        let mut table = LoginBackoff::new(policy(1), 64);
        table.begin_at(u64::MAX, 0).unwrap(); // in flight throughout
        for key in 0..10_000u64 {
            fail(&mut table, key, key).unwrap();
            assert!(table.tracked() <= 64, "{}", table.tracked());
        }
        // The newest survive, and the attempt in flight still ends properly.
        assert_eq!(
            table.begin_at(9_999, 10_000),
            Ok(()),
            "not locked: 1 failure is free"
        );
        table.finish_at(u64::MAX, Outcome::NotChecked, 10_000);
    }

    #[test]
    fn account_keys_depend_only_on_the_name() {
        assert_eq!(account_key("demo"), account_key("demo"));
        assert_ne!(account_key("demo"), account_key("Demo"));
        assert_ne!(account_key(""), 0);
    }
}
