//! From the model's output to text, as ddddocr 1.6.1's `_process_text_output`: argmax per step,
//! CTC collapse at the index level (drop repeats, drop index 0), then the `charset_range`
//! filter, then the characters.

use std::collections::HashSet;

use super::model::ModelSpec;
use super::CharsetRange;

/// The output scores of one image: `steps` rows of `classes` scores.
pub struct Scores<'a> {
    pub data: &'a [f32],
    pub steps: usize,
    pub classes: usize,
    /// Distance between consecutive steps in `data` (the batch size for `[seq, N, C]` output).
    pub step_stride: usize,
}

impl Scores<'_> {
    pub(super) fn step(&self, t: usize) -> &[f32] {
        let at = t * self.step_stride * self.classes;
        &self.data[at..at + self.classes]
    }
}

/// An output whose shape is none ddddocr reads.
#[derive(Debug, Clone, PartialEq)]
pub struct BadShape(pub String);

impl std::fmt::Display for BadShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scores of batch item `b` of `batch`, read the way ddddocr reads a single output:
/// `[seq, 1, C]` (what the ddddocr models really return), `[1, seq, C]`, `[seq, C]`, `[C]`.
/// A batched run returns `[seq, batch, C]`.
pub fn scores_of<'a>(
    shape: &[usize],
    data: &'a [f32],
    b: usize,
    batch: usize,
) -> Result<Scores<'a>, BadShape> {
    let bad_shape = || BadShape(format!("unexpected output shape {shape:?}"));
    let scores = match *shape {
        [steps, n, classes] if n == batch => Scores {
            data: &data[b * classes..],
            steps,
            classes,
            step_stride: batch,
        },
        [1, steps, classes] if batch == 1 => Scores {
            data,
            steps,
            classes,
            step_stride: 1,
        },
        // ddddocr: "default to the first batch" for any other 3-D shape.
        [_, steps, classes] if batch == 1 => Scores {
            data,
            steps,
            classes,
            step_stride: 1,
        },
        [steps, classes] if batch == 1 => Scores {
            data,
            steps,
            classes,
            step_stride: 1,
        },
        [classes] if batch == 1 => Scores {
            data,
            steps: 1,
            classes,
            step_stride: 1,
        },
        _ => return Err(bad_shape()),
    };
    let extent =
        scores.steps.saturating_sub(1) * scores.step_stride * scores.classes + scores.classes;
    if scores.classes == 0 || scores.data.len() < extent {
        return Err(bad_shape());
    }
    Ok(scores)
}

/// numpy's argmax: the first maximum. The maximum is found over 8 independent lanes (which
/// the compiler vectorizes), then its first position.
fn argmax(row: &[f32]) -> usize {
    const LANES: usize = 8;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = if v > *lane { v } else { *lane };
        }
    }
    let max = lanes
        .iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    row.iter().position(|&v| v == max).unwrap_or(0)
}

/// The indices `charset_range` keeps, exactly as CharsetManager.set_ranges computes them
/// (entries deduplicated, "" added, each mapped to its FIRST index in the charset).
pub fn allowed_indices(spec: &ModelSpec, range: &CharsetRange) -> HashSet<usize> {
    let mut entries: Vec<String> = match range {
        CharsetRange::FirstEntries(n) if *n < spec.charset.len() => spec.charset[..=*n].to_vec(),
        CharsetRange::FirstEntries(_) => Vec::new(),
        CharsetRange::Characters(text) => text.chars().map(String::from).collect(),
    };
    entries.push(String::new());
    entries
        .iter()
        .filter_map(|entry| spec.first_index.get(entry).copied())
        .collect()
}

pub fn decode_text(spec: &ModelSpec, scores: &Scores, allowed: Option<&HashSet<usize>>) -> String {
    let mut text = String::new();
    let mut previous = None;
    for t in 0..scores.steps {
        let index = argmax(scores.step(t));
        let is_repeat = previous == Some(index);
        previous = Some(index);
        if is_repeat || index == 0 {
            continue;
        }
        if allowed.is_some_and(|allowed| !allowed.contains(&index)) {
            continue;
        }
        if let Some(entry) = spec.charset.get(index) {
            text.push_str(entry);
        }
    }
    text
}

/// ddddocr's `confidence`: the mean over steps of the largest softmax probability, which is
/// 1 / sum(exp(x - max)) for each step.
pub fn confidence(scores: &Scores) -> f32 {
    if scores.steps == 0 {
        return 0.0;
    }
    let mut total = 0.0f64;
    for t in 0..scores.steps {
        let row = scores.step(t);
        let max = row[argmax(row)];
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        total += 1.0 / sum;
    }
    (total / scores.steps as f64) as f32
}
