//! The task protocol's click tasks, and how each task type's solution is written:
//!
//! - `ImageToTextTask`: `{"text": "..."}`;
//! - `CoordinatesTask` (2captcha v2, CapMonster, CapSolver: `body`, `comment`,
//!   `imgInstructions`): `{"coordinates": [{"x": 39, "y": 59}, ...]}`;
//! - `ImageToCoordinatesTask` (anti-captcha: `body`, `comment`, `mode` `points` or
//!   `rectangles`; `imgInstructions` taken too): `{"coordinates": [[39, 59], ...]}` or `[[x1, y1, x2, y2], ...]`.
//!
//! Both click types run a click-in-order upload (upload/click.rs's task: `comment` holds the
//! characters to click, `imgInstructions` an image of them; neither: every box in reading
//! order). The upload's record holds the clicks as `/v2` shows them (`[[x, y], ...]` or the
//! boxes); which protocol's shape `getTaskResult` writes them in is the task's
//! [`AnswerFormat`], kept with its task id (the store's task mapping), so it holds after a
//! restart as long as the task id does.

use crate::recognition::ClickHint;
use crate::server::upload::is_click_record;
use crate::store::UploadRecord;
use serde_json::{json, Map, Value};

pub const IMAGE_TO_TEXT: &str = "ImageToTextTask";
pub const COORDINATES: &str = "CoordinatesTask";
pub const IMAGE_TO_COORDINATES: &str = "ImageToCoordinatesTask";

/// How a task's solution is written, chosen by its task type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerFormat {
    /// `{"text": ...}` (and, for a click upload named by its upload id, `CoordinatesTask`'s
    /// shape: the text protocol has none of its own).
    Text,
    /// `CoordinatesTask`: a list of `{"x", "y"}`.
    PointObjects,
    /// `ImageToCoordinatesTask`: a list of `[x, y]` (or `[x1, y1, x2, y2]`).
    Arrays,
}

impl AnswerFormat {
    /// The byte the store keeps with the task id (0: text, what tasks of versions before
    /// click tasks read as).
    pub fn tag(self) -> u8 {
        match self {
            AnswerFormat::Text => 0,
            AnswerFormat::PointObjects => 1,
            AnswerFormat::Arrays => 2,
        }
    }

    /// The format of a stored tag; an unknown tag (a newer version's) is written as text.
    pub fn of_tag(tag: u8) -> AnswerFormat {
        match tag {
            1 => AnswerFormat::PointObjects,
            2 => AnswerFormat::Arrays,
            _ => AnswerFormat::Text,
        }
    }

    /// The format of a task type this server solves, `None` for any other.
    pub fn of_task_type(kind: &str) -> Option<AnswerFormat> {
        match kind {
            IMAGE_TO_TEXT => Some(AnswerFormat::Text),
            COORDINATES => Some(AnswerFormat::PointObjects),
            IMAGE_TO_COORDINATES => Some(AnswerFormat::Arrays),
            _ => None,
        }
    }

    /// A done upload's `solution`.
    pub fn solution(self, record: &UploadRecord) -> Value {
        let result = record.result.as_deref().unwrap_or("");
        if !is_click_record(record) {
            return json!({ "text": result });
        }
        // Written by upload/finish.rs from serde: a list of points or of boxes.
        let clicks: Vec<Vec<i64>> = serde_json::from_str(result).unwrap_or_default();
        let coordinates = match self {
            AnswerFormat::Arrays => json!(clicks),
            AnswerFormat::Text | AnswerFormat::PointObjects => {
                Value::Array(clicks.iter().map(|click| point_object(click)).collect())
            }
        };
        json!({ "coordinates": coordinates })
    }
}

/// `{"x", "y"}` of a point; a box (a `/v2` rectangles upload named by its id) as its corners.
fn point_object(click: &[i64]) -> Value {
    match click {
        [x, y] => json!({ "x": x, "y": y }),
        [x1, y1, x2, y2] => json!({ "x1": x1, "y1": y1, "x2": x2, "y2": y2 }),
        other => json!(other),
    }
}

/// What a click task asks for: the hint (its instruction image still base64, decoded by the
/// caller with the body's checks) and whether the boxes are the answer.
pub struct ClickRequest<'a> {
    pub text: Option<&'a str>,
    pub image_base64: Option<&'a str>,
    pub rectangles: bool,
}

