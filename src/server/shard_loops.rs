//! The tasks that drive one shard, from start to stop: accept connections, run work other
//! shards forward, apply recognition results, drop expired days, and at the end drain the
//! connections, void what is still pending and flush.

use super::conn::{self, Security};
use super::listener;
use super::router::Surface;
use super::shard::{Shard, ShardMessage, ShardSeed};
use super::state::ConnectionRefused;
use super::state::StopSignal;
use super::storage;
use super::upload;
use crate::recognition::JobResult;
use crate::store::StoreError;
use glommio::net::TcpListener;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often expired per-day upload trees are dropped.
const RETENTION_PERIOD: Duration = Duration::from_secs(3600);
/// How long accepting pauses after an accept error (EMFILE and friends), instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How often the drain checks whether connections are done.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// The shard's executor body: calls `on_listening` once its socket listens, returns when the
/// shard has stopped and flushed.
pub async fn shard_main(seed: ShardSeed, on_listening: impl FnOnce()) -> Result<(), String> {
    let config = seed.shared.config.clone();
    let listener = listener::api_listener(&config)
        .map_err(|e| format!("listen on {}: {e}", config.network.listen))?;
    let tls_listener = match config.network.tls_listen {
        Some(address) => Some(
            listener::tls_listener(address, config.network.backlog)
                .map_err(|e| format!("listen on {address} (tls_listen): {e}"))?,
        ),
        None => None,
    };
    // One monitoring listener for the whole server, on shard 0 (/metrics sums every shard).
    let metrics_listener = match config.network.metrics_listen {
        Some(address) if seed.id == 0 => Some(
            listener::metrics_listener(address)
                .map_err(|e| format!("listen on {address} (metrics_listen): {e}"))?,
        ),
        _ => None,
    };
    on_listening();
    let shard = Rc::new(Shard::new(seed.id, seed.store, seed.shared));
    assert_eq!(
        seed.tls.is_some(),
        tls_listener.is_some(),
        "a TLS listener has a certificate"
    );
    shard.io.tls.replace(seed.tls);
    // The flush loop (and the storage recovery around it) outlives the drain: requests
    // finishing during it still need fsyncs.
    let commit_stop = StopSignal::default();
    let commit_loop = glommio::spawn_local(storage::run(shard.clone(), commit_stop.clone()));
    glommio::spawn_local(inbox_loop(shard.clone(), seed.inbox)).detach();
    glommio::spawn_local(results_loop(shard.clone(), seed.results)).detach();
    glommio::spawn_local(retention_loop(shard.clone())).detach();
    // Read deadlines are enforced until the drain is over (connections finishing a request
    // still read its body).
    let sweep_stop = StopSignal::default();
    let sweeping = glommio::spawn_local(read_sweep_loop(shard.clone(), sweep_stop.clone()));
    if let Some(metrics_listener) = metrics_listener {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            accept_loop(&shard, &metrics_listener, Surface::Monitoring, false).await
        })
        .detach();
    }
    // The TLS listener serves the same surface; it stops with the plain one (both watch the
    // stop signal), and the drain below waits for its connections too.
    let tls_accepting = tls_listener.map(|tls_listener| {
        let shard = shard.clone();
        glommio::spawn_local(
            async move { accept_loop(&shard, &tls_listener, Surface::Api, true).await },
        )
    });
    accept_loop(&shard, &listener, Surface::Api, false).await;
    drop(listener);
    if let Some(tls_accepting) = tls_accepting {
        tls_accepting.await;
    }
    drain(&shard).await;
    sweep_stop.stop();
    sweeping.await;
    commit_stop.stop();
    commit_loop.await;
    finish(&shard).await
}

/// Accepts until the stop signal; `tls`: each connection starts with a handshake, using the
/// certificate the shard holds at that accept.
async fn accept_loop(shard: &Rc<Shard>, listener: &TcpListener, surface: Surface, tls: bool) {
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
                log_line!("aiocr: shard {}: accept: {error}", shard.id);
                glommio::timer::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map_or(Ipv4Addr::UNSPECIFIED.into(), |address| address.ip());
        let shard_limit = shard.config().network.max_connections_per_shard;
        let registration = match shard
            .io
            .connections
            .add(stream.as_raw_fd(), peer, shard_limit)
        {
            Ok(registration) => registration,
            Err(refused) => {
                let mut metrics = shard.metrics();
                match refused {
                    ConnectionRefused::ShardFull => metrics.connections_refused += 1,
                    ConnectionRefused::AddressFull => metrics.connections_refused_address += 1,
                }
                drop(stream);
                continue;
            }
        };
        {
            let mut metrics = shard.metrics();
            metrics.connections_accepted += 1;
            metrics.connections_open = shard.io.connections.count() as u64;
        }
        let security = if tls {
            let config = shard.io.tls.borrow().clone();
            Security::Tls(config.expect("a TLS listener runs on a shard with a certificate"))
        } else {
            Security::Plain
        };
        glommio::spawn_local(conn::serve(
            shard.clone(),
            stream,
            registration,
            surface,
            security,
        ))
        .detach();
    }
}

