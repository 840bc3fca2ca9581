//! Format and dimensions from the header alone, checked against the configured bounds before
//! any pixel is decoded (a 60-byte PNG can declare a 100000x100000 image).

pub(crate) mod bmp;
mod bytes;
mod gif;
mod jpeg;
mod png;
mod webp;

use super::ImageError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Bmp,
    WebP,
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
        ImageFormat::Png => png::dimensions(bytes)?,
        ImageFormat::Jpeg => jpeg::dimensions(bytes)?,
        ImageFormat::Gif => gif::dimensions(bytes)?,
        ImageFormat::Bmp => bmp::dimensions(bytes)?,
        ImageFormat::WebP => webp::dimensions(bytes)?,
    };
    check_bounds(width, height, limits)?;
    // After the bounds: the BMP check computes sizes from the (now bounded) dimensions.
    match format {
        ImageFormat::Png => png::check_variant(bytes)?,
        ImageFormat::Jpeg => jpeg::check_variant(bytes)?,
        ImageFormat::Gif | ImageFormat::WebP => {}
        ImageFormat::Bmp => bmp::check(bytes)?,
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
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Ok(ImageFormat::WebP)
    } else {
        Err(ImageError::NotAnImage)
    }
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
        let crc = png::crc32(&bytes[12..]);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes
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
