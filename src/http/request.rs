//! Request heads: parsed with `httparse` from the front of the connection buffer, with every
//! limit checked before anything is allocated for the request.

use super::ProtocolError;

/// Header count accepted in one request (beyond it: 431).
pub const MAX_HEADER_COUNT: usize = 64;
/// Longest method token accepted. The longest registered method (`UPDATEREDIRECTREF`) has 17
/// bytes; a longer token is garbage, a 400, not a long target's 414.
pub const MAX_METHOD_BYTES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Request line plus all headers, including the blank line.
    pub max_header_bytes: usize,
    /// The request target (path and query).
    pub max_uri_bytes: usize,
    /// The request body after de-chunking.
    pub max_body_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other,
}

impl Method {
    /// The method a name means (anything unknown is `Other`).
    pub fn parse_name(name: &str) -> Method {
        Method::parse(name)
    }

    fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (no Content-Length, no Transfer-Encoding: RFC 9112 §6.3 says length zero).
    Empty,
    Length(usize),
    Chunked,
}

/// The parts of a request head aiocr uses; every other header is skipped without allocating.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The target's path, without the query.
    pub path: String,
    /// The raw query string after `?` (may be empty).
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The entity tags of `If-None-Match` as sent (the console's assets answer 304 when one
    /// is current).
    pub if_none_match: Option<String>,
    /// The headers of the MCP transport (`/mcp`).
    pub mcp: McpHeaders,
}

impl RequestHead {
    /// A head for [`parse_head_into`] to fill.
    pub fn empty() -> RequestHead {
        RequestHead {
            method: Method::Other,
            path: String::new(),
            query: String::new(),
            version_minor: 1,
            framing: Framing::Empty,
            keep_alive: false,
            expect_continue: false,
            authorization: None,
            content_type: None,
            if_none_match: None,
            mcp: McpHeaders::default(),
        }
    }
}

/// The headers the MCP endpoint reads: a browser page's `Origin` (refused unless allowed),
/// `Mcp-Session-Id` and `MCP-Protocol-Version`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct McpHeaders {
    pub origin: Option<String>,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
}

/// Parses one request head from the front of `buf`. `Ok(None)`: not complete yet (read more).
/// `Ok(Some((head, head_len)))`: the head occupies `buf[..head_len]`.
pub fn parse_head(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, usize)>, ProtocolError> {
    let mut head = RequestHead::empty();
    Ok(parse_head_into(buf, limits, &mut head)?.map(|head_len| (head, head_len)))
}

/// [`parse_head`] into a head of an earlier request, whose strings' memory is reused: a
/// connection parses all its requests into one head, so a request whose path and headers
/// fit in the previous one's allocates nothing for them (the path and the token were two of
/// the point path's five allocations per request). `Ok(Some(head_len))`: `head` is this
/// request's; otherwise `head` is left unspecified.
pub fn parse_head_into(
    buf: &[u8],
    limits: &HeadLimits,
    head: &mut RequestHead,
) -> Result<Option<usize>, ProtocolError> {
    // RFC 9112 §2.2: ignore at least one empty line before a request line (some clients
    // send a stray CRLF after a POST body).
    let whole = buf;
    let skipped = leading_blank_lines(buf);
    let buf = &buf[skipped..];
    // Before httparse, which reads a token of any length as the method and, while it lasts,
    // reports only "incomplete" (the limits below would then call it a long target).
    if method_too_long(buf) {
        return Err(ProtocolError::BadRequest);
    }
    // Uninitialised slots: httparse writes the ones it fills and exposes only those, so the
    // 2 KiB of empty headers need not be written for every request (a tenth of the point
    // path's instructions went to this function).
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADER_COUNT];
    let mut request = httparse::Request::new(&mut []);
    let status = match request.parse_with_uninit_headers(buf, &mut headers) {
        Ok(status) => status,
        Err(httparse::Error::TooManyHeaders) => return Err(ProtocolError::HeadersTooLarge),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(ProtocolError::BadRequest),
    };
    let head_len = match status {
        // Judged on the whole buffer: blank lines count against the header limit too.
        httparse::Status::Partial => return partial_verdict(whole, limits),
        httparse::Status::Complete(len) => len,
    };
    // Blank lines before the head count too, as they do while it is incomplete: a head must
    // get the same answer whether it arrived in one read or in many.
    if skipped + head_len > limits.max_header_bytes {
        return Err(ProtocolError::HeadersTooLarge);
    }
    build_head(&request, limits, head)?;
    Ok(Some(skipped + head_len))
}

