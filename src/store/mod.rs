//! The state of one shard: users, balances, the append-only journal of every points movement,
//! uploads in per-day trees, per-day stats. One sled database per shard at `<data>/shard-<n>/`;
//! records are rkyv archives under big-endian id keys (so sled iterates in id order).
//!
//! Everything here is synchronous and owned by the shard's thread (`&mut self` for writes).
//! Writes are not fsynced: [`Flusher::flush`] does that for everything written before it starts
//! (group commit, run off the reactor by the server).
//!
//! Choices the contract leaves open (kept here so callers can rely on them):
//! - `Balance::points` is the spendable balance; `Balance::reserved` is held by pending uploads.
//!   An upload's cost moves points -> reserved at acceptance; posting removes it from reserved
//!   (spent); voiding moves it back to points; a report refunds it to points.
//! - A developer's `soft_id` is the developer's own user id in decimal.
//! - The report window counts from the upload's `finished_at_ms`.
//! - Stats are counted on the UTC day the upload was accepted (its day tree), also when it
//!   finishes or is reported later. `points_spent` is net: posted costs minus refunds.
//! - Retention: `drop_expired(now, N)` keeps today and the N days before it; an upload still
//!   pending in a dropped day is voided first. The journal is never dropped (it is the ledger).

mod api_keys;
mod awaiting_ack;
mod balance_memo;
mod cache_hits;
pub mod day;
mod directory;
pub mod identity;
pub mod ids;
mod journal;
mod layout;
mod meta;
mod models;
mod records;
mod reopen;
mod sessions;
mod stats;
pub mod task_ids;
mod uploads;
mod user_uploads;
mod users;
mod verify;
pub mod withdrawals;

pub use awaiting_ack::AwaitingAck;
pub use cache_hits::{CachedUpload, HitRequest, HitsRecorded};
pub use directory::{UserSummary, MAX_PAGE as MAX_USERS_PAGE};
pub use user_uploads::MAX_PAGE as MAX_UPLOADS_PAGE;
pub use users::check_username;

use identity::{ExtentRecorder, ShardIdentity};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

// The public surface of the state layer.
pub use meta::read_shard_count as meta_shard_count;
pub use models::{ModelRecord, ModelUse};
pub use records::{
    Balance, DayCounters, EntryKind, JournalEntry, Role, UploadRecord, UploadStatus, User,
    UserStatus,
};
pub use reopen::ClosedShard;
pub use sessions::TokenState;
pub use verify::{verify_ledger, LedgerProblem, VerifyReport};

use day::DayNumber;
use ids::IdGenerator;
use layout::Trees;
use task_ids::TaskSerials;

/// Longest username accepted, in bytes.
pub const MAX_USERNAME_BYTES: usize = 64;
/// Longest admin reason kept in the journal, in bytes.
pub const MAX_REASON_BYTES: usize = 256;
/// Longest soft_id, result text or error text kept with an upload, in bytes.
pub const MAX_UPLOAD_TEXT_BYTES: usize = 256;
/// sled page cache per shard by default (sled's default of 1 GiB is too much for many
/// shards): `store_cache_mb`.
pub const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// The page cache of every shard database this process opens from now on (`store_cache_mb`,
/// set once at the server's start, before its shards open; tools keep the default). The
/// cache holds recently written and read records: a node's memory grows with its ledger
/// until every shard's cache is full, then stays.
static CACHE_CAPACITY: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(CACHE_CAPACITY_BYTES);

