//! ddddocr's `preproc`: the image scaled by `r = min(416 / h, 416 / w)` with OpenCV's
//! INTER_LINEAR, pasted at the top left of a 416 x 416 canvas of 114, as float32 planes in
//! the decoded channel order (BGR), without any scaling.

use crate::engine::cv::resize::resize_linear;
use crate::engine::cv::Mat;

/// The model's input side.
pub const SIDE: usize = 416;
/// The canvas value around the scaled image.
const PAD: f32 = 114.0;

/// The model input and the scale ddddocr divides the boxes by.
pub struct Letterboxed {
    /// `3 x 416 x 416`, planes B, G, R.
    pub tensor: Vec<f32>,
    pub ratio: f64,
}

/// `None` when a side would scale to 0 pixels (OpenCV refuses an empty size, so ddddocr
/// fails on such an image).
pub fn letterbox(image: &Mat) -> Option<Letterboxed> {
    assert_eq!(image.channels, 3, "BGR image");
    let ratio = (SIDE as f64 / image.height as f64).min(SIDE as f64 / image.width as f64);
    // Python's int(): truncation.
    let width = (image.width as f64 * ratio) as usize;
    let height = (image.height as f64 * ratio) as usize;
    if width == 0 || height == 0 {
        return None;
    }
    assert!(
        width <= SIDE && height <= SIDE,
        "the scaled image fits the canvas"
    );
    let resized = resize_linear(image, width, height);
    let plane = SIDE * SIDE;
    let mut tensor = vec![PAD; 3 * plane];
    for y in 0..height {
        for (x, pixel) in resized.row(y).chunks_exact(3).enumerate() {
            for (c, &v) in pixel.iter().enumerate() {
                tensor[c * plane + y * SIDE + x] = v as f32;
            }
        }
    }
    Some(Letterboxed { tensor, ratio })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_image_fills_the_top_and_pads_below() {
        // 832 x 416 scales by exactly 0.5 (INTER_AREA's 2x2 mean in OpenCV) to 416 x 208.
        let image = Mat::new(832, 416, 3, vec![10; 832 * 416 * 3]);
        let boxed = letterbox(&image).unwrap();
        assert_eq!(boxed.ratio, 0.5);
        assert_eq!(boxed.tensor[0], 10.0);
        assert_eq!(boxed.tensor[207 * SIDE + 415], 10.0);
        assert_eq!(boxed.tensor[208 * SIDE], 114.0);
        assert_eq!(boxed.tensor[2 * SIDE * SIDE + 415 * SIDE + 415], 114.0);
    }

    #[test]
    fn a_side_that_scales_to_nothing_is_refused() {
        let image = Mat::new(4096, 1, 3, vec![0; 4096 * 3]);
        assert!(letterbox(&image).is_none());
    }
}
