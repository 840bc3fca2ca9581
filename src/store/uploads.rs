//! Uploads: accept (reserve; with a task id for the JSON task protocol), finish (post or
//! void), report (refund), retention.

use super::day::{self, DayNumber};
use super::journal::{apply_movement, decode_tx, entry, from_tx, TxResult};
use super::layout::{self, day_value, u64_key, DayIndex};
use super::records::{
    decode, encode, Balance, CacheHitBatch, EntryKind, JournalEntry, UploadRecord, UploadStatus,
};
use super::stats::bump;
use super::user_uploads;
use super::{NewUpload, Outcome, ShardStore, StoreError, MAX_UPLOAD_TEXT_BYTES};
use sled::transaction::{abort, Transactional, TransactionalTree};

/// A task id being issued with its upload, and the protocol's tag for how its answer is
/// written (0: the protocol's default).
struct TaskUpload {
    task_id: u64,
    answer_format: u8,
}

/// A `tasks-` value: the upload id, then the answer format as one more byte when it is not
/// 0. Values of versions before formats existed (8 bytes) read as format 0.
fn task_value_bytes(upload_id: u64, answer_format: u8) -> Vec<u8> {
    let mut value = upload_id.to_be_bytes().to_vec();
    if answer_format != 0 {
        value.push(answer_format);
    }
    value
}

/// A `tasks-` value read: (upload id, answer format).
fn task_value(value: &[u8]) -> Result<(u64, u8), StoreError> {
    match value.len() {
        8 => Ok((u64_key(value)?, 0)),
        9 => Ok((u64_key(&value[..8])?, value[8])),
        length => Err(StoreError::Corrupt(format!(
            "a task's value of {length} bytes"
        ))),
    }
}

/// Where an upload of this shard is kept: its day, and the batch of cache hits it is part
/// of (`None`: a record of its own in the day's uploads tree).
pub(super) struct Located {
    day: DayNumber,
    batch_id: Option<u64>,
    record: UploadRecord,
}

impl ShardStore {
    /// Reserves `req.cost` and records the upload as pending, in one transaction.
    /// `Err(InsufficientPoints)` (contract 2001) writes nothing.
    pub fn accept_upload(
        &mut self,
        user_id: u64,
        req: NewUpload,
    ) -> Result<UploadRecord, StoreError> {
        self.accept(user_id, req, None)
    }

    /// `accept_upload` for the JSON task protocol: the upload also gets a task id of this
    /// shard (task_ids.rs), mapped to it (and to `answer_format`, the protocol's tag for how
    /// its answer is written) in the same transaction. `TaskIdsExhausted` when the shard has
    /// issued its last one.
    pub fn accept_task_upload(
        &mut self,
        user_id: u64,
        req: NewUpload,
        answer_format: u8,
    ) -> Result<(UploadRecord, u64), StoreError> {
        let task_id = self.task_serials.next_task_id()?;
        let task = TaskUpload {
            task_id,
            answer_format,
        };
        match self.accept(user_id, req, Some(task)) {
            Ok(record) => Ok((record, task_id)),
            Err(error) => {
                // A refusal (no points, say) aborted the transaction: nothing names the task
                // id, and it is the next task's. After a failing disk, nothing is sure.
                let refused = matches!(
                    error,
                    StoreError::InsufficientPoints
                        | StoreError::InvalidInput(_)
                        | StoreError::UserNotFound
                );
                if refused {
                    self.task_serials.give_back(task_id);
                }
                Err(error)
            }
        }
    }

    /// The upload a task id of this shard names and the task's answer format, while its day
    /// is kept (`None` for a task id it never issued, or one whose day retention dropped).
    pub fn task_upload(&self, task_id: u64) -> Result<Option<(u64, u8)>, StoreError> {
        let Some(day_bytes) = self.trees.task_days.get(task_id.to_be_bytes())? else {
            return Ok(None);
        };
        self.kept_on(layout::tasks_tree_name, day_value(&day_bytes)?, task_id)?
            .map(|value| task_value(&value))
            .transpose()
    }

