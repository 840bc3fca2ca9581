//! What ddddocr does not do, on the real models: `aiocr click` (click-in-order captchas with a
//! text hint or a hint image), `aiocr ocr --math` (arithmetic captchas answered with their
//! value) and constrained answers (`--numeric`, `--min-len`/`--max-len`,
//! `--case-insensitive`), with the fixtures of tests/fixtures/beyond (their origin is in its
//! README). The fixtures are images ddddocr's usual recipe gets wrong; the truth comes from
//! the generator, not from aiocr.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{manifest_rows, model_dir};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/beyond")
}

/// Runs `aiocr ARGS` and returns its exit code and stdout.
fn aiocr(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .args(args)
        .env("AIOCR_MODEL_DIR", model_dir())
        .output()
        .expect("run aiocr");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).expect("utf-8 output"),
    )
}

/// The answer column of `aiocr`'s one output line for `file`.
fn answer_of<'a>(stdout: &'a str, file: &Path) -> &'a str {
    let prefix = format!("{}\t", file.display());
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no line for {}: {stdout}", file.display()))
}

fn inside(point: &[i64], area: &[i64]) -> bool {
    area[0] <= point[0] && point[0] <= area[2] && area[1] <= point[1] && point[1] <= area[3]
}

#[test]
fn click_in_order_clicks_every_hint_character_in_its_box() {
    let dir = fixtures().join("click");
    let rows = manifest_rows(&dir.join("manifest.tsv"));
    assert!(rows.len() >= 4, "the click fixtures");
    for row in &rows {
        let image = dir.join(&row["file"]);
        let truth: Vec<Vec<i64>> = serde_json::from_str(&row["truth_boxes_in_order"]).unwrap();
        let hint_image = dir.join(&row["hint_image"]);
        let image_arg = image.to_str().unwrap();
        for hint in [
            ["--hint", row["hint"].as_str()],
            ["--hint-image", hint_image.to_str().unwrap()],
        ] {
            let (code, stdout) = aiocr(&["click", hint[0], hint[1], image_arg]);
            assert_eq!(code, 0, "{stdout}");
            let points: Vec<Vec<i64>> = serde_json::from_str(answer_of(&stdout, &image))
                .unwrap_or_else(|e| panic!("{stdout}: {e}"));
            assert_eq!(
                points.len(),
                truth.len(),
                "{} {hint:?}: {stdout}",
                row["file"]
            );
            for (point, area) in points.iter().zip(&truth) {
                assert!(
                    inside(point, area),
                    "{} {hint:?}: {point:?} not in {area:?}",
                    row["file"]
                );
            }
        }
    }
}

#[test]
fn click_rectangles_are_the_detected_boxes() {
    let dir = fixtures().join("click");
    let row = &manifest_rows(&dir.join("manifest.tsv"))[0];
    let image = dir.join(&row["file"]);
    let image_arg = image.to_str().unwrap();
    let (code, stdout) = aiocr(&["click", "--hint", &row["hint"], "--rectangles", image_arg]);
    assert_eq!(code, 0, "{stdout}");
    let areas: Vec<Vec<i64>> = serde_json::from_str(answer_of(&stdout, &image)).unwrap();
    let (_, detected) = aiocr(&["det", image_arg]);
    let detected: Vec<Vec<i64>> = serde_json::from_str(answer_of(&detected, &image)).unwrap();
    assert_eq!(areas.len(), row["hint"].chars().count());
    assert!(
        areas.iter().all(|area| detected.contains(area)),
        "{areas:?} {detected:?}"
    );
    // With no hint, every detected box, each once.
    let (code, stdout) = aiocr(&["click", "--rectangles", image_arg]);
    assert_eq!(code, 0, "{stdout}");
    let mut every: Vec<Vec<i64>> = serde_json::from_str(answer_of(&stdout, &image)).unwrap();
    let mut detected = detected;
    every.sort();
    detected.sort();
    assert_eq!(every, detected);
}

