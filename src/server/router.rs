//! The route table: path and method to an endpoint, which listener serves it, and the label
//! its metrics carry. A new endpoint family adds its routes here and its handlers in a file
//! of its own (`endpoints/`, `upload/`).

use super::call::{Authentication, Call, Caller};
use super::compat::{fastapi, tasks, twocaptcha};
use super::console::{self, CONSOLE_PATH};
use super::endpoints::{
    accounts, admin, apikey, cached, mcp, models, node, results, server_state, stats, tokens,
    uploads, user,
};
use super::reply::{ApiResult, Refusal};
use super::shard::Shard;
use super::upload::{self, Encoding};
use crate::contract::ApiError;
use crate::http::{Framing, Method, RequestHead, Response};
use crate::recognition::Kind;
use std::rc::Rc;

/// A route's key: its index in [`TABLE`] (and in the metrics' per-route arrays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Servers,
    Login,
    Point,
    UploadBase64,
    Upload,
    Detect,
    Slide,
    /// Click-in-order captchas (upload/click.rs).
    Click,
    Cached,
    Result,
    Report,
    UserStats,
    DeveloperStats,
    AdminUsers,
    AdminPoints,
    ApiKeyStatus,
    ApiKeyCreate,
    ApiKeyRevoke,
    AdminApiKeyRevoke,
    UserUploads,
    AdminFindUsers,
    AdminUserRole,
    AdminServer,
    Logout,
    ChangePassword,
    AdminTokensRevoke,
    AdminUserRemove,
    ModelAdd,
    ModelList,
    ModelRemove,
    OpenApi,
    /// `/console/` and every file under it; `/console` and `/` redirect there.
    Console,
    TwoCaptchaIn,
    TwoCaptchaRes,
    TwoCaptchaResPost,
    CreateTask,
    GetTaskResult,
    GetBalance,
    ReportIncorrect,
    ReportIncorrectImageCaptcha,
    ReportCorrect,
    FastapiOcr,
    FastapiDetection,
    FastapiSlideMatch,
    Health,
    Metrics,
    /// `POST /mcp`: one MCP message (endpoints/mcp.rs).
    Mcp,
    /// `DELETE /mcp`: ends an MCP session.
    McpEnd,
    /// No route matched (404); counted like the others.
    Unknown,
}

struct RouteSpec {
    route: Route,
    path: &'static str,
    /// HEAD is implied by GET.
    method: Method,
    /// The `route` label of its metrics.
    label: &'static str,
}

pub const ROUTE_COUNT: usize = 49;

