//! Speech as the bytes `/v1/audio/speech` answers with: mp3 (LAME, built from source by
//! `mp3lame-sys`, 64 kbit/s), flac (`flacenc`, pure Rust, one STREAMINFO field mended), wav (16-bit PCM), pcm (OpenAI's raw
//! 24 kHz 16-bit little-endian, resampled), opus (the system's libopus in an Ogg stream, 24 kHz),
//! aac (ADTS, 64 kbit/s, from the `ffmpeg` program's native AAC encoder: no crate or library
//! binding ships one, so it is run like espeak-ng; without ffmpeg, aac is unavailable).

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::{Result, VoiceError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mp3,
    Opus,
    Aac,
    Flac,
    Wav,
    Pcm,
}

/// OpenAI's `pcm`: 24 kHz.
pub const PCM_RATE: u32 = 24_000;

impl Format {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "mp3" => Self::Mp3,
            "opus" => Self::Opus,
            "aac" => Self::Aac,
            "flac" => Self::Flac,
            "wav" => Self::Wav,
            "pcm" => Self::Pcm,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Opus => "audio/ogg; codecs=opus",
            Self::Aac => "audio/aac",
            Self::Flac => "audio/flac",
            Self::Wav => "audio/wav",
            Self::Pcm => "audio/pcm",
        }
    }
}

fn pcm16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
        .collect()
}

/// 16-bit little-endian samples (a wav file's data, or a stream's after `wav_header`).
pub fn pcm16_bytes(samples: &[f32]) -> Vec<u8> {
    pcm16(samples).iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// `samples` (mono f32 at `rate`) encoded as `format`.
pub fn encode(samples: &[f32], rate: u32, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Wav => Ok(wav(&pcm16(samples), rate)),
        Format::Pcm => pcm_bytes(samples, rate),
        Format::Flac => flac(&pcm16(samples), rate),
        Format::Mp3 => mp3(&pcm16(samples), rate),
        Format::Opus => {
            tandem_audio::opus::ogg_opus(samples, rate as usize).map_err(|e| VoiceError::Format(e.to_string()))
        }
        Format::Aac => aac(&pcm16(samples), rate),
    }
}

/// Raw 16-bit little-endian at 24 kHz.
pub fn pcm_bytes(samples: &[f32], rate: u32) -> Result<Vec<u8>> {
    let at24 = tandem_audio::input::resample(samples, rate as usize, PCM_RATE as usize)
        .map_err(|e| VoiceError::Format(e.to_string()))?;
    Ok(pcm16_bytes(&at24))
}

/// A 16-bit PCM mono wav file.
pub fn wav(pcm: &[i16], rate: u32) -> Vec<u8> {
    let mut b = header((pcm.len() * 2) as u32, rate);
    b.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
    b
}

/// The header of a streamed wav whose length is not known yet (sizes at their maximum, as
/// streaming servers write them; players read to the end).
pub fn wav_header(rate: u32) -> Vec<u8> {
    header(u32::MAX - 36, rate)
}

fn header(data: u32, rate: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(44);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    for v in [
        16u32.to_le_bytes().to_vec(),
        1u16.to_le_bytes().to_vec(),
        1u16.to_le_bytes().to_vec(),
    ] {
        b.extend_from_slice(&v);
    }
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    b
}

fn flac(pcm: &[i16], rate: u32) -> Result<Vec<u8>> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;
    let samples: Vec<i32> = pcm.iter().map(|&s| s as i32).collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|e| VoiceError::Format(format!("flac config: {e:?}")))?;
    let source = flacenc::source::MemSource::from_samples(&samples, 1, 16, rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| VoiceError::Format(format!("flac: {e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| VoiceError::Format(format!("flac: {e:?}")))?;
    let mut bytes = sink.as_slice().to_vec();
    fixed_block_bounds(&mut bytes);
    Ok(bytes)
}

/// flacenc counts the short last block in STREAMINFO's minimum block size; the format excludes it
/// ("fLaC", a 4-byte block header, then min and max block size as big-endian u16). A fixed-size
/// stream whose minimum differs from its maximum reads as variable-size to strict decoders
/// (symphonia rejects every frame), so the minimum is set to the maximum.
fn fixed_block_bounds(flac: &mut [u8]) {
    if flac.len() >= 12 && &flac[..4] == b"fLaC" {
        let max = [flac[10], flac[11]];
        flac[8..10].copy_from_slice(&max);
    }
}

fn mp3(pcm: &[i16], rate: u32) -> Result<Vec<u8>> {
    use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, MonoPcm, Quality};
    let bad = |e: String| VoiceError::Format(format!("mp3: {e}"));
    let mut enc = Builder::new()
        .ok_or_else(|| bad("LAME did not start".into()))?
        .with_num_channels(1)
        .and_then(|b| b.with_sample_rate(rate))
        .and_then(|b| b.with_brate(Bitrate::Kbps64))
        .and_then(|b| b.with_quality(Quality::Good))
        .map_err(|e| bad(format!("{e:?}")))?
        .build()
        .map_err(|e| bad(format!("{e:?}")))?;
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()));
    enc.encode_to_vec(MonoPcm(pcm), &mut out)
        .map_err(|e| bad(format!("{e:?}")))?;
    out.reserve(7200);
    enc.flush_to_vec::<FlushNoGap>(&mut out)
        .map_err(|e| bad(format!("{e:?}")))?;
    Ok(out)
}

/// Whether the `ffmpeg` program (Debian `ffmpeg`) is here to encode aac; asked once.
pub fn aac_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-version"]);
        tandem_process::run(cmd, Vec::new(), Duration::from_secs(10)).is_ok()
    })
}

/// ADTS frames: a stream of them needs no container, so per-sentence pieces concatenate.
fn aac(pcm: &[i16], rate: u32) -> Result<Vec<u8>> {
    if !aac_available() {
        return Err(VoiceError::Format(
            "aac needs the ffmpeg program, which is not installed".into(),
        ));
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-f", "s16le", "-ac", "1", "-ar"])
        .arg(rate.to_string())
        .args(["-i", "pipe:0", "-c:a", "aac", "-b:a", "64k", "-f", "adts", "pipe:1"]);
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    // ~100x real time: a 4,096-character answer (~5 min of speech) takes ~3 s.
    tandem_process::run(cmd, bytes, Duration::from_secs(60)).map_err(|e| VoiceError::Format(format!("aac: {e}")))
}
