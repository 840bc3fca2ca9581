//! The threads that run the jobs: recognition threads (the models: text captchas and click
//! captchas), pinned, optionally at low scheduling priority, each with its own engines (one
//! ONNX Runtime session per model) and detector; and slide threads, which need no model.
//!
//! - Text captchas batch like Triton's dynamic batcher: a thread takes a job, whatever else is
//!   queued up to `max_batch`, and may wait up to `max_queue_delay_us` for more; the engine
//!   runs equal-width images of batchable models as one tensor and everything else one by
//!   one, so answers never depend on the batch.
//! - Click captchas cost tens of milliseconds of model time each: at most `detect_threads` of
//!   the recognition threads run one at a time, and a thread takes a waiting text captcha
//!   first, so a flood of detections never starves text (with two or more threads, one is
//!   always free for text).
//! - Slides run on their own threads (`slide_threads`, not pinned, at normal priority: a
//!   slide takes about a millisecond), so they never wait behind a model run.
//! - A text job submitted while no recognition thread runs and nothing is queued (one
//!   request at a time: where latency is all that counts) goes through the lone lane
//!   (queue.rs) to the wide runner: one thread whose engine runs a model on every recognition
//!   core at once. It runs at normal priority whatever `priority` says: a SCHED_IDLE thread
//!   waits for every other runnable thread on its core, the machine's other processes
//!   included, and a lone request has nothing of the server's own to give way to.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Select};

use super::{Job, JobAnswer, JobFailure, JobReceivers, JobResult, ResultSink, Task, ThreadContext};
use crate::engine::custom::SessionBounds;
use crate::engine::{
    available_models, detection_model_path, slide, solve_click, ClickStages, Detector, Engine,
    ImageLimits, RecognizeOptions, CLICK_MODEL, SETUP_HINT,
};

/// How often a recognition thread that may not take a waiting detection (the cap is reached)
/// looks again.
const DETECT_RECHECK: Duration = Duration::from_millis(2);

/// How the threads are laid out and how they batch.
#[derive(Clone, Debug)]
pub struct ThreadConfig {
    /// One recognition thread per entry, pinned to that core.
    pub cores: Vec<usize>,
    /// Most recognition threads running a detection at once (1..=cores).
    pub detect_threads: usize,
    /// Threads running slides.
    pub slide_threads: usize,
    /// Most jobs one engine call takes.
    pub max_batch: usize,
    /// How long a thread holding fewer than `max_batch` jobs waits for more (0: never).
    pub max_queue_delay_us: u64,
    /// A job older than this when a thread takes it fails without running (and is refunded).
    pub max_queue_wait_ms: u64,
    /// Scheduling priority of the recognition threads.
    pub priority: ThreadPriority,
    /// Threads inside one model run of the wide runner's engine, used for a text job
    /// submitted while no recognition thread is busy and nothing else is queued: one image
    /// then uses every recognition core (on a 2-core VM: 3.8 instead of 5.0 ms per
    /// recognition at one connection, its pool threads spinning only during a run). Under
    /// load every thread runs its single-threaded engine, which gives the most images/s.
    /// Costs one more session per model (~155 MB for `old` + `beta`). Below 2: no wide
    /// runner.
    pub wide_threads: usize,
    pub limits: ImageLimits,
    /// The custom models each recognition thread keeps loaded (`model_memory_bytes` shared
    /// out, `model_idle_secs`).
    pub custom_bounds: SessionBounds,
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

/// The running threads.
pub struct RecognitionThreads {
    handles: Vec<JoinHandle<()>>,
    recognition: usize,
}

impl RecognitionThreads {
    /// Recognition threads (the slide threads not counted).
    pub fn count(&self) -> usize {
        self.recognition
    }

