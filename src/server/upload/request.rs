//! Step 1 of an upload: read the request where it arrived, check it, and hand the owner a
//! typed [`UploadRequest`]. Everything here is refused before anything is charged.

use super::Encoding;
use crate::config::Config;
use crate::contract::{self, ApiError};
use crate::engine::custom::is_model_name;
use crate::engine::search::text::MAX_CHARS_LIMIT;
use crate::engine::{
    probe_image, AnswerConstraints, CharsetRange, ColorFilter, Reading, RecognizeOptions,
    SlideMode, CLICK_MODEL,
};
use crate::recognition::cache::CacheKey;
use crate::recognition::{ClickHint, Kind, Task};
use crate::server::call::{Call, ForwardedFrom};
use crate::server::fields::{body_kind, BodyKind, Fields};
use crate::server::reply::{malformed, Refusal};
use crate::server::shard::FinishHook;
use crate::store::NewUpload;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Longest `soft_id` accepted.
pub const MAX_SOFT_ID_BYTES: usize = 64;
/// Fields that may carry the image (the original platform's name, then ddddocr's).
const IMAGE_FIELDS: [&str; 2] = ["file", "image"];
/// Fields that may carry a slide's two images (the contract's names, then ddddocr-fastapi's
/// file parts).
const TARGET_FIELDS: [&str; 2] = ["target", "target_file"];
const BACKGROUND_FIELDS: [&str; 2] = ["background", "background_file"];

/// A checked upload, ready for the owner shard: known image formats within the bounds (from
/// their headers), a known model, valid options.
pub struct UploadRequest {
    /// What to run, with its images.
    pub task: Task,
    pub soft_id: Option<String>,
    pub wait: bool,
    /// Already capped at `wait_timeout_ms_max`.
    pub timeout_ms: u64,
    /// Checked when the answer is back (none on `/v2`; the compat protocols' hints).
    pub constraints: AnswerConstraints,
    /// Run on the owner shard when the upload finishes (the compat protocols' callbacks).
    pub on_finish: Option<FinishHook>,
    /// Set when another node forwarded the request: its charge waits for that node's
    /// acknowledgement of the answer (server/forward_acks.rs).
    pub forwarded: Option<ForwardedFrom>,
}

impl UploadRequest {
    /// A `/v2` upload of `kind`: `/v2/decode/upload(-base64)`, `/v2/decode/detect`,
    /// `/v2/decode/slide`.
    pub fn parse(call: &Call, kind: Kind, encoding: Encoding) -> Result<UploadRequest, Refusal> {
        let (fields, raw_body) = read_fields(call, encoding)?;
        UploadRequest::from_fields(call, kind, fields, raw_body)
    }

    /// An upload of `kind` from its fields (and its raw body, when that is the image): what
    /// `/v2` reads from a request, and the MCP tools from their arguments.
    pub fn from_fields(
        call: &Call,
        kind: Kind,
        mut fields: Fields,
        raw_body: Option<Vec<u8>>,
    ) -> Result<UploadRequest, Refusal> {
        let config = call.shard.config();
        let task = match kind {
            Kind::Ocr => {
                let image = one_image(&mut fields, raw_body, config.images.max_image_bytes)?;
                check_image_size(&image, config.images.max_image_bytes)?;
                let options = recognize_options(&fields, &call.shard.shared.models)?;
                Task::Ocr { image, options }
            }
            Kind::Detect => {
                let image = one_image(&mut fields, raw_body, config.images.max_image_bytes)?;
                Task::Detect { image }
            }
            Kind::Slide => slide_task(&mut fields, config.images.max_image_bytes)?,
        };
        let soft_id = soft_id(&fields)?;
        let timeout_ms = fields
            .number("timeout_ms")?
            .unwrap_or(config.uploads.wait_timeout_ms_default);
        let wait = fields.flag("wait", false)?;
        check_query_options(call, kind)?;
        let request = UploadRequest {
            task,
            soft_id,
            wait,
            timeout_ms,
            constraints: AnswerConstraints::default(),
            on_finish: None,
            forwarded: call.forwarded,
        };
        request.checked(call)
    }

    /// What the store records of this upload when it is accepted now: its kind's price, its
    /// model, soft_id and image hash (`key` is its answer cache key).
    pub fn new_upload(&self, config: &Config, key: &CacheKey) -> NewUpload {
        let cost = match self.task.kind() {
            Kind::Ocr => config.uploads.upload_cost,
            Kind::Detect => config.uploads.detect_cost,
            Kind::Slide => config.uploads.slide_cost,
        };
        NewUpload {
            cost,
            model: super::record_model(&self.task),
            soft_id: self.soft_id.clone(),
            image_hash: key.prefix(),
            now_ms: crate::clock::unix_now_ms(),
        }
    }

