//! `cv::matchTemplate(image, templ, TM_CCOEFF_NORMED)` followed by `cv::minMaxLoc`'s maximum,
//! for 8-bit single-channel images (imgproc/src/templmatch.cpp: `crossCorr`,
//! `common_matchTemplate`).
//!
//! OpenCV computes the raw cross-correlation in float32, then normalises in double
//! (`common_matchTemplate`). Where its wheels hand the correlation to IPP (a template of at
//! most a quarter of the image's area), aiocr calls the same IPP function ([`super::ipp`]), so
//! the scores are OpenCV's to the bit. Otherwise (a larger template, OpenCV's own DFT; or IPP
//! not installed) the correlation here is exact: an FFT whose error bound is far below 0.5 on
//! these integer sums, rounded, gives the exact integers, stored as float as OpenCV stores
//! its own. Scores then differ from OpenCV's by its float error only (up to ~1e-4 on dense
//! gray images, ~1e-6 on edge maps), and the maximum's location is the same unless two
//! positions score within that of each other. The normalisation follows OpenCV's double
//! arithmetic step by step in every case.

use std::cell::RefCell;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

use super::buffers::{give_back, take};
use super::{ipp, Mat};

/// The best match: top-left corner of the window, and its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Best {
    pub x: usize,
    pub y: usize,
    pub score: f32,
}

/// OpenCV refuses a template that is larger than the image in one direction and smaller in
/// the other (when it is larger in both, the two are swapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateDoesNotFit;

/// Largest direct sum (template pixels x positions) computed without an FFT.
const DIRECT_LIMIT: usize = 1 << 16;

/// The maximum of `matchTemplate(image, templ, TM_CCOEFF_NORMED)`: its first position in
/// row-major order and its value.
pub fn best_match(image: &Mat, templ: &Mat) -> Result<Best, TemplateDoesNotFit> {
    assert!(image.channels == 1 && templ.channels == 1, "single channel");
    assert!(image.width > 0 && image.height > 0 && templ.width > 0 && templ.height > 0);
    let (image, templ) = if image.width >= templ.width && image.height >= templ.height {
        (image, templ)
    } else if image.width <= templ.width && image.height <= templ.height {
        (templ, image)
    } else {
        return Err(TemplateDoesNotFit);
    };
    Ok(best_ccoeff_normed(image, templ))
}

/// TM_CCOEFF_NORMED's terms that do not depend on the position.
struct Normaliser {
    inv_area: f64,
    templ_mean: f64,
    /// `sqrt(variance) / sqrt(inv_area)`, as OpenCV computes its `templNorm`.
    templ_norm: f64,
}

impl Normaliser {
    /// The score at one position, in OpenCV's double arithmetic, from the correlation as
    /// OpenCV stores it (float) and the exact window sums.
    fn score(&self, correlation: f32, sum: f64, square_sum: f64) -> f32 {
        let num = correlation as f64 - sum * self.templ_mean;
        let t = self.denominator(sum, square_sum);
        let score = if num.abs() < t {
            num / t
        } else if num.abs() < t * 1.125 {
            num.signum()
        } else {
            0.0
        };
        score as f32
    }

    fn window_variance(&self, sum: f64, square_sum: f64) -> Option<f64> {
        let diff2 = (square_sum - sum * sum * self.inv_area).max(0.0);
        // OpenCV: "avoid rounding errors" -- a flat window scores 0.
        (diff2 > (10.0 * f32::EPSILON as f64 * square_sum).min(0.5)).then_some(diff2)
    }

    fn denominator(&self, sum: f64, square_sum: f64) -> f64 {
        self.window_variance(sum, square_sum)
            .map_or(0.0, |diff2| diff2.sqrt() * self.templ_norm)
    }

