//! Uploads answered from the answer cache by hash (`POST /v2/decode/cached`): born done,
//! charged, counted, reportable like any upload, and kept together.
//!
//! A batch of hits is one `CacheHitBatch` record (in the day's `hits-` tree), one entry in
//! each index (`upload_days`, `user_uploads`, under its first hit's id), one `Charge` in the
//! journal for all of its costs and one stats update: a handful of writes however many hits
//! it holds. Recording each hit as an upload that ran (a record, two index entries, a
//! reservation and a post) made a batch of 100 about 500 writes, and sled's inserts were
//! most of the time of a lookup that hit (`store_bench_cache_hits`: 2.4 ms per 100).
//!
//! The hits of several requests go in one transaction (`record_cache_hit_requests`): the
//! server stages the uploads answered outright between two group commits and writes them
//! just before the next one starts (server/state/commit.rs).

use super::day::{self, DayNumber};
use super::journal::{apply_movement, decode_tx, entry, from_tx, moved, TxResult};
use super::layout::{self, DayIndex};
use super::records::{
    encode, Balance, CacheHit, CacheHitBatch, EntryKind, JournalEntry, UploadRecord,
};
use super::stats::bump;
use super::uploads::{truncated, validate_new_upload};
use super::user_uploads;
use super::{NewUpload, ShardStore, StoreError};
use sled::transaction::{abort, Transactional, TransactionalTree};
use std::collections::BTreeMap;

/// One answer found in the cache, to record as the user's upload.
#[derive(Clone, Debug)]
pub struct CachedUpload {
    /// Its cost, model, soft_id, image hash and time, as an upload's. A batch's hits share
    /// their soft_id and time.
    pub upload: NewUpload,
    /// The answer as a done record keeps it (finish_upload's `Outcome::Done`).
    pub text: String,
    /// NaN for none.
    pub confidence: f32,
}

/// The most hits one batch record holds; a request with more is kept as several, written in
/// the same transaction. A report rewrites its hit's whole record: bounded, that stays a few
/// tens of KiB (a hit is ~60 bytes with a short answer, at most ~550), and the lookup limit
/// (`cache_lookup_max`, up to 4096) does not decide it.
pub const MAX_HITS_PER_BATCH: usize = 256;

/// One batch record to write: the record, its bytes, its index value and its charge.
struct BatchWrite {
    batch: CacheHitBatch,
    bytes: Vec<u8>,
    index_value: [u8; 12],
    charge: JournalEntry,
}

/// One request's hits, to record as its user's uploads (`record_cache_hit_requests`).
#[derive(Clone, Debug)]
pub struct HitRequest {
    pub user_id: u64,
    /// They share their soft_id and time (one request's).
    pub hits: Vec<CachedUpload>,
}

/// One request's hits ready to write: its batch records (ids issued) and what they change.
struct PreparedHits {
    user_id: u64,
    soft_id: Option<String>,
    day_number: DayNumber,
    writes: Vec<BatchWrite>,
    /// Points charged for all of them, and how many hits.
    charged: i64,
    count: u64,
}

impl PreparedHits {
    /// The upload record of every hit, in order.
    fn records(&self) -> Vec<UploadRecord> {
        self.writes
            .iter()
            .flat_map(|write| {
                (0..write.batch.hits.len()).map(|index| write.batch.upload_record(index))
            })
            .collect()
    }
}

/// A request's outcome: its records, or why none of them was written.
pub type HitsRecorded = Result<Vec<UploadRecord>, StoreError>;

impl ShardStore {
    /// Records `hits` as the user's done uploads, charged their costs at once (one `Charge`
    /// per batch record), all in one transaction: every one is recorded and charged, or none
    /// is (`InsufficientPoints`, contract 2001, when the balance does not cover them all).
    pub fn record_cache_hits(
        &mut self,
        user_id: u64,
        hits: Vec<CachedUpload>,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        let mut recorded = self.record_cache_hit_requests(vec![HitRequest { user_id, hits }]);
        assert_eq!(recorded.len(), 1, "one outcome per request");
        recorded.pop().expect("one outcome")
    }

