//! `POST /v1/audio/speech`: text spoken by the Piper voice (`tandem_voice`) in OpenAI's shape —
//! `model` (`piper-joe`; `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts` mean it), `voice` (OpenAI's voice
//! names all mean the one installed voice), `input` (≤ 4,096 characters), `response_format`
//! (mp3 by default, opus, aac via the ffmpeg program, flac, wav, pcm), `speed` 0.25–4,
//! `instructions` (accepted, not honoured: one voice, one style), `stream_format` `audio` (a
//! chunked body, a sentence at a time) or `sse` (`speech.audio.delta` / `speech.audio.done`).
//! Usage is counted in characters and recorded once, under the caller's project.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::response::Response;
use base64::Engine;
use tandem_voice::encode::Format;
use tandem_voice::{Phonemizer, Voice};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::Fields;
use crate::state::{unix_now, AppState};

pub const VOICE_ID: &str = "piper-joe";
const NAMES: [&str; 4] = [VOICE_ID, "tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
/// OpenAI's voices; each is spoken by the installed voice (joe).
const OPENAI_VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar",
];
pub const MAX_INPUT_CHARS: usize = 4096;

/// Whether `name` is a voice a request may ask for (all spoken by joe).
fn known_voice(name: &str) -> bool {
    name == "joe" || OPENAI_VOICES.contains(&name)
}

/// The served voice, its phonemizer (none when espeak-ng is missing) and its price.
pub struct Speaker {
    pub voice: Voice,
    pub phonemizer: Option<Phonemizer>,
    /// USD per 1M input characters.
    pub price: f64,
    pub created: u64,
}

impl Speaker {
    /// `espeak_data`: a directory holding the `espeak-ng-data` the voice was trained with (else
    /// the program's own).
    pub fn new(voice: Voice, espeak_data: Option<&std::path::Path>, price: f64) -> Self {
        let phonemizer = Phonemizer::find(&voice.espeak_voice, espeak_data);
        Self {
            voice,
            phonemizer,
            price,
            created: unix_now(),
        }
    }

    pub fn answers_to(name: &str) -> bool {
        NAMES.contains(&name)
    }

