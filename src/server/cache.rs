//! The answer cache: one logical cache for the whole node, still shared-nothing.
//!
//! Each entry is owned by one shard, chosen from its image's hash as a user's data is
//! chosen from the user's id ([`owner_of`]); only that shard's thread touches it
//! (server/state/answer_cache.rs). A shard that needs an answer asks the owner: itself without any message, or
//! another shard through `Shard::submit_to`, the one bounded hop every cross-shard call
//! takes. So the same captcha uploaded by users who live on different shards is recognised
//! once, and a hash lookup (`POST /v2/decode/cached`, endpoints/cached.rs) finds what any upload
//! left.
//!
//! - [`lookup`]: an upload, on its user's shard, before it takes a queue slot. A full inbox
//!   at the owner counts as a miss (the upload then runs the model: slower, never wrong).
//! - [`lookup_many`]: a batch of hash lookups, one hop per owner shard (not per lookup), the
//!   hops to every owner under way at once.
//! - [`fill`]: a fresh result, from the upload's shard; a message the owner applies, not
//!   waited for. Dropped when the owner's inbox is full (only a later model run is lost).
//! - [`forget`]: a report. Waits for room in the owner's inbox rather than being dropped,
//!   and for the owner to have applied it: a report answered means the answer is gone.
//!
//! Restarts start empty: the cache is memory only (the ledger is what must survive).

use crate::recognition::cache::{CacheKey, ImagePrefix};
use crate::recognition::JobAnswer;
use crate::server::shard::{HopError, RemoteTask, Shard, ShardMessage};
use std::rc::Rc;

/// The shard that owns the entries of the image whose hash starts with `prefix`: its first
/// 8 bytes, as a number, modulo the shard count (a cryptographic hash spreads them evenly).
pub fn owner_of(prefix: &ImagePrefix, shard_count: u16) -> u16 {
    assert!(shard_count > 0);
    let high = u64::from_be_bytes(prefix[..8].try_into().expect("16 bytes"));
    (high % u64::from(shard_count)) as u16
}

fn is_enabled(shard: &Shard) -> bool {
    // Every shard has the same configuration, so its own store says for all of them.
    shard.uploads.answer_cache.borrow().is_enabled()
}

/// The answer cached for `key`, asked of the shard that owns it.
pub async fn lookup(shard: &Rc<Shard>, key: &CacheKey) -> Option<JobAnswer> {
    if !is_enabled(shard) {
        return None;
    }
    let started = std::time::Instant::now();
    let owner = owner_of(&key.prefix(), shard.shard_count());
    let remote = owner != shard.id;
    let found = if remote {
        ask_owner(shard, owner, key.clone()).await
    } else {
        get_here(shard, key)
    };
    let took_us = started.elapsed().as_micros() as u64;
    let which = 2 * usize::from(remote) + usize::from(found.is_some());
    shard.metrics().cache_lookup_us[which].saturating_record(took_us.max(1));
    found
}

/// One lookup at another shard (a miss when its inbox is full or it has stopped).
async fn ask_owner(shard: &Rc<Shard>, owner: u16, key: CacheKey) -> Option<JobAnswer> {
    shard.metrics().cache_cross_shard_lookups += 1;
    let asked = shard.submit_to(owner, move |owner_shard| async move {
        get_here(&owner_shard, &key)
    });
    match asked.await {
        Ok(found) => found,
        Err(_) => {
            shard.metrics().cache_messages_dropped += 1;
            None
        }
    }
}

/// The answers cached for `keys`, in their order: one hop per owner shard, all at once.
/// `Err` when an owner's inbox is full or the server is stopping (nothing was charged).
pub async fn lookup_many(
    shard: &Rc<Shard>,
    keys: Vec<CacheKey>,
) -> Result<Vec<Option<JobAnswer>>, HopError> {
    let mut answers: Vec<Option<JobAnswer>> = vec![None; keys.len()];
    if !is_enabled(shard) || keys.is_empty() {
        return Ok(answers);
    }
    let shard_count = shard.shard_count();
    let mut by_owner: Vec<(Vec<usize>, Vec<CacheKey>)> =
        vec![Default::default(); shard_count.into()];
    for (index, key) in keys.into_iter().enumerate() {
        let owner = &mut by_owner[usize::from(owner_of(&key.prefix(), shard_count))];
        owner.0.push(index);
        owner.1.push(key);
    }
    let mut local = None;
    let mut hops = Vec::new();
    for (owner, (indexes, keys)) in by_owner.into_iter().enumerate() {
        let owner = owner as u16;
        if keys.is_empty() {
            continue;
        }
        if owner == shard.id {
            // Read below, once the hops to the other owners are on their way.
            local = Some((indexes, keys));
            continue;
        }
        shard.metrics().cache_cross_shard_lookups += keys.len() as u64;
        let asker = shard.clone();
        let hop = glommio::spawn_local(async move {
            let read = move |owner_shard: Rc<Shard>| async move {
                keys.iter()
                    .map(|key| get_here(&owner_shard, key))
                    .collect::<Vec<_>>()
            };
            asker.submit_to(owner, read).await
        });
        hops.push((indexes, hop));
    }
    if let Some((indexes, keys)) = local {
        let found = keys.iter().map(|key| get_here(shard, key)).collect();
        place(&mut answers, indexes, found);
    }
    for (indexes, hop) in hops {
        place(&mut answers, indexes, hop.await?);
    }
    Ok(answers)
}

