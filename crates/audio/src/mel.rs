//! Whisper's log-mel front end, as openai-whisper computes it: the audio padded with 30 s of
//! silence, reflect-padded by n_fft/2 at both ends, a periodic Hann window of 400 samples every
//! 160 (10 ms), power spectrum, 80 slaney-normalised mel filters up to 8 kHz, log10 clamped at
//! 1e-10, floored 8 (×10 dB) below the peak, then (x + 4) / 4.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// One window: 30 s, 3,000 frames.
pub const CHUNK_SAMPLES: usize = 30 * SAMPLE_RATE;
pub const CHUNK_FRAMES: usize = CHUNK_SAMPLES / HOP;

const N_BINS: usize = N_FFT / 2 + 1;

pub struct LogMel {
    n_mels: usize,
    /// [n_mels, N_BINS]
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

/// Slaney's mel scale (librosa `htk=False`): linear below 1 kHz, logarithmic above.
fn hz_to_mel(f: f64) -> f64 {
    let (f_sp, min_log_hz, logstep) = (200.0 / 3.0, 1000.0, (6.4f64).ln() / 27.0);
    if f >= min_log_hz {
        min_log_hz / f_sp + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let (f_sp, min_log_hz, logstep) = (200.0 / 3.0, 1000.0, (6.4f64).ln() / 27.0);
    let min_log_mel = min_log_hz / f_sp;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// Triangular filters between `n + 2` mel-spaced points from 0 Hz to Nyquist, each scaled by
/// 2 / (its width in Hz) (slaney normalisation): [n, N_BINS].
fn mel_filters(n: usize) -> Vec<f32> {
    let nyquist = SAMPLE_RATE as f64 / 2.0;
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    let pts: Vec<f64> = (0..n + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n + 1) as f64))
        .collect();
    let mut out = vec![0f32; n * N_BINS];
    for m in 0..n {
        let (left, centre, right) = (pts[m], pts[m + 1], pts[m + 2]);
        let norm = 2.0 / (right - left);
        for b in 0..N_BINS {
            let f = nyquist * b as f64 / (N_BINS - 1) as f64;
            let w = ((f - left) / (centre - left))
                .min((right - f) / (right - centre))
                .max(0.0);
            out[m * N_BINS + b] = (w * norm) as f32;
        }
    }
    out
}

impl LogMel {
    pub fn new(n_mels: usize) -> Self {
        let window = (0..N_FFT)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        Self {
            n_mels,
            filters: mel_filters(n_mels),
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    /// The log-mel spectrogram of `audio` (16 kHz mono) followed by 30 s of silence:
    /// [n_mels, frames], frames = (len + CHUNK_SAMPLES) / HOP.
    pub fn compute(&self, audio: &[f32]) -> Vec<f32> {
        let mut x = Vec::with_capacity(audio.len() + CHUNK_SAMPLES + N_FFT);
        let padded_len = audio.len() + CHUNK_SAMPLES;
        let at = |i: usize| if i < audio.len() { audio[i] } else { 0.0 };
        // Reflect padding (the edge sample itself is not repeated), as torch.stft's center=True.
        let half = N_FFT / 2;
        x.extend((1..=half).rev().map(|i| at(i.min(padded_len - 1))));
        x.extend((0..padded_len).map(at));
        x.extend((1..=half).map(|i| at(padded_len.saturating_sub(1 + i))));
        // The STFT has one frame more than whisper keeps (it drops the last).
        let frames = (x.len() - N_FFT) / HOP;
        let mut power = vec![0f32; frames * N_BINS];
        let buffers = || (self.fft.make_input_vec(), self.fft.make_output_vec());
        power
            .par_chunks_mut(N_BINS)
            .enumerate()
            .for_each_init(buffers, |(buf, spec), (t, row)| {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = x[t * HOP + i] * self.window[i];
                }
                self.fft.process(buf, spec).expect("buffer sizes come from the plan");
                for (p, c) in row.iter_mut().zip(spec.iter()) {
                    *p = c.re * c.re + c.im * c.im;
                }
            });
        let mut mel = vec![0f32; self.n_mels * frames];
        mel.par_chunks_mut(frames).enumerate().for_each(|(m, out)| {
            // Only the filter's non-zero bins: adding the zero products would change no sum.
            let f = &self.filters[m * N_BINS..(m + 1) * N_BINS];
            let lo = f.iter().position(|&w| w != 0.0).unwrap_or(0);
            let hi = f.iter().rposition(|&w| w != 0.0).map_or(lo, |i| i + 1);
            for (t, o) in out.iter_mut().enumerate() {
                let p = &power[t * N_BINS + lo..t * N_BINS + hi];
                let v: f32 = f[lo..hi].iter().zip(p).map(|(a, b)| a * b).sum();
                *o = v.max(1e-10).log10();
            }
        });
        let peak = mel.iter().copied().fold(f32::MIN, f32::max);
        for v in mel.iter_mut() {
            *v = (v.max(peak - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

/// Frames `from..from + CHUNK_FRAMES` of a [n_mels, frames] spectrogram, zero-padded past its end:
/// [n_mels, CHUNK_FRAMES].
pub fn window(mel: &[f32], n_mels: usize, from: usize) -> Vec<f32> {
    let frames = mel.len() / n_mels;
    let mut out = vec![0f32; n_mels * CHUNK_FRAMES];
    for m in 0..n_mels {
        for t in 0..CHUNK_FRAMES.min(frames.saturating_sub(from)) {
            out[m * CHUNK_FRAMES + t] = mel[m * frames + from + t];
        }
    }
    out
}