/// Every route, in the order of [`Route`].
const TABLE: [RouteSpec; ROUTE_COUNT] = [
    spec(Route::Servers, "/v2/servers", Method::Get, "servers"),
    spec(Route::Login, "/v2/user/login", Method::Post, "login"),
    spec(Route::Point, "/v2/user/point", Method::Get, "point"),
    spec(
        Route::UploadBase64,
        "/v2/decode/upload-base64",
        Method::Post,
        "upload_base64",
    ),
    spec(Route::Upload, "/v2/decode/upload", Method::Post, "upload"),
    spec(Route::Detect, "/v2/decode/detect", Method::Post, "detect"),
    spec(Route::Slide, "/v2/decode/slide", Method::Post, "slide"),
    spec(Route::Click, "/v2/decode/click", Method::Post, "click"),
    // Answers by image hash (endpoints/cached.rs, server/cache.rs).
    spec(Route::Cached, "/v2/decode/cached", Method::Post, "cached"),
    spec(Route::Result, "/v2/result", Method::Get, "result"),
    spec(Route::Report, "/v2/report", Method::Post, "report"),
    spec(
        Route::UserStats,
        "/v2/user/stats",
        Method::Get,
        "user_stats",
    ),
    spec(
        Route::DeveloperStats,
        "/v2/developer/stats",
        Method::Get,
        "developer_stats",
    ),
    spec(
        Route::AdminUsers,
        "/v2/admin/users",
        Method::Post,
        "admin_users",
    ),
    spec(
        Route::AdminPoints,
        "/v2/admin/points",
        Method::Post,
        "admin_points",
    ),
    spec(
        Route::ApiKeyStatus,
        "/v2/user/apikey",
        Method::Get,
        "apikey",
    ),
    // The same path answers GET (status) and POST (create): see `resolve`.
    spec(
        Route::ApiKeyCreate,
        "/v2/user/apikey",
        Method::Post,
        "apikey_create",
    ),
    spec(
        Route::ApiKeyRevoke,
        "/v2/user/apikey/revoke",
        Method::Post,
        "apikey_revoke",
    ),
    spec(
        Route::AdminApiKeyRevoke,
        "/v2/admin/apikey/revoke",
        Method::Post,
        "admin_apikey_revoke",
    ),
    spec(
        Route::UserUploads,
        "/v2/user/uploads",
        Method::Get,
        "user_uploads",
    ),
    // GET finds users, POST creates one.
    spec(
        Route::AdminFindUsers,
        "/v2/admin/users",
        Method::Get,
        "admin_users_find",
    ),
    spec(
        Route::AdminUserRole,
        "/v2/admin/users/role",
        Method::Post,
        "admin_user_role",
    ),
    spec(
        Route::AdminServer,
        "/v2/admin/server",
        Method::Get,
        "admin_server",
    ),
    // Ending tokens and removing users (endpoints/tokens.rs, endpoints/accounts.rs).
    spec(Route::Logout, "/v2/user/logout", Method::Post, "logout"),
    spec(
        Route::ChangePassword,
        "/v2/user/password",
        Method::Post,
        "password",
    ),
    spec(
        Route::AdminTokensRevoke,
        "/v2/admin/tokens/revoke",
        Method::Post,
        "admin_tokens_revoke",
    ),
    spec(
        Route::AdminUserRemove,
        "/v2/admin/users/remove",
        Method::Post,
        "admin_user_remove",
    ),
    // Models users bring (endpoints/models.rs).
    spec(Route::ModelAdd, "/v2/models", Method::Post, "model_add"),
    spec(Route::ModelList, "/v2/models", Method::Get, "model_list"),
    spec(
        Route::ModelRemove,
        "/v2/models/remove",
        Method::Post,
        "model_remove",
    ),
    // The API description and the web console (server/console.rs).
    spec(Route::OpenApi, "/openapi.json", Method::Get, "openapi"),
    spec(Route::Console, CONSOLE_PATH, Method::Get, "console"),
    // The protocols other clients speak (server/compat/).
    spec(Route::TwoCaptchaIn, "/in.php", Method::Post, "2captcha_in"),
    spec(
        Route::TwoCaptchaRes,
        "/res.php",
        Method::Get,
        "2captcha_res",
    ),
    spec(
        Route::TwoCaptchaResPost,
        "/res.php",
        Method::Post,
        "2captcha_res_post",
    ),
    spec(
        Route::CreateTask,
        "/createTask",
        Method::Post,
        "create_task",
    ),
    spec(
        Route::GetTaskResult,
        "/getTaskResult",
        Method::Post,
        "get_task_result",
    ),
    spec(
        Route::GetBalance,
        "/getBalance",
        Method::Post,
        "get_balance",
    ),
    spec(
        Route::ReportIncorrect,
        "/reportIncorrect",
        Method::Post,
        "report_incorrect",
    ),
    spec(
        Route::ReportIncorrectImageCaptcha,
        "/reportIncorrectImageCaptcha",
        Method::Post,
        "report_incorrect_image",
    ),
    spec(
        Route::ReportCorrect,
        "/reportCorrect",
        Method::Post,
        "report_correct",
    ),
    spec(Route::FastapiOcr, "/ocr", Method::Post, "fastapi_ocr"),
    spec(
        Route::FastapiDetection,
        "/detection",
        Method::Post,
        "fastapi_detection",
    ),
    spec(
        Route::FastapiSlideMatch,
        "/slide_match",
        Method::Post,
        "fastapi_slide_match",
    ),
    spec(Route::Health, "/health", Method::Get, "health"),
    spec(Route::Metrics, "/metrics", Method::Get, "metrics"),
    // The MCP endpoint (endpoints/mcp.rs); GET is 405 (no server-to-client stream).
    spec(Route::Mcp, "/mcp", Method::Post, "mcp"),
    spec(Route::McpEnd, "/mcp", Method::Delete, "mcp_end"),
    // Never matched by path: the empty path is not a valid request target.
    spec(Route::Unknown, "", Method::Get, "unknown"),
];

