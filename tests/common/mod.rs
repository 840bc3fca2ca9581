//! Test harness: runs the real `aiocr` binary on an ephemeral loopback port with its own
//! temporary data directory, and talks to it with raw HTTP/1.1 clients (over a `TcpStream`,
//! or any other byte stream such as a TLS client's).
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_aiocr");
static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A running server; killed (and its data directory removed) when dropped.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// The `tls_listen` port, when the settings turn TLS on.
    pub tls_port: u16,
    pub data_dir: PathBuf,
    /// The server's stderr, line by line (also copied to the test's stderr).
    log: mpsc::Receiver<String>,
    pub demo_password: String,
    pub admin_password: String,
    settings: Vec<String>,
    shards: u16,
    keep_dir: bool,
}

pub fn fresh_data_dir(tag: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("aiocr-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scratch directory for one test's files, removed when dropped (keep it alive for as
/// long as its files are used).
pub fn scratch_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("aiocr-test-{tag}-"))
        .tempdir()
        .unwrap()
}

/// A PNG signature and IHDR declaring 100000 x 100000 pixels, and nothing else: refused on
/// its header (code 3004) before any pixel is decoded.
pub fn huge_png_header() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&100_000u32.to_be_bytes());
    bytes.extend_from_slice(&100_000u32.to_be_bytes());
    bytes.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

pub fn model_dir() -> PathBuf {
    match std::env::var_os("AIOCR_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"),
    }
}

impl Server {
    /// Starts `aiocr serve` with `shards` shards and extra `key=value` settings.
    pub fn start(shards: u16, settings: &[&str]) -> Server {
        let data_dir = fresh_data_dir("server");
        Server::start_in(data_dir, shards, settings)
    }

    /// `start` on a data directory the test prepared (e.g. with `aiocr user add`).
    pub fn start_in(data_dir: PathBuf, shards: u16, settings: &[&str]) -> Server {
        let settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        Server::launch(data_dir, shards, settings, String::new(), String::new())
    }

