//! The protocols other captcha clients speak, against the real server on real sockets: every
//! endpoint, both answer formats, the documented errors (always HTTP 200), lenient fields,
//! nothing charged for refused or unsolvable requests, reports refund once, callbacks only
//! to allowed destinations. The answers are ddddocr 1.6.1's (the fixtures' manifest).

mod common;

use common::{base64, fixture, manifest, multipart, receive_one_request, Client, Server};
use serde_json::{json, Value};
use std::net::TcpListener;

/// A server with one shard per test-sized machine, its demo user's API key, and fixtures.
struct Setup {
    server: Server,
    token: String,
    key: String,
}

fn setup(settings: &[&str]) -> Setup {
    let mut all = vec!["rate_limit_burst=1000"];
    all.extend_from_slice(settings);
    let server = Server::start(2, &all);
    let token = server.demo_token();
    let answer = server
        .client()
        .post_json("/v2/user/apikey", Some(&token), "{}");
    let key = answer.json()["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    Setup { server, token, key }
}

/// (file bytes, ddddocr's answer) of the `index`-th fixture.
fn sample(index: usize) -> (Vec<u8>, String) {
    let (file, old, _) = manifest().into_iter().nth(index).unwrap();
    (fixture(&file), old)
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", urlencode(value)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn post_form(client: &mut Client, path: &str, pairs: &[(&str, &str)]) -> common::Answer {
    client.post(
        path,
        None,
        "application/x-www-form-urlencoded",
        &form(pairs),
    )
}

fn in_php_multipart(setup: &Setup, image: &[u8], fields: &[(&str, &str)]) -> common::Answer {
    let mut all = vec![("key", setup.key.as_str()), ("method", "post")];
    all.extend_from_slice(fields);
    let (content_type, body) = multipart("file", image, &all);
    setup
        .server
        .client()
        .post("/in.php", None, &content_type, &body)
}

fn res_php(setup: &Setup, query: &str) -> common::Answer {
    let path = format!("/res.php?key={}&{query}", setup.key);
    setup.server.client().get(&path, None)
}

#[test]
fn twocaptcha_v1_solves_reports_and_shows_the_balance() {
    let setup = setup(&[]);
    let (image, expected) = sample(1);
    let submitted = in_php_multipart(
        &setup,
        &image,
        &[
            ("soft_id", "4580"),
            ("regsense", "0"),
            ("lang", "en"),
            ("textinstructions", "x"),
        ],
    );
    assert_eq!(submitted.status, 200);
    let text = submitted.text();
    let id = text
        .strip_prefix("OK|")
        .unwrap_or_else(|| panic!("{text}"))
        .to_string();
    assert!(id.bytes().all(|b| b.is_ascii_digit()));
    // Ready on the first poll.
    assert_eq!(
        res_php(&setup, &format!("action=get&id={id}")).text(),
        format!("OK|{expected}")
    );
    let json_get = res_php(&setup, &format!("action=get&id={id}&json=1")).json();
    assert_eq!(json_get, json!({ "status": 1, "request": expected }));
    assert_eq!(
        res_php(&setup, &format!("action=get2&id={id}")).text(),
        format!("OK|{expected}|0.00100")
    );
    assert_eq!(res_php(&setup, "action=getbalance").text(), "0.99900");
    let balance = res_php(&setup, "action=getbalance&json=1").json();
    assert_eq!(balance, json!({ "status": 1, "request": "0.99900" }));

    // base64, form-urlencoded, with JSON answers and the CORS header.
    let (image2, expected2) = sample(2);
    let mut client = setup.server.client();
    let encoded = base64(&image2);
    let submitted = post_form(
        &mut client,
        "/in.php",
        &[
            ("key", &setup.key),
            ("method", "base64"),
            ("body", &encoded),
            ("json", "1"),
            ("header_acao", "1"),
        ],
    );
    assert_eq!(submitted.header("access-control-allow-origin"), Some("*"));
    let id2 = submitted.json()["request"].as_str().unwrap().to_string();
    let both = res_php(&setup, &format!("action=get&ids={id},{id2},42"));
    assert_eq!(
        both.text(),
        format!("{expected}|{expected2}|ERROR_WRONG_CAPTCHA_ID")
    );

    assert_eq!(
        res_php(&setup, &format!("action=reportgood&id={id2}")).text(),
        "OK_REPORT_RECORDED"
    );
    assert_eq!(
        res_php(&setup, &format!("action=reportbad&id={id}")).text(),
        "OK_REPORT_RECORDED"
    );
    assert_eq!(
        res_php(&setup, &format!("action=reportbad&id={id}")).text(),
        "ERROR_DUPLICATE_REPORT"
    );
    assert_eq!(
        setup.server.balance(&setup.token),
        (999, 0),
        "one refund for two reports"
    );
}

#[test]
fn twocaptcha_v1_errors_are_its_own_and_cost_nothing() {
    let setup = setup(&[]);
    let (image, _) = sample(3);
    let mut client = setup.server.client();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("method", "base64".into()), ("body", base64(&image))],
            "ERROR_WRONG_USER_KEY",
        ),
        (
            vec![
                ("key", "0123456789abcdef0123456789abcdef".into()),
                ("method", "base64".into()),
                ("body", base64(&image)),
            ],
            "ERROR_KEY_DOES_NOT_EXIST",
        ),
        (
            vec![
                ("key", setup.key.clone()),
                ("method", "base64".into()),
                ("body", base64(&image[..50])),
            ],
            "ERROR_ZERO_CAPTCHA_FILESIZE",
        ),
        (
            vec![
                ("key", setup.key.clone()),
                ("method", "base64".into()),
                ("body", base64(&[7u8; 400])),
            ],
            "ERROR_IMAGE_TYPE_NOT_SUPPORTED",
        ),
        (
            vec![
                ("key", setup.key.clone()),
                ("method", "base64".into()),
                ("body", "!!!!".into()),
            ],
            "ERROR_UPLOAD",
        ),
        (
            vec![
                ("key", setup.key.clone()),
                ("method", "base64".into()),
                ("body", base64(&image)),
                ("numeric", "9".into()),
            ],
            "ERROR_BAD_PARAMETERS",
        ),
        (
            vec![
                ("key", setup.key.clone()),
                ("method", "userrecaptcha".into()),
            ],
            "ERROR_BAD_PARAMETERS",
        ),
        (
            vec![
                ("key", setup.key.clone()),
                ("method", "base64".into()),
                ("body", base64(&image)),
                ("pingback", "http://10.0.0.1/x".into()),
            ],
            "ERROR_BAD_PARAMETERS",
        ),
    ];
    for (fields, expected) in cases {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = post_form(&mut client, "/in.php", &pairs);
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (200, expected),
            "{pairs:?}"
        );
        let with_json: Vec<(&str, &str)> = pairs.iter().copied().chain([("json", "1")]).collect();
        let answer = post_form(&mut client, "/in.php", &with_json).json();
        assert_eq!(
            (&answer["status"], &answer["request"]),
            (&json!(0), &json!(expected))
        );
        assert!(answer["error_text"].is_string());
    }
    assert_eq!(res_php(&setup, "").text(), "ERROR_EMPTY_ACTION");
    assert_eq!(
        res_php(&setup, "action=get&id=abc").text(),
        "ERROR_WRONG_ID_FORMAT"
    );
    assert_eq!(
        res_php(&setup, "action=get&id=42").text(),
        "ERROR_WRONG_CAPTCHA_ID"
    );
    // An answer that cannot satisfy the hints is unsolvable and costs nothing.
    let submitted = in_php_multipart(&setup, &image, &[("min_len", "20")]);
    let id = submitted.text().strip_prefix("OK|").unwrap().to_string();
    assert_eq!(
        res_php(&setup, &format!("action=get&id={id}")).text(),
        "ERROR_CAPTCHA_UNSOLVABLE"
    );
    assert_eq!(
        setup.server.balance(&setup.token),
        (1000, 0),
        "nothing charged"
    );

    // A user without points.
    let admin = setup.server.admin_token();
    let (_, poor_token) = setup.server.create_user(&admin, "poor", 0, "user");
    let poor_key = setup
        .server
        .client()
        .post_json("/v2/user/apikey", Some(&poor_token), "{}");
    let poor_key = poor_key.json()["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = post_form(
        &mut client,
        "/in.php",
        &[
            ("key", &poor_key),
            ("method", "base64"),
            ("body", &base64(&image)),
        ],
    );
    assert_eq!(answer.text(), "ERROR_ZERO_BALANCE");
}

