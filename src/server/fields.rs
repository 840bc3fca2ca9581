//! Request fields from the query string and the body, whatever the body's format: JSON
//! object, urlencoded form, or multipart form. Body fields win over query fields of the
//! same name.

use super::reply::{malformed, Refusal};
use crate::http::{form, multipart};

#[derive(Default, Debug)]
pub struct Fields {
    body: Vec<(String, String)>,
    query: Vec<(String, String)>,
    /// Multipart parts with binary content (file uploads), by field name.
    files: Vec<(String, Vec<u8>)>,
}

/// How the body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Json,
    Form,
    Multipart,
    /// Anything else (a raw image on the upload route).
    Other,
}

pub fn body_kind(content_type: Option<&str>, body: &[u8]) -> BodyKind {
    if body.is_empty() {
        return BodyKind::Empty;
    }
    let media_type = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type == "multipart/form-data" {
        return BodyKind::Multipart;
    }
    if media_type == "application/json" || media_type.ends_with("+json") {
        return BodyKind::Json;
    }
    let looks_like_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if (media_type.is_empty() || media_type == "application/x-www-form-urlencoded")
        && looks_like_json
    {
        // `curl -d '{...}'` labels JSON as a form; read it as what it is.
        return BodyKind::Json;
    }
    if media_type.is_empty()
        || media_type == "application/x-www-form-urlencoded"
        || media_type == "text/plain"
    {
        return BodyKind::Form;
    }
    BodyKind::Other
}

/// The largest integer a request field may hold: 2^53 - 1, the largest every JSON reader
/// holds exactly (RFC 7493, I-JSON), as the API description says.
pub const MAX_REQUEST_INTEGER: u64 = (1 << 53) - 1;

/// How a JSON body's values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonTyping {
    /// The `/v2` API: a field its description names must have the JSON type described there
    /// (a number where a string is described, or `"1"` where a boolean is, is 1001, not read
    /// as its text; so is `null`). Other fields are ignored, whatever scalar they hold.
    Described,
    /// The other protocols: every scalar is read as its text and `null` as absent (their
    /// clients send what they send).
    Lenient,
}

/// The JSON type of a field in a `/v2` JSON body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonType {
    String,
    Boolean,
    /// A number without a fractional part (`4106.0` is one, as in JSON Schema).
    Integer,
}

/// Every field a `/v2` JSON body may carry with its type, as docs/openapi.json describes them
/// (its test holds the two together).
const DESCRIBED_JSON_TYPES: &[(&str, JsonType)] = &[
    ("wait", JsonType::Boolean),
    ("png_fix", JsonType::Boolean),
    ("probability", JsonType::Boolean),
    ("timeout_ms", JsonType::Integer),
    ("points", JsonType::Integer),
    ("file", JsonType::String),
    ("image", JsonType::String),
    ("target", JsonType::String),
    ("background", JsonType::String),
    ("model", JsonType::String),
    // `POST /v2/models/remove`: the model's name.
    ("name", JsonType::String),
    ("charset_range", JsonType::String),
    ("colors", JsonType::String),
    ("color_ranges", JsonType::String),
    ("soft_id", JsonType::String),
    ("mode", JsonType::String),
    ("kind", JsonType::String),
    ("hash", JsonType::String),
    ("background_hash", JsonType::String),
    ("user_id", JsonType::String),
    ("username", JsonType::String),
    ("password", JsonType::String),
    ("old_password", JsonType::String),
    ("new_password", JsonType::String),
    ("role", JsonType::String),
    ("reason", JsonType::String),
    // How a text answer is read (upload/request.rs) and a click captcha's hint (upload/click.rs).
    ("math", JsonType::Boolean),
    ("numeric", JsonType::Integer),
    ("min_len", JsonType::Integer),
    ("max_len", JsonType::Integer),
    ("case_insensitive", JsonType::Boolean),
    ("hint", JsonType::String),
    ("hint_image", JsonType::String),
    ("rectangles", JsonType::Boolean),
];

fn described_json_type(name: &str) -> Option<JsonType> {
    DESCRIBED_JSON_TYPES
        .iter()
        .find(|(described, _)| *described == name)
        .map(|&(_, json_type)| json_type)
}

