//! `GET /v2/user/uploads?before=<id>&limit=N`: the caller's uploads, newest first, a page at
//! a time (the console's usage page). `next_before` is the id to pass as `before` for the
//! next page; it is absent on the last page.

use crate::server::call::Call;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{malformed, ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::server::upload::upload_json;
use crate::store::{UploadRecord, MAX_UPLOADS_PAGE};
use serde_json::json;
use std::rc::Rc;

/// Uploads per page when `limit` is absent.
const DEFAULT_LIMIT: usize = 20;

/// One page of a user's uploads, read on the user's shard (where their uploads are).
struct UploadsPage {
    user_id: u64,
    owner: u16,
    before: Option<u64>,
    limit: usize,
}

impl UploadsPage {
    async fn parse(call: &Call<'_>) -> Result<UploadsPage, Refusal> {
        let caller = call.caller().await?;
        let fields = call.fields()?;
        let before = match fields.text("before") {
            None => None,
            Some(_) => Some(fields.id("before")?),
        };
        let limit = fields.number("limit")?.unwrap_or(DEFAULT_LIMIT as u64);
        if limit == 0 || limit > MAX_UPLOADS_PAGE as u64 {
            return Err(malformed(format!("limit must be 1..={MAX_UPLOADS_PAGE}")));
        }
        Ok(UploadsPage {
            user_id: caller.user_id,
            owner: caller.owner,
            before,
            limit: limit as usize,
        })
    }
}

impl OwnerCommand for UploadsPage {
    type Output = Vec<UploadRecord>;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Vec<UploadRecord>, Refusal> {
        let page = shard
            .store
            .borrow()?
            .uploads_page(self.user_id, self.before, self.limit)?;
        assert!(page.len() <= self.limit, "a page holds at most its limit");
        Ok(page)
    }
}

pub async fn list(call: &Call<'_>) -> ApiResult {
    let request = UploadsPage::parse(call).await?;
    let limit = request.limit;
    let page = run_on_owner(call.shard, request).await?;
    let uploads: Vec<serde_json::Value> = page.iter().map(listed_upload).collect();
    let mut data = json!({ "uploads": uploads });
    // A full page may have more behind it; a short one is the last.
    if let (true, Some(oldest)) = (page.len() == limit, page.last()) {
        data["next_before"] = json!(oldest.id.to_string());
    }
    Ok(ok(&data))
}

/// `/v2/result`'s view of the upload, plus the model it asked for.
fn listed_upload(record: &UploadRecord) -> serde_json::Value {
    let mut item = upload_json(record);
    item["model"] = json!(record.model);
    item
}
