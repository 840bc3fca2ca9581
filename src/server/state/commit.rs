//! Group commit: requests that need their writes on disk wait for the next fsync that
//! *starts* after they wrote; one fsync on the blocking pool serves all of them while the
//! reactor keeps serving.
//!
//! Epochs: `started` counts flushes begun, `completed` flushes finished. A waiter that wrote
//! before calling `durable` needs flush number `started + 1` (one running now may have begun
//! before its write), and is released when `completed` reaches it.
//!
//! A failed flush suspends the commit: every waiter is released with the error (what they
//! wrote will not reach the disk: the store is reopened from what did, `storage.rs`), and
//! `durable` is refused at once until `resume` gives it the reopened store's flusher.
//!
//! Staged hits: an upload answered from the answer cache does not write at once but stages
//! its hits (`record_hits`); the flush writes all that were staged since the last one in
//! one store transaction just before it starts, on the shard's thread, and each waits for
//! that flush. sled writes its log buffer to the disk at every transaction, so one
//! transaction for a group instead of one per hit is most of the disk's work saved (and
//! a 200 still means the charge is on disk).

use super::stop::StopSignal;
use super::store_slot::StoreSlot;
use crate::metrics::Registry;
use crate::store::{CachedUpload, Flusher, HitRequest, HitsRecorded, StoreError, UploadRecord};
use std::cell::{Cell, RefCell};
use std::time::Instant;

type FlushDone = flume::Sender<Result<(), String>>;

/// One request's hits staged for the next flush, and where its outcome goes once written.
struct StagedHits {
    request: HitRequest,
    written: flume::Sender<HitsRecorded>,
}

/// Why staged hits were not acknowledged.
#[derive(Debug)]
pub enum HitsNotRecorded {
    /// Refused or failed before anything of them was written (not enough points, the
    /// storage failed): the store's reason.
    Refused(StoreError),
    /// Written, but the flush that would have made them durable failed: the records, to
    /// withdraw when the store is reopened.
    NotDurable(Vec<UploadRecord>),
}

/// Why `durable` is refused while suspended.
const SUSPENDED: &str = "the shard's storage failed and has not recovered yet";

pub struct GroupCommit {
    /// `None` while suspended (from a failed flush until `resume`).
    flusher: RefCell<Option<Flusher>>,
    enabled: bool,
    /// A write failed with a storage error: the next flush writes before it flushes
    /// (`Flusher::check`), since sled's refusal of writes does not fail a plain flush.
    check_requested: Cell<bool>,
    started: Cell<u64>,
    completed: Cell<u64>,
    /// (flush epoch awaited, where to send that flush's outcome).
    waiters: RefCell<Vec<(u64, FlushDone)>>,
    /// Hits to write just before the next flush starts (`record_hits`).
    staged: RefCell<Vec<StagedHits>>,
    /// Capacity 1: a kick while one is pending is already covered by it.
    kick: flume::Sender<()>,
    kicked: flume::Receiver<()>,
}

impl GroupCommit {
    /// `enabled == false` acknowledges without waiting (config `durable_acks = false`).
    pub fn new(flusher: Flusher, enabled: bool) -> GroupCommit {
        let (kick, kicked) = flume::bounded(1);
        GroupCommit {
            flusher: RefCell::new(Some(flusher)),
            enabled,
            check_requested: Cell::new(false),
            started: Cell::new(0),
            completed: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            staged: RefCell::new(Vec::new()),
            kick,
            kicked,
        }
    }

    /// Resolves once everything this shard wrote before the call is on disk; refused at once
    /// while suspended.
    pub async fn durable(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let flushed = self.register()?;
        let _ = self.kick.try_send(());
        flushed
            .recv_async()
            .await
            .unwrap_or_else(|_| Err("flush loop stopped".to_string()))
    }

    /// Whether an answer waits for its writes to be on disk (`durable_acks`).
    pub fn acknowledges_durably(&self) -> bool {
        self.enabled
    }

