//! ddddocr-fastapi's `POST /ocr`, `/detection` and `/slide_match`. `/ocr`: form fields only (multipart or urlencoded), the image as
//! the file `file` or base64 `image` (a `data:` prefix is stripped), `probability`,
//! `charsets` (ddddocr's `set_ranges` with a string: the characters allowed), `png_fix`.
//! Every handled outcome is HTTP 200 with `{"code", "message", "data"}`, code 200 meaning
//! success.
//!
//! That server has no keys. Here the operator chooses: by default the request must carry an
//! API key (field `key`, or `Authorization: Bearer`); with `fastapi_account` set, requests
//! without a key are charged to that account. `charsets` applies to its own request only
//! (ddddocr-fastapi's sticks to the shared model and leaks into later requests).
//! With `probability`, `data` is `{"text", "confidence"}`: ddddocr 1.6.1 would add the whole
//! softmax matrix (8210 classes per step, over a megabyte of JSON per answer), which is not
//! sent.

use super::{caller_by_key, submit, submit_task, CompatUpload, KeyProblem, TaskExtras, Unserved};
use crate::contract::ApiError;
use crate::engine::{CharsetRange, SlideMode};
use crate::http::Response;
use crate::recognition::Task;
use crate::server::call::{Call, Caller, Credential};
use crate::server::fields::Fields;
use crate::server::queries::user_id_by_name;
use crate::server::reply::{ApiResult, Refusal};
use crate::server::upload::{decode_base64_image, Accepted, Finished};
use crate::store::{ids, Role, UploadStatus};
use serde_json::{json, Value};

fn answer(code: u16, message: &str, data: Value) -> Response {
    let body = json!({ "code": code, "message": message, "data": data });
    Response::json(200, body.to_string().into_bytes())
}

/// A refusal in ddddocr-fastapi's envelope.
pub fn refused(refusal: &Refusal) -> Response {
    answer(refusal.error.status(), &refusal.message, Value::Null)
}

/// `POST /ocr`.
pub async fn ocr(call: &Call<'_>) -> ApiResult {
    let (fields, caller, image) = match fields_caller_and_image(call).await {
        Ok(opened) => opened,
        Err(unserved) => return unserved.into_result(),
    };
    let mut upload = CompatUpload::new(call, image);
    let flag = |fields: &Fields, name| fields.flag(name, false);
    match (flag(&fields, "probability"), flag(&fields, "png_fix")) {
        (Ok(probability), Ok(png_fix)) => {
            upload.options.probability = probability;
            upload.options.png_fix = png_fix;
        }
        (Err(refusal), _) | (_, Err(refusal)) => return Ok(refused(&refusal)),
    }
    // aiocr's own field: a model of the server, or the caller's (or a public) model.
    if let Some(model) = fields
        .text("model")
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        upload.options.model = model.to_string();
    }
    if let Some(charsets) = fields.text("charsets").filter(|text| !text.is_empty()) {
        upload.options.charset_range = Some(CharsetRange::Characters(charsets.to_string()));
    }
    let probability = upload.options.probability;
    Ok(match submit(call, &caller, upload).await {
        Err(refusal) => refused(&refusal),
        Ok(Accepted::Pending(record)) => answer(
            504,
            &format!(
                "not answered within compat_wait_ms; poll /v2/result?id={}",
                record.id
            ),
            json!({ "id": record.id.to_string() }),
        ),
        Ok(Accepted::Finished(Finished { record, .. })) => match record.status {
            UploadStatus::Done => {
                let text = record.result.unwrap_or_default();
                let data = match record.confidence.filter(|c| c.is_finite()) {
                    Some(confidence) if probability => {
                        json!({ "text": text, "confidence": confidence })
                    }
                    _ => json!(text),
                };
                answer(200, "Success", data)
            }
            _ => answer(
                500,
                record.error.as_deref().unwrap_or("recognition failed"),
                Value::Null,
            ),
        },
    })
}

/// A request's fields and its caller, or the answer that refuses it.
async fn fields_and_caller(call: &Call<'_>) -> Result<(Fields, Caller), Unserved> {
    let fields = call.fields().map_err(|refusal| refused(&refusal))?;
    let caller = caller(call, &fields).await?;
    Ok((fields, caller))
}

/// `fields_and_caller`, and the one image of `/ocr` and `/detection`.
async fn fields_caller_and_image(call: &Call<'_>) -> Result<(Fields, Caller, Vec<u8>), Unserved> {
    let (mut fields, caller) = fields_and_caller(call).await?;
    let image = image(call, &mut fields)?;
    Ok((fields, caller, image))
}