fn leading_blank_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    while buf[at..].starts_with(b"\r\n") {
        at += 2;
    }
    at
}

/// Whether the method token (up to the first space) is, or has already grown, longer than
/// [`MAX_METHOD_BYTES`].
fn method_too_long(buf: &[u8]) -> bool {
    let window = &buf[..buf.len().min(MAX_METHOD_BYTES + 1)];
    window.len() > MAX_METHOD_BYTES && !window.contains(&b' ')
}

/// httparse reports `Version` for anything but HTTP/1.0 and HTTP/1.1, and also where a
/// target holds a space (the rest of the target is then read as the version). A well-formed
/// `METHOD TARGET HTTP/x.y` line of another version is a 505; anything else is a 400.
fn version_error(buf: &[u8]) -> ProtocolError {
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let line = &buf[..line_end];
    let three_parts = line.iter().filter(|&&b| b == b' ').count() == 2;
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    let looks_like_http = three_parts
        && version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit();
    if looks_like_http {
        ProtocolError::VersionNotSupported
    } else {
        ProtocolError::BadRequest
    }
}

/// An incomplete head that already exceeds a limit is refused now rather than buffered on.
fn partial_verdict(buf: &[u8], limits: &HeadLimits) -> Result<Option<usize>, ProtocolError> {
    let request_line_done = buf.contains(&b'\n');
    // The longest request line a complete head may have: method, target, version, CR.
    let longest_line = MAX_METHOD_BYTES + 1 + limits.max_uri_bytes + " HTTP/1.1\r".len();
    if !request_line_done && buf.len() > longest_line {
        return Err(ProtocolError::UriTooLong);
    }
    if buf.len() > limits.max_header_bytes {
        return Err(ProtocolError::HeadersTooLarge);
    }
    Ok(None)
}

/// Fills `head` from a complete parse, reusing its strings.
fn build_head(
    request: &httparse::Request,
    limits: &HeadLimits,
    head: &mut RequestHead,
) -> Result<(), ProtocolError> {
    let method = Method::parse(request.method.unwrap_or(""));
    let target = request.path.unwrap_or("");
    if target.len() > limits.max_uri_bytes {
        return Err(ProtocolError::UriTooLong);
    }
    if !target.starts_with('/') {
        // Absolute-form and asterisk-form targets are for proxies and OPTIONS; aiocr serves
        // origin-form only.
        return Err(ProtocolError::BadRequest);
    }
    // A byte search: `str::split_once` with a char pattern costs a searcher's set-up, which
    // on a short path is most of the work.
    let (path, query) = match target.bytes().position(|b| b == b'?') {
        Some(at) => (&target[..at], &target[at + 1..]),
        None => (target, ""),
    };
    let version_minor = request.version.unwrap_or(1);
    let mut keep_alive = version_minor == 1;
    let mut expect_continue = false;
    // The optional headers' text, checked as each is met (the last of a repeated one wins).
    let mut authorization = None;
    let mut content_type = None;
    let mut if_none_match = None;
    let mut origin = None;
    let mut session_id = None;
    let mut protocol_version = None;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut has_host = false;
    for header in request.headers.iter() {
        let name = header.name;
        let value = header.value;
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        // The name's length picks the one or two names it can be: a header is compared with
        // at most two known names, not with each in turn.
        match name.len() {
            4 if is("host") => {
                // RFC 9112 §3.2: 400 for more than one Host line or an invalid value (two
                // hosts let a proxy and aiocr disagree about which one the request is for).
                if has_host || !valid_host(value) {
                    return Err(ProtocolError::BadRequest);
                }
                has_host = true;
            }
            6 if is("expect") => {
                expect_continue = trimmed(value).eq_ignore_ascii_case(b"100-continue");
            }
            6 if is("origin") => origin = Some(header_str(value)?),
            10 if is("connection") => apply_connection(&mut keep_alive, value),
            12 if is("content-type") => content_type = Some(header_str(value)?),
            13 if is("authorization") => authorization = Some(header_str(value)?),
            13 if is("if-none-match") => if_none_match = Some(header_str(value)?),
            14 if is("content-length") => {
                let length = parse_content_length(value)?;
                if content_length.is_some_and(|earlier| earlier != length) {
                    return Err(ProtocolError::BadRequest);
                }
                content_length = Some(length);
            }
            14 if is("mcp-session-id") => session_id = Some(header_str(value)?),
            17 if is("transfer-encoding") => {
                if chunked || !trimmed(value).eq_ignore_ascii_case(b"chunked") {
                    // gzip, deflate, or chunked twice: framing aiocr does not implement.
                    return Err(ProtocolError::NotImplemented);
                }
                chunked = true;
            }
            20 if is("mcp-protocol-version") => protocol_version = Some(header_str(value)?),
            _ => {}
        }
    }
    if version_minor == 1 && !has_host {
        // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
        return Err(ProtocolError::BadRequest);
    }
    let framing = match (content_length, chunked) {
        // Both present is the classic request-smuggling setup: refuse rather than pick one.
        (Some(_), true) => return Err(ProtocolError::BadRequest),
        (None, true) if version_minor == 0 => return Err(ProtocolError::BadRequest),
        (None, true) => Framing::Chunked,
        (Some(length), false) if length > limits.max_body_bytes => {
            return Err(ProtocolError::BodyTooLarge)
        }
        (Some(0), false) | (None, false) => Framing::Empty,
        (Some(length), false) => Framing::Length(length),
    };
    // Every field, by name: a field added to the head and not set here does not compile.
    let RequestHead {
        method: head_method,
        path: head_path,
        query: head_query,
        version_minor: head_version_minor,
        framing: head_framing,
        keep_alive: head_keep_alive,
        expect_continue: head_expect_continue,
        authorization: head_authorization,
        content_type: head_content_type,
        if_none_match: head_if_none_match,
        mcp:
            McpHeaders {
                origin: head_origin,
                session_id: head_session_id,
                protocol_version: head_protocol_version,
            },
    } = head;
    *head_method = method;
    replace_text(head_path, path);
    replace_text(head_query, query);
    *head_version_minor = version_minor;
    *head_framing = framing;
    *head_keep_alive = keep_alive;
    *head_expect_continue = expect_continue;
    replace_optional(head_authorization, authorization);
    replace_optional(head_content_type, content_type);
    replace_optional(head_if_none_match, if_none_match);
    replace_optional(head_origin, origin);
    replace_optional(head_session_id, session_id);
    replace_optional(head_protocol_version, protocol_version);
    Ok(())
}

