//! `aiocr ocr`: recognise files, or measure the engine (`--bench`), the product's model limit.

use std::path::PathBuf;
use std::sync::Arc;

use crate::bench_threads::{self, Totals};
use crate::engine_cmd::{self, BenchArgs};

use crate::contract;
use crate::engine::search::text::MAX_CHARS_LIMIT;
use crate::engine::{
    self, CharsetRange, ColorFilter, Engine, ImageLimits, Reading, RecognizeOptions, StageNanos,
};

#[derive(clap::Args)]
pub struct OcrArgs {
    /// `old` (ddddocr's default), `beta`, or a custom model installed in MODEL_DIR/custom.
    #[arg(long, default_value = "old")]
    model: String,
    /// Composite RGBA images on white first (ddddocr's png_fix).
    #[arg(long)]
    png_fix: bool,
    /// Also print the confidence (mean of the per-step maximum softmax).
    #[arg(long)]
    probability: bool,
    /// Restrict the answer as ddddocr's set_ranges: an integer N keeps the first N+1 charset
    /// entries, any other text keeps its characters.
    #[arg(long)]
    charset_range: Option<String>,
    /// ddddocr's colour filter: keep only pixels of these preset colours (comma-separated:
    /// red, blue, green, yellow, orange, purple, cyan, black, white, gray), the rest white.
    #[arg(long)]
    colors: Option<String>,
    /// ddddocr's colour filter with custom ranges: a JSON list of [[h, s, v], [h, s, v]]
    /// pairs in OpenCV's 8-bit HSV (H 0-180); combined with --colors if both are given.
    #[arg(long)]
    color_ranges: Option<String>,
    /// Read each image as an arithmetic expression ("7+3=?") and print its value.
    #[arg(long, conflicts_with_all = ["numeric", "min_len", "max_len", "case_insensitive"])]
    math: bool,
    /// The best answer of these characters (2captcha's `numeric`): 1 digits, 2 letters,
    /// 3 digits or letters, 4 digits and letters (both); 0 any.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=4))]
    numeric: Option<u8>,
    /// The best answer of at least this many characters.
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=MAX_CHARS_LIMIT as i64))]
    min_len: Option<u16>,
    /// The best answer of at most this many characters.
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=MAX_CHARS_LIMIT as i64))]
    max_len: Option<u16>,
    /// A letter's two cases count as one (their probabilities added).
    #[arg(long)]
    case_insensitive: bool,
    /// Where the models and ONNX Runtime are (scripts/setup.sh puts them there).
    #[arg(long, env = "AIOCR_MODEL_DIR", default_value = "./models")]
    model_dir: PathBuf,
    #[command(flatten)]
    bench: BenchArgs,
    /// Benchmark: images per engine call (equal-width images of `beta` share one model run).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Threads inside one model run (the server's `recognition_wide_threads` engine: with
    /// `--threads 1`, the time of a lone request's model run).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    intra_threads: u16,
    /// Image files (or, with --bench, one directory).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: OcrArgs) -> i32 {
    engine_cmd::run("ocr", || {
        let options = options_of(&args)?;
        match args.bench.bench {
            true => bench(&args, &options),
            false => recognise_files(&args, &options),
        }
    })
}

fn options_of(args: &OcrArgs) -> Result<RecognizeOptions, String> {
    let charset_range = match &args.charset_range {
        Some(value) => Some(CharsetRange::parse(value).ok_or("--charset-range must not be empty")?),
        None => None,
    };
    let color_filter =
        ColorFilter::from_options(args.colors.as_deref(), args.color_ranges.as_deref())
            .map_err(|e| format!("{e} (code {})", contract::of_color_filter(&e).code()))?;
    Ok(RecognizeOptions {
        model: args.model.clone(),
        custom: None,
        png_fix: args.png_fix,
        probability: args.probability,
        charset_range,
        color_filter,
        reading: reading_of(args),
    })
}

/// ddddocr's reading, unless the arguments ask for an expression or constrain the answer.
fn reading_of(args: &OcrArgs) -> Reading {
    if args.math {
        return Reading::Math;
    }
    Reading::of_constraints(
        args.numeric.unwrap_or(0),
        args.min_len.unwrap_or(0).into(),
        args.max_len.unwrap_or(0).into(),
        args.case_insensitive,
    )
}

fn load_engine(args: &OcrArgs) -> Result<Engine, String> {
    Engine::load_with_threads(
        &args.model_dir,
        std::slice::from_ref(&args.model),
        ImageLimits::default(),
        usize::from(args.intra_threads),
    )
    .map_err(|e| e.to_string())
}

/// One line per file: `FILE<TAB>TEXT[<TAB>CONFIDENCE]`, or `FILE<TAB>error: ...`.
fn recognise_files(args: &OcrArgs, options: &RecognizeOptions) -> Result<i32, String> {
    let mut engine = load_engine(args)?;
    let mut failures = 0;
    for file in &args.files {
        let answer = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                engine
                    .recognize(&bytes, options)
                    .map_err(|e| format!("{e} (code {})", contract::of_recognize(&e).code()))
            });
        match answer {
            Ok(answer) => match answer.confidence {
                Some(confidence) => {
                    println!("{}\t{}\t{confidence:.6}", file.display(), answer.text)
                }
                None => println!("{}\t{}", file.display(), answer.text),
            },
            Err(message) => {
                failures += 1;
                println!("{}\terror: {message}", file.display());
            }
        }
    }
    Ok(if failures == 0 { 0 } else { 1 })
}

