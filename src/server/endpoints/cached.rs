//! `POST /v2/decode/cached`: answers by image hash, before uploading (or instead of it).
//!
//! The body is JSON: `{"lookups": [{"hash", "background_hash"?, "options"?}, ...],
//! "soft_id"?}` with 1..=`cache_lookup_max` lookups, or one lookup on its own
//! (`{"hash", "options"?, "soft_id"?}`). `hash` is the SHA-256 of the image bytes, in hex;
//! `options` are the upload's (`kind` = `ocr` (default), `detect` or `slide`; for text
//! `model`, `png_fix`, `probability`, `charset_range`, `colors`, `color_ranges`; for slides
//! `mode`, with `hash` the target's and `background_hash` the background's SHA-256).
//!
//! On the caller's shard: one rate-limit token for the request, the lookups (one hop per
//! shard that owns some of the hashes), then every hit recorded as the caller's done upload
//! and charged its kind's price, all in one transaction and one group commit (2001 and
//! nothing charged when the balance does not cover them all). Misses cost nothing. The
//! answers come in the order of the lookups: a hit as a done upload (`cache_hit: true`,
//! reportable by its `id`), a miss as `{"hash", "status": "miss"}`; both carry the hash.

use crate::contract::ApiError;
use crate::engine::SlideMode;
use crate::recognition::cache::{slide_digest_of, CacheKey, ImageDigest, TaskKey};
use crate::recognition::{JobAnswer, Kind};
use crate::server::cache::lookup_many;
use crate::server::call::{Call, Caller};
use crate::server::fields::Fields;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{
    busy, malformed, ok, shutting_down, storage_unavailable, ApiResult, Refusal,
};
use crate::server::shard::{HopError, Shard};
use crate::server::upload::{
    recognize_options, record_model_of_key, stored_answer, upload_json, MAX_SOFT_ID_BYTES,
};
use crate::store::{CachedUpload, NewUpload, UploadRecord};
use serde_json::{json, Map, Value};
use std::rc::Rc;

/// One lookup: the hash as the client wrote it (lower-cased) and the key it names.
struct Lookup {
    hash: String,
    key: CacheKey,
}

struct LookupRequest {
    lookups: Vec<Lookup>,
    soft_id: Option<String>,
}

/// `POST /v2/decode/cached`.
pub async fn cached(call: Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let request = parse(&call)?;
    let results = run_on_owner(call.shard, CachedLookup { caller, request }).await?;
    // A hit is a done upload with its id; a miss has none.
    let hit_ids = results
        .iter()
        .filter_map(|result| result["id"].as_str()?.parse::<u64>().ok());
    for upload_id in hit_ids {
        call.charged(caller.owner, upload_id);
    }
    Ok(ok(&json!({ "results": results })))
}

fn parse(call: &Call) -> Result<LookupRequest, Refusal> {
    let config = call.shard.config();
    let value: Value = serde_json::from_slice(&call.body)
        .map_err(|_| malformed("the body must be JSON: {\"lookups\": [{\"hash\": ...}]}"))?;
    let Value::Object(mut body) = value else {
        return Err(malformed("the JSON body must be an object"));
    };
    let soft_id = soft_id(body.get("soft_id"))?;
    let items = match body.remove("lookups") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(malformed("lookups must be a list")),
        // One lookup on its own: the body is the lookup.
        None if body.contains_key("hash") => vec![Value::Object(body)],
        None => return Err(malformed("missing field lookups")),
    };
    if items.is_empty() || items.len() > config.cache.cache_lookup_max {
        return Err(malformed(format!(
            "lookups must hold 1 to {} lookups",
            config.cache.cache_lookup_max
        )));
    }
    let models = &call.shard.shared.models;
    let lookups = items
        .iter()
        .map(|item| parse_lookup(item, models))
        .collect::<Result<_, _>>()?;
    Ok(LookupRequest { lookups, soft_id })
}

fn soft_id(value: Option<&Value>) -> Result<Option<String>, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) if text.len() <= MAX_SOFT_ID_BYTES => Ok(Some(text.clone())),
        Some(_) => Err(malformed(format!(
            "soft_id must be a string of at most {MAX_SOFT_ID_BYTES} bytes"
        ))),
    }
}

