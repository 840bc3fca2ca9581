//! BMP's headers as Pillow's BmpImagePlugin reads them: the 14-byte file header, then the DIB
//! header (a 12-byte OS/2 core header with u16 sides, or a BITMAPINFOHEADER and its
//! successors with i32 sides, a negative height meaning top-down rows), the bit masks and
//! the palette's place. The decoder (decode/bmp.rs) reads its pixels through [`BmpHeader`].

use super::bytes::{le_u16, le_u32, truncated};
use crate::engine::ImageError;

const BI_RGB: u32 = 0;
const BI_BITFIELDS: u32 = 3;

pub(crate) struct BmpHeader {
    pub width: usize,
    pub height: usize,
    pub top_down: bool,
    pub bits: usize,
    pub colors: usize,
    /// Bytes per palette entry: 3 in OS/2 core files, else 4.
    pub palette_entry_size: usize,
    pub palette_offset: usize,
    pub pixel_offset: usize,
    pub has_alpha_mask: bool,
}

/// The sides alone, before they are bounded.
pub(super) fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let header_size = le_u32(bytes, 14).ok_or_else(|| truncated("BMP"))?;
    if header_size == 12 {
        let width = le_u16(bytes, 18).ok_or_else(|| truncated("BMP"))?;
        let height = le_u16(bytes, 20).ok_or_else(|| truncated("BMP"))?;
        return Ok((width as u32, height as u32));
    }
    let width = le_u32(bytes, 18).ok_or_else(|| truncated("BMP"))? as i32;
    let height = le_u32(bytes, 22).ok_or_else(|| truncated("BMP"))? as i32;
    if width < 0 {
        return Err(ImageError::Corrupt("negative BMP width".into()));
    }
    Ok((width as u32, height.unsigned_abs()))
}

/// Whether aiocr decodes this BMP, from its headers and length alone: a supported variant,
/// the palette and every row present, so that the server refuses such a file before
/// charging for it. The caller has bounded the dimensions first.
pub(super) fn check(bytes: &[u8]) -> Result<(), ImageError> {
    let header = BmpHeader::read(bytes)?;
    header.row_stride(bytes.len())?;
    if header.is_palette() {
        header.palette_table(bytes)?;
    }
    Ok(())
}

impl BmpHeader {
    pub(crate) fn read(bytes: &[u8]) -> Result<BmpHeader, ImageError> {
        let truncated = || truncated("BMP");
        let pixel_offset = le_u32(bytes, 10).ok_or_else(truncated)? as usize;
        let header_size = le_u32(bytes, 14).ok_or_else(truncated)? as usize;
        if header_size == 12 {
            let bits = le_u16(bytes, 24).ok_or_else(truncated)? as usize;
            return Ok(BmpHeader {
                width: le_u16(bytes, 18).ok_or_else(truncated)? as usize,
                height: le_u16(bytes, 20).ok_or_else(truncated)? as usize,
                top_down: false,
                bits,
                colors: 1 << bits.min(8),
                palette_entry_size: 3,
                palette_offset: 14 + 12,
                pixel_offset,
                has_alpha_mask: false,
            });
        }
        if header_size < 40 {
            return Err(ImageError::Unsupported(format!(
                "BMP header of {header_size} bytes"
            )));
        }
        let raw_height = le_u32(bytes, 22).ok_or_else(truncated)? as i32;
        let bits = le_u16(bytes, 28).ok_or_else(truncated)? as usize;
        let compression = le_u32(bytes, 30).ok_or_else(truncated)?;
        let colors_used = le_u32(bytes, 46).ok_or_else(truncated)? as usize;
        // BITFIELDS masks follow a 40-byte header, or sit inside a larger one.
        let masks_at = 14 + 40;
        let has_masks = compression == BI_BITFIELDS;
        let mask = |i: usize| le_u32(bytes, masks_at + 4 * i).ok_or_else(truncated);
        let has_alpha_mask = if has_masks {
            let (r, g, b) = (mask(0)?, mask(1)?, mask(2)?);
            if bits != 32 || (r, g, b) != (0xFF0000, 0xFF00, 0xFF) {
                return Err(ImageError::Unsupported(
                    "BMP bit masks other than 8-8-8(-8)".into(),
                ));
            }
            header_size >= 56 && mask(3)? == 0xFF00_0000
        } else if compression != BI_RGB {
            return Err(ImageError::Unsupported(format!(
                "BMP compression {compression}"
            )));
        } else {
            false
        };
        let palette_offset = 14
            + header_size
            + if has_masks && header_size == 40 {
                12
            } else {
                0
            };
        Ok(BmpHeader {
            width: le_u32(bytes, 18).ok_or_else(truncated)? as usize,
            height: raw_height.unsigned_abs() as usize,
            top_down: raw_height < 0,
            bits,
            colors: if colors_used == 0 {
                1 << bits.min(8)
            } else {
                colors_used
            },
            palette_entry_size: 4,
            palette_offset,
            pixel_offset,
            has_alpha_mask,
        })
    }

    pub(crate) fn is_palette(&self) -> bool {
        matches!(self.bits, 1 | 4 | 8)
    }

    /// Bytes per row (rows are padded to 4 bytes), once the file is known to hold every row.
    pub(crate) fn row_stride(&self, file_len: usize) -> Result<usize, ImageError> {
        if !matches!(self.bits, 1 | 4 | 8 | 24 | 32) {
            return Err(ImageError::Unsupported(format!("{}-bit BMP", self.bits)));
        }
        let too_large = || ImageError::Corrupt("BMP pixel data size overflows".into());
        let row_bits = self.width.checked_mul(self.bits).ok_or_else(too_large)?;
        let stride = (row_bits.checked_add(31).ok_or_else(too_large)? >> 3) & !3;
        let needed = stride
            .checked_mul(self.height)
            .and_then(|size| size.checked_add(self.pixel_offset))
            .ok_or_else(too_large)?;
        if file_len < needed {
            return Err(ImageError::Corrupt("truncated BMP pixel data".into()));
        }
        Ok(stride)
    }

    /// The palette's bytes: 1 to 256 entries, all inside the file.
    pub(crate) fn palette_table<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], ImageError> {
        if self.colors == 0 || self.colors > 256 {
            return Err(ImageError::Unsupported(format!(
                "BMP palette of {} colours",
                self.colors
            )));
        }
        let end = self.palette_offset + self.palette_entry_size * self.colors;
        bytes
            .get(self.palette_offset..end)
            .ok_or_else(|| ImageError::Corrupt("truncated BMP palette".into()))
    }
}