struct Corpus {
    images: Vec<Vec<u8>>,
}

fn bench(args: &OcrArgs, options: &RecognizeOptions) -> Result<i32, String> {
    let images = engine_cmd::read_images(engine_cmd::bench_dir(&args.files)?)?;
    let corpus = Arc::new(Corpus { images });
    let threads = bench_threads::thread_count(args.bench.threads);
    let batch = args.batch.max(1);
    let duration = args.bench.duration();
    // Sessions are created before the clock starts (~50-150 ms each).
    let workers = (0..threads)
        .map(|thread| {
            let engine = load_engine(args)?;
            let start = bench_threads::start_of(thread, threads, corpus.images.len());
            Ok(bench_step(
                engine,
                Arc::clone(&corpus),
                options.clone(),
                start,
                batch,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let cpu_before_s = process_cpu_s();
    let totals = bench_threads::run(workers, duration);
    let cpu_s = process_cpu_s() - cpu_before_s;
    print_bench(&corpus, args, threads, batch, &totals);
    // On a shared machine the images/s depend on how much CPU the bench got; per CPU-second
    // they do not (bench/cluster.sh compares a worker's with it).
    println!(
        "cpu-seconds: {cpu_s:.2} ({:.1} images per cpu-second)",
        totals.items as f64 / cpu_s.max(1e-9)
    );
    let pre_post = pre_post_of_each(args, options, &corpus)?;
    print_pre_post(&pre_post);
    Ok(0)
}

/// One engine's step: the next `batch` images of the corpus in one call.
fn bench_step(
    mut engine: Engine,
    corpus: Arc<Corpus>,
    options: RecognizeOptions,
    start: usize,
    batch: usize,
) -> impl FnMut(&mut StageNanos) -> u64 + Send + 'static {
    let mut next = start;
    move |stages: &mut StageNanos| {
        let count = corpus.images.len();
        let items: Vec<(&[u8], &RecognizeOptions)> = (0..batch)
            .map(|i| (corpus.images[(next + i) % count].as_slice(), &options))
            .collect();
        next = (next + batch) % count;
        engine.recognize_batch_timed(&items, stages).len() as u64
    }
}

/// User and system CPU time of this process so far, in seconds.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn print_bench(
    corpus: &Corpus,
    args: &OcrArgs,
    threads: usize,
    batch: usize,
    totals: &Totals<StageNanos>,
) {
    let Totals {
        items: images,
        stages,
        elapsed_s,
    } = *totals;
    let per_image_ms = |nanos: u64| nanos as f64 / images.max(1) as f64 / 1e6;
    println!(
        "model {} | {} images in corpus | {threads} threads x {intra} in a run | batch {batch} | {:.1} s",
        args.model,
        corpus.images.len(),
        elapsed_s,
        intra = args.intra_threads,
    );
    println!("images/s: {:.1}", images as f64 / elapsed_s);
    println!("per image, ms of one thread's time:");
    println!("  decode  {:.3}", per_image_ms(stages.decode));
    println!(
        "  resize  {:.3}  (resize + gray + tensor)",
        per_image_ms(stages.resize)
    );
    println!("  model   {:.3}", per_image_ms(stages.model));
    println!(
        "  output  {:.3}  (argmax + CTC)",
        per_image_ms(stages.output)
    );
}

/// Pre- and post-processing alone (decode, resize, CTC), per image kind, measured one thread
/// at a time on a warm engine: the figure to compare with Python ddddocr's ~0.8 ms.
fn pre_post_of_each(
    args: &OcrArgs,
    options: &RecognizeOptions,
    corpus: &Corpus,
) -> Result<Vec<(String, u64, f64)>, String> {
    let mut engine = load_engine(args)?;
    let limits = ImageLimits::default();
    let mut groups: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for bytes in &corpus.images {
        let Ok(info) = engine::probe_image(bytes, &limits) else {
            continue;
        };
        let mut stages = StageNanos::default();
        engine.recognize_batch_timed(&[(bytes, options)], &mut stages);
        let key = format!("{:?} {}x{}", info.format, info.width, info.height);
        let entry = groups.entry(key).or_default();
        entry.0 += 1;
        entry.1 += stages.decode + stages.resize + stages.output;
    }
    let mut rows: Vec<(String, u64, f64)> = groups
        .into_iter()
        .map(|(key, (count, nanos))| (key, count, nanos as f64 / count as f64 / 1e6))
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1));
    Ok(rows)
}

fn print_pre_post(rows: &[(String, u64, f64)]) {
    println!("pre+post-processing per image (decode + resize + gray + CTC), ms, by kind:");
    for (kind, count, ms) in rows.iter().take(10) {
        println!("  {kind:<16} {count:>4} images  {ms:.3}");
    }
}
