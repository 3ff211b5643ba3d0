//! Dominant colours, named: each pixel of a ≤ 64 × 64 thumbnail goes to the nearest of a small
//! palette of everyday colour names (distance in CIELAB, where equal steps look about equally
//! different), and the names that cover at least 5% of the image are reported, largest first.

use image::RgbImage;

/// Everyday names and a representative sRGB value each (several values may share a name).
const PALETTE: [(&str, [u8; 3]); 22] = [
    ("black", [0, 0, 0]),
    ("white", [255, 255, 255]),
    ("grey", [128, 128, 128]),
    ("grey", [190, 190, 190]),
    ("grey", [70, 70, 70]),
    ("red", [200, 30, 30]),
    ("dark red", [120, 20, 20]),
    ("orange", [240, 140, 20]),
    ("yellow", [240, 220, 40]),
    ("olive", [128, 128, 0]),
    ("green", [40, 160, 50]),
    ("dark green", [20, 80, 30]),
    ("teal", [0, 128, 128]),
    ("cyan", [60, 210, 220]),
    ("light blue", [150, 190, 235]),
    ("blue", [40, 80, 200]),
    ("navy", [20, 30, 90]),
    ("purple", [120, 50, 160]),
    ("pink", [240, 150, 190]),
    ("brown", [120, 75, 35]),
    ("tan", [200, 160, 110]),
    ("beige", [230, 215, 180]),
];

fn lab([r, g, b]: [u8; 3]) -> [f32; 3] {
    let lin = |c: u8| {
        let c = c as f32 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(r), lin(g), lin(b));
    // D65 white.
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f32| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// (name, share of the image) for names covering ≥ 5%, largest first.
pub fn dominant(img: &RgbImage) -> Vec<(&'static str, f32)> {
    let thumb = image::imageops::thumbnail(img, 64.min(img.width()), 64.min(img.height()));
    let palette: Vec<[f32; 3]> = PALETTE.iter().map(|(_, c)| lab(*c)).collect();
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for p in thumb.pixels() {
        let l = lab(p.0);
        let d = |c: &[f32; 3]| (0..3).map(|i| (c[i] - l[i]).powi(2)).sum::<f32>();
        let best = (0..palette.len())
            .min_by(|&a, &b| d(&palette[a]).total_cmp(&d(&palette[b])))
            .expect("palette is not empty");
        let name = PALETTE[best].0;
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some(c) => c.1 += 1,
            None => counts.push((name, 1)),
        }
    }
    let total = thumb.pixels().len().max(1) as f32;
    let mut shares: Vec<(&'static str, f32)> = counts.into_iter().map(|(n, c)| (n, c as f32 / total)).collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    shares.retain(|(_, s)| *s >= 0.05);
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_colours_of_a_flag() {
        // Left half red, right half white, a blue strip along the top (1/8 of the rows).
        let img = RgbImage::from_fn(64, 64, |x, y| match (x, y) {
            (_, 0..8) => image::Rgb([30, 60, 190]),
            (0..32, _) => image::Rgb([210, 25, 35]),
            _ => image::Rgb([250, 250, 250]),
        });
        let d = dominant(&img);
        let names: Vec<&str> = d.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["red", "white", "blue"], "{d:?}");
        assert!((d[0].1 - 0.4375).abs() < 0.01);
    }
}
