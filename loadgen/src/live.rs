//! The live line: each worker publishes its counters and the latencies recorded since its
//! last publication a few times a second; the main thread prints one line per second on stderr.

use crate::stats::{new_histogram, Stats};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct LiveShared {
    ops_done: AtomicU64,
    errors: AtomicU64,
    /// Corrected latencies so far (µs), fed in batches by the worker.
    latencies_us: Mutex<Histogram<u64>>,
}

impl LiveShared {
    pub fn new() -> Arc<LiveShared> {
        Arc::new(LiveShared {
            ops_done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latencies_us: Mutex::new(new_histogram()),
        })
    }

    /// Called by the owning worker: counters as they are now, and the batch of latencies
    /// recorded since the last call (the batch is emptied).
    pub fn publish(&self, stats: &Stats, batch_us: &mut Histogram<u64>) {
        self.ops_done
            .store(stats.all.ok + stats.all.failed, Ordering::Relaxed);
        self.errors.store(stats.error_total(), Ordering::Relaxed);
        if !batch_us.is_empty() {
            let mut all = self.latencies_us.lock().unwrap_or_else(|e| e.into_inner());
            all.add(&*batch_us).expect("same histogram bounds");
            batch_us.reset();
        }
    }
}

/// Prints a line per second while the run goes on.
pub struct LivePrinter {
    shared: Vec<Arc<LiveShared>>,
    start: Instant,
    last_at: Instant,
    last_ops: u64,
    merged_us: Histogram<u64>,
}

impl LivePrinter {
    pub fn new(shared: Vec<Arc<LiveShared>>, start: Instant) -> LivePrinter {
        LivePrinter {
            shared,
            start,
            last_at: start,
            last_ops: 0,
            merged_us: new_histogram(),
        }
    }

    pub fn line(&mut self, now: Instant) -> String {
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
        self.merged_us.reset();
        for shared in &self.shared {
            let part = shared
                .latencies_us
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.merged_us.add(&*part).expect("same histogram bounds");
        }
        let span = now
            .duration_since(self.last_at)
            .max(Duration::from_millis(1));
        let rate = (ops - self.last_ops) as f64 / span.as_secs_f64();
        self.last_at = now;
        self.last_ops = ops;
        let p99_ms = self.merged_us.value_at_quantile(0.99) as f64 / 1000.0;
        format!(
            "[{:>6.1}s] {rate:>10.0} req/s  {ops:>10} done  {errors:>6} errors  p99 {p99_ms:.3} ms (corrected, so far)",
            now.duration_since(self.start).as_secs_f64()
        )
    }
}
