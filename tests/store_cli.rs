//! The operator commands on the real binary and a real data directory:
//! `aiocr user add`, `aiocr points add`, `aiocr ledger verify`.

use std::path::Path;
use std::process::{Command, Output};

fn aiocr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .args(args)
        .env_remove("AIOCR_DATA")
        .output()
        .expect("run aiocr")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn user_add(data: &Path, username: &str, extra: &[&str]) -> Output {
    let data = data.to_str().unwrap();
    let mut args = vec![
        "user",
        "add",
        "--data",
        data,
        "--username",
        username,
        "--password",
        "secret-pw",
    ];
    args.extend_from_slice(extra);
    aiocr(&args)
}

fn points_add(data: &Path, username: &str, points: &str) -> Output {
    aiocr(&[
        "points",
        "add",
        "--data",
        data.to_str().unwrap(),
        "--username",
        username,
        "--points",
        points,
        "--reason",
        "test",
    ])
}

fn ledger_verify(data: &Path) -> Output {
    aiocr(&["ledger", "verify", "--data", data.to_str().unwrap()])
}

#[test]
fn users_and_points_from_the_command_line_keep_the_ledger_clean() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let refused = user_add(&data, "alice", &[]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a new directory needs --shards: {}",
        text(&refused)
    );

    assert_eq!(
        user_add(&data, "alice", &["--shards", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(
        user_add(&data, "alice", &["--shards", "17"]).status.code(),
        Some(2)
    );
    let created = user_add(
        &data,
        "alice",
        &["--points", "5", "--shards", "2", "--role", "developer"],
    );
    assert_eq!(created.status.code(), Some(0), "{}", text(&created));
    assert!(
        text(&created).contains("created user \"alice\""),
        "{}",
        text(&created)
    );
    assert!(data.join("meta.json").exists());

    let duplicate = user_add(&data, "alice", &[]);
    assert_eq!(duplicate.status.code(), Some(2));
    assert!(
        text(&duplicate).contains("already exists"),
        "{}",
        text(&duplicate)
    );
    assert_eq!(
        user_add(&data, "bob", &["--role", "king"]).status.code(),
        Some(2)
    );
    assert_eq!(
        user_add(&data, "bob", &["--shards", "3"]).status.code(),
        Some(0),
        "recorded shard count wins"
    );

    let added = points_add(&data, "alice", "10");
    assert_eq!(added.status.code(), Some(0), "{}", text(&added));
    assert!(
        text(&added).contains("points 15 reserved 0"),
        "{}",
        text(&added)
    );
    let removed = points_add(&data, "alice", "-15");
    assert!(
        text(&removed).contains("points 0 reserved 0"),
        "{}",
        text(&removed)
    );
    let overdrawn = points_add(&data, "alice", "-1");
    assert_eq!(overdrawn.status.code(), Some(2));
    assert!(
        text(&overdrawn).contains("not enough points"),
        "{}",
        text(&overdrawn)
    );
    assert_eq!(points_add(&data, "nobody", "1").status.code(), Some(2));

    let verified = ledger_verify(&data);
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified));
    assert!(
        text(&verified).contains("ledger clean: 2 shard(s), 2 user(s)"),
        "{}",
        text(&verified)
    );
}

/// A balance edited behind the store's back makes `ledger verify` exit 1 and name the user.
#[test]
fn ledger_verify_reports_a_balance_edited_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert_eq!(
        user_add(data, "carol", &["--points", "7", "--shards", "1"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(ledger_verify(data).status.code(), Some(0));
    let user_id = {
        let db = sled::open(data.join("shard-0")).unwrap();
        let balances = db.open_tree("balances").unwrap();
        let (key, value) = balances.iter().next().unwrap().unwrap();
        // The archived Balance is two little-endian i64 (points, reserved) in rkyv's
        // unaligned format: add 1 to points.
        let mut bytes = value.to_vec();
        let points = i64::from_le_bytes(bytes[0..8].try_into().unwrap());
        assert_eq!(points, 7, "layout of the archived Balance");
        bytes[0..8].copy_from_slice(&(points + 1).to_le_bytes());
        balances.insert(&key, bytes).unwrap();
        db.flush().unwrap();
        u64::from_be_bytes(key.as_ref().try_into().unwrap())
    };
    let verified = ledger_verify(data);
    assert_eq!(verified.status.code(), Some(1), "{}", text(&verified));
    assert!(
        text(&verified).contains(&format!("user {user_id}")),
        "{}",
        text(&verified)
    );
    assert!(text(&verified).contains("NOT clean"), "{}", text(&verified));
}

#[test]
fn ledger_verify_refuses_a_directory_that_is_not_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let verified = ledger_verify(dir.path());
    assert_eq!(verified.status.code(), Some(2));
    assert!(text(&verified).contains("meta.json"), "{}", text(&verified));
}

/// While another process holds a shard (as a running server does), the commands refuse.
#[test]
fn commands_refuse_a_data_directory_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert_eq!(
        user_add(data, "dave", &["--points", "1", "--shards", "1"])
            .status
            .code(),
        Some(0)
    );
    let _held = sled::open(data.join("shard-0")).unwrap();
    for output in [
        points_add(data, "dave", "1"),
        ledger_verify(data),
        user_add(data, "erin", &[]),
    ] {
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(
            text(&output).contains("in use by another process"),
            "{}",
            text(&output)
        );
    }
}

/// A stopped server's data directory with both shards created.
fn served_data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // `aiocr user add` on each shard creates both (users land by their name's hash).
    for name in ["alice", "bob", "carol", "dave"] {
        let added = user_add(&data, name, &["--shards", "2"]);
        assert!(added.status.success(), "{}", text(&added));
    }
    dir
}

fn serve_refusal(data: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--data",
        ])
        .arg(data)
        .env_remove("AIOCR_DATA")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "the server started: {}",
        text(&output)
    );
    text(&output)
}

#[test]
fn a_damaged_data_directory_is_refused_at_start_and_reported_by_verify() {
    let dir = served_data_dir();
    let data = dir.path().join("data");
    assert!(ledger_verify(&data).status.success());
    // Swapped shard directories.
    let (shard_0, shard_1, aside) = (
        data.join("shard-0"),
        data.join("shard-1"),
        data.join("aside"),
    );
    std::fs::rename(&shard_0, &aside).unwrap();
    std::fs::rename(&shard_1, &shard_0).unwrap();
    std::fs::rename(&aside, &shard_1).unwrap();
    assert!(serve_refusal(&data).contains("holds shard 1"));
    let verified = ledger_verify(&data);
    assert_eq!(verified.status.code(), Some(1), "{}", text(&verified));
    assert!(text(&verified).contains("NOT clean"));
    // Put back, then lose one.
    std::fs::rename(&shard_0, &aside).unwrap();
    std::fs::rename(&shard_1, &shard_0).unwrap();
    std::fs::rename(&aside, &shard_1).unwrap();
    assert!(ledger_verify(&data).status.success());
    std::fs::remove_dir_all(&shard_1).unwrap();
    assert!(serve_refusal(&data).contains("is missing"));
    let verified = ledger_verify(&data);
    assert_eq!(verified.status.code(), Some(1));
    assert!(
        text(&verified).contains("is missing"),
        "{}",
        text(&verified)
    );
    assert!(!shard_1.exists(), "neither command recreated it");
}
