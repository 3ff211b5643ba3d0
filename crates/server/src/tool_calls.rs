//! Reading calls out of a generated answer, whole or as it streams.
//!
//! Under `tool_choice: auto` the grammar applies only once the model writes `<tool_call>`, but the
//! tiers often call in forms of their own: a bare `{"name": …, "arguments": {…}}` object, several
//! of them, a JSON array of them, or the same inside a ```json fence. Such an answer becomes
//! `tool_calls` only when the whole answer is calls in those forms and every call names a
//! declared function with arguments valid against its schema; anything else (a JSON answer about
//! a cat named "Buddy", code, prose around a JSON block) stays text, byte for byte.
//!
//! While streaming, text is held back only while the answer so far can still become calls: a
//! fence that opens as ```python, a first key other than `name`/`arguments`/`parameters`, or a
//! `name` no declared function starts with releases it at once.

use std::sync::Arc;

use serde_json::Value;

use crate::tools::{Call, CLOSE, OPEN};

/// The declared functions a call may name, with their argument validators.
pub struct Declared {
    functions: Vec<(String, Option<jsonschema::Validator>)>,
    /// Read the model's own forms too (else only `<tool_call>` tags).
    lenient: bool,
    /// The conversation's user and tool text, lower-cased: what a further call must draw on.
    context: String,
    /// A grammar leads on to further calls: lists end at the first call that adds nothing.
    bounded: bool,
}

impl Declared {
    /// `functions`: (name, parameters schema). A schema the validator cannot compile (the grammar
    /// compiler accepted it) leaves that function's arguments unchecked beyond being an object.
    /// `lenient`: read the model's own forms; `bounded`: lists of calls end at the first that adds
    /// nothing (a grammar leads on to more calls); `context`: the user's and tools' text.
    pub fn new(functions: &[(String, Value)], lenient: bool, bounded: bool, context: &str) -> Self {
        let functions = functions
            .iter()
            .map(|(n, s)| (n.clone(), jsonschema::validator_for(s).ok()))
            .collect();
        Self {
            functions,
            lenient,
            context: context.to_lowercase(),
            bounded,
        }
    }