    /// An upload another protocol read is checked here like a `/v2` upload: its images'
    /// sizes, its model, then their formats and dimensions from the headers.
    pub fn checked(mut self, call: &Call) -> Result<UploadRequest, Refusal> {
        let config = call.shard.config();
        let limits = config.images.image_limits();
        let probe = |image: &[u8]| -> Result<(), Refusal> {
            check_image_size(image, config.images.max_image_bytes)?;
            probe_image(image, &limits)
                .map(|_| ())
                .map_err(|error| Refusal::new(contract::of_image(&error), error.to_string()))
        };
        match &self.task {
            Task::Ocr { image, options } => {
                check_image_size(image, config.images.max_image_bytes)?;
                check_model_shape(&options.model, &call.shard.shared.models)?;
                probe(image)?;
            }
            Task::Detect { image } => {
                check_detection_installed(call)?;
                probe(image)?;
            }
            Task::Click { image, hint, .. } => {
                check_detection_installed(call)?;
                if !call.shard.shared.models.iter().any(|m| m == CLICK_MODEL) {
                    return Err(Refusal::new(
                        ApiError::UnknownModel,
                        format!("the {CLICK_MODEL} model is not installed on this server"),
                    ));
                }
                probe(image)?;
                if let ClickHint::Image(hint_image) = hint {
                    probe(hint_image)?;
                }
            }
            Task::Slide {
                target, background, ..
            } => {
                probe(target)?;
                probe(background)?;
            }
        }
        self.timeout_ms = self.timeout_ms.min(config.uploads.wait_timeout_ms_max);
        Ok(self)
    }
}

/// 3005 when this server has no detection model (click captchas).
fn check_detection_installed(call: &Call) -> Result<(), Refusal> {
    match call.shard.shared.detection_installed {
        true => Ok(()),
        false => Err(Refusal::new(
            ApiError::UnknownModel,
            "the detection model is not installed on this server",
        )),
    }
}

/// 3005 for a model that is neither the server's own nor shaped as a user's model's name.
/// Which user model a name means is decided on the owner shard (`accept.rs`), which knows
/// the caller: a name that is no model of theirs nor public is 3005 there.
fn check_model_shape(model: &str, builtin: &[String]) -> Result<(), Refusal> {
    if builtin.iter().any(|b| b == model) || is_model_name(model) {
        return Ok(());
    }
    Err(Refusal::new(
        ApiError::UnknownModel,
        format!("unknown model {model:?}"),
    ))
}

/// The query's options on their own. Where the body carries the same field, the body's value
/// wins; the query's is checked all the same, so that a bad value is refused wherever a
/// request gives it.
fn check_query_options(call: &Call, kind: Kind) -> Result<(), Refusal> {
    if call.head.query.is_empty() {
        return Ok(());
    }
    let query = Fields::from_query(&call.head.query)?;
    match kind {
        Kind::Ocr => drop(recognize_options(&query, &call.shard.shared.models)?),
        Kind::Slide => drop(slide_mode(&query)?),
        Kind::Detect => {}
    }
    soft_id(&query)?;
    query.number("timeout_ms")?;
    query.flag("wait", false)?;
    Ok(())
}

/// 3001 empty, 3002 beyond `max_image_bytes`.
pub(super) fn check_image_size(image: &[u8], max_image_bytes: usize) -> Result<(), Refusal> {
    if image.is_empty() {
        return Err(ApiError::NoImage.into());
    }
    if image.len() > max_image_bytes {
        return Err(too_large(max_image_bytes));
    }
    Ok(())
}

/// The request's fields, and its raw body when that is the image: on the file route, a body
/// that is not a form (its options then come from the query).
pub(super) fn read_fields(
    call: &Call,
    encoding: Encoding,
) -> Result<(Fields, Option<Vec<u8>>), Refusal> {
    let kind = body_kind(call.head.content_type.as_deref(), &call.body);
    if kind == BodyKind::Other && encoding == Encoding::FileOrRaw {
        return Ok((
            Fields::from_query(&call.head.query)?,
            Some(call.body.clone()),
        ));
    }
    Ok((call.fields()?, None))
}

/// The raw body, else a file part or a base64 field named `file`/`image`.
pub(crate) fn one_image(
    fields: &mut Fields,
    raw_body: Option<Vec<u8>>,
    max_image_bytes: usize,
) -> Result<Vec<u8>, Refusal> {
    match raw_body {
        Some(body) => Ok(body),
        None => image_from_fields(fields, &IMAGE_FIELDS, max_image_bytes),
    }
}

