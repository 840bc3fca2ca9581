//! Points movements inside sled transactions: every change of a balance writes its journal
//! entry in the same transaction, so a balance always equals the replay of its journal.
//! A balance's points and reserved points together never rise past [`MAX_POINTS`] (every
//! points number an answer shows stays an integer JSON readers read exactly).

use super::records::{decode, encode, Balance, EntryKind, JournalEntry};
use super::StoreError;
use crate::money::MAX_POINTS;
use sled::transaction::{abort, ConflictableTransactionError, TransactionError, TransactionalTree};

pub type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// A transaction's error as a store error (an abort carries ours).
pub fn from_tx(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => StoreError::Db(error),
    }
}

/// A decode failure inside a transaction aborts it.
pub fn decode_tx<T>(bytes: &[u8]) -> TxResult<T>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<T, rkyv::rancor::Strategy<rkyv::de::Pool, rkyv::rancor::Error>>,
{
    decode(bytes).or_else(abort)
}

/// The entry to append for one movement.
pub fn entry(
    id: u64,
    user_id: u64,
    kind: EntryKind,
    delta: i64,
    upload_id: u64,
    at_ms: u64,
    reason: &str,
) -> JournalEntry {
    JournalEntry {
        id,
        user_id,
        delta,
        kind,
        upload_id,
        at_ms,
        reason: reason.to_string(),
    }
}

/// Applies `entry` to its user's balance and appends it to the journal. Aborts with
/// `UserNotFound` for an unknown user, `InsufficientPoints` if points would go negative,
/// `InvalidInput` (contract 1001) if the balance would rise past [`MAX_POINTS`].
/// The caller forgets the user's remembered balance once the transaction has committed
/// (`balance_memo.forget`, balance_memo.rs).
pub fn apply_movement(
    balances: &TransactionalTree,
    journal: &TransactionalTree,
    entry: &JournalEntry,
) -> TxResult<Balance> {
    assert!(
        entry.kind.allows(entry.delta),
        "a {:?} movement of {} points",
        entry.kind,
        entry.delta
    );
    let key = entry.user_id.to_be_bytes();
    let current: Balance = match balances.get(key)? {
        Some(bytes) => decode_tx(&bytes)?,
        None => return abort(StoreError::UserNotFound),
    };
    let next = moved(&current, entry).or_else(abort)?;
    balances.insert(&key, encode(&next))?;
    let previous = journal.insert(&entry.id.to_be_bytes(), encode(entry))?;
    assert!(previous.is_none(), "journal entry ids are unique");
    Ok(next)
}

/// The balance `entry` leaves of `current`, or why it may not move it: `InsufficientPoints`
/// if points would go negative, `InvalidInput` if the balance would overflow or rise past
/// [`MAX_POINTS`], `Corrupt` for reserved points going negative (only a bug or a damaged
/// database gets there: refused rather than written).
pub fn moved(current: &Balance, entry: &JournalEntry) -> Result<Balance, StoreError> {
    let (points_change, reserved_change) = entry.kind.effect(entry.delta);
    let (Some(points), Some(reserved)) = (
        current.points.checked_add(points_change),
        current.reserved.checked_add(reserved_change),
    ) else {
        return Err(StoreError::InvalidInput("balance would overflow".into()));
    };
    let next = Balance { points, reserved };
    if raises_past_bound(current, &next) {
        return Err(StoreError::InvalidInput(format!(
            "the balance would pass {MAX_POINTS} points, the most a balance holds"
        )));
    }
    if next.points < 0 {
        return Err(StoreError::InsufficientPoints);
    }
    if next.reserved < 0 {
        return Err(StoreError::Corrupt(format!(
            "user {} reserved would become {}",
            entry.user_id, next.reserved
        )));
    }
    Ok(next)
}

/// Whether `next` holds more than [`MAX_POINTS`] and more than `current`: a movement may not
/// raise a balance past the bound (a grant, an adjustment, a refund), while one that does
/// not raise it (spending, reserving, voiding) passes, also for a balance written above
/// the bound by an older version (it can only come down).
fn raises_past_bound(current: &Balance, next: &Balance) -> bool {
    total(next) > i128::from(MAX_POINTS) && total(next) > total(current)
}

/// Points and reserved points together (i128: two i64 cannot overflow it).
fn total(balance: &Balance) -> i128 {
    i128::from(balance.points) + i128::from(balance.reserved)
}