    /// Waits for every thread to exit (after `ThreadContext::stop` disconnected, or every
    /// `JobQueues` was dropped).
    pub fn join(self) {
        for handle in self.handles {
            let _ = handle.join();
        }
    }
}

/// What every thread shares.
struct Shared {
    results: ResultSink,
    stop: Receiver<()>,
    /// Recognition threads running a detection right now (at most `detect_threads`).
    detecting: AtomicUsize,
}

/// Starts the recognition threads (one per configured core) and the slide threads; returns
/// once every recognition thread has loaded its models, or the first loading error (missing
/// models, broken ONNX Runtime). The threads exit when `ThreadContext::stop` disconnects or
/// every `JobQueues` clone is dropped.
pub fn start(context: ThreadContext, config: ThreadConfig) -> Result<RecognitionThreads, String> {
    assert!(!config.cores.is_empty(), "at least one recognition thread");
    assert!(config.max_batch >= 1, "max_batch >= 1");
    assert!((1..=config.cores.len()).contains(&config.detect_threads));
    assert!(config.slide_threads >= 1);
    let models = available_models(&context.model_dir);
    if models.is_empty() {
        return Err(format!(
            "no models in {} ({SETUP_HINT})",
            context.model_dir.display()
        ));
    }
    let shared = Arc::new(Shared {
        results: context.results,
        stop: context.stop,
        detecting: AtomicUsize::new(0),
    });
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::with_capacity(config.cores.len() + config.slide_threads + 1);
    for (index, &core) in config.cores.iter().enumerate() {
        let (jobs, shared, ready) = (context.jobs.clone(), shared.clone(), ready_tx.clone());
        let (model_dir, models, config) =
            (context.model_dir.clone(), models.clone(), config.clone());
        let handle = std::thread::Builder::new()
            .name(format!("aiocr-recog-{index}"))
            .spawn(move || {
                set_priority(config.priority);
                set_affinity(&[core]);
                match Engines::load(&model_dir, &models, &config) {
                    Ok(engines) => {
                        let _ = ready.send(Ok(()));
                        recognize_jobs(engines, &jobs, &shared, &config);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })
            .map_err(|e| format!("cannot start a recognition thread: {e}"))?;
        handles.push(handle);
    }
    let wide_runner = config.wide_threads >= 2;
    if wide_runner {
        let (jobs, shared, ready) = (context.jobs.clone(), shared.clone(), ready_tx.clone());
        let (model_dir, models, config) =
            (context.model_dir.clone(), models.clone(), config.clone());
        let handle = std::thread::Builder::new()
            .name("aiocr-wide".to_string())
            .spawn(move || {
                // ONNX Runtime's pool threads start with the session and inherit the creating
                // thread's affinity and priority: every recognition core, normal priority
                // (or the configured nice value).
                set_affinity(&config.cores);
                set_priority(wide_priority(config.priority));
                let limits = config.limits;
                match Engine::load_with_threads(&model_dir, &models, limits, config.wide_threads) {
                    Ok(engine) => {
                        let _ = ready.send(Ok(()));
                        run_lone_jobs(engine, &jobs, &shared, &config);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| format!("cannot start the wide runner: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..config.cores.len() + usize::from(wide_runner) {
        ready_rx
            .recv()
            .map_err(|_| "a recognition thread died while loading".to_string())??;
    }
    if wide_runner {
        context.jobs.activity.open();
    }
    if let Err(error) = crate::engine::load_slide_library(&context.model_dir) {
        crate::log_line!("no IPP for slides ({error}): scores may differ from ddddocr's by ~1e-4");
    }
    for index in 0..config.slide_threads {
        let (jobs, shared, config) = (context.jobs.slide.clone(), shared.clone(), config.clone());
        let handle = std::thread::Builder::new()
            .name(format!("aiocr-slide-{index}"))
            .spawn(move || slide_jobs(&jobs, &shared, &config))
            .map_err(|e| format!("cannot start a slide thread: {e}"))?;
        handles.push(handle);
    }
    // What loading the models freed stays in the loading threads' arenas otherwise.
    crate::heap::trim_freed();
    Ok(RecognitionThreads {
        handles,
        recognition: config.cores.len(),
    })
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

/// Sets the calling thread's scheduling priority (best effort, as `set_affinity`). Also used
/// by the password hash threads (src/password_pool.rs).
pub fn set_priority(priority: ThreadPriority) {
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

/// The wide runner's priority: normal where the recognition threads run at SCHED_IDLE (a
/// lone job waits for nothing of the server's, and at SCHED_IDLE it would wait for every
/// other process on its cores), else theirs.
fn wide_priority(priority: ThreadPriority) -> ThreadPriority {
    match priority {
        ThreadPriority::Idle => ThreadPriority::Normal,
        other => other,
    }
}

/// One recognition thread's engines: single-threaded, and the detector (when
/// `common_det.onnx` is installed).
struct Engines {
    narrow: Engine,
    detector: Option<Detector>,
}

impl Engines {
    fn load(model_dir: &Path, models: &[String], config: &ThreadConfig) -> Result<Engines, String> {
        let (limits, custom_bounds) = (config.limits, config.custom_bounds);
        let mut narrow = Engine::load(model_dir, models, limits).map_err(|e| e.to_string())?;
        narrow.set_custom_bounds(custom_bounds);
        let detector = match detection_model_path(model_dir).exists() {
            true => Some(Detector::load(model_dir, limits, 1).map_err(|e| e.to_string())?),
            false => None,
        };
        Ok(Engines { narrow, detector })
    }
}

/// The wide runner: the lone lane's jobs, one at a time, until the server stops (or every
/// `JobQueues` is dropped).
fn run_lone_jobs(mut engine: Engine, jobs: &JobReceivers, shared: &Shared, config: &ThreadConfig) {
    let max_wait = Duration::from_millis(config.max_queue_wait_ms);
    loop {
        let job = crossbeam_channel::select! {
            recv(jobs.lone) -> job => match job { Ok(job) => job, Err(_) => break },
            recv(shared.stop) -> _ => break,
        };
        let taken_at = Instant::now();
        let fresh = fail_stale(vec![job], taken_at, max_wait, &shared.results);
        if !fresh.is_empty() {
            run_batch(&mut engine, fresh, &shared.results, taken_at);
        }
        // Its result is delivered: the next lone job may come.
        jobs.activity.release();
    }
    jobs.activity.close();
}

/// Runs until `stop` disconnects or every `JobQueues` is dropped (the server is stopping).
fn recognize_jobs(
    mut engines: Engines,
    jobs: &JobReceivers,
    shared: &Shared,
    config: &ThreadConfig,
) {
    let max_wait = Duration::from_millis(config.max_queue_wait_ms);
    while let Some(work) = next_work(jobs, shared, config, &mut engines) {
        let taken_at = Instant::now();
        match work {
            Work::Text(batch) => {
                let fresh = fail_stale(batch, taken_at, max_wait, &shared.results);
                if !fresh.is_empty() {
                    run_text(&mut engines, fresh, jobs, shared, taken_at);
                }
            }
            Work::Detect(job) => {
                let fresh = fail_stale(vec![*job], taken_at, max_wait, &shared.results);
                for job in fresh {
                    run_detect(&mut engines, job, &shared.results, taken_at, &config.limits);
                }
                let was = shared.detecting.fetch_sub(1, Ordering::SeqCst);
                assert!(was >= 1, "detecting counts this thread while it runs");
            }
        }
        engines.narrow.unload_idle_custom(Instant::now());
    }
}

/// What a recognition thread took.
enum Work {
    Text(Vec<Job>),
    /// A detection; this thread holds one of the `detect_threads` places until it is done.
    Detect(Box<Job>),
}

/// Blocks for the next work: a waiting text job first, else a detection if a detection place
/// is free, else whichever comes. `None` when the server stops. While it waits, custom
/// models that fall idle are unloaded.
fn next_work(
    jobs: &JobReceivers,
    shared: &Shared,
    config: &ThreadConfig,
    engines: &mut Engines,
) -> Option<Work> {
    loop {
        match jobs.ocr.try_recv() {
            Ok(job) => {
                return Some(Work::Text(gather(job, &jobs.ocr, config, |o| {
                    engines.narrow.batchable(o)
                })))
            }
            // Every sender dropped (tests; a server stops through `stop`): finish the
            // detections left, then end.
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                let job = jobs.detect.recv().ok()?;
                assert!(take_detect_place(&shared.detecting, usize::MAX));
                return Some(Work::Detect(Box::new(job)));
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        let may_detect = take_detect_place(&shared.detecting, config.detect_threads);
        let mut select = Select::new();
        let ocr = select.recv(&jobs.ocr);
        let stop = select.recv(&shared.stop);
        let detect = may_detect.then(|| select.recv(&jobs.detect));
        // Without a place, a waiting detection is looked at again shortly (a place frees
        // when another thread's detection ends, which sends no message); a loaded custom
        // model is unloaded once idle for its bound.
        let recheck = (!may_detect && !jobs.detect.is_empty()).then_some(DETECT_RECHECK);
        let idle_check = engines.narrow.next_idle_check(Instant::now());
        let ready = match recheck.into_iter().chain(idle_check).min() {
            Some(timeout) => select.select_timeout(timeout).ok(),
            None => Some(select.select()),
        };
        let Some(operation) = ready else {
            release_detect_place(&shared.detecting, may_detect);
            engines.narrow.unload_idle_custom(Instant::now());
            continue;
        };
        let index = operation.index();
        if index == ocr {
            release_detect_place(&shared.detecting, may_detect);
            match operation.recv(&jobs.ocr) {
                Ok(job) => {
                    return Some(Work::Text(gather(job, &jobs.ocr, config, |o| {
                        engines.narrow.batchable(o)
                    })))
                }
                Err(_) => return None, // every sender gone: the server is stopping
            }
        } else if index == stop {
            release_detect_place(&shared.detecting, may_detect);
            let _ = operation.recv(&shared.stop);
            return None;
        } else {
            assert_eq!(Some(index), detect, "the only other operation");
            match operation.recv(&jobs.detect) {
                Ok(job) => return Some(Work::Detect(Box::new(job))),
                Err(_) => {
                    release_detect_place(&shared.detecting, true);
                    return None;
                }
            }
        }
    }
}

/// Takes one of the `max` detection places if one is free.
fn take_detect_place(detecting: &AtomicUsize, max: usize) -> bool {
    detecting
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
            (now < max).then_some(now + 1)
        })
        .is_ok()
}

fn release_detect_place(detecting: &AtomicUsize, taken: bool) {
    if taken {
        let was = detecting.fetch_sub(1, Ordering::SeqCst);
        assert!(was >= 1, "a place was taken");
    }
}

/// Fails the jobs that waited longer than `max_wait`; returns the others.
fn fail_stale(
    batch: Vec<Job>,
    taken_at: Instant,
    max_wait: Duration,
    results: &ResultSink,
) -> Vec<Job> {
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
    fresh
}

/// A recognition thread's batch of text jobs, on its single-threaded engine.
fn run_text(
    engines: &mut Engines,
    fresh: Vec<Job>,
    jobs: &JobReceivers,
    shared: &Shared,
    taken_at: Instant,
) {
    // While it runs, a new text job queues for the other threads rather than the wide runner.
    jobs.activity.enter();
    run_batch(&mut engines.narrow, fresh, &shared.results, taken_at);
    jobs.activity.leave();
}

/// Runs text jobs on `engine` and delivers their results.
fn run_batch(engine: &mut Engine, fresh: Vec<Job>, results: &ResultSink, taken_at: Instant) {
    let items: Vec<(&[u8], &RecognizeOptions)> = fresh
        .iter()
        .map(|job| match &job.task {
            Task::Ocr { image, options } => (image.as_slice(), options),
            _ => unreachable!("the text queue holds text jobs"),
        })
        .collect();
    let answers = engine.recognize_batch(&items);
    assert_eq!(answers.len(), fresh.len(), "one answer per job");
    let recognize_us = micros(taken_at.elapsed());
    let batch_size = fresh.len() as u32;
    for (job, answer) in fresh.iter().zip(answers) {
        let queued_us = micros(taken_at.duration_since(job.enqueued_at));
        let outcome = answer.map(JobAnswer::Text).map_err(JobFailure::Recognize);
        results.deliver(result_of(job, outcome, queued_us, recognize_us, batch_size));
    }
}

fn run_detect(
    engines: &mut Engines,
    job: Job,
    results: &ResultSink,
    taken_at: Instant,
    limits: &ImageLimits,
) {
    let Some(detector) = engines.detector.as_mut() else {
        let missing = format!("the detection model is not installed ({SETUP_HINT})");
        let failure = JobFailure::Detect(crate::engine::DetectError::Model(missing));
        let queued_us = micros(taken_at.duration_since(job.enqueued_at));
        results.deliver(result_of(&job, Err(failure), queued_us, 0, 1));
        return;
    };
    let outcome = match &job.task {
        Task::Detect { image } => detector
            .detect(image)
            .map(JobAnswer::Boxes)
            .map_err(JobFailure::Detect),
        Task::Click {
            image,
            hint,
            rectangles,
        } => solve_click(
            detector,
            &mut engines.narrow,
            CLICK_MODEL,
            image,
            hint.instruction(),
            limits,
            &mut ClickStages::default(),
        )
        .map(|clicks| match rectangles {
            true => JobAnswer::Boxes(clicks.iter().map(|click| click.area).collect()),
            false => JobAnswer::Points(clicks.iter().map(|click| click.point).collect()),
        })
        .map_err(JobFailure::Click),
        _ => unreachable!("the detection queue holds detections and click captchas"),
    };
    let queued_us = micros(taken_at.duration_since(job.enqueued_at));
    results.deliver(result_of(
        &job,
        outcome,
        queued_us,
        micros(taken_at.elapsed()),
        1,
    ));
}

/// A slide thread: until the server stops.
fn slide_jobs(jobs: &Receiver<Job>, shared: &Shared, config: &ThreadConfig) {
    let max_wait = Duration::from_millis(config.max_queue_wait_ms);
    loop {
        let job = crossbeam_channel::select! {
            recv(jobs) -> job => match job { Ok(job) => job, Err(_) => return },
            recv(shared.stop) -> _ => return,
        };
        let taken_at = Instant::now();
        for job in fail_stale(vec![job], taken_at, max_wait, &shared.results) {
            let Task::Slide {
                target,
                background,
                mode,
            } = &job.task
            else {
                unreachable!("the slide queue holds slides");
            };
            let outcome = slide(target, background, *mode, &config.limits)
                .map(JobAnswer::Slide)
                .map_err(JobFailure::Slide);
            let queued_us = micros(taken_at.duration_since(job.enqueued_at));
            shared.results.deliver(result_of(
                &job,
                outcome,
                queued_us,
                micros(taken_at.elapsed()),
                1,
            ));
        }
    }
}

/// The first text job and, when its model can batch, up to `max_batch` more (waiting at most
/// `max_queue_delay_us`). A job of a model that cannot batch runs alone, leaving the queue to
/// the other threads.
fn gather(
    first: Job,
    jobs: &Receiver<Job>,
    config: &ThreadConfig,
    batchable: impl Fn(&RecognizeOptions) -> bool,
) -> Vec<Job> {
    let Task::Ocr { options, .. } = &first.task else {
        unreachable!("the text queue holds text jobs");
    };
    let gather = batchable(options);
    let mut batch = Vec::with_capacity(config.max_batch);
    batch.push(first);
    if !gather {
        return batch;
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
    batch
}

fn result_of(
    job: &Job,
    outcome: Result<JobAnswer, JobFailure>,
    queued_us: u64,
    recognize_us: u64,
    batch_size: u32,
) -> JobResult {
    JobResult {
        upload_id: job.upload_id,
        owner_shard: job.owner_shard,
        kind: job.task.kind(),
        outcome,
        cache_hit: false,
        queued_us,
        recognize_us,
        batch_size,
        cache_key: job.cache_key.clone(),
        constraints: job.constraints.clone(),
        receipt: None,
    }
}

fn micros(duration: Duration) -> u64 {
    duration.as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recognition::cache::{digest, CacheKey, TaskKey};
    use crate::recognition::JobQueues;
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
            detect_threads: 1,
            slide_threads: 1,
            max_batch: 8,
            max_queue_delay_us: 500,
            max_queue_wait_ms,
            priority: ThreadPriority::Idle,
            wide_threads: 2,
            limits: ImageLimits::default(),
            custom_bounds: SessionBounds::default(),
        }
    }

    fn job(upload_id: u64, task: Task, enqueued_at: Instant) -> Job {
        let cache_key = CacheKey {
            digest: [0; 32],
            task: TaskKey::Detect,
        };
        Job {
            upload_id,
            owner_shard: (upload_id % 2) as u16,
            task,
            cache_key,
            constraints: Default::default(),
            enqueued_at,
        }
    }

    fn text_job(upload_id: u64, image: Vec<u8>, model: &str) -> Job {
        let options = RecognizeOptions {
            model: model.into(),
            ..Default::default()
        };
        let mut job = job(
            upload_id,
            Task::Ocr {
                image,
                options: options.clone(),
            },
            Instant::now(),
        );
        job.cache_key = CacheKey::ocr([0; 32], options);
        job
    }

    fn context(
        model_dir: std::path::PathBuf,
    ) -> (JobQueues, ThreadContext, Vec<flume::Receiver<JobResult>>) {
        let (queues, receivers) = JobQueues::bounded([256, 16, 16]);
        let (sink, inboxes) = ResultSink::new(2, 512);
        let context = ThreadContext {
            jobs: receivers,
            results: sink,
            model_dir,
            stop: crossbeam_channel::never(),
        };
        (queues, context, inboxes)
    }

    #[test]
    fn every_job_is_answered_on_its_owner_shard_as_ddddocr_would() {
        let (queues, context, inboxes) = context(model_dir());
        let threads = start(context, config(60_000)).expect("models installed by scripts/setup.sh");
        let mut expected = std::collections::HashMap::new();
        for (i, (image, old, beta)) in fixtures(40).into_iter().enumerate() {
            let (model, text) = if i % 2 == 0 {
                ("old", old)
            } else {
                ("beta", beta)
            };
            queues.try_submit(text_job(i as u64, image, model)).unwrap();
            expected.insert(i as u64, text);
        }
        queues
            .try_submit(text_job(1000, b"GIF89a-broken".to_vec(), "old"))
            .unwrap();
        // Detections and slides share the threads; their answers are checked against
        // ddddocr's in tests/ddddocr_more_parity.rs, here only that each one comes back.
        let (click, _) = crate::test_support::click_fixture();
        let (target, background, mode) = crate::test_support::slide_fixture();
        for id in 2000..2004 {
            queues
                .try_submit(job(
                    id,
                    Task::Detect {
                        image: click.clone(),
                    },
                    Instant::now(),
                ))
                .unwrap();
            let slide = Task::Slide {
                target: target.clone(),
                background: background.clone(),
                mode,
            };
            queues
                .try_submit(job(id + 100, slide, Instant::now()))
                .unwrap();
        }
        drop(queues); // the threads finish the queues, then exit
        threads.join();
        let mut answered = 0;
        for (shard, inbox) in inboxes.iter().enumerate() {
            while let Ok(result) = inbox.try_recv() {
                assert_eq!(result.owner_shard as usize, shard);
                assert!(result.batch_size >= 1);
                match (expected.get(&result.upload_id), result.outcome) {
                    (Some(text), Ok(JobAnswer::Text(answer))) => assert_eq!(&answer.text, text),
                    (None, Ok(JobAnswer::Boxes(boxes))) => assert!(!boxes.is_empty()),
                    (None, Ok(JobAnswer::Slide(_))) => assert!(result.upload_id >= 2100),
                    (None, Err(_)) => assert_eq!(result.upload_id, 1000, "the broken GIF fails"),
                    (_, other) => panic!("upload {}: {other:?}", result.upload_id),
                }
                answered += 1;
            }
        }
        assert_eq!(answered, 41 + 8);
    }

    #[test]
    fn a_job_that_waited_too_long_fails_without_running() {
        let (queues, context, inboxes) = context(model_dir());
        let threads = start(context, config(1)).unwrap();
        let long_ago = Instant::now() - Duration::from_secs(5);
        let (image, _, _) = fixtures(1).pop().unwrap();
        let mut stale = text_job(7, image, "old");
        stale.enqueued_at = long_ago;
        queues.try_submit(stale).unwrap();
        drop(queues);
        threads.join();
        let result = inboxes[1].try_recv().unwrap();
        assert!(matches!(
            result.outcome.unwrap_err(),
            JobFailure::WaitedTooLong { waited_ms } if waited_ms >= 5000
        ));
        assert_eq!(result.recognize_us, 0);
    }

    #[test]
    fn detection_places_are_capped() {
        let detecting = AtomicUsize::new(0);
        assert!(take_detect_place(&detecting, 2));
        assert!(take_detect_place(&detecting, 2));
        assert!(!take_detect_place(&detecting, 2), "both places taken");
        release_detect_place(&detecting, true);
        assert!(take_detect_place(&detecting, 2));
        release_detect_place(&detecting, false);
        assert_eq!(detecting.load(Ordering::SeqCst), 2);
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
        let empty = std::env::temp_dir().join(format!("aiocr-no-models-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let (_queues, context, _inboxes) = context(empty);
        let refused = start(context, config(1000))
            .err()
            .expect("no models, no threads");
        assert!(refused.contains("no models"), "{refused}");
        let _ = digest(b"");
    }
}
