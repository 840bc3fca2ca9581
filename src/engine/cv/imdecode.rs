//! `cv2.imdecode(bytes, cv2.IMREAD_COLOR)`: a 3-channel BGR image, alpha dropped, gray and
//! palettes expanded, then turned upright by the EXIF orientation.
//!
//! The pixels come from aiocr's Pillow-exact decoders followed by Pillow's `convert('RGB')`:
//! measured with opencv-python-headless 5.0.0.93, that equals OpenCV's own decoding for every
//! PNG, JPEG, GIF and BMP of the test fixtures (libpng drops alpha and expands palettes and
//! low bit depths the same way, 16-bit colour samples keep their high byte in both; OpenCV
//! decodes JPEG with libjpeg-turbo's defaults as Pillow does). 16-bit gray is the exception:
//! Pillow's I;16 converts by saturating at 255, OpenCV keeps the high byte, so that mode is
//! turned to 8 bits here as OpenCV does. Where they part (documented in
//! docs/engine-more.md): OpenCV also reads CMYK JPEG, RLE BMP, WebP and TIFF, and decodes a
//! truncated JPEG with gray filling; aiocr refuses those (3003).
//! OpenCV 4.6 (Debian's) has no GIF decoder at all; 5.0 decodes GIF as Pillow does.

use super::exif;
use super::Mat;
use crate::engine::decode::decode;
use crate::engine::pillow::to_rgb;
use crate::engine::pixels::Mode;
use crate::engine::probe::{sniff, ImageFormat};
use crate::engine::{ImageError, ImageLimits};

/// Decodes `bytes` (header bounds checked first) into OpenCV's BGR layout.
pub fn imdecode_color(bytes: &[u8], limits: &ImageLimits) -> Result<Mat, ImageError> {
    let pixels = decode(bytes, limits)?;
    let mut bgr = match pixels.mode {
        // libpng's strip_16 (OpenCV's 8-bit read) keeps the high byte, where Pillow's
        // conversion of I;16 saturates at 255.
        Mode::I16 => pixels
            .data
            .chunks_exact(2)
            .flat_map(|pair| [pair[1]; 3])
            .collect(),
        _ => to_rgb(&pixels),
    };
    for pixel in bgr.chunks_exact_mut(3) {
        pixel.swap(0, 2);
    }
    let image = Mat::new(pixels.width, pixels.height, 3, bgr);
    let tiff = match sniff(bytes)? {
        ImageFormat::Jpeg => exif::jpeg_exif(bytes),
        ImageFormat::Png => exif::png_exif(bytes),
        ImageFormat::Gif | ImageFormat::Bmp => None,
    };
    Ok(match tiff.and_then(exif::orientation) {
        Some(orientation) => exif::apply_orientation(image, orientation),
        None => image,
    })
}
