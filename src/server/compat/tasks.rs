//! The JSON task protocol of anti-captcha, 2captcha v2, CapMonster Cloud and CapSolver:
//! `POST /createTask`, `/getTaskResult`, `/getBalance`, `/reportIncorrect`,
//! `/reportIncorrectImageCaptcha`, `/reportCorrect`. Every request is a JSON object with the
//! key in `clientKey` (or `Authorization: Bearer`); every answer has `errorId` (0 = fine,
//! else `errorCode` and `errorDescription`), always with HTTP 200.
//!
//! `taskId` is a task id of 53 bits (store/task_ids.rs), not the upload's 64-bit id:
//! JavaScript clients read every JSON number as a double, and a rounded id would name no
//! task, or another one.
//!
//! `createTask` waits up to `compat_wait_ms` for the answer and then says `ready` with the
//! solution (CapSolver answers image tasks this way, and every client's first poll then finds
//! it), else `processing`. `status` is in every task answer: CapMonster's client spins
//! without sleeping when it is missing.

use super::callbacks::{Callback, CallbackBody, CallbackRefusal, CallbackTarget};
use super::task_answers::{
    click_request, AnswerFormat, COORDINATES, IMAGE_TO_COORDINATES, IMAGE_TO_TEXT,
};
use super::{
    caller_by_key, parse_id, submit_numbered, CompatUpload, Hints, KeyProblem, Numeric, TaskExtras,
    Unserved,
};
use crate::config::Config;
use crate::contract::ApiError;
use crate::http::Response;
use crate::recognition::Task;
use crate::server::call::{Call, Caller};
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::queries;
use crate::server::reply::{ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::server::upload::{decode_base64_image, Accepted};
use crate::store::{task_ids, UploadRecord, UploadStatus};
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::rc::Rc;

/// One error of the protocol: (errorId, errorCode), ids as anti-captcha and 2captcha v2
/// number them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TaskError(u32, &'static str);

const KEY_DOES_NOT_EXIST: TaskError = TaskError(1, "ERROR_KEY_DOES_NOT_EXIST");
const NO_SLOT_AVAILABLE: TaskError = TaskError(2, "ERROR_NO_SLOT_AVAILABLE");
const ZERO_CAPTCHA_FILESIZE: TaskError = TaskError(3, "ERROR_ZERO_CAPTCHA_FILESIZE");
const TOO_BIG_CAPTCHA_FILESIZE: TaskError = TaskError(4, "ERROR_TOO_BIG_CAPTCHA_FILESIZE");
const ZERO_BALANCE: TaskError = TaskError(10, "ERROR_ZERO_BALANCE");
const CAPTCHA_UNSOLVABLE: TaskError = TaskError(12, "ERROR_CAPTCHA_UNSOLVABLE");
const IMAGE_TYPE_NOT_SUPPORTED: TaskError = TaskError(15, "ERROR_IMAGE_TYPE_NOT_SUPPORTED");
const NO_SUCH_CAPCHA_ID: TaskError = TaskError(16, "ERROR_NO_SUCH_CAPCHA_ID");
const IP_BLOCKED: TaskError = TaskError(21, "ERROR_IP_BLOCKED");
const TASK_ABSENT: TaskError = TaskError(22, "ERROR_TASK_ABSENT");
const TASK_NOT_SUPPORTED: TaskError = TaskError(23, "ERROR_TASK_NOT_SUPPORTED");
const BAD_PARAMETERS: TaskError = TaskError(110, "ERROR_BAD_PARAMETERS");

fn error_answer(error: TaskError, description: &str) -> Response {
    let TaskError(id, code) = error;
    answer(json!({ "errorId": id, "errorCode": code, "errorDescription": description }))
}

fn answer(body: Value) -> Response {
    Response::json(200, body.to_string().into_bytes())
}

/// A refusal of the shared path, in the protocol's words.
pub fn refusal_answer(refusal: &Refusal) -> Response {
    let error = match refusal.error {
        ApiError::NoPoints => ZERO_BALANCE,
        // Both protocols' clients wait and send again on "no slot": right for a full disk too.
        ApiError::Busy | ApiError::RateLimited | ApiError::StorageUnavailable => NO_SLOT_AVAILABLE,
        ApiError::NoImage => ZERO_CAPTCHA_FILESIZE,
        ApiError::TooLarge => TOO_BIG_CAPTCHA_FILESIZE,
        ApiError::NotAnImage | ApiError::BadDimensions => IMAGE_TYPE_NOT_SUPPORTED,
        ApiError::NoToken | ApiError::BadToken | ApiError::BadCredentials => KEY_DOES_NOT_EXIST,
        ApiError::NoSuchUpload => NO_SUCH_CAPCHA_ID,
        ApiError::RecognitionFailed | ApiError::Unsolvable => CAPTCHA_UNSOLVABLE,
        _ => BAD_PARAMETERS,
    };
    error_answer(error, &refusal.message)
}

/// The request's JSON object and its caller, or the answer that says why not.
async fn open(call: &Call<'_>) -> Result<(Map<String, Value>, Caller), Unserved> {
    let object = match serde_json::from_slice::<Value>(&call.body) {
        Ok(Value::Object(object)) => object,
        _ => return Err(error_answer(BAD_PARAMETERS, "the body must be a JSON object").into()),
    };
    let key = object.get("clientKey").and_then(Value::as_str);
    let caller = caller_by_key(call, key)
        .await
        .map_err(|problem| match problem {
            KeyProblem::Missing | KeyProblem::Malformed | KeyProblem::Unknown => {
                error_answer(KEY_DOES_NOT_EXIST, "no such clientKey").into()
            }
            KeyProblem::AtNode(node) => Unserved::AtNode(node),
            KeyProblem::Refused(refusal) if refusal.error == ApiError::RateLimited => {
                error_answer(IP_BLOCKED, "too many requests with keys that do not exist").into()
            }
            KeyProblem::Refused(refusal) => refusal_answer(&refusal).into(),
        })?;
    Ok((object, caller))
}

/// A lenient number: JSON number, numeric string, or boolean (`"comment": false`).
fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        Value::Bool(flag) => Some(f64::from(u8::from(*flag))),
        _ => None,
    }
}

