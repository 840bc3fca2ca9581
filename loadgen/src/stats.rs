//! Per-thread measurements, merged at the end: two HDR histograms (latency from the intended
//! send time, and from the actual send time), counters, and errors counted by kind.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt;

/// Latencies are recorded in microseconds, from 1 µs to one hour, 3 significant digits.
pub const HIST_MAX_US: u64 = 3_600_000_000;
const HIST_SIGFIG: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, HIST_SIGFIG).expect("valid histogram bounds")
}

/// Why an operation failed (or a connection broke). Small and `Copy`: counting one costs no
/// allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    Connect,
    Read,
    Write,
    Timeout,
    /// The server closed the connection with requests still unanswered.
    Closed,
    /// The answer was not valid HTTP/1.x.
    BadHttp,
    /// An aiocr answer that was not JSON of the contract's shape.
    BadJson,
    /// HTTP status outside 2xx without a contract `code` (scenarios only).
    Status(u16),
    /// A contract `code` other than 0.
    Api(i64),
    /// The recognition finished with status `failed`.
    DecodeFailed,
    /// Login refused or unusable: the connection is retired.
    Login,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Read => f.write_str("read"),
            ErrorKind::Write => f.write_str("write"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Closed => f.write_str("closed_by_server"),
            ErrorKind::BadHttp => f.write_str("bad_http"),
            ErrorKind::BadJson => f.write_str("bad_json"),
            ErrorKind::Status(status) => write!(f, "http_{status}"),
            ErrorKind::Api(code) => write!(f, "code_{code}"),
            ErrorKind::DecodeFailed => f.write_str("decode_failed"),
            ErrorKind::Login => f.write_str("login_failed"),
        }
    }
}

/// The latencies of a set of operations, measured both ways.
#[derive(Clone)]
pub struct Latencies {
    /// Latency from the intended send time (coordinated-omission corrected), µs.
    pub corrected_us: Histogram<u64>,
    /// Latency from the actual send time, µs.
    pub uncorrected_us: Histogram<u64>,
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            corrected_us: new_histogram(),
            uncorrected_us: new_histogram(),
        }
    }

    pub fn record(&mut self, corrected_us: u64, uncorrected_us: u64) {
        debug_assert!(corrected_us >= uncorrected_us);
        self.corrected_us.saturating_record(corrected_us.max(1));
        self.uncorrected_us.saturating_record(uncorrected_us.max(1));
    }

    pub fn add(&mut self, other: &Latencies) {
        self.corrected_us
            .add(&other.corrected_us)
            .expect("same histogram bounds");
        self.uncorrected_us
            .add(&other.uncorrected_us)
            .expect("same histogram bounds");
    }

    pub fn is_empty(&self) -> bool {
        self.corrected_us.is_empty() && self.uncorrected_us.is_empty()
    }

    pub fn reset(&mut self) {
        self.corrected_us.reset();
        self.uncorrected_us.reset();
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

/// Counters and latencies of one operation kind (or of everything).
#[derive(Clone)]
pub struct OpStats {
    pub ok: u64,
    pub failed: u64,
    pub latencies: Latencies,
}

impl OpStats {
    pub fn new() -> OpStats {
        OpStats {
            ok: 0,
            failed: 0,
            latencies: Latencies::new(),
        }
    }

    pub fn record(&mut self, ok: bool, corrected_us: u64, uncorrected_us: u64) {
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        self.latencies.record(corrected_us, uncorrected_us);
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latencies.add(&other.latencies);
    }
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats::new()
    }
}

/// Everything one worker thread measured.
#[derive(Clone, Default)]
pub struct Stats {
    pub all: OpStats,
    /// Per operation kind, in the workload's order.
    pub per_kind: Vec<OpStats>,
    /// Operations that never got an answer (transport errors); they are counted in
    /// `all.failed` too but have no latency.
    pub lost: u64,
    pub http_requests: u64,
    pub http_responses: u64,
    pub non_2xx: u64,
    pub connects: u64,
    pub reconnects: u64,
    pub logins: u64,
    /// decode-sync answers still `pending` after `wait=1`: the operation went on polling.
    pub sync_fell_back_to_poll: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl Stats {
    pub fn new(kinds: usize) -> Stats {
        Stats {
            per_kind: vec![OpStats::new(); kinds],
            ..Stats::default()
        }
    }

    pub fn count_error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: &Stats) {
        self.all.merge(&other.all);
        if self.per_kind.len() < other.per_kind.len() {
            self.per_kind.resize(other.per_kind.len(), OpStats::new());
        }
        for (mine, theirs) in self.per_kind.iter_mut().zip(&other.per_kind) {
            mine.merge(theirs);
        }
        self.lost += other.lost;
        self.http_requests += other.http_requests;
        self.http_responses += other.http_responses;
        self.non_2xx += other.non_2xx;
        self.connects += other.connects;
        self.reconnects += other.reconnects;
        self.logins += other.logins;
        self.sync_fell_back_to_poll += other.sync_fell_back_to_poll;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        for (kind, count) in &other.errors {
            *self.errors.entry(*kind).or_insert(0) += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats::new(2);
        let mut b = Stats::new(2);
        a.all.record(true, 10, 5);
        b.all.record(false, 1000, 1000);
        b.per_kind[1].record(true, 7, 7);
        b.count_error(ErrorKind::Api(5001));
        b.count_error(ErrorKind::Api(5001));
        a.merge(&b);
        assert_eq!((a.all.ok, a.all.failed), (1, 1));
        assert_eq!(a.all.latencies.corrected_us.len(), 2);
        assert_eq!(a.per_kind[1].ok, 1);
        assert_eq!(a.errors[&ErrorKind::Api(5001)], 2);
        assert_eq!(ErrorKind::Api(5001).to_string(), "code_5001");
    }
}
