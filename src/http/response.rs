//! Responses: status, content type, extra headers, body; serialised with `Date`,
//! `Content-Length` and `Connection` always present.

use super::date;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Headers beyond the ones every answer carries (e.g. `Allow`, `Retry-After`).
    pub extra_headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this answer.
    pub close: bool,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "application/json",
            extra_headers: Vec::new(),
            body,
            close: false,
        }
    }

    pub fn plain(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra_headers: Vec::new(),
            body,
            close: false,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.extra_headers.push((name, value));
        self
    }

    /// An answer without content: 202 (a message taken), 204 (done, nothing to say). A 204
    /// has no Content-Length either (RFC 9110 §8.6); a 202 says its length is 0.
    pub fn empty(status: u16) -> Response {
        assert!(matches!(status, 202 | 204), "only 202 and 204 are empty");
        Response {
            status,
            content_type: "",
            extra_headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// A 304 to a conditional GET whose entity tag is current: the caller adds `ETag` and
    /// the caching headers.
    pub fn not_modified() -> Response {
        Response {
            status: 304,
            content_type: "",
            extra_headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// Appends the serialised answer to `out`. `head_only` omits the body (HEAD) but keeps
    /// its Content-Length, as RFC 9110 §9.3.2 asks. A 304 has neither content nor its
    /// metadata: no Content-Type, no Content-Length (which would have to be the 200's length,
    /// RFC 9110 §8.6), no body.
    pub fn write_to(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason_phrase(self.status).as_bytes());
        out.extend_from_slice(b"\r\nServer: aiocr\r\nDate: ");
        date::append_now(out);
        let has_content = !matches!(self.status, 204 | 304);
        assert!(
            has_content || self.body.is_empty(),
            "a 204 or 304 has no body"
        );
        if has_content {
            if !self.content_type.is_empty() {
                out.extend_from_slice(b"\r\nContent-Type: ");
                out.extend_from_slice(self.content_type.as_bytes());
            }
            out.extend_from_slice(b"\r\nContent-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(self.body.len()).as_bytes());
        }
        for (name, value) in &self.extra_headers {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
        }
        if keep_alive && !self.close {
            out.extend_from_slice(b"\r\nConnection: keep-alive\r\n\r\n");
        } else {
            out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        }
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        302 => "Found",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_head_and_body() {
        let answer = Response::json(405, b"{}".to_vec()).with_header("Allow", "GET, HEAD".into());
        let mut out = Vec::new();
        answer.write_to(&mut out, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("\r\nContent-Length: 2\r\n"));
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"));
        assert!(text.contains("\r\nDate: ") && text.contains(" GMT\r\n"));
        assert!(text.ends_with("Connection: keep-alive\r\n\r\n{}"));
        let mut head_only = Vec::new();
        answer.write_to(&mut head_only, true, false);
        let text = String::from_utf8(head_only).unwrap();
        assert!(
            text.ends_with("Connection: close\r\n\r\n") && text.contains("Content-Length: 2\r\n")
        );
    }

    #[test]
    fn not_modified_has_no_content_headers() {
        let answer = Response::not_modified().with_header("ETag", "\"abc\"".into());
        let mut out = Vec::new();
        answer.write_to(&mut out, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{text}");
        assert!(!text.contains("Content-Length") && !text.contains("Content-Type"));
        assert!(text.ends_with("ETag: \"abc\"\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn empty_answers_say_202_with_length_0_and_204_without() {
        let mut out = Vec::new();
        Response::empty(202).write_to(&mut out, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 202 Accepted\r\n"), "{text}");
        assert!(text.contains("Content-Length: 0\r\n") && !text.contains("Content-Type"));
        let mut out = Vec::new();
        Response::empty(204).write_to(&mut out, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"), "{text}");
        assert!(!text.contains("Content-Length") && !text.contains("Content-Type"));
    }
}
