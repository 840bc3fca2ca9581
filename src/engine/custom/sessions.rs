//! One recognition thread's sessions of custom models: loaded on a model's first job, kept
//! while in use, unloaded when idle or to make room. The bound is on the sum of the loaded
//! models' ONNX file sizes (a session's memory is its weights plus a little), so a thread
//! never holds more than `max_bytes` of custom models, except one model larger than that
//! alone, which is loaded for its job and then is the first to go.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ort::environment::Environment;

use super::{CustomModel, ModelDigest};
use crate::engine::session::{self, LoadedModel};

/// The bounds of one thread's custom sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionBounds {
    /// Most ONNX bytes loaded at once.
    pub max_bytes: u64,
    /// A model unused for this long is unloaded.
    pub idle: Duration,
}

impl Default for SessionBounds {
    fn default() -> Self {
        SessionBounds {
            max_bytes: 256 << 20,
            idle: Duration::from_secs(600),
        }
    }
}

struct Entry {
    loaded: LoadedModel,
    bytes: u64,
    last_used: Instant,
}

/// Counts for `/metrics`, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounts {
    pub loads: u64,
    pub load_failures: u64,
    pub unloads: u64,
}

pub struct CustomSessions {
    entries: HashMap<ModelDigest, Entry>,
    bounds: SessionBounds,
    counts: SessionCounts,
}

impl CustomSessions {
    pub fn new(bounds: SessionBounds) -> CustomSessions {
        assert!(bounds.max_bytes > 0, "room for at least one model");
        CustomSessions {
            entries: HashMap::new(),
            bounds,
            counts: SessionCounts::default(),
        }
    }

    /// The model's session, loaded now if it is not (unloading the least recently used
    /// others until it fits). `Err` says why it could not be loaded.
    pub(in crate::engine) fn get(
        &mut self,
        environment: &Environment,
        model: &Arc<CustomModel>,
    ) -> Result<&mut LoadedModel, String> {
        let now = Instant::now();
        if !self.entries.contains_key(&model.digest) {
            self.make_room(model.onnx_bytes);
            let loaded = match load(environment, model) {
                Ok(loaded) => loaded,
                Err(reason) => {
                    self.counts.load_failures += 1;
                    return Err(reason);
                }
            };
            self.counts.loads += 1;
            let entry = Entry {
                loaded,
                bytes: model.onnx_bytes,
                last_used: now,
            };
            self.entries.insert(model.digest, entry);
        }
        let entry = self.entries.get_mut(&model.digest).expect("present");
        entry.last_used = now;
        Ok(&mut entry.loaded)
    }

    /// Unloads the models unused for longer than the idle bound; returns how many.
    pub fn unload_idle(&mut self, now: Instant) -> usize {
        let idle = self.bounds.idle;
        let before = self.entries.len();
        self.entries
            .retain(|_, entry| now.saturating_duration_since(entry.last_used) < idle);
        let unloaded = before - self.entries.len();
        self.counts.unloads += unloaded as u64;
        unloaded
    }

    /// Unloads least recently used models until `incoming` more bytes fit (or none is left).
    fn make_room(&mut self, incoming: u64) {
        while !self.entries.is_empty() && self.loaded_bytes() + incoming > self.bounds.max_bytes {
            let oldest = *self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(digest, _)| digest)
                .expect("not empty");
            self.entries.remove(&oldest);
            self.counts.unloads += 1;
        }
    }

    pub fn loaded_bytes(&self) -> u64 {
        self.entries.values().map(|entry| entry.bytes).sum()
    }

    pub fn loaded_count(&self) -> usize {
        self.entries.len()
    }

    pub fn is_loaded(&self, digest: &ModelDigest) -> bool {
        self.entries.contains_key(digest)
    }

    pub fn counts(&self) -> SessionCounts {
        self.counts
    }

    /// How long until the next idle model may be unloaded (`None`: nothing loaded).
    pub fn next_idle_check(&self, now: Instant) -> Option<Duration> {
        let oldest = self.entries.values().map(|entry| entry.last_used).min()?;
        Some((oldest + self.bounds.idle).saturating_duration_since(now))
    }
}

