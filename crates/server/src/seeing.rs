//! Images in chat: each `image_url` content part (a `data:` URL, the id of a file uploaded with
//! purpose `vision`, or — when the operator enables it — an http(s) URL) is decoded within
//! limits, seen by the perception stage (`tandem_vision`: size, named colours, an ImageNet
//! classifier's labels, OCR text) and replaced, where it stood, by the framed perception block
//! — before the request is bound, so the tiers, moderation and every record see what the tiers
//! see. Responses' `input_image` parts arrive here as chat parts. The blocks are also handed to
//! the prompt-attack detector as tool output is (text in an image is data, not instructions).
//! Perceptions are cached by the image's SHA-256 and `detail`: clients resend every image on
//! every turn.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tandem_vision::{Detail, Limits, Perception, Vision};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The perception stage as the server holds it.
pub struct Seer {
    pub vision: Arc<dyn Vision>,
    pub limits: Limits,
    cache: Mutex<Cache>,
}

/// Perceptions kept (a few KB each).
const CACHE_ENTRIES: usize = 512;

#[derive(Default)]
struct Cache {
    map: HashMap<([u8; 32], Detail), Perception>,
    order: VecDeque<([u8; 32], Detail)>,
}

impl Seer {
    pub fn new(vision: Arc<dyn Vision>, limits: Limits) -> Self {
        Self {
            vision,
            limits,
            cache: Mutex::default(),
        }
    }

    /// How the tiers see, for `/v1/models` and the startup line.
    pub fn describes(&self) -> String {
        format!("perception stage: {}", self.vision.engines().join(", "))
    }

    fn cached(&self, key: &([u8; 32], Detail)) -> Option<Perception> {
        self.cache.lock().ok()?.map.get(key).cloned()
    }

    fn keep(&self, key: ([u8; 32], Detail), p: Perception) {
        if let Ok(mut c) = self.cache.lock() {
            if c.map.insert(key, p).is_none() {
                c.order.push_back(key);
            }
            while c.order.len() > CACHE_ENTRIES {
                if let Some(old) = c.order.pop_front() {
                    c.map.remove(&old);
                }
            }
        }
    }

    /// The perception of `bytes` at `detail`, from the cache or seen now (off the async threads).
    async fn perceive(self: &Arc<Self>, bytes: Vec<u8>, detail: Detail, param: &str) -> Result<Perception, ApiError> {
        let key = (<[u8; 32]>::from(Sha256::digest(&bytes)), detail);
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let me = self.clone();
        let seen = tokio::task::spawn_blocking(move || {
            let picture = tandem_vision::decode(&bytes, me.limits)?;
            me.vision.see(&picture, detail)
        })
        .await
        .map_err(|e| ApiError::internal(format!("the vision task failed: {e}")))?;
        let p = seen.map_err(|e| match e {
            tandem_vision::VisionError::Image(m) => ApiError::invalid(param, "invalid_image", m),
            other => ApiError::internal(other.to_string()),
        })?;
        self.keep(key, p.clone());
        Ok(p)
    }
}

/// Where an image part is: (message index, part index).
fn image_parts(body: &Value) -> Vec<(usize, usize)> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut at = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        for (j, p) in m
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if p.get("type").and_then(Value::as_str) == Some("image_url") {
                at.push((i, j));
            }
        }
    }
    at
}

/// Where an image's bytes come from.
enum Source {
    Data(Vec<u8>),
    File(String),
    Url(String),
}

/// The paths an image part's errors name.
struct Params {
    /// The image as a whole (decoding errors).
    image: String,
    url: String,
    detail: String,
}

impl Params {
    /// A chat part at `pp`: `{"type": "image_url", "image_url": {"url", "detail"}}`; a part
    /// translated from Responses' `input_image` names its own fields (`_param`: its path).
    fn of(part: &Value, pp: &str) -> Self {
        match part.get("_param").and_then(Value::as_str) {
            Some(orig) => Self {
                image: orig.to_string(),
                url: format!("{orig}.image_url"),
                detail: format!("{orig}.detail"),
            },
            None => Self {
                image: format!("{pp}.image_url"),
                url: format!("{pp}.image_url.url"),
                detail: format!("{pp}.image_url.detail"),
            },
        }
    }
}

