//! aiocr as a library: every concern in its own module. The `aiocr` binary (src/main.rs) only
//! parses the command line and dispatches; integration tests and benchmarks use these modules.

pub mod accel;
pub mod admin_cmd;
pub mod auth;
pub mod config;
pub mod det_cmd;
pub mod doctor;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod ocr_cmd;
pub mod ratelimit;
pub mod server;
pub mod slide_cmd;
pub mod store;
#[cfg(test)]
mod test_support;
