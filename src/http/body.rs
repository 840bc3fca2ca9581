//! Request bodies: Content-Length and chunked, decoded incrementally from the connection
//! buffer into one owned `Vec<u8>` bounded by the body limit.

//!
//! Chunked framing follows RFC 9112 section 7.1: the coding's name is case-insensitive (the
//! head parser's), chunk extensions (`5;name=value`, `5 ; name="quoted"`) are read past and
//! ignored, and trailer fields are read and dropped. A chunk-size line with its extensions,
//! and the trailer section, are each bounded by the head's limit (`max_header_bytes`): they
//! are header-like lines that must fit the connection's read buffer whole.

use super::{Framing, ProtocolError};

#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    max_body_bytes: usize,
    /// The longest chunk-size line (digits and extensions) and trailer section.
    max_line_bytes: usize,
    /// The declared Content-Length (growth stops there); `None` for chunked bodies.
    declared_bytes: Option<usize>,
    body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Content-Length: bytes still to come.
    Remaining(usize),
    /// Chunked: reading a chunk-size line.
    ChunkSize,
    /// Chunked: bytes of the current chunk still to come.
    ChunkData(usize),
    /// Chunked: the CRLF after a chunk's data.
    ChunkDataEnd,
    /// Chunked: trailer lines after the last chunk, bytes seen so far.
    Trailers(usize),
    Done,
}

/// One decoding step: consumed `n` bytes and can go on, or consumed `n` and needs more input.
enum Step {
    Advance(usize),
    Wait(usize),
}

#[derive(Debug, PartialEq, Eq)]
pub enum BodyProgress {
    /// Consumed this many bytes; more are needed.
    NeedMore(usize),
    /// Consumed this many bytes; the body is complete.
    Complete(usize),
}

impl BodyDecoder {
    /// A decoder of a body framed by `framing`, of at most `max_body_bytes` decoded bytes,
    /// whose chunk-size lines and trailer section are at most `max_line_bytes` each.
    pub fn new(framing: Framing, max_body_bytes: usize, max_line_bytes: usize) -> BodyDecoder {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(length) => {
                assert!(
                    length <= max_body_bytes,
                    "the head parser refuses larger Content-Length"
                );
                State::Remaining(length)
            }
            Framing::Chunked => State::ChunkSize,
        };
        let declared_bytes = match framing {
            Framing::Length(length) => Some(length),
            _ => None,
        };
        // Nothing is allocated before bytes arrive, never from what the head claims: a
        // client that declares 1 MiB and sends 200 bytes costs 200 bytes, not 1 MiB.
        BodyDecoder {
            state,
            max_body_bytes,
            max_line_bytes,
            declared_bytes,
            body: Vec::new(),
        }
    }

    /// The memory the body holds now (its buffer's capacity): what the shard's body budget
    /// counts.
    pub fn held_bytes(&self) -> usize {
        self.body.capacity()
    }

    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// The decoded body; only meaningful once complete.
    pub fn into_body(self) -> Vec<u8> {
        assert!(self.is_complete());
        self.body
    }

    /// Consumes as much of `input` as belongs to this body.
    pub fn feed(&mut self, input: &[u8]) -> Result<BodyProgress, ProtocolError> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            let used = match self.state {
                State::Done => return Ok(BodyProgress::Complete(at)),
                State::Remaining(left) => {
                    self.take_data(rest, left, State::Remaining, State::Done)?
                }
                State::ChunkSize => self.chunk_size_line(rest)?,
                State::ChunkData(left) => {
                    self.take_data(rest, left, State::ChunkData, State::ChunkDataEnd)?
                }
                State::ChunkDataEnd => self.chunk_data_end(rest)?,
                State::Trailers(seen) => self.trailers(rest, seen)?,
            };
            match used {
                Step::Advance(used) => at += used,
                Step::Wait(used) => return Ok(BodyProgress::NeedMore(at + used)),
            }
        }
    }

    /// Copies up to `left` data bytes.
    fn take_data(
        &mut self,
        rest: &[u8],
        left: usize,
        more: fn(usize) -> State,
        finished: State,
    ) -> Result<Step, ProtocolError> {
        let take = left.min(rest.len());
        if self.body.len() + take > self.max_body_bytes {
            return Err(ProtocolError::BodyTooLarge);
        }
        self.grow_for(take);
        self.body.extend_from_slice(&rest[..take]);
        if take == left {
            self.state = finished;
            Ok(Step::Advance(take))
        } else {
            self.state = more(left - take);
            Ok(Step::Wait(take))
        }
    }

    /// Makes room for `extra` more bytes: at least doubling (amortised copies), but never
    /// past the declared length (a body ends in an allocation of its exact size) nor, for a
    /// chunked body, past the body limit (so one body never holds more than the limit).
    fn grow_for(&mut self, extra: usize) {
        let needed = self.body.len() + extra;
        if needed <= self.body.capacity() {
            return;
        }
        let doubled = self.body.capacity() * 2;
        let target = doubled
            .min(self.declared_bytes.unwrap_or(self.max_body_bytes))
            .max(needed);
        self.body.reserve_exact(target - self.body.len());
    }

    /// A line split across reads is not consumed: the caller keeps its bytes and feeds them
    /// again with what follows.
    fn chunk_size_line(&mut self, rest: &[u8]) -> Result<Step, ProtocolError> {
        let Some(line_end) = find_crlf(rest) else {
            if line_so_far(rest) > self.max_line_bytes {
                return Err(ProtocolError::BadRequest);
            }
            return Ok(Step::Wait(0));
        };
        // The same bound whether the line arrived whole or in pieces (extensions included).
        if line_end > self.max_line_bytes {
            return Err(ProtocolError::BadRequest);
        }
        let line = &rest[..line_end];
        let size_text = line.split(|&b| b == b';').next().unwrap_or(b"");
        let size_text = trim_spaces(size_text);
        if size_text.is_empty()
            || size_text.len() > 15
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(ProtocolError::BadRequest);
        }
        let text = std::str::from_utf8(size_text).map_err(|_| ProtocolError::BadRequest)?;
        let size = usize::from_str_radix(text, 16).map_err(|_| ProtocolError::BadRequest)?;
        if self.body.len().saturating_add(size) > self.max_body_bytes {
            return Err(ProtocolError::BodyTooLarge);
        }
        self.state = if size == 0 {
            State::Trailers(0)
        } else {
            State::ChunkData(size)
        };
        Ok(Step::Advance(line_end + 2))
    }

    fn chunk_data_end(&mut self, rest: &[u8]) -> Result<Step, ProtocolError> {
        if rest.len() < 2 {
            if rest.first().is_some_and(|&b| b != b'\r') {
                return Err(ProtocolError::BadRequest);
            }
            return Ok(Step::Wait(0));
        }
        if &rest[..2] != b"\r\n" {
            return Err(ProtocolError::BadRequest);
        }
        self.state = State::ChunkSize;
        Ok(Step::Advance(2))
    }

    fn trailers(&mut self, rest: &[u8], seen: usize) -> Result<Step, ProtocolError> {
        let Some(line_end) = find_crlf(rest) else {
            if seen + line_so_far(rest) > self.max_line_bytes {
                return Err(ProtocolError::HeadersTooLarge);
            }
            return Ok(Step::Wait(0));
        };
        if line_end == 0 {
            self.state = State::Done;
        } else {
            if seen + line_end > self.max_line_bytes {
                return Err(ProtocolError::HeadersTooLarge);
            }
            self.state = State::Trailers(seen + line_end + 2);
        }
        Ok(Step::Advance(line_end + 2))
    }
}