    pub fn model_object(&self) -> tandem_api::Model {
        tandem_api::Model {
            id: VOICE_ID.into(),
            object: "model".into(),
            created: self.created,
            owned_by: "tandem".into(),
            tier: "voice".into(),
            context_window: MAX_INPUT_CHARS,
            parameters_name: "Piper en_US-joe-medium (VITS)".into(),
            pricing: tandem_api::ModelPricing {
                unit: "USD per 1M characters".into(),
                input: self.price,
                cached_input: self.price,
                output: 0.0,
            },
            input_modalities: vec!["text".to_string()],
            vision: None,
            aliases: NAMES
                .iter()
                .filter(|n| **n != VOICE_ID)
                .map(|n| n.to_string())
                .collect(),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Stream {
    No,
    Audio,
    Sse,
}

struct Valid {
    input: String,
    format: Format,
    speed: f32,
    stream: Stream,
}

/// aac is encoded by the ffmpeg program: where it is missing, asking for aac is the caller's 400.
fn aac_here(format: Format, param: &str) -> Result<(), ApiError> {
    if format == Format::Aac && !tandem_voice::encode::aac_available() {
        return Err(invalid(
            param,
            "'aac' needs the ffmpeg program on the server (Debian `ffmpeg`); use mp3, opus, flac, wav or pcm.",
        ));
    }
    Ok(())
}

fn invalid(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid(param, "invalid_value", msg.into())
}

fn bind(state: &AppState, v: &serde_json::Value) -> Result<(Arc<Speaker>, Valid), ApiError> {
    let f = Fields::new(v);
    let known = [
        "model",
        "input",
        "voice",
        "instructions",
        "response_format",
        "speed",
        "stream_format",
    ];
    f.check_known(&known, state.config.ignore_unknown_fields)?;
    let model = f.string("model")?.ok_or_else(|| ApiError::missing("model"))?;
    if !Speaker::answers_to(model) {
        return Err(ApiError::model_not_found(model));
    }
    let Some(sp) = state.speaker.clone() else {
        return Err(invalid(
            "model",
            "This server has no voice: run `tandem pull speech` and start it with speech on (the default).",
        ));
    };
    if sp.phonemizer.is_none() {
        return Err(invalid(
            "model",
            format!("{VOICE_ID} needs the espeak-ng program for its phonemes (Debian: apt-get install espeak-ng)."),
        ));
    }
    let voice = f.string("voice")?.ok_or_else(|| ApiError::missing("voice"))?;
    if !known_voice(voice) {
        return Err(invalid(
            "voice",
            format!(
                "Unknown voice '{voice}': expected one of {} or joe (all are spoken by the installed voice, joe).",
                OPENAI_VOICES.join(", ")
            ),
        ));
    }
    let input = f.string("input")?.ok_or_else(|| ApiError::missing("input"))?;
    if input.trim().is_empty() {
        return Err(invalid("input", "'input' must not be empty."));
    }
    if input.chars().count() > MAX_INPUT_CHARS {
        return Err(invalid(
            "input",
            format!("'input' is longer than {MAX_INPUT_CHARS} characters."),
        ));
    }
    let format = match f.string("response_format")? {
        None => Format::Mp3,
        Some(name) => Format::parse(name).ok_or_else(|| invalid("response_format", format!("Invalid value for 'response_format': '{name}'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav' and 'pcm'.")))?,
    };
    aac_here(format, "response_format")?;
    let speed = f.number("speed", 0.25, 4.0)?.unwrap_or(1.0);
    let _ = f.string("instructions")?;
    let stream = match f.string("stream_format")? {
        None => Stream::No,
        Some("audio") => Stream::Audio,
        Some("sse") => Stream::Sse,
        Some(other) => {
            return Err(invalid(
                "stream_format",
                format!("Invalid value for 'stream_format': '{other}'. Supported values are: 'audio' and 'sse'."),
            ))
        }
    };
    Ok((
        sp,
        Valid {
            input: input.to_string(),
            format,
            speed: speed as f32,
            stream,
        },
    ))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let b = crate::routes::body(b, state.config.max_body_bytes)?;
    caller.check_budget()?;
    let v = Fields::parse(&b)?;
    let (sp, valid) = bind(&state, &v)?;
    let chars = valid.input.chars().count() as u64;
    let charge = caller.admit(&state.limiter, chars / 4)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(8);
    let (format, stream) = (valid.format, valid.stream);
    let cost = chars as f64 * sp.price / 1e6;
    // The work, then (once all audio is out) the usage: charged and recorded once.
    let worker = sp.clone();
    tokio::spawn(async move {
        let done_tx = tx.clone();
        let ok = tokio::task::spawn_blocking(move || speak(&worker, &valid, &tx))
            .await
            .unwrap_or(false);
        if let Some(c) = &charge {
            c.used(chars / 4);
        }
        let last = if ok {
            record(&state, &caller, chars, cost, start);
            Piece::Done
        } else {
            // A worker that panicked sent nothing: the client must not take silence for success.
            Piece::Failed("the speech task failed".into())
        };
        let _ = done_tx.send(last).await;
    });
    if stream == Stream::No {
        let mut out = Vec::new();
        loop {
            match rx.recv().await {
                Some(Piece::Audio(a)) => out.extend(a),
                Some(Piece::Done) => break,
                Some(Piece::Failed(e)) => return Err(ApiError::internal(format!("speech failed: {e}"))),
                None => return Err(ApiError::internal("speech failed")),
            }
        }
        return Ok(answer(Body::from(out), format.content_type(), cost));
    }
    let sse = stream == Stream::Sse;
    let body = tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), move |p| {
        frame(p, sse, chars)
    });
    let ct = if sse {
        "text/event-stream"
    } else {
        format.content_type()
    };
    Ok(answer(Body::from_stream(body), ct, cost))
}

/// What the synthesis sends: encoded audio, a failure, or the end (after the usage is recorded).
enum Piece {
    Audio(Vec<u8>),
    Failed(String),
    Done,
}

/// A piece as the streamed body carries it: raw audio, or `speech.audio.delta` /
/// `speech.audio.done` events (OpenAI's usage shape, counted in characters).
fn frame(p: Piece, sse: bool, chars: u64) -> Result<Bytes, std::io::Error> {
    let event = |e: serde_json::Value| Bytes::from(format!("data: {e}\n\n"));
    match p {
        Piece::Failed(e) => Err(std::io::Error::other(e)),
        Piece::Audio(a) if sse => {
            let audio = base64::engine::general_purpose::STANDARD.encode(a);
            Ok(event(serde_json::json!({"type": "speech.audio.delta", "audio": audio})))
        }
        Piece::Audio(a) => Ok(Bytes::from(a)),
        Piece::Done if sse => Ok(event(serde_json::json!({"type": "speech.audio.done",
            "usage": {"input_tokens": chars, "output_tokens": 0, "total_tokens": chars}}))),
        Piece::Done => Ok(Bytes::new()),
    }
}

fn answer(body: Body, content_type: &str, cost: f64) -> Response {
    let mut resp = Response::new(body);
    if let Ok(h) = axum::http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(axum::http::header::CONTENT_TYPE, h);
    }
    crate::routes::set_cost(&mut resp, cost);
    resp
}