    fn accept(
        &mut self,
        user_id: u64,
        req: NewUpload,
        task: Option<TaskUpload>,
    ) -> Result<UploadRecord, StoreError> {
        validate_new_upload(&req)?;
        let upload_id = self.next_id()?;
        let reserve = entry(
            self.next_id()?,
            user_id,
            EntryKind::Reserve,
            -req.cost,
            upload_id,
            req.now_ms,
            "",
        );
        let record = UploadRecord {
            id: upload_id,
            user_id,
            status: UploadStatus::Pending,
            result: None,
            confidence: None,
            error: None,
            cost: req.cost,
            created_at_ms: req.now_ms,
            finished_at_ms: None,
            reported: false,
            soft_id: req.soft_id,
            cache_hit: false,
            model: req.model,
            image_hash: req.image_hash,
        };
        let day_number = day::day_of_ms(req.now_ms);
        let (uploads, stats) = self.day_trees(day_number)?;
        let accepted = Accepted {
            reserve: &reserve,
            record: &record,
            record_bytes: encode(&record),
            day: day_number.to_be_bytes(),
        };
        let t = &self.trees;
        // The trees in `AcceptTrees` order (their views are passed on as they come).
        let (balances, journal, index, pending, by_user) = (
            &t.balances,
            &t.journal,
            &t.upload_days,
            &t.pending,
            &t.user_uploads,
        );
        match task {
            None => (balances, journal, index, pending, by_user, &uploads, &stats)
                .transaction(|(b, j, i, p, u, d, s)| accepted.write((b, j, i, p, u, d, s)))
                .map_err(from_tx)?,
            Some(TaskUpload {
                task_id,
                answer_format,
            }) => {
                // The task's mapping is written with the upload, or neither is.
                let tasks = self.db.open_tree(layout::tasks_tree_name(day_number))?;
                let task_days = &t.task_days;
                let value = task_value_bytes(upload_id, answer_format);
                (
                    balances, journal, index, pending, by_user, &uploads, &stats, task_days, &tasks,
                )
                    .transaction(|(b, j, i, p, u, d, s, task_days, tasks)| {
                        accepted.write((b, j, i, p, u, d, s))?;
                        let key = task_id.to_be_bytes();
                        task_days.insert(&key, &accepted.day)?;
                        if tasks.insert(&key, value.as_slice())?.is_some() {
                            // Issued twice: only a damaged counter mark gets here.
                            let why = format!("task id {task_id} issued twice");
                            return abort(StoreError::Corrupt(why));
                        }
                        Ok(())
                    })
                    .map_err(from_tx)?
            }
        }
        self.balance_memo.forget(user_id);
        Ok(record)
    }

