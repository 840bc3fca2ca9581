//! `Engine`: the ONNX Runtime sessions of one recognition thread, and the batch API.
//!
//! One `Engine` per thread: `Session::run` takes `&mut self`. Sessions run with one intra-op
//! thread; parallelism comes from running several engines (the accelerator's threads).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

use ort::environment::Environment;

use super::batch_model::load_dynamic_batch;
use super::ctc::{allowed_indices, confidence, decode_text, scores_of, BadShape, Scores};
use super::custom::{CustomSessions, SessionBounds, SessionCounts};
use super::model::{load_spec, ModelError, ModelSpec};
use super::preprocess::{
    decode_for_model, elapsed_nanos, preprocess_filtered, tensor_of, StageNanos, Tensor,
};
use super::search::{math, text::best_text};
use super::session::{self, runtime, LoadedModel};
use super::steps::StepProbs;
use super::{Answer, ImageError, ImageLimits, Pixels, Reading, RecognizeOptions};

/// Why one image got no answer (src/contract.rs maps it to the contract's codes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecognizeError {
    #[error("{0}")]
    Image(#[from] ImageError),
    #[error("unknown model '{0}'")]
    UnknownModel(String),
    #[error("recognition failed: {0}")]
    Model(String),
    /// The image was read, but no answer meets what the request asked for (constraints
    /// none of the readings meets, an expression that cannot be read or computed).
    #[error("unsolvable: {0}")]
    Unsolvable(String),
}

impl From<BadShape> for RecognizeError {
    fn from(shape: BadShape) -> Self {
        RecognizeError::Model(shape.0)
    }
}

pub struct Engine {
    /// The models loaded at start, by name (`old`, `beta`, MODEL_DIR/custom ones).
    models: HashMap<String, LoadedModel>,
    /// Custom models, loaded on their first job (`RecognizeOptions::custom`).
    custom: CustomSessions,
    environment: Environment,
    limits: ImageLimits,
    /// Whether equal-width images of batchable models run as one tensor.
    batching: bool,
}

impl Engine {
    /// Loads the named models from `model_dir` (each gets its own single-threaded session).
    pub fn load(
        model_dir: &Path,
        names: &[String],
        limits: ImageLimits,
    ) -> Result<Engine, ModelError> {
        Engine::load_with_threads(model_dir, names, limits, 1)
    }

    /// Like [`Engine::load`], with `intra_threads` threads inside each model run: lower
    /// latency for one image at a time, worse throughput when several engines run at once.
    pub fn load_with_threads(
        model_dir: &Path,
        names: &[String],
        limits: ImageLimits,
        intra_threads: usize,
    ) -> Result<Engine, ModelError> {
        assert!(intra_threads >= 1, "at least the calling thread");
        let environment = runtime(model_dir)?;
        let mut models = HashMap::new();
        for name in names {
            let spec = Arc::new(load_spec(model_dir, name)?);
            let session = open_session(&environment, &spec, intra_threads)?;
            let input_name = session::input_name(&session);
            models.insert(
                name.clone(),
                LoadedModel {
                    spec,
                    session,
                    input_name,
                },
            );
        }
        Ok(Engine {
            models,
            custom: CustomSessions::new(SessionBounds::default()),
            environment,
            limits,
            batching: true,
        })
    }

    /// Sets the bounds of the custom models this engine keeps loaded (unloading what is
    /// beyond them at the next load or idle check).
    pub fn set_custom_bounds(&mut self, bounds: SessionBounds) {
        self.custom = CustomSessions::new(bounds);
    }

    /// Unloads the custom models idle for longer than their bound; returns how many.
    pub fn unload_idle_custom(&mut self, now: Instant) -> usize {
        self.custom.unload_idle(now)
    }

    /// How long until an idle custom model may be unloaded (`None`: none is loaded).
    pub fn next_idle_check(&self, now: Instant) -> Option<std::time::Duration> {
        self.custom.next_idle_check(now)
    }

    /// Custom models loaded now, and their ONNX bytes.
    pub fn custom_loaded(&self) -> (usize, u64) {
        (self.custom.loaded_count(), self.custom.loaded_bytes())
    }

    pub fn custom_counts(&self) -> SessionCounts {
        self.custom.counts()
    }

