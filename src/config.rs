//! `aiocr serve` configuration: built-in defaults, then one TOML file (`--config`), then
//! `AIOCR_<KEY>` environment variables, then command-line flags; the later wins. Every limit
//! the server enforces is a key here; docs/server.md lists them with their defaults.

use crate::accel::workers::ThreadPriority;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address every shard listens on (one SO_REUSEPORT socket per shard).
    pub listen: String,
    /// Address of a listener of its own for `/metrics` (and `/health`), run by shard 0; the
    /// API listener then answers `/metrics` with 404. Empty: `/metrics` is on `listen`.
    pub metrics_listen: String,
    /// URL clients are told to use in /v2/servers; empty means `http://<listen>`.
    pub public_url: String,
    /// Shard (reactor) count; 0 means one per available core. Fixed at data creation.
    pub shards: u16,
    /// Node id written into snowflake ids (0..=63).
    pub node_id: u16,
    pub data_dir: PathBuf,
    pub model_dir: PathBuf,
    /// Open connections per shard; beyond it new connections are closed at once.
    pub max_connections_per_shard: usize,
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
    /// A request head must arrive within this time from its first byte (408).
    pub header_read_timeout_ms: u64,
    /// A request body must arrive within this time after its head (408).
    pub body_read_timeout_ms: u64,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// An answer the client does not read within this time closes the connection.
    pub write_timeout_ms: u64,
    /// Recognition queue length shared by all shards (5001 when full).
    pub queue_len: usize,
    /// Per-user token bucket: sustained requests per second and burst.
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// Points each upload costs.
    pub upload_cost: i64,
    pub report_window_secs: u64,
    pub retention_days: u32,
    /// `wait=1` default and maximum `timeout_ms`.
    pub wait_timeout_ms_default: u64,
    pub wait_timeout_ms_max: u64,
    /// JWT lifetime.
    pub token_ttl_secs: u64,
    /// HS256 secret; empty means generated once into `<data_dir>/jwt.secret` (mode 0600).
    pub jwt_secret: String,
    /// `false` acknowledges uploads before their reservation is fsynced. Only for measuring
    /// the cost of durability: a crash may then lose acknowledged reservations.
    pub durable_acks: bool,
    /// Create a demo user and an admin when the data directory is new.
    pub create_demo_users: bool,
    /// On SIGTERM, how long in-flight requests may take before the server stops anyway.
    pub drain_timeout_ms: u64,
    /// Widest model input after resizing to the model's height (3004 beyond).
    pub max_model_width: usize,
    /// Cores of the recognition threads, one thread each: empty means every core (sharing
    /// the shard cores, at `accel_priority`), else a comma list such as "2,3".
    pub accel_cores: String,
    /// `idle` (SCHED_IDLE), `normal`, or `nice:N`; empty means `idle` when a recognition core
    /// is also a shard core, else `normal`.
    pub accel_priority: String,
    /// Most jobs one recognition call takes (only models that batch exactly gather more).
    pub max_batch: usize,
    /// How long a recognition thread holding fewer than `max_batch` jobs waits for more.
    pub max_queue_delay_us: u64,
    /// A job older than this when a thread takes it fails without running (refunded).
    pub max_queue_wait_ms: u64,
    /// Answers kept per shard for uploads of identical bytes and options (0 disables).
    pub cache_entries: usize,
    /// Threads of one model run when a job arrives to an idle accelerator (lower latency at
    /// low load): 0 means one per recognition core, 1 turns it off.
    pub accel_wide_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8080".to_string(),
            metrics_listen: String::new(),
            public_url: String::new(),
            shards: 0,
            node_id: 0,
            data_dir: PathBuf::from("data"),
            model_dir: PathBuf::from("models"),
            max_connections_per_shard: 10_000,
            backlog: 1024,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 4 * 1024,
            max_body_bytes: 1024 * 1024,
            max_image_bytes: 512 * 1024,
            max_image_pixels: 2_000_000,
            max_image_side: 4096,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 30_000,
            queue_len: 1024,
            rate_limit_per_sec: 100,
            rate_limit_burst: 200,
            upload_cost: 1,
            report_window_secs: 600,
            retention_days: 7,
            wait_timeout_ms_default: 3_000,
            wait_timeout_ms_max: 30_000,
            token_ttl_secs: 24 * 3600,
            jwt_secret: String::new(),
            durable_acks: true,
            create_demo_users: true,
            drain_timeout_ms: 10_000,
            max_model_width: 4096,
            accel_cores: String::new(),
            accel_priority: String::new(),
            max_batch: 8,
            max_queue_delay_us: 0,
            max_queue_wait_ms: 30_000,
            cache_entries: 4096,
            accel_wide_threads: 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Flag,
}

