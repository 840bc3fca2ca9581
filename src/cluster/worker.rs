//! `aiocr worker --nats URL`: the recognition engine on any machine, fed from the JetStream
//! work queue. No HTTP API, no ledger: jobs come with their images, results go back to the
//! job's node by request/reply, and a job is acknowledged only after its node answered that
//! the result is applied (or that it no longer needs it).
//!
//! The jobs run on the very recognition threads a node runs (`recognition::start`): a local
//! bounded queue per kind between this process's NATS side and the threads, so batching and
//! detection caps are the node's own rules. The NATS side takes a job only when it has a
//! slot (`--max-in-flight`); while a job waits or runs here the worker tells JetStream it is
//! still in progress (every third of the ack deadline), so a slow but live worker keeps its
//! jobs and only a dead or cut-off one has them delivered again.

use super::model_transfer::ModelCache;
use super::{names, nats, wire};
use crate::config::{Config, ConfigArgs};
use crate::contract::ApiError;
use crate::engine::{available_models, detection_model_path};
use crate::recognition::cache::CacheKey;
use crate::recognition::{
    self, Job, JobFailure, JobQueues, JobResult, Kind, ResultSink, ThreadContext,
};
use async_nats::jetstream::{self, consumer, AckKind};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Attempts to hand one result to its node before the job is given back to the queue.
const RESULT_ATTEMPTS: u32 = 3;
/// Pause before a failed consumer is opened again.
const CONSUMER_RETRY: Duration = Duration::from_millis(500);
/// How long a job given back (no node answered) waits before its next delivery.
const NAK_DELAY: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// NATS server(s), e.g. nats://10.0.0.5:4222 (config key `nats_url`).
    #[arg(long)]
    pub nats: Option<String>,
    /// Jobs to take: a comma list of `ocr:MODEL`, `detect`, `slide`, `custom` (users'
    /// models, fetched from NATS); default every model installed, detection when its model
    /// is, slides and users' models.
    #[arg(long)]
    pub only: Option<String>,
    /// This worker's name in the nodes' `/metrics` (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
    /// Most jobs held at once (default: recognition threads x max_batch + threads).
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// A job this worker holds: the JetStream messages that carry it (two when it was delivered
/// again while still here), where its result goes, and its slot.
struct Held {
    messages: Vec<jetstream::Message>,
    node: u16,
    shard: u16,
    delivered: u32,
    _slot: OwnedSemaphorePermit,
}

struct Worker {
    config: Config,
    name: String,
    client: async_nats::Client,
    queues: JobQueues,
    held: Mutex<HashMap<u64, Held>>,
    slots: Arc<Semaphore>,
    /// Users' models, fetched on their first job.
    models: ModelCache,
}

/// The command: 0 after SIGTERM/SIGINT, 2 when it cannot start.
pub fn run(args: WorkerArgs) -> i32 {
    let extra: Vec<(&str, String)> = args
        .nats
        .iter()
        .map(|url| ("nats_url", url.clone()))
        .collect();
    let config = match args.config.load(&extra) {
        Ok(config) if !config.cluster.nats_url.is_empty() => config,
        Ok(_) => {
            eprintln!("aiocr worker: --nats URL (or nats_url) is required");
            return 2;
        }
        Err(message) => {
            eprintln!("aiocr worker: {message}");
            return 2;
        }
    };
    let subjects = match job_subjects(&config, args.only.as_deref()) {
        Ok(subjects) => subjects,
        Err(message) => {
            eprintln!("aiocr worker: {message}");
            return 2;
        }
    };
    let runtime = match super::nats::runtime() {
        Ok(runtime) => runtime,
        Err(message) => {
            eprintln!("aiocr worker: {message}");
            return 2;
        }
    };
    match runtime.block_on(serve(config, args, subjects)) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("aiocr worker: {message}");
            2
        }
    }
}