    /// Turns tensor batching off (every image runs alone); for tests and comparisons.
    pub fn set_batching(&mut self, enabled: bool) {
        self.batching = enabled;
    }

    /// Whether images of `model` can share one model run (only then is gathering a batch
    /// worth a wait; otherwise jobs held back would only queue behind each other).
    pub fn batchable(&self, options: &RecognizeOptions) -> bool {
        self.batching
            && options.custom.is_none()
            && self
                .models
                .get(&options.model)
                .is_some_and(|m| m.spec.batchable)
    }

    pub fn recognize(
        &mut self,
        image: &[u8],
        options: &RecognizeOptions,
    ) -> Result<Answer, RecognizeError> {
        let mut times = StageNanos::default();
        self.recognize_batch_timed(&[(image, options)], &mut times)
            .pop()
            .expect("one answer per image")
    }

    pub fn recognize_batch(
        &mut self,
        items: &[(&[u8], &RecognizeOptions)],
    ) -> Vec<Result<Answer, RecognizeError>> {
        let mut times = StageNanos::default();
        self.recognize_batch_timed(items, &mut times)
    }

    /// One answer per item, in order. Images of a batchable model with equal input sizes run
    /// as one tensor; everything else runs one by one.
    pub fn recognize_batch_timed(
        &mut self,
        items: &[(&[u8], &RecognizeOptions)],
        times: &mut StageNanos,
    ) -> Vec<Result<Answer, RecognizeError>> {
        let mut answers: Vec<Option<Result<Answer, RecognizeError>>> = vec![None; items.len()];
        let mut prepared: Vec<(usize, Tensor)> = Vec::with_capacity(items.len());
        for (i, (image, options)) in items.iter().enumerate() {
            // A custom model reads an expression once, at its own width (`answer`).
            if options.reading == Reading::Math && options.custom.is_none() {
                answers[i] = Some(self.read_math(image, options, times));
                continue;
            }
            match self.prepare(image, options, times) {
                Ok(tensor) => prepared.push((i, tensor)),
                Err(e) => answers[i] = Some(Err(e)),
            }
        }
        for group in self.group(items, prepared) {
            let options = items[group[0].0].1;
            let results = self.run_group(options, &group, items, times);
            for ((i, _), result) in group.iter().zip(results) {
                answers[*i] = Some(result);
            }
        }
        answers
            .into_iter()
            .map(|a| a.expect("every item answered"))
            .collect()
    }

    /// The description (charset, sizing) of a loaded model.
    pub fn spec(&self, model: &str) -> Result<&ModelSpec, RecognizeError> {
        self.models
            .get(model)
            .map(|loaded| loaded.spec.as_ref())
            .ok_or_else(|| RecognizeError::UnknownModel(model.to_string()))
    }

    /// The model's probabilities at every step of one image, for the searches that choose
    /// another answer than ddddocr's (`options.reading` is not applied).
    pub fn step_probs(
        &mut self,
        image: &[u8],
        options: &RecognizeOptions,
    ) -> Result<StepProbs, RecognizeError> {
        let tensor = self.prepare(image, options, &mut StageNanos::default())?;
        self.run_one(&options.model, &tensor)
    }

    /// [`Engine::step_probs`] of decoded pixels (a part of a larger image).
    pub fn step_probs_of_pixels(
        &mut self,
        image: &Pixels,
        model: &str,
    ) -> Result<StepProbs, RecognizeError> {
        let tensor = tensor_of(image, self.spec(model)?, &self.limits, 1.0)?;
        self.run_one(model, &tensor)
    }

    /// One recognition of decoded pixels (a part of a larger image), read as
    /// `options.reading` says (math: one reading, at ddddocr's width); `png_fix` and the
    /// colour filter are not applied.
    pub fn recognize_pixels(
        &mut self,
        image: &Pixels,
        options: &RecognizeOptions,
    ) -> Result<Answer, RecognizeError> {
        let spec = self.spec(&options.model)?;
        let tensor = tensor_of(image, spec, &self.limits, 1.0)?;
        self.with_scores(&options.model, &tensor, |spec, scores| {
            answer(spec, scores, options)
        })
    }

