//! The TLS listener of the real server, with a real rustls client and certificates the test
//! makes (a test CA and server certificates for localhost and 127.0.0.1): the API over TLS
//! with keep-alive and pipelining, the handshake deadline, plain HTTP on the TLS port, the
//! request timeouts over TLS, SIGTERM's drain, SIGHUP's certificate reload, and refused
//! configurations.

mod common;

use common::{connect_tcp, fixture, manifest, multipart, Client, Server};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A test certificate authority and the files of the server certificates it issues.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    der: CertificateDer<'static>,
    dir: PathBuf,
}

/// A server certificate's DER (to recognise it on a connection) and its PEM files.
struct ServerCert {
    der: Vec<u8>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl TestCa {
    fn new(tag: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "aiocr test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            der: certificate.der().clone(),
            dir: common::fresh_data_dir(tag),
        }
    }

    /// A new certificate (and key) for localhost and 127.0.0.1, written as `NAME.pem` and
    /// `NAME.key` in the CA's directory.
    fn issue(&self, name: &str) -> ServerCert {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, certificate.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        ServerCert {
            der: certificate.der().to_vec(),
            cert_path,
            key_path,
        }
    }

    /// A client configuration that trusts only this CA and offers HTTP/1.1 (ALPN).
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A TLS connection to `port` with its handshake done.
    fn connect(&self, port: u16) -> TlsStream {
        let name = ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(self.client_config(), name).unwrap();
        let mut stream = rustls::StreamOwned::new(connection, connect_tcp(port));
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        stream
    }