    /// Whether the position surely scores below `best` (> 0), decided without the square
    /// root and the division: a flat window or a non-positive numerator scores at most 0,
    /// and `num^2 < best^2 t^2` with a margin of 1e-6 (far above the rounding of both
    /// sides, far below the float spacing that could make two scores tie) scores less.
    fn surely_below(&self, best: f32, correlation: f32, sum: f64, square_sum: f64) -> bool {
        let num = correlation as f64 - sum * self.templ_mean;
        let Some(diff2) = self.window_variance(sum, square_sum) else {
            return true;
        };
        if num <= 0.0 {
            return true;
        }
        let best = best as f64;
        num * num < best * best * diff2 * self.templ_norm * self.templ_norm * (1.0 - 1e-6)
    }
}

/// The first maximum, row-major, of TM_CCOEFF_NORMED over every position. Positions that
/// surely score below the best so far are skipped (most of them); every other one is scored
/// exactly as OpenCV scores it.
fn best_ccoeff_normed(image: &Mat, templ: &Mat) -> Best {
    let out_width = image.width - templ.width + 1;
    let inv_area = 1.0 / (templ.width * templ.height) as f64;
    let stats = TemplateStats::of(templ, inv_area);
    if stats.norm_squared < f64::EPSILON {
        // A flat template: OpenCV answers 1 everywhere.
        return Best {
            x: 0,
            y: 0,
            score: 1.0,
        };
    }
    let normaliser = Normaliser {
        inv_area,
        templ_mean: stats.mean,
        templ_norm: stats.norm_squared.sqrt() / inv_area.sqrt(),
    };
    let correlation = stored_correlation(image, templ);
    let mut windows = WindowSums::new(image, templ.width, templ.height);
    let mut best: Option<Best> = None;
    for (y, correlation_row) in correlation.chunks_exact(out_width).enumerate() {
        let (sums, square_sums) = windows.row(y);
        for (x, ((&c, &sum), &square_sum)) in correlation_row
            .iter()
            .zip(sums)
            .zip(square_sums)
            .enumerate()
        {
            let (sum, square_sum) = (sum as f64, square_sum as f64);
            if let Some(b) = best {
                if b.score > 0.0 && normaliser.surely_below(b.score, c, sum, square_sum) {
                    continue;
                }
            }
            let score = normaliser.score(c, sum, square_sum);
            if best.is_none_or(|b| score > b.score) {
                best = Some(Best { x, y, score });
            }
        }
    }
    give_back(correlation);
    best.expect("at least one position")
}

/// Every score of TM_CCOEFF_NORMED, row-major (what `best_ccoeff_normed` searches).
#[cfg(test)]
fn ccoeff_normed(image: &Mat, templ: &Mat) -> Vec<f32> {
    let out_width = image.width - templ.width + 1;
    let inv_area = 1.0 / (templ.width * templ.height) as f64;
    let stats = TemplateStats::of(templ, inv_area);
    let normaliser = Normaliser {
        inv_area,
        templ_mean: stats.mean,
        templ_norm: stats.norm_squared.sqrt() / inv_area.sqrt(),
    };
    let correlation = stored_correlation(image, templ);
    let mut windows = WindowSums::new(image, templ.width, templ.height);
    let mut scores = Vec::new();
    for (y, row) in correlation.chunks_exact(out_width).enumerate() {
        let (sums, square_sums) = windows.row(y);
        for ((&c, &sum), &square_sum) in row.iter().zip(sums).zip(square_sums) {
            scores.push(normaliser.score(c, sum as f64, square_sum as f64));
        }
    }
    scores
}

/// `meanStdDev(templ)` as OpenCV derives its TM_CCOEFF_NORMED terms from it.
struct TemplateStats {
    mean: f64,
    /// The standard deviation squared (after OpenCV's square root).
    norm_squared: f64,
}

impl TemplateStats {
    fn of(templ: &Mat, inv_area: f64) -> TemplateStats {
        let sum: u64 = templ.data.iter().map(|&v| v as u64).sum();
        let square_sum: u64 = templ.data.iter().map(|&v| (v as u64) * (v as u64)).sum();
        let mean = sum as f64 * inv_area;
        let deviation = (square_sum as f64 * inv_area - mean * mean).max(0.0).sqrt();
        TemplateStats {
            mean,
            norm_squared: deviation * deviation,
        }
    }
}