/// Puts one owner's answers back in the order of the request.
fn place(answers: &mut [Option<JobAnswer>], indexes: Vec<usize>, found: Vec<Option<JobAnswer>>) {
    assert_eq!(found.len(), indexes.len(), "one answer per key");
    for (index, answer) in indexes.into_iter().zip(found) {
        answers[index] = answer;
    }
}

/// Keeps a fresh answer at the shard that owns its entry.
pub fn fill(shard: &Rc<Shard>, key: CacheKey, answer: JobAnswer) {
    if !is_enabled(shard) {
        return;
    }
    let owner = owner_of(&key.prefix(), shard.shard_count());
    if owner == shard.id {
        insert_here(shard, key, answer);
        return;
    }
    let task: RemoteTask = Box::new(move |owner_shard: Rc<Shard>| {
        Box::pin(async move {
            assert_eq!(owner_shard.id, owner, "a fill runs on the entry's owner");
            insert_here(&owner_shard, key, answer);
        })
    });
    let peer = &shard.shared.peers[usize::from(owner)];
    if peer.try_send(ShardMessage::Run(task)).is_err() {
        shard.metrics().cache_messages_dropped += 1;
    }
}

/// Drops every answer of a reported image (by its record's `image_hash`) at its owner and
/// keeps it out for the TTL; returns once the owner has done so (or the server stops).
pub async fn forget(shard: &Rc<Shard>, prefix: ImagePrefix) {
    if !is_enabled(shard) {
        return;
    }
    let owner = owner_of(&prefix, shard.shard_count());
    if owner == shard.id {
        forget_here(shard, prefix);
        return;
    }
    let (done, applied) = flume::bounded(1);
    let task: RemoteTask = Box::new(move |owner_shard: Rc<Shard>| {
        Box::pin(async move {
            assert_eq!(owner_shard.id, owner, "a report runs on the entry's owner");
            forget_here(&owner_shard, prefix);
            let _ = done.send(());
        })
    });
    // `send_async` waits for room (the reactor goes on meanwhile): a dropped eviction would
    // let a reported answer be served again. Only a stopped server refuses it, and its cache
    // is gone with it.
    let peer = &shard.shared.peers[usize::from(owner)];
    if peer.send_async(ShardMessage::Run(task)).await.is_ok() {
        let _ = applied.recv_async().await;
    }
}

fn now_ms() -> u64 {
    crate::clock::unix_now_ms()
}

/// Reads this shard's own part; the counters go to its metrics.
fn get_here(shard: &Shard, key: &CacheKey) -> Option<JobAnswer> {
    let mut store = shard.uploads.answer_cache.borrow_mut();
    let found = store.get(key, now_ms());
    shard.metrics().cache = store.counters();
    found
}

fn insert_here(shard: &Shard, key: CacheKey, answer: JobAnswer) {
    let mut store = shard.uploads.answer_cache.borrow_mut();
    store.insert(key, answer, now_ms());
    shard.metrics().cache = store.counters();
}

fn forget_here(shard: &Shard, prefix: ImagePrefix) {
    let mut store = shard.uploads.answer_cache.borrow_mut();
    store.forget(prefix, now_ms());
    shard.metrics().cache = store.counters();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_spread_over_the_shards_and_one_shard_owns_all() {
        let mut counts = [0u32; 3];
        for i in 0u32..3000 {
            let digest = crate::recognition::cache::digest(&i.to_le_bytes());
            counts[usize::from(owner_of(&crate::recognition::cache::prefix(&digest), 3))] += 1;
        }
        assert!(
            counts.iter().all(|count| (800..1200).contains(count)),
            "{counts:?}"
        );
        assert_eq!(owner_of(&[0xff; 16], 1), 0);
        assert_eq!(owner_of(&[0; 16], 7), 0);
    }
}
