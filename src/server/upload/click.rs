//! Step 1 of a click-in-order upload (`POST /v2/decode/click`): the image, and what to click
//! (`hint`: the characters in order, or `hint_image`: an image of them; neither: every box
//! in reading order), `rectangles=1` for the boxes instead of their centres. Checked here,
//! before anything is charged; the rest is an upload's (accept, finish, wait).

use super::request::{check_image_size, image_from_fields, one_image, read_fields, soft_id};
use super::{Encoding, UploadRequest};
use crate::engine::AnswerConstraints;
use crate::recognition::{ClickHint, Task};
use crate::server::call::Call;
use crate::server::fields::Fields;
use crate::server::reply::Refusal;

/// The fields that may carry the hint image (a file part, or base64).
const HINT_IMAGE_FIELDS: [&str; 1] = ["hint_image"];

/// A click upload's request: the image from `file`/`image` (or the raw body, the options then
/// in the query), the hint, `rectangles`, and an upload's `soft_id`, `wait`, `timeout_ms`.
pub fn parse(call: &Call) -> Result<UploadRequest, Refusal> {
    let (fields, raw_body) = read_fields(call, Encoding::FileOrRaw)?;
    from_fields(call, fields, raw_body)
}

/// A click upload from its fields: the `/v2` request's, or the MCP `click` tool's arguments
/// (the same names).
pub fn from_fields(
    call: &Call,
    mut fields: Fields,
    raw_body: Option<Vec<u8>>,
) -> Result<UploadRequest, Refusal> {
    let config = call.shard.config();
    let max_image_bytes = config.images.max_image_bytes;
    let image = one_image(&mut fields, raw_body, max_image_bytes)?;
    check_image_size(&image, max_image_bytes)?;
    let hint = hint(&mut fields, max_image_bytes)?;
    let rectangles = fields.flag("rectangles", false)?;
    let request = UploadRequest {
        task: Task::Click {
            image,
            hint,
            rectangles,
        },
        soft_id: soft_id(&fields)?,
        wait: fields.flag("wait", false)?,
        timeout_ms: fields
            .number("timeout_ms")?
            .unwrap_or(config.uploads.wait_timeout_ms_default),
        constraints: AnswerConstraints::default(),
        on_finish: None,
        forwarded: call.forwarded,
    };
    check_query(call)?;
    request.checked(call)
}

/// `hint` (text), else `hint_image`, else neither. With both (2captcha's clients may send
/// `textinstructions` and `imginstructions` together), the text is read: it is exact, an
/// image is read by the model.
fn hint(fields: &mut Fields, max_image_bytes: usize) -> Result<ClickHint, Refusal> {
    let text = fields
        .text("hint")
        .map(str::trim)
        .filter(|text| !text.is_empty());
    if let Some(text) = text {
        return Ok(ClickHint::Text(text.to_string()));
    }
    let has_image = fields.has_file(HINT_IMAGE_FIELDS[0])
        || fields
            .text(HINT_IMAGE_FIELDS[0])
            .is_some_and(|text| !text.trim().is_empty());
    if !has_image {
        return Ok(ClickHint::Nothing);
    }
    let image = image_from_fields(fields, &HINT_IMAGE_FIELDS, max_image_bytes)?;
    check_image_size(&image, max_image_bytes)?;
    Ok(ClickHint::Image(image))
}

/// The query's options on their own, checked wherever a request gives them (the body's
/// value wins where both do).
fn check_query(call: &Call) -> Result<(), Refusal> {
    if call.head.query.is_empty() {
        return Ok(());
    }
    let query = Fields::from_query(&call.head.query)?;
    soft_id(&query)?;
    query.number("timeout_ms")?;
    query.flag("wait", false)?;
    query.flag("rectangles", false)?;
    Ok(())
}
