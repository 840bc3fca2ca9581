//! Step 2 of an upload, on the owner shard: everything that touches the user's points.
//! In order: rate limit, answer cache, room (queue, waiters), reserve, submit (or apply the
//! cached answer), wait for the reservation to be on disk, then answer (pending, or the
//! result with `wait=1`).

use super::finish::{apply_result, void};
use super::hit::{accept_hit, answers_outright};
use super::placement::{self, Place};
use super::request::UploadRequest;
use super::wait::wait_for_result;
use super::Accepted;
use crate::contract::ApiError;
use crate::recognition::cache::{digest, slide_digest, CacheKey, ClickHintKey, TaskKey};
use crate::recognition::{Job, JobAnswer, JobResult, Task};
use crate::server::cache;
use crate::server::call::Caller;
use crate::server::forward_acks;
use crate::server::owner::OwnerCommand;
use crate::server::reply::{busy, storage_unavailable, Refusal};
use crate::server::shard::Shard;
use crate::server::state::Waiter;
use crate::store::UploadRecord;
use std::rc::Rc;
use std::time::Instant;

pub struct Accept {
    pub caller: Caller,
    pub request: UploadRequest,
}

impl OwnerCommand for Accept {
    type Output = Accepted;

    fn owner(&self) -> u16 {
        self.caller.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Accepted, Refusal> {
        let (accepted, _) = accept(shard, self.caller.user_id, self.request, None).await?;
        Ok(accepted)
    }
}

/// An upload of the JSON task protocol: accepted like any, and numbered with a task id of
/// its owner shard in the same write (store/task_ids.rs), which keeps the protocol's
/// `answer_format` with it (how `getTaskResult` writes the answer). The answer is the task id
/// too.
pub struct AcceptTask {
    pub accept: Accept,
    pub answer_format: u8,
}

impl OwnerCommand for AcceptTask {
    type Output = (Accepted, u64);

