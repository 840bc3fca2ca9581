//! multipart/form-data: the first byte gives the boundary's length, then the boundary, then
//! the body. Parts that parse lie inside the body, and a canonical re-encoding of them parses
//! back to the same names, file names, content types and data. The content type's boundary
//! parameter is fuzzed on the same bytes.
#![no_main]

use aiocr::http::multipart::{boundary, parse, Part};
use libfuzzer_sys::fuzz_target;

/// RFC 2046's `bchars`.
fn is_bchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&byte)
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn encode(parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("form-data; name={}", quoted(&part.name));
        if let Some(filename) = &part.filename {
            disposition.push_str(&format!("; filename={}", quoted(filename)));
        }
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
        if let Some(content_type) = &part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(found) = boundary(text) {
            assert!(!found.is_empty() && found.len() <= 70);
        }
    }
    let Some((&length, rest)) = data.split_first() else {
        return;
    };
    let length = 1 + length as usize % 70;
    if rest.len() < length {
        return;
    }
    let (boundary, body) = rest.split_at(length);
    let Ok(boundary) = std::str::from_utf8(boundary) else {
        return;
    };
    let Ok(parts) = parse(body, boundary) else {
        return;
    };
    let body_range = body.as_ptr_range();
    for part in &parts {
        let range = part.data.as_ptr_range();
        assert!(body_range.start <= range.start && range.end <= body_range.end);
    }
    if !boundary.bytes().all(is_bchar) {
        return; // the round trip below assumes a boundary RFC 2046 allows
    }
    let encoded = encode(&parts, boundary);
    let again = parse(&encoded, boundary).expect("a canonical body parses");
    assert_eq!(again, parts);
});
