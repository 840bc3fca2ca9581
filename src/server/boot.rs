//! Start-up and shutdown of the whole server: open every shard's store (voiding uploads a
//! previous run left pending), create the demo users on a fresh data directory, start the
//! recognition threads and one pinned executor per shard, wait for SIGTERM/SIGINT (stop) or
//! SIGHUP (reload the TLS certificate), stop.

use super::listener;
use super::router::ROUTE_LABELS;
use super::shard::{ShardMessage, ShardSeed, Shared};
use super::shard_loops;
use super::state::{CatalogEntry, ModelCatalog};
use crate::cluster::{BridgeSeed, BridgeThread, Claim, ClusterLink, ModelObjects};
use crate::config::Config;
use crate::engine::custom::ModelDigest;
use crate::metrics::Registry;
use crate::password_pool::PasswordPool;
use crate::recognition::{
    self, usable_cores, JobQueues, RecognitionThreads, ResultSink, ThreadContext,
};
use crate::store::{ids, Role, ShardStore};
use glommio::{LocalExecutorBuilder, Placement};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};

/// io_uring buffer memory per executor. aiocr does socket I/O only (no DMA file I/O), so the
/// default 10 MiB would only count against RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 512 * 1024;
/// Points the demo user starts with.
const DEMO_POINTS: i64 = 1000;

/// What a shard thread reports to the main thread.
enum ShardEvent {
    Listening,
    Finished(u16, Result<(), String>),
}

