//! The BMP decoder (uncompressed 1/4/8/24/32-bit).
//! Inputs without the format's magic bytes are skipped: the probe target covers sniffing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !data.starts_with(b"BM") {
        return;
    }
    let _ = aiocr_fuzz::check_decode(data);
});
