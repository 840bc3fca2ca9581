//! The shard's memo of balances it read: `GET /v2/user/point` and the protocols' balance
//! requests read a balance per request, and sled's `get` was 12 % of that request's
//! instructions (its page cache, epoch guard and LRU). The memo is only a copy: every
//! transaction that moves points (all of them go through `journal::apply_movement`) makes the
//! store forget the user's entry once it has committed (or failed), so a read after a
//! movement reads the tree again. The store is owned by one thread, so nothing can read
//! between a commit and its forget.

use super::records::Balance;
use std::cell::RefCell;
use std::collections::HashMap;

/// Balances remembered before the memo starts over (about 3 MiB of entries at most).
pub const MAX_REMEMBERED_BALANCES: usize = 65_536;

#[derive(Default)]
pub(super) struct BalanceMemo {
    /// Keyed by user id (not chosen by clients: foldhash, see auth's `TokenCache`).
    balances: RefCell<HashMap<u64, Balance, foldhash::fast::RandomState>>,
}

impl BalanceMemo {
    pub(super) fn get(&self, user_id: u64) -> Option<Balance> {
        self.balances.borrow().get(&user_id).copied()
    }

    pub(super) fn remember(&self, user_id: u64, balance: Balance) {
        let mut balances = self.balances.borrow_mut();
        if balances.len() >= MAX_REMEMBERED_BALANCES {
            // Starting over is simpler than LRU and costs one tree read per active user.
            balances.clear();
        }
        balances.insert(user_id, balance);
        assert!(balances.len() <= MAX_REMEMBERED_BALANCES);
    }

    /// After a transaction that may have moved `user_id`'s points, committed or not.
    pub(super) fn forget(&self, user_id: u64) {
        self.balances.borrow_mut().remove(&user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_forgets_and_stays_bounded() {
        let memo = BalanceMemo::default();
        let balance = Balance {
            points: 5,
            reserved: 1,
        };
        memo.remember(7, balance);
        assert_eq!(memo.get(7), Some(balance));
        memo.forget(7);
        assert_eq!(memo.get(7), None);
        for user_id in 0..=MAX_REMEMBERED_BALANCES as u64 {
            memo.remember(user_id, balance);
        }
        assert!(memo.balances.borrow().len() <= MAX_REMEMBERED_BALANCES);
        assert_eq!(memo.get(MAX_REMEMBERED_BALANCES as u64), Some(balance));
    }
}
