//! One shard: a glommio executor pinned to one core, its own SO_REUSEPORT listener, its own
//! store (the users whose id carries its shard number), its group-commit loop, and an inbox
//! for work other shards forward to it and for recognition results.

use super::commit::GroupCommit;
use super::conn;
use super::routes::Surface;
use super::stop::StopSignal;
use crate::accel::cache::AnswerCache;
use crate::accel::{JobQueue, JobResult};
use crate::auth::{Keys, TokenCache, DEFAULT_TOKEN_CACHE_ENTRIES};
use crate::config::Config;
use crate::engine::ImageLimits;
use crate::metrics::Registry;
use crate::ratelimit::RateLimiter;
use crate::store::{Outcome, ShardStore, UploadRecord};
use glommio::net::TcpListener;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Work sent to another shard: runs there with that shard's state, answers through the
/// channel it captured (Seastar's `submit_to`).
pub type RemoteTask = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

pub enum ShardMessage {
    Run(RemoteTask),
    /// SIGTERM: stop accepting, drain, void pending uploads, flush, exit.
    Stop,
}

/// A registered connection: its socket and its "waiting between requests" flag.
pub type OpenConnection = (RawFd, Rc<Cell<bool>>);

/// What every shard shares (read-only after start).
pub struct Shared {
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
    pub queue: JobQueue,
    pub peers: Arc<[flume::Sender<ShardMessage>]>,
    pub metrics: Registry,
    /// Model names uploads may ask for.
    pub models: Arc<[String]>,
    pub accel_threads: usize,
}

/// Everything one shard thread starts from.
pub struct ShardSeed {
    pub id: u16,
    pub store: ShardStore,
    pub inbox: flume::Receiver<ShardMessage>,
    pub results: flume::Receiver<JobResult>,
    pub shared: Arc<Shared>,
}

pub struct Shard {
    pub id: u16,
    pub shard_count: u16,
    pub config: Arc<Config>,
    pub shared: Arc<Shared>,
    pub metrics: Registry,
    pub store: RefCell<ShardStore>,
    /// Per-user token buckets for uploads.
    pub limiter: RefCell<RateLimiter>,
    /// Per-user token buckets for login attempts (separate, so guessing a user's password
    /// does not also use up that user's uploads).
    pub login_limiter: RefCell<RateLimiter>,
    pub commit: GroupCommit,
    /// `wait=1` requests waiting for an upload's result, by upload id.
    pub result_waiters: RefCell<HashMap<u64, Vec<flume::Sender<UploadRecord>>>>,
    /// Answers by image digest and options (no locks: one cache per shard).
    pub answer_cache: RefCell<AnswerCache>,
    pub connections: Cell<usize>,
    /// Open connections by id: their socket and whether they wait between requests (those
    /// are shut down at once on SIGTERM; the others finish their request first).
    pub open_connections: RefCell<HashMap<u64, OpenConnection>>,
    next_connection_id: Cell<u64>,
    /// Verified JWTs, so a client reusing its token skips the HMAC/JSON work.
    pub token_cache: RefCell<TokenCache>,
    pub stop: StopSignal,
    pub image_limits: ImageLimits,
}

/// The error of a forwarded call whose shard has stopped.
#[derive(Debug)]
pub struct ShardGone;

