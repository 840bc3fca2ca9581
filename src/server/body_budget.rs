//! How many request-body bytes a shard receives at once: the memory a client can make the
//! server hold before its request is answered. Each body takes its declared length from the
//! budget before its first byte is read (a chunked body, whose length is unknown, takes the
//! most a body may be) and gives it back when it is complete or abandoned. A body that does
//! not fit is refused at once (5001, 503 with Retry-After) instead of waiting: a waiting
//! request would itself be a connection held open by whoever exhausts the budget.
//!
//! Bytes are counted by declaration, not arrival, so the bound holds even for bodies that
//! stall half-way: 4 000 stalled uploads hold at most `body_bytes_in_flight_per_shard` per
//! shard, whatever their heads claim.

use std::cell::Cell;
use std::rc::Rc;

/// One shard's budget (single-threaded: the shard's executor owns it).
pub struct BodyBudget {
    limit_bytes: usize,
    in_flight_bytes: Rc<Cell<usize>>,
}

/// A body's share of the budget, given back when dropped.
#[must_use = "the bytes are reserved only while the grant lives"]
pub struct BodyGrant {
    bytes: usize,
    in_flight_bytes: Rc<Cell<usize>>,
}

impl BodyBudget {
    pub fn new(limit_bytes: usize) -> BodyBudget {
        assert!(
            limit_bytes > 0,
            "config validation keeps the budget positive"
        );
        BodyBudget {
            limit_bytes,
            in_flight_bytes: Rc::new(Cell::new(0)),
        }
    }

    /// Reserves `bytes` for one body; `None` when they do not fit beside the bodies being
    /// received (the body must then be refused unread).
    pub fn reserve(&self, bytes: usize) -> Option<BodyGrant> {
        let in_flight_bytes = self.in_flight_bytes.get();
        assert!(in_flight_bytes <= self.limit_bytes);
        if bytes > self.limit_bytes - in_flight_bytes {
            return None;
        }
        self.in_flight_bytes.set(in_flight_bytes + bytes);
        Some(BodyGrant {
            bytes,
            in_flight_bytes: self.in_flight_bytes.clone(),
        })
    }

    /// Bytes reserved by bodies being received now.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes.get()
    }
}

impl Drop for BodyGrant {
    fn drop(&mut self) {
        let in_flight_bytes = self.in_flight_bytes.get();
        assert!(in_flight_bytes >= self.bytes, "a grant is given back once");
        self.in_flight_bytes.set(in_flight_bytes - self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_fit_within_the_limit_and_come_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let first = budget.reserve(60).expect("fits");
        assert!(budget.reserve(41).is_none(), "60 + 41 > 100");
        let second = budget.reserve(40).expect("exactly fills it");
        assert_eq!(budget.in_flight_bytes(), 100);
        assert!(budget.reserve(1).is_none());
        assert!(budget.reserve(0).is_some(), "an empty body always fits");
        drop(first);
        assert_eq!(budget.in_flight_bytes(), 40);
        drop(second);
        assert_eq!(budget.in_flight_bytes(), 0);
        assert!(budget.reserve(101).is_none(), "never more than the limit");
    }
}
