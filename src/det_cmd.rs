//! `aiocr det`: click-captcha detection on files (ddddocr's `detection`), or its benchmark
//! (`--bench`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::bench_threads::{self, Totals};

use crate::engine::{DetBox, DetectStages, Detector, ImageLimits};

#[derive(clap::Args)]
pub struct DetArgs {
    /// Where the models and ONNX Runtime are (scripts/setup.sh puts them there).
    #[arg(long, env = "AIOCR_MODEL_DIR", default_value = "./models")]
    model_dir: PathBuf,
    /// Benchmark: detect every image of the one directory given, report images/s and the
    /// time per stage.
    #[arg(long)]
    bench: bool,
    /// Benchmark threads, one ONNX Runtime session each (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Benchmark duration in seconds (whole passes over the corpus continue until then).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Image files (or, with --bench, one directory).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: DetArgs) -> i32 {
    // A closed stdout (`aiocr det ... | head`) ends the command quietly.
    // SAFETY: restoring a signal's default disposition, before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let result = if args.bench {
        bench(&args)
    } else {
        detect_files(&args)
    };
    result.unwrap_or_else(|message| {
        eprintln!("aiocr det: {message}");
        2
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

/// The images of a directory that pass the header check, each read once.
fn read_corpus(dir: &Path) -> Result<Vec<Vec<u8>>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    paths.sort();
    let limits = ImageLimits::default();
    let images: Vec<Vec<u8>> = paths
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .filter(|bytes| crate::engine::probe_image(bytes, &limits).is_ok())
        .collect();
    if images.is_empty() {
        return Err(format!("{}: no PNG/JPEG/GIF/BMP images", dir.display()));
    }
    Ok(images)
}

fn bench(args: &DetArgs) -> Result<i32, String> {
    let [dir] = args.files.as_slice() else {
        return Err("--bench takes one directory".into());
    };
    let corpus = Arc::new(read_corpus(dir)?);
    let threads = bench_threads::thread_count(args.threads);
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
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
