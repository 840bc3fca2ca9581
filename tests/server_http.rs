//! HTTP/1.1 behaviour of the real server: keep-alive, HEAD, pipelining, chunked bodies,
//! 100-continue, protocol refusals, timeouts, the connection limit.

mod common;

use common::{fixture, manifest, model_dir, multipart, Client, Server, BIN};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn keep_alive_head_and_standard_headers() {
    let server = Server::start(2, &[]);
    let mut client = server.client();
    let first = client.get("/health", None);
    let second = client.get("/health", None);
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.json()["data"]["status"], "ok");
    assert_eq!(first.header("Connection"), Some("keep-alive"));
    let date = first.header("Date").unwrap();
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    let head = client.request("HEAD", "/health", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length"),
        first.header("Content-Length")
    );
    // The connection is still usable after HEAD (no body bytes were sent).
    assert_eq!(client.get("/health", None).status, 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(2, &[]);
    let mut client = server.client();
    let login = br#"{"username":"nobody","password":"wrong-password"}"#;
    let mut batch = Vec::new();
    batch.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    batch.extend_from_slice(b"GET /no/such/route HTTP/1.1\r\nHost: t\r\n\r\n");
    batch.extend_from_slice(
        format!("POST /v2/user/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", login.len())
            .as_bytes(),
    );
    batch.extend_from_slice(login);
    batch.extend_from_slice(b"GET /v2/servers HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    client.send(&batch);
    let answers: Vec<_> = (0..4).map(|_| client.read_answer(false)).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![200, 404, 401, 200]);
    assert_eq!(answers[1].code(), 1006);
    assert_eq!(answers[2].code(), 1004);
    assert_eq!(answers[3].json()["data"]["servers"][0]["shards"], 2);
    assert_eq!(answers[3].header("Connection"), Some("close"));
    assert!(client.is_closed());
}

#[test]
fn chunked_request_body() {
    let server = Server::start(2, &[]);
    let mut client = server.client();
    let json = format!(
        r#"{{"username":"demo","password":"{}"}}"#,
        server.demo_password
    );
    let (a, b) = json.split_at(10);
    let mut raw = b"POST /v2/user/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend(format!("{:x};note=1\r\n{a}\r\n", a.len()).bytes());
    client.send(&raw);
    // The rest arrives in later writes, split inside the chunk-size line.
    client.send(format!("{:x}", b.len()).as_bytes());
    client.send(format!("\r\n{b}\r\n0\r\nX-Trailer: t\r\n\r\n").as_bytes());
    let answer = client.read_answer(false);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.json()["data"]["token"].as_str().unwrap().len() > 20);
}

/// `Transfer-Encoding: CHUNKED` (coding names are case-insensitive, RFC 9112 section 7) and
/// chunk extensions in each form the grammar allows (ignored, section 7.1.1) carry a real
/// upload to the model; a chunk-size line longer than `max_header_bytes` is refused (400,
/// closed) like a head too long, while the server goes on serving.
#[test]
fn uppercase_chunked_and_chunk_extensions_carry_an_upload() {
    // The URI bound must stay below the head bound (a config rule).
    let server = Server::start(1, &["max_header_bytes=2048", "max_uri_bytes=1024"]);
    let token = server.demo_token();
    let (file, expected, _) = manifest().into_iter().next().unwrap();
    let (content_type, body) = multipart("file", &fixture(&file), &[]);
    let head = format!(
        "POST /v2/decode/upload?wait=1&timeout_ms=30000 HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n\
         transfer-encoding: CHUNKED\r\n\r\n"
    );
    let extensions = [";name=value", " ; flag", ";a=\"q;u=o\\\"te\";b = 2", ";x"];
    let mut raw = head.clone().into_bytes();
    for (chunk, extension) in body
        .chunks(body.len() / 3 + 1)
        .zip(extensions.iter().cycle())
    {
        raw.extend(format!("{:X}{extension}\r\n", chunk.len()).bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0;last=chunk\r\nX-Trailer: dropped\r\n\r\n");
    let mut client = server.client();
    client.send(&raw);
    let answer = client.read_answer(false);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["data"]["result"], expected.as_str());

    let mut long_line = head.into_bytes();
    long_line.extend(format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(2048)).bytes());
    let mut client = server.client();
    client.send(&long_line);
    let refused = client.read_answer(false);
    assert_eq!(refused.status, 400);
    assert!(client.is_closed());
    assert_eq!(server.client().get("/health", None).status, 200);
}

