//! Uploads: read the image (base64 or data URI in `file`/`image`, a multipart file part, or
//! the raw body), check it from its header, then on the owner shard: rate limit, queue room,
//! reserve the cost, wait for the reservation to be on disk, enqueue, and answer at once or
//! (`wait=1`) when the result arrives within `timeout_ms`.

use super::account::{fields_of, store_refusal, upload_json};
use super::api::{internal, ok, ApiError, ApiResult, Refusal};
use super::fields::{body_kind, malformed, BodyKind, Fields};
use super::routes::{shard_gone, Call, Caller};
use super::shard::Shard;
use crate::accel::{cache, Job, JobResult};
use crate::engine::{probe_image, Answer, CharsetRange, RecognizeOptions};
use crate::store::{NewUpload, Outcome, UploadRecord, UploadStatus};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::json;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest `soft_id` accepted.
const MAX_SOFT_ID_BYTES: usize = 64;
/// Fields that may carry the image (the original platform's name, then ddddocr's).
const IMAGE_FIELDS: [&str; 2] = ["file", "image"];

/// A checked upload, ready for the owner shard.
struct UploadRequest {
    image: Vec<u8>,
    options: RecognizeOptions,
    soft_id: Option<String>,
    wait: bool,
    timeout_ms: u64,
}

pub async fn upload(call: Call<'_>, caller: Caller, base64_route: bool) -> ApiResult {
    let request = read_upload(&call, base64_route)?;
    probe_image(&request.image, &call.shard.image_limits).map_err(|error| {
        Refusal::new(
            ApiError::from_image_code(error.api_code()),
            error.to_string(),
        )
    })?;
    let user_id = caller.user_id;
    call.shard
        .submit_to(caller.owner, move |shard| {
            accept_on_owner(shard, user_id, request)
        })
        .await
        .map_err(|_| shard_gone())?
}

fn read_upload(call: &Call, base64_route: bool) -> Result<UploadRequest, Refusal> {
    let config = &call.shard.config;
    let kind = body_kind(call.head.content_type.as_deref(), &call.body);
    let (mut fields, raw_image) = if kind == BodyKind::Other && !base64_route {
        (
            Fields::from_query(&call.head.query)?,
            Some(call.body.clone()),
        )
    } else {
        (fields_of(call)?, None)
    };
    let image = match raw_image {
        Some(image) => image,
        None => image_from_fields(&mut fields, config.max_image_bytes)?,
    };
    if image.is_empty() {
        return Err(ApiError::NoImage.into());
    }
    if image.len() > config.max_image_bytes {
        return Err(too_large(config.max_image_bytes));
    }
    let model = fields
        .text("model")
        .filter(|m| !m.is_empty())
        .unwrap_or("old")
        .to_string();
    if !call.shard.shared.models.contains(&model) {
        return Err(Refusal::new(
            ApiError::UnknownModel,
            format!("unknown model {model:?}"),
        ));
    }
    let charset_range = match fields.text("charset_range") {
        None => None,
        Some(text) => Some(
            CharsetRange::parse(text)
                .ok_or_else(|| malformed("charset_range must not be empty"))?,
        ),
    };
    let options = RecognizeOptions {
        model,
        png_fix: fields.flag("png_fix", false)?,
        probability: fields.flag("probability", false)?,
        charset_range,
        color_filter: None,
    };
    let soft_id = fields
        .text("soft_id")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if soft_id
        .as_ref()
        .is_some_and(|s| s.len() > MAX_SOFT_ID_BYTES)
    {
        return Err(malformed(format!(
            "soft_id longer than {MAX_SOFT_ID_BYTES} bytes"
        )));
    }
    let timeout_ms = fields
        .number("timeout_ms")?
        .unwrap_or(config.wait_timeout_ms_default);
    Ok(UploadRequest {
        image,
        options,
        soft_id,
        wait: fields.flag("wait", false)?,
        timeout_ms: timeout_ms.min(config.wait_timeout_ms_max),
    })
}

fn too_large(max_image_bytes: usize) -> Refusal {
    Refusal::new(
        ApiError::TooLarge,
        format!("image larger than {max_image_bytes} bytes"),
    )
}

