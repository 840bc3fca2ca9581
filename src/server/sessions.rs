//! What tokens and API keys are checked against: the caller's user as its shard stores it
//! now — that it exists (and was not removed), its role, its token epoch. A signature alone
//! proves only that the server once issued the token (issue 14: a signed token for a user id
//! that did not exist, claiming admin, got 200; a demoted or removed admin kept access until
//! the token expired).
//!
//! - Each shard remembers the users it has checked ([`UserCache`]: bounded, entries expire
//!   after `user_cache_secs`), read on a miss from the user's own shard ([`ResolveUser`], one
//!   hop), so the hot path stays two memo lookups (token, user).
//! - Whatever changes a user's state (logout, password or role change, revocation, removal)
//!   runs on the user's shard, which writes it with a new epoch, waits for the fsync and then
//!   tells every shard to forget the user ([`forget_everywhere`]: waiting for room in a full
//!   inbox and for each shard's acknowledgement). When the endpoint answers, no shard accepts
//!   the old tokens any more; the TTL is only a safety net.
//! - A lookup that raced a forget must not put the old state back: the cache counts the
//!   forgets it is told, and the answer of a lookup that began before one serves its own
//!   request (which was concurrent with the change) but is not remembered.

use super::owner::{run_on_owner, OwnerCommand};
use super::reply::Refusal;
use super::shard::Shard;
use crate::contract::ApiError;
use crate::store::{ids, Role, StoreError, TokenState};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A user's state as a shard remembers it: `None` when the user does not exist or was
/// removed (remembered too: user ids are never reused).
pub type UserState = Option<TokenState>;

/// Per-shard memo of user states read from their shards.
pub struct UserCache {
    max_entries: usize,
    ttl: Duration,
    users: HashMap<u64, (UserState, Instant)>,
    /// Forgets this cache was told so far (see the module's comment).
    forgets: u64,
}

impl UserCache {
    pub fn new(max_entries: usize, ttl: Duration) -> UserCache {
        UserCache {
            max_entries: max_entries.max(1),
            ttl,
            users: HashMap::new(),
            forgets: 0,
        }
    }

    pub fn get(&mut self, user_id: u64) -> Option<UserState> {
        let (state, remembered_at) = *self.users.get(&user_id)?;
        if remembered_at.elapsed() > self.ttl {
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
        self.users.insert(user_id, (state, Instant::now()));
    }

    pub fn forget(&mut self, user_id: u64) {
        self.forgets += 1;
        self.users.remove(&user_id);
    }
}

/// The user's current state, remembered here or read on its shard.
pub async fn user_state(shard: &Rc<Shard>, user_id: u64) -> Result<UserState, Refusal> {
    if let Some(state) = shard.user_cache.borrow_mut().get(user_id) {
        return Ok(state);
    }
    let generation = shard.user_cache.borrow().generation();
    let state = run_on_owner(shard, ResolveUser { user_id }).await?;
    shard
        .user_cache
        .borrow_mut()
        .remember(user_id, state, generation);
    Ok(state)
}

/// The role a token of `user_id` issued under `epoch` has now; 1003 when the user is gone or
/// the token's epoch was ended.
pub async fn token_role(shard: &Rc<Shard>, user_id: u64, epoch: u32) -> Result<Role, Refusal> {
    match user_state(shard, user_id).await? {
        Some(state) if state.token_epoch == epoch => Ok(state.role),
        _ => {
            shard.metrics().tokens_revoked += 1;
            Err(Refusal::new(ApiError::BadToken, "token revoked"))
        }
    }
}

/// Reads a user's state on the user's shard.
struct ResolveUser {
    user_id: u64,
}

impl OwnerCommand for ResolveUser {
    type Output = UserState;

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<UserState, Refusal> {
        Ok(shard.store.borrow()?.token_state(self.user_id)?)
    }
}

/// On the user's shard, after a write that changed the user's state: waits until the write
/// is on disk, then makes every shard forget the user. Answers once every shard has.
pub async fn publish_change(shard: &Rc<Shard>, user_id: u64) -> Result<(), Refusal> {
    assert_eq!(
        ids::shard_of(user_id),
        shard.id,
        "a user's state changes on its shard"
    );
    shard.commit.durable().await.map_err(StoreError::Io)?;
    forget_everywhere(shard, user_id).await;
    Ok(())
}

/// Tells every shard (this one included) to forget `user_id`, waiting for room in full
/// inboxes and for each shard's acknowledgement. Only a stopped shard is skipped.
async fn forget_everywhere(shard: &Rc<Shard>, user_id: u64) {
    for target in 0..shard.shard_count() {
        // The only error is a stopped shard, whose cache is gone with it.
        let _ = shard
            .submit_to_waiting(target, move |shard| async move {
                shard.user_cache.borrow_mut().forget(user_id);
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::thread::sleep(Duration::from_millis(1));
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
