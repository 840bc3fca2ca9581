//! Snowflake ids and user sharding.
//!
//! Layout of an id (most significant first): 41 bits of milliseconds since [`EPOCH_UNIX_MS`]
//! (2026-01-01T00:00:00Z, good until ~2095), 6 bits node id, 4 bits shard, 12 bits sequence.
//! Ids of one generator strictly increase, so big-endian keys iterate in creation order.

use super::StoreError;

/// 2026-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_UNIX_MS: u64 = 1_767_225_600_000;
pub const TIMESTAMP_BITS: u32 = 41;
pub const NODE_BITS: u32 = 6;
pub const SHARD_BITS: u32 = 4;
pub const SEQUENCE_BITS: u32 = 12;
pub const MAX_NODE_ID: u16 = (1 << NODE_BITS) - 1;
/// At most 16 shards: the shard lives in 4 bits of every id.
pub const MAX_SHARDS: u16 = 1 << SHARD_BITS;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;
const SHARD_SHIFT: u32 = SEQUENCE_BITS;
const NODE_SHIFT: u32 = SEQUENCE_BITS + SHARD_BITS;
const TIMESTAMP_SHIFT: u32 = SEQUENCE_BITS + SHARD_BITS + NODE_BITS;
const MAX_TIMESTAMP_MS: u64 = (1 << TIMESTAMP_BITS) - 1;

/// How far ahead of the issued timestamps the persisted high-water mark is pushed, so it is
/// written about once per this many milliseconds of ids, not once per id.
pub const HIGH_WATER_RESERVE_MS: u64 = 10_000;

/// The shard an id was issued by (users: the shard that owns the user).
pub fn shard_of(id: u64) -> u16 {
    ((id >> SHARD_SHIFT) & u64::from(MAX_SHARDS - 1)) as u16
}

/// The node an id was issued by.
pub fn node_of(id: u64) -> u16 {
    ((id >> NODE_SHIFT) & u64::from(MAX_NODE_ID)) as u16
}

/// Unix milliseconds encoded in an id (the generator's clock, possibly borrowed ahead).
pub fn unix_ms_of(id: u64) -> u64 {
    (id >> TIMESTAMP_SHIFT) + EPOCH_UNIX_MS
}

/// The shard that owns `username`: FNV-1a 64 of the UTF-8 bytes, modulo the shard count.
/// Stable forever (it decides where existing users live): never change it.
pub fn shard_for_username(name: &str, shard_count: u16) -> u16 {
    assert!(
        (1..=MAX_SHARDS).contains(&shard_count),
        "shard count {shard_count} out of range"
    );
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET_BASIS;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    (hash % u64::from(shard_count)) as u16
}

/// Composes an id; every part must fit its bits.
pub fn compose(timestamp_ms: u64, node_id: u16, shard: u16, sequence: u64) -> u64 {
    assert!(
        timestamp_ms <= MAX_TIMESTAMP_MS,
        "snowflake timestamp overflow"
    );
    assert!(node_id <= MAX_NODE_ID && shard < MAX_SHARDS && sequence <= MAX_SEQUENCE);
    (timestamp_ms << TIMESTAMP_SHIFT)
        | (u64::from(node_id) << NODE_SHIFT)
        | (u64::from(shard) << SHARD_SHIFT)
        | sequence
}

/// Where the generator keeps its high-water mark (a sled tree of the shard's database).
/// Persisting goes through this trait so the generator can be tested without sled.
pub trait HighWaterStore: Send {
    /// The persisted mark (milliseconds since the aiocr epoch), 0 when none yet.
    fn load(&self) -> Result<u64, StoreError>;
    fn save(&mut self, high_water_ms: u64) -> Result<(), StoreError>;
}

/// A wall clock in Unix milliseconds; injectable for tests.
pub type Clock = Box<dyn Fn() -> u64 + Send>;

/// Issues the ids of one shard. Never repeats, even across restarts and when the wall clock
/// steps back:
/// - every issued timestamp is below the persisted high-water mark, and a restart resumes at
///   that mark (so after a restart ids jump ahead by at most [`HIGH_WATER_RESERVE_MS`]);
/// - when the clock reads less than the last timestamp used, it keeps using the last one and
///   its sequence; a full sequence borrows the next millisecond (ids run ahead of the clock
///   until it catches up).
///
/// Crash safety: the mark is written to sled before any id above it is returned, and sled
/// recovers a prefix of its log, so a record holding an id never survives without the mark.
pub struct IdGenerator {
    node_id: u16,
    shard: u16,
    clock: Clock,
    high_water: Box<dyn HighWaterStore>,
    /// Milliseconds since the aiocr epoch of the last id (or the resume point after a restart).
    last_ms: u64,
    /// The next sequence free at `last_ms`.
    next_sequence: u64,
    /// Cached value of the persisted mark: every issued timestamp is strictly below it.
    high_water_ms: u64,
}

