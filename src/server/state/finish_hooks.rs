//! What an upload's owner shard runs when the upload finishes, for the requests that asked for
//! more than the answer (the compat protocols' callbacks), one per upload and bounded
//! (`max_waiters_per_shard`): an upload that would need a place when none is left is refused
//! 5001 before its points are reserved. Generic over the hook, so that this table knows
//! nothing of what a hook does.

use std::cell::RefCell;
use std::collections::HashMap;

/// The hooks of uploads not finished yet, by upload id.
pub struct FinishHooks<H> {
    max_entries: usize,
    by_upload: RefCell<HashMap<u64, H>>,
}

impl<H> FinishHooks<H> {
    pub fn new(max_entries: usize) -> FinishHooks<H> {
        assert!(max_entries > 0);
        FinishHooks {
            max_entries,
            by_upload: RefCell::new(HashMap::new()),
        }
    }

    pub fn has_room(&self) -> bool {
        self.by_upload.borrow().len() < self.max_entries
    }

    /// The caller checked `has_room` with no await since.
    pub fn register(&self, upload_id: u64, hook: H) {
        let mut by_upload = self.by_upload.borrow_mut();
        assert!(by_upload.len() < self.max_entries, "checked by has_room");
        let earlier = by_upload.insert(upload_id, hook);
        assert!(earlier.is_none(), "one hook per upload");
    }

    /// The upload's hook, to run now that it finished (or to drop: it was voided unrun).
    pub fn take(&self, upload_id: u64) -> Option<H> {
        self.by_upload.borrow_mut().remove(&upload_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_bounded() {
        let table = FinishHooks::new(1);
        table.register(1, "hook");
        assert!(!table.has_room());
        assert_eq!(table.take(1), Some("hook"));
        assert!(table.has_room() && table.take(1).is_none());
    }
}
