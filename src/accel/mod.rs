//! The queue between the shards and the recognition threads.
//!
//! - Shards submit [`Job`]s into one bounded [`JobQueue`] (a crossbeam MPMC channel). A shard
//!   checks [`JobQueue::has_room`] before it reserves points, and if [`JobQueue::try_submit`]
//!   still fails after reserving, it voids the reservation: a full queue never charges.
//! - Recognition threads take jobs from the receiver returned by [`JobQueue::bounded`] and hand
//!   each [`JobResult`] to [`ResultSink::deliver`], which sends it to the owner shard's inbox (a
//!   flume channel). The shard awaits that inbox with `recv_async`; glommio wakers are
//!   thread-safe (a wake from a foreign thread is queued on the executor's notifier, which
//!   wakes a sleeping reactor through its eventfd), so a result wakes the shard without any
//!   polling. The shard then posts or voids the reservation, stores the result, wakes a
//!   waiting `wait=1` request and counts the day's stats.
//! - [`start_workers`] starts the recognition threads (`workers.rs`); `cache.rs` is each
//!   shard's answer cache, filled from results and read before a job is queued.

pub mod cache;
pub mod workers;

use crate::engine::{Answer, RecognizeOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// One accepted upload to recognise. Its points are reserved and durable.
#[derive(Debug)]
pub struct Job {
    pub upload_id: u64,
    pub user_id: u64,
    /// The shard whose ledger holds the reservation; the result must go back there.
    pub owner_shard: u16,
    /// The decoded image bytes (already probed: a known format within the bounds).
    pub image: Vec<u8>,
    pub options: RecognizeOptions,
    /// BLAKE3 of `image`: with `options`, the answer cache's key.
    pub digest: cache::ImageDigest,
    pub enqueued_at: Instant,
}

/// What became of one job.
#[derive(Debug)]
pub struct JobResult {
    pub upload_id: u64,
    pub user_id: u64,
    pub owner_shard: u16,
    /// The recognised text, or why it failed (the reservation is then voided).
    pub outcome: Result<Answer, String>,
    /// Answered from the cache without running the model (still charged).
    pub cache_hit: bool,
    /// Time from submission until a recognition thread took the job.
    pub queued_us: u64,
    /// Time in the model (0 for a cache hit).
    pub recognize_us: u64,
    /// Images in the batch this job ran in (1 when not batched, 0 for a cache hit).
    pub batch_size: u32,
    /// The job's cache key, so the owner shard can keep the answer.
    pub digest: cache::ImageDigest,
    pub options: RecognizeOptions,
}

/// The bounded recognition queue, shared by every shard (cheap to clone).
#[derive(Clone)]
pub struct JobQueue {
    sender: crossbeam_channel::Sender<Job>,
    capacity: usize,
}

impl JobQueue {
    /// The queue and the receiving end for the recognition threads.
    pub fn bounded(capacity: usize) -> (JobQueue, crossbeam_channel::Receiver<Job>) {
        assert!(capacity > 0);
        let (sender, receiver) = crossbeam_channel::bounded(capacity);
        (JobQueue { sender, capacity }, receiver)
    }

    /// Room for one more job right now (checked before reserving points; another shard may
    /// take the slot meanwhile, which `try_submit` then reports).
    pub fn has_room(&self) -> bool {
        self.sender.len() < self.capacity
    }

    /// Gives the job back when the queue is full (or no recognition side exists any more).
    #[allow(clippy::result_large_err)] // handing the job back is the point
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        self.sender
            .try_send(job)
            .map_err(|error| error.into_inner())
    }

    pub fn depth(&self) -> usize {
        self.sender.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Routes results to their owner shard's inbox. `Clone + Send`: every recognition thread
/// holds one.
#[derive(Clone)]
pub struct ResultSink {
    shard_inboxes: Arc<[flume::Sender<JobResult>]>,
}

impl ResultSink {
    /// The sink and one receiver per shard (index = shard number).
    pub fn new(shard_count: u16) -> (ResultSink, Vec<flume::Receiver<JobResult>>) {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shard_count).map(|_| flume::unbounded()).unzip();
        (
            ResultSink {
                shard_inboxes: senders.into(),
            },
            receivers,
        )
    }

    /// Sends the result to its owner shard. The inbox is unbounded but holds at most one
    /// result per queued or running job, so the queue length bounds it. Returns false when
    /// the shard has stopped: it voided its pending uploads on the way out, and voids any
    /// left at the next start, so the result is not lost money, only lost work.
    pub fn deliver(&self, result: JobResult) -> bool {
        let shard = usize::from(result.owner_shard);
        assert!(
            shard < self.shard_inboxes.len(),
            "owner shard {shard} out of range"
        );
        self.shard_inboxes[shard].send(result).is_ok()
    }
}

/// What the recognition threads get at start.
pub struct WorkerContext {
    pub jobs: crossbeam_channel::Receiver<Job>,
    pub results: ResultSink,
    pub model_dir: PathBuf,
    /// The cores the shards are pinned to, in shard order.
    pub shard_cores: Vec<usize>,
    /// Disconnected (its sender dropped) when the server stops: the threads then exit at once,
    /// whatever still holds a `JobQueue` (the shards voided what was pending).
    pub stop: crossbeam_channel::Receiver<()>,
}

/// Starts the recognition threads (see `workers.rs`) and returns their handles once every
/// one has loaded its models; they exit when `WorkerContext::stop` disconnects or every
/// `JobQueue` clone is dropped.
pub fn start_workers(
    context: WorkerContext,
    config: workers::WorkerConfig,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    workers::start(context, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(upload_id: u64) -> Job {
        Job {
            upload_id,
            user_id: 1,
            owner_shard: 1,
            image: vec![1, 2, 3],
            options: RecognizeOptions::default(),
            digest: [0; 32],
            enqueued_at: Instant::now(),
        }
    }

    #[test]
    fn full_queue_hands_the_job_back() {
        let (queue, receiver) = JobQueue::bounded(2);
        assert!(queue.has_room());
        queue.try_submit(job(1)).unwrap();
        queue.try_submit(job(2)).unwrap();
        assert!(!queue.has_room());
        assert_eq!(queue.try_submit(job(3)).unwrap_err().upload_id, 3);
        assert_eq!(receiver.recv().unwrap().upload_id, 1);
        assert!(queue.has_room());
    }

    #[test]
    fn results_reach_their_owner_shard_from_another_thread() {
        let (sink, inboxes) = ResultSink::new(2);
        let worker = std::thread::spawn(move || {
            let answer = Answer {
                text: "ab12".into(),
                confidence: None,
            };
            let result = JobResult {
                upload_id: 7,
                user_id: 1,
                owner_shard: 1,
                outcome: Ok(answer),
                cache_hit: false,
                queued_us: 0,
                recognize_us: 0,
                batch_size: 1,
                digest: [0; 32],
                options: RecognizeOptions::default(),
            };
            sink.deliver(result)
        });
        assert!(worker.join().unwrap());
        assert!(inboxes[0].try_recv().is_err());
        assert_eq!(inboxes[1].recv().unwrap().upload_id, 7);
    }
}
