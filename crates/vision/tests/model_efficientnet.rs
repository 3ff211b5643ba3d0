//! The classifier against the independent reference (`tools/efficientnet_reference.py`: a
//! torch-free unpickler, float64 NumPy, PIL preprocessing) on the same weights:
//! - the network on the reference's own 224 × 224 crops: top-5 identical and every logit within
//!   2e-3 on the exact path (f32 against f64); int8 weights: the same top-1, logits within 0.5 (measured 0.26);
//! - the preprocessing: tandem's crop of each photo against PIL's, pixel by pixel, and the same
//!   top-1 end to end.
//!
//! Needs `tandem pull vision` (the README's test command runs it).

use std::path::PathBuf;

use tandem_vision::{Classifier, Precision};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    let home = std::env::var_os("TANDEM_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/tandem"));
    let d = home.join("models/vision");
    assert!(
        d.join(".verified").exists(),
        "run `tandem pull vision` first (the README's test command does)"
    );
    d
}

fn golden() -> serde_json::Value {
    let p = root().join("tests/golden/efficientnet_reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn rgb(path: PathBuf) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap();
    tandem_vision::decode(&bytes, Default::default()).unwrap().rgb
}

fn top5(logits: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.truncate(5);
    idx
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn network_matches_the_reference() {
    let g = golden();
    for (p, tol) in [(Precision::Exact, 2e-3), (Precision::Int8, 0.5)] {
        let c = Classifier::load(&model_dir(), p).unwrap();
        for im in g["images"].as_array().unwrap() {
            let crop = rgb(root().join(im["crop"].as_str().unwrap()));
            let got = c.logits_of_crop(&crop);
            let want = floats(&im["logits"]);
            let want_top: Vec<usize> = im["top5"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t[0].as_u64().unwrap() as usize)
                .collect();
            let d = max_diff(&got, &want);
            eprintln!(
                "{p:?} {}: max |Δlogit| {d:.2e}, top-5 {:?} vs {want_top:?}",
                im["file"],
                top5(&got)
            );
            assert!(d <= tol, "{p:?} {}: {d}", im["file"]);
            if p == Precision::Exact {
                assert_eq!(top5(&got), want_top);
            } else {
                assert_eq!(top5(&got)[0], want_top[0]);
            }
        }
        let grey = image::RgbImage::from_pixel(224, 224, image::Rgb([127, 127, 127]));
        let d = max_diff(&c.logits_of_crop(&grey), &floats(&g["grey_logits"]));
        assert!(d <= tol, "{p:?} grey: {d}");
    }
}

#[test]
fn preprocessing_matches_pil() {
    let g = golden();
    let c = Classifier::load(&model_dir(), Precision::Exact).unwrap();
    for im in g["images"].as_array().unwrap() {
        let photo = rgb(root().join("tests/data/vision").join(im["file"].as_str().unwrap()));
        let ours = tandem_vision::preprocess::crop(&photo);
        let pil = rgb(root().join(im["crop"].as_str().unwrap()));
        let diffs: Vec<i32> = ours
            .as_raw()
            .iter()
            .zip(pil.as_raw())
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let max = *diffs.iter().max().unwrap();
        eprintln!("{}: crop vs PIL mean |Δ| {mean:.3}, max {max}", im["file"]);
        assert!(mean < 0.5 && max <= 8, "{}: mean {mean}, max {max}", im["file"]);
        let top = c.top(&photo, 1);
        assert_eq!(top[0].0, im["top5"][0][1].as_str().unwrap());
    }
}
