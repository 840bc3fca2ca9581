//! The server's sockets, set up in one place: each shard's SO_REUSEPORT API listeners (plain,
//! and TLS when `tls_listen` is set), the optional `metrics_listen` listener, and the start-up
//! probe that claims their ports.

use crate::config::Config;
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

/// The backlog of the metrics listener (scrapes are few).
const METRICS_BACKLOG: u32 = 64;

/// One SO_REUSEPORT socket per shard (the kernel spreads connections over them), with the
/// configured backlog.
pub fn api_listener(config: &Config) -> std::io::Result<TcpListener> {
    listening(
        bound_socket(config.network.listen, true)?,
        config.network.backlog,
    )
}

/// The TLS twin of `api_listener` on `tls_listen`: one SO_REUSEPORT socket per shard.
pub fn tls_listener(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    listening(bound_socket(address, true)?, backlog)
}

/// The `metrics_listen` socket: one, without SO_REUSEPORT, so that a second server on the
/// same address fails to start instead of taking half of the scrapes.
pub fn metrics_listener(address: SocketAddr) -> std::io::Result<TcpListener> {
    listening(bound_socket(address, false)?, METRICS_BACKLOG)
}

/// With port 0, binds (without listening) a SO_REUSEPORT socket to learn a free port and
/// rewrites `address` (`listen` or `tls_listen`) with it; the returned socket must be kept until every shard listens on
/// that port, so nothing else can take it meanwhile. A socket that does not listen receives
/// no connections.
///
/// With a fixed port, first checks that no other process listens there: SO_REUSEPORT would
/// otherwise let a second server silently share the port (and split the traffic).
pub fn claim_port(address: &mut SocketAddr) -> Result<Option<Socket>, String> {
    if address.port() != 0 {
        bound_socket(*address, false).map_err(|e| format!("cannot listen on {address}: {e}"))?;
        return Ok(None);
    }
    let bind = || -> std::io::Result<(Socket, SocketAddr)> {
        let socket = bound_socket(*address, true)?;
        let bound = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("not an IP address"))?;
        Ok((socket, bound))
    };
    let (socket, bound) = bind().map_err(|e| format!("resolving port 0 of {address}: {e}"))?;
    assert_ne!(bound.port(), 0, "the kernel assigned a port");
    *address = bound;
    Ok(Some(socket))
}

/// A bound, not yet listening TCP socket on `address`. SO_REUSEADDR so TIME_WAIT leftovers
/// do not count (a listening socket of another process still makes the bind fail).
fn bound_socket(address: SocketAddr, reuse_port: bool) -> std::io::Result<Socket> {
    let domain = if address.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

fn listening(socket: Socket, backlog: u32) -> std::io::Result<TcpListener> {
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    // SAFETY: the fd is a listening TCP socket we own; ownership moves into the listener.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}
