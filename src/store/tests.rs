//! Store tests on real sled databases in temporary directories.

use super::records::{decode, encode, JournalEntry};
use super::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const NODE: u16 = 1;
const WINDOW_MS: u64 = 600_000;

fn now_ms() -> u64 {
    crate::clock::unix_now_ms()
}

fn open(dir: &Path, shard: u16, shard_count: u16) -> ShardStore {
    ShardStore::open(dir, shard, shard_count, NODE).unwrap()
}

/// A username owned by `shard`.
fn name_on(shard: u16, shard_count: u16, tag: &str) -> String {
    (0..)
        .map(|index| format!("{tag}{index}"))
        .find(|name| ids::shard_for_username(name, shard_count) == shard)
        .unwrap()
}

fn new_user(store: &mut ShardStore, tag: &str, points: i64) -> u64 {
    let name = name_on(store.shard(), store.shard_count(), tag);
    store
        .create_user(
            &name,
            "$argon2id$not-a-real-hash",
            Role::User,
            points,
            now_ms(),
        )
        .unwrap()
}

fn upload_request(cost: i64, soft_id: Option<&str>, at_ms: u64) -> NewUpload {
    NewUpload {
        cost,
        model: "old".into(),
        soft_id: soft_id.map(str::to_string),
        image_hash: [9; 16],
        now_ms: at_ms,
    }
}

fn done(text: &str) -> Outcome {
    Outcome::Done {
        text: text.into(),
        confidence: 0.9,
        cache_hit: false,
    }
}

fn failed() -> Outcome {
    Outcome::Failed {
        reason: "model error".into(),
    }
}

fn balance(store: &ShardStore, user_id: u64) -> (i64, i64) {
    let balance = store.balance(user_id).unwrap();
    (balance.points, balance.reserved)
}

fn journal_len(store: &ShardStore) -> usize {
    store.trees.journal.len()
}

#[test]
fn ids_stay_unique_across_shards_restarts_and_a_clock_stepping_back() {
    let dir = tempfile::tempdir().unwrap();
    let time = Arc::new(AtomicU64::new(now_ms()));
    let mut seen = HashSet::new();
    for restart in 0..3 {
        for shard in 0..4u16 {
            let clock_time = time.clone();
            let clock: ids::Clock = Box::new(move || clock_time.load(Ordering::SeqCst));
            let mut store = ShardStore::open_with_clock(dir.path(), shard, 4, NODE, clock).unwrap();
            for _ in 0..2_000 {
                let id = store.next_id().unwrap();
                assert_eq!(ids::shard_of(id), shard);
                assert!(
                    seen.insert(id),
                    "id repeated after restart {restart} on shard {shard}"
                );
            }
            // Closing without a flush: the high-water mark is still in sled's log for the
            // reopen in this process (a crash is covered by sled's prefix recovery).
        }
        time.fetch_sub(3_600_000, Ordering::SeqCst); // every restart, the clock is an hour behind
    }
    assert_eq!(seen.len(), 3 * 4 * 2_000);
}

#[test]
fn shard_count_is_fixed_by_the_first_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 0, 2));
    match ShardStore::open(dir.path(), 0, 3, NODE) {
        Err(StoreError::ShardCountMismatch {
            recorded: 2,
            requested: 3,
            ..
        }) => {}
        Err(other) => panic!("expected ShardCountMismatch, got {other}"),
        Ok(_) => panic!("expected ShardCountMismatch, got a store"),
    }
    assert_eq!(meta_shard_count(dir.path()).unwrap(), Some(2));
    assert!(matches!(
        ShardStore::open(dir.path(), 2, 2, NODE),
        Err(StoreError::InvalidConfig(_))
    ));
}

#[test]
fn a_shard_held_by_another_opener_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _held = open(dir.path(), 0, 1);
    assert!(matches!(
        ShardStore::open(dir.path(), 0, 1, NODE),
        Err(StoreError::Locked(_))
    ));
    assert!(matches!(
        verify_ledger(dir.path()),
        Err(StoreError::Locked(_))
    ));
}

