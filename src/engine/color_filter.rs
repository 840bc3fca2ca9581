//! ddddocr 1.6.1's colour filter for text captchas (`preprocessing/color_filter.py`), applied
//! before the usual OCR preprocessing: the image as Pillow's RGB, OpenCV's 8-bit HSV of each
//! pixel (H 0..=180), the pixels inside any of the ranges kept, every other pixel white.
//!
//! One difference by design: ddddocr prints a warning and reads the unfiltered image when a
//! colour name or range is invalid; aiocr refuses the request (contract code 3006), since a
//! caller who asked for a filter would otherwise get an answer for something else.

use super::cv::color::hsv_of;
use super::pillow::to_rgb;
use super::pixels::{Mode, Pixels};

/// An inclusive range of OpenCV HSV values (`cv2.inRange`'s lower and upper bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HsvRange {
    pub lower: [u8; 3],
    pub upper: [u8; 3],
}

impl HsvRange {
    fn contains(&self, hsv: [u8; 3]) -> bool {
        (0..3).all(|c| self.lower[c] <= hsv[c] && hsv[c] <= self.upper[c])
    }
}

/// A preset: its name and its (lower, upper) HSV bounds.
type Preset = (&'static str, &'static [([u8; 3], [u8; 3])]);

/// ddddocr's `COLOR_PRESETS`, in its order.
const PRESETS: [Preset; 10] = [
    (
        "red",
        &[
            ([0, 50, 50], [10, 255, 255]),
            ([170, 50, 50], [180, 255, 255]),
        ],
    ),
    ("blue", &[([100, 50, 50], [130, 255, 255])]),
    ("green", &[([40, 50, 50], [80, 255, 255])]),
    ("yellow", &[([20, 50, 50], [40, 255, 255])]),
    ("orange", &[([10, 50, 50], [20, 255, 255])]),
    ("purple", &[([130, 50, 50], [170, 255, 255])]),
    ("cyan", &[([80, 50, 50], [100, 255, 255])]),
    ("black", &[([0, 0, 0], [180, 255, 50])]),
    ("white", &[([0, 0, 200], [180, 30, 255])]),
    ("gray", &[([0, 0, 50], [180, 30, 200])]),
];

/// The preset names, for messages and help.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(name, _)| *name).collect()
}

/// Why a colour filter was refused (contract code 3006).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColorFilterError {
    #[error("unknown colour '{0}' (known: red, blue, green, yellow, orange, purple, cyan, black, white, gray)")]
    UnknownColor(String),
    #[error("invalid colour range: {0}")]
    InvalidRange(String),
}

/// A validated filter: the union of its HSV ranges. Kept sorted and without duplicates, so
/// that equal filters compare and hash equal (it is part of the answer cache's key); the
/// order of ranges does not change a union.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ColorFilter {
    ranges: Vec<HsvRange>,
}

impl ColorFilter {
    /// The filter for `colors` (comma-separated preset names, case-insensitive, as ddddocr
    /// lower-cases them) and `ranges` (a JSON list of `[[h, s, v], [h, s, v]]` pairs). `None`
    /// when both are absent or empty: ddddocr filters only when it is given something.
    pub fn from_options(
        colors: Option<&str>,
        ranges: Option<&str>,
    ) -> Result<Option<ColorFilter>, ColorFilterError> {
        let mut all = Vec::new();
        for name in colors
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let lower = name.to_lowercase();
            let (_, preset) = PRESETS
                .iter()
                .find(|(preset, _)| *preset == lower)
                .ok_or_else(|| ColorFilterError::UnknownColor(name.to_string()))?;
            all.extend(
                preset
                    .iter()
                    .map(|&(lower, upper)| HsvRange { lower, upper }),
            );
        }
        if let Some(json) = ranges.filter(|r| !r.trim().is_empty()) {
            all.extend(parse_ranges(json)?);
        }
        if all.is_empty() {
            return Ok(None);
        }
        all.sort();
        all.dedup();
        Ok(Some(ColorFilter { ranges: all }))
    }

    pub fn ranges(&self) -> &[HsvRange] {
        &self.ranges
    }

    /// The filtered image, in RGB.
    pub fn apply(&self, image: &Pixels) -> Pixels {
        let mut rgb = to_rgb(image);
        for pixel in rgb.chunks_exact_mut(3) {
            let hsv = hsv_of(pixel[0], pixel[1], pixel[2]);
            if !self.ranges.iter().any(|range| range.contains(hsv)) {
                pixel.fill(255);
            }
        }
        Pixels::new(Mode::Rgb, image.width, image.height, rgb, None)
    }
}

