//! Format and dimensions from the header alone, checked against the configured bounds before
//! any pixel is decoded (a 60-byte PNG can declare a 100000x100000 image).

use super::decode::bmp;
use super::ImageError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Bmp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// Bounds checked before any pixel is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// width x height of the file's image.
    pub max_pixels: u64,
    /// Either side of the file's image.
    pub max_side: u32,
    /// Width of the model input after resizing (a 4096x16 image would become 16384 wide).
    pub max_model_width: usize,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_pixels: 2_000_000,
            max_side: 4096,
            max_model_width: 4096,
        }
    }
}

/// Reads only the header: the format, the dimensions checked against `limits`, and whatever
/// else the header decides (a variant the decoders refuse, a file too short for what its
/// header declares), so that the server refuses such a file before charging for it.
pub fn probe_image(bytes: &[u8], limits: &ImageLimits) -> Result<ImageInfo, ImageError> {
    let format = sniff(bytes)?;
    let (width, height) = match format {
        ImageFormat::Png => png_dimensions(bytes)?,
        ImageFormat::Jpeg => jpeg_dimensions(bytes)?,
        ImageFormat::Gif => gif_dimensions(bytes)?,
        ImageFormat::Bmp => bmp_dimensions(bytes)?,
    };
    check_bounds(width, height, limits)?;
    // After the bounds: the BMP check computes sizes from the (now bounded) dimensions.
    match format {
        ImageFormat::Png => png_variant(bytes)?,
        ImageFormat::Jpeg => jpeg_variant(bytes)?,
        // Nothing else in a GIF's screen descriptor decides whether it decodes.
        ImageFormat::Gif => {}
        ImageFormat::Bmp => bmp::check_header(bytes)?,
    }
    Ok(ImageInfo {
        format,
        width,
        height,
    })
}

fn check_bounds(width: u32, height: u32, limits: &ImageLimits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt(format!("{width}x{height} image")));
    }
    let pixels = width as u64 * height as u64;
    if width > limits.max_side || height > limits.max_side || pixels > limits.max_pixels {
        return Err(ImageError::DimensionsOutOfBounds { width, height });
    }
    Ok(())
}

/// The format from the magic bytes (what Pillow's `_accept` functions check).
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(ImageFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Ok(ImageFormat::Gif)
    } else if bytes.starts_with(b"BM") {
        Ok(ImageFormat::Bmp)
    } else {
        Err(ImageError::NotAnImage)
    }
}

fn truncated(what: &str) -> ImageError {
    ImageError::Corrupt(format!("truncated {what} header"))
}

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// IHDR is the first chunk: length(4) "IHDR"(4) width(4) height(4).
fn png_dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    match bytes.get(12..16) {
        Some(b"IHDR") => {}
        Some(_) => return Err(ImageError::Corrupt("PNG's first chunk is not IHDR".into())),
        None => return Err(truncated("PNG")),
    }
    let width = be_u32(bytes, 16).ok_or_else(|| truncated("PNG"))?;
    let height = be_u32(bytes, 20).ok_or_else(|| truncated("PNG"))?;
    Ok((width, height))
}

/// IHDR's fields after the size: bit depth, colour type, compression, filter, interlace; then
/// its CRC. Pillow checks the CRC and knows the same (depth, colour type) pairs as the PNG
/// specification, except 16-bit gray, which it opens as I;16 and aiocr does not decode.
fn png_variant(bytes: &[u8]) -> Result<(), ImageError> {
    let corrupt = |what: &str| Err(ImageError::Corrupt(format!("PNG {what}")));
    let ihdr = bytes.get(8..33).ok_or_else(|| truncated("PNG"))?;
    if ihdr[..4] != [0, 0, 0, 13] {
        return corrupt("IHDR length");
    }
    if crc32(&ihdr[4..21]) != u32::from_be_bytes(ihdr[21..25].try_into().expect("4 bytes")) {
        return corrupt("IHDR CRC");
    }
    let [depth, color, compression, filter, interlace] = ihdr[16..21] else {
        unreachable!("a 5-byte slice")
    };
    if compression != 0 || filter != 0 || interlace > 1 {
        return corrupt("IHDR compression, filter or interlace method");
    }
    match (color, depth) {
        (0, 16) => Err(ImageError::Unsupported("16-bit grayscale PNG".into())),
        (0, 1 | 2 | 4 | 8) | (3, 1 | 2 | 4 | 8) | (2 | 4 | 6, 8 | 16) => Ok(()),
        _ => corrupt(&format!("colour type {color} at {depth} bits")),
    }
}

