//! One worker thread: a mio (epoll) event loop driving its share of the connections. Closed
//! loop: each connection keeps `pipeline` operations going. Open loop: each connection owns a
//! slice of the global schedule (wrk2 style) and sends each request at its intended time, or
//! at once when late; latency counts from the intended time (corrected) and from the actual
//! send (uncorrected).

use crate::conn::{ReadOutcome, Socket};
use crate::live::{Batch, LiveShared};
use crate::response::{Expect, Progress, ResponseMeta, ResponseParser};
use crate::stats::{ErrorKind, Stats};
use crate::target::auth_header;
use crate::workload::{MixPicker, OpKind, Verdict, Workload};
use mio::{Events, Poll, Token};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest sleep of the loop, so timeouts and the live line are looked at often enough.
const MAX_POLL_WAIT: Duration = Duration::from_millis(100);
/// Wait before dialing again after a failed connect (a down server is not hammered).
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
const LIVE_PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// The contract's code for "token invalid or expired": log in again.
const TOKEN_INVALID_OR_EXPIRED: i64 = aiocr_contract::ApiError::BadToken.code() as i64;

/// What one connection of a worker must do.
#[derive(Debug, Clone)]
pub struct ConnPlan {
    /// Index among all connections of the run (selects the user and the schedule phase).
    pub global_index: usize,
    /// Operations this connection may start (u64::MAX: until the end time).
    pub op_budget: u64,
    /// Open loop: first intended send time, as an offset from the start.
    pub first_at: Duration,
}

#[derive(Clone)]
pub struct WorkerPlan {
    pub thread_index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub addr: SocketAddr,
    pub conns: Vec<ConnPlan>,
    pub start: Instant,
    /// No operation starts at or after this instant.
    pub end: Instant,
    /// Everything stops here, answered or not (in-flight operations count as timeouts).
    pub stop: Instant,
    /// Open loop: time between two intended sends of one connection, in nanoseconds.
    pub interval_ns: Option<f64>,
    pub pipeline: usize,
    pub timeout: Duration,
    pub poll_interval: Duration,
    /// Largest answer body kept for checking.
    pub max_answer_bytes: usize,
}

pub struct WorkerResult {
    pub stats: Stats,
    /// When the last operation finished (the end of the measured period).
    pub last_done: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    slot: usize,
    intended: Instant,
    first_sent: Instant,
    /// The `--api-keys-file` key the operation took (its polls take it too).
    key: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Login,
    Start(Op),
    Poll(Op),
}

#[derive(Debug, Clone, Copy)]
struct Exchange {
    role: Role,
    sent_at: Instant,
    head_request: bool,
}

struct Followup {
    due: Instant,
    op: Op,
    upload_id: u64,
}

struct Conn {
    plan: ConnPlan,
    socket: Option<Socket>,
    connect_started: Instant,
    reconnect_at: Option<Instant>,
    ever_connected: bool,
    parser: ResponseParser,
    body: Vec<u8>,
    inflight: VecDeque<Exchange>,
    followups: VecDeque<Followup>,
    active_ops: usize,
    /// `Authorization` header line once logged in (empty before, or when none is needed).
    auth: Vec<u8>,
    retired: bool,
    ops_started: u64,
    /// Open loop: where this connection's schedule counts from: the run's start, or the
    /// answer to its first login (logging in is set-up, not load: argon2 is slow on purpose,
    /// and counting it would show as false lateness of the first requests).
    schedule_origin: Instant,
    next_intended: Instant,
    picker: MixPicker,
}

impl Conn {
    fn budget_left(&self) -> bool {
        self.ops_started < self.plan.op_budget
    }
}

/// What a connection needs from its worker to queue requests.
struct SendContext<'w> {
    workload: &'w Workload,
    plan: &'w WorkerPlan,
    now: Instant,
}

