//! Click-captcha detection, exactly as ddddocr 1.6.1's `DdddOcr(det=True).detection`:
//! OpenCV's decoding, the letterbox to 416 x 416, `common_det.onnx` (a YOLOX detector) in
//! ONNX Runtime, YOLOX decoding and NMS in numpy's arithmetic. One `Detector` per thread
//! (`Session::run` takes `&mut self`).

mod letterbox;
mod numpy_exp;
mod yolox;

use std::path::Path;
use std::time::Instant;

use ort::session::Session;
use ort::value::TensorRef;

pub use yolox::DetBox;

use super::cv::imdecode::imdecode_color;
use super::cv::Mat;
use super::model::{detection_model_path, ModelError};
use super::preprocess::elapsed_nanos;
use super::session::{self, runtime};
use super::{ImageError, ImageLimits};

/// Why an image got no boxes (src/contract.rs maps it to the contract's codes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    #[error("{0}")]
    Image(#[from] ImageError),
    #[error("detection failed: {0}")]
    Model(String),
}

/// Nanoseconds per stage, for `aiocr det --bench`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DetectStages {
    pub decode: u64,
    /// Resize, canvas and tensor.
    pub letterbox: u64,
    pub model: u64,
    /// Grid decoding, NMS, clamping.
    pub boxes: u64,
}

impl std::ops::AddAssign for DetectStages {
    fn add_assign(&mut self, other: DetectStages) {
        self.decode += other.decode;
        self.letterbox += other.letterbox;
        self.model += other.model;
        self.boxes += other.boxes;
    }
}

pub struct Detector {
    session: Session,
    input_name: String,
    limits: ImageLimits,
}

impl Detector {
    /// Loads `common_det.onnx` from `model_dir` into a session with `intra_threads` threads.
    pub fn load(
        model_dir: &Path,
        limits: ImageLimits,
        intra_threads: usize,
    ) -> Result<Detector, ModelError> {
        let path = detection_model_path(model_dir);
        if !path.exists() {
            return Err(ModelError::Missing { path });
        }
        let environment = runtime(model_dir)?;
        let session = session::builder(&environment, &path, intra_threads)?
            .commit_from_file(&path)
            .map_err(|e| session::runtime_error(&path, e))?;
        let input_name = session::input_name(&session);
        Ok(Detector {
            session,
            input_name,
            limits,
        })
    }

    pub fn detect(&mut self, image: &[u8]) -> Result<Vec<DetBox>, DetectError> {
        self.detect_timed(image, &mut DetectStages::default())
    }

    /// The boxes of one image in ddddocr's order, with the time of each stage added to
    /// `stages`.
    pub fn detect_timed(
        &mut self,
        image: &[u8],
        stages: &mut DetectStages,
    ) -> Result<Vec<DetBox>, DetectError> {
        let started = Instant::now();
        let decoded = imdecode_color(image, &self.limits)?;
        stages.decode += elapsed_nanos(started);
        self.detect_decoded(&decoded, stages)
    }

    /// The boxes of an image already decoded as OpenCV decodes it (BGR, upright).
    pub(in crate::engine) fn detect_decoded(
        &mut self,
        decoded: &Mat,
        stages: &mut DetectStages,
    ) -> Result<Vec<DetBox>, DetectError> {
        let started = Instant::now();
        // ddddocr fails on an image that scales to an empty size (cv2.resize refuses it).
        let input = letterbox::letterbox(decoded).ok_or(ImageError::DimensionsOutOfBounds {
            width: decoded.width as u32,
            height: decoded.height as u32,
        })?;
        stages.letterbox += elapsed_nanos(started);

        let started = Instant::now();
        let shape = [1, 3, letterbox::SIDE, letterbox::SIDE];
        let tensor = TensorRef::from_array_view((shape, input.tensor.as_slice()))
            .map_err(|e| DetectError::Model(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| DetectError::Model(e.to_string()))?;
        let (_, output) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| DetectError::Model(e.to_string()))?;
        stages.model += elapsed_nanos(started);

        let started = Instant::now();
        if output.len() != yolox::expected_rows() * 6 {
            return Err(DetectError::Model(format!(
                "unexpected output of {} values",
                output.len()
            )));
        }
        let boxes = yolox::boxes(output, input.ratio, decoded.width, decoded.height);
        stages.boxes += elapsed_nanos(started);
        Ok(boxes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fixtures, model_dir};

    #[test]
    fn damaged_images_get_errors_not_panics() {
        let mut detector = Detector::load(&model_dir(), ImageLimits::default(), 1)
            .expect("scripts/setup.sh installs common_det.onnx");
        let images: Vec<Vec<u8>> = fixtures()
            .into_iter()
            .step_by(40)
            .map(|f| f.image)
            .collect();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut refused = 0;
        for image in &images {
            assert!(
                detector.detect(image).is_ok(),
                "an intact fixture is detected"
            );
            for cut in [0, 1, 8, 16, 30, image.len() / 3, image.len() - 1] {
                refused += usize::from(detector.detect(&image[..cut]).is_err());
            }
            for _ in 0..6 {
                let mut damaged = image.clone();
                for _ in 0..4 {
                    let at = random() as usize % damaged.len();
                    damaged[at] = random() as u8;
                }
                let _ = detector.detect(&damaged);
            }
        }
        assert!(
            refused >= images.len() * 5,
            "truncated images are refused: {refused}"
        );
    }
}