    /// `record_cache_hits` for several requests (of one user or several), in one outcome
    /// each, in order, and in one transaction per day (one in all but at midnight): sled
    /// writes its log buffer to the disk at every transaction (`pin_log` rolls it before and
    /// after its batch marker: two small synchronous writes), so that 20 hits answered
    /// between two group commits cost 40 disk writes besides the commit's own when each had
    /// its transaction. Each request is all or nothing as in `record_cache_hits`, and one refused (not
    /// enough points, an unknown user) leaves the others as they would be alone. A failed
    /// transaction (the disk) fails every request of its day: nothing of them is written.
    pub fn record_cache_hit_requests(&mut self, requests: Vec<HitRequest>) -> Vec<HitsRecorded> {
        let mut outcomes: Vec<HitsRecorded> = Vec::with_capacity(requests.len());
        let mut by_day: BTreeMap<DayNumber, Vec<(usize, PreparedHits)>> = BTreeMap::new();
        for (index, request) in requests.into_iter().enumerate() {
            // A prepared request's outcome is filled in once its day's transaction ran.
            outcomes.push(match self.prepare_hits(request) {
                Ok(Some(hits)) => {
                    by_day
                        .entry(hits.day_number)
                        .or_default()
                        .push((index, hits));
                    Ok(Vec::new())
                }
                Ok(None) => Ok(Vec::new()),
                Err(error) => Err(error),
            });
        }
        for (day_number, of_day) in by_day {
            let (indexes, of_day): (Vec<usize>, Vec<PreparedHits>) = of_day.into_iter().unzip();
            match self.write_hits_of_day(day_number, &of_day) {
                Ok(day_outcomes) => {
                    for ((index, hits), outcome) in
                        indexes.into_iter().zip(of_day).zip(day_outcomes)
                    {
                        outcomes[index] = outcome.map(|()| hits.records());
                    }
                }
                Err(error) => {
                    for index in indexes {
                        outcomes[index] = Err(copy_of(&error));
                    }
                }
            }
        }
        outcomes
    }

    /// One request's hits as batch records, their ids issued (`None` for no hits).
    fn prepare_hits(&mut self, request: HitRequest) -> Result<Option<PreparedHits>, StoreError> {
        let HitRequest { user_id, hits } = request;
        let Some(first) = hits.first() else {
            return Ok(None);
        };
        let (now_ms, soft_id) = (first.upload.now_ms, first.upload.soft_id.clone());
        let day_number = day::day_of_ms(now_ms);
        let mut writes = Vec::with_capacity(hits.len().div_ceil(MAX_HITS_PER_BATCH));
        let mut hits = hits.into_iter().peekable();
        while hits.peek().is_some() {
            let chunk = hits.by_ref().take(MAX_HITS_PER_BATCH).collect();
            writes.push(self.batch_write(user_id, chunk, day_number)?);
        }
        assert!(
            writes
                .iter()
                .all(|write| write.batch.soft_id == soft_id && write.batch.created_at_ms == now_ms),
            "one request's hits share their soft_id and time"
        );
        let charged = writes
            .iter()
            .try_fold(0i64, |sum, write| sum.checked_sub(write.charge.delta))
            .ok_or_else(overflow)?;
        let count: u64 = writes
            .iter()
            .map(|write| write.batch.hits.len() as u64)
            .sum();
        Ok(Some(PreparedHits {
            user_id,
            soft_id,
            day_number,
            writes,
            charged,
            count,
        }))
    }

