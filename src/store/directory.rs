//! The user directory for operators: find users by the start of their name, a page at a time
//! (`GET /v2/admin/users`). A role change is in sessions.rs (it ends the user's tokens).
//!
//! Users are sharded by name, so each shard answers for its own users; the server merges the
//! shards' pages (each sorted by name) into one.

use super::layout::u64_key;
use super::records::{Balance, Role};
use super::{ShardStore, StoreError};
use std::ops::Bound;

/// The most users one page may hold.
pub const MAX_PAGE: usize = 100;

/// One user as an operator sees it (never the password hash).
#[derive(Clone, Debug, PartialEq)]
pub struct UserSummary {
    pub id: u64,
    pub username: String,
    pub role: Role,
    pub created_at_ms: u64,
    pub balance: Balance,
    pub has_key: bool,
}

impl ShardStore {
    /// Up to `limit` (1..=`MAX_PAGE`) of this shard's users whose name starts with `prefix`
    /// and comes after `after` (byte order), in name order.
    pub fn find_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UserSummary>, StoreError> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(StoreError::InvalidInput(format!(
                "limit must be 1..={MAX_PAGE}"
            )));
        }
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.as_bytes()),
            _ => Bound::Included(prefix.as_bytes()),
        };
        let mut page = Vec::with_capacity(limit);
        for item in self
            .trees
            .usernames
            .range::<&[u8], _>((start, Bound::Unbounded))
        {
            let (name, id_bytes) = item?;
            if !name.starts_with(prefix.as_bytes()) || page.len() == limit {
                break;
            }
            page.push(self.summary(u64_key(&id_bytes)?)?);
        }
        Ok(page)
    }

    /// Up to `limit` of this shard's usernames after `after` (byte order), removed users'
    /// included (their names stay taken): the names the node claims on the platform.
    pub fn usernames_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let start = match after {
            Some(after) => Bound::Excluded(after.as_bytes()),
            None => Bound::Unbounded,
        };
        let mut names = Vec::with_capacity(limit.min(MAX_PAGE));
        for item in self
            .trees
            .usernames
            .range::<&[u8], _>((start, Bound::Unbounded))
            .take(limit)
        {
            let (name, _) = item?;
            names.push(String::from_utf8_lossy(&name).into_owned());
        }
        Ok(names)
    }

    fn summary(&self, user_id: u64) -> Result<UserSummary, StoreError> {
        let user = self.user(user_id)?.ok_or_else(|| {
            StoreError::Corrupt(format!("username index names missing user {user_id}"))
        })?;
        Ok(UserSummary {
            id: user.id,
            username: user.username,
            role: user.role,
            created_at_ms: user.created_at_ms,
            balance: self.balance(user_id)?,
            has_key: self.api_key_created_at(user_id)?.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(store: &mut ShardStore, name: &str, role: Role) -> u64 {
        let now = crate::clock::unix_now_ms();
        store
            .create_user(name, "$argon2id$x", role, 5, now)
            .unwrap()
    }

    fn names(page: &[UserSummary]) -> Vec<&str> {
        page.iter().map(|user| user.username.as_str()).collect()
    }

    #[test]
    fn users_are_found_by_prefix_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ShardStore::open(dir.path(), 0, 1, 1).unwrap();
        for name in ["bob", "ann", "anna", "annie", "zed"] {
            add(&mut store, name, Role::User);
        }
        let first = store.find_users("ann", None, 2).unwrap();
        assert_eq!(names(&first), ["ann", "anna"]);
        assert_eq!((first[0].balance.points, first[0].has_key), (5, false));
        let next = store.find_users("ann", Some("anna"), 2).unwrap();
        assert_eq!(names(&next), ["annie"]);
        assert_eq!(names(&store.find_users("", None, 10).unwrap()).len(), 5);
        assert_eq!(
            names(&store.find_users("", Some("bob"), 10).unwrap()),
            ["zed"]
        );
        // An `after` before the prefix starts at the prefix.
        assert_eq!(
            names(&store.find_users("b", Some("a"), 10).unwrap()),
            ["bob"]
        );
        assert!(store.find_users("x", None, 10).unwrap().is_empty());
        assert!(store.find_users("", None, 0).is_err());
        assert!(store.find_users("", None, MAX_PAGE + 1).is_err());
    }

    #[test]
    fn a_role_change_is_stored_and_seen_by_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ShardStore::open(dir.path(), 0, 1, 1).unwrap();
        let ann = add(&mut store, "ann", Role::User);
        assert_eq!(
            store.set_role(ann, Role::Developer).unwrap(),
            1,
            "a new epoch"
        );
        assert_eq!(store.user(ann).unwrap().unwrap().role, Role::Developer);
        store.set_api_key(ann, &[7; 32], 1).unwrap();
        assert_eq!(store.set_role(ann, Role::Admin).unwrap(), 2);
        assert_eq!(
            store.user_by_api_key(&[7; 32]).unwrap().unwrap().role,
            Role::Admin
        );
        assert!(matches!(
            store.set_role(ann + 1, Role::User),
            Err(StoreError::UserNotFound)
        ));
    }
}
