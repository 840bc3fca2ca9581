//! Colour conversions in OpenCV's 8-bit fixed point (imgproc/src/color_rgb.simd.hpp,
//! color_hsv.simd.hpp). The SIMD and scalar paths of both compute the same integers.

use super::Mat;

/// `cvtColor(COLOR_RGB2GRAY)` on 8 bits: weights 0.299/0.587/0.114 in 15-bit fixed point
/// (RY15, GY15, BY15), rounded. Not Pillow's 16-bit weights: `(255, 0, 0)` gives 76 in both,
/// but other colours differ by one here and there.
pub fn rgb_to_gray(rgb: &Mat) -> Mat {
    assert_eq!(rgb.channels, 3, "RGB input");
    const RY: u32 = 9798;
    const GY: u32 = 19235;
    const BY: u32 = 3735;
    const SHIFT: u32 = 15;
    let mut data = vec![0u8; rgb.width * rgb.height];
    for (gray, p) in data.iter_mut().zip(rgb.data.chunks_exact(3)) {
        let sum = p[0] as u32 * RY + p[1] as u32 * GY + p[2] as u32 * BY;
        *gray = ((sum + (1 << (SHIFT - 1))) >> SHIFT) as u8;
    }
    Mat::new(rgb.width, rgb.height, 1, data)
}

/// OpenCV's `RGB2HSV_b` division tables (hsv_shift = 12), built once.
struct HsvTables {
    /// `(255 << 12) / v`, rounded.
    sdiv: [i32; 256],
    /// `(180 << 12) / (6 * diff)`, rounded.
    hdiv180: [i32; 256],
}

const HSV_SHIFT: i32 = 12;

fn hsv_tables() -> &'static HsvTables {
    static TABLES: std::sync::OnceLock<HsvTables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut tables = HsvTables {
            sdiv: [0; 256],
            hdiv180: [0; 256],
        };
        for i in 1..256 {
            // saturate_cast<int>(double) rounds half to even (cvRound).
            tables.sdiv[i] = (((255 << HSV_SHIFT) as f64) / i as f64).round_ties_even() as i32;
            tables.hdiv180[i] =
                (((180 << HSV_SHIFT) as f64) / (6.0 * i as f64)).round_ties_even() as i32;
        }
        tables
    })
}

/// One pixel of `cvtColor(COLOR_BGR2HSV)` on 8 bits: H in 0..=180, S and V in 0..=255.
pub fn hsv_of(r: u8, g: u8, b: u8) -> [u8; 3] {
    let tables = hsv_tables();
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let v = r.max(g).max(b);
    let vmin = r.min(g).min(b);
    let diff = v - vmin;
    // OpenCV tests red first, then green: ties go to red, then green.
    let vr = if v == r { -1 } else { 0 };
    let vg = if v == g { -1 } else { 0 };
    let round = 1 << (HSV_SHIFT - 1);
    let s = (diff * tables.sdiv[v as usize] + round) >> HSV_SHIFT;
    let mut h = (vr & (g - b)) + (!vr & ((vg & (b - r + 2 * diff)) + (!vg & (r - g + 4 * diff))));
    h = (h * tables.hdiv180[diff as usize] + round) >> HSV_SHIFT;
    if h < 0 {
        h += 180;
    }
    [h.clamp(0, 255) as u8, s as u8, v as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_weights_are_opencvs() {
        let rgb = Mat::new(
            4,
            1,
            3,
            vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255],
        );
        // 255 * 9798 / 32768 = 76.2, 255 * 19235 / 32768 = 149.7, 255 * 3735 / 32768 = 29.1
        assert_eq!(rgb_to_gray(&rgb).data, vec![76, 150, 29, 255]);
    }

    #[test]
    fn hsv_of_primaries_and_grays() {
        assert_eq!(hsv_of(255, 0, 0), [0, 255, 255]);
        assert_eq!(hsv_of(0, 255, 0), [60, 255, 255]);
        assert_eq!(hsv_of(0, 0, 255), [120, 255, 255]);
        assert_eq!(hsv_of(128, 128, 128), [0, 0, 128]);
        assert_eq!(hsv_of(0, 0, 0), [0, 0, 0]);
        // Values read from cv2.cvtColor(COLOR_BGR2HSV) (opencv-python-headless 5.0.0.93).
        assert_eq!(hsv_of(255, 0, 1), [0, 255, 255]);
        assert_eq!(hsv_of(250, 10, 20), [179, 245, 250]);
        assert_eq!(hsv_of(10, 200, 30), [63, 242, 200]);
        assert_eq!(hsv_of(100, 100, 101), [120, 3, 101]);
        assert_eq!(hsv_of(1, 0, 0), [0, 255, 1]);
        assert_eq!(hsv_of(37, 200, 199), [90, 208, 200]);
    }
}
