//! A shard's open connections: their sockets, their waits for the client (between requests,
//! or for a read with a deadline: `read_watch.rs`), and how many each client address holds
//! (conn.rs serves them; shard_loops.rs accepts them and sweeps their read deadlines).

use super::read_watch::ReadWatch;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Instant;

/// A registered connection: its socket, its wait for the client and the key of its client's
/// address.
struct OpenConnection {
    fd: RawFd,
    watch: Rc<ReadWatch>,
    address: ClientAddress,
}

/// What one client is counted as: its IPv4 address, or the /64 of its IPv6 address (one host
/// or home network usually holds a whole /64, so counting single IPv6 addresses would give
/// it 2^64 shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddress(u128);

impl ClientAddress {
    pub fn of(peer: IpAddr) -> ClientAddress {
        match peer.to_canonical() {
            IpAddr::V4(v4) => ClientAddress(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => ClientAddress(u128::from(v6) & !u128::from(u64::MAX)),
        }
    }
}

/// Why an accepted connection was closed at once.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectionRefused {
    /// The shard holds `max_connections_per_shard` connections.
    ShardFull,
    /// The client's address holds its share of `max_connections_per_address`.
    AddressFull,
}

/// A shard's open connections: their sockets, whether each waits between requests (those are
/// shut down at once on SIGTERM; the others finish their request first), and how many each
/// client address holds.
pub struct ConnectionSet {
    open: RefCell<HashMap<u64, OpenConnection>>,
    /// Open connections by client address; an address leaves the map with its last one, so
    /// the map is never larger than `open`.
    per_address: RefCell<HashMap<ClientAddress, usize>>,
    /// The most connections one address holds on this shard.
    per_address_limit: usize,
    next_id: Cell<u64>,
}

impl ConnectionSet {
    pub fn new(per_address_limit: usize) -> ConnectionSet {
        assert!(per_address_limit > 0);
        ConnectionSet {
            open: RefCell::default(),
            per_address: RefCell::default(),
            per_address_limit,
            next_id: Cell::new(0),
        }
    }

    pub fn count(&self) -> usize {
        self.open.borrow().len()
    }

    /// Registers a just-accepted connection's socket (before its task starts, so the counts
    /// the next accept checks include it), unless the shard or the client's address is at its
    /// limit.
    pub fn add(
        &self,
        fd: RawFd,
        peer: IpAddr,
        shard_limit: usize,
    ) -> Result<Registration, ConnectionRefused> {
        if self.count() >= shard_limit {
            return Err(ConnectionRefused::ShardFull);
        }
        let address = ClientAddress::of(peer);
        let mut per_address = self.per_address.borrow_mut();
        let held = per_address.entry(address).or_insert(0);
        if *held >= self.per_address_limit {
            return Err(ConnectionRefused::AddressFull);
        }
        *held += 1;
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let watch = Rc::new(ReadWatch::default());
        let entry = OpenConnection {
            fd,
            watch: watch.clone(),
            address,
        };
        let earlier = self.open.borrow_mut().insert(id, entry);
        assert!(earlier.is_none(), "connection ids are not reused");
        Ok(Registration { id, watch, peer })
    }

    /// Forgets a connection that ended.
    pub fn remove(&self, id: u64) {
        let removed = self.open.borrow_mut().remove(&id);
        let removed = removed.expect("a connection is removed once");
        let mut per_address = self.per_address.borrow_mut();
        let held = per_address
            .get_mut(&removed.address)
            .expect("an open connection's address is counted");
        assert!(*held > 0);
        *held -= 1;
        if *held == 0 {
            per_address.remove(&removed.address);
        }
    }

    /// Ends connections waiting between requests: shutting the read side down makes their
    /// pending read return end-of-stream. Connections inside a request finish it first and
    /// then see the stop (the request loop checks it before waiting again).
    pub fn close_idle(&self) {
        for OpenConnection { fd, watch, .. } in self.open.borrow().values() {
            if watch.is_idle() {
                // SAFETY: the fd belongs to a connection that is still open (its entry is
                // removed when its task ends); shutdown does not close or reuse the fd.
                unsafe { libc::shutdown(*fd, libc::SHUT_RD) };
            }
        }
    }

    /// The sweep: ends every read whose deadline is `now` or earlier (its task is woken and
    /// its read returns `TimedOut`).
    pub fn expire_reads(&self, now: Instant) {
        for connection in self.open.borrow().values() {
            connection.watch.expire_if_due(now);
        }
    }
}

/// A connection's entry in its shard's `ConnectionSet`.
pub struct Registration {
    pub id: u64,
    /// Its wait for the client: idle between requests, or reading with a deadline.
    pub watch: Rc<ReadWatch>,
    /// The client's address.
    pub peer: IpAddr,
}
