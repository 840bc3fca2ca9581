//! Micro-benchmarks of aiocr's hot pieces: `cargo bench --bench micro`.
//! Run them before and after a change on the same machine; compare ratios, not absolutes.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

use aiocr::engine::model::load_spec;
use aiocr::engine::preprocess::{preprocess, StageNanos};
use aiocr::engine::ImageLimits;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/captcha")
            .join(name),
    )
    .unwrap()
}

fn model_dir() -> PathBuf {
    std::env::var_os("AIOCR_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// A 160x60 PNG from the fixtures (the `captcha` library's default size).
const PNG_160X60: &str = "0054.png";

fn base64_decode(c: &mut Criterion) {
    // ~6 KB of image, as uploads carry it.
    let image: Vec<u8> = fixture(PNG_160X60)
        .iter()
        .cycle()
        .take(6 * 1024)
        .copied()
        .collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&image);
    c.bench_function("base64 decode 6 KB image", |b| {
        b.iter(|| {
            base64::engine::general_purpose::STANDARD
                .decode(black_box(&encoded))
                .unwrap()
        })
    });
}

fn preprocessing(c: &mut Criterion) {
    let png = fixture(PNG_160X60);
    let spec = load_spec(&model_dir(), "old").expect("models installed by scripts/setup.sh");
    let limits = ImageLimits::default();
    c.bench_function("preprocess 160x60 PNG (decode, resize, gray)", |b| {
        b.iter(|| {
            let mut times = StageNanos::default();
            preprocess(black_box(&png), &spec, false, &limits, &mut times).unwrap()
        })
    });
}

criterion_group!(engine, base64_decode, preprocessing);
criterion_main!(engine);
