//! The node's custom models: every model record of every shard's users (the records
//! themselves are kept in their owner's store: this is the index all shards read), and the
//! models' files, kept once per digest in `<data_dir>/models/` (`<digest>.onnx`,
//! `<digest>.json`).
//!
//! Shared by all shards of the node (behind a mutex, held for map look-ups only, never across
//! an await or a file operation), so a model added on one shard answers on every shard and
//! recognition thread at once, without a restart. A name resolves to the caller's own model,
//! else to the public model of that name; another user's private model is not seen at all.

use crate::engine::custom::{CustomModel, ModelDigest, ModelFiles};
use crate::store::ModelRecord;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A record with the model it names.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    pub record: ModelRecord,
    pub model: Arc<CustomModel>,
}

#[derive(Default)]
struct Index {
    /// (owner, name) -> entry.
    by_owner: BTreeMap<(u64, String), CatalogEntry>,
    /// Public name -> its owner (a public name is unique on the node).
    public: HashMap<String, u64>,
    /// How many records name each digest (its files are deleted with the last).
    references: HashMap<ModelDigest, usize>,
}

pub struct ModelCatalog {
    files: ModelFiles,
    index: Mutex<Index>,
    checks_running: AtomicUsize,
}

/// A place among the node's `model_checks_max` checks, given back when dropped.
pub struct CheckPlace<'a> {
    running: &'a AtomicUsize,
}

impl Drop for CheckPlace<'_> {
    fn drop(&mut self) {
        let was = self.running.fetch_sub(1, Ordering::SeqCst);
        assert!(was >= 1, "a place was taken");
    }
}

impl ModelCatalog {
    /// The catalog of the files in `dir` (made if missing), with no records yet.
    pub fn open(dir: &Path) -> std::io::Result<ModelCatalog> {
        Ok(ModelCatalog {
            files: ModelFiles::open(dir)?,
            index: Mutex::new(Index::default()),
            checks_running: AtomicUsize::new(0),
        })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding it (none is expected: map operations only) leaves the maps
        // consistent: every change is one insert or remove.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The files of the node's models.
    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    /// Takes a place among `max` checks running at once; `None` when all are taken.
    pub fn check_place(&self, max: usize) -> Option<CheckPlace<'_>> {
        let taken =
            self.checks_running
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |running| {
                    (running < max).then_some(running + 1)
                });
        taken.ok().map(|_| CheckPlace {
            running: &self.checks_running,
        })
    }

    /// Adds an entry (its record was just written, or read at start).
    pub fn insert(&self, entry: CatalogEntry) {
        let mut index = self.index();
        let key = (entry.record.user_id, entry.record.name.clone());
        if entry.record.public {
            index.public.insert(key.1.clone(), key.0);
        }
        *index.references.entry(entry.model.digest).or_insert(0) += 1;
        let earlier = index.by_owner.insert(key, entry);
        assert!(
            earlier.is_none(),
            "a name is removed before it is added again"
        );
    }

    /// Removes a user's model; deletes its files when no other record names them.
    pub fn remove(&self, user_id: u64, name: &str) -> Option<CatalogEntry> {
        let (entry, last) = {
            let mut index = self.index();
            let entry = index.by_owner.remove(&(user_id, name.to_string()))?;
            if entry.record.public && index.public.get(name) == Some(&user_id) {
                index.public.remove(name);
            }
            let digest = entry.model.digest;
            let count = index
                .references
                .get_mut(&digest)
                .expect("counted at insert");
            *count -= 1;
            let last = *count == 0;
            if last {
                index.references.remove(&digest);
            }
            (entry, last)
        };
        if last {
            // A job already queued for it fails if its thread must load it now (refunded).
            self.files.delete(&entry.model.digest);
        }
        Some(entry)
    }

    /// The model `name` means for `user_id`: their own, else the public one.
    pub fn resolve(&self, user_id: u64, name: &str) -> Option<Arc<CustomModel>> {
        let index = self.index();
        let key = (user_id, name.to_string());
        if let Some(entry) = index.by_owner.get(&key) {
            return Some(entry.model.clone());
        }
        let owner = *index.public.get(name)?;
        let entry = index.by_owner.get(&(owner, name.to_string()));
        Some(entry.expect("public names have records").model.clone())
    }

    /// Whether `user_id` has a model `name`, and whether a public model has that name.
    pub fn name_taken(&self, user_id: u64, name: &str) -> (bool, bool) {
        let index = self.index();
        (
            index.by_owner.contains_key(&(user_id, name.to_string())),
            index.public.contains_key(name),
        )
    }

    /// A user's models and the public models of others, in name order.
    pub fn visible_to(&self, user_id: u64) -> Vec<CatalogEntry> {
        let index = self.index();
        let own = index
            .by_owner
            .range((user_id, String::new())..)
            .take_while(|((owner, _), _)| *owner == user_id)
            .map(|(_, entry)| entry.clone());
        let public = index
            .public
            .iter()
            .filter(|(_, owner)| **owner != user_id)
            .filter_map(|(name, owner)| index.by_owner.get(&(*owner, name.clone())).cloned());
        let mut entries: Vec<CatalogEntry> = own.chain(public).collect();
        entries.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        entries
    }

    /// How many models a user has and their bytes.
    pub fn usage(&self, user_id: u64) -> (usize, u64) {
        let index = self.index();
        index
            .by_owner
            .range((user_id, String::new())..)
            .take_while(|((owner, _), _)| *owner == user_id)
            .fold((0, 0), |(count, bytes), (_, entry)| {
                (count + 1, bytes + entry.record.bytes())
            })
    }
}
