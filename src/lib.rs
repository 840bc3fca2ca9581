//! aiocr as a library: every concern in its own module. The `aiocr` binary (src/main.rs) only
//! parses the command line and dispatches; integration tests and benchmarks use these modules.

pub mod accel;
pub mod engine;
pub mod ocr_cmd;