    /// The declared functions' names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|(n, _)| n.as_str())
    }

    /// Whether the last of the answer's tagged calls adds nothing (`adds_nothing`): then the list
    /// of parallel calls is complete and generation may end (the engine's `EndCheck`).
    pub fn last_call_adds_nothing(&self, text: &str) -> bool {
        let calls = self.calls_so_far(text).unwrap_or_default();
        match calls.split_last() {
            Some((last, earlier)) if !earlier.is_empty() => self.adds_nothing(earlier, last),
            _ => false,
        }
    }

    /// A call after the first adds nothing when it repeats an earlier one, or when none of its
    /// argument values (strings of two or more characters, numbers as written) both occurs in the
    /// user's or the tools' text and was not already a value of an earlier call. Held to calls by
    /// a grammar, the tiers go on after the calls they were asked for with invented ones
    /// (`add(3, 4)`, `add(0, 5)`…), the same call in another unit, or the question's values
    /// passed to every other function declared. A call without values adds something only under
    /// a new name.
    fn adds_nothing(&self, earlier: &[Call], call: &Call) -> bool {
        if earlier.contains(call) {
            return true;
        }
        let values = |c: &Call| {
            let mut out = Vec::new();
            if let Ok(args) = serde_json::from_str::<Value>(&c.1) {
                leaves(&args, &mut out);
            }
            out
        };
        let mine = values(call);
        let same_name = earlier.iter().any(|(n, _)| n == &call.0);
        if mine.is_empty() {
            return same_name;
        }
        let grounded: Vec<&String> = mine.iter().filter(|v| occurs(&self.context, v)).collect();
        if grounded.is_empty() {
            return true;
        }
        let used: Vec<String> = earlier.iter().flat_map(values).collect();
        grounded.iter().all(|v| used.contains(v))
    }

    /// The whole answer at once: (content, calls).
    #[cfg(test)]
    fn parse(self: &Arc<Self>, text: &str) -> (String, Vec<Call>) {
        let (content, calls, _) = self.read(text, "stop");
        (content, calls)
    }

    /// The whole answer at once, ended for the engine's `reason`: (content, calls, the finish
    /// reason to report; `CallReader::finish_reason`).
    pub fn read(self: &Arc<Self>, text: &str, reason: &'static str) -> (String, Vec<Call>, &'static str) {
        let mut r = CallReader::new(self.clone());
        let mut content = r.push(text);
        let (rest, calls) = r.finish();
        content.push_str(&rest);
        let reason = r.finish_reason(reason, &calls);
        if calls.is_empty() {
            return (content, calls, reason);
        }
        (content.trim_end().to_string(), calls, reason)
    }

    /// `v` as a call: `{"name": declared, "arguments" | "parameters": object or JSON string of
    /// one}` and nothing else, the arguments valid against the schema.
    fn call(&self, v: &Value) -> Option<Call> {
        let o = v.as_object()?;
        if o.keys()
            .any(|k| !matches!(k.as_str(), "name" | "arguments" | "parameters"))
        {
            return None;
        }
        let name = o.get("name")?.as_str()?;
        let (_, validator) = self.functions.iter().find(|(n, _)| n == name)?;
        let args = match (o.get("arguments"), o.get("parameters")) {
            (Some(a), None) | (None, Some(a)) => a.clone(),
            (None, None) => Value::Object(Default::default()),
            (Some(_), Some(_)) => return None,
        };
        let args = match args {
            Value::String(s) => serde_json::from_str::<Value>(&s).ok()?,
            a => a,
        };
        if !args.is_object() || validator.as_ref().is_some_and(|val| !val.is_valid(&args)) {
            return None;
        }
        Some((name.to_string(), args.to_string()))
    }

    /// Whether a partial call object (`{"na`, `{"name": "get_w`) can still name a declared
    /// function.
    fn may_start_call(&self, partial: &str) -> bool {
        let s = partial.trim_start();
        let s = s.strip_prefix('[').map_or(s, str::trim_start);
        let Some(s) = s.strip_prefix('{') else {
            return s.is_empty();
        };
        let s = s.trim_start();
        let Some(s) = s.strip_prefix('"') else {
            return s.is_empty();
        };
        let keys = ["name", "arguments", "parameters"];
        let Some(end) = s.find('"') else {
            return keys.iter().any(|k| k.starts_with(s));
        };
        let key = &s[..end];
        if !keys.contains(&key) {
            return false;
        }
        if key != "name" {
            return true;
        }
        let s = s[end + 1..].trim_start();
        let Some(s) = s.strip_prefix(':') else {
            return s.is_empty();
        };
        let s = s.trim_start();
        let Some(s) = s.strip_prefix('"') else {
            return s.is_empty();
        };
        match s.find('"') {
            Some(e) => self.functions.iter().any(|(n, _)| n == &s[..e]),
            None => self.functions.iter().any(|(n, _)| n.starts_with(s)),
        }
    }

    fn is_call_value(&self, v: &Value) -> bool {
        let named = |x: &Value| {
            x.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| self.functions.iter().any(|(f, _)| f == n))
        };
        match v {
            Value::Array(a) => !a.is_empty() && a.iter().all(named),
            o => named(o),
        }
    }

    /// Reads `text` (an answer from its start) as the model's own call forms.
    fn scan(&self, text: &str) -> Scan {
        let mut values = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            if rest.starts_with(OPEN) && !values.is_empty() {
                // The model's own form, then tags (the calls went on after `go_on`); own forms
                // that are not valid calls are text before the tags.
                return match self.calls(&values) {
                    Some(_) => Scan::Calls(values, Some(text.len() - rest.len())),
                    None => Scan::Not,
                };
            }
            let fenced = match fence_open(rest) {
                Fence::Partial => return Scan::Open,
                Fence::Other => return Scan::Not,
                Fence::Body(body) => Some(body),
                Fence::None => None,
            };
            let mut inner = fenced.unwrap_or(rest);
            loop {
                match self.value(inner) {
                    Value_::Complete(v, after) => {
                        values.push(v);
                        inner = after.trim_start();
                        if fenced.is_none() || !inner.starts_with(['{', '[']) {
                            break;
                        }
                    }
                    Value_::Open => return Scan::Open,
                    Value_::Not => return Scan::Not,
                }
            }
            rest = match fenced {
                None => inner,
                Some(_) => match inner.strip_prefix("```") {
                    Some(after) => after.trim_start(),
                    None if "```".starts_with(inner) => return Scan::Open,
                    None => return Scan::Not,
                },
            };
        }
        if values.is_empty() {
            Scan::Open
        } else {
            Scan::Calls(values, None)
        }
    }

    /// Every call of the answer so far, validated: the model's own forms and any tags after them,
    /// or the tags from the first on; `None` when the own forms are not valid calls.
    fn calls_so_far(&self, text: &str) -> Option<Vec<Call>> {
        if self.lenient {
            if let Scan::Calls(values, tail) = self.scan(text) {
                let mut calls = self.calls(&values)?;
                calls.extend(tail.map(|t| tagged(&text[t..])).unwrap_or_default());
                return Some(calls);
            }
        }
        Some(text.find(OPEN).map(|at| tagged(&text[at..])).unwrap_or_default())
    }

    /// Whether an answer that is about to end may go on with another call: it is, so far, valid
    /// calls in the model's own form only (the tiers end after one such call even when asked for
    /// several; the call that follows is kept only if it adds something).
    pub fn may_go_on(&self, text: &str) -> bool {
        self.lenient && matches!(self.scan(text), Scan::Calls(ref v, None) if self.calls(v).is_some())
    }

    /// One JSON value at the start of `s` that may be (a list of) calls.
    fn value<'a>(&self, s: &'a str) -> Value_<'a> {
        if !s.starts_with(['{', '[']) {
            return if s.is_empty() { Value_::Open } else { Value_::Not };
        }
        let mut it = serde_json::Deserializer::from_str(s).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) if self.is_call_value(&v) => Value_::Complete(v, &s[it.byte_offset()..]),
            Some(Err(e)) if e.is_eof() && self.may_start_call(s) => Value_::Open,
            _ => Value_::Not,
        }
    }

    /// The calls up to the first that adds nothing (`adds_nothing`).
    fn without_invented(&self, calls: Vec<Call>) -> Vec<Call> {
        if !self.bounded {
            return calls;
        }
        let mut kept: Vec<Call> = Vec::new();
        for c in calls {
            if !kept.is_empty() && self.adds_nothing(&kept, &c) {
                break;
            }
            kept.push(c);
        }
        kept
    }

    /// The scanned values as calls, each validated; `None` when any is not a valid call.
    fn calls(&self, values: &[Value]) -> Option<Vec<Call>> {
        let mut calls = Vec::new();
        for v in values {
            match v {
                Value::Array(a) => {
                    for x in a {
                        calls.push(self.call(x)?);
                    }
                }
                o => calls.push(self.call(o)?),
            }
        }
        Some(calls)
    }
}

