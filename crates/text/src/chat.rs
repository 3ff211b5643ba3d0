//! Chat templates: the model's own Jinja template (`tokenizer.chat_template`) rendered with
//! minijinja the way HF transformers renders it with Python jinja2 (trim_blocks, lstrip_blocks, a
//! `tojson` that behaves like `json.dumps(ensure_ascii=False)`), after normalising OpenAI-style
//! messages into what the templates expect.
//!
//! Every string that comes from the request is wrapped in markers carrying a per-render random
//! nonce before rendering; the output is then split into trusted pieces (the template's markup,
//! where `<|im_start|>` becomes a control token) and untrusted pieces (user text, which never does).

use std::hash::{BuildHasher, Hasher};

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value as JValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Result, TextError};

/// One message as OpenAI's Chat Completions API sends it (already validated by the caller).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// A string, an array of content parts, or null.
    #[serde(default)]
    pub content: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: Value::String(content.into()),
            ..Default::default()
        }
    }
}

/// A run of rendered prompt text: `trusted` for the template's own markup, not for request text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptPiece {
    pub text: String,
    pub trusted: bool,
}

pub struct ChatTemplate {
    env: Environment<'static>,
    /// The template's `bos_token` ("" unless the model adds one to every prompt).
    bos: String,
}

/// Gemma's turn format (the instruction-tuned models' template; a base model's GGUF carries none):
/// a leading system message joins the first user turn.
const GEMMA_TEMPLATE: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = \
messages[0]['content'] + '\n\n' %}{% set messages = messages[1:] %}{% else %}{% set first = '' %}{% endif %}\
{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}<start_of_turn>{{ role }}\n\
{% if loop.first %}{{ first }}{% endif %}{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}\
{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

impl ChatTemplate {
    pub fn new(source: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<JValue, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| TextError::Template(format!("cannot parse the model's template: {e}")))?;
        Ok(Self {
            env,
            bos: String::new(),
        })
    }

    /// The template of a GGUF file (`tokenizer.chat_template`; Gemma's turn format for a Gemma
    /// file without one).
    pub fn from_gguf(f: &tandem_gguf::GgufFile) -> Result<Self> {
        let source = match f.get_str("tokenizer.chat_template") {
            Ok(s) => s,
            Err(_) if f.get_str("general.architecture").ok() == Some("gemma3") => GEMMA_TEMPLATE,
            Err(e) => return Err(e.into()),
        };
        Self::new(source)
    }

    /// The same with `bos` as the template's `bos_token`: the model's BOS text where its
    /// tokenizer adds one to every prompt (`Tokenizer::bos`).
    pub fn with_bos(mut self, bos: String) -> Self {
        self.bos = bos;
        self
    }

    /// Renders to plain text (the form the golden tests compare with Python jinja2).
    pub fn render_text(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        Ok(self
            .render(messages, tools, add_generation_prompt)?
            .into_iter()
            .map(|p| p.text)
            .collect())
    }

    /// Renders into trusted and untrusted pieces.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[Value]>,
        add_generation_prompt: bool,
    ) -> Result<Vec<PromptPiece>> {
        let nonce = format!(
            "{:016x}",
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        );
        let open = format!("{OPEN}{nonce}{OPEN}");
        let close = format!("{CLOSE}{nonce}{CLOSE}");
        let wrap = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{open}{s}{close}")
            }
        };

        let msgs: Vec<Value> = normalize(messages)?
            .into_iter()
            .map(|m| wrap_message(m, &wrap))
            .collect();
        let mut ctx = Map::new();
        ctx.insert("messages".into(), Value::Array(msgs));
        if let Some(t) = tools.filter(|t| !t.is_empty()) {
            ctx.insert(
                "tools".into(),
                Value::Array(t.iter().map(|v| wrap_strings(v, &wrap)).collect()),
            );
        }
        ctx.insert("add_generation_prompt".into(), Value::Bool(add_generation_prompt));
        ctx.insert("bos_token".into(), Value::String(self.bos.clone()));
        ctx.insert("eos_token".into(), Value::String("<|im_end|>".into()));
        let tmpl = self.env.get_template("chat").expect("added in new()");
        let text = tmpl
            .render(JValue::from_serialize(Value::Object(ctx)))
            .map_err(|e| TextError::Template(format!("rendering failed: {e}")))?;
        Ok(split_pieces(&text, &open, &close))
    }
}

