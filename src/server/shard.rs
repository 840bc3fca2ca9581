//! One shard's state, and the one way work crosses to another shard.
//!
//! A shard is a glommio executor pinned to one core. It owns the users whose id carries its
//! shard number: their store (ledger, uploads, stats), their rate buckets, the uploads
//! waiting for results, the answer cache. Nothing here is shared with another core except
//! through [`Shard::submit_to`], which runs a closure on the owner shard (Seastar's
//! `submit_to`) and brings its result back. The loops that drive a shard (accept, inbox,
//! results, retention, drain) are in `shard_loops.rs`.

use super::state::{
    BodyBudget, CacheLimits, CacheStore, ConnectionSet, FinishHooks, GroupCommit, ModelCatalog,
    ResultWaiters, StopSignal, StoreSlot, UserCache,
};
use crate::auth::{KeyCache, Keys, TokenCache, DEFAULT_TOKEN_CACHE_ENTRIES};
use crate::config::Config;
use crate::login_backoff::{BackoffPolicy, LoginBackoff};
use crate::mcp::sessions::{SessionLimits, SessionTable};
use crate::metrics::{Registry, ShardMetrics};
use crate::password_pool::PasswordPool;
use crate::ratelimit::RateLimiter;
use crate::recognition::{JobQueues, JobResult};
use crate::store::{ShardStore, UploadRecord};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// Work sent to another shard: runs there with that shard's state, answers through the
/// channel it captured.
pub type RemoteTask = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

pub enum ShardMessage {
    Run(RemoteTask),
    /// SIGHUP with a valid certificate: new TLS connections use this configuration. The
    /// shard acknowledges once it took it (the signal thread logs the reload after every
    /// shard did).
    ReloadTls(Arc<rustls::ServerConfig>, std::sync::mpsc::Sender<()>),
    /// A request another node forwarded for one of this node's users (`node_hop.rs`): its
    /// bytes, and where its answer's bytes go.
    Forwarded(Vec<u8>, flume::Sender<Vec<u8>>),
    /// SIGTERM: stop accepting, drain, void pending uploads, flush, exit.
    Stop,
}

/// What every shard shares, read-only after start.
pub struct Shared {
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
    pub queue: JobQueues,
    /// Each shard's inbox, by shard number; its length is the shard count.
    pub peers: Arc<[flume::Sender<ShardMessage>]>,
    pub metrics: Registry,
    /// Model names uploads may ask for.
    pub models: Arc<[String]>,
    /// Whether `common_det.onnx` is installed (else `/v2/decode/detect` answers 3005).
    pub detection_installed: bool,
    /// The models users brought (`POST /v2/models`), for every shard of the node.
    pub model_catalog: Arc<ModelCatalog>,
    pub recognition_threads: usize,
    /// The node's password hash threads (logins, password changes, new users).
    pub passwords: PasswordPool,
    /// The cluster (`nats_url` set): remote workers, other nodes, the username registry.
    pub cluster: Option<Arc<crate::cluster::ClusterLink>>,
}