pub fn set_cache_capacity(bytes: u64) {
    assert!(bytes > 0, "a page cache of some size");
    CACHE_CAPACITY.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

fn cache_capacity() -> u64 {
    CACHE_CAPACITY.load(std::sync::atomic::Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Contract 2001: nothing was written.
    #[error("not enough points")]
    InsufficientPoints,
    #[error("username already exists")]
    UserExists,
    #[error("no such user")]
    UserNotFound,
    /// Contract 4001.
    #[error("no such upload")]
    NotFound,
    /// Contract 4002: pending, failed, or already reported.
    #[error("upload not reportable (pending, failed or already reported)")]
    NotReportable,
    /// Contract 4003.
    #[error("report window closed")]
    WindowClosed,
    /// Bad argument from the caller (contract 1001 when it comes from a request).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error(
        "data directory {data_dir} holds {recorded} shard(s); it cannot be opened with {requested}"
    )]
    ShardCountMismatch {
        data_dir: PathBuf,
        recorded: u16,
        requested: u16,
    },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The data directory is not what it was: a shard missing, recreated, misplaced or rolled
    /// back (identity.rs says which); the start is refused.
    #[error("damaged data directory: {0}")]
    Damaged(String),
    /// The shard issued its last task id (`task_ids.rs`): no new task of the JSON task
    /// protocol there (contract 9999); everything else goes on.
    #[error("shard {0} has issued every task id it has (2^43 - 1)")]
    TaskIdsExhausted(u16),
    /// Another process (a running server?) holds the shard's database.
    #[error("{0} is in use by another process (stop the server first)")]
    Locked(PathBuf),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Db(sled::Error),
    /// File-system or durability failure (also used by the server for a failed group commit).
    #[error("I/O: {0}")]
    Io(String),
    /// The shard does not write right now: its storage failed and has not recovered yet
    /// (the server's storage loop, `server/storage.rs`). Nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether this is the disk failing (full, or an I/O error) rather than a refusal, damage
    /// or a bug: the server then checks its storage (contract 5004 until it recovers).
    /// `Unavailable` is not: it is the consequence of a failure already known.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, StoreError::Io(_) | StoreError::Db(sled::Error::Io(_)))
    }
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Db(error)
    }
}

/// What `accept_upload` needs to know about a new upload.
#[derive(Clone, Debug)]
pub struct NewUpload {
    /// Points reserved now; must be >= 0.
    pub cost: i64,
    pub model: String,
    pub soft_id: Option<String>,
    /// Hash of the image bytes (the server keeps the first 16 bytes of BLAKE3), for audits.
    pub image_hash: [u8; 16],
    /// Acceptance time in Unix milliseconds; decides the upload's day.
    pub now_ms: u64,
}

/// How a recognition ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Posts the reservation.
    Done {
        text: String,
        confidence: f32,
        cache_hit: bool,
    },
    /// Voids the reservation (the points go back).
    Failed { reason: String },
}

/// One day's counters for a user or a soft_id, as the contract shows them.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DayStats {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    #[serde(flatten)]
    pub counters: DayCounters,
}

/// One shard's state. Not `Sync`: it belongs to its shard's thread.
pub struct ShardStore {
    shard: u16,
    shard_count: u16,
    /// Where it was opened from, and with which node id (what reopening it needs).
    data_dir: PathBuf,
    node_id: u16,
    db: sled::Db,
    trees: Trees,
    ids: IdGenerator,
    /// The JSON task protocol's task ids of this shard.
    task_serials: TaskSerials,
    /// Days that have upload/stats trees (loaded at open, kept current by the writers), so
    /// readers never create empty trees.
    days: BTreeSet<DayNumber>,
    /// Records how far the journal reached after flushes (identity.rs).
    extents: Arc<ExtentRecorder>,
    /// Balances read since their last movement (balance_memo.rs).
    balance_memo: balance_memo::BalanceMemo,
}

/// Makes everything written before `flush` starts durable. Cheap to clone, `Send + Sync`:
/// the server calls it on a blocking thread.
#[derive(Clone)]
pub struct Flusher {
    db: sled::Db,
    /// The `meta` tree, where `check` writes.
    meta: sled::Tree,
    extents: Arc<ExtentRecorder>,
}

