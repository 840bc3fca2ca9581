//! WebP's RIFF header and its first chunk (libwebp's container, "WebP Container
//! Specification"): VP8 (lossy: a key frame's 14-bit sides), VP8L (lossless: 14-bit sides
//! minus one) or VP8X (extended: 24-bit canvas sides minus one). The canvas is what libwebp's
//! animation decoder (Pillow's reader) allocates, so it is what the limits bound.

use super::bytes::{le_u16, le_u32, truncated};
use crate::engine::ImageError;

pub(super) fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let chunk = bytes.get(12..16).ok_or_else(|| truncated("WebP"))?;
    let data = 20;
    match chunk {
        b"VP8 " => {
            // A 3-byte frame tag, the key frame start code, then the sides (2 scale bits).
            if bytes.get(data + 3..data + 6) != Some(&[0x9D, 0x01, 0x2A][..]) {
                return Err(ImageError::Corrupt("WebP VP8 without a key frame".into()));
            }
            let width = le_u16(bytes, data + 6).ok_or_else(|| truncated("WebP"))? & 0x3FFF;
            let height = le_u16(bytes, data + 8).ok_or_else(|| truncated("WebP"))? & 0x3FFF;
            Ok((width as u32, height as u32))
        }
        b"VP8L" => {
            if bytes.get(data) != Some(&0x2F) {
                return Err(ImageError::Corrupt("WebP VP8L signature".into()));
            }
            let bits = le_u32(bytes, data + 1).ok_or_else(|| truncated("WebP"))?;
            Ok(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => {
            let side = |at: usize| -> Result<u32, ImageError> {
                let b = bytes.get(at..at + 3).ok_or_else(|| truncated("WebP"))?;
                Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]) + 1)
            };
            Ok((side(data + 4)?, side(data + 7)?))
        }
        other => Err(ImageError::Unsupported(format!(
            "WebP chunk {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}
