//! `response_format`: `text`, `json_object` (any JSON object) or `json_schema` (JSON valid against
//! the schema), enforced by the engine's grammar mask. A schema llguidance cannot express is a 400
//! that names what it could not compile, never silently loosened.

use serde_json::{json, Value};
use tandem_engine::{Grammar, LoadedModel};

use crate::error::ApiError;
use crate::params::wrong_type;

const PARAM: &str = "response_format";

fn invalid(param: &str, message: String) -> ApiError {
    ApiError::invalid(param, "invalid_value", message)
}

/// The grammar a `response_format` asks for (`None` for plain text), compiled once here so that
/// what cannot be enforced is refused before the request is queued.
pub fn response_format(lm: &LoadedModel, rf: Option<&Value>) -> Result<Option<Grammar>, ApiError> {
    let Some(rf) = rf else { return Ok(None) };
    let Value::Object(o) = rf else {
        return Err(wrong_type(PARAM, "an object", rf));
    };
    let grammar = match o.get("type").and_then(Value::as_str) {
        Some("text") => return Ok(None),
        Some("json_object") => Grammar::json_schema(json!({"type": "object"})),
        Some("json_schema") => {
            let p = "response_format.json_schema";
            let Some(Value::Object(js)) = o.get("json_schema") else {
                return Err(ApiError::missing(p));
            };
            match js.get("name") {
                Some(Value::String(n))
                    if !n.is_empty()
                        && n.len() <= 64
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {}
                Some(v @ Value::String(_)) => {
                    return Err(invalid(
                        "response_format.json_schema.name",
                        format!("Invalid 'response_format.json_schema.name': {v} must be 1-64 characters of a-z, A-Z, 0-9, _ and -."),
                    ))
                }
                Some(v) => return Err(wrong_type("response_format.json_schema.name", "a string", v)),
                None => {
                    return Err(ApiError::missing("response_format.json_schema.name"))
                }
            }
            if let Some(s) = js.get("strict").filter(|s| !s.is_null() && !s.is_boolean()) {
                return Err(wrong_type("response_format.json_schema.strict", "a boolean", s));
            }
            let schema = match js.get("schema") {
                None | Some(Value::Null) => json!({}),
                Some(s @ Value::Object(_)) => s.clone(),
                Some(v) => return Err(wrong_type("response_format.json_schema.schema", "an object", v)),
            };
            Grammar::json_schema(schema)
        }
        _ => {
            return Err(invalid(
                PARAM,
                "Invalid 'response_format': expected an object with 'type' of 'text', 'json_object' or 'json_schema'."
                    .to_string(),
            ))
        }
    };
    let compiler = lm
        .grammars()
        .map_err(|e| ApiError::internal(format!("the grammar compiler could not start: {e}")))?;
    compiler.matcher(&grammar).map_err(|e| {
        invalid(
            "response_format.json_schema.schema",
            format!("Invalid schema for 'response_format': this server cannot enforce it: {e}"),
        )
    })?;
    Ok(Some(grammar))
}
