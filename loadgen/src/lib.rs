//! aiocr-loadgen: a load generator as fast as wrk (an epoll event loop per pinned thread,
//! preformatted requests, no allocation per request), as honest as wrk2 (open loop with
//! coordinated-omission corrected latencies next to the uncorrected ones) and fluent in the
//! aiocr API (login, point, uploads, sync and async decodes, weighted mixes).

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
/// 2 bad options or unreachable target (the run did not start), 3 could not write output.
pub fn run_cli() -> i32 {
    let args = cli::Args::parse();
    let result = match run::run(&args) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("aiocr-loadgen: error: {error:#}");
            return 2;
        }
    };
    let summary = report::Summary::of(&args, &result);
    if let Err(error) = report::emit(&args, &summary, &result) {
        eprintln!("aiocr-loadgen: error: {error:#}");
        return 3;
    }
    if result.stats.all.ok == 0 {
        eprintln!("aiocr-loadgen: no operation succeeded");
        return 1;
    }
    0
}
