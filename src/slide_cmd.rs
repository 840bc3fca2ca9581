//! `aiocr slide`: slide captchas (ddddocr's `slide_match` / `slide_comparison`) on a pair of
//! files, or their benchmark (`--bench`) on a directory of pairs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::bench_threads::{self, Totals};
use crate::engine::{
    load_slide_library, slide_timed, ImageLimits, SlideError, SlideMode, SlideStages,
};
use crate::engine_cmd::{self, BenchArgs};

#[derive(clap::Args)]
pub struct SlideArgs {
    /// ddddocr's `simple_target=True`: match the plain crop without edge detection.
    #[arg(long, conflicts_with = "comparison")]
    simple: bool,
    /// ddddocr's `slide_comparison`: TARGET is the background with the gap, BACKGROUND the
    /// full background (same size).
    #[arg(long)]
    comparison: bool,
    /// Where the models are: slides use Intel IPP from its `ipp/` folder when it is there
    /// (scripts/setup.sh puts it there), as ddddocr's OpenCV does.
    #[arg(long, env = "AIOCR_MODEL_DIR", default_value = "./models")]
    model_dir: PathBuf,
    #[command(flatten)]
    bench: BenchArgs,
    /// TARGET BACKGROUND (or, with --bench, one directory DIR: every pair listed in
    /// DIR/manifest.tsv, columns `kind`, `target`, `background`; kind `match`,
    /// `match_simple` or `comparison`).
    #[arg(required = true, num_args = 1..=2)]
    files: Vec<PathBuf>,
}

pub fn run(args: SlideArgs) -> i32 {
    if let Err(error) = load_slide_library(&args.model_dir) {
        eprintln!("aiocr slide: no IPP ({error}): scores may differ from ddddocr's by ~1e-4");
    }
    engine_cmd::run("slide", || match args.bench.bench {
        true => bench(&args),
        false => slide_pair(&args),
    })
}

fn mode_of(args: &SlideArgs) -> SlideMode {
    match (args.simple, args.comparison) {
        (true, _) => SlideMode::Simple,
        (_, true) => SlideMode::Comparison,
        _ => SlideMode::Match,
    }
}

/// Prints ddddocr's result dict as JSON, or `FILE<TAB>error: ... (code N)` naming the image
/// at fault (the target for errors about the pair).
fn slide_pair(args: &SlideArgs) -> Result<i32, String> {
    let [target, background] = args.files.as_slice() else {
        return Err("give TARGET and BACKGROUND".into());
    };
    let read = |path: &PathBuf| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let (target_bytes, background_bytes) = (read(target)?, read(background)?);
    let mut stages = SlideStages::default();
    let limits = ImageLimits::default();
    match slide_timed(
        &target_bytes,
        &background_bytes,
        mode_of(args),
        &limits,
        &mut stages,
    ) {
        Ok(answer) => {
            println!("{}", answer.to_json());
            Ok(0)
        }
        Err(error) => {
            let file = match error {
                SlideError::Background(_) => background,
                _ => target,
            };
            println!(
                "{}\terror: {error} (code {})",
                file.display(),
                crate::contract::of_slide(&error).code()
            );
            Ok(1)
        }
    }
}

/// One pair of the benchmark corpus.
struct Pair {
    kind: String,
    mode: SlideMode,
    target: Vec<u8>,
    background: Vec<u8>,
}

fn read_pairs(dir: &Path) -> Result<Vec<Pair>, String> {
    let manifest = dir.join("manifest.tsv");
    let text =
        std::fs::read_to_string(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("{}: no `{name}` column", manifest.display()))
    };
    let (kind, target, background) = (column("kind")?, column("target")?, column("background")?);
    let mut pairs = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let field = |i: usize| {
            cols.get(i)
                .copied()
                .ok_or_else(|| format!("short line: {line}"))
        };
        let mode = match field(kind)? {
            "match" => SlideMode::Match,
            "match_simple" | "simple" => SlideMode::Simple,
            "comparison" => SlideMode::Comparison,
            other => return Err(format!("unknown kind {other}")),
        };
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
        pairs.push(Pair {
            kind: field(kind)?.to_string(),
            mode,
            target: read(field(target)?)?,
            background: read(field(background)?)?,
        });
    }
    if pairs.is_empty() {
        return Err(format!("{}: no pairs", manifest.display()));
    }
    Ok(pairs)
}

fn bench(args: &SlideArgs) -> Result<i32, String> {
    let pairs = Arc::new(read_pairs(engine_cmd::bench_dir(&args.files)?)?);
    let threads = bench_threads::thread_count(args.bench.threads);
    let duration = args.bench.duration();
    let limits = ImageLimits::default();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let pairs = Arc::clone(&pairs);
            let mut next = bench_threads::start_of(thread, threads, pairs.len());
            move |stages: &mut SlideStages| {
                let pair = &pairs[next % pairs.len()];
                let _ = slide_timed(&pair.target, &pair.background, pair.mode, &limits, stages);
                next += 1;
                1
            }
        })
        .collect();
    let Totals {
        items: done,
        stages,
        elapsed_s: elapsed,
    } = bench_threads::run(workers, duration);
    let per_pair_ms = |nanos: u64| nanos as f64 / done.max(1) as f64 / 1e6;
    println!(
        "slides | {} pairs in corpus | {threads} threads | {elapsed:.1} s",
        pairs.len()
    );
    println!("pairs/s: {:.1}", done as f64 / elapsed);
    println!("per pair, ms of one thread's time:");
    println!(
        "  decode   {:.3}  (both images, RGB)",
        per_pair_ms(stages.decode)
    );
    println!(
        "  prepare  {:.3}  (gray + Canny, or difference + morphology)",
        per_pair_ms(stages.prepare)
    );
    println!(
        "  search   {:.3}  (matchTemplate, or contours)",
        per_pair_ms(stages.search)
    );
    print_per_kind(&pairs, &limits);
    Ok(0)
}

/// Mean time of one pair of each kind, one thread, after a warm-up pass.
fn print_per_kind(pairs: &[Pair], limits: &ImageLimits) {
    let mut kinds: std::collections::BTreeMap<&str, (u64, f64)> = Default::default();
    for round in 0..2 {
        for pair in pairs {
            let started = Instant::now();
            let _ = slide_timed(
                &pair.target,
                &pair.background,
                pair.mode,
                limits,
                &mut SlideStages::default(),
            );
            if round == 1 {
                let entry = kinds.entry(&pair.kind).or_default();
                entry.0 += 1;
                entry.1 += started.elapsed().as_secs_f64() * 1e3;
            }
        }
    }
    println!("one pair alone, ms, by kind:");
    for (kind, (count, ms)) in kinds {
        println!("  {kind:<13} {count:>4} pairs  {:.3}", ms / count as f64);
    }
}