    /// Posts (Done) or voids (Failed) the upload's reservation and stores the outcome, as of
    /// `now_ms`. Idempotent: an upload already finished is returned unchanged.
    /// `Err(NotFound)` if unknown.
    pub fn finish_upload(
        &mut self,
        upload_id: u64,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<UploadRecord, StoreError> {
        self.finish_noting(upload_id, outcome, now_ms, "")
    }

    /// `finish_upload` whose journal entry (the post or the void) carries `note`.
    fn finish_noting(
        &mut self,
        upload_id: u64,
        outcome: Outcome,
        now_ms: u64,
        note: &str,
    ) -> Result<UploadRecord, StoreError> {
        let Located {
            day: day_number,
            record,
            ..
        } = self.locate(upload_id)?.ok_or(StoreError::NotFound)?;
        if record.status != UploadStatus::Pending {
            return Ok(record);
        }
        // A clock stepped back must not finish an upload before it was created.
        let now_ms = now_ms.max(record.created_at_ms);
        let finished = finished_record(record, &outcome, now_ms);
        let (kind, delta) = match finished.status {
            UploadStatus::Done => (EntryKind::Post, -finished.cost),
            _ => (EntryKind::Void, finished.cost),
        };
        let movement = entry(
            self.next_id()?,
            finished.user_id,
            kind,
            delta,
            upload_id,
            now_ms,
            note,
        );
        let (uploads, stats) = self.day_trees(day_number)?;
        let finished_bytes = encode(&finished);
        let t = &self.trees;
        let record = (&t.balances, &t.journal, &t.pending, &uploads, &stats)
            .transaction(|(balances, journal, pending, uploads, stats)| {
                let key = upload_id.to_be_bytes();
                // Re-checked inside the transaction: the record is the source of truth.
                let stored: UploadRecord = stored_upload(uploads, &key)?;
                if stored.status != UploadStatus::Pending {
                    return Ok(stored);
                }
                apply_movement(balances, journal, &movement)?;
                uploads.insert(&key, finished_bytes.as_slice())?;
                pending.remove(&key)?;
                bump(
                    stats,
                    finished.user_id,
                    finished.soft_id.as_deref(),
                    |counters| count_finish(counters, &finished),
                )?;
                Ok(finished.clone())
            })
            .map_err(from_tx)?;
        self.balance_memo.forget(record.user_id);
        Ok(record)
    }

    /// Gives the upload's points back and marks it failed with `reason` (a job that will not
    /// run: queue full, server stopping, a reservation that could not be made durable).
    /// Idempotent like `finish_upload`.
    pub fn void_upload(
        &mut self,
        upload_id: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<UploadRecord, StoreError> {
        let failed = Outcome::Failed {
            reason: reason.to_string(),
        };
        self.finish_upload(upload_id, failed, now_ms)
    }

    /// Voids every pending upload of this shard (start-up and shutdown: their jobs will not
    /// run). Returns how many there were.
    pub fn void_pending(&mut self, reason: &str, now_ms: u64) -> Result<usize, StoreError> {
        let pending = self.pending_uploads()?;
        for record in &pending {
            let voided = self.void_upload(record.id, reason, now_ms)?;
            assert_ne!(
                voided.status,
                UploadStatus::Pending,
                "voided uploads are final"
            );
        }
        Ok(pending.len())
    }

    /// The upload if it exists and belongs to `user_id` (else `None`: contract 4001).
    pub fn upload(&self, user_id: u64, upload_id: u64) -> Result<Option<UploadRecord>, StoreError> {
        Ok(self
            .locate(upload_id)?
            .map(|located| located.record)
            .filter(|record| record.user_id == user_id))
    }

    /// Refunds a done upload once, if `now_ms` is within `window_ms` of its finish.
    /// Errors: NotFound (4001, also another user's), NotReportable (4002), WindowClosed (4003).
    pub fn report(
        &mut self,
        user_id: u64,
        upload_id: u64,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<(UploadRecord, Balance), StoreError> {
        let located = self.locate(upload_id)?.ok_or(StoreError::NotFound)?;
        if located.record.user_id != user_id {
            return Err(StoreError::NotFound);
        }
        check_reportable(&located.record, now_ms, window_ms)?;
        self.refund_done(located, now_ms, "", |stored| {
            check_reportable(stored, now_ms, window_ms)
        })
    }

    /// Undoes what reached the disk of an upload whose client was refused after its
    /// reservation was written (the flush that would have made it durable failed, and the
    /// store was reopened from what the disk held: `server/storage.rs`), so that a refused
    /// request costs nothing: pending is voided with `reason`; done (its result came before
    /// the flush failed) is refunded, as a reported upload is; anything else (failed,
    /// refunded, or never on disk) is left as it is. The journal entry of the void or the
    /// refund carries `reason` (cut to `MAX_REASON_BYTES`). The record as it ends, if there
    /// is one.
    pub fn withdraw_unacknowledged(
        &mut self,
        upload_id: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<Option<UploadRecord>, StoreError> {
        let Some(located) = self.locate(upload_id)? else {
            return Ok(None);
        };
        let note = truncated_note(reason);
        let note = note.as_str();
        let record = &located.record;
        let withdrawn = match (record.status, record.reported) {
            (UploadStatus::Pending, _) => {
                let failed = Outcome::Failed {
                    reason: reason.to_string(),
                };
                self.finish_noting(upload_id, failed, now_ms, note)?
            }
            (UploadStatus::Done, false) => {
                let not_refunded = |stored: &UploadRecord| {
                    if stored.reported {
                        return Err(StoreError::NotReportable);
                    }
                    Ok(())
                };
                self.refund_done(located, now_ms, note, not_refunded)?.0
            }
            _ => located.record,
        };
        assert_ne!(withdrawn.status, UploadStatus::Pending);
        Ok(Some(withdrawn))
    }

    /// Gives a done upload's cost back and marks it reported (the one refunded state a done
    /// upload has), in one transaction; `recheck` judges the stored record inside it.
    fn refund_done(
        &mut self,
        located: Located,
        now_ms: u64,
        note: &str,
        recheck: impl Fn(&UploadRecord) -> Result<(), StoreError>,
    ) -> Result<(UploadRecord, Balance), StoreError> {
        let Located {
            day: day_number,
            batch_id,
            record,
        } = located;
        assert_eq!(
            record.status,
            UploadStatus::Done,
            "only a done upload is refunded"
        );
        if let Some(batch_id) = batch_id {
            return self.refund_hit(day_number, batch_id, record, now_ms, note, recheck);
        }
        let (user_id, upload_id) = (record.user_id, record.id);
        let refund = entry(
            self.next_id()?,
            user_id,
            EntryKind::Refund,
            record.cost,
            upload_id,
            now_ms,
            note,
        );
        let (uploads, stats) = self.day_trees(day_number)?;
        let mut reported = record;
        reported.reported = true;
        let reported_bytes = encode(&reported);
        let t = &self.trees;
        let balance = (&t.balances, &t.journal, &uploads, &stats)
            .transaction(|(balances, journal, uploads, stats)| {
                let stored = stored_upload(uploads, &upload_id.to_be_bytes())?;
                recheck(&stored).or_else(abort)?;
                let balance = apply_movement(balances, journal, &refund)?;
                uploads.insert(&upload_id.to_be_bytes(), reported_bytes.as_slice())?;
                bump(stats, user_id, stored.soft_id.as_deref(), |counters| {
                    counters.reported += 1;
                    counters.points_spent -= stored.cost;
                })?;
                Ok(balance)
            })
            .map_err(from_tx)?;
        self.balance_memo.forget(user_id);
        Ok((reported, balance))
    }

    /// Every upload not finished yet, in id order (at start-up the server voids them).
    pub fn pending_uploads(&self) -> Result<Vec<UploadRecord>, StoreError> {
        let mut records = Vec::new();
        for item in self.trees.pending.iter() {
            let (key, day_bytes) = item?;
            let tree = self
                .db
                .open_tree(layout::uploads_tree_name(day_value(&day_bytes)?))?;
            let bytes = tree.get(&key)?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "pending upload {} has no record",
                    u64_key(&key).unwrap_or(0)
                ))
            })?;
            records.push(decode(&bytes)?);
        }
        Ok(records)
    }

