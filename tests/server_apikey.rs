//! API keys against the real server: created with a login token, shown once, accepted
//! wherever a token is, replaced and revoked at once on every shard, guessed keys rate
//! limited per address, and made by operators with `aiocr user key`.

mod common;

use common::{base64, fixture, manifest, Server, BIN};
use serde_json::json;

fn create_key(server: &Server, token: &str) -> String {
    let answer = server
        .client()
        .post_json("/v2/user/apikey", Some(token), "{}");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let key = answer.json()["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(key.len(), 32);
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    key
}

/// The code of `GET /v2/user/point` with `credential` on `connections` fresh connections
/// (the kernel spreads them over the shards, so every shard's memo is asked).
fn point_codes(server: &Server, credential: &str, connections: usize) -> Vec<i64> {
    (0..connections)
        .map(|_| {
            server
                .client()
                .get("/v2/user/point", Some(credential))
                .code()
        })
        .collect()
}

#[test]
fn a_key_works_wherever_a_token_does_and_is_replaced_everywhere_at_once() {
    let server = Server::start(2, &["rate_limit_burst=1000", "failed_auth_burst=1000"]);
    let token = server.demo_token();
    let mut client = server.client();
    let status = client.get("/v2/user/apikey", Some(&token)).json();
    assert_eq!(status["data"]["has_key"], false);

    let key = create_key(&server, &token);
    let status = client.get("/v2/user/apikey", Some(&key)).json();
    assert_eq!(status["data"]["has_key"], true, "{status}");
    assert_eq!(server.balance(&key), (1000, 0));
    assert_eq!(point_codes(&server, &key, 12), vec![0; 12]);
    let by_query = client.get(&format!("/v2/user/point?token={key}"), None);
    assert_eq!(by_query.code(), 0);
    let (file, old, _) = manifest().into_iter().next().unwrap();
    let upload = client.post_json(
        "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
        Some(&key),
        &json!({ "file": base64(&fixture(&file)) }).to_string(),
    );
    assert_eq!(
        upload.json()["data"]["result"],
        old.as_str(),
        "{}",
        upload.text()
    );
    assert_eq!(server.balance(&token), (999, 0));

    // A key cannot make keys: a leaked key must not lock its owner out.
    let by_key = client.post_json("/v2/user/apikey", Some(&key), "{}");
    assert_eq!((by_key.status, by_key.code()), (403, 1005));

    let replacement = create_key(&server, &token);
    assert_ne!(replacement, key);
    assert_eq!(
        point_codes(&server, &key, 12),
        vec![1003; 12],
        "replaced: gone everywhere"
    );
    assert_eq!(point_codes(&server, &replacement, 12), vec![0; 12]);

    let revoked = client.post_json("/v2/user/apikey/revoke", Some(&token), "{}");
    assert_eq!(revoked.json()["data"]["revoked"], true);
    assert_eq!(point_codes(&server, &replacement, 12), vec![1003; 12]);
    let again = client.post_json("/v2/user/apikey/revoke", Some(&token), "{}");
    assert_eq!(again.json()["data"]["revoked"], false);
}

#[test]
fn users_on_every_shard_get_keys_and_admins_revoke_them() {
    let server = Server::start(2, &["rate_limit_burst=1000", "failed_auth_burst=1000"]);
    let admin = server.admin_token();
    for index in 0..6 {
        let name = format!("keyuser{index}");
        let (user_id, token) = server.create_user(&admin, &name, 5, "user");
        let key = create_key(&server, &token);
        assert_eq!(server.balance(&key), (5, 0), "user {user_id}");
        let body = json!({ "username": name }).to_string();
        let revoked = server
            .client()
            .post_json("/v2/admin/apikey/revoke", Some(&admin), &body);
        assert_eq!(
            revoked.json()["data"]["revoked"],
            true,
            "{}",
            revoked.text()
        );
        assert_eq!(point_codes(&server, &key, 6), vec![1003; 6]);
    }
    let token = server.demo_token();
    let not_admin = server.client().post_json(
        "/v2/admin/apikey/revoke",
        Some(&token),
        r#"{"username":"admin"}"#,
    );
    assert_eq!(not_admin.code(), 1005);
}

#[test]
fn guessed_keys_are_refused_then_rate_limited_per_address() {
    let server = Server::start(1, &["failed_auth_per_sec=1", "failed_auth_burst=5"]);
    let token = server.demo_token();
    let key = create_key(&server, &token);
    let mut client = server.client();
    assert_eq!(client.get("/v2/user/point", Some(&key)).code(), 0);
    let guesses: Vec<(u16, i64)> = (0..8)
        .map(|n| {
            let guess = format!("{n:032x}");
            let answer = client.get("/v2/user/point", Some(&guess));
            (answer.status, answer.code())
        })
        .collect();
    assert_eq!(&guesses[..5], &[(401, 1003); 5], "{guesses:?}");
    assert!(
        guesses[5..].iter().all(|g| *g == (429, 5002)),
        "{guesses:?}"
    );
    // A key the shard already knows, and tokens, are not held up by the address's failures
    // (a key it would have to look up is, until the address's budget refills).
    assert_eq!(client.get("/v2/user/point", Some(&key)).code(), 0);
    assert_eq!(client.get("/v2/user/point", Some(&token)).code(), 0);
}

#[test]
fn operators_make_keys_with_the_cli() {
    let mut server = Server::start(2, &[]);
    assert_eq!(server.terminate(), 0);
    let output = std::process::Command::new(BIN)
        .args(["user", "key", "--username", "demo", "--data"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(key.len(), 32, "the key alone: {key:?}");
    let unknown = std::process::Command::new(BIN)
        .args(["user", "key", "--username", "nobody", "--data"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such user"));
    let server = server.restart();
    assert_eq!(server.balance(&key), (1000, 0));
}
