//! Micro-benchmarks of aiocr's hot pieces: `cargo bench --bench micro` (snowflake id, JWT
//! verify, request parse, base64 decode of a 6 KB image, preprocessing of a 160x60 PNG, ledger
//! reserve+post with and without fsync).
//! Run them before and after a change on the same machine; compare ratios, not absolutes.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

use aiocr::auth::{issue_token, verify_token, Keys};
use aiocr::engine::model::load_spec;
use aiocr::engine::preprocess::{preprocess, StageNanos};
use aiocr::engine::ImageLimits;
use aiocr::http::request::{parse_head, HeadLimits};
use aiocr::store::{NewUpload, Outcome, Role, ShardStore};

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

fn request_parse(c: &mut Criterion) {
    let request = b"GET /v2/user/point HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\n\
Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.x\r\nAccept: */*\r\n\r\n";
    let limits = HeadLimits {
        max_header_bytes: 16 * 1024,
        max_uri_bytes: 4096,
        max_body_bytes: 1 << 20,
    };
    c.bench_function("parse a GET /v2/user/point request head", |b| {
        b.iter(|| parse_head(black_box(request), &limits).unwrap().unwrap())
    });
}

fn jwt_verify(c: &mut Criterion) {
    let keys = Keys::from_secret(b"a benchmark secret of at least thirty-two bytes").unwrap();
    let (token, _) = issue_token(&keys, 118_284_923_604_828_160, Role::User, 0, 3600).unwrap();
    c.bench_function("JWT HS256 verify", |b| {
        b.iter(|| verify_token(&keys, black_box(&token)).unwrap())
    });
}

/// A shard store on disk in a fresh temporary directory, with one user holding `points`.
fn store_with_user(points: i64) -> (tempfile::TempDir, ShardStore, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ShardStore::open(dir.path(), 0, 1, 0).unwrap();
    let user = store
        .create_user(
            "bench",
            "not-a-hash",
            Role::User,
            points,
            aiocr::clock::unix_now_ms(),
        )
        .unwrap();
    (dir, store, user)
}

fn snowflake_id(c: &mut Criterion) {
    let (_dir, mut store, _) = store_with_user(0);
    c.bench_function("snowflake id (shard store)", |b| {
        b.iter(|| store.next_id().unwrap())
    });
}

fn reserve_and_post(store: &mut ShardStore, user: u64) {
    let upload = NewUpload {
        cost: 1,
        model: "old".into(),
        soft_id: None,
        image_hash: [7; 16],
        now_ms: 1_795_000_000_000,
    };
    let record = store.accept_upload(user, upload).unwrap();
    let done = Outcome::Done {
        text: "ab12".into(),
        confidence: f32::NAN,
        cache_hit: false,
    };
    store
        .finish_upload(record.id, done, aiocr::clock::unix_now_ms())
        .unwrap();
}

fn ledger(c: &mut Criterion) {
    let (_dir, mut store, user) = store_with_user(i64::MAX / 4);
    c.bench_function("ledger reserve + post, no fsync", |b| {
        b.iter(|| reserve_and_post(&mut store, user))
    });
    let flusher = store.flusher();
    let mut group = c.benchmark_group("fsync");
    group.sample_size(20);
    group.bench_function("ledger reserve + post + fsync", |b| {
        b.iter(|| {
            reserve_and_post(&mut store, user);
            flusher.flush().unwrap()
        })
    });
    group.finish();
}

criterion_group!(engine, base64_decode, preprocessing);
criterion_group!(server, request_parse, jwt_verify, snowflake_id, ledger);
criterion_main!(engine, server);
