//! The node itself: `/v2/servers` (the nodes a client may use), `/health`, `/metrics`. No
//! authentication, no owner shard.

use crate::http::Response;
use crate::recognition::Kind;
use crate::server::call::Call;
use crate::server::reply::{ok, storage_unavailable, ApiResult, Refusal};
use crate::server::shard::Shard;
use serde_json::json;

pub fn servers(call: &Call) -> ApiResult {
    Ok(ok(&json!({ "servers": [this_server(call.shard)] })))
}

/// This node as `/v2/servers` lists it.
pub fn this_server(shard: &Shard) -> serde_json::Value {
    let shared = &shard.shared;
    json!({
        "id": shared.config.node_id.to_string(),
        "url": shared.config.public_url(),
        "shards": shard.shard_count(),
        "accel": shared.recognition_threads,
        "queue": shared.queue.total_depth(),
        "status": status(shard),
    })
}

/// `draining` while stopping, `degraded` while a shard's storage has failed (uploads are
/// refused with 5004 there), else `ok`.
fn status(shard: &Shard) -> &'static str {
    if shard.stop.is_stopped() {
        "draining"
    } else if !shard.shared.metrics.storage_failures().is_empty() {
        "degraded"
    } else {
        "ok"
    }
}

/// 200 `{"status": "ok"}`; 503 with 5004 and `Retry-After` while a shard's storage has failed
/// (disk full, I/O error) and not recovered: the node cannot take uploads, a load balancer
/// should send them elsewhere. Reads may still work.
pub fn health(call: &Call) -> ApiResult {
    let failed = call.shard.shared.metrics.storage_failures();
    if failed.is_empty() {
        return Ok(ok(&json!({"status": "ok"})));
    }
    let shards: Vec<String> = failed
        .iter()
        .map(|(shard, why)| format!("shard {shard}: {why}"))
        .collect();
    let message = format!("storage unavailable: {}", shards.join("; "));
    Err(Refusal {
        message,
        ..storage_unavailable()
    })
}

pub fn metrics(call: &Call) -> Response {
    let queue = &call.shard.shared.queue;
    let queues: Vec<(&str, usize, usize)> = Kind::ALL
        .iter()
        .map(|kind| (kind.label(), queue.depth(*kind), queue.capacity(*kind)))
        .collect();
    let mut text = call.shard.shared.metrics.render(&queues);
    let passwords = &call.shard.shared.passwords;
    crate::metrics::render_password_queue(&mut text, passwords.depth(), passwords.capacity());
    let mut answer = Response::plain(200, text.into_bytes());
    answer.content_type = "text/plain; version=0.0.4; charset=utf-8";
    answer
}
