//! What the engine's commands (`aiocr ocr`, `aiocr det`, `aiocr slide`) share: the
//! benchmark's arguments, the run (quiet on a closed stdout, exit 2 with the command's name
//! on an error), and the benchmark's corpus of images.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::{probe_image, ImageLimits};

/// `--bench`, `--threads`, `--seconds`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Benchmark: run every image (or pair) of the one directory given, report the rate and
    /// the time per stage.
    #[arg(long)]
    pub bench: bool,
    /// Benchmark threads, one engine each (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Benchmark duration in seconds (whole passes over the corpus continue until then).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
}

impl BenchArgs {
    /// How long the benchmark runs (at least 0.1 s).
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds.max(0.1))
    }
}

/// Runs `command`'s work and turns its result into the exit code: the work's own, or 2
/// with `aiocr <command>: <message>` on stderr.
pub fn run(command: &str, work: impl FnOnce() -> Result<i32, String>) -> i32 {
    // A closed stdout (`aiocr ocr ... | head`) ends the command quietly, as for other
    // command-line tools, instead of a panic on the failed print.
    // SAFETY: restoring a signal's default disposition, before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    work().unwrap_or_else(|message| {
        eprintln!("aiocr {command}: {message}");
        2
    })
}

/// The one directory a benchmark is given.
pub fn bench_dir(files: &[PathBuf]) -> Result<&Path, String> {
    match files {
        [dir] => Ok(dir),
        _ => Err("--bench takes one directory".into()),
    }
}

/// The images of a directory, in name order, that pass the header check; each read once.
pub fn read_images(dir: &Path) -> Result<Vec<Vec<u8>>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    paths.sort();
    let limits = ImageLimits::default();
    let images: Vec<Vec<u8>> = paths
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .filter(|bytes| probe_image(bytes, &limits).is_ok())
        .collect();
    if images.is_empty() {
        return Err(format!("{}: no PNG/JPEG/GIF/BMP images", dir.display()));
    }
    Ok(images)
}
