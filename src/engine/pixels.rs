//! An image held the way Pillow holds it after `Image.open`: in the file's own mode.
//!
//! ddddocr never converts to RGB before resizing, and Pillow's resize depends on the mode
//! (palette and bilevel images are resized with NEAREST whatever was asked, images with alpha
//! are premultiplied), so the mode is part of what decides the answer.

/// Pillow's image modes that aiocr's decoders produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 8-bit gray.
    L,
    /// 8-bit gray + alpha.
    La,
    Rgb,
    Rgba,
    /// 8-bit palette indices; the palette is in [`Pixels::palette`].
    P,
    /// Bilevel ("1"); stored one byte per pixel as 0 or 255, as Pillow does.
    Bilevel,
    /// 16-bit gray ("I;16", what Pillow opens a 16-bit grayscale PNG as): one sample of two
    /// bytes per pixel, little-endian, as Pillow stores it.
    I16,
    /// Cyan, magenta, yellow, black ("CMYK", what Pillow opens a 4-component JPEG as), 255
    /// meaning full ink: JPEG's Adobe (inverted) samples already turned back.
    Cmyk,
}

impl Mode {
    pub fn channels(self) -> usize {
        match self {
            Mode::L | Mode::P | Mode::Bilevel | Mode::I16 => 1,
            Mode::La => 2,
            Mode::Rgb => 3,
            Mode::Rgba | Mode::Cmyk => 4,
        }
    }

    /// Bytes of one pixel: the channels, except I;16's two-byte sample.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Mode::I16 => 2,
            mode => mode.channels(),
        }
    }
}

/// 256 RGB entries. Entries a file does not define are gray (i, i, i), as a new Pillow palette.
pub type Palette = Box<[[u8; 3]; 256]>;

/// Builds a palette from packed RGB triplets (at most 256 are used).
pub fn palette_from_rgb(rgb: &[u8]) -> Palette {
    let mut palette: Palette = Box::new(std::array::from_fn(|i| [i as u8; 3]));
    for (entry, triplet) in palette.iter_mut().zip(rgb.chunks_exact(3)) {
        entry.copy_from_slice(triplet);
    }
    palette
}

/// Interleaved samples, `mode.bytes_per_pixel()` bytes per pixel, rows top to bottom without padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pixels {
    pub mode: Mode,
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
    /// Present exactly when `mode` is [`Mode::P`].
    pub palette: Option<Palette>,
}

impl Pixels {
    pub fn new(
        mode: Mode,
        width: usize,
        height: usize,
        data: Vec<u8>,
        palette: Option<Palette>,
    ) -> Pixels {
        assert_eq!(
            data.len(),
            width * height * mode.bytes_per_pixel(),
            "pixel buffer size"
        );
        assert_eq!(palette.is_some(), mode == Mode::P, "palette iff mode P");
        Pixels {
            mode,
            width,
            height,
            data,
            palette,
        }
    }
}
