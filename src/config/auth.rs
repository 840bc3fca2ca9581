//! Credentials: tokens (lifetime, secret), the per-address bound on failed key lookups, and
//! how long a shard remembers a key or a user's state.

use super::check::first_failed;
use super::keys::Kind;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT lifetime.
    pub token_ttl_secs: u64,
    /// Per client address and shard: API key lookups that find nothing, per second
    /// sustained and at once; beyond them 5002 (`Retry-After`) without a lookup.
    pub failed_auth_per_sec: u32,
    pub failed_auth_burst: u32,
    /// How long a shard remembers an API key it looked up (a replaced or revoked key is
    /// forgotten at once anyway).
    pub api_key_cache_secs: u64,
    /// How long a shard remembers a user's state (exists, role, token epoch) that it read
    /// from the user's shard to check a token or a key. A safety net only: a role change,
    /// password change, logout, revocation or removal makes every shard forget it at once.
    pub user_cache_secs: u64,
    /// HS256 secret; empty means generated once into `<data_dir>/jwt.secret` (mode 0600).
    pub jwt_secret: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_ttl_secs: 24 * 3600,
            failed_auth_per_sec: 5,
            failed_auth_burst: 20,
            api_key_cache_secs: 60,
            user_cache_secs: 60,
            jwt_secret: String::new(),
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("token_ttl_secs", Kind::Number),
    ("failed_auth_per_sec", Kind::Number),
    ("failed_auth_burst", Kind::Number),
    ("api_key_cache_secs", Kind::Number),
    ("user_cache_secs", Kind::Number),
    ("jwt_secret", Kind::Text),
];

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (self.token_ttl_secs > 0, "token_ttl_secs must be positive"),
            (
                self.failed_auth_per_sec > 0 && self.failed_auth_burst > 0,
                "failed_auth_per_sec and failed_auth_burst must be positive",
            ),
        ])
    }
}
