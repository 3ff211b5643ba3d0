//! Validation at the edge: a request body becomes a `ValidRequest` (a tokenised prompt and checked
//! parameters) or an OpenAI-shaped 4xx naming the parameter.

use serde_json::Value;
use tandem_engine::{GenRequest, SamplingParams};
use tandem_text::{chat, SpecialMode};

use crate::error::ApiError;
use crate::params::{wrong_type, Fields};
use crate::state::AppState;

/// Which endpoint a request came through (they differ in response shape and logprobs format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Completion,
}

pub struct ValidRequest {
    pub api: Api,
    pub tier: usize,
    /// The request named `model: "auto"` (the router picks `tier`).
    pub auto: bool,
    /// `service_tier: "flex"`: runs on the batch lane at the batch price.
    pub flex: bool,
    pub gen: GenRequest,
    pub stream: bool,
    pub include_usage: bool,
    /// Completions with `echo`: the prompt text to put before each choice's text.
    pub echo: Option<String>,
    /// Who pays: the caller's key and its rate-limit charge (set after admission).
    pub account: Account,
    /// Tools are on: the functions the output's calls may name.
    pub tools: Option<std::sync::Arc<crate::tool_calls::Declared>>,
    /// What input moderation reads: the user messages' text (chat) or the prompt (completions).
    pub user_text: Vec<String>,
    /// What prompt-attack detection reads besides the user's text: the `tool` messages' results.
    pub tool_text: Vec<String>,
    /// The response's id (`chatcmpl-…`, `cmpl-…`), made at validation so every record of the
    /// request (usage, moderation) can name it.
    pub id: String,
    /// What is moderated: the server's policy, or the caller's key's (set at admission).
    pub moderation: crate::guard::ModerationPolicy,
    /// Chat with `modalities: ["text", "audio"]`: the answer is also spoken.
    pub audio_out: Option<crate::speech::ChatAudio>,
}

/// The text of a message's content: a string, or the text parts of an array.
fn content_text(c: &Value) -> String {
    match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Account {
    pub key_id: Option<String>,
    /// The key's project: what the request stores (usage, moderation records) belongs to it.
    pub project_id: Option<String>,
    /// Rate-limit charges, settled when the last clone of the request is dropped.
    pub charge: Option<std::sync::Arc<crate::limits::Charge>>,
}

const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "metadata",
    "store",
    "service_tier",
    "modalities",
    "audio",
    "prediction",
    "reasoning_effort",
    "web_search_options",
    "functions",
    "function_call",
    "safety_identifier",
    "prompt_cache_key",
    "verbosity",
    // Extensions (as vLLM and llama-server take them): more sampling controls.
    "top_k",
    "min_p",
    "repetition_penalty",
];

const COMPLETION_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "suffix",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "logprobs",
    "echo",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "best_of",
    "logit_bias",
    "seed",
    "user",
    // Not OpenAI's for this endpoint, but the same structured outputs as chat (as vLLM accepts).
    "response_format",
    // Extensions: more sampling controls.
    "top_k",
    "min_p",
    "repetition_penalty",
];

fn unsupported(param: &str, what: &str) -> ApiError {
    ApiError::invalid(
        param,
        "unsupported_parameter",
        format!("Unsupported parameter: '{param}': {what} is not supported by this server yet."),
    )
}

/// Fields shared by both endpoints: sampling, limits, stream settings.
struct Common {
    params: SamplingParams,
    max_tokens: Option<usize>,
    stop: Vec<String>,
    n: usize,
    stream: bool,
    include_usage: bool,
}

