//! The models users brought, between machines (docs/cluster.md, "Users' models"): their
//! files in a JetStream Object Store bucket (`nats_models_bucket`), one object per node and
//! digest (`names::model_object`).
//!
//! - A node puts a model's files there when it is added (the addition waits for it, at most
//!   `model_transfer_timeout_ms`), and at start for every model its records name; it deletes
//!   the object when its last record of the digest goes, and at start the objects of its own
//!   that no record names (a removal the node did not finish). All of it on the node's NATS
//!   thread, one operation at a time in the order asked ([`ModelObjects`]): a removal's
//!   delete and a later addition's put of the same digest never swap.
//! - A job for a user's model carries the digest; only models whose object is in the bucket
//!   go to the workers, the others run on the node's own threads.
//! - A worker fetches the files on its first job for a digest ([`ModelCache`]), checks the
//!   digest before anything loads them, and keeps them on disk under its data directory
//!   within `model_cache_bytes` (least recently used go first). A model it cannot get fails
//!   the job (refunded by its node, 5003), within `model_transfer_timeout_ms`.

use super::names;
use crate::config::Config;
use crate::engine::custom::{CustomModel, ModelDigest};
use async_nats::jetstream::{self, object_store};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;

/// Operations waiting for the node's NATS thread; beyond them an operation is dropped (and
/// said so): a put left out keeps its model on the node's threads.
const COMMAND_QUEUE_LEN: usize = 4096;

/// One operation on the models bucket, as the node asks it.
pub enum ObjectCommand {
    /// Put the files of `digest` (read from these paths) unless the object is there already;
    /// `done` hears how it went.
    Put {
        digest: ModelDigest,
        paths: (PathBuf, PathBuf),
        done: Option<flume::Sender<Result<(), String>>>,
    },
    /// Delete this node's object of `digest`.
    Delete { digest: ModelDigest },
    /// Delete this node's objects of digests not put since the node started.
    Collect,
}

/// The digests whose object this node has in the bucket: what may go to the workers.
type Stored = Arc<Mutex<HashSet<ModelDigest>>>;

fn lock(stored: &Stored) -> MutexGuard<'_, HashSet<ModelDigest>> {
    // Every change is one insert or remove: a panic elsewhere leaves it consistent.
    stored
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The node's handle on the models bucket (held by its model catalog).
pub struct ModelObjects {
    commands: flume::Sender<ObjectCommand>,
    stored: Stored,
    timeout: Duration,
}

/// What the node's NATS thread runs the bucket's operations from.
pub struct ObjectsSeed {
    commands: flume::Receiver<ObjectCommand>,
    stored: Stored,
}

impl ModelObjects {
    pub fn new(config: &Config) -> (ModelObjects, ObjectsSeed) {
        let (commands, receiver) = flume::bounded(COMMAND_QUEUE_LEN);
        let stored = Stored::default();
        let timeout = Duration::from_millis(config.cluster.model_transfer_timeout_ms);
        let seed = ObjectsSeed {
            commands: receiver,
            stored: stored.clone(),
        };
        let objects = ModelObjects {
            commands,
            stored,
            timeout,
        };
        (objects, seed)
    }

    /// Whether jobs for `digest` may go to the workers (its object is in the bucket).
    pub fn is_stored(&self, digest: &ModelDigest) -> bool {
        lock(&self.stored).contains(digest)
    }

    /// Puts a model's files and waits for it, at most `model_transfer_timeout_ms` (blocking:
    /// from an addition's check thread, never a shard's executor).
    pub fn put_and_wait(
        &self,
        digest: ModelDigest,
        paths: (PathBuf, PathBuf),
    ) -> Result<(), String> {
        let (done, outcome) = flume::bounded(1);
        let command = ObjectCommand::Put {
            digest,
            paths,
            done: Some(done),
        };
        self.commands
            .try_send(command)
            .map_err(|_| "the NATS thread is not taking models now".to_string())?;
        match outcome.recv_timeout(self.timeout) {
            Ok(outcome) => outcome,
            Err(flume::RecvTimeoutError::Timeout) => Err(format!(
                "not stored within model_transfer_timeout_ms ({} ms)",
                self.timeout.as_millis()
            )),
            Err(flume::RecvTimeoutError::Disconnected) => {
                Err("the node runs without the cluster".to_string())
            }
        }
    }

