//! `aiocr-loadgen`: thin binary; everything lives in the library (see lib.rs).

fn main() {
    std::process::exit(aiocr_loadgen::run_cli());
}
