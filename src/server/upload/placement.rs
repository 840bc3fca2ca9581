//! Where an upload's job runs: this node's recognition threads or, with `nats_url`, the
//! remote workers, as `recognition_split` says (docs/cluster.md). Decided on the owner shard
//! before the points are reserved, so that no room means 5001 and nothing charged.

use crate::cluster::Split;
use crate::recognition::{Job, Kind};
use crate::server::shard::Shard;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Local,
    Remote,
}

/// Where a job of `kind` would run now (`local_only`: only here); `None` when no place
/// has room.
pub fn place(shard: &Shard, kind: Kind, local_only: bool) -> Option<Place> {
    let queue = &shard.shared.queue;
    let local_room = queue.has_room(kind);
    let link = shard.shared.cluster.as_ref().filter(|_| !local_only);
    let Some(link) = link else {
        return local_room.then_some(Place::Local);
    };
    let remote_room = link.has_room();
    let first = match link.split {
        Split::Local => None,
        // Local while a thread would take it at once; beyond, the workers.
        Split::Overflow if queue.depth(kind) < link.overflow_depth => Some(Place::Local),
        Split::Overflow | Split::Remote => remote_room.then_some(Place::Remote),
    };
    first.or(local_room.then_some(Place::Local))
}

/// Submits the job where `place` said; a remote submission the link refuses meanwhile
/// (NATS just went away) falls back to the local queue. Gives the job back when that is
/// full.
#[allow(clippy::result_large_err)] // handing the job back is the point
pub fn submit(shard: &Shard, place: Place, job: Job) -> Result<(), Job> {
    let job = match (place, &shard.shared.cluster) {
        (Place::Remote, Some(link)) => match link.try_submit(job) {
            Ok(()) => return Ok(()),
            Err(job) => job,
        },
        _ => job,
    };
    shard.shared.queue.try_submit(job)
}
