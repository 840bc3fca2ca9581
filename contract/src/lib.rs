//! The aiocr HTTP API contract's error table (docs/api.md, "Errors"), defined once.
//! 5004 (`StorageUnavailable`, HTTP 503, retryable) extends that table for a full or failing
//! disk (issue 14); docs/server.md and docs/openapi.json describe it. 5005 (`Unsolvable`,
//! HTTP 422) is an image read to no answer the request allows (math, constraints, clicks).
//!
//! The server answers with these codes and HTTP statuses; the load generator and its test
//! server read and write the same codes. Nothing here knows about the server's internals:
//! the server maps its layers' typed errors (engine, store) onto [`ApiError`] in one place
//! (`src/contract.rs` of the `aiocr` crate).

/// One error of the contract's table. `code` 0 (success) is not an error and has no variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiError {
    Malformed,
    NoToken,
    BadToken,
    BadCredentials,
    Forbidden,
    NoRoute,
    NoPoints,
    NoImage,
    TooLarge,
    NotAnImage,
    BadDimensions,
    UnknownModel,
    InvalidOption,
    SizeMismatch,
    /// A model's charsets.json is not dddd_trainer's (`charset`, `word`, `image`, `channel`).
    BadCharsets,
    /// ONNX Runtime does not load a model's ONNX file.
    ModelUnloadable,
    /// A model's input disagrees with its charsets.json (`channel`, `image`).
    ModelInputMismatch,
    /// A model's output is not scores of as many classes as its charset has entries.
    ModelOutputMismatch,
    /// A model fails a run on a blank image.
    ModelTestRunFailed,
    /// The user has a model of that name already.
    ModelExists,
    /// The user's models would exceed their count or bytes.
    ModelLimit,
    NoSuchUpload,
    NotReportable,
    WindowClosed,
    Busy,
    RateLimited,
    RecognitionFailed,
    /// The image was read, but no answer meets the request: no arithmetic expression in it
    /// (`math`), no reading within the constraints (`numeric`, lengths), fewer characters
    /// than the click hint asks for. Refunded like a failed recognition.
    Unsolvable,
    /// The server cannot write (disk full or another I/O error): retry later.
    StorageUnavailable,
    Internal,
}

/// The `code` of a successful answer.
pub const CODE_OK: u32 = 0;

impl ApiError {
    /// Every error, in the table's order.
    pub const ALL: [ApiError; 30] = [
        ApiError::Malformed,
        ApiError::NoToken,
        ApiError::BadToken,
        ApiError::BadCredentials,
        ApiError::Forbidden,
        ApiError::NoRoute,
        ApiError::NoPoints,
        ApiError::NoImage,
        ApiError::TooLarge,
        ApiError::NotAnImage,
        ApiError::BadDimensions,
        ApiError::UnknownModel,
        ApiError::InvalidOption,
        ApiError::SizeMismatch,
        ApiError::BadCharsets,
        ApiError::ModelUnloadable,
        ApiError::ModelInputMismatch,
        ApiError::ModelOutputMismatch,
        ApiError::ModelTestRunFailed,
        ApiError::ModelExists,
        ApiError::ModelLimit,
        ApiError::NoSuchUpload,
        ApiError::NotReportable,
        ApiError::WindowClosed,
        ApiError::Busy,
        ApiError::RateLimited,
        ApiError::RecognitionFailed,
        ApiError::StorageUnavailable,
        ApiError::Unsolvable,
        ApiError::Internal,
    ];

    /// The JSON `code`.
    pub const fn code(self) -> u32 {
        match self {
            ApiError::Malformed => 1001,
            ApiError::NoToken => 1002,
            ApiError::BadToken => 1003,
            ApiError::BadCredentials => 1004,
            ApiError::Forbidden => 1005,
            ApiError::NoRoute => 1006,
            ApiError::NoPoints => 2001,
            ApiError::NoImage => 3001,
            ApiError::TooLarge => 3002,
            ApiError::NotAnImage => 3003,
            ApiError::BadDimensions => 3004,
            ApiError::UnknownModel => 3005,
            ApiError::InvalidOption => 3006,
            ApiError::SizeMismatch => 3007,
            ApiError::BadCharsets => 3101,
            ApiError::ModelUnloadable => 3102,
            ApiError::ModelInputMismatch => 3103,
            ApiError::ModelOutputMismatch => 3104,
            ApiError::ModelTestRunFailed => 3105,
            ApiError::ModelExists => 3106,
            ApiError::ModelLimit => 3107,
            ApiError::NoSuchUpload => 4001,
            ApiError::NotReportable => 4002,
            ApiError::WindowClosed => 4003,
            ApiError::Busy => 5001,
            ApiError::RateLimited => 5002,
            ApiError::RecognitionFailed => 5003,
            ApiError::StorageUnavailable => 5004,
            ApiError::Unsolvable => 5005,
            ApiError::Internal => 9999,
        }
    }

    /// The error with this JSON `code`, if the contract has one.
    pub fn from_code(code: u32) -> Option<ApiError> {
        ApiError::ALL.into_iter().find(|error| error.code() == code)
    }