#[test]
fn users_live_on_their_username_shard() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 1, 2);
    let name = name_on(1, 2, "alice");
    let user_id = store
        .create_user(&name, "hash", Role::Developer, 50, now_ms())
        .unwrap();
    assert_eq!(ids::shard_of(user_id), 1);
    let user = store.user_by_name(&name).unwrap().unwrap();
    assert_eq!(
        (user.id, user.role, user.password_hash.as_str()),
        (user_id, Role::Developer, "hash")
    );
    assert_eq!(store.user(user_id).unwrap().unwrap().username, name);
    assert_eq!(balance(&store, user_id), (50, 0));
    assert!(matches!(
        store.create_user(&name, "other", Role::User, 0, now_ms()),
        Err(StoreError::UserExists)
    ));
    let foreign = name_on(0, 2, "bob");
    assert!(matches!(
        store.create_user(&foreign, "h", Role::User, 0, now_ms()),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.create_user("", "h", Role::User, 0, now_ms()),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(store.user_by_name("nobody").unwrap().is_none());
    assert!(matches!(
        store.balance(12345),
        Err(StoreError::UserNotFound)
    ));
}

#[test]
fn no_movement_raises_a_balance_past_the_bound() {
    use crate::money::MAX_POINTS;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let name = name_on(0, 1, "over");
    let over = store.create_user(&name, "$h", Role::User, MAX_POINTS + 1, now_ms());
    assert!(matches!(over, Err(StoreError::InvalidInput(_))), "{over:?}");
    assert!(
        store.user_by_name(&name).unwrap().is_none(),
        "nothing written"
    );
    let user_id = new_user(&mut store, "full", MAX_POINTS - 1);
    let entries = journal_len(&store);
    let refused = store.adjust_points(user_id, 2, "too much", now_ms());
    assert!(
        matches!(&refused, Err(StoreError::InvalidInput(text)) if text.contains("9007199254740991")),
        "{refused:?}"
    );
    assert_eq!(journal_len(&store), entries, "a refusal writes nothing");
    store
        .adjust_points(user_id, 1, "to the brim", now_ms())
        .unwrap();
    assert_eq!(balance(&store, user_id), (MAX_POINTS, 0));
    // Spending and voiding move points around without raising the total.
    let upload = store
        .accept_upload(user_id, upload_request(MAX_POINTS, None, now_ms()))
        .unwrap();
    assert_eq!(balance(&store, user_id), (0, MAX_POINTS));
    store.finish_upload(upload.id, done("x"), now_ms()).unwrap();
    assert_eq!(balance(&store, user_id), (0, 0));
    // A refund into a balance refilled meanwhile would pass the bound: refused, kept.
    store.adjust_points(user_id, 5, "refill", now_ms()).unwrap();
    store
        .adjust_points(user_id, MAX_POINTS - 5, "refill", now_ms())
        .unwrap();
    let report = store.report(user_id, upload.id, now_ms(), WINDOW_MS);
    assert!(
        matches!(report, Err(StoreError::InvalidInput(_))),
        "{report:?}"
    );
    assert!(!store.upload(user_id, upload.id).unwrap().unwrap().reported);
    // A balance written above the bound (before there was one) can still be spent.
    let above = Balance {
        points: MAX_POINTS + 10,
        reserved: 0,
    };
    store
        .trees
        .balances
        .insert(user_id.to_be_bytes(), encode(&above))
        .unwrap();
    store.adjust_points(user_id, -3, "down", now_ms()).unwrap();
    assert_eq!(balance(&store, user_id), (MAX_POINTS + 7, 0));
    assert!(store.adjust_points(user_id, 1, "up", now_ms()).is_err());
}

#[test]
fn adjust_points_journals_and_refuses_to_go_negative() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    assert_eq!(
        store
            .adjust_points(user_id, 5, "promo", now_ms())
            .unwrap()
            .points,
        15
    );
    assert_eq!(
        store
            .adjust_points(user_id, -15, "refund request", now_ms())
            .unwrap()
            .points,
        0
    );
    let entries = journal_len(&store);
    assert!(matches!(
        store.adjust_points(user_id, -1, "x", now_ms()),
        Err(StoreError::InsufficientPoints)
    ));
    assert!(matches!(
        store.adjust_points(user_id, 0, "x", now_ms()),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.adjust_points(999, 1, "x", now_ms()),
        Err(StoreError::UserNotFound)
    ));
    assert_eq!(
        journal_len(&store),
        entries,
        "refused adjustments write nothing"
    );
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn reserve_then_post_spends_and_void_gives_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 3);
    let first = store
        .accept_upload(user_id, upload_request(1, None, now_ms()))
        .unwrap();
    assert_eq!(first.status, UploadStatus::Pending);
    assert_eq!(balance(&store, user_id), (2, 1));
    let second = store
        .accept_upload(user_id, upload_request(2, None, now_ms()))
        .unwrap();
    assert_eq!(balance(&store, user_id), (0, 3));
    assert_eq!(
        store
            .pending_uploads()
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![first.id, second.id]
    );

    let posted = store
        .finish_upload(first.id, done("ab12"), now_ms())
        .unwrap();
    assert_eq!(
        (posted.status, posted.result.as_deref(), posted.confidence),
        (UploadStatus::Done, Some("ab12"), Some(0.9))
    );
    assert!(posted.finished_at_ms.is_some());
    assert_eq!(balance(&store, user_id), (0, 2));
    let voided = store.finish_upload(second.id, failed(), now_ms()).unwrap();
    assert_eq!(
        (voided.status, voided.error.as_deref()),
        (UploadStatus::Failed, Some("model error"))
    );
    assert_eq!(balance(&store, user_id), (2, 0));
    assert!(store.pending_uploads().unwrap().is_empty());
    assert_eq!(store.upload(user_id, first.id).unwrap().unwrap(), posted);
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn an_unacknowledged_upload_is_withdrawn_whatever_reached_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    let pending = store
        .accept_upload(user_id, upload_request(1, None, now_ms()))
        .unwrap();
    let posted = store
        .accept_upload(user_id, upload_request(2, None, now_ms()))
        .unwrap();
    store
        .finish_upload(posted.id, done("ab12"), now_ms())
        .unwrap();
    let voided = store
        .accept_upload(user_id, upload_request(3, None, now_ms()))
        .unwrap();
    store.finish_upload(voided.id, failed(), now_ms()).unwrap();
    assert_eq!(balance(&store, user_id), (7, 1));

    let reason = "storage failed";
    let withdrawn = |store: &mut ShardStore, id| {
        store
            .withdraw_unacknowledged(id, reason, now_ms())
            .unwrap()
            .unwrap()
    };
    let was_pending = withdrawn(&mut store, pending.id);
    assert_eq!(
        (was_pending.status, was_pending.error.as_deref()),
        (UploadStatus::Failed, Some(reason))
    );
    let was_done = withdrawn(&mut store, posted.id);
    assert_eq!(
        (was_done.status, was_done.reported),
        (UploadStatus::Done, true)
    );
    assert_eq!(
        withdrawn(&mut store, voided.id).status,
        UploadStatus::Failed
    );
    assert_eq!(balance(&store, user_id), (10, 0), "nothing stays charged");
    // Again (a second reopen), and an id that never reached the disk: nothing moves.
    let entries = journal_len(&store);
    withdrawn(&mut store, posted.id);
    withdrawn(&mut store, pending.id);
    assert!(store
        .withdraw_unacknowledged(posted.id + 1, reason, now_ms())
        .unwrap()
        .is_none());
    assert_eq!(journal_len(&store), entries);
    assert_eq!(balance(&store, user_id), (10, 0));
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn uploads_kept_by_a_stop_are_withdrawn_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    let posted = store
        .accept_upload(user_id, upload_request(2, None, now_ms()))
        .unwrap();
    store
        .finish_upload(posted.id, done("ab12"), now_ms())
        .unwrap();
    store.clear_kept_withdrawals().unwrap();
    // The stop (disk failed): the refused upload's id is kept; the next start withdraws it.
    withdrawals::save(dir.path(), 0, &[posted.id]).unwrap();
    assert_eq!(store.withdraw_kept("storage failed", now_ms()).unwrap(), 1);
    assert_eq!(balance(&store, user_id), (10, 0));
    store.clear_kept_withdrawals().unwrap();
    assert_eq!(store.withdraw_kept("storage failed", now_ms()).unwrap(), 0);
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn finish_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 5);
    let record = store
        .accept_upload(user_id, upload_request(1, None, now_ms()))
        .unwrap();
    let posted = store.finish_upload(record.id, done("x"), now_ms()).unwrap();
    let entries = journal_len(&store);
    assert_eq!(
        store.finish_upload(record.id, done("y"), now_ms()).unwrap(),
        posted
    );
    assert_eq!(
        store.finish_upload(record.id, failed(), now_ms()).unwrap(),
        posted,
        "a late failure does not void a posted upload"
    );
    assert_eq!(journal_len(&store), entries);
    assert_eq!(balance(&store, user_id), (4, 0));
    assert!(matches!(
        store.finish_upload(424242, done("z"), now_ms()),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn insufficient_points_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 1);
    let at_ms = now_ms(); // one instant: the stats rows compared below are of one day
    store
        .accept_upload(user_id, upload_request(1, Some("soft"), at_ms))
        .unwrap();
    let entries = journal_len(&store);
    let stats_before = store.user_stats(user_id, 1, at_ms).unwrap();
    assert!(matches!(
        store.accept_upload(user_id, upload_request(1, Some("soft"), at_ms)),
        Err(StoreError::InsufficientPoints)
    ));
    assert_eq!(journal_len(&store), entries);
    assert_eq!(balance(&store, user_id), (0, 1));
    assert_eq!(store.pending_uploads().unwrap().len(), 1);
    assert_eq!(store.user_stats(user_id, 1, at_ms).unwrap(), stats_before);
    assert!(matches!(
        store.accept_upload(777, upload_request(1, None, at_ms)),
        Err(StoreError::UserNotFound)
    ));
}

