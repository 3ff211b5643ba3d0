//! Chat messages: `messages` read into the template's `ChatMessage`s, every field checked and each
//! error naming the field's path (`messages[2].content[0].type`).

use serde_json::{Map, Value};
use tandem_text::ChatMessage;

use crate::error::ApiError;
use crate::params::wrong_type;

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// The request's `messages`: a non-empty array of message objects.
pub fn parse(v: Option<&Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let v = v.ok_or_else(|| ApiError::missing("messages"))?;
    let Value::Array(arr) = v else {
        return Err(wrong_type("messages", "an array", v));
    };
    if arr.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "empty_array",
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    }
    arr.iter()
        .enumerate()
        .map(|(i, m)| message(&format!("messages[{i}]"), m))
        .collect()
}

/// One message at path `p`.
fn message(p: &str, m: &Value) -> Result<ChatMessage, ApiError> {
    let Value::Object(o) = m else {
        return Err(wrong_type(p, "an object", m));
    };
    let role = match o.get("role") {
        Some(Value::String(r)) => r.as_str(),
        Some(r) => return Err(wrong_type(&format!("{p}.role"), "a string", r)),
        None => return Err(ApiError::missing(&format!("{p}.role"))),
    };
    if !ROLES.contains(&role) {
        return Err(ApiError::invalid(
            format!("{p}.role"),
            "invalid_value",
            format!("Invalid value: '{role}'. Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'."),
        ));
    }
    let content = o.get("content").cloned().unwrap_or(Value::Null);
    check_content(p, role, &content)?;
    let name = match o.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => return Err(wrong_type(&format!("{p}.name"), "a string", v)),
    };
    let tool_call_id = match (role, o.get("tool_call_id")) {
        ("tool", Some(Value::String(s))) => Some(s.clone()),
        ("tool", _) => return Err(ApiError::missing(&format!("{p}.tool_call_id"))),
        _ => None,
    };
    Ok(ChatMessage {
        role: role.to_string(),
        content,
        name,
        tool_calls: tool_calls(p, role, o)?,
        tool_call_id,
    })
}

/// `content`: a string, text parts, or nothing on an assistant message (one that calls tools).
fn check_content(p: &str, role: &str, content: &Value) -> Result<(), ApiError> {
    match content {
        Value::String(_) => Ok(()),
        Value::Null if role == "assistant" => Ok(()),
        Value::Null => Err(ApiError::missing(&format!("{p}.content"))),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .try_for_each(|(j, part)| check_part(&format!("{p}.content[{j}]"), part)),
        other => Err(wrong_type(
            &format!("{p}.content"),
            "a string or an array of content parts",
            other,
        )),
    }
}

/// One content part at path `pp`: text is read; images, audio and files are refused by name.
fn check_part(pp: &str, part: &Value) -> Result<(), ApiError> {
    let unsupported = |what: &str| ApiError::invalid(pp, "unsupported_content", what.to_string());
    match part.get("type").and_then(Value::as_str) {
        Some("text") if part.get("text").is_some_and(Value::is_string) => Ok(()),
        Some("text") => Err(wrong_type(
            &format!("{pp}.text"),
            "a string",
            part.get("text").unwrap_or(&Value::Null),
        )),
        // Image parts were seen before binding (`seeing`); one left here came by another door.
        Some("image_url") | Some("input_image") => Err(unsupported(
            "Image input needs the vision models: run `tandem pull vision` and serve with vision on.",
        )),
        // Audio parts were transcribed before binding (`hearing`); one left here was not audio.
        Some("input_audio") | Some("file") => Err(unsupported(
            "File input is not supported by this server yet; audio needs the speech model.",
        )),
        Some(t) => Err(ApiError::invalid(
            pp,
            "invalid_value",
            format!("Invalid content part type '{t}'."),
        )),
        None => Err(ApiError::missing(&format!("{pp}.type"))),
    }
}

/// An assistant message's `tool_calls` (kept as given: the template renders them).
fn tool_calls(p: &str, role: &str, o: &Map<String, Value>) -> Result<Option<Vec<Value>>, ApiError> {
    match o.get("tool_calls") {
        None | Some(Value::Null) => Ok(None),
        Some(_) if role != "assistant" => Err(ApiError::invalid(
            format!("{p}.tool_calls"),
            "invalid_value",
            "Only assistant messages can have 'tool_calls'.",
        )),
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        Some(v) => Err(wrong_type(&format!("{p}.tool_calls"), "an array", v)),
    }
}
