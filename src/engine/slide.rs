//! Slide captchas, exactly as ddddocr 1.6.1's `slide_match` and `slide_comparison`: both
//! images opened by Pillow and converted to RGB (an RGBA piece keeps the colours under its
//! transparent pixels), then OpenCV's gray conversion and
//! - match: Canny (50, 150) on both unless `simple`, `matchTemplate(TM_CCOEFF_NORMED)`, the
//!   maximum's position plus half the target's size;
//! - comparison: absolute difference, gray, threshold 30, close then open (3 x 3), the
//!   largest external contour's bounding box, its centre.
//!
//! No model: a slide costs well under a millisecond of one core.

use std::time::Instant;

use super::cv::canny::canny;
use super::cv::color::rgb_to_gray;
use super::cv::contours::largest_external_bounds;
use super::cv::morphology::{close3x3, open3x3, threshold_binary};
use super::cv::template::best_match;
use super::cv::Mat;
use super::decode::decode;
use super::pillow::to_rgb;
use super::pixels::Mode;
use super::preprocess::elapsed_nanos;
use super::{ImageError, ImageLimits};

/// Which of ddddocr's slide functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlideMode {
    /// `slide_match(target, background)`: a puzzle piece against the background with the hole.
    Match,
    /// `slide_match(..., simple_target=True)`: a plain crop, matched without edge detection.
    Simple,
    /// `slide_comparison(target, background)`: the background with the gap against the full
    /// background.
    Comparison,
}

impl SlideMode {
    /// The contract's `mode` values: `match` (default), `simple`, `comparison`.
    pub fn parse(value: &str) -> Option<SlideMode> {
        match value {
            "match" => Some(SlideMode::Match),
            "simple" => Some(SlideMode::Simple),
            "comparison" => Some(SlideMode::Comparison),
            _ => None,
        }
    }
}

/// ddddocr's answer: `{"target": [x, y], "target_x": x, "target_y": y, "confidence": c}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlideAnswer {
    pub target: (usize, usize),
    /// The match score, for the match modes only.
    pub confidence: Option<f32>,
    /// A comparison that found no difference: ddddocr answers only `{"target": [0, 0]}`.
    pub nothing_found: bool,
}

impl SlideAnswer {
    /// The answer as ddddocr's dict serialises, keys in its order. The confidence is the
    /// float32 score as a Python float (the shortest repr of the double).
    pub fn to_json(&self) -> String {
        let (x, y) = self.target;
        if self.nothing_found {
            return format!("{{\"target\":[{x},{y}]}}");
        }
        let mut json = format!("{{\"target\":[{x},{y}],\"target_x\":{x},\"target_y\":{y}");
        if let Some(confidence) = self.confidence {
            let value = serde_json::Value::from(confidence as f64);
            json.push_str(&format!(",\"confidence\":{value}"));
        }
        json.push('}');
        json
    }
}

/// Why a slide got no answer (src/contract.rs maps it to the contract's codes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlideError {
    #[error("target image: {0}")]
    Target(ImageError),
    #[error("background image: {0}")]
    Background(ImageError),
    #[error(
        "the two images must have the same size (target {target:?}, background {background:?})"
    )]
    SizeMismatch {
        target: (usize, usize),
        background: (usize, usize),
    },
    #[error("the target ({target:?}) must fit in the background ({background:?})")]
    TargetDoesNotFit {
        target: (usize, usize),
        background: (usize, usize),
    },
}

/// Nanoseconds per stage, for `aiocr slide --bench`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlideStages {
    /// Both images decoded and converted to RGB.
    pub decode: u64,
    /// Gray conversion and Canny, or difference, threshold and morphology.
    pub prepare: u64,
    /// Template matching, or contours.
    pub search: u64,
}

impl std::ops::AddAssign for SlideStages {
    fn add_assign(&mut self, other: SlideStages) {
        self.decode += other.decode;
        self.prepare += other.prepare;
        self.search += other.search;
    }
}

