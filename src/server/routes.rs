//! Routing: path to handler, method check (405 with `Allow`), authentication, and the owner
//! shard of the caller.

use super::api::{ApiError, ApiResult, Refusal};
use super::shard::Shard;
use super::{account, upload};
use crate::http::{Method, RequestHead, Response};
use crate::metrics::Route;
use crate::store::{ids, Role};
use std::rc::Rc;

/// One request as handlers see it.
pub struct Call<'a> {
    pub shard: &'a Rc<Shard>,
    pub head: &'a RequestHead,
    pub body: Vec<u8>,
}

/// The authenticated caller.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub user_id: u64,
    pub role: Role,
    /// The shard that owns the caller's data.
    pub owner: u16,
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `listen`: the whole API, and `/metrics` unless `metrics_listen` moved it away.
    Api,
    /// `metrics_listen`: `/metrics` and `/health` only.
    Monitoring,
}

impl Surface {
    fn serves(self, route: Route, metrics_elsewhere: bool) -> bool {
        match self {
            Surface::Api => !(route == Route::Metrics && metrics_elsewhere),
            Surface::Monitoring => matches!(route, Route::Metrics | Route::Health),
        }
    }
}

/// Which methods a route takes (HEAD is implied by GET).
fn resolve(path: &str) -> Option<(Route, Method)> {
    let route = match path {
        "/v2/servers" => (Route::Servers, Method::Get),
        "/v2/user/login" => (Route::Login, Method::Post),
        "/v2/user/point" => (Route::Point, Method::Get),
        "/v2/decode/upload-base64" => (Route::UploadBase64, Method::Post),
        "/v2/decode/upload" => (Route::Upload, Method::Post),
        "/v2/result" => (Route::Result, Method::Get),
        "/v2/report" => (Route::Report, Method::Post),
        "/v2/user/stats" => (Route::UserStats, Method::Get),
        "/v2/developer/stats" => (Route::DeveloperStats, Method::Get),
        "/v2/admin/users" => (Route::AdminUsers, Method::Post),
        "/v2/admin/points" => (Route::AdminPoints, Method::Post),
        "/health" => (Route::Health, Method::Get),
        "/metrics" => (Route::Metrics, Method::Get),
        _ => return None,
    };
    Some(route)
}

pub async fn handle(
    shard: &Rc<Shard>,
    surface: Surface,
    head: &RequestHead,
    body: Vec<u8>,
) -> (Route, Response) {
    let metrics_elsewhere = !shard.config.metrics_listen.is_empty();
    let resolved =
        resolve(&head.path).filter(|(route, _)| surface.serves(*route, metrics_elsewhere));
    let Some((route, method)) = resolved else {
        return (
            Route::Unknown,
            Refusal::from(ApiError::NoRoute).into_response(),
        );
    };
    let method_ok = head.method == method || (method == Method::Get && head.method == Method::Head);
    if !method_ok {
        let allow = if method == Method::Get {
            "GET, HEAD"
        } else {
            "POST"
        };
        let refusal = Refusal::new(ApiError::NoRoute, "method not allowed");
        let mut answer = refusal
            .into_response()
            .with_header("Allow", allow.to_string());
        answer.status = 405;
        return (route, answer);
    }
    let call = Call { shard, head, body };
    let result = dispatch(route, call).await;
    (route, result.unwrap_or_else(Refusal::into_response))
}

async fn dispatch(route: Route, call: Call<'_>) -> ApiResult {
    match route {
        Route::Servers => account::servers(&call),
        Route::Health => Ok(super::api::ok(&serde_json::json!({"status": "ok"}))),
        Route::Metrics => Ok(account::metrics(&call)),
        Route::Login => account::login(call).await,
        Route::Point => account::point(&call, authenticate(&call)?).await,
        Route::UploadBase64 | Route::Upload => {
            let caller = authenticate(&call)?;
            upload::upload(call, caller, route == Route::UploadBase64).await
        }
        Route::Result => account::result(&call, authenticate(&call)?).await,
        Route::Report => account::report(&call, authenticate(&call)?).await,
        Route::UserStats => account::user_stats(&call, authenticate(&call)?).await,
        Route::DeveloperStats => account::developer_stats(&call, authenticate(&call)?).await,
        Route::AdminUsers => account::admin_create_user(&call, authenticate(&call)?).await,
        Route::AdminPoints => account::admin_points(&call, authenticate(&call)?).await,
        Route::Unknown => Err(ApiError::NoRoute.into()),
    }
}

/// The JWT from `Authorization: Bearer` or `?token=`, verified (1002 absent, 1003 invalid).
pub fn authenticate(call: &Call) -> Result<Caller, Refusal> {
    let token = bearer_token(call.head)?;
    let claims = call
        .shard
        .token_cache
        .borrow_mut()
        .verify(&call.shard.shared.keys, &token)
        .map_err(|_| Refusal::from(ApiError::BadToken))?;
    let user_id: u64 = claims
        .sub
        .parse()
        .map_err(|_| Refusal::from(ApiError::BadToken))?;
    let owner = ids::shard_of(user_id);
    if owner >= call.shard.shard_count {
        // Signed by us but for another shard layout: not a token of this deployment.
        return Err(ApiError::BadToken.into());
    }
    Ok(Caller {
        user_id,
        role: claims.role,
        owner,
    })
}

fn bearer_token(head: &RequestHead) -> Result<std::borrow::Cow<'_, str>, Refusal> {
    if let Some(value) = &head.authorization {
        let (scheme, token) = value.split_once(' ').unwrap_or((value.as_str(), ""));
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(ApiError::BadToken.into());
        }
        return Ok(std::borrow::Cow::Borrowed(token));
    }
    let query = crate::http::form::parse_urlencoded(head.query.as_bytes()).unwrap_or_default();
    match query.into_iter().find(|(key, _)| key == "token") {
        Some((_, token)) if !token.is_empty() => Ok(std::borrow::Cow::Owned(token)),
        _ => Err(ApiError::NoToken.into()),
    }
}

/// 1005 unless the caller has one of `roles`.
pub fn require_role(caller: &Caller, roles: &[Role]) -> Result<(), Refusal> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden.into())
    }
}

/// The answer when a forwarded call's shard has stopped (the server is shutting down).
pub fn shard_gone() -> Refusal {
    Refusal::new(ApiError::Busy, "shutting down").retry_after(1)
}
