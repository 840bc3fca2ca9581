//! The node's NATS thread: one tokio runtime on a thread of its own (the shards never run
//! tokio), joined to the shards by the link's bounded channel one way and by the shards'
//! result inboxes and a `serve` callback the other way.
//!
//! A remote job's life here: `Submit` -> recorded in flight (with its deadline) -> published
//! to JetStream with its upload id as message id (a retried publish is dropped by the
//! stream) -> a worker's result arrives on `aiocr.results.<node>` -> handed to the owner
//! shard, which applies it (`finish_upload`, idempotent) -> the worker is answered and only
//! then acknowledges the job. A job with no result by its deadline is failed here (refunded);
//! a publish that fails runs the job locally. Whichever comes first is the only one applied:
//! the in-flight table gives each job out once, and the store finishes an upload once.

use super::confirm::{Charge, Settlement, Unconfirmed};
use super::link::{Claim, Command, LinkError, RemoteStats, WorkerCount};
use super::model_transfer::{self, ObjectsSeed};
use super::registry::LocalNames;
use super::wire::ForwardTag;
use super::{names, nats, wire};
use crate::config::Config;
use crate::contract::ApiError;
use crate::recognition::cache::CacheKey;
use crate::recognition::{Job, JobFailure, JobQueues, JobResult, Kind, ResultSink, Task};
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often jobs past their deadline are looked for.
const SWEEP_PERIOD: Duration = Duration::from_millis(100);
/// Most forwarded requests and results handled at once (each waits for a shard).
const MAX_CONCURRENT_HANDLERS: usize = 4096;

/// Serves a forwarded API request on this node: the request's bytes in, a channel that
/// brings the answer's bytes.
pub type Serve = Arc<dyn Fn(Vec<u8>) -> flume::Receiver<Vec<u8>> + Send + Sync>;
/// This node as `/v2/servers` lists it (written with each heartbeat).
pub type Describe = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;
/// Ends, on shard `shard`, the wait of uploads forwarded requests charged: kept (their
/// answer acknowledged) or given back (not in time, with the reason); false when the
/// shard's inbox is full (tried again).
pub type Settle = Arc<dyn Fn(u16, Vec<u64>, Settlement) -> bool + Send + Sync>;

/// What the bridge starts from.
pub struct BridgeSeed {
    pub config: Arc<Config>,
    pub commands: flume::Receiver<Command>,
    pub stats: Arc<RemoteStats>,
    /// The shards' result inboxes (remote results and failures go there like local ones).
    pub results: ResultSink,
    /// Where a job goes when it cannot be published.
    pub local: JobQueues,
    pub serve: Serve,
    pub describe: Describe,
    pub settle: Settle,
    pub local_names: LocalNames,
    pub shard_count: u16,
    /// Charges of forwarded requests awaiting acknowledgement (the link's table).
    pub unconfirmed: Arc<Unconfirmed>,
    /// The operations on the models bucket the node's model catalog asks for.
    pub objects: ObjectsSeed,
}

/// The running bridge thread, as the node's start-up holds it until the stop.
pub struct BridgeThread {
    thread: std::thread::JoinHandle<()>,
    /// Dropped to tell the bridge to stop.
    stop: flume::Sender<()>,
    grace: Duration,
}

/// A published job, until its result is applied or its deadline passes.
struct InFlight {
    shard: u16,
    kind: Kind,
    cache_key: CacheKey,
    constraints: crate::engine::AnswerConstraints,
    enqueued_at: Instant,
    deadline: Instant,
}

/// Everything the bridge's tasks share.
struct Bridge {
    config: Arc<Config>,
    node: u16,
    client: async_nats::Client,
    js: jetstream::Context,
    stats: Arc<RemoteStats>,
    results: ResultSink,
    local: JobQueues,
    in_flight: Mutex<HashMap<u64, InFlight>>,
    /// The buckets, once created or found (NATS may be away at start).
    buckets: Mutex<Option<(kv::Store, kv::Store)>>,
    handlers: tokio::sync::Semaphore,
    settle: Settle,
    local_names: LocalNames,
    shard_count: u16,
    unconfirmed: Arc<Unconfirmed>,
    /// The registry holds this node's claims (its marker found, or every name claimed again
    /// since the buckets were last set up).
    names_in_registry: AtomicBool,
    /// A task claiming this node's names again is running.
    reclaiming: AtomicBool,
}

