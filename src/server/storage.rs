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
//!   (store/reopen.rs). The reopened store is settled like a start: the uploads whose client
//!   was refused after their reservation was written are withdrawn (whatever of them reached
//!   the disk, a reservation or even a posted result, is given back: a refused request costs
//!   nothing), the uploads still pending are voided (refunded: their result could not be
//!   recorded), then a write is flushed to prove the disk takes it. Healthy again. While the
//!   store is closed (during a reopen, or after one failed) reads are refused with 5004 too.
//!
//! Ids issued by the failed store are never issued again (`ClosedShard::reopen`), so a
//! recognition result still in flight for a vanished upload cannot land on a new one.

use super::shard::Shard;
use super::state::{Held, StopSignal};
use crate::store::{withdrawals, ClosedShard, ShardStore, StoreError};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What the probe writes and fsyncs before a reopen is tried: two of sled's 512 KiB log
/// segments, so that a disk with less room than sled needs to go on is not declared healthy.
pub const PROBE_BYTES: usize = 1024 * 1024;
/// Why uploads still pending when a failed store is reopened were voided.
pub const VOIDED_AT_REOPEN: &str = "storage failed before the result was recorded";
/// Why an upload whose client was refused (5004) after its reservation was written is void.
pub const WITHDRAWN_AT_REOPEN: &str = "storage failed before the upload was acknowledged";

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
    while let Err(error) = shard
        .commit
        .run(&shard.store, &metrics, shard.id, &stop)
        .await
    {
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
    shard.store.fail(error);
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
        config.store.storage_probe_ms,
        config.store.storage_probe_max_ms
    );
}

/// At a stop with the storage still failed: keeps the ids of the uploads to withdraw for the
/// next start (store/withdrawals.rs); those it cannot keep are logged, for an operator.
pub async fn keep_withdrawals(shard: &Shard) {
    let ids = shard.store.unacknowledged();
    if ids.is_empty() {
        return;
    }
    let (data_dir, id) = (shard.config().store.data_dir.clone(), shard.id);
    let to_save = ids.clone();
    let saved = glommio::executor()
        .spawn_blocking(move || withdrawals::save(&data_dir, id, &to_save))
        .await;
    let (kept, lost) = match saved {
        Ok(beyond) => (ids.len() - beyond.len(), beyond),
        Err(error) => {
            log_line!("aiocr: shard {id}: keeping the refused uploads' ids: {error}");
            (0, ids)
        }
    };
    log_line!("aiocr: shard {id}: kept {kept} refused upload(s) for the next start to withdraw");
    if !lost.is_empty() {
        log_line!(
            "aiocr: shard {id}: uploads refused with 5004 that may have been charged (refund \
             them if so): {lost:?}"
        );
    }
}

/// Probes with a bounded backoff until the store is reopened (`true`) or `stop` (`false`).
async fn recover(shard: &Rc<Shard>, stop: &StopSignal) -> bool {
    let began = Instant::now();
    let config = shard.config();
    let (first, longest) = (
        config.store.storage_probe_ms,
        config.store.storage_probe_max_ms,
    );
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
            Ok(settled) => {
                recovered(shard, began.elapsed(), settled);
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
    let path = probe_path(&shard.config().store.data_dir, shard.id);
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
/// it on the blocking pool, and gives the group commit its flusher.
async fn reopen(shard: &Shard) -> Result<Settled, StoreError> {
    let held = shard.store.take();
    let unacknowledged = shard.store.unacknowledged();
    let reopened = glommio::executor()
        .spawn_blocking(move || {
            let closed = match held {
                Held::Open(store) => store.close(),
                Held::Closed(closed) => closed,
                Held::Away => unreachable!("taken by this reopen only"),
            };
            reopen_settled(closed, &unacknowledged)
        })
        .await;
    match reopened {
        Ok((store, settled)) => {
            assert_eq!(store.shard(), shard.id);
            shard.commit.resume(store.flusher());
            shard.store.put(Held::Open(store));
            // Nothing was reserved meanwhile (writes were refused): every id was withdrawn.
            shard.store.reopened();
            Ok(settled)
        }
        Err((closed, error)) => {
            shard.store.put(Held::Closed(closed));
            Err(error)
        }
    }
}

/// What settling a reopened store did.
struct Settled {
    /// Refused uploads of which something had reached the disk, now given back.
    withdrawn: usize,
    /// Uploads left pending, voided.
    voided: usize,
}

/// Blocking: opens the closed shard, withdraws the `unacknowledged` uploads, voids what is
/// still pending, and proves with a write and a flush that the disk takes writes. On
/// failure, closed again.
fn reopen_settled(
    closed: ClosedShard,
    unacknowledged: &[u64],
) -> Result<(ShardStore, Settled), (ClosedShard, StoreError)> {
    let mut store = match closed.reopen() {
        Ok(store) => store,
        Err(error) => return Err((closed, error)),
    };
    match settle(&mut store, unacknowledged) {
        Ok(settled) => Ok((store, settled)),
        Err(error) => Err((store.close(), error)),
    }
}

fn settle(store: &mut ShardStore, unacknowledged: &[u64]) -> Result<Settled, StoreError> {
    let now_ms = crate::clock::unix_now_ms();
    let mut withdrawn = 0;
    for &upload_id in unacknowledged {
        let record = store.withdraw_unacknowledged(upload_id, WITHDRAWN_AT_REOPEN, now_ms)?;
        withdrawn += usize::from(record.is_some());
    }
    let voided = store.void_pending(VOIDED_AT_REOPEN, now_ms)?;
    let flusher = store.flusher();
    flusher.check()?;
    flusher.flush_and_record()?;
    Ok(Settled { withdrawn, voided })
}

fn recovered(shard: &Shard, took: Duration, settled: Settled) {
    {
        let mut metrics = shard.metrics();
        metrics.storage_failure = None;
        metrics.storage_recoveries += 1;
    }
    log_line!(
        "aiocr: shard {}: storage recovered after {:.1} s: store reopened, {} refused \
         upload(s) withdrawn, {} pending upload(s) voided; writes accepted again",
        shard.id,
        took.as_secs_f64(),
        settled.withdrawn,
        settled.voided
    );
}