/// `POST /createTask`.
pub async fn create_task(call: &Call<'_>) -> ApiResult {
    let (object, caller) = match open(call).await {
        Ok(opened) => opened,
        Err(unserved) => return unserved.into_result(),
    };
    let (mut upload, format) = match read_task(call, &object) {
        Ok(read) => read,
        Err((error, description)) => return Ok(error_answer(error, &description)),
    };
    let task = match format {
        AnswerFormat::Text => {
            choose_module(call, &caller, &object, &mut upload);
            upload.into_task()
        }
        _ => match click_task(call, &object, upload, format) {
            Ok(task) => task,
            Err((error, description)) => return Ok(error_answer(error, &description)),
        },
    };
    let (accepted, task_id) = match submit_numbered(call, &caller, task, format.tag()).await {
        Ok(numbered) => numbered,
        Err(refusal) => return Ok(refusal_answer(&refusal)),
    };
    assert!(
        task_ids::is_task_id(task_id),
        "a taskId JSON readers read exactly"
    );
    Ok(match accepted {
        Accepted::Pending(_) => {
            answer(json!({ "errorId": 0, "taskId": task_id, "status": "processing" }))
        }
        Accepted::Finished(finished) => {
            let mut body = task_json(call.shard.config(), &finished.record, call.peer, format);
            body["taskId"] = json!(task_id);
            answer(body)
        }
    })
}

