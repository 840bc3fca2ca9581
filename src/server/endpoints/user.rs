//! The caller's account: `POST /v2/user/login` (username and password for a token) and
//! `GET /v2/user/point` (the balance).

use crate::auth::MAX_PASSWORD_BYTES;
use crate::contract::ApiError;
use crate::http::Response;
use crate::login_backoff::account_key;
use crate::server::attempts::{outcome_of, pace_refusal, password_matches, Attempt, Scope};
use crate::server::call::{address_id, Call};
use crate::server::node_hop;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::queries;
use crate::server::reply::{internal, ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::store::{ids, User, MAX_USERNAME_BYTES};
use serde_json::json;
use std::rc::Rc;

/// `POST /v2/user/login`.
struct Login {
    username: String,
    password: String,
    owner: u16,
    ttl_secs: u64,
}

impl Login {
    fn parse(call: &Call) -> Result<Login, Refusal> {
        let fields = call.fields()?;
        let username = fields.required("username")?.to_string();
        let password = fields.required("password")?.to_string();
        // Beyond the limits no account can match: the same answer as a wrong password.
        if username.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::BadCredentials.into());
        }
        Ok(Login {
            owner: ids::shard_for_username(&username, call.shard.shard_count()),
            ttl_secs: call.shard.config().auth.token_ttl_secs,
            username,
            password,
        })
    }
}

/// The token and its expiry (Unix seconds), and the user id.
pub(super) type Session = (String, u64, u64);

impl OwnerCommand for Login {
    type Output = Session;

    fn owner(&self) -> u16 {
        self.owner
    }

    /// An unknown name does exactly what a wrong password does: the same bucket and
    /// backoff (keyed by the name's hash), a verification of the same cost (a dummy hash),
    /// the same answer; so neither the answer nor its timing reveals whether it exists.
    async fn apply(self, shard: Rc<Shard>) -> Result<Session, Refusal> {
        if let Some(link) = &shard.shared.cluster {
            if shard
                .store
                .borrow()?
                .user_by_name(&self.username)?
                .is_none()
            {
                // Not here: in a cluster the name's claim says which node has it.
                match link.username_node(&self.username).await {
                    Ok(Some(node)) if node != link.node_id => return Err(node_hop::owned_by(node)),
                    Ok(_) => {}
                    Err(error) => return Err(node_hop::unavailable(error)),
                }
            }
        }
        let account = account_key(&self.username);
        if let Err(retry_after_secs) = shard.logins.login_limiter.borrow_mut().check(account) {
            return Err(Refusal::from(ApiError::RateLimited).retry_after(retry_after_secs));
        }
        let attempt = Attempt::begin(&shard, Scope::Account, account)?;
        let checked = check_password(&shard, &self.username, self.password).await;
        attempt.end(outcome_of(&checked, Scope::Account));
        let user = checked?;
        // Removed while its password was being checked: as if it had never existed.
        session_for(&shard, user.id, self.ttl_secs)?.ok_or(ApiError::BadCredentials.into())
    }
}

/// A token for the user as it stands now: its role and token epoch from the store (read
/// after any wait, so a change made meanwhile is in it). `None` for a removed user.
pub(super) fn session_for(
    shard: &Shard,
    user_id: u64,
    ttl_secs: u64,
) -> Result<Option<Session>, Refusal> {
    let Some(state) = shard.store.borrow()?.token_state(user_id)? else {
        return Ok(None);
    };
    let keys = &shard.shared.keys;
    let (token, expires_at) =
        crate::auth::issue_token(keys, user_id, state.role, state.token_epoch, ttl_secs)
            .map_err(|e| internal("token", e))?;
    Ok(Some((token, expires_at, user_id)))
}

/// A session as the contract answers it (login, password change).
pub(super) fn session_answer((token, expires_at, user_id): Session) -> Response {
    ok(&json!({ "token": token, "expires_at": expires_at, "user_id": user_id.to_string() }))
}

/// The user called `username` if `password` is theirs (1004 otherwise, counted).
async fn check_password(shard: &Shard, username: &str, password: String) -> Result<User, Refusal> {
    let user = shard.store.borrow()?.user_by_name(username)?;
    let hash = user
        .as_ref()
        .map_or_else(crate::auth::dummy_hash, |user| user.password_hash.clone());
    let matches = password_matches(shard, hash, password).await?;
    match user {
        Some(user) if matches => Ok(user),
        _ => {
            shard.metrics().logins_failed += 1;
            Err(ApiError::BadCredentials.into())
        }
    }
}

/// Logs in on the shard that owns the name, inside the client address's backoff (checked
/// here, on the connection's shard, before any hop or hashing); a "try later" is paced.
pub async fn login(call: &Call<'_>) -> ApiResult {
    let request = Login::parse(call)?;
    let session = login_from_address(call, request).await;
    pace_refusal(call.shard, &session).await;
    Ok(session_answer(session?))
}

async fn login_from_address(call: &Call<'_>, request: Login) -> Result<Session, Refusal> {
    let attempt = Attempt::begin(call.shard, Scope::Address, address_id(call.peer))?;
    let session = run_on_owner(call.shard, request).await;
    attempt.end(outcome_of(&session, Scope::Address));
    session
}

pub async fn point(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let balance = queries::balance_of(call.shard, &caller).await?;
    Ok(Response::json(
        200,
        point_answer(balance.points, balance.reserved),
    ))
}

/// The hot path of the API, written directly: the same bytes as
/// `ok(&json!({"points": .., "reserved": ..}))` (a test below says so), in one allocation.
fn point_answer(points: i64, reserved: i64) -> Vec<u8> {
    const HEAD: &[u8] = br#"{"code":0,"msg":"ok","data":{"points":"#;
    const MIDDLE: &[u8] = br#","reserved":"#;
    const TAIL: &[u8] = b"}}";
    let (mut points_text, mut reserved_text) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (points_text, reserved_text) = (points_text.format(points), reserved_text.format(reserved));
    let mut body = Vec::with_capacity(
        HEAD.len() + points_text.len() + MIDDLE.len() + reserved_text.len() + TAIL.len(),
    );
    for part in [
        HEAD,
        points_text.as_bytes(),
        MIDDLE,
        reserved_text.as_bytes(),
        TAIL,
    ] {
        body.extend_from_slice(part);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_point_answer_is_the_envelope_s_bytes() {
        for (points, reserved) in [(0, 0), (1000, 3), (-1, 0), (i64::MAX, i64::MIN)] {
            let envelope = ok(&json!({ "points": points, "reserved": reserved }));
            assert_eq!(point_answer(points, reserved), envelope.body);
        }
    }
}