/// A JSON field's value as text (`None`: absent), checked against its described type.
fn json_field_text(
    name: &str,
    value: serde_json::Value,
    described: Option<JsonType>,
) -> Result<Option<String>, Refusal> {
    use serde_json::Value;
    let text = match (value, described) {
        (Value::Null, None) => return Ok(None),
        (Value::String(text), None | Some(JsonType::String)) => text,
        (Value::Bool(flag), None | Some(JsonType::Boolean)) => flag.to_string(),
        (Value::Number(number), None) => integral_text(&number).unwrap_or(number.to_string()),
        (Value::Number(number), Some(JsonType::Integer)) => integral_text(&number)
            .ok_or_else(|| malformed(format!("field {name} must be an integer")))?,
        (_, Some(json_type)) => {
            let expected = match json_type {
                JsonType::String => "a string",
                JsonType::Boolean => "a boolean",
                JsonType::Integer => "an integer",
            };
            return Err(malformed(format!("field {name} must be {expected}")));
        }
        (Value::Array(_) | Value::Object(_), None) => {
            return Err(malformed(format!(
                "field {name} must be a string, number, boolean or null"
            )))
        }
    };
    Ok(Some(text))
}

/// A JSON number without a fractional part, as decimal digits: `4106` and `4106.0` alike
/// (JSON Schema's integers). An integer written beyond 64 bits, or as a float beyond 2^53,
/// arrives as a double that no longer holds the digits sent (`-9223372036854775809` reads
/// as -2^63): none.
fn integral_text(number: &serde_json::Number) -> Option<String> {
    if number.is_i64() || number.is_u64() {
        return Some(number.to_string());
    }
    let value = number.as_f64()?;
    let exact = value.abs() <= MAX_REQUEST_INTEGER as f64;
    (value.fract() == 0.0 && exact).then(|| format!("{value:.0}"))
}

impl Fields {
    pub fn from_query(query: &str) -> Result<Fields, Refusal> {
        let query =
            form::parse_urlencoded(query.as_bytes()).map_err(|_| malformed("bad query string"))?;
        Ok(Fields {
            query,
            ..Fields::default()
        })
    }

    /// Adds the body's fields. `Other` bodies add nothing (the caller decides what they mean).
    pub fn add_body(
        &mut self,
        kind: BodyKind,
        content_type: Option<&str>,
        body: &[u8],
        typing: JsonTyping,
    ) -> Result<(), Refusal> {
        match kind {
            BodyKind::Empty | BodyKind::Other => Ok(()),
            BodyKind::Json => self.add_json(body, typing),
            BodyKind::Form => {
                self.body = form::parse_urlencoded(body).map_err(|_| malformed("bad form body"))?;
                Ok(())
            }
            BodyKind::Multipart => self.add_multipart(content_type.unwrap_or(""), body),
        }
    }

