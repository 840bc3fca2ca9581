//! `/mcp`: aiocr as an MCP tool server (the protocol itself is src/mcp, pure). POST carries
//! one JSON-RPC message and is answered with JSON (a notification with 202); DELETE ends a
//! session; GET is 405 from the route table (no server-to-client stream: this server sends
//! no requests or notifications of its own).
//!
//! A request is checked in this order: the head (Origin, body size: `head_refusal`, before
//! the body is read), the caller (the API key or a login token, as on `/v2`: 401 with
//! `WWW-Authenticate` without one), the message, then the session on the shard that owns the
//! caller (`Mcp-Session-Id`: 400 without it, 404 when it is not there). The tools run
//! through the `/v2` paths: a reading is an upload (`UploadRequest::from_fields`, then
//! `Accept` on the owner: the same checks, reservation and charge), `balance`, `report`
//! and `result` are `/v2/user/point`'s, `/v2/report`'s and `/v2/result`'s (server/queries.rs).

use crate::contract::ApiError;
use crate::http::{Framing, RequestHead, Response};
use crate::mcp::jsonrpc::{self, Id, Message, RpcError, METHOD_NOT_FOUND, SERVER_REFUSED};
use crate::mcp::lifecycle::{self, Method};
use crate::mcp::sessions::{session_id, TableFull, SESSION_ID_BYTES};
use crate::mcp::tools::{self, CallProblem, Tool};
use crate::mcp::transport::{self, TransportRefusal};
use crate::mcp::version::Features;
use crate::recognition::Kind;
use crate::server::call::{Call, Caller};
use crate::server::fields::{body_kind, BodyKind, Fields};
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::queries::{balance_of, report_upload, upload_of};
use crate::server::reply::{internal, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::server::upload::{accepted_view, click_from_fields, upload_json, Accept, UploadRequest};
use serde_json::{json, Map, Value};
use std::rc::Rc;

/// The header a session's id travels in (answers and requests).
const SESSION_HEADER: &str = "Mcp-Session-Id";

/// What the head alone refuses, before the body is read: a page's origin that is not
/// allowed (403), a declared body beyond `mcp_max_body_bytes` (413).
pub fn head_refusal(shard: &Shard, head: &RequestHead) -> Option<Response> {
    let config = &shard.config().mcp;
    if let Err(refusal) =
        transport::check_origin(head.mcp.origin.as_deref(), &config.mcp_allowed_origins)
    {
        return Some(transport_answer(refusal));
    }
    match head.framing {
        Framing::Length(length) if length > config.mcp_max_body_bytes => {
            Some(too_large(config.mcp_max_body_bytes))
        }
        _ => None,
    }
}

fn too_large(limit: usize) -> Response {
    let refusal = Refusal::new(
        ApiError::TooLarge,
        format!("body larger than {limit} bytes"),
    );
    refused(&refusal, false)
}

/// A refusal of the contract at the transport's level, in its status: 401 with
/// `WWW-Authenticate` for missing or invalid credentials, 503/429 with `Retry-After`; the
/// JSON-RPC error's `data` carries the contract's code and message.
pub fn refused(refusal: &Refusal, credential_sent: bool) -> Response {
    let error = RpcError::new(SERVER_REFUSED, refusal.message.clone()).with_data(json!({
        "code": refusal.error.code(),
        "msg": refusal.message,
    }));
    let answer = Response::json(refusal.error.status(), jsonrpc::error_body(None, &error));
    let answer = match refusal.error {
        ApiError::NoToken | ApiError::BadToken => answer.with_header(
            "WWW-Authenticate",
            transport::www_authenticate(credential_sent),
        ),
        _ => answer,
    };
    match refusal.retry_after_secs {
        Some(secs) => answer.with_header("Retry-After", secs.to_string()),
        None => answer,
    }
}

/// A refusal of the head as the router gives it before the body (credentials, a full body
/// budget).
pub fn refused_before_body(head: &RequestHead, refusal: &Refusal) -> Response {
    refused(refusal, credential_sent(head))
}

fn credential_sent(head: &RequestHead) -> bool {
    head.authorization.is_some() || head.query.contains("token=")
}

fn transport_answer(refusal: TransportRefusal) -> Response {
    let body = jsonrpc::error_body(None, &refusal.error);
    Response::json(refusal.status, body)
}

/// `POST /mcp`.
pub async fn post(call: &Call<'_>) -> ApiResult {
    Ok(match serve_post(call).await {
        Ok(answer) | Err(answer) => answer,
    })
}

async fn serve_post(call: &Call<'_>) -> Result<Response, Response> {
    // Again here: a forwarded or chunked request has not met `head_refusal`'s checks.
    if let Some(refusal) = head_refusal(call.shard, call.head) {
        return Err(refusal);
    }
    let limit = call.shard.config().mcp.mcp_max_body_bytes;
    if call.body.len() > limit {
        return Err(too_large(limit));
    }
    let caller = call
        .caller()
        .await
        .map_err(|refusal| refused_before_body(call.head, &refusal))?;
    if body_kind(call.head.content_type.as_deref(), &call.body) != BodyKind::Json {
        return Err(transport_answer(transport::not_json()));
    }
    let message = jsonrpc::parse(&call.body).map_err(|unreadable| {
        let body = jsonrpc::error_body(unreadable.id.as_ref(), &unreadable.error);
        Response::json(400, body)
    })?;
    match message {
        Message::Request { id, method, params } if method == "initialize" => {
            initialize(call, &caller, id, &params).await
        }
        message => in_session(call, &caller, message).await,
    }
}

/// `initialize`: a new session at the negotiated version, its id in the answer's header.
async fn initialize(
    call: &Call<'_>,
    caller: &Caller,
    id: Id,
    params: &Map<String, Value>,
) -> Result<Response, Response> {
    let version = match lifecycle::negotiate(params) {
        Ok(version) => version,
        Err(error) => return Ok(rpc_error(&id, &error)),
    };
    let mut random = [0u8; SESSION_ID_BYTES];
    getrandom::getrandom(&mut random)
        .map_err(|error| refused(&internal("mcp session id", error), true))?;
    let session = session_id(random);
    let open = OpenSession {
        id: session.clone(),
        user_id: caller.user_id,
        owner: caller.owner,
        version,
    };
    run_on_owner(call.shard, open)
        .await
        .map_err(|refusal| refused(&refusal, true))?;
    let body = jsonrpc::result_body(&id, lifecycle::initialize_result(version));
    Ok(Response::json(200, body).with_header(SESSION_HEADER, session))
}

/// Every message but `initialize`: in its session, at the session's version.
async fn in_session(
    call: &Call<'_>,
    caller: &Caller,
    message: Message,
) -> Result<Response, Response> {
    let head = &call.head.mcp;
    // A version this server does not serve is refused first, whatever else is wrong (a
    // newer client's probe learns it here, and falls back to `initialize`).
    transport::check_version_header(head.protocol_version.as_deref()).map_err(transport_answer)?;
    let Some(session) = head.session_id.clone() else {
        return Err(transport_answer(transport::missing_session()));
    };
    let initialized = message.method() == Some(lifecycle::INITIALIZED);
    let version = find_session(call, caller, session, initialized).await?;
    let version = transport::session_version(head.protocol_version.as_deref(), version)
        .map_err(transport_answer)?;
    let Message::Request { id, method, params } = message else {
        // Notifications (and answers to requests this server never sends) are taken.
        return Ok(Response::empty(202));
    };
    let features = Features::of(version);
    let answer = match Method::named(&method) {
        Method::Ping => Ok(json!({})),
        Method::ToolsList => lifecycle::check_no_cursor(&params)
            .map(|()| tools::list(features, &call.shard.shared.models)),
        Method::ToolsCall => call_tool(call, caller, features, &params).await,
        Method::Initialize => unreachable!("initialize is answered before its session"),
        Method::Unknown => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method {method:?} not found"),
        )),
    };
    Ok(match answer {
        Ok(result) => Response::json(200, jsonrpc::result_body(&id, result)),
        Err(error) => rpc_error(&id, &error),
    })
}