/// A single-threaded session of the model's ONNX file, as the built-in models get.
fn load(environment: &Environment, model: &CustomModel) -> Result<LoadedModel, String> {
    let path = &model.spec.onnx_path;
    let session = session::builder(environment, path, 1)
        .map_err(|e| e.to_string())?
        .commit_from_file(path)
        .map_err(|e| session::runtime_error(path, e).to_string())?;
    let input_name = session::input_name(&session);
    Ok(LoadedModel {
        spec: model.spec.clone(),
        session,
        input_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::session::runtime;
    use crate::test_support::model_dir;

    /// `common_old.onnx` with its own charset, under a made-up digest: the sessions know
    /// models by digest only.
    fn model(tag: u8) -> Arc<CustomModel> {
        let path = model_dir().join("common_old.onnx");
        let bytes = std::fs::metadata(&path).unwrap().len();
        let charsets = std::fs::read_to_string(model_dir().join("charset_old.json")).unwrap();
        Arc::new(CustomModel::new(ModelDigest([tag; 32]), path, bytes, &charsets).unwrap())
    }

    #[test]
    fn loaded_models_stay_within_the_bound_and_idle_ones_go() {
        let environment = runtime(&model_dir()).unwrap();
        let (a, b) = (model(1), model(2));
        let bounds = SessionBounds {
            max_bytes: a.onnx_bytes * 3 / 2,
            idle: Duration::from_secs(3600),
        };
        let mut sessions = CustomSessions::new(bounds);
        assert_eq!(sessions.next_idle_check(Instant::now()), None);
        sessions.get(&environment, &a).unwrap();
        sessions.get(&environment, &a).unwrap();
        assert_eq!(sessions.counts().loads, 1, "loaded once, then reused");
        // Room for one: loading b unloads a.
        sessions.get(&environment, &b).unwrap();
        assert!(sessions.is_loaded(&b.digest) && !sessions.is_loaded(&a.digest));
        assert_eq!(sessions.loaded_bytes(), b.onnx_bytes);
        assert!(sessions.loaded_bytes() <= bounds.max_bytes);
        // ...and it comes back on demand.
        sessions.get(&environment, &a).unwrap();
        assert_eq!(
            sessions.counts(),
            SessionCounts {
                loads: 3,
                load_failures: 0,
                unloads: 2
            }
        );
        // Idle: nothing unloaded before the bound, everything after.
        assert_eq!(sessions.unload_idle(Instant::now()), 0);
        let later = Instant::now() + Duration::from_secs(3601);
        assert_eq!(
            sessions
                .next_idle_check(Instant::now())
                .map(|d| d.as_secs() > 3500),
            Some(true)
        );
        assert_eq!(sessions.unload_idle(later), 1);
        assert_eq!((sessions.loaded_count(), sessions.loaded_bytes()), (0, 0));
    }

    #[test]
    fn a_model_that_cannot_load_is_an_error_not_a_panic() {
        let environment = runtime(&model_dir()).unwrap();
        let charsets = std::fs::read_to_string(model_dir().join("charset_old.json")).unwrap();
        let gone = std::env::temp_dir().join("aiocr-no-such-model.onnx");
        let model = Arc::new(CustomModel::new(ModelDigest([9; 32]), gone, 10, &charsets).unwrap());
        let mut sessions = CustomSessions::new(SessionBounds::default());
        let error = sessions.get(&environment, &model).err().expect("no file");
        assert!(error.contains("aiocr-no-such-model.onnx"), "{error}");
        assert_eq!(sessions.counts().load_failures, 1);
        assert_eq!(sessions.loaded_count(), 0);
    }
}
