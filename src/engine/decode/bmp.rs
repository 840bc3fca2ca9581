//! Uncompressed BMP as Pillow's BmpImagePlugin opens it: 24-bit is RGB, 32-bit is RGB (BGRX)
//! or RGBA (an alpha bit mask), 1/4/8-bit are palette images, except that a palette equal to
//! the gray ramp makes them L (or bilevel for 2 colours). RLE and 16-bit files are refused.

use super::unpack_bits;
use crate::engine::pixels::{palette_from_rgb, Mode, Pixels};
use crate::engine::probe::{le_u16, le_u32};
use crate::engine::ImageError;

const BI_RGB: u32 = 0;
const BI_BITFIELDS: u32 = 3;

struct Header {
    width: usize,
    height: usize,
    top_down: bool,
    bits: usize,
    compression: u32,
    colors: usize,
    /// Bytes per palette entry: 3 in OS/2 core files, else 4.
    palette_entry_size: usize,
    palette_offset: usize,
    pixel_offset: usize,
    has_alpha_mask: bool,
}

/// Whether aiocr decodes this BMP, from its headers and length alone: a supported variant,
/// the palette and every row present. The probe calls it, so the server refuses such a file
/// before charging for it. The probe has bounded the dimensions first.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), ImageError> {
    let header = parse_header(bytes)?;
    row_stride(&header, bytes.len())?;
    if is_palette(header.bits) {
        palette_table(bytes, &header)?;
    }
    Ok(())
}

fn is_palette(bits: usize) -> bool {
    matches!(bits, 1 | 4 | 8)
}

/// Bytes per row (rows are padded to 4 bytes), once the file is known to hold every row.
fn row_stride(header: &Header, file_len: usize) -> Result<usize, ImageError> {
    if !matches!(header.bits, 1 | 4 | 8 | 24 | 32) {
        return Err(ImageError::Unsupported(format!("{}-bit BMP", header.bits)));
    }
    let too_large = || ImageError::Corrupt("BMP pixel data size overflows".into());
    let row_bits = header
        .width
        .checked_mul(header.bits)
        .ok_or_else(too_large)?;
    let stride = (row_bits.checked_add(31).ok_or_else(too_large)? >> 3) & !3;
    let needed = stride
        .checked_mul(header.height)
        .and_then(|size| size.checked_add(header.pixel_offset))
        .ok_or_else(too_large)?;
    if file_len < needed {
        return Err(ImageError::Corrupt("truncated BMP pixel data".into()));
    }
    Ok(stride)
}