/// Synthesises sentence by sentence, sending each sentence's encoded audio (mp3, wav after its
/// header, pcm) as soon as it is made; flac and opus, whose containers need the whole stream,
/// and an unstreamed wav go once at the end. False when it failed or the client left.
fn speak(sp: &Speaker, v: &Valid, tx: &tokio::sync::mpsc::Sender<Piece>) -> bool {
    let send = |p: Piece| tx.blocking_send(p).is_ok();
    let fail = |e: String| {
        send(Piece::Failed(e));
        false
    };
    let Some(ph) = &sp.phonemizer else {
        return fail("espeak-ng is not installed".into());
    };
    let sentences = match ph.sentences(&v.input) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let mut scales = sp.voice.scales;
    scales.length /= v.speed;
    let rate = sp.voice.sample_rate;
    // A whole answer's wav carries its length; a streamed one's header comes first, sizes unknown.
    let whole = matches!(v.format, Format::Flac | Format::Opus) || (v.format == Format::Wav && v.stream == Stream::No);
    if v.format == Format::Wav && !whole && !send(Piece::Audio(tandem_voice::encode::wav_header(rate))) {
        return false;
    }
    let mut all = Vec::new();
    for s in &sentences {
        let audio = match sp.voice.speak_sentence(s, scales) {
            Ok(a) => a,
            Err(e) => return fail(e.to_string()),
        };
        if whole {
            all.extend(audio);
            continue;
        }
        let bytes = match v.format {
            Format::Wav => Ok(tandem_voice::encode::pcm16_bytes(&audio)),
            f => tandem_voice::encode::encode(&audio, rate, f),
        };
        let sent = match bytes {
            Ok(b) => send(Piece::Audio(b)),
            Err(e) => return fail(e.to_string()),
        };
        if !sent {
            return false;
        }
    }
    if whole {
        return match tandem_voice::encode::encode(&all, rate, v.format) {
            Ok(b) => send(Piece::Audio(b)),
            Err(e) => fail(e.to_string()),
        };
    }
    true
}

fn record(state: &Arc<AppState>, caller: &Caller, chars: u64, cost: f64, start: Instant) {
    record_for(state, &caller.account(), chars, cost, start);
}

fn record_for(state: &Arc<AppState>, account: &crate::request::Account, chars: u64, cost: f64, start: Instant) {
    state.record_usage(tandem_store::UsageRecord {
        created_at: unix_now(),
        request_id: crate::state::new_id("speech-"),
        batch_id: None,
        line: None,
        model: VOICE_ID.into(),
        tier: "voice".into(),
        prompt_tokens: chars,
        cached_tokens: 0,
        completion_tokens: 0,
        cost,
        key_id: account.key_id.clone(),
        project_id: account.project_id.clone(),
        latency_ms: start.elapsed().as_millis() as u64,
        status: 200,
    });
}

/// Seconds a spoken chat answer's id can be named by a later turn (OpenAI keeps them an hour).
const SPOKEN_TTL: u64 = 3600;

/// A spoken chat answer kept for later turns: its words, until when, and whose it is (only the
/// same project may name it).
pub struct SpokenAnswer {
    pub transcript: String,
    pub expires_at: u64,
    pub project_id: Option<String>,
}

