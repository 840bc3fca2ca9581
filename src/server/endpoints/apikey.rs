//! API keys: `GET /v2/user/apikey` (whether the caller has one, since when),
//! `POST /v2/user/apikey` (create or replace: the key is shown once, in this answer),
//! `POST /v2/user/apikey/revoke`, and `POST /v2/admin/apikey/revoke` for admins.
//!
//! Creating, replacing and revoking need a login token: a leaked key must not be able to
//! lock its owner out by replacing itself. A replaced or revoked key stops working at once
//! on every shard (each shard's key memo is told to forget it).

use crate::auth::{self, ApiKeyHash};
use crate::contract::ApiError;
use crate::server::call::{Call, Caller, Credential};
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{internal, malformed, ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::store::{ids, Role, StoreError};
use serde_json::json;
use std::rc::Rc;

/// The caller, who must have logged in (not used a key).
async fn logged_in_caller(call: &Call<'_>) -> Result<Caller, Refusal> {
    let caller = call.caller().await?;
    if caller.via != Credential::Token {
        return Err(Refusal::new(
            ApiError::Forbidden,
            "API keys are managed with a login token, not with a key",
        ));
    }
    Ok(caller)
}

/// Whether a user has a key, and when it was made.
struct KeyStatus {
    user_id: u64,
}

impl OwnerCommand for KeyStatus {
    type Output = Option<u64>;

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Option<u64>, Refusal> {
        Ok(shard.store.borrow()?.api_key_created_at(self.user_id)?)
    }
}

pub async fn status(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let created_at = run_on_owner(
        call.shard,
        KeyStatus {
            user_id: caller.user_id,
        },
    )
    .await?;
    Ok(ok(&match created_at {
        Some(created_at) => json!({ "has_key": true, "created_at": created_at }),
        None => json!({ "has_key": false }),
    }))
}

/// Stores a new key's hash for a user; answers the replaced key's hash.
struct SetKey {
    user_id: u64,
    hash: ApiKeyHash,
    now_ms: u64,
}

impl OwnerCommand for SetKey {
    type Output = Option<ApiKeyHash>;

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Option<ApiKeyHash>, Refusal> {
        let replaced =
            shard
                .store
                .borrow_mut()?
                .set_api_key(self.user_id, &self.hash, self.now_ms)?;
        shard.commit.durable().await.map_err(StoreError::Io)?;
        Ok(replaced)
    }
}

pub async fn create(call: &Call<'_>) -> ApiResult {
    let caller = logged_in_caller(call).await?;
    let node = ids::node_of(caller.user_id);
    let key = auth::new_api_key(node, caller.owner, call.shard.shard_count())
        .map_err(|e| internal("api key", e))?;
    let now_ms = crate::clock::unix_now_ms();
    let request = SetKey {
        user_id: caller.user_id,
        hash: auth::api_key_hash(&key),
        now_ms,
    };
    if let Some(replaced) = run_on_owner(call.shard, request).await? {
        forget_everywhere(call.shard, replaced).await;
    }
    Ok(ok(&json!({ "api_key": key, "created_at": now_ms })))
}

/// Removes a user's key; answers its hash (None: there was none).
struct RevokeKey {
    user_id: u64,
}

impl OwnerCommand for RevokeKey {
    type Output = Option<ApiKeyHash>;

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Option<ApiKeyHash>, Refusal> {
        if shard.store.borrow()?.user(self.user_id)?.is_none() {
            return Err(StoreError::UserNotFound.into());
        }
        let revoked = shard.store.borrow_mut()?.revoke_api_key(self.user_id)?;
        shard.commit.durable().await.map_err(StoreError::Io)?;
        Ok(revoked)
    }
}

pub async fn revoke(call: &Call<'_>) -> ApiResult {
    let caller = logged_in_caller(call).await?;
    revoke_key_of(call, caller.user_id).await
}

/// Admin: revoke the key of `user_id` or `username`.
pub async fn admin_revoke(call: &Call<'_>) -> ApiResult {
    call.caller_with_role(&[Role::Admin]).await?;
    let fields = call.fields()?;
    let user_id = match fields.text("user_id") {
        Some(_) => fields.id("user_id")?,
        None => {
            crate::server::queries::user_id_by_name(call.shard, fields.required("username")?)
                .await?
        }
    };
    if ids::shard_of(user_id) >= call.shard.shard_count() {
        return Err(malformed("no such user"));
    }
    revoke_key_of(call, user_id).await
}

async fn revoke_key_of(call: &Call<'_>, user_id: u64) -> ApiResult {
    let revoked = run_on_owner(call.shard, RevokeKey { user_id }).await?;
    if let Some(hash) = revoked {
        forget_everywhere(call.shard, hash).await;
    }
    Ok(ok(&json!({ "revoked": revoked.is_some() })))
}

/// Tells every shard to forget a key it may remember. A shard whose inbox is full right now
/// forgets it when its memo entry expires (`api_key_cache_secs`).
pub(super) async fn forget_everywhere(shard: &Rc<Shard>, hash: ApiKeyHash) {
    for target in 0..shard.shard_count() {
        let forgotten = shard
            .submit_to(target, move |shard| async move {
                shard.auth.key_cache.borrow_mut().forget(&hash);
            })
            .await;
        if forgotten.is_err() {
            log_line!("aiocr: shard {target} could not be told to forget a revoked API key");
        }
    }
}
