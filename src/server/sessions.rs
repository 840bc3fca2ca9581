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
use super::state::UserState;
use crate::contract::ApiError;
use crate::store::{ids, Role, StoreError};
use std::rc::Rc;

/// The user's current state, remembered here or read on its shard.
pub async fn user_state(shard: &Rc<Shard>, user_id: u64) -> Result<UserState, Refusal> {
    if let Some(state) = shard.auth.user_cache.borrow_mut().get(user_id) {
        return Ok(state);
    }
    let generation = shard.auth.user_cache.borrow().generation();
    let state = run_on_owner(shard, ResolveUser { user_id }).await?;
    shard
        .auth
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
                shard.auth.user_cache.borrow_mut().forget(user_id);
            })
            .await;
    }
}
