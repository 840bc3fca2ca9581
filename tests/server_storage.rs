//! A full disk, for real: the server's data directory on a size-limited tmpfs that the test
//! fills. Writes are refused with the contract's 5004 (503, `Retry-After`), `/health` says
//! so, reads go on; once space is back the server takes uploads again without a restart; no
//! acknowledged upload is lost, balances stay right, SIGTERM exits 0 even with the disk still
//! full, and `aiocr ledger verify` is clean afterwards. And a server whose stderr cannot be
//! written (`/dev/full`, as a log file on the full disk) still stops cleanly.
//!
//! Mounting a tmpfs needs root (CAP_SYS_ADMIN), which the test machine has; without it the
//! tests fail saying so, rather than pass without testing anything.

mod common;

use common::{base64, fixture, Client, Server, BIN};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Big enough for a fresh data directory and a few hundred uploads.
const TMPFS_BYTES: u64 = 16 * 1024 * 1024;
/// Probing the disk quickly keeps the suite short (the defaults are 250 ms up to 5 s).
const FAST_PROBES: [&str; 2] = ["storage_probe_ms=20", "storage_probe_max_ms=200"];
/// Uploads tried after the disk filled before the test gives up on seeing 5004.
const MAX_UPLOADS_TO_FAIL: usize = 5_000;
/// Not a timing assertion: only keeps a broken server from hanging the suite.
const PATIENCE: Duration = Duration::from_secs(120);

