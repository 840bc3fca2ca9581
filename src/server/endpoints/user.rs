//! The caller's account: `POST /v2/user/login` (username and password for a token) and
//! `GET /v2/user/point` (the balance).

use crate::auth::MAX_PASSWORD_BYTES;
use crate::contract::ApiError;
use crate::http::Response;
use crate::server::call::{Call, Caller};
use crate::server::node_hop;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{internal, ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::store::{ids, Balance, MAX_USERNAME_BYTES};
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
            ttl_secs: call.shard.config().token_ttl_secs,
            username,
            password,
        })
    }
}

/// The token and its expiry (Unix seconds), and the user id.
type Session = (String, u64, u64);

impl OwnerCommand for Login {
    type Output = Session;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Session, Refusal> {
        let user = shard.store.borrow().user_by_name(&self.username)?;
        if let (None, Some(link)) = (&user, &shard.shared.cluster) {
            // Not here: in a cluster the name's claim says which node has it.
            match link.username_node(&self.username).await {
                Ok(Some(node)) if node != link.node_id => return Err(node_hop::owned_by(node)),
                Ok(_) => {}
                Err(error) => return Err(node_hop::unavailable(error)),
            }
        }
        let Some(user) = user else {
            // Same work and answer as a wrong password, so timing does not reveal names.
            verify_off_reactor(crate::auth::dummy_hash(), self.password).await;
            return Err(ApiError::BadCredentials.into());
        };
        if let Err(retry_after_secs) = shard.login_limiter.borrow_mut().check(user.id) {
            return Err(Refusal::from(ApiError::RateLimited).retry_after(retry_after_secs));
        }
        if !verify_off_reactor(user.password_hash.clone(), self.password).await {
            return Err(ApiError::BadCredentials.into());
        }
        let keys = &shard.shared.keys;
        let (token, expires_at) = crate::auth::issue_token(keys, user.id, user.role, self.ttl_secs)
            .map_err(|e| internal("token", e))?;
        Ok((token, expires_at, user.id))
    }
}

pub async fn login(call: &Call<'_>) -> ApiResult {
    let (token, expires_at, user_id) = run_on_owner(call.shard, Login::parse(call)?).await?;
    Ok(ok(
        &json!({ "token": token, "expires_at": expires_at, "user_id": user_id.to_string() }),
    ))
}

/// argon2 verification takes milliseconds of CPU: it runs on the blocking pool so the
/// reactor keeps serving meanwhile.
async fn verify_off_reactor(hash: String, password: String) -> bool {
    glommio::executor()
        .spawn_blocking(move || crate::auth::verify_password(&hash, &password))
        .await
}

/// `GET /v2/user/point`.
struct Point {
    user_id: u64,
    owner: u16,
}

impl OwnerCommand for Point {
    type Output = Balance;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Balance, Refusal> {
        Ok(shard.store.borrow().balance(self.user_id)?)
    }
}

/// The caller's balance (read on its owner shard).
pub async fn balance_of(shard: &Rc<Shard>, caller: &Caller) -> Result<Balance, Refusal> {
    let request = Point {
        user_id: caller.user_id,
        owner: caller.owner,
    };
    run_on_owner(shard, request).await
}

pub async fn point(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let balance = balance_of(call.shard, &caller).await?;
    // The hot path of the API: formatted directly (same bytes as `ok(&json!(..))`).
    let body = format!(
        r#"{{"code":0,"msg":"ok","data":{{"points":{},"reserved":{}}}}}"#,
        balance.points, balance.reserved
    );
    Ok(Response::json(200, body.into_bytes()))
}
