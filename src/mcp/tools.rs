//! The tools aiocr offers agents: their definitions (`tools/list`, with input and output
//! schemas), a `tools/call`'s typed reading, and the two result shapes (a structured
//! success, and a tool error carrying the API contract's code and message).
//!
//! The arguments are the `/v2` fields of the same request, by the same names, so the server
//! reads them with the same parser and charges them by the same rules.

use super::jsonrpc::{RpcError, INVALID_PARAMS};
use super::version::Features;
use serde_json::{json, Map, Value};

/// One tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// A text captcha: `/v2/decode/upload-base64`.
    Ocr,
    /// A click captcha's boxes: `/v2/decode/detect`.
    Detect,
    /// A slide captcha: `/v2/decode/slide`.
    Slide,
    /// A click-in-order captcha: `/v2/decode/click`.
    Click,
    /// An upload's state: `/v2/result`.
    Result,
    /// The caller's points: `/v2/user/point`.
    Balance,
    /// A wrong answer, refunded once: `/v2/report`.
    Report,
}

/// Every tool, in the order `tools/list` gives them.
pub const TOOLS: [Tool; 7] = [
    Tool::Ocr,
    Tool::Detect,
    Tool::Slide,
    Tool::Click,
    Tool::Result,
    Tool::Balance,
    Tool::Report,
];

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Ocr => "ocr",
            Tool::Detect => "detect",
            Tool::Slide => "slide",
            Tool::Click => "click",
            Tool::Result => "result",
            Tool::Balance => "balance",
            Tool::Report => "report",
        }
    }

    fn named(name: &str) -> Option<Tool> {
        TOOLS.into_iter().find(|tool| tool.name() == name)
    }

    fn title(self) -> &'static str {
        match self {
            Tool::Ocr => "Read a text captcha",
            Tool::Detect => "Find the characters of a click captcha",
            Tool::Slide => "Solve a slide captcha",
            Tool::Click => "Click the characters of a captcha in order",
            Tool::Result => "An earlier answer",
            Tool::Balance => "Points left",
            Tool::Report => "Report a wrong answer",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Tool::Ocr => {
                "Reads the text of a captcha image (PNG, JPEG, GIF, BMP or WebP, base64) \
                 with the ddddocr models, answering exactly what ddddocr 1.6.1 answers, or \
                 with a model of your own (dddd_trainer's, added with POST /v2/models). \
                 Costs the model's price in points; a failed reading is refunded."
            }
            Tool::Detect => {
                "Finds the characters of a click captcha: boxes [x1, y1, x2, y2] in pixels, \
                 exactly as ddddocr 1.6.1's detection. Costs points like an upload."
            }
            Tool::Slide => {
                "Finds where a slide captcha's piece fits: mode match (a piece against the \
                 background with its hole), simple (a plain crop) or comparison (the \
                 background with the gap against the full background), exactly as ddddocr \
                 1.6.1. Costs points like an upload."
            }
            Tool::Click => {
                "Where to click, in order, on a click captcha: one [x, y] per character of \
                 the hint (the characters as text, or an image of them), in the image's \
                 pixels; without a hint, every character's box centre in reading order. \
                 Costs points like an upload; an image whose boxes cannot answer the hint is \
                 refused (code 5005) and not charged."
            }
            Tool::Result => {
                "The state of an earlier answer by its id: use it for an answer that was \
                 still pending."
            }
            Tool::Balance => "The caller's points, and the points reserved by pending answers.",
            Tool::Report => {
                "Reports an answer as wrong: its points are refunded, once, within the \
                 report window."
            }
        }
    }

    /// The input schema; `models` are the server's own models, which `ocr`'s `model` names
    /// as examples: it also takes a user's model by name (the models API), so the schema
    /// cannot enumerate it (another user's models are not the caller's to see).
    fn input_schema(self, models: &[String]) -> Value {
        let image = json!({
            "type": "string",
            "description": "the image as base64 (or a data:image/...;base64, URI)"
        });
        let soft_id = json!({
            "type": "string",
            "maxLength": 64,
            "description": "your software's id, for a developer's statistics"
        });
        let id = json!({ "type": "string", "description": "the answer's id" });
        let (properties, required): (Value, &[&str]) = match self {
            Tool::Ocr => (
                json!({
                    "image": image,
                    "model": {
                        "type": "string",
                        "default": "old",
                        "examples": models,
                        "description": format!(
                            "the model: one of the server's ({}), or the name of one of your \
                             models or of a public one (GET /v2/models lists them); another \
                             name is refused with code 3005",
                            models.join(", ")
                        )
                    },
                    "charset_range": {
                        "type": ["string", "integer"],
                        "description": "ddddocr's set_ranges: 0-7 for its predefined sets, or the characters allowed"
                    },
                    "colors": {
                        "type": "array",
                        "items": { "type": "string" },
                        "description": "keep only these colours (ddddocr's presets, e.g. red, blue)"
                    },
                    "color_ranges": {
                        "type": "array",
                        "description": "keep only these HSV ranges: [[h, s, v], [h, s, v]] pairs (OpenCV's 8-bit HSV)"
                    },
                    "probability": {
                        "type": "boolean",
                        "description": "also answer the reading's confidence"
                    },
                    "png_fix": {
                        "type": "boolean",
                        "description": "ddddocr's png_fix: paste a transparent PNG on white"
                    },
                    "math": {
                        "type": "boolean",
                        "description": "an arithmetic captcha: answer the expression's value (5005, not charged, when no expression can be read); takes none of the constraints below"
                    },
                    "numeric": {
                        "type": "integer", "minimum": 0, "maximum": 4,
                        "description": "the best answer of these characters (2captcha's numeric): 1 digits, 2 letters, 3 digits or letters, 4 digits and letters (both); 0 any"
                    },
                    "min_len": { "type": "integer", "minimum": 0, "maximum": 64, "description": "the answer's least length (0: any)" },
                    "max_len": { "type": "integer", "minimum": 0, "maximum": 64, "description": "the answer's greatest length (0: any)" },
                    "case_insensitive": {
                        "type": "boolean",
                        "description": "a letter's two cases count as one when choosing the answer"
                    },
                    "soft_id": soft_id
                }),
                &["image"],
            ),
            Tool::Detect => (json!({ "image": image, "soft_id": soft_id }), &["image"]),
            Tool::Click => (
                json!({
                    "image": image,
                    "hint": { "type": "string", "description": "the characters to click, in order" },
                    "hint_image": { "type": "string", "description": "an image of the characters to click, base64 (read by the model; `hint` wins when both come)" },
                    "rectangles": { "type": "boolean", "description": "answer the boxes [x1, y1, x2, y2] instead of their centres" },
                    "soft_id": soft_id
                }),
                &["image"],
            ),
            Tool::Slide => (
                json!({
                    "target": { "type": "string", "description": "the piece (match, simple) or the background with the gap (comparison), base64" },
                    "background": { "type": "string", "description": "the background, base64" },
                    "mode": { "type": "string", "enum": ["match", "simple", "comparison"], "default": "match" },
                    "soft_id": soft_id
                }),
                &["target", "background"],
            ),
            Tool::Result | Tool::Report => (json!({ "id": id }), &["id"]),
            Tool::Balance => (json!({}), &[]),
        };
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false
        })
    }

    fn output_schema(self) -> Value {
        match self {
            Tool::Ocr | Tool::Detect | Tool::Slide | Tool::Click | Tool::Result => {
                upload_schema(self)
            }
            Tool::Balance => json!({
                "type": "object",
                "properties": {
                    "points": { "type": "integer" },
                    "reserved": { "type": "integer" }
                },
                "required": ["points", "reserved"]
            }),
            Tool::Report => json!({
                "type": "object",
                "properties": {
                    "refunded": { "type": "integer" },
                    "points": { "type": "integer" }
                },
                "required": ["refunded", "points"]
            }),
        }
    }

    /// Its entry in `tools/list`.
    fn definition(self, features: Features, models: &[String]) -> Value {
        let mut tool = json!({
            "name": self.name(),
            "description": self.description(),
            "inputSchema": self.input_schema(models),
        });
        if features.structured_output {
            tool["title"] = json!(self.title());
            tool["outputSchema"] = self.output_schema();
        }
        // Only `report` changes what was done; the readings spend points but are the same
        // every time for the same image.
        tool["annotations"] = json!({
            "readOnlyHint": matches!(self, Tool::Result | Tool::Balance),
            "destructiveHint": false,
            "idempotentHint": !matches!(self, Tool::Ocr | Tool::Detect | Tool::Slide | Tool::Click),
            "openWorldHint": false
        });
        tool
    }
}

