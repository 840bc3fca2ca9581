//! The JSON task protocol's task ids (`taskId` of anti-captcha, 2captcha v2, CapMonster,
//! CapSolver): integers a JavaScript client reads exactly, so at most 2^53 - 1. Upload ids
//! are 63-bit snowflakes (`ids.rs`), so a task id is a number of its own, mapped to its
//! upload by the shard that made it.
//!
//! Layout (53 bits, most significant first): 6 bits node id, 4 bits shard, 43 bits serial.
//! The serial counts the shard's tasks from 1: a counter, not a clock, so
//! - it never repeats and never depends on the wall clock (a clock step changes nothing);
//! - no rate limits it: 2^43 - 1 = 8,796,093,022,207 tasks per shard in all, 27.9 years of
//!   10,000 tasks a second on one shard every second, day and night;
//! - at the end the shard refuses new tasks (`StoreError::TaskIdsExhausted`, contract 9999;
//!   the other protocols and `/v2` go on), rather than wrap around and name an old task;
//! - node and shard bits make it unique on the platform (`node_id` is unique per node,
//!   docs/cluster.md), and ids of node 0, shard 0 are the small numbers clients expect;
//! - like the snowflake generator, the counter persists a high-water mark
//!   ([`SERIAL_RESERVE`] ahead) before it issues a serial below it, in the same database as
//!   the mapping: sled recovers a prefix of its log, so a mapping never survives a crash
//!   without its mark, and a restart resumes after every serial that may have been issued
//!   (skipping at most [`SERIAL_RESERVE`]).
//!
//! The mapping is kept like an upload's day (layout.rs): `task_days` (task id -> day) and the
//! day's `tasks-YYYYMMDD` (task id -> upload id), written in the upload's own transaction
//! and dropped with its day by retention. A task id therefore names its upload as long as the
//! upload is kept, across restarts, and never another one.

use super::layout::u64_key;
use super::StoreError;

pub const TASK_NODE_BITS: u32 = 6;
pub const TASK_SHARD_BITS: u32 = 4;
pub const TASK_SERIAL_BITS: u32 = 43;
/// The largest task id: 2^53 - 1, the largest integer every JSON reader reads exactly.
pub const MAX_TASK_ID: u64 = (1 << (TASK_NODE_BITS + TASK_SHARD_BITS + TASK_SERIAL_BITS)) - 1;
pub const MAX_SERIAL: u64 = (1 << TASK_SERIAL_BITS) - 1;
const SHARD_SHIFT: u32 = TASK_SERIAL_BITS;
const NODE_SHIFT: u32 = TASK_SERIAL_BITS + TASK_SHARD_BITS;

/// How far ahead of the issued serials the persisted mark is pushed: it is written once per
/// this many tasks, and a restart skips at most this many serials.
pub const SERIAL_RESERVE: u64 = 4096;

/// The `meta` key of the counter's mark (the first serial not yet covered).
const MARK_KEY: &[u8] = b"task_serial_high_water";

// The layout fills exactly the integers JSON readers read exactly.
const _: () = assert!(MAX_TASK_ID == crate::json_numbers::MAX_SAFE_INTEGER as u64);
const _: () = assert!(TASK_NODE_BITS == super::ids::NODE_BITS);
const _: () = assert!(TASK_SHARD_BITS == super::ids::SHARD_BITS);

/// The task id of `serial` on `node`'s `shard`.
pub fn compose(node_id: u16, shard: u16, serial: u64) -> u64 {
    assert!(node_id <= super::ids::MAX_NODE_ID && shard < super::ids::MAX_SHARDS);
    assert!(
        (1..=MAX_SERIAL).contains(&serial),
        "serial {serial} out of range"
    );
    (u64::from(node_id) << NODE_SHIFT) | (u64::from(shard) << SHARD_SHIFT) | serial
}

/// The shard that issued a task id.
pub fn shard_of(task_id: u64) -> u16 {
    ((task_id >> SHARD_SHIFT) & ((1 << TASK_SHARD_BITS) - 1)) as u16
}

/// The node that issued a task id.
pub fn node_of(task_id: u64) -> u16 {
    ((task_id >> NODE_SHIFT) & ((1 << TASK_NODE_BITS) - 1)) as u16
}

/// Whether `number` can be a task id at all (above it: the 64-bit upload id that older
/// versions answered as `taskId`, which getTaskResult still takes).
pub fn is_task_id(number: u64) -> bool {
    (1..=MAX_TASK_ID).contains(&number) && number & MAX_SERIAL != 0
}

/// One shard's task counter.
pub struct TaskSerials {
    node_id: u16,
    shard: u16,
    meta: sled::Tree,
    /// The next serial to issue (1 on a new shard).
    next: u64,
    /// Every serial below it may have been issued; the persisted mark is at least this.
    mark: u64,
}

