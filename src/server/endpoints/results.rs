//! One upload after the fact: `GET /v2/result?id=` (its state) and `POST /v2/report?id=`
//! (the answer was wrong: refund once, within the report window). `upload_of` and
//! `report_upload` serve the other protocols' result and report calls too.

use crate::contract::ApiError;
use crate::server::cache;
use crate::server::call::Call;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::server::upload::upload_json;
use crate::store::{ids, Balance, StoreError, UploadRecord};
use serde_json::json;
use std::rc::Rc;

/// A user's upload, by id.
#[derive(Clone, Copy)]
struct UploadRef {
    user_id: u64,
    upload_id: u64,
    /// The shard that holds the upload (from its id's shard bits).
    owner: u16,
}

impl UploadRef {
    /// 4001 for an id whose shard bits are out of range: it cannot be anyone's upload.
    fn new(shard: &Shard, user_id: u64, upload_id: u64) -> Result<UploadRef, Refusal> {
        let owner = ids::shard_of(upload_id);
        if owner >= shard.shard_count() {
            return Err(ApiError::NoSuchUpload.into());
        }
        Ok(UploadRef {
            user_id,
            upload_id,
            owner,
        })
    }
}

/// Reads the record on the shard the id names (4001 if not the user's).
struct ResultQuery(UploadRef);

impl OwnerCommand for ResultQuery {
    type Output = UploadRecord;

    fn owner(&self) -> u16 {
        self.0.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<UploadRecord, Refusal> {
        let UploadRef {
            user_id, upload_id, ..
        } = self.0;
        let record = shard.store.borrow()?.upload(user_id, upload_id)?;
        record.ok_or(Refusal::from(ApiError::NoSuchUpload))
    }
}

/// The user's upload `upload_id` (4001 when it is not theirs or does not exist).
pub async fn upload_of(
    shard: &Rc<Shard>,
    user_id: u64,
    upload_id: u64,
) -> Result<UploadRecord, Refusal> {
    let upload = UploadRef::new(shard, user_id, upload_id)?;
    run_on_owner(shard, ResultQuery(upload)).await
}

pub async fn result(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let upload_id = call.fields()?.id("id")?;
    let record = upload_of(call.shard, caller.user_id, upload_id).await?;
    Ok(ok(&upload_json(&record)))
}

/// Refunds once, durably, on the user's own shard.
struct Report {
    upload: UploadRef,
    window_ms: u64,
}

impl OwnerCommand for Report {
    type Output = (UploadRecord, Balance);

    fn owner(&self) -> u16 {
        self.upload.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<(UploadRecord, Balance), Refusal> {
        let UploadRef {
            user_id, upload_id, ..
        } = self.upload;
        let now_ms = crate::clock::unix_now_ms();
        let reported =
            shard
                .store
                .borrow_mut()?
                .report(user_id, upload_id, now_ms, self.window_ms)?;
        shard.commit.durable().await.map_err(StoreError::Io)?;
        Ok(reported)
    }
}

/// Reports the user's upload as wrongly answered: the refunded record and the balance.
/// 4001 unknown or not the user's, 4002 not reportable (pending, failed, already
/// reported), 4003 after the report window.
pub async fn report_upload(
    shard: &Rc<Shard>,
    user_id: u64,
    upload_id: u64,
) -> Result<(UploadRecord, Balance), Refusal> {
    let upload = UploadRef::new(shard, user_id, upload_id)?;
    if upload.owner != ids::shard_of(user_id) {
        // Another shard's upload cannot be the user's.
        return Err(ApiError::NoSuchUpload.into());
    }
    let window_ms = shard.config().uploads.report_window_secs * 1000;
    let reported = run_on_owner(shard, Report { upload, window_ms }).await?;
    // A wrong answer must not be served again: gone from the cache before the answer.
    cache::forget(shard, reported.0.image_hash).await;
    Ok(reported)
}

pub async fn report(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let upload_id = call.fields()?.id("id")?;
    let (record, balance) = report_upload(call.shard, caller.user_id, upload_id).await?;
    Ok(ok(
        &json!({ "refunded": record.cost, "points": balance.points }),
    ))
}
