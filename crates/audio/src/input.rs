//! Audio files in, 16 kHz mono f32 out: any container and codec symphonia reads (wav, flac, mp3,
//! ogg/vorbis, mp4/m4a with AAC), Opus in Ogg or WebM through the system's libopus, any sample rate and channel count (channels averaged, then
//! resampled with a windowed-sinc filter). The bytes are hostile until decoded: lengths are
//! capped and a corrupt stream is an error, never a panic.

use std::io::Cursor;

use rubato::{Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_OPUS};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::mel::SAMPLE_RATE;
use crate::{AudioError, Result};

/// Longest audio decoded (OpenAI's 25 MB of compressed audio can hold hours; a transcription
/// request is refused past this).
pub const MAX_SECONDS: usize = 2 * 3600;

fn bad(msg: impl std::fmt::Display) -> AudioError {
    AudioError::Input(format!("the audio could not be decoded: {msg}"))
}

/// Decodes `bytes` (the file name's extension, when known, helps the probe) to 16 kHz mono.
pub fn decode(bytes: Vec<u8>, extension: Option<&str>) -> Result<Vec<f32>> {
    let (samples, rate) = decode_native(bytes, extension)?;
    if samples.is_empty() {
        return Err(AudioError::Input("the audio holds no samples".into()));
    }
    resample_to_16k(&samples, rate)
}

/// Mono samples at the file's own rate.
fn decode_native(bytes: Vec<u8>, extension: Option<&str>) -> Result<(Vec<f32>, usize)> {
    let mut hint = Hint::new();
    if let Some(e) = extension {
        hint.with_extension(e);
    }
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|e| bad(format!("unrecognised format ({e})")))?;
    let mut format = probed.format;
    let track = format.default_track().ok_or_else(|| bad("no audio track"))?.clone();
    if track.codec_params.codec == CODEC_TYPE_OPUS {
        return decode_opus(format.as_mut(), &track);
    }
    let rate = track.codec_params.sample_rate.ok_or_else(|| bad("no sample rate"))? as usize;
    if !(1_000..=384_000).contains(&rate) {
        return Err(bad(format!("sample rate {rate} Hz")));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| bad(format!("unsupported codec ({e})")))?;
    let mut mono = Vec::new();
    let cap = MAX_SECONDS * rate;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(bad(e)),
        };
        if packet.track_id() != track.id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(_)) => continue, // a damaged frame: skipped, as players do
            Err(e) => return Err(bad(e)),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        mono.extend(
            buf.samples()
                .chunks(channels)
                .map(|f| f.iter().sum::<f32>() / channels as f32),
        );
        if mono.len() > cap {
            return Err(AudioError::Input(format!(
                "the audio is longer than {} hours",
                MAX_SECONDS / 3600
            )));
        }
    }
    Ok((mono, rate))
}

/// An Opus track's mono samples at 48 kHz, the encoder's pre-skip dropped.
fn decode_opus(
    format: &mut dyn symphonia::core::formats::FormatReader,
    track: &symphonia::core::formats::Track,
) -> Result<(Vec<f32>, usize)> {
    let channels = track.codec_params.channels.map(|c| c.count()).unwrap_or(1);
    let mut dec = crate::opus::Decoder::new(channels)?;
    let skip = track.codec_params.delay.unwrap_or(0) as usize;
    let mut mono = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(bad(e)),
        };
        if packet.track_id() != track.id {
            continue;
        }
        let pcm = dec.decode(&packet.data)?;
        mono.extend(pcm.chunks(channels).map(|f| f.iter().sum::<f32>() / channels as f32));
        if mono.len() > MAX_SECONDS * crate::opus::RATE {
            return Err(AudioError::Input(format!(
                "the audio is longer than {} hours",
                MAX_SECONDS / 3600
            )));
        }
    }
    Ok((mono.split_off(skip.min(mono.len())), crate::opus::RATE))
}

/// `samples` at `rate` → 16 kHz (unchanged when already 16 kHz).
fn resample_to_16k(samples: &[f32], rate: usize) -> Result<Vec<f32>> {
    resample(samples, rate, SAMPLE_RATE)
}

/// Mono `samples` at `rate` resampled to `to` (band-limited sinc, rubato), the same length in time.
pub fn resample(samples: &[f32], rate: usize, to: usize) -> Result<Vec<f32>> {
    if rate == to {
        return Ok(samples.to_vec());
    }
    let params = SincInterpolationParameters {
        sinc_len: 128,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Linear,
        oversampling_factor: 128,
        window: WindowFunction::BlackmanHarris2,
    };
    let chunk = 4096;
    let ratio = to as f64 / rate as f64;
    let mut r = SincFixedIn::<f32>::new(ratio, 1.0, params, chunk, 1).map_err(bad)?;
    let mut out = Vec::with_capacity((samples.len() as f64 * ratio) as usize + chunk);
    let mut pos = 0;
    while pos + chunk <= samples.len() {
        out.extend(&r.process(&[&samples[pos..pos + chunk]], None).map_err(bad)?[0]);
        pos += chunk;
    }
    if pos < samples.len() {
        out.extend(&r.process_partial(Some(&[&samples[pos..]]), None).map_err(bad)?[0]);
    }
    // Flush the filter's delay so the end of the audio is not lost, then trim to length.
    out.extend(&r.process_partial::<&[f32]>(None, None).map_err(bad)?[0]);
    let delay = r.output_delay();
    let want = (samples.len() as f64 * ratio).round() as usize;
    Ok(out.into_iter().skip(delay).take(want).collect())
}
