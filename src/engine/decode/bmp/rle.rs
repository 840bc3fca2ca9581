//! BmpImagePlugin's BmpRleDecoder, step for step: RLE8 and RLE4 runs into one palette index
//! per pixel. Its quirks are Pillow's and so are kept: an absolute run is cut at the end of
//! the image, the column count follows the run's declared length, skipped pixels (deltas,
//! ends of line) are index 0, runs past the row's end are cut, and word alignment after an
//! absolute run is by the position in the file.

use crate::engine::probe::bmp::BmpHeader;
use crate::engine::ImageError;

/// The indices, rows top to bottom. Pillow refuses ("not enough image data") when the runs
/// stop before the last pixel.
pub(super) fn decode(bytes: &[u8], header: &BmpHeader, rle4: bool) -> Result<Vec<u8>, ImageError> {
    let (width, height) = (header.width, header.height);
    let total = width * height;
    let mut data: Vec<u8> = Vec::with_capacity(total);
    let mut at = header.pixel_offset;
    // Pillow's x: the column as the runs count it.
    let mut x = 0usize;
    while data.len() < total {
        let (Some(&count), Some(&value)) = (bytes.get(at), bytes.get(at + 1)) else {
            break;
        };
        at += 2;
        if count > 0 {
            // Encoded run: `count` pixels of one index (RLE4: two alternating nibbles).
            let count = (count as usize).min(width.saturating_sub(x));
            let pair = if rle4 {
                [value >> 4, value & 0x0F]
            } else {
                [value, value]
            };
            data.extend((0..count).map(|i| pair[i % 2]));
            x += count;
            continue;
        }
        match value {
            0 => {
                // End of line: the rest of the row is index 0.
                let pad = (width - data.len() % width) % width;
                data.resize(data.len() + pad, 0);
                x = 0;
            }
            1 => break, // end of bitmap
            2 => {
                let (Some(&right), Some(&up)) = (bytes.get(at), bytes.get(at + 1)) else {
                    break;
                };
                at += 2;
                let skip = (right as usize + up as usize * width).min(total - data.len());
                data.resize(data.len() + skip, 0);
                x = data.len() % width;
            }
            declared => {
                // Absolute run of `declared` indices, cut at the end of the image.
                let count = (declared as usize).min(total - data.len());
                let byte_count = if rle4 { count.div_ceil(2) } else { count };
                let available = &bytes[at.min(bytes.len())..];
                let read = &available[..byte_count.min(available.len())];
                at += read.len();
                if rle4 {
                    for (i, &byte) in read.iter().enumerate() {
                        data.push(byte >> 4);
                        if i * 2 + 1 < count {
                            data.push(byte & 0x0F);
                        }
                    }
                } else {
                    data.extend_from_slice(read);
                }
                if read.len() < byte_count || data.len() == total {
                    break;
                }
                x += declared as usize;
                // Runs are word-aligned in the file (Pillow: fd.tell() % 2).
                at += at % 2;
            }
        }
    }
    if data.len() < total {
        return Err(ImageError::Corrupt(format!(
            "BMP runs end after {} of {total} pixels",
            data.len()
        )));
    }
    // Runs are cut at the end of each row, so they never pass the last pixel; were they to,
    // Pillow would take the first `total` indices as well.
    data.truncate(total);
    if !header.top_down {
        // The runs start with the bottom row.
        let rows: Vec<&[u8]> = data.chunks_exact(width).rev().collect();
        return Ok(rows.concat());
    }
    Ok(data)
}
