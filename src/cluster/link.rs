//! What the shards hold of the cluster: [`ClusterLink`]. Every call is a bounded channel into
//! the bridge thread (jobs fire and forget; requests with a one-slot channel back), and the
//! state the shards decide on (connected, jobs in flight) is in atomics the bridge keeps
//! current, so a shard never blocks and never takes a lock on the upload path.

use super::confirm::{Charge, Unconfirmed};
use super::wire::ForwardTag;
use super::Split;
use crate::recognition::Job;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What a shard asks the bridge.
pub enum Command {
    /// Publish a recognition job (a remote slot is already taken for it). Boxed: a job is
    /// several times the size of the other commands, and the channel's slots are all that size.
    Submit(Box<Job>),
    /// Forward an API request (wire::encode_forward) to node `node`; the answer's bytes back.
    Forward {
        node: u16,
        tag: ForwardTag,
        request: Vec<u8>,
        reply: flume::Sender<Result<Vec<u8>, LinkError>>,
    },
    /// Claim a username for this node across the platform.
    Claim {
        username: String,
        reply: flume::Sender<Result<Claim, LinkError>>,
    },
    /// The node that claimed a username, if any.
    Lookup {
        username: String,
        reply: flume::Sender<Result<Option<u16>, LinkError>>,
    },
}

/// A username claim's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours now (or already ours: a retried creation).
    Granted,
    /// Another node's user has it.
    Taken(u16),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// NATS is not reachable now (or the node's set-up on it is not done yet).
    #[error("the cluster (NATS) is unreachable")]
    Unavailable,
    /// No node answers for that node id (stopped, or never started).
    #[error("node {0} is not running")]
    NodeDown(u16),
    #[error("no answer in time")]
    Timeout,
    /// The bridge's command channel is full.
    #[error("too many cluster requests in progress")]
    Busy,
    #[error("{0}")]
    Other(String),
}

/// Per worker: results received and the time the worker spent on them.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerCount {
    pub results: u64,
    pub recognize_us: u64,
}

/// Counters and state of the cluster side of a node (`/metrics`, `/v2/servers`).
#[derive(Default)]
pub struct RemoteStats {
    /// Connected to NATS with the stream and buckets in place: remote jobs may be published.
    pub connected: AtomicBool,
    /// Jobs published (or being published) without a result applied yet.
    pub in_flight: AtomicUsize,
    /// Messages in the job stream (every node's; read with each heartbeat).
    pub stream_depth: AtomicU64,
    pub published: AtomicU64,
    /// Jobs that could not be published (NATS away, no acknowledgement) and ran locally.
    pub fallbacks: AtomicU64,
    /// Remote jobs failed and refunded by this node: no result within `remote_timeout_ms`.
    pub timeouts: AtomicU64,
    /// Results of jobs JetStream delivered more than once (a worker died or was too slow).
    pub redelivered: AtomicU64,
    /// Results for jobs no longer in flight here (a second copy, or after a timeout or a
    /// restart): acknowledged, changing nothing.
    pub stale_results: AtomicU64,
    pub forwarded_out: AtomicU64,
    pub forwarded_in: AtomicU64,
    /// Answers to forwarded requests that charged points and were not acknowledged in time
    /// (their charges given back), and the uploads given back for them.
    pub forward_unacknowledged: AtomicU64,
    pub forward_withdrawn: AtomicU64,
    /// Forwarded charges left untracked (the table of unacknowledged ones was full).
    pub forward_untracked: AtomicU64,
    /// Names this node's store holds that the registry gives to another node (found when the
    /// node claimed its names again after NATS lost them): reported, never shared.
    pub username_conflicts: AtomicU64,
    /// Names claimed again after the registry was found without this node's claims.
    pub names_reclaimed: AtomicU64,
    pub disconnects: AtomicU64,
    pub workers: Mutex<BTreeMap<String, WorkerCount>>,
    /// The live nodes from the heartbeat bucket, as `/v2/servers` lists them.
    pub servers: Mutex<Vec<serde_json::Value>>,
}

impl RemoteStats {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Gives back one remote slot (its job finished, failed or ran locally).
    pub fn release_slot(&self) {
        let was = self.in_flight.fetch_sub(1, Ordering::SeqCst);
        assert!(was >= 1, "a slot is released only once it was taken");
    }
}

/// The shards' handle on the cluster.
pub struct ClusterLink {
    pub node_id: u16,
    pub split: Split,
    /// `overflow`: jobs of a kind go remote once the local queue holds this many.
    pub overflow_depth: usize,
    max_in_flight: usize,
    commands: flume::Sender<Command>,
    pub stats: Arc<RemoteStats>,
    /// Charges of requests other nodes forwarded here, until their answer is acknowledged.
    pub unconfirmed: Arc<Unconfirmed>,
    /// The next number of a request this node forwards (`ForwardTag`).
    next_forward: AtomicU64,
    /// From a forwarded request's arrival, how long its charges wait for the acknowledgement.
    ack_window: std::time::Duration,
}