/// Starts the bridge thread; it connects in the background (a node starts, and serves with
/// its local threads, whether or not NATS is up).
pub fn start(seed: BridgeSeed) -> Result<BridgeThread, String> {
    // Built here, not on the thread, so that a runtime that cannot start is an error of
    // `start`, not a panic of the thread.
    let runtime = super::nats::runtime()?;
    let (stop, stopped) = flume::bounded::<()>(0);
    let grace = Duration::from_millis(seed.config.cluster.nats_stop_grace_ms);
    let thread = std::thread::Builder::new()
        .name("aiocr-nats".into())
        .spawn(move || {
            runtime.block_on(run(seed, stopped));
            // Not the runtime's drop, which would wait for blocking tasks (a name being
            // resolved) as long as they take.
            runtime.shutdown_background();
        })
        .map_err(|e| format!("cannot start the NATS thread: {e}"))?;
    Ok(BridgeThread {
        thread,
        stop,
        grace,
    })
}

/// Room beyond `nats_stop_grace_ms` for the bridge thread to end once its grace is over.
const STOP_MARGIN: Duration = Duration::from_millis(500);
/// How often the stop looks whether the bridge thread has ended.
const STOP_POLL: Duration = Duration::from_millis(5);

impl BridgeThread {
    /// Stops the bridge (called once the shards have stopped and voided what was pending)
    /// and waits for its thread at most `nats_stop_grace_ms` and a margin: whatever NATS is
    /// doing, the node's stop never waits on the network longer. Returns whether the thread
    /// ended; one that did not is left behind (the process is about to exit).
    pub fn stop(self) -> bool {
        drop(self.stop);
        let deadline = Instant::now() + self.grace + STOP_MARGIN;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(STOP_POLL);
        }
        match self.thread.is_finished() {
            true => self.thread.join().is_ok(),
            false => {
                eprintln!("aiocr: nats: the NATS thread did not end within its grace; leaving it");
                false
            }
        }
    }
}

async fn run(seed: BridgeSeed, stopped: flume::Receiver<()>) {
    let node = seed.config.node.node_id;
    let stats = seed.stats.clone();
    let on_event = move |event: async_nats::Event| match event {
        async_nats::Event::Disconnected => {
            stats.connected.store(false, Ordering::SeqCst);
            stats.disconnects.fetch_add(1, Ordering::Relaxed);
            eprintln!("aiocr: nats: disconnected; recognition stays local until it is back");
        }
        async_nats::Event::Connected => eprintln!("aiocr: nats: connected"),
        _ => {}
    };
    let client = match nats::connect(&seed.config, &format!("aiocr-node-{node}"), on_event).await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("aiocr: {error}; this node runs without the cluster");
            return;
        }
    };
    let bridge = Arc::new(Bridge {
        node,
        js: jetstream::new(client.clone()),
        client,
        stats: seed.stats.clone(),
        results: seed.results,
        local: seed.local,
        in_flight: Mutex::new(HashMap::new()),
        buckets: Mutex::new(None),
        handlers: tokio::sync::Semaphore::new(MAX_CONCURRENT_HANDLERS),
        config: seed.config,
        settle: seed.settle,
        local_names: seed.local_names,
        shard_count: seed.shard_count,
        unconfirmed: seed.unconfirmed,
        names_in_registry: AtomicBool::new(false),
        reclaiming: AtomicBool::new(false),
    });
    tokio::spawn(results_loop(bridge.clone()));
    tokio::spawn(forwarded_loop(bridge.clone(), seed.serve));
    tokio::spawn(acks_loop(bridge.clone()));
    tokio::spawn(heartbeat_loop(bridge.clone(), seed.describe));
    tokio::spawn(sweep_loop(bridge.clone()));
    tokio::spawn(model_transfer::objects_loop(
        bridge.js.clone(),
        bridge.config.clone(),
        seed.objects,
    ));
    let commands = async {
        while let Ok(command) = seed.commands.recv_async().await {
            tokio::spawn(handle_command(bridge.clone(), command));
        }
    };
    let stop = async {
        let _ = stopped.recv_async().await;
    };
    tokio::select! {
        _ = commands => {},
        _ = stop => {},
    }
    bridge.stats.connected.store(false, Ordering::SeqCst);
    close(&bridge).await;
}

