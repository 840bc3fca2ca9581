//! The JPEG decoder (libjpeg-turbo behind the header probe).
//! Inputs without the format's magic bytes are skipped: the probe target covers sniffing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return;
    }
    let _ = aiocr_fuzz::check_decode(data);
});