pub fn slide(
    target: &[u8],
    background: &[u8],
    mode: SlideMode,
    limits: &ImageLimits,
) -> Result<SlideAnswer, SlideError> {
    slide_timed(
        target,
        background,
        mode,
        limits,
        &mut SlideStages::default(),
    )
}

pub fn slide_timed(
    target: &[u8],
    background: &[u8],
    mode: SlideMode,
    limits: &ImageLimits,
    stages: &mut SlideStages,
) -> Result<SlideAnswer, SlideError> {
    let started = Instant::now();
    let target = rgb_of(target, limits).map_err(SlideError::Target)?;
    let background = rgb_of(background, limits).map_err(SlideError::Background)?;
    stages.decode += elapsed_nanos(started);
    match mode {
        SlideMode::Match | SlideMode::Simple => {
            matching(&target, &background, mode == SlideMode::Simple, stages)
        }
        SlideMode::Comparison => comparison(&target, &background, stages),
    }
}

/// Pillow's `Image.open(...).convert('RGB')` as an OpenCV array.
fn rgb_of(bytes: &[u8], limits: &ImageLimits) -> Result<Mat, ImageError> {
    let pixels = decode(bytes, limits)?;
    let (width, height) = (pixels.width, pixels.height);
    // An RGB image is already what convert('RGB') gives: keep its buffer.
    let rgb = match pixels.mode {
        Mode::Rgb => pixels.data,
        _ => to_rgb(&pixels),
    };
    Ok(Mat::new(width, height, 3, rgb))
}

fn matching(
    target: &Mat,
    background: &Mat,
    simple: bool,
    stages: &mut SlideStages,
) -> Result<SlideAnswer, SlideError> {
    let started = Instant::now();
    let (mut target_gray, mut background_gray) = (rgb_to_gray(target), rgb_to_gray(background));
    if !simple {
        target_gray = canny(&target_gray, 50.0, 150.0);
        background_gray = canny(&background_gray, 50.0, 150.0);
    }
    stages.prepare += elapsed_nanos(started);

    let started = Instant::now();
    let best =
        best_match(&background_gray, &target_gray).map_err(|_| SlideError::TargetDoesNotFit {
            target: (target.width, target.height),
            background: (background.width, background.height),
        })?;
    stages.search += elapsed_nanos(started);
    // The centre uses the target's own size, even when OpenCV swapped the two images.
    Ok(SlideAnswer {
        target: (best.x + target.width / 2, best.y + target.height / 2),
        confidence: Some(best.score),
        nothing_found: false,
    })
}