enum Scan {
    /// Complete values that name declared functions (validated only at the end), and where tags
    /// follow them, if they do.
    Calls(Vec<Value>, Option<usize>),
    /// Still undecided.
    Open,
    /// Not calls.
    Not,
}

#[allow(non_camel_case_types)]
enum Value_<'a> {
    Complete(Value, &'a str),
    Open,
    Not,
}

enum Fence<'a> {
    /// No fence here.
    None,
    /// The fence line so far could still be ```json.
    Partial,
    /// A fence of another language.
    Other,
    /// The text after a ```json (or bare ```) line.
    Body(&'a str),
}

fn fence_open(s: &str) -> Fence<'_> {
    if !s.starts_with('`') {
        return Fence::None;
    }
    let Some(after) = s.strip_prefix("```") else {
        return if "```".starts_with(s) {
            Fence::Partial
        } else {
            Fence::Other
        };
    };
    let (lang, body) = match after.find('\n') {
        Some(e) => (&after[..e], Some(&after[e + 1..])),
        None => (after, None),
    };
    let lang = lang.trim_end().to_ascii_lowercase();
    match body {
        None if "json".starts_with(&lang) => Fence::Partial,
        Some(b) if lang.is_empty() || lang == "json" => Fence::Body(b),
        _ => Fence::Other,
    }
}

#[derive(Debug, PartialEq)]
enum State {
    /// At the start: held while the answer may be calls in the model's own forms.
    Opening,
    /// Text, until a `<tool_call>` tag.
    Text,
    /// From a `<tool_call>` tag on: held to the end.
    Tagged,
}