impl Shard {
    /// Runs `work` on shard `target` (here, without any message, when it is this shard) and
    /// returns its result.
    pub async fn submit_to<R, F, Fut>(self: &Rc<Self>, target: u16, work: F) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        assert!(
            target < self.shard_count,
            "target shard {target} out of range"
        );
        if target == self.id {
            return Ok(work(self.clone()).await);
        }
        let (reply, reply_receiver) = flume::bounded(1);
        let task: RemoteTask = Box::new(move |shard: Rc<Shard>| {
            Box::pin(async move {
                shard.metrics.shard(shard.id).forwarded_in += 1;
                let _ = reply.send(work(shard).await);
            })
        });
        self.metrics.shard(self.id).forwarded_out += 1;
        let peer = &self.shared.peers[usize::from(target)];
        peer.send(ShardMessage::Run(task)).map_err(|_| ShardGone)?;
        reply_receiver.recv_async().await.map_err(|_| ShardGone)
    }

    pub fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Applies a recognition result: posts or voids the reservation, keeps a fresh answer in
    /// the cache, wakes `wait=1` waiters.
    pub(super) fn apply_result(&self, result: JobResult) {
        if let (Ok(answer), false) = (&result.outcome, result.cache_hit) {
            let options = result.options.clone();
            self.answer_cache
                .borrow_mut()
                .insert(result.digest, options, answer.clone());
        }
        let outcome = match &result.outcome {
            // The store keeps an f32; NaN marks "not computed" (no `probability` asked) and is
            // left out of answers.
            Ok(answer) => Outcome::Done {
                text: answer.text.clone(),
                confidence: answer.confidence.unwrap_or(f32::NAN),
                cache_hit: result.cache_hit,
            },
            Err(reason) => Outcome::Failed {
                reason: reason.clone(),
            },
        };
        let record = self
            .store
            .borrow_mut()
            .finish_upload(result.upload_id, outcome);
        {
            let mut metrics = self.metrics.shard(self.id);
            match &result.outcome {
                Ok(_) => metrics.results_done += 1,
                Err(_) => metrics.results_failed += 1,
            }
            metrics.results_cache_hits += u64::from(result.cache_hit);
            metrics.queued_us.saturating_record(result.queued_us.max(1));
            if !result.cache_hit {
                metrics
                    .recognize_us
                    .saturating_record(result.recognize_us.max(1));
                metrics
                    .batch_size
                    .saturating_record(u64::from(result.batch_size.max(1)));
            }
        }
        match record {
            Ok(record) => self.wake_result_waiters(record),
            Err(error) => eprintln!(
                "aiocr: shard {}: finishing upload {} failed: {error}",
                self.id, result.upload_id
            ),
        }
    }

    fn wake_result_waiters(&self, record: UploadRecord) {
        let waiters = self.result_waiters.borrow_mut().remove(&record.id);
        for waiter in waiters.into_iter().flatten() {
            let _ = waiter.try_send(record.clone());
        }
    }

    /// Ends connections waiting between requests: shutting the read side down makes their
    /// pending read return end-of-stream. Connections inside a request finish it first and
    /// then see the stop (conn.rs checks it before waiting again).
    fn close_idle_connections(&self) {
        for (fd, idle) in self.open_connections.borrow().values() {
            if idle.get() {
                // SAFETY: the fd belongs to a connection that is still open (its entry is
                // removed when its task ends); shutdown does not close or reuse the fd.
                unsafe { libc::shutdown(*fd, libc::SHUT_RD) };
            }
        }
    }

    /// Voids every pending upload of this shard (start-up and shutdown: the jobs will not run).
    pub fn void_pending(store: &mut ShardStore, reason: &str) -> Result<usize, String> {
        let pending = store.pending_uploads().map_err(|e| e.to_string())?;
        for record in &pending {
            store
                .finish_upload(
                    record.id,
                    Outcome::Failed {
                        reason: reason.to_string(),
                    },
                )
                .map_err(|e| e.to_string())?;
        }
        Ok(pending.len())
    }
}

/// The shard's executor body: calls `on_listening` once its socket listens, returns when the
/// shard has stopped and flushed.
pub async fn run(seed: ShardSeed, on_listening: impl FnOnce()) -> Result<(), String> {
    let shared = seed.shared.clone();
    let config = shared.config.clone();
    let listener =
        bind_listener(&config).map_err(|e| format!("listen on {}: {e}", config.listen))?;
    // One monitoring listener for the whole server, on shard 0 (/metrics sums every shard).
    let metrics_listener = match config.metrics_addr() {
        Some(address) if seed.id == 0 => Some(
            bind_metrics_listener(address)
                .map_err(|e| format!("listen on {address} (metrics_listen): {e}"))?,
        ),
        _ => None,
    };
    on_listening();
    let flusher = seed.store.flusher();
    let shard = Rc::new(Shard {
        id: seed.id,
        shard_count: shared.peers.len() as u16,
        config: config.clone(),
        metrics: shared.metrics.clone(),
        shared: shared.clone(),
        store: RefCell::new(seed.store),
        limiter: RefCell::new(RateLimiter::new(
            config.rate_limit_per_sec,
            config.rate_limit_burst,
        )),
        login_limiter: RefCell::new(RateLimiter::new(
            config.rate_limit_per_sec,
            config.rate_limit_burst,
        )),
        commit: GroupCommit::new(flusher, config.durable_acks),
        result_waiters: RefCell::new(HashMap::new()),
        answer_cache: RefCell::new(AnswerCache::new(config.cache_entries)),
        connections: Cell::new(0),
        open_connections: RefCell::new(HashMap::new()),
        next_connection_id: Cell::new(0),
        token_cache: RefCell::new(TokenCache::new(DEFAULT_TOKEN_CACHE_ENTRIES)),
        stop: StopSignal::default(),
        image_limits: image_limits(&config),
    });
    // The flush loop outlives the drain: requests finishing during it still need fsyncs.
    let commit_stop = StopSignal::default();
    let commit_loop = glommio::spawn_local({
        let shard = shard.clone();
        let commit_stop = commit_stop.clone();
        async move {
            shard
                .commit
                .run(shard.metrics.clone(), shard.id, commit_stop)
                .await
        }
    });
    glommio::spawn_local(inbox_loop(shard.clone(), seed.inbox)).detach();
    glommio::spawn_local(results_loop(shard.clone(), seed.results)).detach();
    glommio::spawn_local(retention_loop(shard.clone())).detach();
    if let Some(metrics_listener) = metrics_listener {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            accept_loop(&shard, &metrics_listener, Surface::Monitoring).await
        })
        .detach();
    }
    accept_loop(&shard, &listener, Surface::Api).await;
    drop(listener);
    drain(&shard).await;
    commit_stop.stop();
    commit_loop.await;
    finish(&shard).await
}