/// The upload a `createTask` asks for and how its task type writes the solution; `Err` is
/// the protocol's error and a description.
fn read_task(
    call: &Call,
    object: &Map<String, Value>,
) -> Result<(CompatUpload, AnswerFormat), (TaskError, String)> {
    let bad = |text: &str| (BAD_PARAMETERS, text.to_string());
    let task = object
        .get("task")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("task must be an object"))?;
    let kind = task.get("type").and_then(Value::as_str).unwrap_or("");
    let format = AnswerFormat::of_task_type(kind).ok_or_else(|| {
        let solved = format!("{IMAGE_TO_TEXT}, {COORDINATES}, {IMAGE_TO_COORDINATES}");
        let text = format!("task type {kind:?} is not supported; this server solves {solved}");
        (TASK_NOT_SUPPORTED, text)
    })?;
    let body = task.get("body").and_then(Value::as_str).unwrap_or("");
    let image = task_image(call, body).map_err(|(error, text)| match error {
        ZERO_CAPTCHA_FILESIZE => (error, "the task has no body".to_string()),
        _ => (error, text),
    })?;
    let mut upload = CompatUpload::new(call, image);
    upload.hints = hints(task).map_err(|text| bad(&text))?;
    upload.soft_id = object
        .get("softId")
        .and_then(|soft_id| match soft_id {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .filter(|soft_id| !soft_id.is_empty() && soft_id.len() <= 64);
    if let Some(url) = object.get("callbackUrl").and_then(Value::as_str) {
        let allowed = &call.shard.config().compat.callback_allow;
        let target = CallbackTarget::parse(url, allowed).map_err(|refusal| match refusal {
            CallbackRefusal::Malformed => bad("callbackUrl is not an http:// URL"),
            CallbackRefusal::NotAllowed => {
                bad("callbackUrl destination not allowed by this server")
            }
        })?;
        upload.callback = Some(Callback {
            target,
            body: CallbackBody::TaskResult {
                client_ip: call.peer,
                task_id: None, // given when the upload is accepted
                format,
            },
        });
    }
    Ok((upload, format))
}

/// An image field of a task (base64), in the protocol's errors.
fn task_image(call: &Call, base64: &str) -> Result<Vec<u8>, (TaskError, String)> {
    let max_image_bytes = call.shard.config().images.max_image_bytes;
    decode_base64_image(base64, max_image_bytes).map_err(|refusal| match refusal.error {
        ApiError::NoImage => (ZERO_CAPTCHA_FILESIZE, refusal.message),
        ApiError::TooLarge => (TOO_BIG_CAPTCHA_FILESIZE, refusal.message),
        _ => (IMAGE_TYPE_NOT_SUPPORTED, refusal.message),
    })
}

/// The click-in-order task of a `CoordinatesTask` or `ImageToCoordinatesTask`
/// (task_answers.rs): its image, what to click, points or boxes.
fn click_task(
    call: &Call,
    object: &Map<String, Value>,
    upload: CompatUpload,
    format: AnswerFormat,
) -> Result<(Task, TaskExtras), (TaskError, String)> {
    let task = object
        .get("task")
        .and_then(Value::as_object)
        .expect("read_task read it");
    let request = click_request(format, task).map_err(|text| (BAD_PARAMETERS, text))?;
    let hint_image = match (request.text, request.image_base64) {
        (None, Some(base64)) => Some(task_image(call, base64)?),
        _ => None, // the text wins: the image is not read
    };
    Ok(upload.into_click_task(request.hint(hint_image), request.rectangles))
}

/// CapSolver's `module` and CapMonster's `CapMonsterModule` choose a model: the server's own
/// or one the caller may use (their own, or public). Any other module (the services' own
/// module names) changes nothing, as before models could be chosen.
fn choose_module(
    call: &Call,
    caller: &Caller,
    object: &Map<String, Value>,
    upload: &mut CompatUpload,
) {
    let Some(task) = object.get("task").and_then(Value::as_object) else {
        return;
    };
    let module = ["module", "CapMonsterModule"]
        .iter()
        .filter_map(|name| task.get(*name).and_then(Value::as_str))
        .map(str::trim)
        .find(|module| !module.is_empty());
    let Some(module) = module else {
        return;
    };
    let shared = &call.shard.shared;
    if shared.models.iter().any(|model| model == module) {
        upload.options.model = module.to_string();
    } else if let Some(model) = shared.model_catalog.resolve(caller.user_id, module) {
        upload.options.model = module.to_string();
        upload.options.custom = Some(model);
    }
}

/// `numeric`, `minLength`, `maxLength`, CapMonster's `recognizingThreshold` (0..=100) and
/// CapSolver's `score` (0..=1); the rest (`case`, `Case`, `math`, `phrase`, `comment`,
/// `languagePool`, ...) is accepted and changes nothing (`module`: [`choose_module`]).
pub(crate) fn hints(task: &Map<String, Value>) -> Result<Hints, String> {
    let whole = |name: &str| -> Result<u64, String> {
        match number(task.get(name)) {
            None => Ok(0),
            Some(value) if value >= 0.0 && value.fract() == 0.0 => Ok(value as u64),
            Some(_) => Err(format!("{name} must be a whole number")),
        }
    };
    let numeric = Numeric::from_code(whole("numeric")?).ok_or("numeric must be 0, 1, 2, 3 or 4")?;
    let (min_length, max_length) = (whole("minLength")?, whole("maxLength")?);
    if min_length > super::MAX_LENGTH_HINT || max_length > super::MAX_LENGTH_HINT {
        return Err(format!(
            "minLength and maxLength must be 0..={}",
            super::MAX_LENGTH_HINT
        ));
    }
    let threshold = match (
        number(task.get("recognizingThreshold")),
        number(task.get("score")),
    ) {
        (Some(percent), _) if (0.0..=100.0).contains(&percent) => Some(percent / 100.0),
        (Some(_), _) => return Err("recognizingThreshold must be 0..=100".into()),
        (None, Some(score)) if (0.0..=1.0).contains(&score) => Some(score),
        (None, Some(_)) => return Err("score must be 0..=1".into()),
        (None, None) => None,
    };
    Ok(Hints {
        numeric,
        min_chars: min_length as usize,
        max_chars: max_length as usize,
        min_confidence: threshold.filter(|minimum| *minimum > 0.0).map(|m| m as f32),
        // anti-captcha's `math: true` (clients send true, 1 or "1").
        math: number(task.get("math")) == Some(1.0),
    })
}

/// A task's state as `getTaskResult` (and a `callbackUrl`) says it, its solution in the
/// task type's `format`.
fn task_json(
    config: &Config,
    record: &UploadRecord,
    client_ip: IpAddr,
    format: AnswerFormat,
) -> Value {
    match record.status {
        UploadStatus::Pending => json!({ "errorId": 0, "status": "processing" }),
        UploadStatus::Failed => {
            let TaskError(id, code) = CAPTCHA_UNSOLVABLE;
            let reason = record.error.as_deref().unwrap_or("");
            json!({ "errorId": id, "errorCode": code, "errorDescription": reason, "status": "failed" })
        }
        UploadStatus::Done => json!({
            "errorId": 0,
            "status": "ready",
            "solution": format.solution(record),
            "cost": config.compat.price_per_point.amount(record.cost, 5),
            "ip": client_ip.to_string(),
            "createTime": record.created_at_ms / 1000,
            "endTime": record.finished_at_ms.unwrap_or(record.created_at_ms) / 1000,
            "solveCount": 1,
        }),
    }
}

/// The body POSTed to a `callbackUrl`: the ready (or failed) answer, with its `taskId`.
pub fn callback_body(
    config: &Config,
    record: &UploadRecord,
    client_ip: IpAddr,
    task_id: Option<u64>,
    format: AnswerFormat,
) -> Vec<u8> {
    let mut body = task_json(config, record, client_ip, format);
    if let Some(task_id) = task_id {
        body["taskId"] = json!(task_id);
    }
    body.to_string().into_bytes()
}

/// The task `taskId` names (a number or a numeric string) and how its type writes the
/// solution, or the answer that says why not. A number above 2^53 - 1 is the upload id older
/// versions answered as `taskId` (a client that keeps exact integers may still poll with
/// it; such an upload has no task type: text, or a click's `{"x", "y"}`).
async fn named_task(
    call: &Call<'_>,
    caller: &Caller,
    object: &Map<String, Value>,
) -> Result<(UploadRecord, AnswerFormat), Response> {
    let number = match object.get("taskId") {
        Some(Value::Number(number)) => number.as_u64().or_else(|| whole_double(number)),
        Some(Value::String(text)) => parse_id(text),
        _ => None,
    };
    let number = number.ok_or_else(|| error_answer(BAD_PARAMETERS, "taskId must be a number"))?;
    let found = if number <= task_ids::MAX_TASK_ID {
        let query = TaskQuery {
            user_id: caller.user_id,
            owner: caller.owner,
            task_id: number,
        };
        run_on_owner(call.shard, query).await
    } else {
        let record = queries::upload_of(call.shard, caller.user_id, number).await;
        record.map(|record| (record, AnswerFormat::Text))
    };
    found.map_err(|refusal| match refusal.error {
        ApiError::NoSuchUpload => error_answer(NO_SUCH_CAPCHA_ID, "no such task"),
        _ => refusal_answer(&refusal),
    })
}

/// A task id a client wrote as a double (`4097.0`): whole, and within the integers a double
/// holds exactly.
fn whole_double(number: &serde_json::Number) -> Option<u64> {
    let value = number.as_f64()?;
    let exact = value.fract() == 0.0 && (1.0..=task_ids::MAX_TASK_ID as f64).contains(&value);
    exact.then_some(value as u64)
}

/// The caller's upload a task id names, read on the caller's shard: its tasks were numbered
/// there (and a user of another node is forwarded there whole before this runs).
struct TaskQuery {
    user_id: u64,
    owner: u16,
    task_id: u64,
}

impl OwnerCommand for TaskQuery {
    type Output = (UploadRecord, AnswerFormat);

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<(UploadRecord, AnswerFormat), Refusal> {
        let store = shard.store.borrow()?;
        let Some((upload_id, tag)) = store.task_upload(self.task_id)? else {
            return Err(ApiError::NoSuchUpload.into());
        };
        let record = store.upload(self.user_id, upload_id)?;
        let record = record.ok_or(Refusal::from(ApiError::NoSuchUpload))?;
        Ok((record, AnswerFormat::of_tag(tag)))
    }
}

/// `POST /getTaskResult`.
pub async fn get_task_result(call: &Call<'_>) -> ApiResult {
    let (object, caller) = match open(call).await {
        Ok(opened) => opened,
        Err(unserved) => return unserved.into_result(),
    };
    Ok(match named_task(call, &caller, &object).await {
        Ok((record, format)) => answer(task_json(call.shard.config(), &record, call.peer, format)),
        Err(answer) => answer,
    })
}

/// `POST /getBalance`.
pub async fn get_balance(call: &Call<'_>) -> ApiResult {
    let (_, caller) = match open(call).await {
        Ok(opened) => opened,
        Err(unserved) => return unserved.into_result(),
    };
    Ok(match queries::balance_of(call.shard, &caller).await {
        Ok(balance) => {
            let amount = call
                .shard
                .config()
                .compat
                .price_per_point
                .amount_number(balance.points);
            answer(json!({ "errorId": 0, "balance": amount }))
        }
        Err(refusal) => refusal_answer(&refusal),
    })
}

/// `POST /reportIncorrect`, `/reportIncorrectImageCaptcha`: refund once, within the report
/// window. A second report of the same task answers success again and refunds nothing (a
/// client that retries must not be told its report failed).
pub async fn report_incorrect(call: &Call<'_>) -> ApiResult {
    let (object, caller) = match open(call).await {
        Ok(opened) => opened,
        Err(unserved) => return unserved.into_result(),
    };
    let record = match named_task(call, &caller, &object).await {
        Ok((record, _)) => record,
        Err(answer) => return Ok(answer),
    };
    if record.reported {
        return Ok(success());
    }
    Ok(
        match queries::report_upload(call.shard, caller.user_id, record.id).await {
            Ok(_) => success(),
            Err(refusal) if refusal.error == ApiError::WindowClosed => {
                error_answer(NO_SUCH_CAPCHA_ID, "the report window has closed")
            }
            Err(refusal) if refusal.error == ApiError::NotReportable => {
                error_answer(TASK_ABSENT, "only solved tasks can be reported")
            }
            Err(refusal) => refusal_answer(&refusal),
        },
    )
}

/// `POST /reportCorrect`: recorded; nothing moves.
pub async fn report_correct(call: &Call<'_>) -> ApiResult {
    let (object, caller) = match open(call).await {
        Ok(opened) => opened,
        Err(unserved) => return unserved.into_result(),
    };
    Ok(match named_task(call, &caller, &object).await {
        Ok(_) => success(),
        Err(answer) => answer,
    })
}

fn success() -> Response {
    answer(json!({ "errorId": 0, "status": "success" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_task_fields() {
        let task = json!({
            "type": "ImageToTextTask", "numeric": "1", "minLength": 4, "maxLength": 6.0,
            "recognizingThreshold": 70, "comment": false, "Case": true, "languagePool": "en"
        });
        let read = hints_of(&task);
        assert_eq!(read.numeric, Numeric::DigitsOnly);
        assert_eq!((read.min_chars, read.max_chars), (4, 6));
        assert_eq!(read.min_confidence, Some(0.7));
        let capsolver = json!({ "score": 0.8 });
        assert_eq!(hints_of(&capsolver).min_confidence, Some(0.8));
        for bad in [
            json!({ "numeric": 9 }),
            json!({ "maxLength": 21 }),
            json!({ "minLength": 1.5 }),
            json!({ "recognizingThreshold": 101 }),
        ] {
            assert!(hints(bad.as_object().unwrap()).is_err(), "{bad}");
        }
    }

    fn hints_of(value: &Value) -> Hints {
        hints(value.as_object().unwrap()).unwrap()
    }
}