/// Runs the server until SIGTERM/SIGINT (or a shard fails), then stops it cleanly. `tls` is
/// the TLS listener's configuration, read from `tls_cert`/`tls_key` (None: no TLS).
pub fn run_until_stopped(
    mut config: Config,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), String> {
    assert_eq!(
        tls.is_some(),
        config.network.tls_listen.is_some(),
        "TLS has a certificate exactly when it has an address"
    );
    let shard_count = config.node.shard_count();
    // One descriptor per connection: take the whole hard limit, then refuse clearly (pointing
    // at tuning/ and `aiocr doctor`) where io_uring or locked memory cannot carry the shards.
    let (nofile, _) =
        crate::doctor::raise_nofile_limit().map_err(|e| format!("open files limit: {e}"))?;
    crate::doctor::preflight(
        usize::from(shard_count),
        config.network.max_connections_per_shard,
    )?;
    fit_connections_to_nofile(&mut config, shard_count, nofile)?;
    std::fs::create_dir_all(&config.store.data_dir)
        .map_err(|e| format!("data dir {}: {e}", config.store.data_dir.display()))?;
    let fresh = !config.store.data_dir.join("meta.json").exists();
    crate::store::set_cache_capacity(config.store.store_cache_mb << 20);
    let (mut stores, resumed) = open_stores(&config, shard_count)?;
    let keys = crate::auth::load_or_create_keys(
        &config.store.data_dir,
        non_empty(&config.auth.jwt_secret),
    )
    .map_err(|e| format!("jwt secret: {e}"))?;
    // Port 0 (tests) must resolve to one port for every shard's SO_REUSEPORT socket.
    let mut port_holders = Vec::new();
    port_holders.extend(listener::claim_port(&mut config.network.listen)?);
    if let Some(tls_listen) = &mut config.network.tls_listen {
        port_holders.extend(listener::claim_port(tls_listen)?);
    }
    super::public_url::settle(&mut config.network);
    let demo = match fresh && config.store.create_demo_users {
        true => create_demo_users(&mut stores, &config)?,
        false => None,
    };
    let config = Arc::new(config);
    let shard_cores = shard_cores(shard_count);
    let thread_config = config.recognition_layout(&shard_cores);
    let (queue, jobs) = JobQueues::bounded([
        config.recognition.queue_len,
        config.recognition.detect_queue_len,
        config.recognition.slide_queue_len,
    ]);
    // Results exist only for queued, running or remote jobs: this bounds what one inbox can
    // hold.
    let running =
        thread_config.cores.len() * config.recognition.max_batch + thread_config.slide_threads;
    let remote = match config.cluster.nats_url.is_empty() {
        true => 0,
        false => config.cluster.remote_max_in_flight,
    };
    let result_inbox_len = queue.total_capacity() + queue.lone_capacity() + running + remote;
    let (results, result_inboxes) = ResultSink::new(shard_count, result_inbox_len);
    let (peers, inboxes): (Vec<_>, Vec<_>) = (0..shard_count)
        .map(|_| flume::bounded(config.node.shard_inbox_len))
        .unzip();
    let peers: Arc<[flume::Sender<ShardMessage>]> = peers.into();
    let recognition_threads = thread_config.cores.len();
    let (stop_threads, threads_stop) = crossbeam_channel::bounded::<()>(0);
    let context = ThreadContext {
        jobs,
        results: results.clone(),
        model_dir: config.node.model_dir.clone(),
        stop: threads_stop,
    };
    let threads: RecognitionThreads =
        recognition::start(context, thread_config).map_err(|e| format!("recognition: {e}"))?;
    let (passwords, password_threads) = PasswordPool::start(
        config.login.password_hash_threads(usable_cores().len()),
        config.login.password_hash_queue_len,
        config.login.password_hash_priority,
    )?;
    let cluster = match config.cluster.nats_url.is_empty() {
        true => None,
        false => Some(start_cluster(
            &config,
            ClusterParts {
                results: results.clone(),
                queue: queue.clone(),
                peers: peers.clone(),
                recognition_threads,
                shard_count,
            },
        )?),
    };
    if let Some((link, _, _)) = &cluster {
        super::forward_acks::resume_awaiting(link, resumed);
    }
    let model_catalog = open_model_catalog(&config, &stores)?;
    if let Some((_, _, objects)) = &cluster {
        model_catalog.share_through(objects.clone());
    }
    let shared = Arc::new(Shared {
        config: config.clone(),
        keys: Arc::new(keys),
        queue,
        peers: peers.clone(),
        metrics: Registry::new(shard_count, &ROUTE_LABELS),
        models: crate::engine::available_models(&config.node.model_dir).into(),
        detection_installed: crate::engine::detection_model_path(&config.node.model_dir).exists(),
        model_catalog,
        recognition_threads: threads.count(),
        passwords,
        cluster: cluster.as_ref().map(|(link, _, _)| link.clone()),
    });
    let (events, event_receiver) = mpsc::channel();
    let seeds = stores.into_iter().zip(inboxes).zip(result_inboxes);
    for (index, ((store, inbox), results)) in seeds.enumerate() {
        let seed = ShardSeed {
            id: index as u16,
            store,
            inbox,
            results,
            shared: shared.clone(),
            tls: tls.clone(),
        };
        start_shard(seed, shard_cores[index], events.clone())?;
    }
    drop(events);
    let outcome = supervise(
        &shared,
        shard_count,
        &event_receiver,
        port_holders,
        demo.as_ref(),
    );
    // The shards have stopped and voided what was pending: the recognition threads and the
    // NATS thread stop now (the latter within nats_stop_grace_ms, whatever NATS does).
    drop(stop_threads);
    drop(shared);
    threads.join();
    password_threads.join();
    if let Some((_, bridge, _)) = cluster {
        bridge.stop();
    }
    outcome
}

/// The node's custom models: every shard's model records, with their files from
/// `<data_dir>/models/`. A record whose files are gone is left out (and said so): its name
/// answers 3005 until it is removed and added again.
fn open_model_catalog(config: &Config, stores: &[ShardStore]) -> Result<Arc<ModelCatalog>, String> {
    let dir = config.store.data_dir.join("models");
    let catalog = ModelCatalog::open(&dir)
        .map(Arc::new)
        .map_err(|e| format!("model directory {}: {e}", dir.display()))?;
    for store in stores {
        let records = store
            .all_models()
            .map_err(|e| format!("model records: {e}"))?;
        for record in records {
            match catalog.files().model(ModelDigest(record.digest)) {
                Ok(model) => catalog.insert(CatalogEntry::new(record, model)),
                Err(error) => log_line!(
                    "aiocr: model {:?} of user {} left out: {error}",
                    record.name,
                    record.user_id
                ),
            }
        }
    }
    // The models' numbers, kept by the shards whose users made them.
    for store in stores {
        let usages = store
            .all_model_use()
            .map_err(|e| format!("model numbers: {e}"))?;
        for usage in &usages {
            catalog.restore_usage(usage);
        }
    }
    let swept = catalog.sweep_unnamed_files();
    if swept > 0 {
        log_line!(
            "aiocr: {swept} model file(s) no record names deleted from {}",
            dir.display()
        );
    }
    Ok(catalog)
}

