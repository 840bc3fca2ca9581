//! `aiocr serve`: the HTTP API server, one pinned glommio executor per shard.
//!
//! A request's path, in the order data flows (each step one module):
//!
//! 1. `listener` — each shard's SO_REUSEPORT socket; the kernel picks the shard, whose
//!    `shard_loops::accept_loop` accepts.
//! 2. `conn` — the connection: reads, parses the head and body (src/http, no I/O there),
//!    answers pipelined requests in order, enforces every timeout.
//! 3. `router` — the route table: path and method to an endpoint; `call` gives the endpoint
//!    its fields and authenticated caller.
//! 4. `endpoints/*` and `upload/` — one file (or folder) per endpoint family: a typed request
//!    is parsed and checked on the shard the connection is on...
//! 5. `owner` — ...and runs on the shard that owns the data (`shard::Shard::submit_to`, the
//!    one cross-shard call), with the hop's failures mapped onto the contract.
//! 6. There, the store (src/store) and, for uploads, recognition (src/recognition): the
//!    result comes back through `shard_loops::results_loop` into `upload::apply_result`.
//! 7. `reply` — the contract's envelope, back to `conn`.
//!
//! Around them: `shard` (one shard's state, composed of the tables in `state/`, which import
//! nothing of the server above them; and the one cross-shard call), `boot` (start-up and
//! shutdown), `shard_loops` (a shard's tasks), `storage` (a failed disk: writes refused with
//! 5004, the store reopened once the disk takes writes), `public_url` (the URL `/v2/servers`
//! announces when `listen` is every address), `attempts` (password checks and the
//! login backoff around them), `sessions` (what tokens and keys are checked against: each
//! user's existence, role and token epoch), `queries` (what several endpoint families ask of
//! a user's shard: a user by name, a balance, an upload, a report), `cache` (the answer
//! cache across shards), `node_hop` and `forwarded` (a request of another node's user, sent
//! there; one another node sent here), `console` (the web console's built-in files and
//! `/openapi.json`: a route family without an owner hop).
//!
//! No module here imports one that imports it back (tests/import_cycles.rs keeps it so):
//! `state/` is at the bottom, then `shard`, then what runs on a shard, the endpoints, the
//! router, the connections and the loops at the top.

mod attempts;
mod boot;
mod cache;
mod call;
pub mod compat;
mod conn;
mod console;
mod endpoints;
mod fields;
mod forward_acks;
mod forwarded;
#[doc(hidden)]
pub mod fuzzing;
mod listener;
mod node_hop;
mod owner;
mod public_url;
mod queries;
mod reply;
mod router;
mod sessions;
mod shard;
mod shard_loops;
mod state;
mod storage;
mod transport;
mod upload;

use crate::config::ConfigArgs;

/// Why an upload's reservation was given back when the server stopped (or crashed) before
/// its job ran.
const STOPPED_BEFORE_RECOGNITION: &str = "server stopped before recognition";

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The `aiocr serve` command: 0 after a clean stop, 1 when the server failed, 2 when the
/// configuration is refused.
pub fn run(args: ServeArgs) -> i32 {
    let config = match args.config.load(&[]) {
        Ok(config) => config,
        Err(message) => {
            log_line!("aiocr serve: {message}");
            return 2;
        }
    };
    // The certificate is part of the configuration: a missing or broken file is refused here.
    let tls = match config.network.tls_files() {
        Some((cert, key)) => match crate::tls::load_server_config(cert, key) {
            Ok(tls) => Some(tls),
            Err(message) => {
                log_line!("aiocr serve: {message}");
                return 2;
            }
        },
        None => None,
    };
    match boot::run_until_stopped(config, tls) {
        Ok(()) => 0,
        Err(message) => {
            log_line!("aiocr serve: {message}");
            1
        }
    }
}
