//! What a user's tokens are checked against: that the user exists and was not removed, its
//! role (from `users`) and its token epoch (from `user_status`, sessions.rs's own tree).
//! Every write that changes one of them bumps the epoch in the same transaction, so the
//! tokens issued before it are refused once the server has told its shards (the server
//! forgets what each shard remembered; server/sessions.rs).
//!
//! Removal keeps the user's records (`users`, `balances`, the journal, uploads, stats): the
//! ledger still replays and verifies. It frees the username (a later user of that name gets a
//! new id, which no old token or key names), deletes the API key and marks the user removed.

use super::api_keys::split_user_key_value;
use super::journal::{from_tx, TxResult};
use super::records::{decode, encode, Role, UserStatus};
use super::users::{live_user, status_in};
use super::{ShardStore, StoreError};
use sled::transaction::{abort, Transactional, TransactionalTree};

/// What a token of a user is checked against, for a user that exists (not removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenState {
    pub role: Role,
    pub token_epoch: u32,
}

impl ShardStore {
    /// The user's role and token epoch; `None` for a user that does not exist or was removed.
    pub fn token_state(&self, user_id: u64) -> Result<Option<TokenState>, StoreError> {
        let Some(user) = self.user(user_id)? else {
            return Ok(None);
        };
        Ok(Some(TokenState {
            role: user.role,
            token_epoch: self.user_status(user_id)?.token_epoch,
        }))
    }

    /// The user's status; users without a record have epoch 0 and were not removed.
    pub fn user_status(&self, user_id: u64) -> Result<UserStatus, StoreError> {
        match self.trees.user_status.get(user_id.to_be_bytes())? {
            Some(bytes) => decode(&bytes),
            None => Ok(UserStatus::default()),
        }
    }

    /// Ends every token of the user (logout, revocation); returns the new epoch.
    /// `Err(UserNotFound)` for a user that does not exist or was removed.
    pub fn bump_token_epoch(&mut self, user_id: u64) -> Result<u32, StoreError> {
        let user_key = user_id.to_be_bytes();
        let t = &self.trees;
        (&t.users, &t.user_status)
            .transaction(|(users, user_status)| {
                live_user(users, user_status, &user_key)?;
                bump(user_status, &user_key)
            })
            .map_err(from_tx)
    }

    /// Gives the user a new password hash and ends its tokens; returns the new epoch.
    pub fn set_password(&mut self, user_id: u64, password_hash: &str) -> Result<u32, StoreError> {
        let user_key = user_id.to_be_bytes();
        let t = &self.trees;
        (&t.users, &t.user_status)
            .transaction(|(users, user_status)| {
                let mut user = live_user(users, user_status, &user_key)?;
                user.password_hash = password_hash.to_string();
                users.insert(&user_key, encode(&user))?;
                bump(user_status, &user_key)
            })
            .map_err(from_tx)
    }

    /// Gives the user `role` and ends its tokens (they carry the role they were issued
    /// with); returns the new epoch. `Err(UserNotFound)` for an unknown or removed user.
    pub fn set_role(&mut self, user_id: u64, role: Role) -> Result<u32, StoreError> {
        let user_key = user_id.to_be_bytes();
        let t = &self.trees;
        (&t.users, &t.user_status)
            .transaction(|(users, user_status)| {
                let mut user = live_user(users, user_status, &user_key)?;
                user.role = role;
                users.insert(&user_key, encode(&user))?;
                bump(user_status, &user_key)
            })
            .map_err(from_tx)
    }

