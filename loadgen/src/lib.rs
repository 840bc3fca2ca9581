//! aiocr-loadgen: a load generator as fast as wrk (an epoll event loop per pinned thread,
//! preformatted requests, no allocation per request), as honest as wrk2 (open loop with
//! coordinated-omission corrected latencies next to the uncorrected ones) and fluent in the
//! aiocr API (login, point, uploads, sync and async decodes, weighted mixes).

pub mod cache_ops;
pub mod cli;
pub mod conn;
pub mod live;
pub mod report;
pub mod response;
pub mod run;
pub mod stats;
pub mod target;
pub mod worker;
pub mod workload;

use clap::Parser;

/// Exit codes: 0 run done with at least one successful operation, 1 run done without any,
/// 2 bad options, unreachable target or unwritable --hdr-out (the run did not start, or its
/// log could not be written).
pub fn run_cli() -> i32 {
    let args = cli::Args::parse();
    let result = match run::run(&args) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("aiocr-loadgen: error: {error:#}");
            return 2;
        }
    };
    report::emit(&args, &report::Summary::of(&args, &result));
    if result.stats.all.ok == 0 {
        eprintln!("aiocr-loadgen: no operation succeeded");
        return 1;
    }
    0
}
