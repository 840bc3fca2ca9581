//! Beyond one machine (docs/cluster.md): the NATS servers, where recognition jobs run
//! ([`Split`], defined here so that the configuration and the cluster both reach it from
//! below), the bounds of remote jobs, and the heartbeat.

use super::check::first_failed;
use super::keys::Kind;
use super::values;
use serde::Deserialize;

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

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server(s) joining this node to the platform (docs/cluster.md): a comma list of
    /// `nats://host:port`. Empty (the default): one node alone, nothing of NATS used.
    pub nats_url: String,
    /// Where recognition jobs run when `nats_url` is set: `local` (this node's threads only),
    /// `overflow` (remote workers take what the local threads cannot start at once) or
    /// `remote` (workers first; local threads when NATS is down or full).
    #[serde(deserialize_with = "values::parsed")]
    pub recognition_split: Split,
    /// `overflow`: jobs of a kind go remote once the local queue holds this many; 0 means
    /// one per local recognition thread (a job would otherwise wait for a thread).
    pub overflow_queue_depth: usize,
    /// Jobs this node has handed to NATS and not yet seen finished; beyond it jobs stay local.
    pub remote_max_in_flight: usize,
    /// A remote job without a result this long after it was handed out is failed and
    /// refunded by its node (workers drop it unrun past this deadline).
    pub remote_timeout_ms: u64,
    /// JetStream's ack deadline: a job a worker took and neither acknowledged nor reported
    /// in progress within it (the worker died or was cut off; a live worker reports every
    /// third of it) is delivered again.
    pub remote_ack_wait_ms: u64,
    /// Deliveries of one job before a worker fails it unrun (refunded): a job that keeps
    /// killing workers stops there.
    pub remote_max_deliver: u32,
    /// Replicas of the job stream and the key-value buckets (3 on a 3-server NATS cluster).
    pub nats_replicas: usize,
    /// Deadline of one NATS request: a forwarded API request, a result handed to its node, a
    /// publish acknowledgement, a key-value operation.
    pub nats_request_timeout_ms: u64,
    /// Longest pause between reconnection attempts (they start at 100 ms and double).
    pub nats_reconnect_max_ms: u64,
    /// How often a node writes its heartbeat; a node silent for `node_ttl_ms` leaves
    /// `/v2/servers`.
    pub heartbeat_ms: u64,
    pub node_ttl_ms: u64,
    /// On SIGTERM/SIGINT, after the shards have drained and voided what was pending: the
    /// longest wait for the NATS side (answers and publishes still in the client's buffer)
    /// before the node exits anyway. What is not sent by then is left as after a kill.
    pub nats_stop_grace_ms: u64,
    /// A forwarded request that charged points (docs/cluster.md, "Forwarded writes"): the
    /// forwarding node acknowledges the answer it received; without an acknowledgement within
    /// `nats_request_timeout_ms` + this of the request's arrival, the owner gives the points
    /// back (the forwarding node answered its client 5001 by then).
    pub forward_ack_timeout_ms: u64,
    /// The JetStream Object Store bucket holding the files of the models users brought
    /// (docs/cluster.md, "Users' models"): a node puts a model's files there when it is
    /// added, workers fetch them on their first job for it.
    pub nats_models_bucket: String,
    /// Longest wait for one model's files to go into the bucket (an addition waits for it)
    /// or to come out of it (a worker's first job for the model waits for it).
    pub model_transfer_timeout_ms: u64,
    /// Bytes of fetched model files a worker keeps on disk (`<data_dir>/model-cache/`);
    /// the least recently used go beyond it.
    pub model_cache_bytes: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: String::new(),
            recognition_split: Split::Overflow,
            overflow_queue_depth: 0,
            remote_max_in_flight: 1024,
            remote_timeout_ms: 30_000,
            remote_ack_wait_ms: 10_000,
            remote_max_deliver: 3,
            nats_replicas: 1,
            nats_request_timeout_ms: 5_000,
            nats_reconnect_max_ms: 2_000,
            heartbeat_ms: 1_000,
            node_ttl_ms: 5_000,
            nats_stop_grace_ms: 2_000,
            forward_ack_timeout_ms: 5_000,
            nats_models_bucket: "aiocr_models".to_string(),
            model_transfer_timeout_ms: 60_000,
            model_cache_bytes: 2 << 30,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("nats_url", Kind::Text),
    ("recognition_split", Kind::Text),
    ("overflow_queue_depth", Kind::Number),
    ("remote_max_in_flight", Kind::Number),
    ("remote_timeout_ms", Kind::Number),
    ("remote_ack_wait_ms", Kind::Number),
    ("remote_max_deliver", Kind::Number),
    ("nats_replicas", Kind::Number),
    ("nats_request_timeout_ms", Kind::Number),
    ("nats_reconnect_max_ms", Kind::Number),
    ("heartbeat_ms", Kind::Number),
    ("node_ttl_ms", Kind::Number),
    ("nats_stop_grace_ms", Kind::Number),
    ("forward_ack_timeout_ms", Kind::Number),
    ("nats_models_bucket", Kind::Text),
    ("model_transfer_timeout_ms", Kind::Number),
    ("model_cache_bytes", Kind::Number),
];

impl ClusterConfig {
    /// The servers of `nats_url`, a comma list (the NATS client takes a list, not the text:
    /// given the text, it reads the whole of it as one address).
    /// How long the owner of a forwarded request waits for the acknowledgement of its
    /// answer, from the request's arrival, before it gives the request's charges back.
    pub fn forward_ack_window(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.nats_request_timeout_ms + self.forward_ack_timeout_ms)
    }

    pub fn nats_servers(&self) -> Result<Vec<async_nats::ServerAddr>, String> {
        self.nats_url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                url.parse()
                    .map_err(|e| format!("config: nats_url: {url:?}: {e}"))
            })
            .collect()
    }

    /// The cluster's bounds (docs/cluster.md): a job is redelivered (ack deadline) well
    /// before its node gives up on it, and every bound is positive.
    pub(super) fn validate(&self) -> Result<(), String> {
        self.nats_servers()?;
        first_failed(&[
            (
                self.remote_ack_wait_ms > 0 && self.remote_ack_wait_ms < self.remote_timeout_ms,
                "remote_ack_wait_ms must be positive and below remote_timeout_ms",
            ),
            (
                (1..=100).contains(&self.remote_max_deliver),
                "remote_max_deliver must be 1..=100",
            ),
            (
                self.remote_max_in_flight > 0,
                "remote_max_in_flight must be positive",
            ),
            (
                (1..=5).contains(&self.nats_replicas),
                "nats_replicas must be 1..=5",
            ),
            (
                self.nats_request_timeout_ms > 0 && self.nats_reconnect_max_ms >= 100,
                "nats_request_timeout_ms must be positive, nats_reconnect_max_ms at least 100",
            ),
            (
                self.forward_ack_timeout_ms > 0,
                "forward_ack_timeout_ms must be positive",
            ),
            (
                valid_bucket_name(&self.nats_models_bucket),
                "nats_models_bucket must be 1 to 64 of A-Z a-z 0-9 _ -",
            ),
            (
                self.model_transfer_timeout_ms > 0,
                "model_transfer_timeout_ms must be positive",
            ),
            (
                self.model_cache_bytes >= 1 << 20,
                "model_cache_bytes must be at least 1048576 (1 MiB)",
            ),
            (
                self.heartbeat_ms > 0 && self.node_ttl_ms > self.heartbeat_ms,
                "heartbeat_ms must be positive and below node_ttl_ms",
            ),
        ])
    }
}

/// What JetStream accepts as a bucket's name.
fn valid_bucket_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
