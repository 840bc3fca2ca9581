//! The official captcha client libraries from PyPI (tests/clients/requirements.txt, installed
//! by scripts/setup.sh into tests/clients/.venv), unmodified but for the server address,
//! solving fixtures against a live aiocr: their answers must be ddddocr's, the balance they
//! read must be the ledger's, and a report through them must refund.

mod common;

use common::{manifest, Server};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Images each library solves.
const IMAGES: usize = 4;

fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    python
}

/// Runs tests/clients/solve.py; returns its lines as (first column, second column).
fn solve(
    client: &str,
    url: &str,
    key: &str,
    files: &[PathBuf],
    env: &[(&str, &Path)],
) -> Vec<(String, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/solve.py");
    let mut command = Command::new(python());
    command.arg(script).args([client, url, key]).args(files);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{client}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The first `IMAGES` fixtures and ddddocr's answers.
fn fixtures() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    manifest()
        .into_iter()
        .take(IMAGES)
        .map(|(file, old, _)| (dir.join(file), old))
        .collect()
}

fn key_of(server: &Server) -> String {
    let token = server.demo_token();
    let answer = server
        .client()
        .post_json("/v2/user/apikey", Some(&token), "{}");
    answer.json()["data"]["api_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Checks one library's run: every answer is ddddocr's, the balance is the ledger's.
fn check_run(
    client: &str,
    lines: &[(String, String)],
    fixtures: &[(PathBuf, String)],
    balance_points: i64,
) {
    for (path, expected) in fixtures {
        let path = path.display().to_string();
        let answer = lines.iter().find(|(file, _)| *file == path);
        assert_eq!(
            answer.map(|(_, text)| text.as_str()),
            Some(expected.as_str()),
            "{client}: {path}"
        );
    }
    let balance = lines.iter().find(|(name, _)| name == "balance").unwrap();
    let amount: f64 = balance.1.parse().unwrap();
    assert!(
        (amount - balance_points as f64 * 0.001).abs() < 1e-9,
        "{client}: balance {amount}, ledger {balance_points} points"
    );
    assert!(lines
        .iter()
        .any(|(name, status)| name == "reported" && status.starts_with("OK")));
}

#[test]
fn anticaptcha_capmonster_and_capsolver_libraries_over_http() {
    let server = Server::start(2, &["rate_limit_burst=1000"]);
    let key = key_of(&server);
    let url = format!("http://127.0.0.1:{}", server.port);
    let fixtures = fixtures();
    let files: Vec<PathBuf> = fixtures.iter().map(|(path, _)| path.clone()).collect();
    let mut points = 1000;
    for client in ["anticaptcha", "capmonster", "capsolver"] {
        let lines = solve(client, &url, &key, &files, &[]);
        points -= IMAGES as i64;
        check_run(client, &lines, &fixtures, points);
        if client == "anticaptcha" {
            points += 1; // its report refunded one answer
        }
        assert_eq!(server.balance(&key), (points, 0), "{client}");
    }
}
