//! What a request another node forwarded (forwarded.rs) charges on this shard waits for the
//! forwarding node's acknowledgement of the answer (cluster/confirm.rs in memory,
//! store/awaiting_ack.rs on disk): kept when it comes, given back when the window passes
//! first, at the node's stop, or at the next start after a kill.
//!
//! Apart from forwarded.rs (which runs the request through the router) so that the upload
//! path, which registers a charge here, does not depend on the router.

use super::call::ForwardedFrom;
use super::shard::{RemoteTask, Shard, ShardMessage};
use crate::cluster::confirm::{Charge, Settlement};
use crate::cluster::wire::ForwardTag;
use crate::cluster::ClusterLink;
use crate::store::{AwaitingAck, ShardStore, StoreError};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A request another node forwarded charged `upload_id` on this shard (its owner): the
/// charge waits for that node's acknowledgement of the answer, in the link's table and on
/// this shard's disk, written now so that the group commit the answer waits for makes it
/// durable with the charge (store/awaiting_ack.rs). Nothing for this node's own clients.
pub fn await_ack(shard: &Shard, forwarded: Option<ForwardedFrom>, upload_id: u64) {
    let (Some(forwarded), Some(link)) = (forwarded, &shard.shared.cluster) else {
        return;
    };
    let charge = Charge {
        shard: shard.id,
        upload_id,
    };
    let Some(deadline) = link.forwarded_charge(forwarded.tag, forwarded.arrived, charge) else {
        return; // the table is full: kept untracked, and counted
    };
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let awaiting = AwaitingAck {
        from: forwarded.tag.from,
        tag_id: forwarded.tag.id,
        deadline_ms: crate::clock::unix_now_ms().saturating_add(left.as_millis() as u64),
    };
    let written = shard
        .store
        .borrow_mut()
        .and_then(|mut store| store.await_ack(upload_id, awaiting));
    if let Err(error) = written {
        // The group commit fails too (the disk is failing): the upload is refused and
        // withdrawn at the reopen, as any is; the table still gives it back meanwhile.
        super::storage::notice(shard, &error);
    }
}

/// Ends, on this shard, the wait of charges forwarded requests made: kept (acknowledged) or
/// given back (not acknowledged in time).
pub async fn settle(shard: Rc<Shard>, upload_ids: Vec<u64>, settlement: Settlement) {
    match settlement {
        Settlement::Kept => keep_acknowledged(&shard, &upload_ids),
        Settlement::GivenBack(reason) => give_back(shard, upload_ids, reason).await,
    }
}

/// The forwarding node acknowledged the answer: the charges stay. Their wait on disk ends
/// with the next group commit (or sled's own periodic flush); a node killed before that
/// gives them back at its start: its client was answered, and is never charged twice.
fn keep_acknowledged(shard: &Shard, upload_ids: &[u64]) {
    let kept = shard.store.borrow_mut().and_then(|mut store| {
        upload_ids
            .iter()
            .try_for_each(|&upload_id| store.keep_acknowledged(upload_id).map(|_| ()))
    });
    if let Err(error) = kept {
        super::storage::notice(shard, &error);
    }
}

/// Gives back what requests other nodes forwarded charged on this shard when their answers
/// were not acknowledged (cluster/confirm.rs: the forwarding node answered its client 5001):
/// a pending upload voided (no callback: its client was refused), a done one refunded, each
/// with `reason` in the journal; then made durable. On a failed disk each is withdrawn when
/// the store is reopened, as a refused upload is.
async fn give_back(shard: Rc<Shard>, upload_ids: Vec<u64>, reason: String) {
    let now_ms = crate::clock::unix_now_ms();
    for upload_id in upload_ids {
        shard.uploads.waiters.forget(upload_id);
        shard.uploads.finish_hooks.take(upload_id);
        let given_back = shard
            .store
            .borrow_mut()
            .and_then(|mut store| store.give_back_unacknowledged(upload_id, &reason, now_ms));
        if let Err(error) = given_back {
            super::storage::notice(&shard, &error);
            shard.store.withdraw_at_reopen(upload_id);
        }
    }
    // A failed flush is the storage loop's to handle (storage.rs); what did not reach the
    // disk is withdrawn at the reopen or the next start (pending uploads are voided then).
    let _ = shard.commit.durable().await;
}

/// At the node's stop: gives back this shard's charges of forwarded requests whose answers
/// were not acknowledged yet (no acknowledgement can reach a stopped node, and a charge the
/// forwarding node answered 5001 for must not stay). An answer that did arrive is then free.
/// Returns how many were given back; the caller flushes.
pub fn withdraw_at_stop(shard: &Shard) -> Result<usize, crate::store::StoreError> {
    let Some(link) = &shard.shared.cluster else {
        return Ok(0);
    };
    let upload_ids = link.unconfirmed.take_shard(shard.id);
    let now_ms = crate::clock::unix_now_ms();
    let mut store = shard.store.borrow_mut()?;
    for &upload_id in &upload_ids {
        store.give_back_unacknowledged(upload_id, WITHDRAWN_AT_STOP, now_ms)?;
    }
    let count = upload_ids.len();
    link.stats
        .forward_withdrawn
        .fetch_add(count as u64, Ordering::Relaxed);
    Ok(count)
}

