//! Step 3 of an upload: its result is back (from a recognition thread, through the shard's
//! result inbox, or at once from the answer cache). Post or void the reservation, keep a
//! fresh answer in the cache, count it, wake the waiting request.

use super::Finished;
use crate::contract::{self, ApiError};
use crate::recognition::{JobAnswer, JobResult};
use crate::server::cache;
use crate::server::shard::Shard;
use crate::server::storage;
use crate::store::{Outcome, StoreError, UploadStatus};
use std::rc::Rc;

/// The start of the reason of an upload whose answer failed its constraints.
const UNSOLVABLE: &str = "unsolvable";

/// Applies a result on the upload's owner shard.
pub fn apply_result(shard: &Rc<Shard>, result: JobResult) {
    assert_eq!(
        result.owner_shard, shard.id,
        "results are applied on their owner"
    );
    if let (Ok(answer), false) = (&result.outcome, result.cache_hit) {
        cache::fill(shard, result.cache_key.clone(), answer.clone());
    }
    let (outcome, failure) = outcome_of(&result);
    count(shard, &result);
    let now_ms = crate::clock::unix_now_ms();
    let finished = shard
        .store
        .borrow_mut()
        .and_then(|mut store| store.finish_upload(result.upload_id, outcome, now_ms));
    match finished {
        Ok(record) => {
            assert_ne!(record.status, UploadStatus::Pending);
            if let Some((hook, task_id)) = shard.uploads.finish_hooks.take(record.id) {
                hook(shard, &record, task_id);
            }
            // A record finished earlier (voided at a stop, a duplicate result) keeps its own
            // status, whatever this result says.
            let failure = match record.status {
                UploadStatus::Failed => Some(failure.unwrap_or(ApiError::RecognitionFailed)),
                _ => None,
            };
            shard.uploads.waiters.wake(Finished { record, failure });
        }
        // Still pending in the store: voided when the store is reopened after a storage
        // failure (storage.rs) or at the next start; its waiter times out.
        Err(error) => {
            storage::notice(shard, &error);
            // Refused because the storage failed already: that was logged once, not per upload.
            if !matches!(error, StoreError::Unavailable(_)) {
                log_line!(
                    "aiocr: shard {}: finishing upload {} failed: {error}",
                    shard.id,
                    result.upload_id
                );
            }
        }
    }
    if let Some(receipt) = result.receipt {
        // The result is in the store (or the upload was already final): the worker may
        // acknowledge its job. A receiver that gave up waiting is no harm.
        let _ = receipt.send(());
    }
}

/// What the store records for a result, and the contract code of a failure: an image the
/// engine could not read is the client's error (3003/3004/3007, refunded), not a server
/// fault.
fn outcome_of(result: &JobResult) -> (Outcome, Option<ApiError>) {
    let failed = |reason: String, code| (Outcome::Failed { reason }, Some(code));
    // The store keeps an f32; NaN marks "none" (no `probability` asked, or a kind without
    // one) and is left out of answers.
    let done = |text: String, confidence: Option<f32>| {
        let confidence = confidence.unwrap_or(f32::NAN);
        let cache_hit = result.cache_hit;
        (
            Outcome::Done {
                text,
                confidence,
                cache_hit,
            },
            None,
        )
    };
    match &result.outcome {
        // An answer that fails the request's constraints is "unsolvable": refunded (the
        // cache keeps it: another request may accept it).
        Ok(JobAnswer::Text(answer)) => match result.constraints.check(answer) {
            Ok(()) => done(answer.text.clone(), answer.confidence),
            Err(why) => failed(format!("{UNSOLVABLE}: {why}"), ApiError::Unsolvable),
        },
        Ok(answer) => {
            let (text, confidence) = stored_answer(answer);
            done(text, confidence)
        }
        Err(failure) => failed(failure.to_string(), contract::of_job_failure(failure)),
    }
}

/// An answer as a done record keeps it: a text captcha's text and confidence; the JSON
/// ddddocr's answer serialises to for the other kinds (`result` of /v2/result).
pub fn stored_answer(answer: &JobAnswer) -> (String, Option<f32>) {
    match answer {
        JobAnswer::Text(answer) => (answer.text.clone(), answer.confidence),
        JobAnswer::Boxes(boxes) => (serde_json::to_string(boxes).expect("boxes serialise"), None),
        JobAnswer::Points(points) => (
            serde_json::to_string(points).expect("points serialise"),
            None,
        ),
        JobAnswer::Slide(answer) => (answer.to_json(), None),
    }
}

/// Gives an accepted upload's points back because its job will not run (queue full after
/// all, a reservation that could not be made durable), and lets its waiter go.
pub fn void(shard: &Shard, upload_id: u64, reason: &str) {
    shard.uploads.waiters.forget(upload_id);
    // The client was refused: nobody is waiting for a callback.
    shard.uploads.finish_hooks.take(upload_id);
    let now_ms = crate::clock::unix_now_ms();
    let voided = shard
        .store
        .borrow_mut()
        .and_then(|mut store| store.void_upload(upload_id, reason, now_ms));
    if let Err(error) = voided {
        storage::notice(shard, &error);
        // Still pending in the store: voided when the store is reopened after a storage
        // failure (storage.rs) or at the next start.
        if !matches!(error, StoreError::Unavailable(_)) {
            log_line!(
                "aiocr: shard {}: voiding upload {upload_id}: {error}",
                shard.id
            );
        }
    }
}

fn count(shard: &Shard, result: &JobResult) {
    let mut metrics = shard.metrics();
    match &result.outcome {
        Ok(_) => metrics.results_done += 1,
        Err(_) => metrics.results_failed += 1,
    }
    metrics.results_cache_hits += u64::from(result.cache_hit);
    metrics.queued_us.saturating_record(result.queued_us.max(1));
    if !result.cache_hit {
        metrics
            .recognize_us
            .saturating_record(result.recognize_us.max(1));
        metrics
            .batch_size
            .saturating_record(u64::from(result.batch_size.max(1)));
    }
}
