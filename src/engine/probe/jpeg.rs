//! JPEG's header: the marker segments up to the first start-of-frame.

use super::bytes::{be_u16, truncated};
use crate::engine::ImageError;

pub(super) fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let at = frame_header(bytes)?;
    let height = be_u16(bytes, at + 3).ok_or_else(|| truncated("JPEG"))?;
    let width = be_u16(bytes, at + 5).ok_or_else(|| truncated("JPEG"))?;
    Ok((width as u32, height as u32))
}

/// The start-of-frame's process, precision and components: libjpeg-turbo's 8-bit decoder
/// does not do hierarchical (differential) JPEG or other precisions (nor does Pillow's build:
/// "cannot handle 12-bit layers"); 1, 3 and 4 (CMYK/YCCK) components are Pillow's L, RGB, CMYK.
pub(super) fn check_variant(bytes: &[u8]) -> Result<(), ImageError> {
    let at = frame_header(bytes)?;
    let marker = bytes[at - 1];
    let length = be_u16(bytes, at).ok_or_else(|| truncated("JPEG"))? as usize;
    let precision = *bytes.get(at + 2).ok_or_else(|| truncated("JPEG"))?;
    let components = *bytes.get(at + 7).ok_or_else(|| truncated("JPEG"))?;
    if [0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF].contains(&marker) {
        return Err(ImageError::Unsupported("hierarchical JPEG".into()));
    }
    if precision != 8 {
        return Err(ImageError::Unsupported(format!("{precision}-bit JPEG")));
    }
    match components {
        1 | 3 | 4 => {}
        n => return Err(ImageError::Unsupported(format!("JPEG with {n} components"))),
    }
    if length != 8 + 3 * components as usize {
        return Err(ImageError::Corrupt("JPEG frame header length".into()));
    }
    Ok(())
}

/// Walks the marker segments up to the first start-of-frame; returns the offset of its
/// length field (the marker byte is just before it).
fn frame_header(bytes: &[u8]) -> Result<usize, ImageError> {
    let mut at = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return Err(truncated("JPEG"));
        };
        at += 2;
        if marker == 0xD9 || marker == 0xDA {
            // End of image or start of scan: no frame header came first (libjpeg's error too).
            return Err(ImageError::Corrupt("JPEG without a frame header".into()));
        }
        if (0xD0..=0xD8).contains(&marker) || marker == 0x01 {
            continue; // standalone markers have no length
        }
        let length = be_u16(bytes, at).ok_or_else(|| truncated("JPEG"))? as usize;
        let is_frame = (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker);
        if is_frame {
            return Ok(at);
        }
        if length < 2 {
            return Err(ImageError::Corrupt("JPEG segment length".into()));
        }
        at += length;
    }
}