    /// Drops the day trees older than `retention_days` days before today (today and the
    /// `retention_days` days before it are kept). Pending uploads of a dropped day are voided
    /// first. Returns the number of uploads dropped.
    pub fn drop_expired(&mut self, now_ms: u64, retention_days: u32) -> Result<u32, StoreError> {
        let oldest_kept = day::day_before(now_ms, retention_days);
        let expired: Vec<DayNumber> = self.days.range(..oldest_kept).copied().collect();
        let mut dropped = 0u32;
        for day_number in expired {
            dropped += self.drop_day(day_number, now_ms)?;
        }
        Ok(dropped)
    }

    fn drop_day(&mut self, day_number: DayNumber, now_ms: u64) -> Result<u32, StoreError> {
        let uploads = self.db.open_tree(layout::uploads_tree_name(day_number))?;
        let mut index_removals = sled::Batch::default();
        let mut user_index_removals = sled::Batch::default();
        let mut count = 0u32;
        for item in uploads.iter() {
            let (key, bytes) = item?;
            let record: UploadRecord = decode(&bytes)?;
            if record.status == UploadStatus::Pending {
                self.void_upload(record.id, "dropped by retention", now_ms)?;
            }
            index_removals.remove(key);
            user_index_removals.remove(&user_uploads::index_key(record.user_id, record.id));
            count += 1;
        }
        let batches = self.db.open_tree(layout::hits_tree_name(day_number))?;
        for item in batches.iter() {
            let (key, bytes) = item?;
            let batch = CacheHitBatch::decode(&bytes)?;
            index_removals.remove(key);
            user_index_removals.remove(&user_uploads::index_key(batch.user_id, batch.id()));
            count = count.saturating_add(u32::try_from(batch.hits.len()).unwrap_or(u32::MAX));
        }
        let tasks = self.db.open_tree(layout::tasks_tree_name(day_number))?;
        let mut task_removals = sled::Batch::default();
        for item in tasks.iter() {
            task_removals.remove(item?.0);
        }
        self.trees.upload_days.apply_batch(index_removals)?;
        self.trees.user_uploads.apply_batch(user_index_removals)?;
        self.trees.task_days.apply_batch(task_removals)?;
        self.db.drop_tree(layout::uploads_tree_name(day_number))?;
        self.db.drop_tree(layout::hits_tree_name(day_number))?;
        self.db.drop_tree(layout::stats_tree_name(day_number))?;
        self.db.drop_tree(layout::tasks_tree_name(day_number))?;
        self.days.remove(&day_number);
        Ok(count)
    }