    /// A connection whose handshake stops half way: the client sent its hello and read the
    /// server's answer (so the server accepted it and waits in the handshake), and never sends
    /// its Finished.
    fn half_handshake(&self, port: u16) -> TcpStream {
        let name = ServerName::try_from("localhost").unwrap();
        let mut connection = rustls::ClientConnection::new(self.client_config(), name).unwrap();
        let mut socket = connect_tcp(port);
        connection.write_tls(&mut socket).unwrap();
        while !connection.wants_write() {
            connection.read_tls(&mut socket).unwrap();
            connection.process_new_packets().unwrap();
        }
        // The client holds its Finished (queued, never written): in TLS 1.3 it counts its own
        // side as done, but the server still waits for it.
        assert!(connection.wants_write());
        socket
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The settings that turn TLS on with `cert`, on a free port.
fn tls_settings(cert: &ServerCert) -> Vec<String> {
    vec![
        "tls_listen=127.0.0.1:0".to_string(),
        format!("tls_cert={}", cert.cert_path.display()),
        format!("tls_key={}", cert.key_path.display()),
    ]
}

fn start(shards: u16, settings: &[String]) -> Server {
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let server = Server::start(shards, &settings);
    assert_ne!(server.tls_port, 0, "the server announced its TLS port");
    server
}

/// The certificate the server presented on `stream`.
fn presented(stream: &TlsStream) -> Vec<u8> {
    stream.conn.peer_certificates().unwrap()[0].to_vec()
}

fn login_body(password: &str) -> String {
    format!(r#"{{"username":"demo","password":"{password}"}}"#)
}

/// `aiocr_tls_handshakes_failed_total`, summed over the shards.
fn failed_handshakes(server: &Server) -> u64 {
    server
        .metrics()
        .lines()
        .filter(|line| line.starts_with("aiocr_tls_handshakes_failed_total{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Reads until the server closes the connection; returns what came before.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return received,
            Ok(count) => received.extend_from_slice(&chunk[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(error) => panic!("the server did not close the connection: {error}"),
        }
    }
}

#[test]
fn the_api_over_tls_with_keep_alive_and_pipelining() {
    let ca = TestCa::new("tls-api");
    let cert = ca.issue("server");
    let server = start(2, &tls_settings(&cert));
    let stream = ca.connect(server.tls_port);
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(presented(&stream), cert.der);
    let mut client = Client::over(stream);

    // Login, balance and a recognised upload on one keep-alive connection.
    let login = client.post_json("/v2/user/login", None, &login_body(&server.demo_password));
    assert_eq!(login.status, 200, "{}", login.text());
    assert_eq!(login.header("Connection"), Some("keep-alive"));
    let token = login.json()["data"]["token"].as_str().unwrap().to_string();
    let point = client.get("/v2/user/point", Some(&token));
    assert_eq!(point.json()["data"]["points"], 1000);
    let (file, expected, _) = manifest().remove(0);
    let (content_type, body) = multipart("file", &fixture(&file), &[]);
    let upload = client.post(
        "/v2/decode/upload?wait=1&timeout_ms=30000",
        Some(&token),
        &content_type,
        &body,
    );
    assert_eq!(upload.status, 200, "{}", upload.text());
    assert_eq!(upload.json()["data"]["status"], "done");
    assert_eq!(upload.json()["data"]["result"], expected.as_str());

    // Pipelined: three requests in one write, three answers in order.
    let auth = format!("Authorization: Bearer {token}\r\n");
    let mut batch = Vec::new();
    batch.extend(format!("GET /v2/user/point HTTP/1.1\r\nHost: t\r\n{auth}\r\n").bytes());
    batch.extend(b"GET /no/such/route HTTP/1.1\r\nHost: t\r\n\r\n");
    batch.extend(format!("HEAD /v2/user/point HTTP/1.1\r\nHost: t\r\n{auth}\r\n").bytes());
    client.send(&batch);
    let first = client.read_answer(false);
    let second = client.read_answer(false);
    let third = client.read_answer(true);
    assert_eq!((first.status, second.status, third.status), (200, 404, 200));
    assert_eq!(first.json()["data"]["points"], 999);
    assert_eq!(
        third.header("Content-Length"),
        first.header("Content-Length")
    );

    // 100-continue: the body is invited before it is sent.
    let body = login_body(&server.demo_password);
    client.send(
        format!(
            "POST /v2/user/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(client.read_answer(false).status, 100);
    client.send(body.as_bytes());
    assert_eq!(client.read_answer(false).status, 200);

    // The plain listener serves the same API beside it.
    assert_eq!(server.balance(&token), (999, 0));
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_dropped_at_the_deadline() {
    let ca = TestCa::new("tls-handshake");
    let cert = ca.issue("server");
    let mut settings = tls_settings(&cert);
    // Long idle and header timeouts: only the handshake's deadline can end these.
    settings.extend([
        "tls_handshake_timeout_ms=300".to_string(),
        "idle_timeout_ms=600000".to_string(),
        "header_read_timeout_ms=600000".to_string(),
    ]);
    let server = start(1, &settings);
    // Silent after connecting.
    let mut silent = connect_tcp(server.tls_port);
    read_to_close(&mut silent);
    // Half a ClientHello: a record header announcing 200 bytes, then nothing (the deadline
    // spans the handshake's reads, not each read).
    let mut partial = connect_tcp(server.tls_port);
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01])
        .unwrap();
    read_to_close(&mut partial);
    // The client's hello and the server's answer, then no Finished.
    let mut half = ca.half_handshake(server.tls_port);
    read_to_close(&mut half);
    assert_eq!(failed_handshakes(&server), 3);
    // The listener still works.
    let mut client = Client::over(ca.connect(server.tls_port));
    assert_eq!(client.get("/health", None).status, 200);
}

#[test]
fn plain_http_on_the_tls_port_is_refused_and_the_connection_closed() {
    let ca = TestCa::new("tls-plain");
    let cert = ca.issue("server");
    let server = start(1, &tls_settings(&cert));
    let mut plain = connect_tcp(server.tls_port);
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let received = read_to_close(&mut plain);
    // At most a TLS alert record (content type 21), never an HTTP answer.
    assert!(
        received.is_empty() || received[0] == 21,
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(failed_handshakes(&server), 1);
    let mut client = Client::over(ca.connect(server.tls_port));
    assert_eq!(client.get("/health", None).status, 200);
}

#[test]
fn request_timeouts_hold_over_tls() {
    let ca = TestCa::new("tls-timeouts");
    let cert = ca.issue("server");
    let mut settings = tls_settings(&cert);
    settings.extend([
        "header_read_timeout_ms=300".to_string(),
        "body_read_timeout_ms=300".to_string(),
    ]);
    let server = start(1, &settings);
    // A head that never completes: 408, then the connection closes.
    let mut client = Client::over(ca.connect(server.tls_port));
    client.send(b"GET /health HTTP/1.1\r\nHost: t\r\n");
    let answer = client.read_answer(false);
    assert_eq!(answer.status, 408);
    assert!(client.is_closed());
    // A body that never completes: 408 too.
    let mut client = Client::over(ca.connect(server.tls_port));
    client.send(b"POST /v2/user/login HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{\"user");
    assert_eq!(client.read_answer(false).status, 408);
    assert!(client.is_closed());
}

#[test]
fn sigterm_closes_idle_tls_connections_with_close_notify() {
    let ca = TestCa::new("tls-drain");
    let cert = ca.issue("server");
    let mut settings = tls_settings(&cert);
    // Nothing but the drain can end these connections before the test does.
    settings.extend([
        "drain_timeout_ms=600000".to_string(),
        "idle_timeout_ms=600000".to_string(),
        "tls_handshake_timeout_ms=600000".to_string(),
    ]);
    let mut server = start(1, &settings);
    let mut idle = Client::over(ca.connect(server.tls_port));
    assert_eq!(idle.get("/health", None).status, 200);
    let mut handshaking = ca.half_handshake(server.tls_port);
    assert_eq!(server.terminate(), 0);
    // The connection task closed the idle one itself: a TLS close_notify (a clean end of
    // stream for the client), not a socket torn down by the exiting process.
    let mut byte = [0u8; 1];
    assert_eq!(idle.stream.read(&mut byte).unwrap(), 0);
    read_to_close(&mut handshaking);
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_and_keeps_it_when_the_new_one_is_broken() {
    let ca = TestCa::new("tls-reload");
    let first = ca.issue("server");
    let server = start(2, &tls_settings(&first));
    let mut before = Client::over(ca.connect(server.tls_port));
    assert_eq!(presented(&before.stream), first.der);

    // A new certificate and key in the same files.
    let second = ca.issue("next");
    std::fs::copy(&second.cert_path, &first.cert_path).unwrap();
    std::fs::copy(&second.key_path, &first.key_path).unwrap();
    server.signal(libc::SIGHUP);
    let line = server.wait_for_log("SIGHUP: TLS certificate");
    assert!(
        line.contains("reloaded") && line.contains("(2 of 2 shard(s))"),
        "{line}"
    );
    for _ in 0..4 {
        // Several connections, so that both shards are asked (the kernel picks the shard).
        let stream = ca.connect(server.tls_port);
        assert_eq!(presented(&stream), second.der);
    }
    // The connection made before the reload keeps its session.
    assert_eq!(before.get("/health", None).status, 200);

    // A broken certificate file: logged, and the current certificate stays.
    std::fs::write(&first.cert_path, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    server.signal(libc::SIGHUP);
    let line = server.wait_for_log("SIGHUP: TLS certificate");
    assert!(
        line.contains("not reloaded, keeping the current one"),
        "{line}"
    );
    for _ in 0..4 {
        let mut client = Client::over(ca.connect(server.tls_port));
        assert_eq!(presented(&client.stream), second.der);
        assert_eq!(client.get("/health", None).status, 200);
    }
}

/// `aiocr serve` with `settings` on a fresh data directory, expected to refuse to start:
/// (exit code, stderr).
fn refused_start(settings: &[String]) -> (i32, String) {
    let data_dir = common::fresh_data_dir("tls-refused");
    let mut command = std::process::Command::new(common::BIN);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--data",
        ])
        .arg(&data_dir);
    for setting in settings {
        command.args(["--set", setting]);
    }
    let output = command.output().unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn a_bad_tls_configuration_refuses_to_start_with_a_clear_message() {
    let ca = TestCa::new("tls-config");
    let cert = ca.issue("server");
    let settings = tls_settings(&cert);
    // A certificate without a key.
    let (code, stderr) = refused_start(&settings[..2]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("tls_listen, tls_cert and tls_key"),
        "{stderr}"
    );
    // A certificate file that cannot be read.
    let missing = ca.dir.join("missing.pem");
    let mut unreadable = settings.clone();
    unreadable[1] = format!("tls_cert={}", missing.display());
    let (code, stderr) = refused_start(&unreadable);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    // Another certificate's key.
    let other = ca.issue("other");
    let mut mismatched = settings.clone();
    mismatched[2] = format!("tls_key={}", other.key_path.display());
    let (code, stderr) = refused_start(&mismatched);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("with tls_key"), "{stderr}");
    // A key file that is not PEM.
    let garbage = ca.dir.join("garbage.key");
    std::fs::write(&garbage, "not a key").unwrap();
    let mut not_pem = settings;
    not_pem[2] = format!("tls_key={}", garbage.display());
    let (code, stderr) = refused_start(&not_pem);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("garbage.key"), "{stderr}");
    assert!(Path::new(&cert.cert_path).exists());
}

#[test]
fn the_connection_cap_counts_tls_connections() {
    let ca = TestCa::new("tls-cap");
    let cert = ca.issue("server");
    let mut settings = tls_settings(&cert);
    // Only the cap can end the second connection before the test does.
    settings.extend([
        "max_connections_per_shard=1".to_string(),
        "tls_handshake_timeout_ms=600000".to_string(),
    ]);
    let server = start(1, &settings);
    let mut first = Client::over(ca.connect(server.tls_port));
    assert_eq!(first.get("/health", None).status, 200);
    // The shard is at its cap: the next connection, TLS or plain, is closed at once.
    let mut second = connect_tcp(server.tls_port);
    assert!(read_to_close(&mut second).is_empty());
    let mut plain = connect_tcp(server.port);
    assert!(read_to_close(&mut plain).is_empty());
    assert_eq!(first.get("/health", None).status, 200);
}

#[test]
fn mcp_over_tls() {
    let ca = TestCa::new("tls-mcp");
    let cert = ca.issue("server");
    let server = start(1, &tls_settings(&cert));
    let mut client = Client::over(ca.connect(server.tls_port));
    let auth = format!("Bearer {}", server.demo_token());
    let json = ("Content-Type", "application/json");
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#;
    let headers = [("Authorization", auth.as_str()), json];
    let answer = client.request("POST", "/mcp", &headers, initialize.as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text());
    let session = answer.header("Mcp-Session-Id").unwrap().to_string();
    let balance = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"balance"}}"#;
    let headers = [
        ("Authorization", auth.as_str()),
        json,
        ("Mcp-Session-Id", session.as_str()),
    ];
    let answer = client.request("POST", "/mcp", &headers, balance.as_bytes());
    assert_eq!(answer.json()["result"]["structuredContent"]["points"], 1000);
}
