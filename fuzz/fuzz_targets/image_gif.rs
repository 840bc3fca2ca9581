//! The GIF decoder (first frame, as palette or gray).
//! Inputs without the format's magic bytes are skipped: the probe target covers sniffing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !data.starts_with(b"GIF8") {
        return;
    }
    let _ = aiocr_fuzz::check_decode(data);
});
