//! Reading text with PP-OCRv4 (PaddleOCR's detector and Chinese + English recogniser, and its
//! text-direction classifier; ONNX graphs from `rapidocr-onnxruntime` 1.4.4, run by ONNX
//! Runtime), as rapidocr runs them: the image in BGR, detection on its shorter side scaled to
//! 736 (sides multiples of 32), text boxes from the probability map (`text_boxes`), each box cut
//! out by a perspective warp (turned upright when tall), turned 180° when the classifier is sure,
//! and read by the recogniser at height 48 in batches of 6 (CTC greedy decoding over the
//! character list the graph carries in its metadata). Lines below 0.5 confidence are dropped.
//!
//! Graphs: det x [1, 3, H, W] → [1, 1, H, W] probabilities; cls x [N, 3, 48, 192] → [N, 2]
//! (upright, upside down); rec x [N, 3, 48, W] → [N, W/8, 6625] softmax over blank, the 6,623
//! characters, and a space.

use std::path::Path;
use std::sync::Mutex;

use image::RgbImage;
use ort::session::Session;
use ort::value::Tensor;
use tandem_onnx::ort;

use crate::text_boxes::{self, Pt};
use crate::{Line, Result, VisionError};

pub const DET: &str = "ch_PP-OCRv4_det_infer.onnx";
pub const REC: &str = "ch_PP-OCRv4_rec_infer.onnx";
pub const CLS: &str = "ch_ppocr_mobile_v2.0_cls_infer.onnx";

const DET_SIDE: usize = 736;
const HEIGHT: usize = 48;
const CLS_WIDTH: usize = 192;
const REC_MIN_WIDTH: usize = 320;
const BATCH: usize = 6;
const CLS_THRESH: f32 = 0.9;
const TEXT_SCORE: f32 = 0.5;

pub struct PpOcr {
    det: Mutex<Session>,
    cls: Mutex<Session>,
    rec: Mutex<Session>,
    /// Index → text: blank, the characters, a space.
    table: Vec<String>,
    /// The characters the recogniser can output.
    charset: std::collections::HashSet<char>,
}

fn runtime_err(e: impl std::fmt::Display) -> VisionError {
    VisionError::Ocr(format!("ONNX Runtime: {e}"))
}

impl PpOcr {
    /// The three graphs in `dir` on the ONNX Runtime library `lib`, `threads` threads each.
    pub fn load(dir: &Path, lib: &Path, threads: usize) -> Result<Self> {
        let open = |f: &str| tandem_onnx::session(&dir.join(f), lib, threads).map_err(VisionError::Ocr);
        let rec = open(REC)?;
        let chars = rec
            .metadata()
            .map_err(runtime_err)?
            .custom("character")
            .ok_or_else(|| VisionError::Ocr(format!("{REC} carries no character list")))?;
        let mut table = vec![String::new()];
        table.extend(chars.lines().map(str::to_string));
        table.push(" ".into());
        let charset = table.iter().flat_map(|t| t.chars()).collect();
        Ok(Self {
            charset,
            det: Mutex::new(open(DET)?),
            cls: Mutex::new(open(CLS)?),
            rec: Mutex::new(rec),
            table,
        })
    }

    /// Whether the recogniser can output `c` (its Chinese + English character list).
    pub fn knows(&self, c: char) -> bool {
        self.charset.contains(&c)
    }

    /// The lines of text in `img`, in reading order, with the recogniser's confidence.
    pub fn read(&self, img: &RgbImage) -> Result<Vec<Line>> {
        let img = letterbox(&bounded(img));
        let boxes = self.detect(&img)?;
        let mut crops: Vec<RgbImage> = boxes.iter().map(|q| crop(&img, q)).collect();
        self.turn_upright(&mut crops)?;
        let read = self.recognise(&crops)?;
        Ok(read.into_iter().filter(|l| l.confidence >= TEXT_SCORE).collect())
    }

