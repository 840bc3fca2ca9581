//! Operators over HTTP: `POST /v2/admin/users` (create a user) and `POST /v2/admin/points`
//! (add or remove points with a reason). Admin role only. Points amounts are within
//! +-`MAX_POINTS` here, and the store refuses a grant that would raise a balance past it.

use crate::cluster::Claim;
use crate::money::MAX_POINTS;
use crate::server::attempts::hash_new_password;
use crate::server::call::Call;
use crate::server::node_hop;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::queries::user_id_by_name;
use crate::server::reply::{malformed, ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::store::{ids, Balance, Role, StoreError};
use serde_json::json;
use std::rc::Rc;

/// `POST /v2/admin/users`: the password is hashed on the password hash threads (off every
/// reactor and off the fsync's blocking pool), the user created on the shard its name maps
/// to.
struct CreateUser {
    username: String,
    password_hash: String,
    role: Role,
    points: i64,
    owner: u16,
}

impl CreateUser {
    async fn parse(call: &Call<'_>) -> Result<CreateUser, Refusal> {
        call.caller_with_role(&[Role::Admin]).await?;
        let fields = call.fields()?;
        let username = fields.required("username")?.to_string();
        crate::store::check_username(&username).map_err(malformed)?;
        let password = fields.required("password")?.to_string();
        crate::auth::check_new_password(&password).map_err(malformed)?;
        let role = match fields.text("role").unwrap_or("user") {
            "user" => Role::User,
            "developer" => Role::Developer,
            "admin" => Role::Admin,
            _ => return Err(malformed("role must be user, developer or admin")),
        };
        let points = fields
            .text("points")
            .unwrap_or("0")
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|points| (0..=MAX_POINTS).contains(points))
            .ok_or_else(|| malformed(format!("points must be an integer 0..={MAX_POINTS}")))?;
        let password_hash = hash_new_password(call.shard, password).await?;
        Ok(CreateUser {
            owner: ids::shard_for_username(&username, call.shard.shard_count()),
            username,
            password_hash,
            role,
            points,
        })
    }
}

impl OwnerCommand for CreateUser {
    type Output = u64;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<u64, Refusal> {
        let user_id = shard.store.borrow_mut()?.create_user(
            &self.username,
            &self.password_hash,
            self.role,
            self.points,
            crate::clock::unix_now_ms(),
        )?;
        shard.commit.durable().await.map_err(StoreError::Io)?;
        Ok(user_id)
    }
}

pub async fn create_user(call: &Call<'_>) -> ApiResult {
    let create = CreateUser::parse(call).await?;
    if let Some(link) = &call.shard.shared.cluster {
        // Unique across the platform: claimed for this node before it exists here.
        match link.claim_username(&create.username).await {
            Ok(Claim::Granted) => {}
            Ok(Claim::Taken(_)) => return Err(StoreError::UserExists.into()),
            Err(error) => return Err(node_hop::unavailable(error)),
        }
    }
    let user_id = run_on_owner(call.shard, create).await?;
    Ok(ok(&json!({ "user_id": user_id.to_string() })))
}

/// `POST /v2/admin/points`: the user by `user_id`, or by `username` (one more hop to find
/// the id).
struct AdjustPoints {
    user_id: u64,
    delta: i64,
    reason: String,
}

impl AdjustPoints {
    async fn parse(call: &Call<'_>) -> Result<AdjustPoints, Refusal> {
        call.caller_with_role(&[Role::Admin]).await?;
        let fields = call.fields()?;
        let delta = fields
            .required("points")?
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|delta| *delta != 0 && delta.abs() <= MAX_POINTS)
            .ok_or_else(|| {
                malformed(format!(
                    "points must be a non-zero integer -{MAX_POINTS}..={MAX_POINTS}"
                ))
            })?;
        let reason = fields.required("reason")?.to_string();
        let user_id = match fields.text("user_id") {
            Some(_) => fields.id("user_id")?,
            None => user_id_by_name(call.shard, fields.required("username")?).await?,
        };
        if ids::shard_of(user_id) >= call.shard.shard_count() {
            return Err(malformed("no such user"));
        }
        Ok(AdjustPoints {
            user_id,
            delta,
            reason,
        })
    }
}

impl OwnerCommand for AdjustPoints {
    type Output = Balance;

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Balance, Refusal> {
        if shard.store.borrow()?.user(self.user_id)?.is_none() {
            return Err(StoreError::UserNotFound.into());
        }
        let now_ms = crate::clock::unix_now_ms();
        let balance = shard.store.borrow_mut()?.adjust_points(
            self.user_id,
            self.delta,
            &self.reason,
            now_ms,
        )?;
        shard.commit.durable().await.map_err(StoreError::Io)?;
        Ok(balance)
    }
}

pub async fn points(call: &Call<'_>) -> ApiResult {
    let request = AdjustPoints::parse(call).await?;
    let user_id = request.user_id;
    let balance = run_on_owner(call.shard, request).await?;
    Ok(ok(
        &json!({ "user_id": user_id.to_string(), "points": balance.points, "reserved": balance.reserved }),
    ))
}
