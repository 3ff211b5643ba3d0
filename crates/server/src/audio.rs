//! `POST /v1/audio/transcriptions` and `/v1/audio/translations` in OpenAI's shapes, on Whisper
//! tiny.en (`tandem_audio::Transcriber`): a multipart upload decoded within limits, transcribed
//! window by window, rendered as json, text, verbose_json, srt or vtt, with usage and cost
//! recorded under the caller's project.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use tandem_api::audio as wire;
use tandem_audio::{Transcriber, Transcript};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{unix_now, AppState};

/// The speech models' ids, and OpenAI's names that map to them: `whisper-1` and
/// `gpt-4o-transcribe` to base when it is served (else tiny.en), `gpt-4o-mini-transcribe` to
/// tiny.en when served (else base). Whisper names report usage in seconds, as OpenAI does; the
/// gpt-4o names in tokens.
pub const MODEL_ID: &str = "whisper-tiny-en";
pub const BASE_ID: &str = "whisper-base";
const SECONDS_NAMES: [&str; 3] = [MODEL_ID, BASE_ID, "whisper-1"];
const TOKEN_NAMES: [&str; 2] = ["gpt-4o-transcribe", "gpt-4o-mini-transcribe"];
/// OpenAI's cap on an uploaded audio file.
pub const MAX_FILE_BYTES: usize = 25 << 20;
/// The encoder's positions per second of audio (1,500 per 30 s): what usage calls audio tokens.
const AUDIO_TOKENS_PER_SECOND: f64 = 50.0;

pub struct Speech {
    /// `whisper-tiny-en` or `whisper-base`.
    pub id: &'static str,
    pub transcriber: Transcriber,
    /// USD per minute of audio.
    pub price_per_minute: f64,
    pub created: u64,
    /// Hypotheses of the beam search at temperature 0 (1: greedy; `--speech-beam-size`).
    pub beam_size: usize,
}

/// The speech model `name` means among those served.
pub fn resolve(state: &AppState, name: &str) -> Result<Arc<Speech>, ApiError> {
    let by_id = |id: &str| state.speech.iter().find(|s| s.id == id).cloned();
    let found = match name {
        MODEL_ID | BASE_ID => by_id(name),
        "whisper-1" | "gpt-4o-transcribe" => by_id(BASE_ID).or_else(|| by_id(MODEL_ID)),
        "gpt-4o-mini-transcribe" => by_id(MODEL_ID).or_else(|| by_id(BASE_ID)),
        _ => return Err(ApiError::model_not_found(name)),
    };
    found.ok_or_else(|| {
        let served: Vec<&str> = state.speech.iter().map(|s| s.id).collect();
        ApiError::invalid(
            "model",
            "model_not_found",
            format!(
                "The speech model '{name}' is not served here (served: {}); `tandem pull speech` (tiny.en) or `tandem pull speech-base`, then restart.",
                if served.is_empty() { "none".to_string() } else { served.join(", ") }
            ),
        )
    })
}

impl Speech {
    pub fn new(id: &'static str, transcriber: Transcriber, price_per_minute: f64) -> Self {
        Self {
            id,
            transcriber,
            price_per_minute,
            created: unix_now(),
            beam_size: 1,
        }
    }

    pub fn with_beam_size(mut self, n: usize) -> Self {
        self.beam_size = n.max(1);
        self
    }

    pub fn answers_to(name: &str) -> bool {
        SECONDS_NAMES.contains(&name) || TOKEN_NAMES.contains(&name)
    }

