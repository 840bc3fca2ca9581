//! Each shard's memo of the user states (exists, role, token epoch) it read from the users'
//! shards to check tokens and keys (server/sessions.rs says when entries are forgotten, and
//! why a lookup that raced a forget is not remembered).

use crate::clock;
use crate::store::TokenState;
use std::collections::HashMap;
use std::time::Duration;

/// A user's state as a shard remembers it: `None` when the user does not exist or was
/// removed (remembered too: user ids are never reused).
pub type UserState = Option<TokenState>;

/// Per-shard memo of user states read from their shards.
pub struct UserCache {
    max_entries: usize,
    ttl: Duration,
    /// Hashed with foldhash: the keys are user ids, not chosen by clients (see auth's
    /// `TokenCache` for why the hot path avoids SipHash). With each state, when it was
    /// remembered on the coarse monotonic clock (crate::clock): every authenticated request
    /// reads this, and a TTL of seconds needs no finer clock.
    users: HashMap<u64, (UserState, Duration), foldhash::fast::RandomState>,
    /// Forgets this cache was told so far (see server/sessions.rs).
    forgets: u64,
}

impl UserCache {
    pub fn new(max_entries: usize, ttl: Duration) -> UserCache {
        UserCache {
            max_entries: max_entries.max(1),
            ttl,
            users: HashMap::default(),
            forgets: 0,
        }
    }

    pub fn get(&mut self, user_id: u64) -> Option<UserState> {
        let (state, remembered_at) = *self.users.get(&user_id)?;
        // `>=`: a TTL of 0 remembers nothing, even within one tick of the coarse clock.
        if clock::monotonic_coarse().saturating_sub(remembered_at) >= self.ttl {
            self.users.remove(&user_id);
            return None;
        }
        Some(state)
    }

    /// Taken before a lookup; pass it to `remember` with the lookup's answer.
    pub fn generation(&self) -> u64 {
        self.forgets
    }

    /// Remembers a lookup's answer, unless a forget came since the lookup began.
    pub fn remember(&mut self, user_id: u64, state: UserState, generation: u64) {
        assert!(generation <= self.forgets, "a generation this cache gave");
        if generation != self.forgets {
            return;
        }
        if self.users.len() >= self.max_entries {
            // Starting over is simpler than LRU and costs one lookup per active user.
            self.users.clear();
        }
        self.users
            .insert(user_id, (state, clock::monotonic_coarse()));
    }

    pub fn forget(&mut self, user_id: u64) {
        self.forgets += 1;
        self.users.remove(&user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Role;

    const ADMIN: UserState = Some(TokenState {
        role: Role::Admin,
        token_epoch: 0,
    });

    #[test]
    fn remembers_forgets_and_expires() {
        let mut cache = UserCache::new(2, Duration::from_secs(60));
        cache.remember(7, ADMIN, cache.generation());
        assert_eq!(cache.get(7), Some(ADMIN));
        cache.remember(8, None, cache.generation());
        assert_eq!(
            cache.get(8),
            Some(None),
            "a missing user is remembered as missing"
        );
        cache.forget(7);
        assert_eq!(cache.get(7), None);
        let mut expired = UserCache::new(2, Duration::ZERO);
        expired.remember(7, ADMIN, expired.generation());
        // Longer than the coarse clock's tick (at most 10 ms at HZ=100).
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(expired.get(7), None, "older than the ttl");
        for user_id in 0..5 {
            cache.remember(user_id, ADMIN, cache.generation());
            assert!(cache.users.len() <= 2, "bounded");
        }
    }

    #[test]
    fn a_lookup_that_raced_a_forget_is_not_remembered() {
        let mut cache = UserCache::new(8, Duration::from_secs(60));
        let generation = cache.generation();
        // The lookup is on its way to the user's shard when the user's epoch changes ...
        cache.forget(7);
        // ... so its (possibly old) answer must not be kept.
        cache.remember(7, ADMIN, generation);
        assert_eq!(cache.get(7), None);
        cache.remember(7, ADMIN, cache.generation());
        assert_eq!(cache.get(7), Some(ADMIN));
    }
}
