//! `aiocr det`, `aiocr slide` and `aiocr ocr --colors` against ddddocr 1.6.1's own answers
//! for every fixture of tests/fixtures/ddddocr-more (120 click captchas, 120 slide pairs of
//! three kinds, 120 colour-filter captchas): detection boxes identical and in the same
//! order, slide targets identical with confidences within 1e-5, filtered text identical.
//! Also the commands' error lines, codes and exit codes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{huge_png_header, model_dir, scratch_dir};
use serde_json::Value;

fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ddddocr-more")
        .join(kind)
}

/// The manifest of `kind` as one map per row, checked to hold all 120 rows.
fn manifest(kind: &str) -> Vec<BTreeMap<String, String>> {
    let rows = read_manifest(&fixtures(kind).join("manifest.tsv"));
    assert_eq!(rows.len(), 120, "{kind}: the fixture set has 120 rows");
    rows
}

/// A manifest.tsv as one map (column -> value) per row.
fn read_manifest(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("manifest");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .map(|line| {
            header
                .iter()
                .zip(line.split('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn aiocr(args: &[&str], files: &[PathBuf]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .args(args)
        .args(files)
        .env("AIOCR_MODEL_DIR", model_dir())
        .output()
        .expect("run aiocr");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).expect("utf-8 output"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_no_mismatch(what: &str, mismatches: Vec<String>) {
    assert!(
        mismatches.is_empty(),
        "{what}: {} of 120 differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn detection_boxes_equal_ddddocrs_in_order() {
    let rows = manifest("det");
    let files: Vec<PathBuf> = rows
        .iter()
        .map(|r| fixtures("det").join(&r["file"]))
        .collect();
    let (code, stdout, stderr) = aiocr(&["det"], &files);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), rows.len());
    let mismatches = rows
        .iter()
        .zip(&lines)
        .filter_map(|(row, line)| {
            let (file, boxes) = line.split_once('\t').expect("FILE<TAB>BOXES");
            assert!(file.ends_with(&row["file"]), "{file}");
            let expected: Value = serde_json::from_str(&row["ddddocr"]).unwrap();
            let got: Value = serde_json::from_str(boxes).unwrap_or(Value::Null);
            (got != expected).then(|| format!("{}: ddddocr {expected}, aiocr {boxes}", row["file"]))
        })
        .collect();
    assert_no_mismatch("detection", mismatches);
}

#[test]
fn slide_targets_equal_ddddocrs() {
    let ipp = model_dir().join("ipp/libippi.so.12");
    assert!(
        ipp.exists(),
        "{} is missing: scripts/setup.sh installs IPP, which exact slide confidences need",
        ipp.display()
    );
    let mut kinds = BTreeMap::new();
    let mismatches = slide_mismatches(&fixtures("slide"), &manifest("slide"), &mut kinds);
    assert_eq!(kinds.len(), 3, "all three kinds are covered: {kinds:?}");
    assert_no_mismatch("slides", mismatches);
    // Pairs whose confidence IPP's float32 correlation decides (tests/fixtures/slide-more).
    let more = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slide-more");
    let rows = read_manifest(&more.join("manifest.tsv"));
    assert_eq!(rows.len(), 9, "slide-more holds 9 pairs");
    let mismatches = slide_mismatches(&more, &rows, &mut kinds);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Runs `aiocr slide` on every pair of a manifest; the pairs whose answer is not ddddocr's
/// (targets identical, confidences within 1e-5), counting the kinds seen.
fn slide_mismatches(
    dir: &Path,
    rows: &[BTreeMap<String, String>],
    kinds: &mut BTreeMap<String, usize>,
) -> Vec<String> {
    let mut mismatches = Vec::new();
    for row in rows {
        let mode = match row["kind"].as_str() {
            "match" => vec![],
            "match_simple" => vec!["--simple"],
            "comparison" => vec!["--comparison"],
            other => panic!("unknown kind {other}"),
        };
        *kinds.entry(row["kind"].clone()).or_insert(0) += 1;
        let mut args = vec!["slide"];
        args.extend(mode);
        let (code, stdout, stderr) = aiocr(
            &args,
            &[dir.join(&row["target"]), dir.join(&row["background"])],
        );
        assert_eq!(code, 0, "{}: {stdout}{stderr}", row["target"]);
        let got: Value = serde_json::from_str(stdout.trim()).expect("JSON answer");
        let expected: Value = serde_json::from_str(&row["ddddocr"]).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let confidence_off = match (got.get("confidence"), expected.get("confidence")) {
            // The manifest rounds to 6 places (5e-7); with IPP's correlation, OpenCV's own,
            // nothing else differs (without it gray slides can be ~1e-4 off).
            (Some(a), Some(b)) => (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() > 1e-5,
            (None, None) => false,
            _ => true,
        };
        let same_target = ["target", "target_x", "target_y"]
            .iter()
            .all(|k| got.get(k) == expected.get(k));
        if !same_target || confidence_off || keys(&got) != keys(&expected) {
            mismatches.push(format!(
                "{} ({}): ddddocr {expected}, aiocr {got}",
                row["target"], row["kind"]
            ));
        }
    }
    mismatches
}

#[test]
fn colour_filtered_text_equals_ddddocrs() {
    let rows = manifest("color");
    let mut by_colour: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for row in &rows {
        by_colour.entry(&row["colors"]).or_default().push(row);
    }
    let mut mismatches = Vec::new();
    let mut differs_from_plain = 0;
    for (colour, rows) in by_colour {
        let files: Vec<PathBuf> = rows
            .iter()
            .map(|r| fixtures("color").join(&r["file"]))
            .collect();
        let (code, stdout, stderr) = aiocr(&["ocr", "--colors", colour], &files);
        assert_eq!(code, 0, "{stdout}{stderr}");
        for (row, line) in rows.iter().zip(stdout.lines()) {
            let text = line.split('\t').nth(1).unwrap_or("");
            if text != row["ddddocr_old"] {
                mismatches.push(format!(
                    "{} ({colour}): ddddocr {:?}, aiocr {text:?}",
                    row["file"], row["ddddocr_old"]
                ));
            }
            differs_from_plain += usize::from(text != row["ddddocr_old_plain"]);
        }
    }
    assert_no_mismatch("colour filter", mismatches);
    // The filter really changed the answers (the fixtures have distractor letters).
    assert!(differs_from_plain > 60, "{differs_from_plain}");
}

#[test]
fn custom_colour_ranges_equal_the_preset_they_spell() {
    // red is [0,50,50]-[10,255,255] plus [170,50,50]-[180,255,255].
    let row = manifest("color")
        .into_iter()
        .find(|r| r["colors"] == "red")
        .expect("a red fixture");
    let file = fixtures("color").join(&row["file"]);
    let ranges = "[[[0,50,50],[10,255,255]],[[170,50,50],[180,255,255]]]";
    let (code, stdout, _) = aiocr(
        &["ocr", "--color-ranges", ranges],
        std::slice::from_ref(&file),
    );
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim_end().split('\t').nth(1),
        Some(row["ddddocr_old"].as_str())
    );
}

#[test]
fn invalid_colour_options_are_refused_with_code_3006() {
    let file = fixtures("color").join("0000.png");
    for args in [
        vec!["ocr", "--colors", "red,teal"],
        vec!["ocr", "--color-ranges", "[[[0,0,0],[181,255,255]]]"],
        vec!["ocr", "--color-ranges", "not json"],
    ] {
        let (code, stdout, stderr) = aiocr(&args, std::slice::from_ref(&file));
        assert_eq!(code, 2, "{args:?}: {stdout}");
        assert!(stderr.contains("code 3006"), "{args:?}: {stderr}");
    }
}

#[test]
fn bad_detection_inputs_get_error_lines() {
    let scratch = scratch_dir("det-bad");
    let dir = scratch.path();
    let good = fixtures("det").join("0001.png");
    let png = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.png", vec![], "code 3001"),
        ("text.png", b"not an image".to_vec(), "code 3003"),
        ("truncated.png", png[..png.len() / 2].to_vec(), "code 3003"),
        ("huge.png", huge_png_header(), "code 3004"),
    ];
    let mut files = vec![good.clone()];
    for (name, bytes, _) in &cases {
        std::fs::write(dir.join(name), bytes).unwrap();
        files.push(dir.join(name));
    }
    let (code, stdout, _) = aiocr(&["det"], &files);
    assert_eq!(code, 1, "some files failed: {stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{}\t[[", good.display())),
        "{}",
        lines[0]
    );
    for ((_, _, expected), line) in cases.iter().zip(&lines[1..]) {
        assert!(
            line.contains("\terror: ") && line.contains(expected),
            "{line} should contain {expected}"
        );
    }
}

#[test]
fn bad_slide_inputs_get_error_lines() {
    let dir = fixtures("slide");
    // Comparison needs two images of one size: 0002 is 280x160, 0005's pair another size.
    let rows = manifest("slide");
    let first = rows.iter().find(|r| r["kind"] == "comparison").unwrap();
    let other = rows
        .iter()
        .find(|r| {
            r["kind"] == "comparison"
                && image_size(&dir.join(&r["background"]))
                    != image_size(&dir.join(&first["background"]))
        })
        .expect("comparison pairs of two sizes");
    let (code, stdout, _) = aiocr(
        &["slide", "--comparison"],
        &[dir.join(&first["target"]), dir.join(&other["background"])],
    );
    assert_eq!(code, 1);
    assert!(
        stdout.contains("\terror: ") && stdout.contains("code 3007"),
        "{stdout}"
    );

    let scratch = scratch_dir("slide-bad");
    let broken = scratch.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let (code, stdout, _) = aiocr(&["slide"], &[dir.join(&first["target"]), broken.clone()]);
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with(&format!("{}\terror: background image", broken.display())),
        "{stdout}"
    );
    assert!(stdout.contains("code 3003"), "{stdout}");
}

#[test]
fn detection_without_its_model_names_the_setup_command() {
    let scratch = scratch_dir("det-no-model");
    let empty = scratch.path();
    let output = Command::new(env!("CARGO_BIN_EXE_aiocr"))
        .args(["det", "--model-dir"])
        .arg(empty)
        .arg(fixtures("det").join("0001.png"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("common_det.onnx") && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
}

/// Width and height from a PNG's IHDR or a JPEG's SOF (enough for the fixtures).
fn image_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(b"\x89PNG") {
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        return (be(16), be(20));
    }
    let mut at = 2;
    loop {
        let (marker, length) = (
            bytes[at + 1],
            u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize,
        );
        if (0xC0..=0xC2).contains(&marker) {
            let be16 = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
            return (be16(at + 7), be16(at + 5));
        }
        at += 2 + length;
    }
}
