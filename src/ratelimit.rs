//! Per-user token buckets, owned by the user's shard (single-threaded, no locks).
//!
//! Tokens are counted in thousandths so refills need no floating point: a bucket gains
//! `rate_per_sec` milli-tokens per millisecond, holds at most `burst` tokens, and a request
//! takes one token. The clock is a parameter (`check_at`) so tests never sleep.

use std::collections::HashMap;
use std::time::Instant;

const MILLI: u64 = 1000;
/// Buckets kept before idle (full) ones are evicted; bounds memory per shard.
pub const DEFAULT_MAX_TRACKED_USERS: usize = 100_000;

#[derive(Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    updated_ms: u64,
}

pub struct RateLimiter {
    /// Tokens added per second; 0 disables limiting.
    rate_per_sec: u32,
    burst: u32,
    max_tracked_users: usize,
    buckets: HashMap<u64, Bucket>,
    started: Instant,
}

impl RateLimiter {
    /// `rate_per_sec` requests per second sustained, `burst` at once; `rate_per_sec == 0`
    /// disables the limit. A burst of 0 is treated as 1 (a bucket must hold one request).
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self::with_capacity(rate_per_sec, burst, DEFAULT_MAX_TRACKED_USERS)
    }

    pub fn with_capacity(rate_per_sec: u32, burst: u32, max_tracked_users: usize) -> Self {
        RateLimiter {
            rate_per_sec,
            burst: burst.max(1),
            max_tracked_users: max_tracked_users.max(1),
            buckets: HashMap::new(),
            started: Instant::now(),
        }
    }

    /// Takes a token for `user_id` now (monotonic clock). `Err(retry_after_secs)` when empty.
    pub fn check(&mut self, user_id: u64) -> Result<(), u64> {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.check_at(user_id, now_ms)
    }

    /// Takes a token at `now_ms` (any monotonic milliseconds). `Err(retry_after_secs)`, at
    /// least 1, when the bucket is empty; nothing is taken then.
    pub fn check_at(&mut self, user_id: u64, now_ms: u64) -> Result<(), u64> {
        if self.rate_per_sec == 0 {
            return Ok(());
        }
        if self.buckets.len() >= self.max_tracked_users && !self.buckets.contains_key(&user_id) {
            self.evict_full(now_ms);
        }
        let capacity = u64::from(self.burst) * MILLI;
        let rate = u64::from(self.rate_per_sec);
        let bucket = self.buckets.entry(user_id).or_insert(Bucket {
            milli_tokens: capacity,
            updated_ms: now_ms,
        });
        let elapsed_ms = now_ms.saturating_sub(bucket.updated_ms);
        bucket.milli_tokens = capacity.min(bucket.milli_tokens + elapsed_ms.saturating_mul(rate));
        bucket.updated_ms = bucket.updated_ms.max(now_ms);
        if bucket.milli_tokens >= MILLI {
            bucket.milli_tokens -= MILLI;
            return Ok(());
        }
        let missing_ms = (MILLI - bucket.milli_tokens).div_ceil(rate);
        Err(missing_ms.div_ceil(1000).max(1))
    }

    /// Whether `id`'s bucket holds a token now, without taking it (a gate checked before
    /// work whose failures alone take tokens).
    pub fn has_token(&self, id: u64) -> bool {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.has_token_at(id, now_ms)
    }

    pub fn has_token_at(&self, id: u64, now_ms: u64) -> bool {
        if self.rate_per_sec == 0 {
            return true;
        }
        let Some(bucket) = self.buckets.get(&id) else {
            return true;
        };
        let capacity = u64::from(self.burst) * MILLI;
        let elapsed_ms = now_ms.saturating_sub(bucket.updated_ms);
        let refilled =
            bucket.milli_tokens + elapsed_ms.saturating_mul(u64::from(self.rate_per_sec));
        capacity.min(refilled) >= MILLI
    }

    /// Forgets buckets that have refilled completely (they behave exactly like new ones).
    fn evict_full(&mut self, now_ms: u64) {
        let capacity = u64::from(self.burst) * MILLI;
        let rate = u64::from(self.rate_per_sec);
        self.buckets.retain(|_, bucket| {
            bucket.milli_tokens
                + now_ms
                    .saturating_sub(bucket.updated_ms)
                    .saturating_mul(rate)
                < capacity
        });
    }

    pub fn tracked_users(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeking_takes_nothing() {
        let mut limiter = RateLimiter::new(1, 2);
        assert!(
            limiter.has_token_at(9, 0),
            "an unknown id has a full bucket"
        );
        limiter.check_at(9, 0).unwrap();
        limiter.check_at(9, 0).unwrap();
        assert!(!limiter.has_token_at(9, 0));
        assert!(!limiter.has_token_at(9, 999));
        assert!(
            limiter.has_token_at(9, 1000),
            "one token back after a second"
        );
        assert!(
            limiter.has_token_at(9, 1000),
            "peeking again finds it still there"
        );
    }

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let mut limiter = RateLimiter::new(2, 3);
        for _ in 0..3 {
            assert_eq!(limiter.check_at(7, 1000), Ok(()));
        }
        assert_eq!(limiter.check_at(7, 1000), Err(1));
        // Another user has their own bucket.
        assert_eq!(limiter.check_at(8, 1000), Ok(()));
    }

    #[test]
    fn refills_at_the_rate() {
        let mut limiter = RateLimiter::new(2, 1);
        assert_eq!(limiter.check_at(1, 0), Ok(()));
        assert!(limiter.check_at(1, 499).is_err());
        assert_eq!(
            limiter.check_at(1, 500),
            Ok(()),
            "2/s refills one token in 500 ms"
        );
        assert!(limiter.check_at(1, 500).is_err());
        // A long pause refills only up to the burst.
        assert_eq!(limiter.check_at(1, 100_000), Ok(()));
        assert!(limiter.check_at(1, 100_000).is_err());
    }

    #[test]
    fn slow_rate_reports_whole_seconds() {
        let mut limiter = RateLimiter::new(1, 1);
        assert_eq!(limiter.check_at(1, 0), Ok(()));
        assert_eq!(limiter.check_at(1, 10), Err(1));
        let mut burst_of_ten = RateLimiter::new(1, 10);
        for _ in 0..10 {
            assert_eq!(burst_of_ten.check_at(2, 0), Ok(()));
        }
        assert_eq!(burst_of_ten.check_at(2, 0), Err(1));
        assert_eq!(burst_of_ten.check_at(2, 999), Err(1));
        assert_eq!(burst_of_ten.check_at(2, 1000), Ok(()));
    }

    #[test]
    fn zero_rate_disables_the_limit() {
        let mut limiter = RateLimiter::new(0, 0);
        for _ in 0..10_000 {
            assert_eq!(limiter.check_at(1, 0), Ok(()));
        }
    }

    #[test]
    fn tracked_users_stay_bounded_when_idle() {
        let mut limiter = RateLimiter::with_capacity(10, 5, 100);
        for user in 0..10_000u64 {
            // Each user arrives 1 s after the previous one: earlier buckets are full again.
            assert_eq!(limiter.check_at(user, user * 1000), Ok(()));
        }
        assert!(
            limiter.tracked_users() <= 100,
            "{}",
            limiter.tracked_users()
        );
    }
}