/// The bridge's last step at the node's stop: sends what the client still buffers (answers
/// to workers and forwarding nodes, publishes) within `nats_stop_grace_ms`, never longer,
/// whatever NATS is doing. What is owed to NATS after that is what a killed node leaves: its
/// shards have voided the uploads still pending (refunded), a result that arrives for one
/// later is stale, and a worker not answered gets its job delivered again.
async fn close(bridge: &Bridge) {
    let grace = Duration::from_millis(bridge.config.cluster.nats_stop_grace_ms);
    let in_flight = bridge.lock_in_flight().len();
    if in_flight > 0 {
        eprintln!(
            "aiocr: nats: {in_flight} remote job(s) without a result: voided by their shards"
        );
    }
    // Not connected: nothing can be sent, and waiting for a reconnection is waiting on the
    // network.
    if bridge.client.connection_state() != async_nats::connection::State::Connected {
        return;
    }
    if tokio::time::timeout(grace, bridge.client.flush())
        .await
        .is_err()
    {
        eprintln!(
            "aiocr: nats: not flushed within nats_stop_grace_ms ({} ms): stopping without it",
            grace.as_millis()
        );
    }
}

async fn handle_command(bridge: Arc<Bridge>, command: Command) {
    match command {
        Command::Submit(job) => publish(&bridge, *job).await,
        Command::Forward {
            node,
            tag,
            request,
            reply,
        } => {
            let _ = reply.send(forward(&bridge, node, tag, request).await);
        }
        Command::Claim { username, reply } => {
            let _ = reply.send(claim(&bridge, &username).await);
        }
        Command::Lookup { username, reply } => {
            let _ = reply.send(lookup(&bridge, &username).await);
        }
    }
}

impl Bridge {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.cluster.nats_request_timeout_ms)
    }

    /// Answers a request (a worker's result, another node's forwarded request) within
    /// `nats_request_timeout_ms`: a publish waits for room in the client's queue, which is
    /// full while NATS is slow or away. An answer not sent is the asker's timeout.
    async fn reply(&self, subject: async_nats::Subject, payload: bytes::Bytes) {
        let _ = tokio::time::timeout(self.timeout(), self.client.publish(subject, payload)).await;
    }

    /// Fails a job without a result: its upload is refunded by its owner shard.
    fn fail(&self, upload_id: u64, job: InFlight, reason: String) {
        let result = JobResult {
            upload_id,
            owner_shard: job.shard,
            kind: job.kind,
            outcome: Err(JobFailure::Remote {
                reason,
                code: ApiError::RecognitionFailed,
            }),
            cache_hit: false,
            queued_us: job.enqueued_at.elapsed().as_micros() as u64,
            recognize_us: 0,
            batch_size: 1,
            cache_key: job.cache_key,
            constraints: job.constraints,
            receipt: None,
        };
        self.results.deliver(result);
        self.stats.release_slot();
    }
}

