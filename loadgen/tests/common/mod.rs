//! A small aiocr-speaking HTTP/1.1 server for loadgen's tests: real sockets on 127.0.0.1, a
//! thread per connection, keep-alive and pipelining, the routes and error codes of
//! docs/api.md that the scenarios use, plus two faults a test cannot get otherwise: a single
//! long stall, and answers that close the connection.

#![allow(dead_code)]

use aiocr_contract::ApiError;
use base64::Engine as _;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Image bytes the server refuses as undecodable (code 3003).
pub const BAD_IMAGE: &[u8] = b"BAD-IMAGE";
/// Requests a token of user "short" is good for; then it answers 1003 (expired).
pub const SHORT_TOKEN_USES: u32 = 3;
/// Polls of /v2/result answered `pending` before `done`.
pub const PENDING_POLLS: u32 = 2;

#[derive(Default)]
pub struct Faults {
    /// The request with this 1-based number (counted over all routes) is answered only
    /// after sleeping this long.
    pub stall: Option<(u64, Duration)>,
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub per_route: Mutex<HashMap<String, u64>>,
    pub uploads: Mutex<HashMap<u64, (String, u32)>>,
    pub next_id: AtomicU64,
    pub logins: AtomicU64,
    /// Requests seen per token of user "short" (whose tokens expire after SHORT_TOKEN_USES).
    pub short_token_uses: Mutex<HashMap<String, u32>>,
}

impl Counters {
    pub fn route(&self, route: &str) -> u64 {
        *self.per_route.lock().unwrap().get(route).unwrap_or(&0)
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

impl TestServer {
    pub fn start(faults: Faults) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters {
            next_id: AtomicU64::new(7_000_000_000_000),
            ..Counters::default()
        });
        let faults = Arc::new(faults);
        let shared = counters.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counters = shared.clone();
                let faults = faults.clone();
                std::thread::spawn(move || serve(stream, &counters, &faults));
            }
        });
        TestServer { addr, counters }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Default)]
struct Answer {
    status: u16,
    body: String,
    close: bool,
    /// Send the body chunked (in two chunks) instead of with Content-Length.
    chunked: bool,
    /// Never answer (and keep the connection open until the client goes).
    hang: bool,
}

/// The contract's answer for `error` (its HTTP status and code, from the shared definition).
fn refused(error: ApiError) -> Answer {
    json(
        error.status(),
        i64::from(error.code()),
        serde_json::json!({}),
    )
}

fn json(status: u16, code: i64, data: serde_json::Value) -> Answer {
    let body =
        serde_json::json!({"code": code, "msg": if code == 0 {"ok"} else {"error"}, "data": data});
    Answer {
        status,
        body: body.to_string(),
        ..Answer::default()
    }
}

fn serve(mut stream: TcpStream, counters: &Counters, faults: &Faults) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while let Some((request, used)) = parse_request(&buf) {
            buf.drain(..used);
            let number = counters.requests.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some((at, pause)) = faults.stall {
                if at == number {
                    std::thread::sleep(pause);
                }
            }
            let answer = route(&request, counters);
            if answer.hang {
                while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
                return;
            }
            if stream.write_all(&wire(&answer)).is_err() || answer.close {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn wire(answer: &Answer) -> Vec<u8> {
    let framing = if answer.chunked {
        "Transfer-Encoding: chunked\r\n".to_string()
    } else {
        format!("Content-Length: {}\r\n", answer.body.len())
    };
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\n{framing}{}\r\n",
        answer.status,
        if answer.close {
            "Connection: close\r\n"
        } else {
            ""
        }
    )
    .into_bytes();
    if answer.chunked {
        let (first, second) = answer.body.split_at(answer.body.len() / 2);
        for part in [first, second] {
            out.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(answer.body.as_bytes());
    }
    out
}

fn parse_request(buf: &[u8]) -> Option<(Request, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).to_string(),
            )
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse().unwrap())
        .unwrap_or(0);
    if buf.len() < head_len + length {
        return None;
    }
    let target = parsed.path.unwrap().to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let request = Request {
        method: parsed.method.unwrap().to_string(),
        path,
        query,
        headers,
        body: buf[head_len..head_len + length].to_vec(),
    };
    Some((request, head_len + length))
}

fn route(request: &Request, counters: &Counters) -> Answer {
    *counters
        .per_route
        .lock()
        .unwrap()
        .entry(request.path.clone())
        .or_insert(0) += 1;
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/plain") => Answer {
            status: 200,
            body: "ok".into(),
            ..Answer::default()
        },
        ("GET", "/close") => Answer {
            status: 200,
            body: "bye".into(),
            close: true,
            ..Answer::default()
        },
        ("GET", "/missing") => Answer {
            status: 404,
            body: "no".into(),
            ..Answer::default()
        },
        ("GET", "/hang") => Answer {
            hang: true,
            ..Answer::default()
        },
        ("GET", "/v2/user/point") if request.header("x-chunked").is_some() => {
            let mut answer = json(200, 0, serde_json::json!({"points": 1000, "reserved": 0}));
            answer.chunked = true;
            answer
        }
        ("POST", "/v2/user/login") => login(request, counters),
        ("GET", "/v2/user/point") => match user_of(request) {
            Ok(user) if user.starts_with("short.") && !short_token_valid(&user, counters) => {
                refused(ApiError::BadToken)
            }
            Ok(_) => json(200, 0, serde_json::json!({"points": 1000, "reserved": 0})),
            Err(answer) => answer,
        },
        ("POST", "/v2/decode/upload-base64") => match base64_image(request) {
            Ok(image) => upload(request, &image, counters),
            Err(answer) => answer,
        },
        ("POST", "/v2/decode/upload") => match multipart_image(request) {
            Ok(image) => upload(request, &image, counters),
            Err(answer) => answer,
        },
        ("GET", "/v2/result") => result(request, counters),
        // Like ddddocr-fastapi: no login, HTTP 200 always, the outcome in `code` (200 or 500).
        ("POST", "/ocr") => match multipart_image(request) {
            Ok(image) if image != BAD_IMAGE => json(200, 200, serde_json::json!("ab12")),
            _ => json(200, 500, serde_json::json!(null)),
        },
        _ => refused(ApiError::NoRoute),
    }
}