/// Sets `slot` to `text` in the memory it already has (growing it if need be).
fn replace_text(slot: &mut String, text: &str) {
    slot.clear();
    slot.push_str(text);
}

/// Sets an optional header's slot, keeping the string of an earlier request for reuse.
fn replace_optional(slot: &mut Option<String>, text: Option<&str>) {
    match (slot.as_mut(), text) {
        (Some(kept), Some(text)) => replace_text(kept, text),
        (None, Some(text)) => *slot = Some(text.to_owned()),
        (_, None) => *slot = None,
    }
}

fn parse_content_length(value: &[u8]) -> Result<usize, ProtocolError> {
    let digits = trimmed(value);
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::BadRequest);
    }
    // At most 18 ASCII digits: fits in u64 and so in usize on 64-bit targets.
    let text = std::str::from_utf8(digits).map_err(|_| ProtocolError::BadRequest)?;
    text.parse::<usize>().map_err(|_| ProtocolError::BadRequest)
}

/// `uri-host [ ":" port ]` (RFC 3986 characters: reg-name, IP literal, percent escapes),
/// possibly empty.
fn valid_host(value: &[u8]) -> bool {
    // A `match`, not a search of the allowed punctuation for every byte (the dots and colon
    // of `127.0.0.1:8080` made that a tenth of parse_head's instructions).
    trimmed(value).iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            )
    })
}

/// The `Connection` header's say on `keep_alive` (`close`, `keep-alive`; other tokens
/// name hop-by-hop headers and change nothing).
fn apply_connection(keep_alive: &mut bool, value: &[u8]) {
    for token in value.split(|&b| b == b',') {
        let token = trimmed(token);
        if token.eq_ignore_ascii_case(b"close") {
            *keep_alive = false;
        } else if token.eq_ignore_ascii_case(b"keep-alive") {
            *keep_alive = true;
        }
    }
}