const fn spec(route: Route, path: &'static str, method: Method, label: &'static str) -> RouteSpec {
    RouteSpec {
        route,
        path,
        method,
        label,
    }
}

/// The metrics labels, by route index (what `metrics::Registry` is made with).
pub const ROUTE_LABELS: [&str; ROUTE_COUNT] = {
    let mut labels = [""; ROUTE_COUNT];
    let mut index = 0;
    while index < ROUTE_COUNT {
        labels[index] = TABLE[index].label;
        index += 1;
    }
    labels
};

impl Route {
    /// The route's index in the table and in the metrics.
    pub fn index(self) -> usize {
        let index = self as usize;
        debug_assert!(TABLE[index].route == self);
        index
    }

    /// Whether the route's caller is named in the head (`Authorization: Bearer` or
    /// `?token=`), so a request with a body can be authenticated before the body is read:
    /// every `/v2` route but login. The other protocols carry their key in the body
    /// (2captcha's `key`, anti-captcha's `clientKey`); their bodies are bounded by the
    /// shard's body budget instead.
    fn authenticated_from_head(self) -> bool {
        use Route::*;
        match self {
            Point | UploadBase64 | Upload | Detect | Slide | Click | Result | Report
            | UserStats | DeveloperStats | AdminUsers | AdminPoints | ApiKeyStatus
            | ApiKeyCreate | ApiKeyRevoke | AdminApiKeyRevoke | UserUploads | AdminFindUsers
            | AdminUserRole | AdminServer | Cached | Logout | ChangePassword
            | AdminTokensRevoke | AdminUserRemove | ModelAdd | ModelList | ModelRemove | Mcp
            | McpEnd => true,
            Servers
            | Login
            | OpenApi
            | Console
            | TwoCaptchaIn
            | TwoCaptchaRes
            | TwoCaptchaResPost
            | CreateTask
            | GetTaskResult
            | GetBalance
            | ReportIncorrect
            | ReportIncorrectImageCaptcha
            | ReportCorrect
            | FastapiOcr
            | FastapiDetection
            | FastapiSlideMatch
            | Health
            | Metrics
            | Unknown => false,
        }
    }

    fn is_mcp(self) -> bool {
        matches!(self, Route::Mcp | Route::McpEnd)
    }
}

