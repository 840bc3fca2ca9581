//! A user's uploads, newest first, a page at a time (`GET /v2/user/uploads`).
//!
//! Uploads live in per-day trees keyed by upload id, with every user's uploads mixed: finding
//! one user's recent uploads there would read every upload of the retention period. The
//! `user_uploads` tree indexes them: key user id (8 bytes BE) + upload id (8 bytes BE), value
//! the upload's day. Snowflake ids grow with time, so within one user's prefix key order is
//! age order and a page is one reverse range scan.
//!
//! The index is written in `accept_upload`'s transaction and trimmed with the day trees by
//! retention (`drop_day`); a data directory made before the index existed gets it built once
//! when the shard opens.

use super::day::DayNumber;
use super::layout::{self, u64_key, DayIndex};
use super::records::{decode, UploadRecord};
use super::{ShardStore, StoreError};

/// The most uploads one page may hold (the endpoint's `limit` is checked against it).
pub const MAX_PAGE: usize = 100;

/// The index key of one upload.
pub fn index_key(user_id: u64, upload_id: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&user_id.to_be_bytes());
    key[8..].copy_from_slice(&upload_id.to_be_bytes());
    key
}

/// Builds the index from the day trees when the shard's database predates it (`existed`:
/// whether the tree was there before this open). Runs once: afterwards the tree exists.
pub fn build_if_new(
    db: &sled::Db,
    index: &sled::Tree,
    existed: bool,
    days: &std::collections::BTreeSet<DayNumber>,
) -> Result<(), StoreError> {
    if existed {
        return Ok(());
    }
    for day_number in days {
        let uploads = db.open_tree(layout::uploads_tree_name(*day_number))?;
        let mut batch = sled::Batch::default();
        for item in uploads.iter() {
            let (_, bytes) = item?;
            let record: UploadRecord = decode(&bytes)?;
            batch.insert(
                &index_key(record.user_id, record.id),
                &day_number.to_be_bytes(),
            );
        }
        index.apply_batch(batch)?;
    }
    Ok(())
}

impl ShardStore {
    /// Up to `limit` (1..=`MAX_PAGE`) of the user's uploads older than `before` (an upload id;
    /// `None`: from the newest), newest first. Uploads dropped by retention are gone from it.
    pub fn uploads_page(
        &self,
        user_id: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(StoreError::InvalidInput(format!(
                "limit must be 1..={MAX_PAGE}"
            )));
        }
        let before = before.unwrap_or(u64::MAX);
        let start = index_key(user_id, 0);
        let end = index_key(user_id, before);
        let mut page = Vec::with_capacity(limit);
        for item in self.trees.user_uploads.range(start..end).rev() {
            let (key, value) = item?;
            let upload_id = u64_key(&key[8..])?;
            match DayIndex::parse(&value)? {
                DayIndex::Upload(day_number) => {
                    page.extend(self.record_on(day_number, upload_id)?);
                }
                // A batch is indexed under its first hit: its hits before `before`, newest
                // first.
                DayIndex::HitBatch { day, .. } => {
                    if let Some(batch) = self.hit_batch(day, upload_id)? {
                        let wanted = limit - page.len();
                        let hits = (0..batch.hits.len()).rev();
                        let records = hits
                            .filter(|&index| batch.hits[index].id < before)
                            .take(wanted)
                            .map(|index| batch.upload_record(index));
                        page.extend(records);
                    }
                }
            }
            if page.len() == limit {
                break;
            }
        }
        assert!(page.len() <= limit);
        assert!(
            page.iter().all(|record| record.user_id == user_id),
            "the index names the owner"
        );
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{day, NewUpload, Outcome, Role, ShardStore};
    use super::*;

    fn new_upload(at_ms: u64) -> NewUpload {
        NewUpload {
            cost: 1,
            model: "old".into(),
            soft_id: None,
            image_hash: [1; 16],
            now_ms: at_ms,
        }
    }

    fn user(store: &mut ShardStore, name: &str) -> u64 {
        let now = crate::clock::unix_now_ms();
        store
            .create_user(name, "$argon2id$x", Role::User, 100, now)
            .unwrap()
    }

    fn ids(page: &[UploadRecord]) -> Vec<u64> {
        page.iter().map(|record| record.id).collect()
    }

    #[test]
    fn pages_go_newest_first_and_hold_only_the_users_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ShardStore::open(dir.path(), 0, 1, 1).unwrap();
        let (alice, bob) = (user(&mut store, "alice"), user(&mut store, "bob"));
        let now = crate::clock::unix_now_ms();
        let mut mine = Vec::new();
        for index in 0..5u64 {
            let record = store.accept_upload(alice, new_upload(now + index)).unwrap();
            mine.push(record.id);
            store.accept_upload(bob, new_upload(now + index)).unwrap();
        }
        let done = Outcome::Done {
            text: "ab".into(),
            confidence: 0.5,
            cache_hit: false,
        };
        store.finish_upload(mine[4], done, now + 10).unwrap();
        mine.reverse();
        let first = store.uploads_page(alice, None, 2).unwrap();
        assert_eq!(ids(&first), mine[..2]);
        assert_eq!(first[0].result.as_deref(), Some("ab"), "the current record");
        let second = store.uploads_page(alice, Some(mine[1]), 2).unwrap();
        assert_eq!(ids(&second), mine[2..4]);
        let last = store.uploads_page(alice, Some(mine[3]), 2).unwrap();
        assert_eq!(ids(&last), mine[4..]);
        assert!(store
            .uploads_page(alice, Some(mine[4]), 2)
            .unwrap()
            .is_empty());
        assert_eq!(store.uploads_page(bob, None, MAX_PAGE).unwrap().len(), 5);
        assert!(store.uploads_page(alice, None, 0).is_err());
        assert!(store.uploads_page(alice, None, MAX_PAGE + 1).is_err());
    }

    #[test]
    fn retention_takes_dropped_days_out_of_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ShardStore::open(dir.path(), 0, 1, 1).unwrap();
        let alice = user(&mut store, "alice");
        let now = crate::clock::unix_now_ms();
        let old = store
            .accept_upload(alice, new_upload(now - 10 * day::MS_PER_DAY))
            .unwrap();
        let recent = store.accept_upload(alice, new_upload(now)).unwrap();
        assert_eq!(store.trees.user_uploads.len(), 2);
        store.drop_expired(now, 7).unwrap();
        assert_eq!(
            ids(&store.uploads_page(alice, None, 10).unwrap()),
            [recent.id]
        );
        assert_eq!(store.trees.user_uploads.len(), 1, "{} dropped", old.id);
    }

    #[test]
    fn a_database_from_before_the_index_gets_it_built_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, uploaded) = {
            let mut store = ShardStore::open(dir.path(), 0, 1, 1).unwrap();
            let alice = user(&mut store, "alice");
            let now = crate::clock::unix_now_ms();
            let a = store.accept_upload(alice, new_upload(now)).unwrap().id;
            let b = store.accept_upload(alice, new_upload(now + 1)).unwrap().id;
            // What an older build left: day trees, no index.
            store.db.drop_tree(layout::USER_UPLOADS_TREE).unwrap();
            store.flusher().flush().unwrap();
            (alice, vec![b, a])
        };
        let store = ShardStore::open(dir.path(), 0, 1, 1).unwrap();
        assert_eq!(ids(&store.uploads_page(alice, None, 10).unwrap()), uploaded);
    }
}