/// Everything one shard thread starts from.
pub struct ShardSeed {
    pub id: u16,
    pub store: ShardStore,
    pub inbox: flume::Receiver<ShardMessage>,
    pub results: flume::Receiver<JobResult>,
    pub shared: Arc<Shared>,
    /// The TLS listener's configuration at start (`None`: no TLS listener).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What an upload's owner shard runs when the upload finishes (a compat protocol's callback),
/// given its record and its task id (an upload of the JSON task protocol has one, made when
/// it is accepted: store/task_ids.rs).
pub type FinishHook = Box<dyn FnOnce(&Rc<Shard>, &UploadRecord, Option<u64>) + Send>;

/// One shard's state, by concern. Everything in it is this shard's alone (the tables are in
/// server/state/); other shards reach it only through [`Shard::submit_to`].
pub struct Shard {
    pub id: u16,
    pub shared: Arc<Shared>,
    /// The shard's store: reads and writes go through it, and are refused (5004) while the
    /// disk has failed (storage.rs).
    pub store: StoreSlot,
    pub commit: GroupCommit,
    pub auth: AuthCaches,
    pub logins: LoginGuards,
    pub uploads: UploadTables,
    pub io: ShardIo,
    /// The MCP sessions of the users this shard owns (the bounded table of src/mcp;
    /// server/endpoints/mcp.rs opens, uses and ends them).
    pub mcp_sessions: RefCell<SessionTable>,
    pub stop: StopSignal,
}

/// What this shard remembers to check credentials without a hop, and the bound on lookups
/// that find nothing.
pub struct AuthCaches {
    /// Verified JWTs, so a client reusing its token skips the HMAC/JSON work.
    pub token_cache: RefCell<TokenCache>,
    /// API keys looked up on their owner shard (forgotten on every shard when replaced).
    pub key_cache: RefCell<KeyCache>,
    /// Users whose state (exists, role, token epoch) this shard read from their shard, to
    /// check tokens and keys (forgotten on every shard when it changes; server/sessions.rs).
    pub user_cache: RefCell<UserCache>,
    /// Per client address: API key lookups that found nothing (5002 once spent).
    pub failed_auth: RefCell<RateLimiter>,
}

/// The guards against password guessing (server/attempts.rs).
pub struct LoginGuards {
    /// Per-account token buckets for login attempts, by the username's hash whether the
    /// account exists or not (separate from uploads, so guessing a user's password does not
    /// also use up that user's uploads).
    pub login_limiter: RefCell<RateLimiter>,
    /// Failed logins of the accounts whose names map to this shard (by the name's hash,
    /// existing or not): their backoff.
    pub account_backoff: RefCell<LoginBackoff>,
    /// Failed logins of the client addresses whose connections this shard serves.
    pub address_backoff: RefCell<LoginBackoff>,
}

/// The uploads this shard owns while they run, and what they share.
pub struct UploadTables {
    /// Per-user token buckets for uploads.
    pub upload_limiter: RefCell<RateLimiter>,
    /// `wait=1` requests waiting for an upload's result (bounded).
    pub waiters: ResultWaiters,
    /// What runs when an upload finishes: callbacks (bounded), each with the task id to give
    /// it.
    pub finish_hooks: FinishHooks<(FinishHook, Option<u64>)>,
    /// This shard's part of the answer cache: the entries whose image hash it owns
    /// (server/cache.rs: other shards reach it through this shard's inbox).
    pub answer_cache: RefCell<CacheStore>,
}

/// The shard's connections and what they hold.
pub struct ShardIo {
    /// Open connections (closed at once on SIGTERM when idle), and how many each client
    /// address holds.
    pub connections: ConnectionSet,
    /// Request body bytes being received (`body_bytes_in_flight_per_shard`).
    pub body_budget: BodyBudget,
    /// The bytes of model uploads (`POST /v2/models`) being received: one body of
    /// `model_body_max_bytes` at a time per shard, apart from the budget above (which it
    /// would take whole).
    pub model_body_budget: BodyBudget,
    /// The certificate new TLS connections get: set at start, replaced on SIGHUP by a
    /// message in the inbox (so reading it at an accept takes no lock).
    pub tls: RefCell<Option<Arc<rustls::ServerConfig>>>,
}

/// The configured backoff with `free_failures` of its own (accounts and addresses differ).
fn backoff_policy(config: &Config, free_failures: u32) -> BackoffPolicy {
    BackoffPolicy {
        free_failures,
        base_ms: config.login.login_backoff_base_ms,
        max_ms: config.login.login_backoff_max_ms,
        forget_ms: config.login.login_backoff_forget_secs.saturating_mul(1000),
    }
}

impl AuthCaches {
    fn new(config: &Config) -> AuthCaches {
        AuthCaches {
            token_cache: RefCell::new(TokenCache::new(DEFAULT_TOKEN_CACHE_ENTRIES)),
            key_cache: RefCell::new(KeyCache::new(
                DEFAULT_TOKEN_CACHE_ENTRIES,
                Duration::from_secs(config.auth.api_key_cache_secs),
            )),
            user_cache: RefCell::new(UserCache::new(
                DEFAULT_TOKEN_CACHE_ENTRIES,
                Duration::from_secs(config.auth.user_cache_secs),
            )),
            failed_auth: RefCell::new(RateLimiter::new(
                config.auth.failed_auth_per_sec,
                config.auth.failed_auth_burst,
            )),
        }
    }
}

impl LoginGuards {
    fn new(config: &Config) -> LoginGuards {
        let login = &config.login;
        LoginGuards {
            login_limiter: RefCell::new(RateLimiter::new(
                config.uploads.rate_limit_per_sec,
                config.uploads.rate_limit_burst,
            )),
            account_backoff: RefCell::new(LoginBackoff::new(
                backoff_policy(config, login.login_account_free_failures),
                login.login_backoff_entries,
            )),
            address_backoff: RefCell::new(LoginBackoff::new(
                backoff_policy(config, login.login_address_free_failures),
                login.login_backoff_entries,
            )),
        }
    }
}

impl UploadTables {
    fn new(config: &Config) -> UploadTables {
        UploadTables {
            upload_limiter: RefCell::new(RateLimiter::new(
                config.uploads.rate_limit_per_sec,
                config.uploads.rate_limit_burst,
            )),
            waiters: ResultWaiters::new(config.node.max_waiters_per_shard),
            finish_hooks: FinishHooks::new(config.node.max_waiters_per_shard),
            answer_cache: RefCell::new(CacheStore::new(CacheLimits::of(&config.cache))),
        }
    }
}

impl ShardIo {
    fn new(config: &Config, shard_count: usize) -> ShardIo {
        ShardIo {
            // Each shard holds its share of an address's connections (the kernel spreads
            // them over the shards' sockets).
            connections: ConnectionSet::new(
                config
                    .network
                    .max_connections_per_address
                    .div_ceil(shard_count),
            ),
            body_budget: BodyBudget::new(config.http.body_bytes_in_flight_per_shard),
            model_body_budget: BodyBudget::new(
                config.models.model_body_max_bytes + config.http.max_header_bytes + 16 * 1024,
            ),
            tls: RefCell::new(None),
        }
    }
}

/// Why a call to another shard did not run.
#[derive(Debug, PartialEq, Eq)]
pub enum HopError {
    /// The target's inbox is full (`shard_inbox_len`): nothing ran there.
    Busy,
    /// The target shard has stopped (the server is shutting down).
    Gone,
}

impl Shard {
    pub fn new(id: u16, store: ShardStore, shared: Arc<Shared>) -> Shard {
        let config = shared.config.clone();
        assert!(
            usize::from(id) < shared.peers.len(),
            "shard {id} out of range"
        );
        assert_eq!(store.shard(), id, "a shard runs its own store");
        let flusher = store.flusher();
        Shard {
            id,
            store: StoreSlot::new(store),
            commit: GroupCommit::new(flusher, config.store.durable_acks),
            auth: AuthCaches::new(&config),
            logins: LoginGuards::new(&config),
            uploads: UploadTables::new(&config),
            io: ShardIo::new(&config, shared.peers.len()),
            mcp_sessions: RefCell::new(SessionTable::new(SessionLimits {
                per_user: config.mcp.mcp_sessions_per_user,
                per_shard: config.mcp.mcp_sessions_per_shard,
                idle_ms: config.mcp.mcp_session_idle_secs.saturating_mul(1000),
            })),
            stop: StopSignal::default(),
            shared,
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn shard_count(&self) -> u16 {
        self.shared.peers.len() as u16
    }

    /// This shard's own metrics, for recording.
    pub fn metrics(&self) -> MutexGuard<'_, ShardMetrics> {
        self.shared.metrics.shard(self.id)
    }

    /// Runs `work` on shard `target` (here, without any message, when it is this shard) and
    /// returns its result. The work runs only on its target: asserted on arrival.
    pub async fn submit_to<R, F, Fut>(self: &Rc<Self>, target: u16, work: F) -> Result<R, HopError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.hop(target, work, Delivery::RefusedWhenFull).await
    }

