//! `cv::resize(..., INTER_LINEAR)` for 8-bit images, as OpenCV computes it
//! (imgproc/src/resize.cpp: `hal::resize`, `resizeGeneric_`, `HResizeLinear`, the `uchar`
//! specialisation of `VResizeLinear`, `resizeAreaFast_`).
//!
//! Coefficients are 11-bit fixed point; the horizontal pass keeps exact `int` sums, the
//! vertical pass combines two rows as `((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16)`
//! rounded by `(+ 2) >> 2` (the SIMD and scalar code of that specialisation agree). An exact
//! 2x downscale in both directions is INTER_AREA's 2x2 average instead, as in OpenCV.

use super::Mat;

const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// `saturate_cast<short>(float)`: round half to even, then clamp.
fn to_short(value: f32) -> i32 {
    value
        .round_ties_even()
        .clamp(i16::MIN as f32, i16::MAX as f32) as i32
}

/// The horizontal taps: for each output column the left source column and the two 11-bit
/// weights. Columns beyond the left edge are clamped to column 0 with weight (1, 0);
/// `copy_from` is OpenCV's `xmax`: from there on the (clamped) source value is copied.
struct ColumnTaps {
    source: Vec<usize>,
    weights: Vec<[i32; 2]>,
    copy_from: usize,
}

/// `((d + 0.5) * scale - 0.5)` in doubles, then as float: the source position OpenCV uses.
fn source_position(d: usize, scale: f64) -> (i64, f32) {
    let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
    let s = f.floor();
    (s as i64, f - s)
}

fn column_taps(in_size: usize, out_size: usize) -> ColumnTaps {
    let scale = 1.0 / (out_size as f64 / in_size as f64);
    let mut taps = ColumnTaps {
        source: Vec::with_capacity(out_size),
        weights: Vec::with_capacity(out_size),
        copy_from: out_size,
    };
    for d in 0..out_size {
        let (mut s, mut f) = source_position(d, scale);
        if s < 0 {
            (s, f) = (0, 0.0);
        }
        if s + 1 >= in_size as i64 {
            taps.copy_from = taps.copy_from.min(d);
            if s >= in_size as i64 - 1 {
                (s, f) = (in_size as i64 - 1, 0.0);
            }
        }
        taps.source.push(s as usize);
        taps.weights
            .push([to_short((1.0 - f) * COEF_SCALE), to_short(f * COEF_SCALE)]);
    }
    taps
}

/// The vertical taps of one output row: two source rows clipped into the image, with weights
/// from the unclipped position (OpenCV does not move the weight at the top and bottom edges;
/// both rows are then the same row).
fn row_taps(d: usize, in_size: usize, scale: f64) -> ([usize; 2], [i32; 2]) {
    let (s, f) = source_position(d, scale);
    let clip = |i: i64| i.clamp(0, in_size as i64 - 1) as usize;
    (
        [clip(s), clip(s + 1)],
        [to_short((1.0 - f) * COEF_SCALE), to_short(f * COEF_SCALE)],
    )
}

