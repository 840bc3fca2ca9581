//! Decoders: bytes to [`Pixels`] in the mode Pillow's `Image.open` gives for the same file.
//! The header is probed and bounded first, so no decoder ever allocates for a hostile size.

mod bmp;
mod gif;
mod jpeg;
mod png;
mod webp;

use super::pixels::Pixels;
use super::probe::{probe_image, ImageFormat, ImageInfo, ImageLimits};
use super::ImageError;

/// Decodes `bytes` after checking its header against `limits`.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<Pixels, ImageError> {
    let info = probe_image(bytes, limits)?;
    let pixels = match info.format {
        ImageFormat::Png => png::decode(bytes, &info)?,
        ImageFormat::Jpeg => jpeg::decode(bytes, &info)?,
        ImageFormat::Gif => gif::decode(bytes, limits)?,
        ImageFormat::Bmp => bmp::decode(bytes)?,
        ImageFormat::WebP => webp::decode(bytes, &info)?,
    };
    check_matches_header(&pixels, &info)?;
    Ok(pixels)
}

/// A GIF's first frame as `cv2.imdecode` composes it (RGB; [`gif::opencv_rgb`]), after
/// checking its header against `limits`.
pub(crate) fn decode_gif_as_opencv(
    bytes: &[u8],
    limits: &ImageLimits,
) -> Result<Pixels, ImageError> {
    let info = probe_image(bytes, limits)?;
    assert_eq!(info.format, ImageFormat::Gif, "called for GIF files only");
    let pixels = gif::opencv_rgb(bytes, limits)?;
    check_matches_header(&pixels, &info)?;
    Ok(pixels)
}

/// A decoder must never return more pixels than the probed (bounded) header declared.
fn check_matches_header(pixels: &Pixels, info: &ImageInfo) -> Result<(), ImageError> {
    check_size(pixels.width, pixels.height, info)
}

/// The size a decoder's library read must be the probed one; the decoders whose library
/// reads the header again (PNG, JPEG) check it before allocating their output.
fn check_size(width: usize, height: usize, info: &ImageInfo) -> Result<(), ImageError> {
    if width != info.width as usize || height != info.height as usize {
        return Err(ImageError::Corrupt(format!(
            "decoder reads {width}x{height} but the header declares {}x{}",
            info.width, info.height
        )));
    }
    Ok(())
}

/// Spreads packed 1/2/4-bit samples to one byte each, most significant bits first.
fn unpack_bits(row: &[u8], bits: usize, count: usize, out: &mut Vec<u8>) {
    let mask = (1u16 << bits) as u8 - 1;
    let per_byte = 8 / bits;
    for i in 0..count {
        let byte = row[i / per_byte];
        let shift = 8 - bits * (i % per_byte + 1);
        out.push((byte >> shift) & mask);
    }
}
