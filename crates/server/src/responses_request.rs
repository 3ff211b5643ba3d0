//! A Responses request translated into the chat request the pipeline runs: `instructions`, the
//! stored conversation of `previous_response_id` and the `input` items become chat messages
//! (`input_image` parts become chat `image_url` parts the seeing stage reads, naming their own
//! paths in errors); function tools, `tool_choice` and `text.format` become their chat
//! equivalents. Hosted tools and other inputs are 400s naming the field.

use serde_json::{json, Map, Value};
use tandem_store::ResponseRecord;

use crate::error::ApiError;
use crate::params::{wrong_type, Fields};
use crate::state::new_id;

/// Hosted tools OpenAI runs on its side, which this server cannot.
const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "file_search",
    "computer_use_preview",
    "computer_use",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "custom",
];

fn unsupported(param: &str, what: &str) -> ApiError {
    ApiError::invalid(
        param,
        "unsupported_parameter",
        format!("Unsupported parameter: '{param}': {what} is not supported by this server yet."),
    )
}

/// A request translated for the pipeline: the chat body, and what the response object echoes.
#[derive(Clone)]
pub(crate) struct Translated {
    pub(crate) chat: Value,
    /// The chat messages of this turn (after the stored conversation), without the instructions.
    pub(crate) turn: Vec<Value>,
    /// The conversation before this turn (from `previous_response_id`).
    pub(crate) history: Vec<Value>,
    pub(crate) input_items: Vec<Value>,
}

/// The chat request this Responses request asks for.
pub(crate) fn translate(f: &Fields, previous: Option<&ResponseRecord>) -> Result<Translated, ApiError> {
    let history: Vec<Value> = match previous {
        Some(p) => {
            serde_json::from_str(&p.messages).map_err(|e| ApiError::internal(format!("stored response: {e}")))?
        }
        None => Vec::new(),
    };
    let (turn, input_items) = input(f.get("input"))?;
    let mut messages = Vec::new();
    if let Some(i) = f.string("instructions")? {
        messages.push(json!({"role": "system", "content": i}));
    }
    messages.extend(history.iter().cloned());
    messages.extend(turn.iter().cloned());
    let mut chat = Map::new();
    chat.insert("model".into(), f.get("model").cloned().unwrap_or(Value::Null));
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(t) = tools(f.get("tools"))? {
        chat.insert("tools".into(), t);
    }
    if let Some(c) = f.get("tool_choice") {
        chat.insert("tool_choice".into(), tool_choice(c)?);
    }
    if let Some(rf) = text_format(f.get("text"))? {
        chat.insert("response_format".into(), rf);
    }
    for (from, to) in [
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("user", "user"),
        ("seed", "seed"),
        ("service_tier", "service_tier"),
        ("top_k", "top_k"),
        ("min_p", "min_p"),
        ("repetition_penalty", "repetition_penalty"),
    ] {
        if let Some(x) = f.get(from).filter(|x| !x.is_null()) {
            chat.insert(to.into(), x.clone());
        }
    }
    Ok(Translated {
        chat: Value::Object(chat),
        turn,
        history,
        input_items,
    })
}

/// `input`: a string (one user message) or items. Returns the chat messages and the items as
/// stored (each with an id).
fn input(v: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let items = match v {
        None | Some(Value::Null) => return Err(ApiError::missing("input")),
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(a)) => a.clone(),
        Some(v) => return Err(wrong_type("input", "a string or an array of items", v)),
    };
    let mut messages: Vec<Value> = Vec::new();
    let mut stored = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("input[{i}]");
        let Value::Object(o) = item else {
            return Err(wrong_type(&p, "an object", item));
        };
        let kind = o.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" => messages.push(message(&p, o)?),
            "function_call" => function_call(&p, o, &mut messages)?,
            "function_call_output" => messages.push(function_call_output(&p, o)?),
            // Reasoning items carry nothing these models read.
            "reasoning" => continue,
            other => {
                return Err(ApiError::invalid(
                    format!("{p}.type"),
                    "invalid_value",
                    format!("Input items of type '{other}' are not supported by this server."),
                ))
            }
        }
        let mut kept = o.clone();
        if !kept.contains_key("id") {
            let prefix = match kind {
                "message" => "msg_",
                "function_call" => "fc_",
                _ => "fco_",
            };
            kept.insert("id".into(), json!(new_id(prefix)));
        }
        kept.insert("type".into(), json!(kind));
        stored.push(Value::Object(kept));
    }
    Ok((messages, stored))
}

/// A message item: its text parts joined (`input_text`, or `output_text` in replayed history).
fn message(p: &str, o: &Map<String, Value>) -> Result<Value, ApiError> {
    let role = o.get("role").and_then(Value::as_str).unwrap_or("");
    if !["user", "assistant", "system", "developer"].contains(&role) {
        return Err(ApiError::invalid(
            format!("{p}.role"),
            "invalid_value",
            format!("Invalid value for '{p}.role': '{role}'. Supported values are: 'user', 'assistant', 'system' and 'developer'."),
        ));
    }
    let text = match o.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            return Ok(json!({"role": role, "content": parts_content(&format!("{p}.content"), parts)?}))
        }
        Some(v) => return Err(wrong_type(&format!("{p}.content"), "a string or an array of parts", v)),
        None => return Err(ApiError::missing(&format!("{p}.content"))),
    };
    Ok(json!({"role": role, "content": text}))
}