#[test]
fn report_refunds_once_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    let other_id = new_user(&mut store, "v", 10);
    let pending = store
        .accept_upload(user_id, upload_request(2, None, now_ms()))
        .unwrap();
    assert!(matches!(
        store.report(user_id, pending.id, now_ms(), WINDOW_MS),
        Err(StoreError::NotReportable)
    ));

    let posted = store
        .finish_upload(pending.id, done("ok"), now_ms())
        .unwrap();
    let finished_at_ms = posted.finished_at_ms.unwrap();
    assert!(matches!(
        store.report(other_id, posted.id, finished_at_ms, WINDOW_MS),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.report(user_id, 31337, finished_at_ms, WINDOW_MS),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.report(
            user_id,
            posted.id,
            finished_at_ms + WINDOW_MS + 1,
            WINDOW_MS
        ),
        Err(StoreError::WindowClosed)
    ));

    let (reported, after) = store
        .report(user_id, posted.id, finished_at_ms + WINDOW_MS, WINDOW_MS)
        .unwrap();
    assert!(reported.reported);
    assert_eq!(
        (after.points, after.reserved),
        (10, 0),
        "the cost came back"
    );
    assert!(matches!(
        store.report(user_id, posted.id, finished_at_ms, WINDOW_MS),
        Err(StoreError::NotReportable)
    ));
    assert!(store.upload(user_id, posted.id).unwrap().unwrap().reported);

    let failed_upload = store
        .accept_upload(user_id, upload_request(1, None, now_ms()))
        .unwrap();
    store
        .finish_upload(failed_upload.id, failed(), now_ms())
        .unwrap();
    assert!(matches!(
        store.report(user_id, failed_upload.id, now_ms(), WINDOW_MS),
        Err(StoreError::NotReportable)
    ));
    assert_eq!(balance(&store, user_id), (10, 0));
    assert!(
        store.upload(other_id, posted.id).unwrap().is_none(),
        "another user's upload is invisible"
    );
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn stats_per_user_and_soft_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 100);
    let today_ms = now_ms();
    let yesterday_ms = today_ms - day::MS_PER_DAY;
    let old = store
        .accept_upload(user_id, upload_request(1, Some("42"), yesterday_ms))
        .unwrap();
    store.finish_upload(old.id, done("a"), now_ms()).unwrap();
    let cached = store
        .accept_upload(user_id, upload_request(2, Some("42"), today_ms))
        .unwrap();
    let posted = store
        .finish_upload(
            cached.id,
            Outcome::Done {
                text: "b".into(),
                confidence: 1.0,
                cache_hit: true,
            },
            now_ms(),
        )
        .unwrap();
    let lost = store
        .accept_upload(user_id, upload_request(1, None, today_ms))
        .unwrap();
    store.finish_upload(lost.id, failed(), now_ms()).unwrap();
    store
        .accept_upload(user_id, upload_request(1, Some("42"), today_ms))
        .unwrap(); // still pending
    store
        .report(
            user_id,
            posted.id,
            posted.finished_at_ms.unwrap(),
            WINDOW_MS,
        )
        .unwrap();

    let rows = store.user_stats(user_id, 3, today_ms).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        DayStats {
            day: day::display(day::day_before(today_ms, 2)),
            ..DayStats::default()
        }
    );
    assert_eq!(
        (
            rows[1].counters.uploads,
            rows[1].counters.done,
            rows[1].counters.points_spent
        ),
        (1, 1, 1)
    );
    let today = &rows[2];
    assert_eq!(today.day, day::display(day::day_of_ms(today_ms)));
    assert_eq!(
        (
            today.counters.uploads,
            today.counters.done,
            today.counters.failed,
            today.counters.reported,
            today.counters.cache_hits,
            today.counters.points_spent
        ),
        (3, 1, 1, 1, 1, 0)
    );

    let soft = store.soft_stats("42", 2, today_ms).unwrap();
    assert_eq!((soft[0].counters.uploads, soft[0].counters.done), (1, 1));
    assert_eq!(
        (
            soft[1].counters.uploads,
            soft[1].counters.done,
            soft[1].counters.failed,
            soft[1].counters.reported
        ),
        (2, 1, 0, 1)
    );
    assert!(store
        .soft_stats("nobody", 2, today_ms)
        .unwrap()
        .iter()
        .all(|row| row.counters.uploads == 0));
    assert!(matches!(
        store.user_stats(user_id, 0, today_ms),
        Err(StoreError::InvalidInput(_))
    ));
}