/// OpenAI messages → what the templates expect: developer → system (a leading run of
/// system/developer messages merged into one), content parts flattened to a string, null content
/// to "", tool-call `arguments` (a JSON string on the wire) parsed into an object.
pub fn normalize(messages: &[ChatMessage]) -> Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    let mut leading_system: Option<String> = None;
    for (i, m) in messages.iter().enumerate() {
        let role = if m.role == "developer" {
            "system"
        } else {
            m.role.as_str()
        };
        let content =
            flatten_content(&m.content).map_err(|e| TextError::Template(format!("messages[{i}].content: {e}")))?;
        if role == "system" && out.is_empty() {
            leading_system = Some(match leading_system {
                Some(prev) => format!("{prev}\n\n{content}"),
                None => content,
            });
            continue;
        }
        if let Some(sys) = leading_system.take() {
            out.push(serde_json::json!({"role": "system", "content": sys}));
        }
        let mut obj = Map::new();
        obj.insert("role".into(), Value::String(role.into()));
        obj.insert("content".into(), Value::String(content));
        if let Some(n) = &m.name {
            obj.insert("name".into(), Value::String(n.clone()));
        }
        if let Some(calls) = &m.tool_calls {
            obj.insert(
                "tool_calls".into(),
                Value::Array(calls.iter().map(parse_arguments).collect()),
            );
        }
        if let Some(id) = &m.tool_call_id {
            obj.insert("tool_call_id".into(), Value::String(id.clone()));
        }
        out.push(Value::Object(obj));
    }
    if let Some(sys) = leading_system {
        out.push(serde_json::json!({"role": "system", "content": sys}));
    }
    Ok(out)
}

fn flatten_content(c: &Value) -> std::result::Result<String, String> {
    match c {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => texts.push(t),
                    (ty, _) => return Err(format!("part {j} of type {ty:?} is not supported (only text parts)")),
                }
            }
            Ok(texts.join("\n"))
        }
        other => Err(format!("expected a string or an array of parts, found {other}")),
    }
}

fn parse_arguments(call: &Value) -> Value {
    let mut call = call.clone();
    if let Some(args) = call.pointer_mut("/function/arguments") {
        if let Value::String(s) = args {
            if let Ok(parsed) = serde_json::from_str::<Value>(s) {
                *args = parsed;
            }
        }
    }
    call
}

/// Wraps every string a message carries from the request; `role` stays as is.
fn wrap_message(m: Value, wrap: &dyn Fn(&str) -> String) -> Value {
    match m {
        Value::Object(obj) => Value::Object(
            obj.into_iter()
                .map(|(k, v)| {
                    if k == "role" {
                        (k, v)
                    } else {
                        (k, wrap_strings(&v, wrap))
                    }
                })
                .collect(),
        ),
        other => other,
    }
}

fn wrap_strings(v: &Value, wrap: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(wrap(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| wrap_strings(x, wrap)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), wrap_strings(x, wrap))).collect()),
        other => other.clone(),
    }
}

/// Splits rendered text at the markers; marker-enclosed text is untrusted.
fn split_pieces(text: &str, open: &str, close: &str) -> Vec<PromptPiece> {
    let mut pieces: Vec<PromptPiece> = Vec::new();
    let mut push = |t: &str, trusted: bool| {
        if t.is_empty() {
            return;
        }
        match pieces.last_mut() {
            Some(last) if last.trusted == trusted => last.text.push_str(t),
            _ => pieces.push(PromptPiece {
                text: t.to_string(),
                trusted,
            }),
        }
    };
    let mut rest = text;
    let mut depth = 0usize;
    loop {
        let o = rest.find(open);
        let c = rest.find(close);
        let (at, is_open) = match (o, c) {
            (Some(o), Some(c)) if o < c => (o, true),
            (Some(o), None) => (o, true),
            (_, Some(c)) => (c, false),
            (None, None) => break,
        };
        push(&rest[..at], depth == 0);
        if is_open {
            depth += 1;
            rest = &rest[at + open.len()..];
        } else {
            depth = depth.saturating_sub(1);
            rest = &rest[at + close.len()..];
        }
    }
    push(rest, depth == 0);
    pieces
}

/// `tojson` as HF transformers defines it for chat templates: `json.dumps(x, ensure_ascii=False,
/// indent=indent)` — keys in their order, `", "` and `": "` separators, no HTML escaping.
fn tojson(value: JValue, kwargs: minijinja::value::Kwargs) -> std::result::Result<JValue, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let v: Value = serde_json::to_value(&value)
        .map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    py_json(&v, indent, 0, &mut out);
    Ok(JValue::from_safe_string(out))
}

/// Python `json.dumps` formatting of a JSON value.
pub fn py_json(v: &Value, indent: Option<usize>, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                py_json(x, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Value::Object(o) if !o.is_empty() => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                out.push_str(&serde_json::to_string(k).expect("string serialises"));
                out.push_str(": ");
                py_json(x, indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).expect("value serialises")),
    }
}

/// Joins pieces into token ids: control tokens are recognised only in trusted pieces, and text
/// runs spanning trusted and untrusted pieces are tokenised as one string (as a whole-prompt
/// tokenisation would, so BPE merges across the boundary match the reference).
pub fn tokenize_pieces(tok: &crate::Tokenizer, pieces: &[PromptPiece]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut plain = String::new();
    for p in pieces {
        if !p.trusted {
            plain.push_str(&p.text);
            continue;
        }
        let mut rest = p.text.as_str();
        while let Some((at, len, id)) = tok.find_special(rest) {
            plain.push_str(&rest[..at]);
            tok.encode_into(&plain, crate::SpecialMode::None, &mut out);
            plain.clear();
            out.push(id);
            rest = &rest[at + len..];
        }
        plain.push_str(rest);
    }
    tok.encode_into(&plain, crate::SpecialMode::None, &mut out);
    out
}
