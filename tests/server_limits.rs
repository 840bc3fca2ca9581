//! The limits that keep one client from taking what the others need: credentials checked
//! from the head before any body byte is read, the shard's budget of body bytes in flight,
//! bodies that must keep progressing, connections per client address, the first-byte
//! timeout, and the lingering close that lets a refused client read its answer.

mod common;

use common::{connect_tcp, fixture, metric_per_shard_sum, Client, Server};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

/// A POST head declaring `length` body bytes.
fn post_head(path: &str, token: Option<&str>, content_type: &str, length: usize) -> Vec<u8> {
    let authorization = token.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\n{authorization}\
         Content-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// Whether the server ended the connection: end-of-stream or a reset, not a read timeout
/// (`Client::is_closed` counts those too).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(error) => error.kind() == ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn metric_sum(server: &Server, name: &str) -> u64 {
    metric_per_shard_sum(&server.metrics(), name)
}

/// Polls `/metrics` until `reached` holds: the server does what a test sends
/// asynchronously, so the test waits for it to be seen (bounded, generously).
fn wait_until(server: &Server, reached: impl Fn(&str) -> bool) {
    for _ in 0..3000 {
        if reached(&server.metrics()) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("never reached: {}", server.metrics());
}

fn wait_for_metric(server: &Server, name: &str, value: u64) {
    wait_until(server, |metrics| {
        metric_per_shard_sum(metrics, name) == value
    });
}

/// Sends `bytes` from another thread (the server may stop reading and answer first); the
/// send's own result does not matter.
fn send_in_background(mut stream: TcpStream, bytes: Vec<u8>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let _ = stream.write_all(&bytes);
    })
}

#[test]
fn uploads_without_valid_credentials_are_refused_before_their_body() {
    let server = Server::start(2, &[]);
    let image = fixture("0001.png");
    for (token, code) in [(None, 1002), (Some("not-a-token"), 1003)] {
        // The head declares a 1 MB body; not one byte of it is sent.
        let mut client = server.client();
        client.send(&post_head(
            "/v2/decode/upload",
            token,
            "image/png",
            1_000_000,
        ));
        let answer = client.read_answer(false);
        assert_eq!((answer.status, answer.code()), (401, code), "{token:?}");
        assert_eq!(answer.header("Connection"), Some("close"));
        assert!(closed_by_server(&mut client.stream));
    }
    // A client that sends its whole body anyway still reads the answer, not a reset: the
    // server reads and drops what follows for a while (lingering close).
    let mut client = server.client();
    let mut request = post_head("/v2/decode/upload", None, "image/png", 1_000_000);
    request.extend(vec![0u8; 1_000_000]);
    let sending = send_in_background(client.stream.try_clone().unwrap(), request);
    let answer = client.read_answer(false);
    assert_eq!((answer.status, answer.code()), (401, 1002));
    sending.join().unwrap();
    assert_eq!(
        metric_sum(&server, "aiocr_requests_refused_before_body_total"),
        3
    );
    // With a valid token the body is read and the upload accepted.
    let token = server.demo_token();
    let mut client = server.client();
    let accepted = client.post("/v2/decode/upload", Some(&token), "image/png", &image);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    // One point taken: still reserved while the upload runs, or charged once it is done (a
    // lone upload runs at once on the wide runner and can finish before this read).
    let (points, reserved) = server.balance(&token);
    assert_eq!(points, 999);
    assert!(reserved <= 1, "{reserved} reserved");
}

