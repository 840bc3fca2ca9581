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

/// The first click captcha of `tests/fixtures/ddddocr-more/det` and ddddocr's boxes (JSON).
pub fn click_fixture() -> (Vec<u8>, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddddocr-more/det");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).expect("det manifest");
    let row: Vec<&str> = manifest
        .lines()
        .nth(1)
        .expect("a row")
        .split('\t')
        .collect();
    (
        std::fs::read(dir.join(row[0])).expect("image"),
        row[5].to_string(),
    )
}

/// The first slide pair of `tests/fixtures/ddddocr-more/slide` and its mode.
pub fn slide_fixture() -> (Vec<u8>, Vec<u8>, crate::engine::SlideMode) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ddddocr-more/slide");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).expect("slide manifest");
    let row: Vec<&str> = manifest
        .lines()
        .nth(1)
        .expect("a row")
        .split('\t')
        .collect();
    let mode = match row[0] {
        "match" => crate::engine::SlideMode::Match,
        "match_simple" => crate::engine::SlideMode::Simple,
        _ => crate::engine::SlideMode::Comparison,
    };
    let read = |name: &str| std::fs::read(dir.join(name)).expect("image");
    (read(row[1]), read(row[2]), mode)
}
