//! Urlencoded forms and query strings: whatever parses must survive a round trip through
//! a canonical encoding (every byte but unreserved ones percent-encoded).
#![no_main]

use aiocr::http::form::{parse_urlencoded, percent_decode};
use libfuzzer_sys::fuzz_target;

fn encode(text: &str, out: &mut Vec<u8>) {
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte);
        } else {
            out.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = percent_decode(data);
    let Ok(pairs) = parse_urlencoded(data) else {
        return;
    };
    let mut encoded = Vec::new();
    for (key, value) in &pairs {
        if key.is_empty() && value.is_empty() {
            continue; // "=" alone: a pair the canonical form cannot write (an empty segment)
        }
        encoded.push(b'&');
        encode(key, &mut encoded);
        encoded.push(b'=');
        encode(value, &mut encoded);
    }
    let again = parse_urlencoded(&encoded).expect("a canonical form parses");
    let expected: Vec<_> = pairs
        .into_iter()
        .filter(|(key, value)| !key.is_empty() || !value.is_empty())
        .collect();
    assert_eq!(again, expected);
});
