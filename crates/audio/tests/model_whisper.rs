//! Whisper tiny.en against the independent reference (`tools/whisper_reference.py`) on the 10 clips
//! of Debian's pocketsphinx-testdata (copied to tests/data/audio): the log-mel frames of a numpy
//! implementation (|Δ| ≤ 2e-3 on values of order 1), the encoder output of the CTranslate2 runtime
//! (float32; |Δ| ≤ 2e-2 on values up to ~10), and CTranslate2's greedy token ids, with and without
//! timestamps, on at least 9 of the 10 clips.

use std::path::PathBuf;

use base64::Engine;
use tandem_audio::{mel, Options, Precision, Transcriber};

fn model_dir() -> PathBuf {
    let home = std::env::var_os("TANDEM_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/tandem"));
    let p = home.join("models/whisper-tiny-en");
    assert!(
        p.join(".verified").exists(),
        "{} is missing: run `tandem pull speech` first (the README's test command does)",
        p.display()
    );
    p
}

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// A golden file of tests/golden, parsed.
fn read_golden(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo(&format!("tests/golden/{name}"))).unwrap()).unwrap()
}

fn f32s(b64: &serde_json::Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().unwrap())
        .unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// 16-bit mono 16 kHz wav samples as f32 (the clips' format; other containers are the input
/// module's and are tested there).
fn wav(path: &PathBuf) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    let data = b.windows(4).position(|w| w == b"data").expect("a data chunk") + 8;
    b[data..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
        .collect()
}

