//! Every endpoint of the contract against the real server: success paths and the error codes
//! that can occur before recognition (the recognition threads are the accelerator's part).

mod common;

use common::{base64, fixture, multipart, poll_until_finished, Server};
use serde_json::json;

const SECRET: &str = "integration-test-secret-0123456789abcdef";

fn server() -> Server {
    Server::start(2, &[&format!("jwt_secret={SECRET}")])
}

fn forge(claims: serde_json::Value, secret: &str) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn servers_health_metrics() {
    let server = server();
    let mut client = server.client();
    let servers = client.get("/v2/servers", None).json();
    assert_eq!(servers["code"], 0);
    let entry = &servers["data"]["servers"][0];
    assert_eq!(entry["shards"], 2);
    assert_eq!(entry["status"], "ok");
    assert!(entry["url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert_eq!(client.get("/health", None).json()["data"]["status"], "ok");
    let metrics = client.get("/metrics", None);
    assert!(metrics
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text();
    for needle in [
        "aiocr_request_duration_us{route=\"servers\",quantile=\"0.99\"}",
        "aiocr_requests_total{route=\"health\",status=\"2xx\"} 1",
        "aiocr_connections_open{shard=\"1\"}",
        "aiocr_fsync_duration_us_count",
        "aiocr_queue_depth 0",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
}

#[test]
fn login_answers() {
    let server = server();
    let mut client = server.client();
    let good = client.post_json(
        "/v2/user/login",
        None,
        &format!(
            r#"{{"username":"demo","password":"{}"}}"#,
            server.demo_password
        ),
    );
    assert_eq!(good.status, 200);
    let data = &good.json()["data"];
    assert!(data["expires_at"].as_u64().unwrap() > now_secs());
    let user_id: u64 = data["user_id"].as_str().unwrap().parse().unwrap();
    assert!(user_id > 0);
    // The same as a form (curl -d), with the JSON content type missing.
    let form = format!("username=demo&password={}", server.demo_password);
    let as_form = client.post(
        "/v2/user/login",
        None,
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    );
    assert_eq!(as_form.status, 200, "{}", as_form.text());
    for body in [
        r#"{"username":"demo","password":"wrong-password"}"#,
        r#"{"username":"ghost","password":"whatever1"}"#,
    ] {
        let refused = client.post_json("/v2/user/login", None, body);
        assert_eq!((refused.status, refused.code()), (401, 1004));
    }
    for body in [r#"{"username":"demo"}"#, r#"{"username":"demo","#, "[1,2]"] {
        let refused = client.post_json("/v2/user/login", None, body);
        assert_eq!((refused.status, refused.code()), (400, 1001), "{body}");
    }
}

#[test]
fn tokens_are_checked() {
    let server = server();
    let token = server.demo_token();
    let mut client = server.client();
    let (points, reserved) = server.balance(&token);
    assert_eq!((points, reserved), (1000, 0));
    let by_query = client.get(&format!("/v2/user/point?token={token}"), None);
    assert_eq!(by_query.json()["data"]["points"], 1000);
    let missing = client.get("/v2/user/point", None);
    assert_eq!((missing.status, missing.code()), (401, 1002));
    let claims: serde_json::Value = serde_json::from_slice(&{
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap()
    })
    .unwrap();
    let mut expired = claims.clone();
    expired["exp"] = json!(now_secs() - 3600);
    let alg_none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let bad_tokens = [
        "garbage".to_string(),
        forge(expired, SECRET),
        forge(claims.clone(), "another-secret-another-secret-00"),
        alg_none,
        tampered,
    ];
    for bad in &bad_tokens {
        let refused = client.get("/v2/user/point", Some(bad));
        assert_eq!((refused.status, refused.code()), (401, 1003), "{bad}");
    }
    // A well-signed, unexpired token is accepted (the forging helper itself is right).
    assert_eq!(
        client
            .get("/v2/user/point", Some(&forge(claims, SECRET)))
            .status,
        200
    );
}

/// Every way of sending an image is accepted (pending at once), then recognised and charged.
#[test]
fn uploads_in_every_encoding_are_reserved() {
    let server = server();
    let token = server.demo_token();
    let png = fixture("0001.png");
    let jpeg = fixture("0002.jpg");
    let mut client = server.client();
    let encoded = base64(&png);
    let json_file = json!({ "file": encoded, "soft_id": "42" }).to_string();
    let json_image =
        json!({ "image": format!("data:image/png;base64,{encoded}"), "model": "beta" }).to_string();
    let form = format!(
        "file={}",
        encoded
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let (multipart_type, multipart_body) =
        multipart("file", &jpeg, &[("model", "old"), ("png_fix", "1")]);
    let uploads: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "/v2/decode/upload-base64",
            "application/json",
            json_file.into_bytes(),
        ),
        (
            "/v2/decode/upload-base64",
            "application/json",
            json_image.into_bytes(),
        ),
        (
            "/v2/decode/upload-base64",
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        ),
        ("/v2/decode/upload", &multipart_type, multipart_body),
        ("/v2/decode/upload?probability=1", "image/png", png.clone()),
        (
            "/v2/decode/upload",
            "application/octet-stream",
            jpeg.clone(),
        ),
    ];
    let mut ids = Vec::new();
    for (path, content_type, body) in &uploads {
        let answer = client.post(path, Some(&token), content_type, body);
        assert_eq!(
            answer.status,
            200,
            "{path} {content_type}: {}",
            answer.text()
        );
        let data = &answer.json()["data"];
        assert_eq!(data["status"], "pending", "async answers come at once");
        ids.push(data["id"].as_str().unwrap().to_string());
    }
    // Each is recognised: ddddocr reads 0001.png as "lspznk" (both models) and 0002.jpg as
    // "工b0" (default model).
    for id in &ids {
        let data = poll_until_finished(&mut client, &token, id);
        assert_eq!(data["id"].as_str(), Some(id.as_str()));
        assert_eq!(data["status"], "done", "{data}");
        assert!(
            ["lspznk", "工b0"].contains(&data["result"].as_str().unwrap()),
            "{data}"
        );
        assert_eq!(data["cost"], 1);
    }
    assert_eq!(server.balance(&token), (1000 - 6, 0));
    let stats = client.get("/v2/user/stats?days=1", Some(&token)).json();
    assert_eq!(stats["data"]["days"][0]["uploads"], 6, "{stats}");
}

/// `wait=1` answers pending once its timeout passes, and the upload finishes later. The
/// recognition thread holds each batchable job up to 2 s for company (a batching delay), so
/// the answer cannot come within the 1 ms the client waits, however fast or busy the machine.
/// Without the wide runner (`recognition_wide_threads=1`): it would run this lone job at once,
/// and on a busy machine its ~10 ms could end before the shard thread got the core to fire
/// the 1 ms timer.
#[test]
fn a_wait_that_times_out_answers_pending() {
    let server = Server::start(
        1,
        &[
            "max_queue_delay_us=2000000",
            "max_batch=8",
            "recognition_wide_threads=1",
        ],
    );
    let token = server.demo_token();
    let mut client = server.client();
    let waited = client.post_json(
        "/v2/decode/upload-base64?wait=1&timeout_ms=1&model=beta",
        Some(&token),
        &json!({ "file": base64(&fixture("0004.png")) }).to_string(),
    );
    let data = &waited.json()["data"];
    assert_eq!(data["status"], "pending", "{}", waited.text());
    let finished = poll_until_finished(&mut client, &token, data["id"].as_str().unwrap());
    assert_eq!(finished["status"], "done", "{finished}");
}

/// A PNG header declaring `width` x `height` (valid signature and IHDR CRC).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png.extend(0u32.to_be_bytes());
    png.extend(b"IEND");
    png.extend(crc32(b"IEND").to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn upload_refusals_charge_nothing() {
    let server = Server::start(
        2,
        &[&format!("jwt_secret={SECRET}"), "max_image_bytes=100000"],
    );
    let token = server.demo_token();
    let mut client = server.client();
    let big = vec![7u8; 100_001];
    let cases: Vec<(&str, String, u16, i64)> = vec![
        (
            "/v2/decode/upload-base64",
            json!({ "soft_id": "1" }).to_string(),
            400,
            3001,
        ),
        (
            "/v2/decode/upload-base64",
            json!({ "file": "" }).to_string(),
            400,
            3001,
        ),
        (
            "/v2/decode/upload-base64",
            json!({ "file": base64(&big) }).to_string(),
            413,
            3002,
        ),
        (
            "/v2/decode/upload-base64",
            json!({ "file": "%%%not base64%%%" }).to_string(),
            415,
            3003,
        ),
        (
            "/v2/decode/upload-base64",
            json!({ "file": base64(b"plain text, not an image") }).to_string(),
            415,
            3003,
        ),
        (
            "/v2/decode/upload-base64",
            json!({ "file": base64(&png_header(100_000, 100_000)) }).to_string(),
            422,
            3004,
        ),
        (
            "/v2/decode/upload-base64",
            json!({ "file": base64(&fixture("0001.png")), "model": "nope" }).to_string(),
            400,
            3005,
        ),
        (
            "/v2/decode/upload-base64",
            json!({ "file": base64(&fixture("0001.png")), "wait": "maybe" }).to_string(),
            400,
            1001,
        ),
        (
            "/v2/decode/upload-base64",
            json!({ "file": base64(&fixture("0001.png")), "charset_range": "" }).to_string(),
            400,
            1001,
        ),
        (
            "/v2/decode/upload-base64",
            "{not json".to_string(),
            400,
            1001,
        ),
    ];
    for (path, body, status, code) in cases {
        let answer = client.post_json(path, Some(&token), &body);
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{}",
            &body[..body.len().min(80)]
        );
    }
    let raw_big = client.post("/v2/decode/upload", Some(&token), "image/png", &big);
    assert_eq!((raw_big.status, raw_big.code()), (413, 3002));
    let no_token = client.post_json("/v2/decode/upload-base64", None, "{}");
    assert_eq!(no_token.code(), 1002);
    assert_eq!(server.balance(&token), (1000, 0));
}

#[test]
fn not_enough_points_is_2001() {
    let server = server();
    let admin = server.admin_token();
    let (_, poor) = server.create_user(&admin, "poor", 1, "user");
    let mut client = server.client();
    let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
    let accepted = client.post_json("/v2/decode/upload-base64", Some(&poor), &body);
    assert_eq!(accepted.status, 200);
    // The one point is reserved (or already spent, if recognition was that quick).
    let refused = client.post_json("/v2/decode/upload-base64", Some(&poor), &body);
    assert_eq!((refused.status, refused.code()), (402, 2001));
    let id = accepted.json()["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        poll_until_finished(&mut client, &poor, &id)["status"],
        "done"
    );
    assert_eq!(
        server.balance(&poor),
        (0, 0),
        "the refused upload cost nothing"
    );
}

#[test]
fn rate_limit_is_429_with_retry_after() {
    let server = Server::start(2, &["rate_limit_per_sec=1", "rate_limit_burst=2"]);
    let token = server.demo_token();
    let mut client = server.client();
    let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
    // Ten uploads back to back on one connection: the bucket holds two.
    let answers: Vec<_> = (0..10)
        .map(|_| client.post_json("/v2/decode/upload-base64", Some(&token), &body))
        .collect();
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(!limited.is_empty());
    assert_eq!(limited[0].code(), 5002);
    assert!(
        limited[0]
            .header("Retry-After")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let accepted: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    // Reserved until recognised, then posted: once every accepted upload has finished, each
    // has cost its point and nothing stays reserved (the refused ones cost nothing).
    for answer in &accepted {
        let id = answer.json()["data"]["id"].as_str().unwrap().to_string();
        assert_eq!(
            poll_until_finished(&mut client, &token, &id)["status"],
            "done"
        );
    }
    assert_eq!(server.balance(&token), (1000 - accepted.len() as i64, 0));
    // Login attempts have their own bucket: guessing fills it, uploads are not affected.
    let wrong = r#"{"username":"demo","password":"not-the-password"}"#;
    let attempts: Vec<_> = (0..10)
        .map(|_| client.post_json("/v2/user/login", None, wrong))
        .collect();
    let limited = attempts
        .iter()
        .find(|a| a.status == 429)
        .expect("login attempts are limited");
    assert_eq!(limited.code(), 5002);
    assert!(attempts.iter().all(|a| a.status == 429 || a.code() == 1004));
}

#[test]
fn a_rate_limit_of_0_turns_the_per_user_buckets_off() {
    // A burst of 1 would refuse the second request of a limited bucket: here it is unused.
    let server = Server::start(2, &["rate_limit_per_sec=0", "rate_limit_burst=1"]);
    let token = server.demo_token();
    let mut client = server.client();
    let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
    for _ in 0..10 {
        let answer = client.post_json("/v2/decode/upload-base64", Some(&token), &body);
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    // Logins (right and wrong) have no per-user bucket either.
    let right = json!({ "username": "demo", "password": server.demo_password }).to_string();
    let wrong = r#"{"username":"demo","password":"not-the-password"}"#;
    for _ in 0..5 {
        assert_eq!(client.post_json("/v2/user/login", None, &right).status, 200);
        assert_eq!(client.post_json("/v2/user/login", None, wrong).code(), 1004);
    }
}

/// Points are bounded at 2^53 - 1, so that every points number in JSON is exact: a grant
/// past the bound is a refusal that changes nothing; at the top, spending and removing work.
#[test]
fn granting_past_the_points_bound_is_a_refusal_that_changes_nothing() {
    const MAX: i64 = aiocr::money::MAX_POINTS;
    let mut server = server();
    let admin = server.admin_token();
    let user = server.demo_token();
    let mut client = server.client();
    let grant = |client: &mut common::Client, who: &str, points: &str| {
        let body = format!(r#"{{"username":"{who}","points":{points},"reason":"overflow"}}"#);
        client.post_json("/v2/admin/points", Some(&admin), &body)
    };
    // demo holds 1000: the bound more does not fit.
    let refused = grant(&mut client, "demo", &MAX.to_string());
    assert_eq!(
        (refused.status, refused.code()),
        (400, 1001),
        "{}",
        refused.text()
    );
    assert!(
        refused.json()["msg"]
            .as_str()
            .unwrap()
            .contains("would pass"),
        "{}",
        refused.text()
    );
    // Past the bound, or past i64, is not an amount of points at all.
    for points in [(MAX + 1).to_string(), "9223372036854775808".to_string()] {
        let beyond = grant(&mut client, "demo", &points);
        assert_eq!(
            (beyond.status, beyond.code()),
            (400, 1001),
            "{}",
            beyond.text()
        );
    }
    assert_eq!(server.balance(&user), (1000, 0));
    // A balance at the top: one more point is refused, spending and removing still work.
    let full = grant(&mut client, "demo", &(MAX - 1000).to_string());
    assert_eq!(full.json()["data"]["points"], MAX, "{}", full.text());
    assert_eq!(grant(&mut client, "demo", "1").code(), 1001);
    let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
    let upload = client.post_json(
        "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
        Some(&user),
        &body,
    );
    assert_eq!(upload.json()["data"]["status"], "done", "{}", upload.text());
    assert_eq!(server.balance(&user), (MAX - 1, 0));
    let overdraw = grant(&mut client, "demo", &(-MAX).to_string());
    assert_eq!((overdraw.status, overdraw.code()), (402, 2001));
    let emptied = grant(&mut client, "demo", &(-(MAX - 1)).to_string());
    assert_eq!(emptied.json()["data"]["points"], 0, "{}", emptied.text());
    assert_eq!(server.terminate(), 0);
    let (code, report) = common::ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn results_and_reports_of_failed_and_foreign_uploads() {
    let server = server();
    let admin = server.admin_token();
    let token = server.demo_token();
    let (_, other) = server.create_user(&admin, "other-user", 10, "user");
    let mut client = server.client();
    // A PNG cut in half passes the header check and fails to decode: a failed upload (as a
    // pending one) is not reportable.
    let png = fixture("0001.png");
    let body = json!({ "file": base64(&png[..png.len() / 2]) }).to_string();
    let id = client
        .post_json("/v2/decode/upload-base64", Some(&token), &body)
        .json()["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        poll_until_finished(&mut client, &token, &id)["status"],
        "failed"
    );
    let failed = client.request(
        "POST",
        &format!("/v2/report?id={id}"),
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!((failed.status, failed.code()), (409, 4002));
    let foreign = client.get(&format!("/v2/result?id={id}"), Some(&other));
    assert_eq!((foreign.status, foreign.code()), (404, 4001));
    let foreign = client.post_json("/v2/report", Some(&other), &json!({ "id": id }).to_string());
    assert_eq!((foreign.status, foreign.code()), (404, 4001));
    let unknown = client.get("/v2/result?id=12345", Some(&token));
    assert_eq!(unknown.code(), 4001);
    let bad = client.get("/v2/result?id=abc", Some(&token));
    assert_eq!((bad.status, bad.code()), (400, 1001));
    let missing = client.get("/v2/result", Some(&token));
    assert_eq!(missing.code(), 1001);
}

#[test]
fn admin_endpoints_and_roles() {
    let server = server();
    let admin = server.admin_token();
    let user = server.demo_token();
    let mut client = server.client();
    let create = json!({ "username": "carol", "password": "carol-password", "role": "developer", "points": 5 }).to_string();
    let forbidden = client.post_json("/v2/admin/users", Some(&user), &create);
    assert_eq!((forbidden.status, forbidden.code()), (403, 1005));
    let created = client.post_json("/v2/admin/users", Some(&admin), &create);
    assert_eq!(created.status, 200, "{}", created.text());
    let carol_id = created.json()["data"]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let duplicate = client.post_json("/v2/admin/users", Some(&admin), &create);
    assert_eq!(duplicate.code(), 1001);
    let short = client.post_json(
        "/v2/admin/users",
        Some(&admin),
        r#"{"username":"dave","password":"short"}"#,
    );
    assert_eq!(short.code(), 1001);
    let add = json!({ "user_id": carol_id, "points": 20, "reason": "welcome" }).to_string();
    let added = client.post_json("/v2/admin/points", Some(&admin), &add);
    assert_eq!(added.json()["data"]["points"], 25, "{}", added.text());
    let by_name = json!({ "username": "carol", "points": -25, "reason": "reset" }).to_string();
    assert_eq!(
        client
            .post_json("/v2/admin/points", Some(&admin), &by_name)
            .json()["data"]["points"],
        0
    );
    let overdraw = json!({ "username": "carol", "points": -1, "reason": "too much" }).to_string();
    let refused = client.post_json("/v2/admin/points", Some(&admin), &overdraw);
    assert_eq!((refused.status, refused.code()), (402, 2001));
    let no_reason = json!({ "username": "carol", "points": 1 }).to_string();
    assert_eq!(
        client
            .post_json("/v2/admin/points", Some(&admin), &no_reason)
            .code(),
        1001
    );
    let ghost = json!({ "username": "ghost", "points": 1, "reason": "x" }).to_string();
    assert_eq!(
        client
            .post_json("/v2/admin/points", Some(&admin), &ghost)
            .code(),
        1001
    );
    let by_user = client.post_json("/v2/admin/points", Some(&user), &add);
    assert_eq!(by_user.code(), 1005);
}

#[test]
fn developer_stats_sum_every_shard() {
    let server = server();
    let admin = server.admin_token();
    let (developer_id, developer) = server.create_user(&admin, "dev", 0, "developer");
    let mut client = server.client();
    // Users on both shards upload with the developer's soft_id.
    let mut uploaded = 0;
    for name in ["u1", "u2", "u3", "u4", "u5", "u6"] {
        let (_, token) = server.create_user(&admin, name, 5, "user");
        let body =
            json!({ "file": base64(&fixture("0001.png")), "soft_id": developer_id.to_string() })
                .to_string();
        assert_eq!(
            client
                .post_json("/v2/decode/upload-base64", Some(&token), &body)
                .status,
            200
        );
        uploaded += 1;
    }
    let stats = client.get("/v2/developer/stats?days=1", Some(&developer));
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert_eq!(stats.json()["data"]["days"][0]["uploads"], uploaded);
    let as_user = client.get("/v2/developer/stats", Some(&server.demo_token()));
    assert_eq!((as_user.status, as_user.code()), (403, 1005));
    let bad_days = client.get("/v2/user/stats?days=0", Some(&developer));
    assert_eq!(bad_days.code(), 1001);
}

/// Users live on both shards; connections land on either: requests for a user owned by the
/// other shard are forwarded there and answered on the original connection.
#[test]
fn requests_are_forwarded_to_the_owner_shard() {
    let server = server();
    let admin = server.admin_token();
    let mut tokens = Vec::new();
    for index in 0..6 {
        let (_, token) = server.create_user(&admin, &format!("fwd{index}"), 100 + index, "user");
        tokens.push((token, 100 + index));
    }
    for _ in 0..8 {
        let mut client = server.client();
        for (token, points) in &tokens {
            assert_eq!(
                client.get("/v2/user/point", Some(token)).json()["data"]["points"],
                *points
            );
        }
    }
    let metrics = server.metrics();
    let forwarded: u64 = metrics
        .lines()
        .filter(|line| line.starts_with("aiocr_forwarded_in_total{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(forwarded > 0, "{metrics}");
}
