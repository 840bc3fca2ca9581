//! Click captchas, slide captchas and the colour filter through the real server: the same
//! answers as ddddocr 1.6.1 (tests/fixtures/ddddocr-more, made by ddddocr itself), sync and
//! async, each kind at its price, refundable; refused input costs nothing; ddddocr-fastapi's
//! `/detection` and `/slide_match` give the same answers.

mod common;

use common::{base64, poll_until_finished, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Points a detection costs (the server's default `detect_cost`).
const DETECT_COST: i64 = 5;

fn more(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ddddocr-more")
        .join(kind)
}

/// The rows of a ddddocr-more manifest, as columns.
fn rows(kind: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(more(kind).join("manifest.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

fn read(kind: &str, file: &str) -> Vec<u8> {
    std::fs::read(more(kind).join(file)).unwrap()
}

/// A multipart body of file parts and text fields.
fn multipart(files: &[(&str, &[u8])], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "aiocrKindsBoundary4Qx";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .bytes(),
        );
    }
    for (name, bytes) in files {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.img\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn post(
    server: &Server,
    path: &str,
    token: &str,
    files: &[(&str, &[u8])],
    fields: &[(&str, &str)],
) -> Value {
    let (content_type, body) = multipart(files, fields);
    let answer = server
        .client()
        .post(path, Some(token), &content_type, &body);
    let json = answer.json();
    assert!(json.is_object(), "{path}: {}", answer.text());
    json
}

/// ddddocr's slide dict, its confidence rounded to 6 places in the manifest: equal targets,
/// confidence within 1e-5 (issue 21), as in tests/ddddocr_more_parity.rs.
fn assert_same_slide(ours: &Value, theirs: &Value) {
    for key in ["target", "target_x", "target_y"] {
        assert_eq!(
            ours.get(key),
            theirs.get(key),
            "{key}: ours {ours}, ddddocr {theirs}"
        );
    }
    match (ours.get("confidence"), theirs.get("confidence")) {
        (Some(a), Some(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() < 1e-5, "confidence {a} vs {b}");
        }
        (None, None) => {}
        other => panic!("confidence present on one side only: {other:?}"),
    }
}

#[test]
fn click_captchas_sync_and_async_as_ddddocr_at_their_price() {
    let server = Server::start(2, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let rows = rows("det");
    for (index, row) in rows.iter().take(6).enumerate() {
        let image = read("det", &row[0]);
        let expected: Value = serde_json::from_str(&row[5]).unwrap();
        let data = if index % 2 == 0 {
            let answer = post(
                &server,
                "/v2/decode/detect?wait=1&timeout_ms=30000",
                &token,
                &[("file", &image)],
                &[],
            );
            answer["data"].clone()
        } else {
            // Async, base64 in JSON, then polled.
            let body = json!({ "image": base64(&image) }).to_string();
            let answer = server
                .client()
                .post_json("/v2/decode/detect", Some(&token), &body)
                .json();
            let id = answer["data"]["id"].as_str().unwrap().to_string();
            poll_until_finished(&mut server.client(), &token, &id)
        };
        assert_eq!(data["status"], "done", "{data}");
        assert_eq!(data["kind"], "detect");
        assert_eq!(data["result"], expected, "{}", row[0]);
        assert_eq!(data["cost"], DETECT_COST);
    }
    assert_eq!(server.balance(&token), (1000 - 6 * DETECT_COST, 0));
    // The result of a detection reads back the same, and is refunded once when reported.
    let image = read("det", &rows[0][0]);
    let answer = post(
        &server,
        "/v2/decode/detect?wait=1&timeout_ms=30000",
        &token,
        &[("file", &image)],
        &[],
    );
    let id = answer["data"]["id"].as_str().unwrap();
    let result = server
        .client()
        .get(&format!("/v2/result?id={id}"), Some(&token))
        .json();
    assert_eq!(result["data"]["result"], answer["data"]["result"]);
    let report = server
        .client()
        .post(&format!("/v2/report?id={id}"), Some(&token), "", b"")
        .json();
    assert_eq!(report["data"]["refunded"], DETECT_COST, "{report}");
    assert_eq!(server.balance(&token), (1000 - 6 * DETECT_COST, 0));
}

#[test]
fn slide_captchas_of_every_mode_as_ddddocr() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let all = rows("slide");
    let mut checked = 0;
    for kind in ["match", "match_simple", "comparison"] {
        for row in all.iter().filter(|row| row[0] == kind).take(3) {
            let (target, background) = (read("slide", &row[1]), read("slide", &row[2]));
            let mode = match kind {
                "match" => "match",
                "match_simple" => "simple",
                _ => "comparison",
            };
            let answer = if checked % 2 == 0 {
                post(
                    &server,
                    "/v2/decode/slide?wait=1&timeout_ms=30000",
                    &token,
                    &[("target", &target), ("background", &background)],
                    &[("mode", mode)],
                )
            } else {
                let body = json!({
                    "target": base64(&target), "background": base64(&background),
                    "mode": mode, "wait": true, "timeout_ms": 30000
                });
                server
                    .client()
                    .post_json("/v2/decode/slide", Some(&token), &body.to_string())
                    .json()
            };
            let data = &answer["data"];
            assert_eq!(
                (data["status"].as_str(), data["kind"].as_str()),
                (Some("done"), Some("slide")),
                "{answer}"
            );
            assert_same_slide(&data["result"], &serde_json::from_str(&row[5]).unwrap());
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
    assert_eq!(
        server.balance(&token),
        (1000 - 9, 0),
        "a slide costs 1 point"
    );
}

#[test]
fn text_captchas_take_ddddocrs_colour_filter() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    for row in rows("color").iter().take(6) {
        let image = read("color", &row[0]);
        let answer = post(
            &server,
            "/v2/decode/upload?wait=1&timeout_ms=30000",
            &token,
            &[("file", &image)],
            &[("colors", &row[1])],
        );
        assert_eq!(
            answer["data"]["result"],
            row[3].as_str(),
            "{} with {}",
            row[0],
            row[1]
        );
        let plain = post(
            &server,
            "/v2/decode/upload?wait=1&timeout_ms=30000",
            &token,
            &[("file", &image)],
            &[],
        );
        assert_eq!(
            plain["data"]["result"],
            row[4].as_str(),
            "{} unfiltered",
            row[0]
        );
    }
}

#[test]
fn bad_kinds_input_is_refused_and_costs_nothing() {
    let server = Server::start(1, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let slides = rows("slide");
    let comparison = slides.iter().find(|row| row[0] == "comparison").unwrap();
    let (target, background) = (read("slide", &comparison[1]), read("slide", &comparison[2]));
    let code = |answer: &Value| answer["code"].as_i64().unwrap();
    let bad_mode = post(
        &server,
        "/v2/decode/slide?wait=1&timeout_ms=30000",
        &token,
        &[("target", &target), ("background", &background)],
        &[("mode", "sideways")],
    );
    assert_eq!(code(&bad_mode), 3006);
    let one_image = post(
        &server,
        "/v2/decode/slide?wait=1&timeout_ms=30000",
        &token,
        &[("target", &target)],
        &[],
    );
    assert_eq!(code(&one_image), 3001);
    let bad_colour = post(
        &server,
        "/v2/decode/upload?wait=1&timeout_ms=30000",
        &token,
        &[("file", &target)],
        &[("colors", "teal")],
    );
    assert_eq!(code(&bad_colour), 3006);
    let bad_range = post(
        &server,
        "/v2/decode/upload?wait=1&timeout_ms=30000",
        &token,
        &[("file", &target)],
        &[("color_ranges", "[[[0,0,0],[200,0,0]]]")],
    );
    assert_eq!(code(&bad_range), 3006);
    let not_an_image = post(
        &server,
        "/v2/decode/detect?wait=1&timeout_ms=30000",
        &token,
        &[("file", &[7u8; 400])],
        &[],
    );
    assert_eq!(code(&not_an_image), 3003);
    // Sizes are known to differ only once decoded: 3007, and the reservation is voided.
    let small = read("det", &rows("det")[0][0]);
    let mismatch = post(
        &server,
        "/v2/decode/slide?wait=1&timeout_ms=30000",
        &token,
        &[("target", &small), ("background", &background)],
        &[("mode", "comparison")],
    );
    assert_eq!(code(&mismatch), 3007, "{mismatch}");
    assert_eq!(server.balance(&token), (1000, 0), "nothing charged");
}

#[test]
fn ddddocr_fastapi_detection_and_slide_match() {
    let server = Server::start(1, &["rate_limit_burst=1000", "fastapi_account=demo"]);
    let token = server.demo_token();
    let det = &rows("det")[1];
    let image = read("det", &det[0]);
    let answer = post(&server, "/detection", &token, &[("file", &image)], &[]);
    let expected: Value = serde_json::from_str(&det[5]).unwrap();
    assert_eq!(
        answer,
        json!({ "code": 200, "message": "Success", "data": expected })
    );
    let slides = rows("slide");
    let simple = slides.iter().find(|row| row[0] == "match_simple").unwrap();
    let (target, background) = (read("slide", &simple[1]), read("slide", &simple[2]));
    let files = post(
        &server,
        "/slide_match",
        &token,
        &[("target_file", &target), ("background_file", &background)],
        &[("simple_target", "true")],
    );
    assert_eq!(files["code"], 200, "{files}");
    assert_same_slide(&files["data"], &serde_json::from_str(&simple[5]).unwrap());
    // ddddocr-fastapi itself fails on the base64 pair; here it works.
    let encoded = post(
        &server,
        "/slide_match",
        &token,
        &[],
        &[
            ("target", &base64(&target)),
            ("background", &base64(&background)),
            ("simple_target", "1"),
        ],
    );
    assert_eq!(encoded["data"], files["data"]);
    let missing = post(
        &server,
        "/slide_match",
        &token,
        &[("target_file", &target)],
        &[],
    );
    assert_eq!(missing["code"], 400);
    assert_eq!(
        missing["message"],
        "Both target and background must be provided"
    );
    assert_eq!(server.balance(&token), (1000 - DETECT_COST - 2, 0));
}
