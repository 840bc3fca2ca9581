//! An upload's whole life, in the order it happens:
//!
//! 1. `request.rs` — read and check the request where it arrived: the image (base64 or a
//!    data URI in `file`/`image`, a multipart file part, or the raw body), its header-only
//!    probe, the options. Nothing is charged yet.
//! 2. `accept.rs` — on the owner shard: rate limit, answer cache, queue and waiter room,
//!    reserve the cost, submit the job, wait for the reservation to be on disk.
//! 3. `finish.rs` — when the result comes back (or at once for a cache hit): post or void
//!    the reservation, fill the cache, wake the waiting request.
//! 4. `wait.rs` — `wait=1`: the bounded table of waiting requests, and the wait itself,
//!    within `timeout_ms`.
//!
//! A refusal at any step before the reservation costs nothing; after it, every way out
//! (queue full after all, a failed fsync, a failed recognition, a server stop) voids it.

mod accept;
mod finish;
mod request;
mod wait;

pub use accept::Accept;
pub use finish::apply_result;
pub use request::{decode_base64_image, UploadRequest, MAX_SOFT_ID_BYTES};
pub use wait::ResultWaiters;

use super::call::Call;
use super::owner::run_on_owner;
use super::reply::{ok, ApiResult, Refusal};
use crate::contract::ApiError;
use crate::http::Response;
use crate::store::{UploadRecord, UploadStatus};
use serde_json::json;

/// What became of an accepted upload by the time it is answered.
#[derive(Debug)]
pub enum Accepted {
    /// Not finished yet (no `wait`, or the wait ran out): the client polls.
    Pending(UploadRecord),
    /// Done, or failed and refunded, within the wait.
    Finished(UploadRecord),
}

/// How the upload's route carries the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `/v2/decode/upload-base64`: base64 or a data URI in a field.
    Base64,
    /// `/v2/decode/upload`: a multipart file part, or the raw body.
    FileOrRaw,
}

/// `POST /v2/decode/upload` and `/v2/decode/upload-base64`.
pub async fn upload(call: Call<'_>, encoding: Encoding) -> ApiResult {
    let caller = call.caller().await?;
    let request = request::UploadRequest::parse(&call, encoding)?;
    match run_on_owner(call.shard, Accept { caller, request }).await? {
        Accepted::Pending(record) => Ok(pending_answer(&record)),
        Accepted::Finished(record) => finished_answer(record),
    }
}

/// The answer to an upload that is still pending: poll `/v2/result`.
fn pending_answer(record: &UploadRecord) -> Response {
    ok(&json!({ "id": record.id.to_string(), "status": "pending" }))
}

/// A finished upload: done, or 5003 (it was refunded).
fn finished_answer(record: UploadRecord) -> ApiResult {
    match record.status {
        UploadStatus::Done => Ok(ok(&upload_json(&record))),
        UploadStatus::Failed => {
            let reason = record.error.unwrap_or_else(|| "unknown".to_string());
            Err(Refusal::new(
                ApiError::RecognitionFailed,
                format!("recognition failed (refunded): {reason}"),
            ))
        }
        UploadStatus::Pending => unreachable!("finished uploads are not pending"),
    }
}

/// The contract's view of one upload.
pub fn upload_json(record: &UploadRecord) -> serde_json::Value {
    let mut data = json!({
        "id": record.id.to_string(),
        "status": status_name(record.status),
        "cost": record.cost,
        "created_at": record.created_at_ms,
    });
    if let Some(result) = &record.result {
        data["result"] = json!(result);
    }
    if let Some(confidence) = record.confidence.filter(|c| c.is_finite()) {
        data["confidence"] = json!(confidence);
    }
    if let Some(error) = &record.error {
        data["error"] = json!(error);
    }
    if let Some(finished_at) = record.finished_at_ms {
        data["finished_at"] = json!(finished_at);
    }
    if record.reported {
        data["reported"] = json!(true);
    }
    data
}

pub fn status_name(status: UploadStatus) -> &'static str {
    match status {
        UploadStatus::Pending => "pending",
        UploadStatus::Done => "done",
        UploadStatus::Failed => "failed",
    }
}
