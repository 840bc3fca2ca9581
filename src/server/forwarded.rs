//! The other side of the node hop (node_hop.rs): a request another node forwarded here is
//! run through this node's router as if it had arrived on this shard, with the client's
//! address, and its answer's bytes go back. It is never forwarded again. What such a
//! request charges waits for the forwarding node's acknowledgement (forward_acks.rs).

use super::reply::Refusal;
use super::router;
use super::shard::Shard;
use crate::cluster::wire::{self, ForwardedHead};
use crate::contract::ApiError;
use crate::http::{Framing, Method, RequestHead};
use std::rc::Rc;

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