/// Temperature 0 without the fallback: the decoding CTranslate2's `generate` (beam 1) does.
fn greedy() -> Options {
    Options::default().no_fallback()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn matches_the_reference_front_end_encoder_and_greedy_tokens() {
    let t = Transcriber::load(&model_dir(), Precision::Exact).unwrap();
    let golden = read_golden("whisper_tiny_en_reference.json");
    let (mut same_plain, mut same_stamped) = (0, 0);
    let items = golden["items"].as_array().unwrap();
    for (k, it) in items.iter().enumerate() {
        let clip = it["clip"].as_str().unwrap();
        let audio = wav(&repo(&format!("tests/data/audio/{clip}")));
        let full = t.mel(&audio);
        let win = mel::window(&full, 80, 0);
        let frames: Vec<f32> = (0..4)
            .flat_map(|f| (0..80).map(move |m| (m, f)))
            .map(|(m, f)| win[m * 3000 + f])
            .collect();
        let dm = max_diff(&frames, &f32s(&it["mel_frames_0_4"]));
        let f100: Vec<f32> = (0..80).map(|m| win[m * 3000 + 100]).collect();
        let dm = dm.max(max_diff(&f100, &f32s(&it["mel_frame_100"])));
        assert!(dm <= 2e-3, "{clip}: mel differs by {dm}");
        if k < 3 {
            let enc = t.model.encode(&win);
            let de = max_diff(&enc[..768], &f32s(&it["encoder_rows_0_2"]));
            let de = de.max(max_diff(&enc[700 * 384..701 * 384], &f32s(&it["encoder_row_700"])));
            assert!(de <= 2e-2, "{clip}: encoder output differs by {de}");
        }
        let want = |key: &str| -> Vec<u32> { serde_json::from_value(it[key].clone()).unwrap() };
        let plain = t
            .decode_window(&win, mel::CHUNK_FRAMES, false, None, &greedy())
            .0
            .tokens;
        let stamped = t.decode_window(&win, mel::CHUNK_FRAMES, true, None, &greedy()).0.tokens;
        eprintln!("{clip}: {:?}", t.vocab.text(&plain));
        same_plain += (plain == want("greedy_ids")) as usize;
        same_stamped += (stamped == want("greedy_timestamp_ids")) as usize;
    }
    eprintln!("greedy tokens equal to CTranslate2's: {same_plain}/10 plain, {same_stamped}/10 with timestamps");
    assert!(same_plain >= 9 && same_stamped >= 9);
}

/// The int8 arithmetic (the default where AVX-512 VNNI runs) against CTranslate2's float32
/// greedy transcripts: the same text on at least 9 of the 10 clips.
#[test]
fn int8_transcripts_match_the_reference_text() {
    let t = Transcriber::load(&model_dir(), Precision::Int8).unwrap();
    let golden = read_golden("whisper_tiny_en_reference.json");
    let mut same = 0;
    for it in golden["items"].as_array().unwrap() {
        let clip = it["clip"].as_str().unwrap();
        let win = mel::window(&t.mel(&wav(&repo(&format!("tests/data/audio/{clip}")))), 80, 0);
        let want: Vec<u32> = serde_json::from_value(it["greedy_ids"].clone()).unwrap();
        let got = t.vocab.text(
            &t.decode_window(&win, mel::CHUNK_FRAMES, false, None, &greedy())
                .0
                .tokens,
        );
        eprintln!("{clip}: {got:?}");
        same += (got == t.vocab.text(&want)) as usize;
    }
    eprintln!("int8 transcripts equal to CTranslate2 float32's: {same}/10");
    assert!(same >= 9);
}

/// Beam search (5 hypotheses, openai-whisper's rules) against CTranslate2's `beam_size=5`.
#[test]
fn beam_search_matches_the_reference() {
    let t = Transcriber::load(&model_dir(), Precision::Exact).unwrap();
    let golden = read_golden("whisper_tiny_en_reference.json");
    let opts = Options {
        beam_size: 5,
        ..greedy()
    };
    let mut same = 0;
    for it in golden["items"].as_array().unwrap() {
        let clip = it["clip"].as_str().unwrap();
        let win = mel::window(&t.mel(&wav(&repo(&format!("tests/data/audio/{clip}")))), 80, 0);
        let want: Vec<u32> = serde_json::from_value(it["beam5_ids"].clone()).unwrap();
        let got = t.decode_window(&win, mel::CHUNK_FRAMES, false, None, &opts).0.tokens;
        eprintln!("{clip}: {:?} / {:?}", t.vocab.text(&got), t.vocab.text(&want));
        same += (got == want) as usize;
    }
    eprintln!("beam search ids equal to CTranslate2's: {same}/10");
    assert!(same >= 9);
}

#[test]
fn a_transcript_has_timed_segments() {
    let t = Transcriber::load(&model_dir(), Precision::fastest()).unwrap();
    let audio = wav(&repo("tests/data/audio/sense_and_sensibility_01_austen_64kb-0930.wav"));
    let tr = t.transcribe(&audio, &Options::default(), |_| true);
    assert_eq!(tr.text, "He might even have been made amiable himself.");
    assert!(!tr.segments.is_empty());
    let last = tr.segments.last().unwrap();
    assert!(
        tr.segments[0].start < 1.0 && last.end > 2.0 && last.end <= 3.5,
        "{:?}",
        tr.segments
    );
}

/// Past 30 s the transcript continues window by window: the five long clips one after another
/// (≈ 25 s) twice over, 50 s in all, give each sentence twice, in order, with rising times.
#[test]
fn long_audio_is_transcribed_window_by_window() {
    let t = Transcriber::load(&model_dir(), Precision::fastest()).unwrap();
    let clips = ["0870", "0880", "0890", "0920", "0930"];
    let mut audio = Vec::new();
    for _ in 0..2 {
        for c in clips {
            audio.extend(wav(&repo(&format!(
                "tests/data/audio/sense_and_sensibility_01_austen_64kb-{c}.wav"
            ))));
        }
    }
    let mut windows = 0;
    let tr = t.transcribe(&audio, &Options::default(), |_| {
        windows += 1;
        true
    });
    assert!(windows >= 2, "{windows} windows");
    assert!(tr.duration > 49.0 && tr.duration < 52.0);
    let text = tr.text.to_lowercase();
    eprintln!("{text}");
    assert_eq!(text.matches("dashwood").count(), 2, "{text}");
    assert_eq!(text.matches("amiable himself").count(), 2, "{text}");
    assert!(
        tr.segments.windows(2).all(|w| w[0].start <= w[1].start),
        "{:?}",
        tr.segments
    );
    assert!(tr.segments.last().unwrap().end > 45.0, "{:?}", tr.segments);
}

/// Whisper base (multilingual) against CTranslate2 on the same 10 clips: the detected language and
/// the greedy transcription ids (exact) or their text (int8) (`tools/whisper_reference.py --multilingual`). Not in CI (only
/// tiny.en is pulled there): `tandem pull speech-base`, then `cargo test --release -p
/// tandem-audio -- --ignored`.
#[test]
#[ignore = "needs `tandem pull speech-base` (CI pulls tiny.en only)"]
fn whisper_base_matches_ctranslate2() {
    let dir = model_dir().with_file_name("whisper-base");
    let golden = read_golden("whisper_base_reference.json");
    // Exact: the same ids; int8: the same language and text.
    for precision in [Precision::Exact, Precision::Int8] {
        let t = Transcriber::load(&dir, precision).unwrap();
        assert!(t.multilingual());
        let mut same = 0;
        for it in golden["items"].as_array().unwrap() {
            let clip = it["clip"].as_str().unwrap();
            let audio = wav(&repo(&format!("tests/data/audio/{clip}")));
            let win = mel::window(&t.mel(&audio), 80, 0);
            let (d, lang) = t.decode_window(&win, mel::CHUNK_FRAMES, false, None, &greedy());
            let want: Vec<u32> = serde_json::from_value(it["greedy_ids"].clone()).unwrap();
            eprintln!("{precision:?} {clip}: {lang} {:?}", t.vocab.text(&d.tokens));
            assert_eq!(lang, it["language"].as_str().unwrap(), "{clip}");
            same += match precision {
                Precision::Exact => d.tokens == want,
                Precision::Int8 => t.vocab.text(&d.tokens) == t.vocab.text(&want),
            } as usize;
        }
        eprintln!("whisper base {precision:?}: equal to CTranslate2 float32's on {same}/10 clips");
        assert!(same >= 9);
        let bpe = read_golden("whisper_base_bpe_reference.json");
        for it in bpe["items"].as_array().unwrap() {
            let want: Vec<u32> = serde_json::from_value(it["ids"].clone()).unwrap();
            assert_eq!(t.bpe.encode(it["text"].as_str().unwrap()), want);
        }
    }
}

/// The prompt encoder against tiktoken built from the same vocabulary
/// (`tools/whisper_bpe_reference.py`): the same ids for every text.
#[test]
fn prompt_tokens_match_tiktoken() {
    let t = Transcriber::load(&model_dir(), Precision::fastest()).unwrap();
    let golden = read_golden("whisper_bpe_reference.json");
    for it in golden["items"].as_array().unwrap() {
        let text = it["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(it["ids"].clone()).unwrap();
        assert_eq!(t.bpe.encode(text), want, "{text:?}");
        assert_eq!(t.vocab.text(&want), text);
    }
    // Long hostile text (control characters, lone combining marks, 20,000 characters) round-trips.
    let hostile: String = (0..20_000u32)
        .map(|i| char::from_u32((i * 7919) % 0x2FFF).unwrap_or(' '))
        .collect();
    assert_eq!(t.vocab.text(&t.bpe.encode(&hostile)), hostile);
}

/// A prompt steers what the speech leaves open: tiny.en hears "old-sposed" in clip 0880; a prompt
/// of the book's vocabulary (not the sentence) gives "ill-disposed".
#[test]
fn a_prompt_conditions_the_first_window() {
    let t = Transcriber::load(&model_dir(), Precision::fastest()).unwrap();
    let audio = wav(&repo("tests/data/audio/sense_and_sensibility_01_austen_64kb-0880.wav"));
    let plain = t.transcribe(&audio, &Options::default(), |_| true).text;
    let opts = Options {
        prompt: "Sense and Sensibility: ill-disposed, cold-hearted, amiable.".into(),
        ..Options::default()
    };
    let prompted = t.transcribe(&audio, &opts, |_| true).text;
    eprintln!("plain {plain:?} prompted {prompted:?}");
    assert_eq!(plain, "He was not an old-sposed young man.");
    assert_eq!(prompted, "He was not an ill-disposed young man.");
}

/// Word timing against CTranslate2's `align` (`tools/whisper_align_reference.py`): the DTW path
/// over the alignment heads for the greedy text of each clip — the same cells on ≥ 95% of the
/// path, and each token's start within 40 ms on ≥ 90% of tokens.
#[test]
fn alignment_matches_the_reference() {
    let t = Transcriber::load(&model_dir(), Precision::Exact).unwrap();
    let golden = read_golden("whisper_tiny_en_alignment.json");
    let reference = read_golden("whisper_tiny_en_reference.json");
    let heads = [(1, 0), (2, 0), (2, 5), (3, 0), (3, 1), (3, 2), (3, 3), (3, 4)];
    let (mut same_cells, mut cells, mut close, mut starts) = (0, 0, 0, 0);
    for (it, r) in golden["items"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["items"].as_array().unwrap())
    {
        let clip = it["clip"].as_str().unwrap();
        let win = mel::window(&t.mel(&wav(&repo(&format!("tests/data/audio/{clip}")))), 80, 0);
        let text: Vec<u32> = serde_json::from_value(r["greedy_ids"].clone()).unwrap();
        let want: Vec<(usize, usize)> = serde_json::from_value(it["alignments"].clone()).unwrap();
        let frames = it["num_frames"].as_u64().unwrap() as usize;
        let st = t.model.start(&t.model.encode(&win));
        let (path, jumps) =
            tandem_audio::alignment::align(&t.model, &st, &[50257, 50362], &text, 50256, &heads, frames);
        same_cells += path.iter().filter(|p| want.contains(p)).count();
        cells += want.len();
        let mut want_jumps = Vec::new();
        for (k, &(i, j)) in want.iter().enumerate() {
            if k == 0 || want[k - 1].0 != i {
                want_jumps.push(j as f32 * 0.02);
            }
        }
        close += jumps
            .iter()
            .zip(&want_jumps)
            .filter(|(a, b)| (*a - *b).abs() <= 0.04)
            .count();
        starts += want_jumps.len();
        eprintln!(
            "{clip}: path {} vs {} cells, starts {:?} vs {:?}",
            path.len(),
            want.len(),
            &jumps[..3.min(jumps.len())],
            &want_jumps[..3.min(want_jumps.len())]
        );
    }
    eprintln!("alignment: {same_cells}/{cells} path cells shared, {close}/{starts} token starts within 40 ms");
    assert!(same_cells as f64 >= 0.95 * cells as f64 && close as f64 >= 0.9 * starts as f64);
}