/// A spoken chat answer's end: its characters recorded as voice usage, and its words kept under
/// `id` for later turns of the same project (what has expired is dropped).
fn settle_spoken(
    state: &Arc<AppState>,
    account: &crate::request::Account,
    price: f64,
    answers: Vec<(String, String)>,
    expires_at: u64,
    start: Instant,
) {
    let chars: u64 = answers.iter().map(|(_, t)| t.chars().count() as u64).sum();
    record_for(state, account, chars, chars as f64 * price / 1e6, start);
    if let Ok(mut m) = state.spoken.lock() {
        let now = unix_now();
        m.retain(|_, v| v.expires_at > now);
        for (id, transcript) in answers {
            let a = SpokenAnswer {
                transcript,
                expires_at,
                project_id: account.project_id.clone(),
            };
            m.insert(id, a);
        }
    }
}

/// The words of spoken answer `id` for `project_id`, while it is kept.
pub(crate) fn recall(state: &AppState, id: &str, project_id: Option<&str>) -> Option<String> {
    let m = state.spoken.lock().ok()?;
    let a = m.get(id)?;
    (a.expires_at > unix_now() && a.project_id.as_deref() == project_id).then(|| a.transcript.clone())
}

/// Chat's `audio: {voice, format}` with `modalities` including "audio": checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatAudio {
    pub format: Format,
}

/// The chat request's audio output, if it asks for one: `modalities` with "audio" needs `audio`
/// (a known voice; format wav, mp3, flac, opus or pcm16) and a working voice; `audio` alone is a
/// 400, as OpenAI has it.
pub(crate) fn chat_audio(state: &AppState, f: &Fields) -> Result<Option<ChatAudio>, ApiError> {
    let modalities: Vec<&str> = match f.get("modalities") {
        None => vec!["text"],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(serde_json::Value::as_str).collect(),
        Some(v) => return Err(crate::params::wrong_type("modalities", "an array of strings", v)),
    };
    if let Some(m) = modalities.iter().find(|m| !matches!(**m, "text" | "audio")) {
        return Err(invalid(
            "modalities",
            format!("Unknown modality '{m}': expected 'text' and 'audio'."),
        ));
    }
    let audio = f.get("audio");
    if !modalities.contains(&"audio") {
        return match audio {
            Some(_) => Err(invalid("audio", "'audio' needs 'modalities' to include \"audio\".")),
            None => Ok(None),
        };
    }
    let a = audio.ok_or_else(|| ApiError::missing("audio"))?;
    let voice = a
        .get("voice")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| ApiError::missing("audio.voice"))?;
    if !known_voice(voice) {
        return Err(invalid("audio.voice", format!("Unknown voice '{voice}'.")));
    }
    let format = match a.get("format").and_then(serde_json::Value::as_str) {
        Some("pcm16") => Format::Pcm,
        Some(name @ ("wav" | "mp3" | "flac" | "opus" | "aac")) => Format::parse(name).unwrap_or(Format::Wav),
        Some(other) => return Err(invalid("audio.format", format!("Invalid value for 'audio.format': '{other}'. Supported values are: 'wav', 'aac', 'mp3', 'flac', 'opus' and 'pcm16'."))),
        None => return Err(ApiError::missing("audio.format")),
    };
    aac_here(format, "audio.format")?;
    match &state.speaker {
        Some(sp) if sp.phonemizer.is_some() => Ok(Some(ChatAudio { format })),
        _ => Err(invalid(
            "modalities",
            "Audio output needs the voice and the espeak-ng program: run `tandem pull speech` and install espeak-ng.",
        )),
    }
}

/// `text` spoken as a chat answer's `audio`: encoded, given an id a later turn may name (kept
/// until `expires_at`), its characters recorded as voice usage.
pub(crate) async fn speak_answer(
    state: &Arc<AppState>,
    account: &crate::request::Account,
    text: &str,
    a: ChatAudio,
) -> Result<tandem_api::MessageAudio, ApiError> {
    let sp = state
        .speaker
        .clone()
        .ok_or_else(|| invalid("modalities", "no voice is served"))?;
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(64);
    let v = Valid {
        input: text.to_string(),
        format: a.format,
        speed: 1.0,
        stream: Stream::No,
    };
    let worker = sp.clone();
    // Read while the worker speaks: it sends a piece per sentence and would block on a full channel.
    let job = tokio::task::spawn_blocking(move || speak(&worker, &v, &tx));
    let mut bytes = Vec::new();
    while let Some(p) = rx.recv().await {
        match p {
            Piece::Audio(b) => bytes.extend(b),
            Piece::Failed(e) => return Err(ApiError::internal(format!("speech failed: {e}"))),
            Piece::Done => break,
        }
    }
    if !job.await.unwrap_or(false) {
        return Err(ApiError::internal("speech failed"));
    }
    let id = crate::state::new_id("audio_");
    let expires_at = unix_now() + SPOKEN_TTL;
    settle_spoken(
        state,
        account,
        sp.price,
        vec![(id.clone(), text.to_string())],
        expires_at,
        start,
    );
    Ok(tandem_api::MessageAudio {
        id,
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
        expires_at,
        transcript: text.to_string(),
    })
}

