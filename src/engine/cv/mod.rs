//! Ports of the OpenCV functions ddddocr 1.6.1 calls for detection, slides and the colour
//! filter, each bit-exact with OpenCV (checked against opencv-python-headless 4.6.0.66 and
//! 5.0.0.93 while developing; the fixtures' answers are what they produce).
//!
//! Only the code paths ddddocr reaches are ported: 8-bit images, the default borders, the
//! flags ddddocr passes. Each file names the OpenCV source it follows. Why a port and not the
//! `opencv` crate: docs/engine-more.md.

mod buffers;
pub mod canny;
pub mod color;
pub mod contours;
mod exif;
pub mod imdecode;
pub mod ipp;
pub mod morphology;
pub mod resize;
pub mod template;

/// An 8-bit image with interleaved channels, OpenCV's `CV_8UC(n)` `Mat`: rows top to bottom,
/// no padding between rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mat {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Mat {
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Mat {
        assert!(channels >= 1, "at least one channel");
        assert_eq!(data.len(), width * height * channels, "pixel buffer size");
        Mat {
            width,
            height,
            channels,
            data,
        }
    }

    /// A single-channel image filled with `value`.
    #[cfg(test)]
    pub fn filled(width: usize, height: usize, value: u8) -> Mat {
        Mat::new(width, height, 1, vec![value; width * height])
    }

    /// Row `y` (all channels).
    pub fn row(&self, y: usize) -> &[u8] {
        let stride = self.width * self.channels;
        &self.data[y * stride..(y + 1) * stride]
    }
}
