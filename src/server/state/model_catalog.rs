//! The node's custom models: every model record of every shard's users (the records
//! themselves are kept in their owner's store: this is the index all shards read), and the
//! models' files, kept once per digest in `<data_dir>/models/` (`<digest>.onnx`,
//! `<digest>.json`).
//!
//! Shared by all shards of the node (behind a mutex, held for map look-ups only, never across
//! an await or a file operation), so a model added on one shard answers on every shard and
//! recognition thread at once, without a restart.
//!
//! A digest's files live while something names them: a record, or an addition between its
//! check and its record (a pin: see `pin`). Both are counted under a second mutex. When the
//! last one goes, the files are deleted on a thread of their own (`aiocr-model-files`), never
//! on the shard's executor that removed the record or dropped the pin: that thread takes the
//! same mutex and deletes them only if nothing names the digest again by then, so that a
//! removal can never delete the files an addition of the same digest has just written (or
//! found) and is about to use. A name resolves to the caller's own model,
//! else to the public model of that name; another user's private model is not seen at all.

use crate::cluster::ModelObjects;
use crate::engine::custom::{CustomModel, ModelDigest, ModelFiles};
use crate::store::ModelRecord;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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

/// A model's numbers: uploads accepted for it (cache hits included) and their answers
/// reported wrong. Kept in the stores of the shards whose users made them (store/models.rs,
/// written with the charge or report) and read back at start.
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
}

pub struct ModelCatalog {
    holds: Arc<Holds>,
    index: Mutex<Index>,
    checks_running: AtomicUsize,
    /// To the thread that deletes the files nothing names any more.
    deletions: flume::Sender<Deletion>,
}

/// The files and what names them, shared with the thread that deletes files.
struct Holds {
    files: ModelFiles,
    /// How many records and pins name each digest (its files are deleted after the last).
    /// Locked after `index` when both are, never the other way round.
    references: Mutex<HashMap<ModelDigest, usize>>,
    /// In a cluster: the models bucket the files are put in for the workers.
    objects: OnceLock<Arc<ModelObjects>>,
}

/// What the files thread is asked.
enum Deletion {
    /// The last record or pin of a digest went: delete its files if nothing names it again.
    Unnamed(ModelDigest),
    /// Answer once every deletion asked before is done.
    Settle(flume::Sender<()>),
}

/// Deletions waiting for the files thread; beyond them the files stay until the next start's
/// sweep (said so in the log).
const DELETIONS_QUEUE_LEN: usize = 4096;

impl Holds {
    fn references(&self) -> MutexGuard<'_, HashMap<ModelDigest, usize>> {
        // Every change is one counter moved by one: a panic elsewhere leaves it consistent.
        self.references
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// On the files thread: deletes `digest`'s files (and, in a cluster, the node's object)
    /// unless a record or an addition names the digest again. Under the lock: a pin taken
    /// after this sees the files gone and writes them, and its put of the object comes
    /// after this delete.
    fn delete_if_unnamed(&self, digest: &ModelDigest) {
        let references = self.references();
        if references.contains_key(digest) {
            return; // named again since its last release: the files are in use
        }
        self.files.delete(digest);
        if let Some(objects) = self.objects.get() {
            objects.delete(*digest);
        }
        assert!(
            !references.contains_key(digest),
            "files are deleted only while nothing names them"
        );
    }
}

