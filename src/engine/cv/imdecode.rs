//! `cv2.imdecode(bytes, cv2.IMREAD_COLOR)`: a 3-channel BGR image, alpha dropped, gray and
//! palettes expanded, then turned upright by the EXIF orientation.
//!
//! The pixels come from aiocr's Pillow-exact decoders followed by Pillow's `convert('RGB')`:
//! measured with opencv-python-headless 5.0.0.93, that equals OpenCV's own decoding for every
//! PNG, JPEG, GIF and BMP of the test fixtures (libpng drops alpha and expands palettes and
//! low bit depths the same way, 16-bit colour samples keep their high byte in both; OpenCV
//! decodes JPEG with libjpeg-turbo's defaults as Pillow does). 16-bit gray is the exception:
//! Pillow's I;16 converts by saturating at 255, OpenCV keeps the high byte, so that mode is
//! turned to 8 bits here as OpenCV does; so are CMYK (JPEG), which OpenCV turns to BGR with
//! its own formula, and the BMP variants OpenCV reads its own way (16-bit, some bit masks).
//! Where they part (documented in docs/engine-more.md): OpenCV also reads TIFF, and decodes a
//! truncated JPEG with gray filling; aiocr refuses those (3003).
//! OpenCV 4.6 (Debian's) has no GIF decoder at all; 5.0 decodes a GIF's pixels as Pillow
//! does but composes the first frame on the background colour (decode/gif.rs).

use super::exif;
use super::Mat;
use crate::engine::decode::{decode, decode_gif_as_opencv};
use crate::engine::pillow::to_rgb;
use crate::engine::pixels::Mode;
use crate::engine::probe::bmp::{BmpHeader, Storage};
use crate::engine::probe::{sniff, ImageFormat};
use crate::engine::{ImageError, ImageLimits};

/// OpenCV's icvCvt_CMYK2BGR_8u_C4C3R on the file's (Adobe-inverted) samples: with `ink` and
/// `black` the un-inverted values Pillow's mode holds, each channel is
/// `(255 - black) - ((ink * (255 - black)) >> 8)`, which truncates where Pillow rounds (up to 2
/// levels apart from Pillow's cmyk2rgb, measured with opencv-python-headless 5.0.0.93).
fn cmyk_to_rgb(pixel: &[u8]) -> [u8; 3] {
    let not_black = 255 - pixel[3] as u32;
    std::array::from_fn(|i| (not_black - ((pixel[i] as u32 * not_black) >> 8)) as u8)
}

/// Where OpenCV's BMP reader (measured with opencv-python-headless 5.0.0.93) parts from
/// Pillow's: 16-bit samples are widened by shifts (`v << 3`, green of 5-6-5 `v << 2`) where
/// Pillow scales by 255 / max, and bit masks are read only after a 40-byte header for 16 bits
/// (else imdecode fails) and only inside a header of 56 bytes or more for 32 bits (else the
/// bytes are taken as BGR(X)). `rgb` holds Pillow's RGB; it is turned into OpenCV's, or the
/// file is refused where OpenCV reads no image (so ddddocr's detector fails too).
fn bmp_as_opencv(bytes: &[u8], rgb: &mut [u8]) -> Result<(), ImageError> {
    let header = BmpHeader::read(bytes)?;
    let refuse = |what: &str| {
        Err(ImageError::Unsupported(format!(
            "{what} BMP: OpenCV reads it otherwise than Pillow"
        )))
    };
    match header.storage {
        Storage::Packed16 { .. } if header.bitfields && header.dib_size != 40 => {
            refuse("16-bit bit-field")
        }
        Storage::Packed16 { green_bits } => {
            for pixel in rgb.chunks_exact_mut(3) {
                let bits = [5, green_bits, 5];
                for (sample, bits) in pixel.iter_mut().zip(bits) {
                    *sample = widen_as_opencv(*sample, bits);
                }
            }
            Ok(())
        }
        Storage::Bytes(layout)
            if header.bitfields
                && header.dib_size < 56
                && !matches!(layout, "BGR" | "BGRX" | "BGRA") =>
        {
            let stride = header.row_stride(bytes.len())?;
            let (width, height) = (header.width, header.height);
            for (y, out_row) in rgb.chunks_exact_mut(width * 3).enumerate().take(height) {
                let file_row = if header.top_down { y } else { height - 1 - y };
                let row = &bytes[header.pixel_offset + file_row * stride..][..stride];
                for (out, pixel) in out_row
                    .chunks_exact_mut(3)
                    .zip(row.chunks_exact(layout.len()))
                {
                    out.copy_from_slice(&[pixel[2], pixel[1], pixel[0]]);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A `bits`-bit field that Pillow scaled to `value` = field * 255 / max (truncated), as
/// OpenCV widens it: the field shifted to the top of the byte. The field is recovered exactly:
/// value * max / 255 lies within (field - 1, field], so its ceiling is the field.
fn widen_as_opencv(value: u8, bits: u32) -> u8 {
    let max = (1u32 << bits) - 1;
    let field = (value as u32 * max).div_ceil(255);
    (field << (8 - bits)) as u8
}

/// Decodes `bytes` (header bounds checked first) into OpenCV's BGR layout.
pub fn imdecode_color(bytes: &[u8], limits: &ImageLimits) -> Result<Mat, ImageError> {
    // OpenCV composes a GIF's first frame its own way (background colour around a partial
    // frame and under transparent pixels): read it so.
    let format = sniff(bytes)?;
    let pixels = match format {
        ImageFormat::Gif => decode_gif_as_opencv(bytes, limits)?,
        _ => decode(bytes, limits)?,
    };
    let mut bgr = match pixels.mode {
        // libpng's strip_16 (OpenCV's 8-bit read) keeps the high byte, where Pillow's
        // conversion of I;16 saturates at 255.
        Mode::I16 => pixels
            .data
            .chunks_exact(2)
            .flat_map(|pair| [pair[1]; 3])
            .collect(),
        Mode::Cmyk => pixels.data.chunks_exact(4).flat_map(cmyk_to_rgb).collect(),
        _ => to_rgb(&pixels),
    };
    if format == ImageFormat::Bmp {
        bmp_as_opencv(bytes, &mut bgr)?;
    }
    for pixel in bgr.chunks_exact_mut(3) {
        pixel.swap(0, 2);
    }
    let image = Mat::new(pixels.width, pixels.height, 3, bgr);
    let tiff = match format {
        ImageFormat::Jpeg => exif::jpeg_exif(bytes),
        ImageFormat::Png => exif::png_exif(bytes),
        ImageFormat::Gif | ImageFormat::Bmp | ImageFormat::WebP => None,
    };
    Ok(match tiff.and_then(exif::orientation) {
        Some(orientation) => exif::apply_orientation(image, orientation),
        None => image,
    })
}
