//! `tandem bench voice`: the Piper voice's speed on this machine — for one sentence and a
//! paragraph, the time to the first audio (phonemes, the first sentence synthesised and encoded
//! as mp3: what a streamed `/v1/audio/speech` sends first), the whole synthesis and its real-time
//! factor; then the mini's decode speed alone and while the voice speaks on the same cores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use tandem_engine::LoadedModel;
use tandem_model::{KvCache, RunState};
use tandem_voice::encode::{encode, Format};
use tandem_voice::{Phonemizer, Voice};

use crate::Home;

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog.";
const PARAGRAPH: &str = "Tandem runs on your own computer. It hears with Whisper and speaks with Piper. \
    The models come from pinned packages, checked by their hashes. Nothing is fetched from the web \
    while it runs. Ask it a question, and it answers in a voice.";

#[derive(Args)]
pub struct BenchVoiceArgs {
    /// Rounds (the median is reported).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    reps: usize,
    /// Decode tokens for the interference measure (0: skip it).
    #[arg(short = 'n', long, default_value_t = 64)]
    gen: usize,
    /// ONNX Runtime's threads for the voice (default: the compute threads).
    #[arg(long)]
    voice_threads: Option<usize>,
}

pub fn bench_voice(home: &Home, a: BenchVoiceArgs) -> Result<()> {
    let threads = a.voice_threads.unwrap_or_else(tandem_kernels::pool::threads);
    let (voice, ph) = crate::say::load_voice(home, threads)?;
    println!(
        "voice en_US-joe-medium · ONNX Runtime 1.32.0 · voice {threads} threads, compute pool {} · median of {}",
        tandem_kernels::pool::threads(),
        a.reps
    );
    println!("| text | first audio (s) | synthesis (s) | audio (s) | real-time factor |\n|---|---:|---:|---:|---:|");
    for (name, text) in [("one sentence", SENTENCE), ("paragraph (5 sentences)", PARAGRAPH)] {
        let (mut first, mut total, mut secs) = (Vec::new(), Vec::new(), 0.0);
        for _ in 0..a.reps.max(1) {
            let t = Instant::now();
            let sentences = ph.sentences(text)?;
            let mut audio = Vec::new();
            for (i, s) in sentences.iter().enumerate() {
                let part = voice.speak_sentence(s, voice.scales)?;
                if i == 0 {
                    encode(&part, voice.sample_rate, Format::Mp3)?;
                    first.push(t.elapsed().as_secs_f64());
                }
                audio.extend(part);
            }
            total.push(t.elapsed().as_secs_f64());
            secs = audio.len() as f64 / voice.sample_rate as f64;
        }
        let (f, s) = (crate::bench::median(&mut first), crate::bench::median(&mut total));
        println!("| {name} | {f:.3} | {s:.3} | {secs:.2} | {:.3} |", s / secs);
    }
    if a.gen > 0 {
        decode_interference(home, &voice, &ph, a.gen)?;
    }
    Ok(())
}

/// The mini's decode tok/s alone, then while another thread keeps the voice speaking.
fn decode_interference(home: &Home, voice: &Voice, ph: &Phonemizer, n: usize) -> Result<()> {
    let path = home.resolve_model("mini")?;
    let lm = LoadedModel::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let cfg = &lm.model.config;
    let mut kv = KvCache::new(cfg, n + 2);
    let mut st = RunState::new(cfg, tandem_engine::PREFILL_BATCH, 1, n + 2);
    let mut decode = || -> Result<f64> {
        kv.truncate(0);
        let (mut tok, t) = (1u32, Instant::now());
        for _ in 0..n {
            tok = tandem_engine::argmax(lm.model.decode(&mut st, &mut kv, tok)?);
        }
        Ok(n as f64 / t.elapsed().as_secs_f64())
    };
    decode()?;
    let alone = decode()?;
    let speaking = AtomicBool::new(true);
    let sentences = ph.sentences(PARAGRAPH)?;
    let busy = std::thread::scope(|sc| -> Result<f64> {
        let h = sc.spawn(|| {
            while speaking.load(Ordering::Relaxed) {
                for s in &sentences {
                    let _ = voice.speak_sentence(s, voice.scales);
                }
            }
        });
        let r = decode();
        speaking.store(false, Ordering::Relaxed);
        let _ = h.join();
        r
    })?;
    println!(
        "\nmini decode, {n} tokens: alone {alone:.1} tok/s, while the voice speaks {busy:.1} tok/s ({:.0}% of alone)",
        100.0 * busy / alone
    );
    Ok(())
}
