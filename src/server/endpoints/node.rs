//! The node itself: `/v2/servers` (the nodes a client may use), `/health`, `/metrics`. No
//! authentication, no owner shard.

use crate::http::Response;
use crate::recognition::Kind;
use crate::server::call::Call;
use crate::server::reply::{ok, ApiResult};
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
        "status": if shard.stop.is_stopped() { "draining" } else { "ok" },
    })
}

pub fn health() -> Response {
    ok(&json!({"status": "ok"}))
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
