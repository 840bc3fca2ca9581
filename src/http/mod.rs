//! aiocr's HTTP/1.1 layer: incremental request parsing on `httparse`, body framing
//! (Content-Length and chunked), response serialisation, and the small body formats the API
//! accepts (query strings, urlencoded forms, multipart). Nothing here does I/O: the server's
//! connection loop feeds bytes in and writes the bytes out, so every piece is unit-testable on
//! byte-split inputs.

pub mod body;
pub mod date;
pub mod form;
pub mod multipart;
pub mod request;
pub mod response;

pub use body::{BodyDecoder, BodyProgress};
pub use request::{
    parse_head, parse_head_into, Framing, HeadLimits, McpHeaders, Method, RequestHead,
};
pub use response::Response;

/// A protocol-level refusal: the request cannot be answered with the JSON envelope because it
/// could not be parsed or framed. Each maps to one status of the contract's protocol list;
/// the connection is closed after it (its byte stream can no longer be trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// Unparseable request line or headers, conflicting framing headers, bad chunk syntax.
    BadRequest,
    /// The client did not send a full request head or body in time.
    Timeout,
    /// A Transfer-Encoding other than `chunked`.
    NotImplemented,
    /// The declared or received body exceeds the body limit.
    BodyTooLarge,
    /// The request target exceeds the URI limit.
    UriTooLong,
    /// The request head exceeds the header limit (bytes or count).
    HeadersTooLarge,
    /// Not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

impl ProtocolError {
    pub fn status(self) -> u16 {
        match self {
            ProtocolError::BadRequest => 400,
            ProtocolError::Timeout => 408,
            ProtocolError::NotImplemented => 501,
            ProtocolError::BodyTooLarge => 413,
            ProtocolError::UriTooLong => 414,
            ProtocolError::HeadersTooLarge => 431,
            ProtocolError::VersionNotSupported => 505,
        }
    }

    /// The plain-text answer (protocol refusals are not JSON: the client may not even speak
    /// the API). Always closes the connection.
    pub fn response(self) -> Response {
        let reason = response::reason_phrase(self.status());
        let mut answer = Response::plain(self.status(), format!("{reason}\n").into_bytes());
        answer.close = true;
        answer
    }
}
