//! `POST /v1/moderations` in OpenAI's shape. The classifier is `tandem_safety::Moderator`: the
//! mini's embedding of the text, read by a trained head; it needs the mini tier to be served.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde_json::Value;
use tandem_api as api;
use tandem_safety::{Verdict, CATEGORIES};

use crate::error::ApiError;
use crate::params::{wrong_type, Fields};
use crate::state::{new_id, AppState};

/// Most inputs one request may classify.
pub const MAX_INPUTS: usize = 32;

/// Model names a client may ask for: OpenAI's moderation models map to ours.
const OPENAI_MODELS: [&str; 4] = [
    "omni-moderation-latest",
    "omni-moderation-2024-09-26",
    "text-moderation-latest",
    "text-moderation-stable",
];

/// The texts to classify: a string, an array of strings, or an array of content parts (whose
/// text parts are read as one input).
fn inputs(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let v = v.ok_or_else(|| ApiError::missing("input"))?;
    let texts =
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect(),
            Value::Array(items) => {
                let mut text = String::new();
                for (i, part) in items.iter().enumerate() {
                    let param = format!("input[{i}]");
                    let kind = part.get("type").and_then(Value::as_str);
                    match kind {
                        Some("text") => match part.get("text") {
                            Some(Value::String(t)) => {
                                if !text.is_empty() {
                                    text.push('\n');
                                }
                                text.push_str(t);
                            }
                            Some(other) => return Err(wrong_type(&format!("{param}.text"), "a string", other)),
                            None => return Err(ApiError::missing(&format!("{param}.text"))),
                        },
                        // Seen and replaced by their text before this (`see_images`); one left here
                        // means no vision models are served.
                        Some("image_url") => return Err(ApiError::invalid(
                            param,
                            "unsupported_value",
                            "Image input needs the vision models: run `tandem pull vision` and serve with vision on.",
                        )),
                        _ => {
                            return Err(ApiError::invalid(
                                param.clone(),
                                "invalid_value",
                                format!("Invalid value for '{param}': expected a string or a part of type 'text'."),
                            ))
                        }
                    }
                }
                vec![text]
            }
            other => return Err(wrong_type("input", "a string or an array", other)),
        };
    if texts.is_empty() || texts.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            "invalid_value",
            format!(
                "Invalid 'input': expected 1 to {MAX_INPUTS} inputs, got {}.",
                texts.len()
            ),
        ));
    }
    Ok(texts)
}

/// Image parts of a multi-part `input` replaced by what the perception stage reads in them (the
/// OCR text and the classifier's labels), which the text classifier then judges, as
/// omni-moderation judges images; and which input types were present (`text`, `image`).
async fn see_images(state: &AppState, input: Option<&Value>) -> Result<(Option<Value>, Vec<&'static str>), ApiError> {
    let Some(Value::Array(items)) = input else {
        return Ok((input.cloned(), vec!["text"]));
    };
    let is_image = |p: &Value| p.get("type").and_then(Value::as_str) == Some("image_url");
    if !items.iter().any(is_image) || state.seer.is_none() {
        return Ok((input.cloned(), vec!["text"]));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut types = Vec::new();
    for (i, part) in items.iter().enumerate() {
        if is_image(part) {
            let text = crate::seeing::moderation_text(state, part, &format!("input[{i}]")).await?;
            out.push(serde_json::json!({"type": "text", "text": text}));
            types.push("image");
        } else {
            out.push(part.clone());
            types.push("text");
        }
    }
    types.sort_unstable();
    types.dedup();
    Ok((Some(Value::Array(out)), types))
}

/// One result object, as OpenAI's omni-moderation returns it.
fn result(v: &Verdict, types: &[&str]) -> api::ModerationResult {
    api::ModerationResult {
        flagged: v.flagged,
        categories: v.categories.iter().map(|(c, on)| (c.to_string(), *on)).collect(),
        category_scores: v
            .category_scores
            .iter()
            .map(|(c, s)| (c.to_string(), *s as f64))
            .collect(),
        category_applied_input_types: CATEGORIES
            .iter()
            .map(|c| (c.to_string(), types.iter().map(|t| t.to_string()).collect()))
            .collect(),
    }
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<api::Moderation>, ApiError> {
    let b = crate::routes::body(b, state.config.max_body_bytes)?;
    Ok(Json(moderate(&state, &Fields::parse(&b)?).await?))
}

/// One moderation request (its JSON object): a verdict per input. Also a batch line's.
pub(crate) async fn moderate(state: &AppState, v: &Value) -> Result<api::Moderation, ApiError> {
    let f = Fields::new(v);
    f.check_known(&["input", "model"], state.config.ignore_unknown_fields)?;
    let Some(moderator) = state.moderator.as_ref() else {
        return Err(ApiError::invalid(
            "model",
            "moderation_unavailable",
            "Moderation runs on the mini tier (qwen2.5-coder-0.5b-instruct), which this server does not serve: start it with --models mini (and any other tiers).",
        ));
    };
    if let Some(m) = f.string("model")? {
        if !OPENAI_MODELS.contains(&m) && m != moderator.name() {
            return Err(ApiError::model_not_found(m));
        }
    }
    let (input, types) = see_images(state, f.get("input")).await?;
    let texts = inputs(input.as_ref())?;
    let mut results = Vec::with_capacity(texts.len());
    for t in &texts {
        let verdict = moderator
            .classify(t)
            .await
            .map_err(|e| ApiError::internal(format!("moderation: {e}")))?;
        results.push(result(&verdict, &types));
    }
    Ok(api::Moderation {
        id: new_id("modr-"),
        model: moderator.name().to_string(),
        results,
    })
}
