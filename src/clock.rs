//! The wall clock, read in one place. Everything that records or compares times of day
//! (upload and journal timestamps, report windows, token expiry, retention) takes its "now"
//! from here, at the edge, and passes it down: the store never reads a clock of its own, so
//! its tests can say what time it is.
//!
//! Two precisions: `unix_now_ms`/`unix_now_secs` read the exact clock; the `coarse` readings
//! take the kernel's time of its last tick (`CLOCK_*_COARSE`: at most a few milliseconds
//! behind, read from the vDSO without the TSC), which is what the hot path's whole-second and
//! TTL comparisons need (the `Date` header, token expiry, the memo TTLs): the exact clocks
//! were a few per cent of the instructions of `GET /v2/user/point`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Seconds since the Unix epoch from the coarse clock (0 if the clock is set before 1970).
/// At most one kernel tick behind `unix_now_secs`: for whole-second uses only.
pub fn unix_now_secs_coarse() -> u64 {
    u64::try_from(read(libc::CLOCK_REALTIME_COARSE).tv_sec).unwrap_or(0)
}

/// A monotonic reading from the coarse clock (time since an unspecified start, the same for
/// every thread): for TTLs of seconds, compared with later readings of this function only.
pub fn monotonic_coarse() -> Duration {
    let time = read(libc::CLOCK_MONOTONIC_COARSE);
    // The kernel keeps tv_nsec within 0..1e9, and a monotonic clock is never negative.
    Duration::new(u64::try_from(time.tv_sec).unwrap_or(0), time.tv_nsec as u32)
}

/// One `clock_gettime` (the vDSO's: no system call).
fn read(clock: libc::clockid_t) -> libc::timespec {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec; the coarse clocks exist since Linux 2.6.32.
    let status = unsafe { libc::clock_gettime(clock, &mut time) };
    assert_eq!(status, 0, "clock_gettime of a coarse clock cannot fail");
    time
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

    #[test]
    fn coarse_readings_agree_with_the_exact_clocks() {
        let (exact, coarse) = (unix_now_secs(), unix_now_secs_coarse());
        assert!(exact.abs_diff(coarse) <= 1);
        let first = monotonic_coarse();
        std::thread::sleep(Duration::from_millis(50));
        let second = monotonic_coarse();
        assert!(
            second >= first + Duration::from_millis(20),
            "{first:?} {second:?}"
        );
    }
}