/// Listening on every address with `public_url` unset, `/v2/servers` announces an address
/// of this host a client can reach (not `0.0.0.0`), with the listening port, and the start-up
/// log says which and how to set another.
#[test]
fn servers_announces_a_reachable_address_when_listening_on_every_address() {
    let data = common::fresh_data_dir("every-address");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--shards", "1", "--data"])
        .arg(&data)
        .arg("--model-dir")
        .arg(model_dir())
        .env_remove("AIOCR_LISTEN")
        .env_remove("AIOCR_PUBLIC_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both streams are read to their end (a closed pipe would fail the server's writes).
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let log = std::thread::spawn(move || {
        let lines: Vec<String> = stderr.lines().map_while(Result::ok).collect();
        lines
            .into_iter()
            .find(|line| line.contains("/v2/servers announces"))
    });
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let port = line
                .split("listening on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u16>().ok());
            if let Some(port) = port {
                let _ = port_tx.send(port);
            }
        }
    });
    let port = port_rx.recv().expect("the listening line");
    let servers = Client::connect(port).get("/v2/servers", None).json();
    let url = servers["data"]["servers"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let announced: std::net::SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    assert!(!announced.ip().is_unspecified(), "{url}");
    assert_eq!(announced.port(), port, "{url}");
    // Reachable: a client that connects to the announced address is served.
    let stream = std::net::TcpStream::connect(announced).unwrap();
    assert_eq!(
        Client::over(stream).get("/health", None).status,
        200,
        "{url}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    // The server's stderr has ended with its exit.
    let line = log
        .join()
        .unwrap()
        .expect("the start-up line naming the URL");
    assert!(line.contains(&url) && line.contains("public_url"), "{line}");
    let _ = std::fs::remove_dir_all(data);
}

#[test]
fn expect_100_continue() {
    let server = Server::start(2, &[]);
    let mut client = server.client();
    let json = format!(
        r#"{{"username":"demo","password":"{}"}}"#,
        server.demo_password
    );
    let head = format!(
        "POST /v2/user/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        json.len()
    );
    client.send(head.as_bytes());
    let interim = client.read_answer(false);
    assert_eq!(interim.status, 100);
    client.send(json.as_bytes());
    let answer = client.read_answer(false);
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// Each refusal answers its status and closes the connection.
#[test]
fn protocol_refusals_close_the_connection() {
    let server = Server::start(
        2,
        &[
            "max_header_bytes=2048",
            "max_uri_bytes=512",
            "max_body_bytes=600000",
        ],
    );
    let long_header = format!(
        "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    let long_uri = format!(
        "GET /health?{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(1000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"THIS IS NOT HTTP\r\n\r\n".to_vec(), 400),
        (b"GET /health HTTP/1.1\r\n\r\n".to_vec(), 400), // no Host
        (b"GET /health HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        (b"POST /v2/user/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 501),
        (b"POST /v2/user/login HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n".to_vec(), 400),
        (b"POST /v2/user/login HTTP/1.1\r\nHost: t\r\nContent-Length: 600001\r\n\r\n".to_vec(), 413),
        (b"POST /v2/user/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n".to_vec(), 400),
        (long_header.into_bytes(), 431),
        (long_uri.into_bytes(), 414),
    ];
    for (raw, status) in cases {
        let mut client = server.client();
        client.send(&raw);
        let answer = client.read_answer(false);
        assert_eq!(
            answer.status,
            status,
            "{}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)])
        );
        assert_eq!(answer.header("Connection"), Some("close"));
        assert!(client.is_closed(), "still open after {status}");
    }
    let metrics = server.metrics();
    for status in [400, 413, 414, 431, 501, 505] {
        assert!(
            metrics.contains(&format!(
                "aiocr_protocol_errors_total{{status=\"{status}\"}}"
            )),
            "{status}"
        );
    }
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let server = Server::start(1, &["max_body_bytes=600000"]);
    // Credentials are checked before the body: without them this would be a 401.
    let token = server.demo_token();
    let mut client = server.client();
    client.send(
        format!(
            "POST /v2/decode/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    );
    let chunk = vec![b'a'; 100_000];
    for _ in 0..7 {
        let mut raw = format!("{:x}\r\n", chunk.len()).into_bytes();
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
        if std::io::Write::write_all(&mut client.stream, &raw).is_err() {
            break; // the server may close as soon as it answered
        }
    }
    assert_eq!(client.read_answer(false).status, 413);
}

/// A client that stops halfway through its head gets 408; meanwhile others are served.
#[test]
fn slow_head_gets_408_and_does_not_stall_the_shard() {
    let server = Server::start(1, &["header_read_timeout_ms=300"]);
    let mut slow = server.client();
    slow.send(b"GET /health HTTP/1.1\r\nHo");
    let mut other = server.client();
    assert_eq!(other.get("/health", None).status, 200);
    let answer = slow.read_answer(false);
    assert_eq!(answer.status, 408);
    assert!(slow.is_closed());
}

#[test]
fn idle_connections_are_closed() {
    let server = Server::start(1, &["idle_timeout_ms=200"]);
    let mut client = server.client();
    assert_eq!(client.get("/health", None).status, 200);
    // The read blocks until the server closes the idle connection.
    assert!(client.is_closed());
}

#[test]
fn unknown_route_and_wrong_method() {
    let server = Server::start(2, &[]);
    let mut client = server.client();
    let missing = client.get("/v2/nothing", None);
    assert_eq!((missing.status, missing.code()), (404, 1006));
    let wrong = client.get("/v2/user/login", None);
    assert_eq!((wrong.status, wrong.code()), (405, 1006));
    assert_eq!(wrong.header("Allow"), Some("POST"));
    let wrong = client.request("POST", "/v2/user/point", &[], b"");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("Allow"), Some("GET, HEAD"));
}

#[test]
fn metrics_on_their_own_address() {
    // A free port for the monitoring listener (released at once; the server binds it next).
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .unwrap()
        .port();
    let setting = format!("metrics_listen=127.0.0.1:{metrics_port}");
    let mut server = Server::start(2, &[&setting]);
    let mut api = server.client();
    let hidden = api.get("/metrics", None);
    assert_eq!((hidden.status, hidden.code()), (404, 1006));
    assert_eq!(api.get("/health", None).status, 200);

    let mut monitoring = Client::connect(metrics_port);
    let metrics = monitoring.get("/metrics", None);
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("aiocr_request_duration_us"));
    assert_eq!(monitoring.get("/health", None).status, 200);
    let api_route = monitoring.get("/v2/servers", None);
    assert_eq!((api_route.status, api_route.code()), (404, 1006));
    assert_eq!(server.terminate(), 0);
}

#[test]
fn connection_limit_per_shard() {
    let server = Server::start(1, &["max_connections_per_shard=2"]);
    let mut first = server.client();
    let mut second = server.client();
    assert_eq!(first.get("/health", None).status, 200);
    assert_eq!(second.get("/health", None).status, 200);
    let mut third = Client::connect(server.port);
    third.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(third.is_closed(), "a third connection is refused");
    // The first two still work (and a new connection would be refused: ask on an open one).
    let metrics = first.get("/metrics", None).text();
    assert!(
        metrics.contains("aiocr_connections_refused_total{shard=\"0\"} 1"),
        "{metrics}"
    );
    assert_eq!(second.get("/health", None).status, 200);
}

#[test]
fn sigterm_exits_zero() {
    let mut server = Server::start(2, &[]);
    let mut client = server.client();
    assert_eq!(client.get("/health", None).status, 200);
    assert_eq!(server.terminate(), 0);
}

/// SO_REUSEPORT must not let a second server silently share a port that is in use.
#[test]
fn a_second_server_on_a_used_port_refuses_to_start() {
    let server = Server::start(1, &[]);
    let data_dir = common::fresh_data_dir("second");
    let output = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--listen",
            &server.addr(),
            "--shards",
            "1",
            "--data",
        ])
        .arg(&data_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    let _ = std::fs::remove_dir_all(&data_dir);
    assert_eq!(server.client().get("/health", None).status, 200);
}