#[test]
fn expired_days_are_dropped_and_their_pending_uploads_voided() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    let today_ms = now_ms();
    let ten_days_ago_ms = today_ms - 10 * day::MS_PER_DAY;
    let seven_days_ago_ms = today_ms - 7 * day::MS_PER_DAY;
    let old_done = store
        .accept_upload(user_id, upload_request(1, None, ten_days_ago_ms))
        .unwrap();
    store
        .finish_upload(old_done.id, done("a"), now_ms())
        .unwrap();
    let old_pending = store
        .accept_upload(user_id, upload_request(1, None, ten_days_ago_ms))
        .unwrap();
    let kept = store
        .accept_upload(user_id, upload_request(1, None, seven_days_ago_ms))
        .unwrap();
    assert_eq!(balance(&store, user_id), (7, 2));

    assert_eq!(store.drop_expired(today_ms, 7).unwrap(), 2);
    assert!(store.upload(user_id, old_done.id).unwrap().is_none());
    assert!(store.upload(user_id, old_pending.id).unwrap().is_none());
    assert!(matches!(
        store.report(user_id, old_done.id, today_ms, WINDOW_MS),
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.upload(user_id, kept.id).unwrap().unwrap().status,
        UploadStatus::Pending
    );
    assert_eq!(
        balance(&store, user_id),
        (8, 1),
        "the dropped pending upload was voided"
    );
    assert_eq!(store.pending_uploads().unwrap().len(), 1);
    assert_eq!(store.drop_expired(today_ms, 7).unwrap(), 0);
    assert!(!store.db.tree_names().iter().any(|name| name.as_ref()
        == layout::uploads_tree_name(day::day_of_ms(ten_days_ago_ms)).as_bytes()));
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn everything_flushed_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let at_ms = now_ms(); // one instant, so the stats row read back is of the same day
    let (user_id, posted, pending, name) = {
        let mut store = open(dir.path(), 0, 1);
        let name = name_on(0, 1, "keep");
        let user_id = store
            .create_user(&name, "h", Role::Admin, 20, now_ms())
            .unwrap();
        let posted = store
            .accept_upload(user_id, upload_request(3, Some("7"), at_ms))
            .unwrap();
        let posted = store
            .finish_upload(posted.id, done("zz"), now_ms())
            .unwrap();
        let pending = store
            .accept_upload(user_id, upload_request(4, None, at_ms))
            .unwrap();
        store.flusher().flush().unwrap();
        (user_id, posted, pending, name)
    };
    let mut store = open(dir.path(), 0, 1);
    assert_eq!(
        store.user_by_name(&name).unwrap().unwrap().role,
        Role::Admin
    );
    assert_eq!(balance(&store, user_id), (13, 4));
    assert_eq!(store.upload(user_id, posted.id).unwrap().unwrap(), posted);
    assert_eq!(store.pending_uploads().unwrap(), vec![pending.clone()]);
    assert_eq!(
        store.user_stats(user_id, 1, at_ms).unwrap()[0]
            .counters
            .uploads,
        2
    );
    let next = store.next_id().unwrap();
    assert!(next > pending.id, "ids keep increasing after a reopen");
    // Start-up voids what the previous run left pending.
    store
        .finish_upload(
            pending.id,
            Outcome::Failed {
                reason: "server stopped".into(),
            },
            now_ms(),
        )
        .unwrap();
    assert_eq!(balance(&store, user_id), (17, 0));
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

/// Each shard on its own thread (as in the server) runs a random mix of uploads, results and
/// reports; afterwards every balance equals both the journal replay and an independent model.
#[test]
fn many_uploads_on_all_shards_keep_the_ledger_exact() {
    const SHARDS: u16 = 4;
    const USERS_PER_SHARD: usize = 8;
    const STEPS: usize = 1_500;
    let dir = tempfile::tempdir().unwrap();
    let workers: Vec<_> = (0..SHARDS)
        .map(|shard| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || run_random_mix(&path, shard, SHARDS, USERS_PER_SHARD, STEPS))
        })
        .collect();
    let mut accepted = 0;
    for worker in workers {
        accepted += worker.join().unwrap();
    }
    assert!(
        accepted > 1_000,
        "the mix must exercise uploads ({accepted})"
    );
    let report = verify_ledger(dir.path()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.shards_checked, SHARDS);
    assert_eq!(
        report.users_checked,
        u64::from(SHARDS) * USERS_PER_SHARD as u64
    );
}

/// Returns the number of uploads accepted. Checks each balance against a model as it goes.
fn run_random_mix(dir: &Path, shard: u16, shard_count: u16, users: usize, steps: usize) -> usize {
    let mut store = open(dir, shard, shard_count);
    let mut random = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(shard);
    let mut next_random = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    let user_ids: Vec<u64> = (0..users)
        .map(|index| new_user(&mut store, &format!("s{shard}u{index}_"), 40))
        .collect();
    let mut model: Vec<(i64, i64)> = vec![(40, 0); users];
    let mut pending: Vec<(usize, UploadRecord)> = Vec::new();
    let mut posted: Vec<(usize, UploadRecord)> = Vec::new();
    let mut accepted = 0;
    for _ in 0..steps {
        let who = (next_random() % users as u64) as usize;
        match next_random() % 10 {
            0..=4 => {
                let cost = (next_random() % 3) as i64 + 1;
                match store
                    .accept_upload(user_ids[who], upload_request(cost, Some("soft"), now_ms()))
                {
                    Ok(record) => {
                        model[who] = (model[who].0 - cost, model[who].1 + cost);
                        pending.push((who, record));
                        accepted += 1;
                    }
                    Err(StoreError::InsufficientPoints) => assert!(model[who].0 < cost),
                    Err(other) => panic!("accept: {other}"),
                }
            }
            5..=7 if !pending.is_empty() => {
                let (owner, record) =
                    pending.swap_remove((next_random() % pending.len() as u64) as usize);
                if next_random() % 4 == 0 {
                    store.finish_upload(record.id, failed(), now_ms()).unwrap();
                    model[owner] = (model[owner].0 + record.cost, model[owner].1 - record.cost);
                } else {
                    let finished = store.finish_upload(record.id, done("r"), now_ms()).unwrap();
                    model[owner].1 -= record.cost;
                    posted.push((owner, finished));
                }
            }
            8 if !posted.is_empty() => {
                let (owner, record) =
                    posted.swap_remove((next_random() % posted.len() as u64) as usize);
                store
                    .report(
                        user_ids[owner],
                        record.id,
                        record.finished_at_ms.unwrap(),
                        WINDOW_MS,
                    )
                    .unwrap();
                model[owner].0 += record.cost;
            }
            _ => {
                store
                    .adjust_points(user_ids[who], 5, "top-up", now_ms())
                    .unwrap();
                model[who].0 += 5;
            }
        }
        assert_eq!(balance(&store, user_ids[who]), model[who]);
    }
    for (index, user_id) in user_ids.iter().enumerate() {
        assert_eq!(balance(&store, *user_id), model[index]);
    }
    store.flusher().flush().unwrap();
    accepted
}

/// Rewrites one stored journal entry with `change` applied, bypassing the store.
fn tamper_with_journal(dir: &Path, change: impl Fn(&mut JournalEntry) -> bool) {
    let db = layout::open_db(&layout::shard_dir(dir, 0)).unwrap();
    let journal = db.open_tree("journal").unwrap();
    for item in journal.iter() {
        let (key, bytes) = item.unwrap();
        let mut entry: JournalEntry = decode(&bytes).unwrap();
        if change(&mut entry) {
            journal.insert(key, encode(&entry)).unwrap();
            db.flush().unwrap();
            return;
        }
    }
    panic!("no journal entry matched");
}

fn ledger_with_one_done_upload(dir: &Path) -> u64 {
    let mut store = open(dir, 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    let record = store
        .accept_upload(user_id, upload_request(2, None, now_ms()))
        .unwrap();
    store.finish_upload(record.id, done("x"), now_ms()).unwrap();
    store.adjust_points(user_id, 3, "bonus", now_ms()).unwrap();
    store.flusher().flush().unwrap();
    drop(store);
    assert!(
        verify_ledger(dir).unwrap().is_clean(),
        "clean before tampering"
    );
    user_id
}

#[test]
fn a_journal_amount_changed_by_hand_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let user_id = ledger_with_one_done_upload(dir.path());
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
    tamper_with_journal(dir.path(), |entry| {
        let hit = entry.kind == EntryKind::Adjust;
        entry.delta = 300;
        hit
    });
    let report = verify_ledger(dir.path()).unwrap();
    assert!(!report.is_clean());
    assert!(
        report
            .problems
            .iter()
            .any(|problem| problem.user_id == user_id && problem.detail.contains("replays to")),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_journal_entry_deleted_by_hand_is_found() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with_one_done_upload(dir.path());
    {
        let db = layout::open_db(&layout::shard_dir(dir.path(), 0)).unwrap();
        let journal = db.open_tree("journal").unwrap();
        let reserve_key = journal
            .iter()
            .map(Result::unwrap)
            .find(|(_, bytes)| decode::<JournalEntry>(bytes).unwrap().kind == EntryKind::Reserve)
            .unwrap()
            .0;
        journal.remove(reserve_key).unwrap();
        db.flush().unwrap();
    }
    let report = verify_ledger(dir.path()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|problem| problem.detail.contains("out of order")),
        "{:?}",
        report.problems
    );
    assert!(report
        .problems
        .iter()
        .any(|problem| problem.detail.contains("replays to")));
}

