//! 2captcha's API v1: `POST /in.php` submits an image, `GET|POST /res.php` answers the rest
//! (`get`, `get` with `ids`, `get2`, `getbalance`, `reportbad`, `reportgood`). Answers are
//! plain text (`OK|...`, `ERROR_...`) or, with `json=1`, `{"status", "request"}`; always HTTP
//! 200. `header_acao=1` adds `Access-Control-Allow-Origin: *`.

use super::callbacks::{Callback, CallbackBody, CallbackRefusal, CallbackTarget};
use super::{
    caller_by_key, coordinates, parse_id, submit, submit_task, CompatUpload, Hints, KeyProblem,
    Numeric, TaskExtras, Unserved,
};
use crate::contract::ApiError;
use crate::http::{RequestHead, Response};
use crate::server::call::{Call, Caller};
use crate::server::fields::Fields;
use crate::server::queries;
use crate::server::reply::{ApiResult, Refusal};
use crate::server::upload::{decode_base64_image, is_click_record};
use crate::store::{UploadRecord, UploadStatus};
use serde_json::json;

/// Images below this are refused as empty, as 2captcha refuses them.
const MIN_IMAGE_BYTES: usize = 100;
/// Most ids one `res.php?action=get&ids=` asks for.
const MAX_IDS: usize = 100;
const NOT_READY: &str = "CAPCHA_NOT_READY";
const UNSOLVABLE: &str = "ERROR_CAPTCHA_UNSOLVABLE";

/// How answers are written: plain text or JSON, with or without the CORS header.
#[derive(Clone, Copy)]
struct Format {
    json: bool,
    allow_any_origin: bool,
}

impl Format {
    fn of(fields: &Fields) -> Format {
        let on = |name| fields.text(name).is_some_and(|value| value.trim() == "1");
        Format {
            json: on("json"),
            allow_any_origin: on("header_acao"),
        }
    }

    /// `OK|<request>` / `{"status":1,"request":"<request>"}`.
    fn ok(self, request: &str) -> Response {
        self.answer(
            format!("OK|{request}"),
            json!({ "status": 1, "request": request }),
        )
    }

    /// A bare value (`getbalance`, `CAPCHA_NOT_READY`, several `ids`).
    fn bare(self, status: u8, request: &str) -> Response {
        self.answer(
            request.to_string(),
            json!({ "status": status, "request": request }),
        )
    }

    fn error(self, code: &str, text: &str) -> Response {
        self.answer(
            code.to_string(),
            json!({ "status": 0, "request": code, "error_text": text }),
        )
    }

    fn answer(self, plain: String, json: serde_json::Value) -> Response {
        let answer = if self.json {
            Response::json(200, json.to_string().into_bytes())
        } else {
            Response::plain(200, plain.into_bytes())
        };
        if self.allow_any_origin {
            answer.with_header("Access-Control-Allow-Origin", "*".to_string())
        } else {
            answer
        }
    }

    /// A refusal of the shared path, in 2captcha's words.
    fn refusal(self, refusal: &Refusal) -> Response {
        let code = match refusal.error {
            ApiError::NoPoints => "ERROR_ZERO_BALANCE",
            // 2captcha clients wait and send again on "no slot": right for a full disk too.
            ApiError::Busy | ApiError::StorageUnavailable => "ERROR_NO_SLOT_AVAILABLE",
            ApiError::RateLimited => "MAX_USER_TURN",
            ApiError::NoImage => "ERROR_ZERO_CAPTCHA_FILESIZE",
            ApiError::TooLarge => "ERROR_TOO_BIG_CAPTCHA_FILESIZE",
            ApiError::NotAnImage | ApiError::BadDimensions => "ERROR_IMAGE_TYPE_NOT_SUPPORTED",
            ApiError::NoToken | ApiError::BadToken | ApiError::BadCredentials => {
                "ERROR_KEY_DOES_NOT_EXIST"
            }
            ApiError::NoSuchUpload => "ERROR_WRONG_CAPTCHA_ID",
            ApiError::RecognitionFailed | ApiError::Unsolvable => UNSOLVABLE,
            ApiError::Internal => "ERROR_INTERNAL_SERVER_ERROR",
            _ => "ERROR_BAD_PARAMETERS",
        };
        self.error(code, &refusal.message)
    }