/// Resizes to `width` x `height` with OpenCV's INTER_LINEAR.
pub fn resize_linear(src: &Mat, width: usize, height: usize) -> Mat {
    assert!(width > 0 && height > 0, "OpenCV asserts a non-empty size");
    assert!(src.width > 0 && src.height > 0, "non-empty source");
    if (width, height) == (src.width, src.height) {
        return src.clone();
    }
    // hal::resize's `is_area_fast` with both factors 2 (compared with DBL_EPSILON).
    let scale_x = 1.0 / (width as f64 / src.width as f64);
    let scale_y = 1.0 / (height as f64 / src.height as f64);
    if (scale_x - 2.0).abs() < f64::EPSILON && (scale_y - 2.0).abs() < f64::EPSILON {
        return area_halve(src, width, height);
    }
    let columns = column_taps(src.width, width);
    let cn = src.channels;
    let mut cache = RowCache::new(width * cn);
    let mut out = vec![0u8; width * height * cn];
    for (dy, out_row) in out.chunks_exact_mut(width * cn).enumerate() {
        let ([sy0, sy1], [b0, b1]) = row_taps(dy, src.height, scale_y);
        let (s0, s1) = cache.rows(src, &columns, sy0, sy1);
        for ((out, &s0), &s1) in out_row.iter_mut().zip(s0).zip(s1) {
            let value = ((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16) + 2;
            *out = (value >> 2).clamp(0, 255) as u8;
        }
    }
    Mat::new(width, height, cn, out)
}

/// The horizontally resized source rows last used: consecutive output rows mostly share
/// their source rows (OpenCV keeps them the same way).
struct RowCache {
    slots: [(usize, Vec<i32>); 2],
}

impl RowCache {
    fn new(len: usize) -> RowCache {
        RowCache {
            slots: [(usize::MAX, vec![0; len]), (usize::MAX, vec![0; len])],
        }
    }

    fn rows(
        &mut self,
        src: &Mat,
        columns: &ColumnTaps,
        sy0: usize,
        sy1: usize,
    ) -> (&[i32], &[i32]) {
        for (want, other) in [(sy0, sy1), (sy1, sy0)] {
            if !self.slots.iter().any(|(row, _)| *row == want) {
                // Overwrite the slot not holding the other wanted row.
                let victim = usize::from(self.slots[0].0 == other);
                horizontal(
                    src.row(want),
                    columns,
                    src.channels,
                    &mut self.slots[victim].1,
                );
                self.slots[victim].0 = want;
            }
        }
        let find = |row: usize| {
            self.slots
                .iter()
                .position(|(r, _)| *r == row)
                .expect("cached")
        };
        (&self.slots[find(sy0)].1, &self.slots[find(sy1)].1)
    }
}

/// `HResizeLinear` on one row: exact integer sums of two taps, or the copied edge value
/// times 2048 from `copy_from` on.
fn horizontal(row: &[u8], columns: &ColumnTaps, cn: usize, out: &mut [i32]) {
    for (dx, (&sx, &[a0, a1])) in columns.source.iter().zip(&columns.weights).enumerate() {
        for c in 0..cn {
            let left = row[sx * cn + c] as i32;
            out[dx * cn + c] = if dx < columns.copy_from {
                left * a0 + row[(sx + 1) * cn + c] as i32 * a1
            } else {
                left << COEF_BITS
            };
        }
    }
}

/// `resizeAreaFast_` for an exact 2x2 reduction: the rounded mean of each 2x2 block.
fn area_halve(src: &Mat, width: usize, height: usize) -> Mat {
    assert!(src.width == 2 * width && src.height == 2 * height);
    let cn = src.channels;
    let mut out = Vec::with_capacity(width * height * cn);
    for dy in 0..height {
        let (top, bottom) = (src.row(2 * dy), src.row(2 * dy + 1));
        for dx in 0..width {
            for c in 0..cn {
                let at = 2 * dx * cn + c;
                let sum = top[at] as u32
                    + top[at + cn] as u32
                    + bottom[at] as u32
                    + bottom[at + cn] as u32;
                out.push(((sum + 2) >> 2) as u8);
            }
        }
    }
    Mat::new(width, height, cn, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy() {
        let src = Mat::new(3, 2, 1, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(resize_linear(&src, 3, 2), src);
    }

    #[test]
    fn flat_image_stays_flat() {
        for (w, h) in [(7, 5), (13, 9), (2, 40)] {
            let src = Mat::new(10, 6, 3, vec![201; 180]);
            assert!(resize_linear(&src, w, h).data.iter().all(|&v| v == 201));
        }
    }

    #[test]
    fn exact_half_averages_two_by_two_blocks() {
        let src = Mat::new(4, 2, 1, vec![0, 1, 10, 20, 2, 2, 30, 41]);
        assert_eq!(resize_linear(&src, 2, 1).data, vec![1, 25]);
    }

    #[test]
    fn upscale_matches_opencv() {
        // cv2.resize(np.array([[0, 100], [200, 50]], np.uint8), (3, 3)) with OpenCV 5.0.0:
        let src = Mat::new(2, 2, 1, vec![0, 100, 200, 50]);
        assert_eq!(
            resize_linear(&src, 3, 3).data,
            vec![0, 50, 100, 100, 88, 75, 200, 125, 50]
        );
    }
}