/// A slide's two images (`target`, `background`: file parts or base64) and its `mode`.
pub(crate) fn slide_task(fields: &mut Fields, max_image_bytes: usize) -> Result<Task, Refusal> {
    let mode = slide_mode(fields)?;
    let target = image_from_fields(fields, &TARGET_FIELDS, max_image_bytes)?;
    let background = image_from_fields(fields, &BACKGROUND_FIELDS, max_image_bytes)?;
    check_image_size(&target, max_image_bytes)?;
    check_image_size(&background, max_image_bytes)?;
    Ok(Task::Slide {
        target,
        background,
        mode,
    })
}

/// A slide's `mode` (`match` when absent or empty).
pub fn slide_mode(fields: &Fields) -> Result<SlideMode, Refusal> {
    match fields
        .text("mode")
        .map(str::trim)
        .filter(|mode| !mode.is_empty())
    {
        None => Ok(SlideMode::Match),
        Some(text) => SlideMode::parse(text).ok_or_else(|| {
            Refusal::new(
                ApiError::InvalidOption,
                format!("mode {text:?}: expected match, simple or comparison"),
            )
        }),
    }
}

/// A text captcha's options (`model`, `png_fix`, `probability`, `charset_range`, `colors`,
/// `color_ranges`, and how the answer is read: `math`, or the constraints `numeric`,
/// `min_len`, `max_len`, `case_insensitive`): an upload's, and a hash lookup's.
pub fn recognize_options(fields: &Fields, models: &[String]) -> Result<RecognizeOptions, Refusal> {
    let model = fields
        .text("model")
        .filter(|m| !m.is_empty())
        .unwrap_or("old")
        .to_string();
    check_model_shape(&model, models)?;
    let charset_range = match fields.text("charset_range") {
        None => None,
        Some(text) => Some(
            CharsetRange::parse(text)
                .ok_or_else(|| malformed("charset_range must not be empty"))?,
        ),
    };
    let colors = fields.text("colors").filter(|text| !text.is_empty());
    let ranges = fields.text("color_ranges").filter(|text| !text.is_empty());
    let color_filter = ColorFilter::from_options(colors, ranges)
        .map_err(|error| Refusal::new(contract::of_color_filter(&error), error.to_string()))?;
    Ok(RecognizeOptions {
        model,
        custom: None,
        png_fix: fields.flag("png_fix", false)?,
        probability: fields.flag("probability", false)?,
        charset_range,
        color_filter,
        reading: reading(fields)?,
    })
}

/// `math=1` (an arithmetic captcha, answered with its value), else the best answer that
/// meets the constraints, else ddddocr's (engine/search).
fn reading(fields: &Fields) -> Result<Reading, Refusal> {
    let invalid = |message: String| Refusal::new(ApiError::InvalidOption, message);
    let numeric = fields.number("numeric")?.unwrap_or(0);
    if numeric > 4 {
        return Err(invalid(format!("numeric {numeric}: expected 0 to 4")));
    }
    let length = |name: &str| -> Result<usize, Refusal> {
        match fields.number(name)?.unwrap_or(0) {
            n if n > MAX_CHARS_LIMIT as u64 => {
                Err(invalid(format!("{name} {n}: at most {MAX_CHARS_LIMIT}")))
            }
            n => Ok(n as usize),
        }
    };
    let (min_chars, max_chars) = (length("min_len")?, length("max_len")?);
    if max_chars > 0 && min_chars > max_chars {
        return Err(invalid(format!(
            "min_len {min_chars} is above max_len {max_chars}"
        )));
    }
    let case_insensitive = fields.flag("case_insensitive", false)?;
    let constrained =
        Reading::of_constraints(numeric as u8, min_chars, max_chars, case_insensitive);
    match fields.flag("math", false)? {
        false => Ok(constrained),
        true if constrained == Reading::Plain => Ok(Reading::Math),
        true => Err(invalid(
            "math takes no constraints (numeric, min_len, max_len, case_insensitive)".into(),
        )),
    }
}

pub(crate) fn soft_id(fields: &Fields) -> Result<Option<String>, Refusal> {
    let soft_id = fields.text("soft_id").filter(|s| !s.is_empty());
    if soft_id.is_some_and(|s| s.len() > MAX_SOFT_ID_BYTES) {
        return Err(malformed(format!(
            "soft_id longer than {MAX_SOFT_ID_BYTES} bytes"
        )));
    }
    Ok(soft_id.map(str::to_string))
}

fn too_large(max_image_bytes: usize) -> Refusal {
    Refusal::new(
        ApiError::TooLarge,
        format!("image larger than {max_image_bytes} bytes"),
    )
}

/// A binary file part of one of `names`, else a base64 text field of one of them.
pub(super) fn image_from_fields(
    fields: &mut Fields,
    names: &[&str],
    max_image_bytes: usize,
) -> Result<Vec<u8>, Refusal> {
    for name in names {
        if let Some(bytes) = fields.take_file(name) {
            return Ok(bytes);
        }
    }
    for name in names {
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
