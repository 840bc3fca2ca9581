//! Password attempts: the backoff around one password check (per account on the shard that
//! owns the username, per client address on the connection's shard) and the check itself,
//! on the node's password hash threads (src/password_pool.rs), never on glommio's blocking
//! pool where the group commit's fsync runs.
//!
//! Where the state lives, and why: an account's failures live on the shard its username maps
//! to (`ids::shard_for_username`), which is where its user record is and where the login
//! already runs, so counting costs no hop and every attempt on a name, from any connection,
//! meets one table; names that do not exist map to a shard the same way. An address's
//! failures live on the shard that accepted the connection: checking them before the hop
//! refuses a locked address without any cross-shard work. The kernel spreads one address's
//! connections over the shards, so an address gets its free failures once per shard (like
//! `failed_auth_per_sec`); the backoff after them is what bounds guessing.

use super::reply::{shutting_down, Refusal};
use super::shard::Shard;
use crate::contract::ApiError;
use crate::login_backoff::{LoginBackoff, Outcome};
use crate::password_pool::PoolError;
use std::cell::RefCell;
use std::rc::Rc;

/// Which backoff table an attempt counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The username's (on the shard that owns the name).
    Account,
    /// The client address's (on the connection's shard).
    Address,
}

/// One attempt let through a backoff table; ends when dropped, as `NotChecked` unless
/// `end` said otherwise (a request that went away, or a full hash queue, counts nothing).
pub struct Attempt {
    shard: Rc<Shard>,
    scope: Scope,
    key: u64,
    outcome: Outcome,
}

impl Attempt {
    /// Starts an attempt for `key`, or refuses it (5002 with `Retry-After`) while its backoff
    /// lasts: nothing is hashed then.
    pub fn begin(shard: &Rc<Shard>, scope: Scope, key: u64) -> Result<Attempt, Refusal> {
        if let Err(retry_after_secs) = table(shard, scope).borrow_mut().begin(key) {
            let mut metrics = shard.metrics();
            match scope {
                Scope::Account => metrics.login_backoff_account += 1,
                Scope::Address => metrics.login_backoff_address += 1,
            }
            return Err(
                Refusal::new(ApiError::RateLimited, "too many failed logins")
                    .retry_after(retry_after_secs),
            );
        }
        Ok(Attempt {
            shard: shard.clone(),
            scope,
            key,
            outcome: Outcome::NotChecked,
        })
    }

    /// How the attempt ended (applied when it is dropped).
    pub fn end(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        table(&self.shard, self.scope)
            .borrow_mut()
            .finish(self.key, self.outcome);
    }
}

fn table(shard: &Shard, scope: Scope) -> &RefCell<LoginBackoff> {
    match scope {
        Scope::Account => &shard.account_backoff,
        Scope::Address => &shard.address_backoff,
    }
}

/// Whether `password` matches the PHC `hash`, checked on a password hash thread. A full
/// hash queue is 5001 with `Retry-After` at once (nothing hashed, nothing counted).
pub async fn password_matches(
    shard: &Shard,
    hash: String,
    password: String,
) -> Result<bool, Refusal> {
    shard
        .shared
        .passwords
        .verify(hash, password)
        .await
        .map_err(|error| pool_refusal(shard, error))
}

/// The argon2id hash of a new password, made on a password hash thread (5001 when full).
pub async fn hash_new_password(shard: &Shard, password: String) -> Result<String, Refusal> {
    let hashed = shard
        .shared
        .passwords
        .hash(password)
        .await
        .map_err(|error| pool_refusal(shard, error))?;
    hashed.map_err(|error| super::reply::internal("hash_password", error))
}

fn pool_refusal(shard: &Shard, error: PoolError) -> Refusal {
    match error {
        PoolError::Full => {
            shard.metrics().password_hash_queue_full += 1;
            Refusal::new(ApiError::Busy, "busy: password hashing queue full").retry_after(1)
        }
        PoolError::Stopped => shutting_down(),
    }
}

/// How an attempt's answer counts: a wrong password (or unknown user) fails; a success is
/// a success; any other refusal (busy, rate limited, malformed) checked no password.
pub fn outcome_of<T>(result: &Result<T, Refusal>, forgive: bool) -> Outcome {
    match result {
        Ok(_) => Outcome::Succeeded { forgive },
        Err(refusal) if refusal.error == ApiError::BadCredentials => Outcome::Failed,
        Err(_) => Outcome::NotChecked,
    }
}
