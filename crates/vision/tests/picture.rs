//! Images are hostile until decoded within limits: every way an image can be wrong is a clear
//! error (never a panic, never a giant allocation), and what is right arrives upright in RGB.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use tandem_vision::{decode, Limits};

fn encode(img: &RgbImage, f: ImageFormat) -> Vec<u8> {
    let mut b = Vec::new();
    img.write_to(&mut Cursor::new(&mut b), f).unwrap();
    b
}

/// 8 × 4: left half red, right half blue.
fn sample() -> RgbImage {
    RgbImage::from_fn(8, 4, |x, _| if x < 4 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) })
}

fn err(bytes: &[u8], limits: Limits) -> String {
    match decode(bytes, limits) {
        Ok(_) => panic!("decoded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_format_decodes() {
    for (f, name) in [
        (ImageFormat::Png, "png"),
        (ImageFormat::Jpeg, "jpeg"),
        (ImageFormat::WebP, "webp"),
        (ImageFormat::Gif, "gif"),
    ] {
        let p = decode(&encode(&sample(), f), Limits::default()).unwrap();
        assert_eq!((p.format, p.rgb.dimensions()), (name, (8, 4)));
        let left = p.rgb.get_pixel(1, 1).0;
        assert!(left[0] > 200 && left[2] < 60, "{name}: {left:?}");
    }
}

#[test]
fn transparency_is_composited_on_white() {
    let img = RgbaImage::from_pixel(2, 2, Rgba([0, 0, 0, 0]));
    let mut b = Vec::new();
    img.write_to(&mut Cursor::new(&mut b), ImageFormat::Png).unwrap();
    assert_eq!(
        decode(&b, Limits::default()).unwrap().rgb.get_pixel(0, 0).0,
        [255, 255, 255]
    );
}

/// A JPEG with an EXIF orientation of 6 (rotate 90° clockwise to view) comes out upright.
#[test]
fn exif_orientation_is_applied() {
    let jpeg = encode(&sample(), ImageFormat::Jpeg);
    let mut tiff = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut with_exif = vec![0xFF, 0xD8, 0xFF, 0xE1];
    with_exif.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
    with_exif.extend_from_slice(&tiff);
    with_exif.extend_from_slice(&jpeg[2..]);
    let p = decode(&with_exif, Limits::default()).unwrap();
    assert_eq!(p.rgb.dimensions(), (4, 8));
    // Rotated clockwise: the red left half is now on top.
    assert!(p.rgb.get_pixel(1, 1).0[0] > 200 && p.rgb.get_pixel(1, 6).0[2] > 200);
}

#[test]
fn bad_images_are_clear_errors() {
    let png = encode(&sample(), ImageFormat::Png);
    assert!(err(&png[..png.len() / 2], Limits::default()).contains("could not be decoded"));
    assert!(err(b"GIF89a", Limits::default()).contains("could not"));
    assert!(err(b"hello, world", Limits::default()).contains("not an image"));
    // A BMP's signature: a real image type, not one taken.
    assert!(err(b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0", Limits::default()).contains("not supported"));
    let small = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    assert!(err(&png, small).contains("bytes"));
}

/// A PNG whose header claims 100,000 × 100,000 pixels (a 30-GB image in a few hundred bytes) is
/// refused from its header, before a pixel is decoded.
#[test]
fn a_pixel_bomb_is_refused_before_decoding() {
    let mut png = encode(&RgbImage::new(1, 1), ImageFormat::Png);
    // IHDR: width and height at bytes 16..24, then its CRC at 29..33.
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let e = err(&png, Limits::default());
    assert!(e.contains("100000×100000"), "{e}");
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}