/// Runs the work other shards forward; on `Stop`, stops accepting and closes idle
/// connections.
async fn inbox_loop(shard: Rc<Shard>, inbox: flume::Receiver<ShardMessage>) {
    while let Ok(message) = inbox.recv_async().await {
        match message {
            ShardMessage::Run(task) => {
                glommio::spawn_local(task(shard.clone())).detach();
            }
            ShardMessage::ReloadTls(config, done) => {
                assert!(
                    shard.io.tls.borrow().is_some(),
                    "only a server with a TLS listener reloads certificates"
                );
                shard.io.tls.replace(Some(config));
                let _ = done.send(());
            }
            ShardMessage::Forwarded(request, reply) => {
                let serving = super::forwarded::serve_forwarded(shard.clone(), request, reply);
                glommio::spawn_local(serving).detach();
            }
            ShardMessage::Stop => {
                shard.stop.stop();
                shard.io.connections.close_idle();
            }
        }
    }
}

/// Applies recognition results as they come back.
async fn results_loop(shard: Rc<Shard>, results: flume::Receiver<JobResult>) {
    while let Ok(result) = results.recv_async().await {
        upload::apply_result(&shard, result);
    }
}

/// Ends the reads whose deadline passed, every `sweep_interval` (state/read_watch.rs: one
/// sweep instead of a timer per read), until `stop`.
async fn read_sweep_loop(shard: Rc<Shard>, stop: StopSignal) {
    let interval = super::state::sweep_interval(&shard.config().http);
    loop {
        let stopped = async {
            stop.wait().await;
            true
        };
        let slept = async {
            glommio::timer::sleep(interval).await;
            false
        };
        if futures_lite::future::or(stopped, slept).await {
            return;
        }
        shard.io.connections.expire_reads(Instant::now());
    }
}

/// Drops expired per-day upload trees once an hour.
async fn retention_loop(shard: Rc<Shard>) {
    loop {
        let now_ms = crate::clock::unix_now_ms();
        let retention_days = shard.config().store.retention_days;
        let dropped = shard
            .store
            .borrow_mut()
            .and_then(|mut store| store.drop_expired(now_ms, retention_days));
        if let Err(error) = dropped {
            storage::notice(&shard, &error);
            log_line!("aiocr: shard {}: retention: {error}", shard.id);
        }
        let stopped = async {
            shard.stop.wait().await;
            true
        };
        let slept = async {
            glommio::timer::sleep(RETENTION_PERIOD).await;
            false
        };
        if futures_lite::future::or(stopped, slept).await {
            return;
        }
    }
}

/// Waits for open connections to finish their current request (bounded by the drain timeout).
async fn drain(shard: &Rc<Shard>) {
    let deadline = Instant::now() + Duration::from_millis(shard.config().node.drain_timeout_ms);
    while shard.io.connections.count() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(DRAIN_POLL).await;
    }
}

/// Voids what is still pending (its jobs will not run in this process) and flushes. With
/// the disk failed, that cannot be done: nothing acknowledged is missing (every
/// acknowledgement waited for a flush), so the stop is still clean (exit 0) and the log says
/// what is left for the next start.
async fn finish(shard: &Rc<Shard>) -> Result<(), String> {
    match void_and_flush(shard).await {
        Ok(()) => Ok(()),
        Err(error) if error.is_storage_failure() || matches!(error, StoreError::Unavailable(_)) => {
            log_line!(
                "aiocr: shard {}: stopping with its storage failed ({error}): every \
                 acknowledged write is on disk; uploads still pending there are voided at the \
                 next start",
                shard.id
            );
            storage::keep_withdrawals(shard).await;
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

async fn void_and_flush(shard: &Rc<Shard>) -> Result<(), StoreError> {
    let withdrawn = super::forward_acks::withdraw_at_stop(shard)?;
    if withdrawn > 0 {
        log_line!(
            "aiocr: shard {}: gave back {withdrawn} upload(s) of forwarded requests not acknowledged yet",
            shard.id
        );
    }
    let now_ms = crate::clock::unix_now_ms();
    let voided = shard
        .store
        .borrow_mut()?
        .void_pending(super::STOPPED_BEFORE_RECOGNITION, now_ms)?;
    if voided > 0 {
        log_line!(
            "aiocr: shard {}: voided {voided} pending upload(s)",
            shard.id
        );
    }
    shard
        .commit
        .flush_once(&shard.store, &shard.shared.metrics, shard.id)
        .await
        .map_err(StoreError::Io)?;
    // The journal's extent as it stands at the stop (identity.rs).
    let flusher = shard.store.borrow()?.flusher();
    glommio::executor()
        .spawn_blocking(move || flusher.flush_and_record())
        .await
}