/// An upload's state, as `/v2/result` shows it; `result`'s type is the tool's.
fn upload_schema(tool: Tool) -> Value {
    let result = match tool {
        Tool::Ocr => json!({ "type": "string" }),
        Tool::Detect => json!({
            "type": "array",
            "items": { "type": "array", "items": { "type": "integer" }, "minItems": 4, "maxItems": 4 }
        }),
        Tool::Slide => json!({ "type": "object" }),
        // Points [x, y], or boxes [x1, y1, x2, y2] with `rectangles`.
        Tool::Click => json!({
            "type": "array",
            "items": { "type": "array", "items": { "type": "integer" }, "minItems": 2, "maxItems": 4 }
        }),
        _ => json!({}),
    };
    json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" },
            "kind": { "type": "string", "enum": ["ocr", "detect", "slide", "click"] },
            "status": { "type": "string", "enum": ["pending", "done", "failed"] },
            "cost": { "type": "integer" },
            "created_at": { "type": "integer" },
            "finished_at": { "type": "integer" },
            "result": result,
            "confidence": { "type": "number" },
            "error": { "type": "string" },
            "reported": { "type": "boolean" },
            "cache_hit": { "type": "boolean" }
        },
        "required": ["id", "kind", "status", "cost", "created_at"]
    })
}

