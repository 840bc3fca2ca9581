//! `verify_ledger`: replays every journal of every shard and compares with stored balances.

use super::identity::{self, ShardIdentity};
use super::layout::{self, u64_key};
use super::records::{
    decode, Balance, CacheHitBatch, EntryKind, JournalEntry, UploadRecord, UploadStatus,
};
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
#[derive(Clone, Copy, Debug, PartialEq)]
enum UploadLedger {
    Reserved(i64),
    Posted(i64),
    Voided(i64),
    Refunded(i64),
    /// A batch of cache hits: what its `Charge` took, and what refunds of its hits gave back.
    Charged {
        charged: i64,
        refunded: i64,
    },
}

/// Opens every shard of `data_dir` (refused with `Locked` while a server holds it), replays
/// each journal in id order and reports: balances that differ from the replay, balances
/// without a user or users without a balance, a replay that goes negative, and uploads whose
/// movements break reserve -> post|void -> (refund after post) or change amount, and upload
/// records (or the pending index) that disagree with the journal, and batches of cache hits
/// whose `Charge` and refunds do not add up to their hits.
pub fn verify_ledger(data_dir: &Path) -> Result<VerifyReport, StoreError> {
    let meta = meta::read(data_dir)?.ok_or_else(|| {
        StoreError::InvalidConfig(format!(
            "{} has no meta.json: not an aiocr data directory",
            data_dir.display()
        ))
    })?;
    let mut report = VerifyReport::default();
    for shard in 0..meta.shard_count {
        let damaged = |report: &mut VerifyReport, error: StoreError| {
            report.problems.push(LedgerProblem {
                shard,
                user_id: 0,
                detail: error.to_string(),
            })
        };
        let known = match identity::check_before_open(data_dir, shard) {
            Ok(known) => known,
            Err(error) => {
                damaged(&mut report, error);
                continue;
            }
        };
        if !known && !layout::shard_dir(data_dir, shard).exists() {
            continue; // never created (e.g. `aiocr user add` made only its user's shard)
        }
        let db = layout::open_db(&layout::shard_dir(data_dir, shard))?;
        let trees = layout::Trees::open(&db)?;
        if !meta.data_dir_id.is_empty() {
            let expected = ShardIdentity::of(&meta, shard);
            if let Err(error) = identity::inspect(data_dir, &expected, &trees, known) {
                damaged(&mut report, error);
            }
        }
        let uploads = verify_shard(shard, &trees, &mut report)?;
        verify_awaiting_acks(shard, &trees, &uploads, &mut report)?;
        verify_upload_records(shard, &db, &trees, uploads, &mut report)?;
        report.shards_checked += 1;
    }
    Ok(report)
}

/// Replays the journal against the balances; returns where each upload's points stand.
fn verify_shard(
    shard: u16,
    trees: &layout::Trees,
    report: &mut VerifyReport,
) -> Result<HashMap<u64, (UploadLedger, u64)>, StoreError> {
    let mut replayed: BTreeMap<u64, Balance> = BTreeMap::new();
    let mut uploads: HashMap<u64, (UploadLedger, u64)> = HashMap::new();
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
        balance.points = balance.points.saturating_add(points_change);
        balance.reserved = balance.reserved.saturating_add(reserved_change);
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
    Ok(uploads)
}

/// Checks one movement against the upload's history; `Some(problem)` when it does not fit.
fn check_upload_step(
    uploads: &mut HashMap<u64, (UploadLedger, u64)>,
    entry: &JournalEntry,
) -> Option<String> {
    let upload_id = entry.upload_id;
    let state = uploads.get(&upload_id).copied();
    if let Some((_, owner)) = state {
        if owner != entry.user_id {
            return Some(format!(
                "entry {} moves upload {upload_id} of user {owner}",
                entry.id
            ));
        }
    }
    let (next, amount_ok) = match (entry.kind, state.map(|(ledger, _)| ledger)) {
        (EntryKind::Grant | EntryKind::Adjust, _) => {
            return (upload_id != 0).then(|| format!("entry {} names upload {upload_id}", entry.id))
        }
        (EntryKind::Reserve, None) => (
            UploadLedger::Reserved(entry.delta.saturating_neg()),
            entry.delta <= 0,
        ),
        (EntryKind::Post, Some(UploadLedger::Reserved(cost))) => {
            (UploadLedger::Posted(cost), entry.delta == -cost)
        }
        (EntryKind::Void, Some(UploadLedger::Reserved(cost))) => {
            (UploadLedger::Voided(cost), entry.delta == cost)
        }
        (EntryKind::Refund, Some(UploadLedger::Posted(cost))) => {
            (UploadLedger::Refunded(cost), entry.delta == cost)
        }
        (EntryKind::Charge, None) => (
            UploadLedger::Charged {
                charged: entry.delta.saturating_neg(),
                refunded: 0,
            },
            entry.delta <= 0,
        ),
        // One refund per reported hit, never more than the batch was charged.
        (EntryKind::Refund, Some(UploadLedger::Charged { charged, refunded })) => {
            let refunded = refunded.saturating_add(entry.delta);
            (
                UploadLedger::Charged { charged, refunded },
                refunded <= charged,
            )
        }
        (kind, _) => {
            return Some(format!(
                "entry {}: {kind:?} of upload {upload_id} out of order",
                entry.id
            ))
        }
    };
    uploads.insert(upload_id, (next, entry.user_id));
    (!amount_ok).then(|| {
        format!(
            "entry {}: {:?} of upload {upload_id} has amount {}",
            entry.id, entry.kind, entry.delta
        )
    })
}