    fn key_problem(self, problem: KeyProblem) -> Unserved {
        match problem {
            KeyProblem::Missing | KeyProblem::Malformed => self
                .error("ERROR_WRONG_USER_KEY", "the key is not a 32-character key")
                .into(),
            KeyProblem::Unknown => self.error("ERROR_KEY_DOES_NOT_EXIST", "no such key").into(),
            KeyProblem::AtNode(node) => Unserved::AtNode(node),
            KeyProblem::Refused(refusal) => self.refusal(&refusal).into(),
        }
    }
}

/// A refusal given from the request's head alone (its body unread), in 2captcha's words and
/// in the format its query asks for.
pub fn head_refusal(head: &RequestHead, refusal: &Refusal) -> Response {
    let format = Fields::from_query(&head.query).map_or(
        Format {
            json: false,
            allow_any_origin: false,
        },
        |fields| Format::of(&fields),
    );
    format.refusal(refusal)
}

/// The caller of `key`, or the answer that says why not.
async fn caller(call: &Call<'_>, fields: &Fields, format: Format) -> Result<Caller, Unserved> {
    caller_by_key(call, fields.text("key"))
        .await
        .map_err(|problem| format.key_problem(problem))
}

/// `POST /in.php`.
pub async fn submit_image(call: &Call<'_>) -> ApiResult {
    let Ok(mut fields) = call.fields() else {
        return Ok(Format::of(&Fields::default()).error("ERROR_UPLOAD", "malformed request"));
    };
    let format = Format::of(&fields);
    let caller = match caller(call, &fields, format).await {
        Ok(caller) => caller,
        Err(unserved) => return unserved.into_result(),
    };
    let upload = match read_upload(call, &mut fields) {
        Ok(upload) => upload,
        Err((code, text)) => return Ok(format.error(code, &text)),
    };
    let submitted = match fields.text("coordinatescaptcha").map(str::trim) == Some("1") {
        true => {
            let max_image_bytes = call.shard.config().images.max_image_bytes;
            let task = match coordinates::click_task(&mut fields, upload.image, max_image_bytes) {
                Ok(task) => task,
                Err(text) => return Ok(format.error("ERROR_BAD_PARAMETERS", &text)),
            };
            let extras = TaskExtras {
                soft_id: upload.soft_id,
                callback: upload.callback,
                ..TaskExtras::default()
            };
            submit_task(call, &caller, task, extras).await
        }
        false => submit(call, &caller, upload).await,
    };
    match submitted {
        Ok(accepted) => Ok(format.ok(&accepted.record().id.to_string())),
        Err(refusal) => Ok(format.refusal(&refusal)),
    }
}

/// The image (`method=post`: the file part `file`; `method=base64`: the field `body`) and the
/// hints; `Err` is 2captcha's error code and a text.
fn read_upload(call: &Call, fields: &mut Fields) -> Result<CompatUpload, (&'static str, String)> {
    let max_image_bytes = call.shard.config().images.max_image_bytes;
    let method = fields
        .text("method")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let image = match method.as_str() {
        "base64" => {
            let body = fields.text("body").unwrap_or("");
            match decode_base64_image(body, max_image_bytes) {
                Ok(image) => image,
                Err(refusal) if refusal.error == ApiError::TooLarge => {
                    return Err(("ERROR_TOO_BIG_CAPTCHA_FILESIZE", refusal.message))
                }
                Err(refusal) if refusal.error == ApiError::NoImage => Vec::new(),
                Err(refusal) => return Err(("ERROR_UPLOAD", refusal.message)),
            }
        }
        // `post` is the default: a file part `file` (any name, if it is the only file).
        "post" | "" => fields
            .take_file("file")
            .or_else(|| fields.take_any_file())
            .unwrap_or_default(),
        _ => {
            return Err((
                "ERROR_BAD_PARAMETERS",
                format!("method {method:?} is not supported"),
            ))
        }
    };
    if image.len() < MIN_IMAGE_BYTES {
        return Err((
            "ERROR_ZERO_CAPTCHA_FILESIZE",
            format!(
                "the image has {} bytes, fewer than {MIN_IMAGE_BYTES}",
                image.len()
            ),
        ));
    }
    let mut upload = CompatUpload::new(call, image);
    upload.hints = hints(fields).map_err(|text| ("ERROR_BAD_PARAMETERS", text))?;
    // aiocr's own field: a model of the server, or the caller's (or a public) model.
    if let Some(model) = fields
        .text("model")
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        upload.options.model = model.to_string();
    }
    upload.soft_id = fields
        .text("soft_id")
        .filter(|soft_id| !soft_id.is_empty() && soft_id.len() <= 64)
        .map(str::to_string);
    if let Some(url) = fields.text("pingback").filter(|url| !url.is_empty()) {
        let allowed = &call.shard.config().compat.callback_allow;
        let target = CallbackTarget::parse(url, allowed).map_err(|refusal| match refusal {
            CallbackRefusal::Malformed => (
                "ERROR_BAD_PARAMETERS",
                "pingback is not an http:// URL".to_string(),
            ),
            CallbackRefusal::NotAllowed => (
                "ERROR_BAD_PARAMETERS",
                "pingback destination not allowed by this server".to_string(),
            ),
        })?;
        upload.callback = Some(Callback {
            target,
            body: CallbackBody::Pingback,
        });
    }
    Ok(upload)
}

