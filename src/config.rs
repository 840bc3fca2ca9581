//! The server's configuration, in one place: built-in defaults, then one TOML file
//! (`--config`), then `AIOCR_<KEY>` environment variables, then command-line flags; the later
//! wins. Every limit the server enforces is a key here; docs/server.md lists them with their
//! defaults. Values are parsed into their types at load (addresses, core lists, priorities,
//! image limits, the caps that the id layout sets), so nothing downstream parses again.
//!
//! `aiocr serve` and `aiocr doctor` both take [`ConfigArgs`] and load the same configuration.

use crate::engine::ImageLimits;
use crate::money::PointPrice;
use crate::recognition::ThreadPriority;
use crate::store::ids;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The smallest `cache_bytes` of an enabled cache: room for a few entries at least.
const MIN_CACHE_BYTES: usize = 4096;
/// The longest `cache_ttl_secs`: 30 days.
const MAX_CACHE_TTL_SECS: u64 = 30 * 24 * 3600;
/// The largest `cache_lookup_max`: what one request may ask (each lookup may be a hop's
/// worth of work and an upload record).
pub const MAX_CACHE_LOOKUPS: usize = 4096;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address every shard listens on (one SO_REUSEPORT socket per shard).
    #[serde(deserialize_with = "socket_address")]
    pub listen: SocketAddr,
    /// Address of a listener of its own for `/metrics` (and `/health`), run by shard 0; the
    /// API listener then answers `/metrics` with 404. Empty (None): `/metrics` is on `listen`.
    #[serde(deserialize_with = "optional_socket_address")]
    pub metrics_listen: Option<SocketAddr>,
    /// URL clients are told to use in /v2/servers; empty means `http://<listen>`.
    pub public_url: String,
    /// Address of the TLS (HTTPS) listener: the whole API, beside the plain `listen`, one
    /// SO_REUSEPORT socket per shard. Empty (None): no TLS. Needs `tls_cert` and `tls_key`.
    #[serde(deserialize_with = "optional_socket_address")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener, the server's certificate first. Read at
    /// start and again on SIGHUP (new connections get the new one).
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`: PKCS#8, PKCS#1 RSA or SEC1 EC.
    pub tls_key: PathBuf,
    /// A TLS handshake must complete within this time from the accept, or the connection is
    /// closed.
    pub tls_handshake_timeout_ms: u64,
    /// Shard (reactor) count; 0 means one per available core. Fixed at data creation.
    pub shards: u16,
    /// Node id written into snowflake ids (0..=ids::MAX_NODE_ID).
    pub node_id: u16,
    pub data_dir: PathBuf,
    pub model_dir: PathBuf,
    /// Open connections per shard; beyond it new connections are closed at once. Lowered at
    /// start, with a message, to what the open-files limit can hold.
    pub max_connections_per_shard: usize,
    /// Open connections from one client address, the whole server; each shard holds its
    /// share (the kernel spreads one address's connections over the shards' sockets).
    /// Beyond it the address's new connections are closed at once: one client cannot take
    /// the connections everyone else needs.
    pub max_connections_per_address: usize,
    /// Memory a shard's request bodies being received hold at once, counted as it grows
    /// with the bytes that arrived (never from the declared length). A body whose growth
    /// does not fit is refused with 5001 (503) and dropped, so stalled uploads cannot grow
    /// memory and holding the budget takes really sending it.
    pub body_bytes_in_flight_per_shard: usize,
    /// Listen backlog of each shard's socket.
    pub backlog: u32,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    /// Request body after de-chunking. The default fits a 512 KiB image as base64 in JSON or
    /// a form (4/3 of 512 KiB = 683 KiB) plus the other fields.
    pub max_body_bytes: usize,
    /// Decoded image bytes (3002 beyond).
    pub max_image_bytes: usize,
    /// Width x height checked from the header (3004 beyond).
    pub max_image_pixels: u64,
    pub max_image_side: u32,
    /// Widest model input after resizing to the model's height (3004 beyond).
    pub max_model_width: usize,
    /// A request head must arrive within this time from its first byte (408).
    pub header_read_timeout_ms: u64,
    /// A request body must arrive within this time after its head (408).
    pub body_read_timeout_ms: u64,
    /// A request body that receives no byte for this long is refused (408) before its total
    /// time is up: progress, not only the total, is measured.
    pub body_progress_timeout_ms: u64,
    /// A new connection must send its first byte within this time (closed silently).
    pub first_byte_timeout_ms: u64,
    /// After refusing a request whose body was not read (401 before the body, 413, 503), the
    /// server reads and drops what the client still sends for at most this long, so the
    /// client sees the answer instead of a reset.
    pub linger_timeout_ms: u64,
    /// ... and at most this many bytes.
    pub linger_max_bytes: usize,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// An answer the client does not read within this time closes the connection.
    pub write_timeout_ms: u64,
    /// Text captchas waiting for recognition, shared by all shards (5001 when full).
    pub queue_len: usize,
    /// Click captchas waiting for detection (their own queue: each one is tens of
    /// milliseconds of model time, so fewer wait).
    pub detect_queue_len: usize,
    /// Slide captchas waiting (their own queue and threads: they need no model).
    pub slide_queue_len: usize,
    /// Length of each shard's inbox of work forwarded by the other shards. A forward to a
    /// full inbox is answered 5001 (busy, `Retry-After`) before anything ran on the owner.
    pub shard_inbox_len: usize,
    /// `wait=1` requests one shard holds at once; beyond it an upload is answered 5001 before
    /// its points are reserved.
    pub max_waiters_per_shard: usize,
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
    pub retention_days: u32,
    /// `wait=1` default and maximum `timeout_ms`.
    pub wait_timeout_ms_default: u64,
    pub wait_timeout_ms_max: u64,
    /// JWT lifetime.
    pub token_ttl_secs: u64,
    /// Per client address and shard: API key lookups that find nothing, per second
    /// sustained and at once; beyond them 5002 (`Retry-After`) without a lookup.
    pub failed_auth_per_sec: u32,
    pub failed_auth_burst: u32,
    /// How long a shard remembers an API key it looked up (a replaced or revoked key is
    /// forgotten at once anyway).
    pub api_key_cache_secs: u64,
    /// How long a shard remembers a user's state (exists, role, token epoch) that it read
    /// from the user's shard to check a token or a key. A safety net only: a role change,
    /// password change, logout, revocation or removal makes every shard forget it at once.
    pub user_cache_secs: u64,
    /// Threads hashing and verifying passwords (argon2id), for the whole node; 0 means one
    /// per 4 usable cores, at least 1. They never share glommio's blocking pool (the
    /// group commit's fsync).
    pub password_hash_threads: usize,
    /// Passwords waiting for a hash thread; a login or password change finding it full is
    /// answered 5001 (`Retry-After: 1`) at once, without hashing.
    pub password_hash_queue_len: usize,
    /// Scheduling priority of the hash threads: `normal`, `idle` (SCHED_IDLE) or `nice:N`.
    #[serde(deserialize_with = "thread_priority")]
    pub password_hash_priority: ThreadPriority,
    /// Failed logins of one account (by username, whether it exists or not) that cost
    /// nothing; each later one locks the account's logins for a backoff.
    pub login_account_free_failures: u32,
    /// Failed logins from one client address (per shard) that cost nothing; each later one
    /// locks that address's logins for a backoff.
    pub login_address_free_failures: u32,
    /// The first backoff; each further failure doubles it, up to `login_backoff_max_ms`.
    pub login_backoff_base_ms: u64,
    pub login_backoff_max_ms: u64,
    /// An account's or address's failures are forgotten this long after the last one.
    pub login_backoff_forget_secs: u64,
    /// Accounts and addresses each shard tracks (each kind); beyond it the longest quiet
    /// are forgotten first.
    pub login_backoff_entries: usize,
    /// A login or password change answered "try later" (5002 in a backoff or over the
    /// per-user limit, 5001 with a full hash queue) is answered after this long (at most its
    /// `Retry-After`), so that a flood of refused guesses costs a timer per connection, not a
    /// request per round trip. 0 answers at once.
    pub login_refusal_delay_ms: u64,
    /// HS256 secret; empty means generated once into `<data_dir>/jwt.secret` (mode 0600).
    pub jwt_secret: String,
    /// `false` acknowledges uploads before their reservation is fsynced. Only for measuring
    /// the cost of durability: a crash may then lose acknowledged reservations.
    pub durable_acks: bool,
    /// Create a demo user and an admin when the data directory is new.
    pub create_demo_users: bool,
    /// On SIGTERM, how long in-flight requests may take before the server stops anyway.
    pub drain_timeout_ms: u64,
    /// After a shard's storage failed (disk full, I/O error), the first pause before the disk
    /// is probed again; each failed probe doubles it up to `storage_probe_max_ms`.
    pub storage_probe_ms: u64,
    pub storage_probe_max_ms: u64,
    /// Cores of the recognition threads, one thread each: empty means every usable core
    /// (sharing the shard cores, at `recognition_priority`), else a comma list such as "2,3".
    #[serde(deserialize_with = "core_list")]
    pub recognition_cores: Vec<usize>,
    /// `idle` (SCHED_IDLE), `normal`, or `nice:N`; empty (None) means `idle` when a
    /// recognition core is also a shard core, else `normal`.
    #[serde(deserialize_with = "optional_priority")]
    pub recognition_priority: Option<ThreadPriority>,
    /// Threads of one model run when a job arrives while no other recognition thread is busy
    /// (lower latency at low load): 0 means one per recognition core, 1 turns it off.
    pub recognition_wide_threads: usize,
    /// Most recognition threads running a detection at once; 0 means all but one (at least
    /// one), so text captchas always have a thread.
    pub detect_threads: usize,
    /// Threads running slides (not pinned, normal priority).
    pub slide_threads: usize,
    /// Most jobs one recognition call takes (only models that batch exactly gather more).
    pub max_batch: usize,
    /// How long a recognition thread holding fewer than `max_batch` jobs waits for more.
    pub max_queue_delay_us: u64,
    /// A job older than this when a thread takes it fails without running (refunded).
    pub max_queue_wait_ms: u64,
    /// Answers the answer cache keeps per shard (each shard keeps the entries whose image
    /// hash it owns; 0 disables the cache).
    pub cache_entries: usize,
    /// Bytes the answer cache's entries may take per shard (an estimate of each entry's
    /// heap and table cost); the least recently used go first beyond it or `cache_entries`.
    pub cache_bytes: usize,
    /// An answer leaves the cache this long after it was made (and a reported image is not
    /// cached again for as long).
    pub cache_ttl_secs: u64,
    /// Most lookups one `POST /v2/decode/cached` request may carry.
    pub cache_lookup_max: usize,
    /// What one point is worth where the captcha protocols show money (balances, prices):
    /// a decimal with at most 6 decimals, e.g. "0.001".
    #[serde(deserialize_with = "point_price")]
    pub price_per_point: PointPrice,
    /// The model the captcha protocols' uploads run.
    pub compat_model: String,
    /// How long `/in.php`, `/createTask` and `/ocr` wait for the answer before they answer
    /// (so that the client's first poll finds it); 0 answers at once.
    pub compat_wait_ms: u64,
    /// ddddocr-fastapi's `/ocr` without a key charges this user; empty: a key is required.
    pub fastapi_account: String,
    /// Where callbacks (`pingback`, `callbackUrl`) may go: a comma list of `host:port`;
    /// empty (the default) refuses every callback.
    #[serde(deserialize_with = "host_port_list")]
    pub callback_allow: Vec<(String, u16)>,
    /// One callback attempt's deadline (connect, send, read the status line).
    pub callback_timeout_ms: u64,
    /// Attempts per callback, and the pause between them.
    pub callback_attempts: u32,
    pub callback_retry_ms: u64,
    /// NATS server(s) joining this node to the platform (docs/cluster.md): a comma list of
    /// `nats://host:port`. Empty (the default): one node alone, nothing of NATS used.
    pub nats_url: String,
    /// Where recognition jobs run when `nats_url` is set: `local` (this node's threads only),
    /// `overflow` (remote workers take what the local threads cannot start at once) or
    /// `remote` (workers first; local threads when NATS is down or full).
    #[serde(deserialize_with = "split")]
    pub recognition_split: crate::cluster::Split,
    /// `overflow`: jobs of a kind go remote once the local queue holds this many; 0 means
    /// one per local recognition thread (a job would otherwise wait for a thread).
    pub overflow_queue_depth: usize,
    /// Jobs this node has handed to NATS and not yet seen finished; beyond it jobs stay local.
    pub remote_max_in_flight: usize,
    /// A remote job without a result this long after it was handed out is failed and
    /// refunded by its node (workers drop it unrun past this deadline).
    pub remote_timeout_ms: u64,
    /// JetStream's ack deadline: a job a worker took and neither acknowledged nor reported
    /// in progress within it (the worker died or was cut off; a live worker reports every
    /// third of it) is delivered again.
    pub remote_ack_wait_ms: u64,
    /// Deliveries of one job before a worker fails it unrun (refunded): a job that keeps
    /// killing workers stops there.
    pub remote_max_deliver: u32,
    /// Replicas of the job stream and the key-value buckets (3 on a 3-server NATS cluster).
    pub nats_replicas: usize,
    /// Deadline of one NATS request: a forwarded API request, a result handed to its node, a
    /// publish acknowledgement, a key-value operation.
    pub nats_request_timeout_ms: u64,
    /// Longest pause between reconnection attempts (they start at 100 ms and double).
    pub nats_reconnect_max_ms: u64,
    /// How often a node writes its heartbeat; a node silent for `node_ttl_ms` leaves
    /// `/v2/servers`.
    pub heartbeat_ms: u64,
    pub node_ttl_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            metrics_listen: None,
            public_url: String::new(),
            tls_listen: None,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            tls_handshake_timeout_ms: 10_000,
            shards: 0,
            node_id: 0,
            data_dir: PathBuf::from("data"),
            model_dir: PathBuf::from("models"),
            max_connections_per_shard: 10_000,
            max_connections_per_address: 1_024,
            body_bytes_in_flight_per_shard: 16 * 1024 * 1024,
            backlog: 1024,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 4 * 1024,
            max_body_bytes: 1024 * 1024,
            max_image_bytes: 512 * 1024,
            max_image_pixels: 2_000_000,
            max_image_side: 4096,
            max_model_width: 4096,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            body_progress_timeout_ms: 10_000,
            first_byte_timeout_ms: 5_000,
            linger_timeout_ms: 2_000,
            linger_max_bytes: 16 * 1024 * 1024,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 30_000,
            queue_len: 1024,
            detect_queue_len: 64,
            slide_queue_len: 256,
            shard_inbox_len: 4096,
            max_waiters_per_shard: 16_384,
            rate_limit_per_sec: 100,
            rate_limit_burst: 200,
            upload_cost: 1,
            detect_cost: 5,
            slide_cost: 1,
            report_window_secs: 600,
            retention_days: 7,
            wait_timeout_ms_default: 3_000,
            wait_timeout_ms_max: 30_000,
            token_ttl_secs: 24 * 3600,
            failed_auth_per_sec: 5,
            failed_auth_burst: 20,
            api_key_cache_secs: 60,
            user_cache_secs: 60,
            password_hash_threads: 0,
            password_hash_queue_len: 32,
            password_hash_priority: ThreadPriority::Nice(10),
            login_account_free_failures: 5,
            login_address_free_failures: 20,
            login_backoff_base_ms: 1_000,
            login_backoff_max_ms: 60_000,
            login_backoff_forget_secs: 3_600,
            login_backoff_entries: 100_000,
            login_refusal_delay_ms: 1_000,
            jwt_secret: String::new(),
            durable_acks: true,
            create_demo_users: true,
            drain_timeout_ms: 10_000,
            storage_probe_ms: 250,
            storage_probe_max_ms: 5_000,
            recognition_cores: Vec::new(),
            recognition_priority: None,
            recognition_wide_threads: 0,
            detect_threads: 0,
            slide_threads: 1,
            max_batch: 8,
            max_queue_delay_us: 0,
            max_queue_wait_ms: 30_000,
            cache_entries: 65_536,
            cache_bytes: 32 << 20,
            cache_ttl_secs: 3600,
            cache_lookup_max: 256,
            price_per_point: PointPrice { micros: 1000 },
            compat_model: "old".to_string(),
            compat_wait_ms: 3_000,
            fastapi_account: String::new(),
            callback_allow: Vec::new(),
            callback_timeout_ms: 2_000,
            callback_attempts: 3,
            callback_retry_ms: 1_000,
            nats_url: String::new(),
            recognition_split: crate::cluster::Split::Overflow,
            overflow_queue_depth: 0,
            remote_max_in_flight: 1024,
            remote_timeout_ms: 30_000,
            remote_ack_wait_ms: 10_000,
            remote_max_deliver: 3,
            nats_replicas: 1,
            nats_request_timeout_ms: 5_000,
            nats_reconnect_max_ms: 2_000,
            heartbeat_ms: 1_000,
            node_ttl_ms: 5_000,
        }
    }
}