impl ClusterLink {
    /// The link and the bridge's end of its command channel.
    pub fn new(
        node_id: u16,
        split: Split,
        overflow_depth: usize,
        max_in_flight: usize,
        ack_window: std::time::Duration,
    ) -> (ClusterLink, flume::Receiver<Command>) {
        assert!(max_in_flight > 0 && overflow_depth > 0);
        // Jobs are bounded by the slots; requests (forwards, claims) get as much room again.
        let (commands, receiver) = flume::bounded(2 * max_in_flight);
        let link = ClusterLink {
            node_id,
            split,
            overflow_depth,
            max_in_flight,
            commands,
            stats: Arc::new(RemoteStats::default()),
            unconfirmed: Arc::new(Unconfirmed::default()),
            next_forward: AtomicU64::new(crate::clock::unix_now_ms() << 20),
            ack_window,
        };
        (link, receiver)
    }

    /// Whether a job could go remote now.
    pub fn has_room(&self) -> bool {
        self.stats.is_connected()
            && self.stats.in_flight.load(Ordering::SeqCst) < self.max_in_flight
    }

    /// Hands a job to the bridge, or gives it back (NATS away, every slot taken, the bridge
    /// gone): the caller then runs it locally.
    #[allow(clippy::result_large_err)] // handing the job back is the point
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        if !self.stats.is_connected() {
            return Err(job);
        }
        let max = self.max_in_flight;
        let took = self
            .stats
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now < max).then_some(now + 1)
            });
        if took.is_err() {
            return Err(job);
        }
        match self.commands.try_send(Command::Submit(Box::new(job))) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.stats.release_slot();
                match error.into_inner() {
                    Command::Submit(job) => Err(*job),
                    _ => unreachable!("the command sent"),
                }
            }
        }
    }

    /// A new tag for a request this node forwards.
    pub fn next_forward_tag(&self) -> ForwardTag {
        ForwardTag {
            from: self.node_id,
            id: self.next_forward.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A request another node forwarded (arrived at `arrived`) charged `charge`: given back
    /// unless the forwarding node acknowledges the answer within the window. A lock, but only
    /// on forwarded requests that charge, never on a node's own uploads. The window's end,
    /// or `None` when the table is full (the charge is kept untracked, and counted).
    pub fn forwarded_charge(
        &self,
        tag: ForwardTag,
        arrived: std::time::Instant,
        charge: Charge,
    ) -> Option<std::time::Instant> {
        let deadline = arrived + self.ack_window;
        if !self.unconfirmed.charged(tag, charge, deadline) {
            self.stats.forward_untracked.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(deadline)
    }

    /// Forwards an API request (tagged `tag`) to node `node` and returns its answer's bytes.
    pub async fn forward(
        &self,
        node: u16,
        tag: ForwardTag,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, LinkError> {
        assert_ne!(
            node, self.node_id,
            "a node's own requests are not forwarded"
        );
        self.stats.forwarded_out.fetch_add(1, Ordering::Relaxed);
        self.ask(|reply| Command::Forward {
            node,
            tag,
            request,
            reply,
        })
        .await
    }

    pub async fn claim_username(&self, username: &str) -> Result<Claim, LinkError> {
        let username = username.to_string();
        self.ask(|reply| Command::Claim { username, reply }).await
    }

    pub async fn username_node(&self, username: &str) -> Result<Option<u16>, LinkError> {
        let username = username.to_string();
        self.ask(|reply| Command::Lookup { username, reply }).await
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(flume::Sender<Result<T, LinkError>>) -> Command,
    ) -> Result<T, LinkError> {
        let (reply, answer) = flume::bounded(1);
        self.commands
            .try_send(command(reply))
            .map_err(|_| LinkError::Busy)?;
        // The bridge answers every command (with a timeout of its own); a dropped sender
        // means it stopped.
        answer
            .recv_async()
            .await
            .unwrap_or(Err(LinkError::Unavailable))
    }

    /// The live nodes as the heartbeats list them (this node's own entry is the caller's).
    pub fn servers(&self) -> Vec<serde_json::Value> {
        self.stats
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recognition::cache::CacheKey;
    use crate::recognition::Task;

    fn job(upload_id: u64) -> Job {
        Job {
            upload_id,
            owner_shard: 0,
            task: Task::Detect { image: vec![1] },
            cache_key: CacheKey::ocr([0; 32], Default::default()),
            constraints: Default::default(),
            enqueued_at: std::time::Instant::now(),
        }
    }

    #[test]
    fn remote_slots_are_bounded_and_need_a_connection() {
        let window = std::time::Duration::from_secs(1);
        let (link, commands) = ClusterLink::new(1, Split::Remote, 2, 2, window);
        assert_eq!(
            link.try_submit(job(1)).unwrap_err().upload_id,
            1,
            "not connected"
        );
        link.stats.connected.store(true, Ordering::SeqCst);
        assert!(link.has_room());
        link.try_submit(job(2)).unwrap();
        link.try_submit(job(3)).unwrap();
        assert!(!link.has_room());
        assert_eq!(
            link.try_submit(job(4)).unwrap_err().upload_id,
            4,
            "slots full"
        );
        assert_eq!(commands.len(), 2);
        link.stats.release_slot();
        assert!(link.has_room());
        drop(commands);
        assert_eq!(
            link.try_submit(job(5)).unwrap_err().upload_id,
            5,
            "bridge gone"
        );
        assert_eq!(link.stats.in_flight.load(Ordering::SeqCst), 1);
    }
}
