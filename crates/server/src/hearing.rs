//! Spoken input in chat: each `input_audio` content part (`{"data": base64, "format": "wav" |
//! "mp3"}`) is transcribed by Whisper and replaced by a text part holding the transcript, before
//! the request is bound — so the tiers, input moderation and every record see the words. The
//! tiers hear through Whisper; they never see the audio. Each part's transcription is recorded as
//! usage of the speech model under the caller's project.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::request::Api;
use crate::state::AppState;

/// Where an audio part is: (message index, part index).
fn audio_parts(body: &Value) -> Vec<(usize, usize)> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut at = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if let Some(parts) = m.get("content").and_then(Value::as_array) {
            for (j, p) in parts.iter().enumerate() {
                if p.get("type").and_then(Value::as_str) == Some("input_audio") {
                    at.push((i, j));
                }
            }
        }
    }
    at
}

/// The part's audio bytes and format, checked.
fn audio_of(part: &Value, pp: &str) -> Result<(Vec<u8>, &'static str), ApiError> {
    let audio = part
        .get("input_audio")
        .ok_or_else(|| ApiError::missing(&format!("{pp}.input_audio")))?;
    let format = match audio.get("format").and_then(Value::as_str) {
        Some("wav") => "wav",
        Some("mp3") => "mp3",
        Some(other) => {
            return Err(ApiError::invalid(
                format!("{pp}.input_audio.format"),
                "invalid_value",
                format!(
                    "Invalid value for '{pp}.input_audio.format': '{other}'. Supported values are: 'wav' and 'mp3'."
                ),
            ))
        }
        None => return Err(ApiError::missing(&format!("{pp}.input_audio.format"))),
    };
    let data = audio
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing(&format!("{pp}.input_audio.data")))?;
    if data.len() > crate::audio::MAX_FILE_BYTES / 3 * 4 + 4 {
        return Err(ApiError::payload_too_large(crate::audio::MAX_FILE_BYTES));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| {
        ApiError::invalid(
            format!("{pp}.input_audio.data"),
            "invalid_value",
            "The audio data is not valid base64.",
        )
    })?;
    Ok((bytes, format))
}

/// Earlier spoken answers named by id (`{"role": "assistant", "audio": {"id": …}}`) become their
/// transcript as the message's content; an unknown or expired id is a 400 naming it.
fn recall_spoken(state: &AppState, project_id: Option<&str>, body: &mut Value) -> Result<(), ApiError> {
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for (i, m) in messages.iter_mut().enumerate() {
        let Some(obj) = m.as_object_mut() else { continue };
        let Some(audio) = obj.remove("audio") else { continue };
        let param = format!("messages[{i}].audio.id");
        let id = audio
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing(&param))?;
        let text = crate::speech::recall(state, id, project_id).ok_or_else(|| {
            ApiError::invalid(
                param.as_str(),
                "invalid_value",
                format!("No spoken answer '{id}' is kept (unknown, or past its expires_at)."),
            )
        })?;
        if obj.get("content").is_none_or(Value::is_null) {
            obj.insert("content".into(), Value::String(text));
        }
    }
    Ok(())
}

/// `body` with every chat `input_audio` part replaced by its transcript, and earlier spoken
/// answers named by id replaced by their words (unchanged when it has none, or for other APIs).
pub async fn hear(state: &Arc<AppState>, caller: &Caller, api: Api, mut body: Value) -> Result<Value, ApiError> {
    if api == Api::Chat {
        recall_spoken(state, caller.account().project_id.as_deref(), &mut body)?;
    }
    let at = audio_parts(&body);
    if api != Api::Chat || at.is_empty() {
        return Ok(body);
    }
    for (i, j) in at {
        let pp = format!("messages[{i}].content[{j}]");
        // The first model (tiny.en): chat hears English, the tiers' language, fastest with it.
        let speech = state.speech.first().cloned().ok_or_else(|| {
            ApiError::invalid(
                pp.as_str(),
                "unsupported_content",
                "Audio input needs the speech model, which this server does not serve: run `tandem pull speech` and start it with speech on (the default).",
            )
        })?;
        let (bytes, format) = audio_of(&body["messages"][i]["content"][j], &pp)?;
        let start = Instant::now();
        let worker = speech.clone();
        let transcript = tokio::task::spawn_blocking(move || {
            let pcm = tandem_audio::input::decode(bytes, Some(format))?;
            Ok::<_, tandem_audio::AudioError>(worker.transcriber.transcribe(
                &pcm,
                &tandem_audio::Options::default(),
                |_| true,
            ))
        })
        .await
        .map_err(|e| ApiError::internal(format!("the transcription task failed: {e}")))?
        .map_err(|e| ApiError::invalid(format!("{pp}.input_audio.data"), "invalid_value", e.to_string()))?;
        crate::audio::record_heard(state, caller, &speech, &transcript, start);
        body["messages"][i]["content"][j] = json!({"type": "text", "text": transcript.text});
    }
    Ok(body)
}