    /// `submit_to` for work that must arrive: a full inbox is waited on (without blocking
    /// the reactor: the target keeps draining its inbox, so room comes) instead of refused.
    /// For what a shard must be told, such as forgetting a user whose tokens were revoked.
    pub async fn submit_to_waiting<R, F, Fut>(
        self: &Rc<Self>,
        target: u16,
        work: F,
    ) -> Result<R, HopError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.hop(target, work, Delivery::WaitForRoom).await
    }

    async fn hop<R, F, Fut>(
        self: &Rc<Self>,
        target: u16,
        work: F,
        delivery: Delivery,
    ) -> Result<R, HopError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        assert!(
            target < self.shard_count(),
            "target shard {target} out of range"
        );
        if target == self.id {
            return Ok(work(self.clone()).await);
        }
        let (task, reply_receiver) = remote_task(target, work);
        let peer = &self.shared.peers[usize::from(target)];
        let message = ShardMessage::Run(task);
        match delivery {
            Delivery::RefusedWhenFull => peer.try_send(message).map_err(|error| match error {
                flume::TrySendError::Full(_) => HopError::Busy,
                flume::TrySendError::Disconnected(_) => HopError::Gone,
            })?,
            Delivery::WaitForRoom => peer.send_async(message).await.map_err(|_| HopError::Gone)?,
        }
        self.metrics().forwarded_out += 1;
        reply_receiver
            .recv_async()
            .await
            .map_err(|_| HopError::Gone)
    }
}

