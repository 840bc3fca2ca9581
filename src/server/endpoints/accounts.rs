//! Operators over HTTP, beside creating users and granting points (admin.rs):
//! `GET /v2/admin/users?q=<prefix>&after=<username>&limit=N` finds users by the start of
//! their name, a page at a time, `POST /v2/admin/users/role` changes a user's role and
//! `POST /v2/admin/users/remove` removes a user. Admin role only.
//!
//! Users are sharded by name: every shard answers for its own users, sorted by name, and the
//! pages are merged here. A role change or a removal is seen at once on every shard: the
//! user's tokens are ended (a new token epoch) and every shard forgets the user's state, so
//! the user's API key has the new role, or stops working, with the next request.

use super::apikey::forget_everywhere;
use crate::contract::ApiError;
use crate::server::call::{Call, Caller};
use crate::server::fields::Fields;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::queries::user_id_by_name;
use crate::server::reply::{malformed, ok, ApiResult, Refusal};
use crate::server::sessions::publish_change;
use crate::server::shard::Shard;
use crate::store::{ids, Role, UserSummary, MAX_USERNAME_BYTES, MAX_USERS_PAGE};
use serde_json::json;
use std::rc::Rc;

/// Users per page when `limit` is absent.
const DEFAULT_LIMIT: usize = 20;

/// One shard's part of a page.
#[derive(Clone)]
struct FindUsers {
    shard: u16,
    prefix: String,
    after: Option<String>,
    limit: usize,
}

impl FindUsers {
    async fn parse(call: &Call<'_>) -> Result<FindUsers, Refusal> {
        call.caller_with_role(&[Role::Admin]).await?;
        let fields = call.fields()?;
        let prefix = fields.text("q").unwrap_or("").to_string();
        let after = fields.text("after").filter(|after| !after.is_empty());
        if prefix.len() > MAX_USERNAME_BYTES || after.is_some_and(|a| a.len() > MAX_USERNAME_BYTES)
        {
            return Err(malformed(format!(
                "q and after are at most {MAX_USERNAME_BYTES} bytes"
            )));
        }
        let limit = fields.number("limit")?.unwrap_or(DEFAULT_LIMIT as u64);
        if limit == 0 || limit > MAX_USERS_PAGE as u64 {
            return Err(malformed(format!("limit must be 1..={MAX_USERS_PAGE}")));
        }
        Ok(FindUsers {
            shard: 0,
            prefix,
            after: after.map(str::to_string),
            limit: limit as usize,
        })
    }
}

impl OwnerCommand for FindUsers {
    type Output = Vec<UserSummary>;

    fn owner(&self) -> u16 {
        self.shard
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Vec<UserSummary>, Refusal> {
        let after = self.after.as_deref();
        Ok(shard
            .store
            .borrow()?
            .find_users(&self.prefix, after, self.limit)?)
    }
}

pub async fn find(call: &Call<'_>) -> ApiResult {
    let request = FindUsers::parse(call).await?;
    let limit = request.limit;
    let mut found = Vec::new();
    for shard in 0..call.shard.shard_count() {
        let part = FindUsers {
            shard,
            ..request.clone()
        };
        found.extend(run_on_owner(call.shard, part).await?);
    }
    // Each shard gave its first `limit` names after `after`: the first `limit` of them all
    // are the page.
    found.sort_unstable_by(|a, b| a.username.cmp(&b.username));
    found.truncate(limit);
    let users: Vec<serde_json::Value> = found.iter().map(user_json).collect();
    let mut data = json!({ "users": users });
    if let (true, Some(last)) = (found.len() == limit, found.last()) {
        data["next_after"] = json!(last.username);
    }
    Ok(ok(&data))
}

fn user_json(user: &UserSummary) -> serde_json::Value {
    json!({
        "user_id": user.id.to_string(),
        "username": user.username,
        "role": user.role.name(),
        "created_at": user.created_at_ms,
        "points": user.balance.points,
        "reserved": user.balance.reserved,
        "has_key": user.has_key,
    })
}

/// `POST /v2/admin/users/role`: runs on the user's shard; the new role ends the user's
/// tokens (they carry the role they were issued with) and every shard forgets the user's
/// state, so its API key has the new role at once.
struct SetRole {
    user_id: u64,
    role: Role,
}

impl OwnerCommand for SetRole {
    type Output = ();

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<(), Refusal> {
        shard
            .store
            .borrow_mut()?
            .set_role(self.user_id, self.role)?;
        publish_change(&shard, self.user_id).await
    }
}

/// The user an admin names by `user_id` or `username` (1001 "no such user" when there is
/// none), who must not be the admin (1005: an admin cannot demote or remove themselves, so
/// the last admin cannot lock everyone out by accident; and ends their own tokens with
/// `/v2/user/logout`, so that the admin endpoints always act on someone else).
pub(super) async fn other_user(
    call: &Call<'_>,
    admin: &Caller,
    fields: &Fields,
) -> Result<u64, Refusal> {
    let user_id = match fields.text("user_id") {
        Some(_) => fields.id("user_id")?,
        None => user_id_by_name(call.shard, fields.required("username")?).await?,
    };
    if ids::shard_of(user_id) >= call.shard.shard_count() {
        return Err(malformed("no such user"));
    }
    if user_id == admin.user_id {
        return Err(Refusal::new(
            ApiError::Forbidden,
            "not on oneself: an admin's own role, removal and tokens are for another admin \
             (or /v2/user/logout)",
        ));
    }
    Ok(user_id)
}

pub async fn set_role(call: &Call<'_>) -> ApiResult {
    let admin = call.caller_with_role(&[Role::Admin]).await?;
    let fields = call.fields()?;
    let role = Role::parse(fields.required("role")?)
        .ok_or_else(|| malformed("role must be user, developer or admin"))?;
    let user_id = other_user(call, &admin, &fields).await?;
    run_on_owner(call.shard, SetRole { user_id, role }).await?;
    Ok(ok(
        &json!({ "user_id": user_id.to_string(), "role": role.name() }),
    ))
}

/// `POST /v2/admin/users/remove`: on the user's shard (store/sessions.rs says what removal
/// keeps); then every shard forgets the user's state and its API key.
struct RemoveUser {
    user_id: u64,
}

impl OwnerCommand for RemoveUser {
    type Output = Option<[u8; 32]>;

    fn owner(&self) -> u16 {
        ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Option<[u8; 32]>, Refusal> {
        let now_ms = crate::clock::unix_now_ms();
        let key = shard
            .store
            .borrow_mut()?
            .remove_user(self.user_id, now_ms)?;
        publish_change(&shard, self.user_id).await?;
        Ok(key)
    }
}

pub async fn remove(call: &Call<'_>) -> ApiResult {
    let admin = call.caller_with_role(&[Role::Admin]).await?;
    let fields = call.fields()?;
    let user_id = other_user(call, &admin, &fields).await?;
    if let Some(key) = run_on_owner(call.shard, RemoveUser { user_id }).await? {
        // Refused already (its user is gone everywhere); this frees the shards' memos.
        forget_everywhere(call.shard, key).await;
    }
    Ok(ok(
        &json!({ "user_id": user_id.to_string(), "removed": true }),
    ))
}