impl Flusher {
    /// Writes sled's buffers and fsyncs them (blocks for the fsync, typically milliseconds),
    /// then records the journal's extent when it is due (identity.rs).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_recording(false)
    }

    /// Writes a small record (`layout::STORAGE_CHECK_KEY`), then flushes: `Ok` means the
    /// database takes writes and makes them durable. A plain flush does not tell: after an
    /// I/O error sled refuses every write, but a flush with nothing new to write succeeds.
    pub fn check(&self) -> Result<(), StoreError> {
        let now_ms = crate::clock::unix_now_ms();
        self.meta
            .insert(layout::STORAGE_CHECK_KEY, &now_ms.to_be_bytes())?;
        self.flush()
    }

    /// `flush`, always recording the extent (at start and at stop).
    pub fn flush_and_record(&self) -> Result<(), StoreError> {
        self.flush_recording(true)
    }

    fn flush_recording(&self, force: bool) -> Result<(), StoreError> {
        // Read before the flush, so the flush covers it.
        let journal_last_id = self.extents.journal_last_id()?;
        self.db
            .flush()
            .map_err(|error| StoreError::Io(error.to_string()))?;
        if let Err(error) = self.extents.after_flush(journal_last_id, force) {
            // The extent only lags behind (weaker damage detection), nothing is lost.
            log_line!("aiocr: recording a shard's extent: {error}");
        }
        Ok(())
    }
}

impl ShardStore {
    /// Opens (creating on first use) shard `shard` of `data_dir`. The first open of a data
    /// directory records `shard_count` in `<data>/meta.json`; another count later is
    /// `ShardCountMismatch`. Another process holding the shard gives `Locked`.
    pub fn open(
        data_dir: &Path,
        shard: u16,
        shard_count: u16,
        node_id: u16,
    ) -> Result<ShardStore, StoreError> {
        Self::open_with_clock(
            data_dir,
            shard,
            shard_count,
            node_id,
            Box::new(crate::clock::unix_now_ms),
        )
    }

    /// `open` with an injected wall clock for the id generator (tests).
    pub fn open_with_clock(
        data_dir: &Path,
        shard: u16,
        shard_count: u16,
        node_id: u16,
        clock: ids::Clock,
    ) -> Result<ShardStore, StoreError> {
        if shard_count == 0 || shard_count > ids::MAX_SHARDS {
            return Err(StoreError::InvalidConfig(format!(
                "shard count {shard_count} not in 1..={}",
                ids::MAX_SHARDS
            )));
        }
        if shard >= shard_count {
            return Err(StoreError::InvalidConfig(format!(
                "shard {shard} not below shard count {shard_count}"
            )));
        }
        let meta = meta::ensure(data_dir, shard_count)?;
        let identity = ShardIdentity::of(&meta, shard);
        let known = identity::check_before_open(data_dir, shard)?;
        let db = layout::open_db(&layout::shard_dir(data_dir, shard))?;
        let indexed = db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == layout::USER_UPLOADS_TREE.as_bytes());
        let trees = Trees::open(&db)?;
        identity::check_after_open(data_dir, &identity, &trees, known)?;
        let extents = Arc::new(ExtentRecorder::new(
            data_dir,
            identity,
            trees.journal.clone(),
        ));
        let ids = IdGenerator::new(
            node_id,
            shard,
            clock,
            Box::new(layout::SledHighWater(trees.meta.clone())),
        )?;
        let task_serials = TaskSerials::open(node_id, shard, trees.meta.clone())?;
        let days = layout::existing_days(&db);
        user_uploads::build_if_new(&db, &trees.user_uploads, indexed, &days)?;
        Ok(ShardStore {
            shard,
            shard_count,
            data_dir: data_dir.to_path_buf(),
            node_id,
            db,
            trees,
            ids,
            task_serials,
            days,
            extents,
            balance_memo: balance_memo::BalanceMemo::default(),
        })
    }

    pub fn shard(&self) -> u16 {
        self.shard
    }

    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    /// A fresh snowflake id of this shard (fails only if the id high-water mark cannot be written).
    pub fn next_id(&mut self) -> Result<u64, StoreError> {
        self.ids.next_id()
    }

    /// The handle the server's flush task uses.
    pub fn flusher(&self) -> Flusher {
        Flusher {
            db: self.db.clone(),
            meta: self.trees.meta.clone(),
            extents: self.extents.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
