//! Placeholder: replaced by the module's owner.

#[derive(clap::Args)]
pub struct DoctorArgs {}

pub fn run(_args: DoctorArgs) -> i32 {
    eprintln!("aiocr: 'doctor' is not built yet");
    2
}