/// CRC-32 as PNG chunks carry it (IEEE, reflected); bitwise: the probe checks 17 bytes.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn jpeg_dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let at = jpeg_frame_header(bytes)?;
    let height = be_u16(bytes, at + 3).ok_or_else(|| truncated("JPEG"))?;
    let width = be_u16(bytes, at + 5).ok_or_else(|| truncated("JPEG"))?;
    Ok((width as u32, height as u32))
}

/// The start-of-frame's process, precision and components: libjpeg-turbo's 8-bit decoder
/// does not do hierarchical (differential) JPEG or other precisions, and aiocr does not
/// decode CMYK/YCCK (4 components) as Pillow opens them (mode CMYK).
fn jpeg_variant(bytes: &[u8]) -> Result<(), ImageError> {
    let at = jpeg_frame_header(bytes)?;
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
        1 | 3 => {}
        4 => return Err(ImageError::Unsupported("CMYK JPEG".into())),
        n => return Err(ImageError::Unsupported(format!("JPEG with {n} components"))),
    }
    if length != 8 + 3 * components as usize {
        return Err(ImageError::Corrupt("JPEG frame header length".into()));
    }
    Ok(())
}

/// Walks the marker segments up to the first start-of-frame; returns the offset of its
/// length field (the marker byte is just before it).
fn jpeg_frame_header(bytes: &[u8]) -> Result<usize, ImageError> {
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

/// The logical screen descriptor follows the 6-byte signature.
fn gif_dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let width = le_u16(bytes, 6).ok_or_else(|| truncated("GIF"))?;
    let height = le_u16(bytes, 8).ok_or_else(|| truncated("GIF"))?;
    Ok((width as u32, height as u32))
}

/// 14-byte file header, then the DIB header: 12-byte OS/2 core header (u16 sides) or a
/// BITMAPINFOHEADER and its successors (i32 sides; a negative height means top-down rows).
fn bmp_dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG signature and a complete IHDR (8-bit RGB), nothing after it.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&bytes[12..]);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn crc32_of_iend() {
        // Every PNG ends with this chunk: 00000000 "IEND" AE426082.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn refuses_huge_declared_dimensions_from_the_header_alone() {
        let limits = ImageLimits::default();
        let err = probe_image(&png_header(100_000, 100_000), &limits).unwrap_err();
        assert_eq!(
            err,
            ImageError::DimensionsOutOfBounds {
                width: 100_000,
                height: 100_000
            }
        );
        // Sides within 4096 but 4096 x 1000 pixels > 2,000,000.
        assert!(probe_image(&png_header(4096, 1000), &limits).is_err());
        assert_eq!(
            probe_image(&png_header(160, 60), &limits).unwrap().width,
            160
        );
    }

    #[test]
    fn classifies_junk() {
        let limits = ImageLimits::default();
        assert_eq!(probe_image(b"", &limits).unwrap_err(), ImageError::Empty);
        assert_eq!(
            probe_image(b"hello world", &limits).unwrap_err(),
            ImageError::NotAnImage
        );
        assert!(matches!(
            probe_image(b"\x89PNG\r\n\x1a\n", &limits),
            Err(ImageError::Corrupt(_))
        ));
        assert!(matches!(
            probe_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0], &limits),
            Err(ImageError::Corrupt(_))
        ));
        assert!(matches!(
            probe_image(b"GIF89a\x01", &limits),
            Err(ImageError::Corrupt(_))
        ));
        assert!(matches!(
            probe_image(b"BM\0\0", &limits),
            Err(ImageError::Corrupt(_))
        ));
        assert!(matches!(
            probe_image(&png_header(0, 10), &limits),
            Err(ImageError::Corrupt(_))
        ));
    }
}