/// The session `id` of the caller, used now (and marked initialized), or the answer
/// (404) that says it is not there; its version when it is.
async fn find_session(
    call: &Call<'_>,
    caller: &Caller,
    session: String,
    initialized: bool,
) -> Result<&'static str, Response> {
    let touch = TouchSession {
        id: session,
        user_id: caller.user_id,
        owner: caller.owner,
        initialized,
    };
    match run_on_owner(call.shard, touch).await {
        Ok(Some(version)) => Ok(version),
        Ok(None) => Err(transport_answer(transport::unknown_session())),
        Err(refusal) => Err(refused(&refusal, true)),
    }
}

/// A JSON-RPC error answer to request `id` (HTTP 200: the transport carried it fine).
fn rpc_error(id: &Id, error: &RpcError) -> Response {
    Response::json(200, jsonrpc::error_body(Some(id), error))
}

/// `tools/call`: the tool's result, a tool error (`isError`, the contract's code and
/// message), or a protocol error (an unknown tool).
async fn call_tool(
    call: &Call<'_>,
    caller: &Caller,
    features: Features,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let tool_call = match tools::read_call(params) {
        Ok(tool_call) => tool_call,
        Err(CallProblem::Protocol(error)) => return Err(error),
        Err(CallProblem::Arguments(message)) => {
            return Ok(tools::failure(ApiError::Malformed.code(), &message))
        }
    };
    let outcome = match Fields::from_json_object(tool_call.fields) {
        Ok(fields) => run_tool(call, caller, tool_call.tool, fields).await,
        Err(refusal) => Err(refusal),
    };
    Ok(match outcome {
        Ok(structured) => tools::success(structured, features),
        Err(refusal) => tools::failure(refusal.error.code(), &refusal.message),
    })
}