/// The sum and the sum of squares of every `w x h` window, one output row at a time, from
/// running column sums (the same integers OpenCV's CV_64F integral images give).
struct WindowSums<'a> {
    image: &'a Mat,
    w: usize,
    h: usize,
    /// Per image column: the sum over the rows of the current window.
    columns: Vec<u64>,
    column_squares: Vec<u64>,
    next_row: usize,
    sums: Vec<u64>,
    square_sums: Vec<u64>,
}

impl<'a> WindowSums<'a> {
    fn new(image: &'a Mat, w: usize, h: usize) -> WindowSums<'a> {
        let mut windows = WindowSums {
            image,
            w,
            h,
            columns: vec![0; image.width],
            column_squares: vec![0; image.width],
            next_row: 0,
            sums: vec![0; image.width - w + 1],
            square_sums: vec![0; image.width - w + 1],
        };
        for y in 0..h {
            windows.update_columns(y, true);
        }
        windows
    }

    /// Adds image row `y` to the column sums, or takes it out.
    fn update_columns(&mut self, y: usize, add: bool) {
        let row = self.image.row(y);
        for ((c, q), &v) in self
            .columns
            .iter_mut()
            .zip(&mut self.column_squares)
            .zip(row)
        {
            let (v, v2) = (v as u64, (v as u64) * (v as u64));
            if add {
                *c += v;
                *q += v2;
            } else {
                *c -= v;
                *q -= v2;
            }
        }
    }

    /// The window sums of output row `y`; rows must be asked for in order.
    fn row(&mut self, y: usize) -> (&[u64], &[u64]) {
        assert_eq!(y, self.next_row, "window rows in order");
        if y > 0 {
            self.update_columns(y - 1, false);
            self.update_columns(y + self.h - 1, true);
        }
        self.next_row += 1;
        let mut sum: u64 = self.columns[..self.w].iter().sum();
        let mut square: u64 = self.column_squares[..self.w].iter().sum();
        for x in 0..self.sums.len() {
            if x > 0 {
                sum = sum + self.columns[x + self.w - 1] - self.columns[x - 1];
                square = square + self.column_squares[x + self.w - 1] - self.column_squares[x - 1];
            }
            self.sums[x] = sum;
            self.square_sums[x] = square;
        }
        (&self.sums, &self.square_sums)
    }
}

/// The raw correlation of every position as OpenCV's matchTemplate holds it before
/// normalising (its float32 result matrix): IPP's where OpenCV's wheels call IPP (the template
/// at most a quarter of the image's area, hal/ipp's condition) and IPP is loaded, otherwise
/// the exact sums rounded to float.
///
/// Except for two edge maps (0/255 only, the `match` mode's Canny output): there IPP's float
/// error moves scores by under 1e-6 (edge sums do not cancel as dense gray ones do; at most
/// 5.4e-7 on every fixture), and the exact sparse sum costs about half of IPP's FFT on a
/// captcha, so the exact sums are kept.
fn stored_correlation(image: &Mat, templ: &Mat) -> Vec<f32> {
    let ipp_decides = templ.width * templ.height * 4 <= image.width * image.height;
    if ipp_decides && !(is_edge_map(image) && is_edge_map(templ)) {
        if let Some(correlation) = ipp::cross_correlation(image, templ) {
            return correlation;
        }
    }
    let exact = cross_correlation(image, templ);
    let mut stored = take(exact.len(), 0f32);
    for (s, &e) in stored.iter_mut().zip(&exact) {
        *s = e as f32;
    }
    give_back(exact);
    stored
}

/// Exact `Σ image[y + j][x + i] * templ[j][i]` for every valid position, row-major.
///
/// Through an FFT whose rounding error is provably below 0.5 (then rounding gives the exact
/// integers): float32 when both images are binary 0/255 edge maps (correlated as 0/1 counts,
/// small), float64 otherwise; a direct sum for tiny sizes.
fn cross_correlation(image: &Mat, templ: &Mat) -> Vec<i64> {
    let positions = (image.width - templ.width + 1) * (image.height - templ.height + 1);
    if positions * templ.width * templ.height <= DIRECT_LIMIT {
        return direct_correlation(image, templ);
    }
    if is_edge_map(image) && is_edge_map(templ) {
        let (image_points, templ_points) = (edge_points(image), edge_points(templ));
        // Measured: an FFT costs ~0.37 ns per W*H*log2(W*H), one sparse pair ~1.5 ns.
        let fft_cost = {
            let n = (image.width * image.height) as f64;
            0.25 * n * n.log2()
        };
        if (image_points.len() * templ_points.len()) as f64 <= fft_cost {
            return sparse_correlation(image, templ, &image_points, &templ_points);
        }
        let (a, b) = (unit_norm(image), unit_norm(templ));
        let size = image.width * image.height;
        if error_bound(f32::EPSILON as f64, size, a, b) < MAX_FFT_ERROR {
            let mut correlation = fft_correlation::<f32>(image, templ, 1.0 / 255.0);
            correlation.iter_mut().for_each(|count| *count *= 255 * 255);
            return correlation;
        }
    }
    let (a, b) = (unit_norm(image) * 255.0, unit_norm(templ) * 255.0);
    if error_bound(f64::EPSILON, image.width * image.height, a, b) < MAX_FFT_ERROR {
        return fft_correlation::<f64>(image, templ, 1.0);
    }
    direct_correlation(image, templ) // beyond any image the bounds allow
}

/// Whether every sample is 0 or 255, as in Canny's output.
fn is_edge_map(image: &Mat) -> bool {
    image.data.iter().all(|&v| v == 0 || v == 255)
}

/// The non-zero pixels of an edge map, row-major.
fn edge_points(image: &Mat) -> Vec<(usize, usize)> {
    let mut points = Vec::new();
    for y in 0..image.height {
        for (x, &v) in image.row(y).iter().enumerate() {
            if v != 0 {
                points.push((x, y));
            }
        }
    }
    points
}

/// The correlation of two 0/255 edge maps from their edge pixels: every pair of an image
/// edge and a template edge adds 255 * 255 at the position that aligns them. For the sparse
/// edges of slide captchas this is a few hundred thousand additions, far below an FFT.
fn sparse_correlation(
    image: &Mat,
    templ: &Mat,
    image_points: &[(usize, usize)],
    templ_points: &[(usize, usize)],
) -> Vec<i64> {
    let (out_width, out_height) = (
        image.width - templ.width + 1,
        image.height - templ.height + 1,
    );
    let mut counts = take(out_width * out_height, 0u32);
    for &(tx, ty) in templ_points {
        for &(ix, iy) in image_points {
            // Unsigned wrap-around turns negative offsets into huge ones, rejected alike.
            let (x, y) = (ix.wrapping_sub(tx), iy.wrapping_sub(ty));
            if x < out_width && y < out_height {
                counts[y * out_width + x] += 1;
            }
        }
    }
    let mut out = take(counts.len(), 0i64);
    for (o, &c) in out.iter_mut().zip(&counts) {
        *o = c as i64 * 255 * 255;
    }
    give_back(counts);
    out
}

/// Largest FFT error accepted before rounding to integers.
const MAX_FFT_ERROR: f64 = 0.1;

/// The Euclidean norm of an image with every sample divided by 255 (an upper bound for the
/// 0/1 version of an edge map).
fn unit_norm(image: &Mat) -> f64 {
    let squares: u64 = image.data.iter().map(|&v| (v as u64) * (v as u64)).sum();
    (squares as f64).sqrt() / 255.0
}

/// An upper bound of the absolute error of a correlation by FFT: a few times the unit
/// roundoff times log2 of the size times the product of the inputs' norms (the classic
/// bound for FFT convolution, with a safety factor of 4).
fn error_bound(epsilon: f64, size: usize, norm_a: f64, norm_b: f64) -> f64 {
    4.0 * epsilon * (size as f64).log2().max(1.0) * norm_a * norm_b
}

fn direct_correlation(image: &Mat, templ: &Mat) -> Vec<i64> {
    let (out_width, out_height) = (
        image.width - templ.width + 1,
        image.height - templ.height + 1,
    );
    let mut out = take(out_width * out_height, 0i64);
    for y in 0..out_height {
        for ty in 0..templ.height {
            let image_row = image.row(y + ty);
            let templ_row = templ.row(ty);
            for (x, sum) in out[y * out_width..(y + 1) * out_width]
                .iter_mut()
                .enumerate()
            {
                let window = &image_row[x..x + templ.width];
                let dot: u32 = window
                    .iter()
                    .zip(templ_row)
                    .map(|(&a, &b)| a as u32 * b as u32)
                    .sum();
                *sum += dot as i64;
            }
        }
    }
    out
}

/// The float types the FFT runs in, each with its own per-thread planners (plans are cached
/// by length inside them).
trait FftFloat: realfft::FftNum + Float {
    fn with_planners<R>(f: impl FnOnce(&mut RealFftPlanner<Self>, &mut FftPlanner<Self>) -> R)
        -> R;
}

/// What the correlation needs of f32 and f64 beyond rustfft's `FftNum`.
trait Float: Copy {
    const ZERO: Self;
    fn scaled(v: u8, scale: f64) -> Self;
    fn widen(self) -> f64;
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    fn scaled(v: u8, scale: f64) -> f32 {
        (v as f64 * scale) as f32
    }
    fn widen(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    fn scaled(v: u8, scale: f64) -> f64 {
        v as f64 * scale
    }
    fn widen(self) -> f64 {
        self
    }
}

thread_local! {
    static PLANNERS_32: RefCell<(RealFftPlanner<f32>, FftPlanner<f32>)> =
        RefCell::new((RealFftPlanner::new(), FftPlanner::new()));
    static PLANNERS_64: RefCell<(RealFftPlanner<f64>, FftPlanner<f64>)> =
        RefCell::new((RealFftPlanner::new(), FftPlanner::new()));
}

impl FftFloat for f32 {
    fn with_planners<R>(f: impl FnOnce(&mut RealFftPlanner<f32>, &mut FftPlanner<f32>) -> R) -> R {
        PLANNERS_32.with(|p| {
            let (real, complex) = &mut *p.borrow_mut();
            f(real, complex)
        })
    }
}

impl FftFloat for f64 {
    fn with_planners<R>(f: impl FnOnce(&mut RealFftPlanner<f64>, &mut FftPlanner<f64>) -> R) -> R {
        PLANNERS_64.with(|p| {
            let (real, complex) = &mut *p.borrow_mut();
            f(real, complex)
        })
    }
}

/// The smallest size >= `n` whose only prime factors are 2, 3, 5 and 7 (lengths rustfft
/// has fast kernels for).
fn fast_size(n: usize) -> usize {
    (n..)
        .find(|&m| {
            let mut m = m;
            for p in [2, 3, 5, 7] {
                while m % p == 0 {
                    m /= p;
                }
            }
            m == 1
        })
        .expect("a 7-smooth number exists above any n")
}

/// The plans of one 2-D real FFT size: rows real-to-complex, columns complex.
struct Plans<T: FftFloat> {
    width: usize,
    height: usize,
    row_forward: Arc<dyn RealToComplex<T>>,
    row_inverse: Arc<dyn ComplexToReal<T>>,
    column_forward: Arc<dyn Fft<T>>,
    column_inverse: Arc<dyn Fft<T>>,
}

impl<T: FftFloat> Plans<T> {
    fn new(width: usize, height: usize) -> Plans<T> {
        T::with_planners(|real, complex| Plans {
            width,
            height,
            row_forward: real.plan_fft_forward(width),
            row_inverse: real.plan_fft_inverse(width),
            column_forward: complex.plan_fft_forward(height),
            column_inverse: complex.plan_fft_inverse(height),
        })
    }