/// A header value as text, without surrounding whitespace. httparse admits obs-text (bytes
/// 0x80-0xFF) in values, so they are checked for UTF-8; an ASCII check settles nearly every
/// value in fewer instructions than the general decoder (which was 2 % of the point path's,
/// on its ~200-byte bearer token).
fn header_str(value: &[u8]) -> Result<&str, ProtocolError> {
    let value = trimmed(value);
    if value.is_ascii() {
        // SAFETY: ASCII bytes are UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(value) });
    }
    std::str::from_utf8(value).map_err(|_| ProtocolError::BadRequest)
}

fn trimmed(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |at| at + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_header_bytes: 1024,
        max_uri_bytes: 128,
        max_body_bytes: 4096,
    };

    fn parse_all(bytes: &[u8]) -> Result<Option<(RequestHead, usize)>, ProtocolError> {
        parse_head(bytes, &LIMITS)
    }

    /// Feeding the head byte by byte gives `None` until the last byte, then the same head.
    #[test]
    fn byte_split_heads_parse_identically() {
        let raw = b"POST /v2/report?id=42 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\
Content-Type: application/json\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello";
        let head_end = raw.len() - 5;
        for cut in 0..head_end {
            assert_eq!(parse_all(&raw[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (head, len) = parse_all(raw).unwrap().unwrap();
        assert_eq!(len, head_end);
        assert_eq!(head.method, Method::Post);
        assert_eq!(head.path, "/v2/report");
        assert_eq!(head.query, "id=42");
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.expect_continue && head.keep_alive);
        assert_eq!(head.authorization.as_deref(), Some("Bearer abc"));
        assert_eq!(head.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn pipelined_heads_parse_one_at_a_time() {
        let raw = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (first, len) = parse_all(raw).unwrap().unwrap();
        assert_eq!(first.path, "/a");
        let (second, len2) = parse_all(&raw[len..]).unwrap().unwrap();
        assert_eq!(second.path, "/b");
        assert!(!second.keep_alive);
        assert_eq!(len + len2, raw.len());
    }

    /// A head parsed into the head of an earlier request is the head a fresh parse gives:
    /// nothing of the earlier request stays (its optional headers, its framing, its flags).
    #[test]
    fn a_reused_head_keeps_nothing_of_the_earlier_request() {
        let heads: [&[u8]; 3] = [
            b"POST /v2/upload?x=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n\
Content-Type: text/plain\r\nIf-None-Match: \"e\"\r\nOrigin: http://o\r\nMcp-Session-Id: s\r\n\
MCP-Protocol-Version: v\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            b"GET /a HTTP/1.0\r\n\r\n",
            b"GET /v2/user/point HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bb\r\nConnection: close\r\n\r\n",
        ];
        let mut reused = RequestHead::empty();
        for (round, raw) in heads.iter().chain(heads.iter()).enumerate() {
            let fresh = parse_all(raw).unwrap().unwrap();
            let len = parse_head_into(raw, &LIMITS, &mut reused).unwrap().unwrap();
            assert_eq!((&reused, len), (&fresh.0, fresh.1), "round {round}");
        }
    }

    #[test]
    fn http10_defaults_to_close() {
        let (head, _) = parse_all(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!head.keep_alive);
        let (head, _) = parse_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.keep_alive);
    }

    /// Every malformed head the parser can see, with the contract's protocol status for it
    /// (408 is the connection's timer: see `timeout_is_408_and_closes`; 411 is never sent, as
    /// a request without framing headers has an empty body).
    #[test]
    fn refusals_map_to_contract_statuses() {
        let cases: &[(&[u8], u16)] = &[
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET /\r\nHost: x\r\n\r\n", 400),
            (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
            (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /a b HTTP/2.0\r\nHost: x\r\n\r\n", 400),
            (b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: \xff\xfe\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n", 413),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
            (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505),
        ];
        for (raw, status) in cases {
            let error = parse_all(raw).unwrap_err();
            assert_eq!(error.status(), *status, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn one_host_header_of_any_form_is_accepted() {
        for host in [
            "x",
            "",
            "example.com:8080",
            "[::1]:80",
            "127.0.0.1",
            "a%20b",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert!(parse_all(raw.as_bytes()).unwrap().is_some(), "{host}");
        }
    }

    #[test]
    fn long_method_is_400_not_414_before_and_after_the_line_ends() {
        let mut raw = b"A".repeat(10 * 1024);
        assert_eq!(parse_all(&raw).unwrap_err(), ProtocolError::BadRequest);
        raw.extend(b" / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(parse_all(&raw).unwrap_err(), ProtocolError::BadRequest);
        // Refused as soon as the token is one byte too long, not after buffering more.
        let at_limit = b"A".repeat(MAX_METHOD_BYTES);
        assert_eq!(parse_all(&at_limit).unwrap(), None);
        let over = b"A".repeat(MAX_METHOD_BYTES + 1);
        assert_eq!(parse_all(&over).unwrap_err(), ProtocolError::BadRequest);
        let longest_allowed = format!(
            "{} / HTTP/1.1\r\nHost: x\r\n\r\n",
            "M".repeat(MAX_METHOD_BYTES)
        );
        let (head, _) = parse_all(longest_allowed.as_bytes()).unwrap().unwrap();
        assert_eq!(head.method, Method::Other);
    }

    #[test]
    fn space_in_target_is_400_even_while_incomplete() {
        assert_eq!(
            parse_all(b"GET /a b HTTP/1.1").unwrap_err(),
            ProtocolError::BadRequest
        );
        assert_eq!(
            parse_all(b"GET /a?x=1 2 HTTP/1.1\r\n").unwrap_err(),
            ProtocolError::BadRequest
        );
    }

    #[test]
    fn timeout_is_408_and_closes() {
        let answer = ProtocolError::Timeout.response();
        assert_eq!(answer.status, 408);
        assert!(answer.close);
    }

    #[test]
    fn long_uri_is_414_even_before_the_line_ends() {
        let mut raw = b"GET /".to_vec();
        raw.extend(std::iter::repeat_n(b'a', 200));
        assert_eq!(parse_all(&raw).unwrap_err(), ProtocolError::UriTooLong);
        raw.extend(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(parse_all(&raw).unwrap_err(), ProtocolError::UriTooLong);
    }

    #[test]
    fn large_head_is_431_before_it_completes() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        while raw.len() <= LIMITS.max_header_bytes {
            raw.extend(b"X-Filler: 0123456789\r\n");
        }
        assert_eq!(parse_all(&raw).unwrap_err(), ProtocolError::HeadersTooLarge);
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for _ in 0..MAX_HEADER_COUNT {
            many.extend(b"A: b\r\n");
        }
        many.extend(b"\r\n");
        let roomy = HeadLimits {
            max_header_bytes: 1 << 20,
            ..LIMITS
        };
        assert_eq!(
            parse_head(&many, &roomy).unwrap_err(),
            ProtocolError::HeadersTooLarge
        );
    }

    #[test]
    fn endless_blank_lines_hit_the_header_limit() {
        let raw = b"\r\n".repeat(LIMITS.max_header_bytes);
        assert_eq!(parse_all(&raw).unwrap_err(), ProtocolError::HeadersTooLarge);
        // Complete or not, blank lines and head together are held to the limit.
        let mut padded = b"\r\n".repeat(LIMITS.max_header_bytes / 2);
        padded.extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            parse_all(&padded).unwrap_err(),
            ProtocolError::HeadersTooLarge
        );
        assert_eq!(
            parse_all(&padded[..padded.len() - 1]).unwrap_err(),
            ProtocolError::HeadersTooLarge
        );
    }

    /// The longest request line a complete head may have is not refused while incomplete.
    #[test]
    fn longest_allowed_request_line_is_incomplete_not_414_at_every_cut() {
        let method = "M".repeat(MAX_METHOD_BYTES);
        let target = format!("/{}", "a".repeat(LIMITS.max_uri_bytes - 1));
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, len) = parse_all(raw.as_bytes()).unwrap().unwrap();
        assert_eq!((head.path.len(), len), (LIMITS.max_uri_bytes, raw.len()));
        for cut in 0..len {
            assert_eq!(parse_all(&raw.as_bytes()[..cut]), Ok(None), "cut {cut}");
        }
    }

    /// Transfer-coding names are case-insensitive (RFC 9112 section 7), and so is the
    /// header's name; spaces around the value are not part of it.
    #[test]
    fn chunked_and_empty_framing() {
        for header in [
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: Chunked",
            "Transfer-Encoding: CHUNKED",
            "transfer-encoding:  cHuNkEd \t",
            "TRANSFER-ENCODING: CHUNKED",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n");
            let (head, _) = parse_all(raw.as_bytes()).unwrap().unwrap();
            assert_eq!(head.framing, Framing::Chunked, "{header}");
        }
        let (head, _) = parse_all(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Empty);
        let (head, len) = parse_all(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((head.method, len), (Method::Get, 29));
    }
}
