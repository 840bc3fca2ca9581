//! `verify_ledger`: replays every journal of every shard and compares with stored balances.

use super::layout::{self, u64_key};
use super::records::{decode, Balance, EntryKind, JournalEntry};
use super::{meta, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// One thing wrong in the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerProblem {
    pub shard: u16,
    pub user_id: u64,
    pub detail: String,
}

impl fmt::Display for LedgerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shard {} user {}: {}",
            self.shard, self.user_id, self.detail
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub shards_checked: u16,
    pub users_checked: u64,
    pub entries_replayed: u64,
    pub problems: Vec<LedgerProblem>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where one upload's reservation stands during the replay.
#[derive(Clone, Copy, PartialEq)]
enum UploadLedger {
    Reserved(i64),
    Posted(i64),
    Voided,
    Refunded,
}

/// Opens every shard of `data_dir` (refused with `Locked` while a server holds it), replays
/// each journal in id order and reports: balances that differ from the replay, balances
/// without a user or users without a balance, a replay that goes negative, and uploads whose
/// movements break reserve -> post|void -> (refund after post) or change amount.
pub fn verify_ledger(data_dir: &Path) -> Result<VerifyReport, StoreError> {
    let shard_count = meta::read_shard_count(data_dir)?.ok_or_else(|| {
        StoreError::InvalidConfig(format!(
            "{} has no meta.json: not an aiocr data directory",
            data_dir.display()
        ))
    })?;
    let mut report = VerifyReport::default();
    for shard in 0..shard_count {
        let db = layout::open_db(&layout::shard_dir(data_dir, shard))?;
        verify_shard(shard, &layout::Trees::open(&db)?, &mut report)?;
        report.shards_checked += 1;
    }
    Ok(report)
}

fn verify_shard(
    shard: u16,
    trees: &layout::Trees,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let mut replayed: BTreeMap<u64, Balance> = BTreeMap::new();
    let mut uploads: HashMap<u64, UploadLedger> = HashMap::new();
    for item in trees.journal.iter() {
        let (key, bytes) = item?;
        let entry: JournalEntry = decode(&bytes)?;
        let mut problem = |detail: String| {
            report.problems.push(LedgerProblem {
                shard,
                user_id: entry.user_id,
                detail,
            })
        };
        if u64_key(&key)? != entry.id {
            problem(format!(
                "journal key {} holds entry {}",
                u64_key(&key)?,
                entry.id
            ));
        }
        let balance = replayed.entry(entry.user_id).or_default();
        let (points_change, reserved_change) = entry.kind.effect(entry.delta);
        balance.points += points_change;
        balance.reserved += reserved_change;
        if balance.points < 0 || balance.reserved < 0 {
            problem(format!(
                "replay goes negative at entry {}: {balance:?}",
                entry.id
            ));
        }
        if let Some(detail) = check_upload_step(&mut uploads, &entry) {
            problem(detail);
        }
        report.entries_replayed += 1;
    }
    for item in trees.balances.iter() {
        let (key, bytes) = item?;
        let user_id = u64_key(&key)?;
        let stored: Balance = decode(&bytes)?;
        let expected = replayed.remove(&user_id).unwrap_or_default();
        let mut problem = |detail: String| {
            report.problems.push(LedgerProblem {
                shard,
                user_id,
                detail,
            })
        };
        if stored != expected {
            problem(format!(
                "stored {stored:?} but the journal replays to {expected:?}"
            ));
        }
        if !trees.users.contains_key(&key)? {
            problem("balance without a user".to_string());
        }
        report.users_checked += 1;
    }
    for (user_id, expected) in replayed {
        report.problems.push(LedgerProblem {
            shard,
            user_id,
            detail: format!("journal replays to {expected:?} but no balance is stored"),
        });
    }
    Ok(())
}

/// Checks one movement against the upload's history; `Some(problem)` when it does not fit.
fn check_upload_step(
    uploads: &mut HashMap<u64, UploadLedger>,
    entry: &JournalEntry,
) -> Option<String> {
    let upload_id = entry.upload_id;
    let state = uploads.get(&upload_id).copied();
    let (next, ok) = match (entry.kind, state) {
        (EntryKind::Grant | EntryKind::Adjust, _) => {
            return (upload_id != 0).then(|| format!("entry {} names upload {upload_id}", entry.id))
        }
        (EntryKind::Reserve, None) => (UploadLedger::Reserved(-entry.delta), entry.delta <= 0),
        (EntryKind::Post, Some(UploadLedger::Reserved(cost))) => {
            (UploadLedger::Posted(cost), entry.delta == -cost)
        }
        (EntryKind::Void, Some(UploadLedger::Reserved(cost))) => {
            (UploadLedger::Voided, entry.delta == cost)
        }
        (EntryKind::Refund, Some(UploadLedger::Posted(cost))) => {
            (UploadLedger::Refunded, entry.delta == cost)
        }
        (kind, _) => {
            return Some(format!(
                "entry {}: {kind:?} of upload {upload_id} out of order",
                entry.id
            ))
        }
    };
    uploads.insert(upload_id, next);
    (!ok).then(|| {
        format!(
            "entry {}: {:?} of upload {upload_id} has amount {}",
            entry.id, entry.kind, entry.delta
        )
    })
}
