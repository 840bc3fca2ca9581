//! `/mcp`, the MCP endpoint, against the real server: the official SDKs (Python `mcp` from
//! PyPI and the TypeScript `@modelcontextprotocol/sdk` from npm, both unmodified, installed
//! by scripts/setup.sh into tests/mcp/) list the tools and solve fixtures with ddddocr's
//! answers, charged exactly as the same requests over `/v2`; raw HTTP checks the transport's
//! rules: credentials (401 with `WWW-Authenticate`), sessions (DELETE, 404 for an unknown
//! one, the idle timeout), the limits at their bounds, Origin, versions, protocol errors.

mod common;

use common::{base64, fixture, manifest, multipart_form, Answer, Client, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tests_mcp() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp")
}

fn installed(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

fn api_key(server: &Server, token: &str) -> String {
    let answer = server
        .client()
        .post_json("/v2/user/apikey", Some(token), "{}");
    answer.json()["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs an SDK's agent script (`command` with its arguments) and reads its JSON line.
fn run_agent(mut command: Command) -> Value {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the agent's JSON")
}

fn python_agent(url: &str, key: &str, calls: &Path) -> Value {
    let mut command = Command::new(installed(tests_mcp().join(".venv/bin/python")));
    command
        .arg(tests_mcp().join("agent.py"))
        .arg(url)
        .arg(key)
        .arg(calls);
    run_agent(command)
}

fn typescript_agent(url: &str, key: &str, calls: &Path) -> Value {
    installed(tests_mcp().join("node_modules/@modelcontextprotocol/sdk"));
    let mut command = Command::new("node");
    command
        .arg(tests_mcp().join("agent.mjs"))
        .arg(url)
        .arg(key)
        .arg(calls);
    run_agent(command)
}

/// The fixtures of tests/fixtures/ddddocr-more/`kind` and ddddocr's answers (its manifest's
/// first rows).
fn more_fixtures(kind: &str) -> Vec<Vec<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddddocr-more");
    let text = std::fs::read_to_string(dir.join(kind).join("manifest.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

fn more_image(kind: &str, file: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddddocr-more");
    base64(&std::fs::read(dir.join(kind).join(file)).unwrap())
}

/// A set of calls, the answers ddddocr 1.6.1 gave for them (`None`: not a reading), and the
/// same request over `/v2` (path and JSON body) to compare the charge with.
struct Job {
    call: Value,
    expected: Option<Value>,
    over_v2: Option<(&'static str, Value)>,
}

/// Text captchas (old and beta models), a click captcha, a slide pair of each mode the
/// SDK is given.
fn readings(first_text: usize, slide_row: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    let rows = manifest();
    for (index, model) in [(first_text, "old"), (first_text + 1, "beta")] {
        let (file, old, beta) = &rows[index];
        let image = base64(&fixture(file));
        let expected = if model == "old" { old } else { beta };
        jobs.push(Job {
            call: json!({ "tool": "ocr", "arguments": { "image": image, "model": model } }),
            expected: Some(json!(expected)),
            over_v2: Some((
                "/v2/decode/upload-base64",
                json!({ "image": image, "model": model, "wait": true, "timeout_ms": 30000 }),
            )),
        });
    }
    let det = &more_fixtures("det")[first_text];
    let image = more_image("det", &det[0]);
    jobs.push(Job {
        call: json!({ "tool": "detect", "arguments": { "image": image } }),
        expected: Some(serde_json::from_str(&det[5]).unwrap()),
        over_v2: Some((
            "/v2/decode/detect",
            json!({ "image": image, "wait": true, "timeout_ms": 30000 }),
        )),
    });
    let slide = &more_fixtures("slide")[slide_row];
    let mode = match slide[0].as_str() {
        "match" => "match",
        "match_simple" => "simple",
        _ => "comparison",
    };
    let (target, background) = (
        more_image("slide", &slide[1]),
        more_image("slide", &slide[2]),
    );
    jobs.push(Job {
        call: json!({ "tool": "slide", "arguments": { "target": target, "background": background, "mode": mode } }),
        expected: Some(serde_json::from_str(&slide[5]).unwrap()),
        over_v2: Some((
            "/v2/decode/slide",
            json!({ "target": target, "background": background, "mode": mode, "wait": true, "timeout_ms": 30000 }),
        )),
    });
    jobs.push(Job {
        call: json!({ "tool": "balance", "arguments": {} }),
        expected: None,
        over_v2: None,
    });
    jobs
}

/// A slide answer equals ddddocr's: the same target, a confidence within OpenCV's float
/// error of the manifest's 6 places.
fn same_answer(got: &Value, expected: &Value) -> bool {
    match (got.get("confidence"), expected.get("confidence")) {
        (Some(a), Some(b)) => {
            let close = (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-4;
            close
                && ["target", "target_x", "target_y"]
                    .iter()
                    .all(|k| got[k] == expected[k])
        }
        _ => got == expected,
    }
}

/// Runs one SDK's agent on `jobs`; checks the tools it listed, every answer against
/// ddddocr's, and that the points it spent are the costs `/v2` charges for the same
/// requests.
fn check_agent(
    server: &Server,
    name: &str,
    jobs: &[Job],
    agent: fn(&str, &str, &Path) -> Value,
) -> Value {
    let (_, token) = server.create_user(&server.admin_token(), name, 100, "user");
    let key = api_key(server, &token);
    let calls: Vec<&Value> = jobs.iter().map(|job| &job.call).collect();
    let file = server.data_dir.join(format!("{name}-calls.json"));
    std::fs::write(&file, serde_json::to_vec(&calls).unwrap()).unwrap();
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let (before, _) = server.balance(&token);
    let run = agent(&url, &key, &file);

    let names: Vec<&str> = run["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ocr", "detect", "slide", "click", "result", "balance", "report"]
    );
    for tool in run["tools"].as_array().unwrap() {
        assert_eq!(tool["input"]["type"], "object", "{tool}");
        assert_eq!(tool["output"]["type"], "object", "{tool}");
    }
    assert_eq!(run["server"], "aiocr");
    assert_eq!(run["protocol"], "2025-11-25", "the SDKs' current version");

    let mut spent = 0;
    for (job, result) in jobs.iter().zip(run["results"].as_array().unwrap()) {
        assert_eq!(result["isError"], false, "{result}");
        let structured = &result["structured"];
        let text: Value = serde_json::from_str(result["text"][0].as_str().unwrap()).unwrap();
        assert_eq!(&text, structured, "the text is the structured answer");
        if let Some(expected) = &job.expected {
            assert_eq!(structured["status"], "done", "{structured}");
            let got = &structured["result"];
            assert!(
                same_answer(got, expected),
                "{name}: {got} != ddddocr's {expected}"
            );
            spent += structured["cost"].as_i64().unwrap();
        }
    }
    let balance = &run["results"].as_array().unwrap().last().unwrap()["structured"];
    assert_eq!(balance["points"], before - spent, "{name}: balance tool");
    assert_eq!(
        server.balance(&token),
        (before - spent, 0),
        "{name}: ledger"
    );

    // The same requests over /v2 cost the same.
    let mut client = server.client();
    let mut v2_spent = 0;
    for job in jobs {
        if let Some((path, body)) = &job.over_v2 {
            let answer = client.post_json(path, Some(&token), &body.to_string());
            assert_eq!(answer.status, 200, "{}", answer.text());
            v2_spent += answer.json()["data"]["cost"].as_i64().unwrap();
        }
    }
    assert_eq!(v2_spent, spent, "{name}: /v2 charges what MCP charged");
    assert_eq!(server.balance(&token).0, before - 2 * spent);
    run
}

#[test]
fn the_official_sdks_list_the_tools_and_solve_fixtures_with_ddddocrs_answers() {
    let server = Server::start(2, &[]);
    let python = check_agent(&server, "py-agent", &readings(0, 0), python_agent);
    let ocr = python["tools"][0].clone();
    assert_eq!(ocr["input"]["required"], json!(["image"]));
    // The server's own models as examples; a user's model is taken by name too (no enum).
    let model = &ocr["input"]["properties"]["model"];
    assert_eq!(model["examples"], json!(["old", "beta"]), "{model}");
    assert!(model.get("enum").is_none(), "{model}");
    let typescript = check_agent(&server, "ts-agent", &readings(2, 1), typescript_agent);
    assert_eq!(typescript["session"].as_str().map(str::len), Some(32));
    // Both SDKs end their session with DELETE as they leave: no session is left.
    let metrics = server.metrics();
    assert_eq!(
        common::metric_per_shard_sum(&metrics, "aiocr_mcp_sessions"),
        0
    );
}

/// An MCP POST on `client` with `key`, `session` and further headers.
fn post(
    client: &mut Client,
    key: Option<&str>,
    session: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let auth = key.map(|key| format!("Bearer {key}"));
    let mut all: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
    all.extend(auth.iter().map(|auth| ("Authorization", auth.as_str())));
    all.extend(session.iter().map(|session| ("Mcp-Session-Id", *session)));
    all.extend_from_slice(headers);
    client.request("POST", "/mcp", &all, body.as_bytes())
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// A new session of `key`'s user; its id.
fn initialize(client: &mut Client, key: &str) -> String {
    let answer = post(client, Some(key), None, &[], INITIALIZE);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["result"]["protocolVersion"], "2025-06-18");
    answer
        .header("Mcp-Session-Id")
        .expect("a session id")
        .to_string()
}

fn ping(client: &mut Client, key: &str, session: &str) -> Answer {
    let body = r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#;
    post(client, Some(key), Some(session), &[], body)
}

fn call(client: &mut Client, key: &str, session: &str, tool: &str, arguments: Value) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": { "name": tool, "arguments": arguments } });
    let answer = post(client, Some(key), Some(session), &[], &body.to_string());
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// The contract's code in a JSON-RPC error's data, or in a tool error's text.
fn contract_code(answer: &Value) -> i64 {
    if let Some(code) = answer["error"]["data"]["code"].as_i64() {
        return code;
    }
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    serde_json::from_str::<Value>(text).unwrap()["code"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_client_without_the_key_is_refused_as_the_transport_says() {
    let server = Server::start(1, &[]);
    let mut client = server.client();
    let answer = post(&mut client, None, None, &[], INITIALIZE);
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header("WWW-Authenticate"),
        Some(r#"Bearer realm="aiocr""#)
    );
    assert_eq!(answer.json()["error"]["data"]["code"], 1002);
    assert_eq!(answer.json()["id"], Value::Null);
    let mut client = server.client();
    let wrong = "0123456789abcdef0123456789abcdef";
    let answer = post(&mut client, Some(wrong), None, &[], INITIALIZE);
    assert_eq!(answer.status, 401);
    assert!(answer
        .header("WWW-Authenticate")
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(answer.json()["error"]["data"]["code"], 1003);
    // The official SDK without a key cannot connect.
    let mut command = Command::new(installed(tests_mcp().join(".venv/bin/python")));
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    command
        .arg(tests_mcp().join("agent.py"))
        .args([&url, "", "--refused"]);
    assert_eq!(run_agent(command)["refused"], true);
    // A login token is a credential too, as on every /v2 route.
    let token = server.demo_token();
    let mut client = server.client();
    let session = initialize(&mut client, &token);
    let balance = call(&mut client, &token, &session, "balance", json!({}));
    assert_eq!(balance["result"]["structuredContent"]["points"], 1000);
}

#[test]
fn sessions_end_with_delete_unknown_ones_are_404_and_their_users_own() {
    let server = Server::start(2, &[]);
    let demo = api_key(&server, &server.demo_token());
    let (_, other_token) = server.create_user(&server.admin_token(), "other", 5, "user");
    let other = api_key(&server, &other_token);
    let mut client = server.client();
    let session = initialize(&mut client, &demo);
    assert_eq!(session.len(), 32);
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let answer = post(&mut client, Some(&demo), Some(&session), &[], initialized);
    assert_eq!((answer.status, answer.body.len()), (202, 0));
    assert_eq!(
        ping(&mut client, &demo, &session).json()["result"],
        json!({})
    );
    // Every message but initialize needs the session; another user cannot use it.
    assert_eq!(
        post(
            &mut client,
            Some(&demo),
            None,
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
        )
        .status,
        400
    );
    assert_eq!(
        ping(&mut client, &demo, "feedfacefeedfacefeedfacefeedface").status,
        404
    );
    assert_eq!(ping(&mut client, &other, &session).status, 404);
    // DELETE ends it.
    let auth = format!("Bearer {demo}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Mcp-Session-Id", session.as_str()),
    ];
    assert_eq!(client.request("DELETE", "/mcp", &headers, b"").status, 204);
    assert_eq!(ping(&mut client, &demo, &session).status, 404);
    assert_eq!(client.request("DELETE", "/mcp", &headers, b"").status, 404);
    // No server-to-client stream: GET is 405.
    let get = client.request("GET", "/mcp", &headers, b"");
    assert_eq!(
        (get.status, get.header("Allow")),
        (405, Some("POST, DELETE"))
    );
}

#[test]
fn an_idle_session_ends() {
    let server = Server::start(1, &["mcp_session_idle_secs=1"]);
    let key = api_key(&server, &server.demo_token());
    let mut client = server.client();
    let session = initialize(&mut client, &key);
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(
        ping(&mut client, &key, &session).status,
        404,
        "idle past 1 s"
    );
    let fresh = initialize(&mut client, &key);
    assert_ne!(fresh, session);
}

#[test]
fn limits_hold_at_their_bounds() {
    let server = Server::start(
        1,
        &[
            "mcp_sessions_per_user=2",
            "mcp_sessions_per_shard=3",
            "mcp_max_body_bytes=4096",
            "mcp_allowed_origins=http://agent.test",
        ],
    );
    let admin = server.admin_token();
    let keys: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| api_key(&server, &server.create_user(&admin, name, 5, "user").1))
        .collect();
    let mut client = server.client();
    // Per user: a third session ends the least recently used of the two.
    let first = initialize(&mut client, &keys[0]);
    let second = initialize(&mut client, &keys[0]);
    assert_eq!(ping(&mut client, &keys[0], &first).status, 200);
    let third = initialize(&mut client, &keys[0]);
    assert_eq!(
        ping(&mut client, &keys[0], &second).status,
        404,
        "least recently used"
    );
    assert_eq!(ping(&mut client, &keys[0], &first).status, 200);
    assert_eq!(ping(&mut client, &keys[0], &third).status, 200);
    // Per shard: the third session fits, a fourth is 503 with Retry-After.
    initialize(&mut client, &keys[1]);
    let full = post(&mut client, Some(&keys[2]), None, &[], INITIALIZE);
    assert_eq!((full.status, full.header("Retry-After")), (503, Some("1")));
    assert_eq!(full.json()["error"]["data"]["code"], 5001);
    let metrics = server.metrics();
    assert_eq!(
        common::metric_per_shard_sum(&metrics, "aiocr_mcp_sessions"),
        3
    );

    // Body: 4096 bytes pass, 4097 are 413 before the body is read.
    let padded = |size: usize| {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        format!("{body}{}", " ".repeat(size - body.len()))
    };
    assert_eq!(
        post(
            &mut client,
            Some(&keys[0]),
            Some(&first),
            &[],
            &padded(4096)
        )
        .status,
        200
    );
    let over = post(
        &mut client,
        Some(&keys[0]),
        Some(&first),
        &[],
        &padded(4097),
    );
    assert_eq!(
        (over.status, over.json()["error"]["data"]["code"].as_i64()),
        (413, Some(3002))
    );

    // Origin: a listed one passes, any other is 403 (DNS rebinding).
    let mut client = server.client();
    let listed = [("Origin", "http://agent.test")];
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(
        post(&mut client, Some(&keys[0]), Some(&first), &listed, body).status,
        200
    );
    let rebound = [("Origin", "http://evil.test")];
    assert_eq!(
        post(&mut client, Some(&keys[0]), Some(&first), &rebound, body).status,
        403
    );
}

#[test]
fn protocol_errors_are_json_rpc_errors_and_tool_errors_carry_the_contract_code() {
    let server = Server::start(1, &[]);
    let key = api_key(&server, &server.demo_token());
    let (_, poor_token) = server.create_user(&server.admin_token(), "poor", 0, "user");
    let poor = api_key(&server, &poor_token);
    let mut client = server.client();
    let session = initialize(&mut client, &key);
    let send = |client: &mut Client, headers: &[(&str, &str)], body: &str| {
        post(client, Some(&key), Some(&session), headers, body)
    };
    // Versions: the session's, or none; another is 400.
    let v = |version| [("MCP-Protocol-Version", version)];
    let ping_body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(send(&mut client, &v("2025-06-18"), ping_body).status, 200);
    assert_eq!(
        send(&mut client, &v("2025-11-25"), ping_body).status,
        400,
        "not the session's"
    );
    let newer = send(&mut client, &v("2026-07-28"), ping_body);
    assert_eq!(newer.status, 400);
    assert_eq!(newer.json()["error"]["data"]["supported"][0], "2025-11-25");
    // Messages that are not one request.
    for (body, code) in [
        ("{", -32700),
        ("[]", -32600),
        (
            r#"{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}"#,
            -32600,
        ),
    ] {
        let answer = send(&mut client, &[], body);
        assert_eq!(
            (answer.status, answer.json()["error"]["code"].as_i64()),
            (400, Some(code))
        );
    }
    let unknown = send(
        &mut client,
        &[],
        r#"{"jsonrpc":"2.0","id":"u","method":"resources/list"}"#,
    );
    assert_eq!(
        (
            unknown.json()["id"].clone(),
            unknown.json()["error"]["code"].as_i64()
        ),
        (json!("u"), Some(-32601))
    );
    let no_tool = call(&mut client, &key, &session, "solve", json!({}));
    assert_eq!(no_tool["error"]["code"], -32602);
    // Tool errors: isError with the contract's code and message; nothing charged.
    let cases = [
        ("ocr", json!({ "image": "!!!!" }), 3003),
        ("ocr", json!({}), 3001),
        (
            "ocr",
            json!({ "image": base64(&fixture("0001.png")), "model": "nope" }),
            3005,
        ),
        (
            "ocr",
            json!({ "image": base64(&fixture("0001.png")), "colors": ["mauve"] }),
            3006,
        ),
        ("detect", json!({ "image": "AAAA", "model": "old" }), 1001),
        ("report", json!({ "id": "12" }), 4001),
        ("result", json!({ "id": "x" }), 1001),
    ];
    for (tool, arguments, code) in cases {
        let answer = call(&mut client, &key, &session, tool, arguments.clone());
        assert_eq!(
            answer["result"]["isError"], true,
            "{tool} {arguments}: {answer}"
        );
        assert_eq!(contract_code(&answer), code, "{tool} {arguments}: {answer}");
        assert!(answer["result"].get("structuredContent").is_none());
    }
    assert_eq!(server.balance(&server.demo_token()), (1000, 0));
    let mut poor_client = server.client();
    let poor_session = initialize(&mut poor_client, &poor);
    let image = json!({ "image": base64(&fixture("0001.png")) });
    let refused = call(&mut poor_client, &poor, &poor_session, "ocr", image);
    assert_eq!(contract_code(&refused), 2001);

    // A report through MCP refunds like /v2/report, once.
    let (file, expected, _) = manifest().remove(3);
    let read = call(
        &mut client,
        &key,
        &session,
        "ocr",
        json!({ "image": base64(&fixture(&file)), "probability": true }),
    );
    let answer = &read["result"]["structuredContent"];
    assert_eq!(answer["result"], expected.as_str());
    assert!(answer["confidence"].is_number());
    let id = answer["id"].as_str().unwrap();
    let result = call(&mut client, &key, &session, "result", json!({ "id": id }));
    assert_eq!(result["result"]["structuredContent"]["status"], "done");
    let report = call(&mut client, &key, &session, "report", json!({ "id": id }));
    assert_eq!(
        report["result"]["structuredContent"],
        json!({ "refunded": 1, "points": 1000 })
    );
    let again = call(&mut client, &key, &session, "report", json!({ "id": id }));
    assert_eq!(contract_code(&again), 4002);
}

#[test]
fn the_oldest_version_served_gets_no_structured_output() {
    let server = Server::start(1, &[]);
    let key = api_key(&server, &server.demo_token());
    let mut client = server.client();
    let old = INITIALIZE.replace("2025-06-18", "2025-03-26");
    let answer = post(&mut client, Some(&key), None, &[], &old);
    assert_eq!(answer.json()["result"]["protocolVersion"], "2025-03-26");
    let session = answer.header("Mcp-Session-Id").unwrap().to_string();
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let tools = post(&mut client, Some(&key), Some(&session), &[], list).json();
    assert!(tools["result"]["tools"][0].get("outputSchema").is_none());
    let balance = call(&mut client, &key, &session, "balance", json!({}));
    assert!(balance["result"].get("structuredContent").is_none());
    let text = balance["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(text).unwrap()["points"], 1000);
    // A version nobody serves is answered with the latest.
    let newer = INITIALIZE.replace("2025-06-18", "2099-01-01");
    let answer = post(&mut client, Some(&key), None, &[], &newer);
    assert_eq!(answer.json()["result"]["protocolVersion"], "2025-11-25");
}

/// `mcp_wait_ms` at its lower bound (0): a reading answers at once with `status: pending`,
/// already charged like an upload over `/v2`; the `result` tool reads ddddocr's answer later.
#[test]
fn a_reading_not_waited_for_is_pending_and_the_result_tool_reads_it() {
    pending_then_read(&["mcp_wait_ms=0"]);
}

/// The smaller of `mcp_wait_ms` and `wait_timeout_ms_max` applies: the default
/// `mcp_wait_ms` (10 s) with every upload's wait bounded at 0 answers `pending` at once.
#[test]
fn wait_timeout_ms_max_bounds_a_readings_wait() {
    pending_then_read(&[
        "wait_timeout_ms_max=0",
        "wait_timeout_ms_default=0",
        "compat_wait_ms=0",
    ]);
}

fn pending_then_read(settings: &[&str]) {
    let server = Server::start(1, settings);
    let token = server.demo_token();
    let key = api_key(&server, &token);
    let mut client = server.client();
    let session = initialize(&mut client, &key);
    let (file, expected, _) = manifest().remove(5);
    let image = json!({ "image": base64(&fixture(&file)) });
    let read = call(&mut client, &key, &session, "ocr", image);
    let pending = &read["result"]["structuredContent"];
    assert_eq!(pending["status"], "pending", "{read}");
    let cost = pending["cost"].as_i64().unwrap();
    assert!(cost > 0, "{pending}");
    let id = pending["id"].as_str().unwrap();
    let mut done = Value::Null;
    for _ in 0..3000 {
        let answer = call(&mut client, &key, &session, "result", json!({ "id": id }));
        done = answer["result"]["structuredContent"].clone();
        if done["status"] != "pending" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"], expected.as_str());
    assert_eq!(server.balance(&token), (1000 - cost, 0));
}

/// `ocr`'s `model` takes a user's own model by name (added with `POST /v2/models`): its
/// answers are ddddocr's through its import path (tests/fixtures/custom-models, a charset
/// permuted so that they differ from the built-in model's), charged as `/v2` charges the
/// same upload; another user's private model, or no model at all, is a tool error with 3005.
#[test]
fn ocr_reads_with_the_callers_own_model_by_name() {
    let server = Server::start(1, &[]);
    let admin = server.admin_token();
    let (_, owner) = server.create_user(&admin, "modeler", 1000, "user");
    let (_, stranger) = server.create_user(&admin, "stranger", 1000, "user");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let models = fixtures.join("custom-models");
    let onnx = std::fs::read(common::model_dir().join("common_old.onnx")).unwrap();
    let charsets = std::fs::read(models.join("permuted-charset/charsets.json")).unwrap();
    let (content_type, body) = multipart_form(
        &[("name", "mine"), ("public", "0")],
        &[("onnx", &onnx), ("charsets", &charsets)],
    );
    let added = server
        .client()
        .post("/v2/models", Some(&owner), &content_type, &body);
    assert_eq!(added.status, 200, "{}", added.text());

    let manifest = std::fs::read_to_string(models.join("manifest.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = manifest
        .lines()
        .skip(1)
        .map(|line| line.split('\t').collect())
        .filter(|cols: &Vec<&str>| cols[0] == "permuted-charset")
        .take(2)
        .collect();
    let image = |file: &str| base64(&std::fs::read(fixtures.join("captcha").join(file)).unwrap());

    let key = api_key(&server, &owner);
    let mut client = server.client();
    let session = initialize(&mut client, &key);
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let tools = post(&mut client, Some(&key), Some(&session), &[], list).json();
    let model = &tools["result"]["tools"][0]["inputSchema"]["properties"]["model"];
    assert!(
        model.get("enum").is_none(),
        "a user's model is no enum's: {model}"
    );
    let arguments = json!({ "image": image(rows[0][2]), "model": "mine" });
    let read = call(&mut client, &key, &session, "ocr", arguments);
    let answer = &read["result"]["structuredContent"];
    assert_eq!(answer["status"], "done", "{read}");
    assert_eq!(
        answer["result"], rows[0][3],
        "ddddocr's answer with this model"
    );
    let cost = answer["cost"].as_i64().unwrap();
    assert_eq!(server.balance(&owner), (1000 - cost, 0));
    let body = json!({ "image": image(rows[1][2]), "model": "mine", "wait": true });
    let over_v2 = client.post_json("/v2/decode/upload-base64", Some(&owner), &body.to_string());
    assert_eq!(
        over_v2.json()["data"]["result"],
        rows[1][3],
        "{}",
        over_v2.text()
    );
    assert_eq!(
        over_v2.json()["data"]["cost"],
        cost,
        "/v2 charges what MCP charged"
    );

    // Not the stranger's model: 3005, as over /v2, and nothing charged.
    let stranger_key = api_key(&server, &stranger);
    let mut client = server.client();
    let session = initialize(&mut client, &stranger_key);
    for model in ["mine", "nobodys"] {
        let arguments = json!({ "image": image(rows[0][2]), "model": model });
        let refused = call(&mut client, &stranger_key, &session, "ocr", arguments);
        assert_eq!(refused["result"]["isError"], true, "{refused}");
        assert_eq!(contract_code(&refused), 3005, "{refused}");
    }
    assert_eq!(server.balance(&stranger), (1000, 0));
}

/// `click` clicks the hint's characters in order, inside their truth boxes
/// (tests/fixtures/beyond), charged as `/v2/decode/click` charges the same request; `ocr`
/// with `math` on a text captcha is a tool error with 5005 and costs nothing.
#[test]
fn click_clicks_in_order_and_math_refuses_what_is_no_expression_for_free() {
    let server = Server::start(1, &["mcp_wait_ms=30000"]);
    let token = server.demo_token();
    let key = api_key(&server, &token);
    let mut client = server.client();
    let session = initialize(&mut client, &key);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/beyond/click");
    let rows = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let row: Vec<&str> = rows.lines().nth(1).unwrap().split('\t').collect();
    let (file, hint) = (row[0], row[1]);
    let truth: Vec<Vec<i64>> = serde_json::from_str(row[3]).unwrap();
    let image = base64(&std::fs::read(dir.join(file)).unwrap());
    let (before, _) = server.balance(&token);

    let arguments = json!({ "image": image, "hint": hint });
    let read = call(&mut client, &key, &session, "click", arguments);
    let answer = &read["result"]["structuredContent"];
    assert_eq!(answer["status"], "done", "{read}");
    assert_eq!(answer["kind"], "click", "{read}");
    let clicks = answer["result"].as_array().unwrap();
    assert_eq!(clicks.len(), truth.len(), "one click per character: {read}");
    for (click, area) in clicks.iter().zip(&truth) {
        let (x, y) = (click[0].as_i64().unwrap(), click[1].as_i64().unwrap());
        let inside = area[0] <= x && x <= area[2] && area[1] <= y && y <= area[3];
        assert!(inside, "{file}: {click} not in {area:?}");
    }
    let cost = answer["cost"].as_i64().unwrap();
    let body = json!({ "image": image, "hint": hint, "wait": true, "timeout_ms": 30000 });
    let over_v2 = client.post_json("/v2/decode/click", Some(&token), &body.to_string());
    assert_eq!(over_v2.json()["data"]["cost"], cost, "{}", over_v2.text());
    assert_eq!(server.balance(&token), (before - 2 * cost, 0));

    // A text captcha (one beyond_api.rs checks over /v2) read as math: refused, for free.
    let arguments = json!({ "image": base64(&fixture("0001.png")), "math": true });
    let read = call(&mut client, &key, &session, "ocr", arguments);
    assert_eq!(read["result"]["isError"], true, "{read}");
    assert_eq!(contract_code(&read), 5005, "{read}");
    assert_eq!(server.balance(&token), (before - 2 * cost, 0));
}
