//! The Berkeley Function Calling Leaderboard's single-turn AST categories: the data as shipped in
//! the PyPI package `bfcl-eval` 2026.3.23, its schemas made OpenAI tools, and its AST checker
//! (`bfcl_eval/eval_checker/ast_eval/ast_checker.py`) restated for Python answers.
//!
//! The checker compares a call's arguments with the possible answers as Python compares values
//! (`1 == 1.0`, `True == 1`), takes strings case- and punctuation-insensitively, lets an `int`
//! stand for a `float` parameter, and treats a value of the possible answers' own type as a
//! variable name. An answer without calls (plain text) fails every category but `irrelevance`,
//! where any call fails.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// The categories measured, with the data file stem of each.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("simple", "BFCL_v4_simple_python"),
    ("multiple", "BFCL_v4_multiple"),
    ("parallel", "BFCL_v4_parallel"),
    ("parallel_multiple", "BFCL_v4_parallel_multiple"),
    ("irrelevance", "BFCL_v4_irrelevance"),
];

/// One question with its functions and (except for irrelevance) its possible answers.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub category: String,
    /// The first turn's messages.
    pub messages: Vec<Value>,
    /// The functions as BFCL declares them (Python types, dotted names).
    pub functions: Vec<Value>,
    /// `[{name: {param: [possible values]}}]`; `None` for irrelevance.
    pub answers: Option<Vec<Value>>,
}

fn lines(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("a BFCL line does not parse: {e}")))
        .collect()
}

/// The items of `category` from its question file and (if any) its possible-answer file.
pub fn load(category: &str, questions: &str, answers: Option<&str>) -> Result<Vec<Item>, String> {
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for a in lines(answers.unwrap_or(""))? {
        if let (Some(id), Some(gt)) = (a["id"].as_str(), a.get("ground_truth")) {
            by_id.insert(id.to_string(), gt.clone());
        }
    }
    let mut items = Vec::new();
    for q in lines(questions)? {
        let id = q["id"].as_str().ok_or("a BFCL question has no id")?.to_string();
        let messages = q["question"][0]
            .as_array()
            .cloned()
            .ok_or(format!("{id}: no question"))?;
        let functions = q["function"].as_array().cloned().ok_or(format!("{id}: no functions"))?;
        let answers = match answers {
            None => None,
            Some(_) => Some(
                by_id
                    .get(&id)
                    .and_then(Value::as_array)
                    .cloned()
                    .ok_or(format!("{id}: no possible answer"))?,
            ),
        };
        items.push(Item {
            id,
            category: category.to_string(),
            messages,
            functions,
            answers,
        });
    }
    Ok(items)
}

/// A fixed sample of `n` items spread evenly over the file (BFCL's files run topic by topic, so
/// even spacing stratifies by topic): item ⌊i·len/n⌋ for i < n.
pub fn sample(items: &[Item], n: usize) -> Vec<Item> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * items.len() / n].clone()).collect()
}

/// Things a JSON answer may describe, and ways of asking for one (`json_requests`).
const JSON_SUBJECTS: &[&str] = &[
    "a book with its title, author and year",
    "a user profile with a name, an email and an age",
    "a recipe with its ingredients and steps",
    "a car with its make, model and price",
    "a city with its name, country and population",
    "a movie with its title, director and rating",
    "a product in a shop with a name, a price and a stock count",
    "an employee with a name, a role and a salary",
    "a planet with its name, mass and number of moons",
    "a song with its title, artist and length in seconds",
];
const JSON_ASKS: &[&str] = &[
    "Write a JSON object describing {}.",
    "Give me example JSON data for {}.",
    "Return only JSON: {}.",
    "I need a sample JSON document for {} to test my parser.",
    "Show me how {} would look as JSON.",
];

/// Requests for JSON (no function fits): every subject asked every way.
pub fn json_requests() -> Vec<String> {
    JSON_ASKS
        .iter()
        .flat_map(|a| JSON_SUBJECTS.iter().map(move |s| a.replace("{}", s)))
        .collect()
}

/// Items where the answer is JSON or code and no call fits, with functions declared all the
/// same: `prompts` each get two functions of `pool` (a fixed, spread choice). Scored as
/// irrelevance: any call is a false call.
pub fn no_call_items(category: &str, prompts: &[String], pool: &[Item]) -> Vec<Item> {
    let fs: Vec<&Value> = pool.iter().flat_map(|i| &i.functions).collect();
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Item {
            id: format!("{category}_{i}"),
            category: category.to_string(),
            messages: vec![json!({"role": "user", "content": p})],
            functions: match fs.len() {
                0 => Vec::new(),
                n => vec![fs[(i * 7) % n].clone(), fs[(i * 7 + n / 2) % n].clone()],
            },
            answers: None,
        })
        .collect()
}

