//! Uploads answered from the answer cache by hash (`POST /v2/decode/cached`): born done,
//! charged, counted, reportable like any upload, many in one transaction.

use super::day;
use super::journal::{apply_movement, entry, from_tx};
use super::records::{encode, EntryKind, UploadRecord, UploadStatus};
use super::stats::bump;
use super::uploads::{count_finish, finished_record, validate_new_upload};
use super::user_uploads;
use super::{NewUpload, Outcome, ShardStore, StoreError};
use sled::transaction::Transactional;

/// One answer found in the cache, to record as the user's upload.
#[derive(Clone, Debug)]
pub struct CachedUpload {
    /// Its cost, model, soft_id, image hash and time, as an upload's.
    pub upload: NewUpload,
    /// The answer as a done record keeps it (finish_upload's `Outcome::Done`).
    pub text: String,
    /// NaN for none.
    pub confidence: f32,
}

impl ShardStore {
    /// Records `hits` as the user's done uploads, each charged its cost as an upload that ran
    /// is (a reservation and its post in the journal, so the ledger reads the same), all in
    /// one transaction: every one is recorded and charged, or none is
    /// (`InsufficientPoints`, contract 2001, when the balance does not cover them all).
    pub fn record_cache_hits(
        &mut self,
        user_id: u64,
        hits: Vec<CachedUpload>,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        let Some(first) = hits.first() else {
            return Ok(Vec::new());
        };
        let now_ms = first.upload.now_ms;
        let mut records = Vec::with_capacity(hits.len());
        let mut movements = Vec::with_capacity(2 * hits.len());
        for hit in hits {
            validate_new_upload(&hit.upload)?;
            // One day tree for the whole batch: one time for all.
            assert_eq!(hit.upload.now_ms, now_ms, "a batch is recorded at one time");
            let (record, reserve_and_post) = self.done_upload(user_id, hit)?;
            movements.extend(reserve_and_post);
            records.push(record);
        }
        let day_number = day::day_of_ms(now_ms);
        let (uploads, stats) = self.day_trees(day_number)?;
        let encoded: Vec<Vec<u8>> = records.iter().map(encode).collect();
        let t = &self.trees;
        (
            &t.balances,
            &t.journal,
            &t.upload_days,
            &t.user_uploads,
            &uploads,
            &stats,
        )
            .transaction(
                |(balances, journal, upload_days, by_user, uploads, stats)| {
                    for movement in &movements {
                        apply_movement(balances, journal, movement)?;
                    }
                    for (record, bytes) in records.iter().zip(&encoded) {
                        let key = record.id.to_be_bytes();
                        uploads.insert(&key, bytes.as_slice())?;
                        upload_days.insert(&key, &day_number.to_be_bytes())?;
                        by_user.insert(
                            &user_uploads::index_key(user_id, record.id),
                            &day_number.to_be_bytes(),
                        )?;
                        bump(stats, user_id, record.soft_id.as_deref(), |counters| {
                            counters.uploads += 1;
                            count_finish(counters, record);
                        })?;
                    }
                    Ok(())
                },
            )
            .map_err(from_tx)?;
        Ok(records)
    }

    /// A done record for one hit, and its two journal entries.
    fn done_upload(
        &mut self,
        user_id: u64,
        hit: CachedUpload,
    ) -> Result<(UploadRecord, [super::JournalEntry; 2]), StoreError> {
        let CachedUpload {
            upload,
            text,
            confidence,
        } = hit;
        let upload_id = self.next_id()?;
        let movement =
            |id, kind, delta| entry(id, user_id, kind, delta, upload_id, upload.now_ms, "");
        let reserve = movement(self.next_id()?, EntryKind::Reserve, -upload.cost);
        let post = movement(self.next_id()?, EntryKind::Post, -upload.cost);
        let pending = UploadRecord {
            id: upload_id,
            user_id,
            status: UploadStatus::Pending,
            result: None,
            confidence: None,
            error: None,
            cost: upload.cost,
            created_at_ms: upload.now_ms,
            finished_at_ms: None,
            reported: false,
            soft_id: upload.soft_id,
            cache_hit: false,
            model: upload.model,
            image_hash: upload.image_hash,
        };
        let done = Outcome::Done {
            text,
            confidence,
            cache_hit: true,
        };
        let record = finished_record(pending, &done, upload.now_ms);
        assert_eq!(record.status, UploadStatus::Done);
        Ok((record, [reserve, post]))
    }
}