/// One answer's text as it streams: what may be shown now, and the calls at the end.
pub struct CallReader {
    declared: Arc<Declared>,
    state: State,
    held: String,
    /// The answer went on after calls in the model's own form (`Declared::may_go_on`).
    went_on: bool,
    /// The last scan found an open value (`push`).
    open: bool,
}

impl CallReader {
    pub fn new(declared: Arc<Declared>) -> Self {
        let state = if declared.lenient { State::Opening } else { State::Text };
        Self {
            declared,
            state,
            held: String::new(),
            went_on: false,
            open: false,
        }
    }

    /// Takes the next piece of the answer; returns the text that may be shown now.
    pub fn push(&mut self, text: &str) -> String {
        match self.state {
            State::Opening => {
                self.held.push_str(text);
                // Past the first 256 bytes (a key and a function name are decided by then),
                // only a closing `}`, `]`, fence or tag can change an open value's fate: skip
                // the re-scan otherwise, so a long held answer costs linear time.
                let closes = text.contains(['}', ']', '`', '<']);
                if self.open && self.held.len() > 256 && !closes {
                    return String::new();
                }
                let scan = self.declared.scan(&self.held);
                self.open = matches!(scan, Scan::Open);
                match scan {
                    Scan::Open | Scan::Calls(..) => String::new(),
                    Scan::Not => {
                        self.state = State::Text;
                        let held = std::mem::take(&mut self.held);
                        self.push(&held)
                    }
                }
            }
            State::Text => match text.find(OPEN) {
                Some(at) => {
                    self.state = State::Tagged;
                    self.held = text[at..].to_string();
                    text[..at].to_string()
                }
                None => text.to_string(),
            },
            State::Tagged => {
                self.held.push_str(text);
                String::new()
            }
        }
    }

    /// The finish reason to report for the engine's `reason`: `tool_calls` when calls end the
    /// answer; also when max_tokens cut only the call the server asked for after the model's own
    /// (the model had ended its answer).
    pub fn finish_reason(&self, reason: &'static str, calls: &[Call]) -> &'static str {
        match reason {
            "stop" if !calls.is_empty() => "tool_calls",
            "length" if !calls.is_empty() && self.went_on => "tool_calls",
            r => r,
        }
    }

    /// At the end: the held text that turned out not to be calls, and the calls.
    pub fn finish(&mut self) -> (String, Vec<Call>) {
        let held = std::mem::take(&mut self.held);
        let calls = match self.state {
            State::Text => return (held, Vec::new()),
            State::Tagged => Some(self.declared.without_invented(tagged(&held))).filter(|c| !c.is_empty()),
            State::Opening => match self.declared.scan(&held) {
                Scan::Calls(_, tail) => {
                    self.went_on = tail.is_some();
                    self.declared
                        .calls_so_far(&held)
                        .map(|c| self.declared.without_invented(c))
                }
                _ => None,
            },
        };
        match calls {
            Some(calls) => (String::new(), calls),
            None => (held, Vec::new()),
        }
    }
}

/// The values of a call's arguments that can show where it came from: strings of two or more
/// characters (lower-cased) and numbers as written.
fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.chars().count() >= 2 => out.push(s.to_lowercase()),
        Value::Number(n) => out.push(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
        Value::Object(o) => o.values().for_each(|x| leaves(x, out)),
        _ => {}
    }
}

