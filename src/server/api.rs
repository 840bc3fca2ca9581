//! The contract's JSON envelope `{"code", "msg", "data"}` and its error codes.

use crate::http::Response;
use serde::Serialize;

/// One error of the contract's table (docs/api.md, "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    NoSuchUpload,
    NotReportable,
    WindowClosed,
    Busy,
    RateLimited,
    RecognitionFailed,
    Internal,
}

impl ApiError {
    pub fn code(self) -> u32 {
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
            ApiError::NoSuchUpload => 4001,
            ApiError::NotReportable => 4002,
            ApiError::WindowClosed => 4003,
            ApiError::Busy => 5001,
            ApiError::RateLimited => 5002,
            ApiError::RecognitionFailed => 5003,
            ApiError::Internal => 9999,
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ApiError::Malformed | ApiError::NoImage | ApiError::UnknownModel => 400,
            ApiError::NoToken | ApiError::BadToken | ApiError::BadCredentials => 401,
            ApiError::NoPoints => 402,
            ApiError::Forbidden => 403,
            ApiError::NoRoute | ApiError::NoSuchUpload => 404,
            ApiError::NotReportable => 409,
            ApiError::WindowClosed => 410,
            ApiError::TooLarge => 413,
            ApiError::NotAnImage => 415,
            ApiError::BadDimensions => 422,
            ApiError::RateLimited => 429,
            ApiError::RecognitionFailed | ApiError::Internal => 500,
            ApiError::Busy => 503,
        }
    }

    /// The error for an image refusal of the engine (`ImageError::api_code`).
    pub fn from_image_code(code: u32) -> ApiError {
        match code {
            3001 => ApiError::NoImage,
            3002 => ApiError::TooLarge,
            3003 => ApiError::NotAnImage,
            3004 => ApiError::BadDimensions,
            3005 => ApiError::UnknownModel,
            _ => ApiError::Internal,
        }
    }

    pub fn default_message(self) -> &'static str {
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
            ApiError::NoSuchUpload => "no such upload",
            ApiError::NotReportable => "already reported, or not reportable",
            ApiError::WindowClosed => "report window closed",
            ApiError::Busy => "busy: recognition queue full",
            ApiError::RateLimited => "rate limited",
            ApiError::RecognitionFailed => "recognition failed",
            ApiError::Internal => "internal error",
        }
    }
}

/// An error answer with a specific message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub error: ApiError,
    pub message: String,
    /// Seconds for `Retry-After` (5001, 5002).
    pub retry_after_secs: Option<u64>,
}

impl Refusal {
    pub fn new(error: ApiError, message: impl Into<String>) -> Refusal {
        Refusal {
            error,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Refusal {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn into_response(self) -> Response {
        let body = envelope(self.error.code(), &self.message, &serde_json::json!({}));
        let answer = Response::json(self.error.status(), body);
        match self.retry_after_secs {
            Some(secs) => answer.with_header("Retry-After", secs.to_string()),
            None => answer,
        }
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal::new(error, error.default_message())
    }
}

pub type ApiResult = Result<Response, Refusal>;

/// A success answer: code 0 and `data`.
pub fn ok<T: Serialize>(data: &T) -> Response {
    Response::json(200, envelope(0, "ok", data))
}

/// An internal failure: logged with its detail, answered as 9999 without it.
pub fn internal(context: &str, detail: impl std::fmt::Display) -> Refusal {
    eprintln!("aiocr: internal error in {context}: {detail}");
    Refusal::new(ApiError::Internal, "internal error")
}

fn envelope<T: Serialize + ?Sized>(code: u32, msg: &str, data: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a, T: Serialize + ?Sized> {
        code: u32,
        msg: &'a str,
        data: &'a T,
    }
    serde_json::to_vec(&Envelope { code, msg, data }).expect("serialising plain data cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape_and_retry_after() {
        let answer = Refusal::from(ApiError::Busy).retry_after(2).into_response();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.extra_headers, vec![("Retry-After", "2".to_string())]);
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(json["code"], 5001);
        assert!(json["data"].is_object());
        let answer = ok(&serde_json::json!({"points": 5}));
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            (json["code"].as_u64(), json["data"]["points"].as_u64()),
            (Some(0), Some(5))
        );
    }
}