    fn owner(&self) -> u16 {
        self.accept.owner()
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<(Accepted, u64), Refusal> {
        let Accept { caller, request } = self.accept;
        let numbered = Some(self.answer_format);
        let (accepted, task_id) = accept(shard, caller.user_id, request, numbered).await?;
        Ok((accepted, task_id.expect("a numbered upload has a task id")))
    }
}

/// Accepts the upload; `numbered` (the task's answer format), it gets a task id (the second
/// value, else `None`).
async fn accept(
    shard: Rc<Shard>,
    user_id: u64,
    request: UploadRequest,
    numbered: Option<u8>,
) -> Result<(Accepted, Option<u64>), Refusal> {
    // First: a refusal for a failed disk takes no rate token, no queue slot, no recognition.
    shard.store.writable()?;
    let request = with_user_model(&shard, user_id, request)?;
    let user_model = match &request.task {
        Task::Ocr { options, .. } if options.custom.is_some() => Some(options.model.clone()),
        _ => None,
    };
    if let Err(retry_after_secs) = shard.uploads.upload_limiter.borrow_mut().check(user_id) {
        return Err(Refusal::from(ApiError::RateLimited).retry_after(retry_after_secs));
    }
    let kind = request.task.kind();
    let key = cache_key(&request.task);
    // A cached answer needs neither a queue slot nor a run; it is still charged. Asked of
    // the shard that owns the image's entry, before the room checks below (no await after
    // them). Without one, the job's place (this node's threads or, in a cluster, the
    // workers: placement.rs) must have room.
    let cached = cache::lookup(&shard, &key).await;
    // The fast path records no task id: a numbered upload's hit goes the general way.
    let outright = |_: &&JobAnswer| numbered.is_none() && answers_outright(&request);
    if let Some(answer) = cached.as_ref().filter(outright) {
        let accepted = accept_hit(&shard, user_id, request, &key, answer).await?;
        // With the next group commit (the hit's charge was its own write).
        keep_model_request(&shard, user_id, user_model.as_deref());
        count_model_request(&shard, user_id, user_model.as_deref());
        return Ok((accepted, None));
    }
    let place = match cached {
        Some(_) => Place::Local, // not queued at all
        None => match placement::place(&shard, kind, runs_here_only(&shard, &request.task)) {
            Some(place) => place,
            None => {
                shard.metrics().uploads_queue_full += 1;
                return Err(busy());
            }
        },
    };
    let needs_hook_room = request.on_finish.is_some() && !shard.uploads.finish_hooks.has_room();
    if (request.wait && !shard.uploads.waiters.has_room()) || needs_hook_room {
        shard.metrics().uploads_waiters_full += 1;
        return Err(busy());
    }
    let mut request = request;
    let forwarded = request.forwarded;
    let (record, task_id) = reserve(&shard, user_id, &request, &key, numbered)?;
    // In the same group commit as the reservation: no write of its own to wait for.
    keep_model_request(&shard, user_id, user_model.as_deref());
    let (wait, timeout_ms) = (request.wait, request.timeout_ms);
    // No await since `has_room`: the places are still free.
    let waiter: Option<Waiter> = wait.then(|| shard.uploads.waiters.register(record.id));
    if let Some(hook) = request.on_finish.take() {
        shard
            .uploads
            .finish_hooks
            .register(record.id, (hook, task_id));
    }
    match cached {
        Some(answer) => {
            let hit = cache_hit(&shard, &record, key, request, answer);
            apply_result(&shard, hit)
        }
        None => submit(&shard, place, &record, request, key)?,
    }
    // Written before the group commit: durable with the reservation (server/forward_acks.rs).
    forward_acks::await_ack(&shard, forwarded, record.id);
    // A 200 means the reservation is on disk, so the answer waits for the group commit; the
    // recognition already runs meanwhile (a sync answer pays max(fsync, model), not the sum).
    if shard.commit.durable().await.is_err() {
        // The disk failed (storage.rs logs why, once) and the store takes no writes until it
        // is reopened; then whatever of this upload reached the disk (its reservation, or a
        // result posted meanwhile) is given back: a refused upload costs nothing.
        shard.store.withdraw_at_reopen(record.id);
        void(&shard, record.id, "reservation could not be made durable");
        return Err(storage_unavailable());
    }
    shard.metrics().uploads_accepted += 1;
    count_model_request(&shard, user_id, user_model.as_deref());
    let accepted = match waiter {
        None => Accepted::Pending(record),
        Some(waiter) => wait_for_result(&shard.uploads.waiters, record, waiter, timeout_ms).await,
    };
    Ok((accepted, task_id))
}

/// Writes an accepted upload's count for the user's model it names into the shard's store
/// (read back at start); a count that cannot be written is left out (a number, not money).
fn keep_model_request(shard: &Shard, user_id: u64, user_model: Option<&str>) {
    let Some(name) = user_model else { return };
    let Some(model) = shard.shared.model_catalog.record_for(user_id, name) else {
        return;
    };
    if let Ok(mut store) = shard.store.borrow_mut() {
        let _ = store.count_model_use(&model, 1, 0);
    }
}

/// An accepted upload counts for the user's model it names (cache hits included).
fn count_model_request(shard: &Shard, user_id: u64, user_model: Option<&str>) {
    if let Some(name) = user_model {
        shard.shared.model_catalog.count_request(user_id, name);
    }
}

/// A text task naming a model that is not the server's own gets the user's model of that
/// name, else the public one; else 3005, the same for another user's private model as for a
/// name nobody uses. Decided here, on the owner, before anything is charged.
fn with_user_model(
    shard: &Shard,
    user_id: u64,
    mut request: UploadRequest,
) -> Result<UploadRequest, Refusal> {
    if let Task::Ocr { options, .. } = &mut request.task {
        if options.custom.is_none() && !shard.shared.models.contains(&options.model) {
            let model = shard.shared.model_catalog.resolve(user_id, &options.model);
            options.custom = Some(model.ok_or_else(|| {
                Refusal::new(
                    ApiError::UnknownModel,
                    format!("unknown model {:?}", options.model),
                )
            })?);
        }
    }
    Ok(request)
}

/// Whether a task must run on this node's threads: a user's model whose files are not in
/// the cluster's models bucket (cluster/model_transfer.rs) is not on the workers.
fn runs_here_only(shard: &Shard, task: &Task) -> bool {
    let catalog = &shard.shared.model_catalog;
    match task {
        Task::Ocr { options, .. } => options
            .custom
            .as_ref()
            .is_some_and(|model| !catalog.on_workers(&model.digest)),
        _ => false,
    }
}

/// The answer cache's key for a task: the bytes' digest and what else shapes the answer.
fn cache_key(task: &Task) -> CacheKey {
    match task {
        Task::Ocr { image, options } => CacheKey::ocr(digest(image), options.clone()),
        Task::Detect { image } => CacheKey {
            digest: digest(image),
            task: TaskKey::Detect,
        },
        Task::Click {
            image,
            hint,
            rectangles,
        } => CacheKey {
            digest: digest(image),
            task: TaskKey::Click {
                hint: ClickHintKey::of(hint),
                rectangles: *rectangles,
            },
        },
        Task::Slide {
            target,
            background,
            mode,
        } => CacheKey {
            digest: slide_digest(target, background),
            task: TaskKey::Slide(*mode),
        },
    }
}

/// Reserves the upload's cost (its kind's price) with a pending record (made durable by the
/// group commit the caller awaits before answering), and with `numbered` a task id keeping
/// that answer format.
fn reserve(
    shard: &Shard,
    user_id: u64,
    request: &UploadRequest,
    key: &CacheKey,
    numbered: Option<u8>,
) -> Result<(UploadRecord, Option<u64>), Refusal> {
    let new_upload = request.new_upload(shard.config(), key);
    let mut store = shard.store.borrow_mut()?;
    let (record, task_id) = match numbered {
        None => (store.accept_upload(user_id, new_upload)?, None),
        Some(answer_format) => {
            let (record, task_id) = store.accept_task_upload(user_id, new_upload, answer_format)?;
            (record, Some(task_id))
        }
    };
    assert_eq!(record.user_id, user_id);
    Ok((record, task_id))
}

/// Queues the job; when another shard took the last slot since `has_room`, gives the points
/// back and answers busy.
fn submit(
    shard: &Shard,
    place: Place,
    record: &UploadRecord,
    request: UploadRequest,
    cache_key: CacheKey,
) -> Result<(), Refusal> {
    let job = Job {
        upload_id: record.id,
        owner_shard: shard.id,
        task: request.task,
        cache_key,
        constraints: request.constraints,
        enqueued_at: Instant::now(),
    };
    if placement::submit(shard, place, job).is_err() {
        void(shard, record.id, "recognition queue full");
        shard.metrics().uploads_queue_full += 1;
        return Err(busy());
    }
    Ok(())
}

/// The result of an upload answered from the cache.
fn cache_hit(
    shard: &Shard,
    record: &UploadRecord,
    cache_key: CacheKey,
    request: UploadRequest,
    answer: JobAnswer,
) -> JobResult {
    JobResult {
        upload_id: record.id,
        owner_shard: shard.id,
        kind: request.task.kind(),
        outcome: Ok(answer),
        cache_hit: true,
        queued_us: 0,
        recognize_us: 0,
        batch_size: 0,
        cache_key,
        constraints: request.constraints,
        receipt: None,
    }
}