/// BFCL's type names as JSON Schema: `None` means any value (no `type`).
fn schema_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "dict" | "object" | "HashMap" | "Hashtable" => "object",
        "float" | "number" | "double" => "number",
        "integer" | "int" | "long" | "short" | "byte" | "Bigint" => "integer",
        "boolean" | "bool" => "boolean",
        "array" | "list" | "tuple" | "ArrayList" | "Array" | "Queue" | "Stack" => "array",
        "any" | "Any" => return None,
        _ => "string",
    })
}

/// One BFCL schema node as JSON Schema, recursively (`properties`, `items`); BFCL's own
/// `optional` marker (not JSON Schema) is dropped.
fn convert_schema(node: &Value) -> Value {
    let Some(o) = node.as_object() else {
        return node.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        match k.as_str() {
            "type" => {
                if let Some(t) = v.as_str().and_then(schema_type) {
                    out.insert(k.clone(), json!(t));
                }
            }
            "properties" => {
                let props = v.as_object().map(|p| {
                    p.iter()
                        .map(|(name, s)| (name.clone(), convert_schema(s)))
                        .collect::<Map<_, _>>()
                });
                out.insert(k.clone(), props.map_or(v.clone(), Value::Object));
            }
            "items" => {
                out.insert(k.clone(), convert_schema(v));
            }
            "optional" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A function's name as OpenAI allows it (`^[a-zA-Z0-9_-]{1,64}$`: dots become underscores).
pub fn tool_name(name: &str) -> String {
    name.replace('.', "_")
}

/// The item's functions as OpenAI `tools`, the same for every server.
pub fn tools(functions: &[Value]) -> Vec<Value> {
    functions
        .iter()
        .map(|f| {
            let mut params = convert_schema(&f["parameters"]);
            params["type"] = json!("object");
            json!({"type": "function", "function": {
                "name": tool_name(f["name"].as_str().unwrap_or_default()),
                "description": f["description"],
                "parameters": params,
            }})
        })
        .collect()
}

/// What a server answered: the calls (name as sent back, arguments as a JSON string), or text.
#[derive(Debug, Clone)]
pub enum Output {
    Calls(Vec<(String, String)>),
    Text(String),
}

/// The verdict on one answer, with BFCL's error kind when it fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub valid: bool,
    pub error: String,
}

fn fail(kind: &str, detail: String) -> Checked {
    Checked {
        valid: false,
        error: format!("{kind}: {detail}"),
    }
}

const OK: Checked = Checked {
    valid: true,
    error: String::new(),
};

/// Scores `out` against `item` as BFCL's AST checker does.
pub fn check(item: &Item, out: &Output) -> Checked {
    let Some(answers) = &item.answers else {
        return match out {
            Output::Calls(c) if !c.is_empty() => fail("irrelevance_error", "a call where none fits".into()),
            _ => OK,
        };
    };
    let calls = match out {
        Output::Calls(c) if !c.is_empty() => c,
        _ => return fail("relevance_error:decoder_failed", "no tool calls".into()),
    };
    // The model's calls as {original name: arguments}; names mapped back from the tools' form.
    let back: HashMap<String, &str> = item
        .functions
        .iter()
        .filter_map(|f| f["name"].as_str())
        .map(|n| (tool_name(n), n))
        .collect();
    let mut decoded = Vec::new();
    for (name, args) in calls {
        let Ok(Value::Object(args)) = serde_json::from_str::<Value>(args) else {
            return fail("decoder_failed", format!("arguments of {name} are not a JSON object"));
        };
        let name = back.get(name).map_or(name.as_str(), |n| n);
        decoded.push((name.to_string(), args));
    }
    if item.category.contains("parallel") {
        parallel_no_order(&item.functions, &decoded, answers)
    } else if decoded.len() != answers.len() {
        fail(
            "wrong_count",
            format!("{} calls, {} expected", decoded.len(), answers.len()),
        )
    } else {
        let expected = answers[0]
            .as_object()
            .and_then(|o| o.keys().next())
            .cloned()
            .unwrap_or_default();
        match find(&item.functions, &expected) {
            Some(f) => simple(f, &decoded[0], &answers[0]),
            None => fail("data", format!("no function {expected}")),
        }
    }
}

fn find<'a>(functions: &'a [Value], name: &str) -> Option<&'a Value> {
    functions.iter().find(|f| f["name"].as_str() == Some(name))
}

