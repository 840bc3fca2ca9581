//! The recognition threads: pinned, optionally at low scheduling priority, one `Engine` (one
//! ONNX Runtime session per model) each, fed by the shared bounded job queue.
//!
//! Batching works like Triton's dynamic batcher: a thread blocks for the first job, takes
//! whatever else is already queued up to `max_batch`, and may wait up to `max_queue_delay_us`
//! for more. The engine then runs equal-width images of batchable models as one tensor, and
//! everything else one by one, so answers never depend on the batch.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{Job, JobFailure, JobResult, ResultSink, ThreadContext};
use crate::engine::{available_models, Answer, Engine, ImageLimits, RecognizeOptions, SETUP_HINT};

/// How the recognition threads are laid out and how they batch.
#[derive(Clone, Debug)]
pub struct ThreadConfig {
    /// One recognition thread per entry, pinned to that core.
    pub cores: Vec<usize>,
    /// Most jobs one engine call takes.
    pub max_batch: usize,
    /// How long a thread holding fewer than `max_batch` jobs waits for more (0: never).
    pub max_queue_delay_us: u64,
    /// A job older than this when a thread takes it fails without running (and is refunded).
    pub max_queue_wait_ms: u64,
    /// Scheduling priority of the recognition threads.
    pub priority: ThreadPriority,
    /// Threads inside one model run of each recognition thread's extra "wide" engine, used
    /// when a job arrives while no other recognition thread is busy and nothing else is
    /// queued: one image then uses every recognition core (on a 2-core VM: 3.8 instead of
    /// 5.0 ms per recognition at one connection, its pool thread spinning only during a
    /// run). Under load every thread runs its single-threaded engine, which gives the most
    /// images/s. Costs one more session per model per thread (~155 MB for `old` + `beta`).
    /// Below 2: no wide engines.
    pub wide_threads: usize,
    pub limits: ImageLimits,
}

/// How recognition threads are scheduled next to the reactors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadPriority {
    /// Like any thread: for recognition cores of their own.
    Normal,
    /// A nice value (1..=19): a lower share of a contended core.
    Nice(i32),
    /// SCHED_IDLE: runs only when the core has nothing else to run, and any waking reactor
    /// preempts it at once. The default where recognition shares the shard cores: it still
    /// uses every idle cycle, and a request never waits behind a model run.
    Idle,
}

impl std::str::FromStr for ThreadPriority {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "normal" => Ok(ThreadPriority::Normal),
            "idle" => Ok(ThreadPriority::Idle),
            nice => match nice
                .strip_prefix("nice:")
                .and_then(|n| n.parse::<i32>().ok())
            {
                Some(n) if (1..=19).contains(&n) => Ok(ThreadPriority::Nice(n)),
                _ => Err(format!(
                    "'{text}': expected normal, idle or nice:N (1..=19)"
                )),
            },
        }
    }
}

/// The running recognition threads.
pub struct RecognitionThreads {
    handles: Vec<JoinHandle<()>>,
}

