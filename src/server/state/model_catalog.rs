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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A record with the model it names, and how it does.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    pub record: ModelRecord,
    pub model: Arc<CustomModel>,
    pub usage: Arc<ModelUsage>,
}

impl CatalogEntry {
    pub fn new(record: ModelRecord, model: Arc<CustomModel>) -> CatalogEntry {
        CatalogEntry {
            record,
            model,
            usage: Arc::default(),
        }
    }
}

/// A model's numbers since the server started: uploads accepted for it (cache hits
/// included) and their answers reported wrong.
#[derive(Debug, Default)]
pub struct ModelUsage {
    requests: AtomicU64,
    reports: AtomicU64,
}

impl ModelUsage {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn reports(&self) -> u64 {
        self.reports.load(Ordering::Relaxed)
    }

    /// Reports per request (0 before any request).
    pub fn report_rate(&self) -> f64 {
        rate(self.reports(), self.requests())
    }
}

fn rate(reports: u64, requests: u64) -> f64 {
    match requests {
        0 => 0.0,
        _ => reports as f64 / requests as f64,
    }
}

/// The label of the models beyond the busiest `metrics_models_max` in `/metrics`.
pub const OTHER_MODELS_LABEL: &str = "(other)";

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
        self.entry_for(user_id, name).map(|entry| entry.model)
    }

    fn entry_for(&self, user_id: u64, name: &str) -> Option<CatalogEntry> {
        let index = self.index();
        let key = (user_id, name.to_string());
        if let Some(entry) = index.by_owner.get(&key) {
            return Some(entry.clone());
        }
        let owner = *index.public.get(name)?;
        let entry = index.by_owner.get(&(owner, name.to_string()));
        Some(entry.expect("public names have records").clone())
    }

    /// Counts an upload `user_id` made with the model `name` means for them (none: not a
    /// user's model).
    pub fn count_request(&self, user_id: u64, name: &str) {
        if let Some(entry) = self.entry_for(user_id, name) {
            entry.usage.requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a wrong-answer report of an upload made with `name`.
    pub fn count_report(&self, user_id: u64, name: &str) {
        if let Some(entry) = self.entry_for(user_id, name) {
            entry.usage.reports.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The per-model series of `/metrics`: requests, reports and report rate by model name
    /// (models of the same name, of different users, together), the busiest
    /// `max_labels` by name and the rest as one series, so that the labels stay bounded.
    pub fn render_metrics(&self, out: &mut String, max_labels: usize) {
        use std::fmt::Write;
        let mut by_name: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for entry in self.index().by_owner.values() {
            let counts = by_name.entry(entry.record.name.clone()).or_default();
            counts.0 += entry.usage.requests();
            counts.1 += entry.usage.reports();
        }
        let mut busiest: Vec<(String, (u64, u64))> = by_name.into_iter().collect();
        busiest.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
        let rest = busiest.split_off(busiest.len().min(max_labels));
        if !rest.is_empty() {
            let sum = rest.iter().fold((0, 0), |s, (_, c)| (s.0 + c.0, s.1 + c.1));
            busiest.push((OTHER_MODELS_LABEL.to_string(), sum));
        }
        let series = [
            (
                "aiocr_model_requests_total",
                "counter",
                "Uploads per user model (cache hits included).",
            ),
            (
                "aiocr_model_reports_total",
                "counter",
                "Wrong-answer reports per user model.",
            ),
            (
                "aiocr_model_report_rate",
                "gauge",
                "Reports per upload, per user model.",
            ),
        ];
        for (index, (name, kind, help)) in series.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (model, (requests, reports)) in &busiest {
                // Names are [A-Za-z0-9_.-] (engine::custom::is_model_name): no escaping.
                let value = match index {
                    0 => requests.to_string(),
                    1 => reports.to_string(),
                    _ => rate(*reports, *requests).to_string(),
                };
                let _ = writeln!(out, "{name}{{model=\"{model}\"}} {value}");
            }
        }
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
