//! The request fields of every protocol (`/v2`, 2captcha, ddddocr-fastapi): the first byte
//! picks the body's content type, the bytes up to the first newline are the query, the rest
//! is the body; aiocr::server::fuzzing::read_fields reads them as each protocol's handlers do.
#![no_main]

use aiocr::server::fuzzing::read_fields;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=b"),
    Some("text/plain"),
    Some("multipart/form-data"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let (query, body) = match rest.iter().position(|&byte| byte == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&rest[..0], rest),
    };
    read_fields(&String::from_utf8_lossy(query), content_type, body);
});
