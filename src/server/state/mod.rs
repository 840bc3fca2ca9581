//! The tables one shard keeps, each behind its own small API: they import nothing of the
//! server above them (server/shard.rs composes them into a `Shard`; the endpoints and loops
//! use them through it).
//!
//! - `store_slot.rs` — the shard's store, open or closed while its disk has failed;
//! - `commit.rs` — the group commit: a 200 means the writes are on disk (`stop.rs`: the
//!   shard's stop signal it waits on);
//! - `user_cache.rs` — the users' states read to check tokens and keys;
//! - `waiters.rs`, `finish_hooks.rs` — what waits for an upload to finish (`wait=1`
//!   requests, callbacks), both bounded;
//! - `answer_cache.rs` — this shard's part of the answer cache;
//! - `connections.rs`, `body_budget.rs` — the open connections per client address (with
//!   `read_watch.rs`: each one's read deadline, which the shard sweeps), and the request body
//!   bytes being received;
//! - `model_catalog.rs` — the node's custom models (shared by its shards): every user's
//!   model records, what a model name means for a user, the models' files.

mod answer_cache;
mod body_budget;
mod commit;
mod connections;
mod finish_hooks;
mod model_catalog;
mod read_watch;
mod stop;
mod store_slot;
mod user_cache;
mod waiters;

pub use answer_cache::{CacheLimits, CacheStore};
pub use body_budget::{BodyBudget, BodyGrant};
pub use commit::{GroupCommit, HitsNotRecorded};
pub use connections::{ConnectionRefused, ConnectionSet, Registration};
pub use finish_hooks::FinishHooks;
pub use model_catalog::{CatalogEntry, FilesPin, ModelCatalog};
pub use read_watch::{sweep_interval, ReadWatch};
pub use stop::StopSignal;
pub use store_slot::{Held, StoreSlot};
pub use user_cache::{UserCache, UserState};
pub use waiters::{Finished, ResultWaiters, Waiter};
