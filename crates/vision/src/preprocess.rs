//! The classifier's input, as the weights were trained and evaluated: Google's EfficientNet eval
//! crop (the central square of 224/256 of the shorter side, offset rounded down then up as
//! TensorFlow's `(h − crop + 1) / 2`), resized to 224 × 224 with an antialiased Catmull-Rom
//! (bicubic, a = −0.5) filter — PIL's BICUBIC, which timm uses for these weights — then scaled
//! (pixel − 127) / 128 (Google's Lite builder: MEAN_RGB 127, STDDEV_RGB 128). Channels-last.

use image::imageops::FilterType;
use image::RgbImage;

use crate::efficientnet::INPUT;

/// The 224 × 224 crop the classifier sees.
pub fn crop(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = ((INPUT as f64 / 256.0) * w.min(h) as f64) as u32;
    let side = side.max(1);
    let (x0, y0) = ((w - side).div_ceil(2), (h - side).div_ceil(2));
    let square = image::imageops::crop_imm(img, x0, y0, side, side).to_image();
    image::imageops::resize(&square, INPUT as u32, INPUT as u32, FilterType::CatmullRom)
}

/// [224, 224, 3] floats of a 224 × 224 crop.
pub fn tensor(crop: &RgbImage) -> Vec<f32> {
    assert_eq!(crop.dimensions(), (INPUT as u32, INPUT as u32), "a 224 × 224 crop");
    crop.as_raw().iter().map(|&p| (p as f32 - 127.0) / 128.0).collect()
}