/// A message's parts as chat content: the text joined when there is only text, else chat parts
/// in order — each `input_image` (`image_url` or `file_id`, `detail`) as an `image_url` part the
/// pipeline's seeing stage reads.
fn parts_content(p: &str, parts: &[Value]) -> Result<Value, ApiError> {
    if !parts
        .iter()
        .any(|x| x.get("type").and_then(Value::as_str) == Some("input_image"))
    {
        return Ok(Value::String(parts_text(p, parts)?));
    }
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{p}[{j}]");
        if part.get("type").and_then(Value::as_str) != Some("input_image") {
            if let Some(t) = part_text(&pp, part)? {
                out.push(json!({"type": "text", "text": t}));
            }
            continue;
        }
        let mut img = Map::new();
        match (part.get("image_url"), part.get("file_id")) {
            (Some(Value::String(u)), _) => img.insert("url".into(), json!(u)),
            (_, Some(Value::String(id))) => img.insert("file_id".into(), json!(id)),
            _ => return Err(ApiError::missing(&format!("{pp}.image_url"))),
        };
        if let Some(d) = part.get("detail") {
            img.insert("detail".into(), d.clone());
        }
        // `_param`: the seeing stage names this path, not the chat message's, in its errors.
        out.push(json!({"type": "image_url", "image_url": img, "_param": pp}));
    }
    Ok(Value::Array(out))
}

fn parts_text(p: &str, parts: &[Value]) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        if let Some(t) = part_text(&format!("{p}[{j}]"), part)? {
            text.push_str(&t);
        }
    }
    Ok(text)
}

/// A text part's text (`None` for a refusal); any other part is an error naming it.
fn part_text(pp: &str, part: &Value) -> Result<Option<String>, ApiError> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text") | Some("output_text") => match part.get("text") {
            Some(Value::String(t)) => Ok(Some(t.clone())),
            v => Err(wrong_type(&format!("{pp}.text"), "a string", v.unwrap_or(&Value::Null))),
        },
        Some("refusal") => Ok(None),
        Some("input_image") => Err(unsupported(pp, "image input here")),
        Some("input_file") => Err(unsupported(pp, "file input")),
        Some("input_audio") => Err(unsupported(pp, "audio input")),
        other => Err(ApiError::invalid(
            format!("{pp}.type"),
            "invalid_value",
            format!("Invalid content part type {other:?}."),
        )),
    }
}

fn string_field<'a>(p: &str, o: &'a Map<String, Value>, k: &str) -> Result<&'a str, ApiError> {
    o.get(k).and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid(
            format!("{p}.{k}"),
            "missing_required_parameter",
            format!("Missing required parameter: '{p}.{k}' (a string)."),
        )
    })
}

/// A replayed function call: a tool call of an assistant message (consecutive calls share one).
fn function_call(p: &str, o: &Map<String, Value>, messages: &mut Vec<Value>) -> Result<(), ApiError> {
    let call = json!({"id": string_field(p, o, "call_id")?, "type": "function",
                      "function": {"name": string_field(p, o, "name")?, "arguments": string_field(p, o, "arguments")?}});
    match messages.last_mut() {
        Some(m) if m["role"] == "assistant" && m["tool_calls"].is_array() => {
            m["tool_calls"].as_array_mut().expect("checked").push(call);
        }
        _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
    }
    Ok(())
}

/// A function's result: a `tool` message answering its call.
fn function_call_output(p: &str, o: &Map<String, Value>) -> Result<Value, ApiError> {
    let output = match o.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts_text(&format!("{p}.output"), parts)?,
        v => {
            return Err(wrong_type(
                &format!("{p}.output"),
                "a string",
                v.unwrap_or(&Value::Null),
            ))
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": string_field(p, o, "call_id")?, "content": output}))
}

/// Function tools (flat, as the Responses API writes them) as chat tools; a hosted tool is a 400.
fn tools(v: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Array(a) = v else {
        return Err(wrong_type("tools", "an array", v));
    };
    let mut out = Vec::new();
    for (i, t) in a.iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                let mut function = Map::new();
                for k in ["name", "description", "parameters", "strict"] {
                    if let Some(x) = t.get(k).filter(|x| !x.is_null()) {
                        function.insert(k.into(), x.clone());
                    }
                }
                out.push(json!({"type": "function", "function": function}));
            }
            Some(h) if HOSTED_TOOLS.iter().any(|x| h.starts_with(x)) => {
                return Err(unsupported(
                    &format!("tools[{i}].type"),
                    &format!("the hosted tool '{h}'"),
                ))
            }
            other => {
                return Err(ApiError::invalid(
                    format!("tools[{i}].type"),
                    "invalid_value",
                    format!("Invalid tool type {other:?}: only 'function' tools run here."),
                ))
            }
        }
    }
    Ok(Some(Value::Array(out)))
}

/// `tool_choice`: the modes as they are, `{type: function, name}` as chat's named choice.
fn tool_choice(v: &Value) -> Result<Value, ApiError> {
    match v {
        Value::String(_) => Ok(v.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = string_field("tool_choice", o, "name")?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(ApiError::invalid(
            "tool_choice",
            "invalid_value",
            "Invalid 'tool_choice': 'none', 'auto', 'required' or {\"type\": \"function\", \"name\": …}.",
        )),
    }
}

/// `text.format` as chat's `response_format` (`verbosity` is accepted and changes nothing).
fn text_format(v: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = v.and_then(|t| t.get("format")).filter(|x| !x.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(x) = format.get(k).filter(|x| !x.is_null()) {
                    schema.insert(k.into(), x.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        other => Err(ApiError::invalid(
            "text.format.type",
            "invalid_value",
            format!("Invalid 'text.format.type' {other:?}: 'text', 'json_object' or 'json_schema'."),
        )),
    }
}