/// A streamed chat answer spoken as it is written: complete sentences go to the voice one at a
/// time (in order, on a blocking thread) while the text is still being generated; each comes
/// back as pcm16 at 24 kHz (what OpenAI streams) with its words.
pub(crate) struct Narrator {
    say: tokio::sync::mpsc::UnboundedSender<(usize, String, bool)>,
    heard: tokio::sync::mpsc::UnboundedReceiver<Spoken>,
    pending: Vec<String>,
    /// Choices whose last piece of audio has come back.
    pub done: usize,
    /// Each choice's audio id: a later turn names one answer.
    pub ids: Vec<String>,
    pub expires_at: u64,
}

/// One sentence of a choice spoken (`last`: the choice's end), or the failure that stopped it.
pub(crate) struct Spoken {
    pub choice: usize,
    pub pcm16: Result<Vec<u8>, String>,
    pub transcript: String,
    pub last: bool,
}

impl Narrator {
    pub fn start(state: &Arc<AppState>, account: crate::request::Account, n: usize) -> Option<Self> {
        let sp = state.speaker.clone()?;
        let (say, mut said) = tokio::sync::mpsc::unbounded_channel::<(usize, String, bool)>();
        let (back, heard) = tokio::sync::mpsc::unbounded_channel::<Spoken>();
        let ids: Vec<String> = (0..n).map(|_| crate::state::new_id("audio_")).collect();
        let expires_at = unix_now() + SPOKEN_TTL;
        let (state, kept) = (state.clone(), ids.clone());
        tokio::spawn(async move {
            let (start, mut all) = (Instant::now(), vec![String::new(); n]);
            while let Some((choice, text, last)) = said.recv().await {
                let (worker, words) = (sp.clone(), text.clone());
                let pcm16 = tokio::task::spawn_blocking(move || pcm16_of(&worker, &words))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                all[choice].push_str(&text);
                if back
                    .send(Spoken {
                        choice,
                        pcm16,
                        transcript: text,
                        last,
                    })
                    .is_err()
                {
                    break;
                }
            }
            let answers = kept.into_iter().zip(all).collect();
            settle_spoken(&state, &account, sp.price, answers, expires_at, start);
        });
        Some(Self {
            say,
            heard,
            pending: vec![String::new(); n],
            done: 0,
            ids,
            expires_at,
        })
    }

    /// More text of `choice`: its complete sentences are spoken.
    pub fn text(&mut self, choice: usize, text: &str) {
        let p = &mut self.pending[choice];
        p.push_str(text);
        // A sentence ends at . ! ? (or a line break) followed by whitespace.
        let cut = p
            .char_indices()
            .zip(p.chars().skip(1))
            .filter(|((_, c), next)| matches!(c, '.' | '!' | '?' | '\n') && next.is_whitespace())
            .map(|((i, c), _)| i + c.len_utf8())
            .last();
        if let Some(at) = cut {
            let rest = p.split_off(at);
            let sentence = std::mem::replace(p, rest);
            let _ = self.say.send((choice, sentence, false));
        }
    }

    /// `choice` is written: the rest is spoken, marked last.
    pub fn finish(&mut self, choice: usize) {
        let rest = std::mem::take(&mut self.pending[choice]);
        let _ = self.say.send((choice, rest, true));
    }

    pub async fn recv(&mut self) -> Option<Spoken> {
        self.heard.recv().await
    }
}

/// `text` (may be empty) as 24-kHz pcm16 bytes.
fn pcm16_of(sp: &Speaker, text: &str) -> Result<Vec<u8>, String> {
    let Some(ph) = &sp.phonemizer else {
        return Err("espeak-ng is not installed".into());
    };
    let audio = sp.voice.speak(ph, text, sp.voice.scales).map_err(|e| e.to_string())?;
    tandem_voice::encode::pcm_bytes(&audio, sp.voice.sample_rate).map_err(|e| e.to_string())
}
