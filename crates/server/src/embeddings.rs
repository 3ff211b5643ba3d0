//! `POST /v1/embeddings`: the sentence encoder (`tandem_embed::Encoder`, all-MiniLM-L6-v2, 384
//! dimensions) behind OpenAI's shape. OpenAI's embedding model names map to it; token arrays are
//! this model's WordPiece ids (not OpenAI's cl100k). Usage and cost are recorded once per request,
//! under the caller's project, like every other front door.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;
use tandem_api as api;
use tandem_embed::Encoder;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{wrong_type, Fields};
use crate::state::{unix_now, AppState};

/// The encoder's model id, as responses name it.
pub const MODEL_ID: &str = "all-minilm-l6-v2";
/// OpenAI's names that mean it (its vectors have 384 dimensions, not theirs).
pub const OPENAI_NAMES: [&str; 3] = [
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
];
/// OpenAI's limits: inputs per request, and tokens over all of them (after truncation here).
pub const MAX_INPUTS: usize = 2048;
pub const MAX_REQUEST_TOKENS: usize = 300_000;

/// The served encoder and its price.
pub struct Embedder {
    pub encoder: Encoder,
    /// USD per 1M input tokens.
    pub price: f64,
    pub created: u64,
}

impl Embedder {
    pub fn new(encoder: Encoder, price: f64) -> Self {
        Self {
            encoder,
            price,
            created: unix_now(),
        }
    }

    pub fn answers_to(&self, name: &str) -> bool {
        name == MODEL_ID || OPENAI_NAMES.contains(&name) || name == "sentence-transformers/all-MiniLM-L6-v2"
    }

    pub fn model_object(&self) -> api::Model {
        api::Model {
            id: MODEL_ID.into(),
            object: "model".into(),
            created: self.created,
            owned_by: "tandem".into(),
            tier: "embeddings".into(),
            context_window: self.encoder.max_tokens(),
            parameters_name: "all-MiniLM-L6-v2".into(),
            pricing: api::ModelPricing {
                unit: "USD per 1M tokens".into(),
                input: self.price,
                cached_input: self.price,
                output: 0.0,
            },
            input_modalities: vec!["text".to_string()],
            vision: None,
            aliases: OPENAI_NAMES.iter().map(|n| n.to_string()).collect(),
        }
    }
}

/// The inputs as the encoder reads them: `[CLS] … [SEP]`, cut to its longest sequence.
fn inputs(enc: &Encoder, v: Option<&Value>) -> Result<Vec<Vec<u32>>, ApiError> {
    let v = v.ok_or_else(|| ApiError::missing("input"))?;
    let empty = |param: String| {
        ApiError::invalid(
            param.clone(),
            "invalid_value",
            format!("Invalid '{param}': an input must not be empty."),
        )
    };
    let tokens = |param: String, items: &[Value]| -> Result<Vec<u32>, ApiError> {
        if items.is_empty() {
            return Err(empty(param));
        }
        let id = |t: &Value| t.as_u64().and_then(|t| u32::try_from(t).ok());
        if let Some((j, bad)) = items.iter().enumerate().find(|(_, t)| id(t).is_none()) {
            return Err(wrong_type(
                &format!("{param}[{j}]"),
                "a token id (a non-negative integer)",
                bad,
            ));
        }
        let ids: Vec<u32> = items.iter().filter_map(id).collect();
        enc.wrap(&ids)
            .map_err(|e| ApiError::invalid(param, "invalid_value", e.to_string()))
    };
    let seqs = match v {
        Value::String(s) if s.is_empty() => return Err(empty("input".into())),
        Value::String(s) => vec![enc.tokenize(s)],
        Value::Array(items) if items.is_empty() => return Err(empty("input".into())),
        Value::Array(items) if items.iter().all(Value::is_number) => vec![tokens("input".into(), items)?],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if s.is_empty() => Err(empty(format!("input[{i}]"))),
                Value::String(s) => Ok(enc.tokenize(s)),
                Value::Array(ids) => tokens(format!("input[{i}]"), ids),
                other => Err(wrong_type(
                    &format!("input[{i}]"),
                    "a string or an array of token ids",
                    other,
                )),
            })
            .collect::<Result<_, _>>()?,
        other => Err(wrong_type(
            "input",
            "a string, an array of strings, or token ids",
            other,
        ))?,
    };
    if seqs.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            "invalid_value",
            format!(
                "Invalid 'input': at most {MAX_INPUTS} inputs per request, got {}.",
                seqs.len()
            ),
        ));
    }
    let total: usize = seqs.iter().map(Vec::len).sum();
    if total > MAX_REQUEST_TOKENS {
        return Err(ApiError::invalid(
            "input",
            "invalid_value",
            format!("Invalid 'input': the inputs are {total} tokens; at most {MAX_REQUEST_TOKENS} per request."),
        ));
    }
    Ok(seqs)
}

