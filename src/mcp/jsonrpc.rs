//! JSON-RPC 2.0 as MCP uses it over HTTP: one message per POST body (MCP removed batches in
//! 2025-06-18), parsed into a typed [`Message`] before anything runs, and the two answer
//! shapes (a result, an error). Ids are echoed back verbatim, so only ids every JSON reader
//! keeps exact are accepted: strings, and integers within ±(2^53 - 1).

use serde_json::{json, Map, Value};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Valid JSON that is not a JSON-RPC 2.0 message (or a batch).
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The method exists but its params are wrong (an unknown tool, a bad `initialize`).
pub const INVALID_PARAMS: i64 = -32602;
/// A refusal of the server's own (in the implementation-defined range -32000..=-32019): the
/// transport refused the request (session limits, the server is busy); `data` carries the
/// API contract's `code` and `msg`.
pub const SERVER_REFUSED: i64 = -32000;

/// The largest integer id echoed back: every JSON reader holds it exactly.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A request's id: a string or a safe integer, never null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Id {
    Number(i64),
    Text(String),
}

impl Id {
    fn from_json(value: &Value) -> Option<Id> {
        match value {
            Value::String(text) => Some(Id::Text(text.clone())),
            Value::Number(number) => number
                .as_i64()
                .filter(|id| id.abs() <= MAX_SAFE_INTEGER)
                .map(Id::Number),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Id::Number(number) => json!(number),
            Id::Text(text) => json!(text),
        }
    }
}

/// One message from the client.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Expects an answer with its id.
    Request {
        id: Id,
        method: String,
        params: Map<String, Value>,
    },
    /// Expects none.
    Notification {
        method: String,
        params: Map<String, Value>,
    },
    /// A client's answer to a server request (this server sends none): taken and dropped.
    Response,
}

impl Message {
    /// The method a request or notification names.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            Message::Response => None,
        }
    }
}

/// A JSON-RPC error object.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }

    fn to_json(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// A body that is not one message: the error, and the id to answer it with when the body
/// named one (`None`: answered with `id: null`).
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    pub id: Option<Id>,
    pub error: RpcError,
}

/// Reads one message from a POST body.
pub fn parse(body: &[u8]) -> Result<Message, Unreadable> {
    let value: Value = serde_json::from_slice(body).map_err(|error| Unreadable {
        id: None,
        error: RpcError::new(PARSE_ERROR, format!("parse error: {error}")),
    })?;
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => return Err(invalid(None, "batches are not supported")),
        _ => return Err(invalid(None, "a message must be a JSON object")),
    };
    let id = match object.get("id") {
        None => None,
        Some(value) => Some(Id::from_json(value).ok_or_else(|| {
            invalid(None, "id must be a string or an integer within ±(2^53 - 1)")
        })?),
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(id, "jsonrpc must be \"2.0\""));
    }
    let Some(method) = object.get("method") else {
        let answers = object.contains_key("result") || object.contains_key("error");
        return match (id, answers) {
            (Some(_), true) => Ok(Message::Response),
            (id, _) => Err(invalid(
                id,
                "a message needs a method, or a result or error",
            )),
        };
    };
    let Some(method) = method.as_str().map(str::to_string) else {
        return Err(invalid(id, "method must be a string"));
    };
    let params = match object.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params.clone(),
        Some(_) => return Err(invalid(id, "params must be an object")),
    };
    Ok(match id {
        Some(id) => Message::Request { id, method, params },
        None => Message::Notification { method, params },
    })
}

fn invalid(id: Option<Id>, message: &str) -> Unreadable {
    Unreadable {
        id,
        error: RpcError::new(INVALID_REQUEST, message),
    }
}

/// The answer to request `id`: its result.
pub fn result_body(id: &Id, result: Value) -> Vec<u8> {
    let message = json!({ "jsonrpc": "2.0", "id": id.to_json(), "result": result });
    message.to_string().into_bytes()
}

/// An error answer: to request `id`, or with `id: null` when the message had none that
/// could be read.
pub fn error_body(id: Option<&Id>, error: &RpcError) -> Vec<u8> {
    let id = id.map_or(Value::Null, Id::to_json);
    let message = json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() });
    message.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Message, Unreadable> {
        parse(text.as_bytes())
    }

    #[test]
    fn requests_notifications_and_responses() {
        let request = parsed(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#).unwrap();
        assert_eq!(
            request,
            Message::Request {
                id: Id::Number(7),
                method: "tools/list".into(),
                params: Map::new()
            }
        );
        let text_id = parsed(r#"{"jsonrpc":"2.0","id":"a","method":"ping","params":{}}"#);
        assert!(matches!(text_id, Ok(Message::Request { id: Id::Text(ref a), .. }) if a == "a"));
        let notification = parsed(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(
            notification.unwrap().method(),
            Some("notifications/initialized")
        );
        let response = parsed(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap();
        assert_eq!(response, Message::Response);
    }

    #[test]
    fn what_is_not_one_message_is_refused_with_its_code() {
        let code = |text: &str| parsed(text).unwrap_err().error.code;
        assert_eq!(code("{"), PARSE_ERROR);
        assert_eq!(code("[]"), INVALID_REQUEST);
        assert_eq!(code("3"), INVALID_REQUEST);
        assert_eq!(code(r#"{"id":1,"method":"ping"}"#), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":3}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"a","params":[1]}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"a"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"a"}"#),
            INVALID_REQUEST
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","result":{}}"#), INVALID_REQUEST);
        // An id beyond what every JSON reader keeps exact is not echoed back.
        let unsafe_id = format!(r#"{{"jsonrpc":"2.0","id":{},"method":"a"}}"#, 1u64 << 53);
        assert_eq!(code(&unsafe_id), INVALID_REQUEST);
        let safe_id = format!(r#"{{"jsonrpc":"2.0","id":-{MAX_SAFE_INTEGER},"method":"a"}}"#);
        assert!(parsed(&safe_id).is_ok());
        // A readable id is kept for the error's answer.
        let refused = parsed(r#"{"jsonrpc":"2.0","id":"x","method":true}"#).unwrap_err();
        assert_eq!(refused.id, Some(Id::Text("x".into())));
    }

    #[test]
    fn answers_echo_the_id() {
        let body = result_body(&Id::Text("q".into()), json!({}));
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value, json!({"jsonrpc": "2.0", "id": "q", "result": {}}));
        let error = RpcError::new(METHOD_NOT_FOUND, "no").with_data(json!({"x": 1}));
        let value: Value = serde_json::from_slice(&error_body(None, &error)).unwrap();
        assert_eq!(value["id"], Value::Null);
        assert_eq!(value["error"]["code"], METHOD_NOT_FOUND);
        assert_eq!(value["error"]["data"]["x"], 1);
    }
}