/// The length of a line that has no CRLF yet: a last `\r` may be the start of its CRLF, so
/// it does not count (otherwise a line exactly at a limit would pass whole and fail split).
fn line_so_far(rest: &[u8]) -> usize {
    rest.strip_suffix(b"\r").unwrap_or(rest).len()
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|pair| pair == b"\r\n")
}

fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound of a chunk-size line and of the trailer section in these tests.
    const MAX_LINE_BYTES: usize = 1024;

    /// Feeds `raw` split at every possible point into two or three reads, the way a
    /// connection buffer does: unconsumed bytes stay and are fed again with the next read.
    fn decode_split(
        framing: Framing,
        raw: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, usize), ProtocolError> {
        let mut decoder = BodyDecoder::new(framing, 64, MAX_LINE_BYTES);
        let mut pending: Vec<u8> = Vec::new();
        let mut consumed_total = 0;
        let mut previous = 0;
        for &cut in cuts.iter().chain(std::iter::once(&raw.len())) {
            pending.extend_from_slice(&raw[previous..cut]);
            previous = cut;
            match decoder.feed(&pending)? {
                BodyProgress::Complete(used) => {
                    consumed_total += used;
                    return Ok((decoder.into_body(), consumed_total));
                }
                BodyProgress::NeedMore(used) => {
                    consumed_total += used;
                    pending.drain(..used);
                }
            }
        }
        panic!("body incomplete after all input");
    }

    #[test]
    fn content_length_split_anywhere() {
        let raw = b"0123456789NEXT";
        for cut in 0..=10 {
            let (body, used) = decode_split(Framing::Length(10), raw, &[cut]).unwrap();
            assert_eq!((body.as_slice(), used), (&b"0123456789"[..], 10));
        }
    }

    /// Memory follows the bytes that arrived, not the length the head declares, and a
    /// complete body sits in an allocation of its exact size.
    #[test]
    fn a_declared_length_allocates_only_as_bytes_arrive() {
        let declared = 1024 * 1024;
        let mut decoder = BodyDecoder::new(Framing::Length(declared), declared, MAX_LINE_BYTES);
        assert_eq!(decoder.held_bytes(), 0);
        decoder.feed(&[7; 100]).unwrap();
        assert_eq!(decoder.held_bytes(), 100);
        decoder.feed(&[7; 60]).unwrap();
        assert_eq!(decoder.held_bytes(), 200, "doubles");
        let piece = vec![7; 50_000];
        decoder.feed(&piece).unwrap();
        assert!(
            decoder.body.capacity() < 2 * 50_100,
            "{}",
            decoder.body.capacity()
        );
        let mut fed = 50_160;
        while fed < declared {
            let take = piece.len().min(declared - fed);
            decoder.feed(&piece[..take]).unwrap();
            fed += take;
        }
        assert!(decoder.is_complete());
        assert_eq!(decoder.body.capacity(), declared);
    }

    #[test]
    fn chunked_split_anywhere() {
        let raw = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nGET";
        let end = raw.len() - 3;
        for first in 0..end {
            for second in first..end {
                let (body, used) = decode_split(Framing::Chunked, raw, &[first, second]).unwrap();
                assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
                assert_eq!(used, end, "cuts {first} {second}");
            }
        }
    }

    /// Chunk extensions (RFC 9112 section 7.1.1) are read past and ignored, in every form
    /// the grammar allows: a name alone, a token or quoted value (with `;` and `=` inside the
    /// quotes), several, spaces around `;` and `=`, on the last chunk too; and uppercase hex.
    #[test]
    fn chunk_extensions_are_ignored() {
        let raw = b"3;name=value\r\nabc\r\n\
2 ; flag\r\nde\r\n\
1;a=\"q;u=o\\\"te\";b = 2\r\nf\r\n\
A;x\r\n0123456789\r\n\
0;last=chunk\r\n\r\n";
        let end = raw.len();
        for cut in 0..end {
            let (body, used) = decode_split(Framing::Chunked, raw, &[cut]).unwrap();
            assert_eq!(body, b"abcdef0123456789", "cut {cut}");
            assert_eq!(used, end);
        }
    }

    /// Trailers are read and dropped, up to the line bound (431 beyond), whole or split.
    #[test]
    fn trailer_section_is_bounded() {
        let line = format!("X-Trailer: {}\r\n", "t".repeat(100));
        let lines = MAX_LINE_BYTES / line.len();
        let within = format!("1\r\na\r\n0\r\n{}\r\n", line.repeat(lines));
        let beyond = format!("1\r\na\r\n0\r\n{}\r\n", line.repeat(lines + 1));
        for cut in [0, 7, within.len() / 2] {
            let (body, used) = decode_split(Framing::Chunked, within.as_bytes(), &[cut]).unwrap();
            assert_eq!((body.as_slice(), used), (&b"a"[..], within.len()));
            assert_eq!(
                decode_split(Framing::Chunked, beyond.as_bytes(), &[cut]).unwrap_err(),
                ProtocolError::HeadersTooLarge
            );
        }
    }

    #[test]
    fn chunked_errors() {
        assert_eq!(
            decode_split(Framing::Chunked, b"zz\r\n", &[]).unwrap_err(),
            ProtocolError::BadRequest
        );
        assert_eq!(
            decode_split(Framing::Chunked, b"2\r\nabX\r\n", &[]).unwrap_err(),
            ProtocolError::BadRequest
        );
        assert_eq!(
            decode_split(Framing::Chunked, b"41\r\n", &[]).unwrap_err(),
            ProtocolError::BodyTooLarge
        );
        let two_chunks = b"20\r\n01234567890123456789012345678901\r\n21\r\n";
        // A chunk line with long extensions is refused whole or split, at the same length.
        let mut at_limit = b"1;".to_vec();
        at_limit.resize(MAX_LINE_BYTES, b'x');
        let mut over = at_limit.clone();
        over.push(b'x');
        for cut in [0, 1, MAX_LINE_BYTES - 1, MAX_LINE_BYTES] {
            let mut ok = at_limit.clone();
            ok.extend(b"\r\na\r\n0\r\n\r\n");
            assert_eq!(decode_split(Framing::Chunked, &ok, &[cut]).unwrap().0, b"a");
            let mut bad = over.clone();
            bad.extend(b"\r\na\r\n0\r\n\r\n");
            assert_eq!(
                decode_split(Framing::Chunked, &bad, &[cut]).unwrap_err(),
                ProtocolError::BadRequest,
                "cut {cut}"
            );
        }
        assert_eq!(
            decode_split(Framing::Chunked, two_chunks, &[5]).unwrap_err(),
            ProtocolError::BodyTooLarge
        );
    }
}
