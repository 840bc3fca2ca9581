//! A connection's wait for its client, with the deadline the shard's sweep enforces.
//!
//! Every read of a connection has a deadline (header, body, idle, first byte, linger). A
//! glommio read timeout would insert a timer into the reactor's timer tree before each read
//! that has to wait and remove it after: on the `GET /v2/user/point` path that was about 800
//! of 11,400 instructions a request, plus a larger tree for the reactor to split on every
//! turn. Instead each connection writes its deadline into its [`ReadWatch`] (a `Cell`), and
//! one sweep per shard ([`ConnectionSet::expire_reads`](super::ConnectionSet), every
//! [`sweep_interval`]) ends the reads whose deadline passed by waking their task. A read
//! therefore ends at most one sweep interval after its deadline, never before it.

use crate::config::HttpConfig;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// The sweep runs at least this often, whatever the timeouts.
const LONGEST_SWEEP: Duration = Duration::from_secs(1);
/// ... and at most this often, however short a timeout is configured.
const SHORTEST_SWEEP: Duration = Duration::from_millis(5);
/// A read ends at most this fraction of its timeout late (the sweep runs this many times
/// within the shortest read timeout).
const SWEEPS_PER_SHORTEST_TIMEOUT: u32 = 10;

/// How often a shard sweeps its connections' read deadlines: a tenth of the shortest read
/// timeout (so none ends more than 10 % late), between 5 ms and 1 s. A `linger_timeout_ms`
/// of 0 (no lingering: no read) does not count.
pub fn sweep_interval(http: &HttpConfig) -> Duration {
    let shortest_ms = [
        http.header_read_timeout_ms,
        http.body_read_timeout_ms,
        http.body_progress_timeout_ms,
        http.first_byte_timeout_ms,
        http.linger_timeout_ms,
        http.idle_timeout_ms,
    ]
    .into_iter()
    .filter(|&ms| ms > 0)
    .min()
    .unwrap_or(u64::MAX);
    (Duration::from_millis(shortest_ms) / SWEEPS_PER_SHORTEST_TIMEOUT)
        .clamp(SHORTEST_SWEEP, LONGEST_SWEEP)
}

/// What the shard sees of one connection's wait for its client: whether it waits between
/// requests (SIGTERM closes those), and the deadline of the read under way.
#[derive(Default)]
pub struct ReadWatch {
    idle: Cell<bool>,
    /// The deadline of the read under way (`None` between reads).
    deadline: Cell<Option<Instant>>,
    /// Set by the sweep once the deadline passed: the read ends with `TimedOut`.
    expired: Cell<bool>,
    /// The connection's task, woken by the sweep. Kept between reads (the same task reads
    /// every time, so it is cloned once) and dropped with the watch.
    waker: RefCell<Option<Waker>>,
}

impl ReadWatch {
    /// Whether the connection waits between requests.
    pub fn is_idle(&self) -> bool {
        self.idle.get()
    }

    pub fn set_idle(&self, idle: bool) {
        self.idle.set(idle);
    }

    /// Runs `read` until it completes or the sweep finds `deadline` passed
    /// (`ErrorKind::TimedOut`; `read` is then dropped unfinished).
    pub async fn within<T>(
        &self,
        deadline: Instant,
        read: impl Future<Output = io::Result<T>>,
    ) -> io::Result<T> {
        self.expired.set(false);
        self.deadline.set(Some(deadline));
        let mut read = pin!(read);
        let result = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = read.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if self.expired.get() {
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
            let mut waker = self.waker.borrow_mut();
            if !waker
                .as_ref()
                .is_some_and(|known| known.will_wake(cx.waker()))
            {
                *waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
        self.deadline.set(None);
        result
    }

    /// The sweep: ends the read under way if its deadline is `now` or earlier.
    pub fn expire_if_due(&self, now: Instant) {
        if self.deadline.get().is_some_and(|deadline| deadline <= now) {
            self.deadline.set(None);
            self.expired.set(true);
            if let Some(waker) = self.waker.borrow().as_ref() {
                waker.wake_by_ref();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Context;

    #[test]
    fn the_sweep_is_a_tenth_of_the_shortest_timeout_within_bounds() {
        let mut http = HttpConfig::default();
        assert_eq!(sweep_interval(&http), Duration::from_millis(200));
        http.linger_timeout_ms = 0;
        assert_eq!(sweep_interval(&http), Duration::from_millis(500));
        http.header_read_timeout_ms = 300;
        assert_eq!(sweep_interval(&http), Duration::from_millis(30));
        http.header_read_timeout_ms = 1;
        assert_eq!(sweep_interval(&http), SHORTEST_SWEEP);
        let slow = HttpConfig {
            header_read_timeout_ms: 60_000,
            body_read_timeout_ms: 60_000,
            body_progress_timeout_ms: 60_000,
            first_byte_timeout_ms: 60_000,
            linger_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            ..HttpConfig::default()
        };
        assert_eq!(sweep_interval(&slow), LONGEST_SWEEP);
    }

    /// A read that never completes ends with `TimedOut` once the sweep passes its deadline,
    /// and not before; a completed read is not touched by a later sweep.
    #[test]
    fn a_read_ends_when_the_sweep_finds_its_deadline_passed() {
        let watch = ReadWatch::default();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(5);
        let mut waiting =
            Box::pin(watch.within(deadline, std::future::pending::<io::Result<()>>()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        watch.expire_if_due(start);
        assert!(waiting.as_mut().poll(&mut cx).is_pending(), "not before");
        watch.expire_if_due(deadline);
        match waiting.as_mut().poll(&mut cx) {
            Poll::Ready(Err(error)) => assert_eq!(error.kind(), io::ErrorKind::TimedOut),
            other => panic!("{other:?}"),
        }
        drop(waiting);
        let mut done = Box::pin(watch.within(deadline, async { Ok(7) }));
        assert!(matches!(done.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
        watch.expire_if_due(deadline + Duration::from_secs(1));
        let mut next = Box::pin(watch.within(deadline, async { Ok(8) }));
        assert!(matches!(next.as_mut().poll(&mut cx), Poll::Ready(Ok(8))));
    }
}
