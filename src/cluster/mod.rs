//! Beyond one machine: nodes and recognition workers joined by NATS JetStream
//! (docs/cluster.md has the design, the failure cases and the numbers).
//!
//! - `bridge.rs` — the node's one NATS thread (tokio lives there and nowhere else): publishes
//!   recognition jobs to the JetStream work queue, takes results back and hands them to their
//!   owner shard, voids what no worker answered in time, serves requests forwarded by other
//!   nodes, writes the heartbeat, claims usernames.
//! - `link.rs` — what the shards hold: [`ClusterLink`], bounded channels into the bridge and
//!   the atomics the bridge keeps current (connected, jobs in flight, counters).
//! - `wire.rs` — the bytes on NATS: jobs, results, forwarded requests and their answers.
//! - `names.rs` — subjects, stream, consumer and bucket names.
//! - `worker.rs` — `aiocr worker`: the recognition threads fed from JetStream, no HTTP, no
//!   ledger.
//! - `nats.rs` — connecting (reconnect backoff, limits) and the stream and buckets both sides
//!   create.

mod bridge;
mod link;
mod metrics;
pub mod names;
pub mod nats;
pub mod wire;
pub mod worker;

pub use bridge::{start as start_bridge, BridgeSeed, BridgeThread, Describe, Serve};
pub use link::{Claim, ClusterLink, LinkError, RemoteStats};
pub use metrics::render_metrics;

/// Where a node runs its recognition jobs when it has `nats_url`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// This node's recognition threads only.
    Local,
    /// Local threads while they can start a job at once; beyond that, remote workers.
    Overflow,
    /// Remote workers first; local threads when NATS is down or `remote_max_in_flight` is
    /// reached.
    Remote,
}

impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(text: &str) -> Result<Split, String> {
        match text {
            "local" => Ok(Split::Local),
            "overflow" => Ok(Split::Overflow),
            "remote" => Ok(Split::Remote),
            _ => Err(format!("'{text}': expected local, overflow or remote")),
        }
    }
}
