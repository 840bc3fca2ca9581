//! The console's side of the server against a live `aiocr serve`: the built-in files
//! (content types, entity tags and 304, the Content-Security-Policy, redirects, 404s), the
//! API description, and the endpoints the console added: a user's uploads a page at a time,
//! finding users, changing a role, the server's state.

mod common;

use common::{fixture, manifest, multipart, Server};
use serde_json::Value;

fn upload(server: &Server, token: &str, file: &str) -> Value {
    let (content_type, body) = multipart("file", &fixture(file), &[]);
    let answer = server.client().post(
        "/v2/decode/upload?wait=1&timeout_ms=30000",
        Some(token),
        &content_type,
        &body,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["data"].clone()
}

#[test]
fn console_files_are_served_with_types_tags_and_the_policy() {
    let server = Server::start(1, &[]);
    let mut client = server.client();
    let index = client.get("/console/", None);
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let policy = index.header("Content-Security-Policy").unwrap();
    assert!(policy.starts_with("default-src 'self';"), "{policy}");
    assert!(policy.contains("script-src 'self';") && !policy.contains("unsafe"));
    assert_eq!(index.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(index.header("Cache-Control"), Some("no-cache"));
    let html = index.text();
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "no inline code"
    );
    // Every file the page names is served.
    for reference in html.split(['"']).filter(|piece| {
        [".js", ".css", ".svg"]
            .iter()
            .any(|end| piece.ends_with(end))
            && !piece.contains(' ')
    }) {
        let answer = client.get(&format!("/console/{reference}"), None);
        assert_eq!(answer.status, 200, "{reference}, named by index.html");
    }
    for (path, content_type) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/style.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
        (
            "/console/vendor/uplot/uPlot.esm.js",
            "text/javascript; charset=utf-8",
        ),
        ("/console/vendor/uplot/LICENSE", "text/plain; charset=utf-8"),
        ("/console/pages/try.js", "text/javascript; charset=utf-8"),
    ] {
        let answer = client.get(path, None);
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("Content-Type"), Some(content_type), "{path}");
        assert!(!answer.body.is_empty());
        assert!(answer.header("Content-Security-Policy").is_some(), "{path}");
    }
}

#[test]
fn entity_tags_answer_304_without_the_bytes() {
    let server = Server::start(1, &[]);
    let mut client = server.client();
    let first = client.get("/console/app.js", None);
    let tag = first.header("ETag").unwrap().to_string();
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34,
        "{tag}"
    );
    let again = client.request("GET", "/console/app.js", &[("If-None-Match", &tag)], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty() && again.header("Content-Length").is_none());
    assert_eq!(again.header("ETag"), Some(tag.as_str()));
    let weak = format!("W/{tag}");
    let listed = format!("\"other\", {weak}");
    let answer = client.request("GET", "/console/app.js", &[("If-None-Match", &listed)], b"");
    assert_eq!(answer.status, 304, "weak comparison in a list");
    let stale = client.request("GET", "/console/app.js", &[("If-None-Match", "\"0\"")], b"");
    assert_eq!((stale.status, stale.body.len()), (200, first.body.len()));
    // Another file has another tag; HEAD has the headers and no body; the connection
    // still works after a 304 (its framing was right).
    let other = client.get("/console/ui.js", None);
    assert_ne!(other.header("ETag"), Some(tag.as_str()));
    let head = client.request("HEAD", "/console/app.js", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length"),
        Some(first.body.len().to_string().as_str())
    );
    let description = client.get("/openapi.json", None);
    let tag = description.header("ETag").unwrap().to_string();
    let cached = client.request("GET", "/openapi.json", &[("If-None-Match", &tag)], b"");
    assert_eq!(cached.status, 304);
}

#[test]
fn redirects_and_refusals() {
    let server = Server::start(1, &[]);
    let mut client = server.client();
    for path in ["/console", "/"] {
        let answer = client.get(path, None);
        assert_eq!(answer.status, 308, "{path}");
        assert_eq!(answer.header("Location"), Some("/console/"));
    }
    for path in [
        "/console/nothing.js",
        "/console/pages/",
        "/console/../Cargo.toml",
    ] {
        let answer = client.get(path, None);
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.code(), 1006);
    }
    assert_eq!(client.get("/consoles", None).status, 404);
    let post = client.post("/console/app.js", None, "", b"");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
}

