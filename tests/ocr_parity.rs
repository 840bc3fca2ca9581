//! `aiocr ocr` against ddddocr 1.6.1's own answers for every fixture image, with both models:
//! identical strings, no tolerance (the captcha set, the zoo of 18 encodings, and the formats set
//! of the rarer encodings). Also the command's error lines and exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{huge_png_header, manifest, model_dir, scratch_dir};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha")
}

/// The manifest, checked to hold the whole fixture set.
fn full_manifest() -> Vec<(String, String, String)> {
    let rows = manifest();
    assert_eq!(rows.len(), 240, "the fixture set has 240 images");
    rows
}

fn aiocr_ocr(args: &[&str], files: &[PathBuf]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .arg("ocr")
        .args(args)
        .args(files)
        .env("AIOCR_MODEL_DIR", model_dir())
        .output()
        .expect("run aiocr");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).expect("utf-8 output"),
    )
}

/// A fixture set's manifest (file, ddddocr_old, ddddocr_beta, note), checked to hold all
/// `count` images.
fn set_manifest(dir: &Path, count: usize) -> Vec<(String, String, String)> {
    let rows: Vec<(String, String, String)> = std::fs::read_to_string(dir.join("manifest.tsv"))
        .expect("fixture set manifest")
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols[0].into(), cols[1].into(), cols[2].into())
        })
        .collect();
    assert_eq!(rows.len(), count, "{} holds {count} images", dir.display());
    rows
}

fn zoo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zoo")
}

fn zoo_manifest() -> Vec<(String, String, String)> {
    set_manifest(&zoo(), 216)
}

/// Encodings Pillow reads that no other set proves (tests/fixtures/formats/make.py).
fn formats() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats")
}

fn formats_manifest() -> Vec<(String, String, String)> {
    set_manifest(&formats(), FORMATS_COUNT)
}

/// Images in tests/fixtures/formats: 4 per encoding (30 PNG, 5 JPEG, 14 BMP, 7 GIF, 5 WebP).
const FORMATS_COUNT: usize = 244;

fn check_model(model: &str, expected: impl Fn(&(String, String, String)) -> &String) {
    check_set(&fixtures(), full_manifest(), model, expected);
}

/// Every image of a fixture set in one `aiocr ocr` run; every answer must be ddddocr's.
fn check_set(
    dir: &Path,
    rows: Vec<(String, String, String)>,
    model: &str,
    expected: impl Fn(&(String, String, String)) -> &String,
) {
    let files: Vec<PathBuf> = rows.iter().map(|r| dir.join(&r.0)).collect();
    let (code, stdout) = aiocr_ocr(&["--model", model], &files);
    assert_eq!(code, 0, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), rows.len());
    let mismatches: Vec<String> = rows
        .iter()
        .zip(&lines)
        .filter_map(|(row, line)| {
            let text = line.split('\t').nth(1).unwrap_or("");
            (text != expected(row))
                .then(|| format!("{}: ddddocr {:?}, aiocr {:?}", row.0, expected(row), text))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} differ:\n{}",
        mismatches.len(),
        rows.len(),
        mismatches.join("\n")
    );
}

#[test]
fn default_model_answers_exactly_as_ddddocr() {
    check_model("old", |row| &row.1);
}

#[test]
fn beta_model_answers_exactly_as_ddddocr() {
    check_model("beta", |row| &row.2);
}

/// The zoo holds every encoding (16-bit gray PNG, palettes with tRNS, LA, 1-bit, progressive
/// and gray JPEG, animated GIF, 8-bit BMP, ...) of captchas from three other generators.
#[test]
fn zoo_default_model_answers_exactly_as_ddddocr() {
    check_set(&zoo(), zoo_manifest(), "old", |row| &row.1);
}

#[test]
fn zoo_beta_model_answers_exactly_as_ddddocr() {
    check_set(&zoo(), zoo_manifest(), "beta", |row| &row.2);
}

/// PNG at every bit depth and colour type (16-bit colour, 1/2/4-bit gray and palettes, tRNS,
/// gAMA/sBIT/cHRM, Adam7 interlacing of each); CMYK and YCCK JPEG (with and without Adobe's
/// APP14 marker, baseline and progressive); RLE, 16-bit and bit-field BMP; GIF partial frames,
/// transparency, local palettes; WebP lossy and lossless, with and without alpha.
#[test]
fn formats_default_model_answers_exactly_as_ddddocr() {
    check_set(&formats(), formats_manifest(), "old", |row| &row.1);
}

#[test]
fn formats_beta_model_answers_exactly_as_ddddocr() {
    check_set(&formats(), formats_manifest(), "beta", |row| &row.2);
}