fn common(f: &Fields, vocab: usize, max_tokens_keys: &[&str]) -> Result<Common, ApiError> {
    let mut max_tokens = None;
    for k in max_tokens_keys {
        if let Some(m) = f.integer(k, 1, i64::MAX)? {
            max_tokens = Some(m as usize);
        }
    }
    let stream = f.bool("stream")?.unwrap_or(false);
    let mut include_usage = false;
    if let Some(so) = f.get("stream_options") {
        let Value::Object(o) = so else {
            return Err(wrong_type("stream_options", "an object", so));
        };
        if !stream {
            return Err(ApiError::invalid(
                "stream_options",
                "invalid_value",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ));
        }
        for (k, v) in o {
            match (k.as_str(), v) {
                ("include_usage", Value::Bool(b)) => include_usage = *b,
                ("include_usage", v) => return Err(wrong_type("stream_options.include_usage", "a boolean", v)),
                ("include_obfuscation", _) => {}
                (k, _) => {
                    return Err(ApiError::bad_request(format!(
                        "Unrecognized request argument supplied: stream_options.{k}"
                    )))
                }
            }
        }
    }
    let params = SamplingParams {
        temperature: f.number("temperature", 0.0, 2.0)?.unwrap_or(1.0) as f32,
        top_p: f.number("top_p", 0.0, 1.0)?.unwrap_or(1.0) as f32,
        presence_penalty: f.number("presence_penalty", -2.0, 2.0)?.unwrap_or(0.0) as f32,
        frequency_penalty: f.number("frequency_penalty", -2.0, 2.0)?.unwrap_or(0.0) as f32,
        logit_bias: f.logit_bias(vocab)?,
        seed: f.integer("seed", i64::MIN, i64::MAX)?.map(|s| s as u64),
        top_k: f.integer("top_k", 0, 1_000_000)?.unwrap_or(0) as usize,
        min_p: f.number("min_p", 0.0, 1.0)?.unwrap_or(0.0) as f32,
        repetition_penalty: f.number("repetition_penalty", 0.01, 10.0)?.unwrap_or(1.0) as f32,
    };
    // OpenAI accepts top_p = 0 (it means greedy in practice); the sampler needs a positive value.
    let params = if params.top_p == 0.0 {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            ..params
        }
    } else {
        params
    };
    let n = f.integer("n", 1, 128)?.unwrap_or(1) as usize;
    Ok(Common {
        params,
        max_tokens,
        stop: f.stop()?,
        n,
        stream,
        include_usage,
    })
}

/// `max_tokens` from the request or the server default, checked against the context.
fn completion_budget(
    state: &AppState,
    tier: usize,
    prompt: usize,
    asked: Option<usize>,
    param: &str,
) -> Result<usize, ApiError> {
    let ctx = state.tiers[tier].engine.config.ctx;
    let overflow = |extra: String| {
        ApiError::invalid(
            param,
            "context_length_exceeded",
            format!("This model's maximum context length is {ctx} tokens. However, your request resulted in {prompt} prompt tokens{extra}. Please reduce the length of the prompt or the completion."),
        )
    };
    if prompt >= ctx {
        return Err(overflow(String::new()));
    }
    match asked {
        Some(m) if prompt + m > ctx => Err(overflow(format!(
            " and asked for {m} completion tokens ({} in total)",
            prompt + m
        ))),
        Some(m) => Ok(m),
        None => Ok(state.config.default_max_tokens.min(ctx - prompt)),
    }
}

/// The tier a request names, and whether it asked for routing (`auto`: validated on the small
/// tier, `forced` once the router has chosen).
fn model_tier(state: &AppState, f: &Fields, forced: Option<usize>) -> Result<(usize, bool), ApiError> {
    let model = f.string("model")?.ok_or_else(|| {
        ApiError::invalid(
            "model",
            "missing_required_parameter",
            "You must provide a model parameter.",
        )
    })?;
    if model == crate::router::AUTO && state.tier(model).is_err() {
        let tier = forced.unwrap_or_else(|| crate::router::small_and_large(state).0);
        return Ok((tier, true));
    }
    let t = state.tier(model)?;
    let t = state
        .tiers
        .iter()
        .position(|x| std::ptr::eq(x, t))
        .expect("tier from the list");
    Ok((t, false))
}

/// Validates a request of `api` (its JSON object, parsed once) and binds it to a tier: the one it
/// names, or for `model: "auto"` the router's choice `forced` (the small tier until chosen).
/// Binding renders the prompt with the tier's template and tokenizer, compiles grammars for its
/// vocabulary and checks the budget against its context; the cascade binds the same object again.
pub fn bind(state: &AppState, api: Api, body: &Value, forced: Option<usize>) -> Result<ValidRequest, ApiError> {
    match api {
        Api::Chat => bind_chat(state, body, forced),
        Api::Completion => bind_completion(state, body, forced),
    }
}