/// What a hop does when the target's inbox is full.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// `HopError::Busy` at once: the caller answers 5001 rather than queue behind a backlog.
    RefusedWhenFull,
    /// Waits for room: work that must arrive.
    WaitForRoom,
}

/// `work` as a message for shard `target`, and where its result will come back.
fn remote_task<R, F, Fut>(target: u16, work: F) -> (RemoteTask, flume::Receiver<R>)
where
    R: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let (reply, reply_receiver) = flume::bounded(1);
    let task: RemoteTask = Box::new(move |shard: Rc<Shard>| {
        Box::pin(async move {
            assert_eq!(shard.id, target, "forwarded work runs on its target shard");
            shard.metrics().forwarded_in += 1;
            let _ = reply.send(work(shard).await);
        })
    });
    (task, reply_receiver)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ids;

    /// A shard 0 of two, whose peer (shard 1) has an inbox of `inbox_len` that nobody drains.
    fn shard_with_stalled_peer(
        dir: &std::path::Path,
        inbox_len: usize,
    ) -> (Rc<Shard>, flume::Receiver<ShardMessage>) {
        let (own, _own_inbox) = flume::bounded(inbox_len);
        let (peer, peer_inbox) = flume::bounded(inbox_len);
        let (queue, _jobs) = JobQueues::bounded([4, 4, 4]);
        let shared = Arc::new(Shared {
            config: Arc::new(Config::default()),
            keys: Arc::new(Keys::from_secret(&[7; 32]).unwrap()),
            queue,
            peers: vec![own, peer].into(),
            metrics: Registry::new(2, &["route"]),
            models: Arc::from(Vec::new()),
            detection_installed: false,
            model_catalog: Arc::new(ModelCatalog::open(&dir.join("models")).unwrap()),
            recognition_threads: 0,
            passwords: PasswordPool::start(1, 1, crate::recognition::ThreadPriority::Normal)
                .unwrap()
                .0,
            cluster: None,
        });
        let store = ShardStore::open(dir, 0, 2, ids::MAX_NODE_ID).unwrap();
        (Rc::new(Shard::new(0, store, shared)), peer_inbox)
    }

    #[test]
    fn a_forward_to_a_full_inbox_is_refused_before_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .io_memory(512 * 1024)
            .spawn(move || async move {
                let (shard, peer_inbox) = shard_with_stalled_peer(&path, 1);
                // The first forward takes the one place and waits for its answer.
                let first = shard.submit_to(1, |_| async { 1 });
                let mut first = std::pin::pin!(first);
                assert!(futures_lite::future::poll_once(&mut first).await.is_none());
                assert_eq!(peer_inbox.len(), 1);
                // The second finds the inbox full: refused at once, and nothing was sent.
                let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = ran.clone();
                let second = shard
                    .submit_to(1, move |_| async move {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    })
                    .await;
                assert_eq!(second, Err(HopError::Busy));
                assert_eq!(peer_inbox.len(), 1);
                assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
                // Work for the shard itself never goes through an inbox.
                assert_eq!(shard.submit_to(0, |_| async { 5 }).await, Ok(5));
                // A stopped peer: its inbox is gone.
                drop(peer_inbox);
                assert_eq!(shard.submit_to(1, |_| async {}).await, Err(HopError::Gone));
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
