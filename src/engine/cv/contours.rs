//! What ddddocr's slide comparison takes from `cv::findContours(RETR_EXTERNAL,
//! CHAIN_APPROX_SIMPLE)`, `max(contours, key=cv2.contourArea)` and `cv::boundingRect`: the
//! bounding rectangle of the external contour with the largest area, the first one in
//! OpenCV's list on ties (imgproc/src/contours.cpp).
//!
//! OpenCV pads the image with a zero frame and follows borders with Suzuki's algorithm,
//! foreground 8-connected. External contours are the outer borders of the components that
//! touch the outermost background (components in holes of others are left out). Each is
//! found at its component's first pixel in raster order and put at the head of the list, so
//! the list runs in reverse raster order of those first pixels (checked with OpenCV 4.6 and
//! 5.0). `contourArea` is the shoelace area of the traced border; compressing straight runs
//! (CHAIN_APPROX_SIMPLE) removes collinear points only, so the area is that of the full trace.

use super::buffers::{give_back, take};
use super::Mat;

/// `cv::boundingRect`: left, top, width, height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// One external contour: where its trace starts, its area, its bounding rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExternalContour {
    pub start: (usize, usize),
    pub area: f64,
    pub bounds: Rect,
}

/// The external contours in OpenCV's list order.
pub fn external_contours(binary: &Mat) -> Vec<ExternalContour> {
    assert_eq!(binary.channels, 1);
    let grid = Grid::new(binary);
    let components = grid.components();
    let mut seen = vec![false; components.external.len()];
    let mut contours = Vec::new();
    for y in 0..binary.height {
        for x in 0..binary.width {
            let label = components.of[grid.index(x, y)];
            if label == NONE || std::mem::replace(&mut seen[label as usize], true) {
                continue;
            }
            if !components.external[label as usize] {
                continue;
            }
            let points = grid.trace_outer_border(x, y);
            contours.push(ExternalContour {
                start: (x, y),
                area: shoelace_area(&points),
                bounds: bounding_rect(&points),
            });
        }
    }
    give_back(components.of);
    give_back(grid.foreground);
    contours.reverse();
    contours
}

/// The bounding rectangle of the largest external contour (first in list order on ties),
/// or `None` when there is no contour.
pub fn largest_external_bounds(binary: &Mat) -> Option<Rect> {
    let contours = external_contours(binary);
    let mut best: Option<&ExternalContour> = None;
    for contour in &contours {
        // Python's max() keeps the first of equal keys.
        if best.is_none_or(|b| contour.area > b.area) {
            best = Some(contour);
        }
    }
    best.map(|c| c.bounds)
}

/// OpenCV's direction codes (`CV_INIT_3X3_DELTAS`), counter-clockwise on screen from east:
/// E, NE, N, NW, W, SW, S, SE (y grows downwards).
const DIRECTIONS: [(isize, isize); 8] = [
    (1, 0),
    (1, -1),
    (0, -1),
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, 1),
    (1, 1),
];
const WEST: usize = 4;
/// No component (background).
const NONE: u32 = u32::MAX;

/// Component labels in the padded layout, and per component whether it borders the
/// outermost background.
struct Components {
    of: Vec<u32>,
    external: Vec<bool>,
}

/// The image as foreground (non-zero) and background with a background frame of one pixel
/// around it (OpenCV pads the same way), stored row-major with `stride = width + 2`.
struct Grid {
    width: usize,
    height: usize,
    stride: usize,
    foreground: Vec<bool>,
}

impl Grid {
    fn new(image: &Mat) -> Grid {
        let stride = image.width + 2;
        let mut foreground = take(stride * (image.height + 2), false);
        for y in 0..image.height {
            for (x, &v) in image.row(y).iter().enumerate() {
                foreground[(y + 1) * stride + x + 1] = v != 0;
            }
        }
        Grid {
            width: image.width,
            height: image.height,
            stride,
            foreground,
        }
    }

    /// The padded index of image pixel `(x, y)`.
    fn index(&self, x: usize, y: usize) -> usize {
        (y + 1) * self.stride + x + 1
    }