fn comparison(
    target: &Mat,
    background: &Mat,
    stages: &mut SlideStages,
) -> Result<SlideAnswer, SlideError> {
    if (target.width, target.height) != (background.width, background.height) {
        return Err(SlideError::SizeMismatch {
            target: (target.width, target.height),
            background: (background.width, background.height),
        });
    }
    let started = Instant::now();
    let difference: Vec<u8> = target
        .data
        .iter()
        .zip(&background.data)
        .map(|(&a, &b)| a.abs_diff(b))
        .collect();
    let gray = rgb_to_gray(&Mat::new(target.width, target.height, 3, difference));
    let binary = open3x3(&close3x3(&threshold_binary(&gray, 30.0)));
    stages.prepare += elapsed_nanos(started);

    let started = Instant::now();
    let bounds = largest_external_bounds(&binary);
    stages.search += elapsed_nanos(started);
    Ok(match bounds {
        Some(rect) => SlideAnswer {
            target: (rect.x + rect.width / 2, rect.y + rect.height / 2),
            confidence: None,
            nothing_found: false,
        },
        None => SlideAnswer {
            target: (0, 0),
            confidence: None,
            nothing_found: true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_serialise_in_ddddocrs_key_order() {
        let answer = SlideAnswer {
            target: (298, 82),
            confidence: Some(0.543_964_8),
            nothing_found: false,
        };
        assert_eq!(
            answer.to_json(),
            r#"{"target":[298,82],"target_x":298,"target_y":82,"confidence":0.5439648032188416}"#
        );
        let nothing = SlideAnswer {
            target: (0, 0),
            confidence: None,
            nothing_found: true,
        };
        assert_eq!(nothing.to_json(), r#"{"target":[0,0]}"#);
    }

    /// A gray PNG of the given size with a bright square at `(x, y)`.
    fn png_with_square(width: u32, height: u32, x: u32, y: u32) -> Vec<u8> {
        let mut data = vec![40u8; (width * height) as usize];
        for yy in y..(y + 12).min(height) {
            for xx in x..(x + 12).min(width) {
                data[(yy * width + xx) as usize] = 220;
            }
        }
        let mut out = Vec::new();
        let mut encoder = ::png::Encoder::new(&mut out, width, height);
        encoder.set_color(::png::ColorType::Grayscale);
        encoder.set_depth(::png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("header");
        writer.write_image_data(&data).expect("pixels");
        drop(writer);
        out
    }

    #[test]
    fn a_square_is_found_by_every_mode() {
        let limits = ImageLimits::default();
        let background = png_with_square(120, 80, 70, 30);
        let piece = png_with_square(24, 24, 6, 6);
        for mode in [SlideMode::Match, SlideMode::Simple] {
            let answer = slide(&piece, &background, mode, &limits).unwrap();
            // The piece's square is at (6, 6) in it: the piece sits at (64, 24), centre + 12.
            assert_eq!(answer.target, (76, 36), "{mode:?}");
            assert!(answer.confidence.unwrap() > 0.99);
        }
        let without = png_with_square(120, 80, 200, 200);
        let answer = slide(&without, &background, SlideMode::Comparison, &limits).unwrap();
        // The differing 12x12 square at (70, 30): centre (70 + 6, 30 + 6).
        assert_eq!(
            (answer.target, answer.confidence, answer.nothing_found),
            ((76, 36), None, false)
        );
        let same = slide(&background, &background, SlideMode::Comparison, &limits).unwrap();
        assert!(same.nothing_found);
    }

    #[test]
    fn sizes_that_do_not_fit_are_refused() {
        let limits = ImageLimits::default();
        let (a, b) = (
            png_with_square(120, 80, 0, 0),
            png_with_square(100, 80, 0, 0),
        );
        let error = slide(&a, &b, SlideMode::Comparison, &limits).unwrap_err();
        assert!(matches!(error, SlideError::SizeMismatch { .. }));
        let (tall, wide) = (
            png_with_square(20, 100, 0, 0),
            png_with_square(100, 20, 0, 0),
        );
        let error = slide(&tall, &wide, SlideMode::Match, &limits).unwrap_err();
        assert!(matches!(error, SlideError::TargetDoesNotFit { .. }));
        let bad = slide(b"junk", &a, SlideMode::Match, &limits).unwrap_err();
        // (The contract's codes for these: src/contract.rs.)
        assert!(matches!(bad, SlideError::Target(ImageError::NotAnImage)));
    }

    #[test]
    fn damaged_images_get_errors_not_panics() {
        let limits = ImageLimits::default();
        let images: Vec<Vec<u8>> = crate::test_support::fixtures()
            .into_iter()
            .step_by(24)
            .map(|f| f.image)
            .collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for image in &images {
            let mut variants: Vec<Vec<u8>> = [1, 8, 30, image.len() / 2, image.len() - 1]
                .iter()
                .map(|&cut| image[..cut].to_vec())
                .collect();
            for _ in 0..8 {
                let mut damaged = image.clone();
                for _ in 0..4 {
                    let at = random() as usize % damaged.len();
                    damaged[at] = random() as u8;
                }
                variants.push(damaged);
            }
            for variant in &variants {
                for mode in [SlideMode::Match, SlideMode::Simple, SlideMode::Comparison] {
                    let _ = slide(variant, image, mode, &limits);
                    let _ = slide(image, variant, mode, &limits);
                }
            }
        }
    }

    #[test]
    fn modes_parse_from_the_contract_names() {
        assert_eq!(SlideMode::parse("simple"), Some(SlideMode::Simple));
        assert_eq!(SlideMode::parse("Match"), None);
    }
}
