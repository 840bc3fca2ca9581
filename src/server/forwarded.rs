//! The other side of the node hop (node_hop.rs): a request another node forwarded here is
//! run through this node's router as if it had arrived on this shard, with the client's
//! address, and its answer's bytes go back. It is never forwarded again.

use super::reply::Refusal;
use super::router;
use super::shard::{RemoteTask, Shard, ShardMessage};
use crate::cluster::wire::{self, ForwardedHead};
use crate::contract::ApiError;
use crate::http::{Framing, Method, RequestHead};
use std::rc::Rc;
use std::sync::Arc;

/// Runs a request another node forwarded, on this shard, and sends back the answer's bytes.
pub async fn serve_forwarded(shard: Rc<Shard>, bytes: Vec<u8>, reply: flume::Sender<Vec<u8>>) {
    let arrived = std::time::Instant::now();
    let answer = match wire::decode_forward(&bytes) {
        Ok((forwarded, body)) => {
            let head = request_head(&forwarded, body.len());
            router::handle_forwarded(&shard, forwarded.peer, &head, body, forwarded.tag, arrived)
                .await
        }
        Err(error) => Refusal::new(ApiError::Malformed, error).into_response(),
    };
    let _ = reply.send(wire::encode_response(&answer));
}

/// Gives back what requests other nodes forwarded charged on this shard when their answers
/// were not acknowledged (cluster/confirm.rs: the forwarding node answered its client 5001):
/// a pending upload voided (no callback: its client was refused), a done one refunded, each
/// with `reason` in the journal; then made durable. On a failed disk each is withdrawn when
/// the store is reopened, as a refused upload is.
pub async fn withdraw_unacknowledged(shard: Rc<Shard>, upload_ids: Vec<u64>, reason: String) {
    let now_ms = crate::clock::unix_now_ms();
    for upload_id in upload_ids {
        shard.uploads.waiters.forget(upload_id);
        shard.uploads.finish_hooks.take(upload_id);
        let withdrawn = shard
            .store
            .borrow_mut()
            .and_then(|mut store| store.withdraw_unacknowledged(upload_id, &reason, now_ms));
        if let Err(error) = withdrawn {
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
        store.withdraw_unacknowledged(upload_id, WITHDRAWN_AT_STOP, now_ms)?;
    }
    let count = upload_ids.len();
    link.stats
        .forward_withdrawn
        .fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(count)
}

const WITHDRAWN_AT_STOP: &str =
    "given back at the node's stop: the answer to the forwarded request was not acknowledged yet";

fn request_head(forwarded: &ForwardedHead, body_len: usize) -> RequestHead {
    RequestHead {
        method: Method::parse_name(&forwarded.method),
        path: forwarded.path.clone(),
        query: forwarded.query.clone(),
        version_minor: forwarded.version_minor,
        framing: match body_len {
            0 => Framing::Empty,
            length => Framing::Length(length),
        },
        keep_alive: true,
        expect_continue: false,
        authorization: forwarded.authorization.clone(),
        content_type: forwarded.content_type.clone(),
        if_none_match: None,
        mcp: forwarded.mcp.clone(),
    }
}

/// The bridge's way to give back the charges of forwarded requests whose answers were not
/// acknowledged: a task on the shard that made them (false when its inbox is full).
pub fn withdraw_into(peers: Arc<[flume::Sender<ShardMessage>]>) -> crate::cluster::Withdraw {
    Arc::new(move |shard: u16, upload_ids: Vec<u64>, reason: String| {
        let task: RemoteTask = Box::new(move |shard: Rc<Shard>| {
            Box::pin(withdraw_unacknowledged(shard, upload_ids, reason))
        });
        peers[usize::from(shard)]
            .try_send(ShardMessage::Run(task))
            .is_ok()
    })
}
