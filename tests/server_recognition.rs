//! The accelerator behind the uploads, on the real binary with the real models: answers equal
//! ddddocr's, failures and full queues cost nothing, the cache skips the model, and every
//! balance equals its journal afterwards.

mod common;

use common::{
    base64, fixture, ledger_verify, manifest, metric_value, multipart, poll_until_finished, Client,
    Server,
};
use serde_json::json;

#[test]
fn sync_and_async_answers_equal_ddddocrs() {
    let mut server = Server::start(2, &[]);
    let token = server.demo_token();
    let mut client = server.client();
    let sample: Vec<_> = manifest().into_iter().step_by(8).collect();
    let mut charged = 0;
    for (i, (file, old, beta)) in sample.iter().enumerate() {
        let (model, expected) = if i % 3 == 2 {
            ("beta", beta)
        } else {
            ("old", old)
        };
        let image = fixture(file);
        let text = if i % 2 == 0 {
            let path = format!("/v2/decode/upload-base64?wait=1&timeout_ms=30000&model={model}");
            let answer = client.post_json(
                &path,
                Some(&token),
                &json!({ "image": base64(&image) }).to_string(),
            );
            assert_eq!(answer.status, 200, "{file}: {}", answer.text());
            assert_eq!(
                answer.json()["data"]["status"],
                "done",
                "{file}: {}",
                answer.text()
            );
            answer.json()["data"]["result"]
                .as_str()
                .unwrap()
                .to_string()
        } else {
            let (content_type, body) = multipart("file", &image, &[("model", model)]);
            let answer = client.post("/v2/decode/upload", Some(&token), &content_type, &body);
            assert_eq!(
                answer.json()["data"]["status"],
                "pending",
                "{file}: {}",
                answer.text()
            );
            let id = answer.json()["data"]["id"].as_str().unwrap().to_string();
            let done = poll_until_finished(&mut client, &token, &id);
            assert_eq!(done["status"], "done", "{file}: {done}");
            done["result"].as_str().unwrap().to_string()
        };
        assert_eq!(&text, expected, "{file} with model {model}");
        charged += 1;
    }
    assert_eq!(server.balance(&token), (1000 - charged, 0));
    assert_eq!(server.terminate(), 0);
    let (code, report) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn probability_and_charset_range_reach_the_engine() {
    let server = Server::start(1, &[]);
    let token = server.demo_token();
    let mut client = server.client();
    let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
    let answer = client.post_json(
        "/v2/decode/upload-base64?wait=1&timeout_ms=30000&probability=1&charset_range=lpz",
        Some(&token),
        &body,
    );
    let data = &answer.json()["data"];
    assert_eq!(data["result"], "lpz", "{}", answer.text());
    let confidence = data["confidence"].as_f64().unwrap();
    assert!(confidence > 0.0 && confidence <= 1.0);
}

#[test]
fn an_image_found_broken_when_decoded_is_3003_and_refunded() {
    let mut server = Server::start(2, &[]);
    let token = server.demo_token();
    let mut client = server.client();
    // A PNG whose header is fine (it passes the header check) but whose pixel data stops
    // half way: decoding fails on the recognition thread. The client's bad image is the
    // client's error (3003, refunded), never a 5xx that invites retries.
    let png = fixture("0001.png");
    let broken = &png[..png.len() / 2];
    let body = json!({ "file": base64(broken) }).to_string();
    let answer = client.post_json(
        "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
        Some(&token),
        &body,
    );
    assert_eq!(
        (answer.status, answer.code()),
        (415, 3003),
        "{}",
        answer.text()
    );
    let async_answer = client.post_json("/v2/decode/upload-base64", Some(&token), &body);
    let id = async_answer.json()["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = poll_until_finished(&mut client, &token, &id);
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("PNG"),
        "{failed}"
    );
    assert_eq!(server.balance(&token), (1000, 0), "both uploads refunded");
    assert_eq!(server.terminate(), 0);
    assert_eq!(ledger_verify(&server.data_dir).0, 0);
}

#[test]
fn a_cache_hit_is_charged_but_does_not_run_the_model() {
    let server = Server::start(1, &[]);
    let token = server.demo_token();
    let mut client = server.client();
    let body = json!({ "file": base64(&fixture("0002.jpg")) }).to_string();
    let first = client
        .post_json(
            "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
            Some(&token),
            &body,
        )
        .json();
    let recognised_once = metric_value(&server.metrics(), "aiocr_recognize_duration_us_count");
    let second = client
        .post_json(
            "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
            Some(&token),
            &body,
        )
        .json();
    assert_eq!(first["data"]["result"], "工b0");
    assert_eq!(second["data"]["result"], "工b0");
    assert_ne!(first["data"]["id"], second["data"]["id"]);
    let metrics = server.metrics();
    assert_eq!(
        metric_value(&metrics, "aiocr_recognize_duration_us_count"),
        recognised_once
    );
    assert_eq!(metric_value(&metrics, "aiocr_cache_hits_total"), 1.0);
    assert_eq!(metric_value(&metrics, "aiocr_cache_misses_total"), 1.0);
    // Other options are another answer: the model runs again.
    let beta = client
        .post_json(
            "/v2/decode/upload-base64?wait=1&timeout_ms=30000&model=beta",
            Some(&token),
            &body,
        )
        .json();
    assert_eq!(beta["data"]["result"], "1b0");
    assert_eq!(
        metric_value(&server.metrics(), "aiocr_recognize_duration_us_count"),
        recognised_once + 1.0
    );
    assert_eq!(
        server.balance(&token),
        (997, 0),
        "every upload is charged, hits too"
    );
}

#[test]
fn a_report_after_the_window_is_4003_and_refunds_nothing() {
    let server = Server::start(1, &["report_window_secs=0"]);
    let token = server.demo_token();
    let mut client = server.client();
    let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
    let done = client
        .post_json(
            "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
            Some(&token),
            &body,
        )
        .json();
    let id = done["data"]["id"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(5)); // past a window of 0 s
    let late = client.post_json(&format!("/v2/report?id={id}"), Some(&token), "{}");
    assert_eq!((late.status, late.code()), (410, 4003), "{}", late.text());
    assert_eq!(server.balance(&token), (999, 0));
}

#[test]
fn a_full_queue_answers_503_and_charges_nothing() {
    // One recognition thread and a queue of one: 48 uploads of distinct images at once
    // cannot all fit.
    let mut server = Server::start(
        2,
        &[
            "queue_len=1",
            "recognition_cores=0",
            "rate_limit_burst=1000",
        ],
    );
    let token = server.demo_token();
    let files: Vec<String> = manifest().into_iter().take(48).map(|row| row.0).collect();
    let answers: Vec<(u16, i64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|file| {
                let (port, token) = (server.port, token.clone());
                scope.spawn(move || {
                    let body = json!({ "file": base64(&fixture(file)) }).to_string();
                    let answer = Client::connect(port).post_json(
                        "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
                        Some(&token),
                        &body,
                    );
                    (answer.status, answer.code())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let accepted = answers.iter().filter(|a| **a == (200, 0)).count() as i64;
    let busy = answers.iter().filter(|a| **a == (503, 5001)).count() as i64;
    assert_eq!(accepted + busy, 48, "{answers:?}");
    assert!(busy > 0, "a queue of one must overflow: {answers:?}");
    assert_eq!(server.balance(&token), (1000 - accepted, 0));
    let full = format!("aiocr_uploads_queue_full_total {busy}");
    assert!(server.metrics().contains(&full), "{full}");
    assert_eq!(server.terminate(), 0);
    assert_eq!(ledger_verify(&server.data_dir).0, 0);
}

#[test]
fn uploads_in_flight_at_shutdown_are_refunded() {
    let mut server = Server::start(2, &["recognition_cores=0", "rate_limit_burst=1000"]);
    let token = server.demo_token();
    let mut client = server.client();
    let mut ids = Vec::new();
    for (file, _, _) in manifest().into_iter().take(60) {
        let answer = client.post_json(
            "/v2/decode/upload-base64",
            Some(&token),
            &json!({ "file": base64(&fixture(&file)) }).to_string(),
        );
        ids.push(answer.json()["data"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(server.terminate(), 0);
    assert_eq!(ledger_verify(&server.data_dir).0, 0);
    let server = server.restart();
    let token = server.demo_token();
    let mut client = server.client();
    let done = ids
        .iter()
        .filter(|id| {
            let data = client
                .get(&format!("/v2/result?id={id}"), Some(&token))
                .json()["data"]
                .clone();
            assert_ne!(data["status"], "pending", "{data}");
            data["status"] == "done"
        })
        .count() as i64;
    assert_eq!(
        server.balance(&token),
        (1000 - done, 0),
        "every upload not done was refunded"
    );
}

#[test]
fn missing_models_stop_the_server_with_the_setup_command() {
    let scratch = common::scratch_dir("no-models");
    let empty = scratch.path();
    let output = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--data",
        ])
        .arg(empty.join("data"))
        .arg("--model-dir")
        .arg(empty)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scripts/setup.sh"), "{stderr}");
}

#[test]
fn a_full_waiter_table_answers_503_and_charges_nothing() {
    // One waiting request per shard. The first `wait=1` upload waits behind 300 queued jobs
    // on one recognition thread (seconds of work), so the second finds the table full.
    let mut server = Server::start(
        1,
        &[
            "max_waiters_per_shard=1",
            "recognition_cores=0",
            "cache_entries=0",
            "rate_limit_burst=10000",
        ],
    );
    let token = server.demo_token();
    let files: Vec<String> = manifest().into_iter().map(|row| row.0).collect();
    let mut client = server.client();
    for file in files.iter().cycle().take(300) {
        let body = json!({ "file": base64(&fixture(file)) }).to_string();
        let answer = client.post_json("/v2/decode/upload-base64", Some(&token), &body);
        assert_eq!(answer.code(), 0);
    }
    assert_eq!(server.balance(&token).0, 700);
    let waiting = std::thread::spawn({
        let (port, token) = (server.port, token.clone());
        let body = json!({ "file": base64(&fixture(&files[0])) }).to_string();
        move || {
            Client::connect(port).post_json(
                "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
                Some(&token),
                &body,
            )
        }
    });
    // Its reservation shows once it was accepted, and it registers as a waiter in the same
    // step (no await between the two on the owner shard).
    while server.balance(&token).0 != 699 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let body = json!({ "file": base64(&fixture(&files[1])) }).to_string();
    let refused = client.post_json(
        "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
        Some(&token),
        &body,
    );
    assert_eq!((refused.status, refused.code()), (503, 5001));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        server.balance(&token).0,
        699,
        "the refused upload cost nothing"
    );
    let waited = waiting.join().unwrap();
    assert_eq!(waited.json()["data"]["status"], "done", "{}", waited.text());
    assert!(server
        .metrics()
        .contains("aiocr_uploads_waiters_full_total 1"));
    assert_eq!(server.terminate(), 0);
    assert_eq!(ledger_verify(&server.data_dir).0, 0);
}