/// How `aiocr serve` and `aiocr doctor` are told where the configuration is and what to
/// override. Both load it with [`ConfigArgs::load`], so they can never disagree.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// TOML configuration file (every key is documented in docs/server.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (config key `listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// Shard (reactor) count; 0 = one per core (config key `shards`).
    #[arg(long)]
    pub shards: Option<u16>,
    /// Data directory (config key `data_dir`, env AIOCR_DATA).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model directory (config key `model_dir`, env AIOCR_MODEL_DIR).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Any other config key, e.g. `--set queue_len=64` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// The configuration these arguments name, with the process environment, plus `extra`
    /// (key, value) flags of the calling command (they win over `--set`).
    pub fn load(&self, extra: &[(&str, String)]) -> Result<Config, String> {
        let mut flags: Vec<(&str, String)> = Vec::new();
        if let Some(listen) = &self.listen {
            flags.push(("listen", listen.clone()));
        }
        if let Some(shards) = self.shards {
            flags.push(("shards", shards.to_string()));
        }
        if let Some(data) = &self.data {
            flags.push(("data_dir", data.display().to_string()));
        }
        if let Some(model_dir) = &self.model_dir {
            flags.push(("model_dir", model_dir.display().to_string()));
        }
        for pair in &self.set {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--set {pair:?}: expected KEY=VALUE"))?;
            flags.push((key.trim(), value.to_string()));
        }
        flags.extend(extra.iter().cloned());
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::load(self.config.as_deref(), &env, &flags)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Flag,
}