#[test]
fn twocaptcha_numeric_hints_restrict_the_characters() {
    let setup = setup(&[]);
    // Digits only: whatever ddddocr reads, the answer has no letters.
    for index in 0..6 {
        let (image, _) = sample(index);
        let id = in_php_multipart(&setup, &image, &[("numeric", "1")]).text();
        let id = id.strip_prefix("OK|").unwrap().to_string();
        let answer = res_php(&setup, &format!("action=get&id={id}")).text();
        // Only the charset is narrowed (no constraint): every image gets an answer.
        let text = answer
            .strip_prefix("OK|")
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text}");
    }
}

fn task_call(setup: &Setup, path: &str, body: Value) -> Value {
    let answer = setup
        .server
        .client()
        .post_json(path, None, &body.to_string());
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    answer.json()
}

#[test]
fn the_task_protocol_answers_ready_with_the_solution() {
    let setup = setup(&[]);
    let (image, expected) = sample(4);
    let created = task_call(
        &setup,
        "/createTask",
        json!({
            "clientKey": setup.key,
            "softId": 42,
            "languagePool": "en",
            "task": { "type": "ImageToTextTask", "body": base64(&image), "comment": false, "Case": true,
                      "CapMonsterModule": "x", "websiteURL": "https://example.com" }
        }),
    );
    assert_eq!(created["errorId"], 0, "{created}");
    assert_eq!(created["status"], "ready");
    assert_eq!(created["solution"]["text"], expected.as_str());
    let task_id = created["taskId"].as_u64().expect("a numeric taskId");
    let result = task_call(
        &setup,
        "/getTaskResult",
        json!({ "clientKey": setup.key, "taskId": task_id }),
    );
    assert_eq!(result["status"], "ready");
    assert_eq!(result["solution"]["text"], expected.as_str());
    assert_eq!(result["cost"], "0.00100");
    assert!(result["createTime"].as_u64().unwrap() <= result["endTime"].as_u64().unwrap());
    assert_eq!(result["solveCount"], 1);
    // A string taskId and the key as a bearer token are fine too.
    let by_bearer = setup.server.client().request(
        "POST",
        "/getTaskResult",
        &[
            ("Authorization", &format!("Bearer {}", setup.key)),
            ("Content-Type", "application/json"),
        ],
        json!({ "taskId": task_id.to_string() })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(by_bearer.json()["solution"]["text"], expected.as_str());
    let balance = task_call(&setup, "/getBalance", json!({ "clientKey": setup.key }));
    assert_eq!(balance, json!({ "errorId": 0, "balance": 0.999 }));
    let report = task_call(
        &setup,
        "/reportIncorrectImageCaptcha",
        json!({ "clientKey": setup.key, "taskId": task_id }),
    );
    assert_eq!(report, json!({ "errorId": 0, "status": "success" }));
    let again = task_call(
        &setup,
        "/reportIncorrect",
        json!({ "clientKey": setup.key, "taskId": task_id }),
    );
    assert_eq!(again["errorId"], 0, "a repeated report is not an error");
    assert_eq!(
        setup.server.balance(&setup.token),
        (1000, 0),
        "refunded once"
    );
    let correct = task_call(
        &setup,
        "/reportCorrect",
        json!({ "clientKey": setup.key, "taskId": task_id }),
    );
    assert_eq!(correct["status"], "success");
}

/// 2^53 - 1: the largest integer a JavaScript client (any reader of JSON numbers as
/// doubles) reads exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

#[test]
fn task_ids_are_exact_json_integers_that_outlive_a_restart() {
    let Setup { server, token, key } = setup(&[]);
    let create = |server: &Server, index: usize| {
        let (image, expected) = sample(index);
        let body = json!({ "clientKey": key, "task": { "type": "ImageToTextTask", "body": base64(&image) } });
        let created = server
            .client()
            .post_json("/createTask", None, &body.to_string())
            .json();
        assert_eq!(created["status"], "ready", "{created}");
        let task_id = created["taskId"].as_u64().expect("a JSON integer");
        assert!(
            task_id <= MAX_SAFE_INTEGER,
            "{task_id} is rounded by a double"
        );
        (task_id, expected)
    };
    let result = |server: &Server, task_id: Value| {
        let body = json!({ "clientKey": key, "taskId": task_id });
        server
            .client()
            .post_json("/getTaskResult", None, &body.to_string())
            .json()
    };
    let first = create(&server, 8);
    let second = create(&server, 9);
    assert_ne!(first.0, second.0);
    assert_ne!(first.1, second.1, "two answers to tell the tasks apart");
    for (task_id, expected) in [&first, &second] {
        // What a double keeps of the id is the id: the task a JavaScript client asks for
        // (`JSON.stringify` writes it back without a fraction; `4097.0` is taken too).
        let as_double = *task_id as f64;
        assert_eq!(as_double as u64, *task_id);
        for sent in [json!(as_double as u64), json!(as_double)] {
            let answer = result(&server, sent);
            assert_eq!(answer["solution"]["text"], expected.as_str(), "{answer}");
        }
    }
    // The 64-bit upload id (what older versions answered as taskId; a /v2 upload's id)
    // still names its upload, as a string or as an exact integer.
    let upload = server.client().post(
        "/v2/decode/upload?wait=1",
        Some(&token),
        "image/png",
        &sample(10).0,
    );
    let upload_id: u64 = upload.json()["data"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(upload_id > MAX_SAFE_INTEGER);
    for named in [json!(upload_id), json!(upload_id.to_string())] {
        let answer = result(&server, named);
        assert_eq!(
            answer["solution"]["text"],
            sample(10).1.as_str(),
            "{answer}"
        );
    }
    // After a restart: the same ids name the same tasks, and new ids are new.
    let mut server = server;
    assert_eq!(server.terminate(), 0);
    let server = server.restart();
    for (task_id, expected) in [&first, &second] {
        let answer = result(&server, json!(task_id));
        assert_eq!(answer["solution"]["text"], expected.as_str(), "{answer}");
    }
    let third = create(&server, 11);
    assert!(third.0 != first.0 && third.0 != second.0);
    assert_eq!(result(&server, json!(third.0 + 1_000))["errorId"], 16);
}

#[test]
fn the_task_protocol_errors_carry_ids_codes_and_descriptions() {
    let setup = setup(&["compat_wait_ms=0"]);
    let (image, expected) = sample(5);
    let error = |body: Value| {
        let answer = task_call(&setup, "/createTask", body);
        assert!(answer["errorDescription"].is_string(), "{answer}");
        (
            answer["errorId"].as_u64().unwrap(),
            answer["errorCode"].as_str().unwrap().to_string(),
        )
    };
    let task = |extra: Value| {
        let mut task = json!({ "type": "ImageToTextTask", "body": base64(&image) });
        task.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        task
    };
    assert_eq!(
        error(json!({ "task": task(json!({})) })),
        (1, "ERROR_KEY_DOES_NOT_EXIST".into())
    );
    assert_eq!(
        error(json!({ "clientKey": setup.key, "task": { "type": "RecaptchaV2TaskProxyless" } })),
        (23, "ERROR_TASK_NOT_SUPPORTED".into())
    );
    assert_eq!(
        error(json!({ "clientKey": setup.key, "task": task(json!({ "body": "" })) })),
        (3, "ERROR_ZERO_CAPTCHA_FILESIZE".into())
    );
    assert_eq!(
        error(
            json!({ "clientKey": setup.key, "task": task(json!({ "body": base64(&[1u8; 300]) })) })
        ),
        (15, "ERROR_IMAGE_TYPE_NOT_SUPPORTED".into())
    );
    assert_eq!(
        error(json!({ "clientKey": setup.key, "task": task(json!({ "numeric": 7 })) })),
        (110, "ERROR_BAD_PARAMETERS".into())
    );
    let unknown = task_call(
        &setup,
        "/getTaskResult",
        json!({ "clientKey": setup.key, "taskId": 12345 }),
    );
    assert_eq!(unknown["errorId"], 16);

    // compat_wait_ms=0: processing at once (with `status`), ready on a later poll.
    let created = task_call(
        &setup,
        "/createTask",
        json!({ "clientKey": setup.key, "task": task(json!({})) }),
    );
    assert_eq!(
        (created["errorId"].as_u64(), created["status"].as_str()),
        (Some(0), Some("processing"))
    );
    let task_id = created["taskId"].as_u64().unwrap();
    let result = loop {
        let result = task_call(
            &setup,
            "/getTaskResult",
            json!({ "clientKey": setup.key, "taskId": task_id }),
        );
        assert!(result["status"].is_string(), "{result}");
        if result["status"] != "processing" {
            break result;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(result["solution"]["text"], expected.as_str());
    // A threshold no answer reaches: unsolvable, not charged.
    let created = task_call(
        &setup,
        "/createTask",
        json!({ "clientKey": setup.key, "task": task(json!({ "recognizingThreshold": 100 })) }),
    );
    let task_id = created["taskId"].as_u64().unwrap();
    let result = loop {
        let result = task_call(
            &setup,
            "/getTaskResult",
            json!({ "clientKey": setup.key, "taskId": task_id }),
        );
        if result["status"] != "processing" {
            break result;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(
        (result["errorId"].as_u64(), result["errorCode"].as_str()),
        (Some(12), Some("ERROR_CAPTCHA_UNSOLVABLE"))
    );
    assert_eq!(
        setup.server.balance(&setup.token),
        (999, 0),
        "only the solved task was charged"
    );
}

#[test]
fn ddddocr_fastapi_ocr_with_a_key_or_the_configured_account() {
    let setup = setup(&["fastapi_account=demo"]);
    let (image, expected) = sample(6);
    let (content_type, body) = multipart("file", &image, &[("key", &setup.key)]);
    let answer = setup
        .server
        .client()
        .post("/ocr", None, &content_type, &body);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json(),
        json!({ "code": 200, "message": "Success", "data": expected })
    );
    // No key: the configured account pays.
    let mut client = setup.server.client();
    let data_uri = format!("data:image/png;base64,{}", base64(&image));
    let answer = post_form(
        &mut client,
        "/ocr",
        &[("image", &data_uri), ("probability", "true")],
    )
    .json();
    assert_eq!(answer["data"]["text"], expected.as_str());
    assert!(answer["data"]["confidence"].as_f64().unwrap() > 0.0);
    // `charsets` applies to its own request only.
    let digits = post_form(
        &mut client,
        "/ocr",
        &[("image", &base64(&image)), ("charsets", "0123456789")],
    )
    .json();
    assert!(
        digits["data"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_digit()),
        "{digits}"
    );
    let plain = post_form(&mut client, "/ocr", &[("image", &base64(&image))]).json();
    assert_eq!(plain["data"], expected.as_str(), "no charset left behind");
    assert_eq!(setup.server.balance(&setup.token), (996, 0));
    let none = post_form(&mut client, "/ocr", &[("probability", "false")]).json();
    assert_eq!(
        none,
        json!({ "code": 400, "message": "Either file or image must be provided", "data": null })
    );
    let bad = post_form(&mut client, "/ocr", &[("image", "!!!")]).json();
    assert_eq!(
        (bad["code"].as_u64(), bad["message"].as_str()),
        (Some(500), Some("Invalid base64 string"))
    );

    let keyed = setup_without_account();
    let answer = keyed
        .server
        .client()
        .post("/ocr", None, &content_type, &body)
        .json();
    assert_eq!(
        answer["code"], 401,
        "a key is required by default: {answer}"
    );
}

fn setup_without_account() -> Setup {
    setup(&[])
}

#[test]
fn callbacks_go_to_allowed_destinations_only() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let allow = format!("callback_allow=127.0.0.1:{port}");
    let setup = setup(&[&allow]);
    let (image, expected) = sample(7);
    let pingback = format!("http://127.0.0.1:{port}/done");
    let submitted = in_php_multipart(&setup, &image, &[("pingback", &pingback)]);
    let id = submitted.text().strip_prefix("OK|").unwrap().to_string();
    let body = String::from_utf8(receive_one_request(&listener)).unwrap();
    assert_eq!(body, format!("id={id}&code={}", urlencode(&expected)));

    let created = task_call(
        &setup,
        "/createTask",
        json!({ "clientKey": setup.key, "callbackUrl": pingback, "task": { "type": "ImageToTextTask", "body": base64(&image) } }),
    );
    let callback: Value = serde_json::from_slice(&receive_one_request(&listener)).unwrap();
    assert_eq!(callback["taskId"], created["taskId"]);
    assert_eq!(callback["solution"]["text"], expected.as_str());
    let elsewhere = task_call(
        &setup,
        "/createTask",
        json!({ "clientKey": setup.key, "callbackUrl": "http://127.0.0.1:1/x", "task": { "type": "ImageToTextTask", "body": base64(&image) } }),
    );
    assert_eq!(elsewhere["errorId"], 110, "{elsewhere}");
    assert_eq!(
        setup.server.balance(&setup.token),
        (998, 0),
        "the refused task cost nothing"
    );
    let metrics = setup.server.metrics();
    assert!(
        metrics.contains("aiocr_callbacks_delivered_total 2"),
        "{metrics}"
    );
}
