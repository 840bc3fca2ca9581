//! One client connection: read, parse, answer in order, until the client or a limit ends it.
//!
//! The connection buffer only ever holds request heads and body bytes on their way into the
//! body decoder, so its size is bounded by the header limit plus one read. Pipelined requests
//! are answered in order: answers accumulate in `out` and are written when no complete request
//! is left in the buffer (or `out` grows past `FLUSH_AT_BYTES`). Every wait for the client has a
//! deadline (header, body, idle, write; TLS adds the handshake's), so a slow or silent client
//! costs one task and a buffer, never the shard's progress. A read's deadline is kept in the
//! connection's `ReadWatch`, which the shard sweeps (state/read_watch.rs), rather than in a
//! timer of its own.
//!
//! The loop is generic over its [`Transport`]: the accepted `TcpStream` itself, or a TLS
//! stream over it after the handshake (`transport.rs`); both serve the same routes, limits
//! and SIGTERM drain.

use super::reply::Refusal;
use super::router::{self, Admission, Route, Surface};
use super::shard::Shard;
use super::state::{BodyGrant, ReadWatch, Registration};
use super::transport::{self, Transport};
use crate::contract::ApiError;
use crate::http::{
    parse_head_into, BodyDecoder, BodyProgress, Framing, HeadLimits, Method, ProtocolError,
    RequestHead, Response,
};
use glommio::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes read from the socket at a time, at most (the buffer's room beyond the header limit).
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// A connection's buffer starts this small (most requests fit) and grows on demand up to
/// the header limit plus one read, so 10 000 idle connections cost 40 MB, not 320 MB.
const INITIAL_BUFFER_BYTES: usize = 4 * 1024;
/// Pending pipelined answers are written once they exceed this.
const FLUSH_AT_BYTES: usize = 64 * 1024;

enum ReadEnd {
    /// The client closed its side (or reset), or the shard shut an idle connection down.
    Closed,
    /// The deadline passed.
    TimedOut,
}

/// How reading a request body ended.
enum BodyRead {
    Complete(Vec<u8>),
    /// Its memory grew past what the shard's body budget has left: refused, the rest unread.
    OverBudget,
    /// The connection ends (a protocol refusal, a timeout, the client left).
    Ended(Ending),
}

/// Why the request loop ended; decides what to write last and whether to linger.
enum Ending {
    Done,
    Refused(ProtocolError),
    /// A request was answered from its head, its body unread (no route, no credentials, no
    /// room in the body budget).
    Unread,
}

impl Ending {
    /// Whether the client may still be sending a request the server did not read: then the
    /// server reads and drops it for a while after answering, since closing a socket with
    /// unread input makes the kernel send a reset, which can reach the client before it
    /// reads the answer (the lingering close of RFC 9112 section 9.6).
    fn leaves_input_unread(&self) -> bool {
        matches!(self, Ending::Refused(_) | Ending::Unread)
    }
}

pub struct Connection<S> {
    stream: S,
    /// Received bytes; `buf[start..end]` is not consumed yet.
    buf: Vec<u8>,
    /// The most `buf` grows to.
    buffer_limit: usize,
    start: usize,
    end: usize,
    /// Serialised answers not written yet.
    out: Vec<u8>,
    /// When the request head being received was first seen incomplete (the header timeout
    /// runs from then; a head that arrives in one read never reads the clock).
    head_started: Option<Instant>,
    /// Idle between requests (the shard shuts those down on SIGTERM), and the deadline of
    /// the read under way (the shard's sweep ends it).
    watch: Rc<ReadWatch>,
    /// The listener it came in on (what it may ask for).
    surface: Surface,
    /// The client's address.
    peer: std::net::IpAddr,
    /// No request head has arrived yet: the wait for the first byte is
    /// `first_byte_timeout_ms`, not the keep-alive idle time.
    fresh: bool,
}

/// How an accepted connection speaks: plain HTTP, or TLS with the shard's current
/// certificate (taken at the accept: a SIGHUP reload changes only later connections).
pub enum Security {
    Plain,
    Tls(Arc<rustls::ServerConfig>),
}

/// Serves one accepted, registered connection until the client or a limit ends it, then
/// removes it from the shard's connection set.
pub async fn serve(
    shard: Rc<Shard>,
    stream: TcpStream,
    registration: Registration,
    surface: Surface,
    security: Security,
) {
    let Registration { id, watch, peer } = registration;
    let _ = stream.set_nodelay(true);
    let write_timeout = Duration::from_millis(shard.config().http.write_timeout_ms);
    let _ = stream.set_write_timeout(Some(write_timeout));
    match security {
        Security::Plain => serve_registered(&shard, stream, watch, surface, peer).await,
        Security::Tls(config) => {
            if let Some(stream) = handshake(&shard, stream, config, &watch).await {
                serve_registered(&shard, stream, watch, surface, peer).await;
            }
        }
    }
    shard.io.connections.remove(id);
    shard.metrics().connections_open = shard.io.connections.count() as u64;
}

/// The TLS handshake, within `tls_handshake_timeout_ms`. A connection in its handshake counts
/// as idle (no request has started), so SIGTERM closes it at once. `None`: the client failed
/// or did not finish (plain HTTP on this port, a wrong protocol, a timeout, a reset); the
/// socket is closed when the stream is dropped.
async fn handshake(
    shard: &Rc<Shard>,
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    watch: &ReadWatch,
) -> Option<transport::TlsTransport> {
    watch.set_idle(true);
    if shard.stop.is_stopped() {
        return None;
    }
    let timeout = Duration::from_millis(shard.config().network.tls_handshake_timeout_ms);
    let handshake = transport::tls_handshake(stream, config, Instant::now() + timeout).await;
    watch.set_idle(false);
    let mut metrics = shard.metrics();
    match handshake {
        Ok(stream) => {
            metrics.tls_handshakes += 1;
            Some(stream)
        }
        Err(_) => {
            metrics.tls_handshakes_failed += 1;
            None
        }
    }
}

async fn serve_registered<S: Transport>(
    shard: &Rc<Shard>,
    stream: S,
    watch: Rc<ReadWatch>,
    surface: Surface,
    peer: std::net::IpAddr,
) {
    let buffer_limit = shard.config().http.max_header_bytes + READ_CHUNK_BYTES;
    let mut connection = Connection {
        stream,
        buf: vec![0; INITIAL_BUFFER_BYTES.min(buffer_limit)],
        buffer_limit,
        start: 0,
        end: 0,
        out: Vec::new(),
        head_started: None,
        watch,
        surface,
        peer,
        fresh: true,
    };
    let ending = connection.request_loop(shard).await;
    if let Ok(Ending::Refused(error)) = &ending {
        shard.metrics().record_protocol_error(error.status());
        error.response().write_to(&mut connection.out, false, false);
    }
    // Best effort: the client may already be gone.
    let _ = connection.flush_out().await;
    let _ = connection.stream.close().await;
    if ending.is_ok_and(|ending| ending.leaves_input_unread()) {
        connection.linger(shard).await;
    }
}

impl<S: Transport> Connection<S> {
    async fn request_loop(&mut self, shard: &Rc<Shard>) -> std::io::Result<Ending> {
        let config = shard.config();
        let limits = HeadLimits {
            max_header_bytes: config.http.max_header_bytes,
            max_uri_bytes: config.http.max_uri_bytes,
            // The largest any route takes; each route's own is checked once it is known.
            max_body_bytes: config
                .http
                .max_body_bytes
                .max(config.models.model_body_max_bytes),
        };
        // Every request of the connection is parsed into this head, which keeps its strings'
        // memory from one request to the next.
        let mut head = RequestHead::empty();
        loop {
            if self.start == self.end {
                // Nothing buffered (the usual case after an answer): read before parsing.
                if let Some(ending) = self.wait_for_head(shard).await? {
                    return Ok(ending);
                }
                continue;
            }
            let parsed = parse_head_into(&self.buf[self.start..self.end], &limits, &mut head);
            let parsed = match parsed {
                Ok(parsed) => parsed,
                Err(error) => return Ok(Ending::Refused(error)),
            };
            let Some(head_len) = parsed else {
                if let Some(ending) = self.wait_for_head(shard).await? {
                    return Ok(ending);
                }
                continue;
            };
            self.start += head_len;
            self.head_started = None;
            self.fresh = false;
            let admitted = Instant::now();
            let admission = match router::admit(shard, self.surface, self.peer, &head).await {
                Ok(admission) => admission,
                Err((route, answer)) => {
                    if head.framing != Framing::Empty {
                        return Ok(self.refuse_unread(shard, &head, route, answer, admitted));
                    }
                    if !self.queue_answer(shard, &head, route, answer, admitted, true) {
                        return Ok(Ending::Done);
                    }
                    continue;
                }
            };
            let max_body_bytes = router::max_body_bytes(admission.route, config);
            if matches!(head.framing, Framing::Length(length) if length > max_body_bytes) {
                return Ok(Ending::Refused(ProtocolError::BodyTooLarge));
            }
            let body = self
                .read_body(shard, &head, admission.route, max_body_bytes)
                .await;
            let body = match body? {
                BodyRead::Complete(body) => body,
                BodyRead::OverBudget => {
                    shard.metrics().bodies_refused_busy += 1;
                    let refusal = Refusal::new(ApiError::Busy, "too many request bodies in flight")
                        .retry_after(1);
                    let answer = router::refusal_before_body(admission.route, &head, refusal);
                    return Ok(self.refuse_unread(shard, &head, admission.route, answer, admitted));
                }
                BodyRead::Ended(ending) => return Ok(ending),
            };
            // A request without a body starts when its head was admitted (one clock read
            // fewer on the hot path); one with a body, once the body is in.
            let started = match head.framing {
                Framing::Empty => admitted,
                _ => Instant::now(),
            };
            let keep_alive = self.answer(shard, &head, body, admission, started).await;
            if !keep_alive {
                return Ok(Ending::Done);
            }
            if self.out.len() >= FLUSH_AT_BYTES {
                self.flush_out().await?;
            }
        }
    }

    /// Runs the request (its latency counted from `started`) and queues its answer; returns
    /// whether the connection stays open.
    async fn answer(
        &mut self,
        shard: &Rc<Shard>,
        head: &RequestHead,
        body: Vec<u8>,
        admission: Admission,
        started: Instant,
    ) -> bool {
        let route = admission.route;
        let answer = router::handle(shard, self.peer, head, body, admission).await;
        self.queue_answer(shard, head, route, answer, started, true)
    }

    /// Records and queues an answer; returns whether the connection stays open (never after
    /// an answer given without reading the request's body: its bytes are still coming).
    fn queue_answer(
        &mut self,
        shard: &Rc<Shard>,
        head: &RequestHead,
        route: Route,
        answer: Response,
        started: Instant,
        body_read: bool,
    ) -> bool {
        let latency_us = started.elapsed().as_micros() as u64;
        shard
            .metrics()
            .record_request(route.index(), answer.status, latency_us);
        let keep_alive = body_read && head.keep_alive && !answer.close && !shard.stop.is_stopped();
        answer.write_to(&mut self.out, head.method == Method::Head, keep_alive);
        keep_alive
    }

    /// Queues the answer to a request whose body is left unread; the connection ends.
    fn refuse_unread(
        &mut self,
        shard: &Rc<Shard>,
        head: &RequestHead,
        route: Route,
        answer: Response,
        started: Instant,
    ) -> Ending {
        shard.metrics().requests_refused_before_body += 1;
        let keep_alive = self.queue_answer(shard, head, route, answer, started, false);
        assert!(!keep_alive, "a connection with unread input cannot go on");
        Ending::Unread
    }

    /// Writes pending answers, then reads more of a request head. `Some(ending)` ends the
    /// connection: a silent close when no request was in progress, 408 when one was.
    async fn wait_for_head(&mut self, shard: &Rc<Shard>) -> std::io::Result<Option<Ending>> {
        self.flush_out().await?;
        let idle = self.start == self.end;
        let deadline = if idle {
            // Marked idle before checking the stop: a stop after the check shuts us down.
            self.watch.set_idle(true);
            if shard.stop.is_stopped() {
                return Ok(Some(Ending::Done));
            }
            let config = shard.config();
            let idle_timeout_ms = if self.fresh {
                // A client that connects and says nothing holds a connection and a socket:
                // it gets much less time than one that has made requests.
                config
                    .http
                    .first_byte_timeout_ms
                    .min(config.http.idle_timeout_ms)
            } else {
                config.http.idle_timeout_ms
            };
            Instant::now() + Duration::from_millis(idle_timeout_ms)
        } else {
            let started = *self.head_started.get_or_insert_with(Instant::now);
            let deadline =
                started + Duration::from_millis(shard.config().http.header_read_timeout_ms);
            if time_left(deadline).is_none() {
                return Ok(Some(Ending::Refused(ProtocolError::Timeout)));
            }
            deadline
        };
        let read = self.read_more(deadline).await?;
        self.watch.set_idle(false);
        match read {
            Ok(()) => Ok(None),
            Err(ReadEnd::TimedOut) if !idle => Ok(Some(Ending::Refused(ProtocolError::Timeout))),
            Err(_) => Ok(Some(Ending::Done)),
        }
    }

    /// Reads the body of `head` for `route`, its memory counted against the shard's body
    /// budget as it grows. A request without a body touches neither the budget nor its gauge.
    async fn read_body(
        &mut self,
        shard: &Rc<Shard>,
        head: &RequestHead,
        route: Route,
        max_body_bytes: usize,
    ) -> std::io::Result<BodyRead> {
        if head.framing == Framing::Empty {
            return Ok(BodyRead::Complete(Vec::new()));
        }
        let mut grant = match route {
            Route::ModelAdd => shard.io.model_body_budget.grant(),
            _ => shard.io.body_budget.grant(),
        };
        let body = self
            .read_granted_body(shard, head, max_body_bytes, &mut grant)
            .await;
        drop(grant);
        publish_body_bytes(shard);
        body
    }

    /// Reads the body of `head`, its memory counted by `grant` as it grows.
    async fn read_granted_body(
        &mut self,
        shard: &Rc<Shard>,
        head: &RequestHead,
        max_body_bytes: usize,
        grant: &mut BodyGrant,
    ) -> std::io::Result<BodyRead> {
        let config = shard.config();
        let mut decoder =
            BodyDecoder::new(head.framing, max_body_bytes, config.http.max_header_bytes);
        let deadline = Instant::now() + Duration::from_millis(config.http.body_read_timeout_ms);
        // Each read must bring a byte within this time: a client that trickles its body
        // ends long before the total deadline.
        let progress_timeout = Duration::from_millis(config.http.body_progress_timeout_ms);
        let mut continue_sent = false;
        loop {
            match decoder.feed(&self.buf[self.start..self.end]) {
                Ok(BodyProgress::Complete(used)) => {
                    self.start += used;
                    self.shrink_buffer();
                    return Ok(BodyRead::Complete(decoder.into_body()));
                }
                Ok(BodyProgress::NeedMore(used)) => self.start += used,
                Err(error) => return Ok(BodyRead::Ended(Ending::Refused(error))),
            }
            if head.expect_continue && !continue_sent {
                // Earlier pipelined answers go first; then invite the body.
                self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                continue_sent = true;
            }
            self.flush_out().await?;
            if time_left(deadline).is_none() {
                return Ok(BodyRead::Ended(Ending::Refused(ProtocolError::Timeout)));
            }
            if self.end == self.buf.len() && self.buf.len() < self.buffer_limit {
                // The last read filled the buffer: the body arrives faster than the buffer
                // holds, so read it in chunks of the full size. (Grown only once bytes
                // arrive: a body that stalls keeps the small buffer.)
                self.buf.resize(self.buffer_limit, 0);
            }
            // Checked after every growth and before the next await (see state/body_budget.rs).
            let held_bytes =
                decoder.held_bytes() + self.buf.len().saturating_sub(INITIAL_BUFFER_BYTES);
            if !grant.resize(held_bytes) {
                return Ok(BodyRead::OverBudget);
            }
            publish_body_bytes(shard);
            match self
                .read_more(deadline.min(Instant::now() + progress_timeout))
                .await?
            {
                Ok(()) => {}
                Err(ReadEnd::TimedOut) => {
                    return Ok(BodyRead::Ended(Ending::Refused(ProtocolError::Timeout)))
                }
                Err(_) => return Ok(BodyRead::Ended(Ending::Done)),
            }
        }
    }

    /// Reads at least one byte into the buffer by `deadline`.
    async fn read_more(&mut self, deadline: Instant) -> std::io::Result<Result<(), ReadEnd>> {
        self.make_room();
        let room = &mut self.buf[self.end..];
        match self.stream.read_by(room, deadline, &self.watch).await {
            Ok(0) => Ok(Err(ReadEnd::Closed)),
            Ok(count) => {
                self.end += count;
                Ok(Ok(()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                Ok(Err(ReadEnd::TimedOut))
            }
            Err(error) if is_disconnect(&error) => Ok(Err(ReadEnd::Closed)),
            Err(error) => Err(error),
        }
    }

    /// Moves unconsumed bytes to the front so a read has room, growing the buffer (up to its
    /// limit) when it is full. At the limit, a full buffer without a complete head is already
    /// over the header limit (431), so there is always room.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() && self.buf.len() < self.buffer_limit {
            let grown = (self.buf.len() * 2).min(self.buffer_limit);
            self.buf.resize(grown, 0);
        }
        assert!(
            self.end < self.buf.len(),
            "parse_head refuses heads beyond the header limit"
        );
    }

    /// After a large body, gives the memory back if nothing else is buffered.
    fn shrink_buffer(&mut self) {
        if self.start == self.end && self.buf.len() > INITIAL_BUFFER_BYTES {
            self.start = 0;
            self.end = 0;
            self.buf.truncate(INITIAL_BUFFER_BYTES);
            self.buf.shrink_to_fit();
        }
    }

    /// After an answer that left the request's input unread and the write side shut: reads
    /// and drops what the client still sends, until it closes, `linger_timeout_ms` passes or
    /// `linger_max_bytes` arrive, so the answer is not lost to a reset.
    async fn linger(&mut self, shard: &Shard) {
        let config = shard.config();
        let deadline = Instant::now() + Duration::from_millis(config.http.linger_timeout_ms);
        let mut dropped_bytes = 0;
        while dropped_bytes < config.http.linger_max_bytes {
            if time_left(deadline).is_none() {
                return;
            }
            match self
                .stream
                .read_by(&mut self.buf, deadline, &self.watch)
                .await
            {
                Ok(0) | Err(_) => return,
                Ok(count) => dropped_bytes += count,
            }
        }
    }

    async fn flush_out(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        result
    }
}

/// Time until `deadline`, `None` once it passed.
fn time_left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

fn is_disconnect(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

/// The `body_bytes_in_flight` gauge, after the shard's body budget changed (a grant grew or
/// ended).
fn publish_body_bytes(shard: &Shard) {
    shard.metrics().body_bytes_in_flight = shard.io.body_budget.in_flight_bytes() as u64;
}
