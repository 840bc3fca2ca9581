//! Ending tokens: `POST /v2/user/logout` (the caller's), `POST /v2/user/password` (a new
//! password, and a fresh token for it), `POST /v2/admin/tokens/revoke` (a user's, by an
//! admin).
//!
//! A token is not ended one at a time: each ends every token its user holds, by bumping the
//! user's token epoch (tokens carry the epoch they were issued under; server/sessions.rs).
//! Logout therefore signs the user out of every session (browser tabs, scripts, other
//! machines); the API key is not a session and keeps working. The user's shard writes the
//! new epoch, waits for the fsync, and has every shard forget the user's state before the
//! answer: no shard accepts an ended token after it.

use super::accounts::other_user;
use super::user::{session_answer, session_for, Session};
use crate::auth::MAX_PASSWORD_BYTES;
use crate::contract::ApiError;
use crate::login_backoff::account_key;
use crate::server::attempts::{
    hash_new_password, outcome_of, pace_refusal, password_matches, Attempt, Scope,
};
use crate::server::call::{address_id, Call, Caller, Credential};
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{malformed, ok, ApiResult, Refusal};
use crate::server::sessions::publish_change;
use crate::server::shard::Shard;
use crate::store::{ids, Role};
use serde_json::json;
use std::rc::Rc;

/// The caller, who must hold a login token: an API key neither ends sessions nor changes
/// the password (a leaked key must not lock its owner out).
async fn token_caller(call: &Call<'_>) -> Result<Caller, Refusal> {
    let caller = call.caller().await?;
    if caller.via != Credential::Token {
        return Err(Refusal::new(
            ApiError::Forbidden,
            "sessions and passwords are managed with a login token, not with a key",
        ));
    }
    Ok(caller)
}

/// Ends every token of a user (a new epoch), on the user's shard.
struct EndSessions {
    user_id: u64,
}

impl OwnerCommand for EndSessions {
    type Output = ();

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<(), Refusal> {
        shard.store.borrow_mut()?.bump_token_epoch(self.user_id)?;
        publish_change(&shard, self.user_id).await
    }
}

pub async fn logout(call: &Call<'_>) -> ApiResult {
    let caller = token_caller(call).await?;
    let user_id = caller.user_id;
    run_on_owner(call.shard, EndSessions { user_id }).await?;
    Ok(ok(&json!({ "logged_out": true })))
}

/// Admin: end every token of the user named by `user_id` or `username` (not the admin's
/// own: that is logout).
pub async fn admin_revoke(call: &Call<'_>) -> ApiResult {
    let admin = call.caller_with_role(&[Role::Admin]).await?;
    let fields = call.fields()?;
    let user_id = other_user(call, &admin, &fields).await?;
    run_on_owner(call.shard, EndSessions { user_id }).await?;
    Ok(ok(
        &json!({ "user_id": user_id.to_string(), "revoked": true }),
    ))
}

/// `POST /v2/user/password`: checked like a login (the same backoffs: a stolen token must
/// not turn into a password oracle), then the new hash and a new epoch are written together.
struct ChangePassword {
    user_id: u64,
    old_password: String,
    new_password: String,
    ttl_secs: u64,
}

impl ChangePassword {
    fn parse(call: &Call, caller: &Caller) -> Result<ChangePassword, Refusal> {
        let fields = call.fields()?;
        let old_password = fields.required("old_password")?.to_string();
        let new_password = fields.required("new_password")?.to_string();
        crate::auth::check_new_password(&new_password).map_err(malformed)?;
        if old_password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::BadCredentials.into());
        }
        Ok(ChangePassword {
            user_id: caller.user_id,
            old_password,
            new_password,
            ttl_secs: call.shard.config().auth.token_ttl_secs,
        })
    }
}

impl OwnerCommand for ChangePassword {
    type Output = Session;

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Session, Refusal> {
        let user = shard.store.borrow()?.user(self.user_id)?;
        let user = user.ok_or_else(|| Refusal::new(ApiError::BadToken, "token revoked"))?;
        let attempt = Attempt::begin(&shard, Scope::Account, account_key(&user.username))?;
        let matches = password_matches(&shard, user.password_hash, self.old_password).await;
        let checked = match matches {
            Ok(true) => Ok(()),
            Ok(false) => {
                shard.metrics().logins_failed += 1;
                Err(Refusal::from(ApiError::BadCredentials))
            }
            Err(refusal) => Err(refusal),
        };
        attempt.end(outcome_of(&checked, Scope::Account));
        checked?;
        let hash = hash_new_password(&shard, self.new_password).await?;
        shard
            .store
            .borrow_mut()?
            .set_password(self.user_id, &hash)?;
        publish_change(&shard, self.user_id).await?;
        session_for(&shard, self.user_id, self.ttl_secs)?
            .ok_or_else(|| Refusal::new(ApiError::BadToken, "token revoked"))
    }
}

pub async fn change_password(call: &Call<'_>) -> ApiResult {
    let caller = token_caller(call).await?;
    let request = ChangePassword::parse(call, &caller)?;
    let session = change_from_address(call, request).await;
    pace_refusal(call.shard, &session).await;
    Ok(session_answer(session?))
}

/// The change inside the client address's backoff (as a login).
async fn change_from_address(call: &Call<'_>, request: ChangePassword) -> Result<Session, Refusal> {
    let attempt = Attempt::begin(call.shard, Scope::Address, address_id(call.peer))?;
    let session = run_on_owner(call.shard, request).await;
    attempt.end(outcome_of(&session, Scope::Address));
    session
}
