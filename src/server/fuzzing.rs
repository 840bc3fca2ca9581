//! Entry points for the cargo-fuzz targets `protocol_fields` and `protocol_task` (fuzz/,
//! docs/fuzzing.md): everything a request's bytes reach in each protocol the server speaks
//! before a shard is asked for anything, from bytes to the typed values the handlers use,
//! without a shard or a socket. The targets assert only that nothing panics and that every
//! refusal is one of the contract's; the parsers' own round trips are fuzzed in `http_*`.
//! Not an API: the functions here call the handlers' own parsing functions, never copies.

use super::compat::{self, callbacks::CallbackTarget, tasks, twocaptcha};
use super::fields::{body_kind, Fields, JsonTyping};
use super::upload::request;
use serde_json::Value;

/// The most an image field may decode to in these runs (the default `max_image_bytes`).
const MAX_IMAGE_BYTES: usize = 512 * 1024;

/// A request's fields (its query, then a JSON, urlencoded or multipart body) read as every
/// protocol reads them: `/v2` upload options and slides, the typed numbers and flags of the
/// other `/v2` endpoints, 2captcha's hints and ids, ddddocr-fastapi's image fields.
pub fn read_fields(query: &str, content_type: Option<&str>, body: &[u8]) {
    // A JSON body as `/v2` types it, and as the other protocols read it.
    for typing in [JsonTyping::Described, JsonTyping::Lenient] {
        let Ok(mut fields) = Fields::from_query(query) else {
            return;
        };
        let kind = body_kind(content_type, body);
        if fields.add_body(kind, content_type, body, typing).is_ok() {
            read_every_protocols_fields(&mut fields);
        }
    }
}

fn read_every_protocols_fields(fields: &mut Fields) {
    let models = ["old".to_string(), "beta".to_string()];
    let _ = request::recognize_options(fields, &models);
    let _ = request::soft_id(fields);
    for name in ["timeout_ms", "days", "page", "limit", "points", "numeric"] {
        let _ = fields.number(name);
    }
    for name in ["wait", "json", "probability", "png_fix", "header_acao"] {
        let _ = fields.flag(name, false);
    }
    let _ = fields.id("id");
    let _ = twocaptcha::hints(fields);
    if let Some(ids) = fields.text("ids") {
        for id in ids.split(',') {
            let _ = compat::parse_id(id);
        }
    }
    if let Some(url) = fields.text("pingback") {
        let _ = CallbackTarget::parse(url, &[]);
    }
    let _ = request::slide_task(fields, MAX_IMAGE_BYTES);
    let _ = request::one_image(fields, None, MAX_IMAGE_BYTES);
}

/// A JSON task-protocol body (`/createTask` and the rest) read as its handlers read it.
pub fn read_task(body: &[u8]) {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if let Some(id) = object.get("taskId").and_then(Value::as_str) {
        let _ = compat::parse_id(id);
    }
    if let Some(url) = object.get("callbackUrl").and_then(Value::as_str) {
        let _ = CallbackTarget::parse(url, &[]);
    }
    let Some(task) = object.get("task").and_then(Value::as_object) else {
        return;
    };
    let _ = tasks::hints(task);
    if let Some(text) = task.get("body").and_then(Value::as_str) {
        let _ = request::decode_base64_image(text, MAX_IMAGE_BYTES);
    }
}
