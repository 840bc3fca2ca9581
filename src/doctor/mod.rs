//! `aiocr doctor`: checks that this host can run aiocr as configured (kernel, io_uring,
//! locked memory, open files, listen queues, cores, models, data directory, and the TLS
//! certificate when `tls_listen` is set) and says how to
//! fix what is not. It reads the configuration exactly as `aiocr serve` does (`--config`,
//! `AIOCR_*`, `--set`: `config::ConfigArgs`), so the two cannot disagree. Also the start-up checks `aiocr serve` runs (`raise_nofile_limit`,
//! `preflight`). Operator documentation: docs/operations.md; host settings: tuning/.

mod checks;
mod host;
pub mod needs;
mod report;
mod startup;
mod uring;

pub use startup::{preflight, raise_nofile_limit};

use crate::config::{Config, ConfigArgs};
use report::{Check, Settings};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON (for monitoring and scripts).
    #[arg(long)]
    json: bool,
    /// The server's configuration, loaded as `aiocr serve` loads it (file, environment,
    /// flags).
    #[command(flatten)]
    config: ConfigArgs,
    /// Open connections per shard (config key `max_connections_per_shard`).
    #[arg(long)]
    max_connections_per_shard: Option<usize>,
    /// Listen backlog of each shard's socket (config key `backlog`).
    #[arg(long)]
    backlog: Option<u32>,
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
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("aiocr doctor: {message}");
            return 2;
        }
    };
    let settings = settings(&config);
    let checks = run_checks(&args, &config, &settings);
    if args.json {
        println!("{}", report::to_json(&settings, &checks));
    } else {
        print!("{}", report::to_text(&settings, &checks));
    }
    i32::from(report::has_failure(&checks))
}

/// The configuration `aiocr serve` would run with these arguments.
fn load_config(args: &DoctorArgs) -> Result<Config, String> {
    let mut extra: Vec<(&str, String)> = Vec::new();
    if let Some(connections) = args.max_connections_per_shard {
        extra.push(("max_connections_per_shard", connections.to_string()));
    }
    if let Some(backlog) = args.backlog {
        extra.push(("backlog", backlog.to_string()));
    }
    args.config.load(&extra)
}

fn settings(config: &Config) -> Settings {
    Settings {
        shards: usize::from(config.node.shard_count()),
        max_connections_per_shard: config.network.max_connections_per_shard,
        backlog: config.network.backlog,
        model_dir: config.node.model_dir.display().to_string(),
        data_dir: config.store.data_dir.display().to_string(),
    }
}

fn run_checks(args: &DoctorArgs, config: &Config, settings: &Settings) -> Vec<Check> {
    let proc_sys = host::ProcSys::new(&args.proc_sys);
    let release = checks::kernel_release(&proc_sys);
    let kernel_version = host::kernel_version(&release);
    let mut checks = vec![
        checks::kernel(&release),
        checks::io_uring(&proc_sys),
        checks::memlock(settings.shards, kernel_version, host::has_cap_ipc_lock()),
        checks::nofile(
            settings.shards,
            settings.max_connections_per_shard,
            &proc_sys,
        ),
        checks::backlog(settings.backlog, &proc_sys),
        checks::cores(settings.shards, usize::from(config.node.shards)),
        checks::models(&config.node.model_dir),
        checks::onnxruntime(&config.node.model_dir),
        checks::data_dir(&config.store.data_dir),
    ];
    if !config.cluster.nats_url.is_empty() {
        checks.push(checks::nats(config));
        checks.push(checks::username_conflicts(&config.store.data_dir));
    }
    if let Some((cert, key)) = config.network.tls_files() {
        let now_secs = crate::clock::unix_now_ms() / 1000;
        checks.push(checks::tls(cert, key, now_secs as i64));
    }
    checks
}
