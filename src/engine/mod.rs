//! The recognition engine: decode an image exactly as Pillow does, preprocess exactly as
//! ddddocr 1.6.1 does, run the ONNX model, decode the CTC output.
//!
//! Public surface used by the rest of aiocr:
//! - [`probe_image`]: format and dimensions from the header only (no pixel decoding), with the
//!   configured bounds checked; the server calls it before accepting an upload.
//! - [`RecognizeOptions`]: the per-request options of the contract.
//! - [`Engine`]: one ONNX Runtime session per model, used by one thread, with a batch API.
//! - [`decode_image`]: the decoders alone (header probed and bounded first), for the fuzz
//!   targets and tools that want Pillow's pixels without a model.

mod batch_model;
mod ctc;
mod decode;
mod error;
pub mod model;
mod pillow;
mod pixels;
pub mod preprocess;
mod probe;
mod recognizer;

pub use decode::decode as decode_image;
pub use error::ImageError;
pub use model::{available_models, ModelError, RUNTIME_LIBRARY, SETUP_HINT};
pub use pixels::{Mode, Pixels};
pub use preprocess::StageNanos;
pub use probe::{probe_image, ImageFormat, ImageInfo, ImageLimits};
pub use recognizer::{Engine, RecognizeError};

/// `charset_range` as ddddocr's `set_ranges` takes it: an integer `n` keeps the first `n + 1`
/// charset entries; a string keeps the characters it contains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CharsetRange {
    FirstEntries(usize),
    Characters(String),
}

impl CharsetRange {
    /// Parses the contract's `charset_range` field: a decimal integer is an index range,
    /// anything else a set of characters. An empty value is refused, as ddddocr refuses it.
    pub fn parse(value: &str) -> Option<CharsetRange> {
        if value.is_empty() {
            return None;
        }
        match value.parse::<usize>() {
            Ok(n) => Some(CharsetRange::FirstEntries(n)),
            Err(_) => Some(CharsetRange::Characters(value.to_string())),
        }
    }
}

/// What one recognition asks for, besides the image.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecognizeOptions {
    /// `old` (default), `beta`, or an installed custom model's name.
    pub model: String,
    /// Composite an RGBA image on white before anything else, as ddddocr's `png_fix`.
    pub png_fix: bool,
    /// Also compute the confidence (mean of the per-step maximum softmax).
    pub probability: bool,
    pub charset_range: Option<CharsetRange>,
}

impl Default for RecognizeOptions {
    fn default() -> Self {
        RecognizeOptions {
            model: "old".to_string(),
            png_fix: false,
            probability: false,
            charset_range: None,
        }
    }
}

/// One recognised image.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub text: String,
    /// Present when `probability` was asked for.
    pub confidence: Option<f32>,
}
