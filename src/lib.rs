//! aiocr as a library: every concern in its own module. The `aiocr` binary (src/main.rs) only
//! parses the command line and dispatches; integration tests and benchmarks use these modules.
//!
//! # Map
//!
//! A request's path, in the order data flows:
//!
//! | step | module | what it does |
//! |---|---|---|
//! | 1 | [`server`] `listener`, `shard_loops` | one SO_REUSEPORT listener per shard core accepts (and one TLS listener) |
//! | 1b | [`server`] `transport`, [`tls`] | TLS connections: the handshake and the encrypted stream |
//! | 2 | [`server`] `conn`, [`http`] | reads and parses the request (no I/O in `http`), answers in order |
//! | 3 | [`server`] `router`, `call` | route table; fields; who the credential names ([`auth`], `sessions`): a caller here, or a user of another node |
//! | 3b | [`server`] `node_hop`, `forwarded`, [`cluster`] | another node's user: the request goes to that node over NATS; one forwarded here runs as if it had arrived here |
//! | 4 | [`server`] `endpoints/*`, `upload/`, `compat/` | one family per file (`compat/`: the captcha protocols): a typed request, parsed off the owner |
//! | 5 | [`server`] `owner`, `queries`, `shard` | the hop to the shard that owns the user's data; the queries several families share |
//! | 6 | [`store`], [`ratelimit`], [`login_backoff`], [`password_pool`] | on the owner: the user's ledger, uploads, stats; rate buckets; login backoffs; password hashing threads |
//! | 6b | [`server`] `cache` | the answer cache: an upload (or `POST /v2/decode/cached`) asks the shard owning the image's entry |
//! | 7 | [`recognition`], [`engine`] | uploads only: the bounded job queues, the recognition threads (or remote workers: [`cluster`]), the model |
//! | 8 | [`server`] `upload/finish`, `reply` | the result back on the owner: post or void, wake the waiter, run its finish hook (callbacks), answer |
//!
//! A shard's state is `server::shard::Shard`, composed of the tables in `server/state/`
//! (store slot, group commit, caches, waiters, connections), which import nothing of the
//! server above them.
//!
//! Beside the path: `server::console` (the web console's files and `/openapi.json`, built
//! into the binary from `web/console/` and `docs/openapi.json`), [`config`] (one
//! configuration of per-subsystem sections, parsed into types at load), [`contract`] (the
//! API's error codes and the mapping of every layer's errors onto them), [`tls`] (the
//! certificate files, read at start and on SIGHUP), [`metrics`], [`heap`] (the C allocator's
//! counts, and what loading the models freed given back), [`clock`] (the one wall clock),
//! [`money`] (points as the decimal amounts the captcha protocols show, and their bound),
//! [`json_numbers`] (integers every JSON reader reads exactly), [`log`] (the log and output
//! lines).
//!
//! Commands: `server::run` (`aiocr serve`), `cluster::worker` (`aiocr worker`), [`ocr_cmd`],
//! [`det_cmd`], [`slide_cmd`] (`aiocr ocr|det|slide`, sharing [`engine_cmd`] and their
//! benchmark loop [`bench_threads`]), [`admin_cmd`] (`aiocr user|points|ledger`),
//! [`model_cmd`] (`aiocr model add|list|remove`), [`doctor`]
//! (`aiocr doctor`).
//!
//! No module folder of the crate, the crate root included, has an import circle
//! (tests/import_cycles.rs).

// First: its macros (`log_line!`, `out_line!`) are used by the modules below.
#[macro_use]
pub mod log;

pub mod admin_cmd;
pub mod auth;
pub mod bench_threads;
pub mod click_cmd;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod contract;
pub mod det_cmd;
pub mod doctor;
pub mod engine;
pub mod engine_cmd;
pub mod heap;
pub mod http;
pub mod json_numbers;
pub mod login_backoff;
pub mod mcp;
pub mod metrics;
pub mod model_cmd;
pub mod money;
pub mod ocr_cmd;
pub mod password_pool;
pub mod ratelimit;
pub mod recognition;
pub mod server;
pub mod slide_cmd;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod tls;
