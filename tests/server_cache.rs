//! The answer cache on the real binary with the real models: one cache for every user and
//! shard, asked by hash with `POST /v2/decode/cached`, emptied of what is reported, charged
//! only for what it answers; every balance equals its journal afterwards.

mod common;

use aiocr::recognition::cache::digest;
use aiocr::store::ids::shard_of;
use common::{base64, fixture, ledger_verify, Client, Server};
use serde_json::{json, Value};
use std::path::Path;

fn metric(server: &Server, name: &str) -> f64 {
    common::metric_value(&server.metrics(), name)
}

fn model_runs(server: &Server) -> f64 {
    metric(server, "aiocr_recognize_duration_us_count")
}

fn hex(bytes: &[u8]) -> String {
    digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `count` users (100 points each) of which some live on shard 0 and some on shard 1.
fn users_on_both_shards(server: &Server, count: usize) -> Vec<(u64, String)> {
    let admin = server.admin_token();
    let users: Vec<_> = (0..count)
        .map(|i| server.create_user(&admin, &format!("cacheuser{i}"), 100, "user"))
        .collect();
    let shards: Vec<u16> = users.iter().map(|(id, _)| shard_of(*id)).collect();
    assert!(shards.contains(&0) && shards.contains(&1), "{shards:?}");
    users
}

fn upload(client: &mut Client, token: &str, image: &[u8], query: &str) -> Value {
    let body = json!({ "file": base64(image) }).to_string();
    let path = format!("/v2/decode/upload-base64?wait=1{query}");
    let answer = client.post_json(&path, Some(token), &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let data = answer.json()["data"].clone();
    assert_eq!(data["status"], "done", "{data}");
    data
}

fn lookup(client: &mut Client, token: &str, body: &Value) -> (u16, Value) {
    let answer = client.post_json("/v2/decode/cached", Some(token), &body.to_string());
    (answer.status, answer.json())
}

fn lookups(hashes: &[Value]) -> Value {
    json!({ "lookups": hashes })
}

fn images() -> Vec<Vec<u8>> {
    [
        "0001.png", "0002.jpg", "0003.gif", "0004.png", "0005.png", "0006.jpg",
    ]
    .iter()
    .map(|name| fixture(name))
    .collect()
}

#[test]
fn the_same_image_from_users_on_different_shards_runs_the_model_once() {
    let server = Server::start(2, &[]);
    let users = users_on_both_shards(&server, 6);
    let first = users.iter().find(|(id, _)| shard_of(*id) == 0).unwrap();
    let second = users.iter().find(|(id, _)| shard_of(*id) == 1).unwrap();
    let mut client = server.client();
    // Several images: their entries live on both shards, so both the local and the
    // cross-shard paths run.
    for image in images() {
        let runs = model_runs(&server);
        let fresh = upload(&mut client, &first.1, &image, "");
        assert!(fresh.get("cache_hit").is_none(), "{fresh}");
        assert_eq!(model_runs(&server), runs + 1.0);
        let again = upload(&mut client, &second.1, &image, "");
        assert_eq!(again["cache_hit"], true, "{again}");
        assert_eq!(again["result"], fresh["result"]);
        assert_eq!(again["cost"], 1, "a hit is charged");
        assert_eq!(
            model_runs(&server),
            runs + 1.0,
            "the other shard's user hit"
        );
    }
    assert!(metric(&server, "aiocr_cache_cross_shard_lookups_total") > 0.0);
    assert_eq!(metric(&server, "aiocr_cache_hits_total"), 6.0);
    assert_eq!(metric(&server, "aiocr_cache_misses_total"), 6.0);
    assert_eq!(metric(&server, "aiocr_results_cache_hits_total"), 6.0);
    assert_eq!(server.balance(&first.1), (94, 0));
    assert_eq!(server.balance(&second.1), (94, 0));
}

#[test]
fn a_hash_lookup_misses_before_the_upload_and_hits_after_in_order() {
    let mut server = Server::start(2, &[]);
    let users = users_on_both_shards(&server, 6);
    let (uploader, asker) = (&users[0].1, &users[1].1);
    let mut client = server.client();
    let images = images();
    let hashes: Vec<Value> = images
        .iter()
        .map(|image| json!({"hash": hex(image)}))
        .collect();

    // Before any upload: every lookup misses, nothing is charged.
    let (status, before) = lookup(&mut client, asker, &lookups(&hashes));
    assert_eq!(status, 200, "{before}");
    let results = before["data"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for (result, hash) in results.iter().zip(&hashes) {
        assert_eq!(result, &json!({"hash": hash["hash"], "status": "miss"}));
    }
    assert_eq!(server.balance(asker), (100, 0), "a miss costs nothing");

    let first = upload(&mut client, uploader, &images[0], "");
    let third = upload(&mut client, uploader, &images[2], "");
    let runs = model_runs(&server);
    // In order: hit, miss, hit, another model's answer (miss), the hash in upper case (hit).
    let asked = vec![
        hashes[0].clone(),
        hashes[1].clone(),
        hashes[2].clone(),
        json!({"hash": hex(&images[0]), "options": {"model": "beta"}}),
        json!({"hash": hex(&images[2]).to_uppercase()}),
    ];
    let (status, after) = lookup(&mut client, asker, &lookups(&asked));
    assert_eq!(status, 200, "{after}");
    let results = after["data"]["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "miss", "done", "miss", "done"]);
    assert_eq!(results[0]["result"], first["result"]);
    assert_eq!(results[2]["result"], third["result"]);
    assert_eq!(results[4]["result"], third["result"]);
    assert_eq!(
        results[4]["hash"],
        hex(&images[2]),
        "the hash, in lower case"
    );
    for hit in [&results[0], &results[2], &results[4]] {
        assert_eq!(
            (hit["cache_hit"].clone(), hit["cost"].clone()),
            (json!(true), json!(1))
        );
        assert_ne!(hit["id"], first["id"], "the asker's own upload record");
    }
    assert_eq!(model_runs(&server), runs, "lookups never run the model");
    assert_eq!(
        server.balance(asker),
        (97, 0),
        "three hits at an upload's price"
    );

    // A hit is the asker's upload: its result, its stats.
    let id = results[0]["id"].as_str().unwrap();
    let polled = client
        .get(&format!("/v2/result?id={id}"), Some(asker))
        .json();
    assert_eq!(polled["data"]["result"], first["result"]);
    assert_eq!(polled["data"]["cache_hit"], true);
    let stats = client.get("/v2/user/stats?days=1", Some(asker)).json();
    let today = &stats["data"]["days"][0];
    assert_eq!(
        (today["uploads"].clone(), today["cache_hits"].clone()),
        (json!(3), json!(3))
    );

    // One lookup on its own.
    let single = json!({"hash": hex(&images[0]), "soft_id": "7"});
    let (status, one) = lookup(&mut client, asker, &single);
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["data"]["results"][0]["status"], "done");
    assert_eq!(server.balance(asker), (96, 0));

    // Every hit is an upload of its own by id, and in the asker's list, newest first (the
    // store keeps a batch's hits together).
    for hit in [&results[2], &results[4]] {
        let id = hit["id"].as_str().unwrap();
        let polled = client
            .get(&format!("/v2/result?id={id}"), Some(asker))
            .json();
        assert_eq!(polled["data"]["result"], third["result"], "{polled}");
    }
    let listed = client.get("/v2/user/uploads?limit=2", Some(asker)).json();
    let newest: Vec<&Value> = listed["data"]["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let ids = |items: &[&Value]| -> Vec<String> {
        items
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&newest),
        [
            one["data"]["results"][0]["id"].as_str().unwrap(),
            results[4]["id"].as_str().unwrap()
        ]
    );
    let before = listed["data"]["next_before"].as_str().unwrap();
    let older = client
        .get(
            &format!("/v2/user/uploads?limit=5&before={before}"),
            Some(asker),
        )
        .json();
    let older: Vec<&Value> = older["data"]["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(
        ids(&older),
        [
            results[2]["id"].as_str().unwrap(),
            results[0]["id"].as_str().unwrap()
        ]
    );

    assert_eq!(server.terminate(), 0);
    let (code, report) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn bad_lookups_are_refused_and_cost_nothing() {
    let server = Server::start(1, &["cache_lookup_max=3"]);
    let admin = server.admin_token();
    let (_, poor) = server.create_user(&admin, "poor", 1, "user");
    let (_, rich) = server.create_user(&admin, "rich", 100, "user");
    let mut client = server.client();
    let images = images();
    upload(&mut client, &rich, &images[0], "");
    upload(&mut client, &rich, &images[1], "");
    let hash = hex(&images[0]);
    let refused = |client: &mut Client, token: &str, body: Value| {
        let (status, answer) = lookup(client, token, &body);
        (status, answer["code"].as_i64().unwrap())
    };
    let four = lookups(&vec![json!({"hash": hash}); 4]);
    assert_eq!(
        refused(&mut client, &rich, four),
        (400, 1001),
        "over cache_lookup_max"
    );
    assert_eq!(refused(&mut client, &rich, lookups(&[])), (400, 1001));
    assert_eq!(
        refused(&mut client, &rich, json!({"hash": "abc"})),
        (400, 1001)
    );
    assert_eq!(
        refused(&mut client, &rich, json!({"lookups": "x"})),
        (400, 1001)
    );
    let unknown_model = json!({"hash": hash, "options": {"model": "nope"}});
    assert_eq!(refused(&mut client, &rich, unknown_model), (400, 3005));
    let bad_kind = json!({"hash": hash, "options": {"kind": "audio"}});
    assert_eq!(refused(&mut client, &rich, bad_kind), (400, 3006));
    let no_background = json!({"hash": hash, "options": {"kind": "slide"}});
    assert_eq!(refused(&mut client, &rich, no_background), (400, 1001));
    // Without credentials: refused from the head, before any of the declared body is sent
    // (and that connection is closed).
    let mut anonymous = server.client();
    anonymous.send(
        b"POST /v2/decode/cached HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 100000\r\n\r\n",
    );
    let answer = anonymous.read_answer(false);
    assert_eq!((answer.status, answer.code()), (401, 1002));
    assert_eq!(server.balance(&rich), (98, 0), "only the two uploads");

    // Two hits for one point: refused whole, nothing charged, nothing recorded.
    let two = lookups(&[json!({"hash": hash}), json!({"hash": hex(&images[1])})]);
    assert_eq!(refused(&mut client, &poor, two), (402, 2001));
    assert_eq!(server.balance(&poor), (1, 0));
    let uploads = client.get("/v2/user/uploads", Some(&poor)).json();
    assert_eq!(uploads["data"]["uploads"], json!([]));
}

#[test]
fn a_report_evicts_the_answer_for_everyone() {
    let server = Server::start(2, &[]);
    let users = users_on_both_shards(&server, 6);
    let first = users.iter().find(|(id, _)| shard_of(*id) == 0).unwrap();
    let second = users.iter().find(|(id, _)| shard_of(*id) == 1).unwrap();
    let mut client = server.client();
    for image in images().iter().take(3) {
        let hash = json!({"hash": hex(image)});
        let done = upload(&mut client, &first.1, image, "");
        let (_, hit) = lookup(&mut client, &second.1, &hash);
        assert_eq!(hit["data"]["results"][0]["status"], "done", "{hit}");
        // The first user says the answer was wrong.
        let id = done["id"].as_str().unwrap();
        let report = client.post_json(&format!("/v2/report?id={id}"), Some(&first.1), "");
        assert_eq!(report.status, 200, "{}", report.text());
        let (_, miss) = lookup(&mut client, &second.1, &hash);
        assert_eq!(miss["data"]["results"][0]["status"], "miss", "{miss}");
        // The image runs again, and its answer is not cached again while reported.
        let runs = model_runs(&server);
        let rerun = upload(&mut client, &second.1, image, "");
        assert!(rerun.get("cache_hit").is_none(), "{rerun}");
        assert_eq!(model_runs(&server), runs + 1.0);
        let (_, still) = lookup(&mut client, &first.1, &hash);
        assert_eq!(still["data"]["results"][0]["status"], "miss", "{still}");
    }
    assert_eq!(
        metric(&server, "aiocr_cache_evictions_total{reason=\"reported\"}"),
        3.0
    );
}

#[test]
fn a_reported_hash_lookup_evicts_too() {
    let server = Server::start(2, &[]);
    let users = users_on_both_shards(&server, 6);
    let mut client = server.client();
    let image = fixture("0002.jpg");
    upload(&mut client, &users[0].1, &image, "");
    let hash = json!({"hash": hex(&image)});
    let (_, hit) = lookup(&mut client, &users[1].1, &hash);
    let id = hit["data"]["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let report = client.post_json(&format!("/v2/report?id={id}"), Some(&users[1].1), "");
    assert_eq!(report.json()["data"]["refunded"], 1, "{}", report.text());
    assert_eq!(server.balance(&users[1].1), (100, 0));
    let (_, miss) = lookup(&mut client, &users[2].1, &hash);
    assert_eq!(miss["data"]["results"][0]["status"], "miss");
}

#[test]
fn slides_are_looked_up_by_both_hashes() {
    let server = Server::start(2, &[]);
    let token = server.demo_token();
    let mut client = server.client();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddddocr-more/slide");
    let target = std::fs::read(dir.join("0000_target.png")).unwrap();
    let background = std::fs::read(dir.join("0000_bg.png")).unwrap();
    let body = json!({ "target": base64(&target), "background": base64(&background) });
    let solved = client.post_json("/v2/decode/slide?wait=1", Some(&token), &body.to_string());
    assert_eq!(solved.json()["data"]["status"], "done", "{}", solved.text());
    let slide = json!({"hash": hex(&target), "background_hash": hex(&background),
                       "options": {"kind": "slide"}});
    let swapped = json!({"hash": hex(&background), "background_hash": hex(&target),
                         "options": {"kind": "slide"}});
    let simple = json!({"hash": hex(&target), "background_hash": hex(&background),
                        "options": {"kind": "slide", "mode": "simple"}});
    let (status, answer) = lookup(&mut client, &token, &lookups(&[slide, swapped, simple]));
    assert_eq!(status, 200, "{answer}");
    let results = &answer["data"]["results"];
    assert_eq!(results[0]["result"], solved.json()["data"]["result"]);
    assert_eq!(results[0]["kind"], "slide");
    assert_eq!(
        (results[1]["status"].clone(), results[2]["status"].clone()),
        (json!("miss"), json!("miss"))
    );
}

#[test]
fn a_restart_starts_with_an_empty_cache_and_cache_entries_0_turns_it_off() {
    let mut server = Server::start(2, &[]);
    let token = server.demo_token();
    let image = fixture("0001.png");
    let hash = json!({"hash": hex(&image)});
    upload(&mut server.client(), &token, &image, "");
    let (_, hit) = lookup(&mut server.client(), &token, &hash);
    assert_eq!(hit["data"]["results"][0]["status"], "done");
    assert_eq!(server.terminate(), 0);
    let server = server.restart();
    let token = server.demo_token();
    let (_, after) = lookup(&mut server.client(), &token, &hash);
    assert_eq!(after["data"]["results"][0]["status"], "miss", "memory only");

    let off = Server::start(2, &["cache_entries=0"]);
    let token = off.demo_token();
    let mut client = off.client();
    upload(&mut client, &token, &image, "");
    let again = upload(&mut client, &token, &image, "");
    assert!(again.get("cache_hit").is_none());
    let (_, miss) = lookup(&mut client, &token, &hash);
    assert_eq!(miss["data"]["results"][0]["status"], "miss");
    assert_eq!(off.balance(&token), (998, 0));
}

/// A hit is recorded born done and charged in one write (server/upload/hit.rs): with or
/// without `wait`, the client sees what it saw when a hit was a reservation and its post; the
/// record polls done, is reported and refunded like any upload, and the ledger verifies.
#[test]
fn a_hit_without_wait_polls_done_and_is_reportable_and_the_ledger_verifies() {
    let mut server = Server::start(2, &[]);
    let users = users_on_both_shards(&server, 6);
    let (first, second) = (&users[0].1, &users[1].1);
    let mut client = server.client();
    let image = &images()[0];
    let fresh = upload(&mut client, first, image, "");
    let mut hit_ids = Vec::new();
    for token in [first, second] {
        let body = json!({ "file": base64(image) }).to_string();
        let pending = client.post_json("/v2/decode/upload-base64", Some(token), &body);
        assert_eq!(pending.status, 200, "{}", pending.text());
        let pending = pending.json()["data"].clone();
        assert_eq!(pending["status"], "pending", "{pending}");
        let id = pending["id"].as_str().unwrap().to_string();
        let polled = client.get(&format!("/v2/result?id={id}"), Some(token));
        let polled = polled.json()["data"].clone();
        assert_eq!(polled["status"], "done", "{polled}");
        assert_eq!(polled["cache_hit"], true, "{polled}");
        assert_eq!(polled["result"], fresh["result"], "{polled}");
        let waited = upload(&mut client, token, image, "");
        assert_eq!(waited["cache_hit"], true, "{waited}");
        assert_eq!(waited["result"], fresh["result"], "{waited}");
        hit_ids.push((token, id));
    }
    assert_eq!(server.balance(first), (97, 0));
    assert_eq!(server.balance(second), (98, 0));
    for (token, id) in &hit_ids {
        let report = client.post_json(&format!("/v2/report?id={id}"), Some(token), "");
        assert_eq!(report.status, 200, "{}", report.text());
        let again = client.post_json(&format!("/v2/report?id={id}"), Some(token), "");
        assert_ne!(again.status, 200, "a second report refunds nothing");
    }
    assert_eq!(server.balance(first), (98, 0));
    assert_eq!(server.balance(second), (99, 0));
    assert_eq!(metric(&server, "aiocr_results_cache_hits_total"), 4.0);
    assert_eq!(model_runs(&server), 1.0);
    assert_eq!(server.terminate(), 0);
    let (code, output) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{output}");
}

/// Hits answered outright are staged and written together before each group commit: each
/// request is still charged on its own, all or nothing, and a user whose balance runs out
/// has exactly as many hits acknowledged as points, whatever else is in the same write.
#[test]
fn concurrent_hits_are_charged_each_on_its_own_until_the_balance_runs_out() {
    let server = Server::start(2, &[]);
    let admin = server.admin_token();
    let (_, tight) = server.create_user(&admin, "tight", 5, "user");
    let (_, ample) = server.create_user(&admin, "ample", 100, "user");
    let image = &images()[0];
    upload(&mut server.client(), &ample, image, "");
    let body = json!({ "file": base64(image) }).to_string();
    let codes: Vec<(bool, i64)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let is_tight = thread % 2 == 0;
                let token = if is_tight { &tight } else { &ample };
                let (port, body) = (server.port, &body);
                scope.spawn(move || {
                    let mut client = Client::connect(port);
                    (0..3)
                        .map(|_| {
                            let path = "/v2/decode/upload-base64?wait=1";
                            let answer = client.post_json(path, Some(token), body);
                            let code = answer.json()["code"].as_i64().unwrap();
                            (is_tight, code)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect()
    });
    let count = |tight_user: bool, code: i64| {
        codes
            .iter()
            .filter(|&&answer| answer == (tight_user, code))
            .count()
    };
    assert_eq!((count(true, 0), count(true, 2001)), (5, 7), "{codes:?}");
    assert_eq!(count(false, 0), 12, "{codes:?}");
    assert_eq!(server.balance(&tight), (0, 0));
    assert_eq!(server.balance(&ample), (87, 0));
    assert_eq!(model_runs(&server), 1.0);
    let mut server = server;
    assert_eq!(server.terminate(), 0);
    let (code, output) = ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{output}");
}
