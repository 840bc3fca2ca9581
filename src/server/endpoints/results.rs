//! One upload after the fact: `GET /v2/result?id=` (its state) and `POST /v2/report?id=`
//! (the answer was wrong: refund once, within the report window).

use crate::contract::ApiError;
use crate::server::call::Call;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::server::upload::upload_json;
use crate::store::{ids, Balance, StoreError, UploadRecord};
use serde_json::json;
use std::rc::Rc;

/// The caller's upload `id`, checked to be one this deployment can hold.
struct UploadRef {
    user_id: u64,
    upload_id: u64,
    /// The shard that holds the upload (from its id's shard bits).
    owner: u16,
}

impl UploadRef {
    async fn parse(call: &Call<'_>) -> Result<UploadRef, Refusal> {
        let caller = call.caller().await?;
        let upload_id = call.fields()?.id("id")?;
        // Uploads live on their user's shard; an id whose shard bits are out of range
        // cannot be anyone's upload.
        let owner = ids::shard_of(upload_id);
        if owner >= call.shard.shard_count() {
            return Err(ApiError::NoSuchUpload.into());
        }
        Ok(UploadRef {
            user_id: caller.user_id,
            upload_id,
            owner,
        })
    }
}

/// `GET /v2/result`: reads the record on the shard the id names (4001 if not the caller's).
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
        let record = shard.store.borrow().upload(user_id, upload_id)?;
        record.ok_or(Refusal::from(ApiError::NoSuchUpload))
    }
}

pub async fn result(call: &Call<'_>) -> ApiResult {
    let record = run_on_owner(call.shard, ResultQuery(UploadRef::parse(call).await?)).await?;
    Ok(ok(&upload_json(&record)))
}

/// `POST /v2/report`: refunds once, durably, on the caller's own shard.
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
                .borrow_mut()
                .report(user_id, upload_id, now_ms, self.window_ms)?;
        shard.commit.durable().await.map_err(StoreError::Io)?;
        Ok(reported)
    }
}

pub async fn report(call: &Call<'_>) -> ApiResult {
    let upload = UploadRef::parse(call).await?;
    if upload.owner != ids::shard_of(upload.user_id) {
        // Another shard's upload cannot be the caller's.
        return Err(ApiError::NoSuchUpload.into());
    }
    let request = Report {
        upload,
        window_ms: call.shard.config().report_window_secs * 1000,
    };
    let (record, balance) = run_on_owner(call.shard, request).await?;
    Ok(ok(
        &json!({ "refunded": record.cost, "points": balance.points }),
    ))
}