    /// The text boxes (TL, TR, BR, BL) in reading order, in the coordinates of `img` as bounded.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<[Pt; 4]>> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let r = if w.min(h) < DET_SIDE {
            DET_SIDE as f32 / w.min(h) as f32
        } else {
            1.0
        };
        let side = |v: usize| (((v as f32 * r) as usize) as f32 / 32.0).round().max(1.0) as usize * 32;
        let (dw, dh) = (side(w), side(h));
        let x = nchw(&[resize(img, dw, dh)], dw);
        let input = Tensor::from_array(([1usize, 3, dh, dw], x)).map_err(runtime_err)?;
        let mut s = self.det.lock().unwrap_or_else(|p| p.into_inner());
        let out = s.run(ort::inputs![input]).map_err(runtime_err)?;
        let (_, map) = out[0].try_extract_tensor::<f32>().map_err(runtime_err)?;
        Ok(text_boxes::boxes(map, dw, dh, w, h))
    }

    /// Crops the classifier is sure are upside down (p > 0.9), turned 180°.
    fn turn_upright(&self, crops: &mut [RgbImage]) -> Result<()> {
        for batch in by_ratio(crops).chunks(BATCH) {
            let imgs: Vec<RgbImage> = batch.iter().map(|&i| fit(&crops[i], CLS_WIDTH)).collect();
            let input = Tensor::from_array(([imgs.len(), 3, HEIGHT, CLS_WIDTH], nchw(&imgs, CLS_WIDTH)))
                .map_err(runtime_err)?;
            let mut s = self.cls.lock().unwrap_or_else(|p| p.into_inner());
            let out = s.run(ort::inputs![input]).map_err(runtime_err)?;
            let (_, p) = out[0].try_extract_tensor::<f32>().map_err(runtime_err)?;
            for (k, &i) in batch.iter().enumerate() {
                if p[2 * k + 1] > p[2 * k] && p[2 * k + 1] > CLS_THRESH {
                    image::imageops::rotate180_in_place(&mut crops[i]);
                }
            }
        }
        Ok(())
    }

    /// Each crop's text and confidence, in the crops' order.
    fn recognise(&self, crops: &[RgbImage]) -> Result<Vec<Line>> {
        let mut out = vec![None; crops.len()];
        for batch in by_ratio(crops).chunks(BATCH) {
            let ratio = batch
                .iter()
                .map(|&i| crops[i].width() as f32 / crops[i].height().max(1) as f32)
                .fold(REC_MIN_WIDTH as f32 / HEIGHT as f32, f32::max);
            let width = (HEIGHT as f32 * ratio) as usize;
            let imgs: Vec<RgbImage> = batch.iter().map(|&i| fit(&crops[i], width)).collect();
            let input =
                Tensor::from_array(([imgs.len(), 3, HEIGHT, width], nchw(&imgs, width))).map_err(runtime_err)?;
            let mut s = self.rec.lock().unwrap_or_else(|p| p.into_inner());
            let res = s.run(ort::inputs![input]).map_err(runtime_err)?;
            let (shape, probs) = res[0].try_extract_tensor::<f32>().map_err(runtime_err)?;
            let (steps, classes) = (shape[1] as usize, shape[2] as usize);
            for (k, &i) in batch.iter().enumerate() {
                out[i] = Some(self.decode(&probs[k * steps * classes..(k + 1) * steps * classes], classes));
            }
        }
        Ok(out.into_iter().map(|l| l.expect("every crop is in a batch")).collect())
    }

    /// CTC greedy decoding: the likeliest class at each step, repeats merged, blanks dropped;
    /// the confidence is the mean probability of the kept steps.
    fn decode(&self, probs: &[f32], classes: usize) -> Line {
        let (mut text, mut sum, mut n, mut prev) = (String::new(), 0.0f32, 0usize, usize::MAX);
        for step in probs.chunks_exact(classes) {
            let (idx, p) = step
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |best, (i, &p)| if p > best.1 { (i, p) } else { best });
            if idx != prev && idx != 0 {
                text.push_str(self.table.get(idx).map(String::as_str).unwrap_or(""));
                sum += p;
                n += 1;
            }
            prev = idx;
        }
        Line {
            text,
            confidence: if n == 0 { 0.0 } else { sum / n as f32 },
        }
    }
}

/// Crop indices by width ÷ height, narrowest first (batches then pad little).
fn by_ratio(crops: &[RgbImage]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..crops.len()).collect();
    let ratio = |i: usize| crops[i].width() as f32 / crops[i].height().max(1) as f32;
    idx.sort_by(|&a, &b| ratio(a).total_cmp(&ratio(b)));
    idx
}

/// Sides within 30..=2000 pixels, as rapidocr bounds its input (sides rounded to multiples of 32).
fn bounded(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let r = if w.max(h) > 2000.0 {
        2000.0 / w.max(h)
    } else if w.min(h) < 30.0 {
        30.0 / w.min(h)
    } else {
        return img.clone();
    };
    let side = |v: f32| ((((v * r) as usize) as f32 / 32.0).round() as usize * 32).max(32);
    resize(img, side(w), side(h))
}

/// A very flat image (a single line) padded with black rows above and below, as rapidocr does.
fn letterbox(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    if h > 30 && w <= 8 * h {
        return img.clone();
    }
    let pad = (((w / 8).max(30) * 2 - h).abs() / 2) as u32;
    let mut out = RgbImage::new(img.width(), img.height() + 2 * pad);
    image::imageops::replace(&mut out, img, 0, pad as i64);
    out
}

/// Height 48, width ⌈48·w/h⌉ up to `width`, padded on the right to `width` (by `nchw`).
fn fit(img: &RgbImage, width: usize) -> RgbImage {
    let ratio = img.width() as f32 / img.height().max(1) as f32;
    let w = ((HEIGHT as f32 * ratio).ceil() as usize).clamp(1, width);
    resize(img, w, HEIGHT)
}