type Call = (String, Map<String, Value>);

fn parallel_no_order(functions: &[Value], calls: &[Call], answers: &[Value]) -> Checked {
    if calls.len() != answers.len() {
        return fail(
            "wrong_count",
            format!("{} calls, {} expected", calls.len(), answers.len()),
        );
    }
    let mut matched = vec![false; calls.len()];
    for answer in answers {
        let expected = answer
            .as_object()
            .and_then(|o| o.keys().next())
            .cloned()
            .unwrap_or_default();
        let Some(f) = find(functions, &expected) else {
            return fail("data", format!("no function {expected}"));
        };
        let mut last = fail("cannot_find_match", expected.clone());
        for (i, call) in calls.iter().enumerate() {
            if matched[i] {
                continue;
            }
            last = simple(f, call, answer);
            if last.valid {
                matched[i] = true;
                break;
            }
        }
        if !last.valid {
            return fail("cannot_find_match", format!("{expected}: {}", last.error));
        }
    }
    OK
}

/// BFCL's Python type of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Py {
    None,
    Bool,
    Int,
    Float,
    Str,
    List,
    Dict,
}

fn py_type(v: &Value) -> Py {
    match v {
        Value::Null => Py::None,
        Value::Bool(_) => Py::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => Py::Int,
        Value::Number(_) => Py::Float,
        Value::String(_) => Py::Str,
        Value::Array(_) => Py::List,
        Value::Object(_) => Py::Dict,
    }
}

/// `PYTHON_TYPE_MAPPING` of the checker.
fn declared_type(t: &str) -> Py {
    match t {
        "integer" => Py::Int,
        "float" => Py::Float,
        "boolean" => Py::Bool,
        "array" | "tuple" => Py::List,
        "dict" => Py::Dict,
        _ => Py::Str,
    }
}

/// Python's `==` on JSON values: numbers (and booleans) by value, lists and dicts by element.
fn py_eq(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(*b as u8 as f64),
        _ => None,
    };
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (num(a), num(b)) {
            (Some(p), Some(q)) => p == q,
            _ => a == b,
        },
    }
}

fn py_in(v: &Value, list: &[Value]) -> bool {
    list.iter().any(|x| py_eq(v, x))
}

/// The checker's `standardize_string`: no spaces or `,./-_*^`, lower case, `'` as `"`.
fn standardize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | ',' | '.' | '/' | '-' | '_' | '*' | '^'))
        .collect::<String>()
        .to_lowercase()
        .replace('\'', "\"")
}

fn standardized(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(standardize(s)),
        other => other.clone(),
    }
}

/// The type of the first possible answer that is not the optional marker `""`.
fn answer_type(possible: &[Value]) -> Option<Py> {
    possible.iter().find(|a| a.as_str() != Some("")).map(py_type)
}

/// `type_checker`: Ok(is_variable) or the error.
fn type_check(
    param: &str,
    value: &Value,
    possible: &[Value],
    expected: Py,
    nested: Option<Py>,
) -> Result<bool, Checked> {
    let possible_type = answer_type(possible);
    let is_variable = possible_type.is_some_and(|t| t != expected);
    if py_type(value) == expected {
        let Some(inner) = nested else {
            return Ok(is_variable);
        };
        let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
        for p in possible {
            let ok = match p.as_array() {
                Some(pl) => items.iter().all(|it| type_check(param, it, pl, inner, None).is_ok()),
                None => true,
            };
            if ok {
                return Ok(is_variable);
            }
        }
        return Err(fail("type_error:nested", format!("{param}: {value}")));
    }
    if possible_type == Some(py_type(value)) {
        return Ok(true);
    }
    Err(fail(
        "type_error:simple",
        format!("{param}: expected {expected:?}, got {value}"),
    ))
}

fn string_check(param: &str, value: &str, possible: &[Value]) -> Checked {
    let v = standardize(value);
    match possible.iter().filter_map(Value::as_str).any(|p| standardize(p) == v) {
        true => OK,
        false => fail("value_error:string", format!("{param}: {value:?}")),
    }
}

