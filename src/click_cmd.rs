//! `aiocr click`: click-in-order captchas on files (`IMAGE<TAB>[[x,y],...]`), or a scored run
//! over a labelled set (`--score`) against ddddocr's usual recipe, with the time each takes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine_cmd;

use crate::engine::{
    naive_clicks, solve_click, Click, ClickError, ClickStages, DetBox, Detector, Engine,
    ImageLimits, Instruction,
};

#[derive(clap::Args)]
pub struct ClickArgs {
    /// The characters to click, in order.
    #[arg(long, conflicts_with = "hint_image")]
    hint: Option<String>,
    /// An image showing the characters to click, in order.
    #[arg(long)]
    hint_image: Option<PathBuf>,
    /// Print the boxes `[[x1,y1,x2,y2],...]` instead of their centres.
    #[arg(long)]
    rectangles: bool,
    /// The model that reads the boxes and the hint image: `beta` (the one ddddocr's users
    /// read click captchas with) or `old`.
    #[arg(long, default_value = "beta")]
    model: String,
    /// Where the models and ONNX Runtime are (scripts/setup.sh puts them there).
    #[arg(long, env = "AIOCR_MODEL_DIR", default_value = "./models")]
    model_dir: PathBuf,
    /// Score a labelled set instead: FILES is one manifest.tsv (columns `file`, `hint`,
    /// `hint_image`, `truth_boxes_in_order`; the shared click-in-order fixtures' format);
    /// prints how many images ddddocr's usual recipe, text hints and hint images solve, and
    /// the time of each.
    #[arg(long)]
    score: bool,
    /// Image files (or, with --score, one manifest).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: ClickArgs) -> i32 {
    engine_cmd::run("click", || match args.score {
        true => score(&args),
        false => click_files(&args),
    })
}

struct Solver {
    detector: Detector,
    engine: Engine,
    model: String,
    limits: ImageLimits,
}

impl Solver {
    fn load(args: &ClickArgs) -> Result<Solver, String> {
        let limits = ImageLimits::default();
        Ok(Solver {
            detector: Detector::load(&args.model_dir, limits, 1).map_err(|e| e.to_string())?,
            engine: Engine::load(&args.model_dir, std::slice::from_ref(&args.model), limits)
                .map_err(|e| e.to_string())?,
            model: args.model.clone(),
            limits,
        })
    }

    fn solve(
        &mut self,
        image: &[u8],
        instruction: Instruction,
        stages: &mut ClickStages,
    ) -> Result<Vec<Click>, ClickError> {
        solve_click(
            &mut self.detector,
            &mut self.engine,
            &self.model,
            image,
            instruction,
            &self.limits,
            stages,
        )
    }
}

/// One line per file: `FILE<TAB>[[x,y],...]` (or the boxes), or `FILE<TAB>error: ...`.
fn click_files(args: &ClickArgs) -> Result<i32, String> {
    let hint_image = match &args.hint_image {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };
    let instruction = match (&args.hint, &hint_image) {
        (Some(text), _) => Instruction::Text(text),
        (None, Some(bytes)) => Instruction::Image(bytes),
        (None, None) => Instruction::Nothing,
    };
    let mut solver = Solver::load(args)?;
    let mut failures = 0;
    for file in &args.files {
        let answer = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                solver
                    .solve(&bytes, instruction, &mut ClickStages::default())
                    .map_err(|e| format!("{e} (code {})", crate::contract::of_click(&e).code()))
            });
        match answer {
            Ok(clicks) => println!(
                "{}\t{}",
                file.display(),
                clicks_json(&clicks, args.rectangles)
            ),
            Err(message) => {
                failures += 1;
                println!("{}\terror: {message}", file.display());
            }
        }
    }
    Ok(if failures == 0 { 0 } else { 1 })
}

/// `[[x,y],...]`, or `[[x1,y1,x2,y2],...]` for rectangles.
pub fn clicks_json(clicks: &[Click], rectangles: bool) -> String {
    let json = if rectangles {
        serde_json::to_string(&clicks.iter().map(|c| c.area).collect::<Vec<_>>())
    } else {
        serde_json::to_string(&clicks.iter().map(|c| c.point).collect::<Vec<_>>())
    };
    json.expect("integers serialise")
}

/// One image of a labelled set.
struct Labelled {
    image: Vec<u8>,
    hint: String,
    hint_image: Vec<u8>,
    truth: Vec<DetBox>,
}