    pub fn model_object(&self) -> tandem_api::Model {
        tandem_api::Model {
            id: self.id.into(),
            object: "model".into(),
            created: self.created,
            owned_by: "tandem".into(),
            tier: "speech".into(),
            context_window: self.transcriber.model.cfg.text_ctx,
            parameters_name: if self.transcriber.multilingual() {
                "whisper base"
            } else {
                "whisper tiny.en"
            }
            .into(),
            pricing: tandem_api::ModelPricing {
                unit: "USD per minute of audio".into(),
                input: self.price_per_minute,
                cached_input: self.price_per_minute,
                output: 0.0,
            },
            input_modalities: vec!["audio".to_string()],
            vision: None,
            // Whisper's OpenAI names depend on the request (`whisper-1` vs the token-priced ones).
            aliases: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Task {
    Transcribe,
    Translate,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

/// The multipart fields, as sent.
#[derive(Default)]
struct Form {
    file: Option<(Vec<u8>, String)>,
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    temperature: Option<String>,
    response_format: Option<String>,
    granularities: Vec<String>,
    include: Vec<String>,
    stream: Option<String>,
}

fn upload_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(MAX_FILE_BYTES)
    } else {
        ApiError::bad_request(format!("Could not read the upload: {}", e.body_text()))
    }
}

async fn read_form(mp: Result<Multipart, MultipartRejection>) -> Result<Form, ApiError> {
    let mut mp =
        mp.map_err(|e| ApiError::bad_request(format!("Expected a multipart/form-data body: {}", e.body_text())))?;
    let mut f = Form::default();
    while let Some(field) = mp.next_field().await.map_err(upload_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or("audio").to_string();
            let bytes = field.bytes().await.map_err(upload_error)?;
            if bytes.len() > MAX_FILE_BYTES {
                return Err(ApiError::payload_too_large(MAX_FILE_BYTES));
            }
            f.file = Some((bytes.to_vec(), filename));
            continue;
        }
        let value = field.text().await.map_err(upload_error)?;
        match name.as_str() {
            "model" => f.model = Some(value),
            "language" => f.language = Some(value),
            "prompt" => f.prompt = Some(value),
            "temperature" => f.temperature = Some(value),
            "response_format" => f.response_format = Some(value),
            "timestamp_granularities[]" | "timestamp_granularities" => f.granularities.push(value),
            "include[]" | "include" => f.include.push(value),
            "stream" => f.stream = Some(value),
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown_parameter",
                    format!("Unrecognized request argument supplied: {other}"),
                ))
            }
        }
    }
    Ok(f)
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(param, "invalid_value", message)
}

fn unsupported(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(param, "unsupported_value", message)
}

/// The checked request: the audio, what to hear and render, and how usage is counted.
struct Valid {
    opts: tandem_audio::Options,
    audio: Vec<u8>,
    extension: Option<String>,
    format: Format,
    tokens_usage: bool,
    stream: bool,
    /// `include[]=logprobs`.
    logprobs: bool,
    /// verbose_json's segments (asked for, or no granularity named).
    segments: bool,
}

fn validate(state: &AppState, f: Form, task: Task) -> Result<(Arc<Speech>, Valid), ApiError> {
    let model = f.model.ok_or_else(|| ApiError::missing("model"))?;
    let (audio, filename) = f.file.ok_or_else(|| ApiError::missing("file"))?;
    let speech = resolve(state, &model)?;
    let mut opts = options(&speech, f.language, task)?.temperature(temperature(f.temperature.as_deref())?);
    opts.prompt = f.prompt.unwrap_or_default();
    opts.word_timestamps = f.granularities.iter().any(|g| g == "word");
    let segments = f.granularities.is_empty() || f.granularities.iter().any(|g| g == "segment");
    let stream = match f.stream.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid(
                "stream",
                format!("'stream' must be true or false, not '{other}'."),
            ))
        }
    };
    let format = response_format(f.response_format.as_deref(), &f.granularities)?;
    let logprobs = include_logprobs(&f.include, format)?;
    let extension = std::path::Path::new(&filename)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let tokens_usage = TOKEN_NAMES.contains(&model.as_str());
    let valid = Valid {
        opts,
        audio,
        extension,
        format,
        tokens_usage,
        stream,
        logprobs,
        segments,
    };
    Ok((speech, valid))
}

/// `include[]`: only `logprobs`, and only with the `json` format (as OpenAI has it).
fn include_logprobs(include: &[String], format: Format) -> Result<bool, ApiError> {
    if let Some(i) = include.iter().find(|i| i.as_str() != "logprobs") {
        return Err(invalid(
            "include",
            format!("'include' of '{i}' is not known: expected 'logprobs'."),
        ));
    }
    if !include.is_empty() && format != Format::Json {
        return Err(invalid(
            "include",
            "'include' of 'logprobs' needs response_format 'json'.",
        ));
    }
    Ok(!include.is_empty())
}

