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
    ) -> Result<(), Refusal> {
        match kind {
            BodyKind::Empty | BodyKind::Other => Ok(()),
            BodyKind::Json => self.add_json(body),
            BodyKind::Form => {
                self.body = form::parse_urlencoded(body).map_err(|_| malformed("bad form body"))?;
                Ok(())
            }
            BodyKind::Multipart => self.add_multipart(content_type.unwrap_or(""), body),
        }
    }

    /// The fields of a JSON object (strings, numbers and booleans; null is absent), as a
    /// JSON body gives them: what a request nests (the options of a hash lookup).
    pub fn from_json_object(
        object: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Fields, Refusal> {
        let mut fields = Fields::default();
        fields.add_json_object(object)?;
        Ok(fields)
    }

    fn add_json(&mut self, body: &[u8]) -> Result<(), Refusal> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| malformed("bad JSON"))?;
        let serde_json::Value::Object(object) = value else {
            return Err(malformed("the JSON body must be an object"));
        };
        self.add_json_object(object)
    }

    fn add_json_object(
        &mut self,
        object: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), Refusal> {
        for (name, value) in object {
            let text = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Bool(flag) => flag.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    return Err(malformed(format!(
                        "field {name} must be a string, number or boolean"
                    )))
                }
            };
            self.body.push((name, text));
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

    /// An unsigned number option; absent means `None`.
    pub fn number(&self, name: &str) -> Result<Option<u64>, Refusal> {
        match self.text(name) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| malformed(format!("field {name} must be a non-negative integer"))),
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
        fields.add_body(kind, None, body).unwrap();
        assert_eq!(fields.text("model"), Some("old"));
        assert!(fields.flag("wait", false).unwrap());
        assert_eq!(fields.number("timeout_ms").unwrap(), Some(500));
        assert!(fields.flag("png_fix", false).unwrap());
        assert_eq!(fields.text("skip"), None);
        assert_eq!(body_kind(Some("image/png"), b"\x89PNG"), BodyKind::Other);
        assert_eq!(body_kind(None, b"a=1"), BodyKind::Form);
        assert_eq!(body_kind(Some("text/plain"), b""), BodyKind::Empty);
    }

    #[test]
    fn refusals_are_1001() {
        let mut fields = Fields::default();
        assert_eq!(
            fields
                .add_body(BodyKind::Json, None, b"[1]")
                .unwrap_err()
                .error,
            ApiError::Malformed
        );
        assert_eq!(
            fields
                .add_body(BodyKind::Json, None, b"{\"a\":{}}")
                .unwrap_err()
                .error,
            ApiError::Malformed
        );
        assert_eq!(
            fields
                .add_body(BodyKind::Multipart, Some("multipart/form-data"), b"x")
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