    /// Starts `aiocr serve` on `data_dir`, a directory the caller made (e.g. on a size-limited
    /// file system); removed when the server is dropped, like a fresh one.
    pub fn start_at(data_dir: PathBuf, shards: u16, settings: &[&str]) -> Server {
        let settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        Server::launch(data_dir, shards, settings, String::new(), String::new())
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn launch(
        data_dir: PathBuf,
        shards: u16,
        settings: Vec<String>,
        demo: String,
        admin: String,
    ) -> Server {
        let mut command = Command::new(BIN);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--shards",
                &shards.to_string(),
            ])
            .arg("--data")
            .arg(&data_dir)
            .arg("--model-dir")
            .arg(model_dir())
            .env_remove("AIOCR_LISTEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for setting in &settings {
            command.args(["--set", setting]);
        }
        let mut child = command.spawn().expect("start aiocr serve");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (log_tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let _ = log_tx.send(line);
            }
        });
        let mut server = Server {
            child: Some(child),
            port: 0,
            tls_port: 0,
            log,
            data_dir,
            demo_password: demo,
            admin_password: admin,
            settings,
            shards,
            keep_dir: false,
        };
        // Waits for the announcement line; the server prints it once every shard listens.
        for line in lines_rx.iter() {
            if let Some(rest) = line.split("demo / ").nth(1) {
                server.demo_password = rest.split_whitespace().next().unwrap().to_string();
            }
            if let Some(rest) = line.split("admin / ").nth(1) {
                server.admin_password = rest.split_whitespace().next().unwrap().to_string();
            }
            if let Some(rest) = line.split("TLS on https://127.0.0.1:").nth(1) {
                server.tls_port = rest.trim().parse().unwrap();
            }
            if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                server.port = rest.split_whitespace().next().unwrap().parse().unwrap();
                break;
            }
        }
        assert!(server.port != 0, "the server exited before listening");
        server
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// Waits for a line of the server's stderr that contains `needle` and returns it (lines
    /// before it are passed over). Panics if the server's stderr ends first.
    pub fn wait_for_log(&self, needle: &str) -> String {
        // Not a timing assertion: only keeps a broken server from hanging the suite forever.
        let patience = Duration::from_secs(120);
        loop {
            match self.log.recv_timeout(patience) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(error) => panic!("no log line with {needle:?}: {error}"),
            }
        }
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the running server.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("running");
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(&mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap().code().unwrap_or(-1)
    }

    /// SIGTERM, then the exit code; None when the process is still running `bound` later (it
    /// is killed then). Not a timing assertion: a generous bound on a stop that must end.
    pub fn terminate_within(&mut self, bound: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + bound;
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGKILL (no chance to flush or drain).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        let _ = child.wait();
    }

    /// Starts again on the same data directory (after `terminate` or `kill9`).
    pub fn restart(mut self) -> Server {
        assert!(self.child.is_none(), "stop it first");
        self.keep_dir = true;
        let (demo, admin) = (self.demo_password.clone(), self.admin_password.clone());
        Server::launch(
            self.data_dir.clone(),
            self.shards,
            self.settings.clone(),
            demo,
            admin,
        )
    }

    pub fn login(&self, username: &str, password: &str) -> String {
        let body = format!(r#"{{"username":"{username}","password":"{password}"}}"#);
        let answer = self.client().post_json("/v2/user/login", None, &body);
        assert_eq!(answer.status, 200, "login {username}: {}", answer.text());
        answer.json()["data"]["token"].as_str().unwrap().to_string()
    }

    pub fn demo_token(&self) -> String {
        self.login("demo", &self.demo_password.clone())
    }

    pub fn admin_token(&self) -> String {
        self.login("admin", &self.admin_password.clone())
    }

    /// Creates a user through the admin API; returns (user id, token).
    pub fn create_user(
        &self,
        admin_token: &str,
        username: &str,
        points: i64,
        role: &str,
    ) -> (u64, String) {
        let body = format!(
            r#"{{"username":"{username}","password":"password-{username}","role":"{role}","points":{points}}}"#
        );
        let answer = self
            .client()
            .post_json("/v2/admin/users", Some(admin_token), &body);
        assert_eq!(answer.status, 200, "{}", answer.text());
        let user_id = answer.json()["data"]["user_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        (
            user_id,
            self.login(username, &format!("password-{username}")),
        )
    }

    /// (points, reserved) of the token's user.
    pub fn balance(&self, token: &str) -> (i64, i64) {
        let answer = self.client().get("/v2/user/point", Some(token));
        assert_eq!(answer.status, 200, "{}", answer.text());
        let data = &answer.json()["data"];
        (
            data["points"].as_i64().unwrap(),
            data["reserved"].as_i64().unwrap(),
        )
    }

    pub fn metrics(&self) -> String {
        self.client().get("/metrics", None).text()
    }
}

/// The value of an unlabelled series in a `/metrics` text; panics when it is absent.
pub fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{metrics}"))
}

