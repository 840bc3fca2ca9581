//! Users and their balances.

use super::journal::{apply_movement, decode_tx, entry, from_tx, TxResult};
use super::records::{decode, encode, read_balance, Balance, EntryKind, Role, User, UserStatus};
use super::{ids, layout, ShardStore, StoreError, MAX_REASON_BYTES, MAX_USERNAME_BYTES};
use sled::transaction::{abort, Transactional, TransactionalTree};

impl ShardStore {
    /// Creates a user on this shard (which must be `shard_for_username(username)`), with
    /// `points` initial points journaled as a Grant at `now_ms`. `Err(UserExists)` if the
    /// name is taken.
    pub fn create_user(
        &mut self,
        username: &str,
        password_hash: &str,
        role: Role,
        points: i64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        check_username(username).map_err(StoreError::InvalidInput)?;
        if points < 0 {
            return Err(StoreError::InvalidInput(
                "initial points must not be negative".into(),
            ));
        }
        let owner = ids::shard_for_username(username, self.shard_count);
        if owner != self.shard {
            return Err(StoreError::InvalidInput(format!(
                "user {username:?} belongs to shard {owner}, not {}",
                self.shard
            )));
        }
        if self.trees.usernames.contains_key(username.as_bytes())? {
            return Err(StoreError::UserExists);
        }
        let user_id = self.next_id()?;
        let grant_id = self.next_id()?;
        let user = User {
            id: user_id,
            username: username.to_string(),
            password_hash: password_hash.to_string(),
            role,
            created_at_ms: now_ms,
        };
        let user_bytes = encode(&user);
        let zero = encode(&Balance::default());
        let grant = entry(grant_id, user_id, EntryKind::Grant, points, 0, now_ms, "");
        let t = &self.trees;
        (&t.users, &t.usernames, &t.balances, &t.journal)
            .transaction(|(users, usernames, balances, journal)| {
                if usernames
                    .insert(username.as_bytes(), &user_id.to_be_bytes())?
                    .is_some()
                {
                    return abort(StoreError::UserExists);
                }
                users.insert(&user_id.to_be_bytes(), user_bytes.as_slice())?;
                balances.insert(&user_id.to_be_bytes(), zero.as_slice())?;
                if points > 0 {
                    apply_movement(balances, journal, &grant)?;
                }
                Ok(())
            })
            .map_err(from_tx)?;
        self.balance_memo.forget(user_id);
        Ok(user_id)
    }

    pub fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        match self.trees.usernames.get(username.as_bytes())? {
            Some(id_bytes) => self.user(layout::u64_key(&id_bytes)?),
            None => Ok(None),
        }
    }

    /// The user, unless it does not exist or was removed (its record stays for the ledger).
    pub fn user(&self, user_id: u64) -> Result<Option<User>, StoreError> {
        let Some(bytes) = self.trees.users.get(user_id.to_be_bytes())? else {
            return Ok(None);
        };
        if self.user_status(user_id)?.removed_at_ms.is_some() {
            return Ok(None);
        }
        decode(&bytes).map(Some)
    }

    /// `Err(UserNotFound)` for an unknown user. Remembered until the user's next movement
    /// (balance_memo.rs).
    pub fn balance(&self, user_id: u64) -> Result<Balance, StoreError> {
        if let Some(balance) = self.balance_memo.get(user_id) {
            return Ok(balance);
        }
        let balance = self.balance_on_disk(user_id)?;
        self.balance_memo.remember(user_id, balance);
        Ok(balance)
    }

    /// The balance as the tree holds it, past the memo.
    pub(super) fn balance_on_disk(&self, user_id: u64) -> Result<Balance, StoreError> {
        match self.trees.balances.get(user_id.to_be_bytes())? {
            Some(bytes) => read_balance(&bytes),
            None => Err(StoreError::UserNotFound),
        }
    }

    /// Operator/admin movement of `delta` points (journaled as Adjust with `reason` at
    /// `now_ms`). `Err(InsufficientPoints)` if spendable points would go negative (nothing
    /// written); `Err(UserNotFound)` for an unknown or removed user (a removed user's
    /// balance stays as it was, for the ledger).
    pub fn adjust_points(
        &mut self,
        user_id: u64,
        delta: i64,
        reason: &str,
        now_ms: u64,
    ) -> Result<Balance, StoreError> {
        if delta == 0 {
            return Err(StoreError::InvalidInput("points must not be 0".into()));
        }
        // Read outside the transaction: with `&mut self`, no removal can come between this
        // read and the write below.
        if self.user_status(user_id)?.removed_at_ms.is_some() {
            return Err(StoreError::UserNotFound);
        }
        if reason.len() > MAX_REASON_BYTES {
            return Err(StoreError::InvalidInput(format!(
                "reason longer than {MAX_REASON_BYTES} bytes"
            )));
        }
        let adjust = entry(
            self.next_id()?,
            user_id,
            EntryKind::Adjust,
            delta,
            0,
            now_ms,
            reason,
        );
        let adjusted = (&self.trees.balances, &self.trees.journal)
            .transaction(|(balances, journal)| apply_movement(balances, journal, &adjust))
            .map_err(from_tx);
        self.balance_memo.forget(user_id);
        adjusted
    }
}

/// The rule for new usernames, wherever a user is created (API, `aiocr user add`):
/// 1..=`MAX_USERNAME_BYTES` of `A-Z a-z 0-9 . _ - @`. Existing names are never re-checked.
pub fn check_username(username: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-@".contains(c);
    if username.is_empty() || username.len() > MAX_USERNAME_BYTES || !username.chars().all(allowed)
    {
        return Err(format!(
            "username must be 1..={MAX_USERNAME_BYTES} of A-Z a-z 0-9 . _ - @"
        ));
    }
    Ok(())
}

/// The user record of a user that exists and was not removed (else the transaction aborts
/// with `UserNotFound`).
pub(super) fn live_user(
    users: &TransactionalTree,
    user_status: &TransactionalTree,
    user_key: &[u8; 8],
) -> TxResult<User> {
    let Some(bytes) = users.get(user_key)? else {
        return abort(StoreError::UserNotFound);
    };
    if status_in(user_status, user_key)?.removed_at_ms.is_some() {
        return abort(StoreError::UserNotFound);
    }
    decode_tx(&bytes)
}

pub(super) fn status_in(
    user_status: &TransactionalTree,
    user_key: &[u8; 8],
) -> TxResult<UserStatus> {
    match user_status.get(user_key)? {
        Some(bytes) => decode_tx(&bytes),
        None => Ok(UserStatus::default()),
    }
}
