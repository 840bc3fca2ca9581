//! The web console in headless Chromium (tests/browser/console.test.mjs, run by Node's test
//! runner with playwright-core from tests/browser/node_modules, both installed by
//! scripts/setup.sh) against a live aiocr: sign in, balance, API key, a fixture solved with
//! ddddocr's answer, the usage chart, an admin's grant seen by the user, sign out.
//!
//! Screenshots go to target/console-screenshots; `AIOCR_SCREENSHOTS=$PWD/docs/console`
//! refreshes the committed ones.

mod common;

use common::Server;
use std::path::Path;
use std::process::Command;

#[test]
fn a_user_and_an_admin_use_the_console_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "{}/node_modules is missing: run scripts/setup.sh",
        dir.display()
    );
    let server = Server::start(2, &[]);
    let status = Command::new("node")
        .args(["--test", "--test-reporter=spec", "console.test.mjs"])
        .current_dir(&dir)
        .env("AIOCR_URL", format!("http://127.0.0.1:{}", server.port))
        .env("AIOCR_DEMO_PASSWORD", &server.demo_password)
        .env("AIOCR_ADMIN_PASSWORD", &server.admin_password)
        .status()
        .expect("run node (Node.js 20 or later)");
    assert!(status.success(), "the browser tests failed: {status}");
}
