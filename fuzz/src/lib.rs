//! What the fuzz targets share: the limits they run under and the checks every decoded image
//! must pass. A target only panics (a "crash") when one of these invariants breaks or the code
//! under test panics itself.

use aiocr::engine::{decode_image, probe_image, ImageError, ImageLimits, Pixels};

/// The server's default image bounds: the fuzzer must reach every size the server accepts.
pub fn image_limits() -> ImageLimits {
    ImageLimits::default()
}

/// Decodes `bytes`; a success must agree with the header probe and hold exactly
/// width x height x channels samples (a palette exactly for mode P).
pub fn check_decode(bytes: &[u8]) -> Result<Pixels, ImageError> {
    let limits = image_limits();
    let decoded = decode_image(bytes, &limits);
    match &decoded {
        Ok(pixels) => {
            let info = probe_image(bytes, &limits).expect("a decoded image passes the probe");
            assert_eq!(
                (pixels.width, pixels.height),
                (info.width as usize, info.height as usize)
            );
            assert_eq!(
                pixels.data.len(),
                pixels.width * pixels.height * pixels.mode.channels()
            );
        }
        Err(error) => assert_refusal(error),
    }
    decoded
}

/// Every refusal of an image is one of the contract's image codes (3001, 3003, 3004).
pub fn assert_refusal(error: &ImageError) {
    let code = aiocr::contract::of_image(error).code();
    assert!([3001, 3003, 3004].contains(&code), "{error}");
}

/// Rewrites every complete PNG chunk's CRC so that mutations reach the chunk parsers and
/// the inflater instead of stopping at the checksum (bad CRCs have their own unit tests).
pub fn fix_png_crcs(bytes: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(length) else {
            return;
        };
        if end + 4 > bytes.len() {
            return;
        }
        let crc = crc32(&bytes[at + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

/// CRC-32 (IEEE, reflected), as PNG chunks use; bitwise, as speed does not matter here.
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

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_of_iend() {
        // Every PNG ends with this chunk: 00000000 "IEND" AE426082.
        assert_eq!(super::crc32(b"IEND"), 0xAE42_6082);
    }
}
