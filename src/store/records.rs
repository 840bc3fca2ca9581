//! The records kept in sled, as rkyv archives (validated with bytecheck when read; the crate
//! is built with rkyv's `unaligned` format so sled's unaligned buffers can be read in place).

use super::StoreError;
use crate::json_numbers::{saturated_i64, saturated_u64};
use rkyv::{Archive, Deserialize, Serialize};

/// A user's role. Stored as part of the user record and carried in the JWT.
#[derive(
    Archive,
    Serialize,
    Deserialize,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    /// May read `/v2/developer/stats` for its soft_id (= its own user id in decimal).
    Developer,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "user" => Some(Role::User),
            "developer" => Some(Role::Developer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct User {
    /// Snowflake issued by the owner shard: `ids::shard_of(id)` is that shard.
    pub id: u64,
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub created_at_ms: u64,
}

/// What a user's tokens are checked against beside the role (kept in `user_status`, apart
/// from `User`, so that a data directory from before it needs no migration: no record reads
/// as epoch 0, not removed).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserStatus {
    /// Tokens carry the epoch they were issued under; an older one is refused. Logout,
    /// password change, role change, revocation and removal bump it.
    pub token_epoch: u32,
    /// When the user was removed (Unix ms): its records stay for the ledger, but it can no
    /// longer log in, and its tokens and key are refused.
    pub removed_at_ms: Option<u64>,
}

/// `points` is spendable; `reserved` is held by pending uploads. Both are never negative.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    pub points: i64,
    pub reserved: i64,
}

/// The kind of a points movement; [`EntryKind::effect`] says what it does to a balance.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Initial points of a new user: points += delta.
    Grant,
    /// Operator/admin adjustment (may be negative): points += delta.
    Adjust,
    /// Upload accepted: delta = -cost; points += delta, reserved -= delta.
    Reserve,
    /// Result done: delta = -cost; reserved += delta (the points are spent).
    Post,
    /// Upload failed/dropped/never ran: delta = +cost; points += delta, reserved -= delta.
    Void,
    /// Report of a wrong result: delta = +cost; points += delta.
    Refund,
    /// A batch of cache hits, answered before it was charged so nothing was reserved:
    /// delta = -(the hits' costs); points += delta. Its `upload_id` is the batch's (its first
    /// hit's id); a reported hit is a `Refund` of the batch of its own cost.
    Charge,
}

impl EntryKind {
    /// `(change of points, change of reserved)` for a movement of `delta`.
    pub fn effect(self, delta: i64) -> (i64, i64) {
        match self {
            EntryKind::Grant | EntryKind::Adjust | EntryKind::Refund | EntryKind::Charge => {
                (delta, 0)
            }
            EntryKind::Reserve | EntryKind::Void => (delta, delta.saturating_neg()),
            EntryKind::Post => (0, delta),
        }
    }

    /// Whether `delta` has the sign this kind of movement has: reservations and posts take
    /// points away, voids, refunds and grants give them, adjustments go either way.
    pub fn allows(self, delta: i64) -> bool {
        match self {
            EntryKind::Reserve | EntryKind::Post | EntryKind::Charge => delta <= 0,
            EntryKind::Void | EntryKind::Refund | EntryKind::Grant => delta >= 0,
            EntryKind::Adjust => delta != 0,
        }
    }
}

/// One points movement. The journal tree holds them under their id (issued in application
/// order, so key order is replay order) and is append-only.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub id: u64,
    pub user_id: u64,
    pub delta: i64,
    pub kind: EntryKind,
    /// The upload it belongs to; 0 for Grant/Adjust.
    pub upload_id: u64,
    pub at_ms: u64,
    /// Operator's reason for Adjust; empty otherwise.
    pub reason: String,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadStatus {
    Pending,
    Done,
    Failed,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UploadRecord {
    pub id: u64,
    pub user_id: u64,
    pub status: UploadStatus,
    pub result: Option<String>,
    pub confidence: Option<f32>,
    pub error: Option<String>,
    pub cost: i64,
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub reported: bool,
    pub soft_id: Option<String>,
    pub cache_hit: bool,
    pub model: String,
    pub image_hash: [u8; 16],
}

/// Uploads answered from the answer cache together (`POST /v2/decode/cached`), kept as one
/// record in the day's `hits-` tree under the first hit's id: one write for a batch instead
/// of one per hit. The hits' ids were issued one after another, so no other id of the shard
/// lies between the first and the last. Each hit reads as a done upload (`upload_record`).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CacheHitBatch {
    pub user_id: u64,
    pub created_at_ms: u64,
    pub soft_id: Option<String>,
    /// In id order, at least one.
    pub hits: Vec<CacheHit>,
}

/// One hit of a [`CacheHitBatch`]: what differs between the done uploads of a batch.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CacheHit {
    pub id: u64,
    pub result: String,
    pub confidence: Option<f32>,
    pub cost: i64,
    pub model: String,
    pub image_hash: [u8; 16],
    pub reported: bool,
}

