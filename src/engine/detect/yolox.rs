//! ddddocr's post-processing of the detector's `[1, 3549, 6]` output: YOLOX grid decoding,
//! scores, corners divided by the letterbox ratio, class-agnostic NMS (score > 0.1, IoU with
//! the +1 pixel convention > 0.45 removed), then the `int()` clamping into the image.
//!
//! Numbers follow numpy's dtypes step by step: the grid arithmetic runs in float64 and is
//! stored back as float32 (float32 + int64 arrays promote), everything after it is float32
//! (Python floats are weak scalars), `np.exp` is numpy's own float32 exp.

use super::letterbox::SIDE;
use super::numpy_exp;

/// A box as ddddocr returns it: `[x1, y1, x2, y2]` in the image's pixels.
pub type DetBox = [i64; 4];

const STRIDES: [usize; 3] = [8, 16, 32];
/// x, y, w, h, objectness, class score.
const FIELDS: usize = 6;
const SCORE_THRESHOLD: f32 = 0.1;
const IOU_THRESHOLD: f32 = 0.45;

/// Rows the model outputs for a 416 x 416 input: 52^2 + 26^2 + 13^2.
pub fn expected_rows() -> usize {
    STRIDES.iter().map(|s| (SIDE / s) * (SIDE / s)).sum()
}

/// Candidate boxes (corners in image pixels, float32) and their scores.
struct Candidates {
    corners: Vec<[f32; 4]>,
    scores: Vec<f32>,
}

/// The boxes for `output` (`expected_rows() * 6` values) of an image of `width x height`
/// letterboxed with `ratio`, in ddddocr's order.
pub fn boxes(output: &[f32], ratio: f64, width: usize, height: usize) -> Vec<DetBox> {
    assert_eq!(
        output.len(),
        expected_rows() * FIELDS,
        "detector output size"
    );
    let candidates = decode(output, ratio);
    let keep = nms(&candidates);
    clamp_to_image(
        &keep
            .iter()
            .map(|&i| candidates.corners[i])
            .collect::<Vec<_>>(),
        width,
        height,
    )
}

/// `demo_postprocess`, the score product and the corners, keeping scores above 0.1.
fn decode(output: &[f32], ratio: f64) -> Candidates {
    let ratio = ratio as f32;
    let mut candidates = Candidates {
        corners: Vec::new(),
        scores: Vec::new(),
    };
    let mut rows = output.chunks_exact(FIELDS);
    for stride in STRIDES {
        let cells = SIDE / stride;
        for (cell, row) in (0..cells * cells).zip(&mut rows) {
            let (gx, gy) = ((cell % cells) as f64, (cell / cells) as f64);
            let s = stride as f64;
            let x = ((row[0] as f64 + gx) * s) as f32;
            let y = ((row[1] as f64 + gy) * s) as f32;
            let w = (numpy_exp::exp(row[2]) as f64 * s) as f32;
            let h = (numpy_exp::exp(row[3]) as f64 * s) as f32;
            let score = row[4] * row[5];
            if score > SCORE_THRESHOLD {
                candidates.corners.push([
                    (x - w / 2.0) / ratio,
                    (y - h / 2.0) / ratio,
                    (x + w / 2.0) / ratio,
                    (y + h / 2.0) / ratio,
                ]);
                candidates.scores.push(score);
            }
        }
    }
    candidates
}

/// ddddocr's `nms`: indices in `scores.argsort()[::-1]` order, each kept unless it overlaps
/// an already kept box by IoU > 0.45. numpy's default sort does not promise an order for
/// equal scores; this takes equal scores by descending index, what a stable ascending sort
/// reversed gives (equal float32 products are vanishingly rare).
fn nms(candidates: &Candidates) -> Vec<usize> {
    let scores = &candidates.scores;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    order.reverse();
    let area = |[x1, y1, x2, y2]: [f32; 4]| (x2 - x1 + 1.0) * (y2 - y1 + 1.0);
    let mut keep = Vec::new();
    while let Some((&first, rest)) = order.split_first() {
        keep.push(first);
        let a = candidates.corners[first];
        order = rest
            .iter()
            .copied()
            .filter(|&other| {
                let b = candidates.corners[other];
                let w = maximum(minimum(a[2], b[2]) - maximum(a[0], b[0]) + 1.0, 0.0);
                let h = maximum(minimum(a[3], b[3]) - maximum(a[1], b[1]) + 1.0, 0.0);
                let inter = w * h;
                let overlap = inter / (area(a) + area(b) - inter);
                // NaN overlaps are dropped too, as `np.where(ovr <= thr)` drops them.
                overlap <= IOU_THRESHOLD
            })
            .collect();
    }
    keep
}

