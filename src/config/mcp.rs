//! The MCP endpoint (`/mcp`, server/endpoints/mcp.rs): its body size, its sessions (per
//! user, per shard, idle time), how long a tool waits for its answer, and the browser
//! origins it accepts.

use super::check::first_failed;
use super::keys::Kind;
use super::values;
use serde::Deserialize;

/// The longest `mcp_session_idle_secs`: one day.
const MAX_SESSION_IDLE_SECS: u64 = 24 * 3600;
/// The largest `mcp_sessions_per_shard` (each session is about 100 bytes of table).
const MAX_SESSIONS_PER_SHARD: usize = 1 << 20;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// The largest body a `/mcp` POST may carry (a tool's images travel as base64 in it);
    /// the smaller of it and `max_body_bytes` applies (no cross-check: lowering
    /// `max_body_bytes` alone must not stop the server from starting). Larger is 413 before
    /// the body is read.
    pub mcp_max_body_bytes: usize,
    /// Live sessions one user may hold; a new one beyond it ends the user's least recently
    /// used session (its client gets 404 and opens a new one, as the transport says).
    pub mcp_sessions_per_user: usize,
    /// Live sessions one shard holds (for the users it owns); beyond it `initialize` is
    /// refused with 503 and `Retry-After`.
    pub mcp_sessions_per_shard: usize,
    /// A session unused this long is ended (its next request gets 404).
    pub mcp_session_idle_secs: u64,
    /// How long `ocr`, `detect` and `slide` wait for their answer before answering
    /// `pending` (the `result` tool then has it). The smaller of this and
    /// `wait_timeout_ms_max` applies, like a `/v2` upload's `timeout_ms` (so a lower
    /// `wait_timeout_ms_max` alone must not stop the server from starting).
    pub mcp_wait_ms: u64,
    /// Browser origins allowed to call `/mcp` (comma list of `scheme://host[:port]`); a
    /// request with any other `Origin` is 403 (DNS rebinding). Agents send no `Origin`.
    #[serde(deserialize_with = "values::origin_list")]
    pub mcp_allowed_origins: Vec<String>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            mcp_max_body_bytes: 1024 * 1024,
            mcp_sessions_per_user: 16,
            mcp_sessions_per_shard: 4096,
            mcp_session_idle_secs: 1800,
            mcp_wait_ms: 10_000,
            mcp_allowed_origins: Vec::new(),
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("mcp_max_body_bytes", Kind::Number),
    ("mcp_sessions_per_user", Kind::Number),
    ("mcp_sessions_per_shard", Kind::Number),
    ("mcp_session_idle_secs", Kind::Number),
    ("mcp_wait_ms", Kind::Number),
    ("mcp_allowed_origins", Kind::Text),
];

impl McpConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                self.mcp_max_body_bytes > 0,
                "mcp_max_body_bytes must be positive",
            ),
            (
                (1..=self.mcp_sessions_per_shard).contains(&self.mcp_sessions_per_user),
                "mcp_sessions_per_user must be 1..=mcp_sessions_per_shard",
            ),
            (
                self.mcp_sessions_per_shard <= MAX_SESSIONS_PER_SHARD,
                "mcp_sessions_per_shard must be at most 1048576",
            ),
            (
                (1..=MAX_SESSION_IDLE_SECS).contains(&self.mcp_session_idle_secs),
                "mcp_session_idle_secs must be 1..=86400",
            ),
        ])
    }
}
