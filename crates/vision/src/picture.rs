//! Images are hostile until decoded within limits: the bytes are capped, the format is sniffed
//! from the bytes (png, jpeg, webp, gif — first frame), the dimensions are read from the header
//! and checked before any pixel is decoded (a decompression bomb stops there), the decoder runs
//! under an allocation limit, and EXIF orientation is applied.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, RgbImage};

use crate::{Result, VisionError};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    /// Width × height.
    pub max_pixels: u64,
    pub max_side: u32,
}

impl Default for Limits {
    /// OpenAI's per-image limit is 20 MB (50 MB a request); 40 megapixels holds a 4:3 photo of
    /// 7,300 × 5,470 and decodes in ~120 MB.
    fn default() -> Self {
        Self {
            max_bytes: 20 << 20,
            max_pixels: 40_000_000,
            max_side: 16_384,
        }
    }
}

/// A decoded image, upright, as 8-bit RGB (alpha composited on white).
pub struct Picture {
    pub rgb: RgbImage,
    /// What the bytes were: `png`, `jpeg`, `webp` or `gif`.
    pub format: &'static str,
}

fn bad(msg: impl Into<String>) -> VisionError {
    VisionError::Image(msg.into())
}

/// Decodes `bytes` within `limits`.
pub fn decode(bytes: &[u8], limits: Limits) -> Result<Picture> {
    if bytes.len() > limits.max_bytes {
        return Err(bad(format!(
            "the image is {} bytes; the limit is {} bytes",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let format = match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => "png",
        Ok(ImageFormat::Jpeg) => "jpeg",
        Ok(ImageFormat::WebP) => "webp",
        Ok(ImageFormat::Gif) => "gif",
        Ok(other) => {
            return Err(bad(format!(
                "{other:?} images are not supported; send png, jpeg, webp or gif"
            )))
        }
        Err(_) => return Err(bad("the data is not an image (png, jpeg, webp or gif)")),
    };
    let reader = || ImageReader::with_format(Cursor::new(bytes), image::guess_format(bytes).expect("sniffed above"));
    let (w, h) = reader()
        .into_dimensions()
        .map_err(|e| bad(format!("the image header could not be read: {e}")))?;
    if w == 0 || h == 0 {
        return Err(bad("the image has no pixels"));
    }
    if w > limits.max_side || h > limits.max_side || w as u64 * h as u64 > limits.max_pixels {
        return Err(bad(format!(
            "the image is {w}×{h} pixels; the limit is {} pixels and {} on a side",
            limits.max_pixels, limits.max_side
        )));
    }
    let mut r = reader();
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    // RGBA f32 is the widest buffer a decoder makes: 16 bytes a pixel, with room for a copy.
    l.max_alloc = Some(limits.max_pixels * 16 * 2);
    r.limits(l);
    let mut decoder = r
        .into_decoder()
        .map_err(|e| bad(format!("the image could not be decoded: {e}")))?;
    use image::ImageDecoder;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img =
        image::DynamicImage::from_decoder(decoder).map_err(|e| bad(format!("the image could not be decoded: {e}")))?;
    img.apply_orientation(orientation);
    Ok(Picture {
        rgb: on_white(img),
        format,
    })
}

/// RGB, transparent pixels composited on white (as a page shows them).
fn on_white(img: image::DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = p[3] as u32;
        let mix = |c: u8| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([mix(p[0]), mix(p[1]), mix(p[2])])
    })
}