#[test]
fn a_balance_changed_by_hand_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let user_id = ledger_with_one_done_upload(dir.path());
    {
        let db = layout::open_db(&layout::shard_dir(dir.path(), 0)).unwrap();
        let balances = db.open_tree("balances").unwrap();
        balances
            .insert(
                user_id.to_be_bytes(),
                encode(&Balance {
                    points: 1_000,
                    reserved: 0,
                }),
            )
            .unwrap();
        db.flush().unwrap();
    }
    let report = verify_ledger(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].user_id, user_id);
}

/// An upload record flipped from done to failed by hand (no journal entry) is found.
#[test]
fn an_upload_record_that_disagrees_with_the_journal_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let user_id = ledger_with_one_done_upload(dir.path());
    {
        let db = layout::open_db(&layout::shard_dir(dir.path(), 0)).unwrap();
        let only_day = *layout::existing_days(&db).iter().next().unwrap();
        let uploads = db.open_tree(layout::uploads_tree_name(only_day)).unwrap();
        let (key, bytes) = uploads.iter().next().unwrap().unwrap();
        let mut record: UploadRecord = decode(&bytes).unwrap();
        assert_eq!(record.status, UploadStatus::Done);
        record.status = UploadStatus::Failed;
        uploads.insert(key, encode(&record)).unwrap();
        db.flush().unwrap();
    }
    let report = verify_ledger(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].user_id, user_id);
    assert!(
        report.problems[0]
            .detail
            .contains("the journal says Posted"),
        "{}",
        report.problems[0]
    );
}

#[test]
fn garbage_records_are_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let user_id = ledger_with_one_done_upload(dir.path());
    {
        let db = layout::open_db(&layout::shard_dir(dir.path(), 0)).unwrap();
        db.open_tree("balances")
            .unwrap()
            .insert(user_id.to_be_bytes(), &b"\xff\x01"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path(), 0, 1);
    assert!(matches!(
        store.balance(user_id),
        Err(StoreError::Corrupt(_))
    ));
    drop(store);
    assert!(matches!(
        verify_ledger(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn verify_refuses_a_directory_without_meta() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        verify_ledger(dir.path()),
        Err(StoreError::InvalidConfig(_))
    ));
}

/// Micro-benchmark (run with `cargo test --release -- --ignored --nocapture store_bench`):
/// reserve+post pairs per second with no flush, a flush after every pair, and a flush per
/// group of 64 pairs (what group commit amortises to under load).
#[test]
#[ignore]
fn store_bench_reserve_post() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "bench", 10_000_000);
    let flusher = store.flusher();
    for (label, pairs, flush_every) in [
        ("no flush", 20_000, 0),
        ("flush every pair", 300, 1),
        ("flush every 64 pairs", 6_400, 64),
    ] {
        let started = std::time::Instant::now();
        for index in 0..pairs {
            let record = store
                .accept_upload(user_id, upload_request(1, Some("bench"), now_ms()))
                .unwrap();
            store
                .finish_upload(record.id, done("ab12"), now_ms())
                .unwrap();
            if flush_every > 0 && (index + 1) % flush_every == 0 {
                flusher.flush().unwrap();
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "store_bench {label:>22}: {pairs:>6} reserve+post in {seconds:.3} s = {:>9.0} pairs/s",
            pairs as f64 / seconds
        );
    }
    drop((store, flusher)); // the flusher shares the database handle (and its lock)
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

/// Micro-benchmark of the `GET /v2/user/point` state work (balance read), run like
/// `store_bench_reserve_post`.
#[test]
#[ignore]
fn store_bench_balance_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "bench", 100);
    const READS: u32 = 1_000_000;
    let started = std::time::Instant::now();
    let mut total = 0i64;
    for _ in 0..READS {
        total += store.balance(user_id).unwrap().points;
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(total, 100 * i64::from(READS));
    println!(
        "store_bench balance read: {READS} in {seconds:.3} s = {:.0} reads/s",
        f64::from(READS) / seconds
    );
}

#[test]
fn api_keys_replace_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "keyed", 0);
    let (first, second) = ([1u8; 32], [2u8; 32]);
    assert_eq!(store.set_api_key(user_id, &first, 1_000).unwrap(), None);
    assert_eq!(store.user_by_api_key(&first).unwrap().unwrap().id, user_id);
    assert_eq!(store.api_key_created_at(user_id).unwrap(), Some(1_000));
    // Replacing revokes the first key.
    assert_eq!(
        store.set_api_key(user_id, &second, 2_000).unwrap(),
        Some(first)
    );
    assert!(store.user_by_api_key(&first).unwrap().is_none());
    assert_eq!(store.user_by_api_key(&second).unwrap().unwrap().id, user_id);
    assert_eq!(store.api_key_created_at(user_id).unwrap(), Some(2_000));
    assert_eq!(store.revoke_api_key(user_id).unwrap(), Some(second));
    assert!(store.user_by_api_key(&second).unwrap().is_none());
    assert_eq!(store.revoke_api_key(user_id).unwrap(), None);
    assert_eq!(store.api_key_created_at(user_id).unwrap(), None);
    assert!(matches!(
        store.set_api_key(424242, &first, 3_000),
        Err(StoreError::UserNotFound)
    ));
    // Survives a reopen.
    store.set_api_key(user_id, &first, 4_000).unwrap();
    drop(store);
    let store = open(dir.path(), 0, 1);
    assert_eq!(store.user_by_api_key(&first).unwrap().unwrap().id, user_id);
}

/// A data directory with two shards, a user on each, some journal entries, flushed with
/// their extents recorded; closed.
fn two_shard_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for shard in 0..2 {
        let mut store = open(dir.path(), shard, 2);
        let user_id = new_user(&mut store, "damage", 10);
        store.adjust_points(user_id, 5, "x", now_ms()).unwrap();
        store.flusher().flush_and_record().unwrap();
    }
    dir
}

fn refused(dir: &Path, shard: u16) -> String {
    match ShardStore::open(dir, shard, 2, NODE) {
        Err(StoreError::Damaged(message)) => message,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("shard {shard} opened"),
    }
}

fn verify_problems(dir: &Path) -> Vec<String> {
    verify_ledger(dir)
        .unwrap()
        .problems
        .iter()
        .map(|problem| problem.detail.clone())
        .collect()
}

