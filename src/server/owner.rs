//! The owner hop: every endpoint that touches a user's data parses its request where the
//! connection is (any shard), then runs it on the shard that owns the data. This is the one
//! helper that does that hop and maps its failures onto the contract.

use super::reply::{busy, shutting_down, Refusal};
use super::shard::{HopError, Shard};
use crate::contract::ApiError;
use std::future::Future;
use std::rc::Rc;

/// A typed request, parsed and checked off the owner shard, that runs on its owner.
pub trait OwnerCommand: Send + Sized + 'static {
    type Output: Send + 'static;

    /// The shard that owns what the command reads or writes.
    fn owner(&self) -> u16;

    /// Runs on the owner shard (`shard.id == self.owner()`).
    fn apply(
        self,
        shard: Rc<Shard>,
    ) -> impl Future<Output = Result<Self::Output, Refusal>> + 'static;
}

/// Runs `command` on its owner shard. A full inbox there or a stopping server is 5001 (busy,
/// `Retry-After`): in both cases the command did not run, so nothing was charged.
pub async fn run_on_owner<C: OwnerCommand>(
    shard: &Rc<Shard>,
    command: C,
) -> Result<C::Output, Refusal> {
    let owner = command.owner();
    let hop = shard.submit_to(owner, move |owner_shard| async move {
        assert_eq!(owner_shard.id, owner, "commands run on their owner");
        let result = command.apply(owner_shard.clone()).await;
        if matches!(&result, Err(refusal) if refusal.error == ApiError::StorageUnavailable) {
            // A write may have failed on the owner's disk: its storage loop checks.
            owner_shard.commit.request_check();
        }
        result
    });
    match hop.await {
        Ok(result) => result,
        Err(HopError::Busy) => {
            shard.metrics().forwards_refused += 1;
            Err(busy())
        }
        Err(HopError::Gone) => Err(shutting_down()),
    }
}
