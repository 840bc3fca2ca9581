//! The protocols existing captcha clients speak, served on the same listener as `/v2` and
//! through the same upload path (same checks, same reserve/post/void, same ledger):
//!
//! - `twocaptcha.rs` — 2captcha's API v1: `/in.php` and `/res.php`;
//! - `tasks.rs` — the JSON task protocol of anti-captcha, 2captcha v2, CapMonster Cloud and
//!   CapSolver: `/createTask`, `/getTaskResult`, `/getBalance`, the report calls
//!   (`task_answers.rs`: its click task types, and each type's solution shape);
//! - `fastapi.rs` — ddddocr-fastapi's `/ocr`.
//!
//! Their answers are theirs, not `/v2`'s: protocol errors travel with HTTP 200 (clients
//! treat any other status as a network failure). What every one of them shares is here: the
//! key, the submission, the hints (`hints.rs`), callbacks
//! (`callbacks.rs`). docs/compat-protocols.md has the full mapping.

pub mod callbacks;
mod coordinates;
pub mod fastapi;
mod hints;
mod task_answers;
pub mod tasks;
pub mod twocaptcha;

pub use hints::{Hints, Numeric, MAX_LENGTH_HINT};

use super::call::{Authentication, Call, Caller};
use super::node_hop;
use super::owner::run_on_owner;
use super::reply::{ApiResult, Refusal};
use super::shard::FinishHook;
use super::upload::{Accept, AcceptTask, Accepted, UploadRequest};
use crate::auth;
use crate::contract::ApiError;
use crate::engine::{AnswerConstraints, RecognizeOptions};
use crate::http::Response;
use crate::recognition::{ClickHint, Task};
use crate::store::UploadRecord;
use callbacks::{Callback, CallbackBody};
use std::rc::Rc;

/// The upload's finish hook that sends its callback (with the upload's task id, for the JSON
/// task protocol's callbacks).
fn finish_hook(callback: Callback) -> FinishHook {
    Box::new(move |shard, record, task_id| {
        deliver_callback(shard, callback.with_task_id(task_id), record)
    })
}

/// Sends a finished upload's callback, its body in the format of the protocol that asked
/// for it. Here, above the protocols, so that `callbacks.rs` (the transport) needs none of
/// them.
fn deliver_callback(shard: &Rc<super::shard::Shard>, callback: Callback, record: &UploadRecord) {
    let (content_type, body) = match &callback.body {
        CallbackBody::Pingback => (
            "application/x-www-form-urlencoded",
            twocaptcha::pingback_body(record),
        ),
        CallbackBody::TaskResult {
            client_ip,
            task_id,
            format,
        } => (
            "application/json",
            tasks::callback_body(shard.config(), record, *client_ip, *task_id, *format),
        ),
    };
    callbacks::send(shard, callback, content_type, body);
}

/// A protocol request not served here: refused in the protocol's own words, or a request of
/// another node's user, which that node answers.
pub enum Unserved {
    Answer(Response),
    AtNode(u16),
}

impl From<Response> for Unserved {
    fn from(answer: Response) -> Unserved {
        Unserved::Answer(answer)
    }
}

impl Unserved {
    /// What the endpoint returns: the protocol's answer, or the refusal that makes the router
    /// forward the request to the user's node.
    pub fn into_result(self) -> ApiResult {
        match self {
            Unserved::Answer(answer) => Ok(answer),
            Unserved::AtNode(node) => Err(node_hop::owned_by(node)),
        }
    }
}

/// Why a protocol's key did not name a user.
#[derive(Debug)]
pub enum KeyProblem {
    Missing,
    /// Not 32 lowercase hex characters.
    Malformed,
    /// No user has it (or it was revoked).
    Unknown,
    /// A key of another node's user: that node answers (the router forwards the request).
    AtNode(u16),
    /// Another refusal on the way (the address is rate limited, a shard is stopping).
    Refused(Refusal),
}

/// The user of the key in `key` (the protocol's field), else of `Authorization: Bearer`
/// (an API key, or this server's own login token).
pub async fn caller_by_key(call: &Call<'_>, key: Option<&str>) -> Result<Caller, KeyProblem> {
    let field = key.filter(|key| !key.is_empty());
    let credential = field.or_else(|| call.bearer()).ok_or(KeyProblem::Missing)?;
    if field.is_some() && !auth::is_api_key_shaped(credential) {
        return Err(KeyProblem::Malformed);
    }
    match call.authenticate_with(credential).await {
        Ok(Authentication::Caller(caller)) => Ok(caller),
        Ok(Authentication::AtNode(node)) => Err(KeyProblem::AtNode(node)),
        Err(refusal) if refusal.error == ApiError::BadToken => Err(KeyProblem::Unknown),
        Err(refusal) => Err(KeyProblem::Refused(refusal)),
    }
}

