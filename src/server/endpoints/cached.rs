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
use crate::recognition::cache::{slide_digest_of, CacheKey, ImageDigest, TaskKey};
use crate::recognition::{JobAnswer, Kind};
use crate::server::cache::lookup_many;
use crate::server::call::{Call, Caller, ForwardedFrom};
use crate::server::fields::Fields;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{busy, malformed, ok, shutting_down, ApiResult, Refusal};
use crate::server::shard::{HopError, Shard};
use crate::server::upload::{
    recognize_options, record_hits_durably, record_model_of_key, slide_mode, stored_answer,
    upload_json, MAX_SOFT_ID_BYTES,
};
use crate::store::{CachedUpload, NewUpload};
use serde_json::{json, Map, Value};
use std::rc::Rc;

/// The fields of one lookup (at the top level of a body without `lookups`).
const LOOKUP_FIELDS: [&str; 3] = ["hash", "background_hash", "options"];

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
    let lookup = CachedLookup {
        caller,
        request,
        forwarded: call.forwarded,
    };
    let results = run_on_owner(call.shard, lookup).await?;
    Ok(ok(&json!({ "results": results })))
}

fn parse(call: &Call) -> Result<LookupRequest, Refusal> {
    let config = call.shard.config();
    parse_body(
        &call.body,
        config.cache.cache_lookup_max,
        &call.shard.shared.models,
    )
}

/// The body: `{"lookups": [...], "soft_id"?}`, or one lookup's fields on their own.
fn parse_body(
    body: &[u8],
    cache_lookup_max: usize,
    models: &[String],
) -> Result<LookupRequest, Refusal> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| malformed("the body must be JSON: {\"lookups\": [{\"hash\": ...}]}"))?;
    let Value::Object(mut body) = value else {
        return Err(malformed("the JSON body must be an object"));
    };
    let soft_id = soft_id(body.get("soft_id"))?;
    let items = match body.remove("lookups") {
        // A lookup's fields beside `lookups` would be ignored: refused instead, as unclear.
        Some(_) if LOOKUP_FIELDS.iter().any(|name| body.contains_key(*name)) => {
            return Err(malformed(
                "lookups, or the fields of one lookup at the top level: not both",
            ))
        }
        Some(Value::Array(items)) => items,
        Some(_) => return Err(malformed("lookups must be a list")),
        // One lookup on its own: the body is the lookup.
        None if body.contains_key("hash") => vec![Value::Object(body)],
        None => return Err(malformed("missing field lookups")),
    };
    if items.is_empty() || items.len() > cache_lookup_max {
        return Err(malformed(format!(
            "lookups must hold 1 to {cache_lookup_max} lookups"
        )));
    }
    let lookups = items
        .iter()
        .map(|item| parse_lookup(item, models))
        .collect::<Result<_, _>>()?;
    Ok(LookupRequest { lookups, soft_id })
}

fn soft_id(value: Option<&Value>) -> Result<Option<String>, Refusal> {
    match value {
        None => Ok(None),
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
        None => Map::new(),
        Some(Value::Object(options)) => options.clone(),
        Some(_) => return Err(malformed("options must be an object")),
    };
    let fields = Fields::from_json_object(options)?;
    // Every option is checked whatever the kind (an option the kind does not use must still
    // be one the API describes, as on the upload routes); the kind then keeps its own.
    let kind = lookup_kind(fields.text("kind"))?;
    let text_options = recognize_options(&fields, models)?;
    // Lookups by hash answer for the server's own models only: a user's model is resolved
    // where an upload is accepted (upload/accept.rs).
    if !models.contains(&text_options.model) {
        return Err(Refusal::new(
            ApiError::UnknownModel,
            format!("unknown model {:?}", text_options.model),
        ));
    }
    let mode = slide_mode(&fields)?;
    let background = match item.contains_key("background_hash") {
        true => Some(hash_field(item, "background_hash")?.1),
        false => None,
    };
    let key = match (kind, background) {
        (Kind::Ocr, _) => CacheKey::ocr(digest, text_options),
        (Kind::Detect, _) => CacheKey {
            digest,
            task: TaskKey::Detect,
        },
        (Kind::Slide, Some(background)) => CacheKey {
            digest: slide_digest_of(&digest, &background),
            task: TaskKey::Slide(mode),
        },
        (Kind::Slide, None) => return Err(malformed("a slide lookup needs background_hash")),
    };
    Ok(Lookup { hash, key })
}

