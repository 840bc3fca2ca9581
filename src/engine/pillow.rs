//! Pillow's own arithmetic, ported for bit-identical results: LANCZOS resampling with 22-bit
//! fixed-point coefficients and an 8-bit clipped intermediate (libImaging/Resample.c), NEAREST
//! scaling (Geometry.c, ImagingScaleAffine), alpha premultiplication (Convert.c), the ITU-R 601-2
//! gray conversion, and pasting on white through the alpha band (Paste.c).

use std::cell::RefCell;
use std::rc::Rc;

use super::pixels::{Mode, Pixels};

/// `Image.resize(size, LANCZOS)` as Pillow does it, including its mode rules.
pub fn resize_lanczos(image: &Pixels, width: usize, height: usize) -> Pixels {
    assert!(width > 0 && height > 0, "resize to an empty image");
    if image.width == width && image.height == height {
        return image.clone();
    }
    match image.mode {
        // Pillow resizes palette and bilevel images with NEAREST whatever was asked.
        Mode::P | Mode::Bilevel => resize_nearest(image, width, height),
        // LA/RGBA are premultiplied by alpha, resized, then un-premultiplied.
        Mode::La | Mode::Rgba => {
            let mut premultiplied = image.clone();
            premultiply(&mut premultiplied.data, image.mode.channels());
            let mut resized = resample(&premultiplied, width, height);
            unpremultiply(&mut resized.data, image.mode.channels());
            resized
        }
        // CMYK has no alpha band: its four samples are resampled as they are.
        Mode::L | Mode::Rgb | Mode::Cmyk => resample(image, width, height),
        Mode::I16 => resample_16bpc(image, width, height),
    }
}

/// Lanczos support in source pixels at scale 1.
const LANCZOS_SUPPORT: f64 = 3.0;
/// 8 bits for the result, 2 for overflow of negative lobes (Resample.c's PRECISION_BITS).
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos(x: f64) -> f64 {
    if (-LANCZOS_SUPPORT..LANCZOS_SUPPORT).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Per output pixel: the first input pixel and the fixed-point weights of the inputs it uses.
struct Coefficients {
    /// `(first_input, input_count)` per output pixel.
    bounds: Vec<(usize, usize)>,
    /// `kernel_size` weights per output pixel.
    weights: Vec<i32>,
    kernel_size: usize,
}

/// Most callers resize images of a handful of sizes (one captcha site, one size), so each
/// thread keeps the coefficients of the sizes it met last: they cost ~3,000 `sin` calls.
const COEFFICIENT_CACHE_ENTRIES: usize = 32;

/// `((input size, output size), coefficients)`, oldest first.
type CoefficientCache = Vec<((usize, usize), Rc<Coefficients>)>;

thread_local! {
    static COEFFICIENT_CACHE: RefCell<CoefficientCache> = const { RefCell::new(Vec::new()) };
}

fn coefficients(in_size: usize, out_size: usize) -> Rc<Coefficients> {
    COEFFICIENT_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, found)) = cache.iter().find(|(key, _)| *key == (in_size, out_size)) {
            return found.clone();
        }
        let computed = Rc::new(compute_coefficients(in_size, out_size));
        if cache.len() == COEFFICIENT_CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push(((in_size, out_size), computed.clone()));
        computed
    })
}

/// Resample.c's `precompute_coeffs` for a box of the whole input: per output pixel, its
/// first input and the weights of its inputs, divided by their sum (double precision).
struct Weights {
    bounds: Vec<(usize, usize)>,
    /// `kernel_size` weights per output pixel (zero past each pixel's count).
    weights: Vec<f64>,
    kernel_size: usize,
}