    /// A math captcha: read at each of [`math::WIDTHS`], the value most readings agree on.
    fn read_math(
        &mut self,
        image: &[u8],
        options: &RecognizeOptions,
        times: &mut StageNanos,
    ) -> Result<Answer, RecognizeError> {
        let spec = Arc::clone(
            &self
                .models
                .get(&options.model)
                .ok_or_else(|| RecognizeError::UnknownModel(options.model.clone()))?
                .spec,
        );
        let pixels = decode_for_model(
            image,
            options.png_fix,
            options.color_filter.as_ref(),
            &self.limits,
            times,
        )?;
        let mut readings = Vec::with_capacity(math::WIDTHS.len());
        for widen in math::WIDTHS {
            let started = Instant::now();
            let tensor = tensor_of(&pixels, &spec, &self.limits, widen)?;
            times.resize += elapsed_nanos(started);
            let started = Instant::now();
            let reading = self.with_scores(&options.model, &tensor, |spec, scores| {
                let probs = StepProbs::of_scores(Arc::clone(spec), scores);
                Ok(math::best_expression(&probs)
                    .and_then(|(expression, confidence)| Some((expression.value()?, confidence))))
            })?;
            times.model += elapsed_nanos(started);
            readings.push(reading);
        }
        let (value, confidence) = math::vote(&readings)
            .ok_or_else(|| RecognizeError::Unsolvable("no arithmetic expression".into()))?;
        Ok(Answer {
            text: value.to_string(),
            confidence: options.probability.then_some(confidence),
        })
    }

    fn run_one(&mut self, model: &str, tensor: &Tensor) -> Result<StepProbs, RecognizeError> {
        self.with_scores(model, tensor, |spec, scores| {
            Ok(StepProbs::of_scores(Arc::clone(spec), scores))
        })
    }

    /// Runs `model` on one tensor and hands its scores, borrowed from the run's outputs, to
    /// `read`.
    fn with_scores<R>(
        &mut self,
        model: &str,
        tensor: &Tensor,
        read: impl FnOnce(&Arc<ModelSpec>, &Scores) -> Result<R, RecognizeError>,
    ) -> Result<R, RecognizeError> {
        let loaded = self
            .models
            .get_mut(model)
            .ok_or_else(|| RecognizeError::UnknownModel(model.to_string()))?;
        let spec = Arc::clone(&loaded.spec);
        let shape = [1, tensor.channels, tensor.height, tensor.width];
        let outputs = run_session(loaded, shape, &tensor.data).map_err(RecognizeError::Model)?;
        let (output_shape, output) = output_scores(&outputs).map_err(RecognizeError::Model)?;
        let scores = scores_of(&output_shape, output, 0, 1)?;
        read(&spec, &scores)
    }

    fn prepare(
        &self,
        image: &[u8],
        options: &RecognizeOptions,
        times: &mut StageNanos,
    ) -> Result<Tensor, RecognizeError> {
        let spec = match &options.custom {
            Some(custom) => &custom.spec,
            None => {
                &self
                    .models
                    .get(&options.model)
                    .ok_or_else(|| RecognizeError::UnknownModel(options.model.clone()))?
                    .spec
            }
        };
        Ok(preprocess_filtered(
            image,
            spec,
            options.png_fix,
            options.color_filter.as_ref(),
            &self.limits,
            times,
        )?)
    }

    /// Groups prepared tensors that may share one model run: same batchable model, same size.
    fn group(
        &self,
        items: &[(&[u8], &RecognizeOptions)],
        prepared: Vec<(usize, Tensor)>,
    ) -> Vec<Vec<(usize, Tensor)>> {
        let mut groups: Vec<Vec<(usize, Tensor)>> = Vec::new();
        for (i, tensor) in prepared {
            let options = items[i].1;
            let batchable = self.batchable(options);
            let joinable = groups.iter_mut().find(|g| {
                let (j, first) = &g[0];
                batchable
                    && items[*j].1.custom.is_none()
                    && items[*j].1.model == options.model
                    && first.width == tensor.width
                    && first.height == tensor.height
            });
            match joinable {
                Some(group) => group.push((i, tensor)),
                None => groups.push(vec![(i, tensor)]),
            }
        }
        groups
    }

