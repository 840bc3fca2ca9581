//! The checks a model passes before it is accepted, in order: its `charsets.json` is
//! dddd_trainer's; ONNX Runtime loads the ONNX file; the first input is a float tensor of rank
//! 4 whose fixed dimensions agree with `channel` and `image`; a run on a blank image succeeds;
//! its scores have as many classes as the charset has entries. A model that passes runs on
//! every image ddddocr's import path could run it on; one that fails is refused with the first
//! check it failed (each one a contract code of its own: src/contract.rs), never discovered
//! per request.
//!
//! Loading and the test run take from milliseconds to seconds of CPU: callers run this off
//! the shards' executors.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::ModelDigest;
use crate::engine::ctc::scores_of;
use crate::engine::model::ModelSpec;
use crate::engine::session::{self, runtime};

/// What is wrong with a model, by the check it failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelCheckError {
    /// Not dddd_trainer's `charsets.json` (JSON with `charset`, `word`, `image`, `channel`).
    #[error("charsets.json: {0}")]
    Charsets(String),
    /// ONNX Runtime does not load the file.
    #[error("the ONNX file does not load: {0}")]
    Unloadable(String),
    /// The first input's type, rank or fixed dimensions disagree with `channel` and `image`.
    #[error("the model's input does not fit charsets.json: {0}")]
    Input(String),
    /// A run on a blank image failed.
    #[error("the model fails on a blank image: {0}")]
    TestRun(String),
    /// The scores are not float, or their classes differ from the charset's entries.
    #[error("the model's output does not fit charsets.json: {0}")]
    Output(String),
    /// ONNX Runtime itself is missing or broken: the server's fault, not the model's.
    #[error("{0}")]
    Runtime(String),
}

/// What an accepted model is: the API's answer to an upload, and what a model list shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub digest: ModelDigest,
    /// The first input's declared shape, `[batch, channels, height, width]`, -1 where
    /// dynamic.
    pub input_shape: Vec<i64>,
    /// Entries in the charset (index 0, the CTC blank, included): the output's classes.
    pub charset_len: usize,
    /// `charsets.json`'s `image` and `word` and `channel`, as given.
    pub image: [i64; 2],
    pub word: bool,
    pub channels: usize,
}

/// The width of the blank test image for a model whose width follows the image's aspect:
/// three times its height, a captcha's usual shape.
const TEST_ASPECT: usize = 3;

/// Runs every check on a model's two files (in memory); `model_dir` holds ONNX Runtime.
pub fn check_model(
    model_dir: &Path,
    onnx: &[u8],
    charsets: &[u8],
) -> Result<ModelInfo, ModelCheckError> {
    let text = std::str::from_utf8(charsets)
        .map_err(|_| ModelCheckError::Charsets("not UTF-8 text".into()))?;
    // The path only names the model in ONNX Runtime's messages.
    let spec = ModelSpec::from_description(PathBuf::from("model.onnx"), text, false)
        .map_err(ModelCheckError::Charsets)?;
    let environment = runtime(model_dir).map_err(|e| ModelCheckError::Runtime(e.to_string()))?;
    let mut session = session::builder(&environment, &spec.onnx_path, 1)
        .map_err(|e| ModelCheckError::Runtime(e.to_string()))?
        .commit_from_memory(onnx)
        .map_err(|e| ModelCheckError::Unloadable(e.to_string()))?;
    let input_shape = check_input(&session, &spec)?;
    test_run(&mut session, &spec)?;
    let (image, word) = description_fields(text);
    Ok(ModelInfo {
        digest: ModelDigest::of(onnx, charsets),
        input_shape,
        charset_len: spec.charset.len(),
        image,
        word,
        channels: spec.channels,
    })
}

/// `image` and `word` as the description gives them (already validated by the spec).
fn description_fields(text: &str) -> ([i64; 2], bool) {
    #[derive(serde::Deserialize)]
    struct Fields {
        image: [i64; 2],
        word: bool,
    }
    let fields: Fields = serde_json::from_str(text).expect("parsed once already");
    (fields.image, fields.word)
}

/// The first input: float, rank 4, batch 1 or dynamic, and each fixed dimension equal to
/// what ddddocr's preprocessing will feed it. Returns its declared shape.
fn check_input(session: &Session, spec: &ModelSpec) -> Result<Vec<i64>, ModelCheckError> {
    let mismatch = |what: String| Err(ModelCheckError::Input(what));
    let Some(input) = session.inputs().first() else {
        return mismatch("the model has no input".into());
    };
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return mismatch("the first input is not a tensor".into());
    };
    if *ty != TensorElementType::Float32 {
        return mismatch(format!("the first input holds {ty:?}, not float32"));
    }
    let dims: Vec<i64> = shape.iter().copied().collect();
    let [batch, channels, height, width] = dims[..] else {
        return mismatch(format!("the first input has rank {}, not 4", dims.len()));
    };
    let fixed = |dim: i64| (dim >= 0).then_some(dim as usize);
    if fixed(batch).is_some_and(|b| b != 1) {
        return mismatch(format!("the first input's batch is {batch}, not 1"));
    }
    if fixed(channels).is_some_and(|c| c != spec.channels) {
        return mismatch(format!(
            "the model takes {channels} channel(s), charsets.json's channel is {}",
            spec.channels
        ));
    }
    if fixed(height).is_some_and(|h| h != spec.input_height()) {
        return mismatch(format!(
            "the model takes images {height} high, charsets.json's image asks for {}",
            spec.input_height()
        ));
    }
    match (fixed(width), spec.input_width()) {
        (Some(w), Some(expected)) if w != expected => mismatch(format!(
            "the model takes images {w} wide, charsets.json's image asks for {expected}"
        )),
        (Some(w), None) => mismatch(format!(
            "the model takes images {w} wide only, charsets.json's image [-1, h] keeps each \
             image's aspect"
        )),
        _ => Ok(dims),
    }
}

/// One run on a white image of the size ddddocr would feed, and the scores' classes.
fn test_run(session: &mut Session, spec: &ModelSpec) -> Result<(), ModelCheckError> {
    let height = spec.input_height();
    let width = spec.input_width().unwrap_or(height * TEST_ASPECT);
    let shape = [1, spec.channels, height, width];
    let blank = vec![1.0f32; shape.iter().product()];
    let failed = |e: ort::Error| ModelCheckError::TestRun(e.to_string());
    let input_name = session::input_name(session);
    let tensor = TensorRef::from_array_view((shape, blank.as_slice())).map_err(failed)?;
    let outputs = session
        .run(ort::inputs![input_name.as_str() => tensor])
        .map_err(failed)?;
    let (output_shape, data) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|_| ModelCheckError::Output("the first output is not float32 scores".into()))?;
    let dims: Vec<usize> = output_shape.iter().map(|&d| d.max(0) as usize).collect();
    let scores = scores_of(&dims, data, 0, 1).map_err(|e| ModelCheckError::Output(e.0))?;
    if scores.classes != spec.charset.len() {
        return Err(ModelCheckError::Output(format!(
            "{} classes per step, {} charset entries",
            scores.classes,
            spec.charset.len()
        )));
    }
    Ok(())
}