/// `np.maximum`: NaN if either is NaN (`f32::max` would ignore the NaN).
fn maximum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// `np.minimum`, NaN-propagating as well.
fn minimum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

/// The final clamping: `0 if x1 < 0 else int(x1)`, `width if x2 > width else int(x2)`, and
/// the same for y. A non-finite coordinate that reaches `int()` raises in Python, which
/// ddddocr catches and answers with an empty list.
fn clamp_to_image(corners: &[[f32; 4]], width: usize, height: usize) -> Vec<DetBox> {
    let low = |v: f32| -> Option<i64> {
        if v < 0.0 {
            Some(0)
        } else {
            v.is_finite().then_some(v.trunc() as i64)
        }
    };
    let high = |v: f32, limit: usize| -> Option<i64> {
        if v as f64 > limit as f64 {
            Some(limit as i64)
        } else {
            v.is_finite().then_some(v.trunc() as i64)
        }
    };
    corners
        .iter()
        .map(|&[x1, y1, x2, y2]| Some([low(x1)?, low(y1)?, high(x2, width)?, high(y2, height)?]))
        .collect::<Option<Vec<DetBox>>>()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output row at grid cell `cell` of stride 8 with the given raw values.
    fn output_with(rows: &[(usize, [f32; 6])]) -> Vec<f32> {
        let mut output = vec![0.0f32; expected_rows() * FIELDS];
        for &(cell, values) in rows {
            output[cell * FIELDS..(cell + 1) * FIELDS].copy_from_slice(&values);
        }
        output
    }

    #[test]
    fn grid_decoding_and_corners() {
        // Cell 53 of stride 8 is grid (1, 1): centre ((0.5 + 1) * 8, (0.5 + 1) * 8) = (12, 12),
        // size exp(ln 2) * 8 = 16 -> corners (4, 4, 20, 20), then / ratio 0.5.
        let output = output_with(&[(
            53,
            [
                0.5,
                0.5,
                std::f32::consts::LN_2,
                std::f32::consts::LN_2,
                0.9,
                0.9,
            ],
        )]);
        assert_eq!(boxes(&output, 0.5, 100, 100), vec![[8, 8, 40, 40]]);
    }

    #[test]
    fn low_scores_are_dropped_and_overlaps_suppressed() {
        let output = output_with(&[
            (53, [0.5, 0.5, 1.0, 1.0, 0.9, 0.9]),
            (54, [0.5, 0.5, 1.0, 1.0, 0.8, 0.9]), // 8 px to the right: IoU ~0.6, suppressed
            (60, [0.5, 0.5, 1.0, 1.0, 0.7, 0.9]), // far away: kept, after the first
            (70, [0.5, 0.5, 1.0, 1.0, 0.3, 0.3]), // score 0.09: dropped
        ]);
        let found = boxes(&output, 1.0, 416, 416);
        assert_eq!(found.len(), 2);
        assert!(found[0][0] < found[1][0]);
    }

    #[test]
    fn boxes_are_clamped_as_ddddocr_does() {
        assert_eq!(
            clamp_to_image(&[[-3.5, 2.9, 120.0, 50.99]], 100, 60),
            vec![[0, 2, 100, 50]]
        );
        // x2 inside the image but negative truncates towards zero, as int() does.
        assert_eq!(
            clamp_to_image(&[[-9.0, -9.0, -0.5, -1.5]], 10, 10),
            vec![[0, 0, 0, -1]]
        );
        // int(nan) raises: ddddocr answers [].
        assert_eq!(
            clamp_to_image(&[[1.0, 1.0, 2.0, 2.0], [f32::NAN, 0.0, 1.0, 1.0]], 10, 10),
            Vec::<DetBox>::new()
        );
    }
}
