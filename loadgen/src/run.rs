//! One run: check the target answers, plan connections and schedules, start the pinned
//! workers, print the live line, merge what they measured.

use crate::cli::{Args, Pin};
use crate::live::{LivePrinter, LiveShared};
use crate::stats::Stats;
use crate::target::Target;
use crate::worker::{ConnPlan, Worker, WorkerPlan};
use crate::workload::{self, OpKind, Workload, WorkloadSpec};
use anyhow::{anyhow, Context, Result};
use std::net::TcpStream;
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
    preflight(&target, args.timeout.min(PREFLIGHT_TIMEOUT))?;

    let connections = match args.requests {
        Some(n) => args
            .connections
            .min(usize::try_from(n).unwrap_or(usize::MAX)),
        None => args.connections,
    };
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
        watch(&handles, &shared, start, !args.no_live);
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("a worker thread panicked"))?
                    .context("worker event loop failed")
            })
            .collect()
    })?;

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
    })
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
            }
        })
        .collect()
}

/// Waits for the workers, printing the live line once a second.
fn watch<T>(
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
    shared: &[std::sync::Arc<LiveShared>],
    start: Instant,
    print_live: bool,
) {
    let mut printer = LivePrinter::new(shared.to_vec(), start);
    let mut next_line = start + Duration::from_secs(1);
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if print_live && now >= next_line {
            eprintln!("{}", printer.line(now));
            next_line += Duration::from_secs(1);
        }
    }
}
