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
        Scope::Account => &shard.logins.account_backoff,
        Scope::Address => &shard.logins.address_backoff,
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

/// How an attempt's answer counts in `scope`: a wrong password (or unknown user) fails; a
/// success is a success (it forgives an account, not an address); any other refusal (busy,
/// malformed) checked no password. For an address, an attempt the account refused (its
/// backoff or its per-user limit: 5002) fails too: it is still a guess from that address,
/// and counting it soon locks the address, whose refusals are given on the connection's
/// shard without the hop to the account's.
pub fn outcome_of<T>(result: &Result<T, Refusal>, scope: Scope) -> Outcome {
    match result {
        Ok(_) => Outcome::Succeeded {
            forgive: scope == Scope::Account,
        },
        Err(refusal) if refusal.error == ApiError::BadCredentials => Outcome::Failed,
        Err(refusal) if refusal.error == ApiError::RateLimited && scope == Scope::Address => {
            Outcome::Failed
        }
        Err(_) => Outcome::NotChecked,
    }
}

/// Holds a "try later" answer of a password attempt (one with `Retry-After`: 5002, 5001)
/// for `login_refusal_delay_ms`, at most its `Retry-After`. Without it, a flood of refused
/// guesses is answered as fast as it is sent: tens of thousands of requests a second on
/// every shard, work that paid requests then queue behind. Held, each connection costs a
/// timer and gets about one answer a second; the connections themselves are bounded per
/// address (`max_connections_per_address`).
pub async fn pace_refusal<T>(shard: &Shard, result: &Result<T, Refusal>) {
    let Err(Refusal {
        retry_after_secs: Some(retry_after_secs),
        ..
    }) = result
    else {
        return;
    };
    let delay_ms = shard
        .config()
        .login
        .login_refusal_delay_ms
        .min(retry_after_secs.saturating_mul(1000));
    if delay_ms > 0 {
        glommio::timer::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_counts_by_its_code_and_scope() {
        let ok: Result<(), Refusal> = Ok(());
        let wrong = Err(Refusal::from(ApiError::BadCredentials));
        let limited = Err(Refusal::from(ApiError::RateLimited).retry_after(3));
        let busy = Err(Refusal::from(ApiError::Busy).retry_after(1));
        let malformed = Err(Refusal::from(ApiError::Malformed));
        let account = |result| outcome_of(result, Scope::Account);
        let address = |result| outcome_of(result, Scope::Address);
        assert_eq!(account(&ok), Outcome::Succeeded { forgive: true });
        assert_eq!(address(&ok), Outcome::Succeeded { forgive: false });
        assert_eq!(account(&wrong), Outcome::Failed);
        assert_eq!(address(&wrong), Outcome::Failed);
        // A guess the account refused is still a guess from the address.
        assert_eq!(account(&limited), Outcome::NotChecked);
        assert_eq!(address(&limited), Outcome::Failed);
        for nothing_checked in [&busy, &malformed] {
            assert_eq!(account(nothing_checked), Outcome::NotChecked);
            assert_eq!(address(nothing_checked), Outcome::NotChecked);
        }
    }
}