/// Each text token of `segments` with its log-probability and bytes.
fn token_logprobs(t: &Transcriber, segments: &[tandem_audio::Segment]) -> Vec<wire::TokenLogprob> {
    let tokens = segments.iter().flat_map(|s| s.tokens.iter().zip(&s.logprobs));
    tokens
        .map(|(&tok, &lp)| {
            let bytes = t.vocab.token_bytes(tok).to_vec();
            wire::TokenLogprob {
                token: String::from_utf8_lossy(&bytes).into_owned(),
                logprob: lp as f64,
                bytes,
            }
        })
        .collect()
}

/// The language (checked against what the model hears) and the task (translation needs a
/// multilingual model).
fn options(speech: &Speech, language: Option<String>, task: Task) -> Result<tandem_audio::Options, ApiError> {
    let t = &speech.transcriber;
    if task == Task::Translate && !t.multilingual() {
        return Err(unsupported(
            "model",
            format!("{} is English-only: it transcribes English and cannot translate. Translation needs whisper-base (`tandem pull speech-base`).", speech.id),
        ));
    }
    let language = language.filter(|l| !l.is_empty());
    if let Some(l) = language.as_deref().filter(|l| !t.knows_language(l)) {
        let what = if t.multilingual() {
            "an ISO-639-1 code Whisper knows"
        } else {
            "'en' (the model is English-only)"
        };
        return Err(unsupported(
            "language",
            format!("{} does not hear '{l}': expected {what}.", speech.id),
        ));
    }
    let task = match task {
        Task::Transcribe => tandem_audio::Task::Transcribe,
        Task::Translate => tandem_audio::Task::Translate,
    };
    Ok(tandem_audio::Options {
        language,
        task,
        beam_size: speech.beam_size,
        ..Default::default()
    })
}

/// `temperature` in [0, 1] (default 0: greedy with the fallback to hotter sampling).
fn temperature(t: Option<&str>) -> Result<f32, ApiError> {
    match t.map(|t| t.trim().parse::<f32>()) {
        None => Ok(0.0),
        Some(Ok(t)) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(invalid(
            "temperature",
            "'temperature' must be a number between 0 and 1.",
        )),
    }
}

/// `response_format` (default json) and the timestamp granularities it allows.
fn response_format(name: Option<&str>, granularities: &[String]) -> Result<Format, ApiError> {
    let format = match name.unwrap_or("json") {
        "json" => Format::Json,
        "text" => Format::Text,
        "srt" => Format::Srt,
        "verbose_json" => Format::VerboseJson,
        "vtt" => Format::Vtt,
        other => {
            return Err(invalid(
                "response_format",
                format!("Invalid value for 'response_format': '{other}'. Supported values are: 'json', 'text', 'srt', 'verbose_json' and 'vtt'."),
            ))
        }
    };
    let param = "timestamp_granularities";
    for g in granularities {
        match g.as_str() {
            "segment" | "word" if format == Format::VerboseJson => {}
            "segment" | "word" => {
                return Err(invalid(
                    param,
                    "timestamp_granularities needs response_format 'verbose_json'.",
                ))
            }
            other => return Err(invalid(param, format!("Unknown granularity '{other}'."))),
        }
    }
    Ok(format)
}

pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    handle(state, caller, mp, Task::Transcribe).await
}

pub async fn translations(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    handle(state, caller, mp, Task::Translate).await
}

async fn handle(
    state: Arc<AppState>,
    caller: Caller,
    mp: Result<Multipart, MultipartRejection>,
    task: Task,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    caller.check_budget()?;
    let (speech, v) = validate(&state, read_form(mp).await?, task)?;
    let charge = caller.admit(&state.limiter, 0)?;
    // Decoded before any answer starts, so a bad file is a 400 even when streaming.
    let (audio, ext) = (v.audio, v.extension);
    let pcm = tokio::task::spawn_blocking(move || tandem_audio::input::decode(audio, ext.as_deref()))
        .await
        .map_err(|e| ApiError::internal(format!("the decoding task failed: {e}")))?
        .map_err(|e| ApiError::invalid("file", "invalid_value", e.to_string()))?;
    let done = Done {
        state,
        caller,
        speech,
        charge,
        tokens_usage: v.tokens_usage,
        start,
        opts: v.opts,
        logprobs: v.logprobs,
    };
    if v.stream {
        return Ok(stream(done, pcm));
    }
    let (worker, opts) = (done.speech.clone(), done.opts.clone());
    let transcript = tokio::task::spawn_blocking(move || worker.transcriber.transcribe(&pcm, &opts, |_| true))
        .await
        .map_err(|e| ApiError::internal(format!("the transcription task failed: {e}")))?;
    let usage = done.finish(&transcript);
    let logprobs = v
        .logprobs
        .then(|| token_logprobs(&done.speech.transcriber, &transcript.segments));
    let shape = Shape {
        task: done.opts.task,
        segments: v.segments,
        words: done.opts.word_timestamps,
    };
    Ok(render(&transcript, v.format, usage, shape, logprobs))
}

