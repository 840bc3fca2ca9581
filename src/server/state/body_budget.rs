//! How many request-body bytes a shard holds at once: the memory clients can make the server
//! hold before their requests are answered. A body's grant follows the memory the body
//! really takes (its buffer's capacity, which grows as bytes arrive, and the connection
//! buffer's growth while it reads), so a client that declares 1 MiB and sends 200 bytes
//! costs a few hundred bytes, and holding the budget means really sending it. A body whose
//! next growth does not fit is refused (5001, 503 with Retry-After) and dropped instead of
//! waiting: a waiting request would itself be memory held open by whoever spent the budget.
//!
//! The shard runs one connection at a time and checks each growth before the connection
//! awaits again, so the memory of bodies in flight exceeds the limit by at most the one
//! growth step just taken (less than `max_body_bytes`).

use std::cell::Cell;
use std::rc::Rc;

/// One shard's budget (single-threaded: the shard's executor owns it).
pub struct BodyBudget {
    limit_bytes: usize,
    in_flight_bytes: Rc<Cell<usize>>,
}

/// A body's share of the budget, given back when dropped.
#[must_use = "the bytes are counted only while the grant lives"]
pub struct BodyGrant {
    bytes: usize,
    limit_bytes: usize,
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

    /// An empty grant for one body, grown with [`BodyGrant::resize`] as its bytes arrive.
    pub fn grant(&self) -> BodyGrant {
        BodyGrant {
            bytes: 0,
            limit_bytes: self.limit_bytes,
            in_flight_bytes: self.in_flight_bytes.clone(),
        }
    }

    /// Bytes held by bodies being received now.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes.get()
    }
}

impl BodyGrant {
    /// Records that the body now holds `bytes`. `false` when it grew past what the budget
    /// has left beside the other bodies: the body must then be refused and dropped. (The
    /// bytes are counted either way, so the budget stays true until the grant is dropped.)
    pub fn resize(&mut self, bytes: usize) -> bool {
        let others_bytes = self.in_flight_bytes.get() - self.bytes;
        self.in_flight_bytes.set(others_bytes + bytes);
        let grew = bytes > self.bytes;
        self.bytes = bytes;
        !grew || others_bytes + bytes <= self.limit_bytes
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
    fn grants_grow_within_the_limit_and_come_back_when_dropped() {
        let budget = BodyBudget::new(100);
        let mut first = budget.grant();
        assert!(first.resize(60));
        let mut second = budget.grant();
        assert!(!second.resize(41), "60 + 41 > 100");
        assert_eq!(budget.in_flight_bytes(), 101, "counted until dropped");
        assert!(second.resize(40), "shrinking back fits");
        assert_eq!(budget.in_flight_bytes(), 100);
        assert!(second.resize(10), "shrinking always fits");
        assert!(first.resize(90), "exactly fills it");
        drop(first);
        assert_eq!(budget.in_flight_bytes(), 10);
        drop(second);
        assert_eq!(budget.in_flight_bytes(), 0);
        assert!(!budget.grant().resize(101), "never more than the limit");
        assert_eq!(budget.in_flight_bytes(), 0);
    }
}