    /// Removes the user at `now_ms` (see the module's comment); returns the hash of the API
    /// key it had, so the server can make every shard forget it.
    pub fn remove_user(
        &mut self,
        user_id: u64,
        now_ms: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        let user_key = user_id.to_be_bytes();
        let t = &self.trees;
        (
            &t.users,
            &t.user_status,
            &t.usernames,
            &t.api_keys,
            &t.user_api_keys,
        )
            .transaction(|(users, user_status, usernames, api_keys, user_api_keys)| {
                let user = live_user(users, user_status, &user_key)?;
                let named = usernames.remove(user.username.as_bytes())?;
                assert_eq!(
                    named.as_deref(),
                    Some(user_key.as_slice()),
                    "a live user's name names it"
                );
                let key = match user_api_keys.remove(&user_key)? {
                    Some(value) => Some(split_user_key_value(&value).or_else(abort)?.0),
                    None => None,
                };
                if let Some(hash) = &key {
                    api_keys.remove(hash.as_slice())?;
                }
                let mut status = status_in(user_status, &user_key)?;
                status.token_epoch = status.token_epoch.wrapping_add(1);
                status.removed_at_ms = Some(now_ms);
                user_status.insert(&user_key, encode(&status))?;
                Ok(key)
            })
            .map_err(from_tx)
    }
}

/// The next epoch, written. Wrapping: 2^32 bumps of one user are out of reach, and a token
/// must match its epoch exactly anyway.
fn bump(user_status: &TransactionalTree, user_key: &[u8; 8]) -> TxResult<u32> {
    let mut status = status_in(user_status, user_key)?;
    status.token_epoch = status.token_epoch.wrapping_add(1);
    user_status.insert(user_key, encode(&status))?;
    Ok(status.token_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> ShardStore {
        ShardStore::open(dir, 0, 1, 1).unwrap()
    }

    fn add(store: &mut ShardStore, name: &str) -> u64 {
        let now = crate::clock::unix_now_ms();
        store
            .create_user(name, "$argon2id$x", Role::Admin, 5, now)
            .unwrap()
    }

    #[test]
    fn users_start_at_epoch_zero_and_every_change_bumps_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(dir.path());
        let ann = add(&mut store, "ann");
        let state = |store: &ShardStore| store.token_state(ann).unwrap().unwrap();
        assert_eq!(
            state(&store),
            TokenState {
                role: Role::Admin,
                token_epoch: 0
            }
        );
        assert_eq!(store.bump_token_epoch(ann).unwrap(), 1);
        assert_eq!(store.set_password(ann, "$argon2id$y").unwrap(), 2);
        assert_eq!(
            store.user(ann).unwrap().unwrap().password_hash,
            "$argon2id$y"
        );
        assert_eq!(store.set_role(ann, Role::User).unwrap(), 3);
        assert_eq!(
            state(&store),
            TokenState {
                role: Role::User,
                token_epoch: 3
            }
        );
        assert!(matches!(
            store.bump_token_epoch(ann + 1),
            Err(StoreError::UserNotFound)
        ));
        assert_eq!(store.token_state(ann + 1).unwrap(), None);
    }

    #[test]
    fn a_removed_user_keeps_its_ledger_and_frees_its_name_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(dir.path());
        let ann = add(&mut store, "ann");
        store.set_api_key(ann, &[9; 32], 1).unwrap();
        assert_eq!(store.remove_user(ann, 77).unwrap(), Some([9; 32]));
        assert_eq!(store.token_state(ann).unwrap(), None);
        assert_eq!(store.user(ann).unwrap(), None);
        assert_eq!(store.user_by_name("ann").unwrap(), None);
        assert_eq!(store.user_by_api_key(&[9; 32]).unwrap(), None);
        assert_eq!(store.user_status(ann).unwrap().removed_at_ms, Some(77));
        assert_eq!(store.balance(ann).unwrap().points, 5, "the ledger stays");
        for refused in [
            store.bump_token_epoch(ann).map(drop),
            store.set_password(ann, "h").map(drop),
            store.set_role(ann, Role::User).map(drop),
            store.remove_user(ann, 78).map(drop),
            store.set_api_key(ann, &[8; 32], 2).map(drop),
            store.adjust_points(ann, 5, "gift", 79).map(drop),
        ] {
            assert!(
                matches!(refused, Err(StoreError::UserNotFound)),
                "{refused:?}"
            );
        }
        assert!(store.find_users("", None, 10).unwrap().is_empty());
        // The name is free: a new user, a new id.
        let again = add(&mut store, "ann");
        assert_ne!(again, ann);
        assert_eq!(store.token_state(again).unwrap().unwrap().token_epoch, 0);
        drop(store);
        let report = crate::store::verify_ledger(dir.path()).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.users_checked, 2);
    }
}
