//! The shard's store as the rest of the server reaches it: open, or closed while the disk
//! has failed (server/storage.rs fails, probes and reopens it).

use crate::store::{ClosedShard, ShardStore, StoreError};
use std::cell::{Ref, RefCell, RefMut};

/// The shard's store, as the rest of the server reaches it.
pub struct StoreSlot {
    held: RefCell<Held>,
    /// Why writes are refused: from a storage failure until the store is reopened.
    failure: RefCell<Option<String>>,
    /// Uploads refused (5004) after their reservation was written, withdrawn at the reopen.
    /// Bounded by the uploads in progress when the flush failed: afterwards nothing is
    /// reserved until the reopen empties it.
    unacknowledged: RefCell<Vec<u64>>,
}

// One per shard, moved only by a reopen: its size does not matter, an extra box on every
// store access would.
#[allow(clippy::large_enum_variant)]
pub enum Held {
    Open(ShardStore),
    /// Closed after a failure, and a reopen failed: the next probe tries again.
    Closed(ClosedShard),
    /// On the blocking pool, being closed and reopened.
    Away,
}

impl StoreSlot {
    pub fn new(store: ShardStore) -> StoreSlot {
        StoreSlot {
            held: RefCell::new(Held::Open(store)),
            failure: RefCell::new(None),
            unacknowledged: RefCell::new(Vec::new()),
        }
    }

    /// The store, to read. `Unavailable` while it is closed (being reopened after a failure).
    pub fn borrow(&self) -> Result<Ref<'_, ShardStore>, StoreError> {
        Ref::filter_map(self.held.borrow(), |held| match held {
            Held::Open(store) => Some(store),
            _ => None,
        })
        .map_err(|_| closed())
    }

    /// The store, to write. `Unavailable` from a storage failure until the store is reopened.
    pub fn borrow_mut(&self) -> Result<RefMut<'_, ShardStore>, StoreError> {
        self.writable()?;
        RefMut::filter_map(self.held.borrow_mut(), |held| match held {
            Held::Open(store) => Some(store),
            _ => None,
        })
        .map_err(|_| closed())
    }

    /// `Ok` when writes may be tried (checked before work that would end in one).
    pub fn writable(&self) -> Result<(), StoreError> {
        match self.failure.borrow().as_ref() {
            Some(failure) => Err(StoreError::Unavailable(failure.clone())),
            None => Ok(()),
        }
    }

    /// An upload whose reservation was written but whose client is refused, because the
    /// flush that would have made it durable failed: withdrawn when the store is reopened.
    /// Ignored while the store takes writes (the caller voids the upload at once then).
    pub fn withdraw_at_reopen(&self, upload_id: u64) {
        if self.failure.borrow().is_some() {
            self.unacknowledged.borrow_mut().push(upload_id);
        }
    }

    /// Takes what is held, to close and reopen it on the blocking pool.
    pub fn take(&self) -> Held {
        assert!(
            self.failure.borrow().is_some(),
            "only a failed store is reopened"
        );
        std::mem::replace(&mut *self.held.borrow_mut(), Held::Away)
    }

    /// Puts back what a reopen left: the reopened store, or the closed one.
    pub fn put(&self, held: Held) {
        let previous = std::mem::replace(&mut *self.held.borrow_mut(), held);
        assert!(matches!(previous, Held::Away), "one reopen at a time");
    }
}

impl StoreSlot {
    /// The storage failed: writes are refused with `reason` until [`StoreSlot::reopened`].
    pub fn fail(&self, reason: &str) {
        self.failure.replace(Some(reason.to_string()));
    }

    /// The uploads to withdraw at the reopen.
    pub fn unacknowledged(&self) -> Vec<u64> {
        self.unacknowledged.borrow().clone()
    }

    /// The store was reopened and every withdrawal made: writes are taken again.
    pub fn reopened(&self) {
        self.unacknowledged.borrow_mut().clear();
        self.failure.replace(None);
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the shard's database is closed until its disk takes writes".into())
}
