//! The API contract's error table (defined once, in the `aiocr-contract` crate that the load
//! generator shares) and the one place where this crate's typed errors become contract
//! codes: the engine's image and recognition errors and the store's refusals. The server's
//! answers (server/reply.rs) and `aiocr ocr` take their codes from here.

pub use aiocr_contract::{ApiError, CODE_OK};

use crate::engine::custom::ModelCheckError;
use crate::engine::{
    ClickError, ColorFilterError, DetectError, ImageError, RecognizeError, SlideError,
};
use crate::store::StoreError;

/// The code for an image the engine refused.
pub fn of_image(error: &ImageError) -> ApiError {
    match error {
        ImageError::Empty => ApiError::NoImage,
        ImageError::NotAnImage | ImageError::Unsupported(_) | ImageError::Corrupt(_) => {
            ApiError::NotAnImage
        }
        ImageError::DimensionsOutOfBounds { .. } => ApiError::BadDimensions,
    }
}

/// The code for an image that got no answer.
pub fn of_recognize(error: &RecognizeError) -> ApiError {
    match error {
        RecognizeError::Image(image) => of_image(image),
        RecognizeError::UnknownModel(_) => ApiError::UnknownModel,
        RecognizeError::Model(_) => ApiError::RecognitionFailed,
        // Read, but no answer the request allows (math, constraints): refunded too.
        RecognizeError::Unsolvable(_) => ApiError::Unsolvable,
    }
}

/// The code for any job that got no answer (what `/v2/result` and `wait=1` report).
pub fn of_job_failure(failure: &crate::recognition::JobFailure) -> ApiError {
    use crate::recognition::JobFailure;
    match failure {
        JobFailure::Recognize(error) => of_recognize(error),
        JobFailure::Detect(error) => of_detect(error),
        JobFailure::Click(error) => of_click(error),
        JobFailure::Slide(error) => of_slide(error),
        JobFailure::WaitedTooLong { .. } => ApiError::RecognitionFailed,
        JobFailure::Remote { code, .. } => *code,
    }
}

/// The code for a click-in-order captcha that got no clicks.
pub fn of_click(error: &ClickError) -> ApiError {
    match error {
        ClickError::Image(image) => of_image(image),
        ClickError::Detect(error) => of_detect(error),
        ClickError::Recognize(error) => of_recognize(error),
        ClickError::Unsolvable(_) => ApiError::Unsolvable,
    }
}

/// The code for a click captcha that got no boxes.
pub fn of_detect(error: &DetectError) -> ApiError {
    match error {
        DetectError::Image(image) => of_image(image),
        DetectError::Model(_) => ApiError::RecognitionFailed,
    }
}

/// The code for a slide that got no answer: 3007 when the two images cannot be compared
/// (sizes), else the image's own.
pub fn of_slide(error: &SlideError) -> ApiError {
    match error {
        SlideError::Target(image) | SlideError::Background(image) => of_image(image),
        SlideError::SizeMismatch { .. } | SlideError::TargetDoesNotFit { .. } => {
            ApiError::SizeMismatch
        }
    }
}

/// The code for a model refused at upload, by the check it failed (31xx); ONNX Runtime
/// itself failing is the server's fault.
pub fn of_model_check(error: &ModelCheckError) -> ApiError {
    match error {
        ModelCheckError::Charsets(_) => ApiError::BadCharsets,
        ModelCheckError::Unloadable(_) => ApiError::ModelUnloadable,
        ModelCheckError::Input(_) => ApiError::ModelInputMismatch,
        ModelCheckError::TestRun(_) => ApiError::ModelTestRunFailed,
        ModelCheckError::Output(_) => ApiError::ModelOutputMismatch,
        ModelCheckError::Runtime(_) => ApiError::Internal,
    }
}

/// An unknown colour or an invalid range: 3006.
pub fn of_color_filter(_: &ColorFilterError) -> ApiError {
    ApiError::InvalidOption
}

/// The code for a store refusal; `StorageUnavailable` when the disk failed (full, I/O
/// error) or the shard has not recovered from that yet; `Internal` for the rest of what is
/// not the client's doing.
pub fn of_store(error: &StoreError) -> ApiError {
    if error.is_storage_failure() {
        return ApiError::StorageUnavailable;
    }
    match error {
        StoreError::InsufficientPoints => ApiError::NoPoints,
        StoreError::NotFound => ApiError::NoSuchUpload,
        StoreError::NotReportable => ApiError::NotReportable,
        StoreError::WindowClosed => ApiError::WindowClosed,
        StoreError::UserExists | StoreError::UserNotFound | StoreError::InvalidInput(_) => {
            ApiError::Malformed
        }
        StoreError::Unavailable(_) => ApiError::StorageUnavailable,
        _ => ApiError::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_onto_the_image_codes() {
        assert_eq!(of_image(&ImageError::Empty).code(), 3001);
        assert_eq!(of_image(&ImageError::Corrupt("x".into())).code(), 3003);
        assert_eq!(of_image(&ImageError::Unsupported("x".into())).code(), 3003);
        let bounds = ImageError::DimensionsOutOfBounds {
            width: 1,
            height: 1,
        };
        assert_eq!(of_image(&bounds).code(), 3004);
        assert_eq!(
            of_recognize(&RecognizeError::UnknownModel("x".into())).code(),
            3005
        );
        assert_eq!(
            of_recognize(&RecognizeError::Model("x".into())).code(),
            5003
        );
    }

    #[test]
    fn detection_slide_and_colour_errors_map_onto_their_codes() {
        let mismatch = SlideError::SizeMismatch {
            target: (1, 1),
            background: (2, 2),
        };
        assert_eq!(of_slide(&mismatch).code(), 3007);
        assert_eq!(
            of_slide(&SlideError::Background(ImageError::NotAnImage)).code(),
            3003
        );
        assert_eq!(of_detect(&DetectError::Model("x".into())).code(), 5003);
        assert_eq!(
            of_detect(&DetectError::Image(ImageError::Empty)).code(),
            3001
        );
        let unknown = ColorFilterError::UnknownColor("teal".into());
        assert_eq!(of_color_filter(&unknown).code(), 3006);
    }

    #[test]
    fn each_failed_model_check_has_its_code() {
        let reason = || "x".to_string();
        let codes = [
            ModelCheckError::Charsets(reason()),
            ModelCheckError::Unloadable(reason()),
            ModelCheckError::Input(reason()),
            ModelCheckError::TestRun(reason()),
            ModelCheckError::Output(reason()),
            ModelCheckError::Runtime(reason()),
        ]
        .map(|error| of_model_check(&error).code());
        assert_eq!(codes, [3101, 3102, 3103, 3105, 3104, 9999]);
    }

    #[test]
    fn store_refusals_map_onto_their_codes() {
        assert_eq!(of_store(&StoreError::InsufficientPoints).code(), 2001);
        assert_eq!(of_store(&StoreError::NotReportable).code(), 4002);
        assert_eq!(of_store(&StoreError::WindowClosed).code(), 4003);
        assert_eq!(of_store(&StoreError::Io("disk".into())).code(), 5004);
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(
            of_store(&StoreError::Db(sled::Error::Io(full))).code(),
            5004
        );
        assert_eq!(of_store(&StoreError::Unavailable("x".into())).code(), 5004);
        assert_eq!(of_store(&StoreError::Corrupt("x".into())).code(), 9999);
        let bug = sled::Error::ReportableBug("x".into());
        assert_eq!(of_store(&StoreError::Db(bug)).code(), 9999);
    }
}
