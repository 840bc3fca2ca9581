//! Closing a shard's database after its storage failed, and opening it again in the same
//! process once the disk takes writes.
//!
//! Why reopen: after one failed write or fsync (disk full, EIO), sled 0.34 keeps that error
//! (its "global error") and refuses every later write and flush of that database, also once
//! space is back; only opening the database again clears it. Opening again is crash
//! recovery: sled reads back what reached the disk, so whatever the failed store held only in
//! memory is gone, and none of it was acknowledged (an acknowledgement waits for a flush that
//! covers the write, and that flush failed).
//!
//! sled holds a lock on its file until every handle of the database is dropped, so the old
//! store is closed (all of its handles dropped) before the new one opens; in between, the
//! server holds a [`ClosedShard`].

use super::{ShardStore, StoreError};
use std::path::PathBuf;

/// A shard whose database was closed, with what opening it again needs.
#[derive(Debug)]
pub struct ClosedShard {
    data_dir: PathBuf,
    shard: u16,
    shard_count: u16,
    node_id: u16,
    /// The closed store issued ids up to this millisecond (some perhaps never written): the
    /// reopened store issues ids after it.
    ids_until_ms: u64,
    /// The closed store issued task ids below this serial: the reopened one goes on from it.
    task_serials_from: u64,
}

impl ShardStore {
    /// Drops every sled handle of this store and returns what reopening it needs. The caller
    /// must have dropped its other handles first (`Flusher`s), or the lock stays held. Blocks
    /// while sled's threads stop: call it off the reactor.
    pub fn close(self) -> ClosedShard {
        let closed = ClosedShard {
            data_dir: self.data_dir.clone(),
            shard: self.shard,
            shard_count: self.shard_count,
            node_id: self.node_id,
            ids_until_ms: self.ids.last_ms(),
            task_serials_from: self.task_serials.next_serial(),
        };
        // sled's log unwraps an fsync when it is dropped without an error of its own; after
        // a failed disk that may panic. The database is closed either way (its handles are
        // gone), and opening it again recovers from what is on disk.
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(self)));
        if dropped.is_err() {
            log_line!(
                "aiocr: shard {}: sled panicked while closing its database (above); \
                 reopening recovers what is on disk",
                closed.shard
            );
        }
        closed
    }
}

impl ClosedShard {
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// Opens the shard again, with every check `ShardStore::open` makes (identity, extent);
    /// its ids and task ids continue after those of the closed store. Blocks (sled's recovery, and up to
    /// a second for the old database's lock): call it off the reactor.
    pub fn reopen(&self) -> Result<ShardStore, StoreError> {
        let mut store =
            ShardStore::open(&self.data_dir, self.shard, self.shard_count, self.node_id)?;
        store.ids.resume_after(self.ids_until_ms);
        assert!(store.ids.last_ms() > self.ids_until_ms, "ids never repeat");
        store.task_serials.resume_at(self.task_serials_from);
        Ok(store)
    }
}