/// `numeric`, `min_len`, `max_len` (0 = no constraint), `calc` (1: an arithmetic captcha,
/// answered with its value); the hints for human workers are accepted and change nothing.
pub(crate) fn hints(fields: &Fields) -> Result<Hints, String> {
    let number = |name: &str| -> Result<u64, String> {
        match fields
            .text(name)
            .map(str::trim)
            .filter(|text| !text.is_empty())
        {
            None => Ok(0),
            Some(text) => text.parse().map_err(|_| format!("{name} must be a number")),
        }
    };
    let numeric =
        Numeric::from_code(number("numeric")?).ok_or("numeric must be 0, 1, 2, 3 or 4")?;
    let (min_len, max_len) = (number("min_len")?, number("max_len")?);
    if min_len > super::MAX_LENGTH_HINT || max_len > super::MAX_LENGTH_HINT {
        return Err(format!(
            "min_len and max_len must be 0..={}",
            super::MAX_LENGTH_HINT
        ));
    }
    if max_len > 0 && min_len > max_len {
        return Err("min_len is above max_len".into());
    }
    let math = match number("calc")? {
        0 => false,
        1 => true,
        _ => return Err("calc must be 0 or 1".into()),
    };
    Ok(Hints {
        numeric,
        min_chars: min_len as usize,
        max_chars: max_len as usize,
        min_confidence: None,
        math,
    })
}

/// `GET|POST /res.php`.
pub async fn results(call: &Call<'_>) -> ApiResult {
    let Ok(fields) = call.fields() else {
        return Ok(
            Format::of(&Fields::default()).error("ERROR_BAD_PARAMETERS", "malformed request")
        );
    };
    let format = Format::of(&fields);
    let caller = match caller(call, &fields, format).await {
        Ok(caller) => caller,
        Err(unserved) => return unserved.into_result(),
    };
    let action = fields
        .text("action")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let answer = match action.as_str() {
        "" => format.error("ERROR_EMPTY_ACTION", "no action"),
        "getbalance" => balance(call, &caller, format).await,
        "get" if fields.text("ids").is_some() => several(call, &caller, &fields, format).await,
        "get" => one(call, &caller, &fields, format, false).await,
        "get2" => one(call, &caller, &fields, format, true).await,
        "reportbad" => report(call, &caller, &fields, format, true).await,
        "reportgood" => report(call, &caller, &fields, format, false).await,
        _ => format.error("ERROR_BAD_PARAMETERS", "unknown action"),
    };
    Ok(answer)
}

async fn balance(call: &Call<'_>, caller: &Caller, format: Format) -> Response {
    match queries::balance_of(call.shard, caller).await {
        Ok(balance) => {
            let amount = call
                .shard
                .config()
                .compat
                .price_per_point
                .amount(balance.points, 5);
            format.bare(1, &amount)
        }
        Err(refusal) => format.refusal(&refusal),
    }
}

/// The upload `id` names, or the answer that says why there is none.
async fn named_upload(
    call: &Call<'_>,
    caller: &Caller,
    id: &str,
    format: Format,
) -> Result<UploadRecord, Response> {
    let upload_id = parse_id(id)
        .ok_or_else(|| format.error("ERROR_WRONG_ID_FORMAT", "the id is not a number"))?;
    queries::upload_of(call.shard, caller.user_id, upload_id)
        .await
        .map_err(|refusal| format.refusal(&refusal))
}

