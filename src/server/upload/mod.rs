//! An upload's whole life, in the order it happens:
//!
//! 1. `request.rs` — read and check the request where it arrived: the image (base64 or a
//!    data URI in `file`/`image`, a multipart file part, or the raw body), its header-only
//!    probe, the options. Nothing is charged yet.
//! 2. `accept.rs` — on the owner shard: rate limit, answer cache, queue and waiter room,
//!    reserve the cost, submit the job, wait for the reservation to be on disk.
//!    `hit.rs` — an answer the cache holds, for a request without constraints: recorded
//!    done and charged in one write instead (no reservation, no job).
//! 3. `finish.rs` — when the result comes back (or at once for a cache hit): post or void
//!    the reservation, fill the cache, wake the waiting request.
//! 4. `wait.rs` — `wait=1`: the bounded table of waiting requests, and the wait itself,
//!    within `timeout_ms`.
//!
//! A refusal at any step before the reservation costs nothing; after it, every way out
//! (queue full after all, a failed fsync, a failed recognition, a server stop) voids it.

mod accept;
mod click;
pub use click::from_fields as click_from_fields;
mod finish;
mod hit;
mod placement;
pub(crate) mod request;
mod wait;

pub use crate::server::state::Finished;
pub use accept::{Accept, AcceptTask};
pub use finish::{apply_result, stored_answer};
pub use hit::record_hits_durably;
pub use request::{
    decode_base64_image, recognize_options, slide_mode, UploadRequest, MAX_SOFT_ID_BYTES,
};

use super::call::Call;
use super::owner::run_on_owner;
use super::reply::{ok, ApiResult, Refusal};
use crate::contract::ApiError;
use crate::engine::SlideMode;
use crate::http::Response;
use crate::recognition::cache::TaskKey;
use crate::recognition::{Kind, Task};
use crate::store::{UploadRecord, UploadStatus};
use serde_json::json;

/// What became of an accepted upload by the time it is answered.
#[derive(Debug)]
pub enum Accepted {
    /// Not finished yet (no `wait`, or the wait ran out): the client polls.
    Pending(UploadRecord),
    /// Done, or failed and refunded, within the wait.
    Finished(Finished),
}

impl Accepted {
    pub fn record(&self) -> &UploadRecord {
        match self {
            Accepted::Pending(record) => record,
            Accepted::Finished(finished) => &finished.record,
        }
    }
}

/// How the upload's route carries the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `/v2/decode/upload-base64`: base64 or a data URI in a field.
    Base64,
    /// `/v2/decode/upload`, `/v2/decode/detect`: a multipart file part, a base64 field, or
    /// the raw body.
    FileOrRaw,
}

/// `POST /v2/decode/upload`, `/v2/decode/upload-base64` (text captchas),
/// `/v2/decode/detect` (click captchas) and `/v2/decode/slide` (slide captchas).
pub async fn upload(call: Call<'_>, kind: Kind, encoding: Encoding) -> ApiResult {
    let caller = call.caller().await?;
    let request = request::UploadRequest::parse(&call, kind, encoding)?;
    accept_and_answer(call, caller, request).await
}

/// `POST /v2/decode/click` (click-in-order captchas: `click.rs`); answered like an upload.
pub async fn click(call: Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let request = click::parse(&call)?;
    accept_and_answer(call, caller, request).await
}

async fn accept_and_answer(
    call: Call<'_>,
    caller: super::call::Caller,
    request: UploadRequest,
) -> ApiResult {
    let accepted = run_on_owner(call.shard, Accept { caller, request }).await?;
    match accepted {
        Accepted::Pending(record) => Ok(pending_answer(&record)),
        Accepted::Finished(finished) => finished_answer(finished),
    }
}

/// The answer to an upload that is still pending: poll `/v2/result`.
fn pending_answer(record: &UploadRecord) -> Response {
    ok(&json!({ "id": record.id.to_string(), "status": "pending" }))
}

/// A finished upload: done, or its failure's code (it was refunded).
fn finished_answer(finished: Finished) -> ApiResult {
    finished_view(finished).map(|view| ok(&view))
}