/// What the NATS thread is joined to.
struct ClusterParts {
    results: ResultSink,
    queue: JobQueues,
    peers: Arc<[flume::Sender<ShardMessage>]>,
    recognition_threads: usize,
    shard_count: u16,
}

/// The cluster link the shards hold, the NATS thread behind it, and the models bucket's
/// handle for the model catalog (docs/cluster.md).
fn start_cluster(
    config: &Arc<Config>,
    parts: ClusterParts,
) -> Result<(Arc<ClusterLink>, BridgeThread, Arc<ModelObjects>), String> {
    let overflow_depth = match config.cluster.overflow_queue_depth {
        0 => parts.recognition_threads.max(1),
        depth => depth,
    };
    let (link, commands) = ClusterLink::new(
        config.node.node_id,
        config.cluster.recognition_split,
        overflow_depth,
        config.cluster.remote_max_in_flight,
        config.cluster.forward_ack_window(),
    );
    let link = Arc::new(link);
    let (objects, objects_seed) = ModelObjects::new(config);
    let describe = {
        let (config, queue) = (config.clone(), parts.queue.clone());
        let (shard_count, threads) = (parts.shard_count, parts.recognition_threads);
        Arc::new(move || super::endpoints::describe_node(&config, shard_count, threads, &queue))
    };
    let seed = BridgeSeed {
        config: config.clone(),
        commands,
        stats: link.stats.clone(),
        results: parts.results,
        local: parts.queue,
        serve: super::node_hop::serve_into(parts.peers.clone()),
        describe,
        settle: super::forward_acks::settle_into(parts.peers.clone()),
        local_names: super::node_hop::local_names(parts.peers),
        shard_count: parts.shard_count,
        unconfirmed: link.unconfirmed.clone(),
        objects: objects_seed,
    };
    let bridge = crate::cluster::start_bridge(seed)?;
    eprintln!(
        "aiocr: node {} joins the cluster at {} (recognition split: {:?})",
        config.node.node_id, config.cluster.nats_url, config.cluster.recognition_split
    );
    Ok((link, bridge, Arc::new(objects)))
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// Opens every shard's store and settles what the previous run left: refused uploads kept
/// for withdrawal, forwarded charges whose acknowledgement window passed (the others are
/// returned, to wait for what is left of it), uploads left pending.
fn open_stores(
    config: &Config,
    shard_count: u16,
) -> Result<(Vec<ShardStore>, Vec<super::forward_acks::Resumed>), String> {
    let mut stores = Vec::with_capacity(usize::from(shard_count));
    let mut resumed = Vec::new();
    let clustered = !config.cluster.nats_url.is_empty();
    for shard in 0..shard_count {
        let opening = |e: crate::store::StoreError| {
            format!(
                "opening shard {shard} in {}: {e}",
                config.store.data_dir.display()
            )
        };
        let mut store = ShardStore::open(
            &config.store.data_dir,
            shard,
            shard_count,
            config.node.node_id,
        )
        .map_err(opening)?;
        let now_ms = crate::clock::unix_now_ms();
        let withdrawn = store
            .withdraw_kept(super::storage::WITHDRAWN_AT_REOPEN, now_ms)
            .map_err(opening)?;
        if withdrawn > 0 {
            log_line!(
                "aiocr: shard {shard}: withdrew {withdrawn} upload(s) the previous run refused \
                 while its disk failed"
            );
        }
        let (given_back, awaiting) =
            super::forward_acks::settle_at_start(&mut store, clustered, now_ms).map_err(opening)?;
        if given_back + awaiting.len() > 0 {
            log_line!(
                "aiocr: shard {shard}: gave back {given_back} charge(s) of forwarded requests \
                 the previous run left unacknowledged past their window; {} still wait for \
                 their acknowledgement",
                awaiting.len()
            );
        }
        resumed.extend(awaiting);
        let voided = store
            .void_pending(super::STOPPED_BEFORE_RECOGNITION, now_ms)
            .map_err(opening)?;
        if voided > 0 {
            log_line!(
                "aiocr: shard {shard}: voided {voided} upload(s) left pending by the previous run"
            );
        }
        store
            .flusher()
            .flush_and_record()
            .map_err(|e| format!("flushing shard {shard}: {e}"))?;
        // After the flush: what was withdrawn is on disk, the list can go.
        store.clear_kept_withdrawals().map_err(opening)?;
        stores.push(store);
    }
    Ok((stores, resumed))
}

/// Shard `i` runs on the i-th usable core (wrapping when there are more shards than cores).
fn shard_cores(shard_count: u16) -> Vec<usize> {
    let mut cores = usable_cores();
    if cores.is_empty() {
        cores.push(0);
    }
    (0..usize::from(shard_count))
        .map(|index| cores[index % cores.len()])
        .collect()
}

fn start_shard(
    seed: ShardSeed,
    core: usize,
    events: mpsc::Sender<ShardEvent>,
) -> Result<(), String> {
    let id = seed.id;
    let builder = LocalExecutorBuilder::new(Placement::Fixed(core))
        .name(&format!("aiocr-shard-{id}"))
        .io_memory(IO_MEMORY_BYTES);
    let spawned = builder.spawn(move || async move {
        let ready = events.clone();
        let report = FinishReport {
            id,
            events: Some(events),
        };
        let result = shard_loops::shard_main(seed, move || {
            let _ = ready.send(ShardEvent::Listening);
        })
        .await;
        report.send(result);
    });
    // The thread reports through `events`; its handle is not needed.
    spawned
        .map(drop)
        .map_err(|e| format!("starting shard {id} on core {core}: {e}"))
}

/// A shard thread's last word: its result, or, if the thread unwinds from a panic before
/// it could say anything, that it failed. Without it a panicked shard would leave the
/// supervisor waiting forever for the other shards, which nobody tells to stop.
struct FinishReport {
    id: u16,
    events: Option<mpsc::Sender<ShardEvent>>,
}

impl FinishReport {
    fn send(mut self, result: Result<(), String>) {
        if let Some(events) = self.events.take() {
            let _ = events.send(ShardEvent::Finished(self.id, result));
        }
    }
}

impl Drop for FinishReport {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            let failure = "the shard's thread panicked (its message is above)".to_string();
            let _ = events.send(ShardEvent::Finished(self.id, Err(failure)));
        }
    }
}

