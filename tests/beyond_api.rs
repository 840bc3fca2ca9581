//! Click-in-order captchas (`POST /v2/decode/click`), math and constrained answers (`math`,
//! `numeric`, `min_len`, `max_len`, `case_insensitive` on `/v2/decode/upload(-base64)`)
//! through the real server and models, with the fixtures of tests/fixtures/beyond (their
//! origin is in its README): clicks inside the truth boxes, the values `aiocr ocr --math`
//! reads, answers that meet the constraints; charged like a decode, refusals and unsolvable
//! images not charged (5005), and the ledger verifies afterwards.

mod common;

use common::{base64, ledger_verify, manifest_rows, model_dir, multipart, Server};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Points a click captcha costs: a detection's (the server's default `detect_cost`).
const CLICK_COST: i64 = 5;

fn beyond(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/beyond")
        .join(kind)
}

fn rows(kind: &str) -> Vec<HashMap<String, String>> {
    manifest_rows(&beyond(kind).join("manifest.tsv"))
}

fn post_form(
    server: &Server,
    path: &str,
    token: &str,
    image: &[u8],
    fields: &[(&str, &str)],
) -> Value {
    let (content_type, body) = multipart("file", image, fields);
    server
        .client()
        .post(path, Some(token), &content_type, &body)
        .json()
}

fn post_json(server: &Server, path: &str, token: &str, body: Value) -> Value {
    server
        .client()
        .post_json(path, Some(token), &body.to_string())
        .json()
}

fn inside(point: &Value, area: &[i64]) -> bool {
    let (x, y) = (point[0].as_i64().unwrap(), point[1].as_i64().unwrap());
    area[0] <= x && x <= area[2] && area[1] <= y && y <= area[3]
}

/// The clicks of a finished click upload.
fn clicks_of(answer: &Value) -> Vec<Value> {
    let data = &answer["data"];
    assert_eq!(
        (data["status"].as_str(), data["kind"].as_str()),
        (Some("done"), Some("click")),
        "{answer}"
    );
    assert_eq!(data["cost"], CLICK_COST, "{answer}");
    data["result"].as_array().expect("the clicks").clone()
}

#[test]
fn click_captchas_click_inside_the_truth_boxes_at_a_detections_price() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let rows = rows("click");
    let mut charged = 0;
    for (index, row) in rows.iter().take(2).enumerate() {
        let image = std::fs::read(beyond("click").join(&row["file"])).unwrap();
        let hint_image = std::fs::read(beyond("click").join(&row["hint_image"])).unwrap();
        let truth: Vec<Vec<i64>> = serde_json::from_str(&row["truth_boxes_in_order"]).unwrap();
        // The text hint as a form field, the hint image as base64 in JSON.
        let by_text = post_form(
            &server,
            "/v2/decode/click?wait=1&timeout_ms=60000",
            &token,
            &image,
            &[("hint", &row["hint"])],
        );
        let body = json!({ "image": base64(&image), "hint_image": base64(&hint_image),
                           "wait": true, "timeout_ms": 60000 });
        let by_image = post_json(&server, "/v2/decode/click", &token, body);
        for answer in [&by_text, &by_image] {
            let clicks = clicks_of(answer);
            assert_eq!(clicks.len(), truth.len(), "{}: {answer}", row["file"]);
            for (click, area) in clicks.iter().zip(&truth) {
                assert!(
                    inside(click, area),
                    "{}: {click} not in {area:?}",
                    row["file"]
                );
            }
            charged += CLICK_COST;
        }
        if index == 0 {
            // Rectangles: the boxes the clicks are the centres of.
            let boxes = clicks_of(&post_form(
                &server,
                "/v2/decode/click?wait=1&timeout_ms=60000",
                &token,
                &image,
                &[("hint", &row["hint"]), ("rectangles", "1")],
            ));
            for (area, click) in boxes.iter().zip(clicks_of(&by_text)) {
                let area: Vec<i64> = area
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect();
                assert!(inside(&click, &area), "{click} in {area:?}");
            }
            // No hint: every box, in reading order (at least the hint's characters).
            let all = clicks_of(&post_form(
                &server,
                "/v2/decode/click?wait=1&timeout_ms=60000",
                &token,
                &image,
                &[],
            ));
            assert!(all.len() >= truth.len(), "{all:?}");
            charged += 2 * CLICK_COST;
        }
    }
    assert_eq!(server.balance(&token), (1000 - charged, 0));
    // More characters than boxes: unsolvable, not charged.
    let image = std::fs::read(beyond("click").join(&rows[0]["file"])).unwrap();
    let too_many = post_form(
        &server,
        "/v2/decode/click?wait=1&timeout_ms=60000",
        &token,
        &image,
        &[("hint", &"的".repeat(40))],
    );
    assert_eq!(too_many["code"], 5005, "{too_many}");
    // A hint image that is no image: refused before anything is charged.
    let bad_hint = post_form(
        &server,
        "/v2/decode/click",
        &token,
        &image,
        &[("hint_image", &base64(b"not an image"))],
    );
    assert_eq!(bad_hint["code"], 3003, "{bad_hint}");
    assert_eq!(server.balance(&token), (1000 - charged, 0));
}

