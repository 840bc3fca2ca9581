//! The EXIF orientation OpenCV's `imdecode` applies unless told not to (imgcodecs:
//! `ExifReader` in exif.cpp, `ExifTransform` in loadsave.cpp). OpenCV reads the first APP1
//! segment of a JPEG (skipping 6 bytes, "Exif\0\0", without checking them) and the eXIf
//! chunk of a PNG, then only the entries of IFD0; an orientation other than 2..=8 changes
//! nothing.

use super::Mat;

const ORIENTATION_TAG: u16 = 0x0112;
/// An IFD entry: tag, type, count, value or offset.
const ENTRY_SIZE: usize = 12;

/// Reads a TIFF-structured EXIF block the way OpenCV's `ExifReader` does: byte order from
/// the first two bytes ("II" little-endian, anything else big-endian), the 0x2A mark, then
/// IFD0's entries in order. OpenCV stops at the first entry whose value it cannot read (an
/// exception ends its loop), so an unreadable entry before the orientation hides it.
struct TiffReader<'a> {
    data: &'a [u8],
    little: bool,
}

impl TiffReader<'_> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let bytes = [*self.data.get(at)?, *self.data.get(at.checked_add(1)?)?];
        Some(if self.little {
            u16::from_le_bytes(bytes)
        } else {
            u16::from_be_bytes(bytes)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        })
    }

    /// `count` unsigned rationals at the offset stored in the entry at `at`.
    fn rationals(&self, at: usize, count: usize) -> Option<()> {
        let start = self.u32_at(at + 8)? as usize;
        (0..count * 2).try_for_each(|i| self.u32_at(start.checked_add(4 * i)?).map(|_| ()))
    }

    /// Whether OpenCV reads the value of the entry at `at` without an exception.
    fn entry_readable(&self, tag: u16, at: usize) -> Option<()> {
        match tag {
            // strings: IMAGE_DESCRIPTION, MAKE, MODEL, SOFTWARE, DATE_TIME, COPYRIGHT. OpenCV
            // takes data of at most 4 bytes from the absolute offset 8 (its bug, kept).
            0x010E | 0x010F | 0x0110 | 0x0131 | 0x0132 | 0x8298 => {
                let size = self.u32_at(at + 4)? as usize;
                let start = if size > 4 {
                    self.u32_at(at + 8)? as usize
                } else {
                    8
                };
                (start.checked_add(size)? <= self.data.len()).then_some(())
            }
            0x011A | 0x011B => self.rationals(at, 1),
            0x013E => self.rationals(at, 2),
            0x013F | 0x0214 => self.rationals(at, 6),
            0x0211 => self.rationals(at, 3),
            0x0112 | 0x0128 | 0x0213 => self.u16_at(at + 8).map(|_| ()),
            _ => Some(()),
        }
    }
}

/// The orientation entry of IFD0, if OpenCV would find it.
pub fn orientation(tiff: &[u8]) -> Option<u16> {
    let little = tiff.first() == Some(&b'I') && tiff.get(1).is_none_or(|&b| b == b'I');
    let reader = TiffReader { data: tiff, little };
    if reader.u16_at(2)? != 0x2A {
        return None;
    }
    let ifd = reader.u32_at(4)? as usize;
    let entries = reader.u16_at(ifd)? as usize;
    for i in 0..entries {
        let at = ifd.checked_add(2 + i * ENTRY_SIZE)?;
        let tag = reader.u16_at(at)?;
        reader.entry_readable(tag, at)?;
        if tag == ORIENTATION_TAG {
            return reader.u16_at(at + 8);
        }
    }
    None
}

/// The EXIF block of a JPEG: the payload of its first APP1 segment after 6 bytes, if any
/// (markers are read up to the start of the scan, as libjpeg's saved-marker list holds them).
pub fn jpeg_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 2; // after SOI
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return None; // start of scan or end of image: no more markers
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            at += 2; // markers without a length
            continue;
        }
        let length = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        let payload = bytes.get(at + 4..at + 2 + length.max(2))?;
        if marker == 0xE1 {
            return payload.get(6..).filter(|tiff| !tiff.is_empty());
        }
        at += 2 + length;
    }
    None
}

/// The payload of a PNG's eXIf chunk (before or after the image data), if any.
pub fn png_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 8; // after the signature
    while at + 8 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let kind = &bytes[at + 4..at + 8];
        let payload = bytes.get(at + 8..at.checked_add(8)?.checked_add(length)?)?;
        if kind == b"eXIf" {
            return Some(payload).filter(|p| !p.is_empty());
        }
        if kind == b"IEND" {
            return None;
        }
        at += 12 + length; // length, type, data, CRC
    }
    None
}

