//! Models users bring (`POST /v2/models`): how large an upload of one may be, how many and
//! how much each user may keep, how many checks run at once, and how much of them the
//! recognition threads keep loaded.

use super::check::first_failed;
use super::keys::Kind;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Largest request body of `POST /v2/models` (the ONNX file, its charsets.json and the
    /// form around them). Other routes keep `max_body_bytes`.
    pub model_body_max_bytes: usize,
    /// Models one user may keep.
    pub models_per_user: usize,
    /// ONNX and charsets.json bytes one user's models may hold together.
    pub model_bytes_per_user: u64,
    /// Model checks (load, test run) running at once on the node; an upload beyond them is
    /// refused with 5001 (busy) before its body is kept.
    pub model_checks_max: usize,
    /// ONNX bytes of custom models the recognition threads keep loaded, all threads together
    /// (each thread holds its share); the least recently used are unloaded beyond it.
    pub model_memory_bytes: u64,
    /// A custom model unused this long is unloaded (loaded again on its next job).
    pub model_idle_secs: u64,
    /// Models named in `/metrics`' per-model series (the busiest); the rest are one series.
    pub metrics_models_max: usize,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            model_body_max_bytes: 64 << 20,
            models_per_user: 16,
            model_bytes_per_user: 256 << 20,
            model_checks_max: 1,
            model_memory_bytes: 512 << 20,
            model_idle_secs: 600,
            metrics_models_max: 20,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("model_body_max_bytes", Kind::Number),
    ("models_per_user", Kind::Number),
    ("model_bytes_per_user", Kind::Number),
    ("model_checks_max", Kind::Number),
    ("model_memory_bytes", Kind::Number),
    ("model_idle_secs", Kind::Number),
    ("metrics_models_max", Kind::Number),
];

/// Largest `model_body_max_bytes`: a body is held in memory while it is checked.
pub const MAX_MODEL_BODY_BYTES: usize = 1 << 30;

impl ModelsConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                (1024..=MAX_MODEL_BODY_BYTES).contains(&self.model_body_max_bytes),
                "model_body_max_bytes must be in 1024..=1073741824",
            ),
            (
                self.model_checks_max >= 1 && self.model_checks_max <= 64,
                "model_checks_max must be in 1..=64",
            ),
            (
                self.model_memory_bytes >= 1 << 20,
                "model_memory_bytes must be at least 1048576 (1 MiB)",
            ),
            (
                self.model_idle_secs >= 1,
                "model_idle_secs must be at least 1",
            ),
            (
                (1..=1000).contains(&self.metrics_models_max),
                "metrics_models_max must be in 1..=1000",
            ),
        ])
    }
}
