//! The non-upload endpoints: servers, metrics, login, balance, results, reports, stats, admin.
//! Each runs its store work on the caller's owner shard (`submit_to`).

use super::api::{internal, ok, ApiError, ApiResult, Refusal};
use super::fields::{body_kind, malformed, Fields};
use super::routes::{require_role, shard_gone, Call, Caller};
use super::shard::Shard;
use crate::http::Response;
use crate::store::{ids, DayStats, Role, StoreError, UploadRecord, UploadStatus};
use serde_json::json;
use std::rc::Rc;

/// Longest username accepted (bytes).
const MAX_USERNAME_BYTES: usize = 64;
/// Shortest password accepted for new users.
const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (argon2 input is bounded to keep login cost bounded).
const MAX_PASSWORD_BYTES: usize = 256;
/// Stats days when `days` is absent.
const DEFAULT_STATS_DAYS: u64 = 7;

pub fn servers(call: &Call) -> ApiResult {
    let shared = &call.shard.shared;
    let server = json!({
        "id": shared.config.node_id.to_string(),
        "url": shared.config.public_url(),
        "shards": call.shard.shard_count,
        "accel": shared.accel_threads,
        "queue": shared.queue.depth(),
        "status": if call.shard.stop.is_stopped() { "draining" } else { "ok" },
    });
    Ok(ok(&json!({ "servers": [server] })))
}

pub fn metrics(call: &Call) -> Response {
    let queue = &call.shard.shared.queue;
    let text = call.shard.metrics.render(queue.depth(), queue.capacity());
    let mut answer = Response::plain(200, text.into_bytes());
    answer.content_type = "text/plain; version=0.0.4; charset=utf-8";
    answer
}

/// The call's fields: query plus a JSON, form or multipart body.
pub fn fields_of(call: &Call) -> Result<Fields, Refusal> {
    let mut fields = Fields::from_query(&call.head.query)?;
    let content_type = call.head.content_type.as_deref();
    fields.add_body(
        body_kind(content_type, &call.body),
        content_type,
        &call.body,
    )?;
    Ok(fields)
}

pub async fn login(call: Call<'_>) -> ApiResult {
    let fields = fields_of(&call)?;
    let username = fields.required("username")?.to_string();
    let password = fields.required("password")?.to_string();
    if username.len() > MAX_USERNAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadCredentials.into());
    }
    let owner = ids::shard_for_username(&username, call.shard.shard_count);
    let ttl_secs = call.shard.config.token_ttl_secs;
    call.shard
        .submit_to(owner, move |shard| {
            login_on_owner(shard, username, password, ttl_secs)
        })
        .await
        .map_err(|_| shard_gone())?
}

async fn login_on_owner(
    shard: Rc<Shard>,
    username: String,
    password: String,
    ttl_secs: u64,
) -> ApiResult {
    let user = shard
        .store
        .borrow()
        .user_by_name(&username)
        .map_err(|e| internal("login", e))?;
    let Some(user) = user else {
        // Same work and answer as a wrong password, so timing does not reveal usernames.
        verify_off_reactor(crate::auth::dummy_hash(), password).await;
        return Err(ApiError::BadCredentials.into());
    };
    if let Err(retry_after_secs) = shard.login_limiter.borrow_mut().check(user.id) {
        return Err(Refusal::from(ApiError::RateLimited).retry_after(retry_after_secs));
    }
    if !verify_off_reactor(user.password_hash.clone(), password).await {
        return Err(ApiError::BadCredentials.into());
    }
    let (token, expires_at) =
        crate::auth::issue_token(&shard.shared.keys, user.id, user.role, ttl_secs)
            .map_err(|e| internal("token", e))?;
    Ok(ok(
        &json!({ "token": token, "expires_at": expires_at, "user_id": user.id.to_string() }),
    ))
}

/// argon2 verification takes milliseconds of CPU: it runs on the blocking pool so the
/// reactor keeps serving meanwhile.
async fn verify_off_reactor(hash: String, password: String) -> bool {
    glommio::executor()
        .spawn_blocking(move || crate::auth::verify_password(&hash, &password))
        .await
}

pub async fn point(call: &Call<'_>, caller: Caller) -> ApiResult {
    let user_id = caller.user_id;
    let balance = call
        .shard
        .submit_to(caller.owner, move |shard| async move {
            shard.store.borrow().balance(user_id)
        })
        .await
        .map_err(|_| shard_gone())?
        .map_err(store_refusal)?;
    // The hot path of the API: formatted directly (same bytes as `ok(&json!(..))`).
    let body = format!(
        r#"{{"code":0,"msg":"ok","data":{{"points":{},"reserved":{}}}}}"#,
        balance.points, balance.reserved
    );
    Ok(Response::json(200, body.into_bytes()))
}

