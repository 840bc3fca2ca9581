//! Where things live inside a shard's sled database.
//!
//! Fixed trees (keys are big-endian u64 ids unless said otherwise):
//! - `meta`: `id_high_water_ms` -> u64 (the id generator's persisted mark), `identity`
//!   (identity.rs), `storage_check` -> u64 (when the server last checked that writes work)
//! - `users`: user id -> `User`;  `usernames`: username bytes -> user id
//! - `balances`: user id -> `Balance`
//! - `journal`: entry id -> `JournalEntry` (append-only)
//! - `upload_days`: upload id -> day (u32 `YYYYMMDD`), the index to the day trees; a batch
//!   of cache hits: its first hit's id -> day + its last hit's id (u64), see [`DayIndex`]
//! - `pending`: upload id -> day, the uploads not finished yet
//! - `api_keys`: API key hash -> user id; `user_api_keys`: user id -> key hash + created at
//! - `user_uploads`: user id + upload id -> day, a user's uploads in age order (user_uploads.rs);
//!   a batch of cache hits: user id + its first id -> day + its last id, as in `upload_days`
//! - `user_status`: user id -> `UserStatus` (token epoch, removal; sessions.rs), absent until
//!   the user's first logout, password or role change, revocation or removal
//! - `task_days`: task id (task_ids.rs) -> day (u32 `YYYYMMDD`), the index to the day's
//!   `tasks-` tree; `meta` also holds the task counter's mark, `task_serial_high_water`
//! - `user_models`: user id + model name -> a model's record (models.rs)
//! - `awaiting_ack`: upload id -> the forwarded request whose charge it is, until the
//!   forwarding node acknowledges the answer or the charge is given back (awaiting_ack.rs)
//! - `model_usage`: model owner + created at + name -> this shard's users' uploads with the
//!   model and their wrong-answer reports (models.rs)
//!
//! Day trees: `uploads-YYYYMMDD` (upload id -> `UploadRecord`), `hits-YYYYMMDD` (first hit's
//! id -> `CacheHitBatch`, the uploads answered from the cache together), `stats-YYYYMMDD`
//! (`u` + user id, or `s` + soft_id bytes -> `DayCounters`) and `tasks-YYYYMMDD` (task id ->
//! upload id, u64, then the task's answer format as one byte when it is not 0: uploads.rs).
//! Dropping a day drops all four.

use super::day::DayNumber;
use super::ids::HighWaterStore;
use super::StoreError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const HIGH_WATER_KEY: &[u8] = b"id_high_water_ms";
/// Written by `Flusher::check`: the time of the check, in Unix milliseconds.
pub const STORAGE_CHECK_KEY: &[u8] = b"storage_check";
const UPLOADS_PREFIX: &str = "uploads-";
const STATS_PREFIX: &str = "stats-";
const HITS_PREFIX: &str = "hits-";
const TASKS_PREFIX: &str = "tasks-";
/// Name of the tree indexing each user's uploads (user_uploads.rs reads and writes it).
pub const USER_UPLOADS_TREE: &str = "user_uploads";

pub fn shard_dir(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard}"))
}

pub fn uploads_tree_name(day: DayNumber) -> String {
    format!("{UPLOADS_PREFIX}{day}")
}

pub fn stats_tree_name(day: DayNumber) -> String {
    format!("{STATS_PREFIX}{day}")
}

pub fn hits_tree_name(day: DayNumber) -> String {
    format!("{HITS_PREFIX}{day}")
}

pub fn tasks_tree_name(day: DayNumber) -> String {
    format!("{TASKS_PREFIX}{day}")
}

pub fn user_stats_key(user_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(b'u');
    key.extend_from_slice(&user_id.to_be_bytes());
    key
}

pub fn soft_stats_key(soft_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + soft_id.len());
    key.push(b's');
    key.extend_from_slice(soft_id.as_bytes());
    key
}

/// How long `open_db` retries a held lock. sled's background io threads may still hold the
/// database file for a moment after the last handle of this process is dropped (seen when a
/// process closes and reopens a shard); a lock held by another process stays held.
const LOCK_RETRY_MS: u64 = 1_000;
const LOCK_RETRY_STEP_MS: u64 = 10;

/// Creates `path` (and its parents) readable by its owner only, and makes an existing one
/// so: the ledger, password hashes and balances are nobody else's business.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Makes every file under `dir` readable by its owner only (sled creates its files with the
/// process's umask; directories made before this version were 0755 with 0644 files).
fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let mode = if kind.is_dir() { 0o700 } else { 0o600 };
        if kind.is_symlink() {
            continue;
        }
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        if kind.is_dir() {
            make_private(&entry.path())?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a private temporary file that is fsynced and then
/// renamed (`replace`) or hard-linked (fails if `path` exists) into place, then fsyncs the
/// directory: a crash leaves the old file or the new one, never half of one.
pub fn write_file_atomically(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("a file in a directory");
    let mut unique = [0u8; 8];
    getrandom::getrandom(&mut unique).map_err(std::io::Error::other)?;
    let name = path.file_name().expect("a file name").to_string_lossy();
    let temporary = dir.join(format!(".{name}.{:016x}.tmp", u64::from_le_bytes(unique)));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|_| file.sync_all()));
    let placed = written.and_then(|_| {
        if replace {
            std::fs::rename(&temporary, path)
        } else {
            std::fs::hard_link(&temporary, path)
        }
    });
    let _ = std::fs::remove_file(&temporary);
    placed?;
    std::fs::File::open(dir)?.sync_all()
}