/// A binary file part named `file`/`image`, else a base64 text field of that name.
fn image_from_fields(fields: &mut Fields, max_image_bytes: usize) -> Result<Vec<u8>, Refusal> {
    for name in IMAGE_FIELDS {
        if let Some(bytes) = fields.take_file(name) {
            return Ok(bytes);
        }
    }
    for name in IMAGE_FIELDS {
        if let Some(text) = fields.text(name) {
            return decode_base64_image(text, max_image_bytes);
        }
    }
    Err(ApiError::NoImage.into())
}

/// Base64 or a `data:image/...;base64,` URI. Line breaks are ignored, spaces are read as `+`
/// (a form that was not percent-encoded turns `+` into spaces), the URL-safe alphabet and
/// missing padding are accepted.
pub fn decode_base64_image(text: &str, max_image_bytes: usize) -> Result<Vec<u8>, Refusal> {
    let payload = match text.strip_prefix("data:") {
        Some(uri) => {
            let (header, data) = uri.split_once(',').ok_or_else(bad_base64)?;
            if !header.ends_with(";base64") {
                return Err(bad_base64());
            }
            data
        }
        None => text,
    };
    let cleaned: Vec<u8> = payload
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n' | b'\t'))
        .map(|b| match b {
            b' ' | b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .collect();
    if cleaned.is_empty() {
        return Err(ApiError::NoImage.into());
    }
    // Refuse before decoding: 4 base64 characters carry 3 bytes.
    if cleaned.len() / 4 * 3 > max_image_bytes + 3 {
        return Err(too_large(max_image_bytes));
    }
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let engine = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    base64::Engine::decode(&engine, &cleaned).map_err(|_| bad_base64())
}

fn bad_base64() -> Refusal {
    Refusal::new(ApiError::NotAnImage, "bad base64")
}

/// The answer cached for these bytes and options. A miss is counted here
/// (`aiocr_cache_misses_total`); a hit is counted when its result is applied.
fn cached_answer(
    shard: &Shard,
    digest: &cache::ImageDigest,
    options: &RecognizeOptions,
) -> Option<Answer> {
    let mut cache = shard.answer_cache.borrow_mut();
    let found = cache.get(digest, options);
    if found.is_none() && cache.is_enabled() {
        shard.metrics.shard(shard.id).cache_misses += 1;
    }
    found
}

/// Runs on the owner shard: everything that touches the user's points.
async fn accept_on_owner(shard: Rc<Shard>, user_id: u64, request: UploadRequest) -> ApiResult {
    if let Err(retry_after_secs) = shard.limiter.borrow_mut().check(user_id) {
        return Err(Refusal::from(ApiError::RateLimited).retry_after(retry_after_secs));
    }
    let digest = cache::digest(&request.image);
    // A cached answer needs neither a queue slot nor a model run; it is still charged.
    let cached = cached_answer(&shard, &digest, &request.options);
    if cached.is_none() && !shard.shared.queue.has_room() {
        shard.metrics.shard(shard.id).uploads_queue_full += 1;
        return Err(busy());
    }
    let record = reserve(&shard, user_id, &request, &digest)?;
    let (wait, timeout_ms) = (request.wait, request.timeout_ms);
    let waiter = wait.then(|| register_waiter(&shard, record.id));
    match cached {
        Some(answer) => shard.apply_result(JobResult {
            upload_id: record.id,
            user_id,
            owner_shard: shard.id,
            outcome: Ok(answer),
            cache_hit: true,
            queued_us: 0,
            recognize_us: 0,
            batch_size: 0,
            digest,
            options: request.options,
        }),
        None => submit(&shard, &record, user_id, request, digest)?,
    }
    // A 200 means the reservation is on disk, so the answer waits for the group commit; the
    // recognition already runs meanwhile (a sync answer pays max(fsync, model), not the sum).
    if let Err(error) = shard.commit.durable().await {
        shard.result_waiters.borrow_mut().remove(&record.id);
        void(&shard, record.id, "reservation could not be made durable");
        return Err(internal("group commit", error));
    }
    shard.metrics.shard(shard.id).uploads_accepted += 1;
    match waiter {
        None => Ok(pending_answer(&record)),
        Some(waiter) => wait_for_result(&shard, &record, waiter, timeout_ms).await,
    }
}

/// Reserves the upload's cost with a pending record (made durable by the group commit the
/// caller awaits before answering).
fn reserve(
    shard: &Rc<Shard>,
    user_id: u64,
    request: &UploadRequest,
    digest: &cache::ImageDigest,
) -> Result<UploadRecord, Refusal> {
    let new_upload = NewUpload {
        cost: shard.config.upload_cost,
        model: request.options.model.clone(),
        soft_id: request.soft_id.clone(),
        image_hash: digest[..16].try_into().expect("a 32-byte digest"),
        now_ms: Shard::now_ms(),
    };
    let record = shard
        .store
        .borrow_mut()
        .accept_upload(user_id, new_upload)
        .map_err(store_refusal)?;
    Ok(record)
}

/// Queues the job; when another shard took the last slot since `has_room`, gives the points
/// back and answers busy.
fn submit(
    shard: &Rc<Shard>,
    record: &UploadRecord,
    user_id: u64,
    request: UploadRequest,
    digest: cache::ImageDigest,
) -> Result<(), Refusal> {
    let job = Job {
        upload_id: record.id,
        user_id,
        owner_shard: shard.id,
        image: request.image,
        options: request.options,
        digest,
        enqueued_at: Instant::now(),
    };
    if shard.shared.queue.try_submit(job).is_err() {
        shard.result_waiters.borrow_mut().remove(&record.id);
        void(shard, record.id, "recognition queue full");
        shard.metrics.shard(shard.id).uploads_queue_full += 1;
        return Err(busy());
    }
    Ok(())
}

fn busy() -> Refusal {
    Refusal::from(ApiError::Busy).retry_after(1)
}

fn void(shard: &Shard, upload_id: u64, reason: &str) {
    let voided = shard.store.borrow_mut().finish_upload(
        upload_id,
        Outcome::Failed {
            reason: reason.to_string(),
        },
    );
    if let Err(error) = voided {
        // Still pending in the store: voided at the next start.
        eprintln!(
            "aiocr: shard {}: voiding upload {upload_id}: {error}",
            shard.id
        );
    }
}

fn register_waiter(shard: &Shard, upload_id: u64) -> flume::Receiver<UploadRecord> {
    let (sender, receiver) = flume::bounded(1);
    shard
        .result_waiters
        .borrow_mut()
        .entry(upload_id)
        .or_default()
        .push(sender);
    receiver
}

fn pending_answer(record: &UploadRecord) -> super::super::http::Response {
    ok(&json!({ "id": record.id.to_string(), "status": "pending" }))
}

async fn wait_for_result(
    shard: &Rc<Shard>,
    record: &UploadRecord,
    waiter: flume::Receiver<UploadRecord>,
    timeout_ms: u64,
) -> ApiResult {
    let arrived = async { waiter.recv_async().await.ok() };
    let timed_out = async {
        glommio::timer::sleep(Duration::from_millis(timeout_ms)).await;
        None
    };
    let Some(finished) = futures_lite::future::or(arrived, timed_out).await else {
        shard.result_waiters.borrow_mut().remove(&record.id);
        return Ok(pending_answer(record));
    };
    match finished.status {
        UploadStatus::Done => Ok(ok(&upload_json(&finished))),
        UploadStatus::Failed => {
            let reason = finished.error.unwrap_or_else(|| "unknown".to_string());
            Err(Refusal::new(
                ApiError::RecognitionFailed,
                format!("recognition failed (refunded): {reason}"),
            ))
        }
        UploadStatus::Pending => Ok(pending_answer(&finished)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_variants_decode_to_the_same_bytes() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let standard = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
        let url_safe =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &bytes);
        let spaced = standard.replace('+', " ");
        let wrapped: String = standard
            .as_bytes()
            .chunks(76)
            .map(|line| String::from_utf8_lossy(line) + "\r\n")
            .collect();
        let data_uri = format!("data:image/png;base64,{standard}");
        for text in [standard.as_str(), &url_safe, &spaced, &wrapped, &data_uri] {
            assert_eq!(decode_base64_image(text, 1024).unwrap(), bytes, "{text}");
        }
    }

    #[test]
    fn base64_refusals() {
        assert_eq!(
            decode_base64_image("!!!!", 1024).unwrap_err().error,
            ApiError::NotAnImage
        );
        assert_eq!(
            decode_base64_image("data:image/png,abcd", 1024)
                .unwrap_err()
                .error,
            ApiError::NotAnImage
        );
        assert_eq!(
            decode_base64_image("", 1024).unwrap_err().error,
            ApiError::NoImage
        );
        let big = "A".repeat(2000);
        assert_eq!(
            decode_base64_image(&big, 1024).unwrap_err().error,
            ApiError::TooLarge
        );
    }
}
