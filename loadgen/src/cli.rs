//! Command-line options, their defaults and hard limits.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

pub const MAX_THREADS: usize = 256;
pub const MAX_CONNECTIONS: usize = 65_536;
pub const MAX_PIPELINE: usize = 1024;
/// The server's largest `cache_lookup_max`.
pub const MAX_LOOKUP_BATCH: usize = 4096;
pub const MAX_RATE_PER_S: f64 = 100_000_000.0;
pub const MAX_ANSWER_BYTES_LIMIT: usize = 64 << 20;
pub const MAX_REQUESTS: u64 = 1_000_000_000_000;
/// No run may last longer than this, whatever the options say.
pub const MAX_RUN: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Load generator for aiocr and any HTTP/1.1 server. Load only hosts you own or are allowed
/// to load.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    Auto,
    Always,
    Never,
}

#[derive(Parser, Debug, Clone)]
#[command(name = "aiocr-loadgen", version)]
pub struct Args {
    /// Target URL: http://host[:port][/path][?query]. Scenarios use its path as the prefix
    /// of the aiocr routes.
    pub url: String,
    /// Worker threads, one event loop each, pinned to cores unless --no-pin.
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,
    /// Connections in total, spread over the threads.
    #[arg(short = 'c', long, default_value_t = 10)]
    pub connections: usize,
    /// Run time (10s, 500ms, 2m; a bare number is seconds). Default 10s unless -n is given.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Operations in total (ends the run when all have been answered or lost).
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Open loop: operations per second in total, sent on a fixed schedule.
    #[arg(short = 'R', long)]
    pub rate: Option<f64>,
    /// Requests in flight per connection (HTTP/1.1 pipelining depth).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// HTTP method of plain requests.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Extra request header "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Body of plain requests, read from this file.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// plain, login, point, upload-base64, upload, decode-sync, decode-async, post-image
    /// (each image as multipart field `file` to the URL itself, no login: for other servers),
    /// create-task (the JSON task protocol) or in-php (2captcha v1), both with --api-key;
    /// detect-sync (click captchas from --images), slide-sync (--slide-pairs), cached
    /// (batches of hash lookups) or mixed (sync decodes, --repeat-share of them repeating
    /// the corpus, the rest new images).
    #[arg(short = 's', long, default_value = "plain")]
    pub scenario: String,
    /// Weighted scenario mix, e.g. point=8,decode-sync=2 (replaces --scenario).
    #[arg(long)]
    pub mix: Option<String>,
    /// aiocr user NAME:PASSWORD (repeatable; connections use them round robin).
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// File of NAME:PASSWORD lines (# comments allowed).
    #[arg(long)]
    pub users_file: Option<PathBuf>,
    /// An aiocr API key: used instead of logging in, and as the key of the protocols of
    /// other services (create-task, in-php).
    #[arg(long)]
    pub api_key: Option<String>,
    /// File of API keys or login tokens, one a line: each request takes the next one (many
    /// users in one run; polls use their upload's).
    #[arg(long)]
    pub api_keys_file: Option<PathBuf>,
    /// mixed: the share of uploads that repeat a corpus image (0..=1); the others send an
    /// image never sent before.
    #[arg(long, default_value_t = 0.7)]
    pub repeat_share: f64,
    /// cached: hash lookups per request (1..=4096).
    #[arg(long, default_value_t = 100)]
    pub lookup_batch: usize,
    /// Directory of slide pairs (NAME_target.* with NAME_bg.*) for slide-sync.
    #[arg(long)]
    pub slide_pairs: Option<PathBuf>,
    /// Directory of images for uploads, used round robin in name order.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Extra upload options appended to upload URLs, e.g. "model=beta&soft_id=7".
    #[arg(long, default_value = "")]
    pub upload_query: String,
    /// Wait between two polls of /v2/result for one upload.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Per request (and per connect) timeout; also how long the end of a -d run waits for
    /// answers in flight.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Hard cap on the run's length, also with -n (at most 24h).
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub max_duration: Duration,
    /// Largest answer body kept to check a scenario's JSON answer (larger: bad_http).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_answer_bytes: usize,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the latency histograms (corrected and uncorrected) as an HdrHistogram interval log.
    #[arg(long)]
    pub hdr_out: Option<PathBuf>,
    /// Pin worker threads to cores: auto pins when there are 2 or more threads (one thread
    /// against a server on the same small machine runs faster where the scheduler puts it:
    /// measured on 2 cores against nginx, see docs/loadgen.md), always, never.
    #[arg(long, value_enum, default_value_t = Pin::Auto)]
    pub pin: Pin,
    /// No live line on stderr.
    #[arg(long)]
    pub no_live: bool,
}

