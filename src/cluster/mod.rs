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
//! - `confirm.rs` — charges of forwarded requests until the forwarding node acknowledges
//!   their answer (given back when it does not).
//! - `registry.rs` — the usernames registry restored from the node's store when NATS lost
//!   it (claims made again, conflicts reported).
//! - `model_transfer.rs` — the models users brought between machines: the node puts their
//!   files in the models bucket, a worker fetches, checks and caches them by digest.
//! - `names.rs` — subjects, stream, consumer and bucket names.
//! - `worker.rs` — `aiocr worker`: the recognition threads fed from JetStream, no HTTP, no
//!   ledger.
//! - `nats.rs` — connecting (reconnect backoff, limits) and the stream and buckets both sides
//!   create.

mod bridge;
pub mod confirm;
mod link;
mod metrics;
pub mod model_transfer;
pub mod names;
pub mod nats;
pub mod registry;
pub mod wire;
pub mod worker;

pub use bridge::{start as start_bridge, BridgeSeed, BridgeThread, Describe, Serve, Settle};
pub use link::{Claim, ClusterLink, LinkError, RemoteStats};
pub use metrics::render_metrics;
pub use model_transfer::{ModelCache, ModelObjects, ObjectsSeed};
pub use registry::LocalNames;

pub use crate::config::Split;
