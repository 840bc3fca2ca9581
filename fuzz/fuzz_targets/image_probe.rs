//! The header probe on any bytes: a success is within the limits it was given.
#![no_main]

use aiocr::engine::probe_image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = aiocr_fuzz::image_limits();
    match probe_image(data, &limits) {
        Ok(info) => {
            assert!(info.width >= 1 && info.height >= 1);
            assert!(info.width <= limits.max_side && info.height <= limits.max_side);
            assert!(info.width as u64 * info.height as u64 <= limits.max_pixels);
        }
        Err(error) => aiocr_fuzz::assert_refusal(&error),
    }
});