fn parse_lookup(item: &Value, models: &[String]) -> Result<Lookup, Refusal> {
    let Value::Object(item) = item else {
        return Err(malformed("each lookup is an object {hash, options}"));
    };
    let (hash, digest) = hash_field(item, "hash")?;
    let options = match item.get("options") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(options)) => options.clone(),
        Some(_) => return Err(malformed("options must be an object")),
    };
    let fields = Fields::from_json_object(options)?;
    let key = match fields.text("kind").unwrap_or("ocr") {
        "ocr" => CacheKey::ocr(digest, recognize_options(&fields, models)?),
        "detect" => CacheKey {
            digest,
            task: TaskKey::Detect,
        },
        "slide" => {
            let (_, background) = hash_field(item, "background_hash")?;
            CacheKey {
                digest: slide_digest_of(&digest, &background),
                task: TaskKey::Slide(slide_mode(fields.text("mode"))?),
            }
        }
        other => {
            return Err(Refusal::new(
                ApiError::InvalidOption,
                format!("kind {other:?}: expected ocr, detect or slide"),
            ))
        }
    };
    Ok(Lookup { hash, key })
}

/// A SHA-256 in hex (either case): the text lower-cased, and the digest.
fn hash_field(item: &Map<String, Value>, name: &str) -> Result<(String, ImageDigest), Refusal> {
    let bad = || {
        malformed(format!(
            "{name} must be the SHA-256 of the image bytes: 64 hexadecimal characters"
        ))
    };
    let text = item.get(name).and_then(Value::as_str).ok_or_else(bad)?;
    let digest = parse_hex(text).ok_or_else(bad)?;
    Ok((text.to_ascii_lowercase(), digest))
}

