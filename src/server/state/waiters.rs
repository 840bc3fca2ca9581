//! The requests waiting for their upload's result (`wait=1`), one per upload, bounded
//! (`max_waiters_per_shard`): an upload that would need a place when none is left is refused
//! 5001 before its points are reserved (server/upload/wait.rs waits).

use crate::contract::ApiError;
use crate::store::{UploadRecord, UploadStatus};
use std::cell::RefCell;
use std::collections::HashMap;

/// A finished upload and, when it failed, the contract's code for why (3003 for an image
/// the engine could not read: the client's error; 5003 for the server's).
#[derive(Debug)]
pub struct Finished {
    pub record: UploadRecord,
    pub failure: Option<ApiError>,
}

/// The requests waiting for their upload's result, one per upload (the request that made it).
pub struct ResultWaiters {
    max_waiters: usize,
    by_upload: RefCell<HashMap<u64, flume::Sender<Finished>>>,
}

/// A registered waiter's end: resolves with the finished upload.
pub type Waiter = flume::Receiver<Finished>;

impl ResultWaiters {
    pub fn new(max_waiters: usize) -> ResultWaiters {
        assert!(max_waiters > 0);
        ResultWaiters {
            max_waiters,
            by_upload: RefCell::new(HashMap::new()),
        }
    }

    /// Whether one more request may wait right now (checked before reserving points; the
    /// shard runs one task at a time between awaits, so the place is still there when
    /// `register` follows without an await in between).
    pub fn has_room(&self) -> bool {
        self.by_upload.borrow().len() < self.max_waiters
    }

    /// Registers the upload's waiter. The caller checked `has_room` with no await since.
    pub fn register(&self, upload_id: u64) -> Waiter {
        let (sender, receiver) = flume::bounded(1);
        let mut by_upload = self.by_upload.borrow_mut();
        assert!(by_upload.len() < self.max_waiters, "checked by has_room");
        let earlier = by_upload.insert(upload_id, sender);
        assert!(earlier.is_none(), "one waiter per upload");
        receiver
    }

    /// Removes the upload's waiter (it stopped waiting, or its upload was voided).
    pub fn forget(&self, upload_id: u64) {
        self.by_upload.borrow_mut().remove(&upload_id);
    }

    /// Hands the finished upload to its waiter, if one waits.
    pub fn wake(&self, finished: Finished) {
        let status = finished.record.status;
        assert_ne!(status, UploadStatus::Pending, "only finished uploads wake");
        assert_eq!(finished.failure.is_some(), status == UploadStatus::Failed);
        if let Some(waiter) = self.by_upload.borrow_mut().remove(&finished.record.id) {
            let _ = waiter.try_send(finished);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, status: UploadStatus) -> UploadRecord {
        UploadRecord {
            id,
            user_id: 1,
            status,
            result: None,
            confidence: None,
            error: None,
            cost: 1,
            created_at_ms: 0,
            finished_at_ms: None,
            reported: false,
            soft_id: None,
            cache_hit: false,
            model: "old".into(),
            image_hash: [0; 16],
        }
    }

    fn done(id: u64) -> Finished {
        Finished {
            record: record(id, UploadStatus::Done),
            failure: None,
        }
    }

    #[test]
    fn the_table_is_bounded_and_wakes_once() {
        let waiters = ResultWaiters::new(2);
        let first = waiters.register(1);
        let _second = waiters.register(2);
        assert!(!waiters.has_room(), "two of two places taken");
        waiters.wake(done(1));
        assert_eq!(first.try_recv().unwrap().record.id, 1);
        assert!(waiters.has_room());
        waiters.forget(2);
        assert!(waiters.by_upload.borrow().is_empty());
        // A result with nobody waiting (an async upload) is fine.
        waiters.wake(Finished {
            record: record(3, UploadStatus::Failed),
            failure: Some(ApiError::RecognitionFailed),
        });
    }
}
