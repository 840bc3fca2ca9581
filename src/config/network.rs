//! Listeners: the API's address, `/metrics`' own, TLS, and the connections each admits.

use super::check::first_failed;
use super::keys::Kind;
use super::values;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Address every shard listens on (one SO_REUSEPORT socket per shard).
    #[serde(deserialize_with = "values::socket_address")]
    pub listen: SocketAddr,
    /// Address of a listener of its own for `/metrics` (and `/health`), run by shard 0; the
    /// API listener then answers `/metrics` with 404. Empty (None): `/metrics` is on `listen`.
    #[serde(deserialize_with = "values::optional_socket_address")]
    pub metrics_listen: Option<SocketAddr>,
    /// URL clients are told to use in /v2/servers; empty means `http://<listen>`, where a
    /// `listen` of every address is replaced at start-up by the host's primary address
    /// (`server::public_url`).
    pub public_url: String,
    /// Address of the TLS (HTTPS) listener: the whole API, beside the plain `listen`, one
    /// SO_REUSEPORT socket per shard. Empty (None): no TLS. Needs `tls_cert` and `tls_key`.
    #[serde(deserialize_with = "values::optional_socket_address")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener, the server's certificate first. Read at
    /// start and again on SIGHUP (new connections get the new one).
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`: PKCS#8, PKCS#1 RSA or SEC1 EC.
    pub tls_key: PathBuf,
    /// A TLS handshake must complete within this time from the accept, or the connection is
    /// closed.
    pub tls_handshake_timeout_ms: u64,
    /// Open connections per shard; beyond it new connections are closed at once. Lowered at
    /// start, with a message, to what the open-files limit can hold.
    pub max_connections_per_shard: usize,
    /// Open connections from one client address, the whole server; each shard holds its
    /// share (the kernel spreads one address's connections over the shards' sockets).
    /// Beyond it the address's new connections are closed at once: one client cannot take
    /// the connections everyone else needs.
    pub max_connections_per_address: usize,
    /// Listen backlog of each shard's socket.
    pub backlog: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            metrics_listen: None,
            public_url: String::new(),
            tls_listen: None,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            tls_handshake_timeout_ms: 10_000,
            max_connections_per_shard: 10_000,
            max_connections_per_address: 1_024,
            backlog: 1024,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Text),
    ("metrics_listen", Kind::Text),
    ("public_url", Kind::Text),
    ("tls_listen", Kind::Text),
    ("tls_cert", Kind::Text),
    ("tls_key", Kind::Text),
    ("tls_handshake_timeout_ms", Kind::Number),
    ("max_connections_per_shard", Kind::Number),
    ("max_connections_per_address", Kind::Number),
    ("backlog", Kind::Number),
];

impl NetworkConfig {
    /// The URL clients are told to use (`/v2/servers`).
    pub fn public_url(&self) -> String {
        if !self.public_url.is_empty() {
            return self.public_url.clone();
        }
        format!("http://{}", self.listen)
    }

    /// The TLS listener's certificate chain and key files, when TLS is on.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        self.tls_listen?;
        Some((&self.tls_cert, &self.tls_key))
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        self.validate_tls()?;
        first_failed(&[(
            self.max_connections_per_shard > 0 && self.max_connections_per_address > 0,
            "max_connections_per_shard and max_connections_per_address must be positive",
        )])
    }

    /// TLS is all or nothing: an address, a certificate and a key. Whether the files can be
    /// read is checked where they are read (`tls::load_server_config`, at start).
    fn validate_tls(&self) -> Result<(), String> {
        let given = [
            self.tls_listen.is_some(),
            !self.tls_cert.as_os_str().is_empty(),
            !self.tls_key.as_os_str().is_empty(),
        ];
        if given.iter().any(|set| *set != given[0]) {
            return Err(
                "config: TLS needs all three of tls_listen, tls_cert and tls_key (or none)".into(),
            );
        }
        if self.tls_handshake_timeout_ms == 0 {
            return Err("config: tls_handshake_timeout_ms must be positive".into());
        }
        // Two SO_REUSEPORT listeners of one process on one address would share its
        // connections, half of them answered in the wrong protocol.
        let clashes = |other: Option<SocketAddr>| {
            self.tls_listen
                .is_some_and(|tls| tls.port() != 0 && Some(tls) == other)
        };
        if clashes(Some(self.listen)) || clashes(self.metrics_listen) {
            return Err("config: tls_listen must differ from listen and metrics_listen".into());
        }
        Ok(())
    }
}
