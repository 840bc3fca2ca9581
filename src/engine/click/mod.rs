//! Click-in-order captchas: "click 有, 她, 验 in this order" on a picture of scattered
//! characters. ddddocr's users detect the characters, read every box and click the first box
//! whose text contains each character (74 of 100 right on the shared fixtures). Here every
//! box's probability of every asked character is read off the model's steps, and the
//! assignment of characters to distinct boxes with the largest total probability wins: a box
//! that reads "她" second-best still gets clicked when nothing else claims it.
//!
//! The instruction is the characters as text, or an image of them read by the same model
//! (each of its characters as the model's distribution there, not only its best guess).

mod assign;

use std::time::Instant;

use super::cv::imdecode::imdecode_color;
use super::cv::Mat;
use super::preprocess::elapsed_nanos;
use super::steps::{log_add, StepProbs};
use super::{
    DetBox, DetectError, DetectStages, Detector, Engine, ImageError, ImageLimits, Mode, Pixels,
    RecognizeError, RecognizeOptions,
};
use assign::best_assignment;

/// The model the server reads click captchas' boxes and hint images with: the one ddddocr's
/// users read click captchas with (`aiocr click --model` chooses another).
pub const CLICK_MODEL: &str = "beta";

/// What to click.
#[derive(Clone, Copy, Debug)]
pub enum Instruction<'a> {
    /// The characters to click, in order (after the last `:` if there is one, letters,
    /// digits and ideographs only: "请依次点击：有,她,验" asks for 有她验).
    Text(&'a str),
    /// An image of the characters to click, in order.
    Image(&'a [u8]),
    /// Nothing: every box, in reading order.
    Nothing,
}

/// One click: a point in the image's pixels and the box it is the centre of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Click {
    pub point: [i64; 2],
    pub area: DetBox,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClickError {
    #[error("{0}")]
    Image(#[from] ImageError),
    #[error("{0}")]
    Detect(DetectError),
    #[error("{0}")]
    Recognize(RecognizeError),
    /// The image was read but cannot answer the instruction (fewer characters found than
    /// asked for, an instruction with no characters).
    #[error("unsolvable: {0}")]
    Unsolvable(String),
}

impl From<DetectError> for ClickError {
    fn from(error: DetectError) -> ClickError {
        match error {
            DetectError::Image(image) => ClickError::Image(image),
            other => ClickError::Detect(other),
        }
    }
}

impl From<RecognizeError> for ClickError {
    fn from(error: RecognizeError) -> ClickError {
        match error {
            RecognizeError::Image(image) => ClickError::Image(image),
            other => ClickError::Recognize(other),
        }
    }
}

/// Nanoseconds per stage, for `aiocr click --bench`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClickStages {
    pub detect: DetectStages,
    /// Cropping, resizing and reading every box.
    pub boxes: u64,
    /// Reading the instruction image.
    pub instruction: u64,
    /// The characters' probabilities and their assignment.
    pub assign: u64,
}

impl std::ops::AddAssign for ClickStages {
    fn add_assign(&mut self, other: ClickStages) {
        self.detect += other.detect;
        self.boxes += other.boxes;
        self.instruction += other.instruction;
        self.assign += other.assign;
    }
}

/// A probability too small to matter, for characters the model cannot read at all: keeps
/// the assignment's arithmetic finite.
const FLOOR: f64 = -1000.0;
/// How many of the instruction image's most probable characters a step keeps.
const INSTRUCTION_ALTERNATIVES: usize = 8;

/// The clicks that answer `instruction` on `image`: detection, every box read with `model`,
/// the best assignment of the instruction's characters to distinct boxes.
pub fn solve_click(
    detector: &mut Detector,
    engine: &mut Engine,
    model: &str,
    image: &[u8],
    instruction: Instruction,
    limits: &ImageLimits,
    stages: &mut ClickStages,
) -> Result<Vec<Click>, ClickError> {
    let started = Instant::now();
    let decoded = imdecode_color(image, limits)?;
    stages.detect.decode += elapsed_nanos(started);
    let boxes = detector.detect_decoded(&decoded, &mut stages.detect)?;
    let wanted = match instruction {
        Instruction::Nothing => return Ok(in_reading_order(&boxes)),
        Instruction::Text(text) => wanted_of_text(engine, model, text)?,
        Instruction::Image(bytes) => {
            let started = Instant::now();
            let wanted = wanted_of_image(engine, model, bytes)?;
            stages.instruction += elapsed_nanos(started);
            wanted
        }
    };
    if wanted.is_empty() {
        return Err(ClickError::Unsolvable("no characters to click".into()));
    }
    if wanted.len() > boxes.len() {
        return Err(ClickError::Unsolvable(format!(
            "{} characters asked for, {} found",
            wanted.len(),
            boxes.len()
        )));
    }
    let started = Instant::now();
    let readings = boxes
        .iter()
        .map(|area| read_box(engine, model, &decoded, area))
        .collect::<Result<Vec<_>, _>>()?;
    stages.boxes += elapsed_nanos(started);

    let started = Instant::now();
    let score: Vec<Vec<f64>> = wanted
        .iter()
        .map(|character| {
            readings
                .iter()
                .map(|reading| match reading {
                    Some(probs) => character.log_prob_in(probs),
                    None => FLOOR,
                })
                .collect()
        })
        .collect();
    let clicks = best_assignment(&score)
        .into_iter()
        .map(|b| click_of(boxes[b]))
        .collect();
    stages.assign += elapsed_nanos(started);
    Ok(clicks)
}

/// One character to click: the model's classes it may be, with their probabilities (one
/// class for a character given as text).
struct Wanted {
    alternatives: Vec<(usize, f32)>,
}

impl Wanted {
    /// The log probability that a box shows this character: for each alternative, its
    /// probability times the box's best probability of that class.
    fn log_prob_in(&self, probs: &StepProbs) -> f64 {
        let log_prob = self
            .alternatives
            .iter()
            .map(|&(class, log_p)| log_p + probs.best_log_prob(class))
            .fold(f32::NEG_INFINITY, log_add);
        (log_prob as f64).max(FLOOR)
    }
}

/// The characters of a text instruction, each as its class in `model`'s charset (a
/// character the charset lacks matches no box better than another).
fn wanted_of_text(engine: &Engine, model: &str, text: &str) -> Result<Vec<Wanted>, ClickError> {
    let spec = engine.spec(model)?;
    let characters = text.rsplit([':', '：']).next().unwrap_or(text);
    Ok(characters
        .chars()
        .filter(|c| c.is_alphanumeric())
        .map(|c| Wanted {
            alternatives: spec
                .first_index
                .get(&c.to_string())
                .map(|&class| (class, 0.0))
                .into_iter()
                .collect(),
        })
        .collect())
}

/// The characters an instruction image shows: every character of the model's reading, as
/// the distribution of the step it was read at.
fn wanted_of_image(
    engine: &mut Engine,
    model: &str,
    image: &[u8],
) -> Result<Vec<Wanted>, ClickError> {
    let options = RecognizeOptions {
        model: model.to_string(),
        ..RecognizeOptions::default()
    };
    let probs = engine.step_probs(image, &options)?;
    let mut wanted = Vec::new();
    let mut previous = 0;
    for t in 0..probs.steps() {
        let row = probs.row(t);
        let best = argmax(row);
        if best != 0 && best != previous {
            wanted.push(Wanted {
                alternatives: most_probable_characters(row, INSTRUCTION_ALTERNATIVES),
            });
        }
        previous = best;
    }
    Ok(wanted)
}

/// The first maximum, as ddddocr's argmax.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (k, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = k;
        }
    }
    best
}

