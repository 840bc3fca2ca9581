//! Models users brought (`POST /v2/models`): one record per user and name in `user_models`
//! (user id + name bytes -> [`ModelRecord`]'s fixed 57 bytes). The files themselves are kept
//! once per digest outside the shard's database (`server/models/`); a record names them.

use super::journal::from_tx;
use super::layout::u64_key;
use super::users::live_user;
use super::{ShardStore, StoreError};
use sled::transaction::Transactional;

/// Bytes of a record's value: digest, ONNX bytes, charsets.json bytes, created at, public.
const VALUE_BYTES: usize = 32 + 8 + 8 + 8 + 1;

/// One user's model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRecord {
    pub user_id: u64,
    pub name: String,
    /// SHA-256 of both files (engine::custom::ModelDigest).
    pub digest: [u8; 32],
    pub onnx_bytes: u64,
    pub charsets_bytes: u64,
    pub created_at_ms: u64,
    /// Usable by every user (only an admin makes a model public).
    pub public: bool,
}

impl ModelRecord {
    /// Both files' bytes: what the record counts against `model_bytes_per_user`.
    pub fn bytes(&self) -> u64 {
        self.onnx_bytes.saturating_add(self.charsets_bytes)
    }

    fn key(&self) -> Vec<u8> {
        model_key(self.user_id, &self.name)
    }

    fn value(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(VALUE_BYTES);
        value.extend_from_slice(&self.digest);
        value.extend_from_slice(&self.onnx_bytes.to_be_bytes());
        value.extend_from_slice(&self.charsets_bytes.to_be_bytes());
        value.extend_from_slice(&self.created_at_ms.to_be_bytes());
        value.push(u8::from(self.public));
        value
    }

    fn read(key: &[u8], value: &[u8]) -> Result<ModelRecord, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("{}-byte model record", value.len()));
        if key.len() <= 8 || value.len() != VALUE_BYTES || value[VALUE_BYTES - 1] > 1 {
            return Err(corrupt());
        }
        let name = std::str::from_utf8(&key[8..]).map_err(|_| corrupt())?;
        Ok(ModelRecord {
            user_id: u64_key(&key[..8])?,
            name: name.to_string(),
            digest: value[..32].try_into().expect("length checked"),
            onnx_bytes: u64_key(&value[32..40])?,
            charsets_bytes: u64_key(&value[40..48])?,
            created_at_ms: u64_key(&value[48..56])?,
            public: value[56] == 1,
        })
    }
}

/// A model's numbers as one shard keeps them: the uploads its users made with it and the
/// reports of their answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelUse {
    pub owner: u64,
    /// The record's `created_at_ms`: a model removed and added again under its name starts
    /// from nothing.
    pub created_at_ms: u64,
    pub name: String,
    pub requests: u64,
    pub reports: u64,
}

fn usage_key(record: &ModelRecord) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + record.name.len());
    key.extend_from_slice(&record.user_id.to_be_bytes());
    key.extend_from_slice(&record.created_at_ms.to_be_bytes());
    key.extend_from_slice(record.name.as_bytes());
    key
}

fn model_key(user_id: u64, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&user_id.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

impl ShardStore {
    /// Keeps `record`, replacing the user's model of the same name (returned).
    /// `Err(UserNotFound)` for an unknown or removed user.
    pub fn put_model(&mut self, record: &ModelRecord) -> Result<Option<ModelRecord>, StoreError> {
        assert!(!record.name.is_empty(), "names are checked before");
        let user_key = record.user_id.to_be_bytes();
        let (key, value) = (record.key(), record.value());
        let t = &self.trees;
        let replaced = (&t.users, &t.user_status, &t.user_models)
            .transaction(|(users, user_status, user_models)| {
                live_user(users, user_status, &user_key)?;
                Ok(user_models.insert(key.as_slice(), value.as_slice())?)
            })
            .map_err(from_tx)?;
        replaced
            .map(|value| ModelRecord::read(&key, &value))
            .transpose()
    }

    /// Removes the user's model `name`; returns it, `None` when there was none.
    pub fn remove_model(
        &mut self,
        user_id: u64,
        name: &str,
    ) -> Result<Option<ModelRecord>, StoreError> {
        let key = model_key(user_id, name);
        match self.trees.user_models.remove(&key)? {
            Some(value) => {
                let record = ModelRecord::read(&key, &value)?;
                // Its numbers go with it (other shards' go unread: they name this record).
                self.trees.model_usage.remove(usage_key(&record))?;
                Ok(Some(record))
            }
            None => Ok(None),
        }
    }

    /// Counts `requests` uploads and `reports` wrong-answer reports of this shard's users for
    /// the model `record` (another shard's user's model, when it is public). Written like the
    /// charge or report that moves it: made durable by the same group commit.
    pub fn count_model_use(
        &mut self,
        record: &ModelRecord,
        requests: u64,
        reports: u64,
    ) -> Result<(), StoreError> {
        let key = usage_key(record);
        self.trees.model_usage.update_and_fetch(&key, |old| {
            let (was_requests, was_reports) = old.map_or((0, 0), read_counts);
            let mut value = Vec::with_capacity(16);
            value.extend_from_slice(&was_requests.saturating_add(requests).to_be_bytes());
            value.extend_from_slice(&was_reports.saturating_add(reports).to_be_bytes());
            Some(value)
        })?;
        Ok(())
    }

    /// Every model's numbers this shard keeps.
    pub fn all_model_use(&self) -> Result<Vec<ModelUse>, StoreError> {
        self.trees
            .model_usage
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                if key.len() <= 16 || value.len() != 16 {
                    return Err(StoreError::Corrupt("a model's numbers".into()));
                }
                let name = std::str::from_utf8(&key[16..])
                    .map_err(|_| StoreError::Corrupt("a model's numbers".into()))?;
                let (requests, reports) = read_counts(&value);
                Ok(ModelUse {
                    owner: u64_key(&key[..8])?,
                    created_at_ms: u64_key(&key[8..16])?,
                    name: name.to_string(),
                    requests,
                    reports,
                })
            })
            .collect()
    }

    /// Every model of every user of this shard, in user id and name order.
    pub fn all_models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        self.trees
            .user_models
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                ModelRecord::read(&key, &value)
            })
            .collect()
    }
}

/// A value of `model_usage`: requests, reports (corrupt lengths read as zero: numbers, not
/// money).
fn read_counts(value: &[u8]) -> (u64, u64) {
    match value.len() {
        16 => (
            u64::from_be_bytes(value[..8].try_into().expect("8 bytes")),
            u64::from_be_bytes(value[8..].try_into().expect("8 bytes")),
        ),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let record = ModelRecord {
            user_id: 7 << 40,
            name: "lib-style".into(),
            digest: [9; 32],
            onnx_bytes: 1 << 33,
            charsets_bytes: 300,
            created_at_ms: 1_700_000_000_000,
            public: true,
        };
        assert_eq!(
            ModelRecord::read(&record.key(), &record.value()).unwrap(),
            record
        );
        let mut short = record.value();
        short.pop();
        assert!(ModelRecord::read(&record.key(), &short).is_err());
        assert!(ModelRecord::read(&record.key()[..8], &record.value()).is_err());
    }
}
