//! Group commit: requests that need their writes on disk wait for the next fsync that
//! *starts* after they wrote; one fsync on the blocking pool serves all of them while the
//! reactor keeps serving.
//!
//! Epochs: `started` counts flushes begun, `completed` flushes finished. A waiter that wrote
//! before calling `durable` needs flush number `started + 1` (one running now may have begun
//! before its write), and is released when `completed` reaches it.

use crate::metrics::Registry;
use crate::store::Flusher;
use std::cell::{Cell, RefCell};
use std::time::Instant;

type FlushDone = flume::Sender<Result<(), String>>;

pub struct GroupCommit {
    flusher: Flusher,
    enabled: bool,
    started: Cell<u64>,
    completed: Cell<u64>,
    /// (flush epoch awaited, where to send that flush's outcome).
    waiters: RefCell<Vec<(u64, FlushDone)>>,
    /// Capacity 1: a kick while one is pending is already covered by it.
    kick: flume::Sender<()>,
    kicked: flume::Receiver<()>,
}

impl GroupCommit {
    /// `enabled == false` acknowledges without waiting (config `durable_acks = false`).
    pub fn new(flusher: Flusher, enabled: bool) -> GroupCommit {
        let (kick, kicked) = flume::bounded(1);
        GroupCommit {
            flusher,
            enabled,
            started: Cell::new(0),
            completed: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            kick,
            kicked,
        }
    }

    /// Resolves once everything this shard wrote before the call is on disk.
    pub async fn durable(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let target_epoch = self.started.get() + 1;
        let (done, done_receiver) = flume::bounded(1);
        self.waiters.borrow_mut().push((target_epoch, done));
        let _ = self.kick.try_send(());
        done_receiver
            .recv_async()
            .await
            .unwrap_or_else(|_| Err("flush loop stopped".to_string()))
    }

    /// The flush loop; runs until `stop` completes. One flush at a time.
    pub async fn run(&self, metrics: Registry, shard: u16, stop: super::stop::StopSignal) {
        loop {
            let kicked = async { self.kicked.recv_async().await.is_ok() };
            let stopped = async {
                stop.wait().await;
                false
            };
            if !futures_lite::future::or(kicked, stopped).await {
                return;
            }
            // A failed flush is reported to the requests waiting for it; the loop goes on.
            let _ = self.flush_once(&metrics, shard).await;
        }
    }

    /// One fsync on the blocking pool, then release every waiter it covers.
    pub async fn flush_once(&self, metrics: &Registry, shard: u16) -> Result<(), String> {
        let epoch = self.started.get() + 1;
        self.started.set(epoch);
        let flusher = self.flusher.clone();
        let began = Instant::now();
        let result = glommio::executor()
            .spawn_blocking(move || flusher.flush().map_err(|error| error.to_string()))
            .await;
        let fsync_us = began.elapsed().as_micros() as u64;
        assert!(self.completed.get() < epoch, "flushes complete in order");
        self.completed.set(epoch);
        let released = self.release(epoch, &result);
        let mut shard_metrics = metrics.shard(shard);
        shard_metrics.fsync_us.saturating_record(fsync_us.max(1));
        shard_metrics
            .fsync_group_size
            .saturating_record(released.max(1) as u64);
        result
    }

    fn release(&self, completed_epoch: u64, result: &Result<(), String>) -> usize {
        let mut waiters = self.waiters.borrow_mut();
        let before = waiters.len();
        waiters.retain(|(target, done)| {
            if *target <= completed_epoch {
                let _ = done.try_send(result.clone());
                false
            } else {
                true
            }
        });
        before - waiters.len()
    }
}
