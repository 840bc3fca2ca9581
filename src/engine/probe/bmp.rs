//! BMP's headers as Pillow's BmpImagePlugin reads them: the 14-byte file header, then the DIB
//! header (a 12-byte OS/2 core header with u16 sides, or a BITMAPINFOHEADER and its
//! successors with i32 sides, a negative height meaning top-down rows), the bit masks and
//! the palette's place, and how the pixels are stored (Pillow's decoder and raw mode for them).
//! The decoder (decode/bmp.rs) reads its pixels through [`BmpHeader`].

use super::bytes::{le_u16, le_u32, truncated};
use crate::engine::ImageError;

const BI_RGB: u32 = 0;
const BI_RLE8: u32 = 1;
const BI_RLE4: u32 = 2;
const BI_BITFIELDS: u32 = 3;

/// How the pixels are stored, as BmpImagePlugin decides it from the depth, the compression
/// and the bit masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Storage {
    /// 1/4/8-bit palette indices, rows padded to 4 bytes.
    Indexed,
    /// Runs of 8-bit (RLE8) or 4-bit (RLE4) palette indices (Pillow's BmpRleDecoder).
    Rle { rle4: bool },
    /// 16-bit little-endian pixels, blue in the low 5 bits, then green in `green_bits` (5:
    /// Pillow's "BGR;15", 6: "BGR;16"), then red in 5.
    Packed16 { green_bits: u32 },
    /// 24/32-bit pixels, one byte per letter of Pillow's raw mode (B, G, R, A; X is padding).
    Bytes(&'static str),
}

impl Storage {
    /// From the compression, depth and masks (red, green, blue, alpha), or why Pillow refuses.
    fn of(compression: u32, bits: usize, masks: [u32; 4]) -> Result<Storage, ImageError> {
        Ok(match (compression, bits) {
            (BI_RGB, 1 | 4 | 8) => Storage::Indexed,
            (BI_RGB, 16) => Storage::Packed16 { green_bits: 5 },
            (BI_RGB, 24) => Storage::Bytes("BGR"),
            (BI_RGB, 32) => Storage::Bytes("BGRX"),
            (BI_RLE8, 8) => Storage::Rle { rle4: false },
            (BI_RLE4, 4) => Storage::Rle { rle4: true },
            (BI_BITFIELDS, 16 | 24 | 32) => Storage::bitfields(bits, masks)?,
            (BI_RGB | BI_RLE8 | BI_RLE4 | BI_BITFIELDS, _) => {
                return Err(ImageError::Unsupported(format!(
                    "{bits}-bit BMP with compression {compression}"
                )))
            }
            _ => {
                return Err(ImageError::Unsupported(format!(
                    "BMP compression {compression}"
                )))
            }
        })
    }

    /// BmpImagePlugin's SUPPORTED bit field layouts and their raw modes (MASK_MODES); the
    /// alpha mask only counts for 32 bits.
    fn bitfields(bits: usize, [r, g, b, a]: [u32; 4]) -> Result<Storage, ImageError> {
        Ok(match (bits, r, g, b, a) {
            (16, 0xF800, 0x7E0, 0x1F, _) => Storage::Packed16 { green_bits: 6 },
            (16, 0x7C00, 0x3E0, 0x1F, _) => Storage::Packed16 { green_bits: 5 },
            (24, 0xFF_0000, 0xFF00, 0xFF, _) => Storage::Bytes("BGR"),
            (32, 0xFF_0000, 0xFF00, 0xFF, 0) => Storage::Bytes("BGRX"),
            (32, 0xFF00_0000, 0xFF_0000, 0xFF00, 0) => Storage::Bytes("XBGR"),
            (32, 0xFF00_0000, 0xFF00, 0xFF, 0) => Storage::Bytes("BGXR"),
            (32, 0xFF00_0000, 0xFF_0000, 0xFF00, 0xFF) => Storage::Bytes("ABGR"),
            (32, 0xFF, 0xFF00, 0xFF_0000, 0xFF00_0000) => Storage::Bytes("RGBA"),
            (32, 0xFF_0000, 0xFF00, 0xFF, 0xFF00_0000) => Storage::Bytes("BGRA"),
            (32, 0xFF00_0000, 0xFF00, 0xFF, 0xFF_0000) => Storage::Bytes("BGAR"),
            (32, 0, 0, 0, 0) => Storage::Bytes("BGRA"),
            _ => {
                return Err(ImageError::Unsupported(format!(
                    "{bits}-bit BMP bit masks {r:#x} {g:#x} {b:#x} {a:#x}"
                )))
            }
        })
    }
}

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
    pub storage: Storage,
    /// The DIB header's size (12, 40, 52, 56, 108, 124...): OpenCV reads bit masks by it.
    pub dib_size: usize,
    /// Compression BI_BITFIELDS: the masks decided `storage`.
    pub bitfields: bool,
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
    if header.is_palette() {
        header.palette_table(bytes)?;
    }
    match header.storage {
        // Runs have no fixed length: only decoding finds that they stop short.
        Storage::Rle { .. } if header.pixel_offset >= bytes.len() => {
            Err(ImageError::Corrupt("BMP without pixel data".into()))
        }
        Storage::Rle { .. } => Ok(()),
        _ => header.row_stride(bytes.len()).map(|_| ()),
    }
}

