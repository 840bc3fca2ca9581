//! The models aiocr can run and where they come from.
//!
//! Every model is an ONNX file plus a description in ddddocr's custom-model format
//! (`charset`, `word`, `image`, `channel`); set-up writes the built-in ones that way too:
//! - `old`  = `common_old.onnx` + `charset_old.json` (ddddocr's default),
//! - `beta` = `common.onnx` + `charset_beta.json` (ddddocr's `beta=True`),
//! - `NAME` = `custom/NAME.onnx` + `custom/NAME.json` (ddddocr's `import_onnx_path` /
//!   `charsets_path`).
//!
//! The click-captcha detector, `common_det.onnx`, is not an OCR model: it has no charset, is
//! never listed by [`available_models`] and is loaded by `Detector`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The name of ONNX Runtime's library inside the model directory.
pub const RUNTIME_LIBRARY: &str = "libonnxruntime.so";
/// ddddocr's detection model, from the same wheel as the OCR models.
pub const DETECTION_MODEL: &str = "common_det.onnx";
pub const SETUP_HINT: &str =
    "run scripts/setup.sh (it fetches the ddddocr models and ONNX Runtime)";

/// The longest side a description's `image` may ask for.
pub const MAX_INPUT_SIDE: usize = 4096;

/// How images are sized for a model: ddddocr's `image` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizing {
    /// `[-1, h]` and `word: false`: height `h`, width `int(w * (h / height))`.
    KeepAspect { height: usize },
    /// `[-1, h]` and `word: true`: an `h` x `h` square.
    Square { side: usize },
    /// `[w, h]`: exactly that.
    Fixed { width: usize, height: usize },
}

#[derive(Debug)]
pub struct ModelSpec {
    pub onnx_path: PathBuf,
    pub charset: Vec<String>,
    /// First index of every charset entry, for `charset_range` (ddddocr uses `list.index`).
    pub first_index: HashMap<String, usize>,
    pub sizing: Sizing,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// Whether several images of equal width may run as one tensor with identical answers.
    /// True only for `beta` (common.onnx); `old` is dynamically quantized over the whole batch.
    pub batchable: bool,
}

/// ddddocr's charset file.
#[derive(Deserialize)]
struct Description {
    charset: Vec<String>,
    word: bool,
    image: [i64; 2],
    channel: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model '{0}'")]
    Unknown(String),
    #[error("{path}: missing ({hint})", hint = SETUP_HINT)]
    Missing { path: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
}

/// Resolves a model name to its files in `model_dir` and reads its description.
pub fn load_spec(model_dir: &Path, name: &str) -> Result<ModelSpec, ModelError> {
    let (onnx, description, batchable) = match name {
        "old" => (
            model_dir.join("common_old.onnx"),
            model_dir.join("charset_old.json"),
            false,
        ),
        "beta" => (
            model_dir.join("common.onnx"),
            model_dir.join("charset_beta.json"),
            true,
        ),
        custom if is_valid_custom_name(custom) => {
            let dir = model_dir.join("custom");
            (
                dir.join(format!("{custom}.onnx")),
                dir.join(format!("{custom}.json")),
                false,
            )
        }
        _ => return Err(ModelError::Unknown(name.to_string())),
    };
    let is_builtin = matches!(name, "old" | "beta");
    for path in [&onnx, &description] {
        if !path.exists() {
            return Err(if is_builtin {
                ModelError::Missing { path: path.clone() }
            } else {
                ModelError::Unknown(name.to_string())
            });
        }
    }
    let text = std::fs::read_to_string(&description).map_err(|e| ModelError::Invalid {
        path: description.clone(),
        reason: e.to_string(),
    })?;
    ModelSpec::from_description(onnx, &text, batchable).map_err(|reason| ModelError::Invalid {
        path: description,
        reason,
    })
}

impl ModelSpec {
    /// A model from its ONNX file's path and its description (dddd_trainer's
    /// `charsets.json`: `charset`, `word`, `image`, `channel`, all four required, as ddddocr's
    /// import path requires them). `Err` says what is wrong with the description.
    pub fn from_description(
        onnx_path: PathBuf,
        description: &str,
        batchable: bool,
    ) -> Result<ModelSpec, String> {
        let parsed: Description =
            serde_json::from_str(description).map_err(|e| format!("not a charsets.json: {e}"))?;
        let sizing = match parsed.image {
            [-1, h] if h > 0 && parsed.word => Sizing::Square { side: h as usize },
            [-1, h] if h > 0 => Sizing::KeepAspect { height: h as usize },
            [w, h] if w > 0 && h > 0 => Sizing::Fixed {
                width: w as usize,
                height: h as usize,
            },
            _ => return Err("`image` must be [-1, height] or [width, height]".into()),
        };
        let longest_side = match sizing {
            Sizing::KeepAspect { height } => height,
            Sizing::Square { side } => side,
            Sizing::Fixed { width, height } => width.max(height),
        };
        // A description must not ask for inputs of gigabytes (a wider image than
        // `max_model_width` is refused per request anyway).
        if longest_side > MAX_INPUT_SIDE {
            return Err(format!("`image` sides must be at most {MAX_INPUT_SIDE}"));
        }
        if parsed.channel != 1 && parsed.channel != 3 {
            return Err("`channel` must be 1 or 3".into());
        }
        if parsed.charset.is_empty() {
            return Err("empty `charset`".into());
        }
        let mut first_index = HashMap::with_capacity(parsed.charset.len());
        for (i, entry) in parsed.charset.iter().enumerate() {
            first_index.entry(entry.clone()).or_insert(i);
        }
        Ok(ModelSpec {
            onnx_path,
            charset: parsed.charset,
            first_index,
            sizing,
            channels: parsed.channel as usize,
            batchable,
        })
    }

    /// The input's height, whatever the sizing.
    pub fn input_height(&self) -> usize {
        match self.sizing {
            Sizing::KeepAspect { height } | Sizing::Fixed { height, .. } => height,
            Sizing::Square { side } => side,
        }
    }

    /// The input's width when the sizing fixes it (`None`: it follows the image's aspect).
    pub fn input_width(&self) -> Option<usize> {
        match self.sizing {
            Sizing::KeepAspect { .. } => None,
            Sizing::Fixed { width, .. } => Some(width),
            Sizing::Square { side } => Some(side),
        }
    }
}

/// Where the detection model is in `model_dir`.
pub fn detection_model_path(model_dir: &Path) -> PathBuf {
    model_dir.join(DETECTION_MODEL)
}

/// Custom model names become file names: keep them to a safe alphabet. `detect` and
/// `slide-*` name the other kinds of work in upload records (server/upload), so no custom
/// model may take them.
fn is_valid_custom_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name != "detect"
        && !name.starts_with("slide-")
}

/// The models present in `model_dir`: `old`, `beta` and every complete custom model.
pub fn available_models(model_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = ["old", "beta"]
        .into_iter()
        .filter(|name| load_spec(model_dir, name).is_ok())
        .map(str::to_string)
        .collect();
    if let Ok(entries) = std::fs::read_dir(model_dir.join("custom")) {
        let mut custom: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".onnx").map(str::to_string))
            .filter(|name| load_spec(model_dir, name).is_ok())
            .collect();
        custom.sort();
        names.extend(custom);
    }
    names
}