#[test]
fn a_missing_or_recreated_shard_is_refused_and_reported() {
    let dir = two_shard_dir();
    assert!(verify_problems(dir.path()).is_empty());
    let shard_1 = layout::shard_dir(dir.path(), 1);
    std::fs::remove_dir_all(&shard_1).unwrap();
    assert!(refused(dir.path(), 1).contains("is missing"));
    assert!(verify_problems(dir.path())[0].contains("is missing"));
    // Recreated: an empty database where the shard was.
    std::fs::create_dir_all(&shard_1).unwrap();
    drop(sled::open(&shard_1).unwrap());
    assert!(refused(dir.path(), 1).contains("no identity"));
    assert!(verify_problems(dir.path())[0].contains("no identity"));
    // Shard 0 is untouched and still opens.
    drop(open(dir.path(), 0, 2));
}

#[test]
fn swapped_or_foreign_shard_directories_are_refused_and_reported() {
    let dir = two_shard_dir();
    let (shard_0, shard_1) = (
        layout::shard_dir(dir.path(), 0),
        layout::shard_dir(dir.path(), 1),
    );
    let aside = dir.path().join("aside");
    std::fs::rename(&shard_0, &aside).unwrap();
    std::fs::rename(&shard_1, &shard_0).unwrap();
    std::fs::rename(&aside, &shard_1).unwrap();
    assert!(refused(dir.path(), 0).contains("holds shard 1"));
    assert!(refused(dir.path(), 1).contains("holds shard 0"));
    assert_eq!(verify_problems(dir.path()).len(), 2);

    let other = two_shard_dir();
    std::fs::remove_dir_all(&shard_0).unwrap();
    copy_dir(&layout::shard_dir(other.path(), 0), &shard_0);
    assert!(refused(dir.path(), 0).contains("another data directory"));
}

#[test]
fn a_rolled_back_shard_is_refused_and_reported() {
    let dir = two_shard_dir();
    let shard_1 = layout::shard_dir(dir.path(), 1);
    let backup = dir.path().join("backup");
    copy_dir(&shard_1, &backup);
    {
        let mut store = open(dir.path(), 1, 2);
        let user_id = store
            .user_by_name(&name_on(1, 2, "damage"))
            .unwrap()
            .unwrap()
            .id;
        store
            .adjust_points(user_id, 7, "after the backup", now_ms())
            .unwrap();
        store.flusher().flush_and_record().unwrap();
    }
    std::fs::remove_dir_all(&shard_1).unwrap();
    copy_dir(&backup, &shard_1);
    assert!(refused(dir.path(), 1).contains("older copy"));
    assert!(verify_problems(dir.path())
        .iter()
        .any(|problem| problem.contains("ends at journal entry")));
}

#[test]
fn data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = two_shard_dir();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    let shard_0 = layout::shard_dir(dir.path(), 0);
    assert_eq!(mode(&shard_0), 0o700);
    for entry in std::fs::read_dir(&shard_0).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(mode(&dir.path().join("meta.json")), 0o600);
    assert_eq!(mode(&identity::extent_path(dir.path(), 0)), 0o600);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn cached_upload(cost: i64, text: &str, at_ms: u64) -> CachedUpload {
    CachedUpload {
        upload: upload_request(cost, Some("soft"), at_ms),
        text: text.into(),
        // Not NaN ("none"): records are compared with ==.
        confidence: 0.5,
    }
}

#[test]
fn cache_hits_are_charged_all_or_none_and_reportable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 3);
    let at_ms = now_ms();
    let entries = journal_len(&store);
    // Four points asked of three: nothing is written.
    let too_many = (0..2)
        .map(|i| cached_upload(2, &format!("t{i}"), at_ms))
        .collect();
    assert!(matches!(
        store.record_cache_hits(user_id, too_many),
        Err(StoreError::InsufficientPoints)
    ));
    assert_eq!(journal_len(&store), entries);
    assert_eq!(balance(&store, user_id), (3, 0));

    let hits = vec![cached_upload(1, "ab", at_ms), cached_upload(2, "cd", at_ms)];
    let records = store.record_cache_hits(user_id, hits).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(balance(&store, user_id), (0, 0));
    assert_eq!(journal_len(&store), entries + 1, "one charge for the batch");
    for record in &records {
        assert_eq!(record.status, UploadStatus::Done);
        assert!(record.cache_hit);
        assert_eq!(
            store.upload(user_id, record.id).unwrap().as_ref(),
            Some(record)
        );
    }
    assert_eq!(records[1].result.as_deref(), Some("cd"));
    assert!(store.pending_uploads().unwrap().is_empty());
    let today = &store.user_stats(user_id, 1, at_ms).unwrap()[0].counters;
    assert_eq!(
        (
            today.uploads,
            today.done,
            today.cache_hits,
            today.points_spent
        ),
        (2, 2, 2, 3)
    );
    let finished_at_ms = records[1].finished_at_ms.unwrap();
    let (_, after) = store
        .report(user_id, records[1].id, finished_at_ms, WINDOW_MS)
        .unwrap();
    assert_eq!(after.points, 2);
    assert!(matches!(
        store.report(user_id, records[1].id, finished_at_ms, WINDOW_MS),
        Err(StoreError::NotReportable)
    ));
    let (reported, after) = store
        .report(user_id, records[0].id, finished_at_ms, WINDOW_MS)
        .unwrap();
    assert!(reported.reported);
    assert_eq!(after.points, 3);
    let today = &store.user_stats(user_id, 1, at_ms).unwrap()[0].counters;
    assert_eq!((today.reported, today.points_spent), (2, 0));
    assert!(store
        .record_cache_hits(user_id, Vec::new())
        .unwrap()
        .is_empty());
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn hits_of_several_requests_go_in_one_transaction_each_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let (ann, bob) = (
        new_user(&mut store, "ann", 5),
        new_user(&mut store, "bob", 1),
    );
    let at_ms = now_ms();
    let entries = journal_len(&store);
    let request = |user_id: u64, costs: &[i64]| HitRequest {
        user_id,
        hits: costs
            .iter()
            .map(|&cost| cached_upload(cost, "ab", at_ms))
            .collect(),
    };
    let outcomes = store.record_cache_hit_requests(vec![
        request(ann, &[1, 2]),
        // Bob has one point: refused whole, the others go on.
        request(bob, &[1, 1]),
        request(ann, &[]),
        // Ann's first request left her two: this one fits, the next does not.
        request(ann, &[2]),
        request(ann, &[1]),
        request(bob, &[1]),
        request(u64::MAX, &[1]),
    ]);
    let counts: Vec<Result<usize, String>> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(records) => Ok(records.len()),
            Err(error) => Err(error.to_string()),
        })
        .collect();
    let refused = |error: StoreError| Err(error.to_string());
    assert_eq!(
        counts,
        vec![
            Ok(2),
            refused(StoreError::InsufficientPoints),
            Ok(0),
            Ok(1),
            refused(StoreError::InsufficientPoints),
            Ok(1),
            refused(StoreError::UserNotFound),
        ]
    );
    assert_eq!(balance(&store, ann), (0, 0));
    assert_eq!(balance(&store, bob), (0, 0));
    assert_eq!(
        journal_len(&store),
        entries + 3,
        "one charge per request written"
    );
    for outcome in outcomes.iter().flatten() {
        for record in outcome {
            assert_eq!(
                store.upload(record.user_id, record.id).unwrap().as_ref(),
                Some(record)
            );
        }
    }
    let today = &store.user_stats(ann, 1, at_ms).unwrap()[0].counters;
    assert_eq!(
        (today.uploads, today.cache_hits, today.points_spent),
        (3, 3, 5)
    );
    let today = &store.user_stats(bob, 1, at_ms).unwrap()[0].counters;
    assert_eq!(
        (today.uploads, today.cache_hits, today.points_spent),
        (1, 1, 1)
    );
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

