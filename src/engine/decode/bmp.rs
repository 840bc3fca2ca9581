//! BMP as Pillow's BmpImagePlugin opens it: 24-bit is RGB, 32-bit is RGB (BGRX) or RGBA as
//! its bit masks say, 16-bit is RGB from 5-5-5 or 5-6-5 samples, 1/4/8-bit and RLE4/RLE8 are
//! palette images, except that a palette equal to the gray ramp makes them L (or bilevel for
//! 2 colours).

use super::unpack_bits;
use crate::engine::pixels::{palette_from_rgb, Mode, Pixels};
use crate::engine::probe::bmp::{BmpHeader, Storage};
use crate::engine::ImageError;

mod rle;

pub fn decode(bytes: &[u8]) -> Result<Pixels, ImageError> {
    let header = BmpHeader::read(bytes)?;
    if let Storage::Rle { rle4 } = header.storage {
        let indices = rle::decode(bytes, &header, rle4)?;
        return palette_image(bytes, &header, indices);
    }
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
    match header.storage {
        Storage::Bytes(layout) => {
            let mode = if layout.contains('A') {
                Mode::Rgba
            } else {
                Mode::Rgb
            };
            let order = ByteOrder::of(layout);
            let mut data = Vec::with_capacity(width * height * mode.channels());
            for y in 0..height {
                order.to_rgb(row(y), width, &mut data);
            }
            Ok(Pixels::new(mode, width, height, data, None))
        }
        Storage::Packed16 { green_bits } => {
            let mut data = Vec::with_capacity(width * height * 3);
            for y in 0..height {
                unpack_16(row(y), width, green_bits, &mut data);
            }
            Ok(Pixels::new(Mode::Rgb, width, height, data, None))
        }
        Storage::Indexed => {
            let mut indices = Vec::with_capacity(width * height);
            for y in 0..height {
                unpack_bits(row(y), header.bits, width, &mut indices);
            }
            palette_image(bytes, &header, indices)
        }
        Storage::Rle { .. } => unreachable!("handled above"),
    }
}

/// Where R, G, B (and A) sit in a pixel of a raw mode such as "BGRX" or "ABGR".
struct ByteOrder {
    bytes_per_pixel: usize,
    /// Byte indices of R, G, B, then A when the mode has one.
    channels: Vec<usize>,
}

impl ByteOrder {
    fn of(layout: &str) -> ByteOrder {
        let at = |letter| layout.find(letter);
        let mut channels: Vec<usize> = ['R', 'G', 'B']
            .iter()
            .map(|&c| at(c).expect("raw modes name R, G and B"))
            .collect();
        channels.extend(at('A'));
        ByteOrder {
            bytes_per_pixel: layout.len(),
            channels,
        }
    }

    fn to_rgb(&self, row: &[u8], width: usize, out: &mut Vec<u8>) {
        for pixel in row.chunks_exact(self.bytes_per_pixel).take(width) {
            out.extend(self.channels.iter().map(|&i| pixel[i]));
        }
    }
}

/// Unpack.c's ImagingUnpackBGR15 / BGR16: each field scaled by 255 / its maximum, truncated.
fn unpack_16(row: &[u8], width: usize, green_bits: u32, out: &mut Vec<u8>) {
    let scale = |value: u16, bits: u32| (value as u32 * 255 / ((1 << bits) - 1)) as u8;
    for pixel in row.chunks_exact(2).take(width) {
        let value = u16::from_le_bytes([pixel[0], pixel[1]]);
        let blue = value & 0x1F;
        let green = (value >> 5) & ((1 << green_bits) - 1);
        let red = (value >> (5 + green_bits)) & 0x1F;
        out.extend([scale(red, 5), scale(green, green_bits), scale(blue, 5)]);
    }
}

/// Palette indices (one per byte, rows top to bottom) as Pillow's mode for the palette.
fn palette_image(bytes: &[u8], header: &BmpHeader, indices: Vec<u8>) -> Result<Pixels, ImageError> {
    let entry = header.palette_entry_size;
    let table = header.palette_table(bytes)?;
    let rgb: Vec<u8> = table
        .chunks_exact(entry)
        .flat_map(|e| [e[2], e[1], e[0]])
        .collect();
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
        // Mode "1" from the indices: any index but 0 is white (Unpack.c's "1" from "P;1"
        // and from "L", the RLE decoder's raw mode).
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
