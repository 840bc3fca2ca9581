//! API keys: at most one per user, kept only as its hash. Two trees, written together:
//! `api_keys` (key hash -> user id) finds the user of a key; `user_api_keys` (user id ->
//! key hash and creation time) finds a user's key to replace or revoke it. A key's hash
//! routes to its user's shard (auth::api_key_route), so both live on that shard.

use super::journal::from_tx;
use super::layout::u64_key;
use super::records::User;
use super::users::live_user;
use super::{ShardStore, StoreError};
use sled::transaction::{abort, Transactional};

/// Bytes of a key hash.
const HASH_BYTES: usize = 32;

/// A user's key as stored in `user_api_keys`: its hash, then when it was made.
fn user_key_value(hash: &[u8; HASH_BYTES], created_at_ms: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(HASH_BYTES + 8);
    value.extend_from_slice(hash);
    value.extend_from_slice(&created_at_ms.to_be_bytes());
    value
}

pub(super) fn split_user_key_value(value: &[u8]) -> Result<([u8; HASH_BYTES], u64), StoreError> {
    if value.len() != HASH_BYTES + 8 {
        return Err(StoreError::Corrupt(format!(
            "{}-byte API key entry",
            value.len()
        )));
    }
    let hash: [u8; HASH_BYTES] = value[..HASH_BYTES].try_into().expect("length checked");
    Ok((hash, u64_key(&value[HASH_BYTES..])?))
}

impl ShardStore {
    /// Gives `user_id` the key with this hash, replacing (and so revoking) any earlier one.
    /// Returns the earlier key's hash. `Err(UserNotFound)` for an unknown or removed user.
    pub fn set_api_key(
        &mut self,
        user_id: u64,
        hash: &[u8; HASH_BYTES],
        now_ms: u64,
    ) -> Result<Option<[u8; HASH_BYTES]>, StoreError> {
        let user_key = user_id.to_be_bytes();
        let t = &self.trees;
        let earlier = (&t.users, &t.user_status, &t.api_keys, &t.user_api_keys)
            .transaction(|(users, user_status, api_keys, user_api_keys)| {
                live_user(users, user_status, &user_key)?;
                let earlier = match user_api_keys.get(user_key)? {
                    Some(value) => Some(split_user_key_value(&value).or_else(abort)?.0),
                    None => None,
                };
                if let Some(earlier) = &earlier {
                    api_keys.remove(earlier.as_slice())?;
                }
                if api_keys.insert(hash.as_slice(), &user_key)?.is_some() {
                    // 2^-118 for random keys: a caller reusing a hash is a bug.
                    return abort(StoreError::InvalidInput("API key already in use".into()));
                }
                user_api_keys.insert(&user_key, user_key_value(hash, now_ms))?;
                Ok(earlier)
            })
            .map_err(from_tx)?;
        Ok(earlier)
    }

    /// Removes the user's key; returns its hash, `None` when the user had none.
    pub fn revoke_api_key(&mut self, user_id: u64) -> Result<Option<[u8; HASH_BYTES]>, StoreError> {
        let user_key = user_id.to_be_bytes();
        let t = &self.trees;
        (&t.api_keys, &t.user_api_keys)
            .transaction(|(api_keys, user_api_keys)| {
                let Some(value) = user_api_keys.remove(&user_key)? else {
                    return Ok(None);
                };
                let (hash, _) = split_user_key_value(&value).or_else(abort)?;
                api_keys.remove(hash.as_slice())?;
                Ok(Some(hash))
            })
            .map_err(from_tx)
    }

    /// The user holding the key with this hash.
    pub fn user_by_api_key(&self, hash: &[u8; HASH_BYTES]) -> Result<Option<User>, StoreError> {
        match self.trees.api_keys.get(hash)? {
            Some(id_bytes) => self.user(u64_key(&id_bytes)?),
            None => Ok(None),
        }
    }

    /// When the user's current key was made (Unix ms), `None` without a key.
    pub fn api_key_created_at(&self, user_id: u64) -> Result<Option<u64>, StoreError> {
        match self.trees.user_api_keys.get(user_id.to_be_bytes())? {
            Some(value) => Ok(Some(split_user_key_value(&value)?.1)),
            None => Ok(None),
        }
    }
}