impl IdGenerator {
    pub fn new(
        node_id: u16,
        shard: u16,
        clock: Clock,
        high_water: Box<dyn HighWaterStore>,
    ) -> Result<Self, StoreError> {
        if node_id > MAX_NODE_ID {
            return Err(StoreError::InvalidConfig(format!(
                "node id {node_id} above {MAX_NODE_ID}"
            )));
        }
        if shard >= MAX_SHARDS {
            return Err(StoreError::InvalidConfig(format!(
                "shard {shard} above {}",
                MAX_SHARDS - 1
            )));
        }
        let high_water_ms = high_water.load()?;
        Ok(IdGenerator {
            node_id,
            shard,
            clock,
            high_water,
            last_ms: high_water_ms,
            next_sequence: 0,
            high_water_ms,
        })
    }

    /// The millisecond (since the aiocr epoch) of the last id issued, or the resume point.
    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }

    /// Issues every further id after `floor_ms`: a shard store reopened in the same process
    /// (after a storage failure) resumes at its persisted mark, which may lag behind ids its
    /// previous incarnation issued but never wrote, while those ids may still be held in
    /// memory (a recognition job's upload id) and must not name a new record.
    pub fn resume_after(&mut self, floor_ms: u64) {
        if floor_ms >= self.last_ms {
            self.last_ms = floor_ms + 1;
            self.next_sequence = 0;
        }
    }

    /// The next id of this shard. Fails only when the high-water mark cannot be written.
    pub fn next_id(&mut self) -> Result<u64, StoreError> {
        let now_ms = (self.clock)().saturating_sub(EPOCH_UNIX_MS);
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.next_sequence = 0;
        }
        if self.next_sequence > MAX_SEQUENCE {
            // Sequence exhausted (busy millisecond, or clock behind): borrow the next one.
            self.last_ms += 1;
            self.next_sequence = 0;
        }
        if self.last_ms >= self.high_water_ms {
            let high_water_ms = self.last_ms + HIGH_WATER_RESERVE_MS;
            self.high_water.save(high_water_ms)?;
            self.high_water_ms = high_water_ms;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        assert!(self.last_ms < self.high_water_ms);
        Ok(compose(self.last_ms, self.node_id, self.shard, sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// An in-memory mark shared between "restarts" of a generator.
    #[derive(Clone, Default)]
    struct MemoryMark(Arc<Mutex<u64>>);
    impl HighWaterStore for MemoryMark {
        fn load(&self) -> Result<u64, StoreError> {
            Ok(*self.0.lock().unwrap())
        }
        fn save(&mut self, high_water_ms: u64) -> Result<(), StoreError> {
            *self.0.lock().unwrap() = high_water_ms;
            Ok(())
        }
    }

    fn clock_at(time: &Arc<AtomicU64>) -> Clock {
        let time = time.clone();
        Box::new(move || time.load(Ordering::SeqCst))
    }

    #[test]
    fn parts_round_trip() {
        let id = compose(123_456, 5, 9, 4095);
        assert_eq!(shard_of(id), 9);
        assert_eq!(node_of(id), 5);
        assert_eq!(unix_ms_of(id), EPOCH_UNIX_MS + 123_456);
        assert_eq!(id & 0xfff, 4095);
    }

    #[test]
    fn username_shard_is_stable_and_spread() {
        // FNV-1a 64 of "" is the offset basis; of "a" it is 0xaf63dc4c8601ec8c.
        assert_eq!(
            shard_for_username("", 16),
            (0xcbf2_9ce4_8422_2325u64 % 16) as u16
        );
        assert_eq!(
            shard_for_username("a", 7),
            (0xaf63_dc4c_8601_ec8cu64 % 7) as u16
        );
        let mut seen = [0u32; 4];
        for index in 0..1000 {
            seen[usize::from(shard_for_username(&format!("user{index}"), 4))] += 1;
        }
        assert!(
            seen.iter().all(|count| *count > 150),
            "poor spread {seen:?}"
        );
    }

    #[test]
    fn clock_stepping_back_never_repeats_and_stays_ordered() {
        let time = Arc::new(AtomicU64::new(EPOCH_UNIX_MS + 1_000_000));
        let mut generator =
            IdGenerator::new(1, 2, clock_at(&time), Box::new(MemoryMark::default())).unwrap();
        let mut seen = HashSet::new();
        let mut previous = 0;
        for step in 0..20_000u64 {
            if step == 5_000 {
                time.fetch_sub(60_000, Ordering::SeqCst); // NTP steps the clock back a minute
            }
            if step % 100 == 0 {
                time.fetch_add(1, Ordering::SeqCst);
            }
            let id = generator.next_id().unwrap();
            assert!(id > previous, "ids must increase");
            assert!(seen.insert(id));
            assert_eq!(shard_of(id), 2);
            previous = id;
        }
    }

    #[test]
    fn full_sequence_borrows_the_next_millisecond() {
        let time = Arc::new(AtomicU64::new(EPOCH_UNIX_MS + 50));
        let mut generator =
            IdGenerator::new(0, 0, clock_at(&time), Box::new(MemoryMark::default())).unwrap();
        let ids: Vec<u64> = (0..4097).map(|_| generator.next_id().unwrap()).collect();
        assert_eq!(unix_ms_of(ids[4095]), EPOCH_UNIX_MS + 50);
        assert_eq!(unix_ms_of(ids[4096]), EPOCH_UNIX_MS + 51);
    }

    #[test]
    fn restart_with_a_clock_behind_never_repeats() {
        let time = Arc::new(AtomicU64::new(EPOCH_UNIX_MS + 10_000_000));
        let mark = MemoryMark::default();
        let mut seen = HashSet::new();
        for restart in 0..5 {
            let mut generator =
                IdGenerator::new(3, 1, clock_at(&time), Box::new(mark.clone())).unwrap();
            for _ in 0..3_000 {
                assert!(
                    seen.insert(generator.next_id().unwrap()),
                    "repeat after restart {restart}"
                );
            }
            // The machine comes back with its clock an hour behind.
            time.fetch_sub(3_600_000, Ordering::SeqCst);
        }
        assert_eq!(seen.len(), 15_000);
    }

    #[test]
    fn a_reopen_that_lost_the_mark_resumes_after_the_ids_issued() {
        let time = Arc::new(AtomicU64::new(EPOCH_UNIX_MS + 5_000));
        let issued_mark = MemoryMark::default();
        let mut first =
            IdGenerator::new(0, 2, clock_at(&time), Box::new(issued_mark.clone())).unwrap();
        let issued: HashSet<u64> = (0..5_000).map(|_| first.next_id().unwrap()).collect();
        // The store failed before its mark reached the disk: the reopened generator reads the
        // old mark (none), and the clock has stepped back meanwhile.
        time.fetch_sub(1_000, Ordering::SeqCst);
        let mut reopened =
            IdGenerator::new(0, 2, clock_at(&time), Box::new(MemoryMark::default())).unwrap();
        reopened.resume_after(first.last_ms());
        for _ in 0..5_000 {
            assert!(!issued.contains(&reopened.next_id().unwrap()));
        }
        // A floor below where the generator already is changes nothing.
        let before = reopened.last_ms();
        reopened.resume_after(0);
        assert_eq!(reopened.last_ms(), before);
    }

    #[test]
    fn shards_never_collide() {
        let time = Arc::new(AtomicU64::new(EPOCH_UNIX_MS + 7));
        let mut seen = HashSet::new();
        for shard in 0..MAX_SHARDS {
            let mut generator =
                IdGenerator::new(0, shard, clock_at(&time), Box::new(MemoryMark::default()))
                    .unwrap();
            for _ in 0..1000 {
                assert!(seen.insert(generator.next_id().unwrap()));
            }
        }
    }

    #[test]
    fn out_of_range_node_or_shard_is_refused() {
        let time = Arc::new(AtomicU64::new(EPOCH_UNIX_MS));
        assert!(IdGenerator::new(64, 0, clock_at(&time), Box::new(MemoryMark::default())).is_err());
        assert!(IdGenerator::new(0, 16, clock_at(&time), Box::new(MemoryMark::default())).is_err());
    }
}