fn list_check(param: &str, value: &[Value], possible: &[Value]) -> Checked {
    let v = Value::Array(value.iter().map(standardized).collect());
    let ok = possible.iter().any(|p| {
        // The optional marker "" iterates as an empty list in the checker.
        let p = match p {
            Value::Array(a) => Value::Array(a.iter().map(standardized).collect()),
            Value::String(s) if s.is_empty() => Value::Array(Vec::new()),
            other => other.clone(),
        };
        py_eq(&v, &p)
    });
    match ok {
        true => OK,
        false => fail(
            "value_error:list/tuple",
            format!("{param}: {}", Value::Array(value.to_vec())),
        ),
    }
}

fn dict_check(param: &str, value: &Map<String, Value>, possible: &[Value]) -> Checked {
    let mut result = fail("dict_checker:unclear", param.to_string());
    for p in possible {
        let Some(p) = p.as_object() else { continue };
        result = OK;
        for (k, v) in value {
            let Some(options) = p.get(k).and_then(Value::as_array) else {
                result = fail("value_error:dict_key", format!("unexpected key {k}"));
                break;
            };
            let options: Vec<Value> = options.iter().map(standardized).collect();
            if !py_in(&standardized(v), &options) {
                result = fail("value_error:dict_value", format!("{k}: {v}"));
                break;
            }
        }
        if result.valid {
            let missing = p.iter().find(|(k, opts)| {
                !value.contains_key(*k)
                    && !opts
                        .as_array()
                        .is_some_and(|o| o.iter().any(|x| x.as_str() == Some("")))
            });
            if let Some((k, _)) = missing {
                result = fail("value_error:dict_key", format!("missing key {k}"));
            }
        }
        if result.valid {
            return OK;
        }
    }
    result
}

fn list_dict_check(param: &str, value: &[Value], possible: &[Value]) -> Checked {
    let mut result = fail("list_dict_checker:unclear", param.to_string());
    for p in possible {
        let Some(p) = p.as_array() else { continue };
        if p.len() != value.len() {
            result = fail("value_error:list_dict_count", param.to_string());
            continue;
        }
        let all = value.iter().zip(p).all(|(v, q)| match v.as_object() {
            Some(o) => {
                result = dict_check(param, o, std::slice::from_ref(q));
                result.valid
            }
            None => false,
        });
        if all {
            return OK;
        }
    }
    result
}

/// `simple_function_checker`: one call against one function's possible answer.
fn simple(function: &Value, (name, args): &Call, answer: &Value) -> Checked {
    let expected = function["name"].as_str().unwrap_or_default();
    if name != expected {
        return fail("wrong_func_name", format!("{name}, expected {expected}"));
    }
    let possible = answer[expected].as_object().cloned().unwrap_or_default();
    let details = function["parameters"]["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for r in function["parameters"]["required"].as_array().into_iter().flatten() {
        if let Some(r) = r.as_str().filter(|r| !args.contains_key(*r)) {
            return fail("missing_required", r.to_string());
        }
    }
    for (param, value) in args {
        let (Some(detail), Some(options)) = (details.get(param), possible.get(param).and_then(Value::as_array)) else {
            return fail("unexpected_param", param.clone());
        };
        let described = detail["type"].as_str().unwrap_or("string");
        let expected = declared_type(described);
        let nested = match described {
            "array" | "tuple" => Some(declared_type(detail["items"]["type"].as_str().unwrap_or("string"))),
            _ => None,
        };
        let value = match (described, value) {
            ("float", Value::Number(n)) if n.is_i64() || n.is_u64() => json!(n.as_f64()),
            _ => value.clone(),
        };
        let is_variable = match type_check(param, &value, options, expected, nested) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let checked = match (&value, is_variable) {
            (Value::Object(o), false) if expected == Py::Dict => dict_check(param, o, options),
            (Value::Array(a), false) if expected == Py::List && nested == Some(Py::Dict) => {
                list_dict_check(param, a, options)
            }
            (Value::String(s), false) if expected == Py::Str => string_check(param, s, options),
            (Value::Array(a), false) if expected == Py::List => list_check(param, a, options),
            _ if py_in(&value, options) => OK,
            _ => fail("value_error:others", format!("{param}: {value}")),
        };
        if !checked.valid {
            return checked;
        }
    }
    for (param, options) in &possible {
        let optional = options
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x.as_str() == Some("")));
        if !args.contains_key(param) && !optional {
            return fail("missing_optional", param.clone());
        }
    }
    OK
}

