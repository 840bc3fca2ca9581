//! `cv::threshold(THRESH_BINARY)` and `cv::morphologyEx` CLOSE / OPEN with a 3x3 kernel of
//! ones, as ddddocr's slide comparison calls them (imgproc/src/thresh.cpp, morph.dispatch.cpp).
//! The default border of morphology is a constant that never wins (the maximum for erosion,
//! the minimum for dilation), so only pixels inside the image count.

use super::buffers::{give_back, take};
use super::Mat;

/// `threshold(gray, thresh, 255, THRESH_BINARY)`: 255 above the (floored) threshold, else 0.
pub fn threshold_binary(gray: &Mat, thresh: f64) -> Mat {
    assert_eq!(gray.channels, 1);
    let limit = thresh.floor();
    let data = gray
        .data
        .iter()
        .map(|&v| if v as f64 > limit { 255 } else { 0 })
        .collect();
    Mat::new(gray.width, gray.height, 1, data)
}

/// `morphologyEx(MORPH_CLOSE)`: dilate, then erode.
pub fn close3x3(image: &Mat) -> Mat {
    erode3x3(&dilate3x3(image))
}

/// `morphologyEx(MORPH_OPEN)`: erode, then dilate.
pub fn open3x3(image: &Mat) -> Mat {
    dilate3x3(&erode3x3(image))
}

pub fn dilate3x3(image: &Mat) -> Mat {
    neighbourhood(image, |a: u8, b: u8| a.max(b))
}

pub fn erode3x3(image: &Mat) -> Mat {
    neighbourhood(image, |a: u8, b: u8| a.min(b))
}

/// Each pixel combined with its (in-image) 3x3 neighbours by `pick`, as a row pass then a
/// column pass (the 3x3 ones kernel is separable for min and max). A neighbour outside the
/// image is left out, which is what OpenCV's default border amounts to.
fn neighbourhood(image: &Mat, pick: impl Fn(u8, u8) -> u8 + Copy) -> Mat {
    assert_eq!(image.channels, 1);
    let (w, h) = (image.width, image.height);
    let mut rows = take(w * h, 0u8);
    for (y, out) in rows.chunks_exact_mut(w).enumerate() {
        combine_within_row(out, image.row(y), pick);
    }
    let mut out = vec![0u8; w * h];
    for (y, out) in out.chunks_exact_mut(w).enumerate() {
        let row = |r: usize| &rows[r * w..(r + 1) * w];
        // At the top and bottom the row itself stands in for the missing neighbour.
        let (above, below) = (row(y.saturating_sub(1)), row((y + 1).min(h - 1)));
        for (((o, &a), &b), &c) in out.iter_mut().zip(above).zip(row(y)).zip(below) {
            *o = pick(pick(a, b), c);
        }
    }
    give_back(rows);
    Mat::new(w, h, 1, out)
}

/// `out[x] = pick(row[x - 1], row[x], row[x + 1])`, leaving out neighbours beyond the ends.
fn combine_within_row(out: &mut [u8], row: &[u8], pick: impl Fn(u8, u8) -> u8 + Copy) {
    out.copy_from_slice(row);
    for (o, &left) in out[1..].iter_mut().zip(row) {
        *o = pick(*o, left);
    }
    for (o, &right) in out.iter_mut().zip(&row[1..]) {
        *o = pick(*o, right);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_strictly_above() {
        let gray = Mat::new(3, 1, 1, vec![30, 31, 200]);
        assert_eq!(threshold_binary(&gray, 30.0).data, vec![0, 255, 255]);
    }

    #[test]
    fn open_removes_specks_and_close_fills_pinholes() {
        // A lone pixel disappears under OPEN; a one-pixel hole in a block disappears under CLOSE.
        let mut speck = Mat::filled(7, 7, 0);
        speck.data[3 * 7 + 3] = 255;
        assert!(open3x3(&speck).data.iter().all(|&v| v == 0));
        let mut block = Mat::filled(7, 7, 255);
        block.data[3 * 7 + 3] = 0;
        assert!(close3x3(&block).data.iter().all(|&v| v == 255));
    }

    #[test]
    fn borders_do_not_erode() {
        // With OpenCV's default border, erosion of an all-255 image stays 255 up to the edges.
        let full = Mat::filled(4, 3, 255);
        assert_eq!(erode3x3(&full), full);
    }
}