/// An image a protocol read, with what the request said about it.
pub struct CompatUpload {
    pub image: Vec<u8>,
    /// The protocol's own options (model `compat_model`, or ddddocr-fastapi's `charsets` and
    /// `png_fix`); the hints may narrow the charset further.
    pub options: RecognizeOptions,
    pub hints: Hints,
    pub soft_id: Option<String>,
    pub callback: Option<Callback>,
}

impl CompatUpload {
    /// An upload of `image` with the operator's model for these protocols.
    pub fn new(call: &Call, image: Vec<u8>) -> CompatUpload {
        CompatUpload {
            image,
            options: RecognizeOptions {
                model: call.shard.config().compat.compat_model.clone(),
                ..RecognizeOptions::default()
            },
            hints: Hints::default(),
            soft_id: None,
            callback: None,
        }
    }
}

/// Submits through the `/v2` upload path, waiting up to `compat_wait_ms` for the answer so
/// that the client's first poll finds it (or the protocol can answer at once).
pub async fn submit(
    call: &Call<'_>,
    caller: &Caller,
    upload: CompatUpload,
) -> Result<Accepted, Refusal> {
    let (task, extras) = upload.into_task();
    submit_task(call, caller, task, extras).await
}

/// `submit_task` for the JSON task protocol: the upload is numbered with a task id (the
/// second value), the `taskId` its clients read exactly (store/task_ids.rs), which keeps the
/// task type's `answer_format` (task_answers.rs).
pub async fn submit_numbered(
    call: &Call<'_>,
    caller: &Caller,
    (task, extras): (Task, TaskExtras),
    answer_format: u8,
) -> Result<(Accepted, u64), Refusal> {
    let request = upload_request(call, task, extras)?;
    let accept = Accept {
        caller: *caller,
        request,
    };
    let numbered = AcceptTask {
        accept,
        answer_format,
    };
    let (accepted, task_id) = run_on_owner(call.shard, numbered).await?;
    Ok((accepted, task_id))
}

impl CompatUpload {
    /// The text task its hints narrow, and what else the request adds.
    pub fn into_task(self) -> (Task, TaskExtras) {
        let mut options = self.options;
        let mut constraints = AnswerConstraints::default();
        self.hints.apply(&mut options, &mut constraints);
        let task = Task::Ocr {
            image: self.image,
            options,
        };
        let extras = TaskExtras {
            soft_id: self.soft_id,
            constraints,
            callback: self.callback,
        };
        (task, extras)
    }
}

impl CompatUpload {
    /// A click-in-order task of its image instead (the text hints do not apply), with what
    /// else the request adds.
    pub fn into_click_task(self, hint: ClickHint, rectangles: bool) -> (Task, TaskExtras) {
        let task = Task::Click {
            image: self.image,
            hint,
            rectangles,
        };
        let extras = TaskExtras {
            soft_id: self.soft_id,
            constraints: AnswerConstraints::default(),
            callback: self.callback,
        };
        (task, extras)
    }
}

/// What a protocol's request adds to its task.
#[derive(Default)]
pub struct TaskExtras {
    pub soft_id: Option<String>,
    pub constraints: AnswerConstraints,
    pub callback: Option<Callback>,
}

/// Submits any task (text, detection, slide) through the `/v2` upload path, waiting up to
/// `compat_wait_ms` for its answer.
pub async fn submit_task(
    call: &Call<'_>,
    caller: &Caller,
    task: Task,
    extras: TaskExtras,
) -> Result<Accepted, Refusal> {
    let request = upload_request(call, task, extras)?;
    let accepted = run_on_owner(
        call.shard,
        Accept {
            caller: *caller,
            request,
        },
    )
    .await?;
    Ok(accepted)
}

/// The checked upload of a protocol's task, waiting up to `compat_wait_ms` for its answer.
fn upload_request(call: &Call, task: Task, extras: TaskExtras) -> Result<UploadRequest, Refusal> {
    let wait_ms = call.shard.config().compat.compat_wait_ms;
    UploadRequest {
        task,
        soft_id: extras.soft_id,
        wait: wait_ms > 0,
        timeout_ms: wait_ms,
        constraints: extras.constraints,
        on_finish: extras.callback.map(finish_hook),
        forwarded: call.forwarded,
    }
    .checked(call)
}

/// A decimal id field (`id`, `taskId`), as the protocols send it: digits only.
pub fn parse_id(text: &str) -> Option<u64> {
    let text = text.trim();
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}
