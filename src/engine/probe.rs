//! Format and dimensions from the header alone (placeholder until the decoders land).

use super::ImageError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Bmp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// Bounds checked before any pixel is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_pixels: u64,
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_pixels: 2_000_000, max_side: 4096 }
    }
}

/// Reads only the header: the format, and the dimensions checked against `limits`.
pub fn probe_image(bytes: &[u8], _limits: &ImageLimits) -> Result<ImageInfo, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    Err(ImageError::NotAnImage)
}
