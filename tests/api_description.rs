//! The API description (docs/openapi.json, served at /openapi.json) is true:
//! - it is a valid OpenAPI 3.1 document (openapi-spec-validator);
//! - schemathesis, driven by the document the live server serves, sends generated requests
//!   (the document's shapes, and mutations of them) to every operation with an admin's token:
//!   every answer must match the document (status, content type, schema, headers), a method
//!   a path does not take must be 405 with `Allow`, an operation that needs a credential must
//!   refuse a request without one, and no input may get a 5xx.
//!
//! Both tools come from PyPI, pinned in tests/openapi/requirements.txt, in the venv
//! scripts/setup.sh makes (tests/openapi/.venv). The route table's own unit test checks that
//! the document names every route (src/server/router.rs).

mod common;

use common::{fixture, multipart, Server};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Generated requests per operation and phase: enough to cover every operation's fields and
/// their mutations, small enough for the suite (about 10 s, some 1,200 requests).
const EXAMPLES_PER_OPERATION: &str = "20";
/// The cap on a run (schemathesis's own `--max-time` would instead fuzz until it is spent).
const MAX_RUN: Duration = Duration::from_secs(300);
/// The default seed: the same requests every run, so a failure can be replayed.
/// `AIOCR_SCHEMATHESIS_SEED` explores others.
const DEFAULT_SEED: &str = "15";
/// Every check that compares the answers with the document, and the server-error check.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance,unsupported_method,\
allow_header_conformance,ignored_auth";

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
fn schemathesis_finds_every_answer_as_documented_and_no_5xx() {
    let server = Server::start(2, &[]);
    let token = server.admin_token();
    let base = format!("http://127.0.0.1:{}", server.port);
    let seed = std::env::var("AIOCR_SCHEMATHESIS_SEED").unwrap_or(DEFAULT_SEED.to_string());
    // Nothing of a run is kept (no example database); the working directory is a scratch one.
    let workdir = tempfile::tempdir().unwrap();
    // `/v2/result` and `/v2/report` reach their logic only with an upload that exists: the
    // admin makes one and the run's `id` is its id.
    let upload_id = upload_as(&server, &token);
    let config = workdir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\n\"query.id\" = \"{upload_id}\"\n"),
    )
    .unwrap();
    let mut run = Command::new(tool("st"))
        .current_dir(workdir.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--seed", &seed])
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
    // The server survived it all.
    assert_eq!(server.client().get("/health", None).status, 200);
}

/// An upload of the token's user (given the points for it first): its id.
fn upload_as(server: &Server, token: &str) -> String {
    let mut client = server.client();
    let grant = r#"{"username":"admin","points":10,"reason":"schemathesis run"}"#;
    assert_eq!(
        client
            .post_json("/v2/admin/points", Some(token), grant)
            .status,
        200
    );
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
