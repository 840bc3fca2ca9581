//! `kill -9` of a process in the middle of writing uploads: every upload it acknowledged (after
//! a flush covered it, which is what the server's 200 means) is there after reopening, with
//! its reservation, and the ledger replays exactly.
//!
//! This file is both halves of the test (`harness = false` in Cargo.toml): run by `cargo
//! test`, `main` is the parent; it starts this same executable again with
//! `AIOCR_STORE_CRASH_CHILD_DIR` set, and in that process `main` is the child, which writes
//! and acknowledges uploads until it is killed.

use aiocr::store::{verify_ledger, NewUpload, Outcome, Role, ShardStore};
use std::io::{BufRead, Write};
use std::path::Path;

const CHILD_DIR_ENV: &str = "AIOCR_STORE_CRASH_CHILD_DIR";
const CRASH_USER: &str = "crashuser";
const START_POINTS: i64 = 1_000_000;
const ACKS_BEFORE_KILL: usize = 400;
const NODE: u16 = 1;

fn main() {
    match std::env::var(CHILD_DIR_ENV) {
        Ok(dir) => accept_until_killed(Path::new(&dir)),
        Err(_) => {
            acknowledged_reservations_survive_kill_9();
            println!("test acknowledged_reservations_survive_kill_9 ... ok");
        }
    }
}

fn upload(now_ms: u64) -> NewUpload {
    NewUpload {
        cost: 1,
        model: "old".into(),
        soft_id: None,
        image_hash: [9; 16],
        now_ms,
    }
}

/// The child: accepts uploads in batches of 8 (posting every other one), flushes, then prints
/// `ack <upload id>` for each; forever.
fn accept_until_killed(dir: &Path) {
    let mut store = ShardStore::open(dir, 0, 1, NODE).unwrap();
    let user_id = store.user_by_name(CRASH_USER).unwrap().unwrap().id;
    let flusher = store.flusher();
    let mut stdout = std::io::stdout();
    loop {
        let batch: Vec<u64> = (0..8)
            .map(|index| {
                let now_ms = aiocr::clock::unix_now_ms();
                let record = store.accept_upload(user_id, upload(now_ms)).unwrap();
                if index % 2 == 0 {
                    let done = Outcome::Done {
                        text: "x".into(),
                        confidence: 0.9,
                        cache_hit: false,
                    };
                    store.finish_upload(record.id, done, now_ms).unwrap();
                }
                record.id
            })
            .collect();
        flusher.flush().unwrap();
        for upload_id in batch {
            writeln!(stdout, "ack {upload_id}").unwrap();
        }
        stdout.flush().unwrap();
    }
}

fn acknowledged_reservations_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = ShardStore::open(dir.path(), 0, 1, NODE).unwrap();
        let now_ms = aiocr::clock::unix_now_ms();
        store
            .create_user(CRASH_USER, "h", Role::User, START_POINTS, now_ms)
            .unwrap();
        store.flusher().flush().unwrap();
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(id) = line.unwrap().strip_prefix("ack ") {
            acknowledged.push(id.parse::<u64>().unwrap());
            if acknowledged.len() == ACKS_BEFORE_KILL {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-write
    child.wait().unwrap();
    assert_eq!(
        acknowledged.len(),
        ACKS_BEFORE_KILL,
        "the child stopped early"
    );

    let store = ShardStore::open(dir.path(), 0, 1, NODE).unwrap();
    let user_id = store.user_by_name(CRASH_USER).unwrap().unwrap().id;
    for upload_id in &acknowledged {
        assert!(
            store.upload(user_id, *upload_id).unwrap().is_some(),
            "acknowledged upload {upload_id} lost"
        );
    }
    let pending = store.pending_uploads().unwrap().len() as i64;
    let balance = store.balance(user_id).unwrap();
    assert_eq!(
        balance.reserved, pending,
        "every pending upload holds exactly its reservation"
    );
    assert!(
        balance.points <= START_POINTS - ACKS_BEFORE_KILL as i64 / 2,
        "posted acknowledged uploads stay spent"
    );
    drop(store);
    let report = verify_ledger(dir.path()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}