/// The subjects this worker takes.
fn job_subjects(config: &Config, only: Option<&str>) -> Result<Vec<String>, String> {
    let models = available_models(&config.node.model_dir);
    let detection = detection_model_path(&config.node.model_dir).exists();
    let Some(only) = only else {
        let mut subjects: Vec<String> = models
            .iter()
            .map(|model| names::job_subject(Kind::Ocr, model))
            .collect();
        if detection {
            subjects.push(names::job_subject(Kind::Detect, ""));
        }
        subjects.push(names::job_subject(Kind::Slide, ""));
        subjects.push(names::CUSTOM_JOBS_SUBJECT.to_string());
        return Ok(subjects);
    };
    only.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once(':') {
            Some(("ocr", model)) if models.iter().any(|m| m == model) => {
                Ok(names::job_subject(Kind::Ocr, model))
            }
            Some(("ocr", model)) => Err(format!("model {model:?} is not installed here")),
            None if item == "detect" && detection => Ok(names::job_subject(Kind::Detect, "")),
            None if item == "slide" => Ok(names::job_subject(Kind::Slide, "")),
            None if item == "custom" => Ok(names::CUSTOM_JOBS_SUBJECT.to_string()),
            _ => Err(format!(
                "--only {item:?}: expected ocr:MODEL, detect, slide or custom"
            )),
        })
        .collect()
}

async fn serve(config: Config, args: WorkerArgs, subjects: Vec<String>) -> Result<(), String> {
    let layout = config.recognition_layout(&[]);
    let threads = layout.cores.len();
    let max_in_flight = args
        .max_in_flight
        .unwrap_or(threads * config.recognition.max_batch + threads)
        .max(1);
    let (queues, jobs) = JobQueues::bounded([max_in_flight; 3]);
    // Every job held can have one result waiting, and no more.
    let (sink, mut inboxes) = ResultSink::new(1, 3 * max_in_flight);
    let results = inboxes.pop().expect("one inbox");
    let (stop_threads, threads_stop) = crossbeam_channel::bounded::<()>(0);
    let context = ThreadContext {
        jobs,
        results: sink,
        model_dir: config.node.model_dir.clone(),
        stop: threads_stop,
    };
    let recognition = recognition::start(context, layout)?;
    let name = args.name.unwrap_or_else(default_name);
    let client = nats::connect(&config, &format!("aiocr-worker-{name}"), |event| {
        if matches!(event, async_nats::Event::Disconnected) {
            eprintln!("aiocr worker: nats: disconnected (reconnecting)");
        }
    })
    .await?;
    let js = jetstream::new(client.clone());
    let stream = loop {
        match nats::ensure_jobs_stream(&js, &config).await {
            Ok(stream) => break stream,
            Err(error) => {
                eprintln!("aiocr worker: {error}; trying again");
                tokio::time::sleep(CONSUMER_RETRY).await;
            }
        }
    };
    let models = ModelCache::open(Arc::new(config.clone()), js.clone())?;
    let worker = Arc::new(Worker {
        models,
        name: name.clone(),
        client,
        queues,
        held: Mutex::new(HashMap::new()),
        slots: Arc::new(Semaphore::new(max_in_flight)),
        config,
    });
    for subject in &subjects {
        tokio::spawn(consume(worker.clone(), stream.clone(), subject.clone()));
    }
    tokio::spawn(send_results(worker.clone(), results));
    tokio::spawn(keep_in_progress(worker.clone()));
    println!(
        "aiocr worker: {name}: {} recognition thread(s), at most {max_in_flight} job(s) at once, taking {}",
        recognition.count(),
        subjects.join(" ")
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_stop().await;
    eprintln!("aiocr worker: stopping (jobs not acknowledged are delivered again)");
    drop(stop_threads);
    Ok(())
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

async fn wait_for_stop() {
    let (tx, rx) = flume::bounded(1);
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]);
    let Ok(mut signals) = signals else { return };
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = tx.send(());
        }
    });
    let _ = rx.recv_async().await;
}