/// Publishes a job; when that fails, runs it locally (or fails it when the local queue is
/// full too).
async fn publish(bridge: &Bridge, job: Job) {
    let config = &bridge.config;
    let timeout_ms = config.cluster.remote_timeout_ms;
    let deadline_ms = crate::clock::unix_now_ms() + timeout_ms;
    let subject = match &job.task {
        // A user's model: any worker takes it (and fetches its files by digest).
        Task::Ocr { options, .. } if options.custom.is_some() => {
            names::CUSTOM_JOBS_SUBJECT.to_string()
        }
        Task::Ocr { options, .. } => names::job_subject(Kind::Ocr, &options.model),
        task => names::job_subject(task.kind(), ""),
    };
    let payload = wire::encode_job(&job, bridge.node, deadline_ms);
    let fits = payload.len() <= bridge.client.server_info().max_payload;
    let upload_id = job.upload_id;
    let in_flight = InFlight {
        shard: job.owner_shard,
        kind: job.task.kind(),
        cache_key: job.cache_key.clone(),
        constraints: job.constraints.clone(),
        enqueued_at: job.enqueued_at,
        deadline: job.enqueued_at + Duration::from_millis(timeout_ms),
    };
    // Recorded before the publish: a fast worker's result must find it.
    bridge.lock_in_flight().insert(upload_id, in_flight);
    let published = fits && publish_acknowledged(bridge, subject, upload_id, payload).await;
    if published {
        bridge.stats.published.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // Not in the table any more: its result came first after all (the acknowledgement was
    // lost, not the job).
    let Some(in_flight) = bridge.lock_in_flight().remove(&upload_id) else {
        return;
    };
    bridge.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
    match bridge.local.try_submit(job) {
        Ok(()) => bridge.stats.release_slot(),
        Err(_) => bridge.fail(
            upload_id,
            in_flight,
            "NATS unreachable and the local recognition queue full".into(),
        ),
    }
}

async fn publish_acknowledged(bridge: &Bridge, subject: String, id: u64, payload: Vec<u8>) -> bool {
    let message = jetstream::message::PublishMessage::build()
        .payload(payload.into())
        .message_id(id.to_string());
    let acknowledged = async {
        let ack = bridge.js.send_publish(subject, message).await.ok()?;
        ack.await.ok()
    };
    matches!(
        tokio::time::timeout(bridge.timeout(), acknowledged).await,
        Ok(Some(_))
    )
}

impl Bridge {
    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<u64, InFlight>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Results from the workers, each answered once its owner shard applied it.
async fn results_loop(bridge: Arc<Bridge>) {
    let subject = names::results_subject(bridge.node);
    let mut results = match bridge.client.subscribe(subject.clone()).await {
        Ok(subscriber) => subscriber,
        Err(error) => {
            eprintln!("aiocr: nats: subscribing to {subject}: {error}");
            return;
        }
    };
    while let Some(message) = results.next().await {
        let Ok(permit) = bridge.handlers.try_acquire() else {
            // No answer: the worker retries, then JetStream redelivers.
            continue;
        };
        permit.forget();
        let bridge = bridge.clone();
        tokio::spawn(async move {
            let answer = apply_result(&bridge, &message.payload).await;
            if let Some(reply) = message.reply {
                bridge.reply(reply, answer.into()).await;
            }
            bridge.handlers.add_permits(1);
        });
    }
}

/// Applies one worker result; returns the answer for the worker (`ok`: acknowledge the job).
async fn apply_result(bridge: &Bridge, bytes: &[u8]) -> &'static str {
    let result = match wire::decode_result(bytes) {
        Ok(result) if result.node == bridge.node => result,
        Ok(_) => return "wrong node",
        Err(error) => {
            eprintln!("aiocr: nats: a result that does not parse: {error}");
            return "malformed";
        }
    };
    count_worker(&bridge.stats, &result);
    let Some(job) = bridge.lock_in_flight().remove(&result.upload_id) else {
        // Applied already (a second copy), failed by its deadline, or of an earlier run of
        // this node (voided at start): nothing to change.
        bridge.stats.stale_results.fetch_add(1, Ordering::Relaxed);
        return "ok";
    };
    assert_eq!(job.shard, result.shard, "a result names its job's shard");
    let (receipt, applied) = flume::bounded(1);
    let applied_result = JobResult {
        upload_id: result.upload_id,
        owner_shard: job.shard,
        kind: job.kind,
        outcome: result.outcome.into_outcome(),
        cache_hit: false,
        queued_us: result.queued_us,
        recognize_us: result.recognize_us,
        batch_size: result.batch_size,
        cache_key: job.cache_key,
        constraints: job.constraints,
        receipt: Some(receipt),
    };
    // The shard inbox has room for every job in flight (boot.rs sizes it): no wait here.
    if bridge.results.deliver(applied_result) {
        // A stopping shard drops the result (and voids the upload): the sender goes away.
        let _ = applied.recv_async().await;
    }
    bridge.stats.release_slot();
    "ok"
}

fn count_worker(stats: &RemoteStats, result: &wire::WireResult) {
    if result.delivered > 1 {
        stats.redelivered.fetch_add(1, Ordering::Relaxed);
    }
    let mut workers = stats
        .workers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Bounded: a worker name is at most 64 bytes and only so many workers exist; a flood
    // of made-up names is cut at 1024 entries.
    if workers.len() >= 1024 && !workers.contains_key(&result.worker) {
        return;
    }
    let count: &mut WorkerCount = workers.entry(result.worker.clone()).or_default();
    count.results += 1;
    count.recognize_us += result.recognize_us;
}

/// Fails the jobs whose deadline passed without a result.
async fn sweep_loop(bridge: Arc<Bridge>) {
    loop {
        tokio::time::sleep(SWEEP_PERIOD).await;
        let now = Instant::now();
        let expired: Vec<(u64, InFlight)> = {
            let mut table = bridge.lock_in_flight();
            let ids: Vec<u64> = table
                .iter()
                .filter(|(_, job)| job.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| table.remove(&id).map(|job| (id, job)))
                .collect()
        };
        for (upload_id, job) in expired {
            bridge.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            let reason = format!(
                "no result from the recognition workers within {} ms",
                bridge.config.cluster.remote_timeout_ms
            );
            bridge.fail(upload_id, job, reason);
        }
        give_back_unacknowledged(&bridge, now);
    }
}

/// Gives back the charges of forwarded requests whose answers were not acknowledged within
/// the window (cluster/confirm.rs): the forwarding node answered its client 5001.
fn give_back_unacknowledged(bridge: &Bridge, now: Instant) {
    for (tag, charges) in bridge.unconfirmed.expired(now) {
        let reason = format!(
            "given back: node {}, which forwarded the request, did not acknowledge the answer \
             within nats_request_timeout_ms + forward_ack_timeout_ms ({} ms)",
            tag.from,
            bridge.config.cluster.forward_ack_window().as_millis()
        );
        let mut left = Vec::new();
        for (shard, upload_ids) in by_shard(charges) {
            let count = upload_ids.len() as u64;
            let settlement = Settlement::GivenBack(reason.clone());
            match (bridge.settle)(shard, upload_ids.clone(), settlement) {
                true => bridge
                    .stats
                    .forward_withdrawn
                    .fetch_add(count, Ordering::Relaxed),
                false => {
                    left.extend(
                        upload_ids
                            .into_iter()
                            .map(|upload_id| Charge { shard, upload_id }),
                    );
                    continue;
                }
            };
        }
        if left.is_empty() {
            bridge
                .stats
                .forward_unacknowledged
                .fetch_add(1, Ordering::Relaxed);
            eprintln!("aiocr: nats: the answer to request {} of node {} was not acknowledged: its charges given back", tag.id, tag.from);
        } else {
            // A shard's inbox was full: tried again at the next sweep.
            bridge.unconfirmed.retry(tag, left, now + SWEEP_PERIOD);
        }
    }
}

fn by_shard(charges: Vec<Charge>) -> BTreeMap<u16, Vec<u64>> {
    let mut by_shard: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for charge in charges {
        by_shard
            .entry(charge.shard)
            .or_default()
            .push(charge.upload_id);
    }
    by_shard
}

/// How many sweeps an acknowledged charge's shard is asked again while its inbox is full.
const KEEP_RETRIES: u32 = 100;

/// Acknowledgements of the answers this node sent to forwarding nodes: the table gives each
/// request's charges out once (to here or to the sweep), and their shards end their wait.
async fn acks_loop(bridge: Arc<Bridge>) {
    let subject = names::node_ack_subject(bridge.node);
    let mut acks = match bridge.client.subscribe(subject.clone()).await {
        Ok(subscriber) => subscriber,
        Err(error) => {
            eprintln!("aiocr: nats: subscribing to {subject}: {error}");
            return;
        }
    };
    while let Some(message) = acks.next().await {
        match wire::decode_ack(&message.payload) {
            Ok(tag) => {
                if let Some(charges) = bridge.unconfirmed.acknowledged(tag) {
                    for (shard, upload_ids) in by_shard(charges) {
                        if !(bridge.settle)(shard, upload_ids.clone(), Settlement::Kept) {
                            tokio::spawn(keep_later(bridge.clone(), shard, upload_ids));
                        }
                    }
                }
            }
            Err(error) => eprintln!("aiocr: nats: {error}"),
        }
    }
}

/// Asks a shard whose inbox was full again, a sweep apart, at most `KEEP_RETRIES` times. A
/// wait not ended on disk is given back at the node's next start: its client was answered,
/// so the operator loses that charge; the client is never charged twice.
async fn keep_later(bridge: Arc<Bridge>, shard: u16, upload_ids: Vec<u64>) {
    for _ in 0..KEEP_RETRIES {
        tokio::time::sleep(SWEEP_PERIOD).await;
        if (bridge.settle)(shard, upload_ids.clone(), Settlement::Kept) {
            return;
        }
    }
    eprintln!(
        "aiocr: nats: shard {shard} too busy to record {} acknowledged charge(s): they are \
         given back at the node's next start",
        upload_ids.len()
    );
}

/// Requests forwarded by other nodes for this node's users.
async fn forwarded_loop(bridge: Arc<Bridge>, serve: Serve) {
    let subject = names::node_subject(bridge.node);
    let mut requests = match bridge.client.subscribe(subject.clone()).await {
        Ok(subscriber) => subscriber,
        Err(error) => {
            eprintln!("aiocr: nats: subscribing to {subject}: {error}");
            return;
        }
    };
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply else { continue };
        let Ok(permit) = bridge.handlers.try_acquire() else {
            continue; // the forwarding node times out and answers 5001
        };
        permit.forget();
        bridge.stats.forwarded_in.fetch_add(1, Ordering::Relaxed);
        let answer = serve(message.payload.to_vec());
        let bridge = bridge.clone();
        tokio::spawn(async move {
            if let Ok(bytes) = answer.recv_async().await {
                bridge.reply(reply, bytes.into()).await;
            }
            bridge.handlers.add_permits(1);
        });
    }
}

