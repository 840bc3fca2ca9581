//! Forwarded writes awaiting their acknowledgement (docs/cluster.md, "Forwarded writes").
//!
//! A request another node forwarded here may charge points (an upload reserved, a cached
//! answer charged). Its answer goes back over NATS; the forwarding node acknowledges each
//! answer it received in time (a small message, idempotent). A charge whose answer is not
//! acknowledged within `nats_request_timeout_ms` + `forward_ack_timeout_ms` of the request's
//! arrival is given back by its shard (pending voided, done refunded): the forwarding node
//! answered its client 5001 by then, and a 5001 costs nothing.
//!
//! This table decides, under its lock, which of the two comes first for each request: the
//! acknowledgement or the window's end (a tag leaves it once). Each charge also waits on its
//! shard's disk (store/awaiting_ack.rs), written in the charge's own group commit and ended
//! with it: a node killed inside the window finds the charges at its next start, gives back
//! those whose window passed and puts the others back here (`charged` with what is left of
//! their window), so that an acknowledgement that still comes is honoured once.

use super::wire::ForwardTag;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Most forwarded requests with charges awaiting their acknowledgement at once. Each lives
/// for the acknowledgement window only; beyond the bound a charge is kept untracked (as
/// before acknowledgements: charged, whatever the forwarding node answered), and counted.
pub const MAX_UNCONFIRMED: usize = 65_536;

/// What becomes of forwarded charges on their shard (`Settle`, bridge.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Acknowledged: the charges stay; their wait on disk ends.
    Kept,
    /// Not acknowledged in time: given back, with this reason in the journal.
    GivenBack(String),
}

/// One upload a forwarded request charged: its owner shard and its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    pub shard: u16,
    pub upload_id: u64,
}

struct Awaiting {
    charges: Vec<Charge>,
    /// When the charges are given back unless acknowledged.
    deadline: Instant,
}

/// The owner node's table of forwarded charges not acknowledged yet.
#[derive(Default)]
pub struct Unconfirmed {
    table: Mutex<HashMap<ForwardTag, Awaiting>>,
}

impl Unconfirmed {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ForwardTag, Awaiting>> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a charge of the forwarded request `tag`, to give back at `deadline` unless
    /// acknowledged. False when the table is full (the charge stays, untracked).
    pub fn charged(&self, tag: ForwardTag, charge: Charge, deadline: Instant) -> bool {
        let mut table = self.lock();
        if table.len() >= MAX_UNCONFIRMED && !table.contains_key(&tag) {
            return false;
        }
        let awaiting = table.entry(tag).or_insert_with(|| Awaiting {
            charges: Vec::new(),
            deadline,
        });
        awaiting.charges.push(charge);
        true
    }

    /// The forwarding node received the answer: its charges stay (returned, to end their
    /// wait on disk too). Idempotent (a repeated acknowledgement, or one for a request that
    /// charged nothing or whose charges were given back, returns nothing).
    pub fn acknowledged(&self, tag: ForwardTag) -> Option<Vec<Charge>> {
        self.lock().remove(&tag).map(|awaiting| awaiting.charges)
    }

    /// Takes the requests whose deadline passed without an acknowledgement, with their
    /// charges, to give back.
    pub fn expired(&self, now: Instant) -> Vec<(ForwardTag, Vec<Charge>)> {
        let mut table = self.lock();
        let tags: Vec<ForwardTag> = table
            .iter()
            .filter(|(_, awaiting)| awaiting.deadline <= now)
            .map(|(tag, _)| *tag)
            .collect();
        tags.into_iter()
            .filter_map(|tag| table.remove(&tag).map(|awaiting| (tag, awaiting.charges)))
            .collect()
    }

    /// Puts back charges that could not be handed to their shard yet (its inbox full), to
    /// try again at `deadline`.
    pub fn retry(&self, tag: ForwardTag, charges: Vec<Charge>, deadline: Instant) {
        let mut table = self.lock();
        let awaiting = table.entry(tag).or_insert_with(|| Awaiting {
            charges: Vec::new(),
            deadline,
        });
        awaiting.charges.extend(charges);
    }

    /// Takes every charge on shard `shard` still awaiting its acknowledgement (the node
    /// stops: no acknowledgement can reach it any more).
    pub fn take_shard(&self, shard: u16) -> Vec<u64> {
        let mut taken = Vec::new();
        self.lock().retain(|_, awaiting| {
            awaiting
                .charges
                .retain(|charge| match charge.shard == shard {
                    true => {
                        taken.push(charge.upload_id);
                        false
                    }
                    false => true,
                });
            !awaiting.charges.is_empty()
        });
        taken
    }

    /// Forwarded requests whose charges await their acknowledgement.
    pub fn awaiting(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unacknowledged_charges_expire_and_acknowledged_ones_stay() {
        let table = Unconfirmed::default();
        let now = Instant::now();
        let (early, late) = (now + Duration::from_secs(1), now + Duration::from_secs(9));
        let first = ForwardTag { from: 2, id: 7 };
        let second = ForwardTag { from: 3, id: 7 };
        let third = ForwardTag { from: 2, id: 8 };
        let charge = |upload_id| Charge {
            shard: 0,
            upload_id,
        };
        assert!(table.charged(first, charge(1), early));
        assert!(
            table.charged(first, charge(2), late),
            "one deadline per request"
        );
        assert!(table.charged(second, charge(3), early));
        assert!(table.charged(third, charge(4), late));
        assert_eq!(table.acknowledged(second), Some(vec![charge(3)]));
        assert_eq!(table.acknowledged(second), None, "idempotent");
        assert!(table.expired(now).is_empty());
        let expired = table.expired(early);
        assert_eq!(expired, vec![(first, vec![charge(1), charge(2)])]);
        assert_eq!(table.awaiting(), 1);
        table.retry(first, vec![charge(1)], late);
        assert_eq!(table.expired(late).len(), 2);
        assert_eq!(table.awaiting(), 0);

        let on = |shard, upload_id| Charge { shard, upload_id };
        assert!(table.charged(first, on(0, 5), late));
        assert!(table.charged(first, on(1, 6), late));
        assert!(table.charged(second, on(0, 7), late));
        let mut taken = table.take_shard(0);
        taken.sort();
        assert_eq!(taken, vec![5, 7]);
        assert_eq!(table.awaiting(), 1, "shard 1's charge stays");
        assert_eq!(table.expired(late), vec![(first, vec![on(1, 6)])]);
    }
}