/// Asks every shard to stop. A blocking send: `Stop` must not be lost to a full inbox (the
/// shards keep draining their inboxes, so room comes).
fn stop_all(peers: &[flume::Sender<ShardMessage>]) {
    for peer in peers {
        let _ = peer.send(ShardMessage::Stop);
    }
}

/// Reads the TLS certificate again (SIGHUP) and, if it is valid, hands it to every shard for
/// its new connections, returning once each has taken it; if not, the shards keep theirs.
fn reload_tls(config: &Config, peers: &[flume::Sender<ShardMessage>]) {
    let Some((cert, key)) = config.network.tls_files() else {
        log_line!("aiocr: SIGHUP: nothing to reload (no tls_listen)");
        return;
    };
    let tls = match crate::tls::load_server_config(cert, key) {
        Ok(tls) => tls,
        Err(error) => {
            log_line!(
                "aiocr: SIGHUP: TLS certificate not reloaded, keeping the current one: {error}"
            );
            return;
        }
    };
    let (done, taken) = mpsc::channel();
    for peer in peers {
        // Blocking, like `Stop`: the shards keep draining their inboxes.
        let _ = peer.send(ShardMessage::ReloadTls(tls.clone(), done.clone()));
    }
    drop(done);
    // Ends early only if a shard has stopped (its inbox dropped the message and its sender).
    let shards_done = taken.iter().take(peers.len()).count();
    log_line!(
        "aiocr: SIGHUP: TLS certificate reloaded from {} ({shards_done} of {} shard(s))",
        cert.display(),
        peers.len()
    );
}

