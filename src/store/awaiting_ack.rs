//! Charges of forwarded requests whose answers await the forwarding node's acknowledgement
//! (docs/cluster.md, "Forwarded writes"), kept on disk so that a node killed inside the
//! acknowledgement window still gives them back at its next start.
//!
//! `awaiting_ack`: upload id -> [`AwaitingAck`] (the forwarding node, the request's tag, the
//! window's end in Unix ms). Written right after the charge, before the group commit the
//! answer waits for, so both reach the disk in the same flush without an fsync of their
//! own; sled recovers a prefix of its log, so a marker never survives a crash without its
//! charge. Each marker ends exactly once, and with it its charge:
//! - kept: the acknowledgement came; the marker is removed, the charge stays;
//! - given back: the window passed (or the node stopped) first; the upload is withdrawn
//!   (pending voided, done refunded, the reason in the journal), then the marker removed.
//!   Giving back twice is not possible: only a marker present is given back, and a crash
//!   between the withdrawal and the removal leaves an upload already voided or refunded,
//!   which withdrawing again leaves as it is.

use super::layout::u64_key;
use super::{ShardStore, StoreError, UploadRecord};

/// A forwarded request's charge awaiting acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AwaitingAck {
    /// The node that forwarded the request, and the request's number there.
    pub from: u16,
    pub tag_id: u64,
    /// Unix ms after which the charge is given back unless acknowledged.
    pub deadline_ms: u64,
}

const VALUE_BYTES: usize = 2 + 8 + 8;

impl AwaitingAck {
    fn encode(&self) -> [u8; VALUE_BYTES] {
        let mut value = [0u8; VALUE_BYTES];
        value[..2].copy_from_slice(&self.from.to_be_bytes());
        value[2..10].copy_from_slice(&self.tag_id.to_be_bytes());
        value[10..].copy_from_slice(&self.deadline_ms.to_be_bytes());
        value
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<AwaitingAck, StoreError> {
        let value: &[u8; VALUE_BYTES] = bytes.try_into().map_err(|_| {
            StoreError::Corrupt(format!("{}-byte awaiting acknowledgement", bytes.len()))
        })?;
        Ok(AwaitingAck {
            from: u16::from_be_bytes([value[0], value[1]]),
            tag_id: u64_key(&value[2..10])?,
            deadline_ms: u64_key(&value[10..])?,
        })
    }
}

impl ShardStore {
    /// Records that the charge of upload `upload_id` awaits the acknowledgement `awaiting`
    /// names (made durable by the group commit the answer waits for).
    pub fn await_ack(&mut self, upload_id: u64, awaiting: AwaitingAck) -> Result<(), StoreError> {
        self.trees
            .awaiting_ack
            .insert(upload_id.to_be_bytes(), &awaiting.encode())?;
        Ok(())
    }

    /// The acknowledgement came: the charge stays. Whether the upload awaited one (false:
    /// given back already, or never forwarded).
    pub fn keep_acknowledged(&mut self, upload_id: u64) -> Result<bool, StoreError> {
        Ok(self
            .trees
            .awaiting_ack
            .remove(upload_id.to_be_bytes())?
            .is_some())
    }

    /// No acknowledgement within the window: withdraws the upload (`withdraw_unacknowledged`,
    /// with `reason` in the journal) and ends its wait. Only an upload still awaiting its
    /// acknowledgement is withdrawn: `None` for one kept or given back already.
    pub fn give_back_unacknowledged(
        &mut self,
        upload_id: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<Option<UploadRecord>, StoreError> {
        let key = upload_id.to_be_bytes();
        if !self.trees.awaiting_ack.contains_key(key)? {
            return Ok(None);
        }
        // Withdrawn before the marker goes: a crash between the two leaves the marker, and
        // the next start withdraws again, which changes nothing the second time.
        let record = self.withdraw_unacknowledged(upload_id, reason, now_ms)?;
        let removed = self.trees.awaiting_ack.remove(key)?;
        assert!(removed.is_some(), "the shard's thread alone writes markers");
        Ok(record)
    }

    /// Every charge awaiting its acknowledgement (at start: the previous run's), in upload
    /// id order.
    pub fn awaiting_acks(&self) -> Result<Vec<(u64, AwaitingAck)>, StoreError> {
        self.trees
            .awaiting_ack
            .iter()
            .map(|item| {
                let (key, value) = item?;
                Ok((u64_key(&key)?, AwaitingAck::decode(&value)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewUpload, Role, UploadStatus};

    #[test]
    fn a_forwarded_charge_is_kept_once_or_given_back_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ShardStore::open(dir.path(), 0, 1, 0).unwrap();
        let now = crate::clock::unix_now_ms();
        let user_id = store
            .create_user("forwarded", "hash", Role::User, 100, now)
            .unwrap();
        let upload = |store: &mut ShardStore| {
            let new = NewUpload {
                cost: 10,
                model: "old".into(),
                soft_id: None,
                image_hash: [0; 16],
                now_ms: now,
            };
            store.accept_upload(user_id, new).unwrap()
        };
        let (kept, given_back) = (upload(&mut store), upload(&mut store));
        let awaiting = |tag_id| AwaitingAck {
            from: 3,
            tag_id,
            deadline_ms: now + 1000,
        };
        store.await_ack(kept.id, awaiting(1)).unwrap();
        store.await_ack(given_back.id, awaiting(2)).unwrap();
        assert_eq!(
            store.awaiting_acks().unwrap(),
            vec![(kept.id, awaiting(1)), (given_back.id, awaiting(2))]
        );
        assert!(store.keep_acknowledged(kept.id).unwrap());
        assert!(!store.keep_acknowledged(kept.id).unwrap(), "once");
        let given = store
            .give_back_unacknowledged(given_back.id, "not acknowledged", now)
            .unwrap()
            .expect("withdrawn");
        assert_eq!(given.status, UploadStatus::Failed, "pending voided");
        assert!(
            store
                .give_back_unacknowledged(given_back.id, "again", now)
                .unwrap()
                .is_none(),
            "given back once"
        );
        assert!(
            store
                .give_back_unacknowledged(kept.id, "after its ack", now)
                .unwrap()
                .is_none(),
            "a kept charge is not given back"
        );
        assert_eq!(store.balance(user_id).unwrap().points, 90);
        assert!(store.awaiting_acks().unwrap().is_empty());
        assert!(AwaitingAck::decode(&[1, 2, 3]).is_err());
    }
}
