//! 2captcha's click captchas (`coordinatescaptcha=1`): the instruction as text
//! (`textinstructions`) or an image (`imginstructions`, a file part or base64), run as a
//! click-in-order upload (upload/click.rs's task), and the answer in 2captcha's words:
//! `OK|coordinates:x=39,y=59;x=252,y=72`, with `json=1` `[{"x":"39","y":"59"},...]`.

use crate::recognition::{ClickHint, Task};
use crate::server::fields::Fields;
use crate::server::upload::decode_base64_image;
use serde_json::{json, Value};

const IMAGE_INSTRUCTIONS: &str = "imginstructions";

/// The click task of `image` with the request's instructions (the text when both come: it is
/// exact); `Err` is a text for `ERROR_BAD_PARAMETERS`.
pub fn click_task(
    fields: &mut Fields,
    image: Vec<u8>,
    max_image_bytes: usize,
) -> Result<Task, String> {
    let text = fields
        .text("textinstructions")
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string);
    let hint = match text {
        Some(text) => ClickHint::Text(text),
        None => match fields.take_file(IMAGE_INSTRUCTIONS) {
            Some(bytes) => ClickHint::Image(bytes),
            None => match fields
                .text(IMAGE_INSTRUCTIONS)
                .filter(|t| !t.trim().is_empty())
            {
                Some(text) => ClickHint::Image(
                    decode_base64_image(text, max_image_bytes).map_err(|r| r.message)?,
                ),
                None => ClickHint::Nothing,
            },
        },
    };
    Ok(Task::Click {
        image,
        hint,
        rectangles: false,
    })
}

/// A click upload's stored result (`[[x, y], ...]`) as 2captcha writes it: the plain text
/// after `OK|`, and the JSON `request`.
pub fn answer_of(result: &str) -> (String, Value) {
    let points: Vec<[i64; 2]> = serde_json::from_str(result).unwrap_or_default();
    let plain: Vec<String> = points.iter().map(|[x, y]| format!("x={x},y={y}")).collect();
    let json: Vec<Value> = points
        .iter()
        .map(|[x, y]| json!({ "x": x.to_string(), "y": y.to_string() }))
        .collect();
    (
        format!("coordinates:{}", plain.join(";")),
        Value::Array(json),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_in_2captchas_words() {
        let (plain, json) = answer_of("[[39,59],[252,72]]");
        assert_eq!(plain, "coordinates:x=39,y=59;x=252,y=72");
        assert_eq!(
            json,
            json!([{"x": "39", "y": "59"}, {"x": "252", "y": "72"}])
        );
    }
}
