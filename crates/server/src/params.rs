//! Typed reads of request fields with OpenAI's error messages: every error names the parameter,
//! the expected type or range, and what was sent.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// A request body: a JSON object whose fields are read one by one. `null` counts as absent.
pub struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        param,
        "invalid_type",
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
    )
}

impl<'a> Fields<'a> {
    /// Parses a body into an object, with OpenAI's message for anything that is not a JSON object.
    pub fn parse(body: &[u8]) -> Result<Value, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON: {e})"
            ))
        })?;
        if !v.is_object() {
            return Err(ApiError::bad_request(format!(
                "The request body must be a JSON object, but got {} instead.",
                type_name(&v)
            )));
        }
        Ok(v)
    }

    pub fn new(v: &'a Value) -> Self {
        Self {
            obj: v.as_object().expect("parse checked it is an object"),
        }
    }

    pub fn get(&self, k: &str) -> Option<&'a Value> {
        self.obj.get(k).filter(|v| !v.is_null())
    }

    /// Refuses fields outside `known`, as OpenAI does (unless `ignore`).
    pub fn check_known(&self, known: &[&str], ignore: bool) -> Result<(), ApiError> {
        if ignore {
            return Ok(());
        }
        match self.obj.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!(
                "Unrecognized request argument supplied: {k}"
            ))),
            None => Ok(()),
        }
    }

    pub fn string(&self, k: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(k, "a string", v)),
        }
    }

    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(k, "a boolean", v)),
        }
    }

    /// A number in `[lo, hi]`.
    pub fn number(&self, k: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if x < lo {
                    return Err(ApiError::invalid(
                        k,
                        "decimal_below_min_value",
                        format!("Invalid '{k}': decimal below minimum value. Expected a value >= {lo}, but got {x} instead."),
                    ));
                }
                if x > hi {
                    return Err(ApiError::invalid(
                        k,
                        "decimal_above_max_value",
                        format!("Invalid '{k}': decimal above maximum value. Expected a value <= {hi}, but got {x} instead."),
                    ));
                }
                Ok(Some(x))
            }
            Some(v) => Err(wrong_type(k, "a decimal", v)),
        }
    }

    /// An integer in `[lo, hi]`.
    pub fn integer(&self, k: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let Some(x) = n.as_i64().or_else(|| n.as_u64().map(|u| u.min(i64::MAX as u64) as i64)) else {
                    return Err(wrong_type(k, "an integer", &Value::Number(n.clone())));
                };
                if x < lo {
                    return Err(ApiError::invalid(
                        k,
                        "integer_below_min_value",
                        format!("Invalid '{k}': integer below minimum value. Expected a value >= {lo}, but got {x} instead."),
                    ));
                }
                if x > hi {
                    return Err(ApiError::invalid(
                        k,
                        "integer_above_max_value",
                        format!("Invalid '{k}': integer above maximum value. Expected a value <= {hi}, but got {x} instead."),
                    ));
                }
                Ok(Some(x))
            }
            Some(v) => Err(wrong_type(k, "an integer", v)),
        }
    }

    /// `stop`: a string or up to 4 strings.
    pub fn stop(&self) -> Result<Vec<String>, ApiError> {
        match self.get("stop") {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => {
                if a.len() > 4 {
                    return Err(ApiError::invalid(
                        "stop",
                        "array_above_max_length",
                        format!("Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length {} instead.", a.len()),
                    ));
                }
                a.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| wrong_type(&format!("stop[{i}]"), "a string", v))
                    })
                    .collect()
            }
            Some(v) => Err(wrong_type("stop", "a string or an array of strings", v)),
        }
    }

    /// `logit_bias`: token id (as a string key) → bias in [-100, 100].
    pub fn logit_bias(&self, vocab: usize) -> Result<Vec<(u32, f32)>, ApiError> {
        let Some(v) = self.get("logit_bias") else {
            return Ok(Vec::new());
        };
        let Value::Object(m) = v else {
            return Err(wrong_type("logit_bias", "an object", v));
        };
        let mut out = Vec::with_capacity(m.len());
        for (k, b) in m {
            let param = format!("logit_bias.{k}");
            let id: u32 = k.parse().ok().filter(|&i: &u32| (i as usize) < vocab).ok_or_else(|| {
                ApiError::invalid(
                    "logit_bias",
                    "invalid_value",
                    format!("Invalid key in 'logit_bias': {k}. Keys must be token ids below {vocab}."),
                )
            })?;
            let bias = b.as_f64().ok_or_else(|| wrong_type(&param, "a number", b))?;
            if !(-100.0..=100.0).contains(&bias) {
                return Err(ApiError::invalid(
                    "logit_bias",
                    "invalid_value",
                    format!(
                        "Invalid value for 'logit_bias' key {k}: {bias}. Bias values must be between -100 and 100."
                    ),
                ));
            }
            out.push((id, bias as f32));
        }
        Ok(out)
    }
}