/// Micro-benchmark (run like `store_bench_reserve_post`): one batch of 100 cache hits
/// recorded (the transaction of `POST /v2/decode/cached`), then its flush, timed apart.
#[test]
#[ignore]
fn store_bench_cache_hits() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "bench", 10_000_000);
    let flusher = store.flusher();
    const BATCHES: u32 = 200;
    let (mut record_s, mut flush_s) = (0.0, 0.0);
    for _ in 0..BATCHES {
        let at_ms = now_ms();
        let hits = (0..100).map(|_| cached_upload(1, "ab12", at_ms)).collect();
        let started = std::time::Instant::now();
        assert_eq!(store.record_cache_hits(user_id, hits).unwrap().len(), 100);
        let recorded = std::time::Instant::now();
        flusher.flush().unwrap();
        record_s += (recorded - started).as_secs_f64();
        flush_s += recorded.elapsed().as_secs_f64();
    }
    let per_batch_ms = |seconds: f64| seconds * 1e3 / f64::from(BATCHES);
    println!(
        "store_bench cache hits: batch of 100 recorded in {:.3} ms, flushed in {:.3} ms (mean of {BATCHES})",
        per_batch_ms(record_s),
        per_batch_ms(flush_s)
    );
    drop((store, flusher));
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

/// Records a batch of `count` one-point hits for `user_id` at `at_ms`.
fn hit_batch(store: &mut ShardStore, user_id: u64, count: usize, at_ms: u64) -> Vec<u64> {
    let hits = (0..count)
        .map(|index| cached_upload(1, &format!("h{index}"), at_ms))
        .collect();
    let records = store.record_cache_hits(user_id, hits).unwrap();
    records.iter().map(|record| record.id).collect()
}

#[test]
fn cache_hit_batches_read_as_uploads_by_id_and_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let (ann, bob) = (
        new_user(&mut store, "ann", 50),
        new_user(&mut store, "bob", 50),
    );
    let at_ms = now_ms();
    let mut ids = vec![
        store
            .accept_upload(ann, upload_request(1, None, at_ms))
            .unwrap()
            .id,
    ];
    ids.extend(hit_batch(&mut store, ann, 5, at_ms));
    hit_batch(&mut store, bob, 2, at_ms);
    ids.extend(hit_batch(&mut store, ann, 1, at_ms));
    ids.push(
        store
            .accept_upload(ann, upload_request(1, None, at_ms))
            .unwrap()
            .id,
    );
    for (index, &id) in ids.iter().enumerate().skip(1).take(5) {
        let record = store.upload(ann, id).unwrap().unwrap();
        assert_eq!(record.result.as_deref(), Some(&*format!("h{}", index - 1)));
        assert!(record.cache_hit);
        assert_eq!(store.upload(bob, id).unwrap(), None, "another user's");
    }
    // The batch's charge is the id after its last hit: not an upload.
    assert_eq!(store.upload(ann, ids[5] + 1).unwrap(), None);
    // Pages of 4, newest first, cutting through the batch of 5.
    let mut newest_first = ids.clone();
    newest_first.reverse();
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store.uploads_page(ann, before, 4).unwrap();
        paged.extend(page.iter().map(|record| record.id));
        match page.last() {
            Some(last) if page.len() == 4 => before = Some(last.id),
            _ => break,
        }
    }
    assert_eq!(paged, newest_first);
    assert_eq!(store.uploads_page(bob, None, 10).unwrap().len(), 2);
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn hits_are_withdrawn_like_done_uploads_and_retention_drops_their_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    let now = now_ms();
    let old = hit_batch(&mut store, user_id, 3, now - 10 * super::day::MS_PER_DAY);
    let recent = hit_batch(&mut store, user_id, 2, now);
    assert_eq!(balance(&store, user_id), (5, 0));
    let withdrawn = store
        .withdraw_unacknowledged(recent[1], "refused", now)
        .unwrap()
        .unwrap();
    assert!(withdrawn.reported, "a done upload is withdrawn by a refund");
    assert_eq!(balance(&store, user_id), (6, 0));
    let again = store.withdraw_unacknowledged(recent[1], "refused", now);
    assert!(again.unwrap().unwrap().reported);
    assert_eq!(balance(&store, user_id), (6, 0), "refunded once");
    assert_eq!(store.drop_expired(now, 7).unwrap(), 3);
    for id in old {
        assert_eq!(store.upload(user_id, id).unwrap(), None);
    }
    let left: Vec<u64> = store
        .uploads_page(user_id, None, 10)
        .unwrap()
        .iter()
        .map(|record| record.id)
        .collect();
    assert_eq!(left, [recent[1], recent[0]]);
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

/// Changes the stored batch of hits `batch_id` of the day of `at_ms` as `change` says (a
/// damaged or tampered record).
fn rewrite_batch(
    store: &ShardStore,
    at_ms: u64,
    batch_id: u64,
    change: impl FnOnce(&mut super::records::CacheHitBatch),
) {
    let day_number = super::day::day_of_ms(at_ms);
    let tree = store
        .db
        .open_tree(super::layout::hits_tree_name(day_number))
        .unwrap();
    let bytes = tree.get(batch_id.to_be_bytes()).unwrap().unwrap();
    let mut batch = decode(&bytes).unwrap();
    change(&mut batch);
    tree.insert(batch_id.to_be_bytes(), encode(&batch)).unwrap();
}

#[test]
fn ledger_verify_finds_a_hit_marked_reported_without_its_refund() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    let at_ms = now_ms();
    let ids = hit_batch(&mut store, user_id, 3, at_ms);
    rewrite_batch(&store, at_ms, ids[0], |batch| batch.hits[2].reported = true);
    store.flusher().flush().unwrap();
    drop(store);
    let report = verify_ledger(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].detail.starts_with("cache hits"));
}

