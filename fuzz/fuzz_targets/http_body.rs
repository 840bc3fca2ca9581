//! Body framing (Content-Length and chunked): decoding the input fed all at once and fed in
//! reads of 1 to 16 bytes (unconsumed bytes kept and fed again, as the connection does) must
//! give the same body, the same consumed length, or the same refusal.
#![no_main]

use aiocr::http::{BodyDecoder, BodyProgress, Framing, ProtocolError};
use libfuzzer_sys::fuzz_target;

const MAX_BODY: usize = 512;
/// The bound of a chunk-size line and of the trailer section (small, so inputs reach it).
const MAX_LINE: usize = 64;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Complete { body: Vec<u8>, used: usize },
    Incomplete,
    Refused(ProtocolError),
}

fn decode(framing: Framing, input: &[u8], read_size: usize) -> Outcome {
    let mut decoder = BodyDecoder::new(framing, MAX_BODY, MAX_LINE);
    let mut pending: Vec<u8> = Vec::new();
    let mut used_total = 0;
    for read in input.chunks(read_size) {
        pending.extend_from_slice(read);
        match decoder.feed(&pending) {
            Err(error) => return Outcome::Refused(error),
            Ok(BodyProgress::Complete(used)) => {
                assert!(used <= pending.len());
                let body = decoder.into_body();
                assert!(body.len() <= MAX_BODY);
                return Outcome::Complete {
                    body,
                    used: used_total + used,
                };
            }
            Ok(BodyProgress::NeedMore(used)) => {
                assert!(used <= pending.len());
                used_total += used;
                pending.drain(..used);
            }
        }
    }
    // An empty body is complete before any byte arrives.
    if decoder.is_complete() {
        return Outcome::Complete {
            body: decoder.into_body(),
            used: used_total,
        };
    }
    Outcome::Incomplete
}

fuzz_target!(|data: &[u8]| {
    let [mode, length, input @ ..] = data else {
        return;
    };
    let framing = match mode % 3 {
        0 => Framing::Chunked,
        1 => Framing::Length(1 + *length as usize * MAX_BODY / 256),
        _ => Framing::Empty,
    };
    let whole = decode(framing, input, input.len().max(1));
    let split = decode(framing, input, 1 + (mode / 3) as usize % 16);
    assert_eq!(whole, split);
});