fn read_manifest(manifest: &Path) -> Result<Vec<Labelled>, String> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("{}: no column {name}", manifest.display()))
    };
    let (file, hint, hint_image, truth) = (
        column("file")?,
        column("hint")?,
        column("hint_image")?,
        column("truth_boxes_in_order")?,
    );
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let cell = |i: usize| cols.get(i).copied().unwrap_or_default();
            Ok(Labelled {
                image: read(cell(file))?,
                hint: cell(hint).to_string(),
                hint_image: read(cell(hint_image))?,
                truth: serde_json::from_str(cell(truth))
                    .map_err(|e| format!("{}: truth: {e}", cell(file)))?,
            })
        })
        .collect()
}

/// Every click inside its truth box, one per truth box.
fn solved(points: &[Option<[i64; 2]>], truth: &[DetBox]) -> bool {
    points.len() == truth.len()
        && points.iter().zip(truth).all(|(point, area)| {
            point.is_some_and(|[x, y]| area[0] <= x && x <= area[2] && area[1] <= y && y <= area[3])
        })
}

fn points_of(answer: Result<Vec<Click>, ClickError>) -> Vec<Option<[i64; 2]>> {
    answer
        .map(|clicks| clicks.iter().map(|c| Some(c.point)).collect())
        .unwrap_or_default()
}

/// Solved counts and milliseconds of one way of solving.
#[derive(Default)]
struct Tally {
    solved: usize,
    nanos: u64,
}

impl Tally {
    fn add(&mut self, points: &[Option<[i64; 2]>], truth: &[DetBox], started: Instant) {
        self.nanos += started.elapsed().as_nanos() as u64;
        self.solved += usize::from(solved(points, truth));
    }

    fn ms_per(&self, count: usize) -> f64 {
        self.nanos as f64 / count.max(1) as f64 / 1e6
    }
}

fn score(args: &ClickArgs) -> Result<i32, String> {
    let [manifest] = args.files.as_slice() else {
        return Err("--score takes one manifest.tsv".into());
    };
    let set = read_manifest(manifest)?;
    let mut solver = Solver::load(args)?;
    let (mut naive, mut by_text, mut by_image) = Default::default();
    let mut stages = ClickStages::default();
    // The three ways alternate image by image, so that a busy machine slows them alike.
    for labelled in &set {
        let started = Instant::now();
        let points = naive_recipe(&mut solver, labelled)?;
        Tally::add(&mut naive, &points, &labelled.truth, started);

        let started = Instant::now();
        let answer = solver.solve(
            &labelled.image,
            Instruction::Text(&labelled.hint),
            &mut stages,
        );
        Tally::add(&mut by_text, &points_of(answer), &labelled.truth, started);

        let started = Instant::now();
        let instruction = Instruction::Image(&labelled.hint_image);
        let answer = solver.solve(&labelled.image, instruction, &mut ClickStages::default());
        Tally::add(&mut by_image, &points_of(answer), &labelled.truth, started);
    }
    print_score(
        manifest,
        &args.model,
        set.len(),
        [&naive, &by_text, &by_image],
        &stages,
    );
    Ok(0)
}

fn print_score(
    manifest: &Path,
    model: &str,
    count: usize,
    [naive, by_text, by_image]: [&Tally; 3],
    stages: &ClickStages,
) {
    let ms = |nanos: u64| nanos as f64 / count.max(1) as f64 / 1e6;
    println!(
        "click-in-order: {} ({count} images), model {model}",
        manifest.display()
    );
    println!(
        "  solved: ddddocr's recipe {}/{count} | text hints {}/{count} | hint images {}/{count}",
        naive.solved, by_text.solved, by_image.solved
    );
    println!(
        "  ms per image, one thread: ddddocr's recipe (detection + each box read) {:.2} | \
         text hints {:.2} ({:+.1} %) | hint images {:.2}",
        naive.ms_per(count),
        by_text.ms_per(count),
        (by_text.nanos as f64 / naive.nanos.max(1) as f64 - 1.0) * 100.0,
        by_image.ms_per(count),
    );
    let detect = stages.detect;
    println!(
        "  text hints, ms per image: detection {:.2} (decode {:.2}, model {:.2}) | \
         boxes read {:.2} | assignment {:.3}",
        ms(detect.decode + detect.letterbox + detect.model + detect.boxes),
        ms(detect.decode),
        ms(detect.model),
        ms(stages.boxes),
        ms(stages.assign),
    );
}

/// What ddddocr's users write, for comparison (the engine's `naive_clicks`).
fn naive_recipe(solver: &mut Solver, labelled: &Labelled) -> Result<Vec<Option<[i64; 2]>>, String> {
    Ok(naive_clicks(
        &mut solver.detector,
        &mut solver.engine,
        &solver.model,
        &labelled.image,
        &labelled.hint,
        &solver.limits,
    )
    .unwrap_or_default())
}