/// The key's user, else the configured account, else the answer that says why not.
async fn caller(call: &Call<'_>, fields: &Fields) -> Result<Caller, Unserved> {
    let account = &call.shard.config().compat.fastapi_account;
    match caller_by_key(call, fields.text("key")).await {
        Ok(caller) => Ok(caller),
        Err(KeyProblem::Missing) if !account.is_empty() => {
            let user_id = user_id_by_name(call.shard, account)
                .await
                .map_err(|refusal| refused(&refusal))?;
            Ok(Caller {
                user_id,
                role: Role::User,
                owner: ids::shard_of(user_id),
                via: Credential::ApiKey,
            })
        }
        Err(KeyProblem::Missing) => {
            Err(answer(401, "an API key is required (field key)", Value::Null).into())
        }
        Err(KeyProblem::Malformed | KeyProblem::Unknown) => {
            Err(answer(401, "invalid API key", Value::Null).into())
        }
        Err(KeyProblem::AtNode(node)) => Err(Unserved::AtNode(node)),
        Err(KeyProblem::Refused(refusal)) => Err(refused(&refusal).into()),
    }
}

/// The file `file`, else the base64 field `image`.
fn image(call: &Call, fields: &mut Fields) -> Result<Vec<u8>, Response> {
    if let Some(bytes) = fields.take_file("file") {
        return Ok(bytes);
    }
    let Some(text) = fields.text("image").filter(|text| !text.is_empty()) else {
        return Err(answer(
            400,
            "Either file or image must be provided",
            Value::Null,
        ));
    };
    let max_image_bytes = call.shard.config().images.max_image_bytes;
    decode_base64_image(text, max_image_bytes).map_err(|refusal| match refusal.error {
        ApiError::NotAnImage => answer(500, "Invalid base64 string", Value::Null),
        _ => refused(&refusal),
    })
}

/// The JSON answer of a finished detection or slide (stored as ddddocr's JSON).
fn finished_json(accepted: Accepted) -> Response {
    match accepted {
        Accepted::Pending(record) => answer(
            504,
            &format!(
                "not answered within compat_wait_ms; poll /v2/result?id={}",
                record.id
            ),
            json!({ "id": record.id.to_string() }),
        ),
        Accepted::Finished(Finished { record, .. }) => match record.status {
            UploadStatus::Done => {
                let text = record.result.unwrap_or_default();
                let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
                answer(200, "Success", data)
            }
            _ => answer(
                500,
                record.error.as_deref().unwrap_or("failed"),
                Value::Null,
            ),
        },
    }
}

/// `POST /detection`: `file` or base64 `image`; `data` is ddddocr's boxes.
pub async fn detection(call: &Call<'_>) -> ApiResult {
    let (_, caller, image) = match fields_caller_and_image(call).await {
        Ok(opened) => opened,
        Err(unserved) => return unserved.into_result(),
    };
    let task = Task::Detect { image };
    Ok(
        match submit_task(call, &caller, task, TaskExtras::default()).await {
            Ok(accepted) => finished_json(accepted),
            Err(refusal) => refused(&refusal),
        },
    )
}

/// `POST /slide_match`: `target_file` + `background_file` (files) or `target` + `background`
/// (base64), `simple_target`; `data` is ddddocr's slide dict. (ddddocr-fastapi fails on the
/// base64 pair; here both ways work.)
pub async fn slide_match(call: &Call<'_>) -> ApiResult {
    let (mut fields, caller) = match fields_and_caller(call).await {
        Ok(opened) => opened,
        Err(unserved) => return unserved.into_result(),
    };
    let max_image_bytes = call.shard.config().images.max_image_bytes;
    let mut one = |file: &str, text: &str| -> Result<Option<Vec<u8>>, Response> {
        if let Some(bytes) = fields.take_file(file).or_else(|| fields.take_file(text)) {
            return Ok(Some(bytes));
        }
        match fields.text(text).filter(|value| !value.is_empty()) {
            None => Ok(None),
            Some(value) => decode_base64_image(value, max_image_bytes)
                .map(Some)
                .map_err(|_| answer(500, "Invalid base64 string", Value::Null)),
        }
    };
    let pair = one("target_file", "target")
        .and_then(|target| Ok((target, one("background_file", "background")?)));
    let (target, background) = match pair {
        Ok((Some(target), Some(background))) => (target, background),
        Ok(_) => {
            let missing = "Both target and background must be provided";
            return Ok(answer(400, missing, Value::Null));
        }
        Err(answer) => return Ok(answer),
    };
    let mode = match fields.flag("simple_target", false) {
        Ok(true) => SlideMode::Simple,
        Ok(false) => SlideMode::Match,
        Err(refusal) => return Ok(refused(&refusal)),
    };
    let task = Task::Slide {
        target,
        background,
        mode,
    };
    Ok(
        match submit_task(call, &caller, task, TaskExtras::default()).await {
            Ok(accepted) => finished_json(accepted),
            Err(refusal) => refused(&refusal),
        },
    )
}