    fn on(&self, (x, y): (isize, isize)) -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < self.width
            && (y as usize) < self.height
            && self.foreground[self.index(x as usize, y as usize)]
    }

    /// Indices of the 4 neighbours of a padded index that is inside the frame.
    fn neighbours4(&self, at: usize) -> impl Iterator<Item = usize> {
        let size = self.foreground.len();
        let stride = self.stride;
        [
            at.wrapping_sub(1),
            at + 1,
            at.wrapping_sub(stride),
            at + stride,
        ]
        .into_iter()
        .filter(move |&n| n < size)
    }

    /// Background 4-connected to the frame (the background is 4-connected when the
    /// foreground is 8-connected). The frame itself is outer background. Labelled by runs:
    /// the background runs of each row, joined to the runs of the row above that share a
    /// column, are far fewer than pixels.
    fn outer_background(&self) -> Vec<bool> {
        let stride = self.stride;
        let rows = self.height + 2;
        let mut runs: Vec<(usize, usize, usize)> = Vec::new(); // (row, start, end)
        let mut first_run_of_row = Vec::with_capacity(rows + 1);
        for y in 0..rows {
            first_run_of_row.push(runs.len());
            let row = &self.foreground[y * stride..(y + 1) * stride];
            let mut x = 0;
            while x < stride {
                if row[x] {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < stride && !row[x] {
                    x += 1;
                }
                runs.push((y, start, x));
            }
        }
        first_run_of_row.push(runs.len());
        let mut sets = DisjointSets::new(runs.len());
        for y in 1..rows {
            let (mut i, mut j) = (first_run_of_row[y - 1], first_run_of_row[y]);
            while i < first_run_of_row[y] && j < first_run_of_row[y + 1] {
                let ((_, a0, a1), (_, b0, b1)) = (runs[i], runs[j]);
                if a0 < b1 && b0 < a1 {
                    sets.union(i, j);
                }
                // Advance the run that ends first; the other may overlap the next one.
                if a1 <= b1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
        }
        // Row 0 is all frame: its single run is the outermost background.
        let outer_root = sets.find(0);
        let mut outer = take(self.foreground.len(), false);
        for (index, &(y, start, end)) in runs.iter().enumerate() {
            if sets.find(index) == outer_root {
                outer[y * stride + start..y * stride + end].fill(true);
            }
        }
        outer
    }

    /// 8-connected components of the foreground, each marked external when one of its
    /// pixels has a 4-neighbour in the outermost background.
    fn components(&self) -> Components {
        let outer = self.outer_background();
        let stride = self.stride;
        let mut components = Components {
            of: take(self.foreground.len(), NONE),
            external: Vec::new(),
        };
        let mut stack = Vec::new();
        for start in 0..self.foreground.len() {
            if !self.foreground[start] || components.of[start] != NONE {
                continue;
            }
            let label = components.external.len() as u32;
            let mut external = false;
            components.of[start] = label;
            stack.push(start);
            while let Some(at) = stack.pop() {
                external = external || self.neighbours4(at).any(|n| outer[n]);
                // Foreground pixels are inside the frame, so all 8 neighbours exist.
                for n in [
                    at - stride - 1,
                    at - stride,
                    at - stride + 1,
                    at - 1,
                    at + 1,
                    at + stride - 1,
                    at + stride,
                    at + stride + 1,
                ] {
                    if self.foreground[n] && components.of[n] == NONE {
                        components.of[n] = label;
                        stack.push(n);
                    }
                }
            }
            components.external.push(external);
        }
        give_back(outer);
        components
    }

    /// Suzuki's outer border following as OpenCV's `icvFetchContour` does it, from the
    /// raster-first pixel of a component (its west neighbour is background): the first
    /// neighbour clockwise from west, then around the border counter-clockwise until the
    /// trace comes back to the start from that neighbour. Returns the border pixels visited.
    fn trace_outer_border(&self, x: usize, y: usize) -> Vec<(isize, isize)> {
        let start = (x as isize, y as isize);
        let step = |p: (isize, isize), d: usize| (p.0 + DIRECTIONS[d].0, p.1 + DIRECTIONS[d].1);
        let Some(mut direction) = (1..=8)
            .map(|k| (WEST + 8 - k) % 8)
            .find(|&d| self.on(step(start, d)))
        else {
            return vec![start]; // a lone pixel
        };
        let first = step(start, direction);
        let mut points = Vec::new();
        let mut current = start;
        loop {
            // Counter-clockwise from the one after `direction`; the pixel we came from is
            // foreground, so the search ends within 8 steps.
            direction = (1..=8)
                .map(|k| (direction + k) % 8)
                .find(|&d| self.on(step(current, d)))
                .expect("the previous border pixel is a neighbour");
            points.push(current);
            let next = step(current, direction);
            if next == start && current == first {
                return points;
            }
            current = next;
            direction = (direction + 4) % 8;
        }
    }
}

/// Union-find over run indices, with path halving.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> DisjointSets {
        DisjointSets {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }
}

