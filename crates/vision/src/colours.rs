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

/// The colours of an image by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Colours {
    /// The colour of at least 60% of the border: what the picture sits on.
    pub background: Option<&'static str>,
    /// (name, share of the image) for names covering ≥ 5%, largest first (the background's
    /// included).
    pub shares: Vec<(&'static str, f32)>,
    /// With a background: (name, share of the rest) for names covering ≥ 15% of what is not
    /// background — a small object's colour, however little of the image it covers.
    pub foreground: Vec<(&'static str, f32)>,
}

/// The nearest palette name of an sRGB pixel.
fn name(palette: &[[f32; 3]], p: [u8; 3]) -> &'static str {
    let l = lab(p);
    let d = |c: &[f32; 3]| (0..3).map(|i| (c[i] - l[i]).powi(2)).sum::<f32>();
    let best = (0..palette.len())
        .min_by(|&a, &b| d(&palette[a]).total_cmp(&d(&palette[b])))
        .expect("palette is not empty");
    PALETTE[best].0
}

/// Each name's share of `names`, largest first.
fn shares(names: impl Iterator<Item = &'static str>) -> Vec<(&'static str, f32)> {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    let mut total = 0usize;
    for n in names {
        total += 1;
        match counts.iter_mut().find(|(c, _)| *c == n) {
            Some(c) => c.1 += 1,
            None => counts.push((n, 1)),
        }
    }
    let mut s: Vec<(&'static str, f32)> = counts
        .into_iter()
        .map(|(n, c)| (n, c as f32 / total.max(1) as f32))
        .collect();
    s.sort_by(|a, b| b.1.total_cmp(&a.1));
    s
}

/// The image's colours: its background (from the border of a ≤ 64 × 64 thumbnail) and the
/// names covering at least 5% of it.
pub fn dominant(img: &RgbImage) -> Colours {
    let thumb = image::imageops::thumbnail(img, 64.min(img.width()), 64.min(img.height()));
    let palette: Vec<[f32; 3]> = PALETTE.iter().map(|(_, c)| lab(*c)).collect();
    let (w, h) = thumb.dimensions();
    let border = thumb
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h)
        .map(|(_, _, p)| name(&palette, p.0));
    let background = shares(border).first().filter(|(_, s)| *s >= 0.6).map(|(n, _)| *n);
    let names: Vec<&'static str> = thumb.pixels().map(|p| name(&palette, p.0)).collect();
    let mut all = shares(names.iter().copied());
    all.retain(|(_, s)| *s >= 0.05);
    let foreground = match background {
        Some(bg) => {
            let mut f = shares(names.iter().copied().filter(|n| *n != bg));
            f.retain(|(_, s)| *s >= 0.15);
            f
        }
        None => Vec::new(),
    };
    Colours {
        background,
        shares: all,
        foreground,
    }
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
        let names: Vec<&str> = d.shares.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["red", "white", "blue"], "{d:?}");
        assert!((d.shares[0].1 - 0.4375).abs() < 0.01);
        // The border is red, white and blue: no colour holds 60% of it.
        assert_eq!(d.background, None);
    }

    #[test]
    fn finds_the_background() {
        // A blue disc on white.
        let img = RgbImage::from_fn(64, 64, |x, y| {
            let (dx, dy) = (x as i32 - 32, y as i32 - 32);
            if dx * dx + dy * dy < 400 {
                image::Rgb([30, 60, 190])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let d = dominant(&img);
        assert_eq!(d.background, Some("white"));
        assert_eq!(d.shares[1].0, "blue");
        assert_eq!(d.foreground.len(), 1);
        assert_eq!(d.foreground[0].0, "blue");
    }
}
