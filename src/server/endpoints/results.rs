//! One upload after the fact: `GET /v2/result?id=` (its state) and `POST /v2/report?id=`
//! (the answer was wrong: refund once, within the report window), through server/queries.rs,
//! which serves the other protocols' result and report calls too.

use crate::server::call::Call;
use crate::server::queries;
use crate::server::reply::{ok, ApiResult};
use crate::server::upload::upload_json;
use serde_json::json;

pub async fn result(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let upload_id = call.fields()?.id("id")?;
    let record = queries::upload_of(call.shard, caller.user_id, upload_id).await?;
    Ok(ok(&upload_json(&record)))
}

pub async fn report(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let upload_id = call.fields()?.id("id")?;
    let (record, balance) = queries::report_upload(call.shard, caller.user_id, upload_id).await?;
    Ok(ok(
        &json!({ "refunded": record.cost, "points": balance.points }),
    ))
}