impl Conn {
    /// Appends to the write buffer what may be sent now; returns how many requests.
    fn queue_requests(&mut self, ctx: &SendContext, image_cursor: &mut usize) -> u64 {
        if ctx.workload.needs_login() && self.auth.is_empty() {
            return self.queue_login(ctx);
        }
        let mut queued = 0;
        while self.inflight.len() < ctx.plan.pipeline
            && (self.queue_due_poll(ctx) || self.queue_new_op(ctx, image_cursor))
        {
            queued += 1;
        }
        queued
    }

    /// Nothing else goes out before the login answer (every request needs the token).
    fn queue_login(&mut self, ctx: &SendContext) -> u64 {
        if !self.inflight.is_empty() {
            return 0;
        }
        let out = self.socket.as_mut().expect("connected").outgoing();
        ctx.workload.write_login(self.plan.global_index, out);
        self.inflight.push_back(Exchange {
            role: Role::Login,
            sent_at: ctx.now,
            head_request: false,
        });
        1
    }

    fn queue_due_poll(&mut self, ctx: &SendContext) -> bool {
        if self.followups.front().is_none_or(|f| f.due > ctx.now) {
            return false;
        }
        let followup = self.followups.pop_front().expect("checked above");
        let auth = match followup.op.key {
            Some(key) => ctx.workload.key_auth(key),
            None => &self.auth,
        };
        let out = self.socket.as_mut().expect("connected").outgoing();
        ctx.workload.write_poll(followup.upload_id, auth, out);
        self.inflight.push_back(Exchange {
            role: Role::Poll(followup.op),
            sent_at: ctx.now,
            head_request: false,
        });
        true
    }

    /// The intended send time of the next operation, if it may start now.
    fn next_op_due(&self, ctx: &SendContext) -> Option<Instant> {
        let intended = match ctx.plan.interval_ns {
            Some(_) => self.next_intended,
            None => ctx.now,
        };
        let may_start = self.active_ops < ctx.plan.pipeline
            && self.budget_left()
            && intended <= ctx.now
            && intended < ctx.plan.end;
        may_start.then_some(intended)
    }

    fn queue_new_op(&mut self, ctx: &SendContext, image_cursor: &mut usize) -> bool {
        let Some(intended) = self.next_op_due(ctx) else {
            return false;
        };
        let slot = self.picker.next(&ctx.workload.mix);
        let out = self.socket.as_mut().expect("connected").outgoing();
        let key =
            ctx.workload
                .write_op(slot, &self.auth, self.plan.global_index, *image_cursor, out);
        *image_cursor = image_cursor.wrapping_add(1);
        let op = Op {
            slot,
            intended,
            first_sent: ctx.now,
            key,
        };
        self.inflight.push_back(Exchange {
            role: Role::Start(op),
            sent_at: ctx.now,
            head_request: ctx.workload.is_head_request(ctx.workload.mix[slot].0),
        });
        self.active_ops += 1;
        self.ops_started += 1;
        if let Some(interval_ns) = ctx.plan.interval_ns {
            // From the start, not from the previous send: rounding never accumulates.
            let offset_ns =
                self.plan.first_at.as_nanos() as f64 + self.ops_started as f64 * interval_ns;
            self.next_intended = self.schedule_origin + Duration::from_nanos(offset_ns as u64);
        }
        true
    }
}

pub struct Worker<'a> {
    plan: WorkerPlan,
    workload: &'a Workload,
    live: Arc<LiveShared>,
    poll: Poll,
    conns: Vec<Conn>,
    stats: Stats,
    recorded: Batch,
    image_cursor: usize,
    last_done: Instant,
}

impl<'a> Worker<'a> {
    pub fn new(
        plan: WorkerPlan,
        workload: &'a Workload,
        live: Arc<LiveShared>,
    ) -> io::Result<Self> {
        let conns = plan
            .conns
            .iter()
            .map(|conn_plan| Conn {
                plan: conn_plan.clone(),
                socket: None,
                connect_started: plan.start,
                reconnect_at: Some(plan.start),
                ever_connected: false,
                parser: ResponseParser::default(),
                body: Vec::new(),
                inflight: VecDeque::with_capacity(plan.pipeline),
                followups: VecDeque::new(),
                active_ops: 0,
                auth: workload.initial_auth(),
                retired: false,
                ops_started: 0,
                schedule_origin: plan.start,
                next_intended: plan.start + conn_plan.first_at,
                picker: MixPicker::new(workload.mix.len()),
            })
            .collect();
        Ok(Worker {
            image_cursor: plan.thread_index,
            last_done: plan.start,
            stats: Stats::new(workload.mix.len()),
            recorded: Batch::new(),
            poll: Poll::new()?,
            conns,
            plan,
            workload,
            live,
        })
    }

