//! The API contract's error table (defined once, in the `aiocr-contract` crate that the load
//! generator shares) and the one place where this crate's typed errors become contract
//! codes: the engine's image and recognition errors and the store's refusals. The server's
//! answers (server/reply.rs) and `aiocr ocr` take their codes from here.

pub use aiocr_contract::{ApiError, CODE_OK};

use crate::engine::{ImageError, RecognizeError};
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
    }
}

/// The code for a store refusal; `Internal` for what is not the client's doing.
pub fn of_store(error: &StoreError) -> ApiError {
    match error {
        StoreError::InsufficientPoints => ApiError::NoPoints,
        StoreError::NotFound => ApiError::NoSuchUpload,
        StoreError::NotReportable => ApiError::NotReportable,
        StoreError::WindowClosed => ApiError::WindowClosed,
        StoreError::UserExists | StoreError::UserNotFound | StoreError::InvalidInput(_) => {
            ApiError::Malformed
        }
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
    fn store_refusals_map_onto_their_codes() {
        assert_eq!(of_store(&StoreError::InsufficientPoints).code(), 2001);
        assert_eq!(of_store(&StoreError::NotReportable).code(), 4002);
        assert_eq!(of_store(&StoreError::WindowClosed).code(), 4003);
        assert_eq!(of_store(&StoreError::Io("disk".into())).code(), 9999);
    }
}