/// Every forwarded charge awaiting its acknowledgement (awaiting_ack.rs) must be a charge
/// the journal has: a marker is written after its charge and removed after its give-back,
/// and sled recovers a prefix of its log. (That a charge is given back at most once is the
/// replay's rule for every upload: a second void or refund is a problem there.)
fn verify_awaiting_acks(
    shard: u16,
    trees: &layout::Trees,
    journal_uploads: &HashMap<u64, (UploadLedger, u64)>,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    for item in trees.awaiting_ack.iter() {
        let (key, value) = item?;
        let upload_id = u64_key(&key)?;
        super::AwaitingAck::decode(&value)?;
        // A cache hit of a batch is charged under the batch's first id (its index entry).
        let charged_as = match trees.upload_days.range(..=key).next_back() {
            Some(Ok((first, index))) => match layout::DayIndex::parse(&index)? {
                layout::DayIndex::HitBatch { last_id, .. } if upload_id <= last_id => {
                    u64_key(&first)?
                }
                _ => upload_id,
            },
            _ => upload_id,
        };
        if !journal_uploads.contains_key(&charged_as) {
            report.problems.push(LedgerProblem {
                shard,
                user_id: 0,
                detail: format!(
                    "upload {upload_id} awaits a forwarded request's acknowledgement but the \
                     journal has no charge for it"
                ),
            });
        }
    }
    Ok(())
}

/// Every upload record still kept (its day not dropped) must agree with the journal
/// (pending = reserved, done = posted or refunded when reported, failed = voided, same cost
/// and user); the `pending` index must list exactly the reserved uploads. An upload reserved
/// in the journal without a record holds points nobody can release.
fn verify_upload_records(
    shard: u16,
    db: &sled::Db,
    trees: &layout::Trees,
    mut journal_uploads: HashMap<u64, (UploadLedger, u64)>,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let mut problem = |user_id: u64, detail: String| {
        report.problems.push(LedgerProblem {
            shard,
            user_id,
            detail,
        })
    };
    for day_number in layout::existing_days(db) {
        let day_tree = db.open_tree(layout::uploads_tree_name(day_number))?;
        for item in day_tree.iter() {
            let (_, bytes) = item?;
            let record: UploadRecord = decode(&bytes)?;
            let in_journal = journal_uploads.remove(&record.id);
            if let Some(detail) = record_disagreement(&record, in_journal) {
                problem(record.user_id, format!("upload {}: {detail}", record.id));
            }
            let indexed_pending = trees.pending.contains_key(record.id.to_be_bytes())?;
            if indexed_pending != (record.status == UploadStatus::Pending) {
                problem(
                    record.user_id,
                    format!("upload {}: pending index says {indexed_pending}", record.id),
                );
            }
        }
        let hits_name = layout::hits_tree_name(day_number);
        if !db
            .tree_names()
            .iter()
            .any(|name| name == hits_name.as_bytes())
        {
            continue; // not created: opening it would write to what is being verified
        }
        for item in db.open_tree(hits_name)?.iter() {
            let (_, bytes) = item?;
            let batch = CacheHitBatch::decode(&bytes)?;
            let in_journal = journal_uploads.remove(&batch.id());
            if let Some(detail) = batch_disagreement(&batch, in_journal) {
                problem(
                    batch.user_id,
                    format!("cache hits {}: {detail}", batch.id()),
                );
            }
        }
    }
    for (upload_id, (ledger, user_id)) in journal_uploads {
        if let UploadLedger::Reserved(cost) = ledger {
            problem(
                user_id,
                format!("upload {upload_id} holds {cost} reserved but has no record"),
            );
        }
    }
    Ok(())
}

/// A batch of cache hits must be charged its hits' costs and refunded the reported ones'.
fn batch_disagreement(
    batch: &CacheHitBatch,
    in_journal: Option<(UploadLedger, u64)>,
) -> Option<String> {
    let ledger = match journal_of(batch.user_id, in_journal) {
        Ok(ledger) => ledger,
        Err(detail) => return Some(detail),
    };
    let (charged, refunded) = batch.charged_and_refunded();
    let expected = UploadLedger::Charged { charged, refunded };
    (ledger != expected)
        .then(|| format!("the hits add up to {expected:?} but the journal says {ledger:?}"))
}

/// Where the journal left a record's points, if the journal has it for the same user.
fn journal_of(
    record_user_id: u64,
    in_journal: Option<(UploadLedger, u64)>,
) -> Result<UploadLedger, String> {
    let Some((ledger, user_id)) = in_journal else {
        return Err("no journal entries".to_string());
    };
    if user_id != record_user_id {
        return Err(format!(
            "record of user {record_user_id} but journal of user {user_id}"
        ));
    }
    Ok(ledger)
}

fn record_disagreement(
    record: &UploadRecord,
    in_journal: Option<(UploadLedger, u64)>,
) -> Option<String> {
    let ledger = match journal_of(record.user_id, in_journal) {
        Ok(ledger) => ledger,
        Err(detail) => return Some(detail),
    };
    let expected = match (record.status, record.reported) {
        (UploadStatus::Pending, false) => UploadLedger::Reserved(record.cost),
        (UploadStatus::Done, false) => UploadLedger::Posted(record.cost),
        (UploadStatus::Done, true) => UploadLedger::Refunded(record.cost),
        (UploadStatus::Failed, false) => UploadLedger::Voided(record.cost),
        (status, reported) => {
            return Some(format!("impossible record {status:?} reported={reported}"))
        }
    };
    (ledger != expected).then(|| {
        format!(
            "record is {:?} (reported {}) but the journal says {ledger:?}",
            record.status, record.reported
        )
    })
}