fn precompute_weights(in_size: usize, out_size: usize) -> Weights {
    // Pillow passes the box as C floats; whole-image boxes are exact in f32.
    let in0 = 0.0f32;
    let in1 = in_size as f32;
    let scale = (in1 - in0) as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = LANCZOS_SUPPORT * filter_scale;
    let kernel_size = support.ceil() as usize * 2 + 1;
    let inv_filter_scale = 1.0 / filter_scale;

    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0f64; out_size * kernel_size];
    for (xx, k) in weights.chunks_exact_mut(kernel_size).enumerate() {
        let center = in0 as f64 + (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let count = xmax.max(0) as usize;
        let mut sum = 0.0;
        for (x, weight) in k.iter_mut().enumerate().take(count) {
            let w = lanczos((x as f64 + xmin as f64 - center + 0.5) * inv_filter_scale);
            *weight = w;
            sum += w;
        }
        if sum != 0.0 {
            k[..count].iter_mut().for_each(|w| *w /= sum);
        }
        bounds.push((xmin as usize, count));
    }
    Weights {
        bounds,
        weights,
        kernel_size,
    }
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc`: the weights in 22-bit fixed point.
fn compute_coefficients(in_size: usize, out_size: usize) -> Coefficients {
    let Weights {
        bounds,
        weights,
        kernel_size,
    } = precompute_weights(in_size, out_size);
    let weights = weights
        .iter()
        .map(|&w| {
            let scaled = w * (1u32 << PRECISION_BITS) as f64;
            if w < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            }
        })
        .collect();
    Coefficients {
        bounds,
        weights,
        kernel_size,
    }
}

/// Resample.c's clip8: the accumulator's integer part clamped to a byte.
#[inline(always)]
fn clip8(accumulator: i32) -> u8 {
    (accumulator >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUNDING: i32 = 1 << (PRECISION_BITS - 1);

/// Runs [`resample_passes`] compiled for AVX2 where the CPU has it (the integer sums are the
/// same; only the vector width differs), else for the baseline x86-64 / other targets.
fn resample(image: &Pixels, width: usize, height: usize) -> Pixels {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { resample_avx2(image, width, height) };
    }
    resample_passes(image, width, height)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resample_avx2(image: &Pixels, width: usize, height: usize) -> Pixels {
    resample_passes(image, width, height)
}

/// ImagingResampleInner: horizontal pass (only over the rows the vertical pass needs) into an
/// 8-bit intermediate, then the vertical pass; each pass only when its size changes.
#[inline(always)]
fn resample_passes(image: &Pixels, width: usize, height: usize) -> Pixels {
    let vertical = coefficients(image.height, height);
    let first_row = vertical.bounds[0].0;
    let (last_first, last_count) = vertical.bounds[height - 1];
    let last_row = last_first + last_count;

    let resized = match (width != image.width, height != image.height) {
        (true, true) => vertical_pass(
            &horizontal_pass(image, width, first_row, last_row),
            &vertical,
            first_row,
        ),
        (true, false) => horizontal_pass(image, width, 0, image.height),
        (false, true) => vertical_pass(image, &vertical, 0),
        (false, false) => image.clone(),
    };
    debug_assert_eq!(resized.data.len(), width * height * image.mode.channels());
    resized
}

#[inline(always)]
fn horizontal_pass(image: &Pixels, width: usize, first_row: usize, last_row: usize) -> Pixels {
    let channels = image.mode.channels();
    let coeffs = coefficients(image.width, width);
    let rows = last_row - first_row;
    let in_stride = image.width * channels;
    let mut out = vec![0u8; width * rows * channels];
    for (y, out_row) in out.chunks_exact_mut(width * channels).enumerate() {
        let in_row = &image.data[(y + first_row) * in_stride..(y + first_row + 1) * in_stride];
        match channels {
            1 => horizontal_row::<1>(in_row, out_row, &coeffs),
            2 => horizontal_row::<2>(in_row, out_row, &coeffs),
            3 => horizontal_row::<3>(in_row, out_row, &coeffs),
            _ => horizontal_row::<4>(in_row, out_row, &coeffs),
        }
    }
    Pixels {
        mode: image.mode,
        width,
        height: rows,
        data: out,
        palette: None,
    }
}

/// One row of the horizontal pass; `C` channels accumulate side by side, as Pillow's ss0..ss3.
#[inline(always)]
fn horizontal_row<const C: usize>(in_row: &[u8], out_row: &mut [u8], coeffs: &Coefficients) {
    for (out_pixel, (xx, &(xmin, count))) in out_row
        .chunks_exact_mut(C)
        .zip(coeffs.bounds.iter().enumerate())
    {
        let k = &coeffs.weights[xx * coeffs.kernel_size..][..count];
        let taps = &in_row[xmin * C..(xmin + count) * C];
        let mut acc = [ROUNDING; C];
        for (pixel, &weight) in taps.chunks_exact(C).zip(k) {
            for c in 0..C {
                acc[c] += pixel[c] as i32 * weight;
            }
        }
        for c in 0..C {
            out_pixel[c] = clip8(acc[c]);
        }
    }
}

/// `row_offset`: the first input row `image` holds (the horizontal pass skipped rows above it).
/// Whole rows accumulate at once, which the compiler vectorizes; the sums are Pillow's.
#[inline(always)]
fn vertical_pass(image: &Pixels, coeffs: &Coefficients, row_offset: usize) -> Pixels {
    let stride = image.width * image.mode.channels();
    let height = coeffs.bounds.len();
    let mut out = vec![0u8; stride * height];
    let mut acc = vec![0i32; stride];
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (ymin, count) = coeffs.bounds[yy];
        let ymin = ymin - row_offset;
        let k = &coeffs.weights[yy * coeffs.kernel_size..][..count];
        acc.fill(ROUNDING);
        for (y, &weight) in k.iter().enumerate() {
            let in_row = &image.data[(ymin + y) * stride..(ymin + y + 1) * stride];
            for (sum, &sample) in acc.iter_mut().zip(in_row) {
                *sum += sample as i32 * weight;
            }
        }
        for (sample, &sum) in out_row.iter_mut().zip(&acc) {
            *sample = clip8(sum);
        }
    }
    Pixels {
        mode: image.mode,
        width: image.width,
        height,
        data: out,
        palette: None,
    }
}

/// Resample.c's `_ImagingResampleHorizontal_16bpc` / `_ImagingResampleVertical_16bpc` for
/// I;16: the weights stay doubles (no fixed point) and each pass rounds half away from zero
/// (ROUND_UP) and clips to 0..=65535 (CLIP16); the horizontal pass runs first, over the rows
/// the vertical pass needs, as in ImagingResampleInner.
fn resample_16bpc(image: &Pixels, width: usize, height: usize) -> Pixels {
    assert_eq!(image.mode, Mode::I16);
    let samples: Vec<u16> = image
        .data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    let vertical = precompute_weights(image.height, height);
    let (mut rows, mut first_row, mut row_width) = (samples, 0, image.width);
    if width != image.width {
        let (last_first, last_count) = vertical.bounds[height - 1];
        first_row = vertical.bounds[0].0;
        let horizontal = precompute_weights(image.width, width);
        let mut out = Vec::with_capacity(width * (last_first + last_count - first_row));
        for y in first_row..last_first + last_count {
            let row = &rows[y * image.width..(y + 1) * image.width];
            out.extend((0..width).map(|xx| weighted_16bpc(&horizontal, xx, |x| row[x])));
        }
        (rows, row_width) = (out, width);
    }
    if height != image.height {
        let mut out = Vec::with_capacity(row_width * height);
        for yy in 0..height {
            let at = |y: usize, x: usize| rows[(y - first_row) * row_width + x];
            out.extend((0..row_width).map(|x| weighted_16bpc(&vertical, yy, |y| at(y, x))));
        }
        rows = out;
    }
    let data = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    Pixels::new(Mode::I16, width, height, data, None)
}

/// One output sample of a 16bpc pass: the weighted sum in double, then ROUND_UP and CLIP16.
fn weighted_16bpc(weights: &Weights, out: usize, sample: impl Fn(usize) -> u16) -> u16 {
    let (first, count) = weights.bounds[out];
    let k = &weights.weights[out * weights.kernel_size..][..count];
    let mut sum = 0.0f64;
    for (i, &w) in k.iter().enumerate() {
        sum += sample(first + i) as f64 * w;
    }
    // ROUND_UP: `(int)(f >= 0 ? f + 0.5 : f - 0.5)`, C's truncation toward zero.
    let rounded = if sum >= 0.0 { sum + 0.5 } else { sum - 0.5 } as i64;
    rounded.clamp(0, 65535) as u16
}

/// Convert.c's I16L_L (I;16 to L and to RGB): samples above 255 saturate to 255.
#[inline]
fn i16_to_8bit(pair: &[u8]) -> u8 {
    if pair[1] != 0 {
        255
    } else {
        pair[0]
    }
}

/// ImagingScaleAffine with Pillow's resize matrix: positions accumulate by repeated addition
/// (not multiplication), exactly as the C loop does, and are truncated.
pub fn resize_nearest(image: &Pixels, width: usize, height: usize) -> Pixels {
    let channels = image.mode.bytes_per_pixel();
    let x_step = image.width as f64 / width as f64;
    let y_step = image.height as f64 / height as f64;
    // A source position outside the image (never hit in practice) leaves the pixel 0,
    // as Pillow's zero-filled output row does.
    let mut x_source = Vec::with_capacity(width);
    let mut xo = x_step * 0.5;
    for _ in 0..width {
        x_source.push(Some(xo as usize).filter(|&x| x < image.width));
        xo += x_step;
    }
    let mut out = vec![0u8; width * height * channels];
    let mut yo = y_step * 0.5;
    for out_row in out.chunks_exact_mut(width * channels) {
        let y = yo as usize;
        yo += y_step;
        if y >= image.height {
            continue;
        }
        let row = &image.data[y * image.width * channels..(y + 1) * image.width * channels];
        for (out_pixel, x) in out_row.chunks_exact_mut(channels).zip(&x_source) {
            if let Some(x) = x {
                out_pixel.copy_from_slice(&row[x * channels..(x + 1) * channels]);
            }
        }
    }
    Pixels {
        mode: image.mode,
        width,
        height,
        data: out,
        palette: image.palette.clone(),
    }
}

/// Convert.c's MULDIV255: (a * b + 127) / 255 the way Pillow rounds it.
#[inline]
fn mul_div_255(a: u32, b: u32) -> u8 {
    let tmp = a * b + 128;
    (((tmp >> 8) + tmp) >> 8) as u8
}

/// RGBA -> RGBa, LA -> La (rgbA2rgba / lA2la): color samples times alpha.
fn premultiply(data: &mut [u8], channels: usize) {
    for pixel in data.chunks_exact_mut(channels) {
        let (color, alpha) = pixel.split_at_mut(channels - 1);
        for sample in color {
            *sample = mul_div_255(*sample as u32, alpha[0] as u32);
        }
    }
}

/// RGBa -> RGBA, La -> LA (rgba2rgbA / la2lA): divided back, except at alpha 0 and 255.
fn unpremultiply(data: &mut [u8], channels: usize) {
    for pixel in data.chunks_exact_mut(channels) {
        let alpha = pixel[channels - 1] as u32;
        if alpha == 0 || alpha == 255 {
            continue;
        }
        for sample in &mut pixel[..channels - 1] {
            *sample = ((255 * *sample as u32) / alpha).min(255) as u8;
        }
    }
}

/// ITU-R 601-2 luma in Pillow's fixed point (Convert.c's L24).
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Convert.c's cmyk2rgb: each ink darkens what the black ink leaves (no colour management).
#[inline]
fn cmyk_to_rgb(pixel: &[u8]) -> [u8; 3] {
    let not_black = 255 - pixel[3] as u32;
    // not_black - MULDIV255(ink, not_black) never leaves 0..=255 (CLIP8 in Pillow).
    std::array::from_fn(|i| (not_black - mul_div_255(pixel[i] as u32, not_black) as u32) as u8)
}

/// `Image.convert("L")`: alpha is dropped, palettes are looked up.
pub fn to_gray(image: &Pixels) -> Vec<u8> {
    match image.mode {
        Mode::L | Mode::Bilevel => image.data.clone(),
        Mode::I16 => image.data.chunks_exact(2).map(i16_to_8bit).collect(),
        Mode::La => image.data.chunks_exact(2).map(|p| p[0]).collect(),
        Mode::Rgb => image
            .data
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        Mode::Rgba => image
            .data
            .chunks_exact(4)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        // Pillow has no CMYK -> L converter: Image.convert goes through RGB.
        Mode::Cmyk => image
            .data
            .chunks_exact(4)
            .map(|p| {
                let [r, g, b] = cmyk_to_rgb(p);
                luma(r, g, b)
            })
            .collect(),
        Mode::P => {
            let palette = image.palette.as_ref().expect("mode P has a palette");
            let gray: Vec<u8> = palette.iter().map(|&[r, g, b]| luma(r, g, b)).collect();
            image.data.iter().map(|&i| gray[i as usize]).collect()
        }
    }
}

/// `Image.convert("RGB")` for the modes decoders produce (used by 3-channel custom models).
pub fn to_rgb(image: &Pixels) -> Vec<u8> {
    match image.mode {
        Mode::Rgb => image.data.clone(),
        Mode::Rgba => image
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        Mode::L | Mode::Bilevel => image.data.iter().flat_map(|&v| [v, v, v]).collect(),
        Mode::I16 => image
            .data
            .chunks_exact(2)
            .flat_map(|pair| [i16_to_8bit(pair); 3])
            .collect(),
        Mode::La => image
            .data
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        Mode::Cmyk => image.data.chunks_exact(4).flat_map(cmyk_to_rgb).collect(),
        Mode::P => {
            let palette = image.palette.as_ref().expect("mode P has a palette");
            image
                .data
                .iter()
                .flat_map(|&i| palette[i as usize])
                .collect()
        }
    }
}

/// ddddocr's `png_rgba_black_preprocess`: despite its name it pastes the RGBA image on a WHITE
/// RGB background through its own alpha band (Paste.c's BLEND with DIV255 rounding).
pub fn paste_on_white(image: &Pixels) -> Pixels {
    assert_eq!(image.mode, Mode::Rgba);
    let mut out = Vec::with_capacity(image.width * image.height * 3);
    for pixel in image.data.chunks_exact(4) {
        let alpha = pixel[3] as u32;
        for &sample in &pixel[..3] {
            let blended = 255 * (255 - alpha) + sample as u32 * alpha;
            let tmp = blended + 128;
            out.push((((tmp >> 8) + tmp) >> 8) as u8);
        }
    }
    Pixels::new(Mode::Rgb, image.width, image.height, out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: usize, height: usize, data: Vec<u8>) -> Pixels {
        Pixels::new(Mode::L, width, height, data, None)
    }

    #[test]
    fn lanczos_weights_sum_to_one_in_fixed_point() {
        for (input, output) in [(60, 64), (160, 170), (37, 5), (5, 37)] {
            let c = compute_coefficients(input, output);
            for row in c.weights.chunks_exact(c.kernel_size) {
                let sum: i32 = row.iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= c.kernel_size as i32,
                    "{sum}"
                );
            }
        }
    }

    #[test]
    fn flat_image_stays_flat() {
        let image = gray(30, 20, vec![77; 600]);
        let resized = resize_lanczos(&image, 96, 64);
        assert!(resized.data.iter().all(|&v| v == 77));
    }

    fn gray16(width: usize, height: usize, samples: &[u16]) -> Pixels {
        let data = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        Pixels::new(Mode::I16, width, height, data, None)
    }

    #[test]
    fn i16_resizes_in_16_bits_and_saturates_to_gray() {
        // Flat stays flat, above 255 too: the 16bpc passes keep every bit.
        let flat = resize_lanczos(&gray16(30, 20, &[1000; 600]), 96, 64);
        assert!(flat
            .data
            .chunks_exact(2)
            .all(|p| p == 1000u16.to_le_bytes()));
        // Convert.c's I16L_L: anything above 255 is 255.
        let image = gray16(4, 1, &[0, 200, 255, 256]);
        assert_eq!(to_gray(&image), vec![0, 200, 255, 255]);
        assert_eq!(to_rgb(&image)[9..], [255, 255, 255]);
    }

    #[test]
    fn i16_rounds_half_away_from_zero_and_clips() {
        // A step from 0 to 65535 overshoots (Lanczos lobes): clipped, never wrapped.
        let mut samples = vec![0u16; 10];
        samples[5..].fill(65535);
        let resized = resize_lanczos(&gray16(10, 1, &samples), 23, 1);
        let values: Vec<u16> = resized
            .data
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        assert_eq!(values[0], 0);
        assert_eq!(values[22], 65535);
        assert!(values.windows(2).any(|w| w[0] > w[1]), "a lobe: {values:?}");
    }

    #[test]
    fn nearest_picks_pixel_centres() {
        let image = gray(4, 1, vec![10, 20, 30, 40]);
        let up = resize_nearest(&image, 8, 1);
        assert_eq!(up.data, vec![10, 10, 20, 20, 30, 30, 40, 40]);
        let down = resize_nearest(&image, 2, 1);
        assert_eq!(down.data, vec![20, 40]);
    }

    #[test]
    fn luma_matches_pillow_constants() {
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 0, 0), 0);
        // (255*19595 + 0x8000) >> 16 = 76
        assert_eq!(luma(255, 0, 0), 76);
    }

    #[test]
    fn transparent_pixels_become_white() {
        let rgba = Pixels::new(Mode::Rgba, 2, 1, vec![0, 0, 0, 0, 10, 20, 30, 255], None);
        assert_eq!(paste_on_white(&rgba).data, vec![255, 255, 255, 10, 20, 30]);
    }
}
