//! One run: check the target answers, plan connections and schedules, start the pinned
//! workers, print the live line, merge what they measured.

use crate::cli::{Args, Pin};
use crate::live::{LiveShared, Monitor};
use crate::stats::Stats;
use crate::target::Target;
use crate::worker::{ConnPlan, Worker, WorkerPlan};
use crate::workload::{self, OpKind, Workload, WorkloadSpec};
use anyhow::{anyhow, Context, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::TcpStream;
use std::time::SystemTime;
use std::time::{Duration, Instant};

/// Longest wait of the reachability check before the run.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(3);
/// Head start given to the threads before the first intended send.
const START_DELAY: Duration = Duration::from_millis(20);

/// The target did not accept a connection: the run did not start.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

pub struct RunResult {
    pub stats: Stats,
    pub elapsed: Duration,
    pub connections: usize,
    pub threads: usize,
    pub mix: Vec<(OpKind, u32)>,
    pub target: Target,
}

pub fn run(args: &Args) -> Result<RunResult> {
    let run_length = args.validate()?;
    let target = Target::parse(&args.url)?;
    let workload = Workload::build(&target, workload_spec(args)?)?;

    let connections = match args.requests {
        Some(n) => args
            .connections
            .min(usize::try_from(n).unwrap_or(usize::MAX)),
        None => args.connections,
    };
    ensure_fd_limit(connections)?;
    preflight(&target, args.timeout.min(PREFLIGHT_TIMEOUT))?;
    let threads = args.threads.min(connections);
    let start = Instant::now() + START_DELAY;
    let end = start + run_length;
    // A time-bound run waits up to one timeout for the answers in flight at its end.
    let stop = match args.duration {
        Some(_) => (end + args.timeout).min(start + args.max_duration),
        None => end,
    };
    let plans = plan_workers(args, &target, connections, threads, start, end, stop);
    let shared: Vec<_> = plans.iter().map(|_| LiveShared::new()).collect();

    // Created before the run: a bad path fails now, not after a long run.
    let mut hdr_file = match &args.hdr_out {
        Some(path) => {
            Some(BufWriter::new(File::create(path).with_context(|| {
                format!("cannot create {}", path.display())
            })?))
        }
        None => None,
    };
    let mut serializer = V2DeflateSerializer::new();
    let mut hdr_log = match hdr_file.as_mut() {
        Some(file) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment(
                    "aiocr-loadgen latency log: values in microseconds, one interval a second",
                )
                .add_comment(&format!("target {}", target.url))
                .with_start_time(SystemTime::now())
                .with_base_time(SystemTime::now())
                .begin_log_with(file, &mut serializer)?,
        ),
        None => None,
    };

    let results = std::thread::scope(|scope| -> Result<Vec<_>> {
        let handles: Vec<_> = plans
            .into_iter()
            .zip(&shared)
            .map(|(plan, live)| {
                let workload = &workload;
                let live = live.clone();
                std::thread::Builder::new()
                    .name(format!("loadgen-{}", plan.thread_index))
                    .spawn_scoped(scope, move || Worker::new(plan, workload, live)?.run())
            })
            .collect::<std::io::Result<_>>()?;
        let watched = watch(&handles, &shared, start, !args.no_live, hdr_log.as_mut());
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("a worker thread panicked"))?
                    .context("worker event loop failed")
            })
            .collect::<Result<Vec<_>>>()
            .and_then(|results| watched.map(|()| results))
    })?;
    drop(hdr_log);
    if let Some(mut file) = hdr_file {
        file.flush().context("cannot write the histogram log")?;
    }

    let mut stats = Stats::new(workload.mix.len());
    let mut last_done = start;
    for result in &results {
        stats.merge(&result.stats);
        last_done = last_done.max(result.last_done);
    }
    Ok(RunResult {
        stats,
        elapsed: last_done.saturating_duration_since(start),
        connections,
        threads,
        mix: workload.mix.clone(),
        target,
    })
}

fn workload_spec(args: &Args) -> Result<WorkloadSpec> {
    let mix = match &args.mix {
        Some(text) => workload::parse_mix(text)?,
        None => vec![(OpKind::parse(&args.scenario)?, 1)],
    };
    let mut users = args
        .users
        .iter()
        .map(|u| workload::parse_user(u))
        .collect::<Result<Vec<_>>>()?;
    if let Some(path) = &args.users_file {
        users.extend(workload::read_users_file(path)?);
    }
    let images = match &args.images {
        Some(dir) => workload::load_corpus(dir)?,
        None => Vec::new(),
    };
    let body = match &args.body_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    Ok(WorkloadSpec {
        mix,
        method: args.method.clone(),
        headers: args.headers.clone(),
        body,
        users,
        images,
        upload_query: args.upload_query.clone(),
        api_key: args.api_key.clone(),
        api_keys: match &args.api_keys_file {
            Some(path) => crate::cache_ops::read_keys_file(path)?,
            None => Vec::new(),
        },
        repeat_share_per_million: (args.repeat_share * 1e6).round() as u64,
        lookup_batch: args.lookup_batch,
        slide_pairs: match &args.slide_pairs {
            Some(dir) => workload::load_slide_pairs(dir)?,
            None => Vec::new(),
        },
    })
}