/// `aiocr ocr --math` on the math fixtures: file name -> value, where it answers.
fn cli_math_values() -> HashMap<String, String> {
    let dir = beyond("math");
    let files: Vec<PathBuf> = rows("math")
        .iter()
        .map(|row| dir.join(&row["file"]))
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .arg("ocr")
        .arg("--math")
        .args(&files)
        .env("AIOCR_MODEL_DIR", model_dir())
        .output()
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (file, value) = line.split_once('\t')?;
            let name = Path::new(file).file_name()?.to_str()?.to_string();
            (!value.starts_with("error")).then(|| (name, value.to_string()))
        })
        .collect()
}

/// Text captchas (tests/fixtures/captcha) that hold no arithmetic expression.
const NOT_MATH: [&str; 4] = ["0001.png", "0005.png", "0007.jpg", "0008.png"];

#[test]
fn math_uploads_answer_the_value_and_refuse_what_is_no_expression_for_free() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let cli = cli_math_values();
    let mut charged = 0;
    let mut right = 0;
    for (index, row) in rows("math").iter().enumerate() {
        let Some(value) = cli
            .get(&row["file"])
            .filter(|value| **value == row["value"])
        else {
            continue;
        };
        let image = std::fs::read(beyond("math").join(&row["file"])).unwrap();
        let answer = match index % 2 {
            0 => post_form(
                &server,
                "/v2/decode/upload?wait=1&timeout_ms=60000",
                &token,
                &image,
                &[("math", "1")],
            ),
            _ => post_json(
                &server,
                "/v2/decode/upload-base64",
                &token,
                json!({ "file": base64(&image), "math": true, "wait": true, "timeout_ms": 60000 }),
            ),
        };
        assert_eq!(answer["data"]["status"], "done", "{answer}");
        assert_eq!(
            answer["data"]["result"].as_str(),
            Some(value.as_str()),
            "{}",
            row["file"]
        );
        charged += 1;
        right += 1;
    }
    assert!(
        right >= 3,
        "the CLI reads most math fixtures right ({right})"
    );
    assert_eq!(server.balance(&token), (1000 - charged, 0));
    let captchas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    for file in NOT_MATH {
        let image = std::fs::read(captchas.join(file)).unwrap();
        let answer = post_form(
            &server,
            "/v2/decode/upload?wait=1&timeout_ms=60000",
            &token,
            &image,
            &[("math", "1")],
        );
        assert_eq!(answer["code"], 5005, "{file}: {answer}");
    }
    // Math with constraints is a contradiction; a bad constraint is refused.
    let image = std::fs::read(captchas.join(NOT_MATH[0])).unwrap();
    for fields in [
        [("math", "1"), ("numeric", "1")],
        [("numeric", "9"), ("wait", "1")],
        [("min_len", "5"), ("max_len", "4")],
    ] {
        let answer = post_form(&server, "/v2/decode/upload", &token, &image, &fields);
        assert_eq!(answer["code"], 3006, "{fields:?}: {answer}");
    }
    assert_eq!(
        server.balance(&token),
        (1000 - charged, 0),
        "refusals cost nothing"
    );
}

/// A text captcha whose ddddocr answer (`jXs8`) breaks what it is: four letters, `jxsg`.
const BROKEN_BY_DDDDOCR: (&str, &str) = ("0054.png", "jxsg");