/// `get` and `get2` (`with_price`: `OK|text|price`).
async fn one(
    call: &Call<'_>,
    caller: &Caller,
    fields: &Fields,
    format: Format,
    with_price: bool,
) -> Response {
    let record = match named_upload(call, caller, fields.text("id").unwrap_or(""), format).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    match record.status {
        UploadStatus::Pending => format.bare(0, NOT_READY),
        UploadStatus::Failed => format.error(UNSOLVABLE, record.error.as_deref().unwrap_or("")),
        UploadStatus::Done if is_click_record(&record) => {
            let (plain, json) = coordinates::answer_of(record.result.as_deref().unwrap_or("[]"));
            format.answer(
                format!("OK|{plain}"),
                json!({ "status": 1, "request": json }),
            )
        }
        UploadStatus::Done if with_price => {
            let text = record.result.clone().unwrap_or_default();
            let price = call
                .shard
                .config()
                .compat
                .price_per_point
                .amount(record.cost, 5);
            let plain = format!("OK|{text}|{price}");
            let json = json!({ "status": 1, "request": text, "price": price });
            format.answer(plain, json)
        }
        UploadStatus::Done => format.ok(record.result.as_deref().unwrap_or("")),
    }
}

/// `get` with `ids=1,2,3`: the answers joined by `|`, `CAPCHA_NOT_READY` for pending ones.
async fn several(call: &Call<'_>, caller: &Caller, fields: &Fields, format: Format) -> Response {
    let ids: Vec<&str> = fields.text("ids").unwrap_or("").split(',').collect();
    if ids.len() > MAX_IDS {
        return format.error("ERROR_BAD_PARAMETERS", &format!("at most {MAX_IDS} ids"));
    }
    let mut answers = Vec::with_capacity(ids.len());
    for id in ids {
        let answer = match named_upload(call, caller, id, format).await {
            Ok(record) => match record.status {
                UploadStatus::Pending => NOT_READY.to_string(),
                UploadStatus::Failed => UNSOLVABLE.to_string(),
                // A click captcha's answer in 2captcha's words, as `get` gives it.
                UploadStatus::Done if is_click_record(&record) => {
                    coordinates::answer_of(record.result.as_deref().unwrap_or("[]")).0
                }
                UploadStatus::Done => record.result.unwrap_or_default(),
            },
            Err(_) => "ERROR_WRONG_CAPTCHA_ID".to_string(),
        };
        answers.push(answer);
    }
    format.bare(1, &answers.join("|"))
}

/// `reportbad` (refund once, within the report window) and `reportgood` (recorded, nothing
/// moves).
async fn report(
    call: &Call<'_>,
    caller: &Caller,
    fields: &Fields,
    format: Format,
    bad: bool,
) -> Response {
    let record = match named_upload(call, caller, fields.text("id").unwrap_or(""), format).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    if record.reported {
        return format.error("ERROR_DUPLICATE_REPORT", "already reported");
    }
    if record.status != UploadStatus::Done {
        return format.error(
            "ERROR_REPORT_NOT_RECORDED",
            "only answered captchas are reported",
        );
    }
    if !bad {
        return format.bare(1, "OK_REPORT_RECORDED");
    }
    match queries::report_upload(call.shard, caller.user_id, record.id).await {
        Ok(_) => format.bare(1, "OK_REPORT_RECORDED"),
        Err(refusal) if refusal.error == ApiError::NotReportable => {
            format.error("ERROR_DUPLICATE_REPORT", "already reported")
        }
        Err(refusal) if refusal.error == ApiError::WindowClosed => {
            format.error("ERROR_REPORT_NOT_RECORDED", "the report window has closed")
        }
        Err(refusal) => format.refusal(&refusal),
    }
}

/// The form body of a pingback: `id=<id>&code=<answer>` (the answer of a failed upload is
/// 2captcha's unsolvable error).
pub fn pingback_body(record: &UploadRecord) -> Vec<u8> {
    let code = match record.status {
        UploadStatus::Done => record.result.clone().unwrap_or_default(),
        _ => UNSOLVABLE.to_string(),
    };
    format!(
        "id={}&code={}",
        record.id,
        crate::http::form::encode_component(&code)
    )
    .into_bytes()
}