    /// The HTTP status that goes with the code.
    pub const fn status(self) -> u16 {
        match self {
            ApiError::Malformed
            | ApiError::NoImage
            | ApiError::UnknownModel
            | ApiError::InvalidOption
            | ApiError::BadCharsets => 400,
            ApiError::NoToken | ApiError::BadToken | ApiError::BadCredentials => 401,
            ApiError::NoPoints => 402,
            ApiError::Forbidden => 403,
            ApiError::NoRoute | ApiError::NoSuchUpload => 404,
            ApiError::NotReportable | ApiError::ModelExists | ApiError::ModelLimit => 409,
            ApiError::WindowClosed => 410,
            ApiError::TooLarge => 413,
            ApiError::NotAnImage => 415,
            ApiError::BadDimensions
            | ApiError::SizeMismatch
            | ApiError::ModelUnloadable
            | ApiError::ModelInputMismatch
            | ApiError::ModelOutputMismatch
            | ApiError::ModelTestRunFailed
            | ApiError::Unsolvable => 422,
            ApiError::RateLimited => 429,
            ApiError::RecognitionFailed | ApiError::Internal => 500,
            ApiError::Busy | ApiError::StorageUnavailable => 503,
        }
    }

    /// The `msg` when nothing more specific is said.
    pub const fn default_message(self) -> &'static str {
        match self {
            ApiError::Malformed => "malformed request",
            ApiError::NoToken => "no token",
            ApiError::BadToken => "token invalid or expired",
            ApiError::BadCredentials => "wrong username or password",
            ApiError::Forbidden => "role not allowed",
            ApiError::NoRoute => "no such route",
            ApiError::NoPoints => "not enough points",
            ApiError::NoImage => "no image in the request",
            ApiError::TooLarge => "image or body too large",
            ApiError::NotAnImage => "not a decodable PNG/JPEG/GIF/BMP image, or bad base64",
            ApiError::BadDimensions => "image dimensions out of bounds",
            ApiError::UnknownModel => "unknown model",
            ApiError::InvalidOption => "an option's value is invalid",
            ApiError::SizeMismatch => "the images must have the same size",
            ApiError::BadCharsets => {
                "charsets is not a dddd_trainer charsets.json (charset, word, image, channel)"
            }
            ApiError::ModelUnloadable => "the ONNX file does not load",
            ApiError::ModelInputMismatch => "the model's input does not fit charsets.json",
            ApiError::ModelOutputMismatch => "the model's output does not fit charsets.json",
            ApiError::ModelTestRunFailed => "the model fails on a blank image",
            ApiError::ModelExists => "a model of this name exists already",
            ApiError::ModelLimit => "your models' count or size limit is reached",
            ApiError::NoSuchUpload => "no such upload",
            ApiError::NotReportable => "already reported, or not reportable",
            ApiError::WindowClosed => "report window closed",
            ApiError::Busy => "busy: recognition queue full",
            ApiError::RateLimited => "rate limited",
            ApiError::RecognitionFailed => "recognition failed",
            ApiError::StorageUnavailable => "storage unavailable (disk full or I/O error)",
            ApiError::Unsolvable => "unsolvable: no answer meets the request",
            ApiError::Internal => "internal error",
        }
    }

    /// Whether a client may send the same request again later and expect another outcome
    /// (the answer carries `Retry-After`).
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ApiError::Busy | ApiError::RateLimited | ApiError::StorageUnavailable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for error in ApiError::ALL {
            assert_eq!(ApiError::from_code(error.code()), Some(error));
            let class = error.code() / 1000;
            assert!(
                (1..=5).contains(&class) || error.code() == 9999,
                "{error:?}"
            );
            assert!(
                (400..600).contains(&error.status()),
                "{error:?} is an error status"
            );
        }
        assert_eq!(ApiError::from_code(CODE_OK), None);
        assert_eq!(ApiError::from_code(1234), None);
    }

    #[test]
    fn model_codes_are_their_own() {
        let codes: Vec<(u32, u16)> = [
            ApiError::BadCharsets,
            ApiError::ModelUnloadable,
            ApiError::ModelInputMismatch,
            ApiError::ModelOutputMismatch,
            ApiError::ModelTestRunFailed,
            ApiError::ModelExists,
            ApiError::ModelLimit,
        ]
        .map(|error| (error.code(), error.status()))
        .to_vec();
        let expected = [
            (3101, 400),
            (3102, 422),
            (3103, 422),
            (3104, 422),
            (3105, 422),
            (3106, 409),
            (3107, 409),
        ];
        assert_eq!(codes, expected);
    }

    #[test]
    fn the_table_of_the_contract() {
        // Spot checks against docs/api.md's table.
        assert_eq!(
            (ApiError::Busy.code(), ApiError::Busy.status()),
            (5001, 503)
        );
        assert_eq!(
            (
                ApiError::SizeMismatch.code(),
                ApiError::SizeMismatch.status()
            ),
            (3007, 422)
        );
        assert_eq!(
            (
                ApiError::InvalidOption.code(),
                ApiError::InvalidOption.status()
            ),
            (3006, 400)
        );
        assert!(ApiError::RateLimited.is_retryable() && !ApiError::Internal.is_retryable());
        let storage = ApiError::StorageUnavailable;
        assert_eq!((storage.code(), storage.status()), (5004, 503));
        assert!(storage.is_retryable());
        let unsolvable = ApiError::Unsolvable;
        assert_eq!((unsolvable.code(), unsolvable.status()), (5005, 422));
        assert!(
            !unsolvable.is_retryable(),
            "the same image stays unsolvable"
        );
    }
}