const WITHDRAWN_AT_STOP: &str =
    "given back at the node's stop: the answer to the forwarded request was not acknowledged yet";

const GIVEN_BACK_AT_START: &str = "given back at the node's start: the answer to the forwarded \
     request was not acknowledged before the node stopped, and its window has passed";

/// A charge of the previous run still awaiting its acknowledgement at start.
pub type Resumed = (ForwardTag, Charge, u64);

/// At start, before the shard serves: gives back the previous run's forwarded charges whose
/// acknowledgement window has passed (the node was killed inside it), with the reason in the
/// journal; returns the others (tag, charge, window's end in Unix ms) for
/// [`resume_awaiting`]. Without a cluster no acknowledgement can come: every one is given
/// back. The caller flushes.
pub fn settle_at_start(
    store: &mut ShardStore,
    clustered: bool,
    now_ms: u64,
) -> Result<(usize, Vec<Resumed>), StoreError> {
    let mut given_back = 0;
    let mut resumed = Vec::new();
    for (upload_id, awaiting) in store.awaiting_acks()? {
        if clustered && awaiting.deadline_ms > now_ms {
            let tag = ForwardTag {
                from: awaiting.from,
                id: awaiting.tag_id,
            };
            let charge = Charge {
                shard: store.shard(),
                upload_id,
            };
            resumed.push((tag, charge, awaiting.deadline_ms));
            continue;
        }
        store.give_back_unacknowledged(upload_id, GIVEN_BACK_AT_START, now_ms)?;
        given_back += 1;
    }
    Ok((given_back, resumed))
}

/// Puts the previous run's charges still inside their window back in the table of the
/// link: given back when the window passes, kept if the acknowledgement still comes.
pub fn resume_awaiting(link: &ClusterLink, resumed: Vec<Resumed>) {
    let (now, now_ms) = (std::time::Instant::now(), crate::clock::unix_now_ms());
    for (tag, charge, deadline_ms) in resumed {
        let left = std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        if !link.unconfirmed.charged(tag, charge, now + left) {
            link.stats.forward_untracked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The bridge's way to end the wait of forwarded charges (kept or given back): a task on
/// the shard that made them (false when its inbox is full).
pub fn settle_into(peers: Arc<[flume::Sender<ShardMessage>]>) -> crate::cluster::Settle {
    Arc::new(
        move |shard: u16, upload_ids: Vec<u64>, settlement: Settlement| {
            let task: RemoteTask =
                Box::new(move |shard: Rc<Shard>| Box::pin(settle(shard, upload_ids, settlement)));
            peers[usize::from(shard)]
                .try_send(ShardMessage::Run(task))
                .is_ok()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewUpload, Role};

    #[test]
    fn at_start_charges_past_their_window_are_given_back_and_the_others_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ShardStore::open(dir.path(), 0, 1, 0).unwrap();
        let now_ms = crate::clock::unix_now_ms();
        let user_id = store
            .create_user("forwarded", "hash", Role::User, 100, now_ms)
            .unwrap();
        let mut charge = |deadline_ms| {
            let new = NewUpload {
                cost: 10,
                model: "old".into(),
                soft_id: None,
                image_hash: [0; 16],
                now_ms,
            };
            let record = store.accept_upload(user_id, new).unwrap();
            let awaiting = AwaitingAck {
                from: 2,
                tag_id: record.id,
                deadline_ms,
            };
            store.await_ack(record.id, awaiting).unwrap();
            record.id
        };
        let (passed, open) = (charge(now_ms - 1), charge(now_ms + 60_000));
        let (given_back, resumed) = settle_at_start(&mut store, true, now_ms).unwrap();
        assert_eq!(given_back, 1);
        let tag = ForwardTag { from: 2, id: open };
        let waiting = Charge {
            shard: 0,
            upload_id: open,
        };
        assert_eq!(resumed, vec![(tag, waiting, now_ms + 60_000)]);
        assert_eq!(
            store.awaiting_acks().unwrap().len(),
            1,
            "{passed} given back"
        );
        assert_eq!(store.balance(user_id).unwrap().reserved, 10, "one waits");
        // Started without a cluster: nothing can acknowledge it, so it is given back too.
        let (given_back, resumed) = settle_at_start(&mut store, false, now_ms).unwrap();
        assert_eq!((given_back, resumed.len()), (1, 0));
        assert_eq!(store.balance(user_id).unwrap().points, 100);
        assert!(store.awaiting_acks().unwrap().is_empty());
    }
}