    /// Writes the requests of `day_number` in one transaction: each request's outcome, or the
    /// transaction's error (then nothing of them is written).
    fn write_hits_of_day(
        &mut self,
        day_number: DayNumber,
        requests: &[PreparedHits],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let (stats, batches) = (self.stats_tree(day_number)?, self.hits_tree(day_number)?);
        let t = &self.trees;
        let outcomes = (
            &t.balances,
            &t.journal,
            &t.upload_days,
            &t.user_uploads,
            &batches,
            &stats,
        )
            .transaction(
                |(balances, journal, upload_days, by_user, batches, stats)| {
                    let mut outcomes = Vec::with_capacity(requests.len());
                    for request in requests {
                        // Checked first, so that a refusal writes nothing and aborts nothing.
                        if let Err(refusal) = charges_fit(balances, request)? {
                            outcomes.push(Err(refusal));
                            continue;
                        }
                        for write in &request.writes {
                            apply_movement(balances, journal, &write.charge)?;
                            let batch_id = write.batch.id();
                            let key = batch_id.to_be_bytes();
                            batches.insert(&key, write.bytes.as_slice())?;
                            upload_days.insert(&key, &write.index_value)?;
                            by_user.insert(
                                &user_uploads::index_key(request.user_id, batch_id),
                                &write.index_value,
                            )?;
                        }
                        bump(
                            stats,
                            request.user_id,
                            request.soft_id.as_deref(),
                            |counters| {
                                counters.uploads += request.count;
                                counters.done += request.count;
                                counters.cache_hits += request.count;
                                counters.points_spent += request.charged;
                            },
                        )?;
                        outcomes.push(Ok(()));
                    }
                    Ok(outcomes)
                },
            )
            .map_err(from_tx)?;
        for (request, outcome) in requests.iter().zip(&outcomes) {
            if outcome.is_ok() {
                self.balance_memo.forget(request.user_id);
            }
        }
        Ok(outcomes)
    }

    /// One batch record of `hits` (1..=`MAX_HITS_PER_BATCH`) on `day_number`, with its charge.
    fn batch_write(
        &mut self,
        user_id: u64,
        hits: Vec<CachedUpload>,
        day_number: DayNumber,
    ) -> Result<BatchWrite, StoreError> {
        assert!((1..=MAX_HITS_PER_BATCH).contains(&hits.len()));
        let batch = self
            .batch_of(user_id, hits)?
            .expect("a batch of one hit or more");
        let charged = batch
            .hits
            .iter()
            .try_fold(0i64, |sum, hit| sum.checked_add(hit.cost))
            .ok_or_else(overflow)?;
        assert_eq!(batch.charged_and_refunded(), (charged, 0));
        let charge = entry(
            self.next_id()?,
            user_id,
            EntryKind::Charge,
            -charged,
            batch.id(),
            batch.created_at_ms,
            "",
        );
        Ok(BatchWrite {
            bytes: encode(&batch),
            index_value: DayIndex::batch_value(day_number, batch.last_id()),
            batch,
            charge,
        })
    }

    /// The batch record of `hits` (`None` for none), its ids issued.
    fn batch_of(
        &mut self,
        user_id: u64,
        hits: Vec<CachedUpload>,
    ) -> Result<Option<CacheHitBatch>, StoreError> {
        let Some(first) = hits.first() else {
            return Ok(None);
        };
        let (now_ms, soft_id) = (first.upload.now_ms, first.upload.soft_id.clone());
        let mut batch = CacheHitBatch {
            user_id,
            created_at_ms: now_ms,
            soft_id,
            hits: Vec::with_capacity(hits.len()),
        };
        for hit in hits {
            validate_new_upload(&hit.upload)?;
            assert_eq!(hit.upload.now_ms, now_ms, "a batch is recorded at one time");
            assert_eq!(hit.upload.soft_id, batch.soft_id, "a batch has one soft_id");
            batch.hits.push(CacheHit {
                // Issued one after another: no other id of the shard falls inside the batch.
                id: self.next_id()?,
                result: truncated(&hit.text),
                confidence: Some(hit.confidence),
                cost: hit.upload.cost,
                model: hit.upload.model,
                image_hash: hit.upload.image_hash,
                reported: false,
            });
        }
        assert!(batch.hits.windows(2).all(|pair| pair[0].id < pair[1].id));
        Ok(Some(batch))
    }

    /// The batch kept on `day_number` under `batch_id`, if that day is still kept.
    pub(super) fn hit_batch(
        &self,
        day_number: DayNumber,
        batch_id: u64,
    ) -> Result<Option<CacheHitBatch>, StoreError> {
        self.kept_on(layout::hits_tree_name, day_number, batch_id)?
            .map(|bytes| CacheHitBatch::decode(&bytes))
            .transpose()
    }