pub async fn result(call: &Call<'_>, caller: Caller) -> ApiResult {
    let upload_id = fields_of(call)?.id("id")?;
    let user_id = caller.user_id;
    let record = call
        .shard
        .submit_to(owner_of_upload(call, upload_id)?, move |shard| async move {
            shard.store.borrow().upload(user_id, upload_id)
        })
        .await
        .map_err(|_| shard_gone())?
        .map_err(store_refusal)?;
    let record = record.ok_or(Refusal::from(ApiError::NoSuchUpload))?;
    Ok(ok(&upload_json(&record)))
}

/// Uploads live on their user's shard; an id whose shard bits differ from the caller's
/// cannot be the caller's upload.
fn owner_of_upload(call: &Call, upload_id: u64) -> Result<u16, Refusal> {
    let shard = ids::shard_of(upload_id);
    if shard >= call.shard.shard_count {
        return Err(ApiError::NoSuchUpload.into());
    }
    Ok(shard)
}

pub async fn report(call: &Call<'_>, caller: Caller) -> ApiResult {
    let upload_id = fields_of(call)?.id("id")?;
    if owner_of_upload(call, upload_id)? != caller.owner {
        return Err(ApiError::NoSuchUpload.into());
    }
    let user_id = caller.user_id;
    let window_ms = call.shard.config.report_window_secs * 1000;
    let (record, balance) = call
        .shard
        .submit_to(caller.owner, move |shard| async move {
            let reported =
                shard
                    .store
                    .borrow_mut()
                    .report(user_id, upload_id, Shard::now_ms(), window_ms)?;
            shard.commit.durable().await.map_err(StoreError::Io)?;
            Ok::<_, StoreError>(reported)
        })
        .await
        .map_err(|_| shard_gone())?
        .map_err(store_refusal)?;
    Ok(ok(
        &json!({ "refunded": record.cost, "points": balance.points }),
    ))
}

pub async fn user_stats(call: &Call<'_>, caller: Caller) -> ApiResult {
    let days = stats_days(call)?;
    let user_id = caller.user_id;
    let rows = call
        .shard
        .submit_to(caller.owner, move |shard| async move {
            shard
                .store
                .borrow()
                .user_stats(user_id, days, Shard::now_ms())
        })
        .await
        .map_err(|_| shard_gone())?
        .map_err(store_refusal)?;
    Ok(ok(
        &json!({ "days": rows.iter().map(day_json).collect::<Vec<_>>() }),
    ))
}

/// A developer's `soft_id` is their own user id (decimal); an admin may name any with
/// `?soft_id=`. Uploads of one soft_id come from users on every shard: each shard counts its
/// part and the parts are summed here.
pub async fn developer_stats(call: &Call<'_>, caller: Caller) -> ApiResult {
    require_role(&caller, &[Role::Developer, Role::Admin])?;
    let days = stats_days(call)?;
    let fields = fields_of(call)?;
    let soft_id = match (caller.role, fields.text("soft_id")) {
        (Role::Admin, Some(soft_id)) if !soft_id.is_empty() => soft_id.to_string(),
        _ => caller.user_id.to_string(),
    };
    let mut total: Vec<DayStats> = Vec::new();
    for shard in 0..call.shard.shard_count {
        let soft_id = soft_id.clone();
        let rows = call
            .shard
            .submit_to(shard, move |shard| async move {
                shard
                    .store
                    .borrow()
                    .soft_stats(&soft_id, days, Shard::now_ms())
            })
            .await
            .map_err(|_| shard_gone())?
            .map_err(store_refusal)?;
        add_days(&mut total, rows);
    }
    Ok(ok(
        &json!({ "soft_id": soft_id, "days": total.iter().map(day_json).collect::<Vec<_>>() }),
    ))
}

fn stats_days(call: &Call) -> Result<u32, Refusal> {
    let days = fields_of(call)?
        .number("days")?
        .unwrap_or(DEFAULT_STATS_DAYS);
    let retention = u64::from(call.shard.config.retention_days).max(1);
    if days == 0 || days > retention {
        return Err(malformed(format!("days must be 1..={retention}")));
    }
    Ok(days as u32)
}

fn add_days(total: &mut Vec<DayStats>, rows: Vec<DayStats>) {
    for row in rows {
        match total.iter_mut().find(|existing| existing.day == row.day) {
            Some(existing) => {
                existing.uploads += row.uploads;
                existing.done += row.done;
                existing.failed += row.failed;
                existing.reported += row.reported;
                existing.points_spent += row.points_spent;
                existing.cache_hits += row.cache_hits;
            }
            None => total.push(row),
        }
    }
    total.sort_by(|a, b| a.day.cmp(&b.day));
}

