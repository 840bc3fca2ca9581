//! One shard's storage when the disk fails (full, or an I/O error), and its recovery without
//! a restart.
//!
//! - **Healthy**: the store is open, writes go through, the group commit makes them durable.
//! - **Failed**: a group-commit flush failed (or a write failed with a storage error and the
//!   check that followed failed too: `GroupCommit::request_check`). Every waiter of the
//!   commit got the error, so nothing written since the last good flush was acknowledged.
//!   Writes are refused with 5004 (`StoreError::Unavailable`, `Retry-After`) before they
//!   start, uploads before anything is reserved or queued; reads are still served by the
//!   open store. `/health` answers 503 5004 and `/metrics` shows `aiocr_storage_failed`.
//! - **Recovering**: after `storage_probe_ms`, doubling up to `storage_probe_max_ms`, a probe
//!   file (`PROBE_BYTES`) is written and fsynced next to the shard. Once that works, the store
//!   is closed and opened again: sled keeps a failed write's error until it is reopened
//!   (store/reopen.rs). The reopened store is settled like a start: uploads still pending are
//!   voided (refunded), because their reservation may have reached the disk although their
//!   request was refused, or their result could not be recorded; then a write is flushed to
//!   prove the disk takes it. Healthy again. While the store is closed (during a reopen, or
//!   after one failed) reads are refused with 5004 too.
//!
//! Ids issued by the failed store are never issued again (`ClosedShard::reopen`), so a
//! recognition result still in flight for a vanished upload cannot land on a new one.

use super::shard::Shard;
use super::stop::StopSignal;
use crate::store::{ClosedShard, ShardStore, StoreError};
use std::cell::{Ref, RefCell, RefMut};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What the probe writes and fsyncs before a reopen is tried: two of sled's 512 KiB log
/// segments, so that a disk with less room than sled needs to go on is not declared healthy.
pub const PROBE_BYTES: usize = 1024 * 1024;
/// Why uploads still pending when a failed store is reopened were voided.
pub const VOIDED_AT_REOPEN: &str = "storage failed before the result was recorded";

/// The shard's store, as the rest of the server reaches it.
pub struct StoreSlot {
    held: RefCell<Held>,
    /// Why writes are refused: from a storage failure until the store is reopened.
    failure: RefCell<Option<String>>,
}

enum Held {
    Open(ShardStore),
    /// Closed after a failure, and a reopen failed: the next probe tries again.
    Closed(ClosedShard),
    /// On the blocking pool, being closed and reopened.
    Away,
}

impl StoreSlot {
    pub fn new(store: ShardStore) -> StoreSlot {
        StoreSlot {
            held: RefCell::new(Held::Open(store)),
            failure: RefCell::new(None),
        }
    }

    /// The store, to read. `Unavailable` while it is closed (being reopened after a failure).
    pub fn borrow(&self) -> Result<Ref<'_, ShardStore>, StoreError> {
        Ref::filter_map(self.held.borrow(), |held| match held {
            Held::Open(store) => Some(store),
            _ => None,
        })
        .map_err(|_| closed())
    }

    /// The store, to write. `Unavailable` from a storage failure until the store is reopened.
    pub fn borrow_mut(&self) -> Result<RefMut<'_, ShardStore>, StoreError> {
        self.writable()?;
        RefMut::filter_map(self.held.borrow_mut(), |held| match held {
            Held::Open(store) => Some(store),
            _ => None,
        })
        .map_err(|_| closed())
    }

    /// `Ok` when writes may be tried (checked before work that would end in one).
    pub fn writable(&self) -> Result<(), StoreError> {
        match self.failure.borrow().as_ref() {
            Some(failure) => Err(StoreError::Unavailable(failure.clone())),
            None => Ok(()),
        }
    }

    /// Why writes are refused, if they are.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Takes what is held, to close and reopen it on the blocking pool.
    fn take(&self) -> Held {
        assert!(
            self.failure.borrow().is_some(),
            "only a failed store is reopened"
        );
        std::mem::replace(&mut *self.held.borrow_mut(), Held::Away)
    }

    fn put(&self, held: Held) {
        let previous = std::mem::replace(&mut *self.held.borrow_mut(), held);
        assert!(matches!(previous, Held::Away), "one reopen at a time");
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the shard's database is closed until its disk takes writes".into())
}

/// A store error seen outside the group commit: a write that failed on the disk makes the
/// next flush a check, which fails (and so starts recovery) if the disk is really down.
pub fn notice(shard: &Shard, error: &StoreError) {
    if error.is_storage_failure() {
        shard.commit.request_check();
    }
}

/// The shard's commit loop, and its recovery whenever a flush fails; returns at `stop`.
pub async fn run(shard: Rc<Shard>, stop: StopSignal) {
    let metrics = shard.shared.metrics.clone();
    while let Err(error) = shard.commit.run(&metrics, shard.id, &stop).await {
        fail(&shard, &error);
        if !recover(&shard, &stop).await {
            return;
        }
    }
}

