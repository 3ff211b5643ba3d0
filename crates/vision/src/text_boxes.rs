//! From PP-OCR's detection map to text boxes, as PaddleOCR's DB post-processing does it: the
//! probability map thresholded and dilated (2×2), each connected region's minimum-area rectangle
//! scored by the mean probability inside it, grown by `area × 1.6 / perimeter` on every side
//! ("unclip": for a rectangle, the polygon offset with round joins has this rectangle as its
//! minimum-area box), scaled to the image, put in reading order. Regions are found by 8-connected
//! labelling rather than OpenCV's border following: a region's convex hull — all the rectangle
//! depends on — is the same (holes, which OpenCV also lists, give no text).

/// A point in pixels (x right, y down).
pub type Pt = [f32; 2];

pub const THRESH: f32 = 0.3;
pub const BOX_THRESH: f32 = 0.5;
pub const UNCLIP: f32 = 1.6;
const MAX_CANDIDATES: usize = 1000;

/// `map` (h × w probabilities) → boxes (TL, TR, BR, BL) in a `dest_w × dest_h` image.
pub fn boxes(map: &[f32], w: usize, h: usize, dest_w: usize, dest_h: usize) -> Vec<[Pt; 4]> {
    let bitmap = dilate(&map.iter().map(|&p| p > THRESH).collect::<Vec<_>>(), w, h);
    let mut out = Vec::new();
    for region in regions(&bitmap, w, h).into_iter().take(MAX_CANDIDATES) {
        let rect = min_area_rect(&hull(&region));
        if rect.short_side() < 3.0 {
            continue;
        }
        if score(map, w, h, &rect.corners()) < BOX_THRESH {
            continue;
        }
        let d = rect.w * rect.h * UNCLIP / (2.0 * (rect.w + rect.h));
        let grown = min_area_rect(&hull(&offset(&rect.corners(), d)));
        if grown.short_side() < 5.0 {
            continue;
        }
        let scale = |p: Pt| {
            [
                (p[0] / w as f32 * dest_w as f32).round().clamp(0.0, dest_w as f32),
                (p[1] / h as f32 * dest_h as f32).round().clamp(0.0, dest_h as f32),
            ]
        };
        let mut q = clockwise(grown.corners().map(scale));
        for p in &mut q {
            p[0] = p[0].clamp(0.0, dest_w as f32 - 1.0);
            p[1] = p[1].clamp(0.0, dest_h as f32 - 1.0);
        }
        if dist(q[0], q[1]) as i32 <= 3 || dist(q[0], q[3]) as i32 <= 3 {
            continue;
        }
        out.push(q);
    }
    reading_order(out)
}

/// The quadrilateral `q` offset outwards by `d` with round joins, as Clipper does it: corners
/// truncated to integers first, arcs flattened to within 0.25 pixel, vertices rounded.
fn offset(q: &[Pt; 4], d: f32) -> Vec<[i32; 2]> {
    let v: Vec<[f64; 2]> = q.iter().map(|p| [p[0].trunc() as f64, p[1].trunc() as f64]).collect();
    let d = d as f64;
    // Orientation: outward normals point away from the centroid.
    let c = [
        v.iter().map(|p| p[0]).sum::<f64>() / 4.0,
        v.iter().map(|p| p[1]).sum::<f64>() / 4.0,
    ];
    let normal = |a: [f64; 2], b: [f64; 2]| {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let n = [dy / len, -dx / len];
        let mid = [(a[0] + b[0]) / 2.0 - c[0], (a[1] + b[1]) / 2.0 - c[1]];
        if n[0] * mid[0] + n[1] * mid[1] < 0.0 {
            [-n[0], -n[1]]
        } else {
            n
        }
    };
    let step = 2.0 * (1.0 - 0.25 / d.max(0.25)).acos();
    let mut out = Vec::new();
    for i in 0..4 {
        let (prev, cur, next) = (v[(i + 3) % 4], v[i], v[(i + 1) % 4]);
        let (a0, a1) = (normal(prev, cur), normal(cur, next));
        let (t0, mut t1) = (a0[1].atan2(a0[0]), a1[1].atan2(a1[0]));
        // The short way round from one normal to the next.
        while t1 - t0 > std::f64::consts::PI {
            t1 -= 2.0 * std::f64::consts::PI;
        }
        while t0 - t1 > std::f64::consts::PI {
            t1 += 2.0 * std::f64::consts::PI;
        }
        let n = ((t1 - t0).abs() / step).ceil().max(1.0) as usize;
        for k in 0..=n {
            let t = t0 + (t1 - t0) * k as f64 / n as f64;
            out.push([
                (cur[0] + d * t.cos()).round() as i32,
                (cur[1] + d * t.sin()).round() as i32,
            ]);
        }
    }
    out
}

