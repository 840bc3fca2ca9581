//! Every integer in every JSON the server writes is within +-(2^53 - 1), the integers a
//! reader of JSON numbers as doubles (JavaScript's `JSON.parse`) reads exactly (RFC 7493).
//!
//! One live server, with every points amount at its maximum where a client can put it there:
//! costs of 2^53 - 1 points, a balance granted to 2^53 - 1 before every paid call, the stats,
//! refunds, reservations and totals that follow (the day's `points_spent` passes the bound
//! and is written saturated). Every route of the server is called, with valid credentials so
//! that its answer with data is walked, and so are refusals of each family and a callback's
//! body: every JSON answer is walked by `aiocr::json_numbers::unsafe_integers`. Which routes
//! exist is read from the server's own `/metrics` (every route of its table has a counter):
//! a route this test does not call fails it, so a new endpoint is walked from its first day.

mod common;

use aiocr::json_numbers::{unsafe_integers, MAX_SAFE_INTEGER};
use aiocr::recognition::cache::digest;
use common::{base64, fixture, multipart, multipart_form, receive_one_request, Answer, Server};
use serde_json::{json, Value};
use std::cell::Cell;
use std::net::TcpListener;
use std::path::Path;

const MAX: i64 = MAX_SAFE_INTEGER;

/// The server, and how many JSON answers were walked.
struct Walk {
    server: Server,
    admin: String,
    walked: Cell<usize>,
}

impl Walk {
    /// Sends a request; a JSON answer must keep every integer within the bound.
    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        kind: &str,
        body: &[u8],
    ) -> Answer {
        let auth = token.map(|token| format!("Bearer {token}"));
        let mut headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        if !kind.is_empty() {
            headers.push(("Content-Type", kind));
        }
        let answer = self.server.client().request(method, path, &headers, body);
        let is_json = answer
            .header("Content-Type")
            .is_some_and(|kind| kind.contains("json"));
        if is_json {
            check(&format!("{method} {path}"), &answer.json());
            self.walked.set(self.walked.get() + 1);
        }
        answer
    }

    fn get(&self, path: &str, token: &str) -> Value {
        self.send("GET", path, Some(token), "", b"").json()
    }

    fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        self.send(
            "POST",
            path,
            token,
            "application/json",
            body.to_string().as_bytes(),
        )
        .json()
    }

    fn post_form(
        &self,
        path: &str,
        token: Option<&str>,
        fields: &[(&str, &str)],
        image: &[u8],
    ) -> Value {
        let (kind, body) = multipart("file", image, fields);
        self.send("POST", path, token, &kind, &body).json()
    }

    /// An MCP request (`method` POST or DELETE) with `key` and the session's header.
    fn mcp(&self, method: &str, key: &str, session: Option<&str>, body: Option<Value>) -> Answer {
        let auth = format!("Bearer {key}");
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        headers.extend(session.map(|session| ("Mcp-Session-Id", session)));
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let answer = self
            .server
            .client()
            .request(method, "/mcp", &headers, body.as_bytes());
        if answer
            .header("Content-Type")
            .is_some_and(|kind| kind.contains("json"))
        {
            check(&format!("{method} /mcp"), &answer.json());
            self.walked.set(self.walked.get() + 1);
        }
        answer
    }

    /// Grants the user what takes its balance to the bound (points and reserved together).
    fn fill(&self, user: &User) {
        // What earlier uploads still hold is spent or given back first: a reservation left
        // would stay out of the balance, and the next call at the bound's cost find 2001.
        let mut data = self.get("/v2/user/point", &user.token)["data"].clone();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while data["reserved"].as_i64() != Some(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "reservations never settled: {data}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
            data = self.get("/v2/user/point", &user.token)["data"].clone();
        }
        let held = data["points"].as_i64().unwrap();
        if held < MAX {
            let grant =
                json!({ "user_id": user.id, "points": MAX - held, "reason": "to the brim" });
            let answer = self.post_json("/v2/admin/points", Some(&self.admin), grant);
            assert_eq!(
                answer["data"]["points"].as_i64().unwrap()
                    + answer["data"]["reserved"].as_i64().unwrap(),
                MAX,
                "{answer}"
            );
        }
    }
}

fn check(what: &str, value: &Value) {
    let found = unsafe_integers(value);
    assert!(
        found.is_empty(),
        "{what}: integers past 2^53 - 1: {found:?} in {value}"
    );
}

struct User {
    id: String,
    token: String,
    key: String,
}

fn captcha(index: usize) -> Vec<u8> {
    let (file, _, _) = common::manifest().into_iter().nth(index).unwrap();
    fixture(&file)
}