/// Opens a shard's database; a lock still held after the retry period (a running server)
/// is `Locked`.
pub fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    create_private_dir(path)
        .map_err(|error| StoreError::Io(format!("creating {}: {error}", path.display())))?;
    make_private(path)
        .map_err(|error| StoreError::Io(format!("permissions in {}: {error}", path.display())))?;
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(super::cache_capacity());
    let mut waited_ms = 0;
    loop {
        match config.open() {
            Ok(db) => {
                // And what sled created just now (later files follow the process's umask,
                // which `aiocr` sets to 077).
                make_private(path).map_err(|error| {
                    StoreError::Io(format!("permissions in {}: {error}", path.display()))
                })?;
                return Ok(db);
            }
            // sled reports a held lock only as this io::Error text.
            Err(sled::Error::Io(ref io)) if io.to_string().contains("could not acquire lock") => {
                if waited_ms >= LOCK_RETRY_MS {
                    return Err(StoreError::Locked(path.to_path_buf()));
                }
                std::thread::sleep(std::time::Duration::from_millis(LOCK_RETRY_STEP_MS));
                waited_ms += LOCK_RETRY_STEP_MS;
            }
            Err(other) => return Err(StoreError::Db(other)),
        }
    }
}

pub struct Trees {
    pub meta: sled::Tree,
    pub users: sled::Tree,
    pub usernames: sled::Tree,
    pub balances: sled::Tree,
    pub journal: sled::Tree,
    pub upload_days: sled::Tree,
    pub pending: sled::Tree,
    pub api_keys: sled::Tree,
    pub user_api_keys: sled::Tree,
    pub user_uploads: sled::Tree,
    pub user_status: sled::Tree,
    pub task_days: sled::Tree,
    pub user_models: sled::Tree,
    pub awaiting_ack: sled::Tree,
    pub model_usage: sled::Tree,
}

impl Trees {
    pub fn open(db: &sled::Db) -> Result<Trees, StoreError> {
        Ok(Trees {
            meta: db.open_tree("meta")?,
            users: db.open_tree("users")?,
            usernames: db.open_tree("usernames")?,
            balances: db.open_tree("balances")?,
            journal: db.open_tree("journal")?,
            upload_days: db.open_tree("upload_days")?,
            pending: db.open_tree("pending")?,
            api_keys: db.open_tree("api_keys")?,
            user_api_keys: db.open_tree("user_api_keys")?,
            user_uploads: db.open_tree(USER_UPLOADS_TREE)?,
            user_status: db.open_tree("user_status")?,
            task_days: db.open_tree("task_days")?,
            user_models: db.open_tree("user_models")?,
            awaiting_ack: db.open_tree("awaiting_ack")?,
            model_usage: db.open_tree("model_usage")?,
        })
    }
}

/// The days that have an uploads, hits, stats or tasks tree.
pub fn existing_days(db: &sled::Db) -> BTreeSet<DayNumber> {
    db.tree_names()
        .iter()
        .filter_map(|name| std::str::from_utf8(name).ok())
        .filter_map(|name| {
            name.strip_prefix(UPLOADS_PREFIX)
                .or_else(|| name.strip_prefix(HITS_PREFIX))
                .or_else(|| name.strip_prefix(STATS_PREFIX))
                .or_else(|| name.strip_prefix(TASKS_PREFIX))
        })
        .filter_map(|day| day.parse().ok())
        .collect()
}

pub fn u64_key(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{}-byte id key", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

pub fn day_value(bytes: &[u8]) -> Result<DayNumber, StoreError> {
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{}-byte day value", bytes.len())))?;
    Ok(DayNumber::from_be_bytes(array))
}

/// What an index to the day trees (`upload_days`, `user_uploads`) names: one upload (the
/// value is its day), or a batch of cache hits from the key's id to `last_id` (the value is
/// the day and the last id). No other id of the shard lies inside a batch's span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayIndex {
    Upload(DayNumber),
    HitBatch { day: DayNumber, last_id: u64 },
}

impl DayIndex {
    pub fn parse(bytes: &[u8]) -> Result<DayIndex, StoreError> {
        match bytes.len() {
            4 => Ok(DayIndex::Upload(day_value(bytes)?)),
            12 => Ok(DayIndex::HitBatch {
                day: day_value(&bytes[..4])?,
                last_id: u64_key(&bytes[4..])?,
            }),
            other => Err(StoreError::Corrupt(format!("{other}-byte day index value"))),
        }
    }

    pub fn day(self) -> DayNumber {
        match self {
            DayIndex::Upload(day) | DayIndex::HitBatch { day, .. } => day,
        }
    }

    /// The value of a batch's index entries.
    pub fn batch_value(day: DayNumber, last_id: u64) -> [u8; 12] {
        let mut value = [0u8; 12];
        value[..4].copy_from_slice(&day.to_be_bytes());
        value[4..].copy_from_slice(&last_id.to_be_bytes());
        value
    }
}

/// The id generator's mark in the `meta` tree.
pub struct SledHighWater(pub sled::Tree);

impl HighWaterStore for SledHighWater {
    fn load(&self) -> Result<u64, StoreError> {
        match self.0.get(HIGH_WATER_KEY)? {
            Some(bytes) => u64_key(&bytes),
            None => Ok(0),
        }
    }

    fn save(&mut self, high_water_ms: u64) -> Result<(), StoreError> {
        self.0
            .insert(HIGH_WATER_KEY, &high_water_ms.to_be_bytes())?;
        Ok(())
    }
}