/// Forwards a request to its user's node and acknowledges the answer, if it came within
/// `nats_request_timeout_ms`. One that came later (this node was paused, or slow) is not
/// acknowledged: the client is answered 5001, and the owner gives the request's charges
/// back.
async fn forward(
    bridge: &Bridge,
    node: u16,
    tag: ForwardTag,
    request: Vec<u8>,
) -> Result<Vec<u8>, LinkError> {
    if !bridge.stats.is_connected() {
        return Err(LinkError::Unavailable);
    }
    let started = Instant::now();
    let asked = bridge
        .client
        .request(names::node_subject(node), request.into());
    // Bounded here, not only by the client's request timeout: that one starts after the
    // request is queued, and the queue is full while NATS is slow or away.
    let Ok(answered) = tokio::time::timeout(bridge.timeout(), asked).await else {
        return Err(LinkError::Timeout);
    };
    match answered {
        Ok(_) if started.elapsed() > bridge.timeout() => Err(LinkError::Timeout),
        Ok(message) => {
            let ack = wire::encode_ack(tag);
            bridge
                .reply(names::node_ack_subject(node).into(), ack.into())
                .await;
            Ok(message.payload.to_vec())
        }
        Err(error) => match error.kind() {
            async_nats::RequestErrorKind::NoResponders => Err(LinkError::NodeDown(node)),
            async_nats::RequestErrorKind::TimedOut => Err(LinkError::Timeout),
            _ => Err(LinkError::Other(error.to_string())),
        },
    }
}

