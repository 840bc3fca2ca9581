//! Daily counters: `GET /v2/user/stats?days=N` (the caller's) and `GET /v2/developer/stats`
//! (per `soft_id`, summed over every shard: its uploads come from users everywhere).

use crate::server::call::Call;
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{malformed, ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::server::upload::MAX_SOFT_ID_BYTES;
use crate::store::{DayStats, Role};
use serde_json::json;
use std::rc::Rc;

/// Stats days when `days` is absent.
const DEFAULT_STATS_DAYS: u64 = 7;

/// Whose rows to read.
#[derive(Clone)]
enum Subject {
    User(u64),
    SoftId(String),
}

/// One shard's rows of `subject` for the `days` days ending today.
struct DayRows {
    subject: Subject,
    days: u32,
    shard: u16,
}

impl OwnerCommand for DayRows {
    type Output = Vec<DayStats>;

    fn owner(&self) -> u16 {
        self.shard
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Vec<DayStats>, Refusal> {
        let now_ms = crate::clock::unix_now_ms();
        let store = shard.store.borrow()?;
        let rows = match &self.subject {
            Subject::User(user_id) => store.user_stats(*user_id, self.days, now_ms)?,
            Subject::SoftId(soft_id) => store.soft_stats(soft_id, self.days, now_ms)?,
        };
        assert_eq!(rows.len(), self.days as usize, "one row per day");
        Ok(rows)
    }
}

/// `days`: 1 up to the retention (older days are gone).
fn stats_days(call: &Call) -> Result<u32, Refusal> {
    let days = call.fields()?.number("days")?.unwrap_or(DEFAULT_STATS_DAYS);
    let retention = u64::from(call.shard.config().store.retention_days).max(1);
    if days == 0 || days > retention {
        return Err(malformed(format!("days must be 1..={retention}")));
    }
    Ok(days as u32)
}

pub async fn user_stats(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let request = DayRows {
        subject: Subject::User(caller.user_id),
        days: stats_days(call)?,
        shard: caller.owner,
    };
    let rows = run_on_owner(call.shard, request).await?;
    Ok(ok(&json!({ "days": rows })))
}

/// A developer's `soft_id` is their own user id (decimal); an admin may name any with
/// `?soft_id=`. Each shard counts its users' part; the parts are summed per day here.
pub async fn developer_stats(call: &Call<'_>) -> ApiResult {
    let caller = call
        .caller_with_role(&[Role::Developer, Role::Admin])
        .await?;
    let days = stats_days(call)?;
    let fields = call.fields()?;
    let soft_id = match (caller.role, fields.text("soft_id")) {
        (Role::Admin, Some(soft_id)) if !soft_id.is_empty() => soft_id.to_string(),
        _ => caller.user_id.to_string(),
    };
    if soft_id.len() > MAX_SOFT_ID_BYTES {
        // No upload can carry it: refused like the upload would be.
        return Err(malformed(format!(
            "soft_id longer than {MAX_SOFT_ID_BYTES} bytes"
        )));
    }
    let mut total: Vec<DayStats> = Vec::new();
    for shard in 0..call.shard.shard_count() {
        let part = DayRows {
            subject: Subject::SoftId(soft_id.clone()),
            days,
            shard,
        };
        add_days(&mut total, run_on_owner(call.shard, part).await?);
    }
    Ok(ok(&json!({ "soft_id": soft_id, "days": total })))
}

/// Adds one shard's rows to the total, day by day (every part has the same days).
fn add_days(total: &mut Vec<DayStats>, part: Vec<DayStats>) {
    if total.is_empty() {
        *total = part;
        return;
    }
    assert_eq!(total.len(), part.len(), "every shard answers the same days");
    for (sum, row) in total.iter_mut().zip(part) {
        assert_eq!(sum.day, row.day, "parts come in the same day order");
        sum.counters.add(&row.counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DayCounters;

    fn row(day: &str, uploads: u64) -> DayStats {
        DayStats {
            day: day.into(),
            counters: DayCounters {
                uploads,
                points_spent: uploads as i64,
                ..DayCounters::default()
            },
        }
    }

    #[test]
    fn parts_are_summed_per_day() {
        let mut total = Vec::new();
        add_days(&mut total, vec![row("2026-11-28", 1), row("2026-11-29", 2)]);
        add_days(
            &mut total,
            vec![row("2026-11-28", 10), row("2026-11-29", 20)],
        );
        assert_eq!(total, vec![row("2026-11-28", 11), row("2026-11-29", 22)]);
    }
}
