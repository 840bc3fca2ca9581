//! The bounds on images: bytes, pixels, sides, and the widest model input.

use super::check::first_failed;
use super::keys::Kind;
use crate::engine::ImageLimits;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConfig {
    /// Decoded image bytes (3002 beyond).
    pub max_image_bytes: usize,
    /// Width x height checked from the header (3004 beyond).
    pub max_image_pixels: u64,
    pub max_image_side: u32,
    /// Widest model input after resizing to the model's height (3004 beyond).
    pub max_model_width: usize,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            max_image_bytes: 512 * 1024,
            max_image_pixels: 2_000_000,
            max_image_side: 4096,
            max_model_width: 4096,
        }
    }
}

/// The keys of this section, with the kind of text their environment and `--set` values are.
pub const KEYS: &[(&str, Kind)] = &[
    ("max_image_bytes", Kind::Number),
    ("max_image_pixels", Kind::Number),
    ("max_image_side", Kind::Number),
    ("max_model_width", Kind::Number),
];

impl ImageConfig {
    /// The engine's bounds on images and model inputs.
    pub fn image_limits(&self) -> ImageLimits {
        ImageLimits {
            max_pixels: self.max_image_pixels,
            max_side: self.max_image_side,
            max_model_width: self.max_model_width,
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        first_failed(&[
            (self.max_image_bytes > 0, "max_image_bytes must be positive"),
            (self.max_model_width > 0, "max_model_width must be positive"),
        ])
    }
}