/// The `tools/list` result.
pub fn list(features: Features, models: &[String]) -> Value {
    let tools: Vec<Value> = TOOLS
        .iter()
        .map(|tool| tool.definition(features, models))
        .collect();
    json!({ "tools": tools })
}

/// A `tools/call`, read: the tool and its arguments as `/v2` fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub tool: Tool,
    pub fields: Map<String, Value>,
}

/// Reads `tools/call`'s params. An unknown tool or params of the wrong shape are protocol
/// errors; arguments the tool does not take are the tool's error (`Err(Ok(message))`), so
/// that the model sees them and can correct itself.
pub fn read_call(params: &Map<String, Value>) -> Result<ToolCall, CallProblem> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let tool = Tool::named(name).ok_or_else(|| {
        CallProblem::Protocol(RpcError::new(
            INVALID_PARAMS,
            format!("unknown tool {name:?}"),
        ))
    })?;
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments.clone(),
        Some(_) => {
            let error = RpcError::new(INVALID_PARAMS, "arguments must be an object");
            return Err(CallProblem::Protocol(error));
        }
    };
    let schema = tool.input_schema(&[]);
    let known = schema["properties"]
        .as_object()
        .expect("schemas have properties");
    if let Some(unknown) = arguments.keys().find(|name| !known.contains_key(*name)) {
        let takes: Vec<&String> = known.keys().collect();
        let message = format!(
            "{} takes no argument {unknown:?} (it takes {takes:?})",
            tool.name()
        );
        return Err(CallProblem::Arguments(message));
    }
    Ok(ToolCall {
        tool,
        fields: as_fields(arguments),
    })
}

/// Why a `tools/call` cannot run.
#[derive(Clone, Debug, PartialEq)]
pub enum CallProblem {
    /// A JSON-RPC error.
    Protocol(RpcError),
    /// A tool error (1001 with this message).
    Arguments(String),
}

/// The arguments as `/v2` fields: the colour lists in the text forms `/v2` takes (`colors`
/// comma-separated, `color_ranges` as JSON text).
fn as_fields(mut arguments: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Array(colors)) = arguments.get("colors") {
        let names: Option<Vec<&str>> = colors.iter().map(Value::as_str).collect();
        if let Some(names) = names {
            arguments.insert("colors".into(), json!(names.join(",")));
        }
    }
    if let Some(ranges @ Value::Array(_)) = arguments.get("color_ranges") {
        let text = ranges.to_string();
        arguments.insert("color_ranges".into(), json!(text));
    }
    arguments
}