    /// The 2-D spectrum of `image * scale` zero-padded to the plan's size, as
    /// `(width / 2 + 1)` columns of `height` values each, column-major.
    fn forward(&self, image: &Mat, scale: f64) -> Vec<Complex<T>> {
        let bins = self.width / 2 + 1;
        let zero = Complex::new(T::ZERO, T::ZERO);
        let mut spectrum = take(bins * self.height, zero);
        let mut row = vec![T::ZERO; self.width];
        let mut row_spectrum = vec![zero; bins];
        for y in 0..image.height {
            for (r, &v) in row.iter_mut().zip(image.row(y)) {
                *r = T::scaled(v, scale);
            }
            self.row_forward
                .process(&mut row, &mut row_spectrum)
                .expect("buffer sizes match the plan");
            for (bin, value) in row_spectrum.iter().enumerate() {
                spectrum[bin * self.height + y] = *value;
            }
            // `process` uses the input as scratch: clear it for the next row's padding.
            row.iter_mut().for_each(|r| *r = T::ZERO);
        }
        // Rows below the image are zero and stay zero through the row transforms.
        self.column_forward.process(&mut spectrum);
        spectrum
    }
}

/// The correlation of `image * scale` with `templ * scale` through the FFT, rounded to
/// integers. The caller has checked that the error bound is far below 0.5.
fn fft_correlation<T: FftFloat>(image: &Mat, templ: &Mat, scale: f64) -> Vec<i64> {
    let plans = Plans::<T>::new(fast_size(image.width), fast_size(image.height));
    let mut spectrum = plans.forward(image, scale);
    let templ_spectrum = plans.forward(templ, scale);
    // Correlation: the image's spectrum times the conjugate of the template's.
    for (a, b) in spectrum.iter_mut().zip(&templ_spectrum) {
        *a = *a * b.conj();
    }
    give_back(templ_spectrum);
    plans.column_inverse.process(&mut spectrum);
    let bins = plans.width / 2 + 1;
    let normalise = 1.0 / (plans.width * plans.height) as f64;
    let (out_width, out_height) = (
        image.width - templ.width + 1,
        image.height - templ.height + 1,
    );
    let mut out = take(0, 0i64);
    out.reserve(out_width * out_height);
    let zero = T::ZERO;
    let mut row_spectrum = vec![Complex::new(zero, zero); bins];
    let mut row = vec![zero; plans.width];
    for y in 0..out_height {
        for (bin, value) in row_spectrum.iter_mut().enumerate() {
            *value = spectrum[bin * plans.height + y];
        }
        // The inverse real FFT wants real DC and Nyquist bins; rounding left tiny imaginary
        // parts there.
        row_spectrum[0].im = zero;
        if plans.width.is_multiple_of(2) {
            row_spectrum[bins - 1].im = zero;
        }
        plans
            .row_inverse
            .process(&mut row_spectrum, &mut row)
            .expect("buffer sizes match the plan");
        // The sums are non-negative, so truncating after adding a half rounds them (and is
        // much cheaper than `round`, a libm call).
        out.extend(
            row[..out_width]
                .iter()
                .map(|v| (v.widen() * normalise + 0.5) as i64),
        );
    }
    give_back(spectrum);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_image(width: usize, height: usize, seed: u64, binary: bool) -> Mat {
        let mut state = seed | 1;
        let data = (0..width * height)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if binary {
                    if state.is_multiple_of(7) {
                        255
                    } else {
                        0
                    }
                } else {
                    (state >> 24) as u8
                }
            })
            .collect();
        Mat::new(width, height, 1, data)
    }

