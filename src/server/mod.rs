//! Placeholder: replaced by the module's owner.

#[derive(clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> i32 {
    eprintln!("aiocr: 'server' is not built yet");
    2
}