/// The largest request body `route` takes: `model_body_max_bytes` for a model upload,
/// `max_body_bytes` for every other route.
pub fn max_body_bytes(route: Route, config: &crate::config::Config) -> usize {
    match route {
        Route::ModelAdd => config.models.model_body_max_bytes,
        _ => config.http.max_body_bytes,
    }
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

/// What the table says about a request's path and method.
enum Resolved {
    Route(&'static RouteSpec),
    /// The path exists on this listener, with other methods (405 with `Allow`).
    WrongMethod(Route, String),
    Unknown,
}

/// Whether a route serves `path`: its path exactly, except the console's, which serves
/// every file under it, and its own name without the slash and `/` (both redirected there).
fn path_matches(spec: &RouteSpec, path: &str) -> bool {
    if spec.route == Route::Console {
        return path.starts_with(CONSOLE_PATH) || path == "/console" || path == "/";
    }
    spec.path == path
}

/// The route of `path` and `method` among the routes `surface` serves (never `Unknown`).
fn resolve(path: &str, method: Method, serves: impl Fn(Route) -> bool) -> Resolved {
    let mut same_path = TABLE
        .iter()
        .take(ROUTE_COUNT - 1)
        .filter(|spec| path_matches(spec, path) && serves(spec.route))
        .peekable();
    let Some(first) = same_path.peek().map(|spec| spec.route) else {
        return Resolved::Unknown;
    };
    let mut allowed = Vec::new();
    for spec in same_path {
        let takes = method == spec.method || (spec.method == Method::Get && method == Method::Head);
        if takes {
            return Resolved::Route(spec);
        }
        allowed.push(match spec.method {
            Method::Get => "GET, HEAD",
            Method::Delete => "DELETE",
            _ => "POST",
        });
    }
    Resolved::WrongMethod(first, allowed.join(", "))
}

/// A request its head let through: the route it goes to and, for a request with a body on a
/// route whose credentials come in the head, the caller, authenticated before the body was
/// read — or, in a cluster, the other node that caller belongs to (the request goes there
/// whole once its body is read: `node_hop.rs`).
pub struct Admission {
    pub route: Route,
    caller: Option<Caller>,
    owner_node: Option<u16>,
}

/// Decides what the head alone can: the route and method (404; 405 with `Allow`) and, for a
/// request with a body on a route authenticated from the head, the caller (1002, 1003,
/// 5002). A refused request with a body is answered without reading any of it, so a client
/// without credentials cannot make the server hold its upload.
pub async fn admit(
    shard: &Rc<Shard>,
    surface: Surface,
    peer: std::net::IpAddr,
    head: &RequestHead,
) -> Result<Admission, (Route, Response)> {
    let metrics_elsewhere = shard.config().network.metrics_listen.is_some();
    let serves = |route| surface.serves(route, metrics_elsewhere);
    let route = match resolve(&head.path, head.method, serves) {
        Resolved::Route(spec) => spec.route,
        Resolved::WrongMethod(route, allow) => return Err((route, method_not_allowed(allow))),
        Resolved::Unknown => {
            let refusal = Refusal::from(ApiError::NoRoute);
            return Err((Route::Unknown, refusal.into_response()));
        }
    };
    let mut admission = Admission {
        route,
        caller: None,
        owner_node: None,
    };
    if let Some(answer) = route
        .is_mcp()
        .then(|| mcp::head_refusal(shard, head))
        .flatten()
    {
        return Err((route, answer));
    }
    if head.framing != Framing::Empty && route.authenticated_from_head() {
        let call = Call::without_body(shard, head, peer);
        match call.authenticate().await {
            Ok(Authentication::Caller(found)) => admission.caller = Some(found),
            // Another node's user: that node checks the credential and answers.
            Ok(Authentication::AtNode(node)) => admission.owner_node = Some(node),
            Err(refusal) => return Err((route, refusal_before_body(route, head, refusal))),
        }
    }
    Ok(admission)
}

/// A refusal given before the body was read (the shard's body budget is spent), in the words
/// of the route's protocol, with `Retry-After`.
pub fn refusal_before_body(route: Route, head: &RequestHead, refusal: Refusal) -> Response {
    use Route::*;
    let retry_after_secs = refusal.retry_after_secs;
    let answer = match route {
        TwoCaptchaIn | TwoCaptchaRes | TwoCaptchaResPost => {
            twocaptcha::head_refusal(head, &refusal)
        }
        CreateTask
        | GetTaskResult
        | GetBalance
        | ReportIncorrect
        | ReportIncorrectImageCaptcha
        | ReportCorrect => tasks::refusal_answer(&refusal),
        FastapiOcr | FastapiDetection | FastapiSlideMatch => fastapi::refused(&refusal),
        // Carries its own Retry-After.
        Mcp | McpEnd => return mcp::refused_before_body(head, &refusal),
        _ => return refusal.into_response(),
    };
    match retry_after_secs {
        Some(secs) => answer.with_header("Retry-After", secs.to_string()),
        None => answer,
    }
}

/// Answers one admitted request: its endpoint with the body read, or the node that owns its
/// user (found from the head, or by the endpoint from the body: a login's username, a
/// compat protocol's key).
pub async fn handle(
    shard: &Rc<Shard>,
    peer: std::net::IpAddr,
    head: &RequestHead,
    body: Vec<u8>,
    admission: Admission,
) -> Response {
    if let Some(node) = admission.owner_node {
        return super::node_hop::forward(shard, node, head, &body, peer).await;
    }
    // Kept only where the endpoint may still find the user on another node (it consumes
    // the body): in a cluster, when the head did not name the caller already.
    let kept_body = match (&shard.shared.cluster, admission.caller) {
        (Some(_), None) => Some(body.clone()),
        _ => None,
    };
    let call = Call::new(shard, head, body, peer, admission.caller);
    let result = dispatch(admission.route, call).await;
    // The user is another node's: found by a credential (`Authentication::AtNode`, which
    // every endpoint, the compat protocols included, returns as this refusal) or by the
    // endpoint itself (a login's username claimed by that node). Nothing ran here for that
    // user, so the owner's answer is the whole answer.
    let other_node = match &result {
        Err(refusal) => refusal.owner_node,
        Ok(_) => None,
    };
    match (result, other_node, kept_body) {
        (_, Some(node), Some(body)) => {
            super::node_hop::forward(shard, node, head, &body, peer).await
        }
        (Ok(answer), _, _) => answer,
        (Err(refusal), _, _) => refusal.into_response(),
    }
}

/// Answers a request another node forwarded here (`forwarded.rs`): admitted and run as if it
/// had arrived on this shard's API listener, but never forwarded again — a user that is not
/// this node's either is a credential no node of the platform owns.
pub async fn handle_forwarded(
    shard: &Rc<Shard>,
    peer: std::net::IpAddr,
    head: &RequestHead,
    body: Vec<u8>,
    tag: crate::cluster::wire::ForwardTag,
    arrived: std::time::Instant,
) -> Response {
    let forwarded = super::call::ForwardedFrom { tag, arrived };
    let admission = match admit(shard, Surface::Api, peer, head).await {
        Ok(admission) if admission.owner_node.is_none() => admission,
        Ok(_) => return Refusal::from(ApiError::BadToken).into_response(),
        Err((_, answer)) => return answer,
    };
    let mut call = Call::new(shard, head, body, peer, admission.caller);
    call.forwarded = Some(forwarded);
    dispatch(admission.route, call)
        .await
        .unwrap_or_else(Refusal::into_response)
}

fn method_not_allowed(allow: String) -> Response {
    let refusal = Refusal::new(ApiError::NoRoute, "method not allowed");
    let mut answer = refusal.into_response().with_header("Allow", allow);
    answer.status = 405;
    answer
}

async fn dispatch(route: Route, call: Call<'_>) -> ApiResult {
    match route {
        Route::Servers => node::servers(&call),
        Route::Health => node::health(&call),
        Route::Metrics => Ok(node::metrics(&call)),
        Route::Login => user::login(&call).await,
        Route::Point => user::point(&call).await,
        Route::UploadBase64 => upload::upload(call, Kind::Ocr, Encoding::Base64).await,
        Route::Upload => upload::upload(call, Kind::Ocr, Encoding::FileOrRaw).await,
        Route::Detect => upload::upload(call, Kind::Detect, Encoding::FileOrRaw).await,
        Route::Slide => upload::upload(call, Kind::Slide, Encoding::FileOrRaw).await,
        Route::Click => upload::click(call).await,
        Route::Cached => cached::cached(call).await,
        Route::Result => results::result(&call).await,
        Route::Report => results::report(&call).await,
        Route::UserStats => stats::user_stats(&call).await,
        Route::DeveloperStats => stats::developer_stats(&call).await,
        Route::AdminUsers => admin::create_user(&call).await,
        Route::AdminPoints => admin::points(&call).await,
        Route::ApiKeyStatus => apikey::status(&call).await,
        Route::ApiKeyCreate => apikey::create(&call).await,
        Route::ApiKeyRevoke => apikey::revoke(&call).await,
        Route::AdminApiKeyRevoke => apikey::admin_revoke(&call).await,
        Route::UserUploads => uploads::list(&call).await,
        Route::AdminFindUsers => accounts::find(&call).await,
        Route::AdminUserRole => accounts::set_role(&call).await,
        Route::AdminServer => server_state::state(&call).await,
        Route::Logout => tokens::logout(&call).await,
        Route::ChangePassword => tokens::change_password(&call).await,
        Route::AdminTokensRevoke => tokens::admin_revoke(&call).await,
        Route::AdminUserRemove => accounts::remove(&call).await,
        Route::ModelAdd => models::add(&call).await,
        Route::ModelList => models::list(&call).await,
        Route::ModelRemove => models::remove(&call).await,
        Route::OpenApi => Ok(console::openapi(call.head)),
        Route::Console => console::console(call.head),
        Route::TwoCaptchaIn => twocaptcha::submit_image(&call).await,
        Route::TwoCaptchaRes | Route::TwoCaptchaResPost => twocaptcha::results(&call).await,
        Route::CreateTask => tasks::create_task(&call).await,
        Route::GetTaskResult => tasks::get_task_result(&call).await,
        Route::GetBalance => tasks::get_balance(&call).await,
        Route::ReportIncorrect | Route::ReportIncorrectImageCaptcha => {
            tasks::report_incorrect(&call).await
        }
        Route::ReportCorrect => tasks::report_correct(&call).await,
        Route::FastapiOcr => fastapi::ocr(&call).await,
        Route::FastapiDetection => fastapi::detection(&call).await,
        Route::FastapiSlideMatch => fastapi::slide_match(&call).await,
        Route::Mcp => mcp::post(&call).await,
        Route::McpEnd => mcp::end(&call).await,
        Route::Unknown => Err(ApiError::NoRoute.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_route_order_with_unique_paths_and_labels() {
        for (index, spec) in TABLE.iter().enumerate() {
            assert_eq!(spec.route as usize, index, "{}", spec.label);
            assert_eq!(ROUTE_LABELS[index], spec.label);
        }
        for (index, spec) in TABLE.iter().enumerate() {
            for other in &TABLE[index + 1..] {
                assert!((spec.path, spec.method) != (other.path, other.method));
                assert_ne!(spec.label, other.label);
            }
        }
        let all = |_| true;
        let route_of = |path, method| match resolve(path, method, all) {
            Resolved::Route(spec) => Some(spec.route),
            _ => None,
        };
        assert_eq!(route_of("/v2/user/point", Method::Get), Some(Route::Point));
        assert_eq!(route_of("/v2/user/point", Method::Head), Some(Route::Point));
        assert_eq!(
            route_of("/v2/user/apikey", Method::Get),
            Some(Route::ApiKeyStatus)
        );
        assert_eq!(
            route_of("/v2/user/apikey", Method::Post),
            Some(Route::ApiKeyCreate)
        );
        assert!(matches!(
            resolve("/v2/user/apikey", Method::Delete, all),
            Resolved::WrongMethod(Route::ApiKeyStatus, ref allow) if allow == "GET, HEAD, POST"
        ));
        assert!(matches!(resolve("", Method::Get, all), Resolved::Unknown));
        assert_eq!(route_of("/console/", Method::Get), Some(Route::Console));
        assert_eq!(
            route_of("/console/pages/try.js", Method::Get),
            Some(Route::Console)
        );
        assert_eq!(route_of("/", Method::Get), Some(Route::Console));
        assert_eq!(route_of("/consoles", Method::Get), None);
        assert_eq!(
            route_of("/v2/admin/users", Method::Get),
            Some(Route::AdminFindUsers)
        );
        assert_eq!(
            route_of("/v2/admin/users", Method::Post),
            Some(Route::AdminUsers)
        );
        assert!(matches!(
            resolve("/v2/nothing", Method::Get, all),
            Resolved::Unknown
        ));
        let monitoring = |route| Surface::Monitoring.serves(route, true);
        assert!(matches!(
            resolve("/v2/user/point", Method::Get, monitoring),
            Resolved::Unknown
        ));
    }

    /// The API description names every `/v2` route (and `/health`, `/metrics`) with its
    /// method, and nothing else: a route added without its description fails here.
    #[test]
    fn the_api_description_has_every_route_and_no_other() {
        let doc: serde_json::Value = serde_json::from_slice(console::OPENAPI.bytes).unwrap();
        let described = |path: &str, method: Method| {
            let name = match method {
                Method::Get => "get",
                Method::Delete => "delete",
                _ => "post",
            };
            doc["paths"][path][name].is_object()
        };
        let mut documented = 0;
        for spec in &TABLE {
            let public = spec.path.starts_with("/v2/")
                || ["/health", "/metrics", "/mcp"].contains(&spec.path);
            assert_eq!(
                described(spec.path, spec.method),
                public,
                "{} {:?}",
                spec.path,
                spec.method
            );
            documented += usize::from(public);
        }
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, documented, "no operation without a route");
    }

    #[test]
    fn the_monitoring_listener_serves_only_metrics_and_health() {
        assert!(Surface::Monitoring.serves(Route::Metrics, true));
        assert!(Surface::Monitoring.serves(Route::Health, true));
        assert!(!Surface::Monitoring.serves(Route::Point, true));
        assert!(!Surface::Api.serves(Route::Metrics, true));
        assert!(Surface::Api.serves(Route::Metrics, false));
    }
}