    /// The `upload_days` entry that may name `upload_id`, with its key: an upload, or the
    /// first hit of a batch, is indexed under its own id; any other hit under its batch's,
    /// the nearest key below it (no other id lies inside a batch).
    fn index_entry(&self, upload_id: u64) -> Result<Option<(u64, DayIndex)>, StoreError> {
        let key = upload_id.to_be_bytes();
        if let Some(value) = self.trees.upload_days.get(key)? {
            return Ok(Some((upload_id, DayIndex::parse(&value)?)));
        }
        let below = self
            .trees
            .upload_days
            .range(..key)
            .next_back()
            .transpose()?;
        let Some((below_key, value)) = below else {
            return Ok(None);
        };
        match DayIndex::parse(&value)? {
            batch @ DayIndex::HitBatch { .. } => Ok(Some((u64_key(&below_key)?, batch))),
            DayIndex::Upload(_) => Ok(None),
        }
    }

    /// Where an upload of this shard is kept, with its record.
    fn locate(&self, upload_id: u64) -> Result<Option<Located>, StoreError> {
        let Some((index_id, index)) = self.index_entry(upload_id)? else {
            return Ok(None);
        };
        let day = index.day();
        match index {
            DayIndex::Upload(_) => {
                assert_eq!(index_id, upload_id);
                Ok(self.record_on(day, upload_id)?.map(|record| Located {
                    day,
                    batch_id: None,
                    record,
                }))
            }
            DayIndex::HitBatch { last_id, .. } if upload_id <= last_id => {
                let Some(batch) = self.hit_batch(day, index_id)? else {
                    return Ok(None);
                };
                Ok(batch.position(upload_id).map(|index| Located {
                    day,
                    batch_id: Some(index_id),
                    record: batch.upload_record(index),
                }))
            }
            DayIndex::HitBatch { .. } => Ok(None),
        }
    }

