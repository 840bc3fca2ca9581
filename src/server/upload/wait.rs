//! Step 4 of an upload with `wait=1`: the wait itself, in the shard's bounded table of
//! requests waiting for a result (server/state/waiters.rs).

use super::Accepted;
use crate::server::state::{ResultWaiters, Waiter};
use crate::store::{UploadRecord, UploadStatus};
use std::time::Duration;

/// Waits up to `timeout_ms` for the upload's result: `Finished` (done, or failed and
/// refunded), or `Pending` when the time is up (the upload goes on; the client polls).
pub async fn wait_for_result(
    waiters: &ResultWaiters,
    record: UploadRecord,
    waiter: Waiter,
    timeout_ms: u64,
) -> Accepted {
    let arrived = async { waiter.recv_async().await.ok() };
    let timed_out = async {
        glommio::timer::sleep(Duration::from_millis(timeout_ms)).await;
        None
    };
    match futures_lite::future::or(arrived, timed_out).await {
        Some(finished) => {
            assert_ne!(
                finished.record.status,
                UploadStatus::Pending,
                "woken when finished"
            );
            Accepted::Finished(finished)
        }
        None => {
            waiters.forget(record.id);
            Accepted::Pending(record)
        }
    }
}