fn usernames(bridge: &Bridge) -> Result<kv::Store, LinkError> {
    let buckets = bridge
        .buckets
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match (&*buckets, bridge.stats.is_connected()) {
        (Some((_, usernames)), true) => Ok(usernames.clone()),
        _ => Err(LinkError::Unavailable),
    }
}

/// Claims `username` for this node (see `nats::claim`).
async fn claim(bridge: &Bridge, username: &str) -> Result<Claim, LinkError> {
    let store = usernames(bridge)?;
    tokio::time::timeout(bridge.timeout(), nats::claim(&store, bridge.node, username))
        .await
        .unwrap_or(Err(LinkError::Timeout))
}

async fn lookup(bridge: &Bridge, username: &str) -> Result<Option<u16>, LinkError> {
    let store = usernames(bridge)?;
    tokio::time::timeout(bridge.timeout(), nats::claimed_by(&store, username))
        .await
        .unwrap_or(Err(LinkError::Timeout))
}

/// Every `heartbeat_ms`: set up the stream and buckets if not yet done, write this node's
/// heartbeat, read the others' and the stream's depth, and say whether remote jobs may go
/// out: only while the heartbeat is answered. A connection that is up to a NATS that does
/// not answer (paused, cut off without a reset, overloaded) would otherwise make every job
/// wait out `nats_request_timeout_ms` before it runs locally.
async fn heartbeat_loop(bridge: Arc<Bridge>, describe: Describe) {
    let period = Duration::from_millis(bridge.config.cluster.heartbeat_ms);
    let mut jobs_stream: Option<jetstream::stream::Stream> = None;
    loop {
        let up = bridge.client.connection_state() == async_nats::connection::State::Connected;
        if up && jobs_stream.is_none() {
            jobs_stream = set_up(&bridge).await;
            // Buckets set up anew may be a NATS that lost its store: look for the claims.
            bridge.names_in_registry.store(false, Ordering::SeqCst);
        }
        let ready = match (up, jobs_stream.as_mut()) {
            (true, Some(stream)) => beat(&bridge, &describe, stream).await,
            _ => false,
        };
        if !ready {
            // Set up again on the next beat: a NATS that lost its store (every server
            // restarted without its files) has no stream or buckets any more.
            jobs_stream = None;
        }
        if ready
            && !bridge.names_in_registry.load(Ordering::SeqCst)
            && !bridge.reclaiming.swap(true, Ordering::SeqCst)
        {
            tokio::spawn(reclaim_names(bridge.clone()));
        }
        let was = bridge.stats.connected.swap(ready, Ordering::SeqCst);
        match (was, ready) {
            (false, true) => eprintln!("aiocr: nats: ready (job stream and buckets in place)"),
            (true, false) => {
                eprintln!("aiocr: nats: not answering; recognition stays local until it does")
            }
            _ => {}
        }
        tokio::time::sleep(period).await;
    }
}

