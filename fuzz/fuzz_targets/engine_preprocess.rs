//! Everything the engine does before the model: decode, `png_fix`, LANCZOS resize, gray or
//! RGB conversion, scaling. The first byte picks the model shape and `png_fix`, as an upload's
//! options would; the rest is the image.
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;

use aiocr::engine::model::{ModelSpec, Sizing};
use aiocr::engine::preprocess::preprocess;
use aiocr::engine::StageNanos;
use libfuzzer_sys::fuzz_target;

/// The input shapes of ddddocr's models and of custom ones (`image`/`word`/`channel`).
fn spec(selector: u8) -> ModelSpec {
    let sizing = match selector % 3 {
        0 => Sizing::KeepAspect { height: 64 },
        1 => Sizing::Square { side: 64 },
        _ => Sizing::Fixed {
            width: 100,
            height: 40,
        },
    };
    ModelSpec {
        onnx_path: PathBuf::new(),
        charset: Vec::new(),
        first_index: HashMap::new(),
        sizing,
        channels: if selector & 4 == 0 { 1 } else { 3 },
        batchable: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    let spec = spec(selector);
    let png_fix = selector & 8 != 0;
    let limits = aiocr_fuzz::image_limits();
    let mut times = StageNanos::default();
    match preprocess(image, &spec, png_fix, &limits, &mut times) {
        Ok(tensor) => {
            assert_eq!(tensor.channels, spec.channels);
            assert!(tensor.width >= 1 && tensor.width <= limits.max_model_width);
            assert_eq!(
                tensor.data.len(),
                tensor.channels * tensor.height * tensor.width
            );
            assert!(tensor.data.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        Err(error) => aiocr_fuzz::assert_refusal(&error),
    }
});