/// A lookup's `kind` (default `ocr`).
fn lookup_kind(text: Option<&str>) -> Result<Kind, Refusal> {
    match text.unwrap_or("ocr") {
        "ocr" => Ok(Kind::Ocr),
        "detect" => Ok(Kind::Detect),
        "slide" => Ok(Kind::Slide),
        other => Err(Refusal::new(
            ApiError::InvalidOption,
            format!("kind {other:?}: expected ocr, detect or slide"),
        )),
    }
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

/// The lookups, run on the caller's shard (its rate bucket and ledger live there).
struct CachedLookup {
    caller: Caller,
    request: LookupRequest,
    /// Another node forwarded the request: its charges wait for that node's acknowledgement.
    forwarded: Option<ForwardedFrom>,
}

impl OwnerCommand for CachedLookup {
    type Output = Vec<Value>;

    fn owner(&self) -> u16 {
        self.caller.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Vec<Value>, Refusal> {
        answer(shard, self.caller.user_id, self.request, self.forwarded).await
    }
}

async fn answer(
    shard: Rc<Shard>,
    user_id: u64,
    request: LookupRequest,
    forwarded: Option<ForwardedFrom>,
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
    let records = record_hits_durably(&shard, user_id, hits, forwarded).await?;
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
    use crate::engine::SlideMode;

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
    fn a_body_holds_lookups_or_one_lookups_fields_not_both() {
        let models = ["old".to_string()];
        let hash = "ab".repeat(32);
        let parse = |body: Value| parse_body(body.to_string().as_bytes(), 4, &models);
        assert_eq!(parse(json!({ "hash": hash })).unwrap().lookups.len(), 1);
        let two = json!({ "lookups": [{ "hash": hash }, { "hash": hash }], "soft_id": "s" });
        assert_eq!(parse(two).unwrap().lookups.len(), 2);
        let null_soft_id = json!({ "hash": hash, "soft_id": null });
        assert_eq!(
            parse(null_soft_id).err().map(|refusal| refusal.error),
            Some(ApiError::Malformed)
        );
        for field in LOOKUP_FIELDS {
            let mixed = json!({ "lookups": [{ "hash": hash }], field: hash });
            assert_eq!(
                parse(mixed).err().map(|refusal| refusal.error),
                Some(ApiError::Malformed),
                "{field}"
            );
        }
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
        // Typed as the API describes them: no null for an object, no number for a string.
        assert_eq!(
            code(json!({ "hash": hash, "background_hash": "" })),
            Some(ApiError::Malformed),
            "checked whatever the kind"
        );
        assert_eq!(
            code(json!({ "hash": hash, "options": null })),
            Some(ApiError::Malformed)
        );
        assert_eq!(
            code(json!({ "hash": hash, "options": {"model": 5} })),
            Some(ApiError::Malformed)
        );
        // An option the kind does not use is still checked (the API describes its values).
        assert_eq!(
            code(json!({ "hash": hash, "options": {"mode": "AAA"} })),
            Some(ApiError::InvalidOption)
        );
        assert_eq!(
            code(json!({ "hash": hash, "options": {"kind": "detect", "charset_range": ""} })),
            Some(ApiError::Malformed)
        );
        assert_eq!(
            code(json!({ "hash": hash, "background_hash": hash,
                         "options": {"kind": "slide", "model": "nope"} })),
            Some(ApiError::UnknownModel)
        );
    }
}
