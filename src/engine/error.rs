//! Why an image could not be recognised. The server maps each variant to one code of the API
//! contract (src/contract.rs); the engine itself knows nothing of the contract.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Zero bytes.
    Empty,
    /// Not a PNG, JPEG, GIF, BMP or WebP (by its magic bytes).
    NotAnImage,
    /// A known format in a variant aiocr does not decode (e.g. CMYK JPEG, RLE BMP).
    Unsupported(String),
    /// Truncated or corrupt data.
    Corrupt(String),
    /// The header declares a width/height beyond the configured bounds.
    DimensionsOutOfBounds { width: u32, height: u32 },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Empty => write!(f, "empty image"),
            ImageError::NotAnImage => write!(f, "not a PNG, JPEG, GIF, BMP or WebP image"),
            ImageError::Unsupported(what) => write!(f, "unsupported image: {what}"),
            ImageError::Corrupt(what) => write!(f, "corrupt image: {what}"),
            ImageError::DimensionsOutOfBounds { width, height } => {
                write!(f, "image dimensions {width}x{height} out of bounds")
            }
        }
    }
}

impl std::error::Error for ImageError {}
