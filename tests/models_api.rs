//! Models users bring, over the API: `POST /v2/models` (checked before acceptance, each
//! failed check its own code), `GET /v2/models`, `POST /v2/models/remove`, `model=NAME` on
//! uploads and in the compat protocols, private and public models, the per-user limits, and
//! models kept across a restart. The answers are ddddocr's own through its import path
//! (tests/fixtures/custom-models).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aiocr::engine::custom::ModelDigest;
use common::{base64, model_dir, multipart_form, Client, Server};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn charsets(variant: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(format!("custom-models/{variant}/charsets.json"))).unwrap()
}

fn onnx_old() -> Vec<u8> {
    std::fs::read(model_dir().join("common_old.onnx")).unwrap()
}

/// (image file, ddddocr's answer) of one variant, from the fixtures' manifest.
fn answers(variant: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join("custom-models/manifest.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| line.split('\t').collect::<Vec<&str>>())
        .filter(|cols| cols[0] == variant)
        .map(|cols| (cols[2].to_string(), cols[3].to_string()))
        .collect()
}

fn image(file: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join("captcha").join(file)).unwrap()
}

/// `POST /v2/models`: (HTTP status, JSON answer).
fn add_model(
    server: &Server,
    token: &str,
    name: &str,
    onnx: &[u8],
    charsets: &[u8],
    public: bool,
) -> (u16, serde_json::Value) {
    let public = if public { "1" } else { "0" };
    let (content_type, body) = multipart_form(
        &[("name", name), ("public", public)],
        &[("onnx", onnx), ("charsets", charsets)],
    );
    let answer = server
        .client()
        .post("/v2/models", Some(token), &content_type, &body);
    (answer.status, answer.json())
}

/// A text upload with `model`, waited for: (HTTP status, JSON answer).
fn recognize(client: &mut Client, token: &str, model: &str, image: &[u8]) -> serde_json::Value {
    let body = serde_json::json!({
        "image": base64(image),
        "model": model,
        "wait": true,
        "probability": true,
    });
    client
        .post_json("/v2/decode/upload-base64", Some(token), &body.to_string())
        .json()
}

/// Users on each of the server's two shards: token by shard, and the first one's name.
fn users_on_both_shards(server: &Server, admin: &str) -> (HashMap<u16, String>, String) {
    let mut by_shard = HashMap::new();
    let mut first = None;
    for n in 0..16 {
        let username = format!("modeler{n}");
        // Enough points for the loaders below: with the image in the answer cache an upload
        // takes well under a millisecond, so a thousand points ran out before a model was added.
        let (user_id, token) = server.create_user(admin, &username, 10_000_000, "user");
        let shard = aiocr::store::ids::shard_of(user_id);
        if shard == 0 && first.is_none() {
            first = Some(username);
        }
        by_shard.entry(shard).or_insert(token);
        if by_shard.len() == 2 {
            return (by_shard, first.expect("a user on shard 0"));
        }
    }
    panic!("16 users on one shard");
}

