//! The URL `/v2/servers` announces (`public_url`). When it is unset and `listen` is every
//! address (`0.0.0.0` or `[::]`), `http://0.0.0.0:PORT` would reach nothing: the server
//! announces the host's primary address instead, the one its routes send traffic from, and
//! says so at start-up (with how to announce another). A node behind a proxy or NAT sets
//! `public_url`.

use crate::config::NetworkConfig;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// Addresses the routing table is asked about (documentation ranges, RFC 5737 and 3849): a
/// UDP `connect` picks the route and its source address without sending anything.
const PROBE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PROBE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// Fills in `public_url` when it is unset and `listen` is every address (the port already
/// resolved), saying on the log which URL it chose and how to choose another.
pub fn settle(config: &mut NetworkConfig) {
    if !config.public_url.is_empty() || !config.listen.ip().is_unspecified() {
        return;
    }
    let (address, why) = match primary_address(config.listen.ip()) {
        Some(address) => (address, "this host's primary address"),
        None => (
            loopback_of(config.listen.ip()),
            "no route out of this host, so only local clients can use it",
        ),
    };
    config.public_url = format!("http://{}", SocketAddr::new(address, config.listen.port()));
    log_line!(
        "aiocr: /v2/servers announces {} ({why}; listen is {}); set public_url to announce another",
        config.public_url,
        config.listen
    );
}

/// The source address of this host's route to the outside, of `listen`'s family.
fn primary_address(listen: IpAddr) -> Option<IpAddr> {
    let (bind, probe): (SocketAddr, SocketAddr) = match listen {
        IpAddr::V4(_) => (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (IpAddr::V4(PROBE_V4), 9).into(),
        ),
        IpAddr::V6(_) => (
            (Ipv6Addr::UNSPECIFIED, 0).into(),
            (IpAddr::V6(PROBE_V6), 9).into(),
        ),
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    let address = socket.local_addr().ok()?.ip();
    (!address.is_unspecified() && !address.is_loopback()).then_some(address)
}

fn loopback_of(listen: IpAddr) -> IpAddr {
    match listen {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, public_url: &str) -> NetworkConfig {
        NetworkConfig {
            listen: listen.parse().unwrap(),
            public_url: public_url.to_string(),
            ..NetworkConfig::default()
        }
    }

    #[test]
    fn a_set_public_url_or_a_specific_listen_address_is_kept() {
        let mut set = config("0.0.0.0:8080", "https://captcha.example");
        settle(&mut set);
        assert_eq!(set.public_url(), "https://captcha.example");
        let mut specific = config("127.0.0.1:8080", "");
        settle(&mut specific);
        assert_eq!(specific.public_url(), "http://127.0.0.1:8080");
    }

    /// Every address: an address of this host that is not 0.0.0.0, with the listen port.
    #[test]
    fn every_address_announces_one_of_this_host() {
        let mut every = config("0.0.0.0:8080", "");
        settle(&mut every);
        let url = every.public_url();
        let address: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
        assert!(!address.ip().is_unspecified(), "{url}");
        assert_eq!(address.port(), 8080);
        // An address of this host: a socket binds to it.
        assert!(UdpSocket::bind((address.ip(), 0)).is_ok(), "{url}");
    }
}
