//! The node hop, beside the shard hop (`owner.rs`): a request whose user belongs to another
//! node (the node id is in every user id, an API key routes to its node, a username's claim
//! names its node) is forwarded whole to that node over NATS request/reply, and that node's
//! answer is this node's answer. The owner runs it through its own router as if it had
//! arrived there, with the client's address; it is never forwarded again (forwarded.rs).

use super::reply::{busy, Refusal};
use super::shard::{RemoteTask, Shard, ShardMessage};
use crate::cluster::wire::{self, ForwardedHead};
use crate::cluster::LinkError;
use crate::contract::ApiError;
use crate::http::{Method, RequestHead, Response};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Forwards the request to node `node` and returns its answer (5001 when the node cannot be
/// reached: nothing ran there that the client would pay for).
pub async fn forward(
    shard: &Rc<Shard>,
    node: u16,
    head: &RequestHead,
    body: &[u8],
    peer: IpAddr,
) -> Response {
    let Some(link) = &shard.shared.cluster else {
        return Refusal::from(ApiError::BadToken).into_response();
    };
    let tag = link.next_forward_tag();
    let forwarded = ForwardedHead {
        tag,
        method: method_name(head.method).to_string(),
        path: head.path.clone(),
        query: head.query.clone(),
        version_minor: head.version_minor,
        authorization: head.authorization.clone(),
        content_type: head.content_type.clone(),
        mcp: head.mcp.clone(),
        peer,
    };
    let request = wire::encode_forward(&forwarded, body);
    match link.forward(node, tag, request).await {
        Ok(bytes) => wire::decode_response(&bytes)
            .unwrap_or_else(|error| unreachable_node(node, &error).into_response()),
        Err(error) => unreachable_node(node, &error).into_response(),
    }
}

fn unreachable_node(node: u16, why: &dyn std::fmt::Display) -> Refusal {
    let mut refusal = busy();
    refusal.message = format!("the node that owns this account ({node}) is unreachable: {why}");
    refusal
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Options => "OPTIONS",
        Method::Other => "OTHER",
    }
}

/// The bridge's way into the shards: each forwarded request goes to the next shard's inbox
/// in turn (the router hops on to the user's shard from there). A full inbox answers 5001 at
/// once.
pub fn serve_into(peers: Arc<[flume::Sender<ShardMessage>]>) -> crate::cluster::Serve {
    let next = AtomicUsize::new(0);
    Arc::new(move |bytes: Vec<u8>| {
        let (reply, answer) = flume::bounded(1);
        let shard = next.fetch_add(1, Ordering::Relaxed) % peers.len();
        let message = ShardMessage::Forwarded(bytes, reply);
        if let Err(error) = peers[shard].try_send(message) {
            if let ShardMessage::Forwarded(_, reply) = error.into_inner() {
                let refusal = busy();
                let _ = reply.send(wire::encode_response(&refusal.into_response()));
            }
        }
        answer
    })
}

/// Names one page of `local_names` holds: a shard answers it between other work.
const NAMES_PAGE: usize = 512;

/// The bridge's way to read this node's usernames, a page at a time from each shard (to
/// claim them again when NATS lost them). A full inbox or a store that cannot be read drops
/// the answer's sender: the bridge tries again later.
pub fn local_names(peers: Arc<[flume::Sender<ShardMessage>]>) -> crate::cluster::LocalNames {
    Arc::new(move |shard: u16, after: Option<String>| {
        let (reply, page) = flume::bounded(1);
        let task: RemoteTask = Box::new(move |shard: Rc<Shard>| {
            Box::pin(async move {
                let names = shard
                    .store
                    .borrow()
                    .and_then(|store| store.usernames_after(after.as_deref(), NAMES_PAGE));
                if let Ok(names) = names {
                    let _ = reply.send(names);
                }
            })
        });
        let _ = peers[usize::from(shard)].try_send(ShardMessage::Run(task));
        page
    })
}

/// The refusal that sends a request to its user's node (the router forwards it).
pub fn owned_by(node: u16) -> Refusal {
    let mut refusal = Refusal::from(ApiError::BadToken);
    refusal.owner_node = Some(node);
    refusal
}

/// A cluster error as the client sees it: 5001 with `Retry-After` (try again later).
pub fn unavailable(error: LinkError) -> Refusal {
    let mut refusal = busy();
    refusal.message = format!("the platform's registry is unreachable: {error}");
    refusal
}