fn parse_hex(text: &str) -> Option<ImageDigest> {
    if text.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

/// A slide's `mode`, as `/v2/decode/slide` reads it.
fn slide_mode(text: Option<&str>) -> Result<SlideMode, Refusal> {
    match text.map(str::trim).filter(|mode| !mode.is_empty()) {
        None => Ok(SlideMode::Match),
        Some(text) => SlideMode::parse(text).ok_or_else(|| {
            Refusal::new(
                ApiError::InvalidOption,
                format!("mode {text:?}: expected match, simple or comparison"),
            )
        }),
    }
}

/// The lookups, run on the caller's shard (its rate bucket and ledger live there).
struct CachedLookup {
    caller: Caller,
    request: LookupRequest,
}

impl OwnerCommand for CachedLookup {
    type Output = Vec<Value>;

    fn owner(&self) -> u16 {
        self.caller.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Vec<Value>, Refusal> {
        answer(shard, self.caller.user_id, self.request).await
    }
}

async fn answer(
    shard: Rc<Shard>,
    user_id: u64,
    request: LookupRequest,
) -> Result<Vec<Value>, Refusal> {
    if let Err(retry_after_secs) = shard.uploads.upload_limiter.borrow_mut().check(user_id) {
        return Err(Refusal::from(ApiError::RateLimited).retry_after(retry_after_secs));
    }
    let LookupRequest { lookups, soft_id } = request;
    let keys = lookups.iter().map(|lookup| lookup.key.clone()).collect();
    let found = lookup_many(&shard, keys)
        .await
        .map_err(|error| match error {
            HopError::Busy => busy(),
            HopError::Gone => shutting_down(),
        })?;
    let now_ms = crate::clock::unix_now_ms();
    let hits: Vec<CachedUpload> = lookups
        .iter()
        .zip(&found)
        .filter_map(|(lookup, answer)| {
            Some(cached_upload(
                &shard,
                lookup,
                answer.as_ref()?,
                &soft_id,
                now_ms,
            ))
        })
        .collect();
    let records = charge(&shard, user_id, hits).await?;
    let mut records = records.into_iter();
    let results = lookups
        .iter()
        .zip(&found)
        .map(|(lookup, answer)| match answer {
            Some(_) => {
                let record = records.next().expect("one record per hit");
                let mut data = upload_json(&record);
                data["hash"] = json!(lookup.hash);
                data
            }
            None => json!({ "hash": lookup.hash, "status": "miss" }),
        })
        .collect();
    assert!(records.next().is_none(), "every record answered");
    Ok(results)
}

/// Records and charges the hits, durably (a 200 means the charges are on disk, as an
/// upload's reservation is).
async fn charge(
    shard: &Shard,
    user_id: u64,
    hits: Vec<CachedUpload>,
) -> Result<Vec<UploadRecord>, Refusal> {
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let count = hits.len();
    let records = shard.store.borrow_mut()?.record_cache_hits(user_id, hits)?;
    assert_eq!(records.len(), count);
    if shard.commit.durable().await.is_err() {
        // The disk failed (storage.rs logs why, once): the answers are not given, and the
        // charges that reached the disk are refunded when the store is reopened, as for an
        // upload whose reservation failed to sync: a refused request costs nothing.
        for record in &records {
            shard.store.withdraw_at_reopen(record.id);
        }
        return Err(storage_unavailable());
    }
    let mut metrics = shard.metrics();
    metrics.results_done += count as u64;
    metrics.results_cache_hits += count as u64;
    Ok(records)
}

/// The upload record a hit becomes: its kind's price, its model, the answer as stored.
fn cached_upload(
    shard: &Shard,
    lookup: &Lookup,
    answer: &JobAnswer,
    soft_id: &Option<String>,
    now_ms: u64,
) -> CachedUpload {
    let config = shard.config();
    let cost = match lookup.key.kind() {
        Kind::Ocr => config.uploads.upload_cost,
        Kind::Detect => config.uploads.detect_cost,
        Kind::Slide => config.uploads.slide_cost,
    };
    let (text, confidence) = stored_answer(answer);
    CachedUpload {
        upload: NewUpload {
            cost,
            model: record_model_of_key(&lookup.key.task),
            soft_id: soft_id.clone(),
            image_hash: lookup.key.prefix(),
            now_ms,
        },
        text,
        confidence: confidence.unwrap_or(f32::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_64_hex_characters_in_either_case() {
        let hex = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        assert_eq!(
            parse_hex(hex),
            Some(crate::recognition::cache::digest(b"abc"))
        );
        assert_eq!(parse_hex(&hex.to_lowercase()), parse_hex(hex));
        assert_eq!(parse_hex(&hex[..62]), None);
        assert_eq!(parse_hex(&format!("{}zz", &hex[..62])), None);
        // A multi-byte character where a hex pair should be is refused, not a panic.
        assert_eq!(parse_hex(&format!("é{}", &hex[..62])), None);
    }

    #[test]
    fn lookups_name_their_kind_options_and_slides_both_hashes() {
        let models = ["old".to_string(), "beta".to_string()];
        let hash = "ab".repeat(32);
        let lookup = |value: Value| parse_lookup(&value, &models);
        let plain = lookup(json!({ "hash": hash })).unwrap();
        assert_eq!(
            plain.key,
            CacheKey::ocr(parse_hex(&hash).unwrap(), Default::default())
        );
        let beta =
            lookup(json!({ "hash": hash, "options": {"model": "beta", "png_fix": true} })).unwrap();
        assert_ne!(beta.key, plain.key);
        let detect = lookup(json!({ "hash": hash, "options": {"kind": "detect"} })).unwrap();
        assert_eq!(detect.key.kind(), Kind::Detect);
        let slide = json!({ "hash": hash, "background_hash": "cd".repeat(32),
                            "options": {"kind": "slide", "mode": "simple"} });
        let slide = lookup(slide).unwrap();
        assert_eq!(slide.key.task, TaskKey::Slide(SlideMode::Simple));
        assert_ne!(
            slide.key.digest, plain.key.digest,
            "a slide hashes both images"
        );
        let code = |value: Value| lookup(value).err().map(|refusal| refusal.error);
        assert_eq!(code(json!({ "hash": "12" })), Some(ApiError::Malformed));
        assert_eq!(code(json!({ "options": {} })), Some(ApiError::Malformed));
        assert_eq!(code(json!([1])), Some(ApiError::Malformed));
        assert_eq!(
            code(json!({ "hash": hash, "options": {"model": "nope"} })),
            Some(ApiError::UnknownModel)
        );
        assert_eq!(
            code(json!({ "hash": hash, "options": {"kind": "sound"} })),
            Some(ApiError::InvalidOption)
        );
        assert_eq!(
            code(json!({ "hash": hash, "options": {"kind": "slide"} })),
            Some(ApiError::Malformed),
            "a slide needs background_hash"
        );
        assert_eq!(
            code(json!({ "hash": hash, "options": {"png_fix": [1]} })),
            Some(ApiError::Malformed)
        );
    }
}