/// The sum over shards of a series labelled per shard (`name{shard="0"} 3`).
pub fn metric_per_shard_sum(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// `aiocr ledger verify --data DIR`: (exit code, output).
pub fn ledger_verify(data_dir: &Path) -> (i32, String) {
    let output = Command::new(BIN)
        .args(["ledger", "verify", "--data"])
        .arg(data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The envelope's `code`.
    pub fn code(&self) -> i64 {
        self.json()["code"].as_i64().unwrap()
    }
}

/// One keep-alive connection over a byte stream (TCP unless said otherwise).
pub struct Client<S = TcpStream> {
    pub stream: S,
    buffered: Vec<u8>,
}

/// A TCP connection to a local port, with a read timeout that only keeps a broken server from
/// hanging the suite forever (not a timing assertion).
pub fn connect_tcp(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

impl Client {
    pub fn connect(port: u16) -> Client {
        Client::over(connect_tcp(port))
    }
}

impl<S: Read + Write> Client<S> {
    /// A client over an established stream (e.g. a TLS client's).
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            buffered: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes);
        self.read_answer(method == "HEAD")
    }

    pub fn get(&mut self, path: &str, token: Option<&str>) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        self.request("GET", path, &headers, b"")
    }

    pub fn post(
        &mut self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        if !content_type.is_empty() {
            headers.push(("Content-Type", content_type));
        }
        self.request("POST", path, &headers, body)
    }

    pub fn post_json(&mut self, path: &str, token: Option<&str>, body: &str) -> Answer {
        self.post(path, token, "application/json", body.as_bytes())
    }

    /// Like `request`, but `None` when the connection breaks (a server killed mid-request).
    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<Answer> {
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).ok()?;
        self.try_read_answer(false)
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let count = self.stream.read(&mut chunk).unwrap_or(0);
        self.buffered.extend_from_slice(&chunk[..count]);
        count
    }

    /// Reads one answer (status line, headers, Content-Length body).
    pub fn read_answer(&mut self, head_only: bool) -> Answer {
        match self.try_read_answer(head_only) {
            Some(answer) => answer,
            None => panic!(
                "connection closed before an answer: {:?}",
                String::from_utf8_lossy(&self.buffered)
            ),
        }
    }

    /// One answer, or `None` if the connection ends first.
    pub fn try_read_answer(&mut self, head_only: bool) -> Option<Answer> {
        let head_end = loop {
            if let Some(at) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if self.fill() == 0 {
                return None;
            }
        };
        let head = String::from_utf8(self.buffered[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body_length = if head_only || status == 100 {
            0
        } else {
            length
        };
        while self.buffered.len() < head_end + body_length {
            if self.fill() == 0 {
                return None;
            }
        }
        let body = self.buffered[head_end..head_end + body_length].to_vec();
        self.buffered.drain(..head_end + body_length);
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    /// True when the server closed the connection (reads EOF or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// Polls `/v2/result` until the upload is no longer pending (bounded: 3000 polls 10 ms apart).
pub fn poll_until_finished(client: &mut Client, token: &str, id: &str) -> serde_json::Value {
    for _ in 0..3000 {
        let data = client
            .get(&format!("/v2/result?id={id}"), Some(token))
            .json()["data"]
            .clone();
        if data["status"] != "pending" {
            return data;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("upload {id} still pending");
}

/// (file, ddddocr_old, ddddocr_beta) for every row of the fixtures' manifest: what ddddocr
/// 1.6.1 itself read from each image with its default model and with `beta=True`.
pub fn manifest() -> Vec<(String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha/manifest.tsv");
    std::fs::read_to_string(path)
        .expect("manifest")
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (
                cols[0].to_string(),
                cols[4].to_string(),
                cols[5].to_string(),
            )
        })
        .collect()
}

/// A fixture image from tests/fixtures/captcha.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/captcha")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `POST /v2/models` of `token`'s user: a model named `name` of these two files.
pub fn add_model(server: &Server, token: &str, name: &str, onnx: &[u8], charsets: &[u8]) -> Answer {
    let boundary = "aiocrModelBoundary42";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n")
            .into_bytes();
    for (part, bytes) in [("onnx", onnx), ("charsets", charsets)] {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; \
                 filename=\"{part}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    server
        .client()
        .post("/v2/models", Some(token), &content_type, &body)
}

/// A multipart body with one file part `file` and text fields; returns (content type, body).
pub fn multipart(file_field: &str, image: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "aiocrTestBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes());
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"c.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .bytes(),
    );
    body.extend_from_slice(image);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A multipart/form-data body of text fields, then file parts (as
/// `application/octet-stream`, named after their field): (content type, body).
pub fn multipart_form(texts: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "aiocrTestFormBoundary42";
    let mut body = Vec::new();
    for (name, value) in texts {
        let part = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        );
        body.extend(part.bytes());
    }
    for (name, bytes) in files {
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
             filename=\"{name}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        body.extend(head.bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The rows of a fixture's tab-separated manifest (a header line, then one line per fixture),
/// as column name -> value maps.
pub fn manifest_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("manifest");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            header
                .iter()
                .zip(line.split('\t'))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Accepts one HTTP request on `listener` (a callback the server makes), answers it 200 and
/// returns its body.
pub fn receive_one_request(listener: &std::net::TcpListener) -> Vec<u8> {
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    reader
        .get_mut()
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    body
}