/// `ExifTransform`: the image turned upright for EXIF orientations 2..=8.
pub fn apply_orientation(image: Mat, orientation: u16) -> Mat {
    match orientation {
        2 => flip(&image, true, false),
        3 => flip(&image, true, true),
        4 => flip(&image, false, true),
        5 => transpose(&image),
        6 => flip(&transpose(&image), true, false),
        7 => flip(&transpose(&image), true, true),
        8 => flip(&transpose(&image), false, true),
        _ => image,
    }
}

fn flip(image: &Mat, horizontal: bool, vertical: bool) -> Mat {
    let (w, h, cn) = (image.width, image.height, image.channels);
    let mut out = Vec::with_capacity(image.data.len());
    for y in 0..h {
        let sy = if vertical { h - 1 - y } else { y };
        for x in 0..w {
            let sx = if horizontal { w - 1 - x } else { x };
            out.extend_from_slice(&image.data[(sy * w + sx) * cn..][..cn]);
        }
    }
    Mat::new(w, h, cn, out)
}

fn transpose(image: &Mat) -> Mat {
    let (w, h, cn) = (image.width, image.height, image.channels);
    let mut out = Vec::with_capacity(image.data.len());
    for x in 0..w {
        for y in 0..h {
            out.extend_from_slice(&image.data[(y * w + x) * cn..][..cn]);
        }
    }
    Mat::new(h, w, cn, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF header with one IFD0 entry: orientation `value`.
    fn tiff_with_orientation(value: u16) -> Vec<u8> {
        let mut tiff = b"II\x2a\x00\x08\x00\x00\x00\x01\x00".to_vec();
        tiff.extend_from_slice(&ORIENTATION_TAG.to_le_bytes());
        tiff.extend_from_slice(&[3, 0, 1, 0, 0, 0]);
        tiff.extend_from_slice(&value.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        tiff
    }

    #[test]
    fn reads_the_orientation_of_ifd0() {
        assert_eq!(orientation(&tiff_with_orientation(6)), Some(6));
        assert_eq!(orientation(b"II\x2b\x00"), None);
        // Truncated anywhere: no orientation, no panic.
        let tiff = tiff_with_orientation(3);
        for cut in 0..tiff.len() {
            let _ = orientation(&tiff[..cut]);
        }
    }

    #[test]
    fn finds_exif_in_jpeg_and_png_containers() {
        let tiff = tiff_with_orientation(8);
        let mut jpeg = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xe1".to_vec();
        jpeg.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        jpeg.extend_from_slice(b"Exif\0\0");
        jpeg.extend_from_slice(&tiff);
        jpeg.extend_from_slice(b"\xff\xda\x00\x02");
        assert_eq!(jpeg_exif(&jpeg), Some(tiff.as_slice()));

        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&(tiff.len() as u32).to_be_bytes());
        png.extend_from_slice(b"eXIf");
        png.extend_from_slice(&tiff);
        png.extend_from_slice(&[0; 4]);
        assert_eq!(png_exif(&png), Some(tiff.as_slice()));
        for cut in 0..png.len() {
            let _ = png_exif(&png[..cut]);
            let _ = jpeg_exif(&jpeg[..cut.min(jpeg.len())]);
        }
    }

    #[test]
    fn orientations_turn_the_image_as_opencv_does() {
        // 2 x 3 image with pixel values = index; checked against cv2.imdecode of a JPEG-less
        // equivalent: flip(1) mirrors columns, transpose swaps axes.
        let image = Mat::new(3, 2, 1, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(
            apply_orientation(image.clone(), 1).data,
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(
            apply_orientation(image.clone(), 2).data,
            vec![2, 1, 0, 5, 4, 3]
        );
        assert_eq!(
            apply_orientation(image.clone(), 3).data,
            vec![5, 4, 3, 2, 1, 0]
        );
        assert_eq!(
            apply_orientation(image.clone(), 4).data,
            vec![3, 4, 5, 0, 1, 2]
        );
        let five = apply_orientation(image.clone(), 5);
        assert_eq!(
            (five.width, five.height, five.data),
            (2, 3, vec![0, 3, 1, 4, 2, 5])
        );
        assert_eq!(
            apply_orientation(image.clone(), 6).data,
            vec![3, 0, 4, 1, 5, 2]
        );
        assert_eq!(
            apply_orientation(image.clone(), 7).data,
            vec![5, 2, 4, 1, 3, 0]
        );
        assert_eq!(apply_orientation(image, 8).data, vec![2, 5, 1, 4, 0, 3]);
    }
}