/// The signal thread: SIGHUP reloads the TLS certificate (as often as it comes); the first
/// SIGTERM/SIGINT stops every shard and ends the thread.
fn handle_signals(
    mut signals: signal_hook::iterator::Signals,
    config: Arc<Config>,
    peers: Arc<[flume::Sender<ShardMessage>]>,
) {
    for signal in signals.forever() {
        if signal == signal_hook::consts::SIGHUP {
            reload_tls(&config, &peers);
            continue;
        }
        log_line!("aiocr: stopping: draining connections");
        stop_all(&peers);
        return;
    }
}

/// Waits for every shard to listen (then announces the server), then for SIGTERM/SIGINT or a
/// shard failure, then for every shard to finish.
fn supervise(
    shared: &Shared,
    shard_count: u16,
    events: &mpsc::Receiver<ShardEvent>,
    mut port_holders: Vec<socket2::Socket>,
    demo: Option<&DemoUsers>,
) -> Result<(), String> {
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("signal handler: {e}"))?;
    let signal_handle = signals.handle();
    let (config, peers) = (shared.config.clone(), shared.peers.clone());
    let signal_thread = std::thread::Builder::new()
        .name("aiocr-signals".into())
        .spawn(move || handle_signals(signals, config, peers))
        .map_err(|e| format!("signal thread: {e}"))?;
    let mut listening = 0;
    let mut finished = 0;
    let mut failure: Option<String> = None;
    while finished < shard_count {
        let Ok(event) = events.recv() else { break };
        match event {
            ShardEvent::Listening => {
                listening += 1;
                if listening == shard_count {
                    port_holders.clear();
                    announce(&shared.config, shard_count, demo);
                }
            }
            ShardEvent::Finished(id, result) => {
                finished += 1;
                if let Err(error) = result {
                    failure.get_or_insert(format!("shard {id}: {error}"));
                    stop_all(&shared.peers);
                }
            }
        }
    }
    signal_handle.close();
    let _ = signal_thread.join();
    match failure {
        Some(error) => Err(error),
        None => {
            log_line!("aiocr: stopped cleanly");
            Ok(())
        }
    }
}

struct DemoUsers {
    demo_password: String,
    admin_password: String,
}

/// The demo users of a fresh data directory. In a cluster both names are claimed first:
/// the first node to start has them, the others none (a node whose claims failed, NATS
/// away, neither: its operator creates users with `aiocr user add --nats`).
fn create_demo_users(
    stores: &mut [ShardStore],
    config: &Config,
) -> Result<Option<DemoUsers>, String> {
    if !config.cluster.nats_url.is_empty() && !claim_demo_names(config) {
        return Ok(None);
    }
    let shard_count = config.node.shard_count();
    let random = || crate::auth::random_password().map_err(|e| e.to_string());
    let demo = DemoUsers {
        demo_password: random()?,
        admin_password: random()?,
    };
    let users = [
        ("demo", &demo.demo_password, Role::User, DEMO_POINTS),
        ("admin", &demo.admin_password, Role::Admin, 0),
    ];
    for (username, password, role, points) in users {
        let hash = crate::auth::hash_password(password).map_err(|e| format!("hashing: {e}"))?;
        let store = &mut stores[usize::from(ids::shard_for_username(username, shard_count))];
        let now_ms = crate::clock::unix_now_ms();
        store
            .create_user(username, &hash, role, points, now_ms)
            .map_err(|e| format!("creating {username}: {e}"))?;
        store
            .flusher()
            .flush()
            .map_err(|e| format!("flushing: {e}"))?;
    }
    Ok(Some(demo))
}

