//! The PNG decoder, with chunk CRCs repaired so that mutations reach the chunk parsers and
//! the inflater (the png crate refuses a bad CRC first).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return;
    }
    let mut bytes = data.to_vec();
    aiocr_fuzz::fix_png_crcs(&mut bytes);
    let _ = aiocr_fuzz::check_decode(&bytes);
});