/// `service_tier`: `flex` runs the request on the batch lane at the batch price; `auto`,
/// `default`, `scale` and `priority` run it as usual.
fn service_tier(f: &Fields) -> Result<bool, ApiError> {
    match f.string("service_tier")? {
        None | Some("auto") | Some("default") | Some("scale") | Some("priority") => Ok(false),
        Some("flex") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            "service_tier",
            "invalid_value",
            format!("Invalid value for 'service_tier': '{other}'. Supported values are: 'auto', 'default', 'flex', 'scale' and 'priority'."),
        )),
    }
}

/// Known chat fields we cannot honour yet are refused, never dropped.
fn refuse_unsupported(f: &Fields) -> Result<(), ApiError> {
    for (k, what) in [
        ("functions", "function calling"),
        ("function_call", "function calling"),
        ("web_search_options", "web search"),
        ("reasoning_effort", "reasoning effort (these models do not reason)"),
    ] {
        if f.get(k).is_some() {
            return Err(unsupported(k, what));
        }
    }
    Ok(())
}

/// Predicted Outputs: `{"type": "content", "content": string | text parts}`, as plain text tokens
/// (never control tokens).
fn prediction(f: &Fields, lm: &tandem_engine::LoadedModel, ctx: usize) -> Result<Vec<u32>, ApiError> {
    let Some(p) = f.get("prediction") else {
        return Ok(Vec::new());
    };
    let expected = r#"an object {"type": "content", "content": ...}"#;
    let obj = p.as_object().ok_or_else(|| wrong_type("prediction", expected, p))?;
    match obj.get("type").and_then(Value::as_str) {
        Some("content") => {}
        _ => {
            return Err(ApiError::invalid(
                "prediction.type",
                "invalid_value",
                "Invalid value for 'prediction.type': the supported value is 'content'.",
            ))
        }
    }
    let content = obj.get("content").unwrap_or(&Value::Null);
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(parts)
            if parts
                .iter()
                .all(|x| x.get("type").and_then(Value::as_str) == Some("text")) =>
        {
            parts
                .iter()
                .filter_map(|x| x.get("text").and_then(Value::as_str))
                .collect()
        }
        _ => {
            return Err(wrong_type(
                "prediction.content",
                "a string or an array of text parts",
                content,
            ))
        }
    };
    let tokens = lm.tokenizer.encode(&text, SpecialMode::None);
    if tokens.len() >= ctx {
        return Err(ApiError::invalid(
            "prediction.content",
            "invalid_value",
            format!(
                "The prediction is {} tokens; this model's context holds {ctx}.",
                tokens.len()
            ),
        ));
    }
    Ok(tokens)
}

/// The grammar a chat answer is held to: its `response_format`, or its tools' (with the text that
/// switches it on under `tool_choice: auto`: a token id); not both.
fn chat_grammar(
    f: &Fields,
    lm: &tandem_engine::LoadedModel,
    tools: Option<&crate::tools::Tools>,
) -> Result<(Option<tandem_engine::Grammar>, Option<u32>), ApiError> {
    let grammar = crate::structured::response_format(lm, f.get("response_format"))?;
    match tools.map(|t| t.grammar(lm)).transpose()?.flatten() {
        Some(_) if grammar.is_some() => Err(unsupported(
            "response_format",
            "a response_format together with tool calls",
        )),
        Some((g, trigger)) => Ok((Some(g), trigger)),
        None => Ok((grammar, None)),
    }
}

