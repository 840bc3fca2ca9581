//! ddddocr 1.6.1's `_preprocess_image`, step for step: optional colour filter (which leaves an
//! RGB image), optional `png_fix` (RGBA only), resize with LANCZOS in the image's own mode,
//! convert to the model's channels, scale to [0, 1].

use std::time::Instant;

use super::color_filter::ColorFilter;
use super::decode::decode;
use super::model::{ModelSpec, Sizing};
use super::pillow;
use super::pixels::{Mode, Pixels};
use super::{ImageError, ImageLimits};

/// A model input for one image: `channels x height x width` f32 samples.
pub struct Tensor {
    pub data: Vec<f32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// Nanoseconds spent per stage, for `aiocr ocr --bench`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageNanos {
    pub decode: u64,
    pub resize: u64,
    pub model: u64,
    pub output: u64,
}

impl std::ops::AddAssign for StageNanos {
    fn add_assign(&mut self, other: StageNanos) {
        self.decode += other.decode;
        self.resize += other.resize;
        self.model += other.model;
        self.output += other.output;
    }
}

pub fn elapsed_nanos(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

/// The size ddddocr resizes to. Python computes `int(w * (h_target / h))` in doubles.
fn target_size(sizing: Sizing, width: usize, height: usize) -> (usize, usize) {
    match sizing {
        Sizing::KeepAspect { height: target } => (
            (width as f64 * (target as f64 / height as f64)) as usize,
            target,
        ),
        Sizing::Square { side } => (side, side),
        Sizing::Fixed { width, height } => (width, height),
    }
}

pub fn preprocess(
    bytes: &[u8],
    spec: &ModelSpec,
    png_fix: bool,
    limits: &ImageLimits,
    times: &mut StageNanos,
) -> Result<Tensor, ImageError> {
    preprocess_filtered(bytes, spec, png_fix, None, limits, times)
}

/// [`preprocess`] with ddddocr's colour filter first, when there is one.
pub fn preprocess_filtered(
    bytes: &[u8],
    spec: &ModelSpec,
    png_fix: bool,
    color_filter: Option<&ColorFilter>,
    limits: &ImageLimits,
    times: &mut StageNanos,
) -> Result<Tensor, ImageError> {
    let image = decode_for_model(bytes, png_fix, color_filter, limits, times)?;
    let started = Instant::now();
    let tensor = tensor_of(&image, spec, limits, 1.0);
    times.resize += elapsed_nanos(started);
    tensor
}

/// The pixels ddddocr resizes: decoded, colour-filtered, composited on white (`png_fix`).
pub fn decode_for_model(
    bytes: &[u8],
    png_fix: bool,
    color_filter: Option<&ColorFilter>,
    limits: &ImageLimits,
    times: &mut StageNanos,
) -> Result<Pixels, ImageError> {
    let started = Instant::now();
    let mut image = decode(bytes, limits)?;
    times.decode += elapsed_nanos(started);

    let started = Instant::now();
    if let Some(filter) = color_filter {
        image = filter.apply(&image);
    }
    if png_fix && image.mode == Mode::Rgba {
        image = pillow::paste_on_white(&image);
    }
    times.resize += elapsed_nanos(started);
    Ok(image)
}

/// The model's input for decoded pixels: resized as ddddocr resizes (LANCZOS in the image's
/// own mode), converted to the model's channels, scaled to [0, 1]. `widen` stretches the
/// target width (1.0: ddddocr's size; math captchas are read wider too).
pub fn tensor_of(
    image: &Pixels,
    spec: &ModelSpec,
    limits: &ImageLimits,
    widen: f64,
) -> Result<Tensor, ImageError> {
    assert!(widen > 0.0, "a positive stretch");
    let (mut width, height) = target_size(spec.sizing, image.width, image.height);
    if widen != 1.0 {
        width = (width as f64 * widen) as usize;
    }
    if width == 0 || width > limits.max_model_width {
        // Pillow refuses a zero width; a very wide one would make one huge model run.
        return Err(ImageError::DimensionsOutOfBounds {
            width: image.width as u32,
            height: image.height as u32,
        });
    }
    let resized = pillow::resize_lanczos(image, width, height);
    let samples = match spec.channels {
        1 => pillow::to_gray(&resized),
        _ => planar(&pillow::to_rgb(&resized), width * height),
    };
    let data = samples.iter().map(|&v| v as f32 / 255.0f32).collect();
    Ok(Tensor {
        data,
        channels: spec.channels,
        height,
        width,
    })
}

/// HWC to CHW, as ddddocr's `transpose(2, 0, 1)`.
fn planar(interleaved: &[u8], pixels: usize) -> Vec<u8> {
    let mut out = vec![0u8; interleaved.len()];
    for (i, rgb) in interleaved.chunks_exact(3).enumerate() {
        for (c, &v) in rgb.iter().enumerate() {
            out[c * pixels + i] = v;
        }
    }
    out
}
