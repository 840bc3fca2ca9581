//! Answers in the contract's JSON envelope `{"code", "msg", "data"}`: success, and refusals
//! with a code of the contract's table (src/contract.rs) and a specific message.

use crate::contract::{self, ApiError};
use crate::http::Response;
use crate::store::StoreError;
use serde::Serialize;

/// An error answer with a specific message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub error: ApiError,
    pub message: String,
    /// Seconds for `Retry-After` (5001, 5002, 5004).
    pub retry_after_secs: Option<u64>,
    /// The request is for a user of this other node: the router forwards it there
    /// (`node_hop.rs`) instead of answering this refusal.
    pub owner_node: Option<u16>,
}

impl Refusal {
    pub fn new(error: ApiError, message: impl Into<String>) -> Refusal {
        Refusal {
            error,
            message: message.into(),
            retry_after_secs: None,
            owner_node: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Refusal {
        assert!(
            self.error.is_retryable(),
            "Retry-After only goes with 5001, 5002 and 5004"
        );
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

/// A store refusal as the client sees it; what is not the client's doing is logged and
/// answered 9999 without its detail, a failed disk is 5004 (the storage loop logs it once,
/// not every request it refuses).
impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Refusal {
        match (contract::of_store(&error), &error) {
            (ApiError::Internal, _) => internal("store", &error),
            (ApiError::StorageUnavailable, _) => storage_unavailable(),
            (ApiError::Malformed, StoreError::UserExists) => malformed("username already exists"),
            (ApiError::Malformed, StoreError::UserNotFound) => malformed("no such user"),
            (ApiError::Malformed, StoreError::InvalidInput(detail)) => malformed(detail.clone()),
            (code, _) => code.into(),
        }
    }
}

pub type ApiResult = Result<Response, Refusal>;

/// A success answer: code 0 and `data`.
pub fn ok<T: Serialize>(data: &T) -> Response {
    Response::json(200, envelope(contract::CODE_OK, "ok", data))
}

/// 1001 with what is wrong.
pub fn malformed(message: impl Into<String>) -> Refusal {
    Refusal::new(ApiError::Malformed, message)
}

/// 5001: the recognition queue (or another shard's inbox, or the waiter table) is full;
/// nothing was charged.
pub fn busy() -> Refusal {
    Refusal::from(ApiError::Busy).retry_after(1)
}

/// 5001 while the server stops (a forwarded call's shard is gone).
pub fn shutting_down() -> Refusal {
    Refusal::new(ApiError::Busy, "shutting down").retry_after(1)
}

/// How long a client refused with 5004 waits: a disk freed by an operator comes back
/// within `storage_probe_max_ms` (5 s by default) of it.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 5;

/// 5004: the shard's disk failed (full, I/O error) and has not recovered; nothing was
/// charged.
pub fn storage_unavailable() -> Refusal {
    Refusal::from(ApiError::StorageUnavailable).retry_after(STORAGE_RETRY_AFTER_SECS)
}

/// An internal failure: logged with its detail, answered as 9999 without it.
pub fn internal(context: &str, detail: impl std::fmt::Display) -> Refusal {
    log_line!("aiocr: internal error in {context}: {detail}");
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
        let answer = busy().into_response();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.extra_headers, vec![("Retry-After", "1".to_string())]);
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

    #[test]
    fn store_refusals_keep_their_messages() {
        let exists = Refusal::from(StoreError::UserExists);
        assert_eq!(
            (exists.error, exists.message.as_str()),
            (ApiError::Malformed, "username already exists")
        );
        assert_eq!(
            Refusal::from(StoreError::InsufficientPoints).error,
            ApiError::NoPoints
        );
        let io = Refusal::from(StoreError::Io("disk".into()));
        assert_eq!(
            (io.error, io.retry_after_secs),
            (ApiError::StorageUnavailable, Some(STORAGE_RETRY_AFTER_SECS))
        );
        let corrupt = Refusal::from(StoreError::Corrupt("bits".into()));
        assert_eq!(
            (corrupt.error, corrupt.message.as_str()),
            (ApiError::Internal, "internal error")
        );
    }
}
