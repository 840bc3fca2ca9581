//! What several endpoint families ask of a user's shard, in one place they all call: a user
//! by name, a balance, an upload, a report (the `/v2` endpoints and the compat protocols'
//! equivalents).

use super::cache;
use super::call::Caller;
use super::owner::{run_on_owner, OwnerCommand};
use super::reply::{malformed, Refusal};
use super::shard::Shard;
use crate::contract::ApiError;
use crate::store::{ids, Balance, StoreError, UploadRecord};
use std::rc::Rc;

/// The id of the user called `username` (1001 "no such user" when there is none).
pub async fn user_id_by_name(shard: &Rc<Shard>, username: &str) -> Result<u64, Refusal> {
    let lookup = UserIdByName {
        owner: ids::shard_for_username(username, shard.shard_count()),
        username: username.to_string(),
    };
    run_on_owner(shard, lookup).await
}

struct UserIdByName {
    username: String,
    owner: u16,
}

impl OwnerCommand for UserIdByName {
    type Output = u64;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<u64, Refusal> {
        let user = shard.store.borrow()?.user_by_name(&self.username)?;
        user.map(|user| user.id)
            .ok_or_else(|| malformed("no such user"))
    }
}

/// Reads a user's balance on its shard.
struct BalanceQuery {
    user_id: u64,
    owner: u16,
}

impl OwnerCommand for BalanceQuery {
    type Output = Balance;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Balance, Refusal> {
        Ok(shard.store.borrow()?.balance(self.user_id)?)
    }
}

/// The caller's balance (read on its owner shard).
pub async fn balance_of(shard: &Rc<Shard>, caller: &Caller) -> Result<Balance, Refusal> {
    let request = BalanceQuery {
        user_id: caller.user_id,
        owner: caller.owner,
    };
    run_on_owner(shard, request).await
}

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
        let catalog = &shard.shared.model_catalog;
        let reported = {
            let mut store = shard.store.borrow_mut()?;
            let reported = store.report(user_id, upload_id, now_ms, self.window_ms)?;
            // Its model's number, in the same group commit as the refund.
            if let Some(model) = catalog.record_for(user_id, &reported.0.model) {
                let _ = store.count_model_use(&model, 0, 1);
            }
            reported
        };
        shard.commit.durable().await.map_err(StoreError::Io)?;
        let model = &reported.0.model;
        catalog.count_report(user_id, model);
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