    /// The fields of a JSON object as a `/v2` JSON body gives them: what a request nests
    /// (the options of a hash lookup).
    pub fn from_json_object(
        object: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Fields, Refusal> {
        let mut fields = Fields::default();
        fields.add_json_object(object, JsonTyping::Described)?;
        Ok(fields)
    }

    fn add_json(&mut self, body: &[u8], typing: JsonTyping) -> Result<(), Refusal> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| malformed("bad JSON"))?;
        let serde_json::Value::Object(object) = value else {
            return Err(malformed("the JSON body must be an object"));
        };
        self.add_json_object(object, typing)
    }

    fn add_json_object(
        &mut self,
        object: serde_json::Map<String, serde_json::Value>,
        typing: JsonTyping,
    ) -> Result<(), Refusal> {
        for (name, value) in object {
            let described = match typing {
                JsonTyping::Described => described_json_type(&name),
                JsonTyping::Lenient => None,
            };
            if let Some(text) = json_field_text(&name, value, described)? {
                self.body.push((name, text));
            }
        }
        Ok(())
    }

    fn add_multipart(&mut self, content_type: &str, body: &[u8]) -> Result<(), Refusal> {
        let boundary = multipart::boundary(content_type)
            .ok_or_else(|| malformed("multipart without boundary"))?;
        let parts =
            multipart::parse(body, &boundary).map_err(|_| malformed("bad multipart body"))?;
        for part in parts {
            let is_file = part.filename.is_some() || std::str::from_utf8(part.data).is_err();
            if is_file {
                self.files.push((part.name, part.data.to_vec()));
            } else {
                let text = String::from_utf8(part.data.to_vec()).expect("checked above");
                self.body.push((part.name, text));
            }
        }
        Ok(())
    }

    /// A text field (body first, then query).
    pub fn text(&self, name: &str) -> Option<&str> {
        let body = self.body.iter().find(|(key, _)| key == name);
        let query = || self.query.iter().find(|(key, _)| key == name);
        body.or_else(query).map(|(_, value)| value.as_str())
    }

    /// A required, non-empty text field (1001 when missing).
    pub fn required(&self, name: &str) -> Result<&str, Refusal> {
        match self.text(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(malformed(format!("missing field {name}"))),
        }
    }

    /// Whether a binary multipart part of that name came.
    pub fn has_file(&self, name: &str) -> bool {
        self.files.iter().any(|(key, _)| key == name)
    }

    /// A binary multipart part, removed from the fields (images are large: no copy).
    pub fn take_file(&mut self, name: &str) -> Option<Vec<u8>> {
        let at = self.files.iter().position(|(key, _)| key == name)?;
        Some(self.files.swap_remove(at).1)
    }

    /// The only binary multipart part, whatever its name (clients name uploads freely), if
    /// there is exactly one.
    pub fn take_any_file(&mut self) -> Option<Vec<u8>> {
        if self.files.len() != 1 {
            return None;
        }
        self.files.pop().map(|(_, bytes)| bytes)
    }

    /// A boolean option: absent means `default`; 1/true/yes/on and 0/false/no/off.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, Refusal> {
        match self
            .text(name)
            .map(|value| value.trim().to_ascii_lowercase())
        {
            None => Ok(default),
            Some(value) => match value.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "" | "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(malformed(format!("field {name} must be a boolean"))),
            },
        }
    }

    /// An unsigned number option, at most [`MAX_REQUEST_INTEGER`]; absent means `None`.
    pub fn number(&self, name: &str) -> Result<Option<u64>, Refusal> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        match value.trim().parse::<u64>() {
            Ok(number) if number <= MAX_REQUEST_INTEGER => Ok(Some(number)),
            _ => Err(malformed(format!(
                "field {name} must be an integer from 0 to {MAX_REQUEST_INTEGER}"
            ))),
        }
    }

    /// A snowflake id field (decimal string or number); 1001 when missing or not an id.
    pub fn id(&self, name: &str) -> Result<u64, Refusal> {
        let text = self.required(name)?;
        text.trim()
            .parse::<u64>()
            .map_err(|_| malformed(format!("field {name} is not an id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ApiError;

    #[test]
    fn body_beats_query_and_kinds_are_sniffed() {
        let mut fields = Fields::from_query("model=beta&wait=1").unwrap();
        let body = br#"{"model": "old", "timeout_ms": 500, "png_fix": true, "skip": null}"#;
        let kind = body_kind(Some("application/x-www-form-urlencoded"), body);
        assert_eq!(kind, BodyKind::Json);
        fields
            .add_body(kind, None, body, JsonTyping::Lenient)
            .unwrap();
        assert_eq!(fields.text("model"), Some("old"));
        assert!(fields.flag("wait", false).unwrap());
        assert_eq!(fields.number("timeout_ms").unwrap(), Some(500));
        assert!(fields.flag("png_fix", false).unwrap());
        assert_eq!(fields.text("skip"), None);
        assert_eq!(body_kind(Some("image/png"), b"\x89PNG"), BodyKind::Other);
        assert_eq!(body_kind(None, b"a=1"), BodyKind::Form);
        assert_eq!(body_kind(Some("text/plain"), b""), BodyKind::Empty);
    }

    /// A `/v2` JSON body's named fields have the described types; other fields any scalar.
    #[test]
    fn described_json_types_are_checked() {
        let typed = |body: &str| {
            let mut fields = Fields::default();
            fields
                .add_body(BodyKind::Json, None, body.as_bytes(), JsonTyping::Described)
                .map(|_| fields)
                .map_err(|refusal| refusal.error)
        };
        let fields =
            typed(r#"{"wait": true, "timeout_ms": 4106.0, "model": "old", "extra": 5, "n": null}"#)
                .unwrap();
        assert!(fields.flag("wait", false).unwrap());
        assert_eq!(fields.number("timeout_ms").unwrap(), Some(4106));
        assert_eq!(fields.text("extra"), Some("5"));
        for wrong in [
            r#"{"username": false}"#,
            r#"{"username": 5}"#,
            r#"{"username": null}"#,
            r#"{"wait": 1}"#,
            r#"{"wait": "true"}"#,
            r#"{"timeout_ms": "500"}"#,
            r#"{"timeout_ms": 1.5}"#,
            r#"{"points": -9223372036854775809}"#,
            r#"{"points": 1e300}"#,
            r#"{"points": true}"#,
            r#"{"extra": {}}"#,
        ] {
            assert_eq!(typed(wrong).err(), Some(ApiError::Malformed), "{wrong}");
        }
        // The other protocols read every scalar as its text, null as absent.
        let mut lenient = Fields::default();
        let body = br#"{"username": false, "wait": 1, "soft_id": null}"#;
        lenient
            .add_body(BodyKind::Json, None, body, JsonTyping::Lenient)
            .unwrap();
        assert_eq!(lenient.text("username"), Some("false"));
        assert!(lenient.flag("wait", false).unwrap());
        assert_eq!(lenient.text("soft_id"), None);
    }

    /// The table is the API description's: every property of a `/v2` JSON request body has
    /// its type there, and every entry is a property of one.
    #[test]
    fn described_json_types_are_the_documents() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut described = std::collections::BTreeMap::new();
        for (route, methods) in document["paths"].as_object().unwrap() {
            // `/mcp` carries a JSON-RPC message, read by src/mcp, not as `/v2` fields.
            if route == "/mcp" {
                continue;
            }
            for operation in methods.as_object().unwrap().values() {
                let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
                collect_property_types(&document, schema, &mut described);
            }
        }
        // A lookup's own fields are read by the cache's parser, not as fields.
        for nested in ["lookups", "options"] {
            described.remove(nested);
        }
        let table: std::collections::BTreeMap<String, String> = DESCRIBED_JSON_TYPES
            .iter()
            .map(|(name, json_type)| {
                let name = name.to_string();
                let json_type = match json_type {
                    JsonType::String => "string",
                    JsonType::Boolean => "boolean",
                    JsonType::Integer => "integer",
                };
                (name, json_type.to_string())
            })
            .collect();
        assert_eq!(table, described);
    }

    fn collect_property_types(
        document: &serde_json::Value,
        schema: &serde_json::Value,
        into: &mut std::collections::BTreeMap<String, String>,
    ) {
        let schema = match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap();
                &document["components"]["schemas"][name]
            }
            None => schema,
        };
        let Some(properties) = schema["properties"].as_object() else {
            return;
        };
        for (name, property) in properties {
            if let Some(json_type) = property["type"].as_str() {
                into.insert(name.clone(), json_type.to_string());
            }
            collect_property_types(document, property, into);
        }
    }

    #[test]
    fn refusals_are_1001() {
        let mut fields = Fields::default();
        assert_eq!(
            fields
                .add_body(BodyKind::Json, None, b"[1]", JsonTyping::Lenient)
                .unwrap_err()
                .error,
            ApiError::Malformed
        );
        assert_eq!(
            fields
                .add_body(BodyKind::Json, None, b"{\"a\":{}}", JsonTyping::Lenient)
                .unwrap_err()
                .error,
            ApiError::Malformed
        );
        assert_eq!(
            fields
                .add_body(
                    BodyKind::Multipart,
                    Some("multipart/form-data"),
                    b"x",
                    JsonTyping::Lenient
                )
                .unwrap_err()
                .error,
            ApiError::Malformed
        );
        let fields = Fields::from_query("id=abc&wait=maybe").unwrap();
        assert!(
            fields.id("id").is_err()
                && fields.flag("wait", false).is_err()
                && fields.id("none").is_err()
        );
        assert!(Fields::from_query("a=%zz").is_err());
    }
}