    /// Records one request's answer-cache hits (`ShardStore::record_cache_hit_requests`) with
    /// every other staged before the next flush, just before it starts, and resolves with
    /// their records once that flush made them durable. Only with durable acknowledgements
    /// (without, there is no flush to wait for: the caller writes at once).
    pub async fn record_hits(
        &self,
        user_id: u64,
        hits: Vec<CachedUpload>,
    ) -> Result<Vec<UploadRecord>, HitsNotRecorded> {
        assert!(self.enabled, "hits are staged for a flush to wait for");
        let suspended = |error: String| HitsNotRecorded::Refused(StoreError::Unavailable(error));
        // Registered with the staging, no await between: the flush they wait for is the
        // next to start, and every flush writes what was staged before it starts.
        let flushed = self.register().map_err(suspended)?;
        let (written, outcome) = flume::bounded(1);
        let request = HitRequest { user_id, hits };
        self.staged
            .borrow_mut()
            .push(StagedHits { request, written });
        let _ = self.kick.try_send(());
        let records = outcome
            .recv_async()
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("flush loop stopped".into())))
            .map_err(HitsNotRecorded::Refused)?;
        match flushed.recv_async().await {
            Ok(Ok(())) => Ok(records),
            Ok(Err(_)) | Err(_) => Err(HitsNotRecorded::NotDurable(records)),
        }
    }

    /// A waiter for the next flush to start (refused while suspended).
    fn register(&self) -> Result<flume::Receiver<Result<(), String>>, String> {
        if self.is_suspended() {
            return Err(SUSPENDED.to_string());
        }
        let target_epoch = self.started.get() + 1;
        let (done, flushed) = flume::bounded(1);
        self.waiters.borrow_mut().push((target_epoch, done));
        Ok(flushed)
    }

    /// The flush loop: runs until `stop` completes (`Ok`) or a flush fails (`Err`, and the
    /// commit is suspended). One flush at a time.
    pub async fn run(
        &self,
        store: &StoreSlot,
        metrics: &Registry,
        shard: u16,
        stop: &StopSignal,
    ) -> Result<(), String> {
        assert!(
            !self.is_suspended(),
            "a suspended commit is resumed before it runs"
        );
        loop {
            let kicked = async { self.kicked.recv_async().await.is_ok() };
            let stopped = async {
                stop.wait().await;
                false
            };
            if !futures_lite::future::or(kicked, stopped).await {
                return Ok(());
            }
            // The requests waiting for it have their answer; the caller deals with the store.
            self.flush_once(store, metrics, shard).await?;
        }
    }

    /// Whether a failed flush suspended the commit (until `resume`).
    pub fn is_suspended(&self) -> bool {
        self.flusher.borrow().is_none()
    }

    /// A write failed with a storage error: the next flush checks that writes work (one is
    /// started now). Ignored while suspended: the failure is known already.
    pub fn request_check(&self) {
        if !self.is_suspended() {
            self.check_requested.set(true);
            let _ = self.kick.try_send(());
        }
    }

    /// Takes the reopened store's flusher: `durable` waits for flushes again.
    pub fn resume(&self, flusher: Flusher) {
        let previous = self.flusher.borrow_mut().replace(flusher);
        assert!(previous.is_none(), "only a suspended commit is resumed");
        assert!(
            self.waiters.borrow().is_empty(),
            "suspending released every waiter"
        );
        assert!(
            self.staged.borrow().is_empty(),
            "suspending refused every staged hit, and none is staged while suspended"
        );
        // A kick or check left from before the failure concerned the old store.
        self.check_requested.set(false);
        let _ = self.kicked.try_recv();
    }

    /// The hits staged so far written to `store` (one transaction), then one fsync on the
    /// blocking pool (a check when one was requested), then release every waiter it covers.
    /// A failure suspends the commit. Refused at once while suspended.
    pub async fn flush_once(
        &self,
        store: &StoreSlot,
        metrics: &Registry,
        shard: u16,
    ) -> Result<(), String> {
        let Some(flusher) = self.flusher.borrow().clone() else {
            return Err(SUSPENDED.to_string());
        };
        // Before the epoch starts, no await between: the flush covers them.
        self.write_staged(store);
        let epoch = self.started.get() + 1;
        self.started.set(epoch);
        let check = self.check_requested.replace(false);
        let began = Instant::now();
        let result = glommio::executor()
            .spawn_blocking(move || {
                let flushed = if check {
                    flusher.check()
                } else {
                    flusher.flush()
                };
                flushed.map_err(|error| error.to_string())
            })
            .await;
        let fsync_us = began.elapsed().as_micros() as u64;
        assert!(self.completed.get() < epoch, "flushes complete in order");
        self.completed.set(epoch);
        let released = match &result {
            Ok(()) => self.release(epoch, &result),
            Err(error) => self.suspend(error),
        };
        let mut shard_metrics = metrics.shard(shard);
        shard_metrics.fsync_us.saturating_record(fsync_us.max(1));
        shard_metrics
            .fsync_group_size
            .saturating_record(released.max(1) as u64);
        result
    }

    /// Writes the hits staged so far and sends each request its outcome.
    fn write_staged(&self, store: &StoreSlot) {
        let staged = std::mem::take(&mut *self.staged.borrow_mut());
        if staged.is_empty() {
            return;
        }
        let (requests, senders): (Vec<HitRequest>, Vec<_>) = staged
            .into_iter()
            .map(|staged| (staged.request, staged.written))
            .unzip();
        let count = requests.len();
        let outcomes = match store.borrow_mut() {
            Ok(mut store) => store.record_cache_hit_requests(requests),
            Err(error) => (0..count)
                .map(|_| Err(StoreError::Unavailable(error.to_string())))
                .collect(),
        };
        assert_eq!(outcomes.len(), count, "one outcome per staged request");
        for (written, outcome) in senders.into_iter().zip(outcomes) {
            let _ = written.try_send(outcome);
        }
    }

    /// After a failed flush: drops the flusher (the store is about to be closed, and sled's
    /// lock goes only with its last handle) and releases every waiter with the error, also
    /// those waiting for a later flush: their writes went to the store that failed.
    fn suspend(&self, error: &str) -> usize {
        self.flusher.borrow_mut().take();
        // Staged during the flush that failed: never written (the next flush is another
        // store's), refused as a write to a failed disk is.
        for staged in self.staged.take() {
            let refused = StoreError::Unavailable(error.to_string());
            let _ = staged.written.try_send(Err(refused));
        }
        self.release(u64::MAX, &Err(error.to_string()))
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