    #[test]
    fn fft_correlation_is_exact() {
        for (seed, binary) in [(1, false), (2, true), (3, false), (4, true)] {
            let image = random_image(97, 61, seed, binary);
            let templ = random_image(23, 17, seed + 10, binary);
            let direct = direct_correlation(&image, &templ);
            assert_eq!(cross_correlation(&image, &templ), direct);
            assert_eq!(fft_correlation::<f64>(&image, &templ, 1.0), direct);
        }
    }

    #[test]
    fn sparse_correlation_of_edge_maps_is_exact() {
        let image = random_image(120, 70, 5, true);
        let templ = random_image(30, 20, 6, true);
        let (a, b) = (edge_points(&image), edge_points(&templ));
        assert_eq!(
            sparse_correlation(&image, &templ, &a, &b),
            direct_correlation(&image, &templ)
        );
    }

    #[test]
    fn finds_a_template_cut_from_the_image() {
        let image = random_image(80, 50, 7, false);
        let mut templ = Vec::new();
        for y in 21..21 + 12 {
            templ.extend_from_slice(&image.row(y)[33..33 + 15]);
        }
        let best = best_match(&image, &Mat::new(15, 12, 1, templ)).unwrap();
        assert_eq!((best.x, best.y), (33, 21));
        assert!((best.score - 1.0).abs() < 1e-6, "{}", best.score);
    }