/// A checked request: what to embed and how to write it.
struct Valid {
    seqs: Vec<Vec<u32>>,
    base64: bool,
}

fn bind(state: &AppState, v: &Value) -> Result<(Arc<Embedder>, Valid), ApiError> {
    let f = Fields::new(v);
    f.check_known(
        &["model", "input", "encoding_format", "dimensions", "user"],
        state.config.ignore_unknown_fields,
    )?;
    let model = f.string("model")?.ok_or_else(|| ApiError::missing("model"))?;
    let Some(emb) = state.embedder.clone() else {
        return Err(ApiError::invalid(
            "model",
            "model_not_found",
            "This server has no embedding model: run `tandem pull embeddings` and start it with embeddings on (the default).",
        ));
    };
    if !emb.answers_to(model) {
        return Err(ApiError::model_not_found(model));
    }
    let base64 = match f.string("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                "invalid_value",
                format!("Invalid value for 'encoding_format': '{other}'. Supported values are: 'float' and 'base64'."),
            ))
        }
    };
    let dims = emb.encoder.dims();
    if let Some(d) = f.integer("dimensions", 1, i64::MAX)? {
        if d as usize != dims {
            return Err(ApiError::invalid(
                "dimensions",
                "invalid_value",
                format!("Invalid value for 'dimensions': this model's vectors have {dims} dimensions and cannot be shortened; leave 'dimensions' out or set it to {dims}."),
            ));
        }
    }
    let _ = f.string("user")?;
    let seqs = inputs(&emb.encoder, f.get("input"))?;
    Ok((emb, Valid { seqs, base64 }))
}

/// Embeds one request's inputs at `price` per 1M tokens (a batch line's is half).
pub(crate) async fn embed(state: &AppState, v: &Value, batch: bool) -> Result<api::EmbeddingList, ApiError> {
    let (emb, valid) = bind(state, v)?;
    let worker = emb.clone();
    let seqs = valid.seqs;
    let done = tokio::task::spawn_blocking(move || worker.encoder.embed(&seqs))
        .await
        .map_err(|e| ApiError::internal(format!("the embedding task failed: {e}")))?;
    let tokens: usize = done.iter().map(|e| e.tokens).sum();
    let price = if batch { emb.price / 2.0 } else { emb.price };
    let input = tokens as f64 * price / 1e6;
    let cost = api::usage::Cost {
        input,
        cached_input: 0.0,
        output: 0.0,
        total: input,
    };
    let data = done
        .into_iter()
        .enumerate()
        .map(|(index, e)| api::embeddings::Embedding {
            object: "embedding".into(),
            index,
            embedding: if valid.base64 {
                let bytes: Vec<u8> = e.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                api::Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                api::Vector::Float(e.vector)
            },
        })
        .collect();
    Ok(api::EmbeddingList::new(MODEL_ID.into(), data, tokens as u64, cost))
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
    // Rate limits count the request's tokens once known; the estimate is its size in bytes / 4.
    let charge = caller.admit(&state.limiter, (b.len() / 4) as u64)?;
    let list = embed(&state, &v, false).await?;
    if let Some(c) = &charge {
        c.used(list.usage.prompt_tokens);
    }
    record(&state, &caller, &list, start);
    let total = list.usage.cost.total;
    let mut resp = axum::Json(list).into_response();
    crate::routes::set_cost(&mut resp, total);
    Ok(resp)
}

/// The request's usage record (in the background: the answer does not wait for the disk).
fn record(state: &Arc<AppState>, caller: &Caller, list: &api::EmbeddingList, start: Instant) {
    let account = caller.account();
    let rec = tandem_store::UsageRecord {
        created_at: unix_now(),
        request_id: crate::state::new_id("emb-"),
        batch_id: None,
        line: None,
        model: MODEL_ID.into(),
        tier: "embeddings".into(),
        prompt_tokens: list.usage.prompt_tokens,
        cached_tokens: 0,
        completion_tokens: 0,
        cost: list.usage.cost.total,
        key_id: account.key_id,
        project_id: account.project_id,
        latency_ms: start.elapsed().as_millis() as u64,
        status: 200,
    };
    state.record_usage(rec);
}
