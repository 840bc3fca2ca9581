//! The server's configuration, in one place: built-in defaults, then one TOML file
//! (`--config`), then `AIOCR_<KEY>` environment variables, then command-line flags; the later
//! wins. Every limit the server enforces is a key here; docs/server.md lists them with their
//! defaults. Values are parsed into their types at load (addresses, core lists, priorities,
//! image limits, the caps that the id layout sets), so nothing downstream parses again.
//!
//! Keys are flat (`queue_len = 64`, `AIOCR_QUEUE_LEN`, `--set queue_len=64`); each belongs to
//! one subsystem's section, a type of its own module with its defaults and bounds:
//!
//! | section | module | what it holds |
//! |---|---|---|
//! | `network` | `network.rs` | listeners, TLS, connections admitted |
//! | `http` | `http.rs` | header, URI and body sizes; read and write deadlines |
//! | `images` | `images.rs` | image bytes, pixels, sides; the widest model input |
//! | `node` | `node.rs` | shards, node id, models, inboxes, waiters, the stop |
//! | `store` | `store.rs` | the data directory, durable acks, storage probes, retention |
//! | `recognition` | `recognition.rs` | queues, threads, cores, priority, batching |
//! | `uploads` | `uploads.rs` | costs, per-user rates, `wait=1`, reports |
//! | `auth` | `auth.rs` | tokens, failed key lookups, what shards remember |
//! | `login` | `login.rs` | password hashing, login backoffs |
//! | `cache` | `cache.rs` | the answer cache |
//! | `compat` | `compat.rs` | the captcha protocols and their callbacks |
//! | `mcp` | `mcp.rs` | the MCP endpoint: body, sessions, waits, origins |
//! | `models` | `models.rs` | models users bring: upload size, per-user limits, loaded memory |
//! | `cluster` | `cluster.rs` | NATS, where jobs run ([`Split`]), remote bounds |
//!
//! `keys.rs` holds the other names of keys (environment, aliases) and types their text,
//! `values.rs` the parsers of typed values, `check.rs` the form of a section's bounds.
//! `aiocr serve` and `aiocr doctor` both take [`ConfigArgs`] and load the same configuration.

mod auth;
mod cache;
mod check;
mod cluster;
mod compat;
mod http;
mod images;
mod keys;
mod login;
mod mcp;
mod models;
mod network;
mod node;
mod recognition;
mod store;
#[cfg(test)]
mod tests;
mod uploads;
mod values;

pub use auth::AuthConfig;
pub use cache::{CacheConfig, MAX_CACHE_LOOKUPS};
pub use cluster::{ClusterConfig, Split};
pub use compat::CompatConfig;
pub use http::HttpConfig;
pub use images::ImageConfig;
pub use login::LoginConfig;
pub use mcp::McpConfig;
pub use models::ModelsConfig;
pub use network::NetworkConfig;
pub use node::NodeConfig;
pub use recognition::RecognitionConfig;
pub use store::StoreConfig;
pub use uploads::UploadConfig;

use check::first_failed;
use keys::{canonical_key, typed_value, Kind, ENV_ALIASES};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The one configuration: every subsystem's section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub network: NetworkConfig,
    pub http: HttpConfig,
    pub images: ImageConfig,
    pub node: NodeConfig,
    pub store: StoreConfig,
    pub recognition: RecognitionConfig,
    pub uploads: UploadConfig,
    pub auth: AuthConfig,
    pub login: LoginConfig,
    pub cache: CacheConfig,
    pub compat: CompatConfig,
    pub mcp: McpConfig,
    pub cluster: ClusterConfig,
    pub models: ModelsConfig,
}

/// Every section's keys. A key belongs to exactly one (the unit test
/// `every_key_is_a_field` checks it).
const SECTIONS: [&[(&str, Kind)]; 14] = [
    network::KEYS,
    http::KEYS,
    images::KEYS,
    node::KEYS,
    store::KEYS,
    recognition::KEYS,
    uploads::KEYS,
    auth::KEYS,
    login::KEYS,
    cache::KEYS,
    compat::KEYS,
    mcp::KEYS,
    cluster::KEYS,
    models::KEYS,
];

/// Every key with its kind.
fn all_keys() -> impl Iterator<Item = &'static (&'static str, Kind)> {
    SECTIONS.iter().flat_map(|section| section.iter())
}

fn kind_of(key: &str) -> Option<Kind> {
    all_keys()
        .find(|(name, _)| *name == key)
        .map(|(_, kind)| *kind)
}

/// The key of an `AIOCR_<KEY>` variable (aliases of keys included).
fn env_key(name: &str) -> Option<&'static str> {
    let key = keys::env_key_name(name)?;
    all_keys()
        .map(|(known, _)| *known)
        .find(|known| *known == key)
}

impl Config {
    /// Defaults <- file <- environment <- `flags` (key, value) pairs.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &[(&str, String)],
    ) -> Result<Config, String> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            for (key, value) in keys::read_table(path)? {
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
            table.insert(key.to_string(), typed_value(key, kind_of(key), value)?);
        }
        for (key, value) in flags {
            let key = canonical_key(key);
            table.insert(key.to_string(), typed_value(key, kind_of(key), value)?);
        }
        let config = Config::from_table(&table)?;
        config.validate()?;
        Ok(config)
    }

    /// The sections of a table of keys (not yet validated). A key of no section is refused.
    fn from_table(table: &toml::Table) -> Result<Config, String> {
        if let Some(unknown) = table.keys().find(|key| kind_of(key).is_none()) {
            return Err(format!("config: unknown field `{unknown}`"));
        }
        Ok(Config {
            network: section(table, network::KEYS)?,
            http: section(table, http::KEYS)?,
            images: section(table, images::KEYS)?,
            node: section(table, node::KEYS)?,
            store: section(table, store::KEYS)?,
            recognition: section(table, recognition::KEYS)?,
            uploads: section(table, uploads::KEYS)?,
            auth: section(table, auth::KEYS)?,
            login: section(table, login::KEYS)?,
            cache: section(table, cache::KEYS)?,
            compat: section(table, compat::KEYS)?,
            mcp: section(table, mcp::KEYS)?,
            cluster: section(table, cluster::KEYS)?,
            models: section(table, models::KEYS)?,
        })
    }

    /// Each section's bounds, then those that join two sections.
    fn validate(&self) -> Result<(), String> {
        self.network.validate()?;
        self.cluster.validate()?;
        self.node.validate()?;
        self.http.validate()?;
        self.images.validate()?;
        self.recognition.validate()?;
        self.uploads.validate()?;
        self.store.validate()?;
        self.auth.validate()?;
        self.login.validate()?;
        self.cache.validate()?;
        self.compat.validate()?;
        self.mcp.validate()?;
        self.models.validate()?;
        first_failed(&[
            (
                self.http.max_body_bytes >= self.images.max_image_bytes,
                "max_body_bytes must be at least max_image_bytes",
            ),
            (
                self.compat.compat_wait_ms <= self.uploads.wait_timeout_ms_max,
                "compat_wait_ms must be at most wait_timeout_ms_max",
            ),
        ])
    }
}

/// One section read from the table's entries of its keys (serde's `deny_unknown_fields` on
/// each section catches a key listed in a section's `KEYS` that is not its field).
fn section<T: DeserializeOwned>(table: &toml::Table, keys: &[(&str, Kind)]) -> Result<T, String> {
    let own: toml::Table = table
        .iter()
        .filter(|(key, _)| keys.iter().any(|(name, _)| name == key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    toml::Value::Table(own)
        .try_into()
        .map_err(|e| format!("config: {e}"))
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