/// Every key, for the environment overrides (`AIOCR_` + upper case) and `--set`. The unit
/// test `every_key_is_a_field` keeps this list and the struct in step.
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Text),
    ("metrics_listen", Kind::Text),
    ("public_url", Kind::Text),
    ("tls_listen", Kind::Text),
    ("tls_cert", Kind::Text),
    ("tls_key", Kind::Text),
    ("tls_handshake_timeout_ms", Kind::Number),
    ("shards", Kind::Number),
    ("node_id", Kind::Number),
    ("data_dir", Kind::Text),
    ("model_dir", Kind::Text),
    ("max_connections_per_shard", Kind::Number),
    ("max_connections_per_address", Kind::Number),
    ("body_bytes_in_flight_per_shard", Kind::Number),
    ("backlog", Kind::Number),
    ("max_header_bytes", Kind::Number),
    ("max_uri_bytes", Kind::Number),
    ("max_body_bytes", Kind::Number),
    ("max_image_bytes", Kind::Number),
    ("max_image_pixels", Kind::Number),
    ("max_image_side", Kind::Number),
    ("max_model_width", Kind::Number),
    ("header_read_timeout_ms", Kind::Number),
    ("body_read_timeout_ms", Kind::Number),
    ("body_progress_timeout_ms", Kind::Number),
    ("first_byte_timeout_ms", Kind::Number),
    ("linger_timeout_ms", Kind::Number),
    ("linger_max_bytes", Kind::Number),
    ("idle_timeout_ms", Kind::Number),
    ("write_timeout_ms", Kind::Number),
    ("queue_len", Kind::Number),
    ("detect_queue_len", Kind::Number),
    ("slide_queue_len", Kind::Number),
    ("shard_inbox_len", Kind::Number),
    ("max_waiters_per_shard", Kind::Number),
    ("rate_limit_per_sec", Kind::Number),
    ("rate_limit_burst", Kind::Number),
    ("upload_cost", Kind::Number),
    ("detect_cost", Kind::Number),
    ("slide_cost", Kind::Number),
    ("report_window_secs", Kind::Number),
    ("retention_days", Kind::Number),
    ("wait_timeout_ms_default", Kind::Number),
    ("wait_timeout_ms_max", Kind::Number),
    ("token_ttl_secs", Kind::Number),
    ("failed_auth_per_sec", Kind::Number),
    ("failed_auth_burst", Kind::Number),
    ("api_key_cache_secs", Kind::Number),
    ("user_cache_secs", Kind::Number),
    ("password_hash_threads", Kind::Number),
    ("password_hash_queue_len", Kind::Number),
    ("password_hash_priority", Kind::Text),
    ("login_account_free_failures", Kind::Number),
    ("login_address_free_failures", Kind::Number),
    ("login_backoff_base_ms", Kind::Number),
    ("login_backoff_max_ms", Kind::Number),
    ("login_backoff_forget_secs", Kind::Number),
    ("login_backoff_entries", Kind::Number),
    ("login_refusal_delay_ms", Kind::Number),
    ("jwt_secret", Kind::Text),
    ("durable_acks", Kind::Flag),
    ("create_demo_users", Kind::Flag),
    ("drain_timeout_ms", Kind::Number),
    ("storage_probe_ms", Kind::Number),
    ("storage_probe_max_ms", Kind::Number),
    ("recognition_cores", Kind::Text),
    ("recognition_priority", Kind::Text),
    ("recognition_wide_threads", Kind::Number),
    ("detect_threads", Kind::Number),
    ("slide_threads", Kind::Number),
    ("max_batch", Kind::Number),
    ("max_queue_delay_us", Kind::Number),
    ("max_queue_wait_ms", Kind::Number),
    ("cache_entries", Kind::Number),
    ("cache_bytes", Kind::Number),
    ("cache_ttl_secs", Kind::Number),
    ("cache_lookup_max", Kind::Number),
    ("price_per_point", Kind::Text),
    ("compat_model", Kind::Text),
    ("compat_wait_ms", Kind::Number),
    ("fastapi_account", Kind::Text),
    ("callback_allow", Kind::Text),
    ("callback_timeout_ms", Kind::Number),
    ("callback_attempts", Kind::Number),
    ("callback_retry_ms", Kind::Number),
    ("nats_url", Kind::Text),
    ("recognition_split", Kind::Text),
    ("overflow_queue_depth", Kind::Number),
    ("remote_max_in_flight", Kind::Number),
    ("remote_timeout_ms", Kind::Number),
    ("remote_ack_wait_ms", Kind::Number),
    ("remote_max_deliver", Kind::Number),
    ("nats_replicas", Kind::Number),
    ("nats_request_timeout_ms", Kind::Number),
    ("nats_reconnect_max_ms", Kind::Number),
    ("heartbeat_ms", Kind::Number),
    ("node_ttl_ms", Kind::Number),
];

