//! Recognition: the bounded queues between the shards and the recognition threads, the
//! threads themselves, and each shard's answer cache.
//!
//! - Shards submit [`Job`]s into [`JobQueues`] (`queue.rs`): one bounded crossbeam channel per
//!   kind of work (text, click captchas, slides), so that a detection image (tens of
//!   milliseconds of model time) or a slide never holds a text captcha's place. A shard
//!   checks [`JobQueues::has_room`] before it reserves points, and if
//!   [`JobQueues::try_submit`] still fails after reserving, it voids the reservation: a full
//!   queue never charges.
//! - Recognition threads (`threads.rs`) run the models: text captchas (batched where exact)
//!   and click captchas, at most `detect_threads` of them on detection at once so text is
//!   never starved; slide threads run the slides, which need no model and so never wait
//!   behind one. Each result goes to [`ResultSink::deliver`], which sends it to the owner
//!   shard's result inbox (a bounded flume channel). The shard awaits that inbox with
//!   `recv_async`; glommio wakers are thread-safe (a wake from a foreign thread is queued on
//!   the executor's notifier, which wakes a sleeping reactor through its eventfd), so a result
//!   wakes the shard without any polling. The shard then finishes the upload
//!   (server/upload/finish.rs).
//! - `cache.rs` is each shard's answer cache, filled from results and read before a job is
//!   queued.

pub mod cache;
mod queue;
mod threads;

pub use queue::{JobQueues, JobReceivers};
pub use threads::{set_priority, start, RecognitionThreads, ThreadConfig, ThreadPriority};

use crate::engine::{
    Answer, AnswerConstraints, ClickError, DetBox, DetectError, RecognizeError, RecognizeOptions,
    SlideAnswer, SlideError, SlideMode,
};
use cache::CacheKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The cores this process may run on (its affinity mask): where shards and recognition
/// threads can be pinned.
pub fn usable_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect()
}

/// The kinds of work, each with a queue of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Text captchas: ddddocr's `classification`.
    Ocr,
    /// Click captchas: ddddocr's `detection`.
    Detect,
    /// Slide captchas: ddddocr's `slide_match` / `slide_comparison`.
    Slide,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Ocr, Kind::Detect, Kind::Slide];

    /// The contract's name (`kind` in answers, labels in metrics).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Ocr => "ocr",
            Kind::Detect => "detect",
            Kind::Slide => "slide",
        }
    }
}

/// What one job asks for, with its images (already probed: known formats within the
/// bounds).
#[derive(Debug)]
pub enum Task {
    Ocr {
        image: Vec<u8>,
        options: RecognizeOptions,
    },
    Detect {
        image: Vec<u8>,
    },
    /// A click-in-order captcha: detection, then the boxes that answer the hint (a detection
    /// job: the same queue and threads).
    Click {
        image: Vec<u8>,
        hint: ClickHint,
        /// Answer the boxes `[x1, y1, x2, y2]` instead of their centres.
        rectangles: bool,
    },
    Slide {
        target: Vec<u8>,
        background: Vec<u8>,
        mode: SlideMode,
    },
}

impl Task {
    pub fn kind(&self) -> Kind {
        match self {
            Task::Ocr { .. } => Kind::Ocr,
            Task::Detect { .. } | Task::Click { .. } => Kind::Detect,
            Task::Slide { .. } => Kind::Slide,
        }
    }
}

/// What a click-in-order captcha asks to click.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClickHint {
    /// The characters, in order.
    Text(String),
    /// An image of the characters, in order.
    Image(Vec<u8>),
    /// Nothing: every box, in reading order.
    Nothing,
}

impl ClickHint {
    pub fn instruction(&self) -> crate::engine::Instruction<'_> {
        use crate::engine::Instruction;
        match self {
            ClickHint::Text(text) => Instruction::Text(text),
            ClickHint::Image(image) => Instruction::Image(image),
            ClickHint::Nothing => Instruction::Nothing,
        }
    }
}

/// One job's answer, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum JobAnswer {
    Text(Answer),
    Boxes(Vec<DetBox>),
    /// A click captcha's points `[x, y]`, in click order (its rectangles are `Boxes`).
    Points(Vec<[i64; 2]>),
    Slide(SlideAnswer),
}

/// One accepted upload to recognise. Its points are reserved (and durable by the time its
/// upload is acknowledged).
#[derive(Debug)]
pub struct Job {
    pub upload_id: u64,
    /// The shard whose ledger holds the reservation; the result must go back there.
    pub owner_shard: u16,
    pub task: Task,
    /// The answer cache's key (passed back with the result, so the owner can keep the answer).
    pub cache_key: CacheKey,
    /// Checked by the owner shard when the answer is back (passed through untouched).
    pub constraints: AnswerConstraints,
    pub enqueued_at: Instant,
}

