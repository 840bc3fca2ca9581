//! `cv::Canny(gray, low, high)` with the defaults ddddocr uses: 3x3 Sobel, L1 gradient
//! (imgproc/src/canny.cpp, `parallelCanny` and the hysteresis after it).
//!
//! OpenCV's result does not depend on how it splits rows between threads (each chunk's Sobel
//! reads the neighbouring rows, hysteresis continues across chunks), so this runs it as one
//! chunk. IPP's Canny, which a wheel built with IPP would use on a single-threaded machine,
//! is skipped by OpenCV whenever it runs more than one thread.

use super::buffers::{give_back, take};
use super::Mat;

/// Map values, as OpenCV's: 0 = may be an edge (above `low`, a local maximum), 1 = not an
/// edge, 2 = an edge.
const CANDIDATE: u8 = 0;
const NOT_EDGE: u8 = 1;
const EDGE: u8 = 2;
/// tan(22.5 degrees) in 15-bit fixed point.
const TG22: i32 = 13573;

/// The edge map: 255 on edges, 0 elsewhere.
pub fn canny(gray: &Mat, low: f64, high: f64) -> Mat {
    assert_eq!(gray.channels, 1, "Canny of a gray image");
    let (low, high) = if low > high { (high, low) } else { (low, high) };
    // Thresholds are floored to integers; magnitudes are integers.
    let (low, high) = (low.floor() as i32, high.floor() as i32);
    let (width, height) = (gray.width, gray.height);
    let gradient = Gradient::of(gray);
    // Magnitudes, the map and the gradient share one padded layout: a frame of one pixel
    // around the image (magnitude 0, map NOT_EDGE) so that neighbours need no bounds checks.
    let stride = gradient.stride;
    let mut map = take(stride * (height + 2), NOT_EDGE);
    let mut stack = Vec::new();
    for y in 1..=height {
        let first = y * stride + 1;
        for (at, state) in (first..first + width).zip(&mut map[first..first + width]) {
            let m = gradient.magnitude[at];
            if m > low && gradient.is_local_maximum(at) {
                if m > high {
                    *state = EDGE;
                    stack.push(at);
                } else {
                    *state = CANDIDATE;
                }
            }
        }
    }
    hysteresis(&mut map, stride, stack);
    let mut data = vec![0u8; width * height];
    for (y, out) in data.chunks_exact_mut(width).enumerate() {
        let states = &map[(y + 1) * stride + 1..][..width];
        for (o, &state) in out.iter_mut().zip(states) {
            *o = if state == EDGE { 255 } else { 0 };
        }
    }
    give_back(map);
    gradient.give_back();
    Mat::new(width, height, 1, data)
}

/// `Sobel(gray, CV_16S, 1, 0, 3)` and `Sobel(gray, CV_16S, 0, 1, 3)` with BORDER_REPLICATE,
/// and the L1 magnitude, in a layout padded by one pixel on every side.
struct Gradient {
    stride: usize,
    dx: Vec<i16>,
    dy: Vec<i16>,
    magnitude: Vec<i32>,
}

