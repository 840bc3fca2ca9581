//! `aiocr det`: click-captcha detection on files (ddddocr's `detection`), or its benchmark
//! (`--bench`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bench_threads::{self, Totals};
use crate::engine_cmd::{self, BenchArgs};

use crate::engine::{DetBox, DetectStages, Detector, ImageLimits};

#[derive(clap::Args)]
pub struct DetArgs {
    /// Where the models and ONNX Runtime are (scripts/setup.sh puts them there).
    #[arg(long, env = "AIOCR_MODEL_DIR", default_value = "./models")]
    model_dir: PathBuf,
    #[command(flatten)]
    bench: BenchArgs,
    /// Image files (or, with --bench, one directory).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: DetArgs) -> i32 {
    engine_cmd::run("det", || match args.bench.bench {
        true => bench(&args),
        false => detect_files(&args),
    })
}

fn load_detector(model_dir: &Path) -> Result<Detector, String> {
    Detector::load(model_dir, ImageLimits::default(), 1).map_err(|e| e.to_string())
}

/// The boxes as ddddocr's list prints in JSON, without spaces: `[[x1,y1,x2,y2],...]`.
pub fn boxes_json(boxes: &[DetBox]) -> String {
    serde_json::to_string(boxes).expect("integers serialise")
}

/// One line per file: `FILE<TAB>[[x1,y1,x2,y2],...]`, or `FILE<TAB>error: ...`.
fn detect_files(args: &DetArgs) -> Result<i32, String> {
    let mut detector = load_detector(&args.model_dir)?;
    let mut failures = 0;
    for file in &args.files {
        let answer = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                detector
                    .detect(&bytes)
                    .map_err(|e| format!("{e} (code {})", crate::contract::of_detect(&e).code()))
            });
        match answer {
            Ok(boxes) => println!("{}\t{}", file.display(), boxes_json(&boxes)),
            Err(message) => {
                failures += 1;
                println!("{}\terror: {message}", file.display());
            }
        }
    }
    Ok(if failures == 0 { 0 } else { 1 })
}

fn bench(args: &DetArgs) -> Result<i32, String> {
    let corpus = Arc::new(engine_cmd::read_images(engine_cmd::bench_dir(
        &args.files,
    )?)?);
    let threads = bench_threads::thread_count(args.bench.threads);
    let duration = args.bench.duration();
    let workers = (0..threads)
        .map(|thread| {
            let mut detector = load_detector(&args.model_dir)?;
            let corpus = Arc::clone(&corpus);
            let mut next = bench_threads::start_of(thread, threads, corpus.len());
            Ok(move |stages: &mut DetectStages| {
                let _ = detector.detect_timed(&corpus[next % corpus.len()], stages);
                next += 1;
                1
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let Totals {
        items: images,
        stages,
        elapsed_s: elapsed,
    } = bench_threads::run(workers, duration);
    let per_image_ms = |nanos: u64| nanos as f64 / images.max(1) as f64 / 1e6;
    println!(
        "detection | {} images in corpus | {threads} threads | {elapsed:.1} s",
        corpus.len()
    );
    println!("images/s: {:.1}", images as f64 / elapsed);
    println!("per image, ms of one thread's time:");
    println!("  decode     {:.3}", per_image_ms(stages.decode));
    println!(
        "  letterbox  {:.3}  (resize + canvas + tensor)",
        per_image_ms(stages.letterbox)
    );
    println!("  model      {:.3}", per_image_ms(stages.model));
    println!(
        "  boxes      {:.3}  (grid decoding + NMS + clamping)",
        per_image_ms(stages.boxes)
    );
    Ok(0)
}