    /// The record of `upload_id` in its day tree, if that day is still kept.
    pub(super) fn record_on(
        &self,
        day_number: DayNumber,
        upload_id: u64,
    ) -> Result<Option<UploadRecord>, StoreError> {
        self.kept_on(layout::uploads_tree_name, day_number, upload_id)?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// What day `day_number`'s tree named by `tree_name` (its uploads or its hits) holds
    /// under `id`, if that day is still kept.
    pub(super) fn kept_on(
        &self,
        tree_name: fn(DayNumber) -> String,
        day_number: DayNumber,
        id: u64,
    ) -> Result<Option<sled::IVec>, StoreError> {
        if !self.days.contains(&day_number) {
            return Ok(None);
        }
        let tree = self.db.open_tree(tree_name(day_number))?;
        Ok(tree.get(id.to_be_bytes())?)
    }

    /// The day's uploads and stats trees, created on first use.
    pub(super) fn day_trees(
        &mut self,
        day_number: DayNumber,
    ) -> Result<(sled::Tree, sled::Tree), StoreError> {
        let uploads = self.db.open_tree(layout::uploads_tree_name(day_number))?;
        let stats = self.db.open_tree(layout::stats_tree_name(day_number))?;
        self.days.insert(day_number);
        Ok((uploads, stats))
    }
}

pub(super) fn validate_new_upload(req: &NewUpload) -> Result<(), StoreError> {
    if req.cost < 0 {
        return Err(StoreError::InvalidInput("cost must not be negative".into()));
    }
    if req
        .soft_id
        .as_ref()
        .is_some_and(|soft_id| soft_id.len() > MAX_UPLOAD_TEXT_BYTES)
        || req.model.len() > MAX_UPLOAD_TEXT_BYTES
    {
        return Err(StoreError::InvalidInput(format!(
            "soft_id and model must be at most {MAX_UPLOAD_TEXT_BYTES} bytes"
        )));
    }
    Ok(())
}

fn stored_upload(uploads: &TransactionalTree, key: &[u8]) -> TxResult<UploadRecord> {
    match uploads.get(key)? {
        Some(bytes) => decode_tx(&bytes),
        None => abort(StoreError::NotFound),
    }
}

pub(super) fn finished_record(
    mut record: UploadRecord,
    outcome: &Outcome,
    now_ms: u64,
) -> UploadRecord {
    record.finished_at_ms = Some(now_ms);
    match outcome {
        Outcome::Done {
            text,
            confidence,
            cache_hit,
        } => {
            record.status = UploadStatus::Done;
            record.result = Some(truncated(text));
            record.confidence = Some(*confidence);
            record.cache_hit = *cache_hit;
        }
        Outcome::Failed { reason } => {
            record.status = UploadStatus::Failed;
            record.error = Some(truncated(reason));
        }
    }
    record
}

pub(super) fn count_finish(counters: &mut super::records::DayCounters, finished: &UploadRecord) {
    match finished.status {
        UploadStatus::Done => {
            counters.done += 1;
            counters.points_spent += finished.cost;
            counters.cache_hits += u64::from(finished.cache_hit);
        }
        _ => counters.failed += 1,
    }
}

fn check_reportable(record: &UploadRecord, now_ms: u64, window_ms: u64) -> Result<(), StoreError> {
    if record.status != UploadStatus::Done || record.reported {
        return Err(StoreError::NotReportable);
    }
    let finished_at_ms = record.finished_at_ms.unwrap_or(record.created_at_ms);
    if now_ms > finished_at_ms.saturating_add(window_ms) {
        return Err(StoreError::WindowClosed);
    }
    Ok(())
}

/// A journal note from `text`, cut at a char boundary to `MAX_REASON_BYTES`.
pub(super) fn truncated_note(text: &str) -> String {
    let mut end = text.len().min(super::MAX_REASON_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Bounds stored texts (a result or an error message) at a char boundary.
pub(super) fn truncated(text: &str) -> String {
    let mut end = text.len().min(MAX_UPLOAD_TEXT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// What `accept` writes for a new upload, inside its transaction: the reservation, the
/// pending record, its index entries and the day's stats.
struct Accepted<'a> {
    reserve: &'a JournalEntry,
    record: &'a UploadRecord,
    record_bytes: Vec<u8>,
    day: [u8; 4],
}

/// The trees `Accepted::write` writes: balances, journal, upload_days, pending,
/// user_uploads, the day's uploads and stats.
type AcceptTrees<'t> = (
    &'t TransactionalTree,
    &'t TransactionalTree,
    &'t TransactionalTree,
    &'t TransactionalTree,
    &'t TransactionalTree,
    &'t TransactionalTree,
    &'t TransactionalTree,
);

impl Accepted<'_> {
    fn write(&self, trees: AcceptTrees) -> TxResult<()> {
        let (balances, journal, upload_days, pending, by_user, uploads, stats) = trees;
        let record = self.record;
        apply_movement(balances, journal, self.reserve)?;
        let key = record.id.to_be_bytes();
        uploads.insert(&key, self.record_bytes.as_slice())?;
        upload_days.insert(&key, &self.day)?;
        pending.insert(&key, &self.day)?;
        by_user.insert(
            &user_uploads::index_key(record.user_id, record.id),
            &self.day,
        )?;
        bump(
            stats,
            record.user_id,
            record.soft_id.as_deref(),
            |counters| counters.uploads += 1,
        )
    }
}
