//! Each shard directory knows which shard of which data directory it is, and the data
//! directory knows how far each shard's ledger was seen to reach. So a shard directory that
//! is missing, recreated empty, swapped with another, copied from another data directory, or
//! rolled back to an older state (a lost file, a restored backup) is refused at start with a
//! message saying what is wrong, and reported by `aiocr ledger verify`, instead of being
//! opened as if nothing happened (users who could no longer log in, points gone).
//!
//! - Identity: `{data_dir_id, shard, shard_count}` in the shard database's `meta` tree,
//!   written when the shard is created.
//! - Extent: `<data>/shard-<n>.extent`, outside the shard directory: the id of the last
//!   journal entry known to be on disk. It is written after a flush, at most once per
//!   `EXTENT_INTERVAL` while the server runs (by a thread of its own, so its fsync, ~1-20 ms
//!   on a busy disk, never delays a group commit), and after the last flush at start and
//!   stop, so it never claims more than the disk holds. The journal only grows, so a journal that
//!   ends before its extent lost entries. Its existence also records that the shard was
//!   created: a shard directory that is missing while its extent file exists was deleted.

use super::layout::{self, u64_key};
use super::meta::DataDirMeta;
use super::StoreError;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const IDENTITY_KEY: &[u8] = b"identity";
/// How often a running server records a shard's extent (each time costs a small file write,
/// an fsync and a rename, on the blocking pool after a group commit).
pub const EXTENT_INTERVAL: Duration = Duration::from_secs(1);

/// Which shard of which data directory a shard directory is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardIdentity {
    pub data_dir_id: String,
    pub shard: u16,
    pub shard_count: u16,
}

/// How far a shard's journal was seen to reach.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Extent {
    data_dir_id: String,
    shard: u16,
    /// The id of the last journal entry on disk when it was written (0: none yet).
    journal_last_id: u64,
    written_at_ms: u64,
}

pub fn extent_path(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard}.extent"))
}

impl ShardIdentity {
    pub fn of(meta: &DataDirMeta, shard: u16) -> ShardIdentity {
        assert!(shard < meta.shard_count);
        ShardIdentity {
            data_dir_id: meta.data_dir_id.clone(),
            shard,
            shard_count: meta.shard_count,
        }
    }
}

/// Before opening shard `shard`: its directory must exist if the data directory recorded
/// it. `Ok(true)` when the shard was created before (its extent file exists).
pub fn check_before_open(data_dir: &Path, shard: u16) -> Result<bool, StoreError> {
    let known = extent_path(data_dir, shard).exists();
    if known && !layout::shard_dir(data_dir, shard).join("db").exists() {
        return Err(StoreError::Damaged(format!(
            "{} is missing (or empty) but {} records that it existed: restore it from a backup; \
             starting with an empty shard would lose its users and their points",
            layout::shard_dir(data_dir, shard).display(),
            extent_path(data_dir, shard).display()
        )));
    }
    Ok(known)
}

/// After opening: the database must be the shard it should be, with its whole ledger. A
/// shard never created before (`known == false`) is given its identity and extent now.
pub fn check_after_open(
    data_dir: &Path,
    expected: &ShardIdentity,
    trees: &layout::Trees,
    known: bool,
) -> Result<(), StoreError> {
    inspect(data_dir, expected, trees, known)?;
    match (read_identity(trees)?, known) {
        (Some(_), true) => Ok(()),
        // Created by this version but its extent file is gone: rewrite it from the database.
        (Some(_), false) => record_extent(data_dir, expected, journal_last_id(trees)?),
        // A new shard, or one made before identities existed: claim it.
        (None, _) => {
            assert!(
                !known,
                "inspect refuses an unidentified shard that was known"
            );
            let bytes = serde_json::to_vec(expected).expect("identity serializes");
            trees.meta.insert(IDENTITY_KEY, bytes)?;
            trees.meta.flush()?;
            record_extent(data_dir, expected, journal_last_id(trees)?)
        }
    }
}

/// Read-only: `Err(Damaged)` when the opened database is not the shard it should be or lost
/// part of its ledger (what `aiocr ledger verify` reports).
pub fn inspect(
    data_dir: &Path,
    expected: &ShardIdentity,
    trees: &layout::Trees,
    known: bool,
) -> Result<(), StoreError> {
    match (read_identity(trees)?, known) {
        (Some(stored), _) if stored != *expected => Err(misplaced(data_dir, expected, &stored)),
        (Some(_), true) => check_extent(data_dir, expected, trees),
        (Some(_), false) => Ok(()),
        (None, true) => Err(StoreError::Damaged(format!(
            "{} has no identity but {} records that shard {} existed: it was recreated or \
             replaced; restore it from a backup",
            layout::shard_dir(data_dir, expected.shard).display(),
            extent_path(data_dir, expected.shard).display(),
            expected.shard
        ))),
        (None, false) => Ok(()),
    }
}

fn misplaced(data_dir: &Path, expected: &ShardIdentity, stored: &ShardIdentity) -> StoreError {
    let dir = layout::shard_dir(data_dir, expected.shard);
    let what = if stored.data_dir_id != expected.data_dir_id {
        format!(
            "belongs to another data directory (id {})",
            stored.data_dir_id
        )
    } else {
        format!("holds shard {} of this data directory", stored.shard)
    };
    StoreError::Damaged(format!(
        "{} {what}, not shard {}: shard directories were moved or swapped; put each back",
        dir.display(),
        expected.shard
    ))
}