    pub fn run(mut self) -> io::Result<WorkerResult> {
        if let Some(core) = self.plan.core {
            core_affinity::set_for_current(core);
        }
        // Timer slack (50 µs by default) would delay scheduled sends; ask for 1 ns.
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        let mut events = Events::with_capacity(1024);
        let mut next_service = self.plan.start;
        let mut next_publish = Instant::now() + LIVE_PUBLISH_EVERY;
        loop {
            let mut now = Instant::now();
            if now >= next_service {
                next_service = self.service_all(now);
            }
            if now >= self.plan.stop || self.all_finished(now) {
                break;
            }
            let wait = next_service
                .min(self.plan.stop)
                .saturating_duration_since(now)
                .min(MAX_POLL_WAIT);
            if let Err(e) = self.wait_for_events(&mut events, wait) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            now = Instant::now();
            for event in events.iter() {
                let index = event.token().0;
                self.on_event(index, now);
                next_service = next_service.min(self.due(index));
            }
            if now >= next_publish {
                self.publish();
                next_publish = now + LIVE_PUBLISH_EVERY;
            }
        }
        self.give_up_unfinished();
        self.publish();
        Ok(WorkerResult {
            stats: self.stats,
            last_done: self.last_done,
        })
    }

    /// epoll_wait takes whole milliseconds (mio rounds up), which would make every send of
    /// an open-loop schedule up to 1 ms late and show as false corrected latency. A wait
    /// shorter than the loop's tick is therefore done with ppoll on the epoll descriptor
    /// (nanosecond timeout, readable when events are ready), then the events are collected
    /// without blocking.
    fn wait_for_events(&mut self, events: &mut Events, wait: Duration) -> io::Result<()> {
        if wait.is_zero() || wait >= MAX_POLL_WAIT {
            return self.poll.poll(events, Some(wait));
        }
        let mut pollfd = libc::pollfd {
            fd: self.poll.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = libc::timespec {
            tv_sec: 0,
            // Below MAX_POLL_WAIT, so under one second.
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask change.
        let ready = unsafe { libc::ppoll(&mut pollfd, 1, &timeout, std::ptr::null()) };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        self.poll.poll(events, Some(Duration::ZERO))
    }

    fn all_finished(&self, now: Instant) -> bool {
        self.conns.iter().all(|conn| {
            conn.retired
                || (conn.active_ops == 0
                    && conn.inflight.is_empty()
                    && (!conn.budget_left() || now >= self.plan.end))
        })
    }

    fn publish(&mut self) {
        self.live.publish(&self.stats, &mut self.recorded);
    }

    /// Timeouts, reconnects and sends due by time; returns when to look again.
    fn service_all(&mut self, now: Instant) -> Instant {
        let mut next = now + MAX_POLL_WAIT;
        for index in 0..self.conns.len() {
            self.service(index, now);
            next = next.min(self.due(index));
        }
        next
    }

    fn service(&mut self, index: usize, now: Instant) {
        let conn = &self.conns[index];
        if conn.retired {
            return;
        }
        let timed_out = conn
            .inflight
            .front()
            .is_some_and(|x| now.duration_since(x.sent_at) >= self.plan.timeout);
        let connect_timed_out = conn.socket.as_ref().is_some_and(|s| !s.connected)
            && now.duration_since(conn.connect_started) >= self.plan.timeout;
        if timed_out {
            self.break_conn(index, ErrorKind::Timeout, now, Duration::ZERO);
        } else if connect_timed_out {
            self.break_conn(index, ErrorKind::Connect, now, RECONNECT_BACKOFF);
        }
        let conn = &self.conns[index];
        if conn.socket.is_none() && conn.reconnect_at.is_some_and(|at| at <= now) {
            if self.wants_connection(index, now) {
                self.connect(index, now);
            } else {
                // Nothing left to do on it: no reconnect, and no wake-ups for it.
                self.conns[index].reconnect_at = None;
            }
            return;
        }
        self.pump(index, now);
    }

    /// A connection is only (re)opened while it still has work.
    fn wants_connection(&self, index: usize, now: Instant) -> bool {
        let conn = &self.conns[index];
        !conn.retired && (conn.active_ops > 0 || (conn.budget_left() && now < self.plan.end))
    }

    /// The next instant this connection needs attention without a socket event.
    fn due(&self, index: usize) -> Instant {
        let conn = &self.conns[index];
        let mut due = self.plan.stop;
        if conn.retired {
            return due;
        }
        if let Some(front) = conn.inflight.front() {
            due = due.min(front.sent_at + self.plan.timeout);
        }
        match &conn.socket {
            None => {
                if let Some(at) = conn.reconnect_at {
                    due = due.min(at);
                }
            }
            Some(socket) if !socket.connected => {
                due = due.min(conn.connect_started + self.plan.timeout);
            }
            Some(_) => {
                if conn.inflight.len() < self.plan.pipeline {
                    if let Some(followup) = conn.followups.front() {
                        due = due.min(followup.due);
                    }
                    if self.plan.interval_ns.is_some()
                        && conn.budget_left()
                        && conn.active_ops < self.plan.pipeline
                    {
                        due = due.min(conn.next_intended);
                    }
                }
            }
        }
        due
    }

    fn connect(&mut self, index: usize, now: Instant) {
        let conn = &mut self.conns[index];
        conn.reconnect_at = None;
        conn.connect_started = now;
        match Socket::connect(self.plan.addr, self.poll.registry(), Token(index)) {
            Ok(socket) => conn.socket = Some(socket),
            Err(_) => {
                self.stats.count_error(ErrorKind::Connect);
                conn.reconnect_at = Some(now + RECONNECT_BACKOFF);
            }
        }
    }

    fn on_event(&mut self, index: usize, now: Instant) {
        let Some(socket) = self.conns[index].socket.as_mut() else {
            return;
        };
        if !socket.connected {
            match socket.finish_connect() {
                Ok(true) => {
                    let conn = &mut self.conns[index];
                    self.stats.connects += 1;
                    if conn.ever_connected {
                        self.stats.reconnects += 1;
                    }
                    conn.ever_connected = true;
                }
                Ok(false) => return,
                Err(_) => {
                    self.break_conn(index, ErrorKind::Connect, now, RECONNECT_BACKOFF);
                    return;
                }
            }
        }
        if self.read_all(index, now) {
            self.pump(index, now);
        }
    }

    /// Reads and handles every answer available; false if the connection broke.
    fn read_all(&mut self, index: usize, now: Instant) -> bool {
        loop {
            let Some(socket) = self.conns[index].socket.as_mut() else {
                return false;
            };
            let outcome = match socket.read_some(&mut self.stats.bytes_read) {
                Ok(outcome) => outcome,
                Err(_) => {
                    self.break_conn(index, ErrorKind::Read, now, Duration::ZERO);
                    return false;
                }
            };
            if !self.handle_input(index, now) {
                return false;
            }
            match outcome {
                ReadOutcome::Data => continue,
                ReadOutcome::Drained => return true,
                ReadOutcome::Eof => {
                    self.on_eof(index, now);
                    return false;
                }
            }
        }
    }

    /// Parses buffered bytes into answers; false if the connection broke.
    fn handle_input(&mut self, index: usize, now: Instant) -> bool {
        loop {
            let conn = &mut self.conns[index];
            let Some(socket) = conn.socket.as_mut() else {
                return false;
            };
            let input = socket.unread();
            if input.is_empty() {
                return true;
            }
            let Some(front) = conn.inflight.front() else {
                // Bytes nobody asked for: the stream cannot be trusted any more.
                self.break_conn(index, ErrorKind::BadHttp, now, Duration::ZERO);
                return false;
            };
            let expect = Expect {
                head_request: front.head_request,
                keep_body: self.workload.is_scenario(),
                max_body_bytes: self.plan.max_answer_bytes,
            };
            match conn.parser.feed(input, expect, &mut conn.body) {
                Ok((used, progress)) => {
                    socket.consume(used);
                    if let Progress::Done(meta) = progress {
                        if !self.on_answer(index, meta, now) {
                            return false;
                        }
                    } else if used == 0 {
                        return true;
                    }
                }
                Err(_) => {
                    self.break_conn(index, ErrorKind::BadHttp, now, Duration::ZERO);
                    return false;
                }
            }
        }
    }

    fn on_eof(&mut self, index: usize, now: Instant) {
        let conn = &mut self.conns[index];
        if let Some(meta) = conn.parser.on_eof() {
            if !self.on_answer(index, meta, now) {
                return;
            }
        }
        let kind = if self.conns[index].inflight.is_empty() {
            None
        } else {
            Some(ErrorKind::Closed)
        };
        self.drop_conn(index, kind, now, Duration::ZERO);
    }

    /// Handles one complete answer; false if the connection was closed after it.
    fn on_answer(&mut self, index: usize, meta: ResponseMeta, now: Instant) -> bool {
        let conn = &mut self.conns[index];
        let exchange = conn
            .inflight
            .pop_front()
            .expect("an answer is parsed only with a request in flight");
        self.stats.http_responses += 1;
        if !(200..300).contains(&meta.status) {
            self.stats.non_2xx += 1;
        }
        let kind = match exchange.role {
            Role::Login => OpKind::Login,
            Role::Start(op) | Role::Poll(op) => self.workload.mix[op.slot].0,
        };
        let poll = matches!(exchange.role, Role::Poll(_));
        let verdict = self.workload.judge(kind, poll, meta.status, &conn.body);
        match exchange.role {
            Role::Login => self.on_login(index, verdict),
            Role::Start(op) | Role::Poll(op) => self.on_op_answer(
                index,
                op,
                kind,
                verdict,
                matches!(exchange.role, Role::Start(_)),
                now,
            ),
        }
        if meta.closes {
            let kind = (!self.conns[index].inflight.is_empty()).then_some(ErrorKind::Closed);
            self.drop_conn(index, kind, now, Duration::ZERO);
            return false;
        }
        true
    }

    fn on_login(&mut self, index: usize, verdict: Verdict) {
        let conn = &mut self.conns[index];
        match verdict {
            Verdict::Token(token) => {
                conn.auth = auth_header(&token);
                self.stats.logins += 1;
                if conn.ops_started == 0 {
                    conn.schedule_origin = Instant::now();
                    conn.next_intended = conn.schedule_origin + conn.plan.first_at;
                }
            }
            Verdict::Failed(kind) => {
                // Without a token nothing this connection sends can succeed.
                self.stats.count_error(kind);
                self.stats.count_error(ErrorKind::Login);
                conn.retired = true;
                if let Some(socket) = conn.socket.take() {
                    socket.close(self.poll.registry());
                }
            }
            Verdict::Ok | Verdict::Pending(_) => {
                self.stats.count_error(ErrorKind::BadJson);
                self.stats.count_error(ErrorKind::Login);
                conn.retired = true;
            }
        }
    }

    fn on_op_answer(
        &mut self,
        index: usize,
        op: Op,
        kind: OpKind,
        verdict: Verdict,
        first_answer: bool,
        now: Instant,
    ) {
        match verdict {
            Verdict::Ok | Verdict::Token(_) => self.finish_op(index, op, true, now),
            Verdict::Pending(upload_id) => {
                if first_answer && matches!(kind, OpKind::DecodeSync | OpKind::Mixed) {
                    self.stats.sync_fell_back_to_poll += 1;
                }
                self.conns[index].followups.push_back(Followup {
                    due: now + self.plan.poll_interval,
                    op,
                    upload_id,
                });
            }
            Verdict::Failed(error) => {
                self.stats.count_error(error);
                let relogin = self.workload.needs_login() && kind != OpKind::Login;
                if error == ErrorKind::Api(TOKEN_INVALID_OR_EXPIRED) && relogin {
                    // Log in again before the next request (long runs outlive a token).
                    self.conns[index].auth.clear();
                }
                self.finish_op(index, op, false, now);
            }
        }
    }

    fn finish_op(&mut self, index: usize, op: Op, ok: bool, now: Instant) {
        let conn = &mut self.conns[index];
        debug_assert!(conn.active_ops > 0);
        conn.active_ops -= 1;
        let corrected_us = now.duration_since(op.intended).as_micros() as u64;
        let uncorrected_us = now.duration_since(op.first_sent).as_micros() as u64;
        self.stats.all.record(ok, corrected_us, uncorrected_us);
        self.stats.per_kind[op.slot].record(ok, corrected_us, uncorrected_us);
        self.recorded.record(corrected_us, uncorrected_us);
        self.last_done = now;
    }

    /// An operation that will never get an answer.
    fn lose_op(&mut self, op: Op) {
        self.stats.all.failed += 1;
        self.stats.per_kind[op.slot].failed += 1;
        self.stats.lost += 1;
    }

    /// Sends what may be sent now: due polls first, then new operations.
    fn pump(&mut self, index: usize, now: Instant) {
        let ctx = SendContext {
            workload: self.workload,
            plan: &self.plan,
            now,
        };
        let conn = &mut self.conns[index];
        let Some(socket) = conn.socket.as_ref() else {
            return;
        };
        if !socket.connected || conn.retired {
            return;
        }
        self.stats.http_requests += conn.queue_requests(&ctx, &mut self.image_cursor);
        let flushed = conn.socket.as_mut().expect("checked above").flush();
        match flushed {
            Ok(written) => self.stats.bytes_written += written as u64,
            Err(_) => self.break_conn(index, ErrorKind::Write, now, Duration::ZERO),
        }
    }

    /// The connection failed: count it, lose what was in flight, reconnect later.
    fn break_conn(&mut self, index: usize, kind: ErrorKind, now: Instant, backoff: Duration) {
        if kind == ErrorKind::Connect || self.conns[index].inflight.is_empty() {
            self.stats.count_error(kind);
        }
        self.drop_conn(index, Some(kind), now, backoff);
    }

    fn drop_conn(
        &mut self,
        index: usize,
        kind: Option<ErrorKind>,
        now: Instant,
        backoff: Duration,
    ) {
        let conn = &mut self.conns[index];
        if let Some(socket) = conn.socket.take() {
            socket.close(self.poll.registry());
        }
        conn.parser = ResponseParser::default();
        conn.body.clear();
        let lost: Vec<Exchange> = conn.inflight.drain(..).collect();
        conn.reconnect_at = Some(now + backoff);
        // One error per unanswered request (a lost login too: it is retried on reconnect).
        for exchange in lost {
            if let Some(kind) = kind {
                self.stats.count_error(kind);
            }
            if let Role::Start(op) | Role::Poll(op) = exchange.role {
                self.conns[index].active_ops -= 1;
                self.lose_op(op);
            }
        }
    }

    /// At the stop instant: whatever is still unanswered is counted as timed out.
    fn give_up_unfinished(&mut self) {
        let now = Instant::now();
        for index in 0..self.conns.len() {
            let waiting: Vec<Op> = self.conns[index]
                .followups
                .drain(..)
                .map(|f| f.op)
                .collect();
            for op in waiting {
                self.conns[index].active_ops -= 1;
                self.stats.count_error(ErrorKind::Timeout);
                self.lose_op(op);
            }
            self.drop_conn(index, Some(ErrorKind::Timeout), now, Duration::ZERO);
        }
    }
}
