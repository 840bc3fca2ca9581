//! The wall clock, read in one place. Everything that records or compares times of day
//! (upload and journal timestamps, report windows, token expiry, retention) takes its "now"
//! from here, at the edge, and passes it down: the store never reads a clock of its own, so
//! its tests can say what time it is.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is set before 1970).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Seconds since the Unix epoch (0 if the clock is set before 1970).
pub fn unix_now_secs() -> u64 {
    unix_now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let (ms, secs) = (unix_now_ms(), unix_now_secs());
        // 2026-01-01 or later, and the two readings within a second of each other.
        assert!(ms >= 1_767_225_600_000);
        assert!(secs.abs_diff(ms / 1000) <= 1);
    }
}