#[test]
fn constrained_uploads_meet_the_constraints_or_cost_nothing() {
    let mut server = Server::start(1, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let captchas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    let (file, label) = BROKEN_BY_DDDDOCR;
    let image = std::fs::read(captchas.join(file)).unwrap();
    let plain = post_form(
        &server,
        "/v2/decode/upload?wait=1&timeout_ms=60000",
        &token,
        &image,
        &[],
    );
    assert_eq!(
        plain["data"]["result"], "jXs8",
        "ddddocr's own answer: {plain}"
    );
    // Four letters, case not mattering: the search finds the label.
    let form = post_form(
        &server,
        "/v2/decode/upload?wait=1&timeout_ms=60000",
        &token,
        &image,
        &[
            ("numeric", "2"),
            ("min_len", "4"),
            ("max_len", "4"),
            ("case_insensitive", "1"),
        ],
    );
    let json = post_json(
        &server,
        "/v2/decode/upload-base64",
        &token,
        json!({ "file": base64(&image), "numeric": 2, "min_len": 4, "max_len": 4,
                "case_insensitive": true, "wait": true, "timeout_ms": 60000 }),
    );
    for answer in [&form, &json] {
        let text = answer["data"]["result"].as_str().expect("an answer");
        assert_eq!(text.to_lowercase(), label, "{answer}");
    }
    assert_eq!(server.balance(&token), (997, 0));
    // More characters than the image has steps for: unsolvable, refunded.
    let none = post_form(
        &server,
        "/v2/decode/upload?wait=1&timeout_ms=60000",
        &token,
        &image,
        &[("min_len", "64")],
    );
    assert_eq!(none["code"], 5005, "{none}");
    assert_eq!(server.balance(&token), (997, 0));
    assert_eq!(server.terminate(), 0);
    let (code, output) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{output}");
}

/// The task protocol's click tasks over raw HTTP: `CoordinatesTask` (text or image
/// instruction) answers `[{"x", "y"}, ...]`, anti-captcha's `ImageToCoordinatesTask` `[[x, y],
/// ...]` or, in `rectangles` mode, the boxes; each task keeps its shape after a restart.
/// Charged a detection's price; refusals and unsolvable tasks cost nothing.
#[test]
fn click_tasks_answer_in_each_protocols_shape() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let key = post_json(&server, "/v2/user/apikey", &token, json!({}))["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let row = &rows("click")[0];
    let image = base64(&std::fs::read(beyond("click").join(&row["file"])).unwrap());
    let hint_image = base64(&std::fs::read(beyond("click").join(&row["hint_image"])).unwrap());
    let truth: Vec<Vec<i64>> = serde_json::from_str(&row["truth_boxes_in_order"]).unwrap();
    let call = |path: &str, body: Value| {
        let mut body = body;
        body["clientKey"] = json!(key);
        server
            .client()
            .post_json(path, None, &body.to_string())
            .json()
    };
    let create = |task: Value| {
        let created = call("/createTask", json!({ "task": task }));
        assert_eq!(created["status"], "ready", "{created}");
        (
            created["taskId"].as_u64().unwrap(),
            created["solution"].clone(),
        )
    };
    let by_text =
        create(json!({ "type": "CoordinatesTask", "body": image, "comment": row["hint"] }));
    let by_image =
        create(json!({ "type": "CoordinatesTask", "body": image, "imgInstructions": hint_image }));
    let points = create(json!({ "type": "ImageToCoordinatesTask", "body": image,
                                "comment": row["hint"], "mode": "points" }));
    let boxes = create(json!({ "type": "ImageToCoordinatesTask", "body": image,
                               "comment": row["hint"], "mode": "rectangles" }));
    let as_objects = |solution: &Value| -> Vec<Value> {
        let clicks = solution["coordinates"].as_array().expect("coordinates");
        clicks.iter().map(|c| json!([c["x"], c["y"]])).collect()
    };
    let inside_all = |clicks: &[Value]| {
        assert_eq!(clicks.len(), truth.len(), "{clicks:?}");
        for (click, area) in clicks.iter().zip(&truth) {
            assert!(inside(click, area), "{click} not in {area:?}");
        }
    };
    inside_all(&as_objects(&by_text.1));
    inside_all(&as_objects(&by_image.1));
    inside_all(points.1["coordinates"].as_array().unwrap());
    let rectangles = boxes.1["coordinates"].as_array().unwrap();
    for (area, click) in rectangles
        .iter()
        .zip(points.1["coordinates"].as_array().unwrap())
    {
        let area: Vec<i64> = serde_json::from_value(area.clone()).expect("[x1, y1, x2, y2]");
        assert!(
            area.len() == 4 && inside(click, &area),
            "{click} in {area:?}"
        );
    }
    // The same click captcha through 2captcha v1: `res.php` with `ids` answers it in
    // 2captcha's words too, as `get` does.
    let form = format!(
        "key={key}&method=base64&coordinatescaptcha=1&body={}&textinstructions={}",
        form_encode(&image),
        form_encode(&row["hint"])
    );
    let submitted = server
        .client()
        .post(
            "/in.php",
            None,
            "application/x-www-form-urlencoded",
            form.as_bytes(),
        )
        .text();
    let id = submitted.strip_prefix("OK|").expect("an id").to_string();
    let several = (0..600)
        .map(|_| {
            let path = format!("/res.php?key={key}&action=get&ids={id},{id}");
            let answer = server.client().get(&path, None).text();
            if answer.contains("CAPCHA_NOT_READY") {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            answer
        })
        .find(|answer| !answer.contains("CAPCHA_NOT_READY"))
        .expect("an answer within a minute");
    let answers: Vec<&str> = several.split('|').collect();
    assert_eq!(answers.len(), 2, "{several}");
    assert!(answers[0].starts_with("coordinates:x="), "{several}");
    // Refused before anything is charged, in the protocol's errors.
    let refused = |task: Value, error_id: u64| {
        let answer = call("/createTask", json!({ "task": task }));
        assert_eq!(answer["errorId"], error_id, "{answer}");
    };
    refused(
        json!({ "type": "ImageToCoordinatesTask", "body": image, "mode": "circles" }),
        110,
    );
    refused(
        json!({ "type": "CoordinatesTask", "body": image, "imgInstructions": "bm90IGFuIGltYWdl" }),
        15,
    );
    refused(json!({ "type": "CoordinatesTask", "comment": "有" }), 3);
    // More characters than the image holds: unsolvable, refunded.
    let unsolvable = call(
        "/createTask",
        json!({ "task": {
        "type": "CoordinatesTask", "body": image, "comment": "的".repeat(40) } }),
    );
    assert_eq!(
        (
            unsolvable["errorId"].as_u64(),
            unsolvable["status"].as_str()
        ),
        (Some(12), Some("failed")),
        "{unsolvable}"
    );
    assert_eq!(server.balance(&key), (1000 - 5 * CLICK_COST, 0));
    // After a restart each task still answers in its own shape.
    let mut server = server;
    assert_eq!(server.terminate(), 0);
    let server = server.restart();
    for (task_id, solution) in [&by_text, &by_image, &points, &boxes] {
        let body = json!({ "clientKey": key, "taskId": task_id });
        let result = server
            .client()
            .post_json("/getTaskResult", None, &body.to_string())
            .json();
        assert_eq!(&result["solution"], solution, "{result}");
    }
}

/// The protocols' lengths search for the best reading that meets them (as `/v2`'s
/// constraints do), instead of refusing ddddocr's answer: 2captcha's `min_len`/`max_len` and
/// the task protocol's `minLength`/`maxLength` on a captcha whose ddddocr answer (`jXs8`)
/// breaks "four letters". A length the image does not hold is unsolvable and costs nothing.
#[test]
fn protocol_lengths_find_the_reading_that_meets_them() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let key = post_json(&server, "/v2/user/apikey", &token, json!({}))["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let captchas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    let (file, label) = BROKEN_BY_DDDDOCR;
    let image = base64(&std::fs::read(captchas.join(file)).unwrap());
    let create = |length: usize| {
        let task = json!({ "type": "ImageToTextTask", "body": image, "numeric": 2,
                           "minLength": length, "maxLength": length });
        let body = json!({ "clientKey": key, "task": task });
        server
            .client()
            .post_json("/createTask", None, &body.to_string())
            .json()
    };
    let found = create(label.len());
    let text = found["solution"]["text"].as_str().expect("a solution");
    assert_eq!(text.to_lowercase(), label, "{found}");
    // 2captcha v1, the same rules as form fields.
    let form = [
        ("key", key.as_str()),
        ("method", "base64"),
        ("body", image.as_str()),
        ("numeric", "2"),
        ("min_len", "4"),
        ("max_len", "4"),
        ("json", "1"),
    ];
    let body: Vec<String> = form
        .iter()
        .map(|(name, value)| format!("{name}={}", form_encode(value)))
        .collect();
    let submitted = server
        .client()
        .post(
            "/in.php",
            None,
            "application/x-www-form-urlencoded",
            body.join("&").as_bytes(),
        )
        .json();
    let id = submitted["request"].as_str().expect("an id").to_string();
    // Polled as 2captcha's clients do, until it is ready.
    let answer = (0..600)
        .map(|_| {
            let path = format!("/res.php?key={key}&action=get&id={id}&json=1");
            let answer = server.client().get(&path, None).json();
            if answer["request"] == "CAPCHA_NOT_READY" {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            answer
        })
        .find(|answer| answer["request"] != "CAPCHA_NOT_READY")
        .expect("an answer within a minute");
    let text = answer["request"].as_str().expect("an answer");
    assert_eq!(text.to_lowercase(), label, "{answer}");
    assert_eq!(server.balance(&key), (998, 0));
    // Twice the characters the image holds: refused, not made up, and not charged.
    let made_up = create(2 * label.len());
    assert_eq!(made_up["errorId"], 12, "{made_up}");
    assert_eq!(server.balance(&key), (998, 0));
}

/// A form field's value, every byte but ASCII letters and digits percent-encoded.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte.is_ascii_alphanumeric() {
            true => (byte as char).to_string(),
            false => format!("%{byte:02X}"),
        })
        .collect()
}