fn dist(a: Pt, b: Pt) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// out(y, x) = any of in(y−1..=y, x−1..=x): OpenCV's 2×2 dilation (anchor at the kernel's centre).
fn dilate(b: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = vec![false; b.len()];
    for y in 0..h {
        for x in 0..w {
            let ys = y.saturating_sub(1)..=y;
            out[y * w + x] = ys.into_iter().any(|yy| b[yy * w + x] || (x > 0 && b[yy * w + x - 1]));
        }
    }
    out
}

/// 8-connected regions' pixel coordinates, in raster order of their first pixel.
fn regions(b: &[bool], w: usize, h: usize) -> Vec<Vec<[i32; 2]>> {
    let mut seen = vec![false; b.len()];
    let mut out = Vec::new();
    for start in 0..b.len() {
        if !b[start] || seen[start] {
            continue;
        }
        let mut region = Vec::new();
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(i) = stack.pop() {
            let (x, y) = ((i % w) as i32, (i / w) as i32);
            region.push([x, y]);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as i32 || ny >= h as i32 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if b[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push(region);
    }
    out
}

/// The convex hull (Andrew's monotone chain), counter-clockwise in y-down pixels.
fn hull(points: &[[i32; 2]]) -> Vec<Pt> {
    let mut p: Vec<[i64; 2]> = points.iter().map(|q| [q[0] as i64, q[1] as i64]).collect();
    p.sort_unstable();
    p.dedup();
    if p.len() < 3 {
        return p.iter().map(|q| [q[0] as f32, q[1] as f32]).collect();
    }
    let cross = |o: [i64; 2], a: [i64; 2], b: [i64; 2]| (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    // One chain over the points in order (lower hull), one in reverse (upper hull); each drops its
    // last point, the other chain's first.
    let chain = |pts: &mut dyn Iterator<Item = &[i64; 2]>| {
        let mut h: Vec<[i64; 2]> = Vec::new();
        for &q in pts {
            while h.len() >= 2 && cross(h[h.len() - 2], h[h.len() - 1], q) <= 0 {
                h.pop();
            }
            h.push(q);
        }
        h.pop();
        h
    };
    let mut h = chain(&mut p.iter());
    h.extend(chain(&mut p.iter().rev()));
    h.iter().map(|q| [q[0] as f32, q[1] as f32]).collect()
}

/// A rotated rectangle: centre, the side along `u` (w) and the side across it (h).
#[derive(Debug, Clone, Copy)]
struct Rect {
    c: Pt,
    w: f32,
    h: f32,
    /// Unit vector of the `w` side.
    u: Pt,
}

impl Rect {
    fn short_side(&self) -> f32 {
        self.w.min(self.h)
    }

    fn corners(&self) -> [Pt; 4] {
        let v = [-self.u[1], self.u[0]];
        let (a, b) = (self.w / 2.0, self.h / 2.0);
        [(-a, -b), (a, -b), (a, b), (-a, b)].map(|(s, t)| {
            [
                self.c[0] + s * self.u[0] + t * v[0],
                self.c[1] + s * self.u[1] + t * v[1],
            ]
        })
    }
}

/// The minimum-area rectangle around a convex polygon (rotating calipers: one side of it lies on
/// an edge of the hull).
fn min_area_rect(hull: &[Pt]) -> Rect {
    if hull.len() < 3 {
        let (a, b) = (hull[0], *hull.last().expect("a region has a pixel"));
        let len = dist(a, b);
        let u = if len > 0.0 {
            [(b[0] - a[0]) / len, (b[1] - a[1]) / len]
        } else {
            [1.0, 0.0]
        };
        return Rect {
            c: [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0],
            w: len,
            h: 0.0,
            u,
        };
    }
    let mut best: Option<(f32, Rect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let len = dist(a, b);
        if len == 0.0 {
            continue;
        }
        let u = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
        let v = [-u[1], u[0]];
        let (mut s0, mut s1, mut t0, mut t1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in hull {
            let (s, t) = (p[0] * u[0] + p[1] * u[1], p[0] * v[0] + p[1] * v[1]);
            (s0, s1, t0, t1) = (s0.min(s), s1.max(s), t0.min(t), t1.max(t));
        }
        let area = (s1 - s0) * (t1 - t0);
        if best.is_none_or(|(a, _)| area < a) {
            let (sc, tc) = ((s0 + s1) / 2.0, (t0 + t1) / 2.0);
            let c = [sc * u[0] + tc * v[0], sc * u[1] + tc * v[1]];
            best = Some((
                area,
                Rect {
                    c,
                    w: s1 - s0,
                    h: t1 - t0,
                    u,
                },
            ));
        }
    }
    best.expect("a hull has an edge").1
}

/// The mean probability over the pixels whose centres lie in `q` (edges included).
fn score(map: &[f32], w: usize, h: usize, q: &[Pt; 4]) -> f32 {
    let xs = q.iter().map(|p| p[0]);
    let ys = q.iter().map(|p| p[1]);
    let x0 = xs.clone().fold(f32::MAX, f32::min).floor().clamp(0.0, w as f32 - 1.0) as usize;
    let x1 = xs.fold(f32::MIN, f32::max).ceil().clamp(0.0, w as f32 - 1.0) as usize;
    let y0 = ys.clone().fold(f32::MAX, f32::min).floor().clamp(0.0, h as f32 - 1.0) as usize;
    let y1 = ys.fold(f32::MIN, f32::max).ceil().clamp(0.0, h as f32 - 1.0) as usize;
    let (mut sum, mut n) = (0.0f64, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inside(q, [x as f32, y as f32]) {
                sum += map[y * w + x] as f64;
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64) as f32
    }
}

/// Whether `p` is inside the convex quadrilateral `q` (either winding), within half a pixel.
fn inside(q: &[Pt; 4], p: Pt) -> bool {
    let mut sign = 0.0f32;
    for i in 0..4 {
        let (a, b) = (q[i], q[(i + 1) % 4]);
        let len = dist(a, b).max(1e-6);
        let c = ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])) / len;
        if c.abs() <= 0.5 {
            continue;
        }
        if sign == 0.0 {
            sign = c.signum();
        } else if c.signum() != sign {
            return false;
        }
    }
    true
}

/// TL, TR, BR, BL: the two leftmost points (by x) ordered by y, then the two rightmost.
fn clockwise(mut q: [Pt; 4]) -> [Pt; 4] {
    q.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (l, r) = q.split_at_mut(2);
    l.sort_by(|a, b| a[1].total_cmp(&b[1]));
    r.sort_by(|a, b| a[1].total_cmp(&b[1]));
    [l[0], r[0], r[1], l[1]]
}

/// Top to bottom, then left to right within ~a line (top-left corners within 10 pixels of
/// height), as PaddleOCR's `sorted_boxes`.
fn reading_order(mut b: Vec<[Pt; 4]>) -> Vec<[Pt; 4]> {
    b.sort_by(|p, q| {
        (p[0][1], p[0][0])
            .partial_cmp(&(q[0][1], q[0][0]))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for i in 0..b.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            if (b[j + 1][0][1] - b[j][0][1]).abs() < 10.0 && b[j + 1][0][0] < b[j][0][0] {
                b.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_area_rect_of_a_tilted_bar() {
        // A 40 × 6 bar rotated by atan(1/4): its rectangle has the bar's sides.
        let (u, v) = (
            [4.0 / 17f32.sqrt(), 1.0 / 17f32.sqrt()],
            [-1.0 / 17f32.sqrt(), 4.0 / 17f32.sqrt()],
        );
        let pts: Vec<[i32; 2]> = (0..=400)
            .flat_map(|s| (0..=60).map(move |t| (s as f32 / 10.0, t as f32 / 10.0)))
            .map(|(s, t)| {
                [
                    (50.0 + s * u[0] + t * v[0]).round() as i32,
                    (20.0 + s * u[1] + t * v[1]).round() as i32,
                ]
            })
            .collect();
        let r = min_area_rect(&hull(&pts));
        assert!(
            (r.w.max(r.h) - 40.0).abs() < 1.5 && (r.w.min(r.h) - 6.0).abs() < 1.5,
            "{r:?}"
        );
    }

    #[test]
    fn boxes_of_two_lines_in_reading_order() {
        // Two bright bars on a dark 100 × 60 map: the lower one first in raster order of pixels
        // is not the rule — reading order puts the upper line first.
        let (w, h) = (100, 60);
        let mut map = vec![0.0f32; w * h];
        for (y0, x0, x1) in [(40, 10, 70), (10, 20, 90)] {
            for y in y0..y0 + 8 {
                for x in x0..x1 {
                    map[y * w + x] = 0.9;
                }
            }
        }
        let b = boxes(&map, w, h, 200, 120);
        assert_eq!(b.len(), 2);
        assert!(b[0][0][1] < b[1][0][1], "{b:?}");
        // Upper bar: x 20..90 → 40..180 in the destination, grown by the unclip distance.
        assert!(b[0][0][0] < 40.0 && b[0][1][0] > 178.0, "{b:?}");
    }
}