/// Claims `demo` and `admin` for this node; false (and why, logged) when either is not ours.
/// Bounded by `nats_request_timeout_ms` (see `claim_names_blocking`): a node whose NATS is
/// away starts without demo users.
fn claim_demo_names(config: &Config) -> bool {
    let names = ["demo", "admin"];
    let claims = match crate::cluster::nats::claim_names_blocking(config, &names) {
        Ok(claims) => claims,
        Err(error) => {
            eprintln!("aiocr: no demo users here (the names could not be claimed: {error})");
            return false;
        }
    };
    names
        .iter()
        .zip(claims)
        .all(|(username, claim)| match claim {
            Claim::Granted => true,
            Claim::Taken(node) => {
                eprintln!("aiocr: no demo users here: {username} is a user of node {node}");
                false
            }
        })
}

/// Prints the console's URL, the listening line (tests wait for it: it comes last) and, on
/// first start, the demo credentials.
fn announce(config: &Config, shard_count: u16, demo: Option<&DemoUsers>) {
    let url = local_url(&config.network.listen);
    if let Some(demo) = demo {
        out_line!(
            "aiocr: created demo user   demo / {}  ({DEMO_POINTS} points)",
            demo.demo_password
        );
        out_line!("aiocr: created admin user  admin / {}", demo.admin_password);
        out_line!("aiocr: try it in the browser: {url}/console/  (sign in as demo)");
        out_line!("aiocr: or with curl:");
        out_line!(
            "  TOKEN=$(curl -s {url}/v2/user/login -H 'Content-Type: application/json' \\\n    \
             -d '{{\"username\":\"demo\",\"password\":\"{}\"}}' | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')",
            demo.demo_password
        );
        out_line!("  curl -s -H \"Authorization: Bearer $TOKEN\" {url}/v2/user/point");
        out_line!("  curl -s -H \"Authorization: Bearer $TOKEN\" -F file=@captcha.png '{url}/v2/decode/upload?wait=1'");
    }
    if let Some(address) = config.network.metrics_listen {
        out_line!("aiocr: metrics on {}/metrics", local_url(&address));
    }
    if let Some(address) = config.network.tls_listen {
        let url = local_url(&address).replacen("http://", "https://", 1);
        out_line!("aiocr: TLS on {url}");
    }
    out_line!("aiocr: console on {url}/console/  API description on {url}/openapi.json");
    out_line!("aiocr: listening on {url} with {shard_count} shard(s)");
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// A URL a local client can use (0.0.0.0 is not connectable everywhere).
fn local_url(address: &SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => format!("http://127.0.0.1:{}", v4.port()),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => format!("http://[::1]:{}", v6.port()),
        other => format!("http://{other}"),
    }
}

/// A shard below this many connections is not worth starting.
const MIN_CONNECTIONS_PER_SHARD: u64 = 16;

/// Lowers `max_connections_per_shard` to what `nofile` descriptors hold, saying so: past the
/// limit, `accept` fails with EMFILE and every client (even `/metrics`) is refused alike,
/// while below the cap the shard refuses only the newest connection and keeps serving.
fn fit_connections_to_nofile(config: &mut Config, shards: u16, nofile: u64) -> Result<(), String> {
    let fitting = crate::doctor::needs::connections_fitting(u64::from(shards), nofile);
    if fitting < MIN_CONNECTIONS_PER_SHARD {
        return Err(format!(
            "the open-files limit ({nofile}) leaves {fitting} connections per shard for {shards} \
             shard(s); raise it (tuning/limits.d/60-aiocr.conf, `aiocr doctor`) or run fewer shards"
        ));
    }
    let configured = config.network.max_connections_per_shard as u64;
    if fitting < configured {
        log_line!(
            "aiocr: warning: the open-files limit ({nofile}) holds {fitting} connections per \
             shard, not max_connections_per_shard={configured}: using {fitting} (raise nofile: \
             tuning/limits.d/60-aiocr.conf, `aiocr doctor`)"
        );
        config.network.max_connections_per_shard = fitting as usize;
    }
    Ok(())
}