fn fail(shard: &Shard, error: &str) {
    assert!(
        shard.commit.is_suspended(),
        "a failed flush suspends the commit"
    );
    shard.store.failure.replace(Some(error.to_string()));
    {
        let mut metrics = shard.metrics();
        metrics.storage_failure = Some(error.to_string());
        metrics.storage_failures += 1;
    }
    let config = shard.config();
    log_line!(
        "aiocr: shard {}: storage failed: {error}; writes are refused (5004) until it recovers \
         (probing every {} ms, backing off to {} ms)",
        shard.id,
        config.storage_probe_ms,
        config.storage_probe_max_ms
    );
}

/// Probes with a bounded backoff until the store is reopened (`true`) or `stop` (`false`).
async fn recover(shard: &Rc<Shard>, stop: &StopSignal) -> bool {
    let began = Instant::now();
    let config = shard.config();
    let (first, longest) = (config.storage_probe_ms, config.storage_probe_max_ms);
    let mut delay_ms = first;
    loop {
        // A reopen under way is never abandoned: only the pauses between attempts end at stop.
        if !pause(Duration::from_millis(delay_ms), stop).await {
            return false;
        }
        delay_ms = delay_ms.saturating_mul(2).min(longest);
        shard.metrics().storage_probes += 1;
        if probe(shard).await.is_err() {
            continue;
        }
        match reopen(shard).await {
            Ok(voided) => {
                recovered(shard, began.elapsed(), voided);
                return true;
            }
            Err(error) => log_line!(
                "aiocr: shard {}: reopening its store failed: {error}; trying again",
                shard.id
            ),
        }
    }
}

/// Sleeps `delay`; `false` when `stop` came first.
async fn pause(delay: Duration, stop: &StopSignal) -> bool {
    let slept = async {
        glommio::timer::sleep(delay).await;
        true
    };
    let stopped = async {
        stop.wait().await;
        false
    };
    futures_lite::future::or(slept, stopped).await
}

/// Writes and fsyncs `PROBE_BYTES` next to the shard, and removes them.
async fn probe(shard: &Shard) -> std::io::Result<()> {
    let path = probe_path(&shard.config().data_dir, shard.id);
    glommio::executor()
        .spawn_blocking(move || write_probe(&path))
        .await
}

pub fn probe_path(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard}.probe"))
}

fn write_probe(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| {
            file.write_all(&vec![0u8; PROBE_BYTES])?;
            file.sync_all()
        });
    // Always: a probe cut short by a full disk must not keep the room it took.
    let _ = std::fs::remove_file(path);
    written
}

/// Closes the failed store (or takes the one a failed reopen left closed), opens and settles
/// it on the blocking pool, and gives the group commit its flusher. The number of pending
/// uploads voided.
async fn reopen(shard: &Shard) -> Result<usize, StoreError> {
    let held = shard.store.take();
    let reopened = glommio::executor()
        .spawn_blocking(move || {
            let closed = match held {
                Held::Open(store) => store.close(),
                Held::Closed(closed) => closed,
                Held::Away => unreachable!("taken by this reopen only"),
            };
            reopen_settled(closed)
        })
        .await;
    match reopened {
        Ok((store, voided)) => {
            assert_eq!(store.shard(), shard.id);
            shard.commit.resume(store.flusher());
            shard.store.put(Held::Open(store));
            shard.store.failure.replace(None);
            Ok(voided)
        }
        Err((closed, error)) => {
            shard.store.put(Held::Closed(closed));
            Err(error)
        }
    }
}

/// Blocking: opens the closed shard, voids what is pending, and proves with a write and a
/// flush that the disk takes writes. On failure, closed again.
fn reopen_settled(closed: ClosedShard) -> Result<(ShardStore, usize), (ClosedShard, StoreError)> {
    let mut store = match closed.reopen() {
        Ok(store) => store,
        Err(error) => return Err((closed, error)),
    };
    let settled = store
        .void_pending(VOIDED_AT_REOPEN, crate::clock::unix_now_ms())
        .and_then(|voided| {
            let flusher = store.flusher();
            flusher.check()?;
            flusher.flush_and_record()?;
            Ok(voided)
        });
    match settled {
        Ok(voided) => Ok((store, voided)),
        Err(error) => Err((store.close(), error)),
    }
}

fn recovered(shard: &Shard, took: Duration, voided: usize) {
    {
        let mut metrics = shard.metrics();
        metrics.storage_failure = None;
        metrics.storage_recoveries += 1;
    }
    log_line!(
        "aiocr: shard {}: storage recovered after {:.1} s: store reopened, {voided} pending \
         upload(s) voided; writes accepted again",
        shard.id,
        took.as_secs_f64()
    );
}
