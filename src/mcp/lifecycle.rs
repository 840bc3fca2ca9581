//! The session's life in messages: `initialize` (version negotiation, what this server
//! offers), `notifications/initialized`, `ping`; and which method a request names.

use super::jsonrpc::{RpcError, INVALID_PARAMS};
use super::version;
use serde_json::{json, Map, Value};

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Initialize,
    Ping,
    ToolsList,
    ToolsCall,
    /// Anything else: -32601.
    Unknown,
}

impl Method {
    pub fn named(name: &str) -> Method {
        match name {
            "initialize" => Method::Initialize,
            "ping" => Method::Ping,
            "tools/list" => Method::ToolsList,
            "tools/call" => Method::ToolsCall,
            _ => Method::Unknown,
        }
    }
}

/// The notification that ends the handshake (others are taken and ignored: cancellations of
/// requests that were answered already, progress).
pub const INITIALIZED: &str = "notifications/initialized";

/// The version an `initialize` asks for, negotiated: the same when served, else the latest.
pub fn negotiate(params: &Map<String, Value>) -> Result<&'static str, RpcError> {
    match params.get("protocolVersion").and_then(Value::as_str) {
        Some(requested) => Ok(version::negotiate(requested)),
        None => Err(
            RpcError::new(INVALID_PARAMS, "initialize needs params.protocolVersion")
                .with_data(json!({ "supported": version::SUPPORTED })),
        ),
    }
}

/// The `initialize` result at `version`: tools only (no resources, prompts, logging; the
/// tool list never changes while the server runs).
pub fn initialize_result(version: &'static str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": {
            "name": "aiocr",
            "title": "aiocr captcha recognition",
            "version": env!("CARGO_PKG_VERSION")
        },
        "instructions": "Captcha recognition with the ddddocr models, answering exactly what \
            ddddocr 1.6.1 answers. Images are base64. Readings (ocr, detect, slide) cost points; \
            balance shows what is left; report refunds a wrong answer once."
    })
}

/// `tools/list` takes no cursor from this server (one page): any cursor is invalid.
pub fn check_no_cursor(params: &Map<String, Value>) -> Result<(), RpcError> {
    match params.get("cursor") {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(RpcError::new(
            INVALID_PARAMS,
            "invalid cursor: the list has one page",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn initialize_negotiates_and_needs_a_version() {
        let asked = params(json!({ "protocolVersion": "2025-06-18", "capabilities": {} }));
        assert_eq!(negotiate(&asked), Ok("2025-06-18"));
        let newer = params(json!({ "protocolVersion": "2099-01-01" }));
        assert_eq!(negotiate(&newer), Ok(version::LATEST));
        let refused = negotiate(&Map::new()).unwrap_err();
        assert_eq!(refused.code, INVALID_PARAMS);
        let result = initialize_result("2025-11-25");
        assert_eq!(result["protocolVersion"], "2025-11-25");
        assert!(result["capabilities"]["tools"].is_object());
        assert_eq!(result["serverInfo"]["name"], "aiocr");
    }

    #[test]
    fn methods_and_cursors() {
        assert_eq!(Method::named("tools/call"), Method::ToolsCall);
        assert_eq!(Method::named("resources/list"), Method::Unknown);
        assert!(check_no_cursor(&Map::new()).is_ok());
        assert!(check_no_cursor(&params(json!({ "cursor": "x" }))).is_err());
    }
}