    fn run_group(
        &mut self,
        options: &RecognizeOptions,
        group: &[(usize, Tensor)],
        items: &[(&[u8], &RecognizeOptions)],
        times: &mut StageNanos,
    ) -> Vec<Result<Answer, RecognizeError>> {
        let loaded = match &options.custom {
            Some(custom) => {
                assert_eq!(group.len(), 1, "custom models run one image at a time");
                let started = Instant::now();
                let loaded = self.custom.get(&self.environment, custom);
                times.model += elapsed_nanos(started);
                match loaded {
                    Ok(loaded) => loaded,
                    Err(reason) => {
                        let reason =
                            format!("model {} could not be loaded: {reason}", custom.digest);
                        return vec![Err(RecognizeError::Model(reason))];
                    }
                }
            }
            None => self
                .models
                .get_mut(&options.model)
                .expect("prepared with a loaded model"),
        };
        let first = &group[0].1;
        let shape = [group.len(), first.channels, first.height, first.width];
        let mut input = Vec::with_capacity(shape.iter().product());
        for (_, tensor) in group {
            input.extend_from_slice(&tensor.data);
        }
        let spec = loaded.spec.clone();
        let started = Instant::now();
        let outcome = run_session(loaded, shape, &input);
        times.model += elapsed_nanos(started);
        let started = Instant::now();
        // The scores are read where ONNX Runtime left them (a copy would be ~0.7 MB per image
        // for the 8210-class models).
        let answers = match outcome
            .as_ref()
            .map_err(Clone::clone)
            .and_then(output_scores)
        {
            Ok((output_shape, output)) => group
                .iter()
                .enumerate()
                .map(|(b, (i, _))| {
                    let scores = scores_of(&output_shape, output, b, group.len())?;
                    answer(&spec, &scores, items[*i].1)
                })
                .collect(),
            Err(reason) => group
                .iter()
                .map(|_| Err(RecognizeError::Model(reason.clone())))
                .collect(),
        };
        times.output += elapsed_nanos(started);
        answers
    }
}

fn open_session(
    environment: &ort::environment::Environment,
    spec: &ModelSpec,
    intra_threads: usize,
) -> Result<Session, ModelError> {
    let runtime_error = |e: ort::Error| session::runtime_error(&spec.onnx_path, e);
    let mut builder = session::builder(environment, &spec.onnx_path, intra_threads)?;
    if spec.batchable {
        let bytes = std::fs::read(&spec.onnx_path).map_err(|e| ModelError::Invalid {
            path: spec.onnx_path.clone(),
            reason: e.to_string(),
        })?;
        let model = load_dynamic_batch(&bytes).map_err(|reason| ModelError::Invalid {
            path: spec.onnx_path.clone(),
            reason,
        })?;
        builder.commit_from_memory(&model).map_err(runtime_error)
    } else {
        builder
            .commit_from_file(&spec.onnx_path)
            .map_err(runtime_error)
    }
}

fn run_session<'s>(
    loaded: &'s mut LoadedModel,
    shape: [usize; 4],
    input: &[f32],
) -> Result<SessionOutputs<'s>, String> {
    let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| e.to_string())?;
    loaded
        .session
        .run(ort::inputs![loaded.input_name.as_str() => tensor])
        .map_err(|e| e.to_string())
}

/// The first output's dimensions and scores, borrowed from the run's outputs.
fn output_scores<'o>(outputs: &'o SessionOutputs<'_>) -> Result<(Vec<usize>, &'o [f32]), String> {
    let (output_shape, data) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    let dims = output_shape.iter().map(|&d| d.max(0) as usize).collect();
    Ok((dims, data))
}

