//! The request head parser on any bytes. A head that parses must parse identically from its
//! own bytes alone (nothing after it was read) and be "incomplete" at every shorter cut (a
//! connection that reads it in pieces sees the same request).
#![no_main]

use aiocr::http::{parse_head, Framing, HeadLimits};
use libfuzzer_sys::fuzz_target;

/// Small limits, so that every limit's edge is within the fuzzer's reach.
const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 1024,
    max_uri_bytes: 256,
    max_body_bytes: 4096,
};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((head, len))) = parse_head(data, &LIMITS) else {
        return;
    };
    assert!(len <= data.len() && len <= LIMITS.max_header_bytes);
    assert!(head.path.starts_with('/'));
    assert!(head.path.len() + head.query.len() <= LIMITS.max_uri_bytes);
    if let Framing::Length(length) = head.framing {
        assert!((1..=LIMITS.max_body_bytes).contains(&length));
    }
    assert_eq!(
        parse_head(&data[..len], &LIMITS),
        Ok(Some((head.clone(), len)))
    );
    for cut in [len - 1, len / 2, data[0] as usize % len] {
        assert_eq!(parse_head(&data[..cut], &LIMITS), Ok(None), "cut at {cut}");
    }
});