/// Every key, for the environment overrides (`AIOCR_` + upper case). The unit test
/// `every_key_is_a_field` keeps this list and the struct in step.
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Text),
    ("metrics_listen", Kind::Text),
    ("public_url", Kind::Text),
    ("shards", Kind::Number),
    ("node_id", Kind::Number),
    ("data_dir", Kind::Text),
    ("model_dir", Kind::Text),
    ("max_connections_per_shard", Kind::Number),
    ("backlog", Kind::Number),
    ("max_header_bytes", Kind::Number),
    ("max_uri_bytes", Kind::Number),
    ("max_body_bytes", Kind::Number),
    ("max_image_bytes", Kind::Number),
    ("max_image_pixels", Kind::Number),
    ("max_image_side", Kind::Number),
    ("header_read_timeout_ms", Kind::Number),
    ("body_read_timeout_ms", Kind::Number),
    ("idle_timeout_ms", Kind::Number),
    ("write_timeout_ms", Kind::Number),
    ("queue_len", Kind::Number),
    ("rate_limit_per_sec", Kind::Number),
    ("rate_limit_burst", Kind::Number),
    ("upload_cost", Kind::Number),
    ("report_window_secs", Kind::Number),
    ("retention_days", Kind::Number),
    ("wait_timeout_ms_default", Kind::Number),
    ("wait_timeout_ms_max", Kind::Number),
    ("token_ttl_secs", Kind::Number),
    ("jwt_secret", Kind::Text),
    ("durable_acks", Kind::Flag),
    ("create_demo_users", Kind::Flag),
    ("drain_timeout_ms", Kind::Number),
    ("max_model_width", Kind::Number),
    ("accel_cores", Kind::Text),
    ("accel_priority", Kind::Text),
    ("max_batch", Kind::Number),
    ("max_queue_delay_us", Kind::Number),
    ("max_queue_wait_ms", Kind::Number),
    ("cache_entries", Kind::Number),
    ("accel_wide_threads", Kind::Number),
];

/// Environment names that differ from `AIOCR_<KEY>` because they are shared with other
/// commands (the engine reads AIOCR_MODEL_DIR, operators expect AIOCR_DATA).
const ENV_ALIASES: &[(&str, &str)] =
    &[("AIOCR_DATA", "data_dir"), ("AIOCR_MODEL_DIR", "model_dir")];

