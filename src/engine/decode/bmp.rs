//! Uncompressed BMP as Pillow's BmpImagePlugin opens it: 24-bit is RGB, 32-bit is RGB (BGRX)
//! or RGBA (an alpha bit mask), 1/4/8-bit are palette images, except that a palette equal to
//! the gray ramp makes them L (or bilevel for 2 colours). RLE and 16-bit files are refused.

use super::unpack_bits;
use crate::engine::pixels::{palette_from_rgb, Mode, Pixels};
use crate::engine::probe::bmp::BmpHeader;
use crate::engine::ImageError;

pub fn decode(bytes: &[u8]) -> Result<Pixels, ImageError> {
    let header = BmpHeader::read(bytes)?;
    let stride = header.row_stride(bytes.len())?;
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
            assert!(
                header.is_palette(),
                "row_stride admits no other depth: {bits}"
            );
            decode_palette(bytes, &header, row)
        }
    }
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
    header: &BmpHeader,
    row: impl Fn(usize) -> &'a [u8],
) -> Result<Pixels, ImageError> {
    let entry = header.palette_entry_size;
    let table = header.palette_table(bytes)?;
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
