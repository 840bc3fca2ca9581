//! The recognition threads and their queues: how many, on which cores, at which priority,
//! how they batch, and how long a job may wait. [`Config::recognition_layout`] turns this
//! section into the threads' own [`ThreadConfig`] (for `aiocr serve` and `aiocr worker`).

use super::check::first_failed;
use super::keys::Kind;
use super::values;
use super::Config;
use crate::engine::custom::SessionBounds;
use crate::recognition::{usable_cores, ThreadConfig, ThreadPriority};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecognitionConfig {
    /// Text captchas waiting for recognition, shared by all shards (5001 when full).
    pub queue_len: usize,
    /// Click captchas waiting for detection (their own queue: each one is tens of
    /// milliseconds of model time, so fewer wait).
    pub detect_queue_len: usize,
    /// Slide captchas waiting (their own queue and threads: they need no model).
    pub slide_queue_len: usize,
    /// Cores of the recognition threads, one thread each: empty means every usable core
    /// (sharing the shard cores, at `recognition_priority`), else a comma list such as "2,3".
    #[serde(deserialize_with = "values::core_list")]
    pub recognition_cores: Vec<usize>,
    /// `idle` (SCHED_IDLE), `normal`, or `nice:N`; empty (None) means `idle` when a
    /// recognition core is also a shard core, else `normal`.
    #[serde(deserialize_with = "values::optional_parsed")]
    pub recognition_priority: Option<ThreadPriority>,
    /// Threads of one model run when a job arrives while no other recognition thread is busy
    /// (lower latency at low load): 0 means one per recognition core, 1 turns it off.
    pub recognition_wide_threads: usize,
    /// Most recognition threads running a detection at once; 0 means all but one (at least
    /// one), so text captchas always have a thread.
    pub detect_threads: usize,
    /// Threads running slides (not pinned, normal priority).
    pub slide_threads: usize,
    /// Most jobs one recognition call takes (only models that batch exactly gather more).
    pub max_batch: usize,
    /// How long a recognition thread holding fewer than `max_batch` jobs waits for more.
    pub max_queue_delay_us: u64,
    /// A job older than this when a thread takes it fails without running (refunded).
    pub max_queue_wait_ms: u64,
}

impl Default for RecognitionConfig {
    fn default() -> Self {
        RecognitionConfig {
            queue_len: 1024,
            detect_queue_len: 64,
            slide_queue_len: 256,
            recognition_cores: Vec::new(),
            recognition_priority: None,
            recognition_wide_threads: 0,
            detect_threads: 0,
            slide_threads: 1,
            max_batch: 8,
            max_queue_delay_us: 0,
            max_queue_wait_ms: 30_000,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("queue_len", Kind::Number),
    ("detect_queue_len", Kind::Number),
    ("slide_queue_len", Kind::Number),
    ("recognition_cores", Kind::Text),
    ("recognition_priority", Kind::Text),
    ("recognition_wide_threads", Kind::Number),
    ("detect_threads", Kind::Number),
    ("slide_threads", Kind::Number),
    ("max_batch", Kind::Number),
    ("max_queue_delay_us", Kind::Number),
    ("max_queue_wait_ms", Kind::Number),
];

impl RecognitionConfig {
    /// The recognition cores: those configured, or else every usable core.
    pub fn recognition_cores(&self, usable_cores: &[usize]) -> Vec<usize> {
        match (self.recognition_cores.is_empty(), usable_cores.is_empty()) {
            (false, _) => self.recognition_cores.clone(),
            (true, true) => vec![0],
            (true, false) => usable_cores.to_vec(),
        }
    }

    /// The configured priority, or else SCHED_IDLE where recognition shares a shard's core
    /// (the reactors keep their latency) and normal on cores of its own.
    pub fn recognition_priority(&self, shares_shard_cores: bool) -> ThreadPriority {
        match self.recognition_priority {
            Some(priority) => priority,
            None if shares_shard_cores => ThreadPriority::Idle,
            None => ThreadPriority::Normal,
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                self.queue_len > 0 && self.detect_queue_len > 0 && self.slide_queue_len > 0,
                "queue_len, detect_queue_len and slide_queue_len must be positive",
            ),
            (
                (1..=64).contains(&self.slide_threads),
                "slide_threads must be 1..=64",
            ),
            (
                self.recognition_wide_threads <= 64,
                "recognition_wide_threads must be at most 64",
            ),
            (
                (1..=256).contains(&self.max_batch),
                "max_batch must be 1..=256",
            ),
            (
                self.max_queue_wait_ms > 0,
                "max_queue_wait_ms must be positive",
            ),
        ])
    }
}

impl Config {
    /// The recognition layout: `recognition_cores` (default every usable core, one thread
    /// each), at SCHED_IDLE where they share a shard's core unless `recognition_priority`
    /// says otherwise (a worker has no shard cores: normal priority).
    pub fn recognition_layout(&self, shard_cores: &[usize]) -> ThreadConfig {
        let recognition = &self.recognition;
        let cores = recognition.recognition_cores(&usable_cores());
        let shares_shard_cores = cores.iter().any(|core| shard_cores.contains(core));
        let wide_threads = match recognition.recognition_wide_threads {
            0 => cores.len(),
            threads => threads,
        };
        // All but one recognition thread may run detections, so text always has one.
        let detect_threads = match recognition.detect_threads {
            0 => cores.len().saturating_sub(1).max(1),
            threads => threads.min(cores.len()),
        };
        ThreadConfig {
            detect_threads,
            slide_threads: recognition.slide_threads,
            priority: recognition.recognition_priority(shares_shard_cores),
            wide_threads,
            max_batch: recognition.max_batch,
            max_queue_delay_us: recognition.max_queue_delay_us,
            max_queue_wait_ms: recognition.max_queue_wait_ms,
            limits: self.images.image_limits(),
            custom_bounds: SessionBounds {
                // Each thread loads the models it is asked for: the bound is shared out.
                max_bytes: (self.models.model_memory_bytes / cores.len().max(1) as u64).max(1),
                idle: std::time::Duration::from_secs(self.models.model_idle_secs),
            },
            cores,
        }
    }
}