#[test]
fn the_api_description_is_served_as_openapi_3_1() {
    let server = Server::start(1, &[]);
    let answer = server.client().get("/openapi.json", None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("Content-Type"), Some("application/json"));
    let doc = answer.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v2/user/login",
        "/v2/decode/upload",
        "/v2/user/uploads",
        "/v2/admin/users/role",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

#[test]
fn a_users_uploads_come_newest_first_a_page_at_a_time() {
    let server = Server::start(2, &["rate_limit_burst=1000"]);
    let token = server.demo_token();
    let files: Vec<(String, String, String)> = manifest().into_iter().take(3).collect();
    let ids: Vec<String> = files
        .iter()
        .map(|(file, _, _)| {
            upload(&server, &token, file)["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut client = server.client();
    let first = client.get("/v2/user/uploads?limit=2", Some(&token)).json()["data"].clone();
    let listed: Vec<&str> = first["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let newest = &first["uploads"][0];
    assert_eq!(
        (newest["status"].as_str(), newest["model"].as_str()),
        (Some("done"), Some("old"))
    );
    assert_eq!(
        newest["result"].as_str(),
        Some(files[2].1.as_str()),
        "ddddocr's answer"
    );
    let before = first["next_before"].as_str().unwrap();
    assert_eq!(before, ids[1]);
    let second = client.get(
        &format!("/v2/user/uploads?limit=2&before={before}"),
        Some(&token),
    );
    let second = second.json()["data"].clone();
    assert_eq!(second["uploads"].as_array().unwrap().len(), 1);
    assert_eq!(second["uploads"][0]["id"].as_str(), Some(ids[0].as_str()));
    assert!(second.get("next_before").is_none(), "the last page");
    // Another user has none of them.
    let admin = server.admin_token();
    let (_, other) = server.create_user(&admin, "pageless", 5, "user");
    let theirs = client.get("/v2/user/uploads", Some(&other)).json()["data"].clone();
    assert_eq!(theirs["uploads"], serde_json::json!([]));
    // Bounds and bad input are 1001; no token is 1002.
    for query in ["limit=0", "limit=101", "before=abc", "limit=-1"] {
        let answer = client.get(&format!("/v2/user/uploads?{query}"), Some(&token));
        assert_eq!((answer.status, answer.code()), (400, 1001), "{query}");
    }
    assert_eq!(client.get("/v2/user/uploads", None).code(), 1002);
}

#[test]
fn admins_find_users_by_name_a_page_at_a_time_over_every_shard() {
    let server = Server::start(2, &[]);
    let admin = server.admin_token();
    let mut ids = Vec::new();
    for name in ["pg-c", "pg-a", "pg-d", "pg-b", "pgx"] {
        ids.push(server.create_user(&admin, name, 7, "user").0);
    }
    let mut client = server.client();
    let find = |client: &mut common::Client, query: &str| {
        let answer = client.get(&format!("/v2/admin/users?{query}"), Some(&admin));
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["data"].clone()
    };
    let names = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    let first = find(&mut client, "q=pg-&limit=3");
    assert_eq!(names(&first), ["pg-a", "pg-b", "pg-c"]);
    assert_eq!(first["next_after"], "pg-c");
    let user = &first["users"][0];
    assert_eq!(user["user_id"].as_str().unwrap(), ids[1].to_string());
    assert_eq!(
        (
            user["role"].as_str(),
            user["points"].as_i64(),
            user["has_key"].as_bool()
        ),
        (Some("user"), Some(7), Some(false))
    );
    let rest = find(&mut client, "q=pg-&limit=3&after=pg-c");
    assert_eq!(names(&rest), ["pg-d"]);
    assert!(rest.get("next_after").is_none());
    assert_eq!(names(&find(&mut client, "q=demo")), ["demo"]);
    assert_eq!(names(&find(&mut client, "limit=100")).len(), 7, "everyone");
    let too_long = format!("q={}", "a".repeat(65));
    for query in ["limit=0", "limit=101", too_long.as_str()] {
        let answer = client.get(&format!("/v2/admin/users?{query}"), Some(&admin));
        assert_eq!((answer.status, answer.code()), (400, 1001), "{query}");
    }
    let demo = server.demo_token();
    let refused = client.get("/v2/admin/users", Some(&demo));
    assert_eq!((refused.status, refused.code()), (403, 1005));
}

#[test]
fn a_role_change_reaches_the_key_at_once_and_the_token_at_the_next_login() {
    let server = Server::start(2, &[]);
    let admin = server.admin_token();
    let (user_id, token) = server.create_user(&admin, "promoted", 0, "user");
    let mut client = server.client();
    let key = client
        .post_json("/v2/user/apikey", Some(&token), "{}")
        .json()["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    // The key is remembered (with its role) by the shards that saw it.
    assert_eq!(client.get("/v2/developer/stats", Some(&key)).code(), 1005);
    let body = format!(r#"{{"user_id":"{user_id}","role":"developer"}}"#);
    let answer = client.post_json("/v2/admin/users/role", Some(&admin), &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["data"]["role"], "developer");
    let by_key = client.get("/v2/developer/stats", Some(&key));
    assert_eq!(by_key.status, 200, "the key has the new role at once");
    assert_eq!(
        client.get("/v2/developer/stats", Some(&token)).code(),
        1005,
        "the old token keeps the role it was issued with"
    );
    let fresh = server.login("promoted", "password-promoted");
    assert_eq!(client.get("/v2/developer/stats", Some(&fresh)).status, 200);
    // By name too; the directory shows it.
    let body = r#"{"username":"promoted","role":"user"}"#;
    assert_eq!(
        client
            .post_json("/v2/admin/users/role", Some(&admin), body)
            .status,
        200
    );
    let found = client
        .get("/v2/admin/users?q=promoted", Some(&admin))
        .json();
    assert_eq!(found["data"]["users"][0]["role"], "user");
    assert_eq!(found["data"]["users"][0]["has_key"], true);
    // Refusals.
    let admin_id = client.get("/v2/admin/users?q=admin", Some(&admin)).json()["data"]["users"][0]
        ["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        (
            format!(r#"{{"user_id":"{admin_id}","role":"user"}}"#),
            &admin,
            403,
            1005,
        ),
        (
            format!(r#"{{"user_id":"{user_id}","role":"root"}}"#),
            &admin,
            400,
            1001,
        ),
        (
            r#"{"username":"nobody-here","role":"user"}"#.to_string(),
            &admin,
            400,
            1001,
        ),
        (format!(r#"{{"user_id":"{user_id}"}}"#), &admin, 400, 1001),
        (
            format!(r#"{{"user_id":"{user_id}","role":"admin"}}"#),
            &fresh,
            403,
            1005,
        ),
    ];
    for (body, caller, status, code) in cases {
        let answer = client.post_json("/v2/admin/users/role", Some(caller), &body);
        assert_eq!((answer.status, answer.code()), (status, code), "{body}");
    }
}

#[test]
fn the_server_state_is_the_metrics_numbers() {
    let server = Server::start(
        2,
        &["queue_len=64", "detect_queue_len=32", "slide_queue_len=16"],
    );
    let admin = server.admin_token();
    let demo = server.demo_token();
    upload(&server, &demo, &manifest()[0].0);
    let mut client = server.client();
    let refused = client.get("/v2/admin/server", Some(&demo));
    assert_eq!((refused.status, refused.code()), (403, 1005));
    let state = client.get("/v2/admin/server", Some(&admin)).json()["data"].clone();
    let metrics = server.metrics();
    let metric = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in /metrics"))
            .parse()
            .unwrap()
    };
    let totals = &state["totals"];
    assert_eq!(totals["results_done"], metric("aiocr_results_done_total"));
    assert_eq!(totals["results_done"], 1);
    assert_eq!(totals["cache_misses"], metric("aiocr_cache_misses_total"));
    assert_eq!(state["queue"]["capacity"], metric("aiocr_queue_capacity"));
    // The capacity is every kind's queue: text, detection and slides.
    assert_eq!(state["queue"]["capacity"], 64 + 32 + 16);
    assert_eq!(state["servers"][0]["shards"], 2);
    assert!(state["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "old"));
    assert!(totals["recognize_us_p50"].as_u64().unwrap() > 0);
}
