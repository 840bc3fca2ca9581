//! `GET /v2/admin/server`: the node's state for operators (the console's server page), as
//! JSON: the nodes of `/v2/servers`, the recognition queue, and the counters of `/metrics`
//! added over the shards (read from the same registry, so the two never disagree). A client
//! gets rates by reading it twice. Admin role only: `/metrics` may be kept off the API
//! address (`metrics_listen`), and this must not reopen it to everyone.

use super::node::server_list;
use crate::server::call::Call;
use crate::server::reply::{ok, ApiResult};
use crate::store::Role;
use serde_json::json;

pub async fn state(call: &Call<'_>) -> ApiResult {
    call.caller_with_role(&[Role::Admin]).await?;
    let shared = &call.shard.shared;
    let queue = &shared.queue;
    // Counters only grow: written saturated at 2^53 - 1, as every counter in JSON.
    let mut totals = json!(shared.metrics.totals());
    crate::json_numbers::saturate_all(&mut totals);
    Ok(ok(&json!({
        "servers": server_list(call.shard),
        "queue": { "depth": queue.total_depth(), "capacity": queue.total_capacity() },
        "recognition_threads": shared.recognition_threads,
        "models": &*shared.models,
        "totals": totals,
        "at": crate::clock::unix_now_ms(),
    })))
}