async fn set_up(bridge: &Bridge) -> Option<jetstream::stream::Stream> {
    let made = async {
        let stream = nats::ensure_jobs_stream(&bridge.js, &bridge.config).await?;
        let buckets = nats::ensure_buckets(&bridge.js, &bridge.config).await?;
        Ok::<_, String>((stream, buckets))
    };
    match tokio::time::timeout(bridge.timeout(), made).await {
        Ok(Ok((stream, buckets))) => {
            *bridge
                .buckets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(buckets);
            Some(stream)
        }
        Ok(Err(error)) => {
            eprintln!("aiocr: nats: setting up: {error}");
            None
        }
        Err(_) => None,
    }
}

/// Sees that the registry holds this node's names (cluster/registry.rs); retried at the next
/// heartbeat when it could not finish.
async fn reclaim_names(bridge: Arc<Bridge>) {
    let registry = bridge
        .buckets
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        .map(|(_, usernames)| usernames.clone());
    if let Some(registry) = registry {
        let restore = super::registry::Restore {
            registry: &registry,
            node: bridge.node,
            local_names: &bridge.local_names,
            shard_count: bridge.shard_count,
            timeout: bridge.timeout(),
        };
        match restore.run().await {
            Ok(restored) => {
                report_restored(&bridge, &restored);
                bridge.names_in_registry.store(true, Ordering::SeqCst);
            }
            Err(error) => eprintln!(
                "aiocr: nats: claiming this node's usernames again: {error} (tried again)"
            ),
        }
    }
    bridge.reclaiming.store(false, Ordering::SeqCst);
}