fn more(kind: &str, file: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddddocr-more");
    std::fs::read(dir.join(kind).join(file)).unwrap()
}

/// The first detection fixture, and the first slide pair.
fn detection_and_slide() -> (Vec<u8>, (Vec<u8>, Vec<u8>)) {
    let rows = |kind: &str| -> Vec<Vec<String>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddddocr-more");
        std::fs::read_to_string(dir.join(kind).join("manifest.tsv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| line.split('\t').map(str::to_string).collect())
            .collect()
    };
    let det = rows("det")[0][0].clone();
    let slide = rows("slide")
        .into_iter()
        .find(|row| row[0] == "match_simple")
        .unwrap();
    (
        more("det", &det),
        (more("slide", &slide[1]), more("slide", &slide[2])),
    )
}

#[test]
fn every_json_answer_keeps_its_integers_within_2_to_the_53() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let allow = format!(
        "callback_allow=127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let costs = [
        format!("upload_cost={MAX}"),
        format!("detect_cost={MAX}"),
        format!("slide_cost={MAX}"),
    ];
    let mut settings = vec![
        // createTask's answer is asserted `ready`: on a busy machine a reading may take
        // longer than the default three seconds it waits.
        "compat_wait_ms=30000",
        "rate_limit_burst=1000",
        "fastapi_account=rich",
        allow.as_str(),
    ];
    settings.extend(costs.iter().map(String::as_str));
    let server = Server::start(2, &settings);
    let admin = server.admin_token();
    let walk = Walk {
        server,
        admin: admin.clone(),
        walked: Cell::new(0),
    };

    // A user created with the most points a balance holds; one point more is refused.
    let created = walk.post_json(
        "/v2/admin/users",
        Some(&admin),
        json!({ "username": "rich", "password": "password-rich", "points": MAX }),
    );
    let id = created["data"]["user_id"].as_str().unwrap().to_string();
    let token = walk.post_json(
        "/v2/user/login",
        None,
        json!({ "username": "rich", "password": "password-rich" }),
    )["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let key = walk.post_json("/v2/user/apikey", Some(&token), json!({}))["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let rich = User {
        id: id.clone(),
        token,
        key,
    };
    let over = walk.post_json(
        "/v2/admin/points",
        Some(&admin),
        json!({ "user_id": id, "points": 1, "reason": "x" }),
    );
    assert_eq!(over["code"], 1001, "{over}");
    let point = walk.get("/v2/user/point", &rich.token);
    assert_eq!(point["data"]["points"], MAX);

    // /v2 uploads of every kind, each costing the bound.
    let image = captcha(0);
    let done = walk.post_form(
        "/v2/decode/upload?wait=1&soft_id=big",
        Some(&rich.token),
        &[],
        &image,
    );
    assert_eq!(done["data"]["cost"], MAX, "{done}");
    let upload_id = done["data"]["id"].as_str().unwrap().to_string();
    walk.get(&format!("/v2/result?id={upload_id}"), &rich.token);
    let report = walk
        .send(
            "POST",
            &format!("/v2/report?id={upload_id}"),
            Some(&rich.token),
            "",
            b"",
        )
        .json();
    assert_eq!(report["data"]["refunded"], MAX, "{report}");
    let pending = walk.post_json(
        "/v2/decode/upload-base64?soft_id=big",
        Some(&rich.token),
        json!({ "file": base64(&captcha(1)) }),
    );
    walk.get("/v2/user/point", &rich.token); // perhaps still reserved: 0 points, MAX reserved
    let pending_id = pending["data"]["id"].as_str().unwrap();
    common::poll_until_finished(&mut walk.server.client(), &rich.token, pending_id);
    walk.fill(&rich);
    let (det, (target, background)) = detection_and_slide();
    walk.post_form(
        "/v2/decode/detect?wait=1&timeout_ms=30000",
        Some(&rich.token),
        &[],
        &det,
    );
    walk.fill(&rich);
    // A click-in-order captcha (tests/fixtures/beyond) with its hint.
    let click_in_order = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/beyond/click");
    let click = json!({ "image": base64(&std::fs::read(click_in_order.join("0002.jpg")).unwrap()),
                        "hint": "积了计流" });
    walk.post_json(
        "/v2/decode/click?wait=1&timeout_ms=30000",
        Some(&rich.token),
        click,
    );
    walk.fill(&rich);
    let slide =
        json!({ "target": base64(&target), "background": base64(&background), "mode": "simple" });
    walk.post_json(
        "/v2/decode/slide?wait=1&timeout_ms=30000",
        Some(&rich.token),
        slide,
    );
    walk.fill(&rich);
    // The answer to upload-base64's image is in the cache (the first one's was reported:
    // gone from it).
    let hash: String = digest(&captcha(1))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cached = walk.post_json(
        "/v2/decode/cached",
        Some(&rich.token),
        json!({ "hash": hash }),
    );
    assert_eq!(cached["data"]["results"][0]["cost"], MAX, "{cached}");
    walk.fill(&rich);
    // Five uploads paid, one refunded: four times the bound spent today, written saturated.
    let stats = walk.get("/v2/user/stats?days=1", &rich.token);
    assert_eq!(stats["data"]["days"][0]["points_spent"], MAX, "{stats}");
    walk.get("/v2/developer/stats?days=1&soft_id=big", &admin);
    walk.get("/v2/user/uploads?limit=10", &rich.token);

    // The JSON task protocol, its refusals, and a callback's body.
    let task = json!({ "type": "ImageToTextTask", "body": base64(&captcha(2)) });
    let callback_url = format!("http://{}/done", listener.local_addr().unwrap());
    let created = walk.post_json(
        "/createTask",
        None,
        json!({ "clientKey": rich.key, "task": task, "callbackUrl": callback_url }),
    );
    assert_eq!(created["status"], "ready", "{created}");
    let callback = receive_one_request(&listener);
    check("callback body", &serde_json::from_slice(&callback).unwrap());
    let task_id = created["taskId"].clone();
    let named = json!({ "clientKey": rich.key, "taskId": task_id });
    walk.post_json("/getTaskResult", None, named.clone());
    walk.post_json("/reportCorrect", None, named.clone());
    walk.post_json("/reportIncorrectImageCaptcha", None, named.clone());
    walk.post_json("/reportIncorrect", None, named);
    let balance = walk.post_json("/getBalance", None, json!({ "clientKey": rich.key }));
    assert_eq!(balance["errorId"], 0, "{balance}");
    walk.post_json(
        "/getTaskResult",
        None,
        json!({ "clientKey": rich.key, "taskId": 1 }),
    );
    walk.post_json(
        "/createTask",
        None,
        json!({ "clientKey": "0".repeat(32), "task": {} }),
    );

    // 2captcha v1 with json=1, and its refusals.
    walk.fill(&rich);
    let fields = [
        ("key", rich.key.as_str()),
        ("method", "post"),
        ("json", "1"),
    ];
    let submitted = walk.post_form("/in.php", None, &fields, &captcha(3));
    let captcha_id = submitted["request"].as_str().unwrap().to_string();
    let res = |action: &str| {
        format!(
            "/res.php?key={}&json=1&action={action}&id={captcha_id}",
            rich.key
        )
    };
    walk.send("GET", &res("get"), None, "", b"");
    walk.send("POST", &res("get"), None, "", b"");
    walk.send("GET", &res("getbalance"), None, "", b"");
    walk.send("GET", &res("reportbad"), None, "", b"");
    walk.send(
        "GET",
        "/res.php?key=nothing&json=1&action=get&id=1",
        None,
        "",
        b"",
    );

    // ddddocr-fastapi, charged to the configured account.
    walk.fill(&rich);
    walk.post_form("/ocr", None, &[], &captcha(4));
    walk.fill(&rich);
    walk.post_form("/detection", None, &[], &det);
    walk.fill(&rich);
    let (kind, body) = multipart_form(
        &[("simple_target", "true")],
        &[("target_file", &target), ("background_file", &background)],
    );
    walk.send("POST", "/slide_match", None, &kind, &body);
    walk.fill(&rich);

    // MCP: a session, the tools' list, a reading at the bound's cost (structured and as
    // text), its result and report, the balance; the session ended.
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "walk", "version": "1" } } });
    let opened = walk.mcp("POST", &rich.key, None, Some(initialize));
    let session = opened.header("Mcp-Session-Id").unwrap().to_string();
    let in_session = |body: Value| {
        walk.mcp("POST", &rich.key, Some(&session), Some(body))
            .json()
    };
    let call = |name: &str, arguments: Value| {
        in_session(json!({ "jsonrpc": "2.0", "id": MAX, "method": "tools/call",
            "params": { "name": name, "arguments": arguments } }))
    };
    in_session(json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }));
    let read = call("ocr", json!({ "image": base64(&captcha(6)) }));
    let reading = read["result"]["structuredContent"].clone();
    assert_eq!(
        (reading["status"].as_str(), reading["cost"].as_i64()),
        (Some("done"), Some(MAX)),
        "{read}"
    );
    let text = read["result"]["content"][0]["text"].as_str().unwrap();
    check("ocr's text", &serde_json::from_str(text).unwrap());
    call("result", json!({ "id": reading["id"] }));
    let report = call("report", json!({ "id": reading["id"] }));
    assert_eq!(
        report["result"]["structuredContent"]["refunded"], MAX,
        "{report}"
    );
    call("balance", json!({}));
    let ended = walk.mcp("DELETE", &rich.key, Some(&session), None);
    assert_eq!(ended.status, 204);
    walk.fill(&rich);

    // A model of the user's own (a fixture's charset on ddddocr's old model): added, used
    // at the bound's cost, listed with its numbers, removed.
    let onnx = std::fs::read(common::model_dir().join("common_old.onnx")).unwrap();
    let charsets = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/custom-models/permuted-charset/charsets.json"),
    )
    .unwrap();
    let (kind, body) = multipart_form(
        &[("name", "mine"), ("public", "0")],
        &[("onnx", &onnx), ("charsets", &charsets)],
    );
    let added = walk
        .send("POST", "/v2/models", Some(&rich.token), &kind, &body)
        .json();
    assert_eq!(added["code"], 0, "{added}");
    let used = walk.post_json(
        "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
        Some(&rich.token),
        json!({ "file": base64(&captcha(5)), "model": "mine" }),
    );
    assert_eq!(used["data"]["cost"], MAX, "{used}");
    walk.fill(&rich);
    let listed = walk.get("/v2/models", &rich.token);
    assert_eq!(listed["data"]["models"][0]["requests"], 1, "{listed}");
    let removed = walk.post_json(
        "/v2/models/remove",
        Some(&rich.token),
        json!({ "name": "mine" }),
    );
    assert_eq!(removed["code"], 0, "{removed}");

    // The console's and the operators' endpoints.
    walk.get("/v2/servers", &rich.token);
    walk.get("/v2/user/apikey", &rich.token);
    let users = walk.get("/v2/admin/users?q=rich", &admin);
    assert_eq!(users["data"]["users"][0]["points"], MAX, "{users}");
    walk.get("/v2/admin/server", &admin);
    let (other_id, _) = walk.server.create_user(&admin, "other", 0, "user");
    let other = json!({ "user_id": other_id.to_string() });
    let fine = |answer: Value| assert_eq!(answer["code"], 0, "{answer}");
    fine(walk.post_json(
        "/v2/admin/users/role",
        Some(&admin),
        json!({ "user_id": other_id.to_string(), "role": "developer" }),
    ));
    let other_token = walk.server.login("other", "password-other"); // a role change ends tokens
    fine(walk.post_json("/v2/user/apikey", Some(&other_token), json!({})));
    fine(walk.post_json("/v2/user/apikey/revoke", Some(&other_token), json!({})));
    fine(walk.post_json("/v2/admin/apikey/revoke", Some(&admin), other.clone()));
    fine(walk.post_json(
        "/v2/user/password",
        Some(&other_token),
        json!({ "old_password": "password-other", "new_password": "password-other-2" }),
    ));
    let other_token = walk.server.login("other", "password-other-2");
    fine(walk.post_json("/v2/user/logout", Some(&other_token), json!({})));
    fine(walk.post_json("/v2/admin/tokens/revoke", Some(&admin), other.clone()));
    fine(walk.post_json("/v2/admin/users/remove", Some(&admin), other));
    walk.get("/health", &rich.token);
    walk.get("/openapi.json", &rich.token);
    walk.send("GET", "/console/", None, "", b"");
    walk.send("GET", "/no/such/route", None, "", b"");
    walk.send("GET", "/v2/user/point", Some("not-a-token"), "", b"");

    // Which routes exist, from the server's own counters: every one was called.
    let metrics = walk.send("GET", "/metrics", None, "", b"").text();
    let routes: Vec<(String, u64)> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("aiocr_request_duration_us_count{route=\""))
        .filter_map(|rest| rest.split_once("\"} "))
        .map(|(route, count)| (route.to_string(), count.trim().parse().unwrap()))
        .collect();
    assert!(routes.len() >= 40, "{metrics}");
    let missed: Vec<&str> = routes
        .iter()
        .filter(|(route, count)| *count == 0 && route != "metrics")
        .map(|(route, _)| route.as_str())
        .collect();
    assert!(
        missed.is_empty(),
        "routes this test never called: {missed:?}"
    );
    assert!(
        walk.walked.get() > 60,
        "{} JSON answers walked",
        walk.walked.get()
    );
}
