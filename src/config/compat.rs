//! The captcha protocols (server/compat): their money, their model, how long they wait for
//! an answer, ddddocr-fastapi's keyless account, and where callbacks may go.

use super::check::first_failed;
use super::keys::Kind;
use super::values;
use crate::money::PointPrice;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompatConfig {
    /// What one point is worth where the captcha protocols show money (balances, prices):
    /// a decimal with at most 6 decimals, e.g. "0.001".
    #[serde(deserialize_with = "values::point_price")]
    pub price_per_point: PointPrice,
    /// The model the captcha protocols' uploads run.
    pub compat_model: String,
    /// How long `/in.php`, `/createTask` and `/ocr` wait for the answer before they answer
    /// (so that the client's first poll finds it); 0 answers at once.
    pub compat_wait_ms: u64,
    /// ddddocr-fastapi's `/ocr` without a key charges this user; empty: a key is required.
    pub fastapi_account: String,
    /// Where callbacks (`pingback`, `callbackUrl`) may go: a comma list of `host:port`;
    /// empty (the default) refuses every callback.
    #[serde(deserialize_with = "values::host_port_list")]
    pub callback_allow: Vec<(String, u16)>,
    /// One callback attempt's deadline (connect, send, read the status line).
    pub callback_timeout_ms: u64,
    /// Attempts per callback, and the pause between them.
    pub callback_attempts: u32,
    pub callback_retry_ms: u64,
}

impl Default for CompatConfig {
    fn default() -> Self {
        CompatConfig {
            price_per_point: PointPrice { micros: 1000 },
            compat_model: "old".to_string(),
            compat_wait_ms: 3_000,
            fastapi_account: String::new(),
            callback_allow: Vec::new(),
            callback_timeout_ms: 2_000,
            callback_attempts: 3,
            callback_retry_ms: 1_000,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("price_per_point", Kind::Text),
    ("compat_model", Kind::Text),
    ("compat_wait_ms", Kind::Number),
    ("fastapi_account", Kind::Text),
    ("callback_allow", Kind::Text),
    ("callback_timeout_ms", Kind::Number),
    ("callback_attempts", Kind::Number),
    ("callback_retry_ms", Kind::Number),
];

impl CompatConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[(
            (1..=10).contains(&self.callback_attempts) && self.callback_timeout_ms > 0,
            "callback_attempts must be 1..=10 and callback_timeout_ms positive",
        )])
    }
}