impl CacheHitBatch {
    /// A stored batch, read and checked: at least one hit, ids rising, no negative cost
    /// (what `id`, `position` and the ledger rely on). Anything else is `Corrupt`.
    pub fn decode(bytes: &[u8]) -> Result<CacheHitBatch, StoreError> {
        let batch: CacheHitBatch = decode(bytes)?;
        let rising = batch.hits.windows(2).all(|pair| pair[0].id < pair[1].id);
        let costs_ok = batch.hits.iter().all(|hit| hit.cost >= 0);
        if batch.hits.is_empty() || !rising || !costs_ok {
            return Err(StoreError::Corrupt(format!(
                "a batch of {} cache hits of user {}: empty, out of order or a negative cost",
                batch.hits.len(),
                batch.user_id
            )));
        }
        Ok(batch)
    }

    /// The batch's key and journal `upload_id`: its first hit's id.
    pub fn id(&self) -> u64 {
        self.hits.first().expect("a batch holds a hit").id
    }

    pub fn last_id(&self) -> u64 {
        self.hits.last().expect("a batch holds a hit").id
    }

    /// Where hit `upload_id` is in the batch, if it is one of its hits.
    pub fn position(&self, upload_id: u64) -> Option<usize> {
        self.hits
            .binary_search_by_key(&upload_id, |hit| hit.id)
            .ok()
    }

    /// What the batch was charged, and what reports gave back.
    pub fn charged_and_refunded(&self) -> (i64, i64) {
        // Saturating: a damaged record must not panic `ledger verify`, which compares these.
        let sum = |reported_only: bool| {
            self.hits
                .iter()
                .filter(|hit| hit.reported || !reported_only)
                .fold(0i64, |sum, hit| sum.saturating_add(hit.cost))
        };
        (sum(false), sum(true))
    }

    /// Hit `index` as the done upload it is.
    pub fn upload_record(&self, index: usize) -> UploadRecord {
        let hit = &self.hits[index];
        UploadRecord {
            id: hit.id,
            user_id: self.user_id,
            status: UploadStatus::Done,
            result: Some(hit.result.clone()),
            confidence: hit.confidence,
            error: None,
            cost: hit.cost,
            created_at_ms: self.created_at_ms,
            finished_at_ms: Some(self.created_at_ms),
            reported: hit.reported,
            soft_id: self.soft_id.clone(),
            cache_hit: true,
            model: hit.model.clone(),
            image_hash: hit.image_hash,
        }
    }
}

/// Per-day counters of one user or soft_id: stored per day (rkyv), and the numbers of a
/// `DayStats` row (serde, for answers: saturated at 2^53 - 1, see `json_numbers`).
#[derive(
    Archive, Serialize, Deserialize, serde::Serialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub struct DayCounters {
    #[serde(serialize_with = "saturated_u64")]
    pub uploads: u64,
    #[serde(serialize_with = "saturated_u64")]
    pub done: u64,
    #[serde(serialize_with = "saturated_u64")]
    pub failed: u64,
    #[serde(serialize_with = "saturated_u64")]
    pub reported: u64,
    #[serde(serialize_with = "saturated_i64")]
    pub points_spent: i64,
    #[serde(serialize_with = "saturated_u64")]
    pub cache_hits: u64,
}

impl DayCounters {
    /// Adds another part of the same day (the server sums one soft_id's parts of every
    /// shard).
    pub fn add(&mut self, other: &DayCounters) {
        // Saturating: the sum of the shards' parts is shown, never wrapped.
        self.uploads = self.uploads.saturating_add(other.uploads);
        self.done = self.done.saturating_add(other.done);
        self.failed = self.failed.saturating_add(other.failed);
        self.reported = self.reported.saturating_add(other.reported);
        self.points_spent = self.points_spent.saturating_add(other.points_spent);
        self.cache_hits = self.cache_hits.saturating_add(other.cache_hits);
    }
}

type Serializer<'a> = rkyv::api::high::HighSerializer<
    rkyv::util::AlignedVec,
    rkyv::ser::allocator::ArenaHandle<'a>,
    rkyv::rancor::Error,
>;

/// A record as the bytes stored in sled.
pub fn encode<T>(value: &T) -> Vec<u8>
where
    T: for<'a> Serialize<Serializer<'a>>,
{
    // Serializing plain owned data into a growable buffer cannot fail.
    rkyv::to_bytes::<rkyv::rancor::Error>(value)
        .expect("rkyv serialization of an owned record")
        .to_vec()
}

/// Validates and reads a stored record; bad bytes are `Corrupt`, never a panic.
pub fn decode<T>(bytes: &[u8]) -> Result<T, StoreError>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + Deserialize<T, rkyv::rancor::Strategy<rkyv::de::Pool, rkyv::rancor::Error>>,
{
    rkyv::from_bytes::<T, rkyv::rancor::Error>(bytes).map_err(|error| {
        StoreError::Corrupt(format!(
            "{} ({} bytes): {error}",
            std::any::type_name::<T>(),
            bytes.len()
        ))
    })
}

/// A stored balance read in place (validated, no deserialization): the
/// `GET /v2/user/point` hot path.
pub fn read_balance(bytes: &[u8]) -> Result<Balance, StoreError> {
    let archived =
        rkyv::access::<ArchivedBalance, rkyv::rancor::Error>(bytes).map_err(|error| {
            StoreError::Corrupt(format!("balance ({} bytes): {error}", bytes.len()))
        })?;
    Ok(Balance {
        points: archived.points.to_native(),
        reserved: archived.reserved.to_native(),
    })
}