/// Earlier names of keys, still accepted everywhere a key is (file, environment, `--set`).
const KEY_ALIASES: &[(&str, &str)] = &[
    ("accel_cores", "recognition_cores"),
    ("accel_priority", "recognition_priority"),
    ("accel_wide_threads", "recognition_wide_threads"),
];

/// Environment names that differ from `AIOCR_<KEY>`: shared with other commands (the engine
/// reads AIOCR_MODEL_DIR, operators expect AIOCR_DATA) or shorter. `AIOCR_<KEY>` wins when
/// both are set.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("AIOCR_DATA", "data_dir"),
    ("AIOCR_MODEL_DIR", "model_dir"),
    ("AIOCR_MAX_CONNECTIONS", "max_connections_per_shard"),
];

impl Config {
    /// Defaults <- file <- environment <- `flags` (key, value) pairs.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &[(&str, String)],
    ) -> Result<Config, String> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            for (key, value) in read_table(path)? {
                table.insert(canonical_key(&key).to_string(), value);
            }
        }
        // Aliases first, so that the key's own name wins when both are set.
        let aliased = env.iter().filter_map(|(name, value)| {
            let (_, key) = ENV_ALIASES.iter().find(|(alias, _)| alias == name)?;
            Some((*key, value))
        });
        let named = env
            .iter()
            .filter_map(|(name, value)| Some((env_key(name)?, value)));
        for (key, value) in aliased.chain(named) {
            table.insert(key.to_string(), typed_value(key, value)?);
        }
        for (key, value) in flags {
            let key = canonical_key(key);
            table.insert(key.to_string(), typed_value(key, value)?);
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| format!("config: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// The shard count to run: the configured one, else one per usable core, at most
    /// `ids::MAX_SHARDS` (the shard lives in 4 bits of every id).
    pub fn shard_count(&self) -> u16 {
        if self.shards > 0 {
            return self.shards;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.min(usize::from(ids::MAX_SHARDS)) as u16
    }

    /// The recognition cores: those configured, or else every usable core.
    pub fn recognition_cores(&self, usable_cores: &[usize]) -> Vec<usize> {
        match (self.recognition_cores.is_empty(), usable_cores.is_empty()) {
            (false, _) => self.recognition_cores.clone(),
            (true, true) => vec![0],
            (true, false) => usable_cores.to_vec(),
        }
    }

    /// The configured priority, or else SCHED_IDLE where recognition shares a shard's core
    /// (the reactors keep their latency) and normal on cores of its own.
    pub fn recognition_priority(&self, shares_shard_cores: bool) -> ThreadPriority {
        match self.recognition_priority {
            Some(priority) => priority,
            None if shares_shard_cores => ThreadPriority::Idle,
            None => ThreadPriority::Normal,
        }
    }

    /// The password hash threads: those configured, or else one per 4 usable cores (at
    /// least 1): logins are rare next to uploads, and hashing must not take the shards' cores.
    pub fn password_hash_threads(&self, usable_cores: usize) -> usize {
        match self.password_hash_threads {
            0 => (usable_cores / 4).max(1),
            threads => threads,
        }
    }

    /// The engine's bounds on images and model inputs.
    pub fn image_limits(&self) -> ImageLimits {
        ImageLimits {
            max_pixels: self.max_image_pixels,
            max_side: self.max_image_side,
            max_model_width: self.max_model_width,
        }
    }

    /// The URL clients are told to use (`/v2/servers`).
    pub fn public_url(&self) -> String {
        if !self.public_url.is_empty() {
            return self.public_url.clone();
        }
        format!("http://{}", self.listen)
    }

    /// The TLS listener's certificate chain and key files, when TLS is on.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        self.tls_listen?;
        Some((&self.tls_cert, &self.tls_key))
    }

    fn validate(&self) -> Result<(), String> {
        self.validate_tls()?;
        self.validate_cluster()?;
        let checks: &[(bool, &str)] = &[
            (
                self.shards <= ids::MAX_SHARDS,
                "shards must be at most 16 (4 shard bits in ids)",
            ),
            (
                self.node_id <= ids::MAX_NODE_ID,
                "node_id must be below 64 (6 bits in ids)",
            ),
            (
                self.max_connections_per_shard > 0 && self.max_connections_per_address > 0,
                "max_connections_per_shard and max_connections_per_address must be positive",
            ),
            (
                // A lone body of the largest size must fit: the body itself plus its
                // connection's read buffer grown to the header limit and one read.
                self.body_bytes_in_flight_per_shard
                    >= self.max_body_bytes + self.max_header_bytes + 16 * 1024,
                "body_bytes_in_flight_per_shard must be at least max_body_bytes + \
                 max_header_bytes + 16384 (one body of the largest size and its read buffer)",
            ),
            (
                self.max_header_bytes >= 256,
                "max_header_bytes must be at least 256",
            ),
            (
                self.max_uri_bytes >= 64,
                "max_uri_bytes must be at least 64",
            ),
            (
                self.max_uri_bytes < self.max_header_bytes,
                "max_uri_bytes must be below max_header_bytes",
            ),
            (self.max_image_bytes > 0, "max_image_bytes must be positive"),
            (
                self.max_body_bytes >= self.max_image_bytes,
                "max_body_bytes must be at least max_image_bytes",
            ),
            (
                self.queue_len > 0 && self.detect_queue_len > 0 && self.slide_queue_len > 0,
                "queue_len, detect_queue_len and slide_queue_len must be positive",
            ),
            (
                (1..=64).contains(&self.slide_threads),
                "slide_threads must be 1..=64",
            ),
            (self.shard_inbox_len > 0, "shard_inbox_len must be positive"),
            (
                self.max_waiters_per_shard > 0,
                "max_waiters_per_shard must be positive",
            ),
            (
                self.rate_limit_per_sec == 0 || self.rate_limit_burst > 0,
                "rate_limit_burst must be positive while rate_limit_per_sec limits (is not 0)",
            ),
            (
                self.storage_probe_ms > 0 && self.storage_probe_max_ms >= self.storage_probe_ms,
                "storage_probe_ms must be positive and at most storage_probe_max_ms",
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
            (
                self.header_read_timeout_ms > 0 && self.idle_timeout_ms > 0,
                "timeouts must be positive",
            ),
            (
                self.body_read_timeout_ms > 0 && self.write_timeout_ms > 0,
                "timeouts must be positive",
            ),
            (
                self.body_progress_timeout_ms > 0 && self.first_byte_timeout_ms > 0,
                "timeouts must be positive",
            ),
            (self.token_ttl_secs > 0, "token_ttl_secs must be positive"),
            (
                self.failed_auth_per_sec > 0 && self.failed_auth_burst > 0,
                "failed_auth_per_sec and failed_auth_burst must be positive",
            ),
            (self.max_model_width > 0, "max_model_width must be positive"),
            (
                self.password_hash_threads <= 64 && self.password_hash_queue_len > 0,
                "password_hash_threads must be at most 64 and password_hash_queue_len positive",
            ),
            (
                self.login_backoff_base_ms > 0
                    && self.login_backoff_max_ms >= self.login_backoff_base_ms,
                "login_backoff_base_ms must be positive and at most login_backoff_max_ms",
            ),
            (
                // A lock is never forgotten before it ends.
                self.login_backoff_forget_secs.saturating_mul(1000) >= self.login_backoff_max_ms,
                "login_backoff_forget_secs must cover login_backoff_max_ms",
            ),
            (
                self.login_backoff_entries > 0,
                "login_backoff_entries must be positive",
            ),
            (
                self.login_refusal_delay_ms <= 60_000,
                "login_refusal_delay_ms must be at most 60000",
            ),
            (
                self.recognition_wide_threads <= 64,
                "recognition_wide_threads must be at most 64",
            ),
            (
                (1..=256).contains(&self.max_batch),
                "max_batch must be 1..=256",
            ),
            (
                self.max_queue_wait_ms > 0,
                "max_queue_wait_ms must be positive",
            ),
            (
                self.cache_entries == 0 || self.cache_bytes >= MIN_CACHE_BYTES,
                "cache_bytes must be at least 4096 (or cache_entries 0)",
            ),
            (
                (1..=MAX_CACHE_TTL_SECS).contains(&self.cache_ttl_secs),
                "cache_ttl_secs must be 1..=2592000 (30 days)",
            ),
            (
                (1..=MAX_CACHE_LOOKUPS).contains(&self.cache_lookup_max),
                "cache_lookup_max must be 1..=4096",
            ),
            (
                self.compat_wait_ms <= self.wait_timeout_ms_max,
                "compat_wait_ms must be at most wait_timeout_ms_max",
            ),
            (
                (1..=10).contains(&self.callback_attempts) && self.callback_timeout_ms > 0,
                "callback_attempts must be 1..=10 and callback_timeout_ms positive",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(format!("config: {message}")),
            None => Ok(()),
        }
    }

    /// The cluster's bounds (docs/cluster.md): a job is redelivered (ack deadline) well
    /// before its node gives up on it, and every bound is positive.
    fn validate_cluster(&self) -> Result<(), String> {
        let checks: &[(bool, &str)] = &[
            (
                self.remote_ack_wait_ms > 0 && self.remote_ack_wait_ms < self.remote_timeout_ms,
                "remote_ack_wait_ms must be positive and below remote_timeout_ms",
            ),
            (
                (1..=100).contains(&self.remote_max_deliver),
                "remote_max_deliver must be 1..=100",
            ),
            (
                self.remote_max_in_flight > 0,
                "remote_max_in_flight must be positive",
            ),
            (
                (1..=5).contains(&self.nats_replicas),
                "nats_replicas must be 1..=5",
            ),
            (
                self.nats_request_timeout_ms > 0 && self.nats_reconnect_max_ms >= 100,
                "nats_request_timeout_ms must be positive, nats_reconnect_max_ms at least 100",
            ),
            (
                self.heartbeat_ms > 0 && self.node_ttl_ms > self.heartbeat_ms,
                "heartbeat_ms must be positive and below node_ttl_ms",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(format!("config: {message}")),
            None => Ok(()),
        }
    }

    /// TLS is all or nothing: an address, a certificate and a key. Whether the files can be
    /// read is checked where they are read (`tls::load_server_config`, at start).
    fn validate_tls(&self) -> Result<(), String> {
        let given = [
            self.tls_listen.is_some(),
            !self.tls_cert.as_os_str().is_empty(),
            !self.tls_key.as_os_str().is_empty(),
        ];
        if given.iter().any(|set| *set != given[0]) {
            return Err(
                "config: TLS needs all three of tls_listen, tls_cert and tls_key (or none)".into(),
            );
        }
        if self.tls_handshake_timeout_ms == 0 {
            return Err("config: tls_handshake_timeout_ms must be positive".into());
        }
        // Two SO_REUSEPORT listeners of one process on one address would share its
        // connections, half of them answered in the wrong protocol.
        let clashes = |other: Option<SocketAddr>| {
            self.tls_listen
                .is_some_and(|tls| tls.port() != 0 && Some(tls) == other)
        };
        if clashes(Some(self.listen)) || clashes(self.metrics_listen) {
            return Err("config: tls_listen must differ from listen and metrics_listen".into());
        }
        Ok(())
    }
}

fn socket_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an IP:port")))
}

fn optional_socket_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not empty or an IP:port")))
}

fn core_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<usize>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.split(',')
        .map(str::trim)
        .filter(|core| !core.is_empty())
        .map(|core| {
            core.parse().map_err(|_| {
                serde::de::Error::custom(format!(
                    "{text:?} is not empty or a comma list of core numbers"
                ))
            })
        })
        .collect()
}

fn optional_priority<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ThreadPriority>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

fn thread_priority<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ThreadPriority, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn split<'de, D: Deserializer<'de>>(deserializer: D) -> Result<crate::cluster::Split, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn point_price<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PointPrice, D::Error> {
    let text = String::deserialize(deserializer)?;
    PointPrice::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not a price: a decimal with at most 6 decimals, at most 1000"
        ))
    })
}