/// The engine's bounds with the configured values (other fields keep the engine's defaults;
/// assigned field by field so new engine fields need no change here).
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn image_limits(config: &Config) -> ImageLimits {
    ImageLimits {
        max_pixels: config.max_image_pixels,
        max_side: config.max_image_side,
        max_model_width: config.max_model_width,
    }
}

/// One SO_REUSEPORT socket per shard (the kernel spreads connections over them), with the
/// configured backlog.
fn bind_listener(config: &Config) -> std::io::Result<TcpListener> {
    listen_socket(config.listen_addr(), config.backlog, true)
}

/// The `metrics_listen` socket: one, without SO_REUSEPORT, so that a second server on the
/// same address fails to start instead of taking half of the scrapes.
fn bind_metrics_listener(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    const METRICS_BACKLOG: u32 = 64;
    listen_socket(address, METRICS_BACKLOG, false)
}

fn listen_socket(
    address: std::net::SocketAddr,
    backlog: u32,
    reuse_port: bool,
) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if address.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(backlog as i32)?;
    // SAFETY: the fd is a listening TCP socket we own; ownership moves into the listener.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

async fn accept_loop(shard: &Rc<Shard>, listener: &TcpListener, surface: Surface) {
    loop {
        let accepted = async { Some(listener.accept().await) };
        let stopped = async {
            shard.stop.wait().await;
            None
        };
        let Some(accepted) = futures_lite::future::or(accepted, stopped).await else {
            return;
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning on the error.
                eprintln!("aiocr: shard {}: accept: {error}", shard.id);
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shard.connections.get() >= shard.config.max_connections_per_shard {
            shard.metrics.shard(shard.id).connections_refused += 1;
            drop(stream);
            continue;
        }
        shard.connections.set(shard.connections.get() + 1);
        {
            let mut metrics = shard.metrics.shard(shard.id);
            metrics.connections_accepted += 1;
            metrics.connections_open = shard.connections.get() as u64;
        }
        let connection_id = shard.next_connection_id.get();
        shard.next_connection_id.set(connection_id + 1);
        let idle = Rc::new(Cell::new(false));
        let registration = (stream.as_raw_fd(), idle.clone());
        shard
            .open_connections
            .borrow_mut()
            .insert(connection_id, registration);
        let task_shard = shard.clone();
        glommio::spawn_local(async move {
            conn::serve(task_shard.clone(), stream, idle, surface).await;
            task_shard
                .open_connections
                .borrow_mut()
                .remove(&connection_id);
            task_shard.connections.set(task_shard.connections.get() - 1);
            task_shard.metrics.shard(task_shard.id).connections_open =
                task_shard.connections.get() as u64;
        })
        .detach();
    }
}

async fn inbox_loop(shard: Rc<Shard>, inbox: flume::Receiver<ShardMessage>) {
    while let Ok(message) = inbox.recv_async().await {
        match message {
            ShardMessage::Run(task) => {
                glommio::spawn_local(task(shard.clone())).detach();
            }
            ShardMessage::Stop => {
                shard.stop.stop();
                shard.close_idle_connections();
            }
        }
    }
}

async fn results_loop(shard: Rc<Shard>, results: flume::Receiver<JobResult>) {
    while let Ok(result) = results.recv_async().await {
        assert_eq!(
            result.owner_shard, shard.id,
            "results are routed to their owner shard"
        );
        shard.apply_result(result);
    }
}

/// Drops expired per-day upload trees once an hour.
async fn retention_loop(shard: Rc<Shard>) {
    loop {
        let dropped = shard
            .store
            .borrow_mut()
            .drop_expired(Shard::now_ms(), shard.config.retention_days);
        if let Err(error) = dropped {
            eprintln!("aiocr: shard {}: retention: {error}", shard.id);
        }
        let stopped = async {
            shard.stop.wait().await;
            true
        };
        let slept = async {
            glommio::timer::sleep(Duration::from_secs(3600)).await;
            false
        };
        if futures_lite::future::or(stopped, slept).await {
            return;
        }
    }
}

/// Waits for open connections to finish their current request (bounded by the drain timeout).
async fn drain(shard: &Rc<Shard>) {
    let deadline = Instant::now() + Duration::from_millis(shard.config.drain_timeout_ms);
    while shard.connections.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

async fn finish(shard: &Rc<Shard>) -> Result<(), String> {
    let voided = Shard::void_pending(
        &mut shard.store.borrow_mut(),
        "server stopped before recognition",
    )?;
    if voided > 0 {
        eprintln!(
            "aiocr: shard {}: voided {voided} pending upload(s)",
            shard.id
        );
    }
    shard.commit.flush_once(&shard.metrics, shard.id).await?;
    Ok(())
}