#[test]
fn models_over_the_api_private_public_limits_and_restart() {
    let server = Server::start(2, &["models_per_user=2", "rate_limit_per_sec=0"]);
    let admin = server.admin_token();
    let (users, owner_name) = users_on_both_shards(&server, &admin);
    let (owner, other) = (&users[&0], &users[&1]);
    let onnx = onnx_old();
    let permuted = charsets("permuted-charset");

    // Each failed check has its code; nothing is kept.
    let (status, refused) = add_model(&server, owner, "tall", &onnx, &charsets("height-48"), false);
    assert_eq!(
        (status, refused["code"].as_i64()),
        (422, Some(3103)),
        "{refused}"
    );
    let (status, refused) = add_model(&server, owner, "bad", &onnx, b"{\"charset\": 1}", false);
    assert_eq!(
        (status, refused["code"].as_i64()),
        (400, Some(3101)),
        "{refused}"
    );
    let (status, refused) = add_model(&server, owner, "bad", b"not onnx", &permuted, false);
    assert_eq!(
        (status, refused["code"].as_i64()),
        (422, Some(3102)),
        "{refused}"
    );
    let (status, refused) = add_model(&server, owner, "old", &onnx, &permuted, false);
    assert_eq!(
        (status, refused["code"].as_i64()),
        (409, Some(3106)),
        "{refused}"
    );
    let (_, refused) = add_model(&server, owner, "pub", &onnx, &permuted, true);
    assert_eq!(
        refused["code"].as_i64(),
        Some(1005),
        "only admins: {refused}"
    );

    // Accepted: its digest is the SHA-256 of both files.
    let (status, added) = add_model(&server, owner, "mine", &onnx, &permuted, false);
    assert_eq!(status, 200, "{added}");
    let digest = ModelDigest::of(&onnx, &permuted).hex();
    assert_eq!(added["data"]["digest"], digest.as_str());
    assert_eq!(added["data"]["charset_size"], 8210);
    assert_eq!(added["data"]["input_shape"][1], 1);

    // The owner's uploads read as ddddocr's import path does, with a confidence.
    let mut client = server.client();
    let rows = answers("permuted-charset");
    let mut ids = Vec::new();
    for (file, expected) in rows.iter().take(6) {
        let answer = recognize(&mut client, owner, "mine", &image(file));
        assert_eq!(
            answer["data"]["result"],
            expected.as_str(),
            "{file}: {answer}"
        );
        assert!(answer["data"]["confidence"].as_f64().is_some(), "{answer}");
        ids.push(answer["data"]["id"].as_str().unwrap().to_string());
    }
    // The first image again: an answer from the cache, counted for the model like the rest.
    let again = recognize(&mut client, owner, "mine", &image(&rows[0].0));
    assert_eq!(again["data"]["result"], rows[0].1.as_str(), "{again}");
    assert_eq!(again["data"]["cache_hit"], true, "{again}");
    // Its numbers: 7 requests, one reported wrong, in the list and in /metrics.
    let body = format!(r#"{{"id":"{}"}}"#, ids[0]);
    let reported = client.post_json("/v2/report", Some(owner), &body);
    assert_eq!(reported.status, 200, "{}", reported.text());
    let listed = client.get("/v2/models", Some(owner)).json();
    let mine = &listed["data"]["models"][0];
    assert_eq!(
        (mine["requests"].as_u64(), mine["reports"].as_u64()),
        (Some(7), Some(1)),
        "{listed}"
    );
    let metrics = server.metrics();
    assert!(
        metrics.contains("aiocr_model_requests_total{model=\"mine\"} 7"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aiocr_model_reports_total{model=\"mine\"} 1"),
        "{metrics}"
    );
    // Another user: the same 3005 as for a name nobody uses, and no charge.
    let before = server.balance(other);
    let (file, _) = &rows[0];
    let refused = recognize(&mut client, other, "mine", &image(file));
    assert_eq!(refused["code"], 3005, "{refused}");
    let nobody = recognize(&mut client, other, "nobody", &image(file));
    assert_eq!(nobody["code"], 3005);
    assert_eq!(
        refused["message"].as_str().map(|m| m.replace("mine", "")),
        nobody["message"].as_str().map(|m| m.replace("nobody", ""))
    );
    assert_eq!(server.balance(other), before);
    let answer = client.post_json("/v2/models/remove", Some(other), r#"{"name":"mine"}"#);
    assert_eq!(answer.json()["code"], 3005, "{}", answer.text());
    let listed = client.get("/v2/models", Some(other)).json();
    assert_eq!(
        listed["data"]["models"].as_array().unwrap().len(),
        0,
        "{listed}"
    );

    // The limits: a second model (same files: kept once) fits, a third does not.
    let (status, _) = add_model(&server, owner, "mine2", &onnx, &permuted, false);
    assert_eq!(status, 200);
    let (status, refused) = add_model(&server, owner, "mine3", &onnx, &permuted, false);
    assert_eq!(
        (status, refused["code"].as_i64()),
        (409, Some(3107)),
        "{refused}"
    );
    let (status, refused) = add_model(&server, owner, "mine", &onnx, &permuted, false);
    assert_eq!(
        (status, refused["code"].as_i64()),
        (409, Some(3106)),
        "{refused}"
    );

    // A public model (an admin's) answers every user, on either shard.
    let same = charsets("same-as-default");
    let (status, added) = add_model(&server, &admin, "shared", &onnx, &same, true);
    assert_eq!(status, 200, "{added}");
    let rows = answers("same-as-default");
    for token in [owner, other] {
        for (file, expected) in rows.iter().take(3) {
            let answer = recognize(&mut client, token, "shared", &image(file));
            assert_eq!(
                answer["data"]["result"],
                expected.as_str(),
                "{file}: {answer}"
            );
        }
    }
    let listed = client.get("/v2/models", Some(other)).json();
    let models = listed["data"]["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{listed}");
    assert_eq!(
        (models[0]["name"].as_str(), models[0]["own"].as_bool()),
        (Some("shared"), Some(false))
    );
    let listed = client.get("/v2/models", Some(owner)).json();
    assert_eq!(listed["data"]["usage"]["models"], 2, "{listed}");

    // The protocols choose it: ddddocr-fastapi `model`, 2captcha `model`, the JSON task
    // protocol's `module`.
    let (file, expected) = &rows[0];
    let fastapi = client.post_json(
        "/ocr",
        Some(owner),
        &serde_json::json!({ "image": base64(&image(file)), "model": "shared" }).to_string(),
    );
    assert_eq!(
        fastapi.json()["data"],
        expected.as_str(),
        "{}",
        fastapi.text()
    );

    // Removed: gone for its owner at once; the other model of the same files still answers.
    let answer = client.post_json("/v2/models/remove", Some(owner), r#"{"name":"mine"}"#);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let refused = recognize(&mut client, owner, "mine", &image(&rows[0].0));
    assert_eq!(refused["code"], 3005);
    drop(client);

    // Kept across a restart, with their numbers.
    let numbers = |server: &Server, token: &str| {
        let listed = server.client().get("/v2/models", Some(token)).json();
        let models = listed["data"]["models"].as_array().unwrap().clone();
        // The admin's public model, used by users of both shards: each shard kept its own.
        let shared = models
            .iter()
            .find(|m| m["name"] == "shared")
            .unwrap()
            .clone();
        (
            shared["requests"].as_u64().unwrap(),
            shared["reports"].as_u64().unwrap(),
        )
    };
    let before = numbers(&server, owner);
    assert!(before.0 >= 6, "shared was used: {before:?}");
    let line = format!(
        "aiocr_model_requests_total{{model=\"shared\"}} {}",
        before.0
    );
    assert!(server.metrics().contains(&line), "{line}");
    let mut server = server;
    assert_eq!(server.terminate(), 0);
    let server = server.restart();
    let owner = server.login(&owner_name, &format!("password-{owner_name}"));
    assert_eq!(
        numbers(&server, &owner),
        before,
        "the numbers survive the restart"
    );
    assert!(server.metrics().contains(&line), "{line}");
    let rows = answers("permuted-charset");
    let answer = recognize(&mut server.client(), &owner, "mine2", &image(&rows[1].0));
    assert_eq!(answer["data"]["result"], rows[1].1.as_str(), "{answer}");
}

/// A model added while uploads run: no upload fails, and the model answers at once on both
/// shards. (How soon is measured by bench/model_ready.sh, not asserted here.)
#[test]
fn a_model_added_under_load_answers_on_both_shards_with_no_failed_request() {
    let server = Server::start(2, &["rate_limit_per_sec=0"]);
    let admin = server.admin_token();
    let (users, _) = users_on_both_shards(&server, &admin);
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = users
        .values()
        .cloned()
        .map(|token| {
            let (port, stop) = (server.port, stop.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(port);
                let image = common::fixture("0000.bmp");
                let mut done = 0;
                while !stop.load(Ordering::SeqCst) || done < 5 {
                    let answer = recognize(&mut client, &token, "old", &image);
                    assert_eq!(answer["code"], 0, "{answer}");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let onnx = onnx_old();
    let fixed = charsets("fixed-200x64");
    for (n, token) in users.values().enumerate() {
        let (status, added) = add_model(&server, token, &format!("fixed{n}"), &onnx, &fixed, false);
        assert_eq!(status, 200, "{added}");
        let rows = answers("fixed-200x64");
        let mut client = server.client();
        for (file, expected) in rows.iter().take(3) {
            let answer = recognize(&mut client, token, &format!("fixed{n}"), &image(file));
            assert_eq!(
                answer["data"]["result"],
                expected.as_str(),
                "{file}: {answer}"
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    for loader in loaders {
        assert!(loader.join().expect("no failed upload") >= 5);
    }
}
