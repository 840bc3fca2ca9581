//! Shared by the unit tests: where the models and the labelled fixtures are.

use std::path::{Path, PathBuf};

/// `AIOCR_MODEL_DIR`, else the project's `models/` (where scripts/setup.sh puts them).
pub fn model_dir() -> PathBuf {
    std::env::var_os("AIOCR_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// One fixture: its bytes and what ddddocr 1.6.1 read (default model, beta).
pub struct Fixture {
    pub image: Vec<u8>,
    pub ddddocr_old: String,
    pub ddddocr_beta: String,
}

/// Every fixture of `tests/fixtures/captcha/manifest.tsv`, in manifest order.
pub fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest");
    manifest
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Fixture {
                image: std::fs::read(dir.join(cols[0])).expect("fixture image"),
                ddddocr_old: cols[4].to_string(),
                ddddocr_beta: cols[5].to_string(),
            }
        })
        .collect()
}