/// Users: every name's password is "pw". "poor" has no points (2001 on upload), "busy" always
/// finds the queue full (5001).
fn short_token_valid(user: &str, counters: &Counters) -> bool {
    let mut uses = counters.short_token_uses.lock().unwrap();
    let used = uses.entry(user.to_string()).or_insert(0);
    *used += 1;
    *used <= SHORT_TOKEN_USES
}

fn login(request: &Request, counters: &Counters) -> Answer {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
        return refused(ApiError::Malformed);
    };
    let name = body["username"].as_str().unwrap_or("");
    if name.is_empty() || body["password"].as_str() != Some("pw") {
        return refused(ApiError::BadCredentials);
    }
    let number = counters.logins.fetch_add(1, Ordering::SeqCst);
    // Every login of "short" gets a fresh token with a small budget of requests.
    let token = if name == "short" {
        format!("tok-short.{number}")
    } else {
        format!("tok-{name}")
    };
    json(
        200,
        0,
        serde_json::json!({"token": token, "expires_at": 0, "user_id": "1"}),
    )
}

fn user_of(request: &Request) -> Result<String, Answer> {
    let Some(value) = request.header("authorization") else {
        return Err(refused(ApiError::NoToken));
    };
    match value.strip_prefix("Bearer tok-") {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(refused(ApiError::BadToken)),
    }
}

fn base64_image(request: &Request) -> Result<Vec<u8>, Answer> {
    let body: serde_json::Value =
        serde_json::from_slice(&request.body).map_err(|_| refused(ApiError::Malformed))?;
    let text = body["file"]
        .as_str()
        .ok_or_else(|| refused(ApiError::NoImage))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| refused(ApiError::NotAnImage))
}

fn multipart_image(request: &Request) -> Result<Vec<u8>, Answer> {
    let content_type = request.header("content-type").unwrap_or("");
    let Some(boundary) = content_type.split("boundary=").nth(1) else {
        return Err(refused(ApiError::Malformed));
    };
    let body = &request.body;
    let opening = format!("--{boundary}\r\n");
    let closing = format!("\r\n--{boundary}--\r\n");
    let field = b"name=\"file\"";
    let ok = body.starts_with(opening.as_bytes())
        && body.ends_with(closing.as_bytes())
        && body.windows(field.len()).any(|w| w == field);
    let Some(start) = body.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(refused(ApiError::NoImage));
    };
    if !ok {
        return Err(refused(ApiError::NoImage));
    }
    Ok(body[start + 4..body.len() - closing.len()].to_vec())
}

fn upload(request: &Request, image: &[u8], counters: &Counters) -> Answer {
    let user = match user_of(request) {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    match user.as_str() {
        "poor" => return refused(ApiError::NoPoints),
        "busy" => return refused(ApiError::Busy),
        _ => {}
    }
    if image.is_empty() || image == BAD_IMAGE {
        return refused(ApiError::NotAnImage);
    }
    let id = counters.next_id.fetch_add(1, Ordering::SeqCst);
    if request.query_param("wait") == Some("1") {
        return json(
            200,
            0,
            serde_json::json!({"id": id.to_string(), "status": "done", "result": "ab12", "confidence": 0.97, "cost": 1}),
        );
    }
    counters
        .uploads
        .lock()
        .unwrap()
        .insert(id, (user, PENDING_POLLS));
    json(
        200,
        0,
        serde_json::json!({"id": id.to_string(), "status": "pending"}),
    )
}

fn result(request: &Request, counters: &Counters) -> Answer {
    let user = match user_of(request) {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    let Some(Ok(id)) = request.query_param("id").map(str::parse::<u64>) else {
        return refused(ApiError::Malformed);
    };
    let mut uploads = counters.uploads.lock().unwrap();
    match uploads.get_mut(&id) {
        Some((owner, _)) if *owner != user => refused(ApiError::NoSuchUpload),
        Some((_, polls_left)) if *polls_left > 0 => {
            *polls_left -= 1;
            json(
                200,
                0,
                serde_json::json!({"id": id.to_string(), "status": "pending"}),
            )
        }
        Some(_) => json(
            200,
            0,
            serde_json::json!({"id": id.to_string(), "status": "done", "result": "ab12", "cost": 1}),
        ),
        None => refused(ApiError::NoSuchUpload),
    }
}

/// Runs the loadgen binary with `args` (plus --json --no-live); returns exit code, the JSON
/// summary (Null if none) and stderr.
pub fn loadgen(args: &[&str]) -> (i32, serde_json::Value, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aiocr-loadgen"))
        .args(args)
        .args(["--json"])
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (
        output.status.code().unwrap_or(-1),
        summary,
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// A directory of test "images" (the test server only tells BAD_IMAGE apart), removed when
/// dropped.
pub struct ImageDir(std::path::PathBuf);

impl ImageDir {
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ImageDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn image_dir(name: &str, images: &[&[u8]]) -> ImageDir {
    let dir =
        std::env::temp_dir().join(format!("aiocr-loadgen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, image) in images.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:04}.png")), image).unwrap();
    }
    ImageDir(dir)
}
