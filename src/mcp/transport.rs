//! The Streamable HTTP transport's rules for one request, decided from its headers: the
//! `Origin` check against DNS rebinding, the `MCP-Protocol-Version` header, the
//! `Mcp-Session-Id` header's presence. Each refusal is an HTTP status and a JSON-RPC error.

use super::jsonrpc::{RpcError, INVALID_REQUEST};
use super::version;
use serde_json::json;

/// A request the transport refuses before its message runs.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportRefusal {
    pub status: u16,
    pub error: RpcError,
}

fn refused(status: u16, message: impl Into<String>) -> TransportRefusal {
    TransportRefusal {
        status,
        error: RpcError::new(INVALID_REQUEST, message),
    }
}

/// A browser page sends `Origin`; agents do not. A page of another site reaching this
/// server through a rebound DNS name would send its own origin, so an origin is accepted
/// only when the operator listed it (`mcp_allowed_origins`): 403 otherwise. Requests
/// without `Origin` are not from a page and pass.
pub fn check_origin(origin: Option<&str>, allowed: &[String]) -> Result<(), TransportRefusal> {
    let Some(origin) = origin else {
        return Ok(());
    };
    if allowed
        .iter()
        .any(|listed| listed.eq_ignore_ascii_case(origin.trim()))
    {
        return Ok(());
    }
    Err(refused(403, format!("origin {origin:?} is not allowed")))
}

/// The version a request in a session speaks: its header's, which must be served and be the
/// session's (400 otherwise), or the session's when the header is absent.
pub fn session_version(
    header: Option<&str>,
    session: &'static str,
) -> Result<&'static str, TransportRefusal> {
    let Some(text) = header else {
        return Ok(session);
    };
    let requested = check_version_header(Some(text))?;
    if requested != session {
        let message = format!("MCP-Protocol-Version {text:?} is not the session's ({session})");
        return Err(refused(400, message));
    }
    Ok(session)
}

/// A request's `MCP-Protocol-Version` before a session exists: absent means the version
/// that predates the header; one not served is 400 with the versions that are.
pub fn check_version_header(header: Option<&str>) -> Result<&'static str, TransportRefusal> {
    let Some(text) = header else {
        return Ok(version::WITHOUT_HEADER);
    };
    version::served(text.trim()).ok_or_else(|| {
        let mut refusal = refused(400, format!("unsupported MCP-Protocol-Version {text:?}"));
        refusal.error = refusal
            .error
            .with_data(json!({ "supported": version::SUPPORTED, "requested": text }));
        refusal
    })
}

/// Every request but `initialize` belongs to a session: 400 without the header.
pub fn missing_session() -> TransportRefusal {
    refused(400, "Mcp-Session-Id required: send initialize first")
}

/// A session id this server does not hold (ended, idle too long, never issued, or another
/// user's): 404, and the client starts a new session.
pub fn unknown_session() -> TransportRefusal {
    refused(404, "session not found: send initialize for a new session")
}

/// A body that is not JSON (the transport's POST carries `application/json`).
pub fn not_json() -> TransportRefusal {
    refused(415, "Content-Type must be application/json")
}

/// The `WWW-Authenticate` of a request without valid credentials (RFC 6750): the realm,
/// and for a credential that was sent but is not valid, `invalid_token`.
pub fn www_authenticate(credential_sent: bool) -> String {
    if credential_sent {
        r#"Bearer realm="aiocr", error="invalid_token""#.to_string()
    } else {
        r#"Bearer realm="aiocr""#.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_pass_only_when_listed() {
        let allowed = vec!["https://agent.example".to_string()];
        assert!(check_origin(None, &[]).is_ok());
        assert!(check_origin(Some("https://agent.example"), &allowed).is_ok());
        assert!(check_origin(Some("HTTPS://Agent.Example"), &allowed).is_ok());
        assert_eq!(
            check_origin(Some("https://evil.example"), &allowed)
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(check_origin(Some("null"), &[]).unwrap_err().status, 403);
    }

    #[test]
    fn version_headers() {
        assert_eq!(check_version_header(None), Ok(version::WITHOUT_HEADER));
        assert_eq!(check_version_header(Some("2025-06-18")), Ok("2025-06-18"));
        let refused = check_version_header(Some("2026-07-28")).unwrap_err();
        assert_eq!(refused.status, 400);
        assert_eq!(refused.error.data.unwrap()["supported"][0], version::LATEST);
        assert_eq!(session_version(None, "2025-06-18"), Ok("2025-06-18"));
        assert_eq!(
            session_version(Some("2025-11-25"), "2025-11-25"),
            Ok("2025-11-25")
        );
        assert_eq!(
            session_version(Some("2025-06-18"), "2025-11-25")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            session_version(Some("1.0"), "2025-11-25")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn session_and_body_refusals() {
        assert_eq!(missing_session().status, 400);
        assert_eq!(unknown_session().status, 404);
        assert_eq!(not_json().status, 415);
        assert!(www_authenticate(true).contains("invalid_token"));
        assert!(!www_authenticate(false).contains("error"));
    }
}