/// `contourArea(points)`: half the absolute shoelace sum, in double as OpenCV sums it.
fn shoelace_area(points: &[(isize, isize)]) -> f64 {
    let mut sum = 0.0f64;
    let mut previous = *points.last().expect("a contour has points");
    for &p in points {
        sum += previous.0 as f64 * p.1 as f64 - previous.1 as f64 * p.0 as f64;
        previous = p;
    }
    (sum * 0.5).abs()
}

fn bounding_rect(points: &[(isize, isize)]) -> Rect {
    let min_x = points.iter().map(|p| p.0).min().expect("points");
    let max_x = points.iter().map(|p| p.0).max().expect("points");
    let min_y = points.iter().map(|p| p.1).min().expect("points");
    let max_y = points.iter().map(|p| p.1).max().expect("points");
    Rect {
        x: min_x as usize,
        y: min_y as usize,
        width: (max_x - min_x + 1) as usize,
        height: (max_y - min_y + 1) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(width: usize, height: usize, on: &[(usize, usize, usize, usize)]) -> Mat {
        let mut image = Mat::filled(width, height, 0);
        for &(x, y, w, h) in on {
            for yy in y..y + h {
                for xx in x..x + w {
                    image.data[yy * width + xx] = 255;
                }
            }
        }
        image
    }

    #[test]
    fn list_order_and_areas_match_opencv() {
        // cv2.findContours of this image (OpenCV 4.6 and 5.0) lists, as (boundingRect, area):
        // ((2, 30, 3, 8), 14.0), ((40, 20, 5, 5), 16.0), ((30, 5, 5, 5), 16.0), ((5, 5, 5, 5), 16.0)
        let image = binary(
            60,
            40,
            &[(5, 5, 5, 5), (40, 20, 5, 5), (30, 5, 5, 5), (2, 30, 3, 8)],
        );
        let found: Vec<(Rect, f64)> = external_contours(&image)
            .iter()
            .map(|c| (c.bounds, c.area))
            .collect();
        let rect = |x, y, width, height| Rect {
            x,
            y,
            width,
            height,
        };
        assert_eq!(
            found,
            vec![
                (rect(2, 30, 3, 8), 14.0),
                (rect(40, 20, 5, 5), 16.0),
                (rect(30, 5, 5, 5), 16.0),
                (rect(5, 5, 5, 5), 16.0),
            ]
        );
        // Three squares tie: max() keeps the first in the list.
        assert_eq!(largest_external_bounds(&image), Some(rect(40, 20, 5, 5)));
    }

    #[test]
    fn components_inside_holes_are_not_external() {
        // A ring with a dot inside: only the ring's outer border.
        let mut image = binary(20, 20, &[(2, 2, 15, 15)]);
        let inner = binary(20, 20, &[(4, 4, 11, 11)]);
        for (v, i) in image.data.iter_mut().zip(&inner.data) {
            *v ^= *i;
        }
        image.data[9 * 20 + 9] = 255;
        let contours = external_contours(&image);
        assert_eq!(contours.len(), 1);
        assert_eq!(contours[0].area, 196.0);
    }

    #[test]
    fn empty_and_lone_pixels() {
        assert_eq!(largest_external_bounds(&Mat::filled(5, 5, 0)), None);
        let image = binary(5, 5, &[(4, 4, 1, 1)]);
        let contours = external_contours(&image);
        assert_eq!(contours[0].area, 0.0);
        assert_eq!(
            contours[0].bounds,
            Rect {
                x: 4,
                y: 4,
                width: 1,
                height: 1
            }
        );
    }
}