async fn run_tool(
    call: &Call<'_>,
    caller: &Caller,
    tool: Tool,
    fields: Fields,
) -> Result<Value, Refusal> {
    match tool {
        Tool::Ocr => reading(call, caller, Kind::Ocr, fields).await,
        Tool::Detect => reading(call, caller, Kind::Detect, fields).await,
        Tool::Slide => reading(call, caller, Kind::Slide, fields).await,
        Tool::Click => {
            let request = click_from_fields(call, fields, None)?;
            answer_reading(call, caller, request).await
        }
        Tool::Result => {
            let record = upload_of(call.shard, caller.user_id, fields.id("id")?).await?;
            Ok(upload_json(&record))
        }
        Tool::Balance => {
            let balance = balance_of(call.shard, caller).await?;
            Ok(json!({ "points": balance.points, "reserved": balance.reserved }))
        }
        Tool::Report => {
            let upload_id = fields.id("id")?;
            let (record, balance) = report_upload(call.shard, caller.user_id, upload_id).await?;
            Ok(json!({ "refunded": record.cost, "points": balance.points }))
        }
    }
}

/// A reading: the `/v2` upload of `kind` from the tool's arguments, waiting up to
/// `mcp_wait_ms` (or `wait_timeout_ms_max` if smaller: the bound of every upload's wait)
/// for its answer (pending after that: the `result` tool has it later).
async fn reading(
    call: &Call<'_>,
    caller: &Caller,
    kind: Kind,
    fields: Fields,
) -> Result<Value, Refusal> {
    let request = UploadRequest::from_fields(call, kind, fields, None)?;
    answer_reading(call, caller, request).await
}

/// Accepts a reading's upload and answers it as `reading` says.
async fn answer_reading(
    call: &Call<'_>,
    caller: &Caller,
    mut request: UploadRequest,
) -> Result<Value, Refusal> {
    let config = call.shard.config();
    let wait_ms = config
        .mcp
        .mcp_wait_ms
        .min(config.uploads.wait_timeout_ms_max);
    request.wait = wait_ms > 0;
    request.timeout_ms = wait_ms;
    let caller = *caller;
    accepted_view(run_on_owner(call.shard, Accept { caller, request }).await?)
}

/// `DELETE /mcp`: ends the caller's session (204; 404 when it is not there).
pub async fn end(call: &Call<'_>) -> ApiResult {
    if let Some(refusal) = head_refusal(call.shard, call.head) {
        return Ok(refusal);
    }
    let caller = match call.caller().await {
        Ok(caller) => caller,
        Err(refusal) => return Ok(refused_before_body(call.head, &refusal)),
    };
    let Some(id) = call.head.mcp.session_id.clone() else {
        return Ok(transport_answer(transport::missing_session()));
    };
    let close = CloseSession {
        id,
        user_id: caller.user_id,
        owner: caller.owner,
    };
    Ok(match run_on_owner(call.shard, close).await {
        Ok(true) => Response::empty(204),
        Ok(false) => transport_answer(transport::unknown_session()),
        Err(refusal) => refused(&refusal, true),
    })
}

/// Opens a session on the shard that owns its user (503 when that shard holds
/// `mcp_sessions_per_shard`).
struct OpenSession {
    id: String,
    user_id: u64,
    owner: u16,
    version: &'static str,
}

impl OwnerCommand for OpenSession {
    type Output = ();

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<(), Refusal> {
        let now_ms = crate::clock::unix_now_ms();
        let opened =
            shard
                .mcp_sessions
                .borrow_mut()
                .open(self.id, self.user_id, self.version, now_ms);
        shard.metrics().mcp_sessions = shard.mcp_sessions.borrow().len() as u64;
        match opened {
            Ok(_) => Ok(()),
            Err(TableFull) => Err(Refusal::new(
                ApiError::Busy,
                "busy: too many MCP sessions on this server (mcp_sessions_per_shard)",
            )
            .retry_after(1)),
        }
    }
}

/// Finds (and uses) a session of its user: its version, or `None`.
struct TouchSession {
    id: String,
    user_id: u64,
    owner: u16,
    initialized: bool,
}

impl OwnerCommand for TouchSession {
    type Output = Option<&'static str>;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Option<&'static str>, Refusal> {
        let now_ms = crate::clock::unix_now_ms();
        let mut sessions = shard.mcp_sessions.borrow_mut();
        let found = sessions
            .find(&self.id, self.user_id, now_ms)
            .map(|session| {
                session.initialized |= self.initialized;
                session.version
            });
        shard.metrics().mcp_sessions = sessions.len() as u64;
        Ok(found)
    }
}

/// Ends a session of its user: whether there was one.
struct CloseSession {
    id: String,
    user_id: u64,
    owner: u16,
}

impl OwnerCommand for CloseSession {
    type Output = bool;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<bool, Refusal> {
        let mut sessions = shard.mcp_sessions.borrow_mut();
        let closed = sessions.close(&self.id, self.user_id);
        shard.metrics().mcp_sessions = sessions.len() as u64;
        Ok(closed)
    }
}