fn report_restored(bridge: &Bridge, restored: &super::registry::Restored) {
    if restored.marked {
        return;
    }
    let stats = &bridge.stats;
    stats
        .names_reclaimed
        .fetch_add(restored.claimed, Ordering::Relaxed);
    stats
        .username_conflicts
        .store(restored.conflicts.len() as u64, Ordering::Relaxed);
    eprintln!(
        "aiocr: nats: the usernames registry had no claims of this node: {} name(s) claimed \
         again, {} held by another node",
        restored.claimed,
        restored.conflicts.len()
    );
    for (name, node) in &restored.conflicts {
        eprintln!(
            "aiocr: nats: CONFLICT: username {name:?} of this node is claimed by node {node}: \
             logins through other nodes reach node {node}'s user; rename one of the two"
        );
    }
    let data_dir = &bridge.config.store.data_dir;
    if let Err(error) = super::registry::record_conflicts(data_dir, &restored.conflicts) {
        eprintln!("aiocr: nats: recording the username conflicts: {error}");
    }
}

/// One heartbeat; whether NATS answered it in time.
async fn beat(
    bridge: &Bridge,
    describe: &Describe,
    stream: &mut jetstream::stream::Stream,
) -> bool {
    let nodes = match &*bridge
        .buckets
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
    {
        Some((nodes, _)) => nodes.clone(),
        None => return false,
    };
    let own = describe();
    let work = async {
        let bytes = serde_json::to_vec(&own).expect("json");
        nodes
            .put(names::node_key(bridge.node), bytes.into())
            .await
            .map_err(|e| e.to_string())?;
        let servers = read_servers(&nodes).await?;
        *bridge
            .stats
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = servers;
        let info = stream.info().await.map_err(|e| e.to_string())?;
        bridge
            .stats
            .stream_depth
            .store(info.state.messages, Ordering::Relaxed);
        Ok::<(), String>(())
    };
    match tokio::time::timeout(bridge.timeout(), work).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            eprintln!("aiocr: nats: heartbeat: {error}");
            false
        }
        Err(_) => {
            eprintln!("aiocr: nats: heartbeat timed out");
            false
        }
    }
}

/// Every node's latest heartbeat, in node order. The keys are the bucket stream's subjects
/// (one stream-info request), not `kv::Store::keys`: that opens an ephemeral consumer on each
/// call, which nats-server keeps for 30 s after it is dropped, and whose generated name
/// nats-server before 2.9.21 keeps for good (a hash cache; nats-server issue 4289, Debian
/// 12 ships 2.9.10): one consumer a heartbeat per node was memory nats-server never gave back.
async fn read_servers(nodes: &kv::Store) -> Result<Vec<serde_json::Value>, String> {
    let prefix = nodes.prefix.as_str();
    let mut keys: Vec<String> = nodes
        .stream
        .info_with_subjects(format!("{prefix}>"))
        .await
        .map_err(|e| e.to_string())?
        .filter_map(|subject| async move {
            let (subject, _) = subject.ok()?;
            subject.strip_prefix(prefix).map(str::to_string)
        })
        .collect()
        .await;
    keys.sort_by_key(|key| names::node_of_key(key));
    let mut servers = Vec::with_capacity(keys.len());
    for key in keys {
        if let Ok(Some(value)) = nodes.get(&key).await {
            if let Ok(server) = serde_json::from_slice(&value) {
                servers.push(server);
            }
        }
    }
    Ok(servers)
}