    /// Puts a model's files when the NATS thread comes to it (at start).
    pub fn put_later(&self, digest: ModelDigest, paths: (PathBuf, PathBuf)) {
        self.send(ObjectCommand::Put {
            digest,
            paths,
            done: None,
        });
    }

    /// The last record of `digest` went: no new job goes to the workers for it, and its
    /// object is deleted.
    pub fn delete(&self, digest: ModelDigest) {
        lock(&self.stored).remove(&digest);
        self.send(ObjectCommand::Delete { digest });
    }

    /// After the puts of start: deletes this node's objects no record names.
    pub fn collect(&self) {
        self.send(ObjectCommand::Collect);
    }

    fn send(&self, command: ObjectCommand) {
        if let Err(flume::TrySendError::Full(_)) = self.commands.try_send(command) {
            log_line!(
                "aiocr: nats: models bucket: {COMMAND_QUEUE_LEN} operations waiting; one dropped"
            );
        }
        // Disconnected: the node runs without the cluster, nothing to keep in step.
    }
}

/// The bucket, created when missing (as `nats_replicas` says).
pub async fn models_bucket(
    js: &jetstream::Context,
    config: &Config,
) -> Result<object_store::ObjectStore, String> {
    let name = &config.cluster.nats_models_bucket;
    if let Ok(bucket) = js.get_object_store(name).await {
        return Ok(bucket);
    }
    js.create_object_store(object_store::Config {
        bucket: name.clone(),
        description: Some("aiocr: the files of the models users brought".into()),
        num_replicas: config.cluster.nats_replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("models bucket {name}: {e}"))
}

/// Runs the node's operations on the bucket, one at a time in the order asked, each within
/// `model_transfer_timeout_ms`.
pub async fn objects_loop(js: jetstream::Context, config: Arc<Config>, seed: ObjectsSeed) {
    let node = config.node.node_id;
    let timeout = Duration::from_millis(config.cluster.model_transfer_timeout_ms);
    let mut bucket: Option<object_store::ObjectStore> = None;
    let mut put_since_start: HashSet<ModelDigest> = HashSet::new();
    while let Ok(command) = seed.commands.recv_async().await {
        let operation = async {
            if bucket.is_none() {
                bucket = Some(models_bucket(&js, &config).await?);
            }
            let bucket = bucket.as_ref().expect("set above");
            match &command {
                ObjectCommand::Put { digest, paths, .. } => {
                    put(bucket, node, digest, paths).await?;
                    put_since_start.insert(*digest);
                    lock(&seed.stored).insert(*digest);
                    Ok(())
                }
                ObjectCommand::Delete { digest } => {
                    put_since_start.remove(digest);
                    delete(bucket, &names::model_object(node, &digest.hex())).await
                }
                ObjectCommand::Collect => collect(bucket, node, &put_since_start).await,
            }
        };
        let outcome = match tokio::time::timeout(timeout, operation).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        if outcome.is_err() {
            // The bucket may be gone with a NATS that lost its store: found again next time.
            bucket = None;
        }
        match command {
            ObjectCommand::Put {
                done: Some(done), ..
            } => {
                let _ = done.send(outcome);
            }
            _ => {
                if let Err(error) = outcome {
                    log_line!("aiocr: nats: models bucket: {error}");
                }
            }
        }
    }
}

async fn put(
    bucket: &object_store::ObjectStore,
    node: u16,
    digest: &ModelDigest,
    paths: &(PathBuf, PathBuf),
) -> Result<(), String> {
    let name = names::model_object(node, &digest.hex());
    let paths = paths.clone();
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        Ok(frame(&std::fs::read(&paths.0)?, &std::fs::read(&paths.1)?))
    });
    let bytes = read
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{name}: the model's files: {e}"))?;
    let there = bucket.info(&name).await;
    if there.is_ok_and(|info| !info.deleted && info.size == bytes.len()) {
        return Ok(());
    }
    bucket
        .put(name.as_str(), &mut bytes.as_slice())
        .await
        .map(|_| ())
        .map_err(|e| format!("put {name}: {e}"))
}