/// The `count` most probable classes of a step but the blank, with their log probabilities.
fn most_probable_characters(row: &[f32], count: usize) -> Vec<(usize, f32)> {
    let mut classes: Vec<usize> = (1..row.len()).collect();
    let by_probability = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]);
    if classes.len() > count {
        classes.select_nth_unstable_by(count - 1, by_probability);
        classes.truncate(count);
    }
    classes.into_iter().map(|k| (k, row[k])).collect()
}

/// The model's steps for one box of the image (`None` for a box with no pixels).
fn read_box(
    engine: &mut Engine,
    model: &str,
    image: &Mat,
    area: &DetBox,
) -> Result<Option<StepProbs>, ClickError> {
    let Some(crop) = crop_rgb(image, area) else {
        return Ok(None);
    };
    Ok(Some(engine.step_probs_of_pixels(&crop, model)?))
}

/// The pixels of `area` (right and bottom edges excluded, as Pillow's crop), as RGB.
fn crop_rgb(image: &Mat, area: &DetBox) -> Option<Pixels> {
    assert_eq!(image.channels, 3, "imdecode_color gives BGR");
    let clamp = |v: i64, end: usize| v.clamp(0, end as i64) as usize;
    let (x1, x2) = (clamp(area[0], image.width), clamp(area[2], image.width));
    let (y1, y2) = (clamp(area[1], image.height), clamp(area[3], image.height));
    if x2 <= x1 || y2 <= y1 {
        return None;
    }
    let mut rgb = Vec::with_capacity((x2 - x1) * (y2 - y1) * 3);
    for y in y1..y2 {
        for bgr in image.row(y)[x1 * 3..x2 * 3].chunks_exact(3) {
            rgb.extend_from_slice(&[bgr[2], bgr[1], bgr[0]]);
        }
    }
    Some(Pixels::new(Mode::Rgb, x2 - x1, y2 - y1, rgb, None))
}