impl Config {
    /// Defaults <- file <- environment <- `flags` (key, value) pairs.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &[(&str, String)],
    ) -> Result<Config, String> {
        let mut table = match file {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        for (name, value) in env {
            if let Some(key) = env_key(name) {
                table.insert(key.to_string(), typed_value(key, value)?);
            }
        }
        for (key, value) in flags {
            table.insert(key.to_string(), typed_value(key, value)?);
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| format!("config: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// The recognition cores: those configured, or else every core the process may use.
    pub fn accel_cores(&self, usable_cores: &[usize]) -> Vec<usize> {
        match self.parse_accel_cores() {
            Ok(cores) if !cores.is_empty() => cores,
            _ if usable_cores.is_empty() => vec![0],
            _ => usable_cores.to_vec(),
        }
    }

    fn parse_accel_cores(&self) -> Result<Vec<usize>, std::num::ParseIntError> {
        self.accel_cores
            .split(',')
            .map(str::trim)
            .filter(|core| !core.is_empty())
            .map(str::parse)
            .collect()
    }

    /// The configured priority, or else SCHED_IDLE where recognition shares a shard's core
    /// (the reactors keep their latency) and normal on cores of its own.
    pub fn accel_priority(&self, shares_shard_cores: bool) -> ThreadPriority {
        match self.accel_priority.parse() {
            Ok(priority) => priority,
            Err(_) if shares_shard_cores => ThreadPriority::Idle,
            Err(_) => ThreadPriority::Normal,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let checks: &[(bool, &str)] = &[
            (
                self.listen.parse::<SocketAddr>().is_ok(),
                "listen must be an IP:port",
            ),
            (
                self.metrics_listen.is_empty() || self.metrics_listen.parse::<SocketAddr>().is_ok(),
                "metrics_listen must be empty or an IP:port",
            ),
            (
                self.shards <= 16,
                "shards must be at most 16 (4 shard bits in ids)",
            ),
            (
                self.node_id < 64,
                "node_id must be below 64 (6 bits in ids)",
            ),
            (
                self.max_connections_per_shard > 0,
                "max_connections_per_shard must be positive",
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
            (self.queue_len > 0, "queue_len must be positive"),
            (
                self.rate_limit_per_sec > 0 && self.rate_limit_burst > 0,
                "rate limits must be positive",
            ),
            (self.upload_cost >= 0, "upload_cost must not be negative"),
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
            (self.token_ttl_secs > 0, "token_ttl_secs must be positive"),
            (self.max_model_width > 0, "max_model_width must be positive"),
            (
                self.accel_wide_threads <= 64,
                "accel_wide_threads must be at most 64",
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
                self.parse_accel_cores().is_ok(),
                "accel_cores must be empty or a comma list of core numbers",
            ),
            (
                self.accel_priority.is_empty()
                    || self.accel_priority.parse::<ThreadPriority>().is_ok(),
                "accel_priority must be empty, idle, normal or nice:N (1..=19)",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(format!("config: {message}")),
            None => Ok(()),
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated in load")
    }

    /// The address of the separate /metrics listener, if one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        (!self.metrics_listen.is_empty())
            .then(|| self.metrics_listen.parse().expect("validated in load"))
    }

    /// The shard count to run: the configured one, else one per core.
    pub fn shard_count(&self) -> u16 {
        if self.shards > 0 {
            return self.shards;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.min(16) as u16
    }

    pub fn public_url(&self) -> String {
        if !self.public_url.is_empty() {
            return self.public_url.clone();
        }
        format!("http://{}", self.listen)
    }
}

fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| format!("config {}: {e}", path.display()))
}

fn env_key(name: &str) -> Option<&'static str> {
    if let Some((_, key)) = ENV_ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Some(key);
    }
    let lower = name.strip_prefix("AIOCR_")?.to_ascii_lowercase();
    KEYS.iter().map(|(key, _)| *key).find(|key| *key == lower)
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
        assert_eq!(config.listen_addr().port(), 8080);
    }

    #[test]
    fn every_key_is_a_field() {
        // A table with every key set to a value of its kind must deserialize (deny_unknown_fields
        // catches a key in KEYS that is not a field).
        let mut table = toml::Table::new();
        for (key, kind) in KEYS {
            let value = match kind {
                Kind::Text => toml::Value::String("127.0.0.1:1".into()),
                Kind::Number => toml::Value::Integer(1),
                Kind::Flag => toml::Value::Boolean(true),
            };
            table.insert(key.to_string(), value);
        }
        let parsed: Result<Config, _> = toml::Value::Table(table).try_into();
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn precedence_file_env_flags() {
        let dir = std::env::temp_dir().join(format!("aiocr-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("aiocr.toml");
        std::fs::write(
            &file,
            "shards = 3\nqueue_len = 7\nlisten = \"127.0.0.1:9000\"\n",
        )
        .unwrap();
        let env = vec![
            ("AIOCR_QUEUE_LEN".to_string(), "9".to_string()),
            ("AIOCR_DATA".to_string(), "/tmp/d".to_string()),
            ("AIOCR_JWT_SECRET".to_string(), "12345".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let flags = [("shards", "2".to_string())];
        let config = Config::load(Some(&file), &env, &flags).unwrap();
        assert_eq!((config.shards, config.queue_len), (2, 9));
        assert_eq!(config.listen, "127.0.0.1:9000");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(config.jwt_secret, "12345");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_bad_values() {
        let bad_env = vec![("AIOCR_SHARDS".to_string(), "many".to_string())];
        assert!(Config::load(None, &bad_env, &[]).is_err());
        assert!(Config::load(None, &[], &[("shards", "17".to_string())]).is_err());
        assert!(Config::load(None, &[], &[("listen", "nowhere".to_string())]).is_err());
        assert!(Config::load(None, &[], &[("metrics_listen", "nowhere".to_string())]).is_err());
        let separate = Config::load(
            None,
            &[],
            &[("metrics_listen", "127.0.0.1:9100".to_string())],
        );
        assert_eq!(
            separate.unwrap().metrics_addr(),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert_eq!(Config::default().metrics_addr(), None);
        let dir = std::env::temp_dir().join(format!("aiocr-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("aiocr.toml");
        std::fs::write(&file, "shard = 3\n").unwrap();
        assert!(Config::load(Some(&file), &[], &[])
            .unwrap_err()
            .contains("unknown field"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