    #[test]
    fn skipping_keeps_the_first_maximum_of_all_scores() {
        for seed in 0..12 {
            let binary = seed % 2 == 0;
            let image = random_image(70, 40, seed + 100, binary);
            let templ = random_image(9, 7, seed + 200, binary);
            let scores = ccoeff_normed(&image, &templ);
            let (mut at, mut max) = (0, scores[0]);
            for (i, &s) in scores.iter().enumerate() {
                if s > max {
                    (at, max) = (i, s);
                }
            }
            let width = image.width - templ.width + 1;
            let expected = Best {
                x: at % width,
                y: at / width,
                score: max,
            };
            assert_eq!(best_match(&image, &templ).unwrap(), expected, "seed {seed}");
        }
    }

    #[test]
    fn flat_template_scores_one_at_the_origin() {
        let image = random_image(30, 20, 9, false);
        let best = best_match(&image, &Mat::filled(5, 5, 0)).unwrap();
        assert_eq!(
            best,
            Best {
                x: 0,
                y: 0,
                score: 1.0
            }
        );
    }

    #[test]
    fn template_larger_in_one_direction_only_is_refused() {
        let image = Mat::filled(30, 20, 1);
        assert_eq!(
            best_match(&image, &Mat::filled(40, 5, 1)),
            Err(TemplateDoesNotFit)
        );
        // Larger in both: OpenCV swaps the two.
        assert!(best_match(&Mat::filled(5, 5, 1), &image).is_ok());
    }