pub fn decode(bytes: &[u8]) -> Result<Pixels, ImageError> {
    let header = parse_header(bytes)?;
    let stride = row_stride(&header, bytes.len())?;
    let row = |y: usize| {
        let file_row = if header.top_down {
            y
        } else {
            header.height - 1 - y
        };
        &bytes[header.pixel_offset + file_row * stride..][..stride]
    };
    let (width, height) = (header.width, header.height);
    match header.bits {
        24 => {
            let data = (0..height)
                .flat_map(|y| bgr_to_rgb(row(y), width, 3, false))
                .collect();
            Ok(Pixels::new(Mode::Rgb, width, height, data, None))
        }
        32 => {
            let mode = if header.has_alpha_mask {
                Mode::Rgba
            } else {
                Mode::Rgb
            };
            let data = (0..height)
                .flat_map(|y| bgr_to_rgb(row(y), width, 4, header.has_alpha_mask))
                .collect();
            Ok(Pixels::new(mode, width, height, data, None))
        }
        bits => {
            assert!(is_palette(bits), "row_stride admits no other depth");
            decode_palette(bytes, &header, row)
        }
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header, ImageError> {
    let truncated = || ImageError::Corrupt("truncated BMP header".into());
    let pixel_offset = le_u32(bytes, 10).ok_or_else(truncated)? as usize;
    let header_size = le_u32(bytes, 14).ok_or_else(truncated)? as usize;
    if header_size == 12 {
        let bits = le_u16(bytes, 24).ok_or_else(truncated)? as usize;
        return Ok(Header {
            width: le_u16(bytes, 18).ok_or_else(truncated)? as usize,
            height: le_u16(bytes, 20).ok_or_else(truncated)? as usize,
            top_down: false,
            bits,
            compression: BI_RGB,
            colors: 1 << bits.min(8),
            palette_entry_size: 3,
            palette_offset: 14 + 12,
            pixel_offset,
            has_alpha_mask: false,
        });
    }
    if header_size < 40 {
        return Err(ImageError::Unsupported(format!(
            "BMP header of {header_size} bytes"
        )));
    }
    let raw_height = le_u32(bytes, 22).ok_or_else(truncated)? as i32;
    let bits = le_u16(bytes, 28).ok_or_else(truncated)? as usize;
    let compression = le_u32(bytes, 30).ok_or_else(truncated)?;
    let colors_used = le_u32(bytes, 46).ok_or_else(truncated)? as usize;
    // BITFIELDS masks follow a 40-byte header, or sit inside a larger one.
    let masks_at = 14 + 40;
    let has_masks = compression == BI_BITFIELDS;
    let mask = |i: usize| le_u32(bytes, masks_at + 4 * i).ok_or_else(truncated);
    let has_alpha_mask = if has_masks {
        let (r, g, b) = (mask(0)?, mask(1)?, mask(2)?);
        if bits != 32 || (r, g, b) != (0xFF0000, 0xFF00, 0xFF) {
            return Err(ImageError::Unsupported(
                "BMP bit masks other than 8-8-8(-8)".into(),
            ));
        }
        header_size >= 56 && mask(3)? == 0xFF00_0000
    } else if compression != BI_RGB {
        return Err(ImageError::Unsupported(format!(
            "BMP compression {compression}"
        )));
    } else {
        false
    };
    let palette_offset = 14
        + header_size
        + if has_masks && header_size == 40 {
            12
        } else {
            0
        };
    Ok(Header {
        width: le_u32(bytes, 18).ok_or_else(truncated)? as usize,
        height: raw_height.unsigned_abs() as usize,
        top_down: raw_height < 0,
        bits,
        compression,
        colors: if colors_used == 0 {
            1 << bits.min(8)
        } else {
            colors_used
        },
        palette_entry_size: 4,
        palette_offset,
        pixel_offset,
        has_alpha_mask,
    })
}

/// The palette's bytes: 1 to 256 entries, all inside the file.
fn palette_table<'a>(bytes: &'a [u8], header: &Header) -> Result<&'a [u8], ImageError> {
    if header.colors == 0 || header.colors > 256 {
        return Err(ImageError::Unsupported(format!(
            "BMP palette of {} colours",
            header.colors
        )));
    }
    let end = header.palette_offset + header.palette_entry_size * header.colors;
    bytes
        .get(header.palette_offset..end)
        .ok_or_else(|| ImageError::Corrupt("truncated BMP palette".into()))
}

/// BGR(X/A) rows to RGB(A).
fn bgr_to_rgb(row: &[u8], width: usize, bytes_per_pixel: usize, keep_alpha: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * 4);
    for pixel in row.chunks_exact(bytes_per_pixel).take(width) {
        out.extend_from_slice(&[pixel[2], pixel[1], pixel[0]]);
        if keep_alpha {
            out.push(pixel[3]);
        }
    }
    out
}

fn decode_palette<'a>(
    bytes: &[u8],
    header: &Header,
    row: impl Fn(usize) -> &'a [u8],
) -> Result<Pixels, ImageError>
where
{
    debug_assert_eq!(header.compression, BI_RGB);
    let entry = header.palette_entry_size;
    let table = palette_table(bytes, header)?;
    let rgb: Vec<u8> = table
        .chunks_exact(entry)
        .flat_map(|e| [e[2], e[1], e[0]])
        .collect();

    let mut indices = Vec::with_capacity(header.width * header.height);
    for y in 0..header.height {
        unpack_bits(row(y), header.bits, header.width, &mut indices);
    }
    let (width, height) = (header.width, header.height);
    // Pillow ditches a gray-ramp palette: (0, 255) for 2 colours, (i, i, i) otherwise.
    let ramp = |i: usize| {
        if header.colors == 2 {
            [0u8, 255][i]
        } else {
            i as u8
        }
    };
    let is_gray_ramp = rgb
        .chunks_exact(3)
        .enumerate()
        .all(|(i, c)| c.iter().all(|&v| v == ramp(i)));
    if is_gray_ramp && header.colors == 2 {
        let data = indices
            .iter()
            .map(|&i| if i == 0 { 0 } else { 255 })
            .collect();
        return Ok(Pixels::new(Mode::Bilevel, width, height, data, None));
    }
    if is_gray_ramp {
        return Ok(Pixels::new(Mode::L, width, height, indices, None));
    }
    Ok(Pixels::new(
        Mode::P,
        width,
        height,
        indices,
        Some(palette_from_rgb(&rgb)),
    ))
}