fn bind_chat(state: &AppState, v: &Value, forced: Option<usize>) -> Result<ValidRequest, ApiError> {
    let f = Fields::new(v);
    f.check_known(CHAT_FIELDS, state.config.ignore_unknown_fields)?;
    let (tier, auto) = model_tier(state, &f, forced)?;
    let lm = &state.tiers[tier].engine.model;

    refuse_unsupported(&f)?;
    let audio_out = crate::speech::chat_audio(state, &f)?;
    let tools = crate::tools::parse(&f)?;
    let enforced = state.config.tool_calls == crate::tools::ToolCalls::Enforced;
    let (grammar, grammar_trigger) = chat_grammar(&f, lm, tools.as_ref().filter(|_| enforced))?;
    let offered = tools.as_ref().filter(|t| t.choice != crate::tools::ToolChoice::None);
    let tool_defs = offered.map(|t| t.defs.clone());
    let _ = (f.string("user")?, f.bool("store")?);

    let messages = crate::hierarchy::with_operator(
        crate::messages::parse(f.get("messages"))?,
        state.config.operator_prompt.as_deref(),
        state.config.tools_as_data,
    );
    let c = common(&f, lm.model.config.vocab, &["max_tokens", "max_completion_tokens"])?;
    if c.stream && audio_out.is_some_and(|a| a.format != tandem_voice::encode::Format::Pcm) {
        return Err(ApiError::invalid(
            "audio.format",
            "invalid_value",
            "A streamed spoken answer is pcm16 (24 kHz, 16-bit): set audio.format to 'pcm16'.",
        ));
    }
    let logprobs = f.bool("logprobs")?.unwrap_or(false);
    let top = f.integer("top_logprobs", 0, 20)?;
    if top.is_some() && !logprobs {
        return Err(ApiError::invalid(
            "top_logprobs",
            "invalid_value",
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
        ));
    }
    let pieces = lm
        .template
        .render(&messages, tool_defs.as_deref(), true)
        .map_err(|e| ApiError::invalid("messages", "invalid_value", e.to_string()))?;
    let prompt = chat::tokenize_pieces(&lm.tokenizer, &pieces);
    let param = if f.get("max_completion_tokens").is_some() {
        "max_completion_tokens"
    } else {
        "messages"
    };
    let max_tokens = completion_budget(state, tier, prompt.len(), c.max_tokens, param)?;
    let user_text: Vec<String> = messages
        .iter()
        .filter(|m| m.role == "user")
        .map(|m| content_text(&m.content))
        .collect();
    let tool_text: Vec<String> = messages
        .iter()
        .filter(|m| m.role == "tool")
        .map(|m| content_text(&m.content))
        .collect();
    let context = [&user_text[..], &tool_text[..]].concat().join("\n");
    let declared = offered.map(|t| t.declared(enforced, &context));
    let end_check = offered
        .zip(declared.as_ref())
        .filter(|_| enforced)
        .and_then(|(t, d)| t.end_check(lm, d));
    Ok(ValidRequest {
        user_text,
        tool_text,
        id: crate::state::new_id("chatcmpl-"),
        moderation: state.config.moderation,
        api: Api::Chat,
        tier,
        auto,
        flex: service_tier(&f)?,
        gen: GenRequest {
            stop: c.stop,
            n: c.n,
            top_logprobs: logprobs.then_some(top.unwrap_or(0) as usize),
            grammar,
            grammar_trigger,
            prediction: prediction(&f, lm, state.tiers[tier].engine.config.ctx)?,
            end_check,
            ..GenRequest::new(prompt, c.params, max_tokens)
        },
        stream: c.stream,
        include_usage: c.include_usage,
        echo: None,
        audio_out,
        tools: declared,
        account: Account::default(),
    })
}

fn bind_completion(state: &AppState, v: &Value, forced: Option<usize>) -> Result<ValidRequest, ApiError> {
    let f = Fields::new(v);
    f.check_known(COMPLETION_FIELDS, state.config.ignore_unknown_fields)?;
    let (tier, auto) = model_tier(state, &f, forced)?;
    let lm = &state.tiers[tier].engine.model;
    let grammar = crate::structured::response_format(lm, f.get("response_format"))?;
    let tok = &lm.tokenizer;
    let vocab = lm.model.config.vocab;
    let _ = f.string("user")?;

    let (text, tokens) = completion_prompt(&f, lm)?;
    if tokens.is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "invalid_value",
            "Invalid 'prompt': the prompt is empty.",
        ));
    }
    let mut c = common(&f, vocab, &["max_tokens"])?;
    if f.get("max_tokens").is_none() {
        c.max_tokens = Some(16); // the completions API's documented default
    }
    if let Some(b) = f.integer("best_of", 1, 128)? {
        if b as usize != c.n {
            return Err(unsupported("best_of", "best_of different from n"));
        }
    }
    let top = f.integer("logprobs", 0, 5)?;
    let echo = f.bool("echo")?.unwrap_or(false);
    let echo_text = echo.then(|| {
        text.clone()
            .unwrap_or_else(|| String::from_utf8_lossy(&tok.decode_bytes(&tokens)).into_owned())
    });
    let max_tokens = completion_budget(state, tier, tokens.len(), c.max_tokens, "max_tokens")?;
    let user_text = vec![String::from_utf8_lossy(&tok.decode_bytes(&tokens)).into_owned()];
    Ok(ValidRequest {
        user_text,
        tool_text: Vec::new(),
        id: crate::state::new_id("cmpl-"),
        moderation: state.config.moderation,
        api: Api::Completion,
        tier,
        auto,
        // The completions API has no service_tier.
        flex: false,
        gen: GenRequest {
            stop: c.stop,
            n: c.n,
            top_logprobs: top.map(|k| k as usize),
            grammar,
            ..GenRequest::new(tokens, c.params, max_tokens)
        },
        stream: c.stream,
        include_usage: c.include_usage,
        echo: echo_text,
        audio_out: None,
        tools: None,
        account: Account::default(),
    })
}

