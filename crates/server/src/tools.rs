//! Function calling: `tools`, `tool_choice`, `parallel_tool_calls` in; OpenAI's `tool_calls` out.
//!
//! The Qwen2.5 templates show the model the tools and ask for
//! `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>` (both tags are single tokens). A
//! grammar makes that output exact: with `required` or a named function it applies from the first
//! token; with `auto` the model may answer in text, and the grammar takes over the moment it emits
//! `<tool_call>`, so every call names a declared function with arguments valid against its schema.
//! `none` leaves the tools out of the prompt.

use serde_json::{json, Value};
use tandem_engine::{Grammar, LoadedModel};

use crate::error::ApiError;
use crate::params::{wrong_type, Fields};

pub const OPEN: &str = "<tool_call>";
pub const CLOSE: &str = "</tool_call>";

/// How the server holds the model to its tools (`--tool-calls`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum ToolCalls {
    /// Calls made exact by a grammar; under `auto` the model's own call forms are read too.
    #[default]
    Enforced,
    /// The model's own output, `<tool_call>` tags only: no grammar, no other forms (what a server
    /// without either gives; for comparisons).
    Plain,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

/// The tools of a request, validated.
#[derive(Debug, Clone)]
pub struct Tools {
    /// For the chat template, as the client sent them.
    pub defs: Vec<Value>,
    /// (name, parameters schema)
    pub functions: Vec<(String, Value)>,
    pub choice: ToolChoice,
    pub parallel: bool,
}

impl Tools {
    /// The declared functions, for reading calls out of the answer; `lenient`: the model's own
    /// forms count too (`tool_calls`).
    /// `context`: the conversation's user and tool text (what further calls must draw on).
    /// `enforced`: under the grammar (`ToolCalls::Enforced`).
    pub fn declared(&self, enforced: bool, context: &str) -> std::sync::Arc<crate::tool_calls::Declared> {
        let lenient = enforced && self.choice == ToolChoice::Auto;
        std::sync::Arc::new(crate::tool_calls::Declared::new(
            &self.functions,
            lenient,
            enforced,
            context,
        ))
    }

    /// With parallel calls under a grammar: end the answer at the `</tool_call>` of a call that
    /// adds nothing (`tool_calls::Declared::last_call_adds_nothing`); and where the model would
    /// end after calls in its own form (`auto`), go on with `<tool_call>`, which starts the
    /// grammar for one more call (`may_go_on`).
    pub fn end_check(
        &self,
        lm: &LoadedModel,
        declared: &std::sync::Arc<crate::tool_calls::Declared>,
    ) -> Option<tandem_engine::EndCheck> {
        let (open, close) = (lm.tokenizer.added_id(OPEN)?, lm.tokenizer.added_id(CLOSE)?);
        let (d, more) = (declared.clone(), declared.clone());
        (self.parallel && self.choice != ToolChoice::None).then(|| tandem_engine::EndCheck {
            token: close,
            judge: std::sync::Arc::new(move |text: &str| d.last_call_adds_nothing(text)),
            go_on: Some((open, std::sync::Arc::new(move |text: &str| more.may_go_on(text)))),
        })
    }
}

fn invalid(param: &str, message: String) -> ApiError {
    ApiError::invalid(param, "invalid_value", message)
}

/// Reads `tools`, `tool_choice` and `parallel_tool_calls`; `None` when no tools are given.
/// Tool `p`: a function with a valid name and (default: no) parameters.
fn function(p: &str, t: &Value) -> Result<(String, Value), ApiError> {
    if t.get("type").and_then(Value::as_str) != Some("function") {
        return Err(invalid(
            &format!("{p}.type"),
            format!("Invalid value for '{p}.type': only 'function' tools are supported."),
        ));
    }
    let Some(func) = t.get("function").filter(|x| x.is_object()) else {
        return Err(ApiError::missing(&format!("{p}.function")));
    };
    let name = match func.get("name") {
        Some(Value::String(n))
            if !n.is_empty()
                && n.len() <= 64
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            n.clone()
        }
        Some(v) => {
            return Err(invalid(
                &format!("{p}.function.name"),
                format!("Invalid '{p}.function.name': {v} must be 1-64 characters of a-z, A-Z, 0-9, _ and -."),
            ))
        }
        None => {
            return Err(ApiError::invalid(
                format!("{p}.function.name"),
                "missing_required_parameter",
                format!("Missing required parameter: '{p}.function.name'."),
            ))
        }
    };
    let params = match func.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(s @ Value::Object(_)) => s.clone(),
        Some(v) => return Err(wrong_type(&format!("{p}.function.parameters"), "an object", v)),
    };
    Ok((name, params))
}