/// Whether `value` occurs in `text`; a number only where no digit is beside it (5 is not in 25).
fn occurs(text: &str, value: &str) -> bool {
    let numeric = value.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-');
    if !numeric {
        return text.contains(value);
    }
    text.match_indices(value).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + value.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// The calls of `<tool_call>` tags from the first tag on (the grammar made each one valid);
/// empty when the text does not parse as calls (a reply cut short by max_tokens).
fn tagged(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(s) = rest.find(OPEN) {
        let after = &rest[s + OPEN.len()..];
        let Some(e) = after.find(CLOSE) else { break };
        let body: Option<Value> = serde_json::from_str(after[..e].trim()).ok();
        match body
            .as_ref()
            .and_then(|b| Some((b.get("name")?.as_str()?, b.get("arguments")?)))
        {
            Some((name, args)) => calls.push((name.to_string(), args.to_string())),
            None => return Vec::new(),
        }
        rest = &after[e + CLOSE.len()..];
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared(lenient: bool) -> Arc<Declared> {
        let weather = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        let add = json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                         "required": ["a", "b"], "additionalProperties": false});
        let context = "What is the weather in Lyon? And in Paris? Add 2 and 3.";
        Arc::new(Declared::new(
            &[("get_weather".into(), weather), ("add".into(), add)],
            lenient,
            true,
            context,
        ))
    }

    fn lyon() -> Call {
        ("get_weather".into(), "{\"city\":\"Lyon\"}".into())
    }

    #[test]
    fn the_tiers_own_forms_become_calls() {
        let d = declared(true);
        let fenced =
            "```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\n    \"city\": \"Lyon\"\n  }\n}\n```";
        assert_eq!(d.parse(fenced), (String::new(), vec![lyon()]));
        let bare = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}";
        assert_eq!(d.parse(bare), (String::new(), vec![lyon()]));
        let two = format!("{bare}\n{{\"name\": \"add\", \"parameters\": \"{{\\\"a\\\": 2, \\\"b\\\": 3}}\"}}");
        let (c, calls) = d.parse(&two);
        assert_eq!((c.as_str(), calls.len()), ("", 2));
        assert_eq!(calls[1], ("add".into(), "{\"a\":2,\"b\":3}".into()));
        let paris = bare.replace("Lyon", "Paris");
        let sum = "{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}";
        let array = format!("```json\n[{bare}, {paris}]\n```\n```json\n{sum}\n```");
        assert_eq!(d.parse(&array).1.len(), 3);
        // The model's own form, then tags (after `go_on`); a repeat ends the list.
        let mixed = format!("```json\n{bare}\n```{OPEN}\n{paris}\n{CLOSE}\n{OPEN}\n{bare}\n{CLOSE}");
        assert_eq!(
            d.parse(&mixed).1,
            vec![lyon(), ("get_weather".into(), "{\"city\":\"Paris\"}".into())]
        );
        assert!(d.may_go_on(&format!("```json\n{bare}\n```")) && d.may_go_on(bare));
        assert!(!d.may_go_on(&mixed) && !d.may_go_on("```json\n{\"name\": \"Buddy\"}\n```"));
        // An own form that is not a valid call, then a tag: the own form is text.
        let bad = "{\"name\": \"add\", \"arguments\": {\"a\": 2}}";
        let then_tag = format!("{bad}\n{OPEN}\n{sum}\n{CLOSE}");
        assert_eq!(
            d.parse(&then_tag),
            (bad.to_string(), vec![("add".into(), "{\"a\":2,\"b\":3}".into())])
        );
        // Without the grammar nothing is dropped.
        let plain = Arc::new(Declared::new(&[("get_weather".into(), json!({}))], false, false, ""));
        assert_eq!(
            plain
                .parse(&format!("{OPEN}\n{bare}\n{CLOSE}\n{OPEN}\n{bare}\n{CLOSE}"))
                .1
                .len(),
            2
        );
        // A long open value is held without re-scanning each piece, and still decided at its end.
        let long = format!("{{\"arguments\": \"{}\"}}", "word ".repeat(400));
        assert_eq!(
            stream(&d, &long),
            (long.clone(), String::new(), vec![]),
            "released at its end"
        );
        // max_tokens cut only the call the server asked for: the model's own call stands.
        let cut = format!("```json\n{bare}\n```{OPEN}\n{{\"name\": \"get_we");
        assert_eq!(d.read(&cut, "length"), (String::new(), vec![lyon()], "tool_calls"));
        let cut_tags = format!("{OPEN}\n{bare}\n{CLOSE}\n{OPEN}\n{{\"name\": \"get_we");
        assert_eq!(d.read(&cut_tags, "length").2, "length");
        let tags =
            "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}\n</tool_call>\n";
        assert_eq!(d.parse(tags), ("Checking.".to_string(), vec![lyon()]));
    }

    #[test]
    fn answers_that_are_not_calls_stay_text() {
        let d = declared(true);
        for text in [
            "```json\n{\"name\": \"Buddy\", \"arguments\": {\"age\": 3}}\n```",
            "{\"name\": \"add\", \"arguments\": {\"a\": \"two\", \"b\": 2}}",
            "{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2, \"c\": 3}}",
            "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}, \"id\": 1}",
            "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}\nThat asks for the weather.",
            "Here it is:\n```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}\n```",
            "```python\ndef add(a, b):\n    return a + b\n```",
            "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Ly",
            "[1, 2, 3]",
            "4",
        ] {
            assert_eq!(d.parse(text), (text.to_string(), vec![]), "{text}");
        }
        let plain = declared(false);
        let bare = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}";
        assert_eq!(plain.parse(bare), (bare.to_string(), vec![]));
    }

    /// Streams in small pieces: what is shown before the end, and what the end gives.
    fn stream(d: &Arc<Declared>, text: &str) -> (String, String, Vec<Call>) {
        let mut r = CallReader::new(d.clone());
        let chars: Vec<char> = text.chars().collect();
        let shown: String = chars.chunks(3).map(|c| r.push(&c.iter().collect::<String>())).collect();
        let (rest, calls) = r.finish();
        (shown, rest, calls)
    }

    #[test]
    fn streams_hold_text_only_while_a_call_is_possible() {
        let d = declared(true);
        let fenced = "```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}\n```";
        assert_eq!(stream(&d, fenced), (String::new(), String::new(), vec![lyon()]));
        let code = "```python\ndef add(a, b):\n    return a + b\n```";
        let mut r = CallReader::new(d.clone());
        assert_eq!(r.push("```py"), "```py");
        assert_eq!(r.push("thon\n"), "thon\n");
        assert_eq!(stream(&d, code), (code.to_string(), String::new(), vec![]));
        let cat = "{\"name\": \"abby\", \"age\": 3}";
        let mut r = CallReader::new(d.clone());
        assert_eq!(r.push("{\"name\": \"a"), "");
        assert_eq!(r.push("b"), "{\"name\": \"ab");
        assert_eq!(stream(&d, cat).0, cat);
        let json = "{\"colour\": \"red\"}";
        let mut r = CallReader::new(d.clone());
        assert_eq!(r.push("{\"co"), "{\"co");
        let prose = "The weather tool needs a city.";
        assert_eq!(stream(&d, prose).0, prose);
        // `<tool_call>` is one token: it arrives whole.
        let mut r = CallReader::new(d.clone());
        let call = "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lyon\"}}\n";
        let shown: Vec<String> = ["Ok.", OPEN, call, CLOSE].iter().map(|t| r.push(t)).collect();
        assert_eq!(shown.concat(), "Ok.");
        assert_eq!(r.finish(), (String::new(), vec![lyon()]));
        assert_eq!(stream(&d, json).0, json);
    }

    #[test]
    fn further_calls_that_add_nothing_end_the_list() {
        let d = declared(false);
        let call = |n: &str, a: &str| format!("{OPEN}\n{{\"name\": \"{n}\", \"arguments\": {a}}}\n{CLOSE}\n");
        let lyon = call("get_weather", r#"{"city": "Lyon"}"#);
        let paris = call("get_weather", r#"{"city": "Paris"}"#);
        let sum = call("add", r#"{"a": 2, "b": 3}"#);
        let invented = call("add", r#"{"a": 10, "b": 52}"#);
        assert!(!d.last_call_adds_nothing(&format!("{lyon}{paris}")));
        assert!(!d.last_call_adds_nothing(&format!("{lyon}{paris}{sum}")));
        assert!(
            d.last_call_adds_nothing(&format!("{lyon}{invented}")),
            "5 is not in 52, 10 nowhere"
        );
        assert!(d.last_call_adds_nothing(&format!("{lyon}{lyon}")), "a repeat");
        assert!(!d.last_call_adds_nothing(&invented), "the first call always counts");
        let fahrenheit = call("get_weather", r#"{"city": "Lyon", "unit": "f"}"#);
        assert!(
            d.last_call_adds_nothing(&format!("{lyon}{fahrenheit}")),
            "nothing new for the same function"
        );
        let more = call("get_weather", r#"{"days": 3, "hours": 2}"#);
        assert!(
            d.last_call_adds_nothing(&format!("{sum}{more}")),
            "no value earlier calls did not use"
        );
        let all = format!("{lyon}{paris}{invented}{sum}");
        assert_eq!(d.parse(&all).1.len(), 2, "calls end at the first that adds nothing");
    }
}