#[test]
fn a_request_of_more_hits_than_one_record_holds_is_kept_as_several() {
    use super::cache_hits::MAX_HITS_PER_BATCH;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let count = 2 * MAX_HITS_PER_BATCH + 3;
    let user_id = new_user(&mut store, "u", count as i64);
    let ids = hit_batch(&mut store, user_id, count, now_ms());
    assert_eq!(balance(&store, user_id), (0, 0));
    let day = super::day::day_of_ms(now_ms());
    let records = store
        .db
        .open_tree(super::layout::hits_tree_name(day))
        .unwrap();
    assert_eq!(records.len(), 3, "two full records and one of 3");
    // A hit of the middle record is reported; every hit reads back; the pages hold them all.
    let middle = ids[MAX_HITS_PER_BATCH + 7];
    let (_, after) = store.report(user_id, middle, now_ms(), WINDOW_MS).unwrap();
    assert_eq!(after.points, 1);
    for &id in &ids {
        assert_eq!(
            store.upload(user_id, id).unwrap().unwrap().reported,
            id == middle
        );
    }
    let (mut paged, mut before) = (0, None);
    loop {
        let page = store
            .uploads_page(user_id, before, MAX_UPLOADS_PAGE)
            .unwrap();
        let Some(last) = page.last() else { break };
        paged += page.len();
        before = Some(last.id);
    }
    assert_eq!(paged, count);
    drop((store, records));
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

#[test]
fn a_damaged_batch_of_hits_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "u", 10);
    let at_ms = now_ms();
    let ids = hit_batch(&mut store, user_id, 2, at_ms);
    rewrite_batch(&store, at_ms, ids[0], |batch| batch.hits.clear());
    assert!(matches!(
        store.upload(user_id, ids[1]),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.report(user_id, ids[0], at_ms, WINDOW_MS),
        Err(StoreError::Corrupt(_))
    ));
    store.flusher().flush().unwrap();
    drop(store);
    assert!(matches!(
        verify_ledger(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn task_ids_name_their_uploads_across_restarts_until_retention_drops_them() {
    use super::task_ids::{self, MAX_TASK_ID};
    let dir = tempfile::tempdir().unwrap();
    let today_ms = now_ms();
    let ten_days_ago_ms = today_ms - 10 * day::MS_PER_DAY;
    let (user_id, old, recent) = {
        let mut store = open(dir.path(), 1, 2);
        let user_id = new_user(&mut store, "tasks", 10);
        let old = store
            .accept_task_upload(user_id, upload_request(1, None, ten_days_ago_ms), 0)
            .unwrap();
        // A task that keeps an answer format of its protocol's.
        let recent = store
            .accept_task_upload(user_id, upload_request(1, None, today_ms), 2)
            .unwrap();
        // A refused task spends no id: the next one gets it.
        let refused = store.accept_task_upload(user_id, upload_request(99, None, today_ms), 0);
        assert!(matches!(refused, Err(StoreError::InsufficientPoints)));
        let next = store
            .accept_task_upload(user_id, upload_request(1, None, today_ms), 0)
            .unwrap();
        assert_eq!(next.1, recent.1 + 1);
        store.flusher().flush().unwrap();
        (user_id, old, recent)
    };
    for (record, task_id) in [&old, &recent] {
        assert!(*task_id <= MAX_TASK_ID && task_ids::is_task_id(*task_id));
        assert_eq!(task_ids::shard_of(*task_id), 1);
        assert_eq!(task_ids::node_of(*task_id), NODE);
        assert_ne!(*task_id, record.id, "a number of its own");
    }
    let mut store = open(dir.path(), 1, 2);
    assert_eq!(store.task_upload(old.1).unwrap(), Some((old.0.id, 0)));
    assert_eq!(store.task_upload(recent.1).unwrap(), Some((recent.0.id, 2)));
    assert_eq!(store.task_upload(recent.1 + 100).unwrap(), None);
    let (_, after_restart) = store
        .accept_task_upload(user_id, upload_request(1, None, today_ms), 0)
        .unwrap();
    assert!(after_restart > recent.1 + 1, "never an id issued before");
    // Retention drops the old day's task with its upload, and its index entry.
    assert_eq!(store.drop_expired(today_ms, 7).unwrap(), 1);
    assert_eq!(store.task_upload(old.1).unwrap(), None);
    assert!(store
        .trees
        .task_days
        .get(old.1.to_be_bytes())
        .unwrap()
        .is_none());
    assert_eq!(store.task_upload(recent.1).unwrap(), Some((recent.0.id, 2)));
    // Another shard's ids never meet these.
    let mut other = open(dir.path(), 0, 2);
    let other_user = new_user(&mut other, "tasks", 1);
    let (_, other_task) = other
        .accept_task_upload(other_user, upload_request(1, None, today_ms), 0)
        .unwrap();
    assert_eq!(task_ids::shard_of(other_task), 0);
    assert_eq!(store.task_upload(other_task).unwrap(), None);
    drop((store, other));
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}

/// The balance memo never answers a balance the tree no longer holds: after every kind of
/// points movement (each a transaction through `journal::apply_movement`), a balance read
/// first (so remembered) reads as the tree does.
#[test]
fn the_balance_memo_follows_every_movement() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 0, 1);
    let user_id = new_user(&mut store, "memo", 10);
    let at_ms = now_ms();
    let agrees = |store: &ShardStore, step: &str| {
        assert_eq!(
            store.balance(user_id).unwrap(),
            store.balance_on_disk(user_id).unwrap(),
            "after {step}"
        );
    };
    agrees(&store, "creation");
    store.adjust_points(user_id, 5, "grant", at_ms).unwrap();
    agrees(&store, "an adjustment");
    let posted = store
        .accept_upload(user_id, upload_request(2, None, at_ms))
        .unwrap();
    agrees(&store, "a reservation");
    let finished = store.finish_upload(posted.id, done("ab"), at_ms).unwrap();
    agrees(&store, "a post");
    let voided = store
        .accept_upload(user_id, upload_request(3, None, at_ms))
        .unwrap();
    agrees(&store, "a second reservation");
    store.void_upload(voided.id, "test", at_ms).unwrap();
    agrees(&store, "a void");
    store
        .report(
            user_id,
            posted.id,
            finished.finished_at_ms.unwrap(),
            WINDOW_MS,
        )
        .unwrap();
    agrees(&store, "a report");
    let hits = store
        .record_cache_hits(user_id, vec![cached_upload(1, "cd", at_ms)])
        .unwrap();
    agrees(&store, "a charged cache hit");
    store
        .report(
            user_id,
            hits[0].id,
            hits[0].finished_at_ms.unwrap(),
            WINDOW_MS,
        )
        .unwrap();
    agrees(&store, "a hit's refund");
    assert_eq!(balance(&store, user_id), (15, 0));
    drop(store);
    assert!(verify_ledger(dir.path()).unwrap().is_clean());
}
