//! Watching a run while it goes: each worker publishes its counters and the latencies it
//! recorded since its last publication (a batch) a few times a second; the main thread takes
//! the batches once a second, prints the live line on stderr and, with --hdr-out, appends the
//! second's corrected and uncorrected histograms to the HdrHistogram interval log.

use crate::stats::{new_histogram, Latencies, Stats};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Latencies recorded since the monitor last took them.
pub type Batch = Latencies;

/// Moves everything of `from` into `into`.
fn take_batch(into: &mut Batch, from: &mut Batch) {
    into.add(from);
    from.reset();
}

pub struct LiveShared {
    ops_done: AtomicU64,
    errors: AtomicU64,
    batch: Mutex<Batch>,
}

impl LiveShared {
    pub fn new() -> Arc<LiveShared> {
        Arc::new(LiveShared {
            ops_done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            batch: Mutex::new(Batch::new()),
        })
    }

    /// Called by the owning worker: counters as they are now, and the latencies recorded
    /// since the last call (`recorded` is emptied).
    pub fn publish(&self, stats: &Stats, recorded: &mut Batch) {
        self.ops_done
            .store(stats.all.ok + stats.all.failed, Ordering::Relaxed);
        self.errors.store(stats.error_total(), Ordering::Relaxed);
        if !recorded.is_empty() {
            take_batch(&mut self.lock_batch(), recorded);
        }
    }

    fn lock_batch(&self) -> MutexGuard<'_, Batch> {
        // A worker that panicked mid-publish leaves a histogram that is still usable.
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One interval of the run as the monitor saw it.
pub struct Interval<'a> {
    /// Offset of the interval's start from the run's start.
    pub start: Duration,
    pub length: Duration,
    pub latencies: &'a Batch,
}

pub struct Monitor {
    shared: Vec<Arc<LiveShared>>,
    run_start: Instant,
    interval_start: Instant,
    last_ops: u64,
    interval: Batch,
    corrected_so_far_us: Histogram<u64>,
}

impl Monitor {
    pub fn new(shared: Vec<Arc<LiveShared>>, run_start: Instant) -> Monitor {
        Monitor {
            shared,
            run_start,
            interval_start: run_start,
            last_ops: 0,
            interval: Batch::new(),
            corrected_so_far_us: new_histogram(),
        }
    }

    /// Ends the current interval at `now`: returns it, and the live line describing it.
    pub fn tick(&mut self, now: Instant) -> (Interval<'_>, String) {
        self.interval.reset();
        for shared in &self.shared {
            take_batch(&mut self.interval, &mut shared.lock_batch());
        }
        self.corrected_so_far_us
            .add(&self.interval.corrected_us)
            .expect("same histogram bounds");
        let ops: u64 = self
            .shared
            .iter()
            .map(|s| s.ops_done.load(Ordering::Relaxed))
            .sum();
        let errors: u64 = self
            .shared
            .iter()
            .map(|s| s.errors.load(Ordering::Relaxed))
            .sum();
        let length = now.saturating_duration_since(self.interval_start);
        let rate = ops.saturating_sub(self.last_ops) as f64
            / length.max(Duration::from_millis(1)).as_secs_f64();
        let p99_ms = self.corrected_so_far_us.value_at_quantile(0.99) as f64 / 1000.0;
        let line = format!(
            "[{:>6.1}s] {rate:>10.0} req/s  {ops:>10} done  {errors:>6} errors  p99 {p99_ms:.3} ms (corrected, so far)",
            now.saturating_duration_since(self.run_start).as_secs_f64()
        );
        let interval = Interval {
            start: self
                .interval_start
                .saturating_duration_since(self.run_start),
            length,
            latencies: &self.interval,
        };
        self.interval_start = now;
        self.last_ops = ops;
        (interval, line)
    }
}
