//! Step 2 for an upload the answer cache can answer outright: recorded born done and charged
//! in one store transaction (`record_cache_hits`, the write `POST /v2/decode/cached` makes;
//! staged, the transaction of every hit between two group commits), instead of a
//! reservation and then its post. Half the transactions and a third of the
//! writes of the general path (no pending index, one journal entry, one stats update), on the
//! path where the store was most of an upload's CPU time.
//!
//! Only for a hit that nothing can still refuse: an answer with constraints to check goes the
//! general way (it may end "unsolvable" and refunded). What the client sees is the same as on
//! the general path: `pending` without `wait` (the record is already done when it polls), the
//! done record with it; the record is reportable and refundable like any upload.

use super::finish::stored_answer;
use super::request::UploadRequest;
use super::Accepted;
use crate::recognition::cache::CacheKey;
use crate::recognition::JobAnswer;
use crate::server::call::ForwardedFrom;
use crate::server::forward_acks;
use crate::server::reply::{storage_unavailable, Refusal};
use crate::server::shard::Shard;
use crate::server::state::{Finished, HitsNotRecorded};
use crate::store::{CachedUpload, UploadRecord, UploadStatus};
use std::rc::Rc;

/// Whether an upload whose answer is cached can be recorded done at once.
pub fn answers_outright(request: &UploadRequest) -> bool {
    request.constraints == Default::default()
}

/// Records the cached `answer` as the user's done upload, charged, and answers once that is
/// on disk (a 200 means the charge is durable, as a reservation is on the general path).
pub async fn accept_hit(
    shard: &Rc<Shard>,
    user_id: u64,
    request: UploadRequest,
    key: &CacheKey,
    answer: &JobAnswer,
) -> Result<Accepted, Refusal> {
    assert!(answers_outright(&request), "constraints go the general way");
    let (text, confidence) = stored_answer(answer);
    let hit = CachedUpload {
        upload: request.new_upload(shard.config(), key),
        text,
        confidence: confidence.unwrap_or(f32::NAN),
    };
    let record = record_hits_durably(shard, user_id, vec![hit], request.forwarded)
        .await?
        .pop()
        .expect("one record per hit");
    {
        let mut metrics = shard.metrics();
        metrics.uploads_accepted += 1;
        // As finish.rs counts a result: a cache hit spends no time in a queue.
        metrics.queued_us.saturating_record(1);
    }
    if let Some(hook) = request.on_finish {
        // Only uploads without a task id come this way (accept.rs).
        hook(shard, &record, None);
    }
    Ok(match request.wait {
        false => Accepted::Pending(record),
        true => Accepted::Finished(Finished {
            record,
            failure: None,
        }),
    })
}

/// Records `hits` as the user's done uploads, charged, in one store transaction, and
/// returns their records once that is on disk (a 200 means the charges are durable, as a
/// reservation is on the general path). The one write of `POST /v2/decode/cached` and of an
/// upload answered outright. For a request another node `forwarded`, each charge waits for
/// its acknowledgement.
pub async fn record_hits_durably(
    shard: &Shard,
    user_id: u64,
    hits: Vec<CachedUpload>,
    forwarded: Option<ForwardedFrom>,
) -> Result<Vec<UploadRecord>, Refusal> {
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let count = hits.len();
    let records = if forwarded.is_none() && shard.commit.acknowledges_durably() {
        staged(shard, user_id, hits).await?
    } else {
        written_now(shard, user_id, hits, forwarded).await?
    };
    assert_eq!(records.len(), count, "one record per hit");
    assert!(records
        .iter()
        .all(|record| record.user_id == user_id && record.status == UploadStatus::Done));
    let mut metrics = shard.metrics();
    metrics.results_done += count as u64;
    metrics.results_cache_hits += count as u64;
    Ok(records)
}

/// Staged for the next group commit, which writes them with every other request's hits in
/// one transaction just before it starts (server/state/commit.rs): the common way.
async fn staged(
    shard: &Shard,
    user_id: u64,
    hits: Vec<CachedUpload>,
) -> Result<Vec<UploadRecord>, Refusal> {
    // A failed disk refuses before anything is staged (the cache lookup awaited since
    // accept.rs checked).
    shard.store.writable()?;
    match shard.commit.record_hits(user_id, hits).await {
        Ok(records) => Ok(records),
        Err(HitsNotRecorded::Refused(error)) => Err(error.into()),
        Err(HitsNotRecorded::NotDurable(records)) => Err(not_durable(shard, &records)),
    }
}

/// Written at once, for a forwarded request (its acknowledgement's wait is written beside
/// the charges, before the group commit) or without durable acknowledgements.
async fn written_now(
    shard: &Shard,
    user_id: u64,
    hits: Vec<CachedUpload>,
    forwarded: Option<ForwardedFrom>,
) -> Result<Vec<UploadRecord>, Refusal> {
    let records = shard.store.borrow_mut()?.record_cache_hits(user_id, hits)?;
    // Written before the group commit: durable with the charges (server/forward_acks.rs).
    for record in &records {
        forward_acks::await_ack(shard, forwarded, record.id);
    }
    if shard.commit.durable().await.is_err() {
        return Err(not_durable(shard, &records));
    }
    Ok(records)
}

/// As on the general path: the disk failed (storage.rs logs why, once), the store takes no
/// writes until it is reopened, and then the charges that reached the disk are given back:
/// a refused request costs nothing.
fn not_durable(shard: &Shard, records: &[UploadRecord]) -> Refusal {
    for record in records {
        shard.store.withdraw_at_reopen(record.id);
    }
    storage_unavailable()
}
