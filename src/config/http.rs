//! The HTTP layer's bounds: header, URI and body sizes, the bodies a shard receives at once,
//! and every read and write deadline.

use super::check::first_failed;
use super::keys::Kind;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Memory a shard's request bodies being received hold at once, counted as it grows
    /// with the bytes that arrived (never from the declared length). A body whose growth
    /// does not fit is refused with 5001 (503) and dropped, so stalled uploads cannot grow
    /// memory and holding the budget takes really sending it.
    pub body_bytes_in_flight_per_shard: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    /// Request body after de-chunking. The default fits a 512 KiB image as base64 in JSON or
    /// a form (4/3 of 512 KiB = 683 KiB) plus the other fields.
    pub max_body_bytes: usize,
    /// A request head must arrive within this time from its first byte (408).
    pub header_read_timeout_ms: u64,
    /// A request body must arrive within this time after its head (408).
    pub body_read_timeout_ms: u64,
    /// A request body that receives no byte for this long is refused (408) before its total
    /// time is up: progress, not only the total, is measured.
    pub body_progress_timeout_ms: u64,
    /// A new connection must send its first byte within this time (closed silently).
    pub first_byte_timeout_ms: u64,
    /// After refusing a request whose body was not read (401 before the body, 413, 503), the
    /// server reads and drops what the client still sends for at most this long, so the
    /// client sees the answer instead of a reset.
    pub linger_timeout_ms: u64,
    /// ... and at most this many bytes.
    pub linger_max_bytes: usize,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// An answer the client does not read within this time closes the connection.
    pub write_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_bytes_in_flight_per_shard: 16 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 4 * 1024,
            max_body_bytes: 1024 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            body_progress_timeout_ms: 10_000,
            first_byte_timeout_ms: 5_000,
            linger_timeout_ms: 2_000,
            linger_max_bytes: 16 * 1024 * 1024,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 30_000,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("body_bytes_in_flight_per_shard", Kind::Number),
    ("max_header_bytes", Kind::Number),
    ("max_uri_bytes", Kind::Number),
    ("max_body_bytes", Kind::Number),
    ("header_read_timeout_ms", Kind::Number),
    ("body_read_timeout_ms", Kind::Number),
    ("body_progress_timeout_ms", Kind::Number),
    ("first_byte_timeout_ms", Kind::Number),
    ("linger_timeout_ms", Kind::Number),
    ("linger_max_bytes", Kind::Number),
    ("idle_timeout_ms", Kind::Number),
    ("write_timeout_ms", Kind::Number),
];

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                // A lone body of the largest size must fit: the body itself plus its
                // connection's read buffer grown to the header limit and one read.
                self.body_bytes_in_flight_per_shard
                    >= self.max_body_bytes + self.max_header_bytes + 16 * 1024,
                "body_bytes_in_flight_per_shard must be at least max_body_bytes + \
                 max_header_bytes + 16384 (one body of the largest size and its read buffer)",
            ),
            (
                self.max_header_bytes >= 256,
                "max_header_bytes must be at least 256",
            ),
            (
                self.max_uri_bytes >= 64,
                "max_uri_bytes must be at least 64",
            ),
            (
                self.max_uri_bytes < self.max_header_bytes,
                "max_uri_bytes must be below max_header_bytes",
            ),
            (
                self.header_read_timeout_ms > 0 && self.idle_timeout_ms > 0,
                "timeouts must be positive",
            ),
            (
                self.body_read_timeout_ms > 0 && self.write_timeout_ms > 0,
                "timeouts must be positive",
            ),
            (
                self.body_progress_timeout_ms > 0 && self.first_byte_timeout_ms > 0,
                "timeouts must be positive",
            ),
        ])
    }
}