fn answer(
    spec: &Arc<ModelSpec>,
    scores: &Scores,
    options: &RecognizeOptions,
) -> Result<Answer, RecognizeError> {
    let allowed: Option<HashSet<usize>> = options
        .charset_range
        .as_ref()
        .map(|r| allowed_indices(spec, r));
    let (text, confidence) = match &options.reading {
        Reading::Plain => {
            let text = decode_text(spec, scores, allowed.as_ref());
            (text, options.probability.then(|| confidence(scores)))
        }
        Reading::Constrained(rules) => {
            let probs = StepProbs::of_scores(Arc::clone(spec), scores);
            let (text, confidence) =
                best_text(&probs, rules, allowed.as_ref()).ok_or_else(|| {
                    RecognizeError::Unsolvable("no reading meets the constraints".into())
                })?;
            (text, options.probability.then_some(confidence))
        }
        // One reading at one width (Engine::read_math reads several and votes).
        Reading::Math => {
            let probs = StepProbs::of_scores(Arc::clone(spec), scores);
            let (expression, confidence) = math::best_expression(&probs)
                .ok_or_else(|| RecognizeError::Unsolvable("no arithmetic expression".into()))?;
            let value = expression.value().ok_or_else(|| {
                RecognizeError::Unsolvable(format!("{expression} has no whole value"))
            })?;
            (value.to_string(), options.probability.then_some(confidence))
        }
    };
    Ok(Answer { text, confidence })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::model_dir;

    fn fixture_images() -> Vec<Vec<u8>> {
        crate::test_support::fixtures()
            .into_iter()
            .map(|f| f.image)
            .collect()
    }

    fn engine(models: &[&str]) -> Engine {
        let names: Vec<String> = models.iter().map(|m| m.to_string()).collect();
        Engine::load(&model_dir(), &names, ImageLimits::default())
            .expect("models installed by scripts/setup.sh")
    }

    #[test]
    fn batched_answers_equal_single_answers() {
        let images = fixture_images();
        let mut batched = engine(&["old", "beta"]);
        let mut single = engine(&["old", "beta"]);
        single.set_batching(false);
        for model in ["beta", "old"] {
            let options = RecognizeOptions {
                model: model.into(),
                probability: true,
                ..Default::default()
            };
            // Sorting by size puts equal widths next to each other, so beta really batches.
            let mut sorted: Vec<&Vec<u8>> = images.iter().collect();
            sorted.sort_by_key(|bytes| bytes.len() % 7);
            for chunk in sorted.chunks(16) {
                let items: Vec<(&[u8], &RecognizeOptions)> =
                    chunk.iter().map(|b| (b.as_slice(), &options)).collect();
                let together = batched.recognize_batch(&items);
                let alone: Vec<_> = items.iter().map(|(b, o)| single.recognize(b, o)).collect();
                assert_eq!(together, alone, "model {model}");
            }
        }
        // And groups really formed: 240 images of few distinct widths.
        let options = RecognizeOptions {
            model: "beta".into(),
            ..Default::default()
        };
        let items: Vec<(&[u8], &RecognizeOptions)> =
            images.iter().map(|b| (b.as_slice(), &options)).collect();
        let mut times = StageNanos::default();
        let prepared: Vec<(usize, Tensor)> = items
            .iter()
            .enumerate()
            .map(|(i, (b, o))| (i, batched.prepare(b, o, &mut times).unwrap()))
            .collect();
        assert!(batched.group(&items, prepared).len() < images.len() / 4);
    }

    #[test]
    fn mixed_models_and_failures_in_one_batch_keep_their_order() {
        let images = fixture_images();
        let mut engine = engine(&["old", "beta"]);
        let old = RecognizeOptions::default();
        let beta = RecognizeOptions {
            model: "beta".into(),
            ..Default::default()
        };
        let unknown = RecognizeOptions {
            model: "nope".into(),
            ..Default::default()
        };
        let items: Vec<(&[u8], &RecognizeOptions)> = vec![
            (&images[1], &old),
            (b"junk", &beta),
            (&images[1], &beta),
            (&images[1], &unknown),
        ];
        let answers = engine.recognize_batch(&items);
        assert_eq!(answers[0].as_ref().unwrap().text, "lspznk");
        assert!(matches!(
            answers[1].as_ref().unwrap_err(),
            RecognizeError::Image(
                ImageError::NotAnImage | ImageError::Unsupported(_) | ImageError::Corrupt(_)
            )
        ));
        assert_eq!(answers[2].as_ref().unwrap().text, "lspznk");
        assert!(matches!(
            answers[3].as_ref().unwrap_err(),
            RecognizeError::UnknownModel(_)
        ));
    }

    #[test]
    fn corrupted_images_never_panic() {
        let images = fixture_images();
        let mut engine = engine(&["old"]);
        let options = RecognizeOptions::default();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for image in images.iter().step_by(6) {
            for cut in [1, 8, 16, 30, image.len() / 3, image.len() - 1] {
                let _ = engine.recognize(&image[..cut.min(image.len())], &options);
            }
            for _ in 0..20 {
                let mut damaged = image.clone();
                for _ in 0..4 {
                    let at = random() as usize % damaged.len();
                    damaged[at] = random() as u8;
                }
                let _ = engine.recognize(&damaged, &options);
            }
        }
    }
}