/// `[[[h, s, v], [h, s, v]], ...]` with ddddocr's checks: integers, H in 0..=180, S and V in
/// 0..=255, each lower bound at most its upper bound.
fn parse_ranges(json: &str) -> Result<Vec<HsvRange>, ColorFilterError> {
    let invalid = |why: &str| ColorFilterError::InvalidRange(why.to_string());
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| invalid(&format!("not JSON: {e}")))?;
    let pairs = value
        .as_array()
        .ok_or_else(|| invalid("expected a list of [lower, upper] pairs"))?;
    pairs
        .iter()
        .map(|pair| {
            let [lower, upper] = pair.as_array().map(Vec::as_slice).unwrap_or_default() else {
                return Err(invalid("each range is [[h, s, v], [h, s, v]]"));
            };
            let (lower, upper) = (hsv_triple(lower)?, hsv_triple(upper)?);
            for c in 0..3 {
                if lower[c] > upper[c] {
                    return Err(invalid(&format!(
                        "lower bound {} above upper bound {}",
                        lower[c], upper[c]
                    )));
                }
            }
            Ok(HsvRange { lower, upper })
        })
        .collect()
}

fn hsv_triple(value: &serde_json::Value) -> Result<[u8; 3], ColorFilterError> {
    let invalid = |why: String| ColorFilterError::InvalidRange(why);
    let items = value
        .as_array()
        .filter(|items| items.len() == 3)
        .ok_or_else(|| invalid("an HSV bound is [h, s, v]".into()))?;
    let mut triple = [0u8; 3];
    for (c, item) in items.iter().enumerate() {
        let limit = if c == 0 { 180 } else { 255 };
        let v = item
            .as_u64()
            .filter(|&v| v <= limit)
            .ok_or_else(|| invalid(format!("{item} is not an integer in 0..={limit}")))?;
        triple[c] = v as u8;
    }
    Ok(triple)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_ranges_combine_into_one_canonical_filter() {
        let a = ColorFilter::from_options(Some("Red, blue"), None)
            .unwrap()
            .unwrap();
        let b = ColorFilter::from_options(Some("blue,red,blue"), None)
            .unwrap()
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.ranges().len(), 3);
        let c = ColorFilter::from_options(Some("blue"), Some("[[[0,50,50],[10,255,255]]]"))
            .unwrap()
            .unwrap();
        assert_eq!(c.ranges().len(), 2);
        assert_eq!(
            ColorFilter::from_options(Some(" "), Some("")).unwrap(),
            None
        );
    }

    #[test]
    fn bad_names_and_ranges_are_refused() {
        let unknown = ColorFilter::from_options(Some("red,teal"), None).unwrap_err();
        assert_eq!(unknown, ColorFilterError::UnknownColor("teal".into()));
        for bad in [
            "[[[181,0,0],[181,255,255]]]",
            "[[[0,0,0],[10,256,255]]]",
            "[[[10,0,0],[5,255,255]]]",
            "[[[0,0],[5,255,255]]]",
            "[[[0.5,0,0],[5,255,255]]]",
            "[[[-1,0,0],[5,255,255]]]",
            "{\"a\":1}",
            "[[0,0,0]]",
            "nope",
        ] {
            assert!(
                matches!(
                    ColorFilter::from_options(None, Some(bad)),
                    Err(ColorFilterError::InvalidRange(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn pixels_outside_the_ranges_become_white() {
        let image = Pixels::new(
            Mode::Rgb,
            3,
            1,
            vec![250, 10, 20, 10, 20, 250, 0, 0, 0],
            None,
        );
        let red = ColorFilter::from_options(Some("red"), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            red.apply(&image).data,
            vec![250, 10, 20, 255, 255, 255, 255, 255, 255]
        );
        let black = ColorFilter::from_options(Some("black"), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            black.apply(&image).data,
            vec![255, 255, 255, 255, 255, 255, 0, 0, 0]
        );
    }
}
