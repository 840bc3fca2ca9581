//! The API description (docs/openapi.json, served at /openapi.json) is true:
//! - it is a valid OpenAPI 3.1 document (openapi-spec-validator);
//! - schemathesis, driven by the document the live server serves, runs every check it has
//!   (`--checks all`) in every phase (examples, coverage, fuzzing, and stateful along the
//!   document's links) against every operation, with an admin's token in the
//!   `Authorization` header: every answer must match the document (status, content type,
//!   schema, headers), a schema-valid request must be accepted and a schema-violating one
//!   refused, a method a path does not take must be 405 with `Allow`, an operation that
//!   needs a credential must refuse a request without one or with a bad one, and no input
//!   may get a 5xx. Any finding, and any warning (an operation that only ever got 401/403, a
//!   schema the server mostly refuses), fails the test;
//! - every operation was reached with valid credentials and answered 2xx at least once, and
//!   every operation that needs a credential refused a request without one (read from the
//!   run's HAR report, not from schemathesis's own summary).
//!
//! What a JSON schema cannot say (which bytes are an image; refusals that depend on the
//! server's state) is handled by tests/openapi/hooks.py, whose docstring says how. Both tools
//! come from PyPI, pinned in tests/openapi/requirements.txt, in the venv scripts/setup.sh
//! makes (tests/openapi/.venv); tests/openapi/README.md says how to move to a newer
//! schemathesis. The route table's own unit test checks that the document names every route
//! (src/server/router.rs).

mod common;

use common::{fixture, model_dir, multipart, Server};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Generated requests per operation and phase (and stateful scenarios): enough to cover
/// every operation's fields and their mutations, few enough for the suite (some 2,500
/// requests, about a minute on 2 cores).
const EXAMPLES_PER_OPERATION: &str = "20";
/// The longest chain of linked calls in one stateful scenario.
const STATEFUL_MAX_STEPS: u32 = 6;
/// The cap on a run (schemathesis's own `--max-time` would instead fuzz until it is spent).
const MAX_RUN: Duration = Duration::from_secs(600);
/// The default seed: the same requests every run, so a failure can be replayed.
/// `AIOCR_SCHEMATHESIS_SEED` explores others.
const DEFAULT_SEED: &str = "15";
/// Points for the admin's uploads during the run (each costs its kind's price).
const RUN_POINTS: u64 = 1_000_000;
/// The server's settings for the run: no per-user rate limit and no login backoff or
/// refusal delay, so that thousands of requests (and failed logins) in a minute reach the
/// endpoints' logic instead of 429s; the limits have their own tests.
/// Queues long enough for every upload of a run sent without `wait` (a full queue is a 503).
const SETTINGS: [&str; 7] = [
    "rate_limit_per_sec=0",
    "login_refusal_delay_ms=0",
    "login_account_free_failures=1000000",
    "login_address_free_failures=1000000",
    "queue_len=16384",
    "detect_queue_len=16384",
    "slide_queue_len=16384",
];
/// The warnings that fail the run: all but the two that measure how many generated requests
/// were accepted (`validation_mismatch`, `low_valid_rate`). Of the admin operations that name
/// a user, most generated requests name none that exists; those refusals are the server's
/// state, not the document's shapes, and hooks.py accepts them one by one, by their code.
const FAIL_ON_WARNINGS: [&str; 13] = [
    "missing_auth",
    "missing_test_data",
    "base_url_mismatch",
    "missing_deserializer",
    "unused_openapi_auth",
    "unsupported_regex",
    "method_not_allowed",
    "constants_extraction",
    "unmatched_filter",
    "unresolvable_reference",
    "rate_limited",
    "dictionary_mismatch",
    "timeout_units",
];
/// Users the admin operations (role, points, key and token revocation, removal) act on.
const VICTIMS: usize = 4;
/// Models the admin adds before the run, for the removals to name (a few of the default
/// `models_per_user`, 16, so that the run's own additions are accepted too).
const MODELS_TO_REMOVE: usize = 3;

fn tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/openapi/.venv/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

fn document() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

#[test]
fn the_document_is_valid_openapi_3_1_and_is_what_the_server_serves() {
    let output = Command::new(tool("openapi-spec-validator"))
        .arg(document())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(": OK"), "{text}");
    let server = Server::start(1, &[]);
    let served = server.client().get("/openapi.json", None);
    assert_eq!(served.body, std::fs::read(document()).unwrap());
}