/// A tmpfs of `bytes` mounted on a fresh directory; unmounted (lazily) and removed on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let path = common::fresh_data_dir("tmpfs");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs on {} failed: these tests need root (CAP_SYS_ADMIN)",
            path.display()
        );
        Tmpfs { path }
    }

    /// Writes zeros into `filler` until the file system refuses (ENOSPC).
    fn fill(&self) {
        let mut file = std::fs::File::create(self.filler()).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => {
                    assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
                    break;
                }
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn start_on(tmpfs: &Tmpfs) -> Server {
    let data_dir = tmpfs.path.join("data");
    std::fs::create_dir(&data_dir).unwrap();
    Server::start_at(data_dir, 2, &FAST_PROBES)
}

fn upload(client: &mut Client, token: &str) -> common::Answer {
    let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
    client.post_json("/v2/decode/upload-base64", Some(token), &body)
}

/// Uploads until one is refused with 5004; the ids of those acknowledged (200) meanwhile.
fn upload_until_refused(client: &mut Client, token: &str) -> (Vec<String>, common::Answer) {
    let mut acknowledged = Vec::new();
    for _ in 0..MAX_UPLOADS_TO_FAIL {
        let answer = upload(client, token);
        match answer.status {
            200 => acknowledged.push(answer.json()["data"]["id"].as_str().unwrap().to_string()),
            503 if answer.code() == 5004 => return (acknowledged, answer),
            // The recognition queue may be full for a moment: busy, nothing charged.
            503 if answer.code() == 5001 => {}
            _ => panic!("unexpected answer {}: {}", answer.status, answer.text()),
        }
    }
    panic!("{MAX_UPLOADS_TO_FAIL} uploads on a full disk and none refused with 5004");
}

/// Polls `/health` until it answers `status` (bounded by `PATIENCE`).
fn wait_for_health(server: &Server, status: u16) -> common::Answer {
    let began = Instant::now();
    loop {
        let answer = server.client().get("/health", None);
        if answer.status == status {
            return answer;
        }
        assert!(
            began.elapsed() < PATIENCE,
            "/health never answered {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each acknowledged upload, once finished: `done` (charged) or `failed` (refunded). Returns
/// how many are done.
fn count_done(server: &Server, token: &str, ids: &[String]) -> i64 {
    let mut client = server.client();
    let mut done = 0;
    for id in ids {
        let record = common::poll_until_finished(&mut client, token, id);
        match record["status"].as_str().unwrap() {
            "done" => done += 1,
            "failed" => {}
            other => panic!("upload {id}: {other}"),
        }
    }
    done
}

/// Whether `/metrics` shows `value` for `name` on either shard.
fn any_shard(metrics: &str, name: &str, value: &str) -> bool {
    (0..2).any(|shard| metrics.contains(&format!("{name}{{shard=\"{shard}\"}} {value}\n")))
}

const GRANT: i64 = 100_000;

/// demo's token, after a grant large enough for every upload the test makes.
fn demo_with_points(server: &Server) -> String {
    let admin = server.admin_token();
    let grant = json!({ "username": "demo", "points": GRANT, "reason": "disk full test" });
    let answer = server
        .client()
        .post_json("/v2/admin/points", Some(&admin), &grant.to_string());
    assert_eq!(answer.status, 200, "{}", answer.text());
    server.demo_token()
}

#[test]
fn a_full_disk_is_5004_and_uploads_work_again_once_space_is_back_without_a_restart() {
    let tmpfs = Tmpfs::mount(TMPFS_BYTES);
    let mut server = start_on(&tmpfs);
    let token = demo_with_points(&server);
    let mut client = server.client();
    let mut acknowledged: Vec<String> = (0..5)
        .map(|_| {
            upload(&mut client, &token).json()["data"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();

    tmpfs.fill();
    let (during, refused) = upload_until_refused(&mut client, &token);
    acknowledged.extend(during);
    assert!(refused.header("Retry-After").is_some());
    assert!(refused.json()["msg"]
        .as_str()
        .unwrap()
        .contains("storage unavailable"));
    let health = wait_for_health(&server, 503);
    assert_eq!(health.code(), 5004, "{}", health.text());
    assert!(health.header("Retry-After").is_some());
    assert!(health.text().contains("No space left"), "{}", health.text());
    let servers = server.client().get("/v2/servers", None).json();
    assert_eq!(servers["data"]["servers"][0]["status"], "degraded");
    assert!(any_shard(&server.metrics(), "aiocr_storage_failed", "1"));
    // Writes stay refused before they start (nothing charged); reads are answered.
    let again = upload(&mut client, &token);
    assert_eq!(
        (again.status, again.code()),
        (503, 5004),
        "{}",
        again.text()
    );
    let admin = server.admin_token();
    let grant = json!({ "username": "demo", "points": 1, "reason": "while full" }).to_string();
    let refused_grant = client.post_json("/v2/admin/points", Some(&admin), &grant);
    assert_eq!(refused_grant.code(), 5004, "{}", refused_grant.text());
    assert_eq!(client.get("/v2/user/point", Some(&token)).status, 200);

    tmpfs.free();
    wait_for_health(&server, 200);
    let body = json!({ "file": base64(&fixture("0001.png")) }).to_string();
    let after = client.post_json(
        "/v2/decode/upload-base64?wait=1&timeout_ms=30000",
        Some(&token),
        &body,
    );
    assert_eq!(after.json()["data"]["status"], "done", "{}", after.text());
    acknowledged.push(after.json()["data"]["id"].as_str().unwrap().to_string());
    let metrics = server.metrics();
    assert!(!any_shard(&metrics, "aiocr_storage_failed", "1"));
    assert!(any_shard(&metrics, "aiocr_storage_recoveries_total", "1"));

    // No acknowledged upload is lost; each is charged only if done.
    let done = count_done(&server, &token, &acknowledged);
    assert!(done > 0);
    assert_eq!(server.balance(&token), (1000 + GRANT - done, 0));
    assert_eq!(server.terminate(), 0);
    let (code, report) = common::ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn sigterm_with_the_disk_still_full_exits_0_and_the_next_start_has_every_acknowledged_upload() {
    let tmpfs = Tmpfs::mount(TMPFS_BYTES);
    let mut server = start_on(&tmpfs);
    let token = demo_with_points(&server);
    let mut client = server.client();
    tmpfs.fill();
    let (acknowledged, _) = upload_until_refused(&mut client, &token);
    drop(client);
    assert_eq!(
        server.terminate(),
        0,
        "a full disk is no reason to fail the stop"
    );
    server.wait_for_log("stopped cleanly");

    tmpfs.free();
    let (code, report) = common::ledger_verify(&server.data_dir);
    assert_eq!(code, 0, "{report}");
    let server = server.restart();
    let done = count_done(&server, &token, &acknowledged);
    assert_eq!(server.balance(&token), (1000 + GRANT - done, 0));
}

#[test]
fn a_server_whose_log_cannot_be_written_serves_and_stops_cleanly() {
    let data_dir = common::fresh_data_dir("devfull");
    // /dev/full fails every write with ENOSPC: stderr as a log file on a full disk.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--data",
        ])
        .arg(&data_dir)
        .arg("--model-dir")
        .arg(common::model_dir())
        .env_remove("AIOCR_LISTEN")
        .stdout(Stdio::piped())
        .stderr(full)
        .spawn()
        .unwrap();
    let port = listening_port(child.stdout.take().unwrap());
    // Log lines: a SIGHUP without TLS is logged by the signal thread, SIGTERM's stop by it
    // and by every shard.
    let mut client = Client::connect(port);
    assert_eq!(client.get("/health", None).status, 200);
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    assert_eq!(client.get("/health", None).status, 200);
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("SIGTERM did not stop a server whose stderr cannot be written");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// The port the server announces; the rest of its stdout is read (and dropped) meanwhile.
fn listening_port(stdout: std::process::ChildStdout) -> u16 {
    let (port_tx, port_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
                let _ = port_tx.send(port);
            }
        }
    });
    port_rx
        .recv_timeout(PATIENCE)
        .expect("the server exited before listening")
}