/// What ddddocr's users write (its issues #45, #97, ...), for comparison: detection, every
/// box read, each character of `hint` clicked at the centre of the first box whose text
/// contains it (`None` where none does).
pub fn naive_clicks(
    detector: &mut Detector,
    engine: &mut Engine,
    model: &str,
    image: &[u8],
    hint: &str,
    limits: &ImageLimits,
) -> Result<Vec<Option<[i64; 2]>>, ClickError> {
    let decoded = imdecode_color(image, limits)?;
    let boxes = detector.detect_decoded(&decoded, &mut DetectStages::default())?;
    let options = RecognizeOptions {
        model: model.to_string(),
        ..RecognizeOptions::default()
    };
    let mut texts = Vec::with_capacity(boxes.len());
    for area in &boxes {
        texts.push(match crop_rgb(&decoded, area) {
            Some(crop) => engine.recognize_pixels(&crop, &options)?.text,
            None => String::new(),
        });
    }
    Ok(hint
        .chars()
        .map(|c| {
            let at = texts.iter().position(|text| text.contains(c))?;
            Some(click_of(boxes[at]).point)
        })
        .collect())
}

fn click_of(area: DetBox) -> Click {
    Click {
        point: [(area[0] + area[2]) / 2, (area[1] + area[3]) / 2],
        area,
    }
}

/// Every box as a click, in reading order: rows top to bottom (a box whose centre lies within
/// the row's first box's height joins that row), each row left to right.
fn in_reading_order(boxes: &[DetBox]) -> Vec<Click> {
    let mut by_top: Vec<DetBox> = boxes.to_vec();
    by_top.sort_by_key(|b| (b[1], b[0]));
    let mut rows: Vec<Vec<DetBox>> = Vec::new();
    for area in by_top {
        let centre_y = (area[1] + area[3]) / 2;
        match rows.last_mut() {
            Some(row) if centre_y <= row[0][3] => row.push(area),
            _ => rows.push(vec![area]),
        }
    }
    rows.into_iter()
        .flat_map(|mut row| {
            row.sort_by_key(|b| (b[0], b[1]));
            row
        })
        .map(click_of)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_come_in_reading_order() {
        let boxes = [
            [200, 12, 240, 50],
            [10, 100, 50, 140],
            [20, 10, 60, 48],
            [110, 20, 150, 60],
        ];
        let order: Vec<DetBox> = in_reading_order(&boxes).iter().map(|c| c.area).collect();
        assert_eq!(
            order,
            [boxes[2], boxes[3], boxes[0], boxes[1]],
            "the top row left to right, then the next"
        );
        assert_eq!(in_reading_order(&boxes)[0].point, [40, 29]);
    }

    #[test]
    fn crops_exclude_the_far_edges_and_swap_to_rgb() {
        let image = Mat::new(3, 2, 3, (0..18).collect());
        let crop = crop_rgb(&image, &[1, 0, 3, 1]).unwrap();
        assert_eq!((crop.width, crop.height), (2, 1));
        assert_eq!(crop.data, [5, 4, 3, 8, 7, 6]);
        assert!(crop_rgb(&image, &[2, 1, 2, 2]).is_none(), "no pixels");
        assert!(crop_rgb(&image, &[-5, -5, 0, 9]).is_none(), "outside");
    }
}
