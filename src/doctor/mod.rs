//! `aiocr doctor`: checks that this host can run aiocr as configured (kernel, io_uring,
//! locked memory, open files, listen queues, cores, models, data directory) and says how to
//! fix what is not. Also the start-up checks `aiocr serve` runs (`raise_nofile_limit`,
//! `preflight`). Operator documentation: docs/operations.md; host settings: tuning/.

mod checks;
mod host;
mod needs;
mod report;
mod startup;
mod uring;

pub use startup::{preflight, raise_nofile_limit};

use report::{Check, Settings};
use std::path::PathBuf;

/// `aiocr serve`'s default for open connections per shard (AIOCR_MAX_CONNECTIONS_PER_SHARD).
const DEFAULT_MAX_CONNECTIONS_PER_SHARD: usize = 10_000;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON (for monitoring and scripts).
    #[arg(long)]
    json: bool,
    /// Shards the server will run; 0 = one per usable core (as `aiocr serve`).
    #[arg(long, env = "AIOCR_SHARDS", default_value_t = 0)]
    shards: usize,
    /// Open connections per shard [env: AIOCR_MAX_CONNECTIONS_PER_SHARD, or AIOCR_MAX_CONNECTIONS]
    /// [default: 10000].
    #[arg(long, env = "AIOCR_MAX_CONNECTIONS_PER_SHARD", hide_env = true)]
    max_connections_per_shard: Option<usize>,
    /// Listen backlog of each shard's socket.
    #[arg(long, env = "AIOCR_BACKLOG", default_value_t = 1024)]
    backlog: u32,
    /// Directory with the ddddocr models, charsets and libonnxruntime.so.
    #[arg(long, env = "AIOCR_MODEL_DIR", default_value = "./models")]
    model_dir: PathBuf,
    /// The server's data directory (per-shard ledgers).
    #[arg(long = "data", env = "AIOCR_DATA", default_value = "./data")]
    data_dir: PathBuf,
    /// Where sysctl values are read from; tests point it at a fake tree.
    #[arg(
        long,
        env = "AIOCR_DOCTOR_PROC_SYS",
        default_value = "/proc/sys",
        hide = true
    )]
    proc_sys: PathBuf,
}

pub fn run(args: DoctorArgs) -> i32 {
    let settings = resolve_settings(&args);
    let checks = run_checks(&args, &settings);
    if args.json {
        println!("{}", report::to_json(&settings, &checks));
    } else {
        print!("{}", report::to_text(&settings, &checks));
    }
    i32::from(report::has_failure(&checks))
}

fn resolve_settings(args: &DoctorArgs) -> Settings {
    let max_connections_per_shard = args
        .max_connections_per_shard
        .or_else(|| std::env::var("AIOCR_MAX_CONNECTIONS").ok()?.parse().ok())
        .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_SHARD);
    let shards = if args.shards == 0 {
        host::usable_cores()
    } else {
        args.shards
    };
    Settings {
        shards,
        max_connections_per_shard,
        backlog: args.backlog,
        model_dir: args.model_dir.display().to_string(),
        data_dir: args.data_dir.display().to_string(),
    }
}

fn run_checks(args: &DoctorArgs, settings: &Settings) -> Vec<Check> {
    let proc_sys = host::ProcSys::new(&args.proc_sys);
    let release = checks::kernel_release(&proc_sys);
    let kernel_version = host::kernel_version(&release);
    vec![
        checks::kernel(&release),
        checks::io_uring(&proc_sys),
        checks::memlock(settings.shards, kernel_version, host::has_cap_ipc_lock()),
        checks::nofile(
            settings.shards,
            settings.max_connections_per_shard,
            &proc_sys,
        ),
        checks::backlog(settings.backlog, &proc_sys),
        checks::cores(settings.shards, args.shards),
        checks::models(&args.model_dir),
        checks::onnxruntime(&args.model_dir),
        checks::data_dir(&args.data_dir),
    ]
}