/// The durable consumer of one subject, shared by every worker that takes it.
pub fn consumer_config(config: &Config, subject: &str) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(names::consumer_name(subject)),
        filter_subject: subject.to_string(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_millis(config.cluster.remote_ack_wait_ms),
        // One delivery beyond the limit: the worker that gets it fails the job unrun.
        max_deliver: i64::from(config.cluster.remote_max_deliver) + 1,
        max_ack_pending: i64::try_from(config.cluster.remote_max_in_flight).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

/// Takes jobs of one subject while slots are free; opens the consumer again after any
/// failure (NATS restarted, consumer deleted).
async fn consume(worker: Arc<Worker>, stream: jetstream::stream::Stream, subject: String) {
    let batch = worker.config.recognition.max_batch.max(1);
    loop {
        let opened = stream
            .get_or_create_consumer(
                &names::consumer_name(&subject),
                consumer_config(&worker.config, &subject),
            )
            .await;
        let messages = match opened {
            Ok(consumer) => {
                consumer
                    .stream()
                    .max_messages_per_batch(batch)
                    .messages()
                    .await
            }
            Err(error) => {
                eprintln!("aiocr worker: consumer for {subject}: {error}");
                tokio::time::sleep(CONSUMER_RETRY).await;
                continue;
            }
        };
        let Ok(mut messages) = messages else {
            tokio::time::sleep(CONSUMER_RETRY).await;
            continue;
        };
        loop {
            let slot = worker
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            match messages.next().await {
                Some(Ok(message)) => take(&worker, message, slot).await,
                Some(Err(error)) => {
                    eprintln!("aiocr worker: {subject}: {error}");
                    break;
                }
                None => break,
            }
        }
        tokio::time::sleep(CONSUMER_RETRY).await;
    }
}

/// Whether a job's node has failed and refunded it: its deadline (the node's wall clock)
/// has passed by this worker's clock, and it has been in the stream longer than
/// `remote_timeout_ms` by the stream's own timestamp. Both, because clocks differ: a node
/// whose clock was stepped back writes deadlines that are past already, and every one of its
/// jobs would be dropped unrun (and refunded at its deadline) on the first test alone.
fn given_up(config: &Config, deadline_ms: u64, message: &jetstream::Message) -> bool {
    let now_ms = crate::clock::unix_now_ms();
    if now_ms <= deadline_ms {
        return false;
    }
    let Ok(info) = message.info() else {
        return true;
    };
    let stored_ms = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    now_ms.saturating_sub(stored_ms) > config.cluster.remote_timeout_ms
}

/// One delivered job: dropped when its node gave up on it, failed unrun when delivered too
/// often, else queued for the recognition threads.
async fn take(worker: &Worker, message: jetstream::Message, slot: OwnedSemaphorePermit) {
    let delivered = message
        .info()
        .map(|info| info.delivered)
        .unwrap_or(1)
        .max(1) as u32;
    let (header, task) = match wire::decode_job(&message.payload) {
        Ok(job) => job,
        Err(error) => {
            eprintln!("aiocr worker: dropping a job that does not parse: {error}");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    if given_up(&worker.config, header.deadline_ms, &message) {
        // Its node has failed and refunded it by now: running it would change nothing.
        let _ = message.ack_with(AckKind::Term).await;
        return;
    }
    let upload_id = header.upload_id;
    {
        let mut held = worker.lock_held();
        if let Some(earlier) = held.get_mut(&upload_id) {
            // Delivered again while still here (the in-progress notice came late): the run
            // under way answers both, whatever the delivery count.
            earlier.messages.push(message);
            return;
        }
    }
    if delivered > worker.config.cluster.remote_max_deliver {
        let failure = JobFailure::Remote {
            reason: format!("recognition abandoned after {} deliveries", delivered - 1),
            code: ApiError::RecognitionFailed,
        };
        let held = Held {
            messages: vec![message],
            node: header.node,
            shard: header.shard,
            delivered,
            _slot: slot,
        };
        let kind = wire::kind_of(&header.task);
        finish(worker, upload_id, held, unrun(upload_id, kind, failure)).await;
        return;
    }
    {
        let mut held = worker.lock_held();
        if let Some(earlier) = held.get_mut(&upload_id) {
            // Delivered again between the check above and here.
            earlier.messages.push(message);
            return;
        }
        held.insert(
            upload_id,
            Held {
                messages: vec![message],
                node: header.node,
                shard: header.shard,
                delivered,
                _slot: slot,
            },
        );
    }
    let task = match with_user_model(worker, &header, task).await {
        Ok(task) => task,
        Err(reason) => {
            // Not runnable here nor anywhere (the model is not in the bucket, or not as the
            // job names it): failed now, refunded by its node.
            let failure = JobFailure::Remote {
                reason,
                code: ApiError::RecognitionFailed,
            };
            let held = worker.lock_held().remove(&upload_id);
            if let Some(held) = held {
                finish(
                    worker,
                    upload_id,
                    held,
                    unrun(upload_id, Kind::Ocr, failure),
                )
                .await;
            }
            return;
        }
    };
    let job = Job {
        upload_id,
        owner_shard: 0, // this process's one result inbox
        task,
        cache_key: CacheKey::ocr([0; 32], Default::default()),
        constraints: Default::default(),
        enqueued_at: Instant::now(),
    };
    if worker.queues.try_submit(job).is_err() {
        // Cannot happen while slots <= queue capacity; given back if it does.
        let given_back = worker.lock_held().remove(&upload_id);
        if let Some(held) = given_back {
            for message in held.messages {
                let _ = message.ack_with(AckKind::Nak(Some(NAK_DELAY))).await;
            }
        }
    }
}

/// A text job for a user's model gets the model, fetched by the digest the job carries
/// (the first job for it here waits for the files).
async fn with_user_model(
    worker: &Worker,
    header: &wire::JobHeader,
    mut task: recognition::Task,
) -> Result<recognition::Task, String> {
    let wire::TaskHeader::Ocr {
        model_digest: Some(hex),
        ..
    } = &header.task
    else {
        return Ok(task);
    };
    let digest = crate::engine::custom::ModelDigest::parse_hex(hex)
        .ok_or_else(|| format!("a model digest that is not one: {hex:?}"))?;
    let model = worker.models.model(header.node, digest).await?;
    if let recognition::Task::Ocr { options, .. } = &mut task {
        options.custom = Some(model);
    }
    Ok(task)
}

fn unrun(upload_id: u64, kind: Kind, failure: JobFailure) -> JobResult {
    JobResult {
        upload_id,
        owner_shard: 0,
        kind,
        outcome: Err(failure),
        cache_hit: false,
        queued_us: 0,
        recognize_us: 0,
        batch_size: 1,
        cache_key: CacheKey::ocr([0; 32], Default::default()),
        constraints: Default::default(),
        receipt: None,
    }
}

impl Worker {
    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Held>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Tells JetStream, every third of the ack deadline, that each job held here is still in
/// progress (which restarts its deadline): a job waiting behind a long batch on a busy
/// machine is not delivered to a second worker. A worker that dies or is stopped sends
/// nothing, and its jobs go to another after one deadline.
async fn keep_in_progress(worker: Arc<Worker>) {
    let period = Duration::from_millis((worker.config.cluster.remote_ack_wait_ms / 3).max(1));
    loop {
        tokio::time::sleep(period).await;
        // The reply subjects only: no lock is held across a publish.
        let replies: Vec<async_nats::Subject> = worker
            .lock_held()
            .values()
            .flat_map(|held| held.messages.iter())
            .filter_map(|message| message.reply.clone())
            .collect();
        for reply in replies {
            let _ = worker.client.publish(reply, AckKind::Progress.into()).await;
        }
    }
}

/// Results from the recognition threads, each sent to its node on a task of its own.
async fn send_results(worker: Arc<Worker>, results: flume::Receiver<JobResult>) {
    while let Ok(result) = results.recv_async().await {
        let Some(held) = worker.lock_held().remove(&result.upload_id) else {
            continue;
        };
        let worker = worker.clone();
        tokio::spawn(async move { finish(&worker, result.upload_id, held, result).await });
    }
}

/// Hands the result to its node; acknowledges the job's messages once the node answered,
/// else gives them back for another delivery.
async fn finish(worker: &Worker, upload_id: u64, held: Held, result: JobResult) {
    let wire_result = wire::WireResult {
        upload_id,
        node: held.node,
        shard: held.shard,
        outcome: wire::WireOutcome::of(&result.outcome),
        queued_us: result.queued_us,
        recognize_us: result.recognize_us,
        batch_size: result.batch_size,
        worker: worker.name.clone(),
        delivered: held.delivered,
    };
    let payload = wire::encode_result(&wire_result);
    let subject = names::results_subject(held.node);
    let mut answered = false;
    for attempt in 1..=RESULT_ATTEMPTS {
        match worker
            .client
            .request(subject.clone(), payload.clone().into())
            .await
        {
            Ok(_) => {
                answered = true;
                break;
            }
            Err(_) if attempt < RESULT_ATTEMPTS => {
                tokio::time::sleep(nats::backoff(attempt as usize, 1000)).await;
            }
            Err(_) => {}
        }
    }
    let kind = match answered {
        true => AckKind::Ack,
        false => AckKind::Nak(Some(NAK_DELAY)),
    };
    for message in held.messages {
        let _ = message.ack_with(kind).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_redeliver_once_past_the_limit_then_stop() {
        let config = Config::default();
        let consumer = consumer_config(&config, "aiocr.jobs.ocr.old");
        assert_eq!(consumer.durable_name.as_deref(), Some("jobs-ocr-old"));
        assert_eq!(consumer.max_deliver, 4);
        assert_eq!(consumer.ack_wait, Duration::from_millis(10_000));
    }
}