/// The part's source and `detail`, checked.
fn source_of(part: &Value, p: &Params, limits: Limits) -> Result<(Source, Detail), ApiError> {
    let param = p.image.as_str();
    let img = part.get("image_url").ok_or_else(|| ApiError::missing(param))?;
    let (url, file_id) = match img {
        Value::String(s) => (Some(s.as_str()), None),
        Value::Object(o) => (
            o.get("url").and_then(Value::as_str),
            o.get("file_id").and_then(Value::as_str),
        ),
        _ => return Err(crate::params::wrong_type(param, "an object", img)),
    };
    let detail = match img.get("detail") {
        None | Some(Value::Null) => Detail::Auto,
        Some(Value::String(d)) => Detail::parse(d).ok_or_else(|| {
            ApiError::invalid(
                p.detail.as_str(),
                "invalid_value",
                format!(
                    "Invalid value for '{}': '{d}'. Supported values are: 'low', 'high' and 'auto'.",
                    p.detail
                ),
            )
        })?,
        Some(v) => return Err(crate::params::wrong_type(&p.detail, "a string", v)),
    };
    let source = match (url, file_id) {
        (_, Some(id)) => Source::File(id.to_string()),
        (Some(u), None) if u.starts_with("data:") => Source::Data(data_url(u, &p.url, limits)?),
        (Some(u), None) if u.starts_with("file-") => Source::File(u.to_string()),
        (Some(u), None) if u.starts_with("http://") || u.starts_with("https://") => Source::Url(u.to_string()),
        (Some(_), None) => {
            return Err(ApiError::invalid(
                p.url.as_str(),
                "invalid_value",
                "Expected a data: URL (base64), an http(s) URL, or a file id.",
            ))
        }
        (None, None) => return Err(ApiError::missing(&p.url)),
    };
    Ok((source, detail))
}

/// `data:[<media type>];base64,<data>` → the bytes (the length checked before decoding).
fn data_url(u: &str, param: &str, limits: Limits) -> Result<Vec<u8>, ApiError> {
    let bad = |m: &str| ApiError::invalid(param, "invalid_image", m.to_string());
    let (head, data) = u.split_once(',').ok_or_else(|| bad("The data: URL has no ','."))?;
    if !head.ends_with(";base64") {
        return Err(bad("The data: URL must be base64 (data:image/png;base64,…)."));
    }
    if data.len() / 4 * 3 > limits.max_bytes + 3 {
        return Err(bad(&format!("The image is larger than {} bytes.", limits.max_bytes)));
    }
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| bad("The image data is not valid base64."))
}

/// The bytes of file `id`: the caller's project's, uploaded with purpose `vision` (or
/// `user_data`), within the image byte limit.
async fn file_bytes(
    state: &Arc<AppState>,
    caller: &Caller,
    id: &str,
    param: &str,
    limits: Limits,
) -> Result<Vec<u8>, ApiError> {
    let f = crate::files::find(state, caller, id)
        .await
        .map_err(|_| ApiError::invalid(param, "invalid_value", format!("No such file: '{id}'.")))?;
    if !matches!(f.purpose.as_str(), "vision" | "user_data") {
        return Err(ApiError::invalid(
            param,
            "invalid_value",
            format!(
                "File '{id}' was uploaded with purpose '{}'; images need purpose 'vision'.",
                f.purpose
            ),
        ));
    }
    if f.bytes > limits.max_bytes as u64 {
        return Err(ApiError::invalid(
            param,
            "invalid_image",
            format!("The image is larger than {} bytes.", limits.max_bytes),
        ));
    }
    tokio::fs::read(state.blobs.path(&f.id))
        .await
        .map_err(|e| ApiError::internal(format!("the bytes of {id} are missing: {e}")))
}

/// The part's bytes and `detail`: decoded from a data: URL, fetched (when `urls` allows it), or
/// read from a file of the caller's project (`files`; without it a file id is refused).
async fn load(
    part: &Value,
    p: &Params,
    limits: Limits,
    urls: crate::image_fetch::ImageUrls,
    files: Option<(&Arc<AppState>, &Caller)>,
) -> Result<(Vec<u8>, Detail), ApiError> {
    let (source, detail) = source_of(part, p, limits)?;
    let bytes = match (source, files) {
        (Source::Data(b), _) => b,
        (Source::Url(u), _) => crate::image_fetch::fetch(urls, &u, &p.url, limits).await?,
        (Source::File(id), Some((state, caller))) => file_bytes(state, caller, &id, &p.image, limits).await?,
        (Source::File(_), None) => {
            return Err(ApiError::invalid(
                p.url.as_str(),
                "invalid_value",
                "Moderation takes images as data: URLs (or http(s) URLs where fetching is on), not file ids.",
            ))
        }
    };
    Ok((bytes, detail))
}