/// What settles a transcription once its text is known: usage, the rate-limit charge, the record.
struct Done {
    state: Arc<AppState>,
    caller: Caller,
    speech: Arc<Speech>,
    charge: Option<Arc<crate::limits::Charge>>,
    tokens_usage: bool,
    start: Instant,
    opts: tandem_audio::Options,
    logprobs: bool,
}

impl Done {
    fn finish(&self, t: &Transcript) -> wire::AudioUsage {
        let u = usage(&self.speech, t, self.tokens_usage);
        if let Some(c) = &self.charge {
            c.used(audio_tokens(t) + text_tokens(t));
        }
        record(&self.state, &self.caller, &self.speech, t, &u, self.start);
        u
    }
}

/// Server-sent `transcript.text.delta` events as each window is decoded, then
/// `transcript.text.done` with the whole text and its usage. A client that leaves stops the
/// transcription at the next window.
fn stream(done: Done, pcm: Vec<f32>) -> Response {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    let (tx, out) = tokio::sync::mpsc::channel::<Result<SseEvent, std::convert::Infallible>>(64);
    let sse = |e: &wire::TranscriptEvent| SseEvent::default().data(serde_json::to_string(e).unwrap_or_default());
    tokio::spawn(async move {
        let (worker, opts, logprobs) = (done.speech.clone(), done.opts.clone(), done.logprobs);
        let window_tx = tx.clone();
        let job = tokio::task::spawn_blocking(move || {
            let mut first = true;
            worker.transcriber.transcribe(&pcm, &opts, |segments| {
                let mut delta: String = segments.iter().map(|s| s.text.as_str()).collect();
                if first {
                    delta = delta.trim_start().to_string();
                    first = delta.is_empty();
                }
                let logprobs = logprobs.then(|| token_logprobs(&worker.transcriber, segments));
                let e = sse(&wire::TranscriptEvent::Delta { delta, logprobs });
                window_tx.blocking_send(Ok(e)).is_ok()
            })
        });
        let Ok(transcript) = job.await else { return };
        let usage = done.finish(&transcript);
        let logprobs = done
            .logprobs
            .then(|| token_logprobs(&done.speech.transcriber, &transcript.segments));
        let end = wire::TranscriptEvent::Done {
            text: transcript.text.clone(),
            logprobs,
            usage,
        };
        let _ = tx.send(Ok(sse(&end))).await;
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(out))
        .keep_alive(
            KeepAlive::new()
                .interval(std::time::Duration::from_secs(10))
                .text("keep-alive"),
        )
        .into_response()
}

fn audio_tokens(t: &Transcript) -> u64 {
    (t.duration as f64 * AUDIO_TOKENS_PER_SECOND).ceil() as u64
}

fn text_tokens(t: &Transcript) -> u64 {
    t.segments.iter().map(|s| s.tokens.len() as u64).sum()
}

fn usage(speech: &Speech, t: &Transcript, tokens: bool) -> wire::AudioUsage {
    let cost = t.duration as f64 / 60.0 * speech.price_per_minute;
    if !tokens {
        return wire::AudioUsage::Duration {
            seconds: (t.duration as f64).ceil(),
            cost,
        };
    }
    let (audio, text) = (audio_tokens(t), text_tokens(t));
    wire::AudioUsage::Tokens {
        input_tokens: audio,
        output_tokens: text,
        total_tokens: audio + text,
        input_token_details: wire::InputTokenDetails {
            audio_tokens: audio,
            text_tokens: 0,
        },
        cost,
    }
}

fn cost_of(u: &wire::AudioUsage) -> f64 {
    match u {
        wire::AudioUsage::Duration { cost, .. } | wire::AudioUsage::Tokens { cost, .. } => *cost,
    }
}

/// The usage of audio heard in a chat request (priced as a transcription in seconds).
pub(crate) fn record_heard(state: &Arc<AppState>, caller: &Caller, speech: &Speech, t: &Transcript, start: Instant) {
    record(state, caller, speech, t, &usage(speech, t, false), start);
}

/// The request's usage record (in the background: the answer does not wait for the disk).
fn record(
    state: &Arc<AppState>,
    caller: &Caller,
    speech: &Speech,
    t: &Transcript,
    u: &wire::AudioUsage,
    start: Instant,
) {
    let account = caller.account();
    let rec = tandem_store::UsageRecord {
        created_at: unix_now(),
        request_id: crate::state::new_id("transcr-"),
        batch_id: None,
        line: None,
        model: speech.id.into(),
        tier: "speech".into(),
        prompt_tokens: audio_tokens(t),
        cached_tokens: 0,
        completion_tokens: text_tokens(t),
        cost: cost_of(u),
        key_id: account.key_id,
        project_id: account.project_id,
        latency_ms: start.elapsed().as_millis() as u64,
        status: 200,
    };
    state.record_usage(rec);
}

/// What a verbose_json answer holds.
#[derive(Clone, Copy)]
struct Shape {
    task: tandem_audio::Task,
    segments: bool,
    words: bool,
}

fn render(
    t: &Transcript,
    format: Format,
    usage: wire::AudioUsage,
    shape: Shape,
    logprobs: Option<Vec<wire::TokenLogprob>>,
) -> Response {
    let cost = cost_of(&usage);
    let mut resp = match format {
        Format::Json => axum::Json(wire::Transcription {
            text: t.text.clone(),
            logprobs,
            usage,
        })
        .into_response(),
        Format::VerboseJson => axum::Json(verbose(t, usage, shape)).into_response(),
        Format::Text => plain(format!("{}\n", t.text), "text/plain; charset=utf-8"),
        Format::Srt => plain(subtitles(t, false), "application/x-subrip; charset=utf-8"),
        Format::Vtt => plain(subtitles(t, true), "text/vtt; charset=utf-8"),
    };
    crate::routes::set_cost(&mut resp, cost);
    resp
}

fn plain(body: String, content_type: &'static str) -> Response {
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

fn verbose(t: &Transcript, usage: wire::AudioUsage, shape: Shape) -> wire::VerboseTranscription {
    let task = match shape.task {
        tandem_audio::Task::Transcribe => "transcribe",
        tandem_audio::Task::Translate => "translate",
    };
    wire::VerboseTranscription {
        task: task.into(),
        language: tandem_audio::languages::name(&t.language).into(),
        duration: t.duration as f64,
        text: t.text.clone(),
        words: shape.words.then(|| {
            let words = t.segments.iter().flat_map(|s| &s.words);
            words
                .map(|w| wire::TranscriptionWord {
                    word: w.word.trim().to_string(),
                    start: round2(w.start),
                    end: round2(w.end),
                })
                .collect()
        }),
        segments: shape.segments.then(|| t.segments.iter().map(segment).collect()),
        usage,
    }
}

fn segment(s: &tandem_audio::Segment) -> wire::TranscriptionSegment {
    wire::TranscriptionSegment {
        id: s.id,
        seek: s.seek,
        start: round2(s.start),
        end: round2(s.end),
        text: s.text.clone(),
        tokens: s.tokens.clone(),
        temperature: s.temperature as f64,
        avg_logprob: s.avg_logprob as f64,
        compression_ratio: tandem_audio::compression_ratio(&s.text) as f64,
        no_speech_prob: s.no_speech_prob as f64,
    }
}

fn round2(x: f32) -> f64 {
    (x as f64 * 100.0).round() / 100.0
}

/// SubRip (`00:00:01,500`, numbered cues) or WebVTT (`WEBVTT` header, `00:00:01.500`).
fn subtitles(t: &Transcript, vtt: bool) -> String {
    let stamp = |s: f32| {
        let ms = (s.max(0.0) as f64 * 1000.0).round() as u64;
        let (h, m, sec, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        let sep = if vtt { '.' } else { ',' };
        format!("{h:02}:{m:02}:{sec:02}{sep}{milli:03}")
    };
    let mut out = String::from(if vtt { "WEBVTT\n\n" } else { "" });
    for (i, s) in t.segments.iter().enumerate() {
        if !vtt {
            out.push_str(&format!("{}\n", i + 1));
        }
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(s.start),
            stamp(s.end),
            s.text.trim()
        ));
    }
    out
}