/// The Wilson score interval of `k` successes in `n` at 95%.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n, p) = (1.959964, n as f64, k as f64 / n as f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(category: &str, functions: Value, answers: Value) -> Item {
        Item {
            id: "t".into(),
            category: category.into(),
            messages: vec![],
            functions: functions.as_array().unwrap().clone(),
            answers: answers.as_array().cloned(),
        }
    }

    fn calls(c: &[(&str, &str)]) -> Output {
        Output::Calls(c.iter().map(|(n, a)| (n.to_string(), a.to_string())).collect())
    }

    fn triangle() -> Item {
        let f = json!([{"name": "geo.area", "parameters": {"type": "dict", "properties": {
            "base": {"type": "integer"}, "height": {"type": "float"}, "unit": {"type": "string"},
            "sides": {"type": "array", "items": {"type": "integer"}}},
            "required": ["base", "height"]}}]);
        let a =
            json!([{"geo.area": {"base": [10], "height": [5.0], "unit": ["square units", ""], "sides": [[3, 4], ""]}}]);
        item("simple", f, a)
    }

    #[test]
    fn the_ast_checker_as_bfcl_writes_it() {
        let t = triangle();
        let ok = |args: &str| check(&t, &calls(&[("geo_area", args)])).valid;
        assert!(ok(r#"{"base": 10, "height": 5}"#), "int for float, optional left out");
        assert!(
            ok(r#"{"base": 10, "height": 5.0, "unit": "Square-Units"}"#),
            "strings standardised"
        );
        assert!(ok(r#"{"base": 10, "height": 5, "sides": [3, 4]}"#));
        assert!(
            ok(r#"{"base": 10, "height": 5, "sides": []}"#),
            "\"\" reads as an empty list"
        );
        assert!(!ok(r#"{"base": 10.5, "height": 5}"#), "float for int");
        assert!(!ok(r#"{"base": 10}"#), "missing required");
        assert!(
            !ok(r#"{"base": 10, "height": 5, "colour": "red"}"#),
            "unexpected parameter"
        );
        assert!(!ok(r#"{"base": 10, "height": 5, "unit": "cm"}"#), "wrong string");
        assert!(!ok(r#"{"base": 10, "height": 5, "sides": [3, 5]}"#), "wrong list");
        // As in BFCL: the optional marker "" passes the nested type check, and 3.0 == 3.
        assert!(ok(r#"{"base": 10, "height": 5, "sides": [3.0, 4]}"#));
        assert!(!check(&t, &Output::Text("area(10, 5)".into())).valid);
        assert!(!check(&t, &calls(&[("geo_area", r#"{"base": 10, "height": 5}"#); 2])).valid);
    }

    #[test]
    fn parallel_calls_match_in_any_order_and_irrelevance_wants_none() {
        let f = json!([{"name": "w", "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
        let a = json!([{"w": {"city": ["Paris"]}}, {"w": {"city": ["Lyon"]}}]);
        let p = item("parallel", f.clone(), a);
        assert!(
            check(
                &p,
                &calls(&[("w", r#"{"city": "lyon"}"#), ("w", r#"{"city": "Paris"}"#)])
            )
            .valid
        );
        assert!(
            !check(
                &p,
                &calls(&[("w", r#"{"city": "Lyon"}"#), ("w", r#"{"city": "Lyon"}"#)])
            )
            .valid
        );
        assert!(!check(&p, &calls(&[("w", r#"{"city": "Lyon"}"#)])).valid);
        let irr = item("irrelevance", f, Value::Null);
        assert!(check(&irr, &Output::Text("I cannot help with that.".into())).valid);
        assert!(!check(&irr, &calls(&[("w", r#"{"city": "Lyon"}"#)])).valid);
    }

    #[test]
    fn schemas_become_openai_tools() {
        let f = json!([{"name": "a.b", "description": "d", "parameters": {"type": "dict", "properties": {
            "x": {"type": "float"}, "y": {"type": "tuple", "items": {"type": "any"}},
            "z": {"type": "dict", "properties": {"q": {"type": "boolean", "optional": true}}}}}}]);
        let t = tools(f.as_array().unwrap());
        let p = &t[0]["function"]["parameters"];
        assert_eq!(t[0]["function"]["name"], "a_b");
        assert_eq!(p["type"], "object");
        assert_eq!(p["properties"]["x"]["type"], "number");
        assert_eq!(p["properties"]["y"], json!({"type": "array", "items": {}}));
        assert_eq!(
            p["properties"]["z"],
            json!({"type": "object", "properties": {"q": {"type": "boolean"}}})
        );
    }

    #[test]
    fn wilson_intervals() {
        let (lo, hi) = wilson(50, 100);
        assert!((lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }
}