impl TaskSerials {
    /// The counter of a shard's database, resuming at its persisted mark.
    pub fn open(node_id: u16, shard: u16, meta: sled::Tree) -> Result<TaskSerials, StoreError> {
        let mark = match meta.get(MARK_KEY)? {
            Some(bytes) => u64_key(&bytes)?,
            None => 1,
        };
        Ok(TaskSerials {
            node_id,
            shard,
            meta,
            next: mark,
            mark,
        })
    }

    /// The next task id. Fails when the mark cannot be written, or when the serials are
    /// spent (`TaskIdsExhausted`).
    pub fn next_task_id(&mut self) -> Result<u64, StoreError> {
        if self.next > MAX_SERIAL {
            return Err(StoreError::TaskIdsExhausted(self.shard));
        }
        if self.next >= self.mark {
            let mark = (self.next + SERIAL_RESERVE).min(MAX_SERIAL + 1);
            self.meta.insert(MARK_KEY, &mark.to_be_bytes())?;
            self.mark = mark;
        }
        let serial = self.next;
        self.next += 1;
        assert!(serial < self.mark, "issued below the persisted mark");
        Ok(compose(self.node_id, self.shard, serial))
    }

    /// Takes back `task_id`, the last one issued, which nothing names (its upload was
    /// refused): the next task gets it.
    pub fn give_back(&mut self, task_id: u64) {
        assert_eq!(
            task_id,
            compose(self.node_id, self.shard, self.next - 1),
            "only the last task id comes back"
        );
        self.next -= 1;
    }

    /// The first serial not issued yet (what a reopened store resumes after).
    pub fn next_serial(&self) -> u64 {
        self.next
    }

    /// Issues nothing below `serial` any more: a store reopened in the same process (after a
    /// storage failure) resumes at its persisted mark, which may lag behind serials its
    /// previous incarnation issued (as `IdGenerator::resume_after`).
    pub fn resume_at(&mut self, serial: u64) {
        self.next = self.next.max(serial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_meta() -> (sled::Db, sled::Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let meta = db.open_tree("meta").unwrap();
        (db, meta)
    }

    #[test]
    fn the_layout_fits_53_bits_and_round_trips() {
        let largest = compose(63, 15, MAX_SERIAL);
        assert_eq!(largest, MAX_TASK_ID);
        assert_eq!(largest, 9_007_199_254_740_991);
        assert_eq!((node_of(largest), shard_of(largest)), (63, 15));
        let first = compose(0, 0, 1);
        assert_eq!(first, 1, "node 0, shard 0 counts 1, 2, 3...");
        let id = compose(5, 9, 123);
        assert_eq!((node_of(id), shard_of(id), id & MAX_SERIAL), (5, 9, 123));
        assert!(is_task_id(id) && is_task_id(MAX_TASK_ID));
        assert!(
            !is_task_id(0) && !is_task_id(MAX_TASK_ID + 1) && !is_task_id(compose(1, 2, 1) - 1)
        );
        assert!(
            !is_task_id(123_031_848_359_034_880),
            "an upload id of older versions"
        );
    }

    #[test]
    fn serials_count_from_one_and_survive_a_restart_without_repeating() {
        let (_db, meta) = new_meta();
        let mut serials = TaskSerials::open(2, 3, meta.clone()).unwrap();
        let first: Vec<u64> = (0..10).map(|_| serials.next_task_id().unwrap()).collect();
        assert_eq!(first[0], compose(2, 3, 1));
        assert!(first.windows(2).all(|pair| pair[1] == pair[0] + 1));
        // A restart (the mark is all that is kept) resumes after every serial issued.
        let mut restarted = TaskSerials::open(2, 3, meta.clone()).unwrap();
        let next = restarted.next_task_id().unwrap();
        assert!(next > *first.last().unwrap());
        assert_eq!(next, compose(2, 3, 1 + SERIAL_RESERVE), "skips the reserve");
        // A reopen that read an older mark resumes after what its predecessor issued.
        let mut reopened = TaskSerials::open(2, 3, new_meta().1).unwrap();
        reopened.resume_at(restarted.next_serial());
        let after = reopened.next_task_id().unwrap();
        assert_eq!(after, next + 1);
        reopened.give_back(after);
        assert_eq!(
            reopened.next_task_id().unwrap(),
            after,
            "a refused task's id is reused"
        );
    }

    #[test]
    fn the_last_serial_is_issued_and_then_the_shard_refuses() {
        let (_db, meta) = new_meta();
        meta.insert(MARK_KEY, &(MAX_SERIAL - 1).to_be_bytes())
            .unwrap();
        let mut serials = TaskSerials::open(63, 15, meta.clone()).unwrap();
        assert_eq!(serials.next_task_id().unwrap(), MAX_TASK_ID - 1);
        assert_eq!(serials.next_task_id().unwrap(), MAX_TASK_ID);
        for _ in 0..2 {
            assert!(matches!(
                serials.next_task_id(),
                Err(StoreError::TaskIdsExhausted(15))
            ));
        }
        let mut restarted = TaskSerials::open(63, 15, meta).unwrap();
        assert!(restarted.next_task_id().is_err(), "also after a restart");
    }
}