/// The files thread: deletions one at a time, until the catalog goes.
fn delete_files(holds: Arc<Holds>, deletions: flume::Receiver<Deletion>) {
    for deletion in deletions.iter() {
        match deletion {
            Deletion::Unnamed(digest) => holds.delete_if_unnamed(&digest),
            Deletion::Settle(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// An addition's hold on its digest's files, from before they are written until its record
/// is kept or refused: dropped, it lets them go (deleted if nothing else names them).
pub struct FilesPin {
    catalog: Arc<ModelCatalog>,
    digest: ModelDigest,
}

impl Drop for FilesPin {
    fn drop(&mut self) {
        self.catalog.release(&self.digest);
    }
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
        let holds = Arc::new(Holds {
            files: ModelFiles::open(dir)?,
            references: Mutex::default(),
            objects: OnceLock::new(),
        });
        let (deletions, receiver) = flume::bounded(DELETIONS_QUEUE_LEN);
        let thread_holds = holds.clone();
        std::thread::Builder::new()
            .name("aiocr-model-files".into())
            .spawn(move || delete_files(thread_holds, receiver))?;
        Ok(ModelCatalog {
            holds,
            index: Mutex::new(Index::default()),
            checks_running: AtomicUsize::new(0),
            deletions,
        })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding it (none is expected: map operations only) leaves the maps
        // consistent: every change is one insert or remove.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn references(&self) -> MutexGuard<'_, HashMap<ModelDigest, usize>> {
        self.holds.references()
    }

    /// Holds `digest`'s files until the pin is dropped: taken by an addition before it
    /// writes them (or finds them written), so that no removal deletes them meanwhile.
    pub fn pin(self: &Arc<Self>, digest: ModelDigest) -> FilesPin {
        *self.references().entry(digest).or_insert(0) += 1;
        FilesPin {
            catalog: self.clone(),
            digest,
        }
    }

    /// One record or pin fewer names `digest`: after the last one, the files thread
    /// deletes its files (a shard's executor calls this: no file operation here). A job
    /// already queued for the model fails if its thread must load it then (refunded).
    fn release(&self, digest: &ModelDigest) {
        let mut references = self.references();
        let count = references.get_mut(digest).expect("counted when taken");
        assert!(*count >= 1);
        *count -= 1;
        if *count == 0 {
            references.remove(digest);
            if self.deletions.try_send(Deletion::Unnamed(*digest)).is_err() {
                log_line!("aiocr: model files of {digest} left for the next start's sweep (deletions queue full)");
            }
        }
    }

    /// Waits until every deletion asked so far is done (tests; a stop).
    pub fn settle(&self) {
        let (done, settled) = flume::bounded(1);
        if self.deletions.send(Deletion::Settle(done)).is_ok() {
            let _ = settled.recv();
        }
    }

    /// Deletes the files in the directory that no record names (an addition that crashed
    /// between writing its files and keeping its record, a temporary file): at start, after
    /// every record is in. The number of files deleted.
    pub fn sweep_unnamed_files(&self) -> usize {
        let named: std::collections::HashSet<ModelDigest> =
            self.references().keys().copied().collect();
        self.holds.files.sweep(&named)
    }

    /// Joins the catalog to the cluster's models bucket (at start, with `nats_url`): every
    /// model its records name is put there, the node's objects no record names go.
    pub fn share_through(&self, objects: Arc<ModelObjects>) {
        for digest in self.references().keys() {
            objects.put_later(*digest, self.holds.files.paths(digest));
        }
        objects.collect();
        assert!(self.holds.objects.set(objects).is_ok(), "joined once");
    }

    /// The cluster's models bucket, with `nats_url`.
    pub fn objects(&self) -> Option<&ModelObjects> {
        self.holds.objects.get().map(|objects| &**objects)
    }

    /// Whether a job for the model of `digest` may run on the cluster's workers (its files
    /// are in the models bucket).
    pub fn on_workers(&self, digest: &ModelDigest) -> bool {
        self.objects()
            .is_some_and(|objects| objects.is_stored(digest))
    }

    /// The files of the node's models.
    pub fn files(&self) -> &ModelFiles {
        &self.holds.files
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
        *self.references().entry(entry.model.digest).or_insert(0) += 1;
        let earlier = index.by_owner.insert(key, entry);
        assert!(
            earlier.is_none(),
            "a name is removed before it is added again"
        );
    }

    /// Removes a user's model; deletes its files when nothing else names them.
    pub fn remove(&self, user_id: u64, name: &str) -> Option<CatalogEntry> {
        let entry = {
            let mut index = self.index();
            let entry = index.by_owner.remove(&(user_id, name.to_string()))?;
            if entry.record.public && index.public.get(name) == Some(&user_id) {
                index.public.remove(name);
            }
            entry
        };
        self.release(&entry.model.digest);
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

    /// The record of the model `name` means for `user_id`, if any.
    pub fn record_for(&self, user_id: u64, name: &str) -> Option<ModelRecord> {
        self.entry_for(user_id, name).map(|entry| entry.record)
    }

    /// Adds numbers a shard's store kept (at start) to the model they name; numbers of a
    /// model removed (or removed and added again since) name no entry and are left out.
    pub fn restore_usage(&self, usage: &crate::store::ModelUse) {
        let index = self.index();
        let Some(entry) = index.by_owner.get(&(usage.owner, usage.name.clone())) else {
            return;
        };
        if entry.record.created_at_ms == usage.created_at_ms {
            entry
                .usage
                .requests
                .fetch_add(usage.requests, Ordering::Relaxed);
            entry
                .usage
                .reports
                .fetch_add(usage.reports, Ordering::Relaxed);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const CHARSETS: &[u8] =
        br#"{"charset": ["", "a"], "word": false, "image": [-1, 32], "channel": 1}"#;

    fn catalog(name: &str) -> (Arc<ModelCatalog>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("aiocr-catalog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Arc::new(ModelCatalog::open(&dir).unwrap()), dir)
    }

    fn entry(catalog: &ModelCatalog, user_id: u64, name: &str, onnx: &[u8]) -> CatalogEntry {
        let digest = ModelDigest::of(onnx, CHARSETS);
        let model = catalog.files().keep(digest, onnx, CHARSETS).unwrap();
        let record = ModelRecord {
            user_id,
            name: name.to_string(),
            digest: digest.0,
            onnx_bytes: onnx.len() as u64,
            charsets_bytes: CHARSETS.len() as u64,
            created_at_ms: 0,
            public: false,
        };
        CatalogEntry::new(record, model)
    }

    /// An addition pins its digest before writing the files: the removal of the last record
    /// of the same digest meanwhile leaves them, and a refused addition's pin deletes them.
    #[test]
    fn files_live_while_a_record_or_an_addition_names_them() {
        let (catalog, dir) = catalog("pins");
        let digest = ModelDigest::of(b"onnx", CHARSETS);
        catalog.insert(entry(&catalog, 1, "first", b"onnx"));
        let pin = catalog.pin(digest);
        let second = entry(&catalog, 2, "second", b"onnx");
        assert!(catalog.remove(1, "first").is_some());
        assert!(catalog.files().model(digest).is_ok(), "pinned: kept");
        catalog.insert(second);
        drop(pin);
        catalog.settle();
        assert!(
            catalog.files().model(digest).is_ok(),
            "the record names them"
        );
        assert!(catalog.remove(2, "second").is_some());
        catalog.settle();
        assert!(catalog.files().model(digest).is_err(), "nothing names them");

        // A deletion asked for and an addition of the same files right after it: whichever
        // the files thread sees first, the addition (pinned before it writes) keeps them.
        catalog.insert(entry(&catalog, 4, "again", b"onnx"));
        assert!(catalog.remove(4, "again").is_some());
        let again = catalog.pin(digest);
        let readded = entry(&catalog, 5, "readded", b"onnx");
        catalog.settle();
        assert!(
            catalog.files().model(digest).is_ok(),
            "pinned, then written"
        );
        catalog.insert(readded);
        drop(again);
        catalog.settle();
        assert!(
            catalog.files().model(digest).is_ok(),
            "the record names them"
        );
        assert!(catalog.remove(5, "readded").is_some());

        let refused = catalog.pin(digest);
        entry(&catalog, 3, "refused", b"onnx");
        drop(refused);
        catalog.settle();
        assert!(
            catalog.files().model(digest).is_err(),
            "a refusal leaves nothing"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// At start, files no record names (a crash between the files and the record) go.
    #[test]
    fn the_sweep_keeps_only_named_files() {
        let (catalog, dir) = catalog("sweep");
        catalog.insert(entry(&catalog, 1, "kept", b"kept"));
        entry(&catalog, 1, "orphan", b"orphan");
        assert_eq!(catalog.sweep_unnamed_files(), 2);
        let kept = ModelDigest::of(b"kept", CHARSETS);
        assert!(catalog.files().model(kept).is_ok());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