fn host_port_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, u16)>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let parsed = entry
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .filter(|(host, _)| !host.is_empty());
            parsed
                .map(|(host, port)| (host.to_ascii_lowercase(), port))
                .ok_or_else(|| serde::de::Error::custom(format!("{entry:?} is not host:port")))
        })
        .collect()
}

fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| format!("config {}: {e}", path.display()))
}

/// The key's own name for an earlier spelling; any other name unchanged.
fn canonical_key(name: &str) -> &str {
    KEY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, key)| key)
}

/// The key of an `AIOCR_<KEY>` variable (aliases of keys included).
fn env_key(name: &str) -> Option<&'static str> {
    let lower = name.strip_prefix("AIOCR_")?.to_ascii_lowercase();
    let key = canonical_key(&lower);
    KEYS.iter().map(|(key, _)| *key).find(|known| *known == key)
}

fn typed_value(key: &str, text: &str) -> Result<toml::Value, String> {
    let kind = KEYS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, kind)| *kind);
    let bad = || format!("config: {key}={text:?} is not valid");
    match kind {
        Some(Kind::Text) => Ok(toml::Value::String(text.to_string())),
        Some(Kind::Number) => text
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| bad()),
        Some(Kind::Flag) => match text.trim() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(bad()),
        },
        None => Err(format!("config: unknown key {key}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let config = Config::load(None, &[], &[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.image_limits().max_pixels, 2_000_000);
    }

    #[test]
    fn a_rate_limit_of_0_disables_the_per_user_buckets_and_a_burst_of_0_needs_it() {
        let set = |pairs: &[(&str, &str)]| {
            let flags: Vec<(&str, String)> =
                pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
            Config::load(None, &[], &flags)
        };
        let unlimited = set(&[("rate_limit_per_sec", "0")]).unwrap();
        assert_eq!(unlimited.rate_limit_per_sec, 0);
        assert!(set(&[("rate_limit_per_sec", "0"), ("rate_limit_burst", "0")]).is_ok());
        let refused = set(&[("rate_limit_burst", "0")]).unwrap_err();
        assert!(refused.contains("rate_limit_burst"), "{refused}");
        assert!(set(&[("storage_probe_ms", "0")]).is_err());
        assert!(set(&[("storage_probe_ms", "600"), ("storage_probe_max_ms", "500")]).is_err());
    }

    #[test]
    fn every_key_is_a_field() {
        // A table with every key set to a value of its kind must deserialize (deny_unknown_fields
        // catches a key in KEYS that is not a field).
        let mut table = toml::Table::new();
        for (key, kind) in KEYS {
            let value = match (key, kind) {
                (&"recognition_cores", _) => toml::Value::String("1".into()),
                (&"recognition_priority" | &"password_hash_priority", _) => {
                    toml::Value::String("idle".into())
                }
                (&"price_per_point", _) => toml::Value::String("0.5".into()),
                (&"recognition_split", _) => toml::Value::String("remote".into()),
                (_, Kind::Text) => toml::Value::String("127.0.0.1:1".into()),
                (_, Kind::Number) => toml::Value::Integer(1),
                (_, Kind::Flag) => toml::Value::Boolean(true),
            };
            table.insert(key.to_string(), value);
        }
        let parsed: Result<Config, _> = toml::Value::Table(table).try_into();
        assert!(parsed.is_ok(), "{parsed:?}");
        for (_, key) in KEY_ALIASES.iter().chain(ENV_ALIASES) {
            assert!(KEYS.iter().any(|(known, _)| known == key), "{key}");
        }
    }

    #[test]
    fn precedence_file_env_flags() {
        let dir = std::env::temp_dir().join(format!("aiocr-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("aiocr.toml");
        std::fs::write(
            &file,
            "shards = 3\nqueue_len = 7\nlisten = \"127.0.0.1:9000\"\naccel_cores = \"1, 2\"\n",
        )
        .unwrap();
        let env = vec![
            ("AIOCR_QUEUE_LEN".to_string(), "9".to_string()),
            ("AIOCR_DATA".to_string(), "/tmp/d".to_string()),
            ("AIOCR_JWT_SECRET".to_string(), "12345".to_string()),
            (
                "AIOCR_MAX_CONNECTIONS_PER_SHARD".to_string(),
                "55".to_string(),
            ),
            ("AIOCR_MAX_CONNECTIONS".to_string(), "77".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let flags = [("shards", "2".to_string())];
        let config = Config::load(Some(&file), &env, &flags).unwrap();
        assert_eq!((config.shards, config.queue_len), (2, 9));
        assert_eq!(
            config.listen,
            "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(config.jwt_secret, "12345");
        assert_eq!(config.recognition_cores, vec![1, 2]);
        // The key's own environment name wins over the short alias, whatever the order.
        assert_eq!(config.max_connections_per_shard, 55);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn typed_values_and_their_defaults() {
        let config = Config::load(
            None,
            &[],
            &[
                ("accel_priority", "nice:5".to_string()),
                ("recognition_cores", "".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(config.recognition_priority, Some(ThreadPriority::Nice(5)));
        assert_eq!(config.recognition_cores(&[0, 1]), vec![0, 1]);
        assert_eq!(config.recognition_cores(&[]), vec![0]);
        assert_eq!(
            Config::default().recognition_priority(true),
            ThreadPriority::Idle
        );
        assert_eq!(
            Config::default().recognition_priority(false),
            ThreadPriority::Normal
        );
        assert!(Config::default().shard_count() <= ids::MAX_SHARDS);
        let config = Config::default();
        assert_eq!(config.password_hash_priority, ThreadPriority::Nice(10));
        assert_eq!(
            (1..=16)
                .map(|cores| config.password_hash_threads(cores))
                .collect::<Vec<_>>(),
            [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]
        );
        let set = Config::load(
            None,
            &[],
            &[
                ("password_hash_threads", "3".to_string()),
                ("password_hash_priority", "normal".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(set.password_hash_threads(16), 3);
        assert_eq!(set.password_hash_priority, ThreadPriority::Normal);
    }

    #[test]
    fn refuses_bad_values() {
        let bad_env = vec![("AIOCR_SHARDS".to_string(), "many".to_string())];
        assert!(Config::load(None, &bad_env, &[]).is_err());
        let refused = |key: &str, value: &str| Config::load(None, &[], &[(key, value.into())]);
        assert!(refused("shards", "17").is_err());
        assert!(refused("node_id", "64").is_err());
        assert!(refused("listen", "nowhere").is_err());
        assert!(refused("metrics_listen", "nowhere").is_err());
        assert!(refused("recognition_cores", "1,x").is_err());
        assert!(refused("recognition_priority", "nice:40").is_err());
        assert!(refused("shard_inbox_len", "0").is_err());
        assert!(refused("price_per_point", "0.0000001").is_err());
        assert!(
            refused("upload_cost", "9007199254740992").is_err(),
            "past 2^53 - 1"
        );
        assert!(refused("slide_cost", "-1").is_err());
        assert!(refused("detect_cost", "9007199254740991").is_ok());
        assert!(refused("callback_allow", "nohost").is_err());
        assert!(refused("password_hash_queue_len", "0").is_err());
        assert!(refused("password_hash_priority", "").is_err());
        assert!(refused("login_backoff_base_ms", "0").is_err());
        assert!(
            refused("login_backoff_max_ms", "999").is_err(),
            "below the base"
        );
        assert!(
            refused("login_backoff_forget_secs", "59").is_err(),
            "shorter than a lock"
        );
        let callbacks = refused("callback_allow", "127.0.0.1:9000, Hooks.Local:80").unwrap();
        assert_eq!(
            callbacks.callback_allow,
            vec![
                ("127.0.0.1".to_string(), 9000),
                ("hooks.local".to_string(), 80)
            ]
        );
        let separate = refused("metrics_listen", "127.0.0.1:9100").unwrap();
        assert_eq!(
            separate.metrics_listen,
            Some("127.0.0.1:9100".parse().unwrap())
        );
        let dir = std::env::temp_dir().join(format!("aiocr-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("aiocr.toml");
        std::fs::write(&file, "shard = 3\n").unwrap();
        assert!(Config::load(Some(&file), &[], &[])
            .unwrap_err()
            .contains("unknown field"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_is_all_or_nothing() {
        let load = |pairs: &[(&str, &str)]| {
            let flags: Vec<(&str, String)> =
                pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
            Config::load(None, &[], &flags)
        };
        let all = [
            ("tls_listen", "127.0.0.1:8443"),
            ("tls_cert", "/etc/aiocr/cert.pem"),
            ("tls_key", "/etc/aiocr/key.pem"),
        ];
        let config = load(&all).unwrap();
        assert_eq!(
            config.tls_files(),
            Some((
                Path::new("/etc/aiocr/cert.pem"),
                Path::new("/etc/aiocr/key.pem")
            ))
        );
        assert_eq!(config.tls_handshake_timeout_ms, 10_000);
        assert_eq!(Config::default().tls_files(), None);
        for missing in 0..all.len() {
            let mut partial = all.to_vec();
            partial.remove(missing);
            let error = load(&partial).unwrap_err();
            assert!(error.contains("all three"), "{error}");
        }
        let error = load(&[("tls_cert", "/etc/aiocr/cert.pem")]).unwrap_err();
        assert!(
            error.contains("tls_listen, tls_cert and tls_key"),
            "{error}"
        );
        let mut same_port = all.to_vec();
        same_port.push(("listen", "127.0.0.1:8443"));
        assert!(load(&same_port).unwrap_err().contains("must differ"));
        let mut zero = all.to_vec();
        zero.push(("tls_handshake_timeout_ms", "0"));
        assert!(load(&zero).is_err());
        let mut any_port = all.to_vec();
        any_port[0].1 = "127.0.0.1:0";
        any_port.push(("listen", "127.0.0.1:0"));
        assert!(load(&any_port).is_ok(), "port 0 resolves to two free ports");
    }
}