/// A completion's prompt: as text (plain text: it never becomes a control token) or as token ids,
/// with `suffix` for fill-in-the-middle. The text (when given) and the tokens.
fn completion_prompt(f: &Fields, lm: &tandem_engine::LoadedModel) -> Result<(Option<String>, Vec<u32>), ApiError> {
    let (tok, vocab) = (&lm.tokenizer, lm.model.config.vocab);
    let bad_prompt = || {
        wrong_type(
            "prompt",
            "a string, an array of token ids, or an array with one of either",
            f.get("prompt").unwrap_or(&Value::Null),
        )
    };
    let ids = |a: &[Value]| -> Result<Vec<u32>, ApiError> {
        a.iter()
            .map(|x| x.as_u64().filter(|&t| (t as usize) < vocab).map(|t| t as u32))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| {
                ApiError::invalid(
                    "prompt",
                    "invalid_value",
                    format!("Invalid 'prompt': token ids must be integers below {vocab}."),
                )
            })
    };
    // The prompt as text (plain text: it never becomes a control token) or as token ids.
    let (text, mut tokens): (Option<String>, Vec<u32>) = match f.get("prompt") {
        None => return Err(ApiError::missing("prompt")),
        Some(Value::String(s)) => (Some(s.clone()), Vec::new()),
        Some(Value::Array(a)) if a.is_empty() => return Err(bad_prompt()),
        Some(Value::Array(a)) if a[0].is_number() => (None, ids(a)?),
        Some(Value::Array(a)) if a.len() == 1 => match &a[0] {
            Value::String(s) => (Some(s.clone()), Vec::new()),
            Value::Array(inner) if !inner.is_empty() => (None, ids(inner)?),
            _ => return Err(bad_prompt()),
        },
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "prompt",
                "unsupported_value",
                "Several prompts in one request are not supported by this server yet; send one request per prompt.",
            ))
        }
        Some(_) => return Err(bad_prompt()),
    };
    let suffix = f.string("suffix")?;
    // A model that starts every prompt with BOS (Gemma) gets it before a text prompt.
    if let (Some(_), Some(bos)) = (&text, tok.bos) {
        tokens.push(bos);
    }
    match (&text, suffix) {
        (Some(t), Some(sfx)) => {
            // Fill-in-the-middle with the Coder models' own FIM tokens.
            let fim = |name: &str| {
                tok.added_id(name)
                    .ok_or_else(|| unsupported("suffix", "fill-in-the-middle for this model"))
            };
            tokens.push(fim("<|fim_prefix|>")?);
            tok.encode_into(t, SpecialMode::None, &mut tokens);
            tokens.push(fim("<|fim_suffix|>")?);
            tok.encode_into(sfx, SpecialMode::None, &mut tokens);
            tokens.push(fim("<|fim_middle|>")?);
        }
        (Some(t), None) => tok.encode_into(t, SpecialMode::None, &mut tokens),
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "suffix",
                "invalid_value",
                "'suffix' needs a text prompt.",
            ))
        }
        (None, None) => {}
    }
    Ok((text, tokens))
}