#[test]
fn bodies_beyond_the_shard_budget_are_refused() {
    let server = Server::start(
        1,
        &[
            "max_image_bytes=100000",
            "max_body_bytes=100000",
            "body_bytes_in_flight_per_shard=150000",
            // The stalled bodies below must outlive the test, not time out.
            "body_progress_timeout_ms=120000",
            "body_read_timeout_ms=120000",
        ],
    );
    let token = server.demo_token();
    // A head that declares 100 000 bytes and sends 10 holds 10: memory follows arrival.
    let mut declared = server.client();
    let mut partial = post_head("/v2/decode/upload", Some(&token), "image/png", 100_000);
    partial.extend([0u8; 10]);
    declared.send(&partial);
    wait_for_metric(&server, "aiocr_body_bytes_in_flight", 10);
    // Bodies that really send 20 000 bytes each and stall, one at a time, until the growth
    // that crosses the budget is refused.
    let mut stalled = Vec::new();
    let mut held_bytes = 10;
    while metric_sum(&server, "aiocr_bodies_refused_busy_total") == 0 {
        assert!(stalled.len() < 8, "8 x 20 000 > 150 000");
        let mut client = server.client();
        let mut partial = post_head("/v2/decode/upload", Some(&token), "image/png", 50_000);
        partial.extend(vec![0u8; 20_000]);
        client.send(&partial);
        stalled.push(client);
        held_bytes += 20_000;
        wait_until(&server, |metrics| {
            metric_per_shard_sum(metrics, "aiocr_body_bytes_in_flight") >= held_bytes
                || metric_per_shard_sum(metrics, "aiocr_bodies_refused_busy_total") > 0
        });
    }
    let refused = stalled.pop().unwrap().read_answer(false);
    assert_eq!((refused.status, refused.code()), (503, 5001));
    assert_eq!(refused.header("Retry-After"), Some("1"));
    // The budget is spent: a whole body does not fit either, answered in each protocol's
    // words (the refused bodies are read no further, so their clients read the answer).
    let mut client = server.client();
    let mut whole = post_head("/v2/decode/upload", Some(&token), "image/png", 100_000);
    whole.extend(vec![0u8; 100_000]);
    client.send(&whole);
    let refused = client.read_answer(false);
    assert_eq!((refused.status, refused.code()), (503, 5001));
    let mut client = server.client();
    let mut form = post_head(
        "/in.php",
        None,
        "application/x-www-form-urlencoded",
        100_000,
    );
    form.extend(b"method=base64&body=");
    form.resize(form.len() + 100_000 - 19, b'A');
    client.send(&form);
    let refused = client.read_answer(false);
    assert_eq!(refused.text(), "ERROR_NO_SLOT_AVAILABLE");
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert_eq!(metric_sum(&server, "aiocr_bodies_refused_busy_total"), 3);
    // The stalled clients leave: their memory comes back, and a body of nearly the most a
    // body may be is served again.
    drop(stalled);
    drop(declared);
    wait_for_metric(&server, "aiocr_body_bytes_in_flight", 0);
    let mut padded = fixture("0001.png");
    padded.resize(90_000, 0); // trailing bytes after IEND: still the same PNG
    let mut client = server.client();
    let accepted = client.post("/v2/decode/upload", Some(&token), "image/png", &padded);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
}

#[test]
fn a_body_that_stops_arriving_gets_408() {
    let server = Server::start(
        1,
        &[
            "body_progress_timeout_ms=300",
            "body_read_timeout_ms=600000",
        ],
    );
    let token = server.demo_token();
    let mut client = server.client();
    let mut partial = post_head("/v2/decode/upload", Some(&token), "image/png", 1000);
    partial.extend([0u8; 10]);
    client.send(&partial);
    assert_eq!(client.read_answer(false).status, 408);
    assert_eq!(server.balance(&token), (1000, 0), "nothing charged");
}

/// A connection that never sends a byte is closed after `first_byte_timeout_ms`; one that
/// has made a request keeps the (much longer) keep-alive idle time.
#[test]
fn a_silent_new_connection_is_closed_after_the_first_byte_timeout() {
    let server = Server::start(1, &["first_byte_timeout_ms=200", "idle_timeout_ms=600000"]);
    let mut silent = connect_tcp(server.port);
    assert!(closed_by_server(&mut silent));
    let mut client = server.client();
    assert_eq!(client.get("/health", None).status, 200);
    thread::sleep(Duration::from_millis(600));
    assert_eq!(client.get("/health", None).status, 200);
}

/// A TCP connection to the server from `source` (any 127.x.y.z is this host's loopback).
fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&SockAddr::from(source)).unwrap();
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&SockAddr::from(server)).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

#[test]
fn one_address_cannot_take_every_connection() {
    let server = Server::start(1, &["max_connections_per_address=2"]);
    let mut held: Vec<Client> = (0..2)
        .map(|_| Client::over(connect_from("127.0.0.2", server.port)))
        .collect();
    for client in &mut held {
        assert_eq!(client.get("/health", None).status, 200);
    }
    let mut third = connect_from("127.0.0.2", server.port);
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(closed_by_server(&mut third), "the address holds its share");
    // Another address is served, and so is the first once it lets one go.
    let mut other = Client::over(connect_from("127.0.0.3", server.port));
    assert_eq!(other.get("/health", None).status, 200);
    assert_eq!(
        metric_sum(&server, "aiocr_connections_refused_address_total"),
        1
    );
    drop(held.pop());
    // The server sees the close asynchronously: try until it has (bounded).
    for _ in 0..3000 {
        let mut again = Client::over(connect_from("127.0.0.2", server.port));
        if again.try_request("GET", "/health", &[], b"").is_some() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("the address never got its connection back");
}

/// A client that sends its whole request before reading (as most HTTP libraries do) reads
/// the 413 for a body over the limit: the server reads and drops the rest instead of
/// closing on unread bytes, which would reset the connection under the client's write.
#[test]
fn a_client_still_sending_reads_its_413() {
    let server = Server::start(1, &["max_image_bytes=100000", "max_body_bytes=100000"]);
    let mut client = server.client();
    // More than the kernel's socket buffers take in on their own (about 4 MB here).
    let body_bytes = 8 * 1024 * 1024;
    let mut request = post_head("/v2/user/login", None, "application/json", body_bytes);
    request.extend(vec![b' '; body_bytes]);
    client
        .stream
        .write_all(&request)
        .expect("the whole request is sent");
    assert_eq!(client.read_answer(false).status, 413);
}
