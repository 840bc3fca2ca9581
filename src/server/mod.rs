//! `aiocr serve`: start-up (config, stores, demo users, recognition workers), one pinned
//! glommio executor per shard, SIGTERM handling. The per-request path lives in `conn`
//! (HTTP), `routes` (dispatch and auth), `account` and `upload` (the endpoints); the
//! per-shard machinery in `shard` (listener, inbox, results) and `commit` (group commit).

mod account;
mod api;
mod bootstrap;
mod commit;
mod conn;
mod fields;
mod routes;
mod shard;
mod stop;
mod upload;

use crate::config::Config;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (every key is documented in docs/server.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (config key `listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// Shard (reactor) count; default one per core (config key `shards`).
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

pub fn run(args: ServeArgs) -> i32 {
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("aiocr serve: {message}");
            return 2;
        }
    };
    match bootstrap::serve(config) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("aiocr serve: {message}");
            1
        }
    }
}

fn load_config(args: &ServeArgs) -> Result<Config, String> {
    let mut flags: Vec<(&str, String)> = Vec::new();
    if let Some(listen) = &args.listen {
        flags.push(("listen", listen.clone()));
    }
    if let Some(shards) = args.shards {
        flags.push(("shards", shards.to_string()));
    }
    if let Some(data) = &args.data {
        flags.push(("data_dir", data.display().to_string()));
    }
    if let Some(model_dir) = &args.model_dir {
        flags.push(("model_dir", model_dir.display().to_string()));
    }
    for pair in &args.set {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--set {pair:?}: expected KEY=VALUE"))?;
        flags.push((key.trim(), value.to_string()));
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    Config::load(args.config.as_deref(), &env, &flags)
}
