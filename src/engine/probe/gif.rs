//! GIF's header: the logical screen descriptor.

use super::bytes::{le_u16, truncated};
use crate::engine::ImageError;

/// The logical screen descriptor follows the 6-byte signature. Nothing else in it decides
/// whether the file decodes.
pub(super) fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let width = le_u16(bytes, 6).ok_or_else(|| truncated("GIF"))?;
    let height = le_u16(bytes, 8).ok_or_else(|| truncated("GIF"))?;
    Ok((width as u32, height as u32))
}