/// A tool's answer: `structured` as `structuredContent` (where the session's version has
/// it) and as JSON text.
pub fn success(structured: Value, features: Features) -> Value {
    let text = structured.to_string();
    let mut result = json!({
        "content": [{ "type": "text", "text": text }],
        "isError": false
    });
    if features.structured_output {
        result["structuredContent"] = structured;
    }
    result
}

/// A tool's refusal: the contract's code and message, as JSON text. No `structuredContent`:
/// clients validate it against the output schema, which describes answers.
pub fn failure(code: u32, message: &str) -> Value {
    let text = json!({ "code": code, "msg": message }).to_string();
    json!({
        "content": [{ "type": "text", "text": text }],
        "isError": true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Features = Features {
        structured_output: true,
    };

    fn call(params: Value) -> Result<ToolCall, CallProblem> {
        read_call(params.as_object().unwrap())
    }

    #[test]
    fn the_list_has_every_tool_with_schemas() {
        let models = vec!["old".to_string(), "beta".to_string()];
        let listed = list(NOW, &models);
        let tools = listed["tools"].as_array().unwrap();
        assert_eq!(tools.len(), TOOLS.len());
        for (tool, entry) in TOOLS.iter().zip(tools) {
            assert_eq!(entry["name"], tool.name());
            assert_eq!(entry["inputSchema"]["type"], "object");
            assert_eq!(entry["outputSchema"]["type"], "object");
            assert!(entry["title"].is_string() && entry["description"].is_string());
            let name_ok = tool.name().bytes().all(|b| b.is_ascii_lowercase());
            assert!(name_ok, "names within the spec's characters");
        }
        // A user's own model is taken by name too: no enum, the server's own as examples.
        let model = &tools[0]["inputSchema"]["properties"]["model"];
        assert!(model.get("enum").is_none(), "{model}");
        assert_eq!(model["examples"], json!(["old", "beta"]));
        assert!(model["description"].as_str().unwrap().contains("old, beta"));
        let old = list(
            Features {
                structured_output: false,
            },
            &models,
        );
        assert!(old["tools"][0].get("outputSchema").is_none());
        assert!(old["tools"][0].get("title").is_none());
    }

    #[test]
    fn calls_are_read_into_v2_fields() {
        let read = call(json!({
            "name": "ocr",
            "arguments": { "image": "AAAA", "colors": ["red", "blue"], "color_ranges": [[[0, 0, 0], [9, 9, 9]]], "probability": true }
        }))
        .unwrap();
        assert_eq!(read.tool, Tool::Ocr);
        assert_eq!(read.fields["colors"], "red,blue");
        assert_eq!(read.fields["color_ranges"], "[[[0,0,0],[9,9,9]]]");
        assert_eq!(read.fields["probability"], true);
        let balance = call(json!({ "name": "balance" })).unwrap();
        assert_eq!((balance.tool, balance.fields.len()), (Tool::Balance, 0));
    }

    #[test]
    fn unknown_tools_are_protocol_errors_and_unknown_arguments_tool_errors() {
        assert!(matches!(
            call(json!({ "name": "solve" })),
            Err(CallProblem::Protocol(RpcError {
                code: INVALID_PARAMS,
                ..
            }))
        ));
        assert!(matches!(
            call(json!({ "name": "ocr", "arguments": [1] })),
            Err(CallProblem::Protocol(_))
        ));
        let Err(CallProblem::Arguments(message)) =
            call(json!({ "name": "detect", "arguments": { "image": "", "model": "old" } }))
        else {
            panic!("detect takes no model");
        };
        assert!(message.contains("model"), "{message}");
    }

    #[test]
    fn results_carry_text_and_structure_and_errors_the_contract_code() {
        let done = success(json!({ "points": 5, "reserved": 0 }), NOW);
        assert_eq!(done["structuredContent"]["points"], 5);
        assert_eq!(done["isError"], false);
        let text: Value =
            serde_json::from_str(done["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, done["structuredContent"]);
        let refused = failure(2001, "not enough points");
        assert_eq!(refused["isError"], true);
        assert!(refused.get("structuredContent").is_none());
        let text: Value =
            serde_json::from_str(refused["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, json!({ "code": 2001, "msg": "not enough points" }));
    }
}
