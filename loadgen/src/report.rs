//! The final summary: ab's fields, HDR percentiles of corrected and uncorrected latency,
//! errors by kind; as text or JSON on stdout, and optionally an HdrHistogram interval log.

use crate::cli::Args;
use crate::run::RunResult;
use crate::stats::OpStats;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

#[derive(Serialize, Debug, Clone)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    #[serde(rename = "p99.99")]
    pub p99_99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    fn of(hist_us: &Histogram<u64>) -> Percentiles {
        let ms = |q: f64| hist_us.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50: ms(QUANTILES[0].1),
            p90: ms(QUANTILES[1].1),
            p99: ms(QUANTILES[2].1),
            p99_9: ms(QUANTILES[3].1),
            p99_99: ms(QUANTILES[4].1),
            max: hist_us.max() as f64 / 1000.0,
            mean: hist_us.mean() / 1000.0,
        }
    }

    fn rows(&self) -> [(&'static str, f64); 7] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p99_9),
            ("p99.99", self.p99_99),
            ("max", self.max),
            ("mean", self.mean),
        ]
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Latency {
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

impl Latency {
    fn of(op: &OpStats) -> Latency {
        Latency {
            corrected: Percentiles::of(&op.latencies.corrected_us),
            uncorrected: Percentiles::of(&op.latencies.uncorrected_us),
        }
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct ScenarioSummary {
    pub name: &'static str,
    pub weight: u32,
    pub ok: u64,
    pub failed: u64,
    pub latency_ms: Latency,
}

#[derive(Serialize, Debug, Clone)]
pub struct Summary {
    pub target: String,
    pub mode: &'static str,
    pub rate_target_per_s: Option<f64>,
    pub threads: usize,
    pub connections: usize,
    pub pipeline: usize,
    pub elapsed_s: f64,
    /// Operations finished (answered or lost): ab's "Complete requests".
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    /// Operations that never got an answer (part of `failed`).
    pub lost: u64,
    pub non_2xx: u64,
    pub requests_per_s: f64,
    pub time_per_request_ms: f64,
    pub time_per_request_all_ms: f64,
    pub http_requests: u64,
    pub http_responses: u64,
    pub connects: u64,
    pub reconnects: u64,
    pub logins: u64,
    pub sync_fell_back_to_poll: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency_ms: Latency,
    pub scenarios: Vec<ScenarioSummary>,
}

impl Summary {
    pub fn of(args: &Args, result: &RunResult) -> Summary {
        let stats = &result.stats;
        let requests = stats.all.ok + stats.all.failed;
        let elapsed_s = result.elapsed.max(Duration::from_micros(1)).as_secs_f64();
        let per_request_all_ms = if requests == 0 {
            0.0
        } else {
            elapsed_s * 1000.0 / requests as f64
        };
        Summary {
            target: result.target.url.clone(),
            mode: if args.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            rate_target_per_s: args.rate,
            threads: result.threads,
            connections: result.connections,
            pipeline: args.pipeline,
            elapsed_s,
            requests,
            ok: stats.all.ok,
            failed: stats.all.failed,
            lost: stats.lost,
            non_2xx: stats.non_2xx,
            requests_per_s: requests as f64 / elapsed_s,
            // As ab: concurrency × time / requests, and time / requests.
            time_per_request_ms: per_request_all_ms * result.connections as f64,
            time_per_request_all_ms: per_request_all_ms,
            http_requests: stats.http_requests,
            http_responses: stats.http_responses,
            connects: stats.connects,
            reconnects: stats.reconnects,
            logins: stats.logins,
            sync_fell_back_to_poll: stats.sync_fell_back_to_poll,
            bytes_read: stats.bytes_read,
            bytes_written: stats.bytes_written,
            errors: stats
                .errors
                .iter()
                .map(|(kind, count)| (kind.to_string(), *count))
                .collect(),
            latency_ms: Latency::of(&stats.all),
            scenarios: result
                .mix
                .iter()
                .zip(&stats.per_kind)
                .map(|((kind, weight), op)| ScenarioSummary {
                    name: kind.name(),
                    weight: *weight,
                    ok: op.ok,
                    failed: op.failed,
                    latency_ms: Latency::of(op),
                })
                .collect(),
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        let rate = match self.rate_target_per_s {
            Some(r) => format!("open loop at {r} req/s"),
            None => "closed loop".to_string(),
        };
        line(format!(
            "Target:                 {} ({rate}, {} threads, {} connections, pipeline {})",
            self.target, self.threads, self.connections, self.pipeline
        ));
        line(format!(
            "Time taken for tests:   {:.3} seconds",
            self.elapsed_s
        ));
        line(format!("Complete requests:      {}", self.requests));
        line(format!(
            "Failed requests:        {} (never answered: {})",
            self.failed, self.lost
        ));
        line(format!("Non-2xx responses:      {}", self.non_2xx));
        line(format!(
            "Requests per second:    {:.2} [#/sec] (mean)",
            self.requests_per_s
        ));
        line(format!(
            "Time per request:       {:.3} [ms] (mean)",
            self.time_per_request_ms
        ));
        line(format!(
            "Time per request:       {:.3} [ms] (mean, across all concurrent requests)",
            self.time_per_request_all_ms
        ));
        line(format!(
            "HTTP requests/answers:  {} / {}  (connects {}, reconnects {}, logins {})",
            self.http_requests, self.http_responses, self.connects, self.reconnects, self.logins
        ));
        line(format!(
            "Transfer:               {} bytes read, {} bytes written",
            self.bytes_read, self.bytes_written
        ));
        line("Latency [ms]           corrected   uncorrected".to_string());
        let corrected = self.latency_ms.corrected.rows();
        let uncorrected = self.latency_ms.uncorrected.rows();
        for ((name, c), (_, u)) in corrected.iter().zip(uncorrected.iter()) {
            line(format!("  {name:<8}         {c:>12.3}  {u:>12.3}"));
        }
        if !self.errors.is_empty() {
            line("Errors by kind:".to_string());
            for (kind, count) in &self.errors {
                line(format!("  {kind:<20} {count}"));
            }
        }
        if self.sync_fell_back_to_poll > 0 {
            line(format!(
                "decode-sync answered pending (then polled): {}",
                self.sync_fell_back_to_poll
            ));
        }
        if self.scenarios.len() > 1 || self.scenarios.first().is_some_and(|s| s.name != "plain") {
            line("Scenarios:              ok  failed  p50 ms  p99 ms (corrected)".to_string());
            for s in &self.scenarios {
                line(format!(
                    "  {:<14} {:>10} {:>7} {:>7.3} {:>7.3}",
                    s.name, s.ok, s.failed, s.latency_ms.corrected.p50, s.latency_ms.corrected.p99
                ));
            }
        }
        out
    }
}

/// Prints the summary (the histogram log was written during the run).
pub fn emit(args: &Args, summary: &Summary) {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).expect("a summary always serializes")
        );
    } else {
        print!("{}", summary.text());
    }
}