/// Descriptors kept free for everything that is not a connection (epoll, files, stdio).
const SPARE_FDS: u64 = 64;

/// Raises the soft open-file limit to fit the connections, or says why the run cannot.
fn ensure_fd_limit(connections: usize) -> Result<()> {
    let needed = connections as u64 + SPARE_FDS;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(());
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    if limit.rlim_max < needed {
        anyhow::bail!(
            "{connections} connections need {needed} open files but the hard limit is {} \
             (raise it with ulimit -Hn, or use fewer connections)",
            limit.rlim_max
        );
    }
    limit.rlim_cur = needed;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        anyhow::bail!("cannot raise the open-file limit to {needed}");
    }
    Ok(())
}

fn preflight(target: &Target, timeout: Duration) -> Result<()> {
    match TcpStream::connect_timeout(&target.addr, timeout) {
        Ok(_) => Ok(()),
        Err(e) => Err(Unreachable(format!(
            "cannot connect to {} ({}): {e}",
            target.addr, target.url
        ))
        .into()),
    }
}

/// Splits connections, the -n budget and the open-loop schedule over the workers.
fn plan_workers(
    args: &Args,
    target: &Target,
    connections: usize,
    threads: usize,
    start: Instant,
    end: Instant,
    stop: Instant,
) -> Vec<WorkerPlan> {
    let pin = match args.pin {
        Pin::Always => true,
        Pin::Never => false,
        Pin::Auto => threads >= 2,
    };
    let cores = if pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    // Connection g of C, at R ops/s in total, sends at g/R + k*C/R seconds: the connections'
    // schedules interleave into one even schedule.
    let interval_ns = args.rate.map(|rate| connections as f64 * 1e9 / rate);
    let conn_plan = |global_index: usize| ConnPlan {
        global_index,
        op_budget: match args.requests {
            Some(n) => {
                let c = connections as u64;
                n / c + u64::from((global_index as u64) < n % c)
            }
            None => u64::MAX,
        },
        first_at: match args.rate {
            Some(rate) => Duration::from_secs_f64(global_index as f64 / rate),
            None => Duration::ZERO,
        },
    };
    (0..threads)
        .map(|thread_index| {
            let first = thread_index * connections / threads;
            let last = (thread_index + 1) * connections / threads;
            WorkerPlan {
                thread_index,
                core: (!cores.is_empty()).then(|| cores[thread_index % cores.len()]),
                addr: target.addr,
                conns: (first..last).map(conn_plan).collect(),
                start,
                end,
                stop,
                interval_ns,
                pipeline: args.pipeline,
                timeout: args.timeout,
                poll_interval: args.poll_interval,
                max_answer_bytes: args.max_answer_bytes,
            }
        })
        .collect()
}

/// Where --hdr-out goes while the run goes on.
type HdrLog<'a, 'b> = IntervalLogWriter<'a, 'b, BufWriter<File>, V2DeflateSerializer>;

/// Waits for the workers; once a second prints the live line and logs the second's
/// histograms. The last, partial interval is taken after the workers' final publication.
fn watch<T>(
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
    shared: &[std::sync::Arc<LiveShared>],
    start: Instant,
    print_live: bool,
    mut hdr_log: Option<&mut HdrLog<'_, '_>>,
) -> Result<()> {
    let mut monitor = Monitor::new(shared.to_vec(), start);
    let mut next_tick = start + Duration::from_secs(1);
    loop {
        let finished = handles.iter().all(|h| h.is_finished());
        let now = Instant::now();
        if finished || now >= next_tick {
            let (interval, line) = monitor.tick(now);
            if let Some(log) = hdr_log.as_deref_mut() {
                for (tag, hist) in [
                    ("corrected", &interval.latencies.corrected_us),
                    ("uncorrected", &interval.latencies.uncorrected_us),
                ] {
                    log.write_histogram(hist, interval.start, interval.length, Tag::new(tag))
                        .map_err(|e| anyhow!("cannot write the histogram log: {e}"))?;
                }
            }
            if print_live && !finished {
                eprintln!("{line}");
            }
            next_tick += Duration::from_secs(1);
        }
        if finished {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