pub fn read_identity(trees: &layout::Trees) -> Result<Option<ShardIdentity>, StoreError> {
    match trees.meta.get(IDENTITY_KEY)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::Corrupt(format!("shard identity: {error}"))),
        None => Ok(None),
    }
}

/// The id of the journal's last entry (0 when empty).
pub fn journal_last_id(trees: &layout::Trees) -> Result<u64, StoreError> {
    match trees.journal.last()? {
        Some((key, _)) => u64_key(&key),
        None => Ok(0),
    }
}

/// The journal must reach at least as far as its extent says.
pub fn check_extent(
    data_dir: &Path,
    expected: &ShardIdentity,
    trees: &layout::Trees,
) -> Result<(), StoreError> {
    let extent = read_extent(data_dir, expected.shard)?;
    if extent.data_dir_id != expected.data_dir_id || extent.shard != expected.shard {
        return Err(StoreError::Damaged(format!(
            "{} is the extent of shard {} of data directory {}, not of this one",
            extent_path(data_dir, expected.shard).display(),
            extent.shard,
            extent.data_dir_id
        )));
    }
    let last = journal_last_id(trees)?;
    if last < extent.journal_last_id {
        return Err(StoreError::Damaged(format!(
            "the ledger of {} ends at journal entry {last}, but entry {} was on disk before: \
             files were lost or an older copy was restored; restore the shard from a backup \
             (aiocr ledger verify reports what is there)",
            layout::shard_dir(data_dir, expected.shard).display(),
            extent.journal_last_id
        )));
    }
    Ok(())
}

fn read_extent(data_dir: &Path, shard: u16) -> Result<Extent, StoreError> {
    let path = extent_path(data_dir, shard);
    let bytes = std::fs::read(&path)
        .map_err(|error| StoreError::Io(format!("reading {}: {error}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| StoreError::Corrupt(format!("{}: {error}", path.display())))
}

/// Writes the shard's extent (atomically, fsynced).
pub fn record_extent(
    data_dir: &Path,
    identity: &ShardIdentity,
    journal_last_id: u64,
) -> Result<(), StoreError> {
    let extent = Extent {
        data_dir_id: identity.data_dir_id.clone(),
        shard: identity.shard,
        journal_last_id,
        written_at_ms: crate::clock::unix_now_ms(),
    };
    let bytes = serde_json::to_vec_pretty(&extent).expect("extent serializes");
    let path = extent_path(data_dir, identity.shard);
    layout::write_file_atomically(&path, &bytes, true)
        .map_err(|error| StoreError::Io(format!("writing {}: {error}", path.display())))
}

/// Records a shard's extent after flushes, at most once per `EXTENT_INTERVAL` (the
/// `Flusher` holds one; it runs on the blocking pool).
pub struct ExtentRecorder {
    data_dir: PathBuf,
    identity: ShardIdentity,
    journal: sled::Tree,
    last_recorded: Mutex<Option<Instant>>,
    /// The writer thread's inbox (started on the first periodic record; it ends when the
    /// recorder is dropped). Capacity 1: an extent waiting to be written is replaced by
    /// nothing newer, the next one comes a second later.
    writer: Mutex<Option<crossbeam_channel::Sender<u64>>>,
}

impl ExtentRecorder {
    pub fn new(data_dir: &Path, identity: ShardIdentity, journal: sled::Tree) -> ExtentRecorder {
        ExtentRecorder {
            data_dir: data_dir.to_path_buf(),
            identity,
            journal,
            last_recorded: Mutex::new(None),
            writer: Mutex::new(None),
        }
    }

    /// Hands `journal_last_id` to the writer thread (started on first use).
    fn record_in_background(&self, journal_last_id: u64) -> Result<(), StoreError> {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if writer.is_none() {
            let (sender, receiver) = crossbeam_channel::bounded::<u64>(1);
            let (data_dir, identity) = (self.data_dir.clone(), self.identity.clone());
            std::thread::Builder::new()
                .name(format!("aiocr-extent-{}", identity.shard))
                .spawn(move || {
                    for journal_last_id in receiver {
                        if let Err(error) = record_extent(&data_dir, &identity, journal_last_id) {
                            log_line!("aiocr: recording a shard's extent: {error}");
                        }
                    }
                })
                .map_err(|error| StoreError::Io(format!("extent thread: {error}")))?;
            *writer = Some(sender);
        }
        let sender = writer.as_ref().expect("started above");
        let _ = sender.try_send(journal_last_id); // full: one is being written
        Ok(())
    }

    /// The journal's last id now: read before a flush, it is covered by that flush.
    pub fn journal_last_id(&self) -> Result<u64, StoreError> {
        match self.journal.last()? {
            Some((key, _)) => u64_key(&key),
            None => Ok(0),
        }
    }

    /// After a successful flush that covers `journal_last_id`: records it when due (or
    /// always, with `force`).
    pub fn after_flush(&self, journal_last_id: u64, force: bool) -> Result<(), StoreError> {
        let mut last = self
            .last_recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= EXTENT_INTERVAL);
        if !(force || due) {
            return Ok(());
        }
        *last = Some(Instant::now());
        if force {
            record_extent(&self.data_dir, &self.identity, journal_last_id)
        } else {
            self.record_in_background(journal_last_id)
        }
    }
}