pub async fn admin_create_user(call: &Call<'_>, caller: Caller) -> ApiResult {
    require_role(&caller, &[Role::Admin])?;
    let fields = fields_of(call)?;
    let username = valid_username(fields.required("username")?)?;
    let password = fields.required("password")?.to_string();
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(malformed(format!(
            "password must be {MIN_PASSWORD_CHARS}..={MAX_PASSWORD_BYTES} characters"
        )));
    }
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
        .filter(|p| *p >= 0);
    let points = points.ok_or_else(|| malformed("points must be a non-negative integer"))?;
    let hash = glommio::executor()
        .spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(|e| internal("hash_password", e))?;
    let owner = ids::shard_for_username(&username, call.shard.shard_count);
    let user_id = call
        .shard
        .submit_to(owner, move |shard| async move {
            let user_id = shard
                .store
                .borrow_mut()
                .create_user(&username, &hash, role, points)?;
            shard.commit.durable().await.map_err(StoreError::Io)?;
            Ok::<_, StoreError>(user_id)
        })
        .await
        .map_err(|_| shard_gone())?
        .map_err(store_refusal)?;
    Ok(ok(&json!({ "user_id": user_id.to_string() })))
}

fn valid_username(name: &str) -> Result<String, Refusal> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-@".contains(c);
    if name.len() > MAX_USERNAME_BYTES || !name.chars().all(allowed) {
        return Err(malformed(format!(
            "username must be 1..={MAX_USERNAME_BYTES} of A-Z a-z 0-9 . _ - @"
        )));
    }
    Ok(name.to_string())
}

pub async fn admin_points(call: &Call<'_>, caller: Caller) -> ApiResult {
    require_role(&caller, &[Role::Admin])?;
    let fields = fields_of(call)?;
    let delta = fields
        .required("points")?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|delta| *delta != 0);
    let delta = delta.ok_or_else(|| malformed("points must be a non-zero integer"))?;
    let reason = fields.required("reason")?.to_string();
    let user_id = match fields.text("user_id") {
        Some(_) => fields.id("user_id")?,
        None => user_id_by_name(call, fields.required("username")?).await?,
    };
    let owner = ids::shard_of(user_id);
    if owner >= call.shard.shard_count {
        return Err(malformed("no such user"));
    }
    let balance = call
        .shard
        .submit_to(owner, move |shard| async move {
            if shard.store.borrow().user(user_id)?.is_none() {
                return Err(StoreError::UserNotFound);
            }
            let balance = shard
                .store
                .borrow_mut()
                .adjust_points(user_id, delta, &reason)?;
            shard.commit.durable().await.map_err(StoreError::Io)?;
            Ok(balance)
        })
        .await
        .map_err(|_| shard_gone())?
        .map_err(store_refusal)?;
    Ok(ok(
        &json!({ "user_id": user_id.to_string(), "points": balance.points, "reserved": balance.reserved }),
    ))
}

async fn user_id_by_name(call: &Call<'_>, username: &str) -> Result<u64, Refusal> {
    let owner = ids::shard_for_username(username, call.shard.shard_count);
    let username = username.to_string();
    let user = call
        .shard
        .submit_to(owner, move |shard| async move {
            shard.store.borrow().user_by_name(&username)
        })
        .await
        .map_err(|_| shard_gone())?
        .map_err(store_refusal)?;
    user.map(|user| user.id)
        .ok_or_else(|| malformed("no such user"))
}

/// The contract's view of one upload.
pub fn upload_json(record: &UploadRecord) -> serde_json::Value {
    let mut data = json!({
        "id": record.id.to_string(),
        "status": status_name(record.status),
        "cost": record.cost,
        "created_at": record.created_at_ms,
    });
    if let Some(result) = &record.result {
        data["result"] = json!(result);
    }
    if let Some(confidence) = record.confidence.filter(|c| c.is_finite()) {
        data["confidence"] = json!(confidence);
    }
    if let Some(error) = &record.error {
        data["error"] = json!(error);
    }
    if let Some(finished_at) = record.finished_at_ms {
        data["finished_at"] = json!(finished_at);
    }
    if record.reported {
        data["reported"] = json!(true);
    }
    data
}

pub fn status_name(status: UploadStatus) -> &'static str {
    match status {
        UploadStatus::Pending => "pending",
        UploadStatus::Done => "done",
        UploadStatus::Failed => "failed",
    }
}

fn day_json(row: &DayStats) -> serde_json::Value {
    json!({
        "day": row.day,
        "uploads": row.uploads,
        "done": row.done,
        "failed": row.failed,
        "reported": row.reported,
        "points_spent": row.points_spent,
        "cache_hits": row.cache_hits,
    })
}

/// Store errors as contract answers.
pub fn store_refusal(error: StoreError) -> Refusal {
    match error {
        StoreError::InsufficientPoints => ApiError::NoPoints.into(),
        StoreError::NotFound => ApiError::NoSuchUpload.into(),
        StoreError::NotReportable => ApiError::NotReportable.into(),
        StoreError::WindowClosed => ApiError::WindowClosed.into(),
        StoreError::UserExists => malformed("username already exists"),
        StoreError::UserNotFound => malformed("no such user"),
        other => internal("store", other),
    }
}