#[test]
fn click_with_more_characters_than_boxes_is_unsolvable() {
    let dir = fixtures().join("click");
    let row = &manifest_rows(&dir.join("manifest.tsv"))[0];
    let image = dir.join(&row["file"]);
    let hint = "一二三四五六七八九十百千万亿";
    let (code, stdout) = aiocr(&["click", "--hint", hint, image.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let answer = answer_of(&stdout, &image);
    assert!(
        answer.starts_with("error: unsolvable") && answer.ends_with("(code 5005)"),
        "{answer}"
    );
}

#[test]
fn math_captchas_are_answered_with_their_value() {
    let dir = fixtures().join("math");
    let rows = manifest_rows(&dir.join("manifest.tsv"));
    assert!(rows.len() >= 4, "the math fixtures");
    let files: Vec<PathBuf> = rows.iter().map(|row| dir.join(&row["file"])).collect();
    let mut args = vec!["ocr", "--math"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let (code, stdout) = aiocr(&args);
    assert_eq!(code, 0, "{stdout}");
    for (row, file) in rows.iter().zip(&files) {
        assert_ne!(
            row["baseline_value"], row["value"],
            "ddddocr's recipe fails it"
        );
        assert_eq!(
            answer_of(&stdout, file),
            row["value"],
            "{} {}",
            row["file"],
            row["text"]
        );
    }
}

/// A white 24-bit BMP of `width` x `height` pixels.
fn white_bmp(width: u32, height: u32) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let size = row * height;
    let mut bmp = b"BM".to_vec();
    for field in [54 + size, 0, 54, 40, width, height] {
        bmp.extend(field.to_le_bytes());
    }
    bmp.extend(1u16.to_le_bytes()); // planes
    bmp.extend(24u16.to_le_bytes()); // bits per pixel
    for field in [0, size, 2835, 2835, 0, 0] {
        bmp.extend(field.to_le_bytes());
    }
    bmp.resize(bmp.len() + size as usize, 0xff);
    bmp
}

#[test]
fn an_image_too_narrow_for_an_expression_is_unsolvable() {
    // Fewer model steps than a number, an operator and a number need.
    let dir = common::fresh_data_dir("beyond-math");
    let image = dir.join("narrow.bmp");
    std::fs::write(&image, white_bmp(4, 64)).unwrap();
    let (code, stdout) = aiocr(&["ocr", "--math", image.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let answer = answer_of(&stdout, &image);
    assert!(
        answer.starts_with("error: unsolvable") && answer.ends_with("(code 5005)"),
        "{answer}"
    );
    let (code, stdout) = aiocr(&["ocr", image.to_str().unwrap()]);
    assert_eq!(
        (code, answer_of(&stdout, &image)),
        (0, ""),
        "ddddocr's reading: nothing"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Text captchas (tests/fixtures/captcha): no arithmetic expression in them.
const NOT_MATH: [&str; 4] = ["0001.png", "0005.png", "0007.jpg", "0008.png"];

#[test]
fn text_captchas_are_not_read_as_math() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    let files: Vec<PathBuf> = NOT_MATH.iter().map(|name| dir.join(name)).collect();
    let mut args = vec!["ocr", "--math"];
    args.extend(files.iter().map(|file| file.to_str().unwrap()));
    let (code, stdout) = aiocr(&args);
    assert_eq!(code, 1, "{stdout}");
    for file in &files {
        let answer = answer_of(&stdout, file);
        assert!(
            answer.starts_with("error: unsolvable") && answer.ends_with("(code 5005)"),
            "{}: {answer}",
            file.display()
        );
    }
}

/// Images of tests/fixtures/captcha whose ddddocr answer (default model) breaks what their
/// label is: its length, letters only.
const BROKEN_BY_DDDDOCR: [&str; 5] = ["0054.png", "0086.png", "0118.gif", "0144.bmp", "0225.png"];

#[test]
fn constrained_answers_meet_the_constraints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    let rows = manifest_rows(&dir.join("manifest.tsv"));
    for name in BROKEN_BY_DDDDOCR {
        let row = rows
            .iter()
            .find(|row| row["file"] == name)
            .expect("in the manifest");
        let label = &row["label"];
        assert!(label.chars().all(|c| c.is_ascii_lowercase()), "{label}");
        let file = dir.join(name);
        let file_arg = file.to_str().unwrap();
        let (code, plain) = aiocr(&["ocr", file_arg]);
        assert_eq!(code, 0, "{plain}");
        let plain = answer_of(&plain, &file).to_string();
        assert_eq!(
            plain, row["ddddocr_old"],
            "the plain answer stays ddddocr's"
        );
        let breaks = plain.chars().count() != label.chars().count()
            || !plain.chars().all(|c| c.is_ascii_alphabetic());
        assert!(breaks, "{name}: ddddocr's {plain:?} breaks the constraints");
        let length = label.chars().count().to_string();
        let (code, stdout) = aiocr(&[
            "ocr",
            "--case-insensitive",
            "--numeric",
            "2",
            "--min-len",
            &length,
            "--max-len",
            &length,
            file_arg,
        ]);
        assert_eq!(code, 0, "{stdout}");
        assert_eq!(answer_of(&stdout, &file).to_lowercase(), *label, "{name}");
    }
}

#[test]
fn constraints_no_answer_meets_are_unsolvable() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captcha");
    let file = dir.join(BROKEN_BY_DDDDOCR[0]);
    // More characters than the image has steps for.
    let (code, stdout) = aiocr(&["ocr", "--min-len", "64", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let answer = answer_of(&stdout, &file);
    assert!(
        answer.starts_with("error: unsolvable") && answer.ends_with("(code 5005)"),
        "{answer}"
    );
    let (code, _) = aiocr(&["ocr", "--min-len", "65", file.to_str().unwrap()]);
    assert_eq!(code, 2, "a length past the limit is refused");
}