impl Gradient {
    fn of(gray: &Mat) -> Gradient {
        let (width, height) = (gray.width, gray.height);
        let stride = width + 2;
        // One image row with its ends replicated one pixel outwards (BORDER_REPLICATE).
        let padded_row = |y: usize| -> Vec<i16> {
            let source = gray.row(y);
            let mut row = Vec::with_capacity(stride);
            row.push(source[0] as i16);
            row.extend(source.iter().map(|&v| v as i16));
            row.push(source[width - 1] as i16);
            row
        };
        let size = stride * (height + 2);
        let (mut dx, mut dy, mut magnitude) =
            (take(size, 0i16), take(size, 0i16), take(size, 0i32));
        // Column sums first, then differences along the row (the 3x3 Sobel is separable):
        // smooth[x] = above + 2 here + below, rise[x] = below - above.
        let mut smooth = vec![0i16; stride];
        let mut rise = vec![0i16; stride];
        let mut rows = [padded_row(0), padded_row(0), padded_row(1.min(height - 1))];
        for y in 0..height {
            let [above, here, below] = &rows;
            for ((((s, r), &a), &h), &b) in smooth
                .iter_mut()
                .zip(&mut rise)
                .zip(above)
                .zip(here)
                .zip(below)
            {
                *s = a + 2 * h + b;
                *r = b - a;
            }
            let at = (y + 1) * stride + 1;
            let out = at..at + width;
            for (x, ((gx, gy), m)) in dx[out.clone()]
                .iter_mut()
                .zip(&mut dy[out.clone()])
                .zip(&mut magnitude[out])
                .enumerate()
            {
                // Padded column x + 1 is image column x.
                *gx = smooth[x + 2] - smooth[x];
                *gy = rise[x] + 2 * rise[x + 1] + rise[x + 2];
                *m = (*gx as i32).abs() + (*gy as i32).abs();
            }
            rows.rotate_left(1);
            rows[2] = padded_row((y + 2).min(height - 1));
        }
        Gradient {
            stride,
            dx,
            dy,
            magnitude,
        }
    }

    /// Returns the arrays for the next image.
    fn give_back(self) {
        give_back(self.dx);
        give_back(self.dy);
        give_back(self.magnitude);
    }

    /// Non-maximum suppression along the gradient direction, OpenCV's integer version: a
    /// pixel must be greater than its neighbour on one side and at least its neighbour on
    /// the other (strictly greater on both for diagonals). The frame's magnitude is 0.
    fn is_local_maximum(&self, at: usize) -> bool {
        let m = self.magnitude[at];
        let (xs, ys) = (self.dx[at] as i32, self.dy[at] as i32);
        let x = xs.abs();
        let y = ys.abs() << 15;
        let tg22x = x * TG22;
        let stride = self.stride;
        if y < tg22x {
            return m > self.magnitude[at - 1] && m >= self.magnitude[at + 1];
        }
        let tg67x = tg22x + (x << 16);
        if y > tg67x {
            return m > self.magnitude[at - stride] && m >= self.magnitude[at + stride];
        }
        // Diagonal: up-left and down-right when the signs agree, else up-right and down-left.
        let (up, down) = if (xs ^ ys) < 0 {
            (at - stride + 1, at + stride - 1)
        } else {
            (at - stride - 1, at + stride + 1)
        };
        m > self.magnitude[up] && m > self.magnitude[down]
    }
}

/// Grows edges into every 8-connected candidate, from each strong pixel.
fn hysteresis(map: &mut [u8], stride: usize, mut stack: Vec<usize>) {
    while let Some(at) = stack.pop() {
        // The frame is NOT_EDGE, so a neighbour of an inner pixel is always in the map.
        for neighbour in [
            at - stride - 1,
            at - stride,
            at - stride + 1,
            at - 1,
            at + 1,
            at + stride - 1,
            at + stride,
            at + stride + 1,
        ] {
            if map[neighbour] == CANDIDATE {
                map[neighbour] = EDGE;
                stack.push(neighbour);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_image_has_no_edges() {
        let gray = Mat::filled(9, 7, 128);
        assert!(canny(&gray, 50.0, 150.0).data.iter().all(|&v| v == 0));
    }

    #[test]
    fn a_step_gives_one_edge_column() {
        // Left half 0, right half 200: OpenCV marks the column right of the step.
        let mut data = vec![0u8; 8 * 6];
        for y in 0..6 {
            for x in 4..8 {
                data[y * 8 + x] = 200;
            }
        }
        let edges = canny(&Mat::new(8, 6, 1, data), 50.0, 150.0);
        for y in 0..6 {
            let row: Vec<u8> = edges.row(y).to_vec();
            assert_eq!(row, vec![0, 0, 0, 255, 0, 0, 0, 0], "row {y}");
        }
    }
}