    /// Gives one hit's cost back and marks it reported, in one transaction (`refund_done`
    /// for a hit); `recheck` judges the stored hit inside it.
    pub(super) fn refund_hit(
        &mut self,
        day_number: DayNumber,
        batch_id: u64,
        record: UploadRecord,
        now_ms: u64,
        note: &str,
        recheck: impl Fn(&UploadRecord) -> Result<(), StoreError>,
    ) -> Result<(UploadRecord, Balance), StoreError> {
        let (user_id, upload_id) = (record.user_id, record.id);
        // The journal moves the batch's points; the note names the hit they were for (and
        // why, when there is a reason beyond a report).
        let note = match note {
            "" => format!("cache hit {upload_id}"),
            why => super::uploads::truncated_note(&format!("cache hit {upload_id}: {why}")),
        };
        let refund = entry(
            self.next_id()?,
            user_id,
            EntryKind::Refund,
            record.cost,
            batch_id,
            now_ms,
            &note,
        );
        let (stats, batches) = (self.stats_tree(day_number)?, self.hits_tree(day_number)?);
        let t = &self.trees;
        let refunded = (&t.balances, &t.journal, &batches, &stats)
            .transaction(|(balances, journal, batches, stats)| {
                let key = batch_id.to_be_bytes();
                let mut batch: CacheHitBatch = match batches.get(key)? {
                    Some(bytes) => CacheHitBatch::decode(&bytes).or_else(abort)?,
                    None => return abort(StoreError::NotFound),
                };
                let Some(index) = batch.position(upload_id) else {
                    return abort(StoreError::NotFound);
                };
                recheck(&batch.upload_record(index)).or_else(abort)?;
                assert_eq!(batch.hits[index].cost, refund.delta);
                let balance = apply_movement(balances, journal, &refund)?;
                batch.hits[index].reported = true;
                batches.insert(&key, encode(&batch))?;
                bump(stats, user_id, batch.soft_id.as_deref(), |counters| {
                    counters.reported += 1;
                    counters.points_spent -= refund.delta;
                })?;
                Ok((batch.upload_record(index), balance))
            })
            .map_err(from_tx)?;
        self.balance_memo.forget(user_id);
        Ok(refunded)
    }

    /// The day's hits tree, created on first use (the day is then one `existing_days` lists).
    fn hits_tree(&mut self, day_number: DayNumber) -> Result<sled::Tree, StoreError> {
        let tree = self.db.open_tree(layout::hits_tree_name(day_number))?;
        self.days.insert(day_number);
        Ok(tree)
    }

    fn stats_tree(&mut self, day_number: DayNumber) -> Result<sled::Tree, StoreError> {
        Ok(self.day_trees(day_number)?.1)
    }
}

/// Whether the balance (as this transaction left it so far) covers every charge of
/// `request`: the refusal `apply_movement` would abort with, without aborting.
fn charges_fit(
    balances: &TransactionalTree,
    request: &PreparedHits,
) -> TxResult<Result<(), StoreError>> {
    let Some(bytes) = balances.get(request.user_id.to_be_bytes())? else {
        return Ok(Err(StoreError::UserNotFound));
    };
    let mut balance: Balance = decode_tx(&bytes)?;
    for write in &request.writes {
        balance = match moved(&balance, &write.charge) {
            Ok(next) => next,
            Err(refusal) => return Ok(Err(refusal)),
        };
    }
    Ok(Ok(()))
}

/// The same error again, for each request of a transaction that failed (`StoreError` is not
/// `Clone`): a storage failure stays one (the server checks its disk), anything else is
/// an internal error.
fn copy_of(error: &StoreError) -> StoreError {
    match error {
        StoreError::InsufficientPoints => StoreError::InsufficientPoints,
        StoreError::UserNotFound => StoreError::UserNotFound,
        StoreError::InvalidInput(detail) => StoreError::InvalidInput(detail.clone()),
        error if error.is_storage_failure() => StoreError::Io(error.to_string()),
        error => StoreError::Corrupt(error.to_string()),
    }
}

fn overflow() -> StoreError {
    StoreError::InvalidInput("the hits' costs overflow".into())
}