impl BmpHeader {
    pub(crate) fn read(bytes: &[u8]) -> Result<BmpHeader, ImageError> {
        let truncated = || truncated("BMP");
        let pixel_offset = le_u32(bytes, 10).ok_or_else(truncated)? as usize;
        let header_size = le_u32(bytes, 14).ok_or_else(truncated)? as usize;
        if header_size == 12 {
            let bits = le_u16(bytes, 24).ok_or_else(truncated)? as usize;
            let colors = 1 << bits.min(8);
            return Ok(BmpHeader {
                width: le_u16(bytes, 18).ok_or_else(truncated)? as usize,
                height: le_u16(bytes, 20).ok_or_else(truncated)? as usize,
                top_down: false,
                bits,
                colors,
                palette_entry_size: 3,
                palette_offset: 14 + 12,
                pixel_offset: pillow_pixel_offset(pixel_offset, header_size, bits, 26, 3 * colors),
                storage: Storage::of(BI_RGB, bits, [0; 4])?,
                dib_size: header_size,
                bitfields: false,
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
        // BITFIELDS masks follow a 40-byte header, or sit inside a larger one; the alpha mask
        // only inside a header of 56 bytes or more (Pillow takes 0 otherwise).
        let masks_at = 14 + 40;
        let has_masks = compression == BI_BITFIELDS;
        let mask = |i: usize| le_u32(bytes, masks_at + 4 * i).ok_or_else(truncated);
        let masks = if has_masks {
            let alpha = if header_size >= 56 { mask(3)? } else { 0 };
            [mask(0)?, mask(1)?, mask(2)?, alpha]
        } else {
            [0; 4]
        };
        let storage = Storage::of(compression, bits, masks)?;
        let palette_offset = 14
            + header_size
            + if has_masks && header_size == 40 {
                12
            } else {
                0
            };
        let colors = if colors_used == 0 {
            1 << bits.min(8)
        } else {
            colors_used
        };
        Ok(BmpHeader {
            width: le_u32(bytes, 18).ok_or_else(truncated)? as usize,
            height: raw_height.unsigned_abs() as usize,
            top_down: raw_height < 0,
            bits,
            colors,
            palette_entry_size: 4,
            palette_offset,
            pixel_offset: pillow_pixel_offset(
                pixel_offset,
                header_size,
                bits,
                palette_offset,
                4usize.saturating_mul(colors),
            ),
            storage,
            dib_size: header_size,
            bitfields: has_masks,
        })
    }

    pub(crate) fn is_palette(&self) -> bool {
        matches!(self.storage, Storage::Indexed | Storage::Rle { .. })
    }

    /// Bytes per row (rows are padded to 4 bytes), once the file is known to hold every row.
    pub(crate) fn row_stride(&self, file_len: usize) -> Result<usize, ImageError> {
        assert!(
            !matches!(self.storage, Storage::Rle { .. }),
            "run-length rows have no stride"
        );
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

/// Where Pillow starts reading pixels: the file header's offset, except that an offset
/// pointing right after the DIB header of a palette image (a writer that forgot the palette)
/// means after the palette, and an offset of 0 means after what was read (`offset or
/// fp.tell()` in BmpImagePlugin: the headers, the masks, and a palette image's palette).
fn pillow_pixel_offset(
    offset: usize,
    header_size: usize,
    bits: usize,
    palette_offset: usize,
    palette_size: usize,
) -> usize {
    let palette_size = if bits <= 8 { palette_size } else { 0 };
    if offset == 0 || (offset == 14 + header_size && bits <= 8) {
        palette_offset.saturating_add(palette_size)
    } else {
        offset
    }
}
