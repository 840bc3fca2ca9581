//! `aiocr`: the captcha OCR platform's single binary. This file only dispatches;
//! every command lives in its own module.

use clap::{Parser, Subcommand};

use aiocr::{
    admin_cmd, click_cmd, cluster, det_cmd, doctor, model_cmd, ocr_cmd, server, slide_cmd,
};

#[derive(Parser)]
#[command(
    name = "aiocr",
    version,
    about = "Captcha OCR API platform (ddddocr models, thread-per-core server)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API server.
    Serve(server::ServeArgs),
    /// Run recognition for the nodes of a cluster, taking jobs from NATS JetStream.
    Worker(cluster::worker::WorkerArgs),
    /// Recognise image files with the ddddocr models, or benchmark the engine.
    Ocr(ocr_cmd::OcrArgs),
    /// Find the characters of click captchas (ddddocr's detection), or benchmark it.
    Det(det_cmd::DetArgs),
    /// Solve click-in-order captchas (the characters of a hint, in order), or score a set.
    Click(click_cmd::ClickArgs),
    /// Solve slide captchas (ddddocr's slide_match / slide_comparison), or benchmark it.
    Slide(slide_cmd::SlideArgs),
    /// Manage users (operators).
    User(admin_cmd::UserArgs),
    /// Add or remove points (operators).
    Points(admin_cmd::PointsArgs),
    /// Check the points ledger.
    Ledger(admin_cmd::LedgerArgs),
    /// Manage the models users brought (operators, server stopped).
    Model(model_cmd::ModelArgs),
    /// Check that this host is ready to run aiocr.
    Doctor(doctor::DoctorArgs),
}

fn main() {
    // Everything aiocr writes (ledgers, password hashes, secrets) is its owner's alone; sled
    // creates its files with the process's umask.
    // SAFETY: umask only sets this process's file-creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    let cli = Cli::parse();
    let exit_code = match cli.command {
        Command::Serve(args) => server::run(args),
        Command::Worker(args) => cluster::worker::run(args),
        Command::Ocr(args) => ocr_cmd::run(args),
        Command::Det(args) => det_cmd::run(args),
        Command::Click(args) => click_cmd::run(args),
        Command::Slide(args) => slide_cmd::run(args),
        Command::User(args) => admin_cmd::run_user(args),
        Command::Points(args) => admin_cmd::run_points(args),
        Command::Ledger(args) => admin_cmd::run_ledger(args),
        Command::Model(args) => model_cmd::run(args),
        Command::Doctor(args) => doctor::run(args),
    };
    std::process::exit(exit_code);
}