#[test]
fn schemathesis_finds_every_answer_as_documented_and_every_operation_answers() {
    let server = Server::start(2, &SETTINGS);
    let token = server.admin_token();
    let base = format!("http://127.0.0.1:{}", server.port);
    let seed = std::env::var("AIOCR_SCHEMATHESIS_SEED").unwrap_or(DEFAULT_SEED.to_string());
    // Nothing of a run is kept (no example database); the working directory is a scratch one.
    let workdir = tempfile::tempdir().unwrap();
    let config = workdir.path().join("schemathesis.toml");
    std::fs::write(&config, run_config(&server, &token)).unwrap();
    let reports = workdir.path().join("reports");
    let mut run = Command::new(tool("st"))
        .current_dir(workdir.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .env("AIOCR_ST_MCP_SESSION", mcp_session(&server, &token))
        .env("AIOCR_ST_MCP_VERSION", MCP_VERSION)
        .env("AIOCR_ST_MCP_URL", format!("{base}/mcp"))
        .env("AIOCR_ST_MCP_TOKEN", &token)
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--seed", &seed])
        .args(["--report", "har", "--report-dir"])
        .arg(&reports)
        // hooks.py sends a real model (ddddocr's ONNX file) in the model additions.
        .env("AIOCR_MODEL_DIR", model_dir())
        // One worker: CPython 3.11's parser is not safe for Hypothesis's concurrent lambda
        // descriptions ("AST constructor recursion depth mismatch") with several.
        .args([
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .spawn()
        .expect("run schemathesis");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > MAX_RUN {
            let _ = run.kill();
            panic!("schemathesis ran longer than {MAX_RUN:?}: stopped");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "schemathesis found answers the document does not describe (seed {seed})"
    );
    every_operation_answered_and_refused(&answers_by_operation(&reports));
    // The server survived it all.
    assert_eq!(server.client().get("/health", None).status, 200);
}

/// The run's configuration: the hooks, warnings as failures, the upload `/v2/result` and
/// `/v2/report` ask about, and the users whose credentials some operations end or need.
fn run_config(server: &Server, token: &str) -> String {
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/hooks.py");
    // `/v2/result` and `/v2/report` reach their logic only with an upload that exists: the
    // admin makes one and the run's `id` is its id.
    let upload_id = upload_as(server, token);
    let mut text = format!(
        "hooks = {hooks:?}\n\
         [warnings]\nfail-on = {FAIL_ON_WARNINGS:?}\n\
         [phases.stateful]\nmax-steps = {STATEFUL_MAX_STEPS}\n\
         [parameters]\n\"query.id\" = \"{upload_id}\"\n"
    );
    // A login with a user's name and password some of the time (a dictionary each), so that
    // some logins succeed among the generated ones.
    let login_user = "st-login";
    server.create_user(token, login_user, 0, "user");
    text += &format!(
        "[dictionaries.login-names]\nvalues = [\"{login_user}\"]\n\
         [dictionaries.login-passwords]\nvalues = [\"password-{login_user}\"]\n\
         [[operations]]\ninclude-operation-id = \"login\"\n\
         parameters = {{ \"body.username\" = {{ dictionary = \"login-names\", probability = 0.5 }}, \
         \"body.password\" = {{ dictionary = \"login-passwords\", probability = 0.5 }} }}\n"
    );
    // The admin operations name a user: half of the time one that exists (by name or id).
    let victims: Vec<(String, u64)> = (0..VICTIMS)
        .map(|n| {
            let name = format!("st-victim-{n}");
            let (id, _) = server.create_user(token, &name, 0, "user");
            (name, id)
        })
        .collect();
    let quoted = |values: Vec<String>| values.join(", ");
    text += &format!(
        "[dictionaries.victim-names]\nvalues = [{}]\n\
         [dictionaries.victim-ids]\nvalues = [{}]\n\
         [[operations]]\ninclude-operation-id = [\"setRole\", \"removeUser\", \"adjustPoints\", \
         \"adminRevokeKey\", \"adminRevokeTokens\"]\n\
         parameters = {{ \"body.username\" = {{ dictionary = \"victim-names\", probability = 0.5 }}, \
         \"body.user_id\" = {{ dictionary = \"victim-ids\", probability = 0.5 }} }}\n",
        quoted(victims.iter().map(|(name, _)| format!("\"{name}\"")).collect()),
        quoted(victims.iter().map(|(_, id)| format!("\"{id}\"")).collect()),
    );
    // Logout and a password change end the caller's tokens: each gets a user of its own, so
    // the admin's token stays good for every other operation. The password change is given
    // its user's password half of the time.
    let (_, own) = server.create_user(token, "st-logout", 0, "user");
    text += &format!(
        "[[operations]]\ninclude-operation-id = \"logout\"\n\
         headers = {{ Authorization = \"Bearer {own}\" }}\n"
    );
    // Removing a model reaches its logic only with a model that exists: the admin adds a
    // few (real ones) and the removals name one of them half of the time.
    let models: Vec<String> = (0..MODELS_TO_REMOVE)
        .map(|n| add_model_as(server, token, &format!("st-model-{n}")))
        .collect();
    text += &format!(
        "[dictionaries.model-names]\nvalues = [{}]\n\
         [[operations]]\ninclude-operation-id = \"modelRemove\"\n\
         parameters = {{ \"body.name\" = {{ dictionary = \"model-names\", probability = 0.5 }} }}\n",
        quoted(models.iter().map(|name| format!("\"{name}\"")).collect()),
    );
    let (_, own) = server.create_user(token, "st-password", 0, "user");
    text += &format!(
        "[dictionaries.old-passwords]\nvalues = [\"password-st-password\"]\n\
         [[operations]]\ninclude-operation-id = \"changePassword\"\n\
         headers = {{ Authorization = \"Bearer {own}\" }}\n\
         parameters = {{ \"body.old_password\" = {{ dictionary = \"old-passwords\", probability = 0.5 }} }}\n"
    );
    text
}

/// `POST /v2/models` of a real model (ddddocr's ONNX file with a charsets.json that fits
/// it) under `name`: the name.
fn add_model_as(server: &Server, token: &str, name: &str) -> String {
    let onnx = std::fs::read(model_dir().join("common_old.onnx")).unwrap();
    let charsets = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/custom-models/fixed-200x64/charsets.json"),
    )
    .unwrap();
    let (content_type, body) = multipart("onnx", &onnx, &[("name", name), ("charsets", &charsets)]);
    let answer = server
        .client()
        .post("/v2/models", Some(token), &content_type, &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    name.to_string()
}

/// The MCP version the run's session is opened at.
const MCP_VERSION: &str = "2025-11-25";

/// An MCP session of the token's user, for the run's schema-valid `POST /mcp` requests
/// (tests/openapi/hooks.py): its id.
fn mcp_session(server: &Server, token: &str) -> String {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{MCP_VERSION}","capabilities":{{}},"clientInfo":{{"name":"schemathesis","version":"1"}}}}}}"#
    );
    let answer = server.client().post_json("/mcp", Some(token), &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer
        .header("Mcp-Session-Id")
        .expect("a session id")
        .to_string()
}

/// An upload of the token's user (given the run's points first): its id.
fn upload_as(server: &Server, token: &str) -> String {
    let mut client = server.client();
    let grant =
        format!(r#"{{"username":"admin","points":{RUN_POINTS},"reason":"schemathesis run"}}"#);
    let granted = client.post_json("/v2/admin/points", Some(token), &grant);
    assert_eq!(granted.status, 200, "{}", granted.text());
    let (content_type, body) = multipart("file", &fixture("0001.png"), &[]);
    let answer = client.post(
        "/v2/decode/upload?wait=1&timeout_ms=30000",
        Some(token),
        &content_type,
        &body,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["data"]["id"].as_str().unwrap().to_string()
}

/// Every HTTP status each operation of the document got during the run, from its HAR
/// report (one entry per request sent, probes included).
fn answers_by_operation(reports: &Path) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let har = std::fs::read_dir(reports)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "json"))
        .expect("the run's HAR report");
    let har: Value = serde_json::from_slice(&std::fs::read(har).unwrap()).unwrap();
    let mut answers: BTreeMap<(String, String), BTreeSet<u16>> = BTreeMap::new();
    for entry in har["log"]["entries"].as_array().unwrap() {
        let url = entry["request"]["url"].as_str().unwrap();
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
            .unwrap_or("/");
        let path = path.split('?').next().unwrap().to_string();
        let method = entry["request"]["method"].as_str().unwrap().to_lowercase();
        let status = entry["response"]["status"].as_u64().unwrap() as u16;
        answers.entry((method, path)).or_default().insert(status);
    }
    answers
}

/// Each operation of the document got a 2xx (it was reached with valid credentials and
/// worked), and each operation that needs a credential got a 401 (the refusal was tested).
fn every_operation_answered_and_refused(answers: &BTreeMap<(String, String), BTreeSet<u16>>) {
    let document: Value = serde_json::from_slice(&std::fs::read(document()).unwrap()).unwrap();
    let mut never_2xx = Vec::new();
    let mut never_refused = Vec::new();
    let mut operations = 0;
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let Some(operation) = operation.as_object() else {
                continue;
            };
            operations += 1;
            let statuses = answers
                .get(&(method.clone(), path.clone()))
                .cloned()
                .unwrap_or_default();
            eprintln!("{} {path}: {statuses:?}", method.to_uppercase());
            if !statuses.iter().any(|status| (200..300).contains(status)) {
                never_2xx.push(format!("{method} {path}"));
            }
            let needs_credential = operation["security"]
                .as_array()
                .is_some_and(|alternatives| {
                    alternatives
                        .iter()
                        .all(|a| a != &Value::Object(Default::default()))
                });
            if needs_credential && !statuses.contains(&401) {
                never_refused.push(format!("{method} {path}"));
            }
        }
    }
    assert!(operations > 0, "the document's operations");
    assert!(never_2xx.is_empty(), "never answered 2xx: {never_2xx:?}");
    assert!(
        never_refused.is_empty(),
        "never refused without a credential: {never_refused:?}"
    );
}