/// Why a job got no answer. Its reservation is voided either way; the server decides what
/// the client is told (server/upload/finish.rs).
#[derive(Clone, Debug, PartialEq)]
pub enum JobFailure {
    /// The engine refused the image or the model failed.
    Recognize(RecognizeError),
    Detect(DetectError),
    Click(ClickError),
    Slide(SlideError),
    /// The job waited longer than `max_queue_wait_ms` before a thread took it.
    WaitedTooLong {
        waited_ms: u64,
    },
    /// A failure reported by a remote worker, or the node's own verdict on a remote job (no
    /// result in time, redelivered too often), with the contract's code for it.
    Remote {
        reason: String,
        code: aiocr_contract::ApiError,
    },
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobFailure::Recognize(error) => write!(f, "{error}"),
            JobFailure::Detect(error) => write!(f, "{error}"),
            JobFailure::Click(error) => write!(f, "{error}"),
            JobFailure::Slide(error) => write!(f, "{error}"),
            JobFailure::WaitedTooLong { waited_ms } => {
                write!(f, "waited {waited_ms} ms in the recognition queue")
            }
            JobFailure::Remote { reason, .. } => write!(f, "{reason}"),
        }
    }
}

/// What became of one job.
#[derive(Debug)]
pub struct JobResult {
    pub upload_id: u64,
    pub owner_shard: u16,
    pub kind: Kind,
    /// The answer, or why there is none (the reservation is then voided).
    pub outcome: Result<JobAnswer, JobFailure>,
    /// Answered from the cache without running anything (still charged).
    pub cache_hit: bool,
    /// Time from submission until a thread took the job.
    pub queued_us: u64,
    /// Time running it (0 for a cache hit).
    pub recognize_us: u64,
    /// Jobs in the batch this one ran in (1 when not batched, 0 for a cache hit).
    pub batch_size: u32,
    /// The job's cache key, so the owner shard can keep the answer.
    pub cache_key: CacheKey,
    /// The job's constraints, for the owner shard to check.
    pub constraints: AnswerConstraints,
    /// Told once the owner shard has applied the result (a remote job's worker acknowledges
    /// the job only then); `None` for local jobs.
    pub receipt: Option<flume::Sender<()>>,
}

/// Routes results to their owner shard's inbox. `Clone + Send`: every recognition thread
/// holds one.
#[derive(Clone)]
pub struct ResultSink {
    shard_inboxes: Arc<[flume::Sender<JobResult>]>,
}

impl ResultSink {
    /// The sink and one receiver per shard (index = shard number), each holding at most
    /// `inbox_len` results. A result exists only for a job that was queued or is running, so
    /// the queues' lengths plus what the threads hold bound what can ever wait in one inbox;
    /// the caller passes that, and a thread that still finds an inbox full waits for room
    /// rather than drop a result (a dropped result would hold its points reserved until a
    /// restart).
    pub fn new(
        shard_count: u16,
        inbox_len: usize,
    ) -> (ResultSink, Vec<flume::Receiver<JobResult>>) {
        assert!(shard_count > 0 && inbox_len > 0);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shard_count).map(|_| flume::bounded(inbox_len)).unzip();
        (
            ResultSink {
                shard_inboxes: senders.into(),
            },
            receivers,
        )
    }

    /// Sends the result to its owner shard. Returns false when the shard has stopped: it
    /// voided its pending uploads on the way out, and voids any left at the next start, so
    /// the result is not lost money, only lost work.
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
pub struct ThreadContext {
    pub jobs: JobReceivers,
    pub results: ResultSink,
    pub model_dir: PathBuf,
    /// Disconnected (its sender dropped) when the server stops: the threads then exit at once,
    /// whatever still holds a `JobQueues` (the shards voided what was pending).
    pub stop: crossbeam_channel::Receiver<()>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_reach_their_owner_shard_from_another_thread() {
        let (sink, inboxes) = ResultSink::new(2, 4);
        let worker = std::thread::spawn(move || {
            let answer = Answer {
                text: "ab12".into(),
                confidence: None,
            };
            let result = JobResult {
                upload_id: 7,
                owner_shard: 1,
                kind: Kind::Ocr,
                outcome: Ok(JobAnswer::Text(answer)),
                cache_hit: false,
                queued_us: 0,
                recognize_us: 0,
                batch_size: 1,
                cache_key: CacheKey::ocr([0; 32], RecognizeOptions::default()),
                constraints: AnswerConstraints::default(),
                receipt: None,
            };
            sink.deliver(result)
        });
        assert!(worker.join().unwrap());
        assert!(inboxes[0].try_recv().is_err());
        assert_eq!(inboxes[1].recv().unwrap().upload_id, 7);
    }

    #[test]
    fn failures_say_why() {
        let waited = JobFailure::WaitedTooLong { waited_ms: 31_000 };
        assert_eq!(
            waited.to_string(),
            "waited 31000 ms in the recognition queue"
        );
        let unknown = JobFailure::Recognize(RecognizeError::UnknownModel("x".into()));
        assert_eq!(unknown.to_string(), "unknown model 'x'");
        assert_eq!(Kind::ALL.map(Kind::label), ["ocr", "detect", "slide"]);
    }
}
