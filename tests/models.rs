//! Models users bring (dddd_trainer's format): the checks before a model is accepted, and
//! parity with ddddocr 1.6.1's import path (`DdddOcr(import_onnx_path=..., charsets_path=...)`)
//! on the six charsets variants of tests/fixtures/custom-models, answers and refusals.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use aiocr::engine::custom::{check_model, CustomModel, ModelCheckError, ModelDigest};
use aiocr::engine::{Engine, ImageLimits, RecognizeOptions};
use common::model_dir;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// (variant, onnx file, image file, ddddocr's answer or `!error ...`), in manifest order.
fn custom_manifest() -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join("custom-models/manifest.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 4, "{line}");
            (
                cols[0].into(),
                cols[1].into(),
                cols[2].into(),
                cols[3].into(),
            )
        })
        .collect()
}

fn charsets(variant: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(format!("custom-models/{variant}/charsets.json"))).unwrap()
}

#[test]
fn ddddocr_import_path_parity_on_the_custom_model_fixtures() {
    let rows = custom_manifest();
    let mut by_variant: HashMap<&str, Vec<&(String, String, String, String)>> = HashMap::new();
    for row in &rows {
        by_variant.entry(row.0.as_str()).or_default().push(row);
    }
    assert_eq!(by_variant.len(), 6, "six variants");
    let mut engine = Engine::load(&model_dir(), &[], ImageLimits::default()).unwrap();
    let mut compared = 0;
    for (variant, rows) in &by_variant {
        let onnx_path = model_dir().join(&rows[0].1);
        let onnx = std::fs::read(&onnx_path).unwrap();
        let charsets = charsets(variant);
        let checked = check_model(&model_dir(), &onnx, &charsets);
        let refused = rows.iter().all(|row| row.3.starts_with("!error"));
        if refused {
            // ddddocr fails on every image of this variant: aiocr refuses the model itself.
            assert!(
                matches!(checked, Err(ModelCheckError::Input(_))),
                "{variant}: {checked:?}"
            );
            continue;
        }
        let info = checked.unwrap_or_else(|e| panic!("{variant}: {e}"));
        assert_eq!(info.digest, ModelDigest::of(&onnx, &charsets));
        assert_eq!(info.charset_len, 8210);
        let text = std::str::from_utf8(&charsets).unwrap();
        let model =
            Arc::new(CustomModel::new(info.digest, onnx_path, onnx.len() as u64, text).unwrap());
        for (_, _, file, expected) in rows.iter().map(|r| (&r.0, &r.1, &r.2, &r.3)) {
            let image = std::fs::read(fixtures_dir().join("captcha").join(file)).unwrap();
            let options = RecognizeOptions {
                model: variant.to_string(),
                custom: Some(model.clone()),
                probability: true,
                ..Default::default()
            };
            let answer = engine.recognize(&image, &options).unwrap();
            assert_eq!(&answer.text, expected, "{variant} {file}");
            // ddddocr's import path gives no confidence; aiocr does, as for its own models.
            let confidence = answer.confidence.expect("asked for");
            assert!((0.0..=1.0).contains(&confidence), "{confidence}");
            compared += 1;
        }
    }
    assert_eq!(compared, 5 * 60);
}

#[test]
fn each_failed_check_is_named() {
    let old = std::fs::read(model_dir().join("common_old.onnx")).unwrap();
    let good = charsets("same-as-default");
    let check = |onnx: &[u8], charsets: &[u8]| check_model(&model_dir(), onnx, charsets);
    // charsets.json: not JSON, a key missing, a bad channel.
    assert!(matches!(
        check(&old, b"{"),
        Err(ModelCheckError::Charsets(_))
    ));
    let no_word = br#"{"charset": ["", "a"], "image": [-1, 64], "channel": 1}"#;
    assert!(matches!(
        check(&old, no_word),
        Err(ModelCheckError::Charsets(_))
    ));
    let two_channels = br#"{"charset": ["", "a"], "word": false, "image": [-1, 64], "channel": 2}"#;
    assert!(matches!(
        check(&old, two_channels),
        Err(ModelCheckError::Charsets(_))
    ));
    // Not an ONNX file; a truncated one.
    assert!(matches!(
        check(b"not onnx", &good),
        Err(ModelCheckError::Unloadable(_))
    ));
    assert!(matches!(
        check(&old[..old.len() / 2], &good),
        Err(ModelCheckError::Unloadable(_))
    ));
    // The input disagrees: 3 channels for a gray model, a fixed width the model cannot take.
    let rgb = br#"{"charset": ["", "a"], "word": false, "image": [-1, 64], "channel": 3}"#;
    let refused = check(&old, rgb).unwrap_err();
    assert!(matches!(refused, ModelCheckError::Input(_)), "{refused}");
    assert!(refused.to_string().contains("channel"), "{refused}");
    // The output's classes are not the charset's entries.
    let short = br#"{"charset": ["", "a", "b"], "word": false, "image": [-1, 64], "channel": 1}"#;
    let refused = check(&old, short).unwrap_err();
    assert!(matches!(refused, ModelCheckError::Output(_)), "{refused}");
    assert!(refused.to_string().contains("8210 classes"), "{refused}");
    // The height-48 variant: ddddocr fails on every image; refused before any request.
    let refused = check(&old, &charsets("height-48")).unwrap_err();
    assert!(refused.to_string().contains("64 high"), "{refused}");
}
