//! The node itself: `/v2/servers` (the nodes a client may use), `/health`, `/metrics`. No
//! authentication, no owner shard.

use crate::config::Config;
use crate::http::Response;
use crate::recognition::{JobQueues, Kind};
use crate::server::call::Call;
use crate::server::reply::{ok, storage_unavailable, ApiResult, Refusal};
use crate::server::shard::Shard;
use serde_json::json;

/// `/v2/servers`: this node, and in a cluster every node whose heartbeat is fresh (the
/// heartbeat bucket's entries expire after `node_ttl_ms`), in node order.
pub fn servers(call: &Call) -> ApiResult {
    Ok(ok(&json!({ "servers": server_list(call.shard) })))
}

/// The nodes `/v2/servers` lists: this one as it is now, the others from their heartbeats.
pub fn server_list(shard: &Shard) -> Vec<serde_json::Value> {
    let own = this_server(shard);
    let Some(link) = &shard.shared.cluster else {
        return vec![own];
    };
    let own_id = own["id"].clone();
    let mut servers: Vec<serde_json::Value> = link
        .servers()
        .into_iter()
        .filter(|server| server["id"] != own_id)
        .collect();
    servers.push(own);
    servers.sort_by_key(|server| server["id"].as_str().and_then(|id| id.parse::<u16>().ok()));
    servers
}

/// This node as `/v2/servers` lists it.
pub fn this_server(shard: &Shard) -> serde_json::Value {
    let shared = &shard.shared;
    let mut server = describe_node(
        &shared.config,
        shard.shard_count(),
        shared.recognition_threads,
        &shared.queue,
    );
    server["status"] = json!(status(shard));
    server
}

/// A node's entry, from what any thread can read (the heartbeat writes it from the NATS
/// thread).
pub fn describe_node(
    config: &Config,
    shard_count: u16,
    recognition_threads: usize,
    queue: &JobQueues,
) -> serde_json::Value {
    json!({
        "id": config.node.node_id.to_string(),
        "url": config.network.public_url(),
        "shards": shard_count,
        "accel": recognition_threads,
        "queue": queue.total_depth(),
        "status": "ok",
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
    crate::metrics::render_heap(&mut text);
    let max_labels = call.shard.config().models.metrics_models_max;
    call.shard
        .shared
        .model_catalog
        .render_metrics(&mut text, max_labels);
    if let Some(link) = &call.shard.shared.cluster {
        crate::cluster::render_metrics(&mut text, link);
    }
    let mut answer = Response::plain(200, text.into_bytes());
    answer.content_type = "text/plain; version=0.0.4; charset=utf-8";
    answer
}
