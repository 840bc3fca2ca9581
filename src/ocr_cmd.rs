//! Placeholder: replaced by the module's owner.

#[derive(clap::Args)]
pub struct OcrArgs {}

pub fn run(_args: OcrArgs) -> i32 {
    eprintln!("aiocr: 'ocr_cmd' is not built yet");
    2
}
