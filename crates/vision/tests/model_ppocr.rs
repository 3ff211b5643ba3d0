//! PP-OCRv4 against rapidocr-onnxruntime 1.4.4 itself (`tools/ppocr_reference.py`) on the test
//! images: the same lines in the same order with the same text, boxes within 2 pixels (measured:
//! 1), confidences within 0.01 (measured: 2e-4; our
//! resizes and warp are OpenCV's formulas, not its fixed-point code). Needs `tandem pull vision`
//! (the graphs) and ONNX Runtime (`tandem pull onnxruntime`; the README's test command pulls
//! both).

use std::path::PathBuf;

use tandem_vision::ppocr::PpOcr;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models() -> PathBuf {
    let home = std::env::var_os("TANDEM_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/tandem"));
    home.join("models")
}

#[test]
fn reads_what_rapidocr_reads() {
    let m = models();
    let (dir, lib) = (m.join("vision"), m.join("onnxruntime-1.32.0/libonnxruntime.so.1.32.0"));
    assert!(
        dir.join(".verified").exists() && lib.exists(),
        "run `tandem pull vision` first"
    );
    let ocr = PpOcr::load(&dir, &lib, 2).unwrap();
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/golden/ppocr_reference.json")).unwrap())
            .unwrap();
    for im in g["images"].as_array().unwrap() {
        let bytes = std::fs::read(root().join("tests/data/vision").join(im["file"].as_str().unwrap())).unwrap();
        let pic = tandem_vision::decode(&bytes, Default::default()).unwrap();
        let t = std::time::Instant::now();
        let got = ocr.read(&pic.rgb).unwrap();
        eprintln!("{}: {got:?} in {:.2} s", im["file"], t.elapsed().as_secs_f64());
        let want = im["lines"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{}", im["file"]);
        // The boxes (every line here is kept): each corner within 2 pixels of rapidocr's.
        let boxes = ocr.detect(&pic.rgb).unwrap();
        for (b, w) in boxes.iter().zip(want) {
            for (p, q) in b.iter().zip(w["box"].as_array().unwrap()) {
                let (x, y) = (q[0].as_f64().unwrap() as f32, q[1].as_f64().unwrap() as f32);
                assert!(
                    (p[0] - x).abs() <= 2.0 && (p[1] - y).abs() <= 2.0,
                    "{b:?} vs {}",
                    w["box"]
                );
            }
        }
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.text, w["text"].as_str().unwrap());
            let c = w["confidence"].as_f64().unwrap() as f32;
            assert!((g.confidence - c).abs() < 0.01, "{}: {} vs {c}", g.text, g.confidence);
        }
    }
}
