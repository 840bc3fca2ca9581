//! The recognition engine: decode an image exactly as Pillow does, preprocess exactly as
//! ddddocr 1.6.1 does, run the ONNX model, decode the CTC output.
//!
//! Public surface used by the rest of aiocr:
//! - [`probe_image`]: format and dimensions from the header only (no pixel decoding), with the
//!   configured bounds checked; the server calls it before accepting an upload.
//! - [`RecognizeOptions`]: the per-request options of the contract.
//! - [`Engine`]: one ONNX Runtime session per model, used by one thread, with a batch API.
//! - [`Detector`]: ddddocr's click-captcha detection (`common_det.onnx`), one per thread.
//! - [`slide`]: ddddocr's slide matching and comparison (no model).
//! - [`ColorFilter`]: ddddocr's colour filter, an option of a recognition.
//! - [`Reading`]: how the scores become the answer: ddddocr's argmax, or a search for the best
//!   answer meeting constraints, or for an arithmetic expression (`search/`).
//! - [`solve_click`]: click-in-order captchas: detection, every box read, the best assignment
//!   of the instruction's characters (`click/`).
//! - [`decode_image`]: the decoders alone (header probed and bounded first), for the fuzz
//!   targets and tools that want Pillow's pixels without a model.
//!
//! Text recognition reproduces Pillow's arithmetic; detection, slides and the colour filter
//! reproduce OpenCV's (`cv`), which is what ddddocr uses for them.

mod batch_model;
mod click;
mod color_filter;
mod ctc;
pub mod custom;
mod cv;
mod decode;
mod detect;
mod error;
pub mod model;
mod pillow;
mod pixels;
pub mod preprocess;
mod probe;
mod recognizer;
pub mod search;
mod session;
mod slide;
mod steps;

pub use click::{
    naive_clicks, solve_click, Click, ClickError, ClickStages, Instruction, CLICK_MODEL,
};
pub use color_filter::{preset_names, ColorFilter, ColorFilterError, HsvRange};
/// Loads Intel IPP for slide matching from `MODEL_DIR/ipp` (the correlation ddddocr's OpenCV
/// computes with it); without it slides use the exact correlation (docs/engine-more.md).
pub use cv::ipp::{load as load_slide_library, IPP_FOLDER};
pub use decode::decode as decode_image;
pub use detect::{DetBox, DetectError, DetectStages, Detector};
pub use error::ImageError;
pub use model::{
    available_models, detection_model_path, ModelError, DETECTION_MODEL, RUNTIME_LIBRARY,
    SETUP_HINT,
};
pub use pixels::{Mode, Pixels};
pub use preprocess::StageNanos;
pub use probe::{probe_image, ImageFormat, ImageInfo, ImageLimits};
pub use recognizer::{Engine, RecognizeError};
pub use search::text::{Characters, TextRules};
pub use slide::{slide, slide_timed, SlideAnswer, SlideError, SlideMode, SlideStages};
pub use steps::StepProbs;

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
    /// `old` (default), `beta`, an installed model's name, or the name a custom model was
    /// asked for by (then `custom` is that model).
    pub model: String,
    /// The custom model to run (compared and hashed by its digest), instead of `model`'s.
    pub custom: Option<std::sync::Arc<custom::CustomModel>>,
    /// Composite an RGBA image on white before anything else, as ddddocr's `png_fix`.
    pub png_fix: bool,
    /// Also compute the confidence (mean of the per-step maximum softmax).
    pub probability: bool,
    pub charset_range: Option<CharsetRange>,
    /// ddddocr's colour filter (`colors` / `color_ranges`), applied before anything else.
    pub color_filter: Option<ColorFilter>,
    /// How the model's scores become the answer (ddddocr's way by default).
    pub reading: Reading,
}

/// How the model's per-step scores become the answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// ddddocr's: the most probable class at every step, collapsed.
    #[default]
    Plain,
    /// The best answer that meets these rules (none: unsolvable).
    Constrained(TextRules),
    /// An arithmetic expression, answered with its value (none readable: unsolvable).
    Math,
}

impl Reading {
    /// The reading the protocols' constraints ask for: 2captcha's `numeric` (1 digits, 2
    /// letters, 3 digits or letters, 4 digits and letters, else any), fewest and most
    /// characters (0: no bound), a letter's two cases as one. Nothing asked: ddddocr's.
    pub fn of_constraints(
        numeric: u8,
        min_chars: usize,
        max_chars: usize,
        case_insensitive: bool,
    ) -> Reading {
        let characters = match numeric {
            1 => Characters::Digits,
            2 => Characters::Letters,
            3 | 4 => Characters::DigitsOrLetters,
            _ => Characters::Any,
        };
        let rules = TextRules {
            characters,
            needs_digit: numeric == 4,
            needs_letter: numeric == 4,
            min_chars,
            max_chars,
            case_insensitive,
        };
        match rules == TextRules::default() {
            true => Reading::Plain,
            false => Reading::Constrained(rules),
        }
    }
}

impl Default for RecognizeOptions {
    fn default() -> Self {
        RecognizeOptions {
            model: "old".to_string(),
            custom: None,
            png_fix: false,
            probability: false,
            charset_range: None,
            color_filter: None,
            reading: Reading::Plain,
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

/// What an answer must satisfy to count, besides having been read: the hints the captcha
/// services' protocols carry (length, digits and letters, a minimum confidence). ddddocr
/// reads the image the same way whatever they say; an answer that fails them is
/// "unsolvable" and is not charged. The default constrains nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnswerConstraints {
    /// Fewest characters (0: no minimum).
    pub min_chars: usize,
    /// Most characters (0: no maximum).
    pub max_chars: usize,
    /// At least one ASCII digit.
    pub needs_digit: bool,
    /// At least one letter.
    pub needs_letter: bool,
    /// Lowest confidence, 0.0..=1.0 (needs `probability`).
    pub min_confidence: Option<f32>,
}

impl AnswerConstraints {
    /// `Err` says which constraint the answer fails.
    pub fn check(&self, answer: &Answer) -> Result<(), String> {
        let chars = answer.text.chars().count();
        if chars < self.min_chars {
            return Err(format!("{chars} characters, fewer than {}", self.min_chars));
        }
        if self.max_chars > 0 && chars > self.max_chars {
            return Err(format!("{chars} characters, more than {}", self.max_chars));
        }
        if self.needs_digit && !answer.text.chars().any(|c| c.is_ascii_digit()) {
            return Err("no digit".into());
        }
        if self.needs_letter && !answer.text.chars().any(char::is_alphabetic) {
            return Err("no letter".into());
        }
        if let Some(minimum) = self.min_confidence {
            let confidence = answer.confidence.unwrap_or(0.0);
            if confidence < minimum {
                return Err(format!("confidence {confidence:.3} below {minimum:.3}"));
            }
        }
        Ok(())
    }
}