    /// IPP's float32 correlation is the exact one up to float error, and is what the search
    /// uses for gray images (edge maps keep the exact sums).
    #[test]
    fn ipp_correlation_is_the_exact_one_up_to_float_error() {
        ipp::load(&crate::test_support::model_dir()).expect("models/ipp: run scripts/setup.sh");
        let image = random_image(200, 100, 3, false);
        let templ = random_image(40, 30, 4, false);
        let from_ipp = ipp::cross_correlation(&image, &templ).expect("IPP answers");
        let exact = cross_correlation(&image, &templ);
        assert_eq!(from_ipp.len(), exact.len());
        // Sums near 1e8; float32 spacing there is 8, IPP's FFT stays within a few of it.
        for (&ipp_sum, &exact_sum) in from_ipp.iter().zip(&exact) {
            assert!(
                (ipp_sum as f64 - exact_sum as f64).abs() <= 256.0,
                "{ipp_sum} {exact_sum}"
            );
        }
        assert_eq!(stored_correlation(&image, &templ), from_ipp);
        // Edge maps: exact sums, as float.
        let (edges, edge_templ) = (
            random_image(200, 100, 5, true),
            random_image(40, 30, 6, true),
        );
        let stored = stored_correlation(&edges, &edge_templ);
        let exact: Vec<f32> = cross_correlation(&edges, &edge_templ)
            .iter()
            .map(|&c| c as f32)
            .collect();
        assert_eq!(stored, exact);
    }

    #[test]
    fn fast_sizes_have_small_factors() {
        assert_eq!(fast_size(317), 320);
        assert_eq!(fast_size(1), 1);
        assert_eq!(fast_size(121), 125);
        assert_eq!(fast_size(281), 288);
        assert_eq!(fast_size(209), 210);
    }
}
