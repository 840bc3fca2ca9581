//! Streaming HTTP/1.1 response parser: httparse for the head, then Content-Length, chunked or
//! read-until-close framing. Bodies are skipped byte by byte unless the caller wants them (the
//! aiocr scenarios read the JSON answer), so a large static file costs no buffering.

use std::fmt;

/// Longest response head accepted; a head that does not fit is a protocol error.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers parsed in one response head.
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMeta {
    pub status: u16,
    /// The server said it will close (Connection: close, HTTP/1.0 without keep-alive, or a
    /// body delimited by the close itself).
    pub closes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    BadHead,
    HeadTooLarge,
    BadFraming,
    BodyTooLarge,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ParseError::BadHead => "unparseable response head",
            ParseError::HeadTooLarge => "response head too large",
            ParseError::BadFraming => "bad body framing",
            ParseError::BodyTooLarge => "response body larger than the keep limit",
        };
        f.write_str(text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body { remaining_bytes: u64 },
    ChunkSize,
    ChunkData { remaining_bytes: u64 },
    ChunkDataEnd,
    Trailers,
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    NeedMore,
    Done(ResponseMeta),
}

/// What the caller asks of one response.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// The request was HEAD: no body follows whatever the headers say.
    pub head_request: bool,
    /// Keep the body (up to `max_body_bytes`) in the caller's buffer.
    pub keep_body: bool,
    pub max_body_bytes: usize,
}

pub struct ResponseParser {
    state: State,
    meta: ResponseMeta,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser {
            state: State::Head,
            meta: ResponseMeta {
                status: 0,
                closes: false,
            },
        }
    }
}

impl ResponseParser {
    /// True between responses (nothing of the next one has been consumed).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head
    }

    /// Consumes bytes from `input`; returns how many were consumed and whether a response
    /// ended. Call again with the rest while it consumes or finishes something.
    pub fn feed(
        &mut self,
        input: &[u8],
        expect: Expect,
        body: &mut Vec<u8>,
    ) -> Result<(usize, Progress), ParseError> {
        match self.state {
            State::Head => self.feed_head(input, expect, body),
            State::Body { remaining_bytes } => {
                let used = take(input, remaining_bytes, expect, body)?;
                let left = remaining_bytes - used as u64;
                if left == 0 {
                    return Ok((used, self.finish()));
                }
                self.state = State::Body {
                    remaining_bytes: left,
                };
                Ok((used, Progress::NeedMore))
            }
            State::ChunkSize => match httparse::parse_chunk_size(input) {
                Ok(httparse::Status::Complete((used, 0))) => {
                    self.state = State::Trailers;
                    Ok((used, Progress::NeedMore))
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    self.state = State::ChunkData {
                        remaining_bytes: size,
                    };
                    Ok((used, Progress::NeedMore))
                }
                Ok(httparse::Status::Partial) if input.len() < 1024 => Ok((0, Progress::NeedMore)),
                _ => Err(ParseError::BadFraming),
            },
            State::ChunkData { remaining_bytes } => {
                let used = take(input, remaining_bytes, expect, body)?;
                let left = remaining_bytes - used as u64;
                self.state = if left == 0 {
                    State::ChunkDataEnd
                } else {
                    State::ChunkData {
                        remaining_bytes: left,
                    }
                };
                Ok((used, Progress::NeedMore))
            }
            State::ChunkDataEnd => {
                if input.len() < 2 {
                    return Ok((0, Progress::NeedMore));
                }
                if &input[..2] != b"\r\n" {
                    return Err(ParseError::BadFraming);
                }
                self.state = State::ChunkSize;
                Ok((2, Progress::NeedMore))
            }
            State::Trailers => match find_crlf(input) {
                // An empty line ends the trailers (and the response).
                Some(0) => Ok((2, self.finish())),
                Some(at) => Ok((at + 2, Progress::NeedMore)),
                None if input.len() < MAX_HEAD_BYTES => Ok((0, Progress::NeedMore)),
                None => Err(ParseError::HeadTooLarge),
            },
            State::UntilClose => {
                let used = take(input, u64::MAX, expect, body)?;
                Ok((used, Progress::NeedMore))
            }
        }
    }

    /// The peer closed the connection: ends a close-delimited body, else reports whether a
    /// response was cut short.
    pub fn on_eof(&mut self) -> Option<ResponseMeta> {
        if self.state == State::UntilClose {
            self.finish();
            return Some(self.meta);
        }
        None
    }

    fn finish(&mut self) -> Progress {
        self.state = State::Head;
        Progress::Done(self.meta)
    }

    fn feed_head(
        &mut self,
        input: &[u8],
        expect: Expect,
        body: &mut Vec<u8>,
    ) -> Result<(usize, Progress), ParseError> {
        body.clear();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_bytes = match response.parse(input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if input.len() < MAX_HEAD_BYTES => {
                return Ok((0, Progress::NeedMore))
            }
            Ok(httparse::Status::Partial) => return Err(ParseError::HeadTooLarge),
            Err(_) => return Err(ParseError::BadHead),
        };
        let status = response.code.ok_or(ParseError::BadHead)?;
        // An interim answer (100 Continue) is skipped: the real one follows.
        if (100..200).contains(&status) {
            return Ok((head_bytes, Progress::NeedMore));
        }
        let framing = Framing::of(&response)?;
        self.meta = ResponseMeta {
            status,
            closes: framing.closes,
        };
        let no_body = expect.head_request || status == 204 || status == 304;
        if no_body || (!framing.chunked && framing.content_length == Some(0)) {
            return Ok((head_bytes, self.finish()));
        }
        self.state = match (framing.chunked, framing.content_length) {
            (true, _) => State::ChunkSize,
            (false, Some(length)) => State::Body {
                remaining_bytes: length,
            },
            (false, None) => {
                self.meta.closes = true;
                State::UntilClose
            }
        };
        Ok((head_bytes, Progress::NeedMore))
    }
}

struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    closes: bool,
}

impl Framing {
    fn of(response: &httparse::Response) -> Result<Framing, ParseError> {
        let mut framing = Framing {
            content_length: None,
            chunked: false,
            // HTTP/1.0 closes unless it says keep-alive.
            closes: response.version == Some(0),
        };
        for header in response.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let text = std::str::from_utf8(header.value).map_err(|_| ParseError::BadFraming)?;
                let length = text.trim().parse().map_err(|_| ParseError::BadFraming)?;
                if framing.content_length.is_some_and(|seen| seen != length) {
                    return Err(ParseError::BadFraming);
                }
                framing.content_length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                framing.chunked = contains_token(header.value, b"chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                if contains_token(header.value, b"close") {
                    framing.closes = true;
                } else if contains_token(header.value, b"keep-alive") {
                    framing.closes = false;
                }
            }
        }
        Ok(framing)
    }
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token))
}

fn find_crlf(input: &[u8]) -> Option<usize> {
    input.windows(2).position(|w| w == b"\r\n")
}

/// Takes up to `limit` body bytes from `input`, keeping them if asked.
fn take(input: &[u8], limit: u64, expect: Expect, body: &mut Vec<u8>) -> Result<usize, ParseError> {
    let used = input
        .len()
        .min(usize::try_from(limit).unwrap_or(usize::MAX));
    if expect.keep_body {
        if body.len() + used > expect.max_body_bytes {
            return Err(ParseError::BodyTooLarge);
        }
        body.extend_from_slice(&input[..used]);
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Expect = Expect {
        head_request: false,
        keep_body: true,
        max_body_bytes: 1 << 20,
    };

    /// Feeds `wire` in pieces of `step` bytes the way a socket would; returns the metas and
    /// bodies of every complete response.
    fn parse_all(wire: &[u8], step: usize) -> Vec<(ResponseMeta, Vec<u8>)> {
        let mut parser = ResponseParser::default();
        let mut pending = Vec::new();
        let mut body = Vec::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            pending.extend_from_slice(piece);
            let mut start = 0;
            loop {
                let (used, progress) = parser.feed(&pending[start..], KEEP, &mut body).unwrap();
                start += used;
                if let Progress::Done(meta) = progress {
                    out.push((meta, body.clone()));
                } else if used == 0 {
                    break;
                }
            }
            pending.drain(..start);
        }
        if let Some(meta) = parser.on_eof() {
            out.push((meta, body.clone()));
        }
        out
    }

    #[test]
    fn content_length_and_chunked_in_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-T: 1\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\nConnection: close\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let got = parse_all(wire, step);
            assert_eq!(got.len(), 4, "step {step}");
            assert_eq!(got[0].0.status, 200);
            assert_eq!(got[0].1, b"hello");
            assert_eq!(got[1].0.status, 404);
            assert_eq!(got[1].1, b"abcde");
            assert_eq!(got[2].0.status, 204);
            assert_eq!(got[3].0.status, 201);
            assert!(got[3].0.closes);
            assert!(!got[0].0.closes);
        }
    }

    #[test]
    fn body_until_close() {
        let got = parse_all(b"HTTP/1.0 200 OK\r\n\r\nall of it", 4);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"all of it");
        assert!(got[0].0.closes);
    }

    #[test]
    fn refuses_garbage_and_conflicting_lengths() {
        let mut parser = ResponseParser::default();
        let mut body = Vec::new();
        assert_eq!(
            parser.feed(b"garbage\r\n\r\n", KEEP, &mut body),
            Err(ParseError::BadHead)
        );
        let mut parser = ResponseParser::default();
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parser.feed(two, KEEP, &mut body),
            Err(ParseError::BadFraming)
        );
    }

    #[test]
    fn head_request_has_no_body() {
        let mut parser = ResponseParser::default();
        let mut body = Vec::new();
        let expect = Expect {
            head_request: true,
            ..KEEP
        };
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
        let (used, progress) = parser.feed(wire, expect, &mut body).unwrap();
        assert_eq!(used, wire.len());
        assert!(matches!(progress, Progress::Done(_)));
    }
}
