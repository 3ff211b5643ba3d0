//! A Piper voice: its config (`.onnx.json`: sample rate, espeak-ng voice, phoneme id map,
//! default scales) and its VITS graph on ONNX Runtime. The runtime is ONNX Runtime's shared
//! library (pinned by `tandem pull speech`), loaded once per process.
//!
//! Graph: input [1, n] phoneme ids (i64), input_lengths [1], scales [3] = (noise_scale,
//! length_scale, noise_w) → audio [1, 1, 1, samples] f32 in [-1, 1] at the voice's rate.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;
use tandem_onnx::ort;

use crate::{Result, VoiceError};

/// The sampling scales: noise of the acoustic prior, the length of each phoneme (above 1:
/// slower), noise of the durations. 0 noises make the output deterministic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scales {
    pub noise: f32,
    pub length: f32,
    pub noise_w: f32,
}

pub struct Voice {
    session: Mutex<Session>,
    pub sample_rate: u32,
    /// espeak-ng's voice name (`en-us`).
    pub espeak_voice: String,
    pub scales: Scales,
    ids: HashMap<char, Vec<i64>>,
}

impl Voice {
    /// The voice `onnx` (its config beside it as `<onnx>.json`) on the ONNX Runtime library
    /// `runtime_lib`, with `threads` intra-op threads.
    pub fn load(onnx: &Path, runtime_lib: &Path, threads: usize) -> Result<Self> {
        let cfg_path = onnx.with_extension("onnx.json");
        let cfg: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&cfg_path).map_err(|e| VoiceError::Io(format!("{}: {e}", cfg_path.display())))?,
        )
        .map_err(|e| VoiceError::Format(format!("{}: {e}", cfg_path.display())))?;
        let ids = id_map(&cfg)?;
        let session = tandem_onnx::session(onnx, runtime_lib, threads).map_err(VoiceError::Runtime)?;
        let inf = &cfg["inference"];
        let f = |v: &serde_json::Value, d: f32| v.as_f64().map_or(d, |x| x as f32);
        Ok(Self {
            session: Mutex::new(session),
            sample_rate: cfg["audio"]["sample_rate"].as_u64().unwrap_or(22_050) as u32,
            espeak_voice: cfg["espeak"]["voice"].as_str().unwrap_or("en-us").to_string(),
            scales: Scales {
                noise: f(&inf["noise_scale"], 0.667),
                length: f(&inf["length_scale"], 1.0),
                noise_w: f(&inf["noise_w"], 0.8),
            },
            ids,
        })
    }

    /// Piper's ids for one sentence's phonemes: `^`, then each known phoneme followed by the pad
    /// `_`, then `$` (phonemes missing from the map are skipped, as Piper skips them).
    pub fn ids(&self, phonemes: &[char]) -> Vec<i64> {
        let get = |c: char| self.ids.get(&c).map(Vec::as_slice).unwrap_or(&[]);
        let mut out: Vec<i64> = get('^').to_vec();
        out.extend(get('_'));
        for &p in phonemes.iter().filter(|p| self.ids.contains_key(p)) {
            out.extend(get(p));
            out.extend(get('_'));
        }
        out.extend(get('$'));
        out
    }

    /// One sentence's phonemes spoken: its ids through the graph.
    pub fn speak_sentence(&self, phonemes: &[char], s: Scales) -> Result<Vec<f32>> {
        self.synthesize(&self.ids(phonemes), s)
    }

    /// `text` spoken sentence by sentence into one waveform.
    pub fn speak(&self, ph: &crate::Phonemizer, text: &str, s: Scales) -> Result<Vec<f32>> {
        let mut audio = Vec::new();
        for sentence in ph.sentences(text)? {
            audio.extend(self.speak_sentence(&sentence, s)?);
        }
        Ok(audio)
    }

    /// The waveform of one sentence's ids, f32 at `sample_rate`.
    pub fn synthesize(&self, ids: &[i64], s: Scales) -> Result<Vec<f32>> {
        let n = ids.len();
        let err = |e: ort::Error| VoiceError::Runtime(e.to_string());
        let input = Tensor::from_array(([1usize, n], ids.to_vec())).map_err(err)?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(err)?;
        let scales = Tensor::from_array(([3usize], vec![s.noise, s.length, s.noise_w])).map_err(err)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let out = session.run(ort::inputs![input, lengths, scales]).map_err(err)?;
        let (_, audio) = out[0].try_extract_tensor::<f32>().map_err(err)?;
        Ok(audio.to_vec())
    }
}

/// `phoneme_id_map`: one-character phonemes → their ids.
fn id_map(cfg: &serde_json::Value) -> Result<HashMap<char, Vec<i64>>> {
    let map = cfg["phoneme_id_map"]
        .as_object()
        .ok_or_else(|| VoiceError::Format("no phoneme_id_map".into()))?;
    let mut out = HashMap::new();
    for (k, v) in map {
        let mut chars = k.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            continue;
        };
        let ids = v
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_i64()).collect())
            .unwrap_or_default();
        out.insert(c, ids);
    }
    for c in ['^', '_', '$'] {
        if !out.contains_key(&c) {
            return Err(VoiceError::Format(format!("phoneme_id_map has no {c:?}")));
        }
    }
    Ok(out)
}
