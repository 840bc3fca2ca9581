//! GIF's first frame as Pillow opens it: palette indices (mode P), or mode L when there is no
//! palette or the palette is the identity gray ramp (GifImagePlugin's `_is_palette_needed`).
//! Pixels outside a partial first frame hold the transparency index, else 0.
//!
//! OpenCV (cv2.imdecode, for detection) composes the same frame otherwise: on a canvas of the
//! background colour, where transparent pixels let the canvas show ([`opencv_rgb`]).

use std::io::Cursor;
use std::num::NonZeroU64;

use crate::engine::pixels::{palette_from_rgb, Mode, Pixels};
use crate::engine::{ImageError, ImageLimits};

pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<Pixels, ImageError> {
    let frame = FirstFrame::read(bytes, limits)?;
    let (width, height) = (frame.width, frame.height);
    let palette = frame.palette.filter(|p| is_palette_needed(p));
    Ok(match palette {
        Some(palette) => Pixels::new(
            Mode::P,
            width,
            height,
            frame.indices,
            Some(palette_from_rgb(&palette)),
        ),
        None => Pixels::new(Mode::L, width, height, frame.indices, None),
    })
}

/// The first frame as `cv2.imdecode(IMREAD_COLOR)` shows it, in RGB: the logical screen
/// filled with the global palette's background colour, the frame's opaque pixels in their
/// palette's colours (checked against OpenCV 5.0.0.93 on every GIF fixture).
pub(crate) fn opencv_rgb(bytes: &[u8], limits: &ImageLimits) -> Result<Pixels, ImageError> {
    let frame = FirstFrame::read(bytes, limits)?;
    let colour = |palette: Option<&[u8]>, index: usize| -> [u8; 3] {
        match palette {
            Some(p) => p
                .get(3 * index..3 * index + 3)
                .map_or([0; 3], |c| [c[0], c[1], c[2]]),
            None => [index as u8; 3],
        }
    };
    let background = match &frame.global_palette {
        Some(global) => colour(Some(global), frame.background),
        None => [0; 3],
    };
    let mut rgb = Vec::with_capacity(frame.width * frame.height * 3);
    for (i, &index) in frame.indices.iter().enumerate() {
        let (x, y) = (i % frame.width, i / frame.width);
        let shows_frame = frame.covers(x, y) && frame.transparent != Some(index);
        rgb.extend(if shows_frame {
            colour(frame.palette.as_deref(), index as usize)
        } else {
            background
        });
    }
    Ok(Pixels::new(Mode::Rgb, frame.width, frame.height, rgb, None))
}

/// The first frame placed on the logical screen, and what both readers need of the file.
struct FirstFrame {
    width: usize,
    height: usize,
    /// Screen-sized indices: the frame's, the transparency index (else 0) around it.
    indices: Vec<u8>,
    /// The frame's own palette, else the global one.
    palette: Option<Vec<u8>>,
    global_palette: Option<Vec<u8>>,
    transparent: Option<u8>,
    background: usize,
    /// The frame's left, top, width and height on the screen.
    rect: (usize, usize, usize, usize),
}

impl FirstFrame {
    fn read(bytes: &[u8], limits: &ImageLimits) -> Result<FirstFrame, ImageError> {
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
        let background = decoder.bg_color().unwrap_or(0);
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
        Ok(FirstFrame {
            width,
            height,
            indices,
            palette: frame.palette.clone().or_else(|| global_palette.clone()),
            global_palette,
            transparent: frame.transparent,
            background,
            rect: (left, top, frame_width, frame.height as usize),
        })
    }

    fn covers(&self, x: usize, y: usize) -> bool {
        let (left, top, width, height) = self.rect;
        (left..left + width).contains(&x) && (top..top + height).contains(&y)
    }
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