/// Images (each at most `width` wide, all the same height) as one [n, 3, h, width] batch in BGR,
/// (p / 255 − 0.5) / 0.5, zeros on the right of narrower ones.
fn nchw(imgs: &[RgbImage], width: usize) -> Vec<f32> {
    let h = imgs.first().map_or(0, |i| i.height() as usize);
    let mut x = vec![0f32; imgs.len() * 3 * h * width];
    for (n, img) in imgs.iter().enumerate() {
        for (px, py, p) in img.enumerate_pixels() {
            for (c, &v) in p.0.iter().rev().enumerate() {
                x[((n * 3 + c) * h + py as usize) * width + px as usize] = (v as f32 / 255.0 - 0.5) / 0.5;
            }
        }
    }
    x
}

/// Bilinear resize with half-pixel centres and no smoothing, as OpenCV's INTER_LINEAR.
fn resize(img: &RgbImage, w: usize, h: usize) -> RgbImage {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let (fx, fy) = (sw as f32 / w as f32, sh as f32 / h as f32);
    let taps = |d: usize, f: f32, n: usize| {
        let s = ((d as f32 + 0.5) * f - 0.5).max(0.0);
        let i = (s as usize).min(n - 1);
        (i, (i + 1).min(n - 1), (s - i as f32).min(1.0))
    };
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let (x0, x1, ax) = taps(x as usize, fx, sw);
        let (y0, y1, ay) = taps(y as usize, fy, sh);
        let p = |xx: usize, yy: usize| img.get_pixel(xx as u32, yy as u32).0;
        let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
        image::Rgb(std::array::from_fn(|k| {
            let top = a[k] as f32 * (1.0 - ax) + b[k] as f32 * ax;
            let bot = c[k] as f32 * (1.0 - ax) + d[k] as f32 * ax;
            (top * (1.0 - ay) + bot * ay).round().clamp(0.0, 255.0) as u8
        }))
    })
}

/// The quadrilateral `q` (TL, TR, BR, BL) warped to an upright rectangle (bicubic, edges
/// replicated), turned a quarter counter-clockwise when it is at least 1.5 times taller than wide.
fn crop(img: &RgbImage, q: &[Pt; 4]) -> RgbImage {
    let d = |a: Pt, b: Pt| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let w = (d(q[0], q[1]).max(d(q[2], q[3])) as u32).max(1);
    let h = (d(q[0], q[3]).max(d(q[1], q[2])) as u32).max(1);
    let m = homography([[0.0, 0.0], [w as f32, 0.0], [w as f32, h as f32], [0.0, h as f32]], *q);
    let out = RgbImage::from_fn(w, h, |x, y| {
        let (x, y) = (x as f64, y as f64);
        let z = m[6] * x + m[7] * y + 1.0;
        let sx = (m[0] * x + m[1] * y + m[2]) / z;
        let sy = (m[3] * x + m[4] * y + m[5]) / z;
        bicubic(img, sx as f32, sy as f32)
    });
    if h as f32 / w as f32 >= 1.5 {
        image::imageops::rotate270(&out)
    } else {
        out
    }
}

/// The homography taking `from[i]` to `to[i]` (row-major, m[8] = 1).
fn homography(from: [Pt; 4], to: [Pt; 4]) -> [f64; 8] {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let ([x, y], [u, v]) = (from[i].map(f64::from), to[i].map(f64::from));
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for col in 0..8 {
        let piv = (col..8)
            .max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))
            .expect("rows");
        a.swap(col, piv);
        let p = a[col][col];
        if p.abs() < 1e-12 {
            continue;
        }
        a[col].iter_mut().for_each(|v| *v /= p);
        let pivot = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col];
                row.iter_mut().zip(&pivot).for_each(|(v, q)| *v -= f * q);
            }
        }
    }
    std::array::from_fn(|i| a[i][8])
}

/// OpenCV's INTER_CUBIC (a = −0.75) at (x, y), edges replicated.
fn bicubic(img: &RgbImage, x: f32, y: f32) -> image::Rgb<u8> {
    let k = |t: f32| {
        let (a, t) = (-0.75f32, t.abs());
        if t <= 1.0 {
            ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
        } else if t < 2.0 {
            ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
        } else {
            0.0
        }
    };
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (w, h) = (img.width() as i64 - 1, img.height() as i64 - 1);
    let mut acc = [0f32; 3];
    for j in -1..=2i64 {
        let wy = k(fy - j as f32);
        let yy = (y0 as i64 + j).clamp(0, h) as u32;
        for i in -1..=2i64 {
            let wgt = wy * k(fx - i as f32);
            let xx = (x0 as i64 + i).clamp(0, w) as u32;
            let p = img.get_pixel(xx, yy).0;
            for c in 0..3 {
                acc[c] += wgt * p[c] as f32;
            }
        }
    }
    image::Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
}