/// An accepted upload as its requester sees it: the contract's view while pending or once
/// done, or the refusal its failure is (it was refunded).
pub fn accepted_view(accepted: Accepted) -> Result<serde_json::Value, Refusal> {
    match accepted {
        Accepted::Pending(record) => Ok(upload_json(&record)),
        Accepted::Finished(finished) => finished_view(finished),
    }
}

fn finished_view(finished: Finished) -> Result<serde_json::Value, Refusal> {
    let Finished { record, failure } = finished;
    match record.status {
        UploadStatus::Done => Ok(upload_json(&record)),
        UploadStatus::Failed => {
            let reason = record.error.unwrap_or_else(|| "unknown".to_string());
            let code = failure.unwrap_or(ApiError::RecognitionFailed);
            let what = match code {
                ApiError::RecognitionFailed => "recognition failed",
                ApiError::Unsolvable => "no answer",
                _ => code.default_message(),
            };
            Err(Refusal::new(code, format!("{what} (refunded): {reason}")))
        }
        UploadStatus::Pending => unreachable!("finished uploads are not pending"),
    }
}

/// What an upload record keeps as its `model`: the model of a text captcha, else its kind
/// (`detect`, `click`, `slide-match`, `slide-simple`, `slide-comparison`); custom models may not take
/// those names (`engine::model`).
pub fn record_model(task: &Task) -> String {
    match task {
        Task::Ocr { options, .. } => options.model.clone(),
        Task::Detect { .. } => DETECT_MODEL.to_string(),
        Task::Click { .. } => CLICK_RECORD_MODEL.to_string(),
        Task::Slide { mode, .. } => slide_model(*mode).to_string(),
    }
}

/// The same, for an answer found by its cache key (a hash lookup's upload record).
pub fn record_model_of_key(task: &TaskKey) -> String {
    match task {
        TaskKey::Ocr(options) => options.model.clone(),
        TaskKey::Detect => DETECT_MODEL.to_string(),
        TaskKey::Click { .. } => CLICK_RECORD_MODEL.to_string(),
        TaskKey::Slide(mode) => slide_model(*mode).to_string(),
    }
}

fn slide_model(mode: SlideMode) -> &'static str {
    match mode {
        SlideMode::Match => "slide-match",
        SlideMode::Simple => "slide-simple",
        SlideMode::Comparison => "slide-comparison",
    }
}

/// The record `model` of a detection.
const DETECT_MODEL: &str = "detect";
const CLICK_RECORD_MODEL: &str = "click";

/// Whether an upload was a click-in-order captcha (`/v2/decode/click`, 2captcha's
/// `coordinatescaptcha`).
pub fn is_click_record(record: &UploadRecord) -> bool {
    record.model == CLICK_RECORD_MODEL
}

/// The kind of an upload, from its record's `model`.
pub fn kind_of(record: &UploadRecord) -> Kind {
    match record.model.as_str() {
        DETECT_MODEL | CLICK_RECORD_MODEL => Kind::Detect,
        model if model.starts_with("slide-") => Kind::Slide,
        _ => Kind::Ocr,
    }
}

/// The contract's view of one upload. A text captcha's `result` is its text; a click or
/// slide captcha's is ddddocr's JSON answer (boxes, or the slide dict); a click-in-order
/// captcha's (`kind` `click`, a detection job) its clicks `[[x, y], ...]` or boxes.
pub fn upload_json(record: &UploadRecord) -> serde_json::Value {
    let kind = kind_of(record);
    let label = match record.model.as_str() {
        CLICK_RECORD_MODEL => "click",
        _ => kind.label(),
    };
    let mut data = json!({
        "id": record.id.to_string(),
        "kind": label,
        "status": status_name(record.status),
        "cost": record.cost,
        "created_at": record.created_at_ms,
    });
    if let Some(result) = &record.result {
        data["result"] = match kind {
            Kind::Ocr => json!(result),
            // Written by finish.rs from serde; a record that does not parse is shown as text.
            _ => serde_json::from_str(result).unwrap_or_else(|_| json!(result)),
        };
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
    if record.cache_hit {
        data["cache_hit"] = json!(true);
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