/// `tool_choice` (default: `auto` with tools, `none` without).
fn tool_choice(v: Option<&Value>, no_functions: bool) -> Result<ToolChoice, ApiError> {
    Ok(match v {
        None => {
            if no_functions {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            }
        }
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            _ => {
                return Err(invalid(
                    "tool_choice",
                    format!("Invalid value for 'tool_choice': '{s}'. Supported values are: 'none', 'auto' and 'required', or a named function."),
                ))
            }
        },
        Some(o @ Value::Object(_)) => match o.pointer("/function/name").and_then(Value::as_str) {
            Some(n) if o.get("type").and_then(Value::as_str) == Some("function") => ToolChoice::Named(n.to_string()),
            _ => {
                return Err(invalid(
                    "tool_choice",
                    "Invalid 'tool_choice': expected {\"type\": \"function\", \"function\": {\"name\": …}}.".into(),
                ))
            }
        },
        Some(v) => return Err(wrong_type("tool_choice", "a string or an object", v)),
    })
}

pub fn parse(f: &Fields) -> Result<Option<Tools>, ApiError> {
    let defs = match f.get("tools") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(v) => return Err(wrong_type("tools", "an array", v)),
    };
    let mut functions = Vec::new();
    for (i, t) in defs.iter().enumerate() {
        let p = format!("tools[{i}]");
        let (name, params) = function(&p, t)?;
        if functions.iter().any(|(n, _)| n == &name) {
            return Err(invalid(
                &format!("{p}.function.name"),
                format!("Duplicate function name '{name}'."),
            ));
        }
        functions.push((name, params));
    }
    let choice = tool_choice(f.get("tool_choice"), functions.is_empty())?;
    if choice != ToolChoice::None && functions.is_empty() {
        return Err(invalid(
            "tool_choice",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.".into(),
        ));
    }
    if let ToolChoice::Named(n) = &choice {
        if !functions.iter().any(|(f, _)| f == n) {
            return Err(invalid(
                "tool_choice",
                format!("Invalid 'tool_choice': no function named '{n}' in 'tools'."),
            ));
        }
    }
    let parallel = f.bool("parallel_tool_calls")?.unwrap_or(true);
    if functions.is_empty() {
        return Ok(None);
    }
    Ok(Some(Tools {
        defs,
        functions,
        choice,
        parallel,
    }))
}

impl Tools {
    /// The grammar of the calls and the token that starts them: `Some(trigger)` means the grammar
    /// applies only once the model emits that token (`auto`). `None` for `tool_choice: none`.
    pub fn grammar(&self, lm: &LoadedModel) -> Result<Option<(Grammar, Option<u32>)>, ApiError> {
        let (open, close) = match (lm.tokenizer.added_id(OPEN), lm.tokenizer.added_id(CLOSE)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(ApiError::bad_request(
                    "This model's vocabulary has no <tool_call> tokens.",
                ))
            }
        };
        let allowed: Vec<&(String, Value)> = match &self.choice {
            ToolChoice::None => return Ok(None),
            ToolChoice::Named(n) => self.functions.iter().filter(|(f, _)| f == n).collect(),
            _ => self.functions.iter().collect(),
        };
        let alternatives: Vec<Value> = allowed
            .iter()
            .map(|(name, params)| {
                json!({"type": "object", "properties": {"name": {"const": name}, "arguments": params},
                       "required": ["name", "arguments"], "additionalProperties": false})
            })
            .collect();
        let schema = json!({"anyOf": alternatives,
            "x-guidance": {"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}});
        // After a call the tiers write "\n" and then want to end, even when the question asked
        // for more calls (the mini gives <tool_call> there less than e^-11). With parallel calls,
        // "\n" leads to another call, and the list ends at the first call that adds nothing
        // (`end_check`); with one call, "\n" may end the answer.
        let more = self.parallel && !matches!(self.choice, ToolChoice::Named(_));
        let rest = if more {
            format!(" (\"\\n\" <[{open}]> body)*")
        } else {
            " \"\\n\"?".to_string()
        };
        let (start, trigger) = match self.choice {
            ToolChoice::Auto => (format!("start: body{rest}"), Some(open)),
            _ => (format!("start: <[{open}]> body{rest}"), None),
        };
        let src = format!("{start}\nbody: \"\\n\" obj \"\\n\" <[{close}]>\nobj: %json {schema}\n");
        let g = Grammar::lark(src);
        let compiler = lm
            .grammars()
            .map_err(|e| ApiError::internal(format!("the grammar compiler could not start: {e}")))?;
        compiler.matcher(&g).map_err(|e| {
            invalid(
                "tools",
                format!("Invalid 'tools': a parameters schema cannot be enforced: {e}"),
            )
        })?;
        Ok(Some((g, trigger)))
    }
}

/// One parsed call: (name, arguments as a JSON string).
pub type Call = (String, String);
