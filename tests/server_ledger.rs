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
    let accepted: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let (name, token) = users[thread % users.len()].clone();
            let accepted = accepted.clone();
            let port = server.port;
            std::thread::spawn(move || {
                let mut client = Client::connect(port);
                let body = upload_body();
                for _ in 0..25 {
                    let id = try_upload(&mut client, &token, &body)
                        .unwrap()
                        .expect("accepted");
                    // A pending upload cannot be reported: refused, nothing moves.
                    let report =
                        client.post_json(&format!("/v2/report?id={id}"), Some(&token), "{}");
                    assert_eq!(report.code(), 4002);
                    accepted
                        .lock()
                        .unwrap()
                        .entry(name.clone())
                        .or_default()
                        .push(id);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    for (name, token) in &users {
        let count = accepted[name].len() as i64;
        assert_eq!(
            server.balance(token),
            (START_POINTS - count, count),
            "{name}"
        );
    }
    assert_eq!(server.terminate(), 0);
    let (code, output) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{output}");
    // Nothing ran: SIGTERM voided every pending upload, so every balance is whole again.
    let server = server.restart();
    for (name, token) in &users {
        assert_eq!(server.balance(token), (START_POINTS, 0), "{name}");
        let id = &accepted[name][0];
        let result = server
            .client()
            .get(&format!("/v2/result?id={id}"), Some(token))
            .json();
        assert_eq!(result["data"]["status"], "failed", "{result}");
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
    for (user, id) in &acknowledged {
        // Tokens survive the restart (the secret is kept in the data directory).
        let answer = client.get(&format!("/v2/result?id={id}"), Some(&users[*user].1));
        assert_eq!(
            answer.status,
            200,
            "acknowledged upload {id} lost: {}",
            answer.text()
        );
        // It never ran: voided at start-up, the points given back.
        assert_eq!(answer.json()["data"]["status"], "failed");
    }
    for (name, token) in &users {
        assert_eq!(server.balance(token), (START_POINTS, 0), "{name}");
    }
    let (code, output) = ledger_verify(&server.data_dir);
    assert_ne!(
        code, 0,
        "verify must refuse a data directory in use: {output}"
    );
}