impl ClickRequest<'_> {
    /// The hint, given the instruction image decoded: the text wins when both come (it is
    /// exact; an image is read by the model), as on `/v2/decode/click`.
    pub fn hint(&self, image: Option<Vec<u8>>) -> ClickHint {
        match (self.text, image) {
            (Some(text), _) => ClickHint::Text(text.to_string()),
            (None, Some(image)) => ClickHint::Image(image),
            (None, None) => ClickHint::Nothing,
        }
    }
}

/// The click request of a `CoordinatesTask` or `ImageToCoordinatesTask`; `Err` is a text for
/// `ERROR_BAD_PARAMETERS`. `comment` may be `false` (anticaptchaofficial's default when none
/// is set): no instruction. `minClicks`/`maxClicks` (for human workers) change nothing: the
/// answer has one click per character asked for.
pub fn click_request(
    format: AnswerFormat,
    task: &Map<String, Value>,
) -> Result<ClickRequest<'_>, String> {
    assert_ne!(format, AnswerFormat::Text, "a click task");
    let nonempty = |name: &str| {
        task.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
    };
    let rectangles = match format {
        AnswerFormat::Arrays => match task.get("mode") {
            None | Some(Value::Null) => false,
            Some(Value::String(mode)) if mode.eq_ignore_ascii_case("points") => false,
            Some(Value::String(mode)) if mode.eq_ignore_ascii_case("rectangles") => true,
            Some(_) => return Err("mode must be \"points\" or \"rectangles\"".into()),
        },
        _ => false,
    };
    Ok(ClickRequest {
        text: nonempty("comment"),
        image_base64: nonempty("imgInstructions"),
        rectangles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UploadStatus;

    fn click_record(result: &str) -> UploadRecord {
        UploadRecord {
            id: 1,
            user_id: 1,
            status: UploadStatus::Done,
            result: Some(result.into()),
            confidence: None,
            error: None,
            cost: 5,
            created_at_ms: 0,
            finished_at_ms: Some(0),
            reported: false,
            soft_id: None,
            cache_hit: false,
            model: "click".into(),
            image_hash: [0; 16],
        }
    }

    #[test]
    fn each_task_type_writes_its_own_shape() {
        let points = click_record("[[39,59],[252,72]]");
        assert_eq!(
            AnswerFormat::PointObjects.solution(&points),
            json!({ "coordinates": [{"x": 39, "y": 59}, {"x": 252, "y": 72}] })
        );
        assert_eq!(
            AnswerFormat::Arrays.solution(&points),
            json!({ "coordinates": [[39, 59], [252, 72]] })
        );
        let boxes = click_record("[[1,2,30,40]]");
        assert_eq!(
            AnswerFormat::Arrays.solution(&boxes),
            json!({ "coordinates": [[1, 2, 30, 40]] })
        );
        let mut text = click_record("jXs8");
        text.model = "default".into();
        assert_eq!(
            AnswerFormat::Text.solution(&text),
            json!({ "text": "jXs8" })
        );
        for format in [
            AnswerFormat::Text,
            AnswerFormat::PointObjects,
            AnswerFormat::Arrays,
        ] {
            assert_eq!(AnswerFormat::of_tag(format.tag()), format);
        }
        assert_eq!(AnswerFormat::of_tag(200), AnswerFormat::Text);
    }

    #[test]
    fn click_tasks_read_their_fields() {
        let task = json!({ "comment": " 有她验 ", "mode": "Rectangles", "imgInstructions": "x" });
        let read = click_request(AnswerFormat::Arrays, task.as_object().unwrap()).unwrap();
        assert_eq!(read.text, Some("有她验"));
        assert!(read.rectangles);
        assert_eq!(read.image_base64, Some("x"));
        let task = json!({ "comment": false, "imgInstructions": "iVBOR" });
        let read = click_request(AnswerFormat::PointObjects, task.as_object().unwrap()).unwrap();
        assert_eq!((read.text, read.image_base64), (None, Some("iVBOR")));
        assert!(matches!(read.hint(None), ClickHint::Nothing));
        assert!(matches!(read.hint(Some(vec![1])), ClickHint::Image(_)));
        let bad = json!({ "mode": "circles" });
        assert!(click_request(AnswerFormat::Arrays, bad.as_object().unwrap()).is_err());
    }
}