/// Files of the formats set that OpenCV 5.0.0.93's own run-length BMP reader fails on
/// ("unexpected end of input stream"), so ddddocr's detector errors where aiocr reads them as
/// Pillow does (docs/engine-more.md).
const UNREADABLE_BY_OPENCV: &[&str] = &["bmp-rle4-delta-1.bmp"];

/// Detection reads images as OpenCV does (cv2.imdecode): the formats set's boxes, in order.
#[test]
fn formats_detection_equals_ddddocr() {
    let path = formats().join("manifest.tsv");
    let manifest = std::fs::read_to_string(path).expect("formats manifest");
    let rows: Vec<Vec<&str>> = manifest
        .lines()
        .skip(1)
        .map(|line| line.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), FORMATS_COUNT);
    let (unreadable, readable): (Vec<_>, Vec<_>) =
        rows.iter().partition(|row| row[4].starts_with("!error"));
    let unreadable: Vec<&str> = unreadable.iter().map(|row| row[0]).collect();
    assert_eq!(unreadable, UNREADABLE_BY_OPENCV);
    let files: Vec<PathBuf> = readable.iter().map(|row| formats().join(row[0])).collect();
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .arg("det")
        .args(&files)
        .env("AIOCR_MODEL_DIR", model_dir())
        .output()
        .expect("run aiocr det");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let mismatches: Vec<String> = readable
        .iter()
        .zip(stdout.lines())
        .filter_map(|(row, line)| {
            let boxes = line.split_once('\t').map_or("", |(_, boxes)| boxes);
            let expected: serde_json::Value = serde_json::from_str(row[4]).unwrap();
            let got: serde_json::Value = serde_json::from_str(boxes).unwrap_or_default();
            (got != expected).then(|| format!("{}: ddddocr {expected}, aiocr {boxes}", row[0]))
        })
        .collect();
    assert_eq!(stdout.lines().count(), readable.len());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn bad_files_get_an_error_line_and_a_failing_exit_code() {
    let scratch = scratch_dir("bad-files");
    let dir = scratch.path();
    let good = fixtures().join("0001.png");
    let png = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.png", vec![], "code 3001"),
        ("text.png", b"hello, not an image".to_vec(), "code 3003"),
        ("truncated.png", png[..png.len() / 2].to_vec(), "code 3003"),
        ("huge.png", huge_png_header(), "code 3004"),
    ];
    let mut files = vec![good.clone()];
    for (name, bytes, _) in &cases {
        std::fs::write(dir.join(name), bytes).unwrap();
        files.push(dir.join(name));
    }
    let (code, stdout) = aiocr_ocr(&[], &files);
    assert_eq!(code, 1, "some files failed: {stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("{}\tlspznk", good.display()));
    for ((_, _, expected), line) in cases.iter().zip(&lines[1..]) {
        assert!(
            line.contains("\terror: ") && line.contains(expected),
            "{line} should contain {expected}"
        );
    }
}

#[test]
fn probability_prints_a_confidence_between_0_and_1() {
    let (code, stdout) = aiocr_ocr(&["--probability"], &[fixtures().join("0001.png")]);
    assert_eq!(code, 0);
    let cols: Vec<&str> = stdout.trim_end().split('\t').collect();
    assert_eq!(cols[1], "lspznk");
    let confidence: f32 = cols[2].parse().unwrap();
    assert!(confidence > 0.0 && confidence <= 1.0, "{confidence}");
}

#[test]
fn charset_range_keeps_only_the_given_characters() {
    // ddddocr reads 0001.png as "lspznk"; keeping only "lpz" drops the others.
    let (code, stdout) = aiocr_ocr(&["--charset-range", "lpz"], &[fixtures().join("0001.png")]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim_end().split('\t').nth(1), Some("lpz"));
}

#[test]
fn missing_models_name_the_setup_command() {
    let scratch = scratch_dir("no-models");
    let empty = scratch.path();
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .args(["ocr", "--model-dir"])
        .arg(empty)
        .arg(fixtures().join("0001.png"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scripts/setup.sh"), "{stderr}");
}

#[test]
fn custom_model_in_ddddocr_format_is_loaded_by_name() {
    // A custom model is an ONNX file plus ddddocr's charset JSON; reuse common_old.onnx and
    // its charset under another name: it must answer as the default model does.
    let scratch = scratch_dir("custom-model");
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("custom")).unwrap();
    std::os::unix::fs::symlink(
        model_dir().join("libonnxruntime.so"),
        dir.join("libonnxruntime.so"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        model_dir().join("common_old.onnx"),
        dir.join("custom/mine.onnx"),
    )
    .unwrap();
    std::fs::copy(
        model_dir().join("charset_old.json"),
        dir.join("custom/mine.json"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .args(["ocr", "--model", "mine", "--model-dir"])
        .arg(dir)
        .arg(fixtures().join("0002.jpg"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).ends_with("\t工b0\n"));
}
