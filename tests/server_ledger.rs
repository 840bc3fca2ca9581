//! The points ledger under load and across crashes: concurrent uploads and reports from many
//! connections keep balances equal to the journal; `kill -9` loses no acknowledged
//! reservation; SIGTERM and restarts void what never ran.

mod common;

use common::{base64, fixture, ledger_verify, Client, Server};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const START_POINTS: i64 = 300;

/// (username, token) for `count` users spread over the shards by their names.
fn users(server: &Server, count: usize) -> Vec<(String, String)> {
    let admin = server.admin_token();
    (0..count)
        .map(|index| {
            let name = format!("load{index}");
            let (_, token) = server.create_user(&admin, &name, START_POINTS, "user");
            (name, token)
        })
        .collect()
}

fn upload_body() -> String {
    json!({ "file": base64(&fixture("0001.png")) }).to_string()
}

/// One client's upload; `Some(id)` when acknowledged with 200.
fn try_upload(client: &mut Client, token: &str, body: &str) -> Option<Option<String>> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let answer = client.try_request(
        "POST",
        "/v2/decode/upload-base64",
        &headers,
        body.as_bytes(),
    )?;
    if answer.status != 200 {
        return Some(None);
    }
    Some(Some(
        answer.json()["data"]["id"].as_str().unwrap().to_string(),
    ))
}

#[test]
fn concurrent_uploads_and_reports_keep_the_ledger_exact() {
    let mut server = Server::start(2, &[]);
    let users = users(&server, 4);
    // Per user: (uploads, reports refunded).
    let counts: Arc<Mutex<HashMap<String, (i64, i64)>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let (name, token) = users[thread % users.len()].clone();
            let counts = counts.clone();
            let port = server.port;
            std::thread::spawn(move || {
                let mut client = Client::connect(port);
                let body = upload_body();
                for round in 0..25 {
                    let answer = client.post_json(
                        "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
                        Some(&token),
                        &body,
                    );
                    assert_eq!(answer.json()["data"]["status"], "done", "{}", answer.text());
                    let id = answer.json()["data"]["id"].as_str().unwrap().to_string();
                    let report_path = format!("/v2/report?id={id}");
                    let reported = round % 2 == 0;
                    if reported {
                        let report = client.post_json(&report_path, Some(&token), "{}");
                        assert_eq!(report.code(), 0, "{}", report.text());
                        assert_eq!(report.json()["data"]["refunded"], 1);
                        // Once only.
                        let again = client.post_json(&report_path, Some(&token), "{}");
                        assert_eq!(again.code(), 4002);
                    }
                    let mut counts = counts.lock().unwrap();
                    let entry = counts.entry(name.clone()).or_default();
                    entry.0 += 1;
                    entry.1 += i64::from(reported);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    let expected = |name: &str| {
        let (uploads, refunds) = counts[name];
        (START_POINTS - uploads + refunds, 0)
    };
    for (name, token) in &users {
        assert_eq!(server.balance(token), expected(name), "{name}");
    }
    assert_eq!(server.terminate(), 0);
    let (code, output) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{output}");
    // The same after a restart: every movement was durable.
    let server = server.restart();
    for (name, token) in &users {
        assert_eq!(server.balance(token), expected(name), "{name}");
    }
}

#[test]
fn kill_9_loses_no_acknowledged_reservation() {
    let mut server = Server::start(2, &[]);
    let users = users(&server, 4);
    let acknowledged: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let token = users[thread].1.clone();
            let (acknowledged, count, stop) = (acknowledged.clone(), count.clone(), stop.clone());
            let port = server.port;
            std::thread::spawn(move || {
                let mut client = Client::connect(port);
                let body = upload_body();
                while !stop.load(Ordering::SeqCst) {
                    match try_upload(&mut client, &token, &body) {
                        None => return, // the server died under us
                        Some(Some(id)) => {
                            acknowledged.lock().unwrap().push((thread, id));
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(None) => {}
                    }
                }
            })
        })
        .collect();
    while count.load(Ordering::SeqCst) < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Killed while the clients are still uploading.
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    let (code, output) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{output}");
    let server = server.restart();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 120);
    let mut client = server.client();
    let mut done_per_user = [0i64; 4];
    for (user, id) in &acknowledged {
        // Tokens survive the restart (the secret is kept in the data directory).
        let answer = client.get(&format!("/v2/result?id={id}"), Some(&users[*user].1));
        assert_eq!(
            answer.status,
            200,
            "acknowledged upload {id} lost: {}",
            answer.text()
        );
        // Recognised before the kill (posted), or voided at start-up (points given back).
        let status = answer.json()["data"]["status"].clone();
        assert!(status == "done" || status == "failed", "{}", answer.text());
        done_per_user[*user] += i64::from(status == "done");
    }
    for (user, (name, token)) in users.iter().enumerate() {
        // Each user's one client may have had one more upload accepted whose answer the kill
        // cut off: it is either done (charged) or voided.
        let (points, reserved) = server.balance(token);
        let charged = START_POINTS - points;
        assert_eq!(reserved, 0, "{name}");
        assert!(
            (done_per_user[user]..=done_per_user[user] + 1).contains(&charged),
            "{name}: charged {charged}, acknowledged and done {}",
            done_per_user[user]
        );
    }
    let (code, output) = ledger_verify(&server.data_dir);
    assert_ne!(
        code, 0,
        "verify must refuse a data directory in use: {output}"
    );
}