async fn delete(bucket: &object_store::ObjectStore, name: &str) -> Result<(), String> {
    match bucket.delete(name).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("delete {name}: {e}")),
    }
}

/// Deletes this node's objects whose digest was not put since the node started.
async fn collect(
    bucket: &object_store::ObjectStore,
    node: u16,
    kept: &HashSet<ModelDigest>,
) -> Result<(), String> {
    use futures_util::StreamExt;
    let suffix = names::model_object(node, "");
    let mut list = bucket.list().await.map_err(|e| format!("list: {e}"))?;
    let mut unnamed = Vec::new();
    while let Some(info) = list.next().await {
        let info = info.map_err(|e| format!("list: {e}"))?;
        let digest = info
            .name
            .strip_suffix(&suffix)
            .and_then(ModelDigest::parse_hex);
        if digest.is_some_and(|digest| !kept.contains(&digest)) && !info.deleted {
            unnamed.push(info.name);
        }
    }
    for name in unnamed {
        delete(bucket, &name).await?;
    }
    Ok(())
}

/// A model's two files as one object: the ONNX file's length (8 bytes, big-endian), the ONNX
/// file, then charsets.json.
pub fn frame(onnx: &[u8], charsets: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + onnx.len() + charsets.len());
    bytes.extend_from_slice(&(onnx.len() as u64).to_be_bytes());
    bytes.extend_from_slice(onnx);
    bytes.extend_from_slice(charsets);
    bytes
}

/// The inverse of [`frame`].
pub fn unframe(bytes: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (length, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or("shorter than its header")?;
    let onnx_len = usize::try_from(u64::from_be_bytes(*length)).unwrap_or(usize::MAX);
    if onnx_len > rest.len() {
        return Err(format!(
            "an ONNX file of {onnx_len} bytes in {} bytes",
            rest.len()
        ));
    }
    Ok(rest.split_at(onnx_len))
}

/// A worker's models of users: fetched from the bucket on the first job for a digest, kept
/// on disk within `model_cache_bytes` and known here once checked.
pub struct ModelCache {
    dir: PathBuf,
    max_bytes: u64,
    timeout: Duration,
    config: Arc<Config>,
    js: jetstream::Context,
    /// The bucket once found; its lock also makes fetches one at a time (two jobs of one new
    /// model fetch it once).
    bucket: tokio::sync::Mutex<Option<object_store::ObjectStore>>,
    known: Mutex<HashMap<ModelDigest, Arc<CustomModel>>>,
}

impl ModelCache {
    /// The cache in `<data_dir>/model-cache/` (made if missing).
    pub fn open(config: Arc<Config>, js: jetstream::Context) -> Result<ModelCache, String> {
        let dir = config.store.data_dir.join("model-cache");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(ModelCache {
            dir,
            max_bytes: config.cluster.model_cache_bytes,
            timeout: Duration::from_millis(config.cluster.model_transfer_timeout_ms),
            config,
            js,
            bucket: tokio::sync::Mutex::new(None),
            known: Mutex::new(HashMap::new()),
        })
    }

    fn known(&self) -> MutexGuard<'_, HashMap<ModelDigest, Arc<CustomModel>>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn paths(&self, digest: &ModelDigest) -> (PathBuf, PathBuf) {
        let hex = digest.hex();
        (
            self.dir.join(format!("{hex}.onnx")),
            self.dir.join(format!("{hex}.json")),
        )
    }

    /// The model of `digest` that node `node` put in the bucket: known, on disk (checked
    /// again), or fetched, within `model_transfer_timeout_ms`.
    pub async fn model(&self, node: u16, digest: ModelDigest) -> Result<Arc<CustomModel>, String> {
        if let Some(model) = self.known().get(&digest).cloned() {
            touch(&model.spec.onnx_path);
            return Ok(model);
        }
        match tokio::time::timeout(self.timeout, self.fetch(node, digest)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "model {digest}: not fetched within model_transfer_timeout_ms ({} ms)",
                self.timeout.as_millis()
            )),
        }
    }

    async fn fetch(&self, node: u16, digest: ModelDigest) -> Result<Arc<CustomModel>, String> {
        let mut bucket = self.bucket.lock().await;
        if let Some(model) = self.known().get(&digest).cloned() {
            return Ok(model); // fetched while this job waited for the lock
        }
        let paths = self.paths(&digest);
        let files = match (std::fs::read(&paths.0), std::fs::read(&paths.1)) {
            // Kept by an earlier run of this worker: checked as a fetched model is.
            (Ok(onnx), Ok(charsets)) if ModelDigest::of(&onnx, &charsets) == digest => {
                (onnx, charsets)
            }
            _ => {
                if bucket.is_none() {
                    *bucket = Some(models_bucket(&self.js, &self.config).await?);
                }
                let store = bucket.as_ref().expect("set above");
                let fetched = fetch_files(store, node, &digest).await;
                if fetched.is_err() {
                    *bucket = None; // found again next time (NATS may have lost it)
                }
                let (onnx, charsets) = fetched?;
                self.keep(&digest, &onnx, &charsets)?;
                (onnx, charsets)
            }
        };
        let charsets = std::str::from_utf8(&files.1).map_err(|_| "charsets.json: not UTF-8")?;
        let model = CustomModel::new(digest, paths.0, files.0.len() as u64, charsets)
            .map_err(|e| format!("model {digest}: {e}"))?;
        let model = Arc::new(model);
        self.known().insert(digest, model.clone());
        Ok(model)
    }

    /// Writes fetched files, then evicts the least recently used beyond the bound.
    fn keep(&self, digest: &ModelDigest, onnx: &[u8], charsets: &[u8]) -> Result<(), String> {
        let paths = self.paths(digest);
        for (path, bytes) in [(&paths.1, charsets), (&paths.0, onnx)] {
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, bytes)
                .and_then(|()| std::fs::rename(&temporary, path))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        self.evict(digest);
        Ok(())
    }

    /// Deletes the least recently used models (by their ONNX file's time) until the cache
    /// holds at most `model_cache_bytes`; never `keep`, the one just fetched.
    fn evict(&self, keep: &ModelDigest) {
        let mut models = cached_models(&self.dir);
        let mut total: u64 = models.iter().map(|(_, bytes, _)| bytes).sum();
        models.sort_by_key(|(_, _, used)| *used);
        for (digest, bytes, _) in models {
            if total <= self.max_bytes {
                break;
            }
            if digest == *keep {
                continue;
            }
            self.known().remove(&digest);
            let (onnx, charsets) = self.paths(&digest);
            let _ = std::fs::remove_file(onnx);
            let _ = std::fs::remove_file(charsets);
            total -= bytes;
        }
    }
}