impl RecognitionThreads {
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Waits for every thread to exit (after `ThreadContext::stop` disconnected, or every
    /// `JobQueue` was dropped).
    pub fn join(self) {
        for handle in self.handles {
            let _ = handle.join();
        }
    }
}

/// Starts one thread per configured core; returns once every thread has loaded its models, or
/// the first loading error (missing models, broken ONNX Runtime). The threads exit when
/// `ThreadContext::stop` disconnects or every `JobQueue` clone is dropped.
pub fn start(context: ThreadContext, config: ThreadConfig) -> Result<RecognitionThreads, String> {
    assert!(!config.cores.is_empty(), "at least one recognition thread");
    assert!(config.max_batch >= 1, "max_batch >= 1");
    let models = available_models(&context.model_dir);
    if models.is_empty() {
        return Err(format!(
            "no models in {} ({SETUP_HINT})",
            context.model_dir.display()
        ));
    }
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    // Recognition threads running a batch right now.
    let busy = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(config.cores.len());
    for (index, &core) in config.cores.iter().enumerate() {
        let (jobs, stop, busy) = (context.jobs.clone(), context.stop.clone(), busy.clone());
        let wide_threads = config.wide_threads;
        let all_cores = config.cores.clone();
        let results = context.results.clone();
        let (model_dir, models, config, ready) = (
            context.model_dir.clone(),
            models.clone(),
            config.clone(),
            ready_tx.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("aiocr-recog-{index}"))
            .spawn(move || {
                set_priority(config.priority);
                // ONNX Runtime's pool threads start with the session and inherit the creating
                // thread's affinity (and priority): the wide engine is made while this thread
                // may run on every recognition core, then the thread pins itself.
                set_affinity(&all_cores);
                let wide = Engines::load_wide(&model_dir, &models, config.limits, wide_threads);
                set_affinity(&[core]);
                match wide.and_then(|wide| Engines::load(&model_dir, &models, config.limits, wide))
                {
                    Ok(engines) => {
                        let _ = ready.send(Ok(()));
                        let queues = Queues {
                            jobs: &jobs,
                            stop: &stop,
                            results: &results,
                            busy: &busy,
                        };
                        recognize_jobs(engines, queues, &config);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| format!("cannot start a recognition thread: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..handles.len() {
        ready_rx
            .recv()
            .map_err(|_| "a recognition thread died while loading".to_string())??;
    }
    Ok(RecognitionThreads { handles })
}

/// Lets the calling thread run on `cores` only (best effort: a refused change leaves it where
/// the kernel put it).
fn set_affinity(cores: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within its bounds for
    // core numbers below CPU_SETSIZE, which is checked.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &core in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(core, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Sets the calling thread's scheduling priority (best effort, as `set_affinity`).
fn set_priority(priority: ThreadPriority) {
    // SAFETY: plain syscalls about the calling thread itself (Linux applies PRIO_PROCESS and
    // sched_setscheduler with a thread id to that thread only).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        match priority {
            ThreadPriority::Normal => {}
            ThreadPriority::Nice(nice) => {
                libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
            }
            ThreadPriority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param);
            }
        }
    }
}

/// One recognition thread's engines: single-threaded, and possibly a wide one (see
/// `ThreadConfig::wide_threads`).
struct Engines {
    narrow: Engine,
    wide: Option<Engine>,
}

impl Engines {
    fn load_wide(
        model_dir: &Path,
        models: &[String],
        limits: ImageLimits,
        threads: usize,
    ) -> Result<Option<Engine>, String> {
        match threads {
            0 | 1 => Ok(None),
            threads => Engine::load_with_threads(model_dir, models, limits, threads)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }

    fn load(
        model_dir: &Path,
        models: &[String],
        limits: ImageLimits,
        wide: Option<Engine>,
    ) -> Result<Engines, String> {
        let narrow = Engine::load(model_dir, models, limits).map_err(|e| e.to_string())?;
        Ok(Engines { narrow, wide })
    }

    /// The wide engine when this thread is the only busy one and nothing waits behind it.
    fn pick(&mut self, alone: bool) -> &mut Engine {
        match &mut self.wide {
            Some(wide) if alone => wide,
            _ => &mut self.narrow,
        }
    }
}

/// What a recognition thread reads from and writes to.
struct Queues<'a> {
    jobs: &'a Receiver<Job>,
    stop: &'a Receiver<()>,
    results: &'a ResultSink,
    busy: &'a AtomicUsize,
}

/// Runs until `stop` disconnects or every `JobQueue` is dropped (the server is stopping).
fn recognize_jobs(mut engines: Engines, queues: Queues, config: &ThreadConfig) {
    let Queues {
        jobs,
        stop,
        results,
        busy,
    } = queues;
    let max_wait = Duration::from_millis(config.max_queue_wait_ms);
    while let Some(batch) = next_batch(jobs, stop, config, |model| engines.narrow.batchable(model))
    {
        let taken_at = Instant::now();
        let (fresh, stale): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|job| taken_at.duration_since(job.enqueued_at) <= max_wait);
        for job in stale {
            let queued_us = micros(taken_at.duration_since(job.enqueued_at));
            let failure = JobFailure::WaitedTooLong {
                waited_ms: queued_us / 1000,
            };
            results.deliver(result_of(&job, Err(failure), queued_us, 0, 0));
        }
        if fresh.is_empty() {
            continue;
        }
        let items: Vec<(&[u8], &RecognizeOptions)> = fresh
            .iter()
            .map(|j| (j.image.as_slice(), &j.options))
            .collect();
        let alone = busy.fetch_add(1, Ordering::SeqCst) == 0 && jobs.is_empty();
        let answers = engines.pick(alone).recognize_batch(&items);
        assert_eq!(answers.len(), fresh.len(), "one answer per job");
        let was_busy = busy.fetch_sub(1, Ordering::SeqCst);
        assert!(was_busy >= 1, "busy counts this thread while it runs");
        let recognize_us = micros(taken_at.elapsed());
        let batch_size = fresh.len() as u32;
        for (job, answer) in fresh.iter().zip(answers) {
            let queued_us = micros(taken_at.duration_since(job.enqueued_at));
            let outcome = answer.map_err(JobFailure::Recognize);
            results.deliver(result_of(job, outcome, queued_us, recognize_us, batch_size));
        }
    }
}

/// Blocks for one job; when its model can batch, gathers up to `max_batch` (waiting at most
/// `max_queue_delay_us`). A job of a model that cannot batch runs alone, leaving the queue to
/// the other threads. None when the queue is closed and empty.
fn next_batch(
    jobs: &Receiver<Job>,
    stop: &Receiver<()>,
    config: &ThreadConfig,
    batchable: impl Fn(&str) -> bool,
) -> Option<Vec<Job>> {
    let first = crossbeam_channel::select! {
        recv(jobs) -> job => job.ok()?,
        recv(stop) -> _ => return None,
    };
    let gather = batchable(&first.options.model);
    let mut batch = Vec::with_capacity(config.max_batch);
    batch.push(first);
    if !gather {
        return Some(batch);
    }
    let deadline = Instant::now() + Duration::from_micros(config.max_queue_delay_us);
    while batch.len() < config.max_batch {
        if let Ok(job) = jobs.try_recv() {
            batch.push(job);
            continue;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match jobs.recv_timeout(deadline - now) {
            Ok(job) => batch.push(job),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

fn result_of(
    job: &Job,
    outcome: Result<Answer, JobFailure>,
    queued_us: u64,
    recognize_us: u64,
    batch_size: u32,
) -> JobResult {
    JobResult {
        upload_id: job.upload_id,
        owner_shard: job.owner_shard,
        outcome,
        cache_hit: false,
        queued_us,
        recognize_us,
        batch_size,
        digest: job.digest,
        options: job.options.clone(),
        constraints: job.constraints.clone(),
    }
}

fn micros(duration: Duration) -> u64 {
    duration.as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recognition::JobQueue;
    use crate::test_support::model_dir;

    /// (file bytes, ddddocr_old, ddddocr_beta) of the first `count` fixtures.
    fn fixtures(count: usize) -> Vec<(Vec<u8>, String, String)> {
        crate::test_support::fixtures()
            .into_iter()
            .take(count)
            .map(|f| (f.image, f.ddddocr_old, f.ddddocr_beta))
            .collect()
    }

    fn config(max_queue_wait_ms: u64) -> ThreadConfig {
        ThreadConfig {
            cores: vec![0, 1],
            max_batch: 8,
            max_queue_delay_us: 500,
            max_queue_wait_ms,
            priority: ThreadPriority::Idle,
            wide_threads: 2,
            limits: ImageLimits::default(),
        }
    }

    fn job(upload_id: u64, image: Vec<u8>, model: &str, enqueued_at: Instant) -> Job {
        let options = RecognizeOptions {
            model: model.into(),
            ..Default::default()
        };
        Job {
            upload_id,
            owner_shard: (upload_id % 2) as u16,
            digest: crate::recognition::cache::digest(&image),
            constraints: Default::default(),
            image,
            options,
            enqueued_at,
        }
    }

    #[test]
    fn every_job_is_answered_on_its_owner_shard_as_ddddocr_would() {
        let (queue, receiver) = JobQueue::bounded(256);
        let (sink, inboxes) = ResultSink::new(2, 256);
        let context = ThreadContext {
            jobs: receiver,
            results: sink,
            model_dir: model_dir(),
            stop: crossbeam_channel::never(),
        };
        let threads = start(context, config(60_000)).expect("models installed by scripts/setup.sh");
        let samples = fixtures(40);
        let mut expected = std::collections::HashMap::new();
        for (i, (image, old, beta)) in samples.into_iter().enumerate() {
            let (model, text) = if i % 2 == 0 {
                ("old", old)
            } else {
                ("beta", beta)
            };
            queue
                .try_submit(job(i as u64, image, model, Instant::now()))
                .unwrap();
            expected.insert(i as u64, text);
        }
        queue
            .try_submit(job(1000, b"GIF89a-broken".to_vec(), "old", Instant::now()))
            .unwrap();
        drop(queue); // the threads finish the queue, then exit
        threads.join();
        let mut answered = 0;
        for (shard, inbox) in inboxes.iter().enumerate() {
            while let Ok(result) = inbox.try_recv() {
                assert_eq!(result.owner_shard as usize, shard);
                assert!(result.batch_size >= 1);
                match expected.get(&result.upload_id) {
                    Some(text) => assert_eq!(&result.outcome.unwrap().text, text),
                    None => assert!(result.outcome.is_err(), "the broken GIF fails"),
                }
                answered += 1;
            }
        }
        assert_eq!(answered, 41);
    }

    #[test]
    fn a_job_that_waited_too_long_fails_without_running() {
        let (queue, receiver) = JobQueue::bounded(4);
        let (sink, inboxes) = ResultSink::new(2, 4);
        let context = ThreadContext {
            jobs: receiver,
            results: sink,
            model_dir: model_dir(),
            stop: crossbeam_channel::never(),
        };
        let threads = start(context, config(1)).unwrap();
        let long_ago = Instant::now() - Duration::from_secs(5);
        let (image, _, _) = fixtures(1).pop().unwrap();
        queue.try_submit(job(7, image, "old", long_ago)).unwrap();
        drop(queue);
        threads.join();
        let result = inboxes[1].try_recv().unwrap();
        assert!(matches!(
            result.outcome.unwrap_err(),
            JobFailure::WaitedTooLong { waited_ms } if waited_ms >= 5000
        ));
        assert_eq!(result.recognize_us, 0);
    }

    #[test]
    fn priorities_parse_from_config_text() {
        assert_eq!("idle".parse(), Ok(ThreadPriority::Idle));
        assert_eq!("normal".parse(), Ok(ThreadPriority::Normal));
        assert_eq!("nice:19".parse(), Ok(ThreadPriority::Nice(19)));
        assert!("nice:0".parse::<ThreadPriority>().is_err());
        assert!("fast".parse::<ThreadPriority>().is_err());
    }

    #[test]
    fn missing_models_are_a_start_error() {
        let (_queue, receiver) = JobQueue::bounded(4);
        let (sink, _inboxes) = ResultSink::new(1, 4);
        let empty = std::env::temp_dir().join(format!("aiocr-no-models-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let context = ThreadContext {
            jobs: receiver,
            results: sink,
            model_dir: empty,
            stop: crossbeam_channel::never(),
        };
        let refused = start(context, config(1000))
            .err()
            .expect("no models, no threads");
        assert!(refused.contains("no models"), "{refused}");
    }
}