/// `body` with every chat `image_url` part replaced by its perception block, and the blocks.
pub async fn see(state: &Arc<AppState>, caller: &Caller, mut body: Value) -> Result<(Value, Vec<String>), ApiError> {
    let at = image_parts(&body);
    if at.is_empty() {
        return Ok((body, Vec::new()));
    }
    let first = format!("messages[{}].content[{}]", at[0].0, at[0].1);
    let seer = state.seer.clone().ok_or_else(|| {
        ApiError::invalid(
            first.as_str(),
            "unsupported_content",
            "Image input needs the vision models, which this server does not serve: run `tandem pull vision` and start it with vision on (the default).",
        )
    })?;
    if at.len() > state.config.max_images {
        return Err(ApiError::invalid(
            "messages",
            "too_many_images",
            format!(
                "A request may hold at most {} images; this one has {}.",
                state.config.max_images,
                at.len()
            ),
        ));
    }
    let mut blocks = Vec::new();
    for (n, (i, j)) in at.into_iter().enumerate() {
        let part = &body["messages"][i]["content"][j];
        let p = Params::of(part, &format!("messages[{i}].content[{j}]"));
        let (bytes, detail) = load(part, &p, seer.limits, state.config.image_urls, Some((state, caller))).await?;
        let seen = seer.perceive(bytes, detail, &p.image).await?;
        let block = tandem_vision::block::render(n + 1, &seen);
        body["messages"][i]["content"][j] = json!({"type": "text", "text": block});
        blocks.push(block);
    }
    Ok((body, blocks))
}

/// What the moderation classifier reads for an image part of `/v1/moderations` (a data: URL, or
/// an http(s) URL where fetching is on): the text found in it and the classifier's labels.
pub async fn moderation_text(state: &AppState, part: &Value, pp: &str) -> Result<String, ApiError> {
    let seer = state
        .seer
        .clone()
        .ok_or_else(|| ApiError::invalid(pp, "unsupported_value", "no vision models"))?;
    let p = Params::of(part, pp);
    let (bytes, _) = load(part, &p, seer.limits, state.config.image_urls, None).await?;
    let p = seer.perceive(bytes, Detail::High, &p.image).await?;
    let mut text: Vec<String> = p.text.iter().flatten().map(|l| l.text.clone()).collect();
    text.extend(p.labels.iter().map(|(name, _)| name.clone()));
    Ok(text.join("\n"))
}

/// `POST /perceive` `{"image_url": {"url" | "file_id", "detail"}}`: what the tiers are told about
/// one image (the block) and what it was made from.
pub async fn perceive(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    b: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::Json<tandem_api::Perceived>, ApiError> {
    let b = crate::routes::body(b, state.config.max_body_bytes)?;
    let v = crate::params::Fields::parse(&b)?;
    crate::params::Fields::new(&v).check_known(&["image_url"], false)?;
    let seer = state.seer.clone().ok_or_else(|| {
        ApiError::invalid(
            "image_url",
            "unsupported_content",
            "This server does not serve the vision models.",
        )
    })?;
    let p = Params {
        image: "image_url".into(),
        url: "image_url.url".into(),
        detail: "image_url.detail".into(),
    };
    let (bytes, detail) = load(&v, &p, seer.limits, state.config.image_urls, Some((&state, &caller))).await?;
    let p = seer.perceive(bytes, detail, "image_url").await?;
    let share = |n: &str, v: f32| tandem_api::Share {
        name: n.to_string(),
        value: v,
    };
    Ok(axum::Json(tandem_api::Perceived {
        block: tandem_vision::block::render(1, &p),
        width: p.width,
        height: p.height,
        format: p.format.to_string(),
        background: p.colours.background.map(str::to_string),
        colours: p.colours.shares.iter().map(|(n, v)| share(n, *v)).collect(),
        labels: p.labels.iter().map(|(n, v)| share(n, *v)).collect(),
        text: p.text.as_ref().map(|l| {
            l.iter()
                .map(|l| tandem_api::TextLine {
                    text: l.text.clone(),
                    confidence: l.confidence,
                })
                .collect()
        }),
        engines: p.engines.iter().map(|e| e.to_string()).collect(),
    }))
}