/// The models in a cache directory: digest, both files' bytes, last use.
fn cached_models(dir: &Path) -> Vec<(ModelDigest, u64, SystemTime)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut models = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let digest = ModelDigest::of_file_name(&path);
        let (Some(digest), Some("onnx")) = (digest, path.extension().and_then(|e| e.to_str()))
        else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        let charsets = std::fs::metadata(path.with_extension("json")).map_or(0, |m| m.len());
        let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        models.push((digest, meta.len() + charsets, used));
    }
    models
}

/// Marks a cached model used now (what eviction goes by).
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// A model's files from the bucket, checked against the digest the job named.
async fn fetch_files(
    bucket: &object_store::ObjectStore,
    node: u16,
    digest: &ModelDigest,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let name = names::model_object(node, &digest.hex());
    let mut object = bucket
        .get(&name)
        .await
        .map_err(|e| format!("model {digest} is not in the models bucket ({name}: {e})"))?;
    let mut bytes = Vec::new();
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let (onnx, charsets) = unframe(&bytes).map_err(|e| format!("{name}: {e}"))?;
    if ModelDigest::of(onnx, charsets) != *digest {
        return Err(format!(
            "{name}: its files do not have the digest the job names"
        ));
    }
    Ok((onnx.to_vec(), charsets.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_hold_both_files() {
        let bytes = frame(b"onnx-bytes", b"{}");
        assert_eq!(unframe(&bytes).unwrap(), (&b"onnx-bytes"[..], &b"{}"[..]));
        assert_eq!(unframe(&frame(b"", b"")).unwrap(), (&b""[..], &b""[..]));
        assert!(unframe(&bytes[..7]).is_err());
        let mut lying = bytes.clone();
        lying[7] = 200;
        assert!(unframe(&lying).is_err());
    }
}
