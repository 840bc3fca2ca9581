//! PNG in Pillow's modes (PngImagePlugin's `_MODES`): 1-bit gray is bilevel, 2/4-bit gray is
//! scaled to L, 16-bit gray is I;16 (every bit kept), other 16-bit samples keep their high
//! byte, palettes stay palettes, gray+alpha is LA (RGBA at 16 bits).

use std::borrow::Cow;
use std::io::Cursor;

use super::{check_size, unpack_bits};
use crate::engine::pixels::{palette_from_rgb, Mode, Pixels};
use crate::engine::{ImageError, ImageInfo};

pub fn decode(bytes: &[u8], info: &ImageInfo) -> Result<Pixels, ImageError> {
    let mut options = ::png::DecodeOptions::default();
    // Pillow verifies the CRC of every chunk it reads before the image data, ancillary ones
    // included ("broken PNG file"); the png crate would skip those.
    options.set_skip_ancillary_crc_failures(false);
    let mut decoder = ::png::Decoder::new_with_options(Cursor::new(bytes), options);
    // Raw samples: every mode decision below is Pillow's, not the png crate's.
    decoder.set_transformations(::png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let header = reader.info();
    check_size(header.width as usize, header.height as usize, info)?;
    let mut raw = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut raw).map_err(corrupt)?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let bits = frame.bit_depth as usize;
    let rows = raw.chunks_exact(frame.line_size).take(height);
    use ::png::ColorType::*;
    let (mode, data) = match (frame.color_type, bits) {
        (Grayscale, 1) => (Mode::Bilevel, unpack_rows(rows, 1, width, |v| v * 255)),
        (Grayscale, 2) => (Mode::L, unpack_rows(rows, 2, width, |v| v * 85)),
        (Grayscale, 4) => (Mode::L, unpack_rows(rows, 4, width, |v| v * 17)),
        (Grayscale, 8) => (Mode::L, raw[..width * height].to_vec()),
        // Pillow's "I;16B" raw mode into I;16, stored little-endian.
        (Grayscale, 16) => (Mode::I16, swap_byte_pairs(&raw[..width * height * 2])),
        (Rgb, 8) => (Mode::Rgb, raw[..width * height * 3].to_vec()),
        (Rgba, 8) => (Mode::Rgba, raw[..width * height * 4].to_vec()),
        (GrayscaleAlpha, 8) => (Mode::La, raw[..width * height * 2].to_vec()),
        (Rgb, 16) => (Mode::Rgb, high_bytes(&raw[..width * height * 6])),
        (Rgba, 16) => (Mode::Rgba, high_bytes(&raw[..width * height * 8])),
        // Pillow's "LA;16B" raw mode opens as RGBA.
        (GrayscaleAlpha, 16) => {
            let la = high_bytes(&raw[..width * height * 4]);
            (
                Mode::Rgba,
                la.chunks_exact(2)
                    .flat_map(|p| [p[0], p[0], p[0], p[1]])
                    .collect(),
            )
        }
        (Indexed, 1 | 2 | 4 | 8) => {
            check_palette(reader.info().palette.as_deref())?;
            let palette = reader.info().palette.clone().unwrap_or(Cow::Borrowed(&[]));
            let indices = unpack_rows(rows, bits, width, |v| v);
            return Ok(Pixels::new(
                Mode::P,
                width,
                height,
                indices,
                Some(palette_from_rgb(&palette)),
            ));
        }
        (color, depth) => {
            return Err(ImageError::Unsupported(format!(
                "PNG {color:?} at {depth} bits"
            )))
        }
    };
    Ok(Pixels::new(mode, width, height, data, None))
}

/// A PLTE chunk holds 1 to 256 RGB entries (PNG specification 11.2.3; Pillow refuses more
/// than 256 as an "invalid palette size"). A missing PLTE is left to Pillow's default palette.
fn check_palette(palette: Option<&[u8]>) -> Result<(), ImageError> {
    let Some(palette) = palette else {
        return Ok(());
    };
    if palette.is_empty() || palette.len() % 3 != 0 || palette.len() / 3 > 256 {
        return Err(ImageError::Corrupt(format!(
            "PNG palette of {} bytes",
            palette.len()
        )));
    }
    Ok(())
}

fn corrupt(error: ::png::DecodingError) -> ImageError {
    ImageError::Corrupt(format!("PNG: {error}"))
}

fn unpack_rows<'a>(
    rows: impl Iterator<Item = &'a [u8]>,
    bits: usize,
    width: usize,
    scale: impl Fn(u8) -> u8,
) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        if bits == 8 {
            out.extend_from_slice(&row[..width]);
        } else {
            unpack_bits(row, bits, width, &mut out);
        }
    }
    out.iter_mut().for_each(|v| *v = scale(*v));
    out
}

/// 16-bit big-endian samples to little-endian.
fn swap_byte_pairs(samples: &[u8]) -> Vec<u8> {
    samples
        .chunks_exact(2)
        .flat_map(|pair| [pair[1], pair[0]])
        .collect()
}

/// 16-bit big-endian samples to their high byte (Pillow's ";16B" raw modes).
fn high_bytes(samples: &[u8]) -> Vec<u8> {
    samples.chunks_exact(2).map(|pair| pair[0]).collect()
}
