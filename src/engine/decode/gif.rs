//! GIF's first frame as Pillow opens it: palette indices (mode P), or mode L when there is no
//! palette or the palette is the identity gray ramp (GifImagePlugin's `_is_palette_needed`).
//! Pixels outside a partial first frame hold the transparency index, else 0.

use std::io::Cursor;
use std::num::NonZeroU64;

use crate::engine::pixels::{palette_from_rgb, Mode, Pixels};
use crate::engine::{ImageError, ImageLimits};

pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<Pixels, ImageError> {
    let mut options = ::gif::DecodeOptions::new();
    options.set_color_output(::gif::ColorOutput::Indexed);
    // The probe bounds the logical screen, but a frame declares its own size (up to
    // 65535x65535) and the gif crate allocates it whole: bound it by the same pixel limit
    // (one byte per indexed pixel) instead of the crate's default 50 MB.
    let frame_bytes = NonZeroU64::new(limits.max_pixels.max(1)).expect("at least 1");
    options.set_memory_limit(::gif::MemoryLimit::Bytes(frame_bytes));
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(corrupt)?;
    let (width, height) = (decoder.width() as usize, decoder.height() as usize);
    let global_palette = decoder.global_palette().map(<[u8]>::to_vec);
    let frame = decoder
        .read_next_frame()
        .map_err(corrupt)?
        .ok_or_else(|| ImageError::Corrupt("GIF without an image".into()))?;

    let fill = frame.transparent.unwrap_or(0);
    let mut indices = vec![fill; width * height];
    let (left, top) = (frame.left as usize, frame.top as usize);
    let frame_width = frame.width as usize;
    for (y, row) in frame.buffer.chunks_exact(frame_width.max(1)).enumerate() {
        let y = top + y;
        if y >= height || left >= width {
            break;
        }
        let visible = frame_width.min(width - left);
        indices[y * width + left..y * width + left + visible].copy_from_slice(&row[..visible]);
    }

    let palette = frame
        .palette
        .clone()
        .or(global_palette)
        .filter(|p| is_palette_needed(p));
    Ok(match palette {
        Some(palette) => Pixels::new(
            Mode::P,
            width,
            height,
            indices,
            Some(palette_from_rgb(&palette)),
        ),
        None => Pixels::new(Mode::L, width, height, indices, None),
    })
}

/// False when entry i is (i, i, i) for every entry: Pillow then reads the indices as gray.
fn is_palette_needed(palette: &[u8]) -> bool {
    palette
        .chunks(3)
        .enumerate()
        .any(|(i, rgb)| rgb.iter().any(|&v| v as usize != i))
}

fn corrupt(error: ::gif::DecodingError) -> ImageError {
    ImageError::Corrupt(format!("GIF: {error}"))
}
