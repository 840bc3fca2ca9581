//! PNG's header: the IHDR chunk, which PNG requires to come first.

use super::bytes::{be_u32, truncated};
use crate::engine::ImageError;

/// IHDR is the first chunk: length(4) "IHDR"(4) width(4) height(4).
pub(super) fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
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
/// specification.
pub(super) fn check_variant(bytes: &[u8]) -> Result<(), ImageError> {
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
        (0, 1 | 2 | 4 | 8 | 16) | (3, 1 | 2 | 4 | 8) | (2 | 4 | 6, 8 | 16) => Ok(()),
        _ => corrupt(&format!("colour type {color} at {depth} bits")),
    }
}

/// CRC-32 as PNG chunks carry it (IEEE, reflected); bitwise: the probe checks 17 bytes.
pub(super) fn crc32(bytes: &[u8]) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_of_iend() {
        // Every PNG ends with this chunk: 00000000 "IEND" AE426082.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }
}