impl Args {
    /// Checks every limit; returns the run length (time-bound) of the run.
    pub fn validate(&self) -> Result<Duration> {
        check_range("threads (-t)", self.threads, 1, MAX_THREADS)?;
        check_range("connections (-c)", self.connections, 1, MAX_CONNECTIONS)?;
        check_range("pipeline", self.pipeline, 1, MAX_PIPELINE)?;
        check_range("--lookup-batch", self.lookup_batch, 1, MAX_LOOKUP_BATCH)?;
        if !(0.0..=1.0).contains(&self.repeat_share) {
            bail!("--repeat-share must be 0..=1");
        }
        check_range(
            "--max-answer-bytes",
            self.max_answer_bytes,
            1,
            MAX_ANSWER_BYTES_LIMIT,
        )?;
        if let Some(n) = self.requests {
            if n == 0 || n > MAX_REQUESTS {
                bail!("requests (-n) must be 1..={MAX_REQUESTS}");
            }
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate <= MAX_RATE_PER_S) {
                bail!("rate (-R) must be > 0 and at most {MAX_RATE_PER_S}");
            }
        }
        if self.max_duration.is_zero() || self.max_duration > MAX_RUN {
            bail!("--max-duration must be > 0 and at most 24h");
        }
        if self.timeout < Duration::from_millis(1) || self.timeout > Duration::from_secs(600) {
            bail!("--timeout must be 1ms..=600s");
        }
        if self.poll_interval < Duration::from_millis(1)
            || self.poll_interval > Duration::from_secs(60)
        {
            bail!("--poll-interval must be 1ms..=60s");
        }
        let run = match (self.duration, self.requests) {
            (Some(d), _) => d,
            (None, Some(_)) => self.max_duration,
            (None, None) => DEFAULT_DURATION,
        };
        if run.is_zero() {
            bail!("duration (-d) must be > 0");
        }
        if run > self.max_duration {
            bail!(
                "duration {run:?} exceeds --max-duration {:?} (raise it, at most 24h)",
                self.max_duration
            );
        }
        Ok(run)
    }
}

fn check_range(name: &str, value: usize, min: usize, max: usize) -> Result<()> {
    if value < min || value > max {
        bail!("{name} must be {min}..={max} (got {value})");
    }
    Ok(())
}

/// "5s", "250ms", "2m", "1h", or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("bad duration {text:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" => value / 1_000_000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("bad duration unit in {text:?} (use ms, s, m or h)"),
    };
    if !seconds.is_finite() || seconds < 0.0 || seconds > MAX_RUN.as_secs_f64() {
        bail!("duration {text:?} out of range");
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("99999h").is_err());
    }

    #[test]
    fn limits_are_enforced() {
        let ok = Args::parse_from(["x", "http://127.0.0.1:1/", "-n", "5"]);
        assert_eq!(ok.validate().unwrap(), Duration::from_secs(600));
        let bad = Args::parse_from(["x", "http://127.0.0.1:1/", "-c", "0"]);
        assert!(bad.validate().is_err());
        let long = Args::parse_from(["x", "http://127.0.0.1:1/", "-d", "2h"]);
        assert!(long.validate().is_err());
    }
}
