//! Uploads: what each kind costs, the per-user rate buckets, how long `wait=1` may wait,
//! and how long an answer can be reported.

use super::check::first_failed;
use super::keys::Kind;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Per-user token buckets (one for uploads, one for logins): sustained requests per
    /// second and burst. `rate_limit_per_sec = 0` disables them (the burst is then unused);
    /// the per-address limit on failed API-key lookups stays.
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// Points a text captcha costs.
    pub upload_cost: i64,
    /// Points a click captcha (detection) costs: its model runs tens of times longer.
    pub detect_cost: i64,
    /// Points a slide captcha costs.
    pub slide_cost: i64,
    pub report_window_secs: u64,
    /// `wait=1` default and maximum `timeout_ms`.
    pub wait_timeout_ms_default: u64,
    pub wait_timeout_ms_max: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            rate_limit_per_sec: 100,
            rate_limit_burst: 200,
            upload_cost: 1,
            detect_cost: 5,
            slide_cost: 1,
            report_window_secs: 600,
            wait_timeout_ms_default: 3_000,
            wait_timeout_ms_max: 30_000,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("rate_limit_per_sec", Kind::Number),
    ("rate_limit_burst", Kind::Number),
    ("upload_cost", Kind::Number),
    ("detect_cost", Kind::Number),
    ("slide_cost", Kind::Number),
    ("report_window_secs", Kind::Number),
    ("wait_timeout_ms_default", Kind::Number),
    ("wait_timeout_ms_max", Kind::Number),
];

impl UploadConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (
                self.rate_limit_per_sec == 0 || self.rate_limit_burst > 0,
                "rate_limit_burst must be positive while rate_limit_per_sec limits (is not 0)",
            ),
            (
                [self.upload_cost, self.detect_cost, self.slide_cost]
                    .iter()
                    .all(|cost| (0..=crate::money::MAX_POINTS).contains(cost)),
                "upload_cost, detect_cost and slide_cost must be 0..=9007199254740991 (2^53 - 1)",
            ),
            (
                self.wait_timeout_ms_default <= self.wait_timeout_ms_max,
                "wait_timeout_ms_default above the max",
            ),
        ])
    }
}
